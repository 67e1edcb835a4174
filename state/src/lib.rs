//! ccbt-state: the seedbox daemon's crash-safe state database.
//!
//! Every torrent's record (its `.torrent` bytes, save path, labels, totals, ...) and its
//! resume data (verified pieces, file stamps), and the qBittorrent API's categories and
//! tags live in one SQLite file, `<dir>/state.db`,
//! in WAL mode, so an operator can read it with the `sqlite3` CLI while the daemon runs.
//!
//! - [`StateDb::open`] checks the file, moves a damaged or foreign one aside (salvaging
//!   what still reads), migrates the schema, and returns everything stored.
//! - Writes go through [`StateWriter`] to one writer thread over a bounded queue: shards
//!   never block ([`StateWriter::try_write`] hands a write back when the queue is full),
//!   and the thread commits one transaction per batch, at most
//!   [`StateConfig::max_delay`] after the batch's first write, coalescing resume
//!   snapshots per torrent. A commit that has returned survives kill -9 (and power loss:
//!   `synchronous=FULL`); [`StateWriter::flush`] waits for one.
//!
//! It does not parse `.torrent` files, check pieces, decide what to recheck, or know the
//! engine's types: it stores raw bytes and plain values, and the daemon gives them
//! meaning. One process should open a directory at a time; nothing here locks it.

mod error;
mod records;
mod recover;
mod schema;
mod store;
mod writer;

use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

pub use error::{StateError, WriteError};
pub use records::{
    bitfield_problem, decode_files, decode_tags, encode_files, encode_tags, CategoryRecord,
    FileStamp, InfoHash, ResumeRecord, StoredTorrent, TorrentRecord, MAX_METAINFO_LEN,
};
pub use recover::{Recovery, RecoveryKind};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use writer::{StateConfig, StateWriter, Write, WriterStats, MAX_DELAY_CAP};

use recover::Verdict;
use schema::{connect, sql};

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "state.db";

/// The open state database: owns the writer thread, which `close` (or drop) flushes
/// and joins.
pub struct StateDb {
    writer: StateWriter,
    thread: Option<JoinHandle<()>>,
    path: PathBuf,
}

/// What [`StateDb::open`] found.
pub struct Opened {
    pub db: StateDb,
    /// Every stored torrent, by queue position, with its resume data if it has any.
    pub torrents: Vec<StoredTorrent>,
    /// The stored categories, by name.
    pub categories: Vec<CategoryRecord>,
    /// The stored tags, by name.
    pub tags: Vec<String>,
    /// Rows that did not decode (hand-edited into nonsense) and were left out; a torrent
    /// whose resume data is bad is returned without it instead.
    pub skipped_rows: usize,
    /// Set when the file found was damaged, foreign or newer and was moved aside.
    pub recovered: Option<Recovery>,
}

impl StateDb {
    /// Opens `dir/state.db` with the default [`StateConfig`], creating `dir` and the file
    /// if needed.
    pub fn open(dir: &Path) -> Result<Opened, StateError> {
        Self::open_with(dir, StateConfig::default())
    }

    pub fn open_with(dir: &Path, config: StateConfig) -> Result<Opened, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.to_owned(),
            op: "create state directory",
            source,
        })?;
        let path = dir.join(DB_FILE);
        let (conn, recovered, salvaged): (_, _, store::Loaded) = match recover::inspect(
            &path,
            config.busy_timeout,
        )? {
            Verdict::Healthy(conn) => (conn, None, store::Loaded::default()),
            Verdict::Absent => (
                connect(&path, true, config.busy_timeout)?,
                None,
                store::Loaded::default(),
            ),
            Verdict::Bad {
                kind,
                reason,
                salvage,
            } => {
                tracing::warn!(path = %path.display(), %kind, %reason, "state database unusable");
                let moved_to = recover::move_aside(&path, kind)?;
                let loaded = if salvage {
                    recover::salvage(&moved_to)
                } else {
                    store::Loaded::default()
                };
                let recovery = Recovery {
                    path: path.clone(),
                    moved_to,
                    kind,
                    reason,
                    salvaged: loaded.torrents.len(),
                    skipped: loaded.skipped,
                };
                let conn = connect(&path, true, config.busy_timeout)?;
                (conn, Some(recovery), loaded)
            }
        };
        let mut conn = conn;
        schema::set_durability(&conn, &path)?;
        schema::migrate(&mut conn, &path)?;
        if !salvaged.torrents.is_empty() || !salvaged.categories.is_empty() {
            store::insert_all(&mut conn, &salvaged)
                .map_err(sql(&path, "store salvaged rows in"))?;
        }
        let loaded = store::load(&conn, false).map_err(sql(&path, "read"))?;
        if loaded.skipped > 0 {
            tracing::warn!(path = %path.display(), rows = loaded.skipped, "undecodable rows skipped");
        }
        let (writer, thread) = writer::spawn(conn, path.clone(), &config)?;
        Ok(Opened {
            db: StateDb {
                writer,
                thread: Some(thread),
                path,
            },
            torrents: loaded.torrents,
            categories: loaded.categories,
            tags: loaded.tags,
            skipped_rows: loaded.skipped,
            recovered,
        })
    }

    /// A handle to send writes with; clone it freely.
    pub fn writer(&self) -> StateWriter {
        self.writer.clone()
    }

    /// The database file (`<dir>/state.db`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// See [`StateWriter::flush`].
    pub fn flush(&self) -> Result<(), StateError> {
        self.writer.flush()
    }

    /// Commits what is queued and stops the writer thread. If that last commit fails,
    /// its writes are lost (and logged) and the error is returned. Writers still held
    /// elsewhere get [`WriteError::Closed`] afterwards.
    pub fn close(mut self) -> Result<(), StateError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StateError> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let result = self.writer.close();
        if thread.join().is_err() {
            tracing::error!(path = %self.path.display(), "state writer thread panicked");
            return Err(StateError::WriterGone {
                path: self.path.clone(),
            });
        }
        result
    }
}

impl Drop for StateDb {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "closing the state database failed");
        }
    }
}
