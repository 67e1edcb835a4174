//! `create`, `info` and `verify` end to end, on real files.

mod common;

use std::path::Path;

use common::*;

fn create(src: &Path, out: &Path, extra: &[&str]) -> Ran {
    run(ccbt().arg("create").arg(src).arg("-o").arg(out).args(extra))
}

fn verify(torrent: &Path, data: &Path, extra: &[&str]) -> Ran {
    run(ccbt()
        .arg("verify")
        .arg(torrent)
        .arg("--data")
        .arg(data)
        .args(extra))
}

#[test]
fn create_then_verify_a_multi_file_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("album");
    write_tree(
        &src,
        &[
            ("cd1/01.flac", 300_000),
            ("cd1/02.flac", 70_000),
            ("cover.jpg", 5),
            ("empty", 0),
        ],
    );
    let torrent = dir.path().join("album.torrent");
    let created = create(
        &src,
        &torrent,
        &[
            "--piece-size",
            "32K",
            "-t",
            "http://t1/a",
            "-t",
            "udp://t2:1",
            "-w",
            "http://ws/",
            "--private",
            "--comment",
            "hi",
        ],
    )
    .ok();
    let info = run(ccbt().arg("info").arg(&torrent).arg("--json"))
        .ok()
        .json();
    assert!(created.stdout.contains(info["info_hash"].as_str().unwrap()));
    assert_eq!(info["name"], "album");
    assert_eq!(info["total_size"], 370_005);
    assert_eq!(info["piece_size"], 32768);
    assert_eq!(info["piece_count"], 12);
    assert_eq!(info["last_piece_size"], 370_005 - 11 * 32768);
    assert_eq!(info["private"], true);
    assert_eq!(
        info["trackers"],
        serde_json::json!([["http://t1/a"], ["udp://t2:1"]])
    );
    assert_eq!(info["web_seeds"], serde_json::json!(["http://ws/"]));
    assert_eq!(info["comment"], "hi");
    let paths: Vec<_> = info["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "album/cd1/01.flac",
            "album/cd1/02.flac",
            "album/cover.jpg",
            "album/empty"
        ]
    );

    let text = run(ccbt().arg("info").arg(&torrent)).ok().stdout;
    for want in [
        "name:       album",
        "private:    yes",
        "tier 1: udp://t2:1",
        "12 x 32.00 KiB",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    let verified = verify(&torrent, dir.path(), &["--json"]).ok().json();
    assert_eq!(verified["complete"], true);
    assert_eq!(verified["good"], 12);
    assert_eq!(verified["bytes_hashed"], 370_005);
    assert!(verified["gb_per_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn verify_names_the_piece_with_a_flipped_byte() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("disk.img");
    std::fs::write(&src, bytes(7, 1_000_000)).unwrap();
    let torrent = dir.path().join("disk.torrent");
    create(&src, &torrent, &["--piece-size", "65536"]).ok();

    let mut data = std::fs::read(&src).unwrap();
    data[5 * 65536 + 1234] ^= 0x20;
    std::fs::write(&src, &data).unwrap();

    let ran = verify(&torrent, dir.path(), &[]).expect_code(1);
    assert!(ran.stdout.contains("bad:        5\n"), "{}", ran.stdout);
    assert!(ran.stdout.contains("result:     incomplete"));
    let json = verify(&torrent, dir.path(), &["--json"])
        .expect_code(1)
        .json();
    assert_eq!(json["bad"], serde_json::json!([5]));
    assert_eq!(json["missing"], serde_json::json!([]));
    assert_eq!(json["good"], 15);
}

#[test]
fn truncated_and_missing_files_are_missing_pieces_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("set");
    write_tree(&src, &[("a", 100_000), ("b", 50_000), ("c", 40_000)]);
    let torrent = dir.path().join("set.torrent");
    create(&src, &torrent, &["--piece-size", "16384"]).ok();

    // a: [0,100000) b: [100000,150000) c: [150000,190000); pieces of 16384.
    std::fs::OpenOptions::new()
        .write(true)
        .open(src.join("b"))
        .unwrap()
        .set_len(20_000)
        .unwrap();
    std::fs::remove_file(src.join("c")).unwrap();
    let before = tree_snapshot(dir.path());

    let json = verify(&torrent, dir.path(), &["--json"])
        .expect_code(1)
        .json();
    // b keeps [100000,120000): piece 7 = [114688,131072) is the first that needs lost bytes.
    let missing: Vec<u64> = json["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(missing, (7..=11).collect::<Vec<_>>());
    assert_eq!(json["bad"], serde_json::json!([]));
    let problems: Vec<_> = json["file_problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(problems, ["set/b", "set/c"]);
    assert_eq!(
        tree_snapshot(dir.path()),
        before,
        "verify changed something on disk"
    );
    assert!(
        !src.join("c").exists(),
        "verify must not create missing files"
    );

    // The whole directory gone: every piece missing, still a clean exit 1.
    std::fs::remove_dir_all(&src).unwrap();
    let json = verify(&torrent, dir.path(), &["--json"])
        .expect_code(1)
        .json();
    assert_eq!(json["missing"].as_array().unwrap().len(), 12);
    assert!(!src.exists());
}

#[test]
fn exit_codes_for_script_authors() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("f");
    std::fs::write(&src, b"hello").unwrap();
    let out = dir.path().join("f.torrent");
    create(&src, &out, &[]).ok();
    // Existing output: refused without --force.
    let ran = create(&src, &out, &[]).expect_code(4);
    assert!(ran.stderr.contains("--force"), "{}", ran.stderr);
    create(&src, &out, &["--force"]).ok();
    // Bad piece size: a usage error, from clap.
    create(
        &src,
        &dir.path().join("g.torrent"),
        &["--piece-size", "1000"],
    )
    .expect_code(2);
    // Missing source, missing torrent, data dir that is not a directory.
    create(&dir.path().join("nope"), &dir.path().join("h.torrent"), &[]).expect_code(4);
    run(ccbt().args(["info", "/nonexistent.torrent"])).expect_code(4);
    verify(&out, &src, &[]).expect_code(4);
    // Nothing to share.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("zero"), b"").unwrap();
    let ran = create(&empty, &dir.path().join("e.torrent"), &[]).expect_code(3);
    assert!(ran.stderr.contains("no data"), "{}", ran.stderr);
    // --help documents all of it.
    let help = run(ccbt().arg("--help")).ok().stdout;
    assert!(
        help.contains("Exit codes:") && help.contains("5  the runtime"),
        "{help}"
    );
}

#[test]
fn info_reads_magnet_links() {
    let magnet = "magnet:?xt=urn:btih:YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK&dn=Some+Name&tr=udp%3A%2F%2Ft%3A1&ws=http://w/&x.pe=127.0.0.1:6881&so=0,2-3";
    let json = run(ccbt().args(["info", magnet, "--json"])).ok().json();
    assert_eq!(
        json["info_hash"],
        "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
    );
    assert_eq!(json["name"], "Some Name");
    assert_eq!(json["trackers"], serde_json::json!([["udp://t:1"]]));
    assert_eq!(json["peers"], serde_json::json!(["127.0.0.1:6881"]));
    assert_eq!(json["select_only"], serde_json::json!(["0", "2-3"]));
    assert!(json["total_size"].is_null());
    let ran = run(ccbt().args(["info", "magnet:?xt=urn:btih:nothex"])).expect_code(3);
    assert!(
        ran.stderr.contains("not a valid magnet link"),
        "{}",
        ran.stderr
    );
}

fn tree_snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime, Vec<u8>)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        let meta = e.metadata().unwrap();
        let content = if meta.is_file() {
            std::fs::read(e.path()).unwrap()
        } else {
            Vec::new()
        };
        out.push((
            e.path().display().to_string(),
            meta.len(),
            meta.modified().unwrap(),
            content,
        ));
    }
    out
}
