//! A torrent added from a magnet link, before its info dict is known: the fetch phase.
//!
//! Design: fetching is a phase of its own that ends by handing off to the normal add path.
//! A [`Fetch`] lives on the torrent's owner shard (registered beside the shard's torrents,
//! so a second add of the same info hash is refused and commands find it). It announces
//! to the magnet's trackers, dials the magnet's peers and those trackers name, and takes
//! the incoming connections the shard routes to it by info hash. On each connection it
//! does the handshake and the extension handshake (ut_metadata), and feeds the engine's
//! [`MetadataFetcher`], which decides whom to ask for which 16 KiB piece and whom to drop.
//! Once the fetcher hands over an info dict whose SHA-1 is the info hash, it is wrapped in
//! a `.torrent` (with the magnet's trackers), parsed by the usual metainfo parser and
//! sanitizer, and the torrent is added as if from that file: its data is checked, storage
//! opened, and the addresses that served the metadata are its first peers. The connection
//! that delivered the last piece is carried over (a client such as Transmission refuses a
//! quick reconnect from the same address): it waits until the torrent runs, then goes on
//! as any connection, with the piece-list messages the peer sent during the fetch replayed
//! to the torrent. The fetch sent it HAVE NONE (with the Fast extension) or nothing, so the
//! torrent's own piece list and second extension handshake read as an update. Other
//! connections are closed; their addresses are the torrent's to dial.
//!
//! The torrent's [`TorrentStatus`] is the same from the add on, in state
//! [`TorrentState::FetchingMetadata`] with the metadata's progress, then as any torrent's.
//!
//! Bounds: [`CONNECTIONS_MAX`] connections (and [`DIALLING_MAX`] dials in flight) per fetch,
//! beside the shard's connection budget and per-IP cap; messages no longer than the wire
//! allows for a torrent of the largest info dict accepted; the fetcher's own bounds on
//! peers and requests. A peer claiming metadata over the limit is dropped; if nothing else
//! comes within [`TOO_LARGE_AFTER`], the fetch fails with [`MetadataFailure::TooLarge`].
//! The connection carried over to the torrent leaves the shard's connection budget and
//! per-IP count when the fetch ends (one per magnet link at most).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use ccbt_engine::extension::{Extension, OurHandshake, TheirHandshake};
use ccbt_engine::metadata::{self, FetchConfig, FetchEvent, FetchKey, MetadataFetcher};
use ccbt_engine::metainfo::Metainfo;
use ccbt_engine::picker::Priority;
use ccbt_engine::tracker::{Announce, Announcer};
use ccbt_engine::wire::{self, decode_message, Handshake, Message, PeerId, HANDSHAKE_LEN};
use ccbt_engine::InfoHash;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::TcpStream;

use super::address_book::{AddressBook, PeerSource};
use super::alarm::Alarm;
use super::announce_gate::host_key;
use super::peer::{self, our_reserved};
use super::peer_table::PeerHandle;
use super::shard::ShardCtx;
use super::status::{MetadataFailure, TorrentFault, TorrentState, TorrentStatus};
use super::stop::StopSignal;
use super::tracker;
use super::{TorrentSpec, Verify};

/// Connections one fetch holds at most (handshaking or established).
pub const CONNECTIONS_MAX: usize = 50;
/// Dials in flight per fetch.
const DIALLING_MAX: usize = 8;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the fetch looks at its timers, dials and status.
const TICK: Duration = Duration::from_millis(100);
/// A fetch whose only metadata offers were over the limit fails this long after the first
/// such offer, if no peer offers a size within it meanwhile.
pub const TOO_LARGE_AFTER: Duration = Duration::from_secs(5);
/// Addresses that served us remembered as the torrent's first peers, at most.
const SERVED_BY_MAX: usize = 200;
/// A connection that says nothing for this long is closed.
const SILENT_MAX: Duration = Duration::from_secs(60);
/// Bytes of a peer's piece-list messages (bitfield, HAVEs) kept to replay to the torrent;
/// past it the connection is not carried over.
const REPLAY_MAX: usize = 256 * 1024;
/// How long a carried-over connection waits for the torrent to run (its check).
const ADOPT_WAIT_MAX: Duration = Duration::from_secs(120);

/// The connection that delivered the metadata, kept for the torrent.
struct Adopted {
    stream: TcpStream,
    addr: SocketAddr,
    theirs: Handshake,
    /// The peer's piece-list messages from the fetch, then its bytes not yet read.
    pending: Vec<u8>,
    /// We dialled it (so `addr` is where it listens).
    dialled: bool,
}

/// How a connection's reader ended.
enum ReadEnd {
    Closed(String),
    /// It delivered the last piece: hand it to the torrent.
    Adopt(Vec<u8>),
}

/// A torrent to add from a magnet link.
#[derive(Debug, Clone)]
pub struct MagnetSpec {
    pub info_hash: InfoHash,
    /// `dn`, shown until the metadata arrives.
    pub display_name: Option<String>,
    /// `tr`: each its own tier, in order; they are the fetched torrent's trackers too.
    pub trackers: Vec<String>,
    /// `ws`: the fetched torrent's web seeds (BEP 19), used once its files are known.
    pub web_seeds: Vec<String>,
    /// `x.pe` and peers given besides.
    pub peers: Vec<SocketAddr>,
    /// Largest info dict accepted, in bytes.
    pub metadata_size_max: u32,
    /// Fetch the metadata and stop there (the torrent is not added): `info --fetch`.
    pub metadata_only: bool,
    /// File indices to download once the files are known (BEP 53 `so`, `--only`); empty
    /// downloads all. Indices past the torrent's files are ignored.
    pub select_only: Vec<usize>,
    /// What the torrent is added with once its metadata is known.
    pub save_dir: PathBuf,
    pub sequential: bool,
    pub keep_seeding: bool,
    pub paused: bool,
    pub upload_bytes_per_s: u64,
    pub download_bytes_per_s: u64,
}

impl MagnetSpec {
    /// The spec of the torrent once `metainfo` is known.
    fn torrent(&self, metainfo: Arc<Metainfo>, peers: Vec<SocketAddr>) -> TorrentSpec {
        let files = metainfo.info.layout.files().len();
        let priorities = (!self.select_only.is_empty()).then(|| {
            (0..files)
                .map(|i| {
                    if self.select_only.contains(&i) {
                        Priority::Normal
                    } else {
                        Priority::Skip
                    }
                })
                .collect()
        });
        TorrentSpec {
            metainfo,
            save_dir: self.save_dir.clone(),
            verify: Verify::Full,
            sequential: self.sequential,
            priorities,
            keep_seeding: self.keep_seeding,
            paused: self.paused,
            peers,
            upload_bytes_per_s: self.upload_bytes_per_s,
            download_bytes_per_s: self.download_bytes_per_s,
        }
    }
}

/// One connection the fetch holds: its socket and writer, and what waits to be sent.
struct Conn {
    handle: PeerHandle,
    outbox: Vec<u8>,
}

/// A magnet link's metadata being fetched on its shard. See the module doc.
pub struct Fetch {
    ctx: Rc<ShardCtx>,
    spec: MagnetSpec,
    status: Arc<TorrentStatus>,
    fetcher: RefCell<MetadataFetcher>,
    book: AddressBook,
    conns: RefCell<HashMap<FetchKey, Conn>>,
    /// Connections counted against [`CONNECTIONS_MAX`], from dial or accept to close.
    held: Cell<usize>,
    next_key: Cell<FetchKey>,
    our_id: PeerId,
    seed: u64,
    stop: StopSignal,
    alarm: Alarm,
    announcer: RefCell<Announcer>,
    /// Addresses we dialled that gave metadata: the torrent's first peers.
    served_by: RefCell<Vec<SocketAddr>>,
    /// The verified info dict, once the fetcher handed it over.
    fetched: RefCell<Option<Vec<u8>>>,
    /// The connection whose message completed the metadata.
    finisher: Cell<Option<FetchKey>>,
    adopted: RefCell<Option<Adopted>>,
    /// Tells `run` the finisher's reader has stopped (adopted or not).
    finisher_done: Alarm,
    finisher_settled: Cell<bool>,
}

impl Fetch {
    pub fn new(
        ctx: Rc<ShardCtx>,
        index: u32,
        spec: MagnetSpec,
        status: Arc<TorrentStatus>,
    ) -> Self {
        let seed = ctx.seed_for(index);
        let mut id_random = [0u8; 12];
        id_random.copy_from_slice(&seed.to_le_bytes().repeat(2)[..12]);
        let config = FetchConfig {
            size_max: spec.metadata_size_max,
            ..FetchConfig::default()
        };
        let tiers = spec.trackers.iter().map(|t| vec![t.clone()]).collect();
        let book = AddressBook::new(ctx.config.port);
        book.learn(&spec.peers, PeerSource::Manual);
        Fetch {
            fetcher: RefCell::new(MetadataFetcher::new(spec.info_hash, config)),
            announcer: RefCell::new(Announcer::new(tiers, seed)),
            book,
            conns: RefCell::default(),
            held: Cell::new(0),
            next_key: Cell::new(0),
            our_id: PeerId::generate(id_random),
            seed,
            stop: StopSignal::default(),
            alarm: Alarm::default(),
            served_by: RefCell::default(),
            fetched: RefCell::default(),
            finisher: Cell::new(None),
            adopted: RefCell::default(),
            finisher_done: Alarm::default(),
            finisher_settled: Cell::new(false),
            status,
            spec,
            ctx,
        }
    }

    pub fn info_hash(&self) -> InfoHash {
        self.spec.info_hash
    }

    pub fn status(&self) -> &Arc<TorrentStatus> {
        &self.status
    }

    pub fn save_dir(&self) -> PathBuf {
        self.spec.save_dir.clone()
    }

    /// Adds addresses (from the DHT or LSD) to the book.
    pub fn learn(&self, peers: &[std::net::SocketAddr], source: PeerSource) {
        self.book.learn(peers, source);
        self.alarm.ring();
    }

    /// Ends the fetch (a remove, a pause or the shard stopping); its connections close.
    pub fn request_stop(&self) {
        self.stop.request();
        self.alarm.ring();
    }

    fn now(&self) -> Duration {
        self.ctx.clock.now()
    }

    /// Runs the fetch until it has the metadata, fails or is stopped; then hands off.
    pub async fn run(self: Rc<Self>) {
        self.status.set_state(TorrentState::FetchingMetadata);
        tracing::info!(torrent = %self.spec.info_hash, "fetching metadata");
        let mut too_large_since = None;
        // A magnet's torrent may turn out private (BEP 27), but nothing says so before
        // the metadata; like other clients, look it up (without announcing: we have
        // nothing to serve yet).
        let mut dht_asks = super::dht::AskSchedule::new(self.now());
        // On the LAN it announces as libtorrent does: peers that have the torrent connect.
        let mut lsd_asks = super::lsd::Schedule::new(self.now());
        let failure = loop {
            if self.stop.is_set() || self.fetched.borrow().is_some() {
                break None;
            }
            let now = self.now();
            if self
                .fetcher
                .borrow()
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.fetcher.borrow_mut().handle_timeout(now);
            }
            self.flush();
            if let Some(size) = self.fetcher.borrow().too_large() {
                let since = *too_large_since.get_or_insert(now);
                let usable = self.fetcher.borrow().progress().peers;
                if usable == 0 && now.saturating_sub(since) >= TOO_LARGE_AFTER {
                    break Some(MetadataFailure::TooLarge {
                        size,
                        max: self.spec.metadata_size_max,
                    });
                }
            }
            let due = self.announcer.borrow_mut().poll(now);
            if let Some((url, _event)) = due {
                glommio::spawn_local(self.clone().announce(url)).detach();
            }
            if let Some(dht) = &self.ctx.dht {
                if dht_asks.due(now) {
                    let request = super::dht::DhtRequest::Lookup {
                        info_hash: self.spec.info_hash,
                        shard: self.ctx.id,
                        announce: false,
                    };
                    super::dht::ask(dht, request);
                }
            }
            if let Some(lsd) = &self.ctx.lsd {
                lsd_asks.ask(lsd, self.spec.info_hash, now);
            }
            self.dial_more();
            self.publish();
            self.alarm.sleep(TICK).await;
        };
        if self.finisher.get().is_some() {
            // Its reader is at the message that completed the metadata: it stops there.
            while !self.finisher_settled.get() {
                self.finisher_done.sleep(TICK).await;
            }
        }
        self.close_all();
        self.publish();
        self.ctx.forget_fetch(&self);
        if self.stop.is_set() {
            // Removed, paused or shut down, perhaps just as the metadata came: a stopped
            // fetch never becomes a torrent.
            self.status.finished.store(true, Ordering::Release);
            return;
        }
        if let Some(failure) = failure {
            tracing::warn!(torrent = %self.spec.info_hash, %failure, "metadata fetch failed");
            self.fail(&failure);
            return;
        }
        let Some(info) = self.fetched.borrow_mut().take() else {
            // Stopped by a command: the status says where it was left.
            self.status.finished.store(true, Ordering::Release);
            return;
        };
        self.hand_off(info);
    }

    fn fail(&self, failure: &MetadataFailure) {
        self.status.set_fault(Some(TorrentFault::from(failure)));
        self.status.set_state(TorrentState::Failed);
        self.status.finished.store(true, Ordering::Release);
    }

    /// The info dict is verified: the torrent continues as if added from its `.torrent`.
    fn hand_off(&self, info: Vec<u8>) {
        let file = metadata::torrent_file(&info, &self.spec.trackers, &self.spec.web_seeds);
        let metainfo = match Metainfo::parse(&file) {
            Ok(m) => Arc::new(m),
            Err(e) => return self.fail(&MetadataFailure::BadMetadata(e.to_string())),
        };
        tracing::info!(
            torrent = %self.spec.info_hash,
            name = %metainfo.info.name.display(),
            bytes = info.len(),
            "metadata fetched"
        );
        self.status.set_metainfo(metainfo.clone());
        if self.spec.metadata_only {
            self.status.set_state(TorrentState::Stopped);
            self.status.finished.store(true, Ordering::Release);
            return;
        }
        let kept = self.adopted.borrow().as_ref().map(|a| a.addr);
        let mut peers = self.spec.peers.clone();
        for addr in self.served_by.borrow().iter() {
            if !peers.contains(addr) && Some(*addr) != kept {
                peers.push(*addr);
            }
        }
        let spec = self.spec.torrent(metainfo, peers);
        let adopted = self.adopted.borrow_mut().take();
        let added = self.ctx.add_torrent(spec, self.status.clone());
        if let (Ok(()), Some(conn)) = (&added, adopted) {
            glommio::spawn_local(adopt(self.ctx.clone(), self.spec.info_hash, conn)).detach();
        }
        if let Err(e) = added {
            tracing::warn!(torrent = %self.spec.info_hash, error = %e, "cannot add the fetched torrent");
            self.status
                .set_fault(Some(TorrentFault::bad_data(e.to_string())));
            self.status.set_state(TorrentState::Failed);
            self.status.finished.store(true, Ordering::Release);
        }
    }

    fn publish(&self) {
        let p = self.fetcher.borrow().progress();
        let s = &self.status;
        s.peers
            .store(self.conns.borrow().len() as u64, Ordering::Relaxed);
        s.metadata_peers.store(p.peers as u64, Ordering::Relaxed);
        s.metadata_pieces_got
            .store(u64::from(p.pieces_got), Ordering::Relaxed);
        s.metadata_pieces_total
            .store(u64::from(p.pieces_total), Ordering::Relaxed);
    }

    fn close_all(&self) {
        for conn in self.conns.borrow().values() {
            conn.handle.close();
        }
    }

    /// Carries out what the fetcher asks: messages into outboxes, peers dropped, the
    /// metadata kept.
    fn flush(&self) {
        let mut fetcher = self.fetcher.borrow_mut();
        let mut conns = self.conns.borrow_mut();
        while let Some(t) = fetcher.poll_transmit() {
            if let Some(conn) = conns.get_mut(&t.peer) {
                Message::Extended {
                    id: t.ext_id,
                    payload: &t.payload,
                }
                .encode(&mut conn.outbox);
                conn.handle.wake();
            }
        }
        while let Some(event) = fetcher.poll_event() {
            match event {
                FetchEvent::Drop(key, reason) => {
                    if let Some(conn) = conns.get(&key) {
                        tracing::info!(peer = %conn.handle.addr, %reason, "metadata peer dropped");
                        conn.handle.close();
                    }
                }
                FetchEvent::Done(info) => {
                    *self.fetched.borrow_mut() = Some(info);
                    self.alarm.ring();
                }
            }
        }
    }

    /// Dials known addresses while there is room.
    fn dial_more(self: &Rc<Self>) {
        let now = self.now();
        while self.book.dialling() < DIALLING_MAX && self.held.get() < CONNECTIONS_MAX {
            let Some(addr) = self.book.claim_next(now) else {
                break;
            };
            if self.fetcher.borrow().is_banned(addr) {
                continue;
            }
            let ip_slot = match self.ctx.guard.admit(addr.ip()) {
                Ok(slot) => slot,
                Err(refusal) => {
                    self.book.refused(addr, refusal, now);
                    continue;
                }
            };
            let Some(budget) = self.ctx.connection_slot() else {
                self.book.unclaim(addr);
                break;
            };
            self.book.dial_started();
            self.held.set(self.held.get() + 1);
            let fetch = self.clone();
            glommio::spawn_local(async move {
                let result = fetch.dial(addr).await;
                drop((budget, ip_slot));
                fetch.held.set(fetch.held.get() - 1);
                fetch.book.dial_ended(addr, result.is_err(), fetch.now());
                if let Err(why) = result {
                    tracing::debug!(%addr, why, "metadata connection failed");
                }
            })
            .detach();
        }
    }

    async fn dial(self: &Rc<Self>, addr: SocketAddr) -> Result<(), String> {
        let attempt = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).await;
        self.book.dial_settled();
        let mut stream = attempt.map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        peer::send_handshake(&mut stream, &self.handshake())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let theirs = peer::read_handshake(&mut stream, &mut buf).await?;
        if theirs.info_hash != self.spec.info_hash {
            return Err("answered for another torrent".into());
        }
        let pending = buf.split_off(HANDSHAKE_LEN);
        self.run_conn(stream, addr, theirs, pending, true).await
    }

    /// An incoming connection for this info hash, its handshake read into `buf`.
    pub async fn accept(self: Rc<Self>, mut stream: TcpStream, addr: SocketAddr, mut buf: Vec<u8>) {
        let Ok(theirs) = Handshake::parse(&buf) else {
            return;
        };
        if self.fetcher.borrow().is_banned(addr) || self.held.get() >= CONNECTIONS_MAX {
            return;
        }
        if peer::send_handshake(&mut stream, &self.handshake())
            .await
            .is_err()
        {
            return;
        }
        self.held.set(self.held.get() + 1);
        let pending = buf.split_off(HANDSHAKE_LEN);
        let result = self.run_conn(stream, addr, theirs, pending, false).await;
        self.held.set(self.held.get() - 1);
        if let Err(why) = result {
            tracing::debug!(%addr, why, "incoming metadata connection ended");
        }
    }

    fn handshake(&self) -> Handshake {
        Handshake {
            reserved: our_reserved(self.ctx.dht.is_some()),
            info_hash: self.spec.info_hash,
            peer_id: self.our_id,
        }
    }

    /// Runs one connection whose handshakes are done until it or the fetch ends.
    async fn run_conn(
        self: &Rc<Self>,
        stream: TcpStream,
        addr: SocketAddr,
        theirs: Handshake,
        pending: Vec<u8>,
        dialled: bool,
    ) -> Result<(), String> {
        if !theirs.reserved.supports_extensions() {
            return Err("does not speak the extension protocol".into());
        }
        if theirs.peer_id == self.our_id {
            return Err("connected to ourselves".into());
        }
        if self.stop.is_set() || self.fetched.borrow().is_some() {
            return Ok(());
        }
        let key = self.next_key.get();
        self.next_key.set(key + 1);
        let fd = stream.as_raw_fd();
        let writer_stream = match nix::unistd::dup(fd) {
            // SAFETY: `dup` returned a fresh descriptor that nothing else owns.
            Ok(dup) => unsafe { TcpStream::from_raw_fd(dup) },
            Err(e) => return Err(format!("cannot duplicate the socket: {e}")),
        };
        let (doorbell, rings) = local_channel::new_bounded(1);
        let mut outbox = Vec::new();
        // With the Fast extension a piece list must come first: we have none yet.
        if theirs.reserved.supports_fast() && our_reserved(false).supports_fast() {
            Message::HaveNone.encode(&mut outbox);
        }
        let ours = OurHandshake {
            reqq: ccbt_engine::session::ADVERTISED_REQQ,
            metadata_size: None,
            // Whether the torrent is private is not known before its metadata: a kept
            // connection gets the torrent's own handshake, which offers ut_pex if it may.
            pex: false,
        }
        .encode();
        Message::Extended {
            id: 0,
            payload: &ours,
        }
        .encode(&mut outbox);
        if theirs.reserved.supports_dht() && self.ctx.dht.is_some() {
            Message::Port(self.ctx.config.port).encode(&mut outbox);
        }
        self.conns.borrow_mut().insert(
            key,
            Conn {
                handle: PeerHandle::new(doorbell, fd, addr),
                outbox,
            },
        );
        self.status
            .metadata_connections
            .fetch_add(1, Ordering::Relaxed);
        let writer = glommio::spawn_local(self.clone().write_loop(key, writer_stream, rings));
        self.conns.borrow()[&key].handle.wake();
        let mut stream = stream;
        let end = self
            .read_loop(key, addr, &mut stream, pending, dialled)
            .await;
        let conn = self.conns.borrow_mut().remove(&key);
        if let ReadEnd::Closed(_) = end {
            if let Some(conn) = &conn {
                conn.handle.close();
            }
        }
        // Dropping the doorbell ends the writer (its descriptor is a duplicate).
        drop(conn);
        self.fetcher.borrow_mut().remove_peer(self.now(), key);
        self.flush();
        writer.await;
        match end {
            ReadEnd::Adopt(pending) => {
                tracing::debug!(%addr, "metadata connection kept for the torrent");
                *self.adopted.borrow_mut() = Some(Adopted {
                    stream,
                    addr,
                    theirs,
                    pending,
                    dialled,
                });
            }
            ReadEnd::Closed(why) => {
                drop(stream);
                tracing::debug!(%addr, why, "metadata connection closed");
            }
        }
        if self.finisher.get() == Some(key) {
            self.finisher_settled.set(true);
            self.finisher_done.ring();
        }
        Ok(())
    }

    async fn read_loop(
        &self,
        key: FetchKey,
        addr: SocketAddr,
        stream: &mut TcpStream,
        pending: Vec<u8>,
        dialled: bool,
    ) -> ReadEnd {
        // A peer sends its piece list straight away; its length is bounded by the piece
        // count an info dict of the largest accepted size can list.
        let max = wire::max_message_len(self.spec.metadata_size_max / 20);
        let mut buf = pending;
        let mut chunk = vec![0u8; 32 * 1024];
        let mut theirs: Option<TheirHandshake> = None;
        // The peer's piece-list messages, raw, for the torrent if this connection is kept.
        let mut replay: Vec<u8> = Vec::new();
        // Set when a piece-list message did not fit: the connection cannot be kept.
        let mut replay_lost = false;
        // BEP 5: only the first `port` message of a connection is passed on.
        let mut port_heard = false;
        loop {
            let mut used = 0;
            loop {
                match decode_message(&buf[used..], max) {
                    Ok(Some((msg, n))) => {
                        let raw = used..used + n;
                        used += n;
                        if matches!(
                            msg,
                            Message::Bitfield(_)
                                | Message::Have(_)
                                | Message::HaveAll
                                | Message::HaveNone
                        ) && replay.len() + n <= REPLAY_MAX
                        {
                            replay.extend_from_slice(&buf[raw]);
                        } else if matches!(msg, Message::Bitfield(_) | Message::Have(_)) {
                            replay_lost = true;
                        }
                        if let Message::Port(port) = msg {
                            if !port_heard {
                                port_heard = true;
                                self.ctx.dht_port(addr, port);
                            }
                        }
                        if let Err(why) = self.on_message(key, addr, &mut theirs, &msg, dialled) {
                            tracing::info!(peer = %addr, reason = %why, "metadata peer dropped");
                            return ReadEnd::Closed(why);
                        }
                        if self.finisher.get() == Some(key) {
                            // The rest is the torrent's to read.
                            break;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return ReadEnd::Closed(e.to_string()),
                }
            }
            buf.drain(..used);
            self.flush();
            if self.finisher.get() == Some(key) && !replay_lost {
                replay.extend_from_slice(&buf);
                return ReadEnd::Adopt(replay);
            }
            if self.stop.is_set() || self.fetched.borrow().is_some() {
                return ReadEnd::Closed("the fetch is over".into());
            }
            let read =
                glommio::timer::timeout(SILENT_MAX, async { Ok(stream.read(&mut chunk).await) })
                    .await;
            match read {
                Ok(Ok(0)) => return ReadEnd::Closed("closed by peer".into()),
                Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
                Ok(Err(e)) => return ReadEnd::Closed(e.to_string()),
                Err(_) => return ReadEnd::Closed(format!("silent for {SILENT_MAX:?}")),
            }
        }
    }

    fn on_message(
        &self,
        key: FetchKey,
        addr: SocketAddr,
        theirs: &mut Option<TheirHandshake>,
        msg: &Message<'_>,
        dialled: bool,
    ) -> Result<(), String> {
        let now = self.now();
        match *msg {
            Message::Extended { id: 0, payload } => {
                let later = TheirHandshake::parse(payload).map_err(|e| e.to_string())?;
                match theirs {
                    Some(known) => known.update(later, payload),
                    None => *theirs = Some(later),
                }
                let hs = theirs.as_ref().expect("set above");
                self.fetcher
                    .borrow_mut()
                    .add_peer(now, key, addr, hs)
                    .map_err(|e| e.to_string())?;
                if dialled {
                    let mut served = self.served_by.borrow_mut();
                    if served.len() < SERVED_BY_MAX && !served.contains(&addr) {
                        served.push(addr);
                    }
                }
            }
            Message::Extended { id, payload }
                if Extension::from_local_id(id) == Some(Extension::UtMetadata) =>
            {
                let mut fetcher = self.fetcher.borrow_mut();
                fetcher
                    .on_message(now, key, payload)
                    .map_err(|e| e.to_string())?;
                if fetcher.is_done() && self.finisher.get().is_none() {
                    self.finisher.set(Some(key));
                }
            }
            // Piece lists, keep-alives and the rest mean nothing before the metadata.
            _ => {}
        }
        Ok(())
    }

    async fn write_loop(
        self: Rc<Self>,
        key: FetchKey,
        mut stream: TcpStream,
        rings: LocalReceiver<()>,
    ) {
        let mut out = Vec::new();
        while rings.recv().await.is_some() {
            out.clear();
            match self.conns.borrow_mut().get_mut(&key) {
                Some(conn) => out.append(&mut conn.outbox),
                None => return,
            }
            if out.is_empty() {
                continue;
            }
            let sent = glommio::timer::timeout(Duration::from_secs(30), async {
                Ok(stream.write_all(&out).await)
            })
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                if let Some(conn) = self.conns.borrow().get(&key) {
                    conn.handle.close();
                }
                return;
            }
        }
    }

    /// One announce to `url` for the magnet's peers.
    async fn announce(self: Rc<Self>, url: String) {
        let pass = match self.ctx.announces.enter(&host_key(&url), true).await {
            Ok(pass) => pass,
            Err(_) => {
                self.announcer
                    .borrow_mut()
                    .defer(self.now(), Duration::from_secs(5));
                return;
            }
        };
        let request = Announce {
            info_hash: self.spec.info_hash,
            peer_id: self.our_id.0,
            port: self.ctx.config.port,
            uploaded: 0,
            downloaded: 0,
            // Unknown until the metadata is in; not 0, which says we are a seed.
            left: 1,
            event: ccbt_engine::tracker::Event::Started,
            num_want: Some(100),
            key: self.seed as u32,
            tracker_id: None,
        };
        let result = tracker::announce(
            &url,
            &request,
            &self.ctx.clock,
            &self.ctx.trackers,
            self.seed,
        )
        .await;
        drop(pass);
        let now = self.now();
        match result {
            Ok(response) => {
                tracing::debug!(url, peers = response.peers.len(), "announced for metadata");
                self.book.learn(&response.peers, PeerSource::Tracker);
                self.announcer.borrow_mut().on_success(now, &response, true);
            }
            Err(e) => {
                tracing::warn!(url, error = %e, "announce failed");
                self.announcer.borrow_mut().on_failure(now);
            }
        }
        self.alarm.ring();
    }
}

/// Runs the connection that delivered the metadata on the torrent, once it runs (after its
/// check); closed if the torrent does not start within [`ADOPT_WAIT_MAX`].
async fn adopt(ctx: Rc<ShardCtx>, info_hash: InfoHash, conn: Adopted) {
    let began = ctx.clock.now();
    loop {
        if let Some(rt) = ctx.torrent(&info_hash).and_then(|slot| slot.running()) {
            let outgoing = conn.dialled;
            peer::run(
                rt,
                conn.stream,
                conn.addr,
                conn.theirs,
                conn.pending,
                outgoing,
            )
            .await;
            return;
        }
        if ctx.torrent(&info_hash).is_none()
            || ctx.clock.now().saturating_sub(began) > ADOPT_WAIT_MAX
        {
            return;
        }
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
}
