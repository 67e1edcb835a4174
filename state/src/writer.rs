//! The writer thread: one SQLite connection, fed through a bounded queue, committing one
//! transaction per batch. Shards hand it writes without ever blocking; the control plane
//! may wait on it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam::channel::{
    self, Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError,
};
use rusqlite::{Connection, ErrorCode, TransactionBehavior};

use crate::records::{bitfield_problem, MAX_METAINFO_LEN};
use crate::{store, CategoryRecord, InfoHash, ResumeRecord, StateError, TorrentRecord, WriteError};

/// One change to the stored state. Column updates on a torrent that is not stored (it
/// was removed meanwhile) change nothing and are not errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// Adds the torrent, or replaces every column of its record (its resume data stays).
    /// Boxed: a record is several times the size of every other write.
    Upsert(Box<TorrentRecord>),
    /// Replaces the torrent's resume data. Within a batch the latest per torrent wins.
    Resume(ResumeRecord),
    /// Removes the torrent and, by cascade, its resume data.
    Remove(InfoHash),
    SetPaused {
        info_hash: InfoHash,
        paused: bool,
    },
    SetTotals {
        info_hash: InfoHash,
        uploaded: u64,
        downloaded: u64,
    },
    /// Unix seconds it completed; `None` clears it (a recheck found pieces missing).
    Completed {
        info_hash: InfoHash,
        at: Option<i64>,
    },
    /// `None` clears the error.
    SetError {
        info_hash: InfoHash,
        error: Option<String>,
    },
    SetSavePath {
        info_hash: InfoHash,
        save_path: String,
    },
    SetQueuePosition {
        info_hash: InfoHash,
        position: i64,
    },
    /// The per-torrent overrides, a JSON object stored as given.
    SetSettings {
        info_hash: InfoHash,
        settings: String,
    },
    SetLabels {
        info_hash: InfoHash,
        category: Option<String>,
        tags: Vec<String>,
    },
    /// Adds the category or replaces its save path.
    SetCategory(CategoryRecord),
    /// Forgets the category (torrents keep whatever name they hold).
    RemoveCategory(String),
    AddTag(String),
    RemoveTag(String),
}

impl Write {
    /// `Write::Upsert` without spelling the box.
    pub fn upsert(record: TorrentRecord) -> Write {
        Write::Upsert(Box::new(record))
    }

    /// Refuses what could never be stored usefully, before it takes a queue slot.
    fn check(&self) -> Result<(), WriteError> {
        match self {
            Write::Upsert(t) if t.metainfo.len() > MAX_METAINFO_LEN => {
                Err(WriteError::MetainfoTooLarge {
                    info_hash: t.info_hash,
                    len: t.metainfo.len(),
                    max: MAX_METAINFO_LEN,
                })
            }
            Write::Resume(r) => match bitfield_problem(r.piece_count, &r.have) {
                Some(reason) => Err(WriteError::BadResume {
                    info_hash: r.info_hash,
                    reason,
                }),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// Longest `max_delay` accepted: a crash loses at most this much unflushed state.
pub const MAX_DELAY_CAP: Duration = Duration::from_secs(5);

/// How the state database batches and bounds its writes.
#[derive(Clone, Debug)]
pub struct StateConfig {
    /// A batch is committed at most this long after its first write arrived (default
    /// 1 s; capped at [`MAX_DELAY_CAP`]). Longer batches mean fewer fsyncs, but a crash
    /// loses whatever was not yet committed (resume data is then just older).
    pub max_delay: Duration,
    /// Bound of the write queue (default 4096, at least 1). When it is full,
    /// [`StateWriter::try_write`] hands the write back instead of blocking.
    pub queue_len: usize,
    /// After a failed commit (disk full, I/O error, lock held too long) the batch is
    /// kept and retried this long after (default 1 s), or at the next `flush`.
    pub retry_delay: Duration,
    /// How long SQLite waits for a lock another process (an operator's `sqlite3`) holds
    /// before a statement fails as busy (default 5 s).
    pub busy_timeout: Duration,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            max_delay: Duration::from_secs(1),
            queue_len: 4096,
            retry_delay: Duration::from_secs(1),
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// Counters of the writer thread since open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed (one per batch that had writes).
    pub commits: u64,
    /// Commit attempts that failed (the batch was kept).
    pub failed_commits: u64,
    /// Writes committed, after coalescing.
    pub writes_committed: u64,
    /// Resume writes replaced by a newer one for the same torrent in the same batch.
    pub writes_coalesced: u64,
    /// Writes SQLite refused on their own (a constraint), logged and left out.
    pub writes_dropped: u64,
}

pub(crate) enum Msg {
    Write(Write),
    Flush(Sender<Result<(), StateError>>),
    Close(Sender<Result<(), StateError>>),
}

#[derive(Default)]
struct Shared {
    commits: AtomicU64,
    failed_commits: AtomicU64,
    writes_committed: AtomicU64,
    writes_coalesced: AtomicU64,
    writes_dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A handle for sending writes to the state database's writer thread. Cheap to clone;
/// every shard and the control plane can hold one.
#[derive(Clone)]
pub struct StateWriter {
    tx: Sender<Msg>,
    shared: Arc<Shared>,
    path: Arc<PathBuf>,
}

impl StateWriter {
    /// Queues `write` without blocking. `Err(Full(write))` when the queue is at its
    /// bound: a resume snapshot can simply be dropped and a newer one sent later.
    pub fn try_write(&self, write: Write) -> Result<(), WriteError> {
        write.check()?;
        self.tx.try_send(Msg::Write(write)).map_err(|e| match e {
            TrySendError::Full(Msg::Write(w)) => WriteError::Full(w),
            TrySendError::Disconnected(Msg::Write(w)) => WriteError::Closed(w),
            _ => unreachable!("only writes are sent here"),
        })
    }

    /// Queues `write`, waiting up to `timeout` for room: for the control plane, whose
    /// writes (add, remove, pause) must not be dropped.
    pub fn write_blocking(&self, write: Write, timeout: Duration) -> Result<(), WriteError> {
        write.check()?;
        self.tx
            .send_timeout(Msg::Write(write), timeout)
            .map_err(|e| match e {
                SendTimeoutError::Timeout(Msg::Write(w)) => WriteError::Timeout(w),
                SendTimeoutError::Disconnected(Msg::Write(w)) => WriteError::Closed(w),
                _ => unreachable!("only writes are sent here"),
            })
    }

    /// Blocks until every write this thread sent before the call is committed, and
    /// returns the commit error if that batch could not be committed (it stays queued
    /// and is retried; a later `flush` can succeed).
    pub fn flush(&self) -> Result<(), StateError> {
        let (reply, done) = channel::bounded(1);
        self.tx.send(Msg::Flush(reply)).map_err(|_| self.gone())?;
        done.recv().map_err(|_| self.gone())?
    }

    /// SQLite's message for the last failed commit, until a commit succeeds again.
    pub fn last_error(&self) -> Option<String> {
        self.shared
            .last_error
            .lock()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    pub fn stats(&self) -> WriterStats {
        let s = &self.shared;
        WriterStats {
            commits: s.commits.load(Ordering::Relaxed),
            failed_commits: s.failed_commits.load(Ordering::Relaxed),
            writes_committed: s.writes_committed.load(Ordering::Relaxed),
            writes_coalesced: s.writes_coalesced.load(Ordering::Relaxed),
            writes_dropped: s.writes_dropped.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn close(&self) -> Result<(), StateError> {
        let (reply, done) = channel::bounded(1);
        self.tx.send(Msg::Close(reply)).map_err(|_| self.gone())?;
        done.recv().map_err(|_| self.gone())?
    }

    fn gone(&self) -> StateError {
        StateError::WriterGone {
            path: self.path.to_path_buf(),
        }
    }
}

/// Starts the writer thread on `conn`; the caller joins the handle after `close`.
pub(crate) fn spawn(
    conn: Connection,
    path: PathBuf,
    config: &StateConfig,
) -> Result<(StateWriter, std::thread::JoinHandle<()>), StateError> {
    let (tx, rx) = channel::bounded(config.queue_len.max(1));
    let shared = Arc::new(Shared::default());
    let writer = StateWriter {
        tx,
        shared: shared.clone(),
        path: Arc::new(path.clone()),
    };
    let mut thread = Thread {
        conn,
        path: path.clone(),
        rx,
        shared,
        max_delay: config.max_delay.min(MAX_DELAY_CAP),
        retry_delay: config.retry_delay,
        batch: Batch::default(),
    };
    let handle = std::thread::Builder::new()
        .name("ccbt-state".into())
        .spawn(move || thread.run())
        .map_err(|source| StateError::Io {
            path,
            op: "start writer thread for",
            source,
        })?;
    Ok((writer, handle))
}

/// Writes waiting for the next commit, resume snapshots coalesced.
#[derive(Default)]
struct Batch {
    writes: Vec<Write>,
    /// Index in `writes` of the torrent's resume snapshot that a newer one may replace:
    /// only while no Upsert or Remove of that torrent came after it, so replacing it in
    /// place keeps the batch's meaning.
    resume_at: HashMap<InfoHash, usize>,
}

impl Batch {
    /// Adds `w`; true if it replaced an older snapshot instead of growing the batch.
    fn push(&mut self, w: Write) -> bool {
        match &w {
            Write::Resume(r) => {
                if let Some(&i) = self.resume_at.get(&r.info_hash) {
                    self.writes[i] = w;
                    return true;
                }
                self.resume_at.insert(r.info_hash, self.writes.len());
            }
            Write::Upsert(t) => {
                self.resume_at.remove(&t.info_hash);
            }
            Write::Remove(info_hash) => {
                self.resume_at.remove(info_hash);
            }
            _ => {}
        }
        self.writes.push(w);
        false
    }
}

struct Thread {
    conn: Connection,
    path: PathBuf,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    max_delay: Duration,
    retry_delay: Duration,
    batch: Batch,
}

impl Thread {
    fn run(&mut self) {
        // When the pending batch is due: set by its first write, pushed back on failure.
        let mut due: Option<Instant> = None;
        loop {
            let mut waiters = Vec::new();
            let mut closing = None;
            let first = match due {
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => self.rx.recv_deadline(at),
            };
            let mut disconnected = false;
            let mut handle = |msg: Msg, due: &mut Option<Instant>, batch: &mut Batch| match msg {
                Msg::Write(w) => {
                    if due.is_none() {
                        *due = Some(Instant::now() + self.max_delay);
                    }
                    if batch.push(w) {
                        self.shared.writes_coalesced.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Msg::Flush(reply) => waiters.push(reply),
                Msg::Close(reply) => closing = Some(reply),
            };
            match first {
                Ok(msg) => handle(msg, &mut due, &mut self.batch),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => disconnected = true,
            }
            // Take everything already queued, but never past the batch's deadline.
            while due.is_none_or(|at| Instant::now() < at) {
                match self.rx.try_recv() {
                    Ok(msg) => handle(msg, &mut due, &mut self.batch),
                    Err(_) => break,
                }
            }
            let forced = !waiters.is_empty() || closing.is_some() || disconnected;
            if forced || due.is_some_and(|at| Instant::now() >= at) {
                let result = self.commit();
                match &result {
                    Ok(()) => due = None,
                    Err(_) => due = Some(Instant::now() + self.retry_delay),
                }
                for w in waiters {
                    let _ = w.send(self.reply(&result));
                }
                if let Some(c) = closing {
                    let _ = c.send(self.reply(&result));
                    break;
                }
                if disconnected {
                    break;
                }
            }
        }
        if !self.batch.writes.is_empty() {
            tracing::error!(path = %self.path.display(), writes = self.batch.writes.len(),
                "state writer stopped with uncommitted writes");
        }
    }

    fn reply(&self, result: &Result<(), String>) -> Result<(), StateError> {
        result.clone().map_err(|message| StateError::Commit {
            path: self.path.clone(),
            message,
        })
    }

    /// Commits the batch in one transaction. On failure the batch is kept for a retry and
    /// the error recorded; a write SQLite refuses on its own merits is dropped instead,
    /// so one bad write cannot wedge every later batch.
    fn commit(&mut self) -> Result<(), String> {
        if self.batch.writes.is_empty() {
            return Ok(());
        }
        let mut dropped = 0;
        let attempt = (|| -> rusqlite::Result<()> {
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            for w in &self.batch.writes {
                if let Err(e) = store::apply(&tx, w) {
                    if !refuses_write(&e) {
                        return Err(e);
                    }
                    tracing::warn!(path = %self.path.display(), error = %e, write = ?Summary(w),
                        "state write refused, dropped");
                    dropped += 1;
                }
            }
            tx.commit()
        })();
        let s = &self.shared;
        match attempt {
            Ok(()) => {
                let n = self.batch.writes.len() as u64;
                s.commits.fetch_add(1, Ordering::Relaxed);
                s.writes_committed.fetch_add(n - dropped, Ordering::Relaxed);
                s.writes_dropped.fetch_add(dropped, Ordering::Relaxed);
                self.batch = Batch::default();
                if let Ok(mut g) = s.last_error.lock() {
                    *g = None;
                }
                Ok(())
            }
            Err(e) => {
                let message = e.to_string();
                tracing::error!(path = %self.path.display(), error = %message,
                    writes = self.batch.writes.len(), "state commit failed; batch kept for retry");
                s.failed_commits.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut g) = s.last_error.lock() {
                    *g = Some(message.clone());
                }
                Err(message)
            }
        }
    }
}

/// Errors about the write itself rather than the disk: retrying cannot help.
fn refuses_write(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch)
    )
}

/// A write for a log line, without its megabytes of metainfo or bitfield.
struct Summary<'a>(&'a Write);

impl std::fmt::Debug for Summary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, hash) = match self.0 {
            Write::Upsert(t) => ("upsert", &t.info_hash),
            Write::Resume(r) => ("resume", &r.info_hash),
            Write::Remove(h) => ("remove", h),
            Write::SetPaused { info_hash, .. } => ("set paused", info_hash),
            Write::SetTotals { info_hash, .. } => ("set totals", info_hash),
            Write::Completed { info_hash, .. } => ("completed", info_hash),
            Write::SetError { info_hash, .. } => ("set error", info_hash),
            Write::SetSavePath { info_hash, .. } => ("set save path", info_hash),
            Write::SetQueuePosition { info_hash, .. } => ("set queue position", info_hash),
            Write::SetSettings { info_hash, .. } => ("set settings", info_hash),
            Write::SetLabels { info_hash, .. } => ("set labels", info_hash),
            Write::SetCategory(c) => return write!(f, "set category {:?}", c.name),
            Write::RemoveCategory(name) => return write!(f, "remove category {name:?}"),
            Write::AddTag(name) => return write!(f, "add tag {name:?}"),
            Write::RemoveTag(name) => return write!(f, "remove tag {name:?}"),
        };
        write!(f, "{kind} {}", crate::error::hex(hash))
    }
}
