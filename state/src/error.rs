//! Typed errors. Every [`StateError`] names the file and the operation, so the daemon can
//! print it as is.

use std::path::PathBuf;

use crate::{InfoHash, Write};

/// Opening, reading or committing the state database failed.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{op} {path}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{op} {path}: {source}")]
    Sql {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    /// `journal_mode=WAL` was refused (e.g. the file system cannot do shared memory).
    #[error("set WAL mode on {path}: SQLite kept journal mode {mode:?}")]
    NoWal { path: PathBuf, mode: String },
    /// A batch could not be committed; the writer keeps it and retries. The message is
    /// SQLite's (one failure is reported to every `flush` waiting on it).
    #[error("commit to {path}: {message}")]
    Commit { path: PathBuf, message: String },
    /// The writer thread is gone (closed, or it died): nothing more can be written.
    #[error("state writer for {path} is not running")]
    WriterGone { path: PathBuf },
    /// The fresh database made after moving a damaged one aside failed its own check.
    #[error("fresh database {path} after recovery is unusable: {reason}")]
    Unrecoverable { path: PathBuf, reason: String },
}

/// A write was not queued; the write comes back where it still could be retried.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The queue is at its bound ([`StateConfig::queue_len`](crate::StateConfig)).
    /// Resume records are snapshots: a shard can drop this one and send a newer later.
    #[error("state writer queue is full")]
    Full(Write),
    /// `write_blocking` waited its timeout and the queue stayed full.
    #[error("state writer queue stayed full until the timeout")]
    Timeout(Write),
    /// The writer thread is gone.
    #[error("state writer is not running")]
    Closed(Write),
    /// The `.torrent` is over [`MAX_METAINFO_LEN`](crate::MAX_METAINFO_LEN).
    #[error(
        "metainfo of {} is {len} bytes, over the {max}-byte limit",
        hex(info_hash)
    )]
    MetainfoTooLarge {
        info_hash: InfoHash,
        len: usize,
        max: usize,
    },
    /// A resume record that could not be read back meaningfully.
    #[error("resume data of {}: {reason}", hex(info_hash))]
    BadResume {
        info_hash: InfoHash,
        reason: &'static str,
    },
}

impl WriteError {
    /// The write itself, when the error is about the queue rather than the write.
    pub fn into_write(self) -> Option<Write> {
        match self {
            WriteError::Full(w) | WriteError::Timeout(w) | WriteError::Closed(w) => Some(w),
            WriteError::MetainfoTooLarge { .. } | WriteError::BadResume { .. } => None,
        }
    }
}

/// Lower-case hex, for naming a torrent in messages.
pub fn hex(hash: &InfoHash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}
