//! `download` options against a ccbt-uring seeder on 127.0.0.1: `--only` fetches just the
//! chosen files, `--sequential` still completes, a second run over complete data exits at
//! once, and data already on disk is kept (resume).

mod common;

use std::path::Path;
use std::time::Duration;

use common::swarm::{self, free_port, wait_listening, Running};
use common::{ccbt, run, write_tree};

const FILES: &[(&str, usize)] = &[
    ("set/a.bin", 700_001),
    ("set/b.bin", 65_536),
    ("set/c.bin", 1_300_000),
];

struct Seeded {
    dir: tempfile::TempDir,
    _seeder: Running,
    seed_addr: String,
}

fn seeded() -> Seeded {
    let dir = tempfile::tempdir().unwrap();
    write_tree(&dir.path().join("data"), FILES);
    run(ccbt()
        .args(["create", "--no-date", "--piece-size", "64K", "-o"])
        .arg(dir.path().join("t.torrent"))
        .arg(dir.path().join("data/set")))
    .ok();
    let port = free_port();
    let seeder = swarm::ccbt_seed(
        &dir.path().join("t.torrent"),
        &dir.path().join("data"),
        port,
        1,
    );
    wait_listening(port, &seeder);
    Seeded {
        dir,
        _seeder: seeder,
        seed_addr: format!("127.0.0.1:{port}"),
    }
}

fn download(s: &Seeded, out: &Path, extra: &[&str]) -> Running {
    let mut args = vec!["--peer", s.seed_addr.as_str()];
    args.extend(extra);
    swarm::ccbt_swarm(
        "download",
        &s.dir.path().join("t.torrent"),
        out,
        free_port(),
        1,
        &args,
    )
}

fn same_file(s: &Seeded, out: &Path, name: &str) -> bool {
    std::fs::read(out.join(name)).ok() == std::fs::read(s.dir.path().join("data").join(name)).ok()
}

#[test]
fn only_fetches_the_chosen_files() {
    let s = seeded();
    let out = s.dir.path().join("out");
    download(&s, &out, &["--only", "2"]).wait_success(Duration::from_secs(30));
    assert!(same_file(&s, &out, "set/c.bin"));
    assert!(
        !same_file(&s, &out, "set/a.bin"),
        "file 0 was not asked for"
    );
    let verify = run(ccbt()
        .arg("verify")
        .arg(s.dir.path().join("t.torrent"))
        .arg("--data")
        .arg(&out));
    assert_eq!(verify.code, Some(1), "the skipped files are incomplete");
}

#[test]
fn sequential_completes_and_a_second_run_finds_everything_done() {
    let s = seeded();
    let out = s.dir.path().join("out");
    download(&s, &out, &["--sequential"]).wait_success(Duration::from_secs(30));
    for (name, _) in FILES {
        assert!(same_file(&s, &out, name), "{name}");
    }
    let mut again = download(&s, &out, &[]);
    again.wait_success(Duration::from_secs(30));
    assert!(again.log().contains("downloaded 0 B"), "{}", again.log());
}

#[test]
fn only_refuses_a_file_index_out_of_range() {
    let s = seeded();
    let ran = run(ccbt()
        .arg("download")
        .arg(s.dir.path().join("t.torrent"))
        .arg("-o")
        .arg(s.dir.path().join("out"))
        .args(["--only", "3"]));
    assert_eq!(ran.code, Some(3), "{}", ran.stderr);
    assert!(ran.stderr.contains("files 0 to 2"), "{}", ran.stderr);
}
