//! A torrent on its owner shard: the engine's state machine plus the I/O it asks for —
//! peer connections, piece buffers, hashing, disk, trackers.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ccbt_engine::metainfo::{Layout, Metainfo};
use ccbt_engine::session::{block_digests, Action, DropReason, PeerCaps, PeerKey, Torrent};
use ccbt_engine::tracker::{Announce, Announcer, Event};
use ccbt_engine::wire::{Handshake, PeerId};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::io::DmaBuffer;
use glommio::net::TcpStream;

use super::alarm::Alarm;
use super::announce_gate::host_key;
use super::buffers::{BufferPool, PieceBytes};
use super::events::{FileStamp, SwarmEvent};
use super::goodbye::Turn;
use super::ip_guard::Refusal;
use super::lazy_storage::LazyStorage;
use super::offload;
use super::peer::{self, our_reserved, PeerHandle};
use super::shard::ShardCtx;
use super::status::{TorrentFault, TorrentState, TorrentStatus};
use super::storage::StorageError;
use super::throttle::{Direction, Meter, Throttle};
use super::tracker;
use crate::mapped::path_under;

/// Outgoing connection attempts in flight per torrent.
const CONNECTING_MAX: usize = 16;
/// Addresses remembered per torrent.
const BOOK_MAX: usize = 2000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an address whose host is at the shard's per-IP cap waits to be dialled again.
const PER_IP_RETRY: Duration = Duration::from_secs(30);
/// How often a torrent with peers does its periodic work.
const TICK: Duration = Duration::from_millis(100);
/// The longest an idle torrent (no peers, nothing to try) sleeps without being rung.
const IDLE_NAP_MAX: Duration = Duration::from_secs(60);
/// How often a torrent that wrote pieces syncs its files and reports them durable, when
/// its front end keeps resume data: at most this much verified data is fetched again
/// after a crash.
const DURABLE_EVERY: Duration = Duration::from_secs(1);

/// How long a torrent waits to ask again when the shard's announce line is full.
const ANNOUNCE_DEFER: Duration = Duration::from_secs(5);

/// What we know of an address a tracker gave us.
struct BookEntry {
    connected: bool,
    next_try: Duration,
    failures: u32,
}

pub struct TorrentRt {
    /// What the shard's torrents share: cache, buffers, trackers, budget, clock.
    shard: Rc<ShardCtx>,
    /// Shard-local number, for the piece cache.
    pub index: u32,
    pub meta: Arc<Metainfo>,
    pub engine: RefCell<Torrent>,
    storage: LazyStorage,
    /// Pieces being downloaded: blocks land in the aligned buffer each piece will be
    /// written from, until the piece is hashed.
    buffers: RefCell<HashMap<u32, DmaBuffer>>,
    /// Pieces being read from disk, with whoever waits for each.
    reads: RefCell<HashMap<u32, Vec<LocalSender<()>>>>,
    peers: RefCell<HashMap<PeerKey, PeerHandle>>,
    peer_ids: RefCell<HashMap<PeerKey, [u8; 20]>>,
    book: RefCell<HashMap<SocketAddr, BookEntry>>,
    connecting: Cell<usize>,
    pub status: Arc<TorrentStatus>,
    pub our_id: PeerId,
    seed: u64,
    fault: RefCell<Option<TorrentFault>>,
    /// Rings the run loop awake when an idle torrent gets something to do.
    alarm: Alarm,
    /// Set by a command (pause, remove, shutdown): the run loop winds down.
    stop: Cell<bool>,
    /// The announce waiting in the shard's gate, woken to leave the line when the torrent
    /// stops (one announce is in flight at a time, so one waker).
    stop_waker: Cell<Option<std::task::Waker>>,
    announcer: RefCell<Announcer>,
    /// Pieces last reported durable, and whether completion has been reported.
    durable_pieces: Cell<Option<u32>>,
    completed_reported: Cell<bool>,
    /// The torrent's own rate limits (its slot's, so they survive a pause).
    throttle: Rc<Throttle>,
}

impl TorrentRt {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shard: Rc<ShardCtx>,
        index: u32,
        meta: Arc<Metainfo>,
        engine: Torrent,
        storage: LazyStorage,
        status: Arc<TorrentStatus>,
        our_id: PeerId,
        seed: u64,
        throttle: Rc<Throttle>,
    ) -> Self {
        let done = engine.is_done();
        TorrentRt {
            shard,
            index,
            announcer: RefCell::new(Announcer::new(meta.trackers(), seed)),
            meta,
            engine: RefCell::new(engine),
            storage,
            buffers: RefCell::new(HashMap::new()),
            reads: RefCell::new(HashMap::new()),
            peers: RefCell::new(HashMap::new()),
            peer_ids: RefCell::new(HashMap::new()),
            book: RefCell::new(HashMap::new()),
            connecting: Cell::new(0),
            status,
            our_id,
            seed,
            fault: RefCell::new(None),
            alarm: Alarm::default(),
            stop: Cell::new(false),
            stop_waker: Cell::new(None),
            durable_pieces: Cell::new(None),
            completed_reported: Cell::new(done),
            throttle,
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

    fn pool(&self) -> &Rc<RefCell<BufferPool>> {
        &self.shard.pool
    }

    /// The front end already holds a record of the pieces the torrent starts with (its
    /// resume data matched): nothing to report until more arrive.
    pub fn assume_durable(&self) {
        self.durable_pieces
            .set(Some(self.engine.borrow().have().count()));
    }

    /// Asks the run loop to wind down (announce `stopped`, sync, drop peers).
    pub fn request_stop(&self) {
        self.stop.set(true);
        if let Some(waker) = self.stop_waker.take() {
            waker.wake();
        }
        self.wake();
    }

    /// The stop flag, for work that should end with the torrent (a background check).
    pub fn stopping(&self) -> &Cell<bool> {
        &self.stop
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

    pub fn handshake(&self) -> Handshake {
        Handshake {
            reserved: our_reserved(),
            info_hash: self.meta.info_hash,
            peer_id: self.our_id,
        }
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
        if self.peer_ids.borrow().values().any(|id| *id == peer_id) {
            return Err(DropReason::Duplicate);
        }
        self.engine.borrow_mut().add_peer(self.now(), addr, caps)
    }

    pub fn register(&self, key: PeerKey, handle: PeerHandle, peer_id: [u8; 20]) {
        self.peers.borrow_mut().insert(key, handle);
        self.peer_ids.borrow_mut().insert(key, peer_id);
        // An idle torrent sleeps: it must tick (choke, keep alive) now that it has a peer.
        self.wake();
    }

    /// Cuts the run loop's sleep short (a peer arrived, addresses came, or stopping).
    pub fn wake(&self) {
        self.alarm.ring();
    }

    /// Whether the connection `key` is still ours (not dropped or forgotten).
    pub fn has_peer(&self, key: PeerKey) -> bool {
        self.peers.borrow().contains_key(&key)
    }

    /// The connection is gone: forget it everywhere.
    pub fn forget_peer(&self, key: PeerKey) {
        self.engine.borrow_mut().remove_peer(key);
        self.peer_ids.borrow_mut().remove(&key);
        if let Some(handle) = self.peers.borrow_mut().remove(&key) {
            handle.close();
        }
    }

    /// Copies a wanted block into its piece's buffer.
    pub fn store_block(&self, piece: u32, offset: u32, data: &[u8]) {
        let Some(index) = self.layout().piece(piece) else {
            return;
        };
        let len = self.layout().piece_len(index) as usize;
        let mut buffers = self.buffers.borrow_mut();
        let buf = buffers
            .entry(piece)
            .or_insert_with(|| self.pool().borrow_mut().take_direct(len));
        let dst = &mut buf.as_bytes_mut()[..len];
        if let Some(dst) = dst.get_mut(offset as usize..offset as usize + data.len()) {
            dst.copy_from_slice(data);
        }
    }

    /// Every block of `piece` is in: hash it, write it if good, tell the engine.
    pub fn finish_piece(self: &Rc<Self>, piece: u32) {
        let Some(index) = self.layout().piece(piece) else {
            return;
        };
        let len = self.layout().piece_len(index) as usize;
        // Counted now, not when the task runs, so readers see it at once.
        let backlog = InBacklog::enter(self.pool(), len);
        let rt = self.clone();
        glommio::spawn_local(async move {
            let _backlog = backlog;
            let Some(buf) = rt.buffers.borrow_mut().remove(&piece) else {
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
                let direct = Rc::new(buf);
                let written = match rt.storage.get().await {
                    Ok(storage) => storage.write_piece(piece, &direct, len).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = written {
                    rt.fail(TorrentFault::from(&e));
                    return;
                }
                rt.keep(piece, PieceBytes::Dma(direct, len));
            } else {
                tracing::info!(piece, "piece failed its hash check; fetching it again");
                rt.pool().borrow_mut().give_direct(buf);
            }
            rt.engine
                .borrow_mut()
                .piece_checked(rt.now(), piece, ok, &digests);
            if rt.engine.borrow().is_done() {
                // The last piece: say so now, not at the next tick.
                rt.publish();
            }
            rt.drive();
        })
        .detach();
    }

    /// Waits while the shard's pieces waiting for hashing and writing are over their
    /// limit, so readers stop taking in blocks the disk cannot keep up with.
    pub async fn backlog_room(&self) {
        BufferPool::backlog_room(self.pool()).await;
    }

    /// A piece to serve, from the cache or the disk. Several peers asking for the same piece
    /// share one read.
    pub async fn piece_data(&self, piece: u32) -> Result<Rc<PieceBytes>, StorageError> {
        loop {
            if let Some(hit) = self.shard.cache.borrow_mut().get((self.index, piece)) {
                return Ok(hit);
            }
            let waiting = {
                let mut reads = self.reads.borrow_mut();
                match reads.get_mut(&piece) {
                    Some(waiters) => {
                        let (tx, rx) = local_channel::new_bounded(1);
                        waiters.push(tx);
                        Some(rx)
                    }
                    None => {
                        reads.insert(piece, Vec::new());
                        None
                    }
                }
            };
            match waiting {
                // Someone else is reading it; look again once they are done.
                Some(rx) => {
                    rx.recv().await;
                }
                None => {
                    let read = match self.storage.get().await {
                        Ok(storage) => storage.read_piece(piece).await,
                        Err(e) => Err(e),
                    };
                    for waiter in self.reads.borrow_mut().remove(&piece).unwrap_or_default() {
                        let _ = waiter.try_send(());
                    }
                    return Ok(self.keep(piece, read?));
                }
            }
        }
    }

    /// Starts reading pieces a peer will want next, so serving does not wait on the disk for
    /// a piece that could have been read while the last one went out.
    ///
    /// Reads ahead only within the shard's read-ahead budget (a quarter of the cache):
    /// with hundreds of peers each on a piece of its own, unbounded read-ahead filled the
    /// cache with pieces evicted before they were sent, which were then read twice.
    pub fn read_ahead(self: &Rc<Self>, pieces: Vec<u32>) {
        for piece in pieces {
            let cached = self.shard.cache.borrow().contains((self.index, piece));
            if cached || self.reads.borrow().contains_key(&piece) {
                continue;
            }
            let Some(index) = self.layout().piece(piece) else {
                continue;
            };
            let len = self.layout().piece_len(index) as usize;
            if !self.pool().borrow_mut().read_ahead_start(len) {
                return;
            }
            let claim = ReadAheadClaim {
                pool: self.pool().clone(),
                len,
            };
            let rt = self.clone();
            glommio::spawn_local(async move {
                let _ = rt.piece_data(piece).await;
                drop(claim);
            })
            .detach();
        }
    }

    /// Puts a piece in the shard's cache; buffers it pushes out go back to the pool.
    fn keep(&self, piece: u32, data: PieceBytes) -> Rc<PieceBytes> {
        let data = Rc::new(data);
        let evicted = self
            .shard
            .cache
            .borrow_mut()
            .insert((self.index, piece), data.clone());
        for old in evicted {
            // Unless a peer is still sending from it, the buffer is free again.
            if let Ok(PieceBytes::Dma(buf, _)) = Rc::try_unwrap(old) {
                if let Ok(buf) = Rc::try_unwrap(buf) {
                    self.pool().borrow_mut().give_direct(buf);
                }
            }
        }
        data
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
                Action::Wake(key) => {
                    if let Some(h) = self.peers.borrow().get(&key) {
                        h.wake();
                    }
                }
                Action::Disconnect(key, reason) => {
                    self.peer_ids.borrow_mut().remove(&key);
                    if let Some(h) = self.peers.borrow_mut().remove(&key) {
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
            }
        }
    }

    /// Publishes figures for the front end.
    pub fn publish(&self) {
        let stats = self.engine.borrow().stats(self.now());
        let s = &self.status;
        s.peers.store(stats.peers as u64, Ordering::Relaxed);
        s.have_pieces
            .store(u64::from(stats.have_pieces), Ordering::Relaxed);
        s.wanted_left
            .store(u64::from(stats.wanted_left), Ordering::Relaxed);
        s.downloaded.store(stats.downloaded, Ordering::Relaxed);
        s.uploaded.store(stats.uploaded, Ordering::Relaxed);
        s.download_rate
            .store(stats.download_rate, Ordering::Relaxed);
        s.upload_rate.store(stats.upload_rate, Ordering::Relaxed);
        let done = self.engine.borrow().is_done();
        s.done.store(done, Ordering::Release);
        s.set_state(if done {
            TorrentState::Seeding
        } else {
            TorrentState::Downloading
        });
    }

    fn announce_request(&self, event: Event) -> Announce {
        let stats = self.engine.borrow().stats(self.now());
        let layout = self.layout();
        let have = self.engine.borrow().have().clone();
        let have_bytes: u64 = have
            .iter_ones()
            .filter_map(|p| layout.piece(p))
            .map(|p| u64::from(layout.piece_len(p)))
            .sum();
        Announce {
            info_hash: self.meta.info_hash,
            peer_id: self.our_id.0,
            port: self.shard.config.port,
            uploaded: stats.uploaded,
            downloaded: stats.downloaded,
            left: layout.total_length() - have_bytes,
            event,
            num_want: Some(100),
            key: self.seed as u32,
            tracker_id: None,
        }
    }

    /// Adds addresses (from trackers or the user) to the book.
    pub fn learn(&self, peers: &[SocketAddr]) {
        let mut book = self.book.borrow_mut();
        for &addr in peers {
            if book.len() >= BOOK_MAX {
                break;
            }
            if addr.port() == 0
                || (addr.port() == self.shard.config.port && addr.ip().is_loopback())
            {
                continue;
            }
            book.entry(addr).or_insert(BookEntry {
                connected: false,
                next_try: Duration::ZERO,
                failures: 0,
            });
        }
        drop(book);
        self.wake();
    }

    /// Starts connections to known addresses while there is room.
    fn connect_more(self: &Rc<Self>) {
        let now = self.now();
        while self.connecting.get() < CONNECTING_MAX && self.engine.borrow().wants_peers() {
            let next = {
                let mut book = self.book.borrow_mut();
                let pick = book
                    .iter()
                    .find(|(_, e)| !e.connected && e.next_try <= now)
                    .map(|(a, _)| *a);
                if let Some(addr) = pick {
                    let e = book.get_mut(&addr).expect("picked from the book");
                    e.connected = true;
                }
                pick
            };
            let Some(addr) = next else { break };
            if self.engine.borrow().is_banned(addr) {
                continue;
            }
            let ip_slot = match self.shard.guard.admit(addr.ip()) {
                Ok(ip_slot) => ip_slot,
                Err(refusal) => {
                    self.refused_dial(addr, refusal, now);
                    continue;
                }
            };
            let Some(slot) = self.shard.budget.try_take() else {
                if let Some(e) = self.book.borrow_mut().get_mut(&addr) {
                    e.connected = false;
                }
                break;
            };
            self.connecting.set(self.connecting.get() + 1);
            let rt = self.clone();
            glommio::spawn_local(async move {
                let result = rt.connect(addr).await;
                drop((slot, ip_slot));
                let now = rt.now();
                let mut book = rt.book.borrow_mut();
                if let Some(e) = book.get_mut(&addr) {
                    e.connected = false;
                    if result.is_err() {
                        e.failures += 1;
                    }
                    // Reconnect to a peer that went away, but not in a tight loop.
                    e.next_try = now + Duration::from_secs(15 * u64::from(e.failures.clamp(1, 20)));
                }
                if let Err(why) = result {
                    tracing::debug!(%addr, why, "connection failed");
                }
            })
            .detach();
        }
    }

    /// The shard will not dial `addr`: a blocklisted one is forgotten, one at its per-IP
    /// cap is tried again later.
    fn refused_dial(&self, addr: SocketAddr, refusal: Refusal, now: Duration) {
        let mut book = self.book.borrow_mut();
        match refusal {
            Refusal::Blocked => {
                book.remove(&addr);
            }
            Refusal::PerIpCap(_) => {
                if let Some(e) = book.get_mut(&addr) {
                    e.connected = false;
                    e.next_try = now + PER_IP_RETRY;
                }
            }
        }
    }

    async fn connect(self: &Rc<Self>, addr: SocketAddr) -> Result<(), String> {
        let attempt = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).await;
        self.connecting.set(self.connecting.get() - 1);
        let mut stream = attempt.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        peer::send_handshake(&mut stream, &self.handshake())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let theirs = peer::read_handshake(&mut stream, &mut buf).await?;
        if theirs.info_hash != self.meta.info_hash {
            return Err("answered for another torrent".into());
        }
        let pending = buf.split_off(ccbt_engine::wire::HANDSHAKE_LEN);
        peer::run(self.clone(), stream, addr, theirs, pending).await;
        Ok(())
    }

    /// An incoming connection for this torrent, its handshake read; we answer and run it.
    pub async fn accept(self: Rc<Self>, mut stream: TcpStream, addr: SocketAddr, mut buf: Vec<u8>) {
        let theirs = match Handshake::parse(&buf) {
            Ok(hs) => hs,
            Err(_) => return,
        };
        if self.engine.borrow().is_banned(addr) {
            return;
        }
        if peer::send_handshake(&mut stream, &self.handshake())
            .await
            .is_err()
        {
            return;
        }
        let pending = buf.split_off(ccbt_engine::wire::HANDSHAKE_LEN);
        peer::run(self, stream, addr, theirs, pending).await;
    }

    /// The torrent's life on its shard: ticks, announces and connections until asked to
    /// stop or a fault stops it, or until complete unless `keep_seeding`.
    pub async fn run(self: Rc<Self>, keep_seeding: bool) {
        let mut was_done = self.engine.borrow().is_done();
        let mut next_durable = self.now() + DURABLE_EVERY;
        let first_tracker = self.announcer.borrow().current().map(str::to_string);
        if let Some(url) = first_tracker {
            self.shard
                .scraper
                .want(self.meta.info_hash, &url, &self.status);
        }
        while !self.stop.get() && !self.has_failed() {
            let now = self.now();
            self.engine.borrow_mut().tick(now);
            self.drive();
            self.publish();
            let done = self.engine.borrow().is_done();
            if done && !was_done {
                was_done = true;
                self.announcer.borrow_mut().completed();
            }
            if done && !keep_seeding {
                break;
            }
            if now >= next_durable {
                next_durable = now + DURABLE_EVERY;
                // Boxed: only torrents that wrote pieces get this far, so idle ones keep
                // a small future.
                Box::pin(self.report_durable()).await;
            }
            let due = self.announcer.borrow_mut().poll(now);
            if let Some((url, event)) = due {
                glommio::spawn_local(self.clone().announce(url, event)).detach();
            }
            self.connect_more();
            let mut nap = self.nap(now, &self.announcer.borrow());
            if self.durable_pending() {
                nap = nap.min(next_durable.saturating_sub(now).max(TICK));
            }
            self.alarm.sleep(nap).await;
        }
        // Boxed: its state (tracker requests) is allocated only when stopping, so the
        // future every idle torrent keeps is small.
        Box::pin(self.wind_down()).await;
    }

    /// Tells the front end, if it listens.
    fn emit(&self, event: SwarmEvent) {
        if let Some(events) = &self.shard.events {
            events.send(event);
        }
    }

    /// Pieces the front end has not heard are durable (only if it listens).
    fn durable_pending(&self) -> bool {
        self.shard.events.is_some()
            && self.durable_pieces.get() != Some(self.engine.borrow().have().count())
    }

    /// If pieces were written since the last report and the front end keeps resume
    /// data: syncs the files, then reports the pieces written before the sync as durable.
    async fn report_durable(&self) {
        let Some(events) = &self.shard.events else {
            return;
        };
        if !self.durable_pending() || self.has_failed() {
            return;
        }
        let have = self.engine.borrow().have().clone();
        // The snapshot is taken before the sync: every piece in it was written (a piece
        // joins `have` only once its write completed), so the sync makes all of it durable.
        if let Some(storage) = self.storage.if_open() {
            if let Err(e) = storage.sync().await {
                self.fail(TorrentFault::from(&e));
                return;
            }
        }
        let count = have.count();
        let done = self.engine.borrow().is_done();
        let stats = self.engine.borrow().stats(self.now());
        let sent = events.send(SwarmEvent::Durable {
            info_hash: self.meta.info_hash,
            have,
            files: self.file_stamps(),
            uploaded: stats.uploaded,
            downloaded: stats.downloaded,
        });
        if sent {
            self.durable_pieces.set(Some(count));
            if done && !self.completed_reported.get() {
                self.completed_reported.set(true);
                events.send(SwarmEvent::Completed {
                    info_hash: self.meta.info_hash,
                });
            }
        }
    }

    /// Each file's size and mtime now, in torrent order.
    fn file_stamps(&self) -> Vec<Option<FileStamp>> {
        let save_dir = self.storage.save_dir();
        self.layout()
            .files()
            .iter()
            .map(|f| {
                if f.pad {
                    None
                } else {
                    FileStamp::of(&path_under(save_dir, &f.path))
                }
            })
            .collect()
    }

    /// Syncs the files, says goodbye to the tracker and drops the peers.
    async fn wind_down(&self) {
        self.publish();
        self.shard.scraper.forget(&self.meta.info_hash);
        let announcer = &self.announcer;
        if !self.has_failed() {
            if let Some(storage) = self.storage.if_open() {
                if let Err(e) = storage.sync().await {
                    self.fail(TorrentFault::from(&e));
                }
            }
        }
        if !self.has_failed() {
            // Whatever was written since the last report: the files are synced now.
            self.report_durable().await;
        }
        // Tell the tracker we completed (if no tracker has heard it yet) and that we stop,
        // briefly each: exiting must not hang on a dead tracker.
        let (url, pending) = {
            let a = announcer.borrow();
            (a.current().map(str::to_string), a.pending_event())
        };
        if let Some(url) = url {
            let events = match pending {
                Event::Completed => vec![Event::Completed, Event::Stopped],
                // The tracker never heard of us: nothing to say goodbye to.
                Event::Started => vec![],
                _ => vec![Event::Stopped],
            };
            if !events.is_empty() {
                if let Turn::Go(within, _permit) = self.shard.goodbyes.turn().await {
                    let _ = glommio::timer::timeout(within, async {
                        for event in events {
                            let request = self.announce_request(event);
                            let _ = tracker::announce(
                                &url,
                                &request,
                                &self.shard.clock,
                                &self.shard.trackers,
                                self.seed,
                            )
                            .await;
                        }
                        Ok(())
                    })
                    .await;
                }
            }
        }
        let keys: Vec<PeerKey> = self.peers.borrow().keys().copied().collect();
        for key in keys {
            self.forget_peer(key);
        }
    }

    /// How long the run loop may sleep: a tick while there are peers or pieces in flight;
    /// an idle torrent sleeps until its next announce or connection retry, unless rung.
    fn nap(&self, now: Duration, announcer: &Announcer) -> Duration {
        let busy = !self.peers.borrow().is_empty()
            || self.connecting.get() > 0
            || !self.buffers.borrow().is_empty()
            || self.engine.borrow().peer_count() > 0;
        if busy {
            return TICK;
        }
        let mut until = now + IDLE_NAP_MAX;
        if let Some(due) = announcer.next_due() {
            until = until.min(due);
        }
        if self.engine.borrow().wants_peers() {
            let retry = self
                .book
                .borrow()
                .values()
                .filter(|e| !e.connected)
                .map(|e| e.next_try)
                .min();
            if let Some(retry) = retry {
                until = until.min(retry);
            }
        }
        until.saturating_sub(now).max(TICK)
    }

    /// Returns once the torrent is asked to stop.
    async fn until_stopped(&self) {
        std::future::poll_fn(|cx| {
            if self.stop.get() {
                std::task::Poll::Ready(())
            } else {
                self.stop_waker.set(Some(cx.waker().clone()));
                std::task::Poll::Pending
            }
        })
        .await;
    }

    /// One announce, once the shard's gate lets it through; learns the peers it returns.
    async fn announce(self: Rc<Self>, url: String, event: Event) {
        let host = host_key(&url);
        // `completed` must be heard; a torrent added on its own wants peers now. A crowd
        // of `started` (a daemon resuming) waits its turn.
        let urgent = match event {
            Event::Completed => true,
            Event::Started => self.shard.announces.lone_start(),
            _ => false,
        };
        // Leave the line if the torrent stops meanwhile: with 100,000 torrents it may be
        // long, and a paused torrent should not hold its place (or its memory) in it.
        let entered = futures_lite::future::or(
            async { Some(self.shard.announces.enter(&host, urgent).await) },
            async {
                self.until_stopped().await;
                None
            },
        )
        .await;
        let Some(entered) = entered else {
            self.announcer
                .borrow_mut()
                .defer(self.now(), ANNOUNCE_DEFER);
            return;
        };
        let pass = match entered {
            Ok(pass) => pass,
            Err(full) => {
                tracing::debug!(url, %full, "announce deferred");
                self.announcer
                    .borrow_mut()
                    .defer(self.now(), ANNOUNCE_DEFER);
                self.wake();
                return;
            }
        };
        if self.stop.get() {
            // Stopping while in line: wind_down says goodbye if need be.
            self.announcer
                .borrow_mut()
                .defer(self.now(), ANNOUNCE_DEFER);
            return;
        }
        let request = self.announce_request(event);
        let result = tracker::announce(
            &url,
            &request,
            &self.shard.clock,
            &self.shard.trackers,
            self.seed,
        )
        .await;
        drop(pass);
        let announcer = &self.announcer;
        let now = self.now();
        match result {
            Ok(response) => {
                tracing::debug!(url, peers = response.peers.len(), "announced");
                if let (Some(seeders), Some(leechers)) = (response.seeders, response.leechers) {
                    self.status.set_announced(seeders, leechers);
                }
                self.shard
                    .scraper
                    .want(self.meta.info_hash, &url, &self.status);
                self.learn(&response.peers);
                let wants_peers = {
                    let engine = self.engine.borrow();
                    !engine.is_done() && engine.wants_peers()
                };
                announcer
                    .borrow_mut()
                    .on_success(now, &response, wants_peers);
            }
            Err(e) => {
                tracing::warn!(url, error = %e, "announce failed");
                self.emit(SwarmEvent::TrackerError {
                    info_hash: self.meta.info_hash,
                    url: url.clone(),
                    message: e.to_string(),
                });
                announcer.borrow_mut().on_failure(now);
            }
        }
        // The schedule moved: an idle torrent works out again how long to sleep.
        self.wake();
    }
}

/// Bytes of the shard's read-ahead budget a read holds until dropped (read, failed, or
/// its task dropped with the shard).
struct ReadAheadClaim {
    pool: Rc<RefCell<BufferPool>>,
    len: usize,
}

impl Drop for ReadAheadClaim {
    fn drop(&mut self) {
        self.pool.borrow_mut().read_ahead_done(self.len);
    }
}

/// A complete piece counted in the shard's backlog until dropped (written, failed or
/// abandoned).
struct InBacklog {
    pool: Rc<RefCell<BufferPool>>,
    len: usize,
}

impl InBacklog {
    fn enter(pool: &Rc<RefCell<BufferPool>>, len: usize) -> InBacklog {
        pool.borrow_mut().backlog_add(len);
        InBacklog {
            pool: pool.clone(),
            len,
        }
    }
}

impl Drop for InBacklog {
    fn drop(&mut self) {
        self.pool.borrow_mut().backlog_done(self.len);
    }
}
