//! What the shards tell a front end that keeps state (the daemon): pieces that became
//! durable, checks that finished, faults. Optional: the CLI's one-shot jobs pass no sink.
//!
//! The sink is a bounded queue that a shard never waits on. A durable-pieces snapshot that
//! does not fit is sent again at the torrent's next round (it is a snapshot: the newer one
//! says everything the lost one did); any other event that does not fit is counted in
//! [`EventSink::dropped`] and logged, since the front end can read the same facts from
//! the torrent's published status.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ccbt_engine::{Bitfield, InfoHash};
use crossbeam::channel::{bounded, Receiver, Sender};

use super::status::TorrentFault;

/// A file's size and modification time, as the resume data records them: a file whose
/// stamp differs at start-up is checked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: i64,
}

impl FileStamp {
    /// The stamp of the file at `path`; `None` if it is not there.
    pub fn of(path: &std::path::Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        })
    }
}

#[derive(Debug, Clone)]
pub enum SwarmEvent {
    /// Every piece in `have` is written and fdatasync'd: a record claiming them may be
    /// committed. `files` are stamped after the sync, per file in torrent order (`None`:
    /// a pad file or a file not there).
    Durable {
        info_hash: InfoHash,
        have: Bitfield,
        files: Vec<Option<FileStamp>>,
        uploaded: u64,
        downloaded: u64,
    },
    /// A check of the torrent's data ended (the durable snapshot that follows records it).
    Checked { info_hash: InfoHash, have: u32 },
    /// Every wanted piece is verified and durable.
    Completed { info_hash: InfoHash },
    /// A fault stopped the torrent.
    Fault {
        info_hash: InfoHash,
        fault: TorrentFault,
    },
    /// An announce failed (the torrent tries the next tracker, or again later).
    TrackerError {
        info_hash: InfoHash,
        url: String,
        message: String,
    },
    /// A peer was banned from the torrent for sending bad data.
    PeerBanned {
        info_hash: InfoHash,
        addr: std::net::SocketAddr,
        reason: String,
    },
}

#[derive(Clone, Debug)]
pub struct EventSink {
    tx: Sender<SwarmEvent>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// A sink holding at most `len` events, and the front end's end of it.
    pub fn new(len: usize) -> (EventSink, Receiver<SwarmEvent>) {
        let (tx, rx) = bounded(len);
        (
            EventSink {
                tx,
                dropped: Arc::default(),
            },
            rx,
        )
    }

    /// Sends without waiting; false if the queue was full (the event is counted as lost).
    pub fn send(&self, event: SwarmEvent) -> bool {
        match self.tx.try_send(event) {
            Ok(()) => true,
            Err(_) => {
                let lost = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(lost, "the event queue is full; an event was dropped");
                false
            }
        }
    }

    /// Events lost to a full queue so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
