//! Damaged and foreign files: detected, moved aside with their WAL, salvaged where they
//! still read, and reported in `Opened.recovered`.

mod common;

use std::path::{Path, PathBuf};

use ccbt_state::{Opened, RecoveryKind, StateDb, Write};
use common::{resume, torrent};
use rusqlite::Connection;

/// A database of `n` torrents with big metainfo (so it spans many pages), closed.
fn populated(dir: &Path, n: u8) {
    let opened = StateDb::open(dir).unwrap();
    let w = opened.db.writer();
    for i in 0..n {
        let mut t = torrent(i);
        t.metainfo = vec![i; 6000];
        w.try_write(Write::upsert(t)).unwrap();
        w.try_write(Write::Resume(resume(i, 1))).unwrap();
    }
    opened.db.close().unwrap();
}

fn db(dir: &Path) -> PathBuf {
    dir.join("state.db")
}

/// Opens, checks the report names the file and the new place, and that the fresh
/// database works.
fn open_expecting(dir: &Path, kind: RecoveryKind) -> Opened {
    let opened = StateDb::open(dir).expect("open recovers instead of failing");
    let rec = opened.recovered.clone().expect("recovery reported");
    assert_eq!(rec.kind, kind, "{rec:?}");
    assert_eq!(rec.path, db(dir));
    let name = rec
        .moved_to
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with(&format!("state.db.{}-", kind.suffix())),
        "{name}"
    );
    assert!(rec.moved_to.exists());
    assert!(!rec.reason.is_empty());
    assert_eq!(rec.salvaged, opened.torrents.len());
    // The fresh file takes writes, and opens cleanly afterwards.
    let w = opened.db.writer();
    w.try_write(Write::upsert(torrent(200))).unwrap();
    w.flush().unwrap();
    opened
}

fn reopen_clean(dir: &Path) -> usize {
    let again = StateDb::open(dir).unwrap();
    assert!(again.recovered.is_none());
    again.torrents.len()
}

#[test]
fn random_bytes_are_moved_aside_and_nothing_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    // A fixed xorshift stream: random-looking, and the same on every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let garbage: Vec<u8> = (0..16384)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(db(dir.path()), &garbage).unwrap();
    std::fs::write(dir.path().join("state.db-wal"), b"stale wal").unwrap();

    let opened = open_expecting(dir.path(), RecoveryKind::Damaged);
    let rec = opened.recovered.as_ref().unwrap();
    assert!(
        rec.reason.contains("not a SQLite database"),
        "{}",
        rec.reason
    );
    assert_eq!(rec.salvaged, 0);
    assert_eq!(std::fs::read(&rec.moved_to).unwrap(), garbage);
    let mut wal = rec.moved_to.clone().into_os_string();
    wal.push("-wal");
    assert_eq!(std::fs::read(wal).unwrap(), b"stale wal");
    drop(opened);
    assert_eq!(reopen_clean(dir.path()), 1);
}

#[test]
fn short_file_is_damaged() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(db(dir.path()), b"SQLite format 3\0abc").unwrap();
    let opened = open_expecting(dir.path(), RecoveryKind::Damaged);
    assert!(opened.torrents.is_empty());
}

#[test]
fn truncated_file_is_moved_aside_and_intact_rows_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 60);
    let path = db(dir.path());
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 100_000, "too small to truncate meaningfully: {len}");
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);

    let opened = open_expecting(dir.path(), RecoveryKind::Damaged);
    let rec = opened.recovered.clone().unwrap();
    eprintln!("truncated: {rec:?}");
    // Rows on the surviving half still read; the rest were lost with it.
    assert!(rec.salvaged > 0 && rec.salvaged < 60, "{rec:?}");
    // Whatever was salvaged is exactly what was stored.
    for t in &opened.torrents {
        let i = t.record.info_hash[1];
        let mut want = torrent(i);
        want.metainfo = vec![i; 6000];
        assert_eq!(t.record, want);
        if let Some(r) = &t.resume {
            assert_eq!(r, &resume(i, 1));
        }
    }
    let salvaged = rec.salvaged;
    drop(opened);
    assert_eq!(reopen_clean(dir.path()), salvaged + 1);
}

#[test]
fn corrupted_page_fails_the_check() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 60);
    let path = db(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    // Scribble over the second page (the first table's root or an interior page).
    for b in &mut bytes[4096..4096 + 200] {
        *b = 0xee;
    }
    std::fs::write(&path, &bytes).unwrap();
    let opened = open_expecting(dir.path(), RecoveryKind::Damaged);
    eprintln!("corrupted: {:?}", opened.recovered);
}

#[test]
fn foreign_application_id_is_moved_aside_unread() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(db(dir.path())).unwrap();
        conn.execute_batch(
            "PRAGMA application_id = 0x12345678;
             CREATE TABLE torrents (info_hash BLOB);
             INSERT INTO torrents VALUES (x'00');",
        )
        .unwrap();
    }
    let opened = open_expecting(dir.path(), RecoveryKind::Foreign);
    let rec = opened.recovered.as_ref().unwrap();
    assert!(rec.reason.contains("0x12345678"), "{}", rec.reason);
    assert_eq!(rec.salvaged, 0);
}

#[test]
fn our_rows_without_application_id_are_salvaged() {
    // As after an operator's `sqlite3 .dump` and restore, which drops the id.
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 3);
    {
        let conn = Connection::open(db(dir.path())).unwrap();
        conn.execute_batch("PRAGMA application_id = 0").unwrap();
    }
    let opened = open_expecting(dir.path(), RecoveryKind::Foreign);
    assert_eq!(opened.recovered.as_ref().unwrap().salvaged, 3);
    assert!(opened.torrents.iter().all(|t| t.resume.is_some()));
}

#[test]
fn newer_schema_is_moved_aside_and_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 5);
    {
        let conn = Connection::open(db(dir.path())).unwrap();
        conn.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let opened = open_expecting(dir.path(), RecoveryKind::Newer);
    let rec = opened.recovered.as_ref().unwrap();
    assert!(rec.reason.contains("99"), "{}", rec.reason);
    assert_eq!(rec.salvaged, 5);
    // The moved file is untouched: still version 99.
    let conn = Connection::open(&rec.moved_to).unwrap();
    let v: i32 = conn
        .query_row("SELECT user_version FROM pragma_user_version", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(v, 99);
}

#[test]
fn empty_file_is_just_a_new_database() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(db(dir.path()), b"").unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    assert!(opened.recovered.is_none());
    assert!(opened.torrents.is_empty());
}

#[test]
fn undecodable_rows_are_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 2);
    {
        let conn = Connection::open(db(dir.path())).unwrap();
        conn.execute_batch(
            "UPDATE torrents SET tags = 'not json' WHERE queue_position = 0;
             UPDATE resume SET files = x'0102' WHERE info_hash = (SELECT info_hash FROM torrents WHERE queue_position = 1);",
        )
        .unwrap();
    }
    let opened = StateDb::open(dir.path()).unwrap();
    assert!(opened.recovered.is_none());
    assert_eq!(opened.skipped_rows, 2);
    assert_eq!(opened.torrents.len(), 1);
    assert!(opened.torrents[0].resume.is_none());
}

#[test]
fn orphan_wal_is_moved_aside_before_a_fresh_start() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path(), 2);
    // Leave a WAL with frames in it, then lose the database file.
    let keep = StateDb::open(dir.path()).unwrap();
    let w = keep.db.writer();
    w.try_write(Write::upsert(torrent(9))).unwrap();
    w.flush().unwrap();
    let wal = dir.path().join("state.db-wal");
    let saved = std::fs::read(&wal).unwrap();
    drop(keep);
    std::fs::remove_file(db(dir.path())).unwrap();
    std::fs::write(&wal, &saved).unwrap();

    let opened = StateDb::open(dir.path()).unwrap();
    let rec = opened.recovered.clone().expect("orphan WAL reported");
    assert_eq!(rec.kind, RecoveryKind::Damaged);
    assert!(rec.reason.contains("-wal"), "{}", rec.reason);
    assert!(opened.torrents.is_empty());
    let mut moved_wal = rec.moved_to.into_os_string();
    moved_wal.push("-wal");
    assert_eq!(std::fs::read(moved_wal).unwrap(), saved);
}
