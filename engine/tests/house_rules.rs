//! The engine's house rule (DESIGN.md, rule 1): no I/O runtime, no clock, no threads.
//! These tests fail the build if `ccbt-engine` — directly or through any dependency —
//! pulls in an I/O runtime, or if its source reads the clock or touches files or sockets.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// Crates that do I/O or run an event loop: none may be in the engine's dependency tree.
const FORBIDDEN_CRATES: &[&str] = &[
    "glommio",
    "io-uring",
    "tokio",
    "mio",
    "nix",
    "async-std",
    "smol",
    "async-io",
    "polling",
];

/// Source patterns that mean I/O, a clock, or threads.
const FORBIDDEN_CALLS: &[&str] = &[
    "Instant::now",
    "SystemTime::now",
    "std::thread",
    "std::fs",
    "std::net::Tcp",
    "std::net::Udp",
    "std::process",
    "std::time::Instant",
    "std::time::SystemTime",
    "glommio",
    "io_uring",
];

/// Everything reachable from `root` in Cargo.lock (normal, build and dev dependencies alike:
/// the lock file does not tell them apart, which makes this check stricter, not looser).
fn lock_closure(lock: &str, root: &str) -> BTreeSet<String> {
    let lock: toml::Table = lock.parse().expect("Cargo.lock is TOML");
    let packages = lock["package"].as_array().expect("[[package]] entries");
    let deps: HashMap<&str, Vec<&str>> = packages
        .iter()
        .map(|p| {
            let name = p["name"].as_str().unwrap();
            let d = p
                .get("dependencies")
                .and_then(|d| d.as_array())
                .map(|d| {
                    // Entries read "name" or "name version" when several versions exist.
                    d.iter()
                        .map(|e| e.as_str().unwrap().split(' ').next().unwrap())
                        .collect()
                })
                .unwrap_or_default();
            (name, d)
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(name) = stack.pop() {
        if seen.insert(name.to_string()) {
            stack.extend(deps.get(name).into_iter().flatten());
        }
    }
    seen
}

/// Lines of Rust source, outside comments, that contain a forbidden pattern.
fn forbidden_lines(source: &str) -> Vec<(usize, &'static str)> {
    source
        .lines()
        .enumerate()
        .flat_map(|(n, line)| {
            let code = line.split("//").next().unwrap_or("");
            FORBIDDEN_CALLS
                .iter()
                .filter(move |p| code.contains(**p))
                .map(move |p| (n + 1, *p))
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn engine_depends_on_no_io_runtime() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lock = std::fs::read_to_string(root.join("../Cargo.lock")).expect("workspace Cargo.lock");
    let closure = lock_closure(&lock, "ccbt-engine");
    assert!(closure.contains("sha1"), "closure looks wrong: {closure:?}");
    let bad: Vec<_> = FORBIDDEN_CRATES
        .iter()
        .filter(|c| closure.contains(**c))
        .collect();
    assert!(bad.is_empty(), "ccbt-engine must not depend on {bad:?}");
}

#[test]
fn engine_source_reads_no_clock_and_does_no_io() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 3, "found no engine sources");
    let mut violations = Vec::new();
    for file in files {
        let source = std::fs::read_to_string(&file).unwrap();
        for (line, pattern) in forbidden_lines(&source) {
            violations.push(format!("{}:{line}: {pattern}", file.display()));
        }
    }
    assert!(
        violations.is_empty(),
        "engine/ breaks the house rule:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checks_themselves_catch_violations() {
    let src = "fn f() {\n    let t = std::time::Instant::now();\n    // SystemTime::now in a comment is fine\n}\n";
    assert_eq!(
        forbidden_lines(src),
        [(2, "Instant::now"), (2, "std::time::Instant")]
    );
    let lock = r#"
        [[package]]
        name = "ccbt-engine"
        dependencies = ["helper"]
        [[package]]
        name = "helper"
        dependencies = ["glommio 0.9.0"]
        [[package]]
        name = "glommio"
    "#;
    assert!(lock_closure(lock, "ccbt-engine").contains("glommio"));
}
