//! Durability across kill -9: a child process (this test binary again) writes, flushes,
//! says so, and is killed with SIGKILL while the database is still open; what it flushed
//! must be there when the parent reopens.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use ccbt_state::{StateDb, Write};
use common::{resume, torrent};

const CHILD_DIR: &str = "CCBT_STATE_CRASH_CHILD_DIR";

/// The child's side; does nothing unless started by `flushed_writes_survive_kill_9`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let opened = StateDb::open(std::path::Path::new(&dir)).unwrap();
    let w = opened.db.writer();
    for i in 0..10 {
        w.try_write(Write::upsert(torrent(i))).unwrap();
    }
    w.try_write(Write::Resume(resume(4, 77))).unwrap();
    w.flush().unwrap();
    // Queued but never flushed: may or may not survive, must not corrupt anything.
    w.try_write(Write::Remove(common::hash(0))).unwrap();
    println!("FLUSHED");
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn flushed_writes_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let flushed = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("FLUSHED"));
    child.kill().unwrap(); // SIGKILL: no destructor, no close, no checkpoint
    child.wait().unwrap();
    assert!(flushed, "child never flushed");
    assert!(
        dir.path().join("state.db-wal").exists(),
        "expected a live WAL"
    );

    let opened = StateDb::open(dir.path()).unwrap();
    assert!(opened.recovered.is_none(), "{:?}", opened.recovered);
    assert!(opened.torrents.len() >= 9);
    let t4 = opened
        .torrents
        .iter()
        .find(|t| t.record.info_hash == common::hash(4))
        .unwrap();
    assert_eq!(t4.record, torrent(4));
    assert_eq!(t4.resume, Some(resume(4, 77)));
}
