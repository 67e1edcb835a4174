//! What a shard publishes about each of its torrents, for front ends to read without asking
//! it: counters and a state, written by the owner shard only, read by anyone.
//!
//! Errors are typed, so a control API can tell a full disk from a permission problem or
//! bad data, and say which torrent and file it was.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;

use thiserror::Error;

use super::storage::StorageError;

/// Where a torrent is in its life on its shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TorrentState {
    /// Added; its shard has not started it yet.
    Queued = 0,
    /// Hashing its data to learn which pieces it has.
    Checking = 1,
    /// Fetching wanted pieces.
    Downloading = 2,
    /// Every wanted piece is there; serving peers.
    Seeding = 3,
    /// Stopped by a command; its pieces are remembered.
    Paused = 4,
    /// Stopped by a fault (see [`TorrentStatus::error`]).
    Failed = 5,
    /// Done and not asked to seed, or removed, or the swarm stopped.
    Stopped = 6,
    /// Added from a magnet link: fetching the info dict from peers (see `magnet`).
    FetchingMetadata = 7,
}

impl TorrentState {
    fn from_u8(v: u8) -> TorrentState {
        match v {
            1 => TorrentState::Checking,
            2 => TorrentState::Downloading,
            3 => TorrentState::Seeding,
            4 => TorrentState::Paused,
            5 => TorrentState::Failed,
            6 => TorrentState::Stopped,
            7 => TorrentState::FetchingMetadata,
            _ => TorrentState::Queued,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TorrentState::Queued => "queued",
            TorrentState::Checking => "checking",
            TorrentState::Downloading => "downloading",
            TorrentState::Seeding => "seeding",
            TorrentState::Paused => "paused",
            TorrentState::Failed => "failed",
            TorrentState::Stopped => "stopped",
            TorrentState::FetchingMetadata => "fetching metadata",
        }
    }
}

/// What kind of fault stopped a torrent: what an operator does about it differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// ENOSPC or EDQUOT: free space, then resume.
    DiskFull,
    /// EACCES, EPERM or EROFS: fix ownership or mount options.
    Permission,
    /// A file or directory is missing.
    NotFound,
    /// Any other I/O error.
    Io,
    /// The data on disk is not what the torrent says.
    BadData,
    /// A magnet link's metadata could not be had (see [`MetadataFailure`]).
    Metadata,
}

impl FaultKind {
    fn of_io(e: &std::io::Error) -> FaultKind {
        use nix::libc;
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => FaultKind::DiskFull,
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => FaultKind::Permission,
            Some(libc::ENOENT) => FaultKind::NotFound,
            _ => match e.kind() {
                std::io::ErrorKind::PermissionDenied => FaultKind::Permission,
                std::io::ErrorKind::NotFound => FaultKind::NotFound,
                _ => FaultKind::Io,
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::DiskFull => "disk full",
            FaultKind::Permission => "permission denied",
            FaultKind::NotFound => "not found",
            FaultKind::Io => "I/O error",
            FaultKind::BadData => "bad data",
            FaultKind::Metadata => "metadata",
        }
    }
}

/// Why a torrent stopped: the kind, the file if one is to blame, and the system's words.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default(), message)]
pub struct TorrentFault {
    pub kind: FaultKind,
    pub path: Option<PathBuf>,
    pub message: String,
}

impl TorrentFault {
    pub fn io(path: Option<PathBuf>, e: &std::io::Error) -> TorrentFault {
        TorrentFault {
            kind: FaultKind::of_io(e),
            path,
            message: e.to_string(),
        }
    }

    pub fn bad_data(message: impl Into<String>) -> TorrentFault {
        TorrentFault {
            kind: FaultKind::BadData,
            path: None,
            message: message.into(),
        }
    }
}

/// Why a magnet link's metadata fetch stopped short.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetadataFailure {
    /// Peers said the info dict is larger than the configured limit, and none offered a
    /// size within it.
    #[error("peers say the metadata is {size} bytes; the limit is {max} (see --metadata-max)")]
    TooLarge { size: u64, max: u32 },
    /// The info dict matched the info hash but is not a torrent we can run.
    #[error("the fetched metadata is not a usable torrent: {0}")]
    BadMetadata(String),
}

impl From<&MetadataFailure> for TorrentFault {
    fn from(e: &MetadataFailure) -> TorrentFault {
        TorrentFault {
            kind: FaultKind::Metadata,
            path: None,
            message: e.to_string(),
        }
    }
}

impl From<&StorageError> for TorrentFault {
    fn from(e: &StorageError) -> TorrentFault {
        match e {
            StorageError::Io { path, source } => TorrentFault::io(Some(path.clone()), source),
        }
    }
}

/// A tracker's view of a torrent's swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwarmCounts {
    pub seeders: u64,
    pub leechers: u64,
    pub downloaded: Option<u64>,
}

/// Where a connected peer came from: it connected to us, or we dialled an address that
/// a tracker, the DHT, PEX or the user gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerOrigin {
    Incoming,
    Tracker,
    Dht,
    Pex,
    Manual,
    Lsd,
}

impl PeerOrigin {
    pub const ALL: [PeerOrigin; 6] = [
        PeerOrigin::Incoming,
        PeerOrigin::Tracker,
        PeerOrigin::Dht,
        PeerOrigin::Pex,
        PeerOrigin::Manual,
        PeerOrigin::Lsd,
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One connected peer of a torrent, for front ends' peer lists.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub view: ccbt_engine::session::PeerView,
    /// From its handshake: its client's name is in it (Azureus style, `-TR3000-`).
    pub peer_id: [u8; 20],
    pub origin: PeerOrigin,
}

/// Live figures of one torrent, written by its shard and read by front ends.
#[derive(Debug, Default)]
pub struct TorrentStatus {
    state: AtomicU8,
    pub peers: AtomicU64,
    pub have_pieces: AtomicU64,
    pub wanted_left: AtomicU64,
    pub downloaded: AtomicU64,
    pub uploaded: AtomicU64,
    pub download_rate: AtomicU64,
    pub upload_rate: AtomicU64,
    /// Web seeds (BEP 19) in use, not counting dropped ones.
    pub web_seeds: AtomicU64,
    /// Of those, how many are backing off after a failure.
    pub web_seeds_failing: AtomicU64,
    /// Connected peers by [`PeerOrigin`] (its `index`); a hot torrent's peers on other
    /// shards all came in, and count as incoming.
    pub peers_from: [AtomicU32; PeerOrigin::ALL.len()],
    /// Pieces hashed so far by the running check (with [`TorrentState::Checking`]).
    pub checked_pieces: AtomicU64,
    /// Every wanted piece is verified and written.
    pub done: AtomicBool,
    /// The torrent's task has ended (stopped, finished, paused or failed).
    pub finished: AtomicBool,
    /// The tracker's counts for the torrent (scrape, BEP 48 / BEP 15, or the last
    /// announce's answer), valid once [`TorrentStatus::swarm`] says so.
    pub swarm_seeders: AtomicU64,
    pub swarm_leechers: AtomicU64,
    /// Times the tracker saw the torrent completed; known from a scrape only.
    pub swarm_downloaded: AtomicU64,
    /// 0: no counts yet; 1: from an announce (no `downloaded`); 2: from a scrape.
    swarm_source: AtomicU8,
    /// Why the torrent stopped, if a fault stopped it. Written rarely, read by front ends:
    /// never on a hot path.
    pub error: Mutex<Option<TorrentFault>>,
    /// Added from a magnet link, while [`TorrentState::FetchingMetadata`]: peers that
    /// offer the metadata, and its 16 KiB pieces got and in all (0 until a size is chosen).
    pub metadata_peers: AtomicU64,
    pub metadata_pieces_got: AtomicU64,
    pub metadata_pieces_total: AtomicU64,
    /// Connections the fetch has had (handshakes done), whether or not they had metadata.
    pub metadata_connections: AtomicU64,
    /// The torrent, once known: set when added from a .torrent file's metainfo or when a
    /// magnet link's fetch verified it. Written once, read by front ends.
    metainfo: Mutex<Option<std::sync::Arc<ccbt_engine::metainfo::Metainfo>>>,
}

impl TorrentStatus {
    pub fn state(&self) -> TorrentState {
        TorrentState::from_u8(self.state.load(Ordering::Acquire))
    }

    /// A status for a torrent that no shard runs yet (a paused magnet link's, before its
    /// fetch starts), showing `state`.
    pub fn not_started(state: TorrentState) -> TorrentStatus {
        let status = TorrentStatus::default();
        status.set_state(state);
        status
    }

    pub(crate) fn set_state(&self, state: TorrentState) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// The tracker's seeder, leecher and completed counts, if a tracker gave any;
    /// `downloaded` is `None` until a scrape answered.
    pub fn swarm(&self) -> Option<SwarmCounts> {
        let source = self.swarm_source.load(Ordering::Acquire);
        (source > 0).then(|| SwarmCounts {
            seeders: self.swarm_seeders.load(Ordering::Relaxed),
            leechers: self.swarm_leechers.load(Ordering::Relaxed),
            downloaded: (source == 2).then(|| self.swarm_downloaded.load(Ordering::Relaxed)),
        })
    }

    /// Counts from a scrape.
    pub(crate) fn set_scraped(&self, seeders: u32, leechers: u32, downloaded: u32) {
        self.swarm_seeders
            .store(u64::from(seeders), Ordering::Relaxed);
        self.swarm_leechers
            .store(u64::from(leechers), Ordering::Relaxed);
        self.swarm_downloaded
            .store(u64::from(downloaded), Ordering::Relaxed);
        self.swarm_source.store(2, Ordering::Release);
    }

    /// Counts from an announce's answer; a scrape's `downloaded` is kept.
    pub(crate) fn set_announced(&self, seeders: u32, leechers: u32) {
        self.swarm_seeders
            .store(u64::from(seeders), Ordering::Relaxed);
        self.swarm_leechers
            .store(u64::from(leechers), Ordering::Relaxed);
        let _ = self
            .swarm_source
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Relaxed);
    }

    /// The torrent's metainfo, once known (a magnet link's only after its fetch).
    pub fn metainfo(&self) -> Option<std::sync::Arc<ccbt_engine::metainfo::Metainfo>> {
        self.metainfo.lock().expect("status lock").clone()
    }

    pub(crate) fn set_metainfo(&self, meta: std::sync::Arc<ccbt_engine::metainfo::Metainfo>) {
        *self.metainfo.lock().expect("status lock") = Some(meta);
    }

    /// How far a magnet link's metadata is, 0.0 to 1.0 (1.0 once the torrent is known).
    pub fn metadata_fraction(&self) -> f64 {
        if self.metainfo.lock().expect("status lock").is_some() {
            return 1.0;
        }
        let total = self.metadata_pieces_total.load(Ordering::Relaxed);
        if total == 0 {
            return 0.0;
        }
        self.metadata_pieces_got.load(Ordering::Relaxed) as f64 / total as f64
    }

    pub fn fault(&self) -> Option<TorrentFault> {
        self.error.lock().expect("status lock").clone()
    }

    pub(crate) fn set_fault(&self, fault: Option<TorrentFault>) {
        *self.error.lock().expect("status lock") = fault;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_told_apart() {
        let full = std::io::Error::from_raw_os_error(nix::libc::ENOSPC);
        let denied = std::io::Error::from_raw_os_error(nix::libc::EACCES);
        let gone = std::io::Error::from_raw_os_error(nix::libc::ENOENT);
        let other = std::io::Error::from_raw_os_error(nix::libc::EIO);
        assert_eq!(TorrentFault::io(None, &full).kind, FaultKind::DiskFull);
        assert_eq!(TorrentFault::io(None, &denied).kind, FaultKind::Permission);
        assert_eq!(TorrentFault::io(None, &gone).kind, FaultKind::NotFound);
        assert_eq!(TorrentFault::io(None, &other).kind, FaultKind::Io);
        let named = TorrentFault::io(Some("/d/a.bin".into()), &full);
        assert!(named.to_string().starts_with("/d/a.bin: "), "{named}");
    }

    #[test]
    fn states_round_trip_through_the_atomic() {
        let s = TorrentStatus::default();
        assert_eq!(s.state(), TorrentState::Queued);
        for state in [
            TorrentState::Checking,
            TorrentState::Downloading,
            TorrentState::Seeding,
            TorrentState::Paused,
            TorrentState::Failed,
            TorrentState::Stopped,
            TorrentState::FetchingMetadata,
        ] {
            s.set_state(state);
            assert_eq!(s.state(), state);
        }
    }
}
