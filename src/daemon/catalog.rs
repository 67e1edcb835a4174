//! The control plane's published view of every torrent: one row per torrent, rebuilt from
//! the registry and the shards' status counters at most once a refresh, plus a change log,
//! so a client that has seen sequence N is sent only what changed since (qBittorrent's
//! `sync/maindata` `rid`, Transmission's `recently-active`).
//!
//! API requests read the current [`Snapshot`] and never touch a shard or the disk. A
//! refresh (once a second, and right after a command changed something) scans the registry
//! under its lock; a torrent whose figures and settings did not change keeps its row (the
//! same `Arc`), so an unchanged torrent costs no allocation and never shows up in an
//! increment. Times that grow by themselves (seconds seeding) are kept as "since when", so
//! they do not count as changes.
//!
//! Bounds: the log keeps the change sets of the last [`LOG_SETS`] refreshes that changed
//! something, and at most [`LOG_ROWS`] row mentions in all; removals likewise up to
//! [`LOG_REMOVED`]. A client further behind gets a full listing instead of an increment,
//! which is always correct.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ccbt_engine::metainfo::Metainfo;
use ccbt_engine::InfoHash;
use ccbt_shards::swarm::{SwarmCounts, TorrentFault, TorrentState};

use super::core::{unix_now, Daemon, Entry, TorrentSettings};

/// Refreshes that changed something, kept for increments.
pub const LOG_SETS: usize = 600;
/// Row mentions kept across those sets at most.
pub const LOG_ROWS: usize = 1_000_000;
/// Removed torrents remembered for increments.
pub const LOG_REMOVED: usize = 100_000;
/// How often the background refresh runs.
pub const EVERY: Duration = Duration::from_secs(1);

/// Time spent in one state, without counting as a change while it grows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timer {
    /// Seconds of earlier spans.
    pub before_s: u64,
    /// Since when the current span runs, if one does.
    pub since: Option<Instant>,
}

impl Timer {
    pub fn seconds(&self, now: Instant) -> u64 {
        self.before_s
            + self
                .since
                .map_or(0, |t| now.saturating_duration_since(t).as_secs())
    }

    fn run(mut self, on: bool, now: Instant) -> Timer {
        match (on, self.since) {
            (true, None) => self.since = Some(now),
            (false, Some(t)) => {
                self.before_s += now.saturating_duration_since(t).as_secs();
                self.since = None;
            }
            _ => {}
        }
        self
    }
}

/// What changes only when a command changes it (the entry's revision says when).
#[derive(Debug)]
pub struct Fixed {
    pub revision: u64,
    pub meta: Arc<Metainfo>,
    pub save_dir: PathBuf,
    pub added_at: i64,
    pub completed_at: Option<i64>,
    pub category: Option<String>,
    pub tags: Vec<String>,
    pub queue_position: u32,
    /// Paused by a user or a share limit.
    pub user_paused: bool,
    /// Waiting for a queue slot.
    pub queued: bool,
    pub settings: TorrentSettings,
}

/// The figures a shard publishes, as of the refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub state: TorrentState,
    pub peers: u64,
    /// Connected peers by `PeerOrigin` index.
    pub peers_from: [u32; ccbt_shards::swarm::PeerOrigin::ALL.len()],
    pub have_pieces: u64,
    pub checked_pieces: u64,
    /// Wanted pieces still missing: a count of pieces, not bytes (as the shard publishes it).
    pub wanted_left: u64,
    pub done: bool,
    /// Totals over every run.
    pub uploaded: u64,
    pub downloaded: u64,
    pub upload_rate: u64,
    pub download_rate: u64,
    pub swarm: Option<SwarmCounts>,
    pub error: Option<TorrentFault>,
    pub seeding: Timer,
    pub downloading: Timer,
    /// Unix seconds data last moved either way (0: not in this run).
    pub last_activity: i64,
    /// How much of a magnet link's metadata is fetched, 0.0 to 1.0 (1.0 once known).
    pub metadata_fraction: f64,
}

/// One torrent in a snapshot.
#[derive(Debug)]
pub struct Row {
    pub id: u32,
    pub info_hash: InfoHash,
    pub fixed: Arc<Fixed>,
    pub live: Live,
}

impl Row {
    /// Bytes of the torrent's pieces that are verified (the last piece may be short).
    pub fn have_bytes(&self) -> u64 {
        let layout = &self.fixed.meta.info.layout;
        (self.live.have_pieces * u64::from(layout.piece_length())).min(layout.total_length())
    }

    /// Whether the torrent's info dict is known (a magnet link's is not until fetched;
    /// every real torrent has at least one piece).
    pub fn has_metadata(&self) -> bool {
        self.fixed.meta.info.layout.piece_count() > 0
    }

    pub fn total_size(&self) -> u64 {
        self.fixed.meta.info.layout.total_length()
    }

    /// Bytes of the files not skipped.
    pub fn wanted_size(&self) -> u64 {
        let settings = &self.fixed.settings;
        if settings.priorities.is_empty() {
            return self.total_size();
        }
        self.fixed
            .meta
            .info
            .layout
            .files()
            .iter()
            .enumerate()
            .filter(|(i, _)| settings.priorities.get(*i).is_none_or(|&p| p >= 0))
            .map(|(_, f)| f.length)
            .sum()
    }

    /// Uploaded over downloaded (over the size when nothing was downloaded, as
    /// qBittorrent does for a torrent added complete); 0 when neither is known.
    pub fn ratio(&self) -> f64 {
        let base = if self.live.downloaded > 0 {
            self.live.downloaded
        } else {
            self.have_bytes()
        };
        if base == 0 {
            0.0
        } else {
            self.live.uploaded as f64 / base as f64
        }
    }
}

/// Every torrent as of one refresh, in id order.
#[derive(Debug)]
pub struct Snapshot {
    /// Grows by one at each refresh that changed something.
    pub seq: u64,
    pub rows: Vec<Arc<Row>>,
    index: Arc<HashMap<InfoHash, usize>>,
}

impl Snapshot {
    pub fn get(&self, info_hash: &InfoHash) -> Option<&Arc<Row>> {
        self.index.get(info_hash).map(|&i| &self.rows[i])
    }

    pub fn by_id(&self, id: u32) -> Option<&Arc<Row>> {
        self.rows
            .binary_search_by_key(&id, |r| r.id)
            .ok()
            .map(|i| &self.rows[i])
    }
}

/// What changed after a given sequence number.
#[derive(Debug)]
pub struct Changes {
    /// The current sequence number: the client's next "since".
    pub seq: u64,
    /// Rows changed or added since, as they are now.
    pub changed: Vec<Arc<Row>>,
    /// Torrents removed since: hash and id.
    pub removed: Vec<(InfoHash, u32)>,
}

struct ChangeSet {
    seq: u64,
    at: Instant,
    changed: Vec<InfoHash>,
}

struct Removal {
    seq: u64,
    at: Instant,
    info_hash: InfoHash,
    id: u32,
}

#[derive(Default)]
struct Log {
    sets: VecDeque<ChangeSet>,
    rows: usize,
    removed: VecDeque<Removal>,
    /// The oldest sequence an increment can start from (older: a full listing).
    horizon: u64,
}

pub struct Catalog {
    daemon: Arc<Daemon>,
    current: Mutex<Arc<Snapshot>>,
    /// Held only to read or extend the log (and publish the snapshot with it), so a
    /// reader never waits for a whole rebuild.
    log: Mutex<Log>,
    /// Held through a refresh, so refreshes do not interleave.
    refreshing: Mutex<()>,
}

impl Catalog {
    pub fn new(daemon: Arc<Daemon>) -> Arc<Catalog> {
        let empty = Snapshot {
            seq: 1,
            rows: Vec::new(),
            index: Arc::default(),
        };
        let catalog = Arc::new(Catalog {
            daemon,
            current: Mutex::new(Arc::new(empty)),
            log: Mutex::new(Log {
                horizon: 1,
                ..Log::default()
            }),
            refreshing: Mutex::new(()),
        });
        catalog.refresh();
        catalog
    }

    /// The latest snapshot (cheap: an `Arc`).
    pub fn current(&self) -> Arc<Snapshot> {
        self.current.lock().expect("catalog lock").clone()
    }

    /// Rebuilds the snapshot from the registry now and logs what changed.
    pub fn refresh(&self) -> Arc<Snapshot> {
        let _one_at_a_time = self.refreshing.lock().expect("catalog refresh lock");
        let prev = self.current();
        let now = Instant::now();
        let now_unix = unix_now();
        let mut rows: Vec<Arc<Row>> = Vec::with_capacity(prev.rows.len() + 16);
        let mut changed = Vec::new();
        self.daemon.for_each_entry(|e| {
            let old = prev.get(&e.meta.info_hash);
            let row = build(e, old, now, now_unix);
            let row = match (old, row) {
                (Some(old), None) => old.clone(),
                (_, Some(new)) => {
                    changed.push(new.info_hash);
                    Arc::new(new)
                }
                (None, None) => unreachable!("a new torrent always builds a row"),
            };
            rows.push(row);
        });
        rows.sort_unstable_by_key(|r| r.id);
        let same_set =
            rows.len() == prev.rows.len() && rows.iter().zip(&prev.rows).all(|(a, b)| a.id == b.id);
        let index = if same_set {
            prev.index.clone()
        } else {
            Arc::new(
                rows.iter()
                    .enumerate()
                    .map(|(i, r)| (r.info_hash, i))
                    .collect(),
            )
        };
        let removed: Vec<&Arc<Row>> = if same_set {
            Vec::new()
        } else {
            prev.rows
                .iter()
                .filter(|r| !index.contains_key(&r.info_hash))
                .collect()
        };
        // The log is extended before the snapshot is published, under one lock: a reader
        // then never sees a sequence number whose changes are not logged yet.
        let mut log = self.log.lock().expect("catalog log lock");
        let seq = if changed.is_empty() && removed.is_empty() {
            prev.seq
        } else {
            prev.seq + 1
        };
        for r in removed {
            log.removed.push_back(Removal {
                seq,
                at: now,
                info_hash: r.info_hash,
                id: r.id,
            });
        }
        if !changed.is_empty() {
            log.rows += changed.len();
            log.sets.push_back(ChangeSet {
                seq,
                at: now,
                changed,
            });
        }
        log.trim();
        let snapshot = Arc::new(Snapshot { seq, rows, index });
        *self.current.lock().expect("catalog lock") = snapshot.clone();
        snapshot
    }

    /// What changed after `since`, against the current snapshot; `None` when `since` is
    /// too old (or not one this daemon gave): send everything.
    pub fn changes_since(&self, since: u64) -> Option<Changes> {
        let snapshot = self.current();
        let log = self.log.lock().expect("catalog log lock");
        if since == 0 || since < log.horizon || since > snapshot.seq {
            return None;
        }
        let mut seen = std::collections::HashSet::new();
        let mut changed = Vec::new();
        for set in log.sets.iter().rev().take_while(|s| s.seq > since) {
            for hash in &set.changed {
                if seen.insert(*hash) {
                    if let Some(row) = snapshot.get(hash) {
                        changed.push(row.clone());
                    }
                }
            }
        }
        let removed = log
            .removed
            .iter()
            .rev()
            .take_while(|r| r.seq > since)
            .filter(|r| snapshot.get(&r.info_hash).is_none())
            .map(|r| (r.info_hash, r.id))
            .collect();
        Some(Changes {
            seq: snapshot.seq,
            changed,
            removed,
        })
    }

    /// Rows changed and ids removed within the last `within` (Transmission's
    /// `recently-active`, which its web UI polls with).
    pub fn recently_active(&self, within: Duration) -> (Vec<Arc<Row>>, Vec<u32>) {
        let snapshot = self.current();
        let log = self.log.lock().expect("catalog log lock");
        let cutoff = Instant::now().checked_sub(within);
        let recent = |at: Instant| cutoff.is_none_or(|c| at >= c);
        let mut seen = std::collections::HashSet::new();
        let mut rows = Vec::new();
        for set in log.sets.iter().rev().take_while(|s| recent(s.at)) {
            for hash in &set.changed {
                if seen.insert(*hash) {
                    if let Some(row) = snapshot.get(hash) {
                        rows.push(row.clone());
                    }
                }
            }
        }
        // Torrents still moving data count as active even when their figures settled.
        for row in &snapshot.rows {
            if row.live.upload_rate + row.live.download_rate > 0 && seen.insert(row.info_hash) {
                rows.push(row.clone());
            }
        }
        let removed = log
            .removed
            .iter()
            .rev()
            .take_while(|r| recent(r.at))
            .map(|r| r.id)
            .collect();
        (rows, removed)
    }

    /// Refreshes once a second until `stop`.
    pub fn spawn_refresher(
        self: &Arc<Self>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<std::thread::JoinHandle<()>> {
        let catalog = self.clone();
        std::thread::Builder::new()
            .name("catalog".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EVERY);
                    catalog.refresh();
                }
            })
    }
}

impl Log {
    fn trim(&mut self) {
        while self.sets.len() > LOG_SETS || self.rows > LOG_ROWS {
            let Some(oldest) = self.sets.pop_front() else {
                break;
            };
            self.rows -= oldest.changed.len();
            self.horizon = self.horizon.max(oldest.seq);
        }
        while self.removed.len() > LOG_REMOVED {
            if let Some(oldest) = self.removed.pop_front() {
                self.horizon = self.horizon.max(oldest.seq);
            }
        }
    }
}

/// The torrent's row now, or `None` when it equals `old`.
fn build(e: &Entry, old: Option<&Arc<Row>>, now: Instant, now_unix: i64) -> Option<Row> {
    use std::sync::atomic::Ordering::Relaxed;
    let s = &e.status;
    let state = s.state();
    let upload_rate = s.upload_rate.load(Relaxed);
    let download_rate = s.download_rate.load(Relaxed);
    let (seeding, downloading, last_activity) = old
        .map_or((Timer::default(), Timer::default(), 0), |o| {
            (o.live.seeding, o.live.downloading, o.live.last_activity)
        });
    let live = Live {
        state,
        peers: s.peers.load(Relaxed),
        peers_from: std::array::from_fn(|i| s.peers_from[i].load(Relaxed)),
        have_pieces: s.have_pieces.load(Relaxed),
        checked_pieces: s.checked_pieces.load(Relaxed),
        wanted_left: s.wanted_left.load(Relaxed),
        done: s.done.load(Relaxed),
        uploaded: e.uploaded_before + s.uploaded.load(Relaxed),
        downloaded: e.downloaded_before + s.downloaded.load(Relaxed),
        upload_rate,
        download_rate,
        swarm: s.swarm(),
        error: s.fault(),
        seeding: seeding.run(state == TorrentState::Seeding, now),
        downloading: downloading.run(state == TorrentState::Downloading, now),
        last_activity: if upload_rate + download_rate > 0 {
            now_unix
        } else {
            last_activity
        },
        // Only a magnet link's is worth the status lock it takes.
        metadata_fraction: if e.magnet.is_some() {
            s.metadata_fraction()
        } else {
            1.0
        },
    };
    let fixed = match old {
        Some(o) if o.fixed.revision == e.revision && o.id == e.id => {
            if o.live == live {
                return None;
            }
            o.fixed.clone()
        }
        _ => Arc::new(Fixed {
            revision: e.revision,
            meta: e.meta.clone(),
            save_dir: e.save_dir.clone(),
            added_at: e.added_at,
            completed_at: e.completed_at,
            category: e.category.clone(),
            tags: e.tags.clone(),
            queue_position: e.queue_position,
            user_paused: e.user_paused,
            queued: e.queued,
            settings: e.settings.clone(),
        }),
    };
    Some(Row {
        id: e.id,
        info_hash: e.meta.info_hash,
        fixed,
        live,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timer_grows_without_changing() {
        let t0 = Instant::now();
        let on = Timer::default().run(true, t0);
        assert_eq!(on.run(true, t0 + Duration::from_secs(5)), on);
        assert_eq!(on.seconds(t0 + Duration::from_secs(5)), 5);
        let off = on.run(false, t0 + Duration::from_secs(7));
        assert_eq!(off.before_s, 7);
        assert_eq!(off.since, None);
        assert_eq!(off.seconds(t0 + Duration::from_secs(100)), 7);
    }

    #[test]
    fn the_log_forgets_oldest_sets_and_moves_its_horizon() {
        let mut log = Log {
            horizon: 1,
            ..Log::default()
        };
        let now = Instant::now();
        for seq in 2..(LOG_SETS as u64 + 12) {
            log.rows += 1;
            log.sets.push_back(ChangeSet {
                seq,
                at: now,
                changed: vec![InfoHash::default()],
            });
            log.trim();
        }
        assert_eq!(log.sets.len(), LOG_SETS);
        assert_eq!(log.rows, LOG_SETS);
        assert_eq!(log.horizon, 11);
    }
}
