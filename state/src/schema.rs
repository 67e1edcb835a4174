//! The schema, its version, and how a connection is set up. One migration function per
//! schema version; `user_version` says which have run.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::StateError;

/// `PRAGMA application_id` of our databases: "ccbt" in ASCII. Lets us (and `file(1)`)
/// tell our file from any other SQLite file put in its place.
pub const APPLICATION_ID: i32 = 0x6363_6274;

/// `PRAGMA user_version` this build writes; a newer one on disk is not ours to touch.
pub const SCHEMA_VERSION: i32 = 2;

/// Migration `i` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: [fn(&rusqlite::Transaction) -> rusqlite::Result<()>; SCHEMA_VERSION as usize] =
    [v1, v2];

/// Version 1: torrents and their resume data. The CHECKs keep rows an operator edits by
/// hand with `sqlite3` decodable; the cascade means removing a torrent never leaves
/// resume data behind.
fn v1(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE torrents (
            info_hash      BLOB PRIMARY KEY CHECK (typeof(info_hash) = 'blob' AND length(info_hash) = 20),
            metainfo       BLOB NOT NULL,
            name           TEXT NOT NULL,
            save_path      TEXT NOT NULL,
            category       TEXT,
            tags           TEXT NOT NULL DEFAULT '[]',
            added_at       INTEGER NOT NULL,
            completed_at   INTEGER,
            paused         INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
            queue_position INTEGER NOT NULL DEFAULT 0,
            settings       TEXT NOT NULL DEFAULT '{}',
            uploaded       INTEGER NOT NULL DEFAULT 0,
            downloaded     INTEGER NOT NULL DEFAULT 0,
            error          TEXT
        );
        CREATE TABLE resume (
            info_hash   BLOB PRIMARY KEY REFERENCES torrents (info_hash) ON DELETE CASCADE,
            piece_count INTEGER NOT NULL,
            have        BLOB NOT NULL,
            files       BLOB NOT NULL,
            updated_at  INTEGER NOT NULL
        );",
    )
}

/// Version 2: the qBittorrent API's categories (a name and an optional save path) and
/// its tags, which exist on their own before any torrent carries them. A torrent keeps its
/// category's name in `torrents.category`; removing a category does not touch torrents
/// (the daemon clears theirs first).
fn v2(tx: &rusqlite::Transaction) -> rusqlite::Result<()> {
    tx.execute_batch(
        "CREATE TABLE categories (
            name      TEXT PRIMARY KEY CHECK (typeof(name) = 'text' AND length(name) > 0),
            save_path TEXT NOT NULL DEFAULT ''
        );
        CREATE TABLE tags (
            name TEXT PRIMARY KEY CHECK (typeof(name) = 'text' AND length(name) > 0)
        );",
    )
}

/// Opens (creating if `create`) `path` and sets what every connection of ours needs:
/// foreign keys for the cascade, a busy timeout so an operator's `sqlite3` holding a
/// lock on the file does not make a commit fail at once.
pub fn connect(
    path: &Path,
    create: bool,
    busy_timeout: Duration,
) -> Result<Connection, StateError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags).map_err(sql(path, "open"))?;
    conn.busy_timeout(busy_timeout)
        .map_err(sql(path, "set busy timeout on"))?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(sql(path, "enable foreign keys on"))?;
    Ok(conn)
}

/// WAL with `synchronous=FULL`: every commit fsyncs the WAL before it returns, so a
/// committed batch survives kill -9 and power loss alike. (NORMAL would survive kill -9
/// too, since the WAL write is in the page cache, but could lose the last batches on
/// power loss; with one commit per batch the extra fsync is cheap.)
pub fn set_durability(conn: &Connection, path: &Path) -> Result<(), StateError> {
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sql(path, "set WAL mode on"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StateError::NoWal {
            path: path.to_owned(),
            mode,
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sql(path, "set synchronous=FULL on"))?;
    Ok(())
}

/// Runs the migrations from the file's `user_version` up to [`SCHEMA_VERSION`] and
/// stamps [`APPLICATION_ID`], all in one transaction: a crash leaves the old version.
/// The caller has checked the version is not newer than ours.
pub fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StateError> {
    let tx = conn
        .transaction()
        .map_err(sql(path, "begin migration of"))?;
    let from: i32 = tx
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(sql(path, "read user_version of"))?;
    let from = usize::try_from(from).unwrap_or(0);
    for (version, step) in MIGRATIONS.iter().enumerate().skip(from) {
        step(&tx).map_err(sql(path, "migrate"))?;
        tracing::info!(path = %path.display(), version = version + 1, "state schema migrated");
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(sql(path, "set application_id of"))?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(sql(path, "set user_version of"))?;
    tx.commit().map_err(sql(path, "commit migration of"))
}

/// Maps a SQLite error to [`StateError::Sql`] naming `path` and `op`.
pub fn sql<'a>(
    path: &'a Path,
    op: &'static str,
) -> impl FnOnce(rusqlite::Error) -> StateError + 'a {
    move |source| StateError::Sql {
        path: path.to_owned(),
        op,
        source,
    }
}
