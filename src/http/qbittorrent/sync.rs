//! `sync/maindata?rid=N`: the listing as increments, built on the catalog's change log.
//!
//! Each answer names a sync point (`rid`): the catalog's sequence number plus the category
//! and tag lists as they were. A client that sends back a point we still hold gets only
//! what changed since: the torrents the catalog logged as changed (whole objects, which
//! clients merge), `torrents_removed`, and the categories and tags added or removed. A
//! client with `rid=0`, or one we no longer hold, gets a full update. So an increment
//! costs what changed, not how many torrents there are; `server_state` (totals over
//! every torrent) is computed once per catalog snapshot and shared by every client.
//!
//! Bounds: the last [`SYNC_POINTS`] points are kept; an older `rid` gets a full update,
//! which is always correct. Clients polling an unchanged daemon share one point.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

use super::labels::categories_json;
use super::params::Params;
use super::serialize::{self, Context, TorrentInfo};
use super::{Qbt, Reply};
use crate::daemon::catalog::Snapshot;
use crate::daemon::labels::Categories;

pub const SYNC_POINTS: usize = 256;

struct Point {
    rid: u64,
    seq: u64,
    categories: Arc<Categories>,
    tags: Arc<Vec<String>>,
}

#[derive(Default)]
pub struct SyncPoints {
    points: Mutex<VecDeque<Point>>,
    next_rid: Mutex<u64>,
    /// `server_state` of the snapshot with this sequence number.
    server_state: Mutex<Option<(u64, Value)>>,
}

/// The point the client has seen, if still held, and the point for now.
struct Found {
    base: Option<(u64, Arc<Categories>, Arc<Vec<String>>)>,
    now_rid: u64,
}

impl SyncPoints {
    fn locate(&self, rid: u64, seq: u64, categories: Categories, tags: Vec<String>) -> Found {
        let mut points = self.points.lock().expect("sync points lock");
        let base = points
            .iter()
            .find(|p| p.rid == rid && rid != 0)
            .map(|p| (p.seq, p.categories.clone(), p.tags.clone()));
        let same_as_latest = points
            .back()
            .is_some_and(|p| p.seq == seq && *p.categories == categories && *p.tags == tags);
        let now_rid = if same_as_latest {
            points.back().expect("checked").rid
        } else {
            let mut next = self.next_rid.lock().expect("rid lock");
            *next += 1;
            points.push_back(Point {
                rid: *next,
                seq,
                categories: Arc::new(categories),
                tags: Arc::new(tags),
            });
            while points.len() > SYNC_POINTS {
                points.pop_front();
            }
            *next
        };
        Found { base, now_rid }
    }

    /// Totals over every torrent of `snapshot`, computed once per snapshot.
    pub fn server_state(&self, q: &Qbt, snapshot: &Snapshot) -> Value {
        let mut cached = self.server_state.lock().expect("server state lock");
        if let Some((seq, value)) = &*cached {
            if *seq == snapshot.seq {
                return value.clone();
            }
        }
        let value = compute_server_state(q, snapshot);
        *cached = Some((snapshot.seq, value.clone()));
        value
    }
}

fn compute_server_state(q: &Qbt, snapshot: &Snapshot) -> Value {
    let (mut dl_speed, mut up_speed, mut dl_data, mut up_data, mut peers) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    for r in &snapshot.rows {
        dl_speed += r.live.download_rate;
        up_speed += r.live.upload_rate;
        dl_data += r.live.downloaded;
        up_data += r.live.uploaded;
        peers += r.live.peers;
    }
    let c = q.api.config();
    let download_dir = q.api.daemon.download_dir();
    let free = nix::sys::statvfs::statvfs(&download_dir)
        .map(|s| s.blocks_available() * s.fragment_size())
        .unwrap_or(0);
    json!({
        "dl_info_speed": dl_speed,
        "dl_info_data": dl_data,
        "up_info_speed": up_speed,
        "up_info_data": up_data,
        "alltime_dl": dl_data,
        "alltime_ul": up_data,
        "dl_rate_limit": c.limits.download_bytes_per_s.0,
        "up_rate_limit": c.limits.upload_bytes_per_s.0,
        "dht_nodes": 0,
        "connection_status": "connected",
        "queueing": c.queue.max_active_downloads > 0 || c.queue.max_active_seeds > 0,
        "use_alt_speed_limits": false,
        "refresh_interval": 1500,
        "free_space_on_disk": free,
        "total_peer_connections": peers,
        "global_ratio": if dl_data > 0 { format!("{:.2}", up_data as f64 / dl_data as f64) } else { "0.00".into() },
        "queued_io_jobs": 0,
        "read_cache_hits": "0",
        "read_cache_overload": "0",
        "write_cache_overload": "0",
        "average_time_queue": 0,
        "total_buffers_size": 0,
        "total_queued_size": 0,
        "total_wasted_session": 0,
    })
}

/// One `sync/maindata` answer; absent parts are left out, as qBittorrent leaves them.
#[derive(Serialize, Default)]
struct MainData {
    rid: u64,
    full_update: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    torrents: Option<BTreeMap<String, TorrentInfo>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    torrents_removed: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    categories: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    categories_removed: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tags_removed: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trackers: Option<Map<String, Value>>,
    server_state: Value,
}

/// `Some` unless empty.
fn some<T>(items: Vec<T>) -> Option<Vec<T>> {
    (!items.is_empty()).then_some(items)
}

pub async fn maindata(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let rid: u64 = p.number::<i64>("rid")?.unwrap_or(0).max(0) as u64;
    let snapshot = q.api.catalog.current();
    let labels = &q.api.daemon.labels;
    let (categories, tags) = (labels.categories(), labels.tags());
    let found = q
        .sync
        .locate(rid, snapshot.seq, categories.clone(), tags.clone());
    let config = q.api.config();
    let cx = Context {
        now: std::time::Instant::now(),
        config: &config,
    };
    let serialized = |rows: &[Arc<crate::daemon::catalog::Row>]| -> BTreeMap<String, TorrentInfo> {
        rows.iter()
            .map(|r| (r.info_hash.to_hex(), serialize::torrent(r, &cx)))
            .collect()
    };
    let changes = found
        .base
        .as_ref()
        .and_then(|(seq, ..)| q.api.catalog.changes_since(*seq));
    let mut out = MainData {
        rid: found.now_rid,
        server_state: q.sync.server_state(&q, &snapshot),
        ..MainData::default()
    };
    match (changes, found.base) {
        (Some(changes), Some((_, old_categories, old_tags))) => {
            let changed: Categories = categories
                .iter()
                .filter(|(k, v)| old_categories.get(*k) != Some(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            out.torrents = Some(serialized(&changes.changed)).filter(|t| !t.is_empty());
            out.torrents_removed = some(
                changes
                    .removed
                    .iter()
                    .map(|(h, _)| h.to_hex())
                    .collect::<Vec<_>>(),
            );
            out.categories = Some(categories_json(&changed)).filter(|c| !c.is_empty());
            out.categories_removed = some(
                old_categories
                    .keys()
                    .filter(|k| !categories.contains_key(*k))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            out.tags = some(
                tags.iter()
                    .filter(|t| !old_tags.contains(t))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
            out.tags_removed = some(
                old_tags
                    .iter()
                    .filter(|t| !tags.contains(t))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        _ => {
            out.full_update = true;
            out.torrents = Some(serialized(&snapshot.rows));
            out.categories = Some(categories_json(&categories));
            out.tags = Some(tags);
            out.trackers = Some(Map::new());
        }
    }
    Ok(axum::Json(out).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unchanged_daemon_keeps_one_point_and_old_points_are_forgotten() {
        let points = SyncPoints::default();
        let a = points.locate(0, 5, Categories::new(), vec![]);
        assert!(a.base.is_none());
        let b = points.locate(a.now_rid, 5, Categories::new(), vec![]);
        assert_eq!(b.now_rid, a.now_rid, "nothing changed: same point");
        assert_eq!(b.base.as_ref().map(|b| b.0), Some(5));
        let mut cats = Categories::new();
        cats.insert("tv".into(), String::new());
        let c = points.locate(b.now_rid, 5, cats.clone(), vec![]);
        assert_ne!(c.now_rid, b.now_rid, "a new category is a new point");
        for seq in 6..(6 + SYNC_POINTS as u64) {
            points.locate(0, seq, cats.clone(), vec![]);
        }
        let late = points.locate(a.now_rid, 10_000, cats, vec![]);
        assert!(late.base.is_none(), "too old: a full update");
    }
}
