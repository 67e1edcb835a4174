//! One torrent's place on its shard, from `add` to `remove`: what is known of its data,
//! whether it should run, and the task that checks, opens and runs it.
//!
//! Commands change what the torrent *should* do (`want_running`, what needs checking) and
//! interrupt the task; the task notices, winds down (announcing `stopped`, syncing files)
//! and starts again if it should. Whoever waits for it to stop (pause, remove, shutdown)
//! is told when its task has ended.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use ccbt_engine::metainfo::{Layout, Metainfo, TorrentPath};
use ccbt_engine::picker::Priority;
use ccbt_engine::session::Torrent;
use ccbt_engine::wire::PeerId;
use ccbt_engine::Bitfield;
use futures_channel::oneshot;

use super::address_book::PeerSource;
use super::check::check;
use super::command::{CommandError, TorrentSnapshot};
use super::driver;
use super::events::SwarmEvent;
use super::lazy_storage::LazyStorage;
use super::shard::ShardCtx;
use super::status::{TorrentFault, TorrentState, TorrentStatus};
use super::storage::Storage;
use super::throttle::{RateLimits, Throttle};
use super::torrent::TorrentRt;
use super::{TorrentSpec, Verify};
use crate::beneath::{SaveDir, Symlinks};
use crate::mapped::path_under;

/// What the torrent does next, as commands left it.
struct Settings {
    save_dir: PathBuf,
    sequential: bool,
    priorities: Option<Vec<Priority>>,
    keep_seeding: bool,
    peers: Vec<std::net::SocketAddr>,
    /// Tracker tiers: the metainfo's until the user edits them.
    trackers: Vec<Vec<String>>,
}

enum Phase {
    Idle,
    /// A full check runs; set the flag to cancel it.
    Checking(Rc<Cell<bool>>),
    Running(Rc<TorrentRt>),
}

pub struct Slot {
    ctx: Rc<ShardCtx>,
    /// Shard-local number, for the piece cache's keys.
    index: u32,
    /// Replaced only by a rename (same info dict, files at new paths).
    meta: RefCell<Arc<Metainfo>>,
    status: Arc<TorrentStatus>,
    settings: RefCell<Settings>,
    /// The torrent's own rate limits; kept here so they outlive a pause.
    throttle: Rc<Throttle>,
    /// What is known of the data on disk, kept up to date each time the torrent stops.
    verify: RefCell<Verify>,
    /// The front end has a record of what `verify` trusts (it said so when adding, or
    /// the torrent reported it when it last stopped).
    recorded: Cell<bool>,
    want_running: Cell<bool>,
    phase: RefCell<Phase>,
    /// A task is checking or running the torrent.
    active: Cell<bool>,
    /// Told when that task ends.
    waiting: RefCell<Vec<oneshot::Sender<()>>>,
}

impl Slot {
    pub fn new(
        ctx: Rc<ShardCtx>,
        index: u32,
        spec: TorrentSpec,
        status: Arc<TorrentStatus>,
    ) -> Slot {
        let limits = RateLimits {
            upload_bytes_per_s: spec.upload_bytes_per_s,
            download_bytes_per_s: spec.download_bytes_per_s,
        };
        status.set_metainfo(spec.metainfo.clone());
        let trackers = spec.metainfo.trackers();
        Slot {
            throttle: Rc::new(Throttle::new(ctx.clock.now(), limits)),
            ctx,
            index,
            meta: RefCell::new(spec.metainfo),
            status,
            settings: RefCell::new(Settings {
                save_dir: spec.save_dir,
                sequential: spec.sequential,
                priorities: spec.priorities,
                keep_seeding: spec.keep_seeding,
                peers: spec.peers,
                trackers,
            }),
            recorded: Cell::new(matches!(spec.verify, Verify::Trusted(_))),
            verify: RefCell::new(spec.verify),
            want_running: Cell::new(!spec.paused),
            phase: RefCell::new(Phase::Idle),
            active: Cell::new(false),
            waiting: RefCell::default(),
        }
    }

    /// Its metainfo as it stands (a rename replaces it).
    fn meta(&self) -> Arc<Metainfo> {
        self.meta.borrow().clone()
    }

    /// Starts the torrent as added: checks first if its data is unknown, and runs it
    /// unless it was added paused.
    pub fn begin(self: &Rc<Self>) {
        let needs_check = matches!(*self.verify.borrow(), Verify::Full);
        if self.want_running.get() || needs_check {
            self.spawn_life();
        } else {
            self.status.set_state(TorrentState::Paused);
            self.status
                .finished
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    pub fn running(&self) -> Option<Rc<TorrentRt>> {
        match &*self.phase.borrow() {
            Phase::Running(rt) => Some(rt.clone()),
            _ => None,
        }
    }

    /// The pieces it has: the engine's while it runs, else what the last check or the
    /// resume data found; `None` while nothing is known yet.
    pub fn pieces(&self) -> Option<Bitfield> {
        if let Some(rt) = self.running() {
            return Some(rt.engine().borrow().have().clone());
        }
        match &*self.verify.borrow() {
            Verify::Trusted(have) | Verify::Partly { have, .. } => Some(have.clone()),
            Verify::Full => None,
        }
    }

    /// Its connected peers (none unless it runs).
    pub fn peers(&self) -> Vec<super::status::PeerInfo> {
        self.running().map(|rt| rt.peer_infos()).unwrap_or_default()
    }

    pub fn snapshot(&self) -> TorrentSnapshot {
        TorrentSnapshot {
            info_hash: self.meta().info_hash,
            save_dir: self.settings.borrow().save_dir.clone(),
            status: self.status.clone(),
        }
    }

    /// Stops the torrent, keeping what it has; the future ends once it has stopped. The
    /// request takes effect at once, before the future is first polled.
    pub fn pause(&self) -> impl Future<Output = ()> + 'static {
        self.want_running.set(false);
        match &*self.phase.borrow() {
            Phase::Running(rt) => rt.request_stop(),
            Phase::Checking(cancel) => cancel.set(true),
            Phase::Idle => {}
        }
        let ended = if self.active.get() {
            let (tx, rx) = oneshot::channel();
            self.waiting.borrow_mut().push(tx);
            Some(rx)
        } else {
            if self.status.state() != TorrentState::Failed {
                self.status.set_state(TorrentState::Paused);
            }
            None
        };
        async move {
            if let Some(rx) = ended {
                let _ = rx.await;
            }
        }
    }

    pub fn resume(self: &Rc<Self>) {
        self.want_running.set(true);
        self.status.set_fault(None);
        self.spawn_life();
    }

    pub async fn recheck(self: &Rc<Self>) {
        let was_running = self.want_running.get();
        self.pause().await;
        *self.verify.borrow_mut() = Verify::Full;
        self.want_running.set(was_running);
        self.status.set_fault(None);
        self.spawn_life();
    }

    pub fn reannounce(&self) {
        if let Some(rt) = self.running() {
            rt.reannounce();
        }
    }

    pub fn set_priorities(&self, priorities: Vec<Priority>) -> Result<(), CommandError> {
        let files = self.meta().info.layout.files().len();
        if priorities.len() != files {
            return Err(CommandError::BadFileIndex {
                what: "one priority per file",
                files,
            });
        }
        if let Some(rt) = self.running() {
            rt.engine().borrow_mut().set_file_priorities(&priorities);
            rt.wake();
        }
        self.settings.borrow_mut().priorities = Some(priorities);
        Ok(())
    }

    pub fn set_sequential(&self, on: bool) {
        if let Some(rt) = self.running() {
            rt.engine().borrow_mut().set_sequential(on);
        }
        self.settings.borrow_mut().sequential = on;
    }

    /// New tracker tiers, running or not; a running torrent announces to them at once.
    pub fn set_trackers(&self, tiers: Vec<Vec<String>>) {
        if let Some(rt) = self.running() {
            rt.announcer().borrow_mut().set_tiers(tiers.clone());
        }
        self.settings.borrow_mut().trackers = tiers;
    }

    /// New upload slots and peer cap from a reload; a torrent not running takes them
    /// from the shard when it starts.
    pub fn set_peer_limits(&self, limits: super::PeerLimits) {
        if let Some(rt) = self.running() {
            rt.set_peer_limits(limits.upload_slots, limits.max_peers_per_torrent);
        }
    }

    /// New limits for this torrent, running or not.
    pub fn set_limits(&self, limits: RateLimits) {
        self.throttle.set(self.ctx.clock.now(), limits);
    }

    /// Stops the torrent and forgets it; deletes its files (and the directories they
    /// leave empty) if asked.
    pub async fn remove(self: &Rc<Self>, delete_data: bool) -> Result<(), CommandError> {
        self.pause().await;
        self.ctx.forget(&self.meta().info_hash);
        self.status.set_state(TorrentState::Stopped);
        if !delete_data {
            return Ok(());
        }
        let save_dir = self.settings.borrow().save_dir.clone();
        let meta = self.meta();
        let symlinks = self.ctx.config.symlinks;
        glommio::executor()
            .spawn_blocking(move || delete_files(&save_dir, symlinks, &meta.info.layout))
            .await
            .map_err(CommandError::Fault)
    }

    /// Moves the torrent's files under `to` and goes on from there. On failure the files
    /// that moved are moved back and the torrent goes on where it was.
    pub async fn move_storage(self: &Rc<Self>, to: PathBuf) -> Result<(), CommandError> {
        let was_running = self.want_running.get();
        self.pause().await;
        let from = self.settings.borrow().save_dir.clone();
        let meta = self.meta();
        let target = to.clone();
        let symlinks = self.ctx.config.symlinks;
        let moved = glommio::executor()
            .spawn_blocking(move || move_files(&from, &target, symlinks, &meta.info.layout))
            .await;
        if moved.is_ok() {
            self.settings.borrow_mut().save_dir = to;
        }
        self.want_running.set(was_running);
        if was_running {
            self.spawn_life();
        }
        moved.map_err(CommandError::Fault)
    }

    /// Puts the torrent's files where `renamed` (the same torrent, some files at new
    /// paths) has them: stops it, renames each file in `moves` that exists on disk, and
    /// goes on from there. On failure the files that moved go back and the torrent goes
    /// on as it was.
    pub async fn rename(
        self: &Rc<Self>,
        renamed: Arc<Metainfo>,
        moves: Vec<(TorrentPath, TorrentPath)>,
    ) -> Result<(), CommandError> {
        let files = self.meta().info.layout.files().len();
        if renamed.info_hash != self.meta().info_hash || renamed.info.layout.files().len() != files
        {
            return Err(CommandError::BadFileIndex {
                what: "a rename for another layout",
                files,
            });
        }
        let was_running = self.want_running.get();
        self.pause().await;
        let save_dir = self.settings.borrow().save_dir.clone();
        let symlinks = self.ctx.config.symlinks;
        let done = glommio::executor()
            .spawn_blocking(move || rename_files(&save_dir, symlinks, moves))
            .await;
        if done.is_ok() {
            *self.meta.borrow_mut() = renamed.clone();
            self.status.set_metainfo(renamed);
        }
        self.want_running.set(was_running);
        if was_running {
            self.spawn_life();
        }
        done.map_err(CommandError::Fault)
    }

    /// Looks for the torrent's data under `to` instead (moving nothing): every piece is
    /// checked there, then it goes on as before (downloading what is not there).
    pub async fn set_location(self: &Rc<Self>, to: PathBuf) {
        let was_running = self.want_running.get();
        self.pause().await;
        self.settings.borrow_mut().save_dir = to;
        *self.verify.borrow_mut() = Verify::Full;
        self.recorded.set(false);
        self.want_running.set(was_running);
        self.status.set_fault(None);
        self.spawn_life();
    }

    fn spawn_life(self: &Rc<Self>) {
        if self.active.replace(true) {
            // The running task starts again by itself when it sees it should.
            return;
        }
        self.status
            .finished
            .store(false, std::sync::atomic::Ordering::Release);
        glommio::spawn_local(self.clone().life()).detach();
    }

    /// Checks (if needed) and runs the torrent until it should stop.
    async fn life(self: Rc<Self>) {
        loop {
            if matches!(*self.verify.borrow(), Verify::Full) && !self.full_check().await {
                break;
            }
            if !self.want_running.get() {
                break;
            }
            let rt = match self.open().await {
                Ok(rt) => rt,
                Err(fault) => {
                    self.fault(fault);
                    break;
                }
            };
            *self.phase.borrow_mut() = Phase::Running(rt.clone());
            let partial = self.start_partial_check(&rt);
            let keep_seeding = self.settings.borrow().keep_seeding;
            driver::run(rt.clone(), keep_seeding).await;
            *self.phase.borrow_mut() = Phase::Idle;
            // Its last report, as it wound down, covers everything it has.
            self.recorded.set(true);
            let have = rt.engine().borrow().have().clone();
            *self.verify.borrow_mut() = match partial {
                Some((pieces, done)) if !done.get() => Verify::Partly {
                    check: pieces.into_iter().filter(|&p| !have.get(p)).collect(),
                    have,
                },
                _ => Verify::Trusted(have),
            };
            if let Some(fault) = rt.fault() {
                self.fault(fault);
                break;
            }
            if !self.want_running.get() || (rt.engine().borrow().is_done() && !keep_seeding) {
                break;
            }
            // Resumed while it was stopping: start again.
        }
        *self.phase.borrow_mut() = Phase::Idle;
        let state = self.status.state();
        if state != TorrentState::Failed {
            let done = self.status.done.load(std::sync::atomic::Ordering::Acquire);
            self.status.set_state(if self.want_running.get() && done {
                TorrentState::Stopped
            } else {
                TorrentState::Paused
            });
        }
        self.active.set(false);
        self.status
            .finished
            .store(true, std::sync::atomic::Ordering::Release);
        for waiter in self.waiting.borrow_mut().drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Hashes every piece; false if it was cancelled.
    async fn full_check(&self) -> bool {
        self.status.set_state(TorrentState::Checking);
        let cancel = Rc::new(Cell::new(false));
        *self.phase.borrow_mut() = Phase::Checking(cancel.clone());
        let _turn = self.ctx.checks.acquire_permit(1).await;
        let save_dir = self.settings.borrow().save_dir.clone();
        let found = if cancel.get() {
            None
        } else {
            check(
                self.meta(),
                save_dir,
                self.ctx.config.symlinks,
                None,
                &self.status,
                &cancel,
                |_| {},
            )
            .await
        };
        *self.phase.borrow_mut() = Phase::Idle;
        let Some(have) = found else {
            return false;
        };
        self.status.have_pieces.store(
            u64::from(have.count()),
            std::sync::atomic::Ordering::Relaxed,
        );
        // A paused torrent's check is all the queue learns of it: complete data makes it a
        // seed to start, not a download to wait its turn.
        let wanted_all = match &self.settings.borrow().priorities {
            None => have.is_full(),
            Some(p) => {
                let meta = self.meta();
                let layout = &meta.info.layout;
                (0..p.len())
                    .filter(|&f| p[f] != Priority::Skip)
                    .all(|f| layout.file_pieces(f).all(|piece| have.get(piece)))
            }
        };
        self.status
            .done
            .store(wanted_all, std::sync::atomic::Ordering::Release);
        if let Some(events) = &self.ctx.events {
            events.send(SwarmEvent::Checked {
                info_hash: self.meta().info_hash,
                have: have.count(),
            });
        }
        *self.verify.borrow_mut() = Verify::Trusted(have);
        self.recorded.set(false);
        true
    }

    /// Pieces the resume data could not vouch for are hashed while the rest is served;
    /// each good one joins the running torrent. Returns the pieces and whether the check
    /// has finished.
    fn start_partial_check(&self, rt: &Rc<TorrentRt>) -> Option<(Vec<u32>, Rc<Cell<bool>>)> {
        let Verify::Partly { check: pieces, .. } = &*self.verify.borrow() else {
            return None;
        };
        let done = Rc::new(Cell::new(false));
        let (rt, meta, status, ctx) = (
            rt.clone(),
            self.meta(),
            self.status.clone(),
            self.ctx.clone(),
        );
        let (pieces, finished) = (pieces.clone(), done.clone());
        let save_dir = self.settings.borrow().save_dir.clone();
        let list = pieces.clone();
        glommio::spawn_local(async move {
            let _turn = ctx.checks.acquire_permit(1).await;
            let found = check(
                meta,
                save_dir,
                ctx.config.symlinks,
                Some(list),
                &status,
                rt.stopping(),
                |piece| rt.mark_verified(piece),
            )
            .await;
            finished.set(found.is_some());
        })
        .detach();
        Some((pieces, done))
    }

    /// Opens the torrent's files and builds its state on this shard.
    async fn open(&self) -> Result<Rc<TorrentRt>, TorrentFault> {
        let (save_dir, sequential, priorities, peers) = {
            let settings = self.settings.borrow();
            (
                settings.save_dir.clone(),
                settings.sequential,
                settings.priorities.clone(),
                settings.peers.clone(),
            )
        };
        let have = match &*self.verify.borrow() {
            Verify::Trusted(have) | Verify::Partly { have, .. } => have.clone(),
            Verify::Full => Bitfield::empty(self.meta().info.layout.piece_count()),
        };
        let layout = Rc::new(self.meta().info.layout.clone());
        let wants_more = !have.is_full();
        let storage = if !wants_more {
            LazyStorage::on_demand(
                save_dir.clone(),
                self.ctx.config.symlinks,
                layout,
                self.ctx.files.clone(),
                self.index,
            )
        } else {
            let storage = Storage::open(
                &save_dir,
                self.ctx.config.symlinks,
                layout.clone(),
                true,
                self.ctx.config.preallocate,
            )
            .await
            .map_err(|e| TorrentFault::from(&e))?;
            tracing::info!(
                torrent = %self.meta().info_hash,
                direct_io = storage.is_direct(),
                "opened the torrent's files"
            );
            LazyStorage::opened(
                storage,
                save_dir.clone(),
                self.ctx.config.symlinks,
                layout,
                self.ctx.files.clone(),
                self.index,
            )
        };
        let seed = self.ctx.seed_for(self.index);
        let mut session = self.ctx.config.session.clone();
        let limits = self.ctx.peer_limits.get();
        session.choker.upload_slots = limits.upload_slots;
        session.max_peers = limits.max_peers_per_torrent;
        let mut engine = Torrent::new(self.meta().info.layout.clone(), &have, session, seed);
        engine.set_info_dict(self.meta().info_bytes.clone());
        engine.set_private(self.meta().info.private);
        engine.set_sequential(sequential);
        engine.set_info_hash(self.meta().info_hash);
        if let Some(p) = &priorities {
            engine.set_file_priorities(p);
        }
        let mut id_random = [0u8; 12];
        id_random.copy_from_slice(&seed.to_le_bytes().repeat(2)[..12]);
        let trackers = self.settings.borrow().trackers.clone();
        let rt = Rc::new(TorrentRt::new(
            self.ctx.clone(),
            self.index,
            self.meta(),
            trackers,
            engine,
            storage,
            self.status.clone(),
            PeerId::generate(id_random),
            seed,
            self.throttle.clone(),
            super::replica::Role::owner(),
        ));
        if self.recorded.get() {
            rt.assume_durable();
        }
        rt.learn(&peers, PeerSource::Manual);
        Ok(rt)
    }

    fn fault(&self, fault: TorrentFault) {
        tracing::error!(torrent = %self.meta().info_hash, error = %fault, "torrent stopped");
        self.status.set_state(TorrentState::Failed);
        self.status.set_fault(Some(fault.clone()));
        if let Some(events) = &self.ctx.events {
            events.send(SwarmEvent::Fault {
                info_hash: self.meta().info_hash,
                fault,
            });
        }
    }
}

/// Deletes the torrent's files beneath `save_dir`, then the directories of its tree that
/// are left empty (see [`SaveDir::remove_file`]: a symlink inside the tree is not followed
/// unless `symlinks` allows it, so a delete never reaches outside). Files that are not
/// there are fine.
fn delete_files(save_dir: &Path, symlinks: Symlinks, layout: &Layout) -> Result<(), TorrentFault> {
    let dir = match SaveDir::open(save_dir, symlinks) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(TorrentFault::io(Some(save_dir.to_path_buf()), &e)),
    };
    for file in layout.files().iter().filter(|f| !f.pad) {
        dir.remove_file(&file.path)
            .map_err(|e| TorrentFault::io(Some(path_under(save_dir, &file.path)), &e))?;
    }
    Ok(())
}

/// Moves each file of the torrent from beneath `from` to beneath `to` (see
/// [`SaveDir::move_file`]: no symlink at either end takes a file outside). On failure,
/// moves back what had moved.
/// Renames each file of `moves` that exists beneath `save_dir`, undoing them all if one
/// fails. A file's new path may be another's old one (a folder renamed into or out of
/// itself), so they go in the order that frees each target first: deepest first when the
/// paths grow, shallowest first when they shrink.
fn rename_files(
    save_dir: &Path,
    symlinks: Symlinks,
    mut moves: Vec<(TorrentPath, TorrentPath)>,
) -> Result<(), TorrentFault> {
    let fault = |p: &Path, e: &std::io::Error| TorrentFault::io(Some(p.to_path_buf()), e);
    let dir = match SaveDir::open(save_dir, symlinks) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fault(save_dir, &e)),
    };
    let grows = moves
        .first()
        .is_some_and(|(from, to)| to.len() > from.len());
    moves.sort_by_key(|(from, _)| from.len());
    if grows {
        moves.reverse();
    }
    let mut done = Vec::new();
    for (from, to) in &moves {
        match dir.rename_file(from, to) {
            Ok(true) => done.push((from, to)),
            Ok(false) => {}
            Err(e) => {
                for (from, to) in done.into_iter().rev() {
                    let _ = dir.rename_file(to, from);
                }
                return Err(fault(&path_under(save_dir, to), &e));
            }
        }
    }
    Ok(())
}

fn move_files(
    from: &Path,
    to: &Path,
    symlinks: Symlinks,
    layout: &Layout,
) -> Result<(), TorrentFault> {
    if from == to {
        return Ok(());
    }
    let fault = |p: &Path, e: &std::io::Error| TorrentFault::io(Some(p.to_path_buf()), e);
    let source = match SaveDir::open(from, symlinks) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(fault(from, &e)),
    };
    std::fs::create_dir_all(to).map_err(|e| fault(to, &e))?;
    let target = SaveDir::open(to, symlinks).map_err(|e| fault(to, &e))?;
    let mut moved = Vec::new();
    for file in layout.files().iter().filter(|f| !f.pad) {
        match source.move_file(&file.path, &target) {
            Ok(true) => moved.push(&file.path),
            Ok(false) => {}
            Err(e) => {
                for path in moved.into_iter().rev() {
                    let _ = target.move_file(path, &source);
                }
                return Err(fault(&path_under(to, &file.path), &e));
            }
        }
    }
    let _ = delete_files(from, symlinks, layout);
    Ok(())
}
