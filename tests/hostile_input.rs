//! Hostile and broken torrents: each gets a clear error and exit code 3, never a panic.

mod common;

use std::path::Path;

use common::*;

/// Writes `bytes` as a .torrent and runs `info` and `verify` on it: both must refuse it
/// with exit code 3 and a message containing `needle`.
#[track_caller]
fn refused(dir: &Path, name: &str, bytes: &[u8], needle: &str) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let info = run(ccbt().arg("info").arg(&path)).expect_code(3);
    assert!(
        info.stderr.contains(needle),
        "{name}: want {needle:?} in:\n{}",
        info.stderr
    );
    assert!(info.stdout.is_empty());
    let verify = run(ccbt().arg("verify").arg(&path).arg("--data").arg(dir)).expect_code(3);
    assert!(
        verify.stderr.contains(needle),
        "{name}: want {needle:?} in:\n{}",
        verify.stderr
    );
}

/// A single-file torrent with the given info dict body (keys already sorted).
fn torrent(info_body: &str) -> Vec<u8> {
    format!("d4:infod{info_body}ee").into_bytes()
}

fn pieces(n: usize) -> String {
    format!("6:pieces{}:{}", n * 20, "x".repeat(n * 20))
}

#[test]
fn path_escaping_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let p = pieces(1);
    let files = |path: &str| {
        torrent(&format!(
            "5:filesld6:lengthi10e4:path{path}ee4:name4:safe12:piece lengthi16384e{p}"
        ))
    };
    refused(
        dir.path(),
        "dotdot.torrent",
        &files("l2:..2:..3:etc6:passwde"),
        "would leave its directory",
    );
    // An absolute path or a separator inside a component shows no intent to leave: it is
    // mapped inside the directory (as libtorrent does), and `info` says where.
    for (name, path, inside) in [
        ("abs.torrent", "l0:3:etc6:passwde", "safe/etc/passwd"),
        ("slash.torrent", "l11:/etc/passwde", "safe/_etc_passwd"),
    ] {
        let at = dir.path().join(name);
        std::fs::write(&at, files(path)).unwrap();
        let info = run(ccbt().arg("info").arg(&at)).ok();
        assert!(
            info.stdout.contains(&format!("-> {inside}")),
            "{name}: {}",
            info.stdout
        );
    }
    refused(dir.path(), "nul.torrent", &files("l3:a\0be"), "NUL");
    let name = torrent(&format!("6:lengthi10e4:name2:..12:piece lengthi16384e{p}"));
    refused(dir.path(), "name.torrent", &name, "torrent name is unsafe");
    // Nothing was created outside (or inside) the directory.
    assert!(!dir.path().join("etc").exists() && !Path::new("/etc/passwd.ccbt").exists());
}

#[test]
fn bencode_bomb() {
    let dir = tempfile::tempdir().unwrap();
    let bomb = [
        &b"d4:info"[..],
        &vec![b'l'; 1_000_000],
        &vec![b'e'; 1_000_000],
        b"e",
    ]
    .concat();
    refused(dir.path(), "bomb.torrent", &bomb, "nesting deeper than 64");
    let long = b"d4:info999999999999:xe".to_vec();
    refused(dir.path(), "long.torrent", &long, "exceeds the limit");
}

#[test]
fn lying_geometry() {
    let dir = tempfile::tempdir().unwrap();
    // 100000 bytes in 16 KiB pieces needs 7 hashes; give 3.
    let short = torrent(&format!(
        "6:lengthi100000e4:name1:x12:piece lengthi16384e{}",
        pieces(3)
    ));
    refused(dir.path(), "count.torrent", &short, "needs 7 pieces");
    let absurd = torrent(&format!(
        "6:lengthi9000000000000000000e4:name1:x12:piece lengthi16384e{}",
        pieces(1)
    ));
    refused(dir.path(), "absurd.torrent", &absurd, "pieces");
    let ragged =
        torrent("6:lengthi10e4:name1:x12:piece lengthi16384e6:pieces21:xxxxxxxxxxxxxxxxxxxxx");
    refused(
        dir.path(),
        "ragged.torrent",
        &ragged,
        "not a multiple of 20",
    );
    let negative = torrent(&format!(
        "6:lengthi-1e4:name1:x12:piece lengthi16384e{}",
        pieces(1)
    ));
    refused(
        dir.path(),
        "negative.torrent",
        &negative,
        "not a valid size",
    );
    let zero = torrent(&format!(
        "6:lengthi10e4:name1:x12:piece lengthi0e{}",
        pieces(1)
    ));
    refused(dir.path(), "zero.torrent", &zero, "piece length");
}

#[test]
fn random_bytes_and_truncations() {
    let dir = tempfile::tempdir().unwrap();
    for seed in 0..20 {
        refused(
            dir.path(),
            &format!("random{seed}.torrent"),
            &bytes(seed, 64 + seed as usize * 97),
            "not a valid torrent",
        );
    }
    let good = torrent(&format!(
        "6:lengthi10e4:name1:x12:piece lengthi16384e{}",
        pieces(1)
    ));
    for cut in [1, 10, good.len() / 2, good.len() - 1] {
        refused(
            dir.path(),
            &format!("cut{cut}.torrent"),
            &good[..cut],
            "not valid bencode",
        );
    }
    refused(dir.path(), "empty.torrent", b"", "not valid bencode");
}

#[test]
fn one_bad_torrent_does_not_stop_checking_a_good_one() {
    // The CLI handles one torrent per run; what matters is that a refused torrent leaves
    // nothing behind that could affect the next run on good data.
    let dir = tempfile::tempdir().unwrap();
    refused(
        dir.path(),
        "bad.torrent",
        b"d4:infoi1ee",
        "should be a dictionary",
    );
    std::fs::write(dir.path().join("x"), bytes(1, 1000)).unwrap();
    let t = dir.path().join("x.torrent");
    run(ccbt()
        .arg("create")
        .arg(dir.path().join("x"))
        .arg("-o")
        .arg(&t))
    .ok();
    run(ccbt().arg("verify").arg(&t).arg("--data").arg(dir.path())).ok();
}
