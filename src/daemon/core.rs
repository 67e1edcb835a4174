//! The daemon's one front door: every way in (the control socket, watch folders, and the
//! HTTP APIs to come) adds and steers torrents through [`Daemon`], which keeps the shards
//! and the state database in step.
//!
//! The registry here is the control plane's view (which torrents exist, where their data
//! is, their live status); each torrent's mutable state stays on its shard. The registry's
//! lock is taken only by commands and listings, never by a shard.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ccbt_engine::blocklist::Blocklist;
use ccbt_engine::metainfo::{Metainfo, MetainfoError, RenameError, RenameTarget};
use ccbt_engine::picker::Priority;
use ccbt_engine::InfoHash;
use ccbt_shards::swarm::{
    CommandError, RateLimits, Swarm, TorrentFault, TorrentOp, TorrentSpec, TorrentState,
    TorrentStatus, Verify,
};
use ccbt_state::{StateWriter, TorrentRecord, Write, WriteError};

use super::events::{EventKind, EventLog, HookCall, Hooks};
use super::magnets::{self, PendingMagnet, Source};

pub fn hook_limits(config: &ccbt_config::Hooks) -> super::events::HookLimits {
    super::events::HookLimits {
        max_running: config.max_running as usize,
        timeout: Duration::from_secs(u64::from(config.timeout_s)),
    }
}
use thiserror::Error;

/// How long a command waits for room in the state writer's queue.
const STATE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the daemon refused a request: what an API reports to its caller.
#[derive(Debug, Error)]
pub enum DaemonError {
    #[error("not a valid torrent: {0}")]
    BadTorrent(#[from] MetainfoError),
    #[error("not a valid magnet link: {0}")]
    BadMagnet(#[from] ccbt_engine::magnet::MagnetError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("torrent {0} is already added")]
    Duplicate(InfoHash),
    #[error("no torrent {0}")]
    Unknown(InfoHash),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("the state database did not take the change: {0}")]
    State(#[from] WriteError),
    #[error("the state database cannot commit: {0}")]
    Flush(#[source] ccbt_state::StateError),
    #[error(transparent)]
    Label(#[from] super::labels::LabelError),
    #[error(transparent)]
    Trackers(#[from] super::trackers::TrackerEditError),
    #[error(transparent)]
    Rename(#[from] RenameError),
}

impl DaemonError {
    /// A short stable name for the kind of error, for APIs and scripts.
    pub fn kind(&self) -> &'static str {
        match self {
            DaemonError::BadTorrent(_) => "bad-torrent",
            DaemonError::BadMagnet(_) => "bad-magnet",
            DaemonError::Read { .. } => "read",
            DaemonError::Duplicate(_) => "duplicate",
            DaemonError::Unknown(_) => "unknown-torrent",
            DaemonError::Command(CommandError::Fault(f)) => fault_kind(f),
            DaemonError::Command(CommandError::Busy(_)) => "busy",
            DaemonError::Command(_) => "command",
            DaemonError::State(_) | DaemonError::Flush(_) => "state",
            DaemonError::Label(_) => "label",
            DaemonError::Trackers(_) => "bad-trackers",
            DaemonError::Rename(_) => "bad-rename",
        }
    }
}

pub fn fault_kind(fault: &TorrentFault) -> &'static str {
    use ccbt_shards::swarm::FaultKind;
    match fault.kind {
        FaultKind::DiskFull => "disk-full",
        FaultKind::Permission => "permission",
        FaultKind::NotFound => "not-found",
        FaultKind::Io => "io",
        FaultKind::BadData => "bad-data",
        FaultKind::Metadata => "metadata",
    }
}

/// A torrent to add.
pub struct AddRequest {
    /// A `.torrent` file's bytes or a magnet link.
    pub source: Source,
    /// Where its data goes; the daemon's download directory when `None`.
    pub save_dir: Option<PathBuf>,
    pub paused: bool,
    pub category: Option<String>,
    pub tags: Vec<String>,
}

/// What the registry keeps of a torrent.
pub struct Entry {
    /// This run's small number for it (Transmission's `id`); given when it is registered,
    /// never reused while the daemon runs.
    pub id: u32,
    /// Bumped by every change made through the daemon (labels, limits, paths, flags), so
    /// a listing can tell an unchanged torrent without comparing its strings.
    pub revision: u64,
    /// The torrent's metainfo; for a magnet link not yet fetched, what the link says of it
    /// (see [`magnets`]).
    pub meta: Arc<Metainfo>,
    /// Added from this magnet link, whose metadata is not known yet; `None` once it is.
    pub magnet: Option<magnets::Pending>,
    pub status: Arc<TorrentStatus>,
    pub save_dir: PathBuf,
    pub added_at: i64,
    /// Unix seconds its download completed, if it has.
    pub completed_at: Option<i64>,
    pub category: Option<String>,
    pub tags: Vec<String>,
    /// Totals of earlier runs, to which this run's counters add.
    pub uploaded_before: u64,
    pub downloaded_before: u64,
    /// Lower starts first when the queue has room.
    pub queue_position: u32,
    /// Paused by a command (or a share limit): the queue leaves it alone.
    pub user_paused: bool,
    /// Stopped by the queue until a slot frees.
    pub queued: bool,
    /// Since when the policy has seen it seeding, for seeding-time limits.
    pub seeding_since: Option<std::time::Instant>,
    /// Since when the policy has seen it seeding with nothing moving, for idle limits.
    pub idle_since: Option<std::time::Instant>,
    /// Its own limits, priorities and share limits.
    pub settings: TorrentSettings,
}

/// A share limit of one torrent: as configured (its category or `[share]`), none, or
/// its own value.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Override<T> {
    #[default]
    Global,
    Unlimited,
    Limit(T),
}

impl<T: Copy> Override<T> {
    /// The limit that applies, given what the configuration says.
    pub fn resolve(self, configured: Option<T>) -> Option<T> {
        match self {
            Override::Global => configured,
            Override::Unlimited => None,
            Override::Limit(v) => Some(v),
        }
    }
}

/// A torrent's own share limits (Transmission's seedRatioLimit/seedIdleLimit and their
/// modes; qBittorrent's setShareLimits).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShareOverride {
    #[serde(default)]
    pub ratio: Override<f64>,
    #[serde(default)]
    pub seeding_minutes: Override<u64>,
    /// Minutes without upload or download after which it stops seeding.
    #[serde(default)]
    pub idle_minutes: Override<u64>,
}

/// A torrent's own settings, stored as JSON in its record's `settings`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TorrentSettings {
    #[serde(default)]
    pub upload_bytes_per_s: u64,
    #[serde(default)]
    pub download_bytes_per_s: u64,
    #[serde(default)]
    pub share: ShareOverride,
    /// Per file, in torrent order: -1 skip, 0 low, 1 normal, 2 high; empty = all normal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priorities: Vec<i8>,
    #[serde(default)]
    pub sequential: bool,
    /// Tracker tiers set through an API, in place of the metainfo's (see `trackers`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trackers: Option<Vec<Vec<String>>>,
    /// Files and folders renamed through an API (see `renames`).
    #[serde(default, skip_serializing_if = "super::renames::Renames::is_empty")]
    pub renames: super::renames::Renames,
}

impl TorrentSettings {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    /// What a stored record says; a settings text this version cannot read gives none.
    pub fn from_json(text: &str) -> TorrentSettings {
        serde_json::from_str(text).unwrap_or_default()
    }

    /// File `index`'s priority (normal when none is set).
    pub fn priority(&self, index: usize) -> Priority {
        priority_of(self.priorities.get(index).copied().unwrap_or(1))
    }

    /// The shard's priorities for `files` files, if any differ from normal.
    fn shard_priorities(&self, files: usize) -> Option<Vec<Priority>> {
        (!self.priorities.is_empty()).then(|| (0..files).map(|i| self.priority(i)).collect())
    }
}

/// The stored number for a priority.
pub fn priority_code(p: Priority) -> i8 {
    match p {
        Priority::Skip => -1,
        Priority::Low => 0,
        Priority::Normal => 1,
        Priority::High => 2,
    }
}

pub fn priority_of(code: i8) -> Priority {
    match code {
        i8::MIN..=-1 => Priority::Skip,
        0 => Priority::Low,
        1 => Priority::Normal,
        _ => Priority::High,
    }
}

/// A torrent as a listing shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TorrentView {
    pub hash: String,
    pub name: String,
    pub state: &'static str,
    pub save_dir: PathBuf,
    pub size: u64,
    pub pieces: u32,
    pub have_pieces: u64,
    pub checked_pieces: u64,
    pub peers: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub download_rate: u64,
    pub upload_rate: u64,
    pub error: Option<String>,
    pub error_kind: Option<&'static str>,
    pub added_at: i64,
    pub queue_position: u32,
    /// The torrent's own limits, bytes per second (0: none).
    pub upload_limit: u64,
    pub download_limit: u64,
    pub category: Option<String>,
    pub tags: Vec<String>,
}

pub struct Daemon {
    swarm: Swarm,
    state: StateWriter,
    torrents: Mutex<HashMap<InfoHash, Entry>>,
    download_dir: Mutex<PathBuf>,
    pub events: EventLog,
    hooks: Hooks,
    /// The programs to run, from the config (reloaded live).
    hook_programs: Mutex<ccbt_config::Hooks>,
    max_active_downloads: std::sync::atomic::AtomicU32,
    /// Downloads running, as the policy last counted them, plus adds since.
    active_downloads: std::sync::atomic::AtomicUsize,
    /// The queue position the next added torrent takes.
    next_position: std::sync::atomic::AtomicU32,
    /// The id the next registered torrent takes.
    next_id: std::sync::atomic::AtomicU32,
    /// Categories and tags as lists of their own (the qBittorrent API's).
    pub labels: super::labels::Labels,
    /// Held while a rename computes from the registry's metainfo and puts the result
    /// back, so two renames of one torrent cannot lose either.
    renaming: Mutex<()>,
    /// Magnet links in the registry still waiting for their metadata (at most one entry
    /// per torrent, so bounded by the registry). Lock order: the registry first.
    fetching: Mutex<std::collections::HashSet<InfoHash>>,
}

impl Daemon {
    pub fn new(
        swarm: Swarm,
        state: StateWriter,
        download_dir: PathBuf,
        hooks: Hooks,
        hook_programs: ccbt_config::Hooks,
    ) -> Daemon {
        let labels = super::labels::Labels::new(state.clone());
        Daemon {
            swarm,
            state,
            torrents: Mutex::default(),
            download_dir: Mutex::new(download_dir),
            events: EventLog::default(),
            hooks,
            hook_programs: Mutex::new(hook_programs),
            max_active_downloads: std::sync::atomic::AtomicU32::new(0),
            active_downloads: std::sync::atomic::AtomicUsize::new(0),
            next_position: std::sync::atomic::AtomicU32::new(0),
            next_id: std::sync::atomic::AtomicU32::new(1),
            renaming: Mutex::default(),
            fetching: Mutex::default(),
            labels,
        }
    }

    /// New hook programs and limits (config reload).
    pub fn set_hooks(&self, config: ccbt_config::Hooks) {
        self.hooks.set_limits(hook_limits(&config));
        *self.hook_programs.lock().expect("hooks lock") = config;
    }

    /// Logs an event of a torrent and runs its hook, if one is set for that kind.
    pub fn event(&self, kind: EventKind, info_hash: &InfoHash, detail: Option<String>) {
        let program = {
            let hooks = self.hook_programs.lock().expect("hooks lock");
            match kind {
                EventKind::Completed => hooks.on_complete.clone(),
                EventKind::Error => hooks.on_error.clone(),
                _ => None,
            }
        };
        if let Some(program) = program {
            let registry = self.registry();
            if let Some(entry) = registry.get(info_hash) {
                self.hooks.call(HookCall {
                    program,
                    event: if kind == EventKind::Completed {
                        "completed"
                    } else {
                        "error"
                    },
                    hash: info_hash.to_hex(),
                    name: entry.meta.info.name.display(),
                    dir: entry.save_dir.clone(),
                    error: detail.clone(),
                });
            }
        }
        self.events.push(kind, info_hash.to_hex(), detail);
    }

    pub fn port(&self) -> u16 {
        self.swarm.port()
    }

    /// Applies new global rate limits on every shard (retrying a busy one briefly).
    pub fn set_global_limits(&self, limits: RateLimits) {
        for _ in 0..50 {
            match self.swarm.set_global_limits(limits).wait() {
                Err(CommandError::Busy(_)) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return tracing::error!(error = %e, "rate limits not applied"),
                Ok(()) => return tracing::info!(?limits, "rate limits applied"),
            }
        }
    }

    /// New upload slots, peer and connection caps on every shard (a reload).
    pub fn set_peer_limits(&self, limits: ccbt_shards::swarm::PeerLimits) {
        for _ in 0..50 {
            match self.swarm.set_peer_limits(limits).wait() {
                Err(CommandError::Busy(_)) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return tracing::error!(error = %e, "peer limits not applied"),
                Ok(()) => return tracing::info!(?limits, "peer limits applied"),
            }
        }
    }

    /// Replaces the blocklist on every shard (an empty one lifts it).
    pub fn set_blocklist(&self, list: Arc<Blocklist>) {
        for _ in 0..50 {
            match self.swarm.set_blocklist(list.clone()).wait() {
                Err(CommandError::Busy(_)) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return tracing::error!(error = %e, "blocklist not applied"),
                Ok(()) => return,
            }
        }
    }

    pub fn set_download_dir(&self, dir: PathBuf) {
        *self.download_dir.lock().expect("download dir lock") = dir;
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<InfoHash, Entry>> {
        self.torrents.lock().expect("registry lock")
    }

    fn record(&self, write: Write) -> Result<(), DaemonError> {
        self.state.write_blocking(write, STATE_WRITE_TIMEOUT)?;
        Ok(())
    }

    /// Adds a new torrent: it is recorded, then checked against what is already in its
    /// save directory (in the background, on its shard), then run unless paused.
    pub fn add(&self, req: AddRequest) -> Result<InfoHash, DaemonError> {
        let (meta, magnet, stored) = match req.source {
            Source::Torrent(bytes) => (Arc::new(Metainfo::parse(&bytes)?), None, bytes),
            Source::Magnet(link) => {
                let pending = PendingMagnet::parse(link)?;
                let meta = Arc::new(pending.placeholder());
                let stored = pending.link.clone().into_bytes();
                (meta, Some(Arc::new(pending)), stored)
            }
        };
        let info_hash = meta.info_hash;
        if self.registry().contains_key(&info_hash) {
            return Err(DaemonError::Duplicate(info_hash));
        }
        crate::changed_paths::log(&meta);
        let save_dir = req
            .save_dir
            .unwrap_or_else(|| self.download_dir.lock().expect("download dir lock").clone());
        let added_at = unix_now();
        let queue_position = self.next_queue_position();
        // Waits its turn at once when the download slots are taken: the queue's next round
        // would stop it, but only after it had started. (Checked while paused, it may turn
        // out complete; the queue then starts it as a seed.)
        let queued = !req.paused && self.download_slots_full();
        if !req.paused && !queued {
            // Until the policy's next count: it may yet turn out complete.
            self.active_downloads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let record = TorrentRecord {
            info_hash: info_hash.0,
            metainfo: stored,
            name: meta.info.name.display(),
            save_path: save_dir.display().to_string(),
            category: req.category.clone(),
            tags: req.tags.clone(),
            added_at,
            completed_at: None,
            paused: req.paused,
            queue_position: i64::from(queue_position),
            settings: "{}".into(),
            uploaded: 0,
            downloaded: 0,
            error: None,
        };
        self.record(Write::upsert(record))?;
        let entry = Entry {
            id: 0,
            revision: 0,
            meta,
            magnet,
            status: Arc::default(),
            save_dir,
            added_at,
            completed_at: None,
            category: req.category,
            tags: req.tags,
            uploaded_before: 0,
            downloaded_before: 0,
            queue_position,
            user_paused: req.paused,
            queued,
            seeding_since: None,
            idle_since: None,
            settings: TorrentSettings::default(),
        };
        if let Err(e) = self.start(entry, Verify::Full, req.paused || queued) {
            let _ = self.record(Write::Remove(info_hash.0));
            return Err(e);
        }
        // Durable before the caller hears "added": a crash must not lose a torrent it was
        // told about. Adds at once share one commit.
        self.state.flush().map_err(DaemonError::Flush)?;
        tracing::info!(torrent = %info_hash, "added");
        self.event(EventKind::Added, &info_hash, None);
        Ok(info_hash)
    }

    /// Puts a torrent on its shard and in the registry.
    pub fn start(&self, entry: Entry, verify: Verify, paused: bool) -> Result<(), DaemonError> {
        self.start_many(vec![(entry, verify, paused)])
            .pop()
            .expect("one result per torrent")
    }

    /// Puts many torrents on their shards, with every add of a batch in flight at once
    /// (a start-up with 100,000 torrents must not pay a round trip each); one result per
    /// torrent, in order.
    pub fn start_many(&self, torrents: Vec<(Entry, Verify, bool)>) -> Vec<Result<(), DaemonError>> {
        // Under every shard's inbox bound, so a batch is never refused as busy.
        const BATCH: usize = ccbt_shards::swarm::INBOX_LEN / 2;
        let mut results = Vec::with_capacity(torrents.len());
        let mut torrents = torrents.into_iter().peekable();
        while torrents.peek().is_some() {
            let batch: Vec<_> = torrents
                .by_ref()
                .take(BATCH)
                .map(|(entry, verify, paused)| {
                    let pending = match &entry.magnet {
                        Some(magnet) => self.start_fetch(
                            entry.save_dir.clone(),
                            &entry.settings,
                            magnet,
                            paused,
                        ),
                        None => self.swarm.add(self.spec(&entry, verify, paused)),
                    };
                    (entry, pending)
                })
                .collect();
            for (mut entry, pending) in batch {
                results.push(match pending.wait() {
                    Ok(status) => {
                        entry.status = status;
                        entry.id = self
                            .next_id
                            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        self.next_position.fetch_max(
                            entry.queue_position.saturating_add(1),
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        if entry.magnet.is_some() {
                            self.fetching().insert(entry.meta.info_hash);
                        }
                        self.registry().insert(entry.meta.info_hash, entry);
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                });
            }
        }
        results
    }

    fn spec(&self, entry: &Entry, verify: Verify, paused: bool) -> TorrentSpec {
        TorrentSpec {
            metainfo: entry.meta.clone(),
            save_dir: entry.save_dir.clone(),
            verify,
            sequential: entry.settings.sequential,
            priorities: entry
                .settings
                .shard_priorities(entry.meta.info.layout.files().len()),
            keep_seeding: true,
            paused,
            peers: Vec::new(),
            upload_bytes_per_s: entry.settings.upload_bytes_per_s,
            download_bytes_per_s: entry.settings.download_bytes_per_s,
        }
    }

    /// Starts fetching a magnet link's metadata on its shard; a paused one is not sent to
    /// a shard at all (it fetches nothing until resumed). Resolves `x.pe` host names: never
    /// call it under the registry's lock.
    fn start_fetch(
        &self,
        save_dir: PathBuf,
        settings: &TorrentSettings,
        magnet: &PendingMagnet,
        paused: bool,
    ) -> ccbt_shards::swarm::Pending<Arc<TorrentStatus>> {
        if paused {
            let status = Arc::new(TorrentStatus::not_started(TorrentState::Paused));
            return ccbt_shards::swarm::Pending::ready(status);
        }
        let limits = (settings.upload_bytes_per_s, settings.download_bytes_per_s);
        let mut spec = magnet.spec(save_dir, limits);
        spec.sequential = settings.sequential;
        self.swarm.add_magnet(spec)
    }

    /// Takes in every magnet link whose metadata its shard has fetched since the last
    /// call (the policy calls it every round; commands before they act).
    /// Looks at the magnet links still fetching only, not every torrent: a round costs
    /// what the fetches in flight cost.
    pub fn adopt_fetched(&self) {
        let fetching: Vec<InfoHash> = self.fetching().iter().copied().collect();
        for info_hash in fetching {
            self.adopt(info_hash);
        }
    }

    /// The magnet links whose metadata has not been adopted yet.
    fn fetching(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<InfoHash>> {
        self.fetching.lock().expect("fetching lock")
    }

    /// The registry takes the fetched metainfo and the state database its `.torrent`.
    /// Returns whether the torrent is still waiting for its metadata.
    fn adopt(&self, info_hash: InfoHash) -> bool {
        let record = {
            let mut registry = self.registry();
            let Some(e) = registry.get_mut(&info_hash) else {
                return false;
            };
            let Some(magnet) = e.magnet.clone() else {
                self.fetching().remove(&info_hash);
                return false;
            };
            let Some(meta) = e.status.metainfo() else {
                return true;
            };
            self.fetching().remove(&info_hash);
            crate::changed_paths::log(&meta);
            e.meta = meta;
            e.magnet = None;
            e.revision += 1;
            TorrentRecord {
                info_hash: info_hash.0,
                metainfo: magnet.torrent_file(&e.meta),
                name: e.meta.info.name.display(),
                save_path: e.save_dir.display().to_string(),
                category: e.category.clone(),
                tags: e.tags.clone(),
                added_at: e.added_at,
                completed_at: e.completed_at,
                paused: e.user_paused,
                queue_position: i64::from(e.queue_position),
                settings: e.settings.to_json(),
                uploaded: e.uploaded_before,
                downloaded: e.downloaded_before,
                error: None,
            }
        };
        tracing::info!(torrent = %info_hash, name = %record.name, "metadata fetched; torrent kept");
        if let Err(e) = self.record(Write::upsert(record)) {
            tracing::error!(torrent = %info_hash, error = %e, "cannot keep a fetched torrent");
        }
        self.event(EventKind::MetadataFetched, &info_hash, None);
        self.apply_settings_after_fetch(info_hash);
        false
    }

    /// Settings changed while the metadata was fetched, given to the torrent now.
    fn apply_settings_after_fetch(&self, info_hash: InfoHash) {
        let Some(settings) = self.with_entry(&info_hash, |e| e.settings.clone()) else {
            return;
        };
        let mut ops = Vec::new();
        if settings.upload_bytes_per_s != 0 || settings.download_bytes_per_s != 0 {
            ops.push(TorrentOp::SetLimits {
                upload_bytes_per_s: settings.upload_bytes_per_s,
                download_bytes_per_s: settings.download_bytes_per_s,
            });
        }
        if settings.sequential {
            ops.push(TorrentOp::SetSequential(true));
        }
        for op in ops {
            if let Err(e) = self.swarm.command(info_hash, op).wait() {
                tracing::warn!(torrent = %info_hash, error = %e, "a setting did not reach the fetched torrent");
            }
        }
    }

    /// A command for a magnet link still waiting for its metadata: pause ends its fetch,
    /// resume starts a new one, remove and reannounce go to the fetch if one runs; the
    /// rest need the torrent's files.
    fn magnet_op(&self, info_hash: InfoHash, op: TorrentOp) -> Result<(), DaemonError> {
        let (state, magnet) = {
            let registry = self.registry();
            let e = registry
                .get(&info_hash)
                .ok_or(DaemonError::Unknown(info_hash))?;
            let magnet = e.magnet.clone().ok_or(DaemonError::Unknown(info_hash))?;
            (e.status.state(), magnet)
        };
        let fetching = state == TorrentState::FetchingMetadata;
        match op {
            TorrentOp::Pause | TorrentOp::Remove { .. } | TorrentOp::Reannounce if fetching => {
                Ok(self.swarm.command(info_hash, op).wait()?)
            }
            TorrentOp::Pause | TorrentOp::Remove { .. } | TorrentOp::Reannounce => Ok(()),
            TorrentOp::Resume if fetching => Ok(()),
            // Kept in the settings by the caller; given to the torrent when it starts
            // (`start_fetch`) or is adopted (`adopt`).
            TorrentOp::SetLimits { .. } | TorrentOp::SetSequential(_) => Ok(()),
            TorrentOp::Resume => {
                let (save_dir, settings) = self
                    .with_entry(&info_hash, |e| (e.save_dir.clone(), e.settings.clone()))
                    .ok_or(DaemonError::Unknown(info_hash))?;
                let status = self
                    .start_fetch(save_dir, &settings, &magnet, false)
                    .wait()?;
                self.set_flags(&info_hash, |e| e.status = status);
                Ok(())
            }
            _ => Err(CommandError::FetchingMetadata(info_hash).into()),
        }
    }

    fn known(&self, info_hash: InfoHash) -> Result<(), DaemonError> {
        if self.registry().contains_key(&info_hash) {
            Ok(())
        } else {
            Err(DaemonError::Unknown(info_hash))
        }
    }

    fn op(&self, info_hash: InfoHash, op: TorrentOp) -> Result<(), DaemonError> {
        self.known(info_hash)?;
        if self.adopt(info_hash) {
            return self.magnet_op(info_hash, op);
        }
        self.swarm.command(info_hash, op).wait()?;
        Ok(())
    }

    /// The queue's download limit (0: none), kept up to date by the policy.
    pub fn set_max_active_downloads(&self, n: u32) {
        self.max_active_downloads
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether a new torrent would exceed the download slots: the policy's last count of
    /// running downloads plus those added since (a scan of every torrent per add would make
    /// adding N torrents cost N squared).
    fn download_slots_full(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        let max = self.max_active_downloads.load(Relaxed);
        max != 0 && self.active_downloads.load(Relaxed) >= max as usize
    }

    /// The policy counted the downloads running now.
    pub fn set_active_downloads(&self, n: usize) {
        self.active_downloads
            .store(n, std::sync::atomic::Ordering::Relaxed);
    }

    fn next_queue_position(&self) -> u32 {
        self.next_position
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn set_flags(&self, info_hash: &InfoHash, f: impl FnOnce(&mut Entry)) {
        if let Some(entry) = self.registry().get_mut(info_hash) {
            f(entry);
            entry.revision += 1;
        }
    }

    /// Changes the torrent's settings and records them; the registry's copy is the truth.
    fn update_settings(
        &self,
        info_hash: InfoHash,
        f: impl FnOnce(&mut TorrentSettings),
    ) -> Result<(), DaemonError> {
        let settings = {
            let mut registry = self.registry();
            let entry = registry
                .get_mut(&info_hash)
                .ok_or(DaemonError::Unknown(info_hash))?;
            f(&mut entry.settings);
            entry.revision += 1;
            entry.settings.to_json()
        };
        self.record(Write::SetSettings {
            info_hash: info_hash.0,
            settings,
        })
    }

    /// What the queue and share limits decide on, refreshing seeding times.
    pub fn policy_views(&self) -> Vec<super::policy::PolicyView> {
        use std::sync::atomic::Ordering::Relaxed;
        let mut registry = self.registry();
        registry
            .values_mut()
            .map(|e| {
                let state = e.status.state();
                let moving = e.status.upload_rate.load(Relaxed) > 0
                    || e.status.download_rate.load(Relaxed) > 0;
                if state == TorrentState::Seeding {
                    e.seeding_since.get_or_insert_with(std::time::Instant::now);
                } else {
                    e.seeding_since = None;
                }
                if state == TorrentState::Seeding && !moving {
                    e.idle_since.get_or_insert_with(std::time::Instant::now);
                } else {
                    e.idle_since = None;
                }
                let layout = &e.meta.info.layout;
                super::policy::PolicyView {
                    info_hash: e.meta.info_hash,
                    queue_position: e.queue_position,
                    user_paused: e.user_paused,
                    queued: e.queued,
                    state,
                    done: e.status.done.load(Relaxed),
                    category: e.category.clone(),
                    uploaded: e.uploaded_before + e.status.uploaded.load(Relaxed),
                    downloaded: e.downloaded_before + e.status.downloaded.load(Relaxed),
                    have_bytes: (e.status.have_pieces.load(Relaxed)
                        * u64::from(layout.piece_length()))
                    .min(layout.total_length()),
                    seeding_since: e.seeding_since,
                    idle_since: e.idle_since,
                    share: e.settings.share,
                }
            })
            .collect()
    }

    /// The queue stops a torrent until a slot frees (not recorded as a user's pause).
    pub fn queue_stop(&self, info_hash: InfoHash) {
        self.set_flags(&info_hash, |e| e.queued = true);
        if let Err(e) = self.op(info_hash, TorrentOp::Pause) {
            tracing::warn!(torrent = %info_hash, error = %e, "queue could not stop a torrent");
        }
    }

    /// A slot freed: the queue starts the torrent.
    pub fn queue_start(&self, info_hash: InfoHash) {
        self.set_flags(&info_hash, |e| e.queued = false);
        if let Err(e) = self.op(info_hash, TorrentOp::Resume) {
            tracing::warn!(torrent = %info_hash, error = %e, "queue could not start a torrent");
        }
    }

    pub fn pause(&self, info_hash: InfoHash) -> Result<(), DaemonError> {
        self.op(info_hash, TorrentOp::Pause)?;
        self.set_flags(&info_hash, |e| e.user_paused = true);
        self.record(Write::SetPaused {
            info_hash: info_hash.0,
            paused: true,
        })
    }

    pub fn resume(&self, info_hash: InfoHash) -> Result<(), DaemonError> {
        self.op(info_hash, TorrentOp::Resume)?;
        self.set_flags(&info_hash, |e| {
            e.user_paused = false;
            e.queued = false;
        });
        self.record(Write::SetError {
            info_hash: info_hash.0,
            error: None,
        })?;
        self.record(Write::SetPaused {
            info_hash: info_hash.0,
            paused: false,
        })
    }

    /// The torrent's own rate limits (0: none), kept in its record's settings.
    pub fn set_limits(
        &self,
        info_hash: InfoHash,
        upload_bytes_per_s: u64,
        download_bytes_per_s: u64,
    ) -> Result<(), DaemonError> {
        self.op(
            info_hash,
            TorrentOp::SetLimits {
                upload_bytes_per_s,
                download_bytes_per_s,
            },
        )?;
        self.update_settings(info_hash, |s| {
            s.upload_bytes_per_s = upload_bytes_per_s;
            s.download_bytes_per_s = download_bytes_per_s;
        })
    }

    /// The torrent's own share limits; the policy applies them from its next round.
    pub fn set_share(&self, info_hash: InfoHash, share: ShareOverride) -> Result<(), DaemonError> {
        self.update_settings(info_hash, |s| s.share = share)
    }

    /// File priorities, one per file in torrent order (`Skip`: not downloaded).
    pub fn set_priorities(
        &self,
        info_hash: InfoHash,
        priorities: Vec<Priority>,
    ) -> Result<(), DaemonError> {
        self.op(info_hash, TorrentOp::SetPriorities(priorities.clone()))?;
        self.update_settings(info_hash, |s| {
            s.priorities = priorities.iter().map(|&p| priority_code(p)).collect();
        })
    }

    /// Replaces the torrent's tracker tiers (checked and cleaned first); it announces to
    /// them at once. Kept in its settings: its `.torrent` stays as it was added.
    pub fn set_trackers(
        &self,
        info_hash: InfoHash,
        tiers: Vec<Vec<String>>,
    ) -> Result<(), DaemonError> {
        let tiers = super::trackers::clean(tiers)?;
        self.op(info_hash, TorrentOp::SetTrackers(tiers.clone()))?;
        if let Some(e) = self.registry().get_mut(&info_hash) {
            e.meta = Arc::new(super::trackers::with_tiers(&e.meta, &tiers));
        }
        tracing::info!(torrent = %info_hash, trackers = ?tiers, "trackers changed");
        self.update_settings(info_hash, |s| s.trackers = Some(tiers))
    }

    /// Renames the file or folder at `from` (a path as the torrent lists its files) to
    /// `to`, on disk and in every listing; kept across restarts. Refused while a magnet
    /// link's metadata is fetched (there are no files yet). Returns the torrent's name
    /// now (renaming its top entry renames it).
    pub fn rename_path(
        &self,
        info_hash: InfoHash,
        from: &str,
        to: &str,
        target: RenameTarget,
    ) -> Result<String, DaemonError> {
        let from = super::renames::parse_path(from)?;
        let to = super::renames::parse_path(to)?;
        let _one_at_a_time = self.renaming.lock().expect("rename lock");
        self.known(info_hash)?;
        if self.adopt(info_hash) {
            return Err(CommandError::FetchingMetadata(info_hash).into());
        }
        let meta = self
            .with_entry(&info_hash, |e| e.meta.clone())
            .ok_or(DaemonError::Unknown(info_hash))?;
        let renaming = meta.renamed(&from, &to, target)?;
        let name = renaming.metainfo.info.name.display();
        if renaming.moves.is_empty() && renaming.metainfo.info.name == meta.info.name {
            return Ok(name);
        }
        let renamed = Arc::new(renaming.metainfo.clone());
        let moves = renaming
            .moves
            .iter()
            .map(|(_, from, to)| (from.clone(), to.clone()))
            .collect();
        self.swarm
            .command(
                info_hash,
                TorrentOp::Rename {
                    metainfo: renamed.clone(),
                    moves,
                },
            )
            .wait()?;
        if let Some(e) = self.registry().get_mut(&info_hash) {
            e.meta = renamed;
        }
        tracing::info!(torrent = %info_hash, from = %from, to = %to, "renamed");
        self.update_settings(info_hash, |s| s.renames.record(&renaming))?;
        Ok(name)
    }

    pub fn set_sequential(&self, info_hash: InfoHash, on: bool) -> Result<(), DaemonError> {
        self.op(info_hash, TorrentOp::SetSequential(on))?;
        self.update_settings(info_hash, |s| s.sequential = on)
    }

    /// Its category (qBittorrent) and tags (Transmission's labels).
    pub fn set_labels(
        &self,
        info_hash: InfoHash,
        category: Option<String>,
        tags: Vec<String>,
    ) -> Result<(), DaemonError> {
        self.known(info_hash)?;
        self.set_flags(&info_hash, |e| {
            e.category = category.clone();
            e.tags = tags.clone();
        });
        self.record(Write::SetLabels {
            info_hash: info_hash.0,
            category,
            tags,
        })
    }

    /// Moves torrents in the queue: `order` lists every torrent to place, first to last;
    /// the queue positions are renumbered to follow it (the others keep their order after
    /// them). Used by Transmission's queue-move-* and qBittorrent's top/bottom priority.
    pub fn reorder_queue(&self, order: &[InfoHash]) -> Result<(), DaemonError> {
        let writes = {
            let mut registry = self.registry();
            let mut all: Vec<(u32, InfoHash)> = registry
                .values()
                .map(|e| (e.queue_position, e.meta.info_hash))
                .collect();
            all.sort();
            let placed: std::collections::HashSet<&InfoHash> = order.iter().collect();
            let sequence: Vec<InfoHash> = order
                .iter()
                .filter(|h| registry.contains_key(h))
                .copied()
                .chain(
                    all.into_iter()
                        .map(|(_, h)| h)
                        .filter(|h| !placed.contains(h)),
                )
                .collect();
            let mut writes = Vec::new();
            for (position, hash) in sequence.into_iter().enumerate() {
                let entry = registry.get_mut(&hash).expect("listed from the registry");
                if entry.queue_position != position as u32 {
                    entry.queue_position = position as u32;
                    entry.revision += 1;
                    writes.push(Write::SetQueuePosition {
                        info_hash: hash.0,
                        position: position as i64,
                    });
                }
            }
            self.next_position
                .store(registry.len() as u32, std::sync::atomic::Ordering::Relaxed);
            writes
        };
        for w in writes {
            self.record(w)?;
        }
        Ok(())
    }

    /// Which pieces the torrent has, asked of its shard (answered from memory).
    /// The torrent's connected peers, from its shard.
    pub fn peers(
        &self,
        info_hash: InfoHash,
    ) -> ccbt_shards::swarm::Pending<Vec<ccbt_shards::swarm::PeerInfo>> {
        self.swarm.peers(info_hash)
    }

    pub fn pieces(
        &self,
        info_hash: InfoHash,
    ) -> ccbt_shards::swarm::Pending<Option<ccbt_engine::Bitfield>> {
        self.swarm.pieces(info_hash)
    }

    /// The download completed (or a recheck found it no longer complete: `None`).
    pub fn set_completed(&self, info_hash: &InfoHash, at: Option<i64>) {
        self.set_flags(info_hash, |e| e.completed_at = at);
    }

    /// Runs `f` on the torrent's entry, if it is registered.
    pub fn with_entry<R>(&self, info_hash: &InfoHash, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.registry().get(info_hash).map(f)
    }

    /// Runs `f` on every entry, under the registry's lock (keep it short).
    pub fn for_each_entry(&self, mut f: impl FnMut(&Entry)) {
        for e in self.registry().values() {
            f(e);
        }
    }

    pub fn download_dir(&self) -> PathBuf {
        self.download_dir.lock().expect("download dir lock").clone()
    }

    pub fn shard_count(&self) -> usize {
        self.swarm.shard_count()
    }

    pub fn recheck(&self, info_hash: InfoHash) -> Result<(), DaemonError> {
        self.op(info_hash, TorrentOp::Recheck)
    }

    pub fn reannounce(&self, info_hash: InfoHash) -> Result<(), DaemonError> {
        self.op(info_hash, TorrentOp::Reannounce)
    }

    pub fn move_storage(&self, info_hash: InfoHash, to: PathBuf) -> Result<(), DaemonError> {
        self.op(info_hash, TorrentOp::MoveStorage(to.clone()))?;
        self.save_dir_is(info_hash, to)
    }

    /// The torrent's data is under `to` already: it is looked for and checked there
    /// (nothing is moved); the record follows.
    pub fn set_location(&self, info_hash: InfoHash, to: PathBuf) -> Result<(), DaemonError> {
        self.op(info_hash, TorrentOp::SetLocation(to.clone()))?;
        self.save_dir_is(info_hash, to)
    }

    /// The torrent's save directory is `to` now: the registry and the record follow.
    fn save_dir_is(&self, info_hash: InfoHash, to: PathBuf) -> Result<(), DaemonError> {
        let save_path = to.display().to_string();
        self.set_flags(&info_hash, |e| e.save_dir = to);
        self.record(Write::SetSavePath {
            info_hash: info_hash.0,
            save_path,
        })
    }

    /// Stops and forgets the torrent (its record too); deletes its data if asked.
    pub fn remove(&self, info_hash: InfoHash, delete_data: bool) -> Result<(), DaemonError> {
        self.op(info_hash, TorrentOp::Remove { delete_data })?;
        self.registry().remove(&info_hash);
        self.fetching().remove(&info_hash);
        tracing::info!(torrent = %info_hash, delete_data, "removed");
        self.event(EventKind::Removed, &info_hash, None);
        self.record(Write::Remove(info_hash.0))?;
        self.state.flush().map_err(DaemonError::Flush)
    }

    /// Torrents per state (as listings name them), and `torrents` in all.
    pub fn summary(&self) -> std::collections::BTreeMap<String, u64> {
        let mut counts = std::collections::BTreeMap::new();
        let registry = self.registry();
        for e in registry.values() {
            let name = match e.status.state() {
                TorrentState::Paused if e.queued => "queued",
                other => other.name(),
            };
            *counts.entry(name.to_string()).or_insert(0) += 1;
        }
        counts.insert("torrents".into(), registry.len() as u64);
        counts
    }

    pub fn list(&self) -> Vec<TorrentView> {
        let registry = self.registry();
        let mut views: Vec<TorrentView> = registry.values().map(view).collect();
        views.sort_by(|a, b| a.name.cmp(&b.name).then(a.hash.cmp(&b.hash)));
        views
    }

    /// This run's counters added to the totals of earlier runs.
    pub fn totals(&self, info_hash: &InfoHash, uploaded: u64, downloaded: u64) -> (u64, u64) {
        match self.registry().get(info_hash) {
            Some(e) => (
                e.uploaded_before + uploaded,
                e.downloaded_before + downloaded,
            ),
            None => (uploaded, downloaded),
        }
    }

    pub fn state(&self) -> &StateWriter {
        &self.state
    }

    /// Stops every torrent (each announces `stopped`, syncs, and reports what is durable)
    /// and the shards' server loops.
    pub fn stop(&self) {
        self.swarm.stop();
    }

    /// Each shard's counters (payload, peers, disk and announce latency, cache, refusals,
    /// inbox depth), read from atomics the shards keep: never waits on a shard, so an
    /// async task may call it.
    pub fn shard_stats(&self) -> Vec<ccbt_shards::swarm::ShardStatsSnapshot> {
        self.swarm.shard_stats()
    }

    /// Forgets categories, first taking every torrent out of them (qBittorrent's
    /// removeCategories).
    pub fn remove_categories(&self, names: &[String]) -> Result<(), DaemonError> {
        let names: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        let members: Vec<(InfoHash, Vec<String>)> = {
            let registry = self.registry();
            registry
                .values()
                .filter(|e| e.category.as_deref().is_some_and(|c| names.contains(c)))
                .map(|e| (e.meta.info_hash, e.tags.clone()))
                .collect()
        };
        for (hash, tags) in members {
            self.set_labels(hash, None, tags)?;
        }
        for name in names {
            self.labels.remove_category(name)?;
        }
        Ok(())
    }

    /// Deletes tags, first taking them off every torrent that has them.
    pub fn delete_tags(&self, names: &[String]) -> Result<(), DaemonError> {
        let carriers: Vec<(InfoHash, Option<String>, Vec<String>)> = {
            let registry = self.registry();
            registry
                .values()
                .filter(|e| e.tags.iter().any(|t| names.contains(t)))
                .map(|e| {
                    let kept = e.tags.iter().filter(|t| !names.contains(t)).cloned();
                    (e.meta.info_hash, e.category.clone(), kept.collect())
                })
                .collect()
        };
        for (hash, category, tags) in carriers {
            self.set_labels(hash, category, tags)?;
        }
        self.labels.delete_tags(names)?;
        Ok(())
    }
}

fn view(e: &Entry) -> TorrentView {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &e.status;
    let fault = s.fault();
    TorrentView {
        hash: e.meta.info_hash.to_hex(),
        name: e.meta.info.name.display(),
        state: match s.state() {
            TorrentState::Paused if e.queued => "queued",
            other => other.name(),
        },
        save_dir: e.save_dir.clone(),
        size: e.meta.info.layout.total_length(),
        pieces: e.meta.info.layout.piece_count(),
        have_pieces: s.have_pieces.load(Relaxed),
        checked_pieces: s.checked_pieces.load(Relaxed),
        peers: s.peers.load(Relaxed),
        downloaded: e.downloaded_before + s.downloaded.load(Relaxed),
        uploaded: e.uploaded_before + s.uploaded.load(Relaxed),
        download_rate: s.download_rate.load(Relaxed),
        upload_rate: s.upload_rate.load(Relaxed),
        error_kind: fault.as_ref().map(fault_kind),
        error: fault.map(|f| f.to_string()),
        added_at: e.added_at,
        queue_position: e.queue_position,
        upload_limit: e.settings.upload_bytes_per_s,
        download_limit: e.settings.download_bytes_per_s,
        category: e.category.clone(),
        tags: e.tags.clone(),
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
