//! A torrent as qBittorrent's `torrents/info` (and `sync/maindata`) shows it: the full key
//! set of qBittorrent's `serialize_torrent`, from one catalog row, with the 5.x `state`
//! names Sonarr and Radarr map.
//!
//! Figures we do not track are reported as qBittorrent reports "unknown" (-1) or as
//! what is true for us (no force start, no super seeding, no first/last piece priority,
//! no automatic torrent management).

use std::time::Instant;

use ccbt_config::Config;
use ccbt_shards::swarm::{FaultKind, TorrentState};
use serde_json::{json, Map, Value};

use crate::daemon::catalog::Row;
use crate::daemon::core::Override;

/// qBittorrent's "infinite" ETA (100 days).
pub const MAX_ETA: u64 = 8_640_000;

/// What every row's serialization needs besides the row.
pub struct Context<'a> {
    pub now: Instant,
    pub config: &'a Config,
}

/// qBittorrent's state name for the row.
pub fn state(row: &Row) -> &'static str {
    let live = &row.live;
    let fixed = &row.fixed;
    let complete = live.done || fixed.completed_at.is_some() && live.wanted_left == 0;
    if let Some(fault) = &live.error {
        return if fault.kind == FaultKind::NotFound {
            "missingFiles"
        } else {
            "error"
        };
    }
    match live.state {
        TorrentState::Failed => "error",
        TorrentState::Checking if complete => "checkingUP",
        TorrentState::Checking => "checkingDL",
        TorrentState::Queued if complete => "queuedUP",
        TorrentState::Queued => "queuedDL",
        TorrentState::Paused | TorrentState::Stopped if fixed.queued && !fixed.user_paused => {
            if complete {
                "queuedUP"
            } else {
                "queuedDL"
            }
        }
        TorrentState::Paused | TorrentState::Stopped if complete => "stoppedUP",
        TorrentState::Paused | TorrentState::Stopped => "stoppedDL",
        TorrentState::Downloading if live.download_rate > 0 => "downloading",
        TorrentState::Downloading => "stalledDL",
        TorrentState::Seeding if live.upload_rate > 0 => "uploading",
        TorrentState::Seeding => "stalledUP",
    }
}

/// Share of the wanted bytes verified, 0 to 1.
pub fn progress(row: &Row) -> f64 {
    if row.live.done {
        return 1.0;
    }
    let wanted = row.wanted_size();
    if wanted == 0 {
        return 0.0;
    }
    let left = if row.live.wanted_left == 0 && !row.live.done {
        wanted.saturating_sub(row.have_bytes())
    } else {
        row.live.wanted_left.min(wanted)
    };
    (wanted - left) as f64 / wanted as f64
}

pub fn amount_left(row: &Row) -> u64 {
    let p = progress(row);
    if p >= 1.0 {
        0
    } else {
        ((1.0 - p) * row.wanted_size() as f64).round() as u64
    }
}

pub fn eta(row: &Row) -> u64 {
    let rate = row.live.download_rate;
    match row.live.state {
        TorrentState::Downloading if rate > 0 => (amount_left(row) / rate).min(MAX_ETA),
        _ => MAX_ETA,
    }
}

/// -2 "as configured", -1 "none", else the value: qBittorrent's share-limit encoding.
fn limit_f64(o: Override<f64>) -> Value {
    match o {
        Override::Global => json!(-2),
        Override::Unlimited => json!(-1),
        Override::Limit(v) => json!(v),
    }
}

fn limit_minutes(o: Override<u64>) -> Value {
    match o {
        Override::Global => json!(-2),
        Override::Unlimited => json!(-1),
        Override::Limit(v) => json!(v),
    }
}

/// `magnet:?xt=urn:btih:...&dn=...&tr=...`.
pub fn magnet(row: &Row) -> String {
    let meta = &row.fixed.meta;
    let mut link = format!(
        "magnet:?xt=urn:btih:{}&dn={}",
        row.info_hash.to_hex(),
        url::form_urlencoded::byte_serialize(meta.info.name.display().as_bytes())
            .collect::<String>()
    );
    for tracker in trackers(row) {
        link.push_str("&tr=");
        link.extend(url::form_urlencoded::byte_serialize(tracker.as_bytes()));
    }
    link
}

/// The torrent's tracker URLs, tier by tier, without repeats.
pub fn trackers(row: &Row) -> Vec<String> {
    let meta = &row.fixed.meta;
    let mut out: Vec<String> = Vec::new();
    for url in meta
        .announce_list
        .iter()
        .flatten()
        .chain(meta.announce.iter())
    {
        if !out.contains(url) {
            out.push(url.clone());
        }
    }
    out
}

fn unlimited_as_minus_one(bytes_per_s: u64) -> i64 {
    if bytes_per_s == 0 {
        -1
    } else {
        i64::try_from(bytes_per_s).unwrap_or(i64::MAX)
    }
}

/// The path of the torrent's content: its file (single-file) or its top directory.
pub fn content_path(row: &Row) -> String {
    row.fixed
        .save_dir
        .join(row.fixed.meta.info.name.display())
        .display()
        .to_string()
}

/// The full `torrents/info` object of one row.
pub fn torrent(row: &Row, cx: &Context) -> Map<String, Value> {
    let live = &row.live;
    let fixed = &row.fixed;
    let meta = &fixed.meta;
    let layout = &meta.info.layout;
    let settings = &fixed.settings;
    let state = state(row);
    let downloading_side = state.ends_with("DL") || state == "downloading";
    let configured = cx.config.share.for_category(fixed.category.as_deref());
    let max_ratio = settings
        .share
        .ratio
        .resolve(configured.ratio_limit)
        .unwrap_or(-1.0);
    let max_seeding = settings
        .share
        .seeding_minutes
        .resolve(configured.seeding_time_limit.map(|d| d.as_secs() / 60))
        .map_or(-1, |m| m as i64);
    let max_idle = settings
        .share
        .idle_minutes
        .resolve(None)
        .map_or(-1, |m| m as i64);
    let seeding_s = live.seeding.seconds(cx.now);
    let active_s = seeding_s + live.downloading.seconds(cx.now);
    let swarm = live.swarm;
    let trackers = trackers(row);
    let tracker = if swarm.is_some() {
        trackers.first().cloned().unwrap_or_default()
    } else {
        String::new()
    };
    let root_path = if meta.info.multi_file {
        content_path(row)
    } else {
        String::new()
    };
    let left = amount_left(row);
    let wanted = row.wanted_size();
    let value = json!({
        "hash": row.info_hash.to_hex(),
        "infohash_v1": row.info_hash.to_hex(),
        "infohash_v2": "",
        "name": meta.info.name.display(),
        "magnet_uri": magnet(row),
        "size": wanted,
        "total_size": row.total_size(),
        "progress": progress(row),
        "dlspeed": live.download_rate,
        "upspeed": live.upload_rate,
        "priority": if live.done { 0 } else { i64::from(fixed.queue_position) + 1 },
        "num_seeds": if downloading_side { live.peers } else { 0 },
        "num_leechs": if downloading_side { 0 } else { live.peers },
        "num_complete": swarm.map_or(-1, |s| s.seeders as i64),
        "num_incomplete": swarm.map_or(-1, |s| s.leechers as i64),
        "ratio": row.ratio(),
        "popularity": 0,
        "eta": eta(row),
        "state": state,
        "seq_dl": settings.sequential,
        "f_l_piece_prio": false,
        "category": fixed.category.clone().unwrap_or_default(),
        "tags": fixed.tags.join(", "),
        "super_seeding": false,
        "force_start": false,
        "save_path": fixed.save_dir.display().to_string(),
        "download_path": "",
        "content_path": content_path(row),
        "root_path": root_path,
        "added_on": fixed.added_at,
        "completion_on": fixed.completed_at.unwrap_or(-1),
        "tracker": tracker,
        "trackers_count": trackers.len(),
        "dl_limit": unlimited_as_minus_one(settings.download_bytes_per_s),
        "up_limit": unlimited_as_minus_one(settings.upload_bytes_per_s),
        "downloaded": live.downloaded,
        "uploaded": live.uploaded,
        "downloaded_session": live.downloaded,
        "uploaded_session": live.uploaded,
        "amount_left": left,
        "completed": wanted.saturating_sub(left),
        "max_ratio": max_ratio,
        "max_seeding_time": max_seeding,
        "max_inactive_seeding_time": max_idle,
        "ratio_limit": limit_f64(settings.share.ratio),
        "seeding_time_limit": limit_minutes(settings.share.seeding_minutes),
        "inactive_seeding_time_limit": limit_minutes(settings.share.idle_minutes),
        "share_limits_mode": "Default",
        "share_limit_action": "Default",
        "seen_complete": fixed.completed_at.unwrap_or(-1),
        "last_activity": live.last_activity,
        "auto_tmm": false,
        "time_active": active_s,
        "seeding_time": seeding_s,
        "availability": -1,
        "reannounce": 0,
        "comment": meta.comment.clone().unwrap_or_default(),
        "private": meta.info.private,
        "has_metadata": true,
        "connections_count": live.peers,
        "connections_limit": cx.config.limits.max_peers_per_torrent,
        "total_wasted": 0,
        "pieces_num": layout.piece_count(),
        "piece_size": layout.piece_length(),
        "pieces_have": live.have_pieces,
        "created_by": meta.created_by.clone().unwrap_or_default(),
        "creation_date": meta.creation_date.unwrap_or(-1),
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!("json! of an object"),
    }
}
