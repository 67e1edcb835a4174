//! One shard as a server: it starts empty, listens at once, and then takes commands from
//! its inbox (add, remove, pause, ...) and connections from its listener and from other
//! shards, until told to stop.
//!
//! Opening, checking and running a torrent are tasks of their own (see `slot`), so a
//! command is answered as soon as it has taken effect and never waits behind a disk.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use ccbt_engine::rate_limit::shard_share;
use ccbt_engine::wire::Handshake;
use ccbt_engine::InfoHash;
use futures_lite::StreamExt;
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;

use super::announce_gate::AnnounceGate;
use super::budget::{ConnectionBudget, Slot as ConnectionSlot};
use super::buffers::BufferPool;
use super::cache::PieceCache;
use super::clock::Clock;
use super::command::{Command, CommandError, TorrentOp};
use super::dht::DhtService;
use super::events::EventSink;
use super::file_pool::FilePool;
use super::goodbye::Goodbyes;
use super::handoff::Handoff;
use super::handshakes::{Handshakes, Pending};
use super::inbox::{self, Inbox};
use super::ip_guard::IpGuard;
use super::lsd::LsdService;
use super::magnet::Fetch;
use super::replica::{self, Role};
use super::resolver::DnsCache;
use super::scraper::Scraper;
use super::share::{self, Demand};
use super::slot::Slot;
use super::stats::{RefusedConnection, ShardStats};
use super::throttle::{RateLimits, Throttle};
use super::torrent::TorrentRt;
use super::tracker::TrackerConnections;
use super::PeerLimits;
use super::{dial, peer, shard_for, SwarmConfig};
use crate::pool::ShardId;

/// What every shard starts from.
pub struct Shared {
    pub config: SwarmConfig,
    pub inboxes: Vec<inbox::Sender<Command>>,
    /// Each shard's counters, by shard id.
    pub stats: Vec<Arc<ShardStats>>,
    pub parked: Vec<inbox::Slot<Command>>,
    pub events: Option<EventSink>,
    /// Shards that listen; the front end waits for all of them before it returns.
    pub listening: Arc<AtomicUsize>,
    /// Set by a shard that could not listen, so start-up fails instead of waiting.
    pub listen_error: std::sync::Mutex<Option<String>>,
    pub clock: Clock,
    /// Each shard's use of the global rate limits, to share them out (see `share`).
    pub demand: Arc<Demand>,
}

/// What a shard's torrents share.
pub struct ShardCtx {
    pub id: ShardId,
    pub config: SwarmConfig,
    pub clock: Clock,
    /// This shard's counters, which a metrics scrape reads.
    pub stats: Arc<ShardStats>,
    pub cache: Rc<RefCell<PieceCache>>,
    pub pool: Rc<RefCell<BufferPool>>,
    pub trackers: Rc<TrackerConnections>,
    /// Lets announces through within the per-host and per-shard caps.
    pub announces: Rc<AnnounceGate>,
    /// Paces and bounds the `stopped` announces of stopping torrents.
    pub goodbyes: Goodbyes,
    /// Scrapes the shard's torrents in batches per tracker.
    pub scraper: Rc<Scraper>,
    pub budget: ConnectionBudget,
    /// Incoming connections that owe their handshake, whose slots newcomers may take.
    pub handshakes: Handshakes,
    /// This shard's share of the global rate limits, which every transfer here takes from.
    pub throttle: Rc<Throttle>,
    /// The global limits themselves, which `share` splits between the shards.
    pub global_limits: Cell<RateLimits>,
    /// Upload slots and peers per torrent now (the config's, until a reload changes them).
    pub peer_limits: Cell<PeerLimits>,
    /// The blocklist and per-IP connection counts, checked on accept and before dialling.
    pub guard: IpGuard,
    pub events: Option<EventSink>,
    /// The descriptors seeding torrents keep open, bounded.
    pub files: Rc<FilePool>,
    /// Checks running at once on this shard: one, so a thousand torrents added at once
    /// hash in turn instead of thrashing the disk together.
    pub checks: Semaphore,
    /// Shard 0's inbox, where DHT lookups are asked for (`None`: the DHT is off).
    pub dht: Option<inbox::Sender<Command>>,
    /// Every shard's inbox, by shard id: where replicas are asked for (see `replica`).
    pub inboxes: Vec<inbox::Sender<Command>>,
    /// The DHT node itself, on shard 0 only.
    dht_service: RefCell<Option<Rc<DhtService>>>,
    /// Shard 0's inbox, where LSD announces are asked for (`None`: LSD is off).
    pub lsd: Option<inbox::Sender<Command>>,
    /// The LSD service itself, on shard 0 only.
    lsd_service: RefCell<Option<Rc<LsdService>>>,
    /// Other shards' hot torrents this shard serves too, at most one replica each.
    replicas: RefCell<HashMap<InfoHash, Rc<TorrentRt>>>,
    torrents: RefCell<HashMap<InfoHash, Rc<Slot>>>,
    /// Torrents added from magnet links whose metadata is being fetched (see `magnet`).
    fetching: RefCell<HashMap<InfoHash, Rc<Fetch>>>,
    /// Numbers torrents for the piece cache's keys; never reused within a run.
    next_index: Cell<u32>,
    random: u64,
}

impl ShardCtx {
    /// A connection slot: a free one, else the slot of the incoming connection that has
    /// owed its handshake longest (see `handshakes`). `None`: the shard is at its limit.
    pub fn connection_slot(&self) -> Option<ConnectionSlot> {
        if let Some(slot) = self.budget.try_take() {
            return Some(slot);
        }
        let slot = self.handshakes.evict_oldest(self.clock.now())?;
        self.stats.handshake_evicted();
        Some(slot)
    }

    pub fn torrent(&self, info_hash: &InfoHash) -> Option<Rc<Slot>> {
        self.torrents.borrow().get(info_hash).cloned()
    }

    pub fn forget(&self, info_hash: &InfoHash) {
        self.torrents.borrow_mut().remove(info_hash);
    }

    pub fn fetch(&self, info_hash: &InfoHash) -> Option<Rc<Fetch>> {
        self.fetching.borrow().get(info_hash).cloned()
    }

    /// Forgets `fetch`, if it is still the one registered for its info hash (a paused
    /// fetch is forgotten at once, so a resume may register a new one before the old one
    /// has wound down).
    pub fn forget_fetch(&self, fetch: &Fetch) {
        let mut fetching = self.fetching.borrow_mut();
        let info_hash = fetch.info_hash();
        if fetching
            .get(&info_hash)
            .is_some_and(|f| std::ptr::eq(Rc::as_ptr(f), fetch))
        {
            fetching.remove(&info_hash);
        }
    }

    fn is_known(&self, info_hash: &InfoHash) -> bool {
        self.torrents.borrow().contains_key(info_hash)
            || self.fetching.borrow().contains_key(info_hash)
    }

    /// This shard's replica of another shard's torrent, while it serves.
    pub fn replica(&self, info_hash: &InfoHash) -> Option<Rc<TorrentRt>> {
        let rt = self.replicas.borrow().get(info_hash).cloned()?;
        let serving = match rt.role() {
            Role::Replica(cells) => !cells.is_stopped(),
            Role::Owner(_) => false,
        };
        (serving && !rt.stop_signal().is_set()).then_some(rt)
    }

    /// Registers a replica; returns the one it replaces.
    pub fn replace_replica(&self, info_hash: InfoHash, rt: Rc<TorrentRt>) -> Option<Rc<TorrentRt>> {
        self.replicas.borrow_mut().insert(info_hash, rt)
    }

    /// Forgets `rt` if it is still the registered replica of its torrent.
    pub fn forget_replica(&self, rt: &Rc<TorrentRt>) {
        let mut replicas = self.replicas.borrow_mut();
        let info_hash = rt.meta().info_hash;
        if replicas.get(&info_hash).is_some_and(|r| Rc::ptr_eq(r, rt)) {
            replicas.remove(&info_hash);
        }
    }

    pub fn next_index(&self) -> u32 {
        let index = self.next_index.get();
        self.next_index.set(index.wrapping_add(1));
        index
    }

    /// Registers a torrent and starts it (its check and opening run in the background).
    pub fn add_torrent(
        self: &Rc<Self>,
        spec: super::TorrentSpec,
        status: Arc<super::TorrentStatus>,
    ) -> Result<(), CommandError> {
        let info_hash = spec.metainfo.info_hash;
        if self.is_known(&info_hash) {
            return Err(CommandError::Duplicate(info_hash));
        }
        let slot = Rc::new(Slot::new(self.clone(), self.next_index(), spec, status));
        self.torrents.borrow_mut().insert(info_hash, slot.clone());
        slot.begin();
        Ok(())
    }

    /// BEP 5: a peer's `port` message names its DHT node, which shard 0 pings (and keeps
    /// if it answers). Callers pass on one per connection; a full inbox drops it.
    pub fn dht_port(&self, peer: std::net::SocketAddr, port: u16) {
        if let (Some(dht), true) = (&self.dht, port != 0) {
            let node = std::net::SocketAddr::new(peer.ip(), port);
            super::dht::ask(dht, super::dht::DhtRequest::Node(node));
        }
    }

    /// Fresh randomness for one torrent (peer id, tracker key, tie-breaks).
    pub fn seed_for(&self, index: u32) -> u64 {
        self.random ^ u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

pub async fn run(id: ShardId, shared: Arc<Shared>) -> Result<(), String> {
    let config = shared.config.clone();
    let dns = DnsCache::new(
        config.announce.resolver.clone(),
        shared.clock,
        &format!("shard{}", id.0),
    )
    .map_err(|e| format!("cannot start the resolver threads: {e}"))?;
    let trackers = Rc::new(TrackerConnections::new(Rc::new(dns)));
    let announces = AnnounceGate::new(config.announce.limits, shared.clock);
    let random = entropy(id);
    let stats = shared.stats[id.0 as usize].clone();
    // Every shard decides alike: whether to send announces to shard 0 at all.
    let lsd_interface = super::lsd::interface(&config.lsd, config.listen);
    let ctx = Rc::new(ShardCtx {
        id,
        stats: stats.clone(),
        cache: Rc::new(RefCell::new(PieceCache::new(config.cache_bytes))),
        pool: Rc::new(RefCell::new(BufferPool::new(
            config.cache_bytes / 2,
            config.cache_bytes,
            config.cache_bytes / 4,
        ))),
        scraper: Scraper::new(shared.clock, announces.clone(), trackers.clone(), random),
        trackers,
        announces,
        goodbyes: Goodbyes::new(config.announce.goodbyes_concurrent, shared.clock),
        budget: ConnectionBudget::new(config.max_connections_per_shard),
        handshakes: Handshakes::default(),
        throttle: Rc::new(Throttle::new(
            shared.clock.now(),
            shard_limits(config.limits, config.shards.count, id),
        )),
        global_limits: Cell::new(config.limits),
        peer_limits: Cell::new(PeerLimits {
            upload_slots: config.session.choker.upload_slots,
            max_peers_per_torrent: config.session.max_peers,
            max_connections_per_shard: config.max_connections_per_shard,
            max_connections_per_ip: config.max_connections_per_ip,
        }),
        guard: IpGuard::new(
            config.max_connections_per_ip,
            config.per_ip_exempt_loopback,
            stats,
        ),
        events: shared.events.clone(),
        files: Rc::new(FilePool::new(config.open_files_per_shard)),
        checks: Semaphore::new(1),
        dht: (config.dht.enabled && !shared.inboxes.is_empty()).then(|| shared.inboxes[0].clone()),
        dht_service: RefCell::default(),
        lsd: (lsd_interface.is_ok() && !shared.inboxes.is_empty())
            .then(|| shared.inboxes[0].clone()),
        lsd_service: RefCell::default(),
        inboxes: shared.inboxes.clone(),
        replicas: RefCell::default(),
        torrents: RefCell::default(),
        fetching: RefCell::default(),
        next_index: Cell::new(0),
        random,
        clock: shared.clock,
        config,
    });
    let listener = match TcpListener::bind((ctx.config.listen, ctx.config.port)) {
        Ok(listener) => listener,
        Err(e) => {
            let why = format!("cannot listen on port {}: {e}", ctx.config.port);
            *shared.listen_error.lock().expect("listen error lock") = Some(why.clone());
            return Err(why);
        }
    };
    let mut inbox: Inbox<Command> = shared.parked[id.0 as usize]
        .lock()
        .expect("inbox lock")
        .take()
        .ok_or("shard started twice")?
        .open();
    let accepting = glommio::spawn_local(accept_loop(listener, ctx.clone(), shared.clone()));
    let sharing = glommio::spawn_local({
        let (ctx, demand) = (ctx.clone(), shared.demand.clone());
        async move {
            loop {
                glommio::timer::sleep(share::EVERY).await;
                let global = ctx.global_limits.get();
                if global != RateLimits::default() {
                    share::rebalance(
                        &ctx.throttle,
                        &demand,
                        ctx.id.0 as usize,
                        global,
                        ctx.clock.now(),
                    );
                }
            }
        }
    });
    // The process's one DHT node, on the first shard, once the TCP port is ours.
    let dht = if id.0 == 0 && ctx.config.dht.enabled {
        DhtService::start(
            ctx.config.dht.clone(),
            ctx.config.listen,
            ctx.config.port,
            shared.clock,
            random,
            shared.inboxes.clone(),
            // Helper threads of its own: router names that never resolve (no network)
            // must not hold up the trackers' lookups on this shard.
            DnsCache::new(ctx.config.announce.resolver.clone(), shared.clock, "dht")
                .ok()
                .map(Rc::new),
        )
    } else {
        None
    };
    *ctx.dht_service.borrow_mut() = dht.clone();
    let dht_task = dht.clone().map(|d| glommio::spawn_local(d.run()));
    // Local service discovery, beside it.
    let lsd = match (id.0, lsd_interface) {
        (0, Ok(interface)) => LsdService::start(
            interface,
            ctx.config.port,
            shared.clock,
            random ^ 0x15d,
            shared.inboxes.clone(),
        ),
        (0, Err(why)) => {
            tracing::debug!("LSD off: {why}");
            None
        }
        _ => None,
    };
    *ctx.lsd_service.borrow_mut() = lsd.clone();
    let lsd_task = lsd.map(|l| glommio::spawn_local(l.run()));
    let gate = glommio::spawn_local(ctx.announces.clone().run());
    let scraping = glommio::spawn_local(ctx.scraper.clone().run());
    shared.listening.fetch_add(1, Ordering::Release);
    let mut batch = Vec::new();
    let stopped = loop {
        if !inbox.recv_all(&mut batch).await {
            break None;
        }
        let mut stop = None;
        ctx.stats.inbox_took(batch.len());
        for command in batch.drain(..) {
            match command {
                Command::Stop { reply } => stop = Some(reply),
                other => handle(&ctx, other),
            }
        }
        if stop.is_some() {
            break stop;
        }
    };
    drop(accepting);
    drop(sharing);
    drop(dht_task);
    drop(lsd_task);
    if let Some(lsd) = ctx.lsd_service.borrow_mut().take() {
        tracing::debug!(counters = ?lsd.counters(), "LSD stopped");
    }
    if let Some(dht) = ctx.dht_service.borrow_mut().take() {
        dht.save();
    }
    // Stop every torrent together: each syncs its files and announces `stopped`, a few
    // at a time and all by one deadline (see `goodbye`).
    ctx.goodbyes
        .shutting_down(ctx.config.announce.shutdown_goodbyes_within);
    for fetch in ctx.fetching.borrow().values() {
        fetch.request_stop();
    }
    for replica in ctx.replicas.borrow().values() {
        replica.request_stop();
    }
    let slots: Vec<Rc<Slot>> = ctx.torrents.borrow().values().cloned().collect();
    let endings: Vec<_> = slots.iter().map(|slot| slot.clone().pause()).collect();
    for ending in endings {
        ending.await;
    }
    drop(scraping);
    drop(gate);
    let skipped = ctx.goodbyes.skipped();
    if skipped > 0 {
        tracing::warn!(
            shard = id.0,
            skipped,
            "stopping: {skipped} `stopped` announces were not sent before the deadline"
        );
    }
    if let Some(reply) = stopped {
        let _ = reply.send(());
    }
    Ok(())
}

fn handle(ctx: &Rc<ShardCtx>, command: Command) {
    match command {
        Command::Add {
            spec,
            status,
            reply,
        } => {
            let _ = reply.send(ctx.add_torrent(spec, status));
        }
        Command::AddMagnet {
            spec,
            status,
            reply,
        } => {
            if ctx.is_known(&spec.info_hash) {
                let _ = reply.send(Err(CommandError::Duplicate(spec.info_hash)));
                return;
            }
            let info_hash = spec.info_hash;
            let fetch = Rc::new(Fetch::new(ctx.clone(), ctx.next_index(), spec, status));
            ctx.fetching.borrow_mut().insert(info_hash, fetch.clone());
            glommio::spawn_local(fetch.run()).detach();
            let _ = reply.send(Ok(()));
        }
        Command::Torrent {
            info_hash,
            op,
            reply,
        } => {
            let Some(slot) = ctx.torrent(&info_hash) else {
                let result = match ctx.fetch(&info_hash) {
                    Some(fetch) => on_fetch(ctx, &fetch, op),
                    None => Err(CommandError::UnknownTorrent(info_hash)),
                };
                let _ = reply.send(result);
                return;
            };
            // Ops that wait for the torrent to stop run as tasks: the inbox goes on.
            glommio::spawn_local(async move {
                let result = apply(slot, op).await;
                let _ = reply.send(result);
            })
            .detach();
        }
        Command::Peers { info_hash, reply } => {
            let peers = ctx
                .torrent(&info_hash)
                .map(|slot| slot.peers())
                .or_else(|| ctx.fetch(&info_hash).map(|_| Vec::new()))
                .ok_or(CommandError::UnknownTorrent(info_hash));
            let _ = reply.send(peers);
        }
        Command::Pieces { info_hash, reply } => {
            let pieces = ctx
                .torrent(&info_hash)
                .map(|slot| slot.pieces())
                .or_else(|| ctx.fetch(&info_hash).map(|_| None))
                .ok_or(CommandError::UnknownTorrent(info_hash));
            let _ = reply.send(pieces);
        }
        Command::Snapshot { reply } => {
            let mut snapshot: Vec<_> = ctx
                .torrents
                .borrow()
                .values()
                .map(|slot| slot.snapshot())
                .collect();
            snapshot.extend(
                ctx.fetching
                    .borrow()
                    .values()
                    .map(|f| super::TorrentSnapshot {
                        info_hash: f.info_hash(),
                        save_dir: f.save_dir(),
                        status: f.status().clone(),
                    }),
            );
            let _ = reply.send(snapshot);
        }
        Command::SetGlobalLimits { limits, reply } => {
            let share = shard_limits(limits, ctx.config.shards.count, ctx.id);
            ctx.throttle.set(ctx.clock.now(), share);
            ctx.global_limits.set(limits);
            tracing::debug!(shard = ctx.id.0, ?share, "global rate limits set");
            let _ = reply.send(());
        }
        Command::SetPeerLimits { limits, reply } => {
            ctx.peer_limits.set(limits);
            ctx.budget.set_max(limits.max_connections_per_shard);
            ctx.guard.set_max_per_ip(limits.max_connections_per_ip);
            let slots: Vec<Rc<Slot>> = ctx.torrents.borrow().values().cloned().collect();
            for slot in slots {
                slot.set_peer_limits(limits);
            }
            for rt in ctx.replicas.borrow().values() {
                rt.set_peer_limits(limits.upload_slots, limits.max_peers_per_torrent);
            }
            tracing::debug!(shard = ctx.id.0, ?limits, "peer limits set");
            let _ = reply.send(());
        }
        Command::SetBlocklist { list, reply } => {
            let (blocked, per_ip) = ctx.guard.refused();
            tracing::debug!(
                shard = ctx.id.0,
                v4 = list.v4_ranges(),
                v6 = list.v6_ranges(),
                refused_blocked = blocked,
                refused_per_ip = per_ip,
                "blocklist set"
            );
            ctx.guard.set_blocklist(list);
            let _ = reply.send(());
        }
        Command::Handoff(h) => route_local(ctx, h),
        Command::Replicate(spec) => replica::start(ctx, *spec),
        Command::Unreplicate { info_hash } => {
            if let Some(rt) = ctx.replicas.borrow().get(&info_hash) {
                rt.request_stop();
            }
        }
        Command::Dht(request) => {
            if let Some(dht) = ctx.dht_service.borrow().as_ref() {
                dht.request(request);
            }
        }
        Command::DhtPeers { info_hash, peers } => {
            ctx.stats.dht_peers(peers.len());
            if let Some(rt) = ctx.torrent(&info_hash).and_then(|slot| slot.running()) {
                rt.learn(&peers, super::address_book::PeerSource::Dht);
            } else if let Some(fetch) = ctx.fetch(&info_hash) {
                fetch.learn(&peers, super::address_book::PeerSource::Dht);
            }
        }
        Command::Lsd(info_hash) => {
            if let Some(lsd) = ctx.lsd_service.borrow().as_ref() {
                lsd.request(info_hash);
            }
        }
        Command::LsdPeer { info_hash, peer } => {
            // BEP 27: a private torrent takes peers from its trackers only.
            ctx.stats.lsd_peer();
            if let Some(rt) = ctx.torrent(&info_hash).and_then(|slot| slot.running()) {
                if rt.uses_lsd() {
                    rt.learn(&[peer], super::address_book::PeerSource::Lsd);
                }
            } else if let Some(fetch) = ctx.fetch(&info_hash) {
                fetch.learn(&[peer], super::address_book::PeerSource::Lsd);
            }
        }
        Command::Stop { .. } => unreachable!("handled by the shard loop"),
    }
}

/// A command for a torrent still fetching its metadata: it can be removed (nothing is on
/// disk yet), paused (the fetch ends; a resume is a new add) or reannounced; the rest wait
/// for its files to be known.
fn on_fetch(ctx: &ShardCtx, fetch: &Fetch, op: TorrentOp) -> Result<(), CommandError> {
    match op {
        TorrentOp::Remove { .. } => {
            fetch.request_stop();
            ctx.forget_fetch(fetch);
            fetch.status().set_state(super::TorrentState::Stopped);
            Ok(())
        }
        // Nothing of the fetch is kept: resuming adds the magnet link again.
        TorrentOp::Pause => {
            fetch.request_stop();
            ctx.forget_fetch(fetch);
            fetch.status().set_state(super::TorrentState::Paused);
            Ok(())
        }
        TorrentOp::Reannounce => Ok(()),
        _ => Err(CommandError::FetchingMetadata(fetch.info_hash())),
    }
}

async fn apply(slot: Rc<Slot>, op: TorrentOp) -> Result<(), CommandError> {
    match op {
        TorrentOp::Remove { delete_data } => slot.remove(delete_data).await,
        TorrentOp::Pause => {
            slot.pause().await;
            Ok(())
        }
        TorrentOp::Resume => {
            slot.resume();
            Ok(())
        }
        TorrentOp::Recheck => {
            slot.recheck().await;
            Ok(())
        }
        TorrentOp::Reannounce => {
            slot.reannounce();
            Ok(())
        }
        TorrentOp::SetPriorities(p) => slot.set_priorities(p),
        TorrentOp::SetSequential(on) => {
            slot.set_sequential(on);
            Ok(())
        }
        TorrentOp::SetTrackers(tiers) => {
            slot.set_trackers(tiers);
            Ok(())
        }
        TorrentOp::MoveStorage(to) => slot.move_storage(to).await,
        TorrentOp::Rename { metainfo, moves } => slot.rename(metainfo, moves).await,
        TorrentOp::SetLocation(to) => {
            slot.set_location(to).await;
            Ok(())
        }
        TorrentOp::SetLimits {
            upload_bytes_per_s,
            download_bytes_per_s,
        } => {
            slot.set_limits(RateLimits {
                upload_bytes_per_s,
                download_bytes_per_s,
            });
            Ok(())
        }
    }
}

/// Shard `id`'s share of the global limits.
fn shard_limits(limits: RateLimits, shards: usize, id: ShardId) -> RateLimits {
    let share = |rate| shard_share(rate, shards as u32, u32::from(id.0));
    RateLimits {
        upload_bytes_per_s: share(limits.upload_bytes_per_s),
        download_bytes_per_s: share(limits.download_bytes_per_s),
    }
}

/// The first pause after a failed `accept(2)`; each further failure in a row doubles it,
/// up to [`ACCEPT_BACKOFF_MAX`]. Out of descriptors, the connection waits in the kernel's
/// backlog and every retry fails at once: without a pause the loop would spin a core.
const ACCEPT_BACKOFF_MIN: std::time::Duration = std::time::Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

async fn accept_loop(listener: TcpListener, ctx: Rc<ShardCtx>, shared: Arc<Shared>) {
    let mut incoming = listener.incoming();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    while let Some(conn) = incoming.next().await {
        let stream = match conn {
            Ok(stream) => {
                backoff = ACCEPT_BACKOFF_MIN;
                stream
            }
            Err(e) => {
                ctx.stats.accept_failed();
                if backoff == ACCEPT_BACKOFF_MIN {
                    // Once per run of failures, not once per retry.
                    tracing::warn!(error = %e, "accepting connections failed; backing off");
                }
                glommio::timer::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        // Blocklisted or over its per-IP cap: closed at once, before a byte is read.
        let Ok(addr) = stream.peer_addr() else {
            continue;
        };
        let Ok(ip_slot) = ctx.guard.admit(addr.ip()) else {
            continue;
        };
        let Some(slot) = ctx.connection_slot() else {
            ctx.stats.refused(RefusedConnection::ShardLimit);
            tracing::debug!("connection refused: the shard is at its connection limit");
            continue;
        };
        let pending = ctx.handshakes.enter(slot, ctx.clock.now());
        let (ctx, shared) = (ctx.clone(), shared.clone());
        glommio::spawn_local(async move {
            handle_incoming(stream, addr, pending, &ctx, &shared).await;
            drop(ip_slot);
        })
        .detach();
    }
}

async fn handle_incoming(
    mut stream: TcpStream,
    addr: std::net::SocketAddr,
    mut pending: Pending,
    ctx: &ShardCtx,
    shared: &Shared,
) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let read = futures_lite::future::or(
        async { Some(peer::read_handshake(&mut stream, &mut buf).await) },
        async {
            pending.evicted().await;
            None
        },
    );
    let hs = match read.await {
        Some(Ok(hs)) => hs,
        Some(Err(why)) => {
            tracing::debug!(%addr, why, "incoming connection dropped");
            return;
        }
        None => {
            tracing::debug!(%addr, "incoming connection closed: a newcomer took its slot");
            return;
        }
    };
    // Held for as long as this connection runs here (a handoff's new shard takes its own).
    let Some(_slot) = pending.admitted() else {
        return;
    };
    let owner = shard_for(&hs.info_hash, ctx.config.shards.count);
    if owner == ctx.id {
        if let Some(rt) = ctx.torrent(&hs.info_hash).and_then(|slot| slot.running()) {
            dial::accept(rt, stream, addr, buf).await;
        } else if let Some(fetch) = ctx.fetch(&hs.info_hash) {
            fetch.accept(stream, addr, buf).await;
        }
        return;
    }
    // A hot torrent's replica here serves the peer where the kernel put it, while the
    // torrent is under its peer cap (past it the owner decides, exactly).
    if let Some(rt) = ctx
        .replica(&hs.info_hash)
        .filter(|rt| replica::has_room(rt))
    {
        ctx.stats.served_by_replica();
        dial::accept(rt, stream, addr, buf).await;
        return;
    }
    // glommio streams cannot give up their fd: pass a duplicate and close ours. The owner
    // drops it if the torrent is not there (any shard may be asked for any hash).
    let socket = match nix::unistd::dup(stream.as_raw_fd()) {
        // SAFETY: `dup` returned a fresh descriptor that nothing else owns.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
        Err(_) => return,
    };
    drop(stream);
    let handoff = Handoff {
        socket,
        addr,
        read: buf,
    };
    if shared.inboxes[owner.0 as usize]
        .try_send(Command::Handoff(handoff))
        .is_err()
    {
        ctx.stats.refused(RefusedConnection::OwnerBusy);
        shared.stats[owner.0 as usize].inbox_was_full();
        tracing::warn!(%addr, "owner shard's inbox is full; connection refused");
    }
}

/// Runs a connection another shard handed us.
fn route_local(ctx: &ShardCtx, h: Handoff) {
    let Ok(hs) = Handshake::parse(&h.read) else {
        return;
    };
    let rt = ctx.torrent(&hs.info_hash).and_then(|slot| slot.running());
    let fetch = ctx.fetch(&hs.info_hash);
    if rt.is_none() && fetch.is_none() {
        return;
    }
    // SAFETY: the descriptor came to us owned, from a socket the other shard gave up.
    let stream = unsafe { TcpStream::from_raw_fd(h.socket.into_raw_fd()) };
    // This shard holds the connection from now on: it counts under this shard's cap.
    let Ok(ip_slot) = ctx.guard.admit(h.addr.ip()) else {
        return;
    };
    let Some(budget) = ctx.connection_slot() else {
        ctx.stats.refused(RefusedConnection::ShardLimit);
        return;
    };
    glommio::spawn_local(async move {
        match (rt, fetch) {
            (Some(rt), _) => dial::accept(rt, stream, h.addr, h.read).await,
            (None, Some(fetch)) => fetch.accept(stream, h.addr, h.read).await,
            (None, None) => {}
        }
        drop((budget, ip_slot));
    })
    .detach();
}

/// Per-shard randomness for peer ids, keys and tie-breaks: no two runs alike.
fn entropy(id: ShardId) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32) ^ (u64::from(id.0) << 48) ^ 0x9e37_79b9_7f4a_7c15
}
