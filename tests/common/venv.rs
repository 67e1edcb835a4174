//! The one venv `tools/install-deps.sh` makes at `target/venv` for the PyPI packages the
//! tests drive (qbittorrent-api, selenium).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::swarm::REQUIRE_INTEROP;

/// The venv's python if it can import `module`; otherwise `None` (the test skips), or a
/// failure with the install hint when `CCBT_REQUIRE_INTEROP` is set (CI).
pub fn python_with(module: &str) -> Option<PathBuf> {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/venv/bin/python");
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let why = format!(
        "{} cannot import {module}: run tools/install-deps.sh",
        python.display()
    );
    if std::env::var_os(REQUIRE_INTEROP).is_some() {
        panic!("{why}; {REQUIRE_INTEROP} is set, so this is a failure");
    }
    eprintln!("skipping: {why}; set {REQUIRE_INTEROP}=1 to fail instead");
    None
}
