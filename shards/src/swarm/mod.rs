//! The swarm: torrents downloading and seeding on pinned shards.
//!
//! Each torrent lives on one shard, chosen by its info hash, which owns its peers, piece
//! buffers, files and tracker traffic. Every shard listens on the same port
//! (SO_REUSEPORT); a shard that accepts a connection for a torrent it does not own passes
//! the socket and the bytes already read to the owner over a bounded crossbeam queue.
//! The front end sees only [`TorrentStatus`] counters and a stop flag.

mod alarm;
mod budget;
mod buffers;
mod cache;
mod clock;
mod handoff;
mod lazy_storage;
mod offload;
mod peer;
mod send_batch;
mod shard;
mod storage;
mod torrent;
mod tracker;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ccbt_engine::metainfo::Metainfo;
use ccbt_engine::picker::Priority;
use ccbt_engine::session::SessionConfig;
use ccbt_engine::{Bitfield, InfoHash};

use crate::pool::{self, ShardConfig, ShardError, ShardId, Shards};
pub use storage::{Preallocate, StorageError};

/// How the swarm runs.
#[derive(Debug, Clone)]
pub struct SwarmConfig {
    pub shards: ShardConfig,
    /// Address every shard listens on.
    pub listen: IpAddr,
    /// 0 picks a free port (all shards then share the one the first shard got).
    pub port: u16,
    pub session: SessionConfig,
    /// Read cache per shard, for seeding.
    pub cache_bytes: usize,
    pub preallocate: Preallocate,
    /// Connections per shard, counting handshakes in progress.
    pub max_connections_per_shard: usize,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            shards: ShardConfig::per_core(),
            listen: IpAddr::from([0, 0, 0, 0]),
            port: 6881,
            session: SessionConfig::default(),
            cache_bytes: 64 << 20,
            preallocate: Preallocate::Sparse,
            max_connections_per_shard: 2000,
        }
    }
}

/// One torrent to run.
#[derive(Debug, Clone)]
pub struct TorrentSpec {
    pub metainfo: Arc<Metainfo>,
    /// The directory that holds the torrent's name.
    pub save_dir: PathBuf,
    /// Pieces already verified on disk.
    pub have: Bitfield,
    pub sequential: bool,
    /// Per file, in torrent order; `None` downloads everything.
    pub priorities: Option<Vec<Priority>>,
    /// Keep running after the download completes.
    pub keep_seeding: bool,
    /// Peers to connect to besides those trackers name.
    pub peers: Vec<std::net::SocketAddr>,
}

/// Live figures of one torrent, written by its shard and read by the front end.
#[derive(Debug, Default)]
pub struct TorrentStatus {
    pub peers: AtomicU64,
    pub have_pieces: AtomicU64,
    pub wanted_left: AtomicU64,
    pub downloaded: AtomicU64,
    pub uploaded: AtomicU64,
    pub download_rate: AtomicU64,
    pub upload_rate: AtomicU64,
    /// Every wanted piece is verified and written.
    pub done: AtomicBool,
    /// The torrent's task has ended (stopped, finished or failed).
    pub finished: AtomicBool,
    /// Why the torrent stopped, if it failed.
    pub error: Mutex<Option<String>>,
}

/// The shard a torrent lives on.
pub fn shard_for(info_hash: &InfoHash, shards: usize) -> ShardId {
    let b = info_hash.as_bytes();
    let x = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    ShardId((x % shards.max(1) as u64) as u16)
}

/// A running swarm.
pub struct Swarm {
    shards: Shards<Result<(), String>>,
    stop: Arc<AtomicBool>,
    statuses: Vec<Arc<TorrentStatus>>,
    port: u16,
    /// Shards that have opened their torrents and listen.
    ready: Arc<AtomicUsize>,
    shard_count: usize,
}

impl Swarm {
    /// Starts the shards, binds the port and starts every torrent.
    pub fn start(config: SwarmConfig, torrents: Vec<TorrentSpec>) -> Result<Swarm, ShardError> {
        let port = if config.port == 0 {
            free_port(config.listen).map_err(|e| ShardError::Start {
                shard: 0,
                message: e.to_string(),
            })?
        } else {
            config.port
        };
        let stop = Arc::new(AtomicBool::new(false));
        let statuses: Vec<Arc<TorrentStatus>> = torrents.iter().map(|_| Arc::default()).collect();
        let (senders, receivers) = handoff::queues(config.shards.count);
        let ready = Arc::new(AtomicUsize::new(0));
        let shared = Arc::new(shard::Shared {
            hashes: torrents.iter().map(|t| t.metainfo.info_hash).collect(),
            config: SwarmConfig {
                port,
                ..config.clone()
            },
            torrents,
            statuses: statuses.clone(),
            stop: stop.clone(),
            senders,
            receivers,
            ready: ready.clone(),
        });
        let mut shard_config = config.shards.clone();
        shard_config.io_memory_bytes = shard_config.io_memory_bytes.max(1 << 20);
        let shards = pool::spawn(&shard_config, move |id| shard::run(id, shared.clone()))?;
        Ok(Swarm {
            shards,
            stop,
            statuses,
            port,
            ready,
            shard_count: config.shards.count,
        })
    }

    /// Every shard has opened its torrents (those that failed have their error set) and
    /// listens: everything that can seed is seeding.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) == self.shard_count
    }

    /// The port every shard listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn status(&self, torrent: usize) -> &TorrentStatus {
        &self.statuses[torrent]
    }

    /// Asks every shard to stop: torrents announce `stopped` and close their peers.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
    }

    /// Every shard has ended (normally only after [`Swarm::stop`]).
    pub fn is_finished(&self) -> bool {
        self.shards.is_finished()
    }

    /// Waits for every shard; the first failure wins.
    pub fn join(self) -> Result<(), ShardError> {
        for (i, result) in self.shards.join()?.into_iter().enumerate() {
            result.map_err(|message| ShardError::Failed {
                shard: i as u16,
                message,
            })?;
        }
        Ok(())
    }
}

/// Asks the kernel for a free port: bind to 0, read it, let go.
fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind((ip, 0))?.local_addr()?.port())
}
