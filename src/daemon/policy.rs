//! Seedbox policy, once a second: the queue (at most so many torrents downloading and
//! seeding at once, by queue position) and share limits (ratio and seeding time, per
//! category or global; on reaching one, pause or remove as configured). The decisions are
//! the engine's (`ccbt_engine::queue`, `ccbt_engine::share_limits`); this applies them
//! through the same commands as any API.
//!
//! Checks are not queued here: each shard already runs one check at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccbt_config::Config;
use ccbt_engine::queue::{self, QueueEntry, QueueLimits};
use ccbt_engine::share_limits::{ShareAction, ShareLimits, ShareStats};
use ccbt_shards::swarm::TorrentState;

use super::core::Daemon;

pub const EVERY: Duration = Duration::from_secs(1);

/// One torrent as the policy sees it.
#[derive(Debug, Clone)]
pub struct PolicyView {
    pub info_hash: ccbt_engine::InfoHash,
    pub queue_position: u32,
    pub user_paused: bool,
    /// Stopped by the queue, to be started when a slot frees.
    pub queued: bool,
    pub state: TorrentState,
    pub done: bool,
    pub category: Option<String>,
    pub uploaded: u64,
    pub downloaded: u64,
    pub have_bytes: u64,
    pub seeding_since: Option<Instant>,
    /// Since when nothing moved either way (for idle limits); `None` while something does.
    pub idle_since: Option<Instant>,
    /// The torrent's own share limits.
    pub share: super::core::ShareOverride,
}

pub fn spawn(
    daemon: Arc<Daemon>,
    config: Arc<Mutex<Config>>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("policy".into())
        .spawn(move || {
            let mut blocklist = BlocklistFile::default();
            while !stop.load(Ordering::Relaxed) {
                let config = config.lock().expect("config lock").clone();
                daemon.set_max_active_downloads(config.queue.max_active_downloads);
                daemon.adopt_fetched();
                round(&daemon, &config);
                blocklist.reload_if_changed(&daemon, &config);
                std::thread::sleep(EVERY);
            }
        })
}

fn limit(n: u32) -> Option<u32> {
    (n != 0).then_some(n)
}

fn round(daemon: &Daemon, config: &Config) {
    let views = daemon.policy_views();
    let entries: Vec<QueueEntry<[u8; 20]>> = views
        .iter()
        .map(|v| QueueEntry {
            id: v.info_hash.0,
            queue_position: v.queue_position,
            state: if v.user_paused {
                queue::TorrentState::Paused
            } else {
                match v.state {
                    TorrentState::Failed => queue::TorrentState::Errored,
                    TorrentState::Checking => queue::TorrentState::Checking,
                    _ if v.done => queue::TorrentState::Seeding,
                    _ => queue::TorrentState::Downloading,
                }
            },
            active: !v.queued && !v.user_paused,
            // A check runs to its end: pausing it would throw its work away.
            forced: v.state == TorrentState::Checking,
            stalled: false,
        })
        .collect();
    let limits = QueueLimits {
        max_active_downloads: limit(config.queue.max_active_downloads),
        max_active_seeds: limit(config.queue.max_active_seeds),
        max_active_checks: None,
    };
    let plan = queue::plan(&entries, &limits);
    // Downloads running once the plan is carried out, for adds before the next round.
    let stopping: std::collections::HashSet<_> = plan.stop.iter().collect();
    let starting: std::collections::HashSet<_> = plan.start.iter().collect();
    let running_downloads = entries
        .iter()
        .filter(|e| e.state == queue::TorrentState::Downloading)
        .filter(|e| (e.active && !stopping.contains(&e.id)) || starting.contains(&e.id))
        .count();
    daemon.set_active_downloads(running_downloads);
    for id in plan.stop {
        daemon.queue_stop(ccbt_engine::Sha1Digest(id));
    }
    for id in plan.start {
        daemon.queue_start(ccbt_engine::Sha1Digest(id));
    }
    for v in views
        .iter()
        .filter(|v| v.state == TorrentState::Seeding && !v.user_paused)
    {
        let c = config.share.for_category(v.category.as_deref());
        let limits = ShareLimits {
            ratio: v.share.ratio.resolve(c.ratio_limit),
            seeding_time: v
                .share
                .seeding_minutes
                .resolve(c.seeding_time_limit.map(|d| d.as_secs() / 60))
                .map(|m| Duration::from_secs(m.saturating_mul(60))),
            action: match c.action {
                ccbt_config::ShareAction::Pause => ShareAction::Pause,
                ccbt_config::ShareAction::Remove => ShareAction::Remove,
            },
        };
        let stats = ShareStats {
            uploaded_bytes: v.uploaded,
            downloaded_bytes: v.downloaded,
            have_bytes: v.have_bytes,
            seeding_time: v.seeding_since.map_or(Duration::ZERO, |t| t.elapsed()),
        };
        let idle_limit = v
            .share
            .idle_minutes
            .resolve(None)
            .map(|m| Duration::from_secs(m.saturating_mul(60)));
        let idle_for = v.idle_since.map_or(Duration::ZERO, |t| t.elapsed());
        let reason = match limits.reached(&stats) {
            Some(reason) => format!("{reason:?}"),
            None if idle_limit.is_some_and(|limit| idle_for >= limit) => "idle".to_string(),
            None => continue,
        };
        tracing::info!(torrent = %v.info_hash, %reason, action = ?limits.action, "share limit reached");
        let done = match limits.action {
            ShareAction::Pause => daemon.pause(v.info_hash),
            ShareAction::Remove => daemon.remove(v.info_hash, false),
        };
        if let Err(e) = done {
            tracing::warn!(torrent = %v.info_hash, error = %e, "share limit action failed");
        }
    }
}

/// The blocklist file as last loaded: a new list dropped over it (a cron job's update) is
/// loaded within a second, without a reload of the config.
#[derive(Default)]
struct BlocklistFile {
    seen: Option<(std::path::PathBuf, u64, std::time::SystemTime)>,
}

impl BlocklistFile {
    fn reload_if_changed(&mut self, daemon: &Daemon, config: &Config) {
        let Some(path) = &config.blocklist.path else {
            self.seen = None;
            return;
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        let stamp = (
            path.clone(),
            meta.len(),
            meta.modified().unwrap_or(std::time::UNIX_EPOCH),
        );
        match &self.seen {
            // The first look only notes it: the daemon loaded it at start.
            None => self.seen = Some(stamp),
            Some(seen) if *seen == stamp => {}
            Some(_) => {
                self.seen = Some(stamp);
                if let Some(list) = super::load_blocklist(config) {
                    daemon.set_blocklist(list);
                }
            }
        }
    }
}
