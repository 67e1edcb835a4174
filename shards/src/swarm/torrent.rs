//! A torrent on its owner shard (or a replica serving it on another, see `replica`): the engine's state machine composed with the parts that
//! do the I/O it asks for, and the glue between them.
//!
//! The parts, each with one job: [`PeerTable`] (live connections), [`AddressBook`]
//! (addresses to dial and their retry state), [`PieceIo`] (piece buffers, reads, cache,
//! storage), [`StopSignal`], [`DurableMark`] and the [`Alarm`] that wakes the run loop.
//! What drives a torrent lives outside, over an `Rc<TorrentRt>`: `driver` (the run loop,
//! announces, wind-down), `dial` (outgoing and incoming connections) and `peer` (one
//! connection's tasks). This module calls none of them, so dependencies go one way:
//! `driver` → `dial` → `peer` → `torrent` → the parts.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ccbt_engine::metainfo::{Layout, Metainfo};
use ccbt_engine::session::{block_digests, Action, DropReason, PeerCaps, PeerKey, Torrent};
use ccbt_engine::tracker::Announcer;
use ccbt_engine::wire::PeerId;

use super::address_book::{AddressBook, PeerSource};
use super::alarm::Alarm;
use super::durable::DurableMark;
use super::events::SwarmEvent;
use super::lazy_storage::LazyStorage;
use super::offload;
use super::peer_table::{PeerHandle, PeerTable};
use super::piece_io::PieceIo;
use super::replica::Role;
use super::shard::ShardCtx;
use super::stats::Held;
use super::status::{PeerInfo, PeerOrigin, TorrentFault, TorrentState, TorrentStatus};
use super::stop::StopSignal;
use super::throttle::{Direction, Meter, Throttle};

pub struct TorrentRt {
    /// What the shard's torrents share: cache, buffers, trackers, budget, clock.
    shard: Rc<ShardCtx>,
    meta: Arc<Metainfo>,
    engine: RefCell<Torrent>,
    /// The disk side: piece buffers, reads, cache, storage.
    pieces: Rc<PieceIo>,
    /// Established connections.
    peers: PeerTable,
    /// Addresses to dial, and dials in flight.
    book: AddressBook,
    status: Arc<TorrentStatus>,
    our_id: PeerId,
    seed: u64,
    fault: RefCell<Option<TorrentFault>>,
    /// Rings the run loop awake when an idle torrent gets something to do.
    alarm: Alarm,
    /// Set by a command (pause, remove, shutdown): the run loop winds down.
    stop: StopSignal,
    announcer: RefCell<Announcer>,
    /// What the front end has been told is durable.
    durable: DurableMark,
    /// The torrent's own rate limits (its slot's, so they survive a pause).
    throttle: Rc<Throttle>,
    /// Outbox bytes this torrent last added to the shard's gauge ([`Held::Outboxes`]).
    outbox_reported: Cell<u64>,
    /// The owner (and its replicas on other shards), or a replica (see `replica`).
    role: Role,
    /// Connected peers here by [`PeerOrigin`] index, published with the other figures;
    /// and each peer's, so its count goes when it does (one entry per connected peer).
    peers_from: Cell<[u32; PeerOrigin::ALL.len()]>,
    peer_origins: RefCell<HashMap<PeerKey, PeerOrigin>>,
}

impl TorrentRt {
    /// `index`: the torrent's shard-local number, for the piece cache.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shard: Rc<ShardCtx>,
        index: u32,
        meta: Arc<Metainfo>,
        trackers: Vec<Vec<String>>,
        engine: Torrent,
        storage: LazyStorage,
        status: Arc<TorrentStatus>,
        our_id: PeerId,
        seed: u64,
        throttle: Rc<Throttle>,
        role: Role,
    ) -> Self {
        let done = engine.is_done();
        let pieces = Rc::new(PieceIo::new(
            index,
            meta.clone(),
            storage,
            shard.cache.clone(),
            shard.pool.clone(),
            shard.stats.clone(),
            shard.config.serve_reads,
        ));
        TorrentRt {
            book: AddressBook::new(shard.config.port),
            shard,
            announcer: RefCell::new(Announcer::new(trackers, seed)),
            meta,
            engine: RefCell::new(engine),
            pieces,
            peers: PeerTable::default(),
            status,
            our_id,
            seed,
            fault: RefCell::new(None),
            alarm: Alarm::default(),
            stop: StopSignal::default(),
            durable: DurableMark::new(done),
            throttle,
            outbox_reported: Cell::new(0),
            role,
            peers_from: Cell::new([0; PeerOrigin::ALL.len()]),
            peer_origins: RefCell::default(),
        }
    }

    pub fn shard(&self) -> &Rc<ShardCtx> {
        &self.shard
    }

    pub fn meta(&self) -> &Arc<Metainfo> {
        &self.meta
    }

    /// The engine's state machine for this torrent.
    pub fn engine(&self) -> &RefCell<Torrent> {
        &self.engine
    }

    pub fn status(&self) -> &Arc<TorrentStatus> {
        &self.status
    }

    pub fn our_id(&self) -> PeerId {
        self.our_id
    }

    /// The torrent's randomness (tracker key, connection ids).
    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn pieces(&self) -> &Rc<PieceIo> {
        &self.pieces
    }

    pub fn peers(&self) -> &PeerTable {
        &self.peers
    }

    pub fn book(&self) -> &AddressBook {
        &self.book
    }

    pub fn announcer(&self) -> &RefCell<Announcer> {
        &self.announcer
    }

    pub fn stop_signal(&self) -> &StopSignal {
        &self.stop
    }

    pub fn alarm(&self) -> &Alarm {
        &self.alarm
    }

    pub fn durable(&self) -> &DurableMark {
        &self.durable
    }

    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The torrent's own rate limits (not the shard's).
    pub fn own_limits(&self) -> super::throttle::RateLimits {
        self.throttle.limits()
    }

    /// New upload slots and peer cap (a reload); while replicated the owner's engine takes
    /// its share of the slots, as each replica does.
    pub fn set_peer_limits(&self, upload_slots: usize, max_peers: usize) {
        let slots = match &self.role {
            Role::Owner(replicas) => replicas
                .borrow_mut()
                .owner_slots(upload_slots, self.shard.inboxes.len()),
            Role::Replica(_) => upload_slots.div_ceil(self.shard.inboxes.len().max(1)),
        };
        self.engine.borrow_mut().set_peer_limits(slots, max_peers);
    }

    /// An owner whose torrent is served from other shards too.
    pub fn is_replicated(&self) -> bool {
        matches!(&self.role, Role::Owner(r) if r.borrow().is_replicated())
    }

    /// Bytes uploaded this run: the engine's count here plus, on an owner, its replicas'.
    pub fn uploaded(&self, here: u64) -> u64 {
        match &self.role {
            Role::Owner(replicas) => here + replicas.borrow().figures().uploaded,
            Role::Replica(_) => here,
        }
    }

    /// A peer's meter on this torrent's and this shard's buckets for `direction`.
    pub fn meter(&self, direction: Direction) -> Meter {
        Meter::new(
            self.throttle.clone(),
            self.shard.throttle.clone(),
            direction,
            self.shard.clock,
        )
    }

    pub fn now(&self) -> Duration {
        self.shard.clock.now()
    }

    /// The front end already holds a record of the pieces the torrent starts with (its
    /// resume data matched): nothing to report until more arrive.
    pub fn assume_durable(&self) {
        self.durable.reported(self.engine.borrow().have().count());
    }

    /// Asks the run loop to wind down (announce `stopped`, sync, drop peers).
    pub fn request_stop(&self) {
        self.stop.request();
        self.wake();
    }

    /// The stop flag, for work that should end with the torrent (a background check).
    pub fn stopping(&self) -> &Cell<bool> {
        self.stop.flag()
    }

    /// Announces to the current tracker as soon as none is in flight.
    pub fn reannounce(&self) {
        self.announcer.borrow_mut().reannounce();
        self.wake();
    }

    /// A background check found `piece` good on disk: the torrent has it.
    pub fn mark_verified(&self, piece: u32) {
        if self.engine.borrow().have().get(piece) {
            return;
        }
        self.engine
            .borrow_mut()
            .piece_checked(self.now(), piece, true, &[]);
        self.drive();
        self.publish();
    }

    pub fn layout(&self) -> &Layout {
        &self.meta.info.layout
    }

    pub fn piece_count(&self) -> u32 {
        self.layout().piece_count()
    }

    /// Admits a handshaken peer, unless it is us, already connected, or refused.
    pub fn add_peer(
        &self,
        addr: SocketAddr,
        caps: PeerCaps,
        peer_id: [u8; 20],
    ) -> Result<PeerKey, DropReason> {
        if peer_id == self.our_id.0 {
            return Err(DropReason::SelfConnection);
        }
        if self.peers.has_id(&peer_id) {
            return Err(DropReason::Duplicate);
        }
        // A hot torrent's cap counts its peers on every shard (see `replica`); the
        // engine applies it to the peers here.
        // A newcomer may replace a peer here that has long moved nothing.
        let elsewhere = super::replica::peers_elsewhere(self) as usize;
        if elsewhere > 0 {
            let mut engine = self.engine.borrow_mut();
            let everywhere = engine.peer_count() + elsewhere;
            if everywhere >= engine.peer_limits().1 && !engine.make_room(self.now()) {
                return Err(DropReason::TooManyPeers(everywhere));
            }
        }
        let added = self.engine.borrow_mut().add_peer(self.now(), addr, caps);
        if added.is_ok() {
            super::replica::peers_changed(self);
        }
        added
    }

    /// Notes where the peer `key`, just admitted, came from: it came in, or the book
    /// says who gave us the address we dialled. Counted until [`Self::forget_peer`].
    pub fn count_origin(&self, key: PeerKey, addr: SocketAddr, outgoing: bool) {
        let origin = if outgoing {
            self.book
                .source_of(&addr)
                .map_or(PeerOrigin::Manual, PeerOrigin::from)
        } else {
            PeerOrigin::Incoming
        };
        if self.peer_origins.borrow_mut().insert(key, origin).is_none() {
            self.bump_origin(origin, true);
        }
    }

    /// Its connected peers on this shard (a hot torrent's replicas list theirs nowhere).
    pub fn peer_infos(&self) -> Vec<PeerInfo> {
        let views = self.engine.borrow().peer_views(self.now());
        let origins = self.peer_origins.borrow();
        views
            .into_iter()
            .map(|view| PeerInfo {
                peer_id: self.peers.id_of(view.key).unwrap_or([0; 20]),
                origin: origins.get(&view.key).copied().unwrap_or(if view.outgoing {
                    PeerOrigin::Manual
                } else {
                    PeerOrigin::Incoming
                }),
                view,
            })
            .collect()
    }

    fn bump_origin(&self, origin: PeerOrigin, up: bool) {
        let mut counts = self.peers_from.get();
        let n = &mut counts[origin.index()];
        *n = if up { *n + 1 } else { n.saturating_sub(1) };
        self.peers_from.set(counts);
    }

    pub fn register(&self, key: PeerKey, handle: PeerHandle, peer_id: [u8; 20]) {
        self.peers.register(key, handle, peer_id);
        // An idle torrent sleeps: it must tick (choke, keep alive) now that it has a peer.
        self.wake();
    }

    /// Cuts the run loop's sleep short (a peer arrived, addresses came, or stopping).
    pub fn wake(&self) {
        self.alarm.ring();
    }

    /// Whether the connection `key` is still ours (not dropped or forgotten).
    pub fn has_peer(&self, key: PeerKey) -> bool {
        self.peers.contains(key)
    }

    /// The connection is gone: forget it everywhere.
    pub fn forget_peer(&self, key: PeerKey) {
        self.engine.borrow_mut().remove_peer(key);
        let origin = self.peer_origins.borrow_mut().remove(&key);
        if let Some(origin) = origin {
            self.bump_origin(origin, false);
        }
        super::replica::peers_changed(self);
        if let Some(handle) = self.peers.remove(key) {
            handle.close();
        }
    }

    /// Every block of `piece` is in: hash it, write it if good, tell the engine.
    pub fn finish_piece(self: &Rc<Self>, piece: u32) {
        let Some(index) = self.layout().piece(piece) else {
            return;
        };
        let len = self.layout().piece_len(index) as usize;
        // Counted now, not when the task runs, so readers see it at once.
        let backlog = self.pieces.enter_backlog(len);
        let rt = self.clone();
        glommio::spawn_local(async move {
            let _backlog = backlog;
            let Some(buf) = rt.pieces.take_filled(piece) else {
                return;
            };
            // SHA-1 runs on the shard's hashing thread, so this core keeps moving bytes.
            let (buf, digest) = offload::digest_on_helper(buf, len).await;
            let ok = digest == rt.meta.info.piece_hash(index);
            let digests = if rt.engine.borrow().wants_block_digests(piece, ok) {
                block_digests(&buf.as_bytes()[..len])
            } else {
                Vec::new()
            };
            if ok {
                if let Err(e) = rt.pieces.write_piece(piece, buf, len).await {
                    rt.fail(TorrentFault::from(&e));
                    return;
                }
            } else {
                rt.shard.stats.hash_failed();
                tracing::info!(piece, "piece failed its hash check; fetching it again");
                rt.pieces.discard(buf);
            }
            let web_seeds = rt.engine.borrow().web_seed_counts(rt.now()).0;
            rt.engine
                .borrow_mut()
                .piece_checked(rt.now(), piece, ok, &digests);
            if rt.engine.borrow().web_seed_counts(rt.now()).0 < web_seeds {
                tracing::info!(piece, "web seed dropped: its data failed the hash check");
            }
            if rt.engine.borrow().is_done() {
                // The last piece: say so now, not at the next tick, and rouse a run loop
                // that naps (a torrent fed by web seeds alone has no peers to keep it busy).
                rt.publish();
                rt.wake();
            }
            rt.drive();
        })
        .detach();
    }

    /// The disk failed under this torrent: it stops; others go on. The first fault is
    /// the one reported.
    pub fn fail(&self, fault: TorrentFault) {
        let mut slot = self.fault.borrow_mut();
        if slot.is_none() {
            *slot = Some(fault);
        }
        drop(slot);
        self.wake();
    }

    pub fn has_failed(&self) -> bool {
        self.fault.borrow().is_some()
    }

    pub fn fault(&self) -> Option<TorrentFault> {
        self.fault.borrow().clone()
    }

    /// Carries out what the engine asked for.
    pub fn drive(&self) {
        loop {
            let action = self.engine.borrow_mut().poll_action();
            let Some(action) = action else { break };
            match action {
                Action::Wake(key) => self.peers.wake(key),
                Action::Disconnect(key, reason) => {
                    super::replica::peers_changed(self);
                    if let Some(h) = self.peers.remove(key) {
                        tracing::info!(peer = %h.addr, %reason, "dropping a peer");
                        if matches!(reason, DropReason::HashFailures(_) | DropReason::BadData) {
                            self.emit(SwarmEvent::PeerBanned {
                                info_hash: self.meta.info_hash,
                                addr: h.addr,
                                reason: reason.to_string(),
                            });
                        }
                        h.close();
                    }
                }
                Action::Done => {
                    tracing::info!(torrent = %self.meta.info_hash, "download complete");
                }
                Action::PexPeers(addrs) => {
                    self.learn(&addrs, PeerSource::Pex);
                    tracing::info!(
                        torrent = %self.meta.info_hash,
                        addresses = addrs.len(),
                        in_book = self.book.count_from(PeerSource::Pex),
                        "learned peers through PEX"
                    );
                }
            }
        }
    }

    /// Publishes figures for the front end; a replica reports its own to its owner.
    pub fn publish(&self) {
        let stats = self.engine.borrow().stats(self.now());
        let gauge = &self.shard.stats;
        let before = self.outbox_reported.replace(stats.outbox_bytes);
        gauge.release(Held::Outboxes, before);
        gauge.hold(Held::Outboxes, stats.outbox_bytes);
        let replicas = match &self.role {
            Role::Replica(cells) => {
                let figures = super::replica::Figures {
                    peers: stats.peers as u64,
                    uploaded: stats.uploaded,
                    upload_rate: stats.upload_rate,
                };
                cells.report(self.shard.id.0 as usize, figures);
                return;
            }
            Role::Owner(replicas) => replicas.borrow().figures(),
        };
        let s = &self.status;
        s.peers
            .store(stats.peers as u64 + replicas.peers, Ordering::Relaxed);
        s.have_pieces
            .store(u64::from(stats.have_pieces), Ordering::Relaxed);
        s.wanted_left
            .store(u64::from(stats.wanted_left), Ordering::Relaxed);
        s.downloaded.store(stats.downloaded, Ordering::Relaxed);
        s.uploaded
            .store(stats.uploaded + replicas.uploaded, Ordering::Relaxed);
        s.download_rate
            .store(stats.download_rate, Ordering::Relaxed);
        s.upload_rate
            .store(stats.upload_rate + replicas.upload_rate, Ordering::Relaxed);
        let (web_seeds, web_seeds_failing) = self.engine.borrow().web_seed_counts(self.now());
        s.web_seeds.store(web_seeds, Ordering::Relaxed);
        let mut from = self.peers_from.get();
        from[PeerOrigin::Incoming.index()] += replicas.peers as u32;
        for (cell, n) in s.peers_from.iter().zip(from) {
            cell.store(n, Ordering::Relaxed);
        }
        s.web_seeds_failing
            .store(web_seeds_failing, Ordering::Relaxed);
        let done = self.engine.borrow().is_done();
        s.done.store(done, Ordering::Release);
        s.set_state(if done {
            TorrentState::Seeding
        } else {
            TorrentState::Downloading
        });
    }

    /// Tells the front end, if it listens.
    pub fn emit(&self, event: SwarmEvent) {
        if let Some(events) = &self.shard.events {
            events.send(event);
        }
    }

    /// Whether this torrent uses the DHT: it is on, and the torrent is not private (BEP 27).
    pub fn uses_dht(&self) -> bool {
        self.shard.dht.is_some() && !self.meta().info.private
    }

    /// Whether it announces on, and takes peers from, the local network (BEP 14; never
    /// for a private torrent, BEP 27).
    pub fn uses_lsd(&self) -> bool {
        self.shard.lsd.is_some() && !self.meta().info.private
    }

    /// Adds addresses (from trackers, the DHT, the user or peer exchange) to the book.
    /// A replica never dials, so it keeps no addresses.
    pub fn learn(&self, peers: &[SocketAddr], source: PeerSource) {
        if matches!(self.role, Role::Replica(_)) {
            return;
        }
        self.book.learn(peers, source);
        self.wake();
    }
}

impl Drop for TorrentRt {
    /// A stopped torrent's outboxes leave the shard's gauge with it.
    fn drop(&mut self) {
        let reported = self.outbox_reported.take();
        self.shard.stats.release(Held::Outboxes, reported);
    }
}
