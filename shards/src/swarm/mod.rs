//! The swarm: torrents downloading and seeding on long-lived shards.
//!
//! [`Swarm::start`] starts one server per shard, each listening on the same port
//! (SO_REUSEPORT) with no torrents. Torrents are then added, paused, resumed, rechecked,
//! moved and removed while it runs, through commands that go to the owner shard's bounded
//! inbox (chosen by info hash) and come back as one-shot replies. A shard that accepts a
//! connection for a torrent it does not own passes the socket and the bytes already read
//! to the owner through the owner's inbox.
//!
//! A running torrent on its shard is a `torrent::TorrentRt`: the engine's state machine
//! composed with `peer_table` (live connections), `address_book` (addresses to dial and
//! when), `piece_io` (piece buffers, reads, cache, storage), `stop` and `durable`. Three
//! modules drive it and depend on it, never the other way: `driver` (its run loop,
//! announces, wind-down) uses `dial` (outgoing connections, and incoming ones the shard
//! hands it), which uses `peer` (one connection's reader and writer tasks).
//!
//! What a front end reads without asking: each torrent's [`TorrentStatus`], which its
//! shard keeps up to date, and, if it passed an [`EventSink`], the durable-pieces
//! snapshots and faults it needs to keep resume data.

mod address_book;
mod alarm;
mod announce_gate;
mod budget;
mod buffers;
mod cache;
mod check;
mod clock;
mod command;
mod dht;
mod dial;
mod driver;
mod durable;
mod events;
mod file_pool;
mod goodbye;
mod handoff;
mod handshakes;
mod inbox;
mod ip_guard;
mod lazy_storage;
mod lsd;
mod magnet;
mod offload;
mod peer;
mod peer_table;
mod piece_io;
mod replica;
mod resolver;
mod scraper;
mod send_batch;
mod shard;
mod share;
mod slot;
mod stats;
mod status;
mod stop;
mod storage;
mod throttle;
mod tls;
mod torrent;
mod tracker;
mod web_seed;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccbt_engine::blocklist::Blocklist;
use ccbt_engine::metainfo::Metainfo;
use ccbt_engine::picker::Priority;
use ccbt_engine::session::SessionConfig;
use ccbt_engine::{Bitfield, InfoHash};

pub use crate::beneath::Symlinks;
use crate::pool::{self, ShardConfig, ShardError, ShardId, Shards};
pub use ccbt_engine::tracker::DispatchLimits;
pub use command::{CommandError, Pending, TorrentOp, TorrentSnapshot};
pub use dht::{DhtConfig, DEFAULT_BOOTSTRAP as DHT_DEFAULT_BOOTSTRAP};
pub use events::{EventSink, FileStamp, SwarmEvent};
pub use ip_guard::Refusal;
pub use lsd::LsdConfig;
pub use magnet::MagnetSpec;
pub use resolver::{Resolve, ResolveError, Resolver};
pub use stats::{
    AnnounceFailure, HistogramSnapshot, LatencyHistogram, RefusedConnection, ServiceLatency,
    ServiceSnapshot, ShardStats, ShardStatsSnapshot, LATENCY_BOUNDS_US,
};
pub use status::{
    FaultKind, MetadataFailure, PeerInfo, PeerOrigin, SwarmCounts, TorrentFault, TorrentState,
    TorrentStatus,
};
pub use storage::{Preallocate, ServeReads, StorageError};
pub use throttle::RateLimits;

use command::{reply_channel, Command};

/// Commands (and handed-off connections) waiting for one shard at most. Past it a command
/// fails with [`CommandError::Busy`] and a connection is refused.
pub const INBOX_LEN: usize = 4096;
/// How long [`Swarm::start`] waits for every shard to listen.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Limits a reload may change while torrents run ([`Swarm::set_peer_limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    /// Peers unchoked at once per torrent (0: no limit).
    pub upload_slots: usize,
    pub max_peers_per_torrent: usize,
    pub max_connections_per_shard: usize,
    pub max_connections_per_ip: usize,
}

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
    /// How seeding reads the disk (see [`ServeReads`]).
    pub serve_reads: ServeReads,
    /// Whether symlinks inside a torrent's tree are followed (see `crate::beneath`).
    pub symlinks: Symlinks,
    /// Connections per shard, counting handshakes in progress.
    pub max_connections_per_shard: usize,
    /// Global limits on piece payload (not protocol overhead), 0 = unlimited; each shard
    /// enforces a share that follows its demand. Changed live with [`Swarm::set_global_limits`].
    pub limits: RateLimits,
    /// Connections (handshaking or established, either direction) one shard holds with
    /// one IP address: past it, incoming ones are closed and none are dialled, so one host
    /// cannot take a torrent's slots or a shard's budget.
    pub max_connections_per_ip: usize,
    /// Exempts 127.0.0.0/8 and ::1 from `max_connections_per_ip`. On by default because
    /// tests, benchmarks and the load generator run many peers from 127.0.0.1; a loopback
    /// peer is a local process. Turn it off to cap loopback like any host.
    pub per_ip_exempt_loopback: bool,
    /// File descriptors each shard's seeding torrents keep open at most: past it the least
    /// recently read torrent's files are closed (they open again at its next read).
    pub open_files_per_shard: usize,
    /// How announces are paced and capped, and how long goodbyes may take.
    pub announce: AnnounceConfig,
    /// Whether torrents fetch from their web seeds (BEP 19 `url-list`); on by default.
    pub web_seeds: bool,
    /// The DHT (BEP 5): one node per process, on shard 0, on UDP at `port`.
    pub dht: DhtConfig,
    /// Local service discovery (BEP 14): multicast announces on one interface, run by
    /// shard 0; off when peers listen on loopback only and no interface is set.
    pub lsd: LsdConfig,
    /// A complete torrent with at least this many peers is served from every shard, not
    /// only its own (see `replica`); 0 keeps every torrent on its own shard.
    pub hot_torrent_peers: usize,
}

/// Announce scheduling per shard (see `announce_gate` and the engine's `dispatch`).
#[derive(Debug, Clone)]
pub struct AnnounceConfig {
    /// Caps in flight per tracker host and per shard, pacing, and the waiting line's bound.
    pub limits: DispatchLimits,
    /// `stopped` announces in flight at once per shard when torrents stop.
    pub goodbyes_concurrent: usize,
    /// At shutdown, goodbyes not sent within this are skipped (logged once, with a count).
    /// Files are synced before; the whole shutdown stays under ~10 s.
    pub shutdown_goodbyes_within: Duration,
    /// Turns tracker host names into addresses, on helper threads.
    pub resolver: Resolver,
}

impl Default for AnnounceConfig {
    fn default() -> Self {
        AnnounceConfig {
            limits: DispatchLimits::default(),
            goodbyes_concurrent: 32,
            shutdown_goodbyes_within: Duration::from_secs(8),
            resolver: Resolver::default(),
        }
    }
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
            serve_reads: ServeReads::default(),
            symlinks: Symlinks::Refused,
            max_connections_per_shard: 2000,
            limits: RateLimits::default(),
            max_connections_per_ip: 8,
            per_ip_exempt_loopback: true,
            open_files_per_shard: 512,
            announce: AnnounceConfig::default(),
            web_seeds: true,
            dht: DhtConfig::default(),
            lsd: LsdConfig::default(),
            hot_torrent_peers: 8,
        }
    }
}

/// What is known of a torrent's data when it is added.
#[derive(Debug, Clone)]
pub enum Verify {
    /// These pieces are good on disk (a check just ran, or resume data vouches for them).
    Trusted(Bitfield),
    /// Nothing: hash every piece first, on the torrent's shard.
    Full,
    /// `have` is good except that `check` must be hashed again (their files changed since
    /// the resume data was written): the torrent runs with `have` while they are checked.
    Partly { have: Bitfield, check: Vec<u32> },
}

/// One torrent to run.
#[derive(Debug, Clone)]
pub struct TorrentSpec {
    pub metainfo: Arc<Metainfo>,
    /// The directory that holds the torrent's name.
    pub save_dir: PathBuf,
    pub verify: Verify,
    pub sequential: bool,
    /// Per file, in torrent order; `None` downloads everything.
    pub priorities: Option<Vec<Priority>>,
    /// Keep running after the download completes.
    pub keep_seeding: bool,
    /// Added stopped: checked if need be, then left until resumed.
    pub paused: bool,
    /// Peers to connect to besides those trackers name.
    pub peers: Vec<std::net::SocketAddr>,
    /// This torrent's limits on piece payload, 0 = unlimited; they apply on top of the
    /// global ones. Changed live with [`TorrentOp::SetLimits`].
    pub upload_bytes_per_s: u64,
    pub download_bytes_per_s: u64,
}

/// The shard a torrent lives on.
pub fn shard_for(info_hash: &InfoHash, shards: usize) -> ShardId {
    let b = info_hash.as_bytes();
    let x = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    ShardId((x % shards.max(1) as u64) as u16)
}

/// Running shards, ready for commands.
pub struct Swarm {
    shards: Shards<Result<(), String>>,
    inboxes: Vec<inbox::Sender<Command>>,
    /// Each shard's counters, by shard id.
    stats: Vec<Arc<ShardStats>>,
    port: u16,
}

impl Swarm {
    /// Starts the shards and returns once every one of them listens on the port. They
    /// hold no torrents yet. `events`, if given, receives what a front end needs to keep
    /// resume data.
    pub fn start(config: SwarmConfig, events: Option<EventSink>) -> Result<Swarm, ShardError> {
        let start_error = |message: String| ShardError::Start { shard: 0, message };
        let port = if config.port == 0 {
            free_port(config.listen).map_err(|e| start_error(e.to_string()))?
        } else {
            config.port
        };
        let count = config.shards.count;
        let mut inboxes = Vec::with_capacity(count);
        let mut parked = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = inbox::new(INBOX_LEN).map_err(|e| start_error(e.to_string()))?;
            inboxes.push(tx);
            parked.push(Mutex::new(Some(rx)));
        }
        let listening = Arc::new(AtomicUsize::new(0));
        let stats: Vec<Arc<ShardStats>> = (0..count).map(|_| Arc::default()).collect();
        let shared = Arc::new(shard::Shared {
            config: SwarmConfig {
                port,
                ..config.clone()
            },
            inboxes: inboxes.clone(),
            stats: stats.clone(),
            parked,
            events,
            listening: listening.clone(),
            listen_error: Mutex::new(None),
            clock: clock::Clock::start(),
            demand: share::Demand::new(count),
        });
        let mut shard_config = config.shards.clone();
        shard_config.io_memory_bytes = shard_config.io_memory_bytes.max(1 << 20);
        let task_shared = shared.clone();
        let shards = pool::spawn(&shard_config, move |id| shard::run(id, task_shared.clone()))?;
        let deadline = Instant::now() + LISTEN_TIMEOUT;
        while listening.load(Ordering::Acquire) < count {
            let failed = shared
                .listen_error
                .lock()
                .expect("listen error lock")
                .clone();
            if let Some(message) = failed {
                drop(inboxes);
                let _ = shards.join();
                return Err(start_error(message));
            }
            if shards.is_finished() || Instant::now() > deadline {
                drop(inboxes);
                return Err(match shards.join() {
                    Err(e) => e,
                    Ok(_) => start_error("a shard ended before it listened".into()),
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(Swarm {
            shards,
            inboxes,
            stats,
            port,
        })
    }

    /// The port every shard listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn shard_count(&self) -> usize {
        self.inboxes.len()
    }

    /// Queues a command on `shard`; the receiver, or Busy if its inbox is full.
    fn send<R>(
        &self,
        shard: ShardId,
        command: impl FnOnce(command::ReplyTo<R>) -> Command,
    ) -> Result<futures_channel::oneshot::Receiver<R>, CommandError> {
        let (reply, rx) = reply_channel();
        self.inboxes[shard.0 as usize]
            .try_send(command(reply))
            .map_err(|_| {
                self.stats[shard.0 as usize].inbox_was_full();
                CommandError::Busy(shard.0)
            })?;
        Ok(rx)
    }

    /// Adds a torrent to its shard; answered once it is registered there (its check and
    /// opening go on in the background). Its status is live from then on.
    pub fn add(&self, spec: TorrentSpec) -> Pending<Arc<TorrentStatus>> {
        let shard = shard_for(&spec.metainfo.info_hash, self.shard_count());
        let status = Arc::new(TorrentStatus::default());
        let handle = status.clone();
        match self.send(shard, move |reply| Command::Add {
            spec,
            status,
            reply,
        }) {
            Ok(rx) => Pending::flat(rx).map(move |()| handle),
            Err(e) => Pending::refused(e),
        }
    }

    /// Adds a torrent from a magnet link to its shard; answered once it is registered
    /// there. Its status shows [`TorrentState::FetchingMetadata`] until the metadata is
    /// verified, then the torrent's (or, with `metadata_only`, [`TorrentState::Stopped`]
    /// and the metainfo in [`TorrentStatus::metainfo`]).
    pub fn add_magnet(&self, spec: MagnetSpec) -> Pending<Arc<TorrentStatus>> {
        let shard = shard_for(&spec.info_hash, self.shard_count());
        let status = Arc::new(TorrentStatus::default());
        let handle = status.clone();
        match self.send(shard, move |reply| Command::AddMagnet {
            spec,
            status,
            reply,
        }) {
            Ok(rx) => Pending::flat(rx).map(move |()| handle),
            Err(e) => Pending::refused(e),
        }
    }

    /// Runs `op` on the torrent; answered once it has taken effect (a pause once the
    /// torrent has stopped, a remove once it is gone and its data deleted if asked).
    pub fn command(&self, info_hash: InfoHash, op: TorrentOp) -> Pending<()> {
        let shard = shard_for(&info_hash, self.shard_count());
        match self.send(shard, move |reply| Command::Torrent {
            info_hash,
            op,
            reply,
        }) {
            Ok(rx) => Pending::flat(rx),
            Err(e) => Pending::refused(e),
        }
    }

    /// Which pieces the torrent has now; `None` before its first check has told. Answered
    /// from the shard's inbox without touching the disk.
    /// The torrent's connected peers.
    pub fn peers(&self, info_hash: InfoHash) -> Pending<Vec<PeerInfo>> {
        let shard = shard_for(&info_hash, self.shard_count());
        match self.send(shard, move |reply| Command::Peers { info_hash, reply }) {
            Ok(rx) => Pending::flat(rx),
            Err(e) => Pending::refused(e),
        }
    }

    pub fn pieces(&self, info_hash: InfoHash) -> Pending<Option<ccbt_engine::Bitfield>> {
        let shard = shard_for(&info_hash, self.shard_count());
        match self.send(shard, move |reply| Command::Pieces { info_hash, reply }) {
            Ok(rx) => Pending::flat(rx),
            Err(e) => Pending::refused(e),
        }
    }

    /// Sets the global limits; each shard takes its share. Answered once every shard has
    /// applied them (transfers waiting on a bucket see them within 100 ms). If a shard's
    /// inbox is full the call fails with [`CommandError::Busy`] and shards before it may
    /// already have the new limits: call again.
    pub fn set_global_limits(&self, limits: RateLimits) -> Pending<()> {
        self.to_every_shard(|reply| Command::SetGlobalLimits { limits, reply })
    }

    /// New upload slots, peers per torrent and connection caps on every shard (a config
    /// reload): running torrents rechoke at once; lowering a cap closes nothing, it only
    /// refuses new peers or connections until the count is under it. Busy as for
    /// [`Swarm::set_global_limits`].
    pub fn set_peer_limits(&self, limits: PeerLimits) -> Pending<()> {
        self.to_every_shard(|reply| Command::SetPeerLimits { limits, reply })
    }

    /// Replaces the IP blocklist on every shard: from the answer on, connections from
    /// listed addresses are closed before their handshake is read and none are dialled.
    /// Connections already open stay. Busy as for [`Swarm::set_global_limits`].
    pub fn set_blocklist(&self, list: Arc<Blocklist>) -> Pending<()> {
        self.to_every_shard(|reply| Command::SetBlocklist {
            list: list.clone(),
            reply,
        })
    }

    /// Sends one command to every shard; the answer comes once all have replied.
    fn to_every_shard(
        &self,
        mut command: impl FnMut(command::ReplyTo<()>) -> Command,
    ) -> Pending<()> {
        let mut replies = Vec::with_capacity(self.shard_count());
        for i in 0..self.shard_count() {
            match self.send(ShardId(i as u16), &mut command) {
                Ok(rx) => replies.push(rx),
                Err(e) => return Pending::refused(e),
            }
        }
        Pending::all(replies)
    }

    /// Every torrent on every shard, with its live status.
    pub fn snapshot(&self) -> Result<Vec<TorrentSnapshot>, CommandError> {
        let pending: Vec<_> = (0..self.shard_count())
            .map(|i| self.send(ShardId(i as u16), |reply| Command::Snapshot { reply }))
            .collect();
        let mut all = Vec::new();
        for p in pending {
            all.extend(Pending::plain(p?).wait()?);
        }
        Ok(all)
    }

    /// Each shard's counters as of now, with its inbox's depth: read from atomics the
    /// shards keep, without asking them (a scrape never waits on a busy shard).
    pub fn shard_stats(&self) -> Vec<ShardStatsSnapshot> {
        self.stats
            .iter()
            .zip(&self.inboxes)
            .enumerate()
            .map(|(i, (stats, inbox))| {
                stats.snapshot(i as u16, inbox.len() as u64, INBOX_LEN as u64)
            })
            .collect()
    }

    /// Every shard has ended (normally only after [`Swarm::shutdown`]; sooner if one
    /// failed).
    pub fn is_finished(&self) -> bool {
        self.shards.is_finished()
    }

    /// Stops every torrent (each announces `stopped`, syncs its files and sends its last
    /// events) and ends every shard's server loop; returns once all have answered. Events
    /// the torrents sent are in the sink by then.
    pub fn stop(&self) {
        let pending: Vec<_> = (0..self.shard_count())
            .map(|i| self.send(ShardId(i as u16), |reply| Command::Stop { reply }))
            .collect();
        for p in pending.into_iter().flatten() {
            let _ = Pending::plain(p).wait();
        }
    }

    /// [`Swarm::stop`], then waits for the shards' threads; the first shard failure wins.
    pub fn shutdown(self) -> Result<(), ShardError> {
        self.stop();
        drop(self.inboxes);
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
