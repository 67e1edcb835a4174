//! Interop with real torrent tools from Debian: mktorrent, transmission-create,
//! transmission-show and python3-libtorrent must agree with us on every info hash.

mod common;

use std::path::Path;
use std::process::Command;

use ccbt_testkit::clients::DEBIAN_PYTHON;
use common::*;

fn libtorrent_info_hash(torrent: &Path) -> String {
    let ran = run(Command::new(DEBIAN_PYTHON)
        .args([
            "-c",
            "import sys, libtorrent as lt; print(str(lt.torrent_info(sys.argv[1]).info_hash()))",
        ])
        .arg(torrent));
    assert_eq!(
        ran.code,
        Some(0),
        "python3-libtorrent failed (apt-get install python3-libtorrent):\n{}",
        ran.stderr
    );
    ran.stdout.trim().to_lowercase()
}

fn sample(root: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let single = root.join("single.bin");
    std::fs::write(&single, bytes(42, 1_234_567)).unwrap();
    let multi = root.join("multi");
    write_tree(
        &multi,
        &[
            ("a/b.dat", 200_000),
            ("a-c.dat", 100_000),
            ("B.txt", 3),
            ("sub/dir/deep.bin", 333_333),
            ("z", 65_536),
        ],
    );
    (single, multi)
}

/// Torrents made by `program` (single- and multi-file): our info hash must be the one
/// transmission-show prints, and the data the program hashed must verify with us.
fn foreign_torrents_read_as_transmission_does(program: &str, package: &str, args: &[&str]) {
    require(program, package);
    let dir = tempfile::tempdir().unwrap();
    let (single, multi) = sample(dir.path());
    for (src, kind) in [(&single, "single"), (&multi, "multi")] {
        let out = dir.path().join(format!("{program}-{kind}.torrent"));
        run(Command::new(program)
            .args(args)
            .arg("-o")
            .arg(&out)
            .arg(src))
        .ok();
        assert_eq!(
            our_info_hash(&out),
            transmission_info_hash(&out),
            "{program}, {kind}"
        );
        run(ccbt().arg("verify").arg(&out).arg("--data").arg(dir.path())).ok();
    }
}

#[test]
fn we_read_mktorrent_torrents_as_transmission_does() {
    foreign_torrents_read_as_transmission_does(
        "mktorrent",
        "mktorrent",
        &["-l", "16", "-a", "http://127.0.0.1:6969/announce"],
    );
}

#[test]
fn we_read_transmission_torrents_as_transmission_does() {
    foreign_torrents_read_as_transmission_does(
        "transmission-create",
        "transmission-cli",
        &["-s", "32", "-t", "udp://127.0.0.1:6969"],
    );
}

#[test]
fn our_torrents_read_the_same_in_transmission_libtorrent_and_mktorrent() {
    require("mktorrent", "mktorrent");
    let dir = tempfile::tempdir().unwrap();
    let (single, multi) = sample(dir.path());
    for (src, name, private) in [
        (&single, "single", false),
        (&multi, "multi", false),
        (&multi, "multi-private", true),
    ] {
        let ours = dir.path().join(format!("ours-{name}.torrent"));
        let mut create = ccbt();
        create.arg("create").arg(src).arg("-o").arg(&ours).args([
            "--piece-size",
            "65536",
            "-t",
            "http://127.0.0.1:6969/announce",
        ]);
        if private {
            create.arg("--private");
        }
        let created = run(&mut create).ok();
        let ours_hash = our_info_hash(&ours);
        assert!(created.stdout.contains(&ours_hash));
        assert_eq!(
            transmission_info_hash(&ours),
            ours_hash,
            "transmission-show, {name}"
        );
        assert_eq!(libtorrent_info_hash(&ours), ours_hash, "libtorrent, {name}");

        let theirs = dir.path().join(format!("mk-{name}.torrent"));
        let mut mk = Command::new("mktorrent");
        mk.args(["-l", "16", "-a", "http://127.0.0.1:6969/announce", "-o"])
            .arg(&theirs)
            .arg(src);
        if private {
            mk.arg("-p");
        }
        run(&mut mk).ok();
        assert_eq!(
            our_info_hash(&theirs),
            ours_hash,
            "mktorrent made a different torrent of {name}"
        );
    }
}
