//! [`Node`]: one DHT node, tying the codec, routing table, tokens, storage, limiter and
//! lookups together behind a quinn-proto style interface.
//!
//! Call pattern for the owner of the UDP socket:
//! - on every datagram: [`Node::handle_packet`];
//! - when the time [`Node::poll_timeout`] returned has come: [`Node::handle_timeout`];
//! - after either, and after every command: drain [`Node::poll_transmit`] into the socket
//!   and [`Node::poll_event`] into the application, then ask `poll_timeout` again.
//!
//! Bounds (all in [`Config`]): outstanding transactions, lookups, queued datagrams and
//! queued events are capped; each field's doc says what happens at the cap.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use thiserror::Error;

use super::id::NodeId;
use super::krpc::{self, Body, CompactNode, ErrorBody, Message, Query, Response};
use super::limiter::{Limiter, LimiterConfig};
use super::lookup::{Lookup, LookupId, LookupKind, LookupStats};
use super::storage::{Storage, StorageConfig};
use super::table::{Heard, Inserted, Table, TableConfig, BUCKETS};
use super::token::Tokens;
use crate::hash::InfoHash;
use crate::rng::SplitMix64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Seeds every random choice (transaction ids, token secrets, refresh targets), so a
    /// run replays exactly.
    pub seed: u64,
    pub table: TableConfig,
    pub storage: StorageConfig,
    pub limiter: LimiterConfig,
    /// Queries in flight per lookup.
    pub alpha: usize,
    /// How long a query waits for its answer before it counts as failed.
    pub query_timeout: Duration,
    /// How long a lookup's query waits before the lookup stops waiting for it (it may still
    /// answer until `query_timeout`): a lost packet or a dead node then costs a lookup this,
    /// not the full timeout.
    pub query_stall: Duration,
    /// Lookups at once; a command beyond it fails with [`DhtError::Busy`]. Bucket refreshes
    /// only start while fewer than half are in use.
    pub lookups_max: usize,
    /// Outstanding queries. At the cap, lookups wait for a slot and pings are skipped.
    pub transactions_max: usize,
    /// Nodes taken from one answer; the rest are ignored (a hostile node cannot flood a
    /// lookup with thousands of made-up nodes).
    pub nodes_per_response_max: usize,
    /// Peers put in one `get_peers` answer (a random selection when more are stored).
    pub values_per_response_max: usize,
    /// Distinct peers one lookup collects; further ones are not reported.
    pub peers_per_lookup_max: usize,
    /// Datagrams queued for the socket; beyond it new ones are dropped and counted (queries
    /// among them then time out like lost packets).
    pub transmits_max: usize,
    /// Events queued for the application; beyond it new ones are dropped and counted.
    pub events_max: usize,
    /// BEP 42: do not add nodes from public addresses whose id does not match the address.
    /// Off by default, as in libtorrent, because many live nodes still do not comply.
    pub enforce_node_id: bool,
    /// BEP 42: once enough answers agree on our external address and our id does not match
    /// it, take a matching id (the routing table is rebuilt around it).
    pub adopt_bep42_id: bool,
    /// Housekeeping period: token rotation, expiry, bucket refresh, pings.
    pub maintenance_every: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            seed: 0,
            table: TableConfig::default(),
            storage: StorageConfig::default(),
            limiter: LimiterConfig::default(),
            alpha: 3,
            query_timeout: Duration::from_secs(2),
            query_stall: Duration::from_secs(1),
            lookups_max: 16,
            transactions_max: 512,
            nodes_per_response_max: 16,
            values_per_response_max: 50,
            peers_per_lookup_max: 500,
            transmits_max: 1024,
            events_max: 1024,
            enforce_node_id: false,
            adopt_bep42_id: true,
            maintenance_every: Duration::from_secs(5),
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Peers a `get_peers` or announce lookup found (only ones not reported before by it).
    Peers {
        lookup: LookupId,
        info_hash: InfoHash,
        peers: Vec<SocketAddrV4>,
    },
    /// A lookup finished (bootstrap, refresh, get_peers or announce).
    LookupDone {
        lookup: LookupId,
        target: NodeId,
        kind: LookupKind,
        internal: bool,
        stats: LookupStats,
    },
    /// BEP 42: our id changed to match the external address answers agreed on.
    IdChanged { id: NodeId, external_ip: Ipv4Addr },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DhtError {
    #[error("{max} lookups are already running")]
    Busy { max: usize },
    #[error("no node to start from: the routing table is empty and no address was given")]
    NoNodes,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SnapshotError {
    #[error("not a routing table snapshot (bad magic)")]
    BadMagic,
    #[error("snapshot length {0} is not a header plus whole 26-byte entries")]
    BadLength(usize),
}

const SNAPSHOT_MAGIC: &[u8; 8] = b"ccbtdht1";

/// Counters for what the node saw and refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    pub packets_in: u64,
    pub malformed: u64,
    pub ipv6_ignored: u64,
    pub queries_in: u64,
    pub rate_limited: u64,
    pub responses_in: u64,
    /// Responses and errors whose transaction id we did not issue, or that came from
    /// another address than the one asked.
    pub unknown_transaction: u64,
    /// Answers from a node other than the one asked (the id changed).
    pub wrong_id: u64,
    pub bad_tokens: u64,
    pub bep42_rejected: u64,
    pub queries_out: u64,
    pub timeouts: u64,
    pub transactions_full: u64,
    pub transmits_dropped: u64,
    pub events_dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Lookup(LookupId),
    Ping,
    Announce,
}

#[derive(Debug, Clone)]
struct Transaction {
    dest: SocketAddrV4,
    node: Option<NodeId>,
    deadline: Duration,
    /// For lookup queries: when the lookup should look again (the query stalls).
    stall_at: Option<Duration>,
    purpose: Purpose,
}

/// Distinct responders counted towards our external address in one round; a round with no
/// winner by then starts over.
const VOTERS_MAX: usize = 64;
/// Agreeing votes needed before the address is believed.
const VOTES_NEEDED: u32 = 5;
/// Questionable nodes pinged per maintenance tick; buckets refreshed per tick.
const PINGS_PER_TICK: usize = 4;
const REFRESHES_PER_TICK: usize = 2;
/// BEP 51 samples per answer and the interval we ask others to wait between samples.
const SAMPLES_MAX: usize = 20;
const SAMPLE_INTERVAL_S: i64 = 60;

/// One DHT node. See the module doc for the call pattern.
#[derive(Debug)]
pub struct Node {
    id: NodeId,
    config: Config,
    table: Table,
    tokens: Tokens,
    storage: Storage,
    limiter: Limiter,
    rng: SplitMix64,
    transactions: HashMap<u16, Transaction>,
    lookups: BTreeMap<LookupId, Lookup>,
    next_lookup: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_maintenance: Duration,
    /// External address votes: who voted, and the tally per address.
    voters: HashSet<Ipv4Addr>,
    votes: HashMap<Ipv4Addr, u32>,
    external_ip: Option<Ipv4Addr>,
    stats: Stats,
}

impl Node {
    pub fn new(id: NodeId, config: Config, now: Duration) -> Node {
        let mut rng = SplitMix64::new(config.seed);
        let tokens = Tokens::new(rng.next_u64(), now);
        Node {
            id,
            table: Table::new(id, config.table, now),
            tokens,
            storage: Storage::new(config.storage),
            limiter: Limiter::new(config.limiter),
            rng,
            transactions: HashMap::new(),
            lookups: BTreeMap::new(),
            next_lookup: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_maintenance: now + config.maintenance_every,
            voters: HashSet::new(),
            votes: HashMap::new(),
            external_ip: None,
            stats: Stats::default(),
            config,
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn table(&self) -> &Table {
        &self.table
    }

    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Our address as enough answering nodes saw it (BEP 42 `ip`), once known.
    pub fn external_ip(&self) -> Option<Ipv4Addr> {
        self.external_ip
    }

    pub fn lookups_running(&self) -> usize {
        self.lookups.len()
    }

    pub fn transactions_outstanding(&self) -> usize {
        self.transactions.len()
    }

    /// Next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When to call [`handle_timeout`](Self::handle_timeout) next.
    pub fn poll_timeout(&self) -> Option<Duration> {
        let tx = self
            .transactions
            .values()
            .map(|t| t.stall_at.map_or(t.deadline, |s| s.min(t.deadline)))
            .min();
        Some(tx.map_or(self.next_maintenance, |t| t.min(self.next_maintenance)))
    }

    /// Joins the network through `addrs` (and whatever the table already holds): a
    /// `find_node` lookup for our own id.
    pub fn bootstrap(&mut self, now: Duration, addrs: &[SocketAddr]) -> Result<LookupId, DhtError> {
        let mut seeds: Vec<(Option<NodeId>, SocketAddrV4)> = addrs
            .iter()
            .filter_map(|a| match a {
                SocketAddr::V4(a) => Some((None, *a)),
                SocketAddr::V6(_) => None,
            })
            .take(crate::dht::lookup::CANDIDATES_MAX / 2)
            .collect();
        seeds.extend(
            self.table
                .closest(now, &self.id, self.config.table.k)
                .into_iter()
                .map(|n| (Some(n.id), n.addr)),
        );
        if seeds.is_empty() {
            return Err(DhtError::NoNodes);
        }
        self.start_lookup(now, self.id, LookupKind::FindNode, seeds, false)
    }

    /// Looks for peers of `info_hash`; they arrive as [`Event::Peers`].
    pub fn get_peers(&mut self, now: Duration, info_hash: InfoHash) -> Result<LookupId, DhtError> {
        self.table_lookup(now, info_hash.into(), LookupKind::GetPeers)
    }

    /// Looks for peers of `info_hash` and then announces us on `port` to the closest nodes
    /// (`None`: BEP 5's `implied_port`, the source port of our packets).
    pub fn announce(
        &mut self,
        now: Duration,
        info_hash: InfoHash,
        port: Option<u16>,
    ) -> Result<LookupId, DhtError> {
        let kind = LookupKind::Announce {
            port: port.unwrap_or(0),
            implied_port: port.is_none(),
        };
        self.table_lookup(now, info_hash.into(), kind)
    }

    fn table_lookup(
        &mut self,
        now: Duration,
        target: NodeId,
        kind: LookupKind,
    ) -> Result<LookupId, DhtError> {
        let seeds: Vec<_> = self
            .table
            .closest(now, &target, self.config.table.k * 2)
            .into_iter()
            .map(|n| (Some(n.id), n.addr))
            .collect();
        if seeds.is_empty() {
            return Err(DhtError::NoNodes);
        }
        self.start_lookup(now, target, kind, seeds, false)
    }

    fn start_lookup(
        &mut self,
        now: Duration,
        target: NodeId,
        kind: LookupKind,
        seeds: Vec<(Option<NodeId>, SocketAddrV4)>,
        internal: bool,
    ) -> Result<LookupId, DhtError> {
        if self.lookups.len() >= self.config.lookups_max {
            return Err(DhtError::Busy {
                max: self.config.lookups_max,
            });
        }
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        let mut l = Lookup::new(
            id,
            target,
            kind,
            seeds,
            now,
            self.config.peers_per_lookup_max,
        );
        l.internal = internal;
        l.stall_after = self.config.query_stall;
        self.lookups.insert(id, l);
        self.drive(now, id);
        Ok(id)
    }

    /// Peers other nodes announced to us for `info_hash` (at most
    /// `values_per_response_max`, a random selection when more are stored). A lookup only
    /// asks other nodes, so the owner adds these to what it finds: the swarm may have
    /// announced to us alone.
    pub fn stored_peers(&mut self, now: Duration, info_hash: InfoHash) -> Vec<SocketAddrV4> {
        let max = self.config.values_per_response_max;
        self.storage
            .peers(now, &info_hash.into(), max, &mut self.rng)
    }

    /// Pings a node known only by its address (BEP 5's `port` message from a peer): if it
    /// answers, it goes into the routing table like any other. Skipped (false) for IPv6
    /// and when the outstanding queries are at their cap.
    pub fn ping_addr(&mut self, now: Duration, addr: SocketAddr) -> bool {
        let SocketAddr::V4(addr) = addr else {
            return false;
        };
        let q = Query::Ping { id: self.id };
        self.send_query(now, addr, None, q, Purpose::Ping)
    }

    /// A compact form of the routing table to keep across restarts: a magic, our id, then
    /// 26-byte compact node infos. At most 160 × k entries.
    pub fn routing_table_snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(28 + self.table.len() * krpc::COMPACT_NODE_LEN);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&self.id.0);
        for e in self.table.nodes() {
            out.extend_from_slice(&e.compact().to_bytes());
        }
        out
    }

    /// The id a snapshot was taken under, to start a [`Node`] with the same id.
    pub fn snapshot_id(bytes: &[u8]) -> Result<NodeId, SnapshotError> {
        parse_snapshot(bytes).map(|_entries| ())?;
        Ok(NodeId(bytes[8..28].try_into().expect("checked length")))
    }

    /// Adds a snapshot's nodes to the table as not yet heard from (they are pinged and
    /// become good when they answer). Returns how many were added; entries beyond the
    /// table's room are skipped.
    pub fn load_routing_table(
        &mut self,
        now: Duration,
        bytes: &[u8],
    ) -> Result<usize, SnapshotError> {
        let entries = parse_snapshot(bytes)?;
        let mut added = 0;
        for n in entries.take(BUCKETS * self.config.table.k) {
            if self.table.heard(now, n.id, n.addr, Heard::Query) == Inserted::Added {
                added += 1;
            }
        }
        Ok(added)
    }

    /// Handles one datagram from `from`.
    pub fn handle_packet(&mut self, now: Duration, from: SocketAddr, packet: &[u8]) {
        self.stats.packets_in += 1;
        let SocketAddr::V4(from) = from else {
            self.stats.ipv6_ignored += 1;
            return;
        };
        let msg = match Message::decode(packet) {
            Ok(m) => m,
            Err(bad) => {
                self.stats.malformed += 1;
                if let (true, Some(tid)) = (bad.was_query, bad.tid) {
                    if self.limiter.allow(now, *from.ip()) {
                        let body = Body::Error(ErrorBody {
                            code: bad.error.reply_code(),
                            message: bad.error.to_string(),
                        });
                        self.reply(from, tid, body);
                    }
                }
                return;
            }
        };
        match msg.body {
            Body::Query(q) => {
                self.stats.queries_in += 1;
                if !self.limiter.allow(now, *from.ip()) {
                    self.stats.rate_limited += 1;
                    return;
                }
                self.on_query(now, from, msg.tid, q, msg.read_only);
            }
            Body::Response(r) => {
                let Some(tx) = self.take_transaction(&msg.tid, from) else {
                    return;
                };
                self.stats.responses_in += 1;
                self.on_response(now, from, tx, r, msg.ip, msg.read_only);
            }
            Body::Error(_) => {
                let Some(tx) = self.take_transaction(&msg.tid, from) else {
                    return;
                };
                // The node is alive but refused: the lookup moves on, the table keeps it.
                if let Purpose::Lookup(lid) = tx.purpose {
                    if let Some(l) = self.lookups.get_mut(&lid) {
                        l.on_failure(from);
                    }
                    self.drive(now, lid);
                }
            }
        }
    }

    fn take_transaction(&mut self, tid: &[u8], from: SocketAddrV4) -> Option<Transaction> {
        let key = <[u8; 2]>::try_from(tid).ok().map(u16::from_be_bytes);
        match key.and_then(|k| self.transactions.get(&k).map(|t| (k, t.dest))) {
            Some((k, dest)) if dest == from => self.transactions.remove(&k),
            _ => {
                self.stats.unknown_transaction += 1;
                None
            }
        }
    }

    fn bep42_ok(&mut self, id: &NodeId, addr: &SocketAddrV4) -> bool {
        if !self.config.enforce_node_id || id.is_valid_for(*addr.ip()) {
            return true;
        }
        self.stats.bep42_rejected += 1;
        false
    }

    fn on_query(
        &mut self,
        now: Duration,
        from: SocketAddrV4,
        tid: Vec<u8>,
        q: Query,
        read_only: bool,
    ) {
        let sender = q.sender();
        if !read_only && sender != self.id && self.bep42_ok(&sender, &from) {
            if let Inserted::Waiting { ping: Some(p) } =
                self.table.heard(now, sender, from, Heard::Query)
            {
                self.ping(now, p);
            }
        }
        let k = self.config.table.k;
        let mut r = Response {
            id: self.id,
            ..Response::default()
        };
        match q {
            Query::Ping { .. } => {}
            Query::FindNode { target, .. } => r.nodes = self.table.closest(now, &target, k),
            Query::GetPeers { info_hash, .. } => {
                r.token = Some(self.tokens.issue(now, *from.ip()).to_vec());
                r.values = self.storage.peers(
                    now,
                    &info_hash,
                    self.config.values_per_response_max,
                    &mut self.rng,
                );
                r.nodes = self.table.closest(now, &info_hash, k);
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                ..
            } => {
                if !self.tokens.accepts(now, *from.ip(), &token) {
                    self.stats.bad_tokens += 1;
                    let body = Body::Error(ErrorBody {
                        code: krpc::ERROR_PROTOCOL,
                        message: "bad token".into(),
                    });
                    return self.reply(from, tid, body);
                }
                let port = if implied_port { from.port() } else { port };
                self.storage
                    .announce(now, info_hash, SocketAddrV4::new(*from.ip(), port));
            }
            Query::SampleInfohashes { target, .. } => {
                r.samples = self.storage.sample(SAMPLES_MAX, &mut self.rng);
                r.num = Some(self.storage.hash_count() as i64);
                r.interval = Some(SAMPLE_INTERVAL_S);
                r.nodes = self.table.closest(now, &target, k);
            }
        }
        self.reply(from, tid, Body::Response(r));
    }

    fn reply(&mut self, to: SocketAddrV4, tid: Vec<u8>, body: Body) {
        let msg = Message {
            tid,
            body,
            ip: Some(to),
            read_only: false,
        };
        self.push_transmit(to, msg.encode());
    }

    fn push_transmit(&mut self, to: SocketAddrV4, bytes: Vec<u8>) {
        if self.transmits.len() >= self.config.transmits_max {
            self.stats.transmits_dropped += 1;
            return;
        }
        self.transmits.push_back(Transmit {
            dest: SocketAddr::V4(to),
            bytes,
        });
    }

    fn push_event(&mut self, e: Event) {
        if self.events.len() >= self.config.events_max {
            self.stats.events_dropped += 1;
            return;
        }
        self.events.push_back(e);
    }

    /// Sends a query; false if the transaction table is full.
    fn send_query(
        &mut self,
        now: Duration,
        dest: SocketAddrV4,
        node: Option<NodeId>,
        query: Query,
        purpose: Purpose,
    ) -> bool {
        if self.transactions.len() >= self.config.transactions_max {
            self.stats.transactions_full += 1;
            return false;
        }
        let tid = loop {
            let t = self.rng.next_u32() as u16;
            if !self.transactions.contains_key(&t) {
                break t;
            }
        };
        self.transactions.insert(
            tid,
            Transaction {
                dest,
                node,
                deadline: now + self.config.query_timeout,
                stall_at: matches!(purpose, Purpose::Lookup(_))
                    .then(|| now + self.config.query_stall),
                purpose,
            },
        );
        let msg = Message {
            tid: tid.to_be_bytes().to_vec(),
            body: Body::Query(query),
            ip: None,
            read_only: false,
        };
        self.stats.queries_out += 1;
        self.push_transmit(dest, msg.encode());
        true
    }

    fn ping(&mut self, now: Duration, n: CompactNode) {
        let q = Query::Ping { id: self.id };
        self.send_query(now, n.addr, Some(n.id), q, Purpose::Ping);
    }

    fn on_response(
        &mut self,
        now: Duration,
        from: SocketAddrV4,
        tx: Transaction,
        r: Response,
        our_ip: Option<SocketAddrV4>,
        read_only: bool,
    ) {
        if tx.node.is_some_and(|id| id != r.id) {
            self.stats.wrong_id += 1;
            if let Purpose::Lookup(lid) = tx.purpose {
                if let Some(l) = self.lookups.get_mut(&lid) {
                    l.on_failure(from);
                }
                self.drive(now, lid);
            }
            return;
        }
        if !read_only && self.bep42_ok(&r.id, &from) {
            self.table.heard(now, r.id, from, Heard::Response);
        }
        if let Some(ip) = our_ip {
            self.vote_external_ip(now, *from.ip(), *ip.ip());
        }
        if let Purpose::Lookup(lid) = tx.purpose {
            let own = self.id;
            let nodes_max = self.config.nodes_per_response_max;
            let Some(l) = self.lookups.get_mut(&lid) else {
                return;
            };
            let fresh = l.on_response(from, &r, &own, nodes_max);
            let target = l.target;
            if !fresh.is_empty() {
                self.push_event(Event::Peers {
                    lookup: lid,
                    info_hash: target.into(),
                    peers: fresh,
                });
            }
            self.drive(now, lid);
        }
    }

    fn vote_external_ip(&mut self, now: Duration, voter: Ipv4Addr, ip: Ipv4Addr) {
        if self.voters.len() >= VOTERS_MAX {
            // No address won this round: start another, so voting never stops for good.
            self.voters.clear();
            self.votes.clear();
        }
        if !self.voters.insert(voter) {
            return;
        }
        let tally = self.votes.entry(ip).or_insert(0);
        *tally += 1;
        if *tally < VOTES_NEEDED || self.external_ip == Some(ip) {
            return;
        }
        self.external_ip = Some(ip);
        // Start a fresh round so a later change of address can be noticed.
        self.voters.clear();
        self.votes.clear();
        if self.config.adopt_bep42_id && !self.id.is_valid_for(ip) {
            let mut random = [0u8; 20];
            for chunk in random.chunks_mut(8) {
                let r = self.rng.next_u64().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            self.change_id(now, NodeId::bep42(ip, &NodeId(random)));
            self.push_event(Event::IdChanged {
                id: self.id,
                external_ip: ip,
            });
        }
    }

    /// Takes `id` as ours: the table is rebuilt around it from the nodes we know.
    fn change_id(&mut self, now: Duration, id: NodeId) {
        let old = std::mem::replace(&mut self.table, Table::new(id, self.config.table, now));
        self.id = id;
        for e in old.nodes() {
            let how = if e.last_response.is_some() {
                Heard::Response
            } else {
                Heard::Query
            };
            self.table.heard(e.last_heard, e.id, e.addr, how);
        }
    }

    /// Sends what lookup `lid` may send now, and finishes it if it is done.
    fn drive(&mut self, now: Duration, lid: LookupId) {
        let Some(mut l) = self.lookups.remove(&lid) else {
            return;
        };
        let (alpha, k) = (self.config.alpha, self.config.table.k);
        while let Some((node, addr)) = l.next_query(now, alpha, k) {
            let q = match l.kind {
                LookupKind::FindNode => Query::FindNode {
                    id: self.id,
                    target: l.target,
                },
                _ => Query::GetPeers {
                    id: self.id,
                    info_hash: l.target,
                },
            };
            if !self.send_query(now, addr, node, q, Purpose::Lookup(lid)) {
                l.unsend(addr);
                break;
            }
        }
        if !l.is_done(now, k) {
            self.lookups.insert(lid, l);
            return;
        }
        if let LookupKind::Announce { port, implied_port } = l.kind {
            for (id, addr, token) in l.announce_targets(k) {
                let q = Query::AnnouncePeer {
                    id: self.id,
                    info_hash: l.target,
                    port,
                    implied_port,
                    token,
                };
                if self.send_query(now, addr, Some(id), q, Purpose::Announce) {
                    l.stats.announced += 1;
                }
            }
        }
        if l.kind == LookupKind::FindNode && !l.internal && l.target == self.id {
            // A bootstrap: refresh every bucket over the next ticks (Kademlia's join).
            self.table.refresh_all_soon();
        }
        l.stats.duration = now.saturating_sub(l.started);
        self.push_event(Event::LookupDone {
            lookup: lid,
            target: l.target,
            kind: l.kind,
            internal: l.internal,
            stats: l.stats,
        });
    }

    /// Handles expired queries and housekeeping due at `now`.
    pub fn handle_timeout(&mut self, now: Duration) {
        let mut expired: Vec<u16> = self
            .transactions
            .iter()
            .filter(|(_, t)| t.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        expired.sort_unstable();
        let mut touched = Vec::new();
        for t in self.transactions.values_mut() {
            if t.stall_at.is_some_and(|s| s <= now) {
                t.stall_at = None;
                if let Purpose::Lookup(lid) = t.purpose {
                    touched.push(lid);
                }
            }
        }
        for k in expired {
            let tx = self.transactions.remove(&k).expect("listed above");
            self.stats.timeouts += 1;
            if let Some(id) = tx.node {
                self.table.failed(now, id, tx.dest);
            }
            if let Purpose::Lookup(lid) = tx.purpose {
                if let Some(l) = self.lookups.get_mut(&lid) {
                    l.on_failure(tx.dest);
                }
                touched.push(lid);
            }
        }
        if now >= self.next_maintenance {
            self.next_maintenance = now + self.config.maintenance_every;
            self.maintain(now);
            touched.extend(self.lookups.keys().copied());
        }
        touched.sort_unstable();
        touched.dedup();
        for lid in touched {
            self.drive(now, lid);
        }
    }

    fn maintain(&mut self, now: Duration) {
        self.tokens.rotate_if_due(now);
        self.storage.expire(now);
        self.limiter.forget_idle(now);
        for n in self.table.to_ping(now, PINGS_PER_TICK) {
            self.ping(now, n);
        }
        if self.table.is_empty() {
            return;
        }
        for i in self
            .table
            .refresh_due(now)
            .into_iter()
            .take(REFRESHES_PER_TICK)
        {
            if self.lookups.len() * 2 >= self.config.lookups_max {
                break;
            }
            let mut random = [0u8; 20];
            for chunk in random.chunks_mut(8) {
                let r = self.rng.next_u64().to_le_bytes();
                chunk.copy_from_slice(&r[..chunk.len()]);
            }
            let target = self.id.with_prefix_of(i, &NodeId(random));
            self.table.mark_refreshed(now, i);
            let seeds: Vec<_> = self
                .table
                .closest(now, &target, self.config.table.k)
                .into_iter()
                .map(|n| (Some(n.id), n.addr))
                .collect();
            let _ = self.start_lookup(now, target, LookupKind::FindNode, seeds, true);
        }
    }

    /// Asserts the node's bounds and internal consistency (tests and simulation).
    pub fn check_invariants(&self) {
        self.table.check_invariants();
        self.storage.check_invariants();
        assert!(self.transactions.len() <= self.config.transactions_max);
        assert!(self.lookups.len() <= self.config.lookups_max);
        assert!(self.transmits.len() <= self.config.transmits_max);
        assert!(self.events.len() <= self.config.events_max);
        for l in self.lookups.values() {
            l.check_invariants();
        }
    }
}

fn parse_snapshot(bytes: &[u8]) -> Result<impl Iterator<Item = CompactNode> + '_, SnapshotError> {
    if bytes.len() < 28 || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err(SnapshotError::BadMagic);
    }
    let body = &bytes[28..];
    if body.len() % krpc::COMPACT_NODE_LEN != 0 {
        return Err(SnapshotError::BadLength(bytes.len()));
    }
    Ok(body
        .chunks_exact(krpc::COMPACT_NODE_LEN)
        .map(|c| CompactNode::from_bytes(c.try_into().expect("26-byte chunk"))))
}

#[cfg(test)]
mod tests;
