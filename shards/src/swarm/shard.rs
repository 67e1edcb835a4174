//! One shard's life: open its torrents, listen, route connections, stop on request.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ccbt_engine::session::Torrent;
use ccbt_engine::wire::{Handshake, PeerId};
use ccbt_engine::InfoHash;
use crossbeam::channel::Sender;
use futures_lite::StreamExt;
use glommio::net::{TcpListener, TcpStream};

use super::budget::ConnectionBudget;
use super::buffers::BufferPool;
use super::cache::PieceCache;
use super::clock::Clock;
use super::handoff::{self, Handoff, Inbox};
use super::lazy_storage::LazyStorage;
use super::storage::Storage;
use super::torrent::TorrentRt;
use super::tracker::TrackerConnections;
use super::{peer, shard_for, SwarmConfig, TorrentSpec, TorrentStatus};
use crate::pool::ShardId;

/// What every shard starts from.
pub struct Shared {
    pub config: SwarmConfig,
    pub torrents: Vec<TorrentSpec>,
    /// Every torrent's info hash, to route a handshake without a scan.
    pub hashes: HashSet<InfoHash>,
    pub statuses: Vec<Arc<TorrentStatus>>,
    pub stop: Arc<AtomicBool>,
    pub senders: Vec<Sender<Handoff>>,
    pub receivers: Vec<Inbox>,
    /// Shards that have opened their torrents and listen.
    pub ready: Arc<AtomicUsize>,
}

type Owned = Rc<RefCell<HashMap<InfoHash, Rc<TorrentRt>>>>;

/// What a shard's torrents share: the read cache, piece buffers, tracker connections and
/// the connection budget.
type ShardShared = (
    Rc<RefCell<PieceCache>>,
    Rc<RefCell<BufferPool>>,
    Rc<TrackerConnections>,
    ConnectionBudget,
);

pub async fn run(id: ShardId, shared: Arc<Shared>) -> Result<(), String> {
    let n = shared.config.shards.count;
    let clock = Clock::start();
    let stop = {
        let flag = shared.stop.clone();
        move || flag.load(Ordering::Acquire)
    };
    let cache = Rc::new(RefCell::new(PieceCache::new(shared.config.cache_bytes)));
    let pool = Rc::new(RefCell::new(BufferPool::new(
        shared.config.cache_bytes / 2,
        shared.config.cache_bytes,
        shared.config.cache_bytes / 4,
    )));
    let trackers = Rc::new(TrackerConnections::default());
    let budget = ConnectionBudget::new(shared.config.max_connections_per_shard);
    let owned: Owned = Rc::default();
    let mut tasks = Vec::new();
    let random = entropy(id);
    for (i, spec) in shared.torrents.iter().enumerate() {
        if shard_for(&spec.metainfo.info_hash, n) != id {
            continue;
        }
        let status = shared.statuses[i].clone();
        match open_torrent(
            i as u32,
            spec,
            &shared.config,
            (
                cache.clone(),
                pool.clone(),
                trackers.clone(),
                budget.clone(),
            ),
            status.clone(),
            clock,
            random ^ i as u64,
        )
        .await
        {
            Ok(rt) => {
                owned
                    .borrow_mut()
                    .insert(spec.metainfo.info_hash, rt.clone());
                rt.learn(&spec.peers);
                let stop = stop.clone();
                let keep = spec.keep_seeding;
                tasks.push(glommio::spawn_local(
                    async move { rt.run(stop, keep).await },
                ));
            }
            Err(e) => {
                *status.error.lock().expect("status lock") = Some(e.clone());
                status.finished.store(true, Ordering::Release);
            }
        }
    }

    let listener = match TcpListener::bind((shared.config.listen, shared.config.port)) {
        Ok(listener) => listener,
        Err(e) => {
            // A swarm with a deaf shard is broken: stop the others too.
            shared.stop.store(true, Ordering::Release);
            return Err(format!("cannot listen on port {}: {e}", shared.config.port));
        }
    };
    let accepting = glommio::spawn_local(accept_loop(
        listener,
        id,
        shared.clone(),
        owned.clone(),
        budget.clone(),
    ));
    shared.ready.fetch_add(1, Ordering::Release);
    let rx = shared.receivers[id.0 as usize]
        .lock()
        .expect("receiver lock")
        .take()
        .ok_or("shard started twice")?;
    let inbox = {
        let owned = owned.clone();
        let budget = budget.clone();
        glommio::spawn_local(handoff::receive(rx, stop.clone(), move |h| {
            route_local(&owned, &budget, h);
        }))
    };
    // Idle torrents sleep until something happens to them: stopping is such a thing.
    let waking = {
        let (owned, stop) = (owned.clone(), stop.clone());
        glommio::spawn_local(async move {
            while !stop() {
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
            for rt in owned.borrow().values() {
                rt.wake();
            }
        })
    };
    for task in tasks {
        task.await;
    }
    waking.await;
    inbox.await;
    drop(accepting);
    Ok(())
}

/// Opens a torrent's files and state on this shard.
async fn open_torrent(
    index: u32,
    spec: &TorrentSpec,
    config: &SwarmConfig,
    (cache, pool, trackers, budget): ShardShared,
    status: Arc<TorrentStatus>,
    clock: Clock,
    seed: u64,
) -> Result<Rc<TorrentRt>, String> {
    let layout = Rc::new(spec.metainfo.info.layout.clone());
    let storage = if spec.have.is_full() {
        LazyStorage::on_demand(spec.save_dir.clone(), layout)
    } else {
        let storage = Storage::open(&spec.save_dir, layout.clone(), true, config.preallocate)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            torrent = %spec.metainfo.info_hash,
            direct_io = storage.is_direct(),
            "opened the torrent's files"
        );
        LazyStorage::opened(storage, spec.save_dir.clone(), layout)
    };
    let mut engine = Torrent::new(
        spec.metainfo.info.layout.clone(),
        &spec.have,
        config.session.clone(),
        seed,
    );
    engine.set_sequential(spec.sequential);
    if let Some(p) = &spec.priorities {
        engine.set_file_priorities(p);
    }
    let mut id_random = [0u8; 12];
    id_random.copy_from_slice(&seed.to_le_bytes().repeat(2)[..12]);
    Ok(Rc::new(TorrentRt::new(
        index,
        spec.metainfo.clone(),
        engine,
        storage,
        cache,
        pool,
        trackers,
        budget,
        status,
        PeerId::generate(id_random),
        config.port,
        clock,
        seed,
    )))
}

async fn accept_loop(
    listener: TcpListener,
    id: ShardId,
    shared: Arc<Shared>,
    owned: Owned,
    budget: ConnectionBudget,
) {
    let mut incoming = listener.incoming();
    while let Some(conn) = incoming.next().await {
        let Ok(stream) = conn else { continue };
        let Some(slot) = budget.try_take() else {
            tracing::debug!("connection refused: the shard is at its connection limit");
            continue;
        };
        let shared = shared.clone();
        let owned = owned.clone();
        glommio::spawn_local(async move {
            handle_incoming(stream, id, &shared, &owned).await;
            drop(slot);
        })
        .detach();
    }
}

async fn handle_incoming(mut stream: TcpStream, id: ShardId, shared: &Shared, owned: &Owned) {
    let Ok(addr) = stream.peer_addr() else { return };
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let hs = match peer::read_handshake(&mut stream, &mut buf).await {
        Ok(hs) => hs,
        Err(why) => {
            tracing::debug!(%addr, why, "incoming connection dropped");
            return;
        }
    };
    let owner = shard_for(&hs.info_hash, shared.config.shards.count);
    if owner == id {
        let rt = owned.borrow().get(&hs.info_hash).cloned();
        if let Some(rt) = rt {
            rt.accept(stream, addr, buf).await;
        }
        return;
    }
    if !shared.hashes.contains(&hs.info_hash) {
        return;
    }
    // glommio streams cannot give up their fd: pass a duplicate and close ours.
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
    if handoff::send(&shared.senders[owner.0 as usize], handoff).is_err() {
        tracing::warn!(%addr, "owner shard's queue is full; connection refused");
    }
}

/// Runs a connection another shard handed us.
fn route_local(owned: &Owned, budget: &ConnectionBudget, h: Handoff) {
    let Ok(hs) = Handshake::parse(&h.read) else {
        return;
    };
    let Some(rt) = owned.borrow().get(&hs.info_hash).cloned() else {
        return;
    };
    // SAFETY: the descriptor came to us owned, from a socket the other shard gave up.
    let stream = unsafe { TcpStream::from_raw_fd(h.socket.into_raw_fd()) };
    let Some(slot) = budget.try_take() else {
        return;
    };
    glommio::spawn_local(async move {
        rt.accept(stream, h.addr, h.read).await;
        drop(slot);
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
