//! The process's one DHT node (BEP 5), run by shard 0 on a UDP socket bound to the peer
//! port. The engine's [`Node`] is sans-I/O; this module owns its socket, its clock and its
//! traffic with the other shards:
//!
//! - any shard's torrent sends [`Command::Dht`] to shard 0's inbox (get peers, or get peers
//!   and announce our port); shard 0 starts the lookup when the node has room and sends
//!   the peers found back to the torrent's shard as [`Command::DhtPeers`];
//! - bootstrap host names are resolved on the resolver's helper threads, so no network
//!   (or no DNS) costs the shard nothing but a retry a minute later while the table is
//!   empty;
//! - the routing table can be loaded at start and written to a file at shutdown and every
//!   few minutes (the daemon does this, so it need not bootstrap from scratch).
//!
//! Bounds: at most [`PENDING_MAX`] lookups wait on shard 0 for the node (one per info
//! hash; beyond it a request is dropped and counted, and its torrent asks again at its next
//! turn); the node's own bounds cap lookups, queries and queued datagrams. Peers for a
//! shard whose inbox is full are dropped and counted (the next lookup finds them again).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use ccbt_engine::dht::{Config, DhtError, Event, LookupId, Node, NodeId};
use ccbt_engine::InfoHash;
use glommio::net::UdpSocket;

use super::alarm::Alarm;
use super::clock::Clock;
use super::command::Command;
use super::inbox;
use super::resolver::DnsCache;
use crate::pool::ShardId;

/// Lookups waiting on shard 0 for the node to have room (or nodes to start from).
pub const PENDING_MAX: usize = 256;
/// Peers sent back to a torrent from one lookup's event.
const PEERS_PER_MESSAGE_MAX: usize = 200;
/// While the routing table is empty, bootstrap again this often.
const REBOOTSTRAP_EVERY: Duration = Duration::from_secs(60);
/// The routing table is written this often (when a file is configured), and at shutdown.
const SAVE_EVERY: Duration = Duration::from_secs(300);
/// The longest the driving task sleeps without looking at its queues.
const TICK_MAX: Duration = Duration::from_secs(1);
/// A torrent's first lookup; each following one waits twice as long, up to [`ASK_MAX`].
pub const ASK_FIRST: Duration = Duration::from_secs(5);
/// BEP 5 peers and announces last 30 minutes; a running torrent asks (and announces)
/// every 15.
pub const ASK_MAX: Duration = Duration::from_secs(15 * 60);

/// The well-known routers, as other clients ship them.
pub const DEFAULT_BOOTSTRAP: [&str; 3] = [
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
];

/// `[dht]` for the swarm.
#[derive(Debug, Clone)]
pub struct DhtConfig {
    pub enabled: bool,
    /// `host:port` to join through.
    pub bootstrap: Vec<String>,
    /// Where the routing table is kept across restarts (`None`: not kept).
    pub state_file: Option<PathBuf>,
}

impl Default for DhtConfig {
    fn default() -> Self {
        DhtConfig {
            enabled: true,
            bootstrap: DEFAULT_BOOTSTRAP.iter().map(|s| s.to_string()).collect(),
            state_file: None,
        }
    }
}

/// What a torrent asks of the DHT.
#[derive(Debug, Clone)]
pub enum DhtRequest {
    /// Peers of `info_hash` for a torrent on `shard`; with `announce`, our port is
    /// announced to the closest nodes too.
    Lookup {
        info_hash: InfoHash,
        shard: ShardId,
        announce: bool,
    },
    /// A peer's BEP 5 `port` message: a node to ping and, if it answers, to keep.
    Node(SocketAddr),
}

/// When a torrent asks next: at once, then 5 s, 10 s, ... up to 15 min.
pub struct AskSchedule {
    next: Duration,
    gap: Duration,
}

impl AskSchedule {
    pub fn new(now: Duration) -> Self {
        AskSchedule {
            next: now,
            gap: ASK_FIRST,
        }
    }

    /// Whether a lookup is due at `now`; if so, the next one is scheduled.
    pub fn due(&mut self, now: Duration) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + self.gap;
        self.gap = (self.gap * 2).min(ASK_MAX);
        true
    }

    pub fn next(&self) -> Duration {
        self.next
    }
}

/// Asks shard 0 for a lookup. False if its inbox was full (the torrent asks again later).
pub fn ask(to: &inbox::Sender<Command>, request: DhtRequest) -> bool {
    to.try_send(Command::Dht(request)).is_ok()
}

/// Counters, for logs.
#[derive(Default)]
struct Counters {
    requests_dropped: Cell<u64>,
    peers_found: Cell<u64>,
    peers_undelivered: Cell<u64>,
    send_failed: Cell<u64>,
}

/// The node and its socket, on shard 0.
pub struct DhtService {
    node: RefCell<Node>,
    socket: UdpSocket,
    clock: Clock,
    port: u16,
    pending: RefCell<VecDeque<(InfoHash, ShardId, bool)>>,
    lookups: RefCell<HashMap<LookupId, (InfoHash, ShardId)>>,
    inboxes: Vec<inbox::Sender<Command>>,
    alarm: Alarm,
    counters: Counters,
    config: DhtConfig,
    dns: Rc<DnsCache>,
}

impl DhtService {
    /// Binds the UDP socket on `listen:port` and builds the node (from the saved routing
    /// table when there is one). `None` when the socket cannot be bound: the swarm then
    /// runs without the DHT, which is logged.
    pub fn start(
        config: DhtConfig,
        listen: IpAddr,
        port: u16,
        clock: Clock,
        seed: u64,
        inboxes: Vec<inbox::Sender<Command>>,
        dns: Option<Rc<DnsCache>>,
    ) -> Option<Rc<DhtService>> {
        let Some(dns) = dns else {
            tracing::warn!("DHT off: cannot start its resolver threads");
            return None;
        };
        let socket = match UdpSocket::bind((listen, port)) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(port, error = %e, "DHT off: cannot bind its UDP socket");
                return None;
            }
        };
        let now = clock.now();
        let saved = config
            .state_file
            .as_ref()
            .and_then(|p| std::fs::read(p).ok());
        let id = saved
            .as_deref()
            .and_then(|b| Node::snapshot_id(b).ok())
            .unwrap_or_else(|| random_id(seed));
        let node_config = Config {
            seed,
            ..Config::default()
        };
        let mut node = Node::new(id, node_config, now);
        if let Some(bytes) = &saved {
            match node.load_routing_table(now, bytes) {
                Ok(n) => tracing::info!(nodes = n, "DHT routing table loaded"),
                Err(e) => tracing::warn!(error = %e, "DHT routing table file ignored"),
            }
        }
        tracing::info!(port, "DHT node on UDP");
        Some(Rc::new(DhtService {
            node: RefCell::new(node),
            socket,
            clock,
            port,
            pending: RefCell::default(),
            lookups: RefCell::default(),
            inboxes,
            alarm: Alarm::default(),
            counters: Counters::default(),
            config,
            dns,
        }))
    }

    /// Takes a request from the shard's inbox (what it costs the shard: a queue push).
    pub fn request(&self, request: DhtRequest) {
        match request {
            DhtRequest::Lookup {
                info_hash,
                shard,
                announce,
            } => {
                let mut pending = self.pending.borrow_mut();
                if let Some(p) = pending.iter_mut().find(|p| p.0 == info_hash) {
                    p.2 |= announce;
                } else if pending.len() >= PENDING_MAX {
                    let n = self.counters.requests_dropped.get() + 1;
                    self.counters.requests_dropped.set(n);
                    tracing::debug!(dropped = n, "DHT lookup queue full; request dropped");
                } else {
                    pending.push_back((info_hash, shard, announce));
                }
            }
            DhtRequest::Node(addr) => {
                let now = self.clock.now();
                self.node.borrow_mut().ping_addr(now, addr);
            }
        }
        self.alarm.ring();
    }

    /// Runs until dropped: datagrams in, timers, the queue of lookups, datagrams out.
    pub async fn run(self: Rc<Self>) {
        // Ended with this task: dropping a glommio task handle cancels the task.
        let _receiving = glommio::spawn_local(self.clone().receive());
        let _joining = glommio::spawn_local(self.clone().join());
        let mut next_save = self.clock.now() + SAVE_EVERY;
        loop {
            let now = self.clock.now();
            {
                let mut node = self.node.borrow_mut();
                if node.poll_timeout().is_some_and(|t| t <= now) {
                    node.handle_timeout(now);
                }
            }
            self.start_pending(now);
            self.flush().await;
            if now >= next_save {
                next_save = now + SAVE_EVERY;
                self.save();
            }
            let now = self.clock.now();
            let nap = self
                .node
                .borrow()
                .poll_timeout()
                .map_or(TICK_MAX, |t| t.saturating_sub(now).min(TICK_MAX));
            self.alarm.sleep(nap.max(Duration::from_millis(1))).await;
        }
    }

    /// Writes the routing table to its file, if one is configured.
    pub fn save(&self) {
        let Some(path) = &self.config.state_file else {
            return;
        };
        let bytes = self.node.borrow().routing_table_snapshot();
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, &bytes).and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), error = %e, "cannot save the DHT routing table");
        }
    }

    async fn receive(self: Rc<Self>) {
        let mut buf = vec![0u8; 4096];
        loop {
            match self.socket.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    let now = self.clock.now();
                    self.node.borrow_mut().handle_packet(now, from, &buf[..n]);
                    self.flush().await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "DHT receive failed");
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Resolves the bootstrap hosts (off the shard) and joins; again while the table
    /// stays empty.
    async fn join(self: Rc<Self>) {
        loop {
            if self.node.borrow().table().is_empty() {
                let mut addrs = Vec::new();
                for entry in &self.config.bootstrap {
                    let Some((host, port)) = split_host_port(entry) else {
                        tracing::warn!(entry, "DHT bootstrap entry is not HOST:PORT; skipped");
                        continue;
                    };
                    match self.dns.lookup(host, port).await {
                        Ok(addr) => addrs.push(addr),
                        Err(e) => {
                            tracing::debug!(entry, error = %e, "DHT bootstrap host unresolved")
                        }
                    }
                }
                if !addrs.is_empty() {
                    let now = self.clock.now();
                    let _ = self.node.borrow_mut().bootstrap(now, &addrs);
                    self.alarm.ring();
                }
            }
            glommio::timer::sleep(REBOOTSTRAP_EVERY).await;
        }
    }

    /// Starts waiting lookups while the node has room and nodes to start from.
    fn start_pending(&self, now: Duration) {
        loop {
            let Some((info_hash, shard, announce)) = self.pending.borrow().front().copied() else {
                return;
            };
            let started = {
                let mut node = self.node.borrow_mut();
                if announce {
                    node.announce(now, info_hash, Some(self.port))
                } else {
                    node.get_peers(now, info_hash)
                }
            };
            match started {
                Ok(id) => {
                    self.pending.borrow_mut().pop_front();
                    self.lookups.borrow_mut().insert(id, (info_hash, shard));
                    // What others announced to us alone: no lookup would find it.
                    let stored = self.node.borrow_mut().stored_peers(now, info_hash);
                    if !stored.is_empty() {
                        let peers = stored.into_iter().map(SocketAddr::V4).collect();
                        self.deliver(info_hash, shard, peers);
                    }
                }
                // Wait: for a lookup to end, or for nodes (the bootstrap or a `port`).
                Err(DhtError::Busy { .. } | DhtError::NoNodes) => return,
            }
        }
    }

    /// Sends what the node queued and routes its events.
    async fn flush(&self) {
        let mut out = Vec::new();
        let mut events = Vec::new();
        {
            let mut node = self.node.borrow_mut();
            while let Some(t) = node.poll_transmit() {
                out.push(t);
            }
            while let Some(e) = node.poll_event() {
                events.push(e);
            }
        }
        for event in events {
            match event {
                Event::Peers {
                    lookup,
                    info_hash,
                    peers,
                } => {
                    let Some(&(_, shard)) = self.lookups.borrow().get(&lookup) else {
                        continue;
                    };
                    let peers = peers.into_iter().map(SocketAddr::V4).collect();
                    self.deliver(info_hash, shard, peers);
                }
                Event::LookupDone { lookup, stats, .. } => {
                    if let Some((info_hash, _)) = self.lookups.borrow_mut().remove(&lookup) {
                        tracing::debug!(torrent = %info_hash, ?stats, "DHT lookup done");
                    }
                    self.alarm.ring();
                }
                Event::IdChanged { id, external_ip } => {
                    tracing::info!(%external_ip, id = ?id.0, "DHT id changed (BEP 42)");
                }
            }
        }
        for t in out {
            if self.socket.send_to(&t.bytes, t.dest).await.is_err() {
                self.counters
                    .send_failed
                    .set(self.counters.send_failed.get() + 1);
            }
        }
    }

    fn deliver(&self, info_hash: InfoHash, shard: ShardId, mut peers: Vec<SocketAddr>) {
        peers.truncate(PEERS_PER_MESSAGE_MAX);
        let n = peers.len() as u64;
        let Some(to) = self.inboxes.get(shard.0 as usize) else {
            return;
        };
        if to.try_send(Command::DhtPeers { info_hash, peers }).is_ok() {
            self.counters
                .peers_found
                .set(self.counters.peers_found.get() + n);
            tracing::debug!(torrent = %info_hash, peers = n, "DHT peers found");
        } else {
            self.counters
                .peers_undelivered
                .set(self.counters.peers_undelivered.get() + n);
        }
    }
}

fn random_id(seed: u64) -> NodeId {
    let mut id = [0u8; 20];
    let mut x = seed;
    for chunk in id.chunks_mut(8) {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let bytes = (x ^ (x >> 29)).to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    NodeId(id)
}

/// `host:port`, `[v6]:port`.
pub fn split_host_port(entry: &str) -> Option<(&str, u16)> {
    let (host, port) = entry.rsplit_once(':')?;
    let port = port.parse().ok()?;
    (!host.is_empty()).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asks_back_off_to_fifteen_minutes() {
        let mut s = AskSchedule::new(Duration::ZERO);
        assert!(s.due(Duration::ZERO));
        assert!(!s.due(Duration::from_secs(4)));
        assert!(s.due(Duration::from_secs(5)));
        assert_eq!(s.next(), Duration::from_secs(15));
        let mut now = s.next();
        for _ in 0..20 {
            assert!(s.due(now));
            now = s.next();
        }
        assert!(s.gap == ASK_MAX);
    }

    #[test]
    fn host_port_entries() {
        assert_eq!(
            split_host_port("router.bittorrent.com:6881"),
            Some(("router.bittorrent.com", 6881))
        );
        assert_eq!(split_host_port("[::1]:6881"), Some(("[::1]", 6881)));
        assert_eq!(split_host_port("nohost"), None);
        assert_eq!(split_host_port(":1"), None);
        assert_eq!(split_host_port("a:99999"), None);
    }
}
