//! The simulated world: nodes, connections and the event loop that moves bytes between them.
//!
//! Everything happens on one thread in virtual time, and every random choice comes from one
//! generator seeded by the scenario, so a seed replays a run exactly. Maps that are walked
//! are ordered (`BTreeMap`), never hashed, for the same reason.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ccbt_engine::hash::Sha1;
use ccbt_engine::metainfo::{Layout, LayoutFile, TorrentPath};
use ccbt_engine::session::{
    block_digests, Action, DropReason, Incoming, PeerCaps, PeerKey, Torrent,
};
use ccbt_engine::wire::{decode_message, max_message_len, Message};
use ccbt_engine::{Bitfield, Sha1Digest, BLOCK_LEN};

use crate::disk::Disk;
use crate::events::{Event, NodeId, Queue};
use crate::network::{Conn, ConnId, End, Side};
use crate::report::Report;
use crate::scenario::{Role, Scenario, Script};
use crate::script;

const LISTEN_PORT: u16 = 6881;
/// Candidates a node remembers at most (its tracker answer plus what PEX told it).
const CANDIDATES_MAX: usize = 200;
/// Dials a node starts per tick at most.
const DIALS_PER_TICK: usize = 2;
/// Dials in flight per node at most (the shards allow 16 per torrent).
const DIALLING_MAX: usize = 4;
/// Connections a scripted peer keeps open at most.
const SCRIPT_CONNS: usize = 4;

/// An engine node's torrent and disk.
struct Engine {
    /// `None` while paused by a full disk.
    torrent: Option<Torrent>,
    /// Bumped at each pause: results of work begun before it are ignored.
    generation: u32,
    disk: Disk,
    done_at: Option<Duration>,
}

struct Node {
    role: Role,
    ip: Ipv4Addr,
    uplink: u64,
    uplink_free_at: Duration,
    candidates: Vec<NodeId>,
    /// Open connections by the engine's peer key.
    keys: BTreeMap<PeerKey, ConnId>,
    /// A scripted node's open connections.
    script_conns: BTreeSet<ConnId>,
    /// Open and dialling connections.
    open: usize,
    /// Dials in flight.
    dialling: usize,
    engine: Option<Engine>,
}

impl Node {
    fn torrent(&mut self) -> Option<&mut Torrent> {
        self.engine.as_mut()?.torrent.as_mut()
    }
}

pub struct World {
    sc: Scenario,
    q: Queue,
    rng: fastrand::Rng,
    layout: Layout,
    content: Vec<u8>,
    hashes: Vec<Sha1Digest>,
    max_message: u32,
    nodes: Vec<Node>,
    conns: Vec<Conn>,
    /// Node pairs with a connection open or being dialled, lower id first.
    pairs: BTreeSet<(NodeId, NodeId)>,
    by_ip: HashMap<Ipv4Addr, NodeId>,
    /// Engine nodes whose actions and invariants are due after the current event.
    touched: Vec<NodeId>,
    /// (observer, sender): pieces that failed at the observer holding a corrupt block
    /// from the sender.
    evidence: BTreeMap<(NodeId, NodeId), BTreeSet<u32>>,
    /// Nodes that must complete and have not.
    left: usize,
    report: Report,
}

fn ip_of(node: NodeId) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0001 + node as u32)
}

fn caps(outgoing: bool) -> PeerCaps {
    PeerCaps {
        fast: true,
        extensions: true,
        outgoing,
        dht_port: None,
    }
}

impl World {
    pub fn new(sc: Scenario) -> World {
        let mut rng = fastrand::Rng::with_seed(sc.seed ^ 0x5eed_c0de);
        let file = LayoutFile {
            path: TorrentPath::new([b"content".as_slice()]).expect("a valid name"),
            length: sc.content_len,
            pad: false,
        };
        let layout = Layout::new(sc.piece_len, [file]).expect("a valid layout");
        let mut content = vec![0; sc.content_len as usize];
        rng.fill(&mut content);
        let hashes = content
            .chunks(sc.piece_len as usize)
            .map(Sha1::digest)
            .collect();
        let pieces = layout.piece_count();
        let engines: Vec<NodeId> = (0..sc.roles.len())
            .filter(|&n| sc.roles[n].is_engine())
            .collect();
        let mut nodes = Vec::with_capacity(sc.roles.len());
        for (n, &role) in sc.roles.iter().enumerate() {
            let engine = role.is_engine().then(|| {
                let have = if matches!(role, Role::Seeder | Role::Liar) {
                    Bitfield::full(pieces)
                } else {
                    Bitfield::empty(pieces)
                };
                Engine {
                    torrent: Some(new_torrent(&layout, &have, &sc, n, 0)),
                    generation: 0,
                    disk: Disk::new(have),
                    done_at: None,
                }
            });
            // A tracker's answer: some engine nodes, never itself.
            let mut candidates: Vec<NodeId> = engines.iter().copied().filter(|&m| m != n).collect();
            rng.shuffle(&mut candidates);
            candidates.truncate(sc.candidates);
            nodes.push(Node {
                role,
                ip: ip_of(n),
                uplink: if role == Role::Slow {
                    sc.net.slow_uplink
                } else {
                    sc.net.uplink
                },
                uplink_free_at: Duration::ZERO,
                candidates,
                keys: BTreeMap::new(),
                script_conns: BTreeSet::new(),
                open: 0,
                dialling: 0,
                engine,
            });
        }
        let by_ip = nodes
            .iter()
            .enumerate()
            .map(|(n, node)| (node.ip, n))
            .collect();
        let left = sc.roles.iter().filter(|r| r.must_complete()).count();
        let mut world = World {
            q: Queue::default(),
            rng,
            max_message: max_message_len(pieces),
            layout,
            content,
            hashes,
            nodes,
            conns: Vec::new(),
            pairs: BTreeSet::new(),
            by_ip,
            touched: Vec::new(),
            evidence: BTreeMap::new(),
            left,
            report: Report::new(&sc),
            sc,
        };
        for n in 0..world.nodes.len() {
            let jitter = Duration::from_millis(world.rng.u64(0..1000));
            world.q.after(jitter, Event::Tick(n));
        }
        world
    }

    /// Runs until every node that must complete has, or the time limit passes; then checks
    /// the properties. `Err` names what failed.
    pub fn run(mut self) -> Result<Report, String> {
        let wall = Instant::now();
        self.run_to_end()?;
        self.report.simulated = self.q.now();
        self.report.wall = wall.elapsed();
        self.check_properties()?;
        Ok(self.report)
    }

    fn run_to_end(&mut self) -> Result<(), String> {
        while self.left > 0 {
            let Some(event) = self.q.pop() else {
                return Err("the world went quiet before the swarm completed".into());
            };
            if self.q.now() > self.sc.limit {
                let incomplete = self.describe_incomplete();
                return Err(format!(
                    "{} nodes had not completed after {:?}: {incomplete}",
                    self.left, self.sc.limit,
                ));
            }
            self.report.events += 1;
            self.handle(event);
            self.settle();
        }
        Ok(())
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(n) => self.tick(n),
            Event::Connect { from, to, delay } => self.connect(from, to, delay),
            Event::Arrive { conn, to, bytes } => self.arrive(conn, to, bytes),
            Event::Ack { conn, sender, len } => self.ack(conn, sender, len),
            Event::Close { conn, to } => self.closed_by_other(conn, to),
            Event::Cut { conn } => self.cut(conn),
            Event::StallCheck { conn, side } => self.stall_check(conn, side),
            Event::Hashed {
                node,
                generation,
                piece,
            } => self.hashed(node, generation, piece),
            Event::Resume(n) => self.resume(n),
        }
    }

    fn touch(&mut self, n: NodeId) {
        if self.nodes[n].engine.is_some() && !self.touched.contains(&n) {
            self.touched.push(n);
        }
    }

    /// Carries out what touched torrents asked for, then checks their invariants.
    fn settle(&mut self) {
        let mut i = 0;
        while i < self.touched.len() {
            let n = self.touched[i];
            while let Some(action) = self.nodes[n].torrent().and_then(|t| t.poll_action()) {
                self.act(n, action);
            }
            i += 1;
        }
        for n in std::mem::take(&mut self.touched) {
            if self.sc.check_every_event {
                if let Some(t) = self.nodes[n].torrent() {
                    t.check_invariants();
                }
            }
        }
    }

    fn act(&mut self, n: NodeId, action: Action) {
        match action {
            Action::Wake(key) => {
                if let Some(&conn) = self.nodes[n].keys.get(&key) {
                    let side = self.side_of(conn, n);
                    self.flush(conn, side);
                }
            }
            Action::Disconnect(key, reason) => {
                self.report.dropped(&reason);
                if let Some(&conn) = self.nodes[n].keys.get(&key) {
                    let side = self.side_of(conn, n);
                    if matches!(reason, DropReason::HashFailures(_) | DropReason::BadData) {
                        let other = self.conns[conn].ends[1 - side].node;
                        self.report.bans.push((n, other, self.nodes[other].role));
                    }
                    self.close_end(conn, side);
                }
            }
            Action::Done => {
                let now = self.q.now();
                let node = &mut self.nodes[n];
                let engine = node.engine.as_mut().expect("an engine node");
                if engine.done_at.is_none() {
                    engine.done_at = Some(now);
                    if node.role.must_complete() {
                        self.left -= 1;
                    }
                }
            }
            Action::PexPeers(addrs) => {
                for addr in addrs {
                    let SocketAddr::V4(v4) = addr else { continue };
                    let Some(&m) = self.by_ip.get(v4.ip()) else {
                        continue;
                    };
                    let node = &mut self.nodes[n];
                    if m != n
                        && node.candidates.len() < CANDIDATES_MAX
                        && !node.candidates.contains(&m)
                    {
                        node.candidates.push(m);
                        self.report.pex_learned += 1;
                    }
                }
            }
        }
    }

    fn side_of(&self, conn: ConnId, n: NodeId) -> Side {
        usize::from(self.conns[conn].ends[1].node == n && self.conns[conn].ends[0].node != n)
    }

    fn tick(&mut self, n: NodeId) {
        let now = self.q.now();
        self.touch(n);
        let role = self.nodes[n].role;
        let next = match role {
            Role::Script(script) => {
                let conns: Vec<ConnId> = self.nodes[n].script_conns.iter().copied().collect();
                for conn in conns {
                    let bytes = script::on_tick(script, &self.layout, &mut self.rng);
                    let side = self.side_of(conn, n);
                    self.send(conn, side, bytes);
                }
                if self.nodes[n].open < SCRIPT_CONNS {
                    self.dial(n);
                }
                Duration::from_millis(
                    if script == Script::RequestSpam || script == Script::HaveSpam {
                        200
                    } else {
                        1000
                    },
                )
            }
            _ => {
                let Some(engine) = self.nodes[n].engine.as_mut() else {
                    unreachable!("only scripts lack an engine")
                };
                let dials = match engine.torrent.as_mut() {
                    Some(t) => {
                        t.tick(now);
                        // Seeds wait to be dialled; leechers and liars go looking.
                        role != Role::Seeder && engine.done_at.is_none() || role == Role::Liar
                    }
                    None => false,
                };
                if dials {
                    for _ in 0..DIALS_PER_TICK {
                        let wants = self.nodes[n].torrent().is_some_and(|t| t.wants_peers());
                        if !wants || self.nodes[n].dialling >= DIALLING_MAX {
                            break;
                        }
                        self.dial(n);
                    }
                }
                Duration::from_secs(1)
            }
        };
        self.q.after(next, Event::Tick(n));
    }

    /// Dials a random candidate not connected yet (nor banned, to an engine).
    fn dial(&mut self, n: NodeId) {
        let node = &self.nodes[n];
        let choices: &[NodeId] = if node.role.is_engine() {
            &node.candidates
        } else {
            &[]
        };
        let target = if choices.is_empty() {
            let m = self.rng.usize(..self.nodes.len());
            self.nodes[m].role.is_engine().then_some(m)
        } else {
            Some(choices[self.rng.usize(..choices.len())])
        };
        let Some(m) = target else { return };
        if m == n || self.pairs.contains(&(n.min(m), n.max(m))) {
            return;
        }
        let addr = SocketAddr::from((self.nodes[m].ip, LISTEN_PORT));
        if self.nodes[n].torrent().is_some_and(|t| t.is_banned(addr)) {
            return;
        }
        self.pairs.insert((n.min(m), n.max(m)));
        self.nodes[n].open += 1;
        self.nodes[n].dialling += 1;
        let (lo, hi) = self.sc.net.delay;
        let delay = lo + Duration::from_micros(self.rng.u64(0..=(hi - lo).as_micros() as u64));
        self.report.dials += 1;
        // The TCP handshake and the BitTorrent handshakes: one round trip each way.
        self.q.after(
            4 * delay,
            Event::Connect {
                from: n,
                to: m,
                delay,
            },
        );
    }

    fn connect(&mut self, from: NodeId, to: NodeId, delay: Duration) {
        let now = self.q.now();
        self.nodes[from].dialling -= 1;
        let conn = self.conns.len();
        let pair = (from.min(to), from.max(to));
        let ephemeral = SocketAddr::from((self.nodes[from].ip, 40_000 + (conn % 20_000) as u16));
        let listen = SocketAddr::from((self.nodes[to].ip, LISTEN_PORT));
        let accepted = match self.nodes[to].torrent() {
            Some(t) => t.add_peer(now, ephemeral, caps(false)).map_err(Some),
            None => Err(None),
        };
        let accepted = accepted.and_then(|key_to| {
            if self.nodes[from].engine.is_none() {
                return Ok((None, key_to));
            }
            let dialled = match self.nodes[from].torrent() {
                Some(t) => t.add_peer(now, listen, caps(true)).map_err(Some),
                None => Err(None),
            };
            match dialled {
                Ok(key_from) => Ok((Some(key_from), key_to)),
                Err(e) => {
                    self.nodes[to]
                        .torrent()
                        .expect("just added")
                        .remove_peer(key_to);
                    Err(e)
                }
            }
        });
        let (key_from, key_to) = match accepted {
            Ok(keys) => keys,
            Err(reason) => {
                self.report.refused(reason.as_ref());
                self.pairs.remove(&pair);
                self.nodes[from].open -= 1;
                return;
            }
        };
        self.conns.push(Conn {
            ends: [End::new(from, key_from), End::new(to, Some(key_to))],
            delay,
        });
        self.report.connections += 1;
        self.nodes[to].open += 1;
        self.nodes[to].keys.insert(key_to, conn);
        self.touch(to);
        match key_from {
            Some(key) => {
                self.nodes[from].keys.insert(key, conn);
                self.touch(from);
            }
            None => {
                self.nodes[from].script_conns.insert(conn);
                let Role::Script(script) = self.nodes[from].role else {
                    unreachable!("only scripts connect without a key")
                };
                let bytes = script::on_connect(script, &self.layout, &mut self.rng);
                self.send(conn, 0, bytes);
            }
        }
        if let Some(mean) = self.sc.net.mean_life {
            // Exponential lifetimes: cuts come at random, as they do on the internet.
            let life = mean.mul_f64(-(1.0 - self.rng.f64()).ln());
            self.q.after(life, Event::Cut { conn });
        }
    }

    /// Writes `bytes` at `side`, through its node's uplink and the connection's delay.
    fn send(&mut self, conn: ConnId, side: Side, bytes: Vec<u8>) {
        if bytes.is_empty() || !self.conns[conn].is_open() {
            return;
        }
        let now = self.q.now();
        let lost = self.sc.net.loss > 0.0 && self.rng.f64() < self.sc.net.loss;
        let node = &mut self.nodes[self.conns[conn].ends[side].node];
        let arrival = self.conns[conn].schedule(
            side,
            now,
            bytes.len() as u64,
            node.uplink,
            &mut node.uplink_free_at,
            lost,
        );
        if lost {
            self.report.losses += 1;
        }
        self.report.segments += 1;
        self.q.at(
            arrival,
            Event::Arrive {
                conn,
                to: 1 - side,
                bytes,
            },
        );
    }

    /// An engine end has room in its socket: it writes its outbox, then blocks it serves.
    fn flush(&mut self, conn: ConnId, side: Side) {
        let end = &self.conns[conn].ends[side];
        if end.closed {
            return;
        }
        let n = end.node;
        let key = end.key.expect("an engine end");
        let room = self.sc.net.send_buffer.saturating_sub(end.in_flight);
        if room == 0 {
            self.mark_blocked(conn, side);
            return;
        }
        let now = self.q.now();
        let role = self.nodes[n].role;
        let mut out = Vec::new();
        let Some(torrent) = self.nodes[n]
            .engine
            .as_mut()
            .and_then(|e| e.torrent.as_mut())
        else {
            return;
        };
        torrent.take_outbox(key, &mut out);
        let mut failed_read = false;
        while (out.len() as u64) < room {
            let Some(block) = torrent.next_serve(key) else {
                break;
            };
            if self.sc.disk.eio > 0.0 && self.rng.f64() < self.sc.disk.eio {
                failed_read = true;
                break;
            }
            let start =
                u64::from(block.piece) * u64::from(self.sc.piece_len) + u64::from(block.offset);
            let data = &self.content[start as usize..][..block.len as usize];
            let corrupt = match role {
                Role::Liar => self.rng.f64() < self.sc.disk.liar_corrupts,
                Role::BadDisk => self.rng.f64() < self.sc.disk.bad_read,
                _ => false,
            };
            let mut bad;
            let data = if corrupt {
                bad = data.to_vec();
                let at = self.rng.usize(..bad.len());
                bad[at] ^= self.rng.u8(1..=255);
                &bad[..]
            } else {
                data
            };
            Message::Piece {
                piece: block.piece,
                offset: block.offset,
                data,
            }
            .encode(&mut out);
            torrent.on_block_sent(now, key, block.len);
        }
        if failed_read {
            // EIO: the shard drops the peer it was serving; the torrent goes on.
            torrent.remove_peer(key);
            self.report.read_errors += 1;
            self.close_end(conn, side);
            return;
        }
        let more = torrent.peek_serve(key).is_some();
        self.send(conn, side, out);
        let end = &mut self.conns[conn].ends[side];
        // One write may go over the buffer by the outbox or by one block, never more.
        let outbox_max = self.sc.session.outbox_max_bytes as u64
            + u64::from(self.layout.piece_count().div_ceil(8));
        let bound = self.sc.net.send_buffer + outbox_max.max(u64::from(BLOCK_LEN) + 13);
        assert!(
            end.in_flight <= bound,
            "node {n} has {} bytes in flight to one peer",
            end.in_flight
        );
        if more && end.in_flight >= self.sc.net.send_buffer {
            self.mark_blocked(conn, side);
        } else {
            end.blocked_since = None;
        }
    }

    fn mark_blocked(&mut self, conn: ConnId, side: Side) {
        let now = self.q.now();
        let end = &mut self.conns[conn].ends[side];
        let since = *end.blocked_since.get_or_insert(now);
        if !end.stall_check {
            end.stall_check = true;
            self.q.at(
                since + self.sc.net.write_stall,
                Event::StallCheck { conn, side },
            );
        }
    }

    fn stall_check(&mut self, conn: ConnId, side: Side) {
        let now = self.q.now();
        let stall = self.sc.net.write_stall;
        let end = &mut self.conns[conn].ends[side];
        end.stall_check = false;
        if end.closed {
            return;
        }
        let Some(since) = end.blocked_since else {
            return;
        };
        if now < since + stall {
            end.stall_check = true;
            self.q.at(since + stall, Event::StallCheck { conn, side });
            return;
        }
        // The writer's deadline: a peer that takes no byte for this long is dropped.
        let n = end.node;
        let key = end.key.expect("only engine ends block");
        if let Some(t) = self.nodes[n].torrent() {
            t.remove_peer(key);
        }
        let other = self.conns[conn].ends[1 - side].node;
        self.report.stalled(
            self.nodes[other].role,
            self.conns[conn].ends[side].in_flight,
        );
        self.close_end(conn, side);
        self.touch(n);
    }

    /// The end at `side` closes (its torrent has already forgotten the peer): the other end
    /// sees it after everything written before.
    fn close_end(&mut self, conn: ConnId, side: Side) {
        let end = &mut self.conns[conn].ends[side];
        if !end.close() {
            return;
        }
        let n = end.node;
        let key = end.key;
        let at = end.last_arrival.max(self.q.now() + self.conns[conn].delay);
        self.forget(n, conn, key);
        let other = self.conns[conn].ends[1 - side].node;
        self.pairs.remove(&(n.min(other), n.max(other)));
        self.q.at(at, Event::Close { conn, to: 1 - side });
    }

    fn forget(&mut self, n: NodeId, conn: ConnId, key: Option<PeerKey>) {
        let node = &mut self.nodes[n];
        match key {
            Some(key) => {
                node.keys.remove(&key);
            }
            None => {
                node.script_conns.remove(&conn);
            }
        }
        node.open -= 1;
    }

    /// The other end closed; this one sees the connection end.
    fn closed_by_other(&mut self, conn: ConnId, to: Side) {
        let end = &mut self.conns[conn].ends[to];
        if !end.close() {
            return;
        }
        let (n, key) = (end.node, end.key);
        if let (Some(key), Some(t)) = (key, self.nodes[n].torrent()) {
            t.remove_peer(key);
        }
        self.forget(n, conn, key);
        self.touch(n);
    }

    fn cut(&mut self, conn: ConnId) {
        if !self.conns[conn].is_open() {
            return;
        }
        self.report.cuts += 1;
        for side in 0..2 {
            self.closed_by_other(conn, side);
        }
        let (a, b) = (self.conns[conn].ends[0].node, self.conns[conn].ends[1].node);
        self.pairs.remove(&(a.min(b), a.max(b)));
    }

    fn arrive(&mut self, conn: ConnId, to: Side, bytes: Vec<u8>) {
        if self.conns[conn].ends[to].closed {
            return;
        }
        let n = self.conns[conn].ends[to].node;
        let sender = self.conns[conn].ends[1 - to].node;
        let len = bytes.len() as u64;
        if let Role::Script(script) = self.nodes[n].role {
            if script::reads(script) {
                let delay = self.conns[conn].delay;
                self.q.after(
                    delay,
                    Event::Ack {
                        conn,
                        sender: 1 - to,
                        len,
                    },
                );
            }
            return;
        }
        let delay = self.conns[conn].delay;
        self.q.after(
            delay,
            Event::Ack {
                conn,
                sender: 1 - to,
                len,
            },
        );
        self.touch(n);
        let mut buf = std::mem::take(&mut self.conns[conn].ends[to].partial);
        let input: &[u8] = if buf.is_empty() {
            &bytes
        } else {
            buf.extend_from_slice(&bytes);
            &buf
        };
        let key = self.conns[conn].ends[to].key.expect("an engine end");
        let now = self.q.now();
        let mut rest = input;
        loop {
            let (msg, used) = match decode_message(rest, self.max_message) {
                Ok(Some(found)) => found,
                Ok(None) => break,
                Err(e) => panic!("node {sender} wrote bytes node {n} cannot decode: {e}"),
            };
            rest = &rest[used..];
            let node = &mut self.nodes[n];
            let engine = node.engine.as_mut().expect("an engine node");
            let Some(torrent) = engine.torrent.as_mut() else {
                return;
            };
            match torrent.on_message(now, key, &msg) {
                Ok(Incoming::Nothing) => {}
                Ok(Incoming::Block { piece_complete }) => {
                    let Message::Piece {
                        piece,
                        offset,
                        data,
                    } = msg
                    else {
                        panic!("a block from a message that is not a piece")
                    };
                    let index = self
                        .layout
                        .piece(piece)
                        .expect("the engine checked the range");
                    let start = u64::from(piece) * u64::from(self.sc.piece_len) + u64::from(offset);
                    let corrupt = data != &self.content[start as usize..][..data.len()];
                    engine.disk.store(
                        piece,
                        self.layout.piece_len(index),
                        offset,
                        data,
                        (sender, corrupt),
                    );
                    if piece_complete {
                        engine.disk.complete(piece);
                        let generation = engine.generation;
                        self.q.after(
                            self.sc.disk.hash_latency,
                            Event::Hashed {
                                node: n,
                                generation,
                                piece,
                            },
                        );
                    }
                }
                // The torrent dropped the peer and queued its Disconnect: read no further.
                Err(_) => return,
            }
        }
        if !rest.is_empty() {
            let rest = rest.to_vec();
            self.conns[conn].ends[to].partial = rest;
        }
    }

    fn ack(&mut self, conn: ConnId, sender: Side, len: u64) {
        let now = self.q.now();
        let end = &mut self.conns[conn].ends[sender];
        if end.closed {
            return;
        }
        end.in_flight -= len;
        // A byte was taken: the stall clock starts again.
        if end.blocked_since.is_some() {
            end.blocked_since = Some(now);
        }
        if end.key.is_some() {
            let n = end.node;
            self.touch(n);
            self.flush(conn, sender);
        }
    }

    fn hashed(&mut self, n: NodeId, generation: u32, piece: u32) {
        let now = self.q.now();
        let start = piece as usize * self.sc.piece_len as usize;
        let pause = self.sc.disk.enospc > 0.0 && self.rng.f64() < self.sc.disk.enospc;
        let engine = self.nodes[n].engine.as_mut().expect("an engine node");
        if engine.generation != generation {
            return;
        }
        let Some(torrent) = engine.torrent.as_mut() else {
            return;
        };
        let buf = engine.disk.take(piece);
        let ok = Sha1::digest(&buf.data) == self.hashes[piece as usize];
        if ok {
            assert_eq!(
                buf.data,
                self.content[start..][..buf.data.len()],
                "node {n}: piece {piece} matched its hash with other bytes"
            );
            if pause {
                // ENOSPC writing it: the shard pauses the torrent; the piece is not kept.
                self.report.disk_full += 1;
                self.pause(n);
                return;
            }
        }
        let digests = if torrent.wants_block_digests(piece, ok) {
            block_digests(&buf.data)
        } else {
            Vec::new()
        };
        torrent.piece_checked(now, piece, ok, &digests);
        if ok {
            engine.disk.verified.set(piece);
        } else {
            self.report.failed_pieces += 1;
            for &(from, corrupt) in buf.senders.iter().flatten() {
                if corrupt {
                    self.evidence.entry((n, from)).or_default().insert(piece);
                }
            }
        }
        self.touch(n);
    }

    /// A full disk: the torrent stops, its peers are closed and its pieces under way
    /// dropped; what is verified stays on disk for when it resumes.
    fn pause(&mut self, n: NodeId) {
        let conns: Vec<ConnId> = self.nodes[n].keys.values().copied().collect();
        for conn in conns {
            let side = self.side_of(conn, n);
            self.close_end(conn, side);
        }
        let engine = self.nodes[n].engine.as_mut().expect("an engine node");
        engine.torrent = None;
        engine.generation += 1;
        engine.disk.drop_partial();
        // Its bans went with the torrent: old evidence no longer applies.
        let stale: Vec<(NodeId, NodeId)> = self
            .evidence
            .range((n, 0)..(n + 1, 0))
            .map(|(&k, _)| k)
            .collect();
        for k in stale {
            self.evidence.remove(&k);
        }
        self.q.after(self.sc.disk.pause, Event::Resume(n));
    }

    fn resume(&mut self, n: NodeId) {
        let engine = self.nodes[n].engine.as_mut().expect("an engine node");
        let torrent = new_torrent(
            &self.layout,
            &engine.disk.verified,
            &self.sc,
            n,
            engine.generation,
        );
        engine.torrent = Some(torrent);
        self.touch(n);
    }

    /// Where each node that must complete stands: for a failure's message.
    fn describe_incomplete(&mut self) -> String {
        let now = self.q.now();
        let roles: Vec<Role> = self.nodes.iter().map(|n| n.role).collect();
        let mut lines = Vec::new();
        for (n, node) in self.nodes.iter_mut().enumerate() {
            let (role, open, candidates) = (node.role, node.open, node.candidates.len());
            let Some(engine) = node.engine.as_mut() else {
                continue;
            };
            if !role.must_complete() || engine.done_at.is_some() {
                continue;
            }
            let verified = engine.disk.verified.count();
            let peers = engine.torrent.as_ref().map(|t| {
                t.peer_views(now)
                    .iter()
                    .map(|p| {
                        let m = u32::from(match p.addr.ip() {
                            std::net::IpAddr::V4(v4) => v4,
                            _ => unreachable!(),
                        }) - 0x0a00_0001;
                        format!(
                            "{m}:{:?}{}{}",
                            roles[m as usize],
                            if p.peer_choking { " choking" } else { "" },
                            if p.am_interested { " interesting" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            });
            lines.push(format!(
                "node {n} {role:?}: {verified} pieces, {open} open, {candidates} candidates, peers [{}]",
                peers.unwrap_or_else(|| "paused".into())
            ));
        }
        lines.join("; ")
    }

    fn check_properties(&mut self) -> Result<(), String> {
        let mut problems = Vec::new();
        for (n, node) in self.nodes.iter_mut().enumerate() {
            let role = node.role;
            let Some(engine) = node.engine.as_mut() else {
                continue;
            };
            if role.must_complete() && !engine.disk.verified.is_full() {
                problems.push(format!("{role:?} node {n} did not complete"));
            }
            self.report.buffered_max = self.report.buffered_max.max(engine.disk.buffered_max);
        }
        for a in 0..self.nodes.len() {
            if !self.nodes[a].role.must_complete() && self.nodes[a].role != Role::Seeder {
                continue;
            }
            for b in 0..self.nodes.len() {
                let addr = SocketAddr::from((self.nodes[b].ip, LISTEN_PORT));
                let role_b = self.nodes[b].role;
                let Some(t) = self.nodes[a].torrent() else {
                    break;
                };
                if role_b.is_honest() && t.is_banned(addr) {
                    problems.push(format!("honest {role_b:?} node {b} is banned by node {a}"));
                }
            }
        }
        let evidence: Vec<((NodeId, NodeId), usize)> = self
            .evidence
            .iter()
            .map(|(&k, pieces)| (k, pieces.len()))
            .collect();
        for ((observer, liar), pieces) in evidence {
            let addr = SocketAddr::from((self.nodes[liar].ip, LISTEN_PORT));
            let role = self.nodes[liar].role;
            let Some(t) = self.nodes[observer].torrent() else {
                continue;
            };
            if pieces >= 2 && !t.is_banned(addr) {
                problems.push(format!(
                    "{role:?} node {liar} corrupted {pieces} pieces at node {observer} and is not banned"
                ));
            }
            if pieces >= 2 && role == Role::Liar {
                self.report.liars_caught += 1;
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

fn new_torrent(
    layout: &Layout,
    have: &Bitfield,
    sc: &Scenario,
    n: NodeId,
    generation: u32,
) -> Torrent {
    let seed =
        sc.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((n as u64) << 20) ^ u64::from(generation);
    let mut torrent = Torrent::new(layout.clone(), have, sc.session.clone(), seed);
    // The same for every node, as an info hash is: it decides the allowed-fast sets.
    torrent.set_info_hash(Sha1::digest(&sc.seed.to_le_bytes()));
    torrent
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The end-of-run checks fail when what they check is false: a leecher missing a piece,
    /// a node with evidence against a peer it did not ban.
    #[test]
    fn the_properties_catch_what_they_claim_to() {
        let sc = Scenario {
            roles: vec![Role::Seeder, Role::Leecher, Role::Leecher],
            ..Scenario::random(1)
        };
        let fresh = || {
            let mut world = World::new(sc.clone());
            world.run_to_end().unwrap();
            world.check_properties().unwrap();
            world
        };
        let mut world = fresh();
        let engine = world.nodes[1].engine.as_mut().unwrap();
        engine.disk.verified.clear(3);
        let e = world.check_properties().unwrap_err();
        assert!(e.contains("Leecher node 1 did not complete"), "{e}");

        let mut world = fresh();
        world.evidence.insert((2, 0), [1, 2].into());
        let e = world.check_properties().unwrap_err();
        assert!(
            e.contains("node 0 corrupted 2 pieces at node 2 and is not banned"),
            "{e}"
        );
        // One bad piece is not enough to require a ban.
        let mut world = fresh();
        world.evidence.insert((2, 0), [1].into());
        world.check_properties().unwrap();
    }
}
