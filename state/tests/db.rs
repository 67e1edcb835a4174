//! Records in and out of a real SQLite file, batching, flush, and failing commits.

mod common;

use std::path::Path;
use std::time::Duration;

use ccbt_state::{
    StateConfig, StateDb, StateError, StoredTorrent, Write, WriteError, APPLICATION_ID,
    MAX_METAINFO_LEN, SCHEMA_VERSION,
};
use common::{hash, resume, torrent};
use rusqlite::Connection;

fn count(dir: &Path, table: &str) -> i64 {
    let conn = Connection::open(dir.join("state.db")).expect("open raw");
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn records_and_resume_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    assert!(opened.torrents.is_empty());
    assert!(opened.recovered.is_none());
    let w = opened.db.writer();
    for i in 0..8 {
        w.write_blocking(Write::upsert(torrent(i)), WAIT).unwrap();
    }
    w.try_write(Write::Resume(resume(3, 42))).unwrap();
    opened.db.close().unwrap();

    let opened = StateDb::open(dir.path()).unwrap();
    assert!(opened.recovered.is_none());
    assert_eq!(opened.skipped_rows, 0);
    let want: Vec<StoredTorrent> = (0..8)
        .map(|i| StoredTorrent {
            record: torrent(i),
            resume: (i == 3).then(|| resume(3, 42)),
        })
        .collect();
    assert_eq!(opened.torrents, want);

    let conn = Connection::open(dir.path().join("state.db")).unwrap();
    let ids: (i32, i32, String) = conn
        .query_row(
            "SELECT (SELECT application_id FROM pragma_application_id),
                    (SELECT user_version FROM pragma_user_version),
                    (SELECT journal_mode FROM pragma_journal_mode)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(ids, (APPLICATION_ID, SCHEMA_VERSION, "wal".to_string()));
    let tags: String = conn
        .query_row(
            "SELECT tags FROM torrents WHERE queue_position = 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(tags, r#"["a,b","t1","ünï \"quoted\""]"#);
}

#[test]
fn column_writes_and_upsert_keep_resume() {
    let dir = tempfile::tempdir().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    let w = opened.db.writer();
    let h = hash(1);
    w.try_write(Write::upsert(torrent(1))).unwrap();
    w.try_write(Write::Resume(resume(1, 5))).unwrap();
    let writes = [
        Write::SetPaused {
            info_hash: h,
            paused: false,
        },
        Write::SetTotals {
            info_hash: h,
            uploaded: 123,
            downloaded: u64::MAX,
        },
        Write::Completed {
            info_hash: h,
            at: Some(99),
        },
        Write::SetError {
            info_hash: h,
            error: Some("oops".into()),
        },
        Write::SetSavePath {
            info_hash: h,
            save_path: "/new".into(),
        },
        Write::SetQueuePosition {
            info_hash: h,
            position: -3,
        },
        Write::SetSettings {
            info_hash: h,
            settings: "{}".into(),
        },
        Write::SetLabels {
            info_hash: h,
            category: None,
            tags: vec![],
        },
        // Changes nothing: that torrent is not stored.
        Write::SetPaused {
            info_hash: hash(9),
            paused: true,
        },
    ];
    for write in writes {
        w.try_write(write).unwrap();
    }
    w.flush().unwrap();
    // Re-adding the same torrent replaces its record but not its resume data.
    let mut again = torrent(1);
    again.name = "renamed".into();
    w.try_write(Write::upsert(again)).unwrap();
    drop(opened);

    let opened = StateDb::open(dir.path()).unwrap();
    assert_eq!(opened.torrents.len(), 1);
    let got = &opened.torrents[0];
    assert_eq!(got.record.name, "renamed");
    assert_eq!(got.resume, Some(resume(1, 5)));

    let w = opened.db.writer();
    let mut want = torrent(1);
    want.paused = false;
    want.uploaded = 123;
    want.downloaded = i64::MAX as u64; // saturated into SQLite's INTEGER
    want.completed_at = Some(99);
    want.error = Some("oops".into());
    want.save_path = "/new".into();
    want.queue_position = -3;
    want.settings = "{}".into();
    want.category = None;
    want.tags = vec![];
    w.try_write(Write::upsert(torrent(1))).unwrap();
    for write in [
        Write::SetPaused {
            info_hash: h,
            paused: false,
        },
        Write::SetTotals {
            info_hash: h,
            uploaded: 123,
            downloaded: u64::MAX,
        },
        Write::Completed {
            info_hash: h,
            at: Some(99),
        },
        Write::SetError {
            info_hash: h,
            error: Some("oops".into()),
        },
        Write::SetSavePath {
            info_hash: h,
            save_path: "/new".into(),
        },
        Write::SetQueuePosition {
            info_hash: h,
            position: -3,
        },
        Write::SetSettings {
            info_hash: h,
            settings: "{}".into(),
        },
        Write::SetLabels {
            info_hash: h,
            category: None,
            tags: vec![],
        },
    ] {
        w.try_write(write).unwrap();
    }
    opened.db.close().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    assert_eq!(opened.torrents[0].record, want);
}

#[test]
fn remove_cascades_to_resume_and_late_resume_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    let w = opened.db.writer();
    w.try_write(Write::upsert(torrent(1))).unwrap();
    w.try_write(Write::upsert(torrent(2))).unwrap();
    w.try_write(Write::Resume(resume(1, 1))).unwrap();
    w.try_write(Write::Resume(resume(2, 1))).unwrap();
    w.flush().unwrap();
    assert_eq!(count(dir.path(), "resume"), 2);

    w.try_write(Write::Remove(hash(1))).unwrap();
    w.flush().unwrap();
    assert_eq!(count(dir.path(), "torrents"), 1);
    assert_eq!(count(dir.path(), "resume"), 1);

    // A snapshot that lost the race with the remove must not fail the batch.
    w.try_write(Write::Resume(resume(1, 2))).unwrap();
    w.try_write(Write::SetPaused {
        info_hash: hash(2),
        paused: false,
    })
    .unwrap();
    w.flush().unwrap();
    assert_eq!(count(dir.path(), "resume"), 1);
    assert_eq!(w.stats().failed_commits, 0);
    assert!(w.last_error().is_none());
}

#[test]
fn burst_of_resume_writes_is_one_row_and_few_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    let w = opened.db.writer();
    w.try_write(Write::upsert(torrent(1))).unwrap();
    w.flush().unwrap();
    let before = w.stats();
    assert_eq!(before.commits, 1);
    for t in 0..1000 {
        w.try_write(Write::Resume(resume(1, t))).unwrap();
    }
    w.flush().unwrap();
    let after = w.stats();
    // The burst lands in one batch unless the 1 s deadline split it.
    assert!(after.commits - before.commits <= 2, "{after:?}");
    assert!(after.writes_coalesced >= 998, "{after:?}");
    assert_eq!(count(dir.path(), "resume"), 1);
    let conn = Connection::open(dir.path().join("state.db")).unwrap();
    let latest: i64 = conn
        .query_row("SELECT updated_at FROM resume", [], |r| r.get(0))
        .unwrap();
    assert_eq!(latest, 999);
}

#[test]
fn writes_wait_for_their_batch_and_flush_commits_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = StateConfig {
        max_delay: Duration::from_secs(5),
        ..StateConfig::default()
    };
    let opened = StateDb::open_with(dir.path(), config).unwrap();
    let w = opened.db.writer();
    w.try_write(Write::upsert(torrent(1))).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        count(dir.path(), "torrents"),
        0,
        "committed before its batch was due"
    );
    w.flush().unwrap();
    assert_eq!(count(dir.path(), "torrents"), 1);
    // Flush with nothing pending is a no-op, not a transaction.
    let commits = w.stats().commits;
    w.flush().unwrap();
    assert_eq!(w.stats().commits, commits);
}

#[test]
fn batch_commits_by_itself_after_max_delay() {
    let dir = tempfile::tempdir().unwrap();
    let config = StateConfig {
        max_delay: Duration::from_millis(100),
        ..StateConfig::default()
    };
    let opened = StateDb::open_with(dir.path(), config).unwrap();
    let w = opened.db.writer();
    w.try_write(Write::upsert(torrent(1))).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while count(dir.path(), "torrents") == 0 {
        assert!(std::time::Instant::now() < deadline, "never committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(w.stats().commits, 1);
}

#[test]
fn refuses_oversized_metainfo_and_bad_bitfields() {
    let dir = tempfile::tempdir().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    let w = opened.db.writer();
    let mut big = torrent(1);
    big.metainfo = vec![0; MAX_METAINFO_LEN + 1];
    match w.try_write(Write::upsert(big)) {
        Err(WriteError::MetainfoTooLarge { len, max, .. }) => {
            assert_eq!((len, max), (MAX_METAINFO_LEN + 1, MAX_METAINFO_LEN));
        }
        other => panic!("{other:?}"),
    }
    let mut bad = resume(1, 0);
    bad.piece_count = 100;
    assert!(matches!(
        w.write_blocking(Write::Resume(bad), WAIT),
        Err(WriteError::BadResume { .. })
    ));
}

/// Holds SQLite's write lock from a second connection, as an operator's `sqlite3`
/// inside `BEGIN IMMEDIATE` would: the writer's commits fail as busy meanwhile.
fn hold_write_lock(dir: &Path) -> Connection {
    let conn = Connection::open(dir.join("state.db")).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    conn
}

#[test]
fn failed_commit_is_reported_kept_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let config = StateConfig {
        busy_timeout: Duration::from_millis(100),
        retry_delay: Duration::from_millis(100),
        ..StateConfig::default()
    };
    let opened = StateDb::open_with(dir.path(), config).unwrap();
    let w = opened.db.writer();
    let lock = hold_write_lock(dir.path());
    w.try_write(Write::upsert(torrent(1))).unwrap();
    match w.flush() {
        Err(StateError::Commit { path, message }) => {
            assert_eq!(path, dir.path().join("state.db"));
            assert!(message.contains("locked"), "{message}");
        }
        other => panic!("flush claimed {other:?} while commits fail"),
    }
    assert!(w.last_error().is_some());
    assert!(w.stats().failed_commits >= 1);
    // The thread is alive and still takes writes.
    w.try_write(Write::upsert(torrent(2))).unwrap();
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    w.flush().unwrap();
    assert!(w.last_error().is_none());
    assert_eq!(count(dir.path(), "torrents"), 2);
}

#[test]
fn full_queue_hands_the_write_back() {
    let dir = tempfile::tempdir().unwrap();
    let config = StateConfig {
        queue_len: 2,
        busy_timeout: Duration::from_secs(3),
        ..StateConfig::default()
    };
    let opened = StateDb::open_with(dir.path(), config).unwrap();
    let w = opened.db.writer();
    let lock = hold_write_lock(dir.path());
    // The writer thread gets stuck committing this batch, waiting for the lock.
    w.try_write(Write::upsert(torrent(1))).unwrap();
    let flusher = {
        let w = w.clone();
        std::thread::spawn(move || w.flush())
    };
    // Let the writer take the flush and start waiting on the lock.
    std::thread::sleep(Duration::from_millis(300));
    let mut full = None;
    for t in 0..1000 {
        match w.try_write(Write::Resume(resume(1, t))) {
            Ok(()) => {}
            Err(WriteError::Full(back)) => {
                full = Some((t, back));
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let (t, back) = full.expect("queue never filled");
    assert_eq!(t, 2, "the queue holds exactly queue_len writes");
    assert_eq!(back, Write::Resume(resume(1, t)));
    assert!(matches!(
        w.write_blocking(back, Duration::from_millis(10)),
        Err(WriteError::Timeout(_))
    ));
    lock.execute_batch("ROLLBACK").unwrap();
    drop(lock);
    flusher.join().unwrap().unwrap();
    w.flush().unwrap();
    assert_eq!(count(dir.path(), "torrents"), 1);
}

#[test]
fn closed_writer_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    let w = opened.db.writer();
    opened.db.close().unwrap();
    assert!(matches!(
        w.try_write(Write::Remove(hash(1))),
        Err(WriteError::Closed(Write::Remove(_)))
    ));
    assert!(matches!(w.flush(), Err(StateError::WriterGone { .. })));
}

#[test]
fn sqlite3_cli_reads_the_live_database() {
    let cli = Path::new("/usr/bin/sqlite3");
    if !cli.exists() {
        eprintln!("skipped: no /usr/bin/sqlite3");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let opened = StateDb::open(dir.path()).unwrap();
    let w = opened.db.writer();
    for i in 0..3 {
        w.try_write(Write::upsert(torrent(i))).unwrap();
    }
    w.flush().unwrap();
    // While the daemon still has it open, as an operator would look at it.
    let out = std::process::Command::new(cli)
        .arg(dir.path().join("state.db"))
        .arg("select count(*) from torrents")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
}
