//! Where the programs a scenario runs are: our own binaries, made absolute (or an error
//! that says how to build them), and the client scripts kept in this repository.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The ccbt-uring binary at `path`, made absolute.
pub fn ccbt(path: &Path) -> Result<PathBuf> {
    existing(path, "cargo build --release")
}

/// The load generator: `explicit`, or next to this binary, where `cargo build --release
/// -p ccbt-loadgen` puts it; made absolute.
pub fn loadgen(explicit: Option<&Path>) -> Result<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => std::env::current_exe()
            .context("cannot find this binary")?
            .with_file_name("ccbt-loadgen"),
    };
    existing(&path, "cargo build --release -p ccbt-loadgen")
}

/// The interop tests' client scripts (`lt_client.py`, `transmission_client.sh`).
pub fn client_scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/scripts")
}

/// The bench's own scripts (`lt_many.py`).
pub fn bench_scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

fn existing(path: &Path, build: &str) -> Result<PathBuf> {
    std::fs::canonicalize(path)
        .with_context(|| format!("{} not found: run `{build}` first", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_scripts_and_says_how_to_build_a_missing_binary() {
        assert!(client_scripts().join("lt_client.py").is_file());
        assert!(client_scripts().join("transmission_client.sh").is_file());
        assert!(bench_scripts().join("lt_many.py").is_file());
        let missing = ccbt(Path::new("/nonexistent/ccbt-uring")).unwrap_err();
        assert!(format!("{missing:#}").contains("cargo build --release"));
        let missing = loadgen(Some(Path::new("/nonexistent/ccbt-loadgen"))).unwrap_err();
        assert!(format!("{missing:#}").contains("-p ccbt-loadgen"));
    }
}
