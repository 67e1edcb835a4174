//! Putting a scenario's Markdown into BENCHMARKS.md.

use std::path::Path;

use anyhow::{Context, Result};

/// Replaces the text between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`
/// in `path` (appending the markers if they are missing).
pub fn write_section(path: &Path, name: &str, body: &str) -> Result<()> {
    let (start, end) = (
        format!("<!-- bench:{name}:start -->"),
        format!("<!-- bench:{name}:end -->"),
    );
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let section = format!("{start}\n{body}{end}");
    let new = match (text.find(&start), text.find(&end)) {
        (Some(a), Some(b)) if a < b => format!("{}{section}{}", &text[..a], &text[b + end.len()..]),
        _ => format!("{text}\n{section}\n"),
    };
    std::fs::write(path, new).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_sections() {
        let dir = tempfile::tempdir().unwrap();
        let md = dir.path().join("B.md");
        std::fs::write(
            &md,
            "# T\n<!-- bench:x:start -->\nold\n<!-- bench:x:end -->\ntail\n",
        )
        .unwrap();
        write_section(&md, "x", "new\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&md).unwrap(),
            "# T\n<!-- bench:x:start -->\nnew\n<!-- bench:x:end -->\ntail\n"
        );
    }
}
