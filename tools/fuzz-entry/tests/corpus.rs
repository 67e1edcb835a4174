//! Replays every checked-in fuzz corpus file (`fuzz/corpus/<target>/`) through its
//! target's entry function on the stable toolchain, so the fuzz targets build and run in
//! `cargo test --workspace` and every crashing input once found stays a regression test.
//! Also checks that the cargo-fuzz crate has a target file for every entry and no more.

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

#[test]
fn every_corpus_file_replays_without_a_panic() {
    let mut total = 0;
    for target in ccbt_fuzz_entry::TARGETS {
        let dir = fuzz_dir().join("corpus").join(target.name);
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(
            !files.is_empty(),
            "{} has no seed corpus in {}",
            target.name,
            dir.display()
        );
        for file in &files {
            let data = std::fs::read(file).expect("corpus file");
            let name = file.display().to_string();
            let outcome = std::panic::catch_unwind(|| (target.run)(&data));
            assert!(outcome.is_ok(), "{} panicked on {name}", target.name);
        }
        total += files.len();
    }
    assert!(total >= ccbt_fuzz_entry::TARGETS.len());
}

#[test]
fn the_fuzz_crate_has_one_target_per_entry_function() {
    let manifest = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).expect("fuzz/Cargo.toml");
    let mut listed: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .map(|e| {
            let p = e.expect("entry").path();
            p.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    listed.sort();
    let mut names: Vec<String> = ccbt_fuzz_entry::TARGETS
        .iter()
        .map(|t| t.name.to_string())
        .collect();
    names.sort();
    assert_eq!(listed, names);
    for name in &names {
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
        let src = std::fs::read_to_string(fuzz_dir().join(format!("fuzz_targets/{name}.rs")))
            .expect("target source");
        assert!(
            src.contains(&format!("ccbt_fuzz_entry::target(\"{name}\")")),
            "fuzz_targets/{name}.rs does not call its entry function"
        );
    }
}
