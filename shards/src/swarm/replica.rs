//! Serving one hot, complete torrent from every shard.
//!
//! A torrent lives on one shard, so one torrent raced by hundreds of peers would be one
//! core's work. Once a torrent is complete its pieces no longer change, so its serving can
//! be copied, read-only, to the other shards. The rules:
//!
//! - **The owner keeps every piece of mutable state**: trackers and announces, the DHT,
//!   web seeds, resume records, the torrent's status and counters, its settings. Only the
//!   owner dials, writes, or is told commands.
//! - **A replica serves.** When the torrent is complete, has no upload limit of its own
//!   (that limit is one bucket, on the owner) and has at least `hot_torrent_peers` peers,
//!   the owner asks every other shard for a replica: the same metainfo, save directory and
//!   peer id, with an engine session of its own (its own choker over its own peers), its
//!   own read cache entries and file handles, and no trackers, dials, DHT, web seeds or
//!   writes. The torrent's upload slots are divided between the shards, the owner's
//!   choker taking its share too (0, every interested peer, stays 0 everywhere).
//! - **Peers stay where the kernel put them.** A connection for the torrent accepted by a
//!   shard with a replica stays there (SO_REUSEPORT spread it) instead of being handed to
//!   the owner, while the torrent's peers everywhere are under its peer cap; past the cap,
//!   or without a replica, it is handed to the owner as before, which applies the cap
//!   exactly. Each shard publishes its count as a peer comes or goes, so only accepts on
//!   several shards at the same moment can pass the cap, by those accepts.
//! - **Figures travel one way, in cells with one writer each.** A replica writes its peer
//!   count, bytes uploaded and upload rate into its shard's [`ReplicaCells`] entry (atomics,
//!   no locks); the owner adds them up into the torrent's status and its announces.
//! - **The owner ends its replicas** when the torrent stops (pause, remove, recheck, move,
//!   shutdown, fault), gets an upload limit, or cools (fewer than half of
//!   `hot_torrent_peers` peers in all for [`COOL_OFF`]). It raises a stop flag every replica
//!   checks each tick, sends each an `Unreplicate` to wake it at once, and when the torrent
//!   stops it waits (at most [`GONE_WITHIN`]) until every replica has dropped its peers, so
//!   no replica reads files being moved or deleted.
//!
//! Bounds: at most one replica per torrent per shard (a newer one replaces an ended one);
//! a full inbox means that shard gets no replica this tick (asked again at the next), and
//! its connections go on being handed to the owner.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ccbt_engine::metainfo::Metainfo;
use ccbt_engine::session::Torrent;
use ccbt_engine::wire::PeerId;
use ccbt_engine::Bitfield;

use super::command::Command;
use super::lazy_storage::LazyStorage;
use super::shard::ShardCtx;
use super::status::{TorrentState, TorrentStatus};
use super::throttle::{RateLimits, Throttle};
use super::torrent::TorrentRt;

/// A replicated torrent whose peers (everywhere) stay under half of `hot_torrent_peers`
/// this long goes back to its owner alone.
pub const COOL_OFF: Duration = Duration::from_secs(300);
/// How long a stopping owner waits for its replicas to drop their peers.
pub const GONE_WITHIN: Duration = Duration::from_secs(3);
/// How often a replica with no peers looks at its stop flag.
const IDLE_NAP: Duration = Duration::from_secs(1);

/// What one replication of a torrent shares between its owner and its replicas: a stop
/// flag the owner raises, a count of replicas still running, and each shard's figures.
/// Every figure has one writer, the replica on that shard.
pub struct ReplicaCells {
    stopped: AtomicBool,
    live: AtomicUsize,
    /// The owner's own peers (written by the owner), for the peer cap.
    owner_peers: AtomicU64,
    shards: Box<[ShardFigures]>,
}

#[derive(Default)]
struct ShardFigures {
    peers: AtomicU64,
    uploaded: AtomicU64,
    upload_rate: AtomicU64,
}

/// Peers, bytes uploaded and upload rate, summed over replicas.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Figures {
    pub peers: u64,
    pub uploaded: u64,
    pub upload_rate: u64,
}

impl ReplicaCells {
    pub fn new(shards: usize) -> Arc<ReplicaCells> {
        Arc::new(ReplicaCells {
            stopped: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            owner_peers: AtomicU64::new(0),
            shards: (0..shards).map(|_| ShardFigures::default()).collect(),
        })
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
    }

    /// Replicas asked for and not yet ended.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// A replica's figures; only the replica on `shard` calls this.
    pub fn report(&self, shard: usize, figures: Figures) {
        if let Some(cell) = self.shards.get(shard) {
            cell.peers.store(figures.peers, Ordering::Relaxed);
            cell.uploaded.store(figures.uploaded, Ordering::Relaxed);
            cell.upload_rate
                .store(figures.upload_rate, Ordering::Relaxed);
        }
    }

    /// A replica's peer count alone, as it changes (see [`peers_changed`]).
    fn report_peers(&self, shard: usize, peers: u64) {
        if let Some(cell) = self.shards.get(shard) {
            cell.peers.store(peers, Ordering::Relaxed);
        }
    }

    /// The torrent's peers on every shard but `shard`, whose own count the caller knows.
    pub fn peers_besides(&self, shard: usize) -> u64 {
        let replicas: u64 = (self.shards.iter().enumerate())
            .filter(|&(i, _)| i != shard)
            .map(|(_, cell)| cell.peers.load(Ordering::Relaxed))
            .sum();
        replicas + self.owner_peers.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> Figures {
        self.shards
            .iter()
            .fold(Figures::default(), |f, cell| Figures {
                peers: f.peers + cell.peers.load(Ordering::Relaxed),
                uploaded: f.uploaded + cell.uploaded.load(Ordering::Relaxed),
                upload_rate: f.upload_rate + cell.upload_rate.load(Ordering::Relaxed),
            })
    }
}

/// Counts a replica as live until dropped (its task ended, or it never started).
pub struct LiveGuard(Arc<ReplicaCells>);

impl LiveGuard {
    /// Counts one more replica; the guard goes with the request.
    fn enter(cells: &Arc<ReplicaCells>) -> LiveGuard {
        cells.live.fetch_add(1, Ordering::AcqRel);
        LiveGuard(cells.clone())
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a shard needs to serve a replica.
pub struct ReplicaSpec {
    pub meta: Arc<Metainfo>,
    pub save_dir: PathBuf,
    /// The owner's peer id: peers and trackers see one client.
    pub our_id: PeerId,
    /// The owner's upload slots and peer cap when it asked.
    pub upload_slots: usize,
    pub max_peers: usize,
    pub cells: Arc<ReplicaCells>,
    /// Counts this replica until it ends.
    pub live: LiveGuard,
}

/// What a torrent is on this shard: its owner (with its replicas elsewhere, if any), or
/// one of those replicas.
pub enum Role {
    Owner(RefCell<Replicas>),
    Replica(Arc<ReplicaCells>),
}

impl Role {
    pub fn owner() -> Role {
        Role::Owner(RefCell::new(Replicas::default()))
    }
}

/// The owner's side: the replication running now, and earlier ones winding down.
#[derive(Default)]
pub struct Replicas {
    current: Option<Replicating>,
    /// Replications ended this run whose replicas may still be dropping their peers.
    ended: Vec<Arc<ReplicaCells>>,
    /// Uploads of ended replications that have wound down.
    ended_uploaded: u64,
    /// Since when a replicated torrent has been cool.
    cool_since: Option<Duration>,
    /// The torrent's upload slots while replicated (the owner's engine then has its share).
    configured_slots: Option<usize>,
}

struct Replicating {
    cells: Arc<ReplicaCells>,
    /// By shard: a replica was asked for (the owner's own entry stays false).
    asked: Vec<bool>,
}

impl Replicas {
    /// What every replica of this run adds to the owner's own figures.
    pub fn figures(&self) -> Figures {
        let mut all = Figures {
            uploaded: self.ended_uploaded,
            ..Figures::default()
        };
        let cells = self.current.iter().map(|r| &r.cells).chain(&self.ended);
        for f in cells.map(|c| c.sum()) {
            all.peers += f.peers;
            all.uploaded += f.uploaded;
            all.upload_rate += f.upload_rate;
        }
        all
    }

    pub fn is_replicated(&self) -> bool {
        self.current.is_some()
    }

    /// Upload slots for the owner's engine when the torrent has `slots`: its share while
    /// replicated (remembering `slots`), all of them otherwise.
    pub fn owner_slots(&mut self, slots: usize, shards: usize) -> usize {
        if self.current.is_some() {
            self.configured_slots = Some(slots);
            slots.div_ceil(shards.max(1))
        } else {
            slots
        }
    }

    /// Ends the current replication, if any: raises its stop flag and wakes its replicas.
    /// Returns the torrent's upload slots, for the owner's engine to have all of them again.
    fn end(&mut self, ctx: &ShardCtx, info_hash: ccbt_engine::InfoHash) -> Option<usize> {
        self.cool_since = None;
        let slots = self.configured_slots.take();
        let Some(current) = self.current.take() else {
            return slots;
        };
        current.cells.stop();
        for (shard, asked) in current.asked.iter().enumerate() {
            if *asked {
                // A full inbox only delays it: the replica sees the flag within a second.
                let _ = ctx.inboxes[shard].try_send(Command::Unreplicate { info_hash });
            }
        }
        self.ended.push(current.cells);
        slots
    }

    /// Folds replications whose replicas have all ended into one total.
    fn tidy(&mut self) {
        let mut kept = Vec::with_capacity(self.ended.len());
        for cells in self.ended.drain(..) {
            if cells.live() == 0 {
                self.ended_uploaded += cells.sum().uploaded;
            } else {
                kept.push(cells);
            }
        }
        self.ended = kept;
    }

    fn still_live(&self) -> bool {
        self.ended.iter().any(|c| c.live() > 0)
    }
}

/// Whether the owner of `rt` may have replicas now.
fn may_replicate(rt: &TorrentRt) -> bool {
    let ctx = rt.shard();
    ctx.config.hot_torrent_peers > 0
        && ctx.inboxes.len() > 1
        && !rt.stop_signal().is_set()
        && !rt.has_failed()
        && rt.engine().borrow().have().is_full()
        && rt.own_limits().upload_bytes_per_s == 0
}

/// The owner's tick: starts replicas for a torrent that became hot, asks again shards
/// whose inbox was full, and ends them when the torrent cools or may no longer have them.
pub fn keep_up(rt: &TorrentRt) {
    let Role::Owner(replicas) = rt.role() else {
        return;
    };
    let ctx = rt.shard();
    let mut replicas = replicas.borrow_mut();
    let hot = ctx.config.hot_torrent_peers;
    // The common case, every tick of every torrent: not replicated, not hot.
    let quiet = replicas.current.is_none() && replicas.ended.is_empty();
    if quiet && (hot == 0 || rt.engine().borrow().peer_count() < hot) {
        return;
    }
    replicas.tidy();
    if !may_replicate(rt) {
        restore_slots(rt, replicas.end(ctx, rt.meta().info_hash));
        return;
    }
    let peers = rt.engine().borrow().peer_count() as u64 + replicas.figures().peers;
    let now = rt.now();
    if replicas.current.is_some() {
        if peers * 2 < hot as u64 {
            let since = *replicas.cool_since.get_or_insert(now);
            if now.saturating_sub(since) >= COOL_OFF {
                tracing::info!(torrent = %rt.meta().info_hash, peers, "cooled: served by its own shard again");
                restore_slots(rt, replicas.end(ctx, rt.meta().info_hash));
                return;
            }
        } else {
            replicas.cool_since = None;
        }
    } else if peers >= hot as u64 {
        tracing::info!(torrent = %rt.meta().info_hash, peers, "hot: served from every shard");
        replicas.current = Some(Replicating {
            cells: ReplicaCells::new(ctx.inboxes.len()),
            asked: vec![false; ctx.inboxes.len()],
        });
        // The owner's choker now has its share of the slots, like each replica.
        let (slots, max_peers) = rt.engine().borrow().peer_limits();
        let share = replicas.owner_slots(slots, ctx.inboxes.len());
        rt.engine().borrow_mut().set_peer_limits(share, max_peers);
    } else {
        return;
    }
    let current_configured = replicas.configured_slots;
    let Some(current) = replicas.current.as_mut() else {
        return;
    };
    let own_peers = rt.engine().borrow().peer_count() as u64;
    current
        .cells
        .owner_peers
        .store(own_peers, Ordering::Relaxed);
    for (shard, asked) in current.asked.iter_mut().enumerate() {
        if *asked || shard == ctx.id.0 as usize {
            continue;
        }
        let (_, max_peers) = rt.engine().borrow().peer_limits();
        let spec = ReplicaSpec {
            upload_slots: current_slots(rt, current_configured),
            max_peers,
            meta: rt.meta().clone(),
            save_dir: rt.pieces().storage().save_dir().to_path_buf(),
            our_id: rt.our_id(),
            cells: current.cells.clone(),
            live: LiveGuard::enter(&current.cells),
        };
        // A full inbox drops the spec (and its live count); the next tick asks again.
        *asked = ctx.inboxes[shard]
            .try_send(Command::Replicate(Box::new(spec)))
            .is_ok();
    }
}

/// The torrent's upload slots: as remembered while replicated, else the engine's.
fn current_slots(rt: &TorrentRt, configured: Option<usize>) -> usize {
    configured.unwrap_or_else(|| rt.engine().borrow().peer_limits().0)
}

/// Gives the owner's engine all the torrent's upload slots again once replication ended.
fn restore_slots(rt: &TorrentRt, slots: Option<usize>) {
    if let Some(slots) = slots {
        let max_peers = rt.engine().borrow().peer_limits().1;
        rt.engine().borrow_mut().set_peer_limits(slots, max_peers);
    }
}

/// The owner is stopping: ends its replicas and waits (bounded) until they have dropped
/// their peers.
pub async fn end_all(rt: &TorrentRt) {
    let Role::Owner(replicas) = rt.role() else {
        return;
    };
    let slots = replicas.borrow_mut().end(rt.shard(), rt.meta().info_hash);
    restore_slots(rt, slots);
    let began = rt.now();
    while replicas.borrow().still_live() && rt.now().saturating_sub(began) < GONE_WITHIN {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    replicas.borrow_mut().tidy();
}

/// A peer came or went: the shards that check the torrent's cap see the new count at
/// once, not at the next tick (only while replicated; a cheap no-op otherwise).
pub fn peers_changed(rt: &TorrentRt) {
    let here = rt.engine().borrow().peer_count() as u64;
    match rt.role() {
        Role::Owner(replicas) => {
            if let Some(current) = &replicas.borrow().current {
                current.cells.owner_peers.store(here, Ordering::Relaxed);
            }
        }
        Role::Replica(cells) => cells.report_peers(rt.shard().id.0 as usize, here),
    }
}

/// The torrent's peers on other shards (its replicas', or on a replica the owner's and
/// the other replicas'), as last reported; 0 when it is not replicated.
pub fn peers_elsewhere(rt: &TorrentRt) -> u64 {
    match rt.role() {
        Role::Owner(replicas) => replicas.borrow().figures().peers,
        Role::Replica(cells) => cells.peers_besides(rt.shard().id.0 as usize),
    }
}

/// Whether the torrent may take one more peer here under its cap, counting its peers on
/// every shard.
pub fn has_room(rt: &TorrentRt) -> bool {
    let engine = rt.engine().borrow();
    (engine.peer_count() as u64 + peers_elsewhere(rt)) < engine.peer_limits().1 as u64
}

/// Builds a replica on this shard and starts serving with it (see the module's rules).
pub fn start(ctx: &Rc<ShardCtx>, spec: ReplicaSpec) {
    let info_hash = spec.meta.info_hash;
    if spec.cells.is_stopped() {
        return;
    }
    let index = ctx.next_index();
    let seed = ctx.seed_for(index);
    let layout = Rc::new(spec.meta.info.layout.clone());
    let storage = LazyStorage::on_demand(
        spec.save_dir.clone(),
        ctx.config.symlinks,
        layout,
        ctx.files.clone(),
        index,
    );
    let mut session = ctx.config.session.clone();
    session.choker.upload_slots = spec.upload_slots.div_ceil(ctx.inboxes.len().max(1));
    session.max_peers = spec.max_peers;
    let pieces = spec.meta.info.layout.piece_count();
    let mut engine = Torrent::new(
        spec.meta.info.layout.clone(),
        &Bitfield::full(pieces),
        session,
        seed,
    );
    engine.set_info_dict(spec.meta.info_bytes.clone());
    engine.set_private(spec.meta.info.private);
    engine.set_info_hash(info_hash);
    let rt = Rc::new(TorrentRt::new(
        ctx.clone(),
        index,
        spec.meta.clone(),
        Vec::new(),
        engine,
        storage,
        Arc::new(TorrentStatus::not_started(TorrentState::Seeding)),
        spec.our_id,
        seed,
        Rc::new(Throttle::new(ctx.clock.now(), RateLimits::default())),
        Role::Replica(spec.cells.clone()),
    ));
    if let Some(old) = ctx.replace_replica(info_hash, rt.clone()) {
        old.request_stop();
    }
    let (ctx, live) = (ctx.clone(), spec.live);
    glommio::spawn_local(async move {
        let _live = live;
        serve(&rt).await;
        ctx.forget_replica(&rt);
    })
    .detach();
}

/// A replica's run loop: ticks its engine (choking, keep-alives, timeouts) and reports its
/// figures until the owner ends it; then drops its peers.
async fn serve(rt: &Rc<TorrentRt>) {
    let Role::Replica(cells) = rt.role() else {
        return;
    };
    while !rt.stop_signal().is_set() && !cells.is_stopped() && !rt.has_failed() {
        let now = rt.now();
        rt.engine().borrow_mut().tick(now);
        rt.drive();
        rt.publish();
        let nap = if rt.peers().is_empty() {
            IDLE_NAP
        } else {
            super::driver::TICK
        };
        rt.alarm().sleep(nap).await;
    }
    if let Some(fault) = rt.fault() {
        tracing::warn!(torrent = %rt.meta().info_hash, error = %fault, "replica stopped; its owner goes on");
    }
    for key in rt.peers().keys() {
        rt.forget_peer(key);
    }
    rt.publish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_add_up_over_shards_and_ended_replications() {
        let first = ReplicaCells::new(3);
        first.report(
            1,
            Figures {
                peers: 4,
                uploaded: 100,
                upload_rate: 10,
            },
        );
        first.report(
            2,
            Figures {
                peers: 1,
                uploaded: 50,
                upload_rate: 5,
            },
        );
        // A shard number out of range is ignored, not a panic.
        first.report(7, Figures::default());
        assert_eq!(
            first.sum(),
            Figures {
                peers: 5,
                uploaded: 150,
                upload_rate: 15
            }
        );
        let mut replicas = Replicas {
            ended: vec![first.clone()],
            ..Replicas::default()
        };
        // Ended with no replica live: folded into the total, which it keeps.
        replicas.tidy();
        assert!(replicas.ended.is_empty());
        assert_eq!(replicas.figures().uploaded, 150);
        assert_eq!(replicas.figures().peers, 0);
    }

    #[test]
    fn the_peer_count_besides_one_shard_adds_the_owner_and_the_others() {
        let cells = ReplicaCells::new(3);
        cells.owner_peers.store(5, Ordering::Relaxed);
        let peers = |peers| Figures {
            peers,
            ..Figures::default()
        };
        cells.report(1, peers(7));
        cells.report(2, peers(11));
        assert_eq!(cells.peers_besides(1), 16);
        assert_eq!(cells.peers_besides(2), 12);
        // The owner's figures are not a replica's: they are not in the status sum.
        assert_eq!(cells.sum().peers, 18);
    }

    #[test]
    fn live_counts_follow_the_guards() {
        let cells = ReplicaCells::new(2);
        let a = LiveGuard::enter(&cells);
        let b = LiveGuard::enter(&cells);
        assert_eq!(cells.live(), 2);
        drop(a);
        let replicas = Replicas {
            ended: vec![cells.clone()],
            ..Replicas::default()
        };
        assert!(replicas.still_live());
        drop(b);
        assert!(!replicas.still_live());
    }

    #[test]
    fn the_owner_has_its_share_of_the_slots_only_while_replicated() {
        let mut replicas = Replicas::default();
        assert_eq!(replicas.owner_slots(8, 2), 8);
        assert_eq!(replicas.configured_slots, None);
        replicas.current = Some(Replicating {
            cells: ReplicaCells::new(3),
            asked: vec![false; 3],
        });
        assert_eq!(replicas.owner_slots(8, 3), 3);
        // 0 is "every interested peer", on every shard.
        assert_eq!(replicas.owner_slots(0, 3), 0);
        assert_eq!(replicas.configured_slots, Some(0));
    }
}
