//! Putting a scenario's Markdown into BENCHMARKS.md.

use std::path::Path;

use anyhow::{Context, Result};

/// Replaces the text between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`
/// in `path` (appending the markers if they are missing) with `body`, after a line that
/// says when, on what machine and by which command it was measured. The prose around the
/// markers is kept.
pub fn write_section(path: &Path, name: &str, body: &str) -> Result<()> {
    replace_section(path, name, &format!("{}\n\n{body}", stamp()))
}

/// `_Measured 2026-11-29 on <cpu> (2 cores, 24 GiB, Linux 6.x): `ccbt-bench ...`_`
fn stamp() -> String {
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let command: Vec<String> = std::iter::once("ccbt-bench".to_string())
        .chain(std::env::args().skip(1))
        .collect();
    format!(
        "_Measured {date} on {}: `{}`_",
        machine(),
        command.join(" ")
    )
}

/// The CPU model, cores, memory and kernel, from /proc.
pub fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpuinfo = read("/proc/cpuinfo");
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim())
        })
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mem_kib: u64 = read("/proc/meminfo")
        .lines()
        .find_map(|l| {
            l.strip_prefix("MemTotal:")?
                .trim()
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let kernel = read("/proc/sys/kernel/osrelease");
    format!(
        "{model} ({cores} cores, {} GiB, Linux {})",
        (mem_kib + (1 << 19)) >> 20,
        kernel.trim()
    )
}

fn replace_section(path: &Path, name: &str, body: &str) -> Result<()> {
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
        replace_section(&md, "x", "new\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&md).unwrap(),
            "# T\n<!-- bench:x:start -->\nnew\n<!-- bench:x:end -->\ntail\n"
        );
        write_section(&md, "x", "table\n").unwrap();
        let text = std::fs::read_to_string(&md).unwrap();
        assert!(
            text.starts_with("# T\n<!-- bench:x:start -->\n_Measured "),
            "{text}"
        );
        assert!(text.contains("cores, "), "{text}");
        assert!(
            text.ends_with("`_\n\ntable\n<!-- bench:x:end -->\ntail\n"),
            "{text}"
        );
    }
}
