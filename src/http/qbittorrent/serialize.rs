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
use serde_json::{Map, Value};

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
        TorrentState::FetchingMetadata => "metaDL",
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

/// qBittorrent's share-limit encoding: -2 "as configured", -1 "none", else the value.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Limit {
    Ratio(f64),
    Minutes(i64),
}

fn ratio_limit(o: Override<f64>) -> Limit {
    match o {
        Override::Global => Limit::Minutes(-2),
        Override::Unlimited => Limit::Minutes(-1),
        Override::Limit(v) => Limit::Ratio(v),
    }
}

fn minutes_limit(o: Override<u64>) -> Limit {
    match o {
        Override::Global => Limit::Minutes(-2),
        Override::Unlimited => Limit::Minutes(-1),
        Override::Limit(v) => Limit::Minutes(i64::try_from(v).unwrap_or(i64::MAX)),
    }
}

/// The full `torrents/info` object of one row, qBittorrent's key set. A struct rather
/// than a JSON map, so a listing of many torrents is written straight out without
/// building a map per torrent.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TorrentInfo {
    pub hash: String,
    pub infohash_v1: String,
    pub infohash_v2: &'static str,
    pub name: String,
    pub magnet_uri: String,
    pub size: u64,
    pub total_size: u64,
    pub progress: f64,
    pub dlspeed: u64,
    pub upspeed: u64,
    pub priority: i64,
    pub num_seeds: u64,
    pub num_leechs: u64,
    pub num_complete: i64,
    pub num_incomplete: i64,
    pub ratio: f64,
    pub popularity: f64,
    pub eta: u64,
    pub state: &'static str,
    pub seq_dl: bool,
    pub f_l_piece_prio: bool,
    pub category: String,
    pub tags: String,
    pub super_seeding: bool,
    pub force_start: bool,
    pub save_path: String,
    pub download_path: &'static str,
    pub content_path: String,
    pub root_path: String,
    pub added_on: i64,
    pub completion_on: i64,
    pub tracker: String,
    pub trackers_count: usize,
    pub dl_limit: i64,
    pub up_limit: i64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub downloaded_session: u64,
    pub uploaded_session: u64,
    pub amount_left: u64,
    pub completed: u64,
    pub max_ratio: f64,
    pub max_seeding_time: i64,
    pub max_inactive_seeding_time: i64,
    pub ratio_limit: Limit,
    pub seeding_time_limit: Limit,
    pub inactive_seeding_time_limit: Limit,
    pub share_limits_mode: &'static str,
    pub share_limit_action: &'static str,
    pub seen_complete: i64,
    pub last_activity: i64,
    pub auto_tmm: bool,
    pub time_active: u64,
    pub seeding_time: u64,
    pub availability: i64,
    pub reannounce: i64,
    pub comment: String,
    pub private: bool,
    pub has_metadata: bool,
    pub connections_count: u64,
    pub connections_limit: u32,
    pub total_wasted: u64,
    pub pieces_num: u32,
    pub piece_size: u32,
    pub pieces_have: u64,
    pub created_by: String,
    pub creation_date: i64,
}

impl TorrentInfo {
    /// As a JSON object (for sorting by any key, and for callers that pick fields).
    pub fn to_map(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

pub fn torrent(row: &Row, cx: &Context) -> TorrentInfo {
    let live = &row.live;
    let fixed = &row.fixed;
    let meta = &fixed.meta;
    let layout = &meta.info.layout;
    let settings = &fixed.settings;
    let state = state(row);
    let downloading_side = state.ends_with("DL") || state == "downloading";
    let configured = cx.config.share.for_category(fixed.category.as_deref());
    let seeding_s = live.seeding.seconds(cx.now);
    let swarm = live.swarm;
    let trackers = trackers(row);
    let tracker = match (swarm, trackers.first()) {
        (Some(_), Some(first)) => first.clone(),
        _ => String::new(),
    };
    let content_path = content_path(row);
    let root_path = if meta.info.multi_file {
        content_path.clone()
    } else {
        String::new()
    };
    let left = amount_left(row);
    let wanted = row.wanted_size();
    let hash = row.info_hash.to_hex();
    let minutes = |m: Option<u64>| m.map_or(-1, |m| i64::try_from(m).unwrap_or(i64::MAX));
    TorrentInfo {
        infohash_v1: hash.clone(),
        hash,
        infohash_v2: "",
        name: meta.info.name.display(),
        magnet_uri: magnet(row),
        size: wanted,
        total_size: row.total_size(),
        progress: progress(row),
        dlspeed: live.download_rate,
        upspeed: live.upload_rate,
        priority: if live.done {
            0
        } else {
            i64::from(fixed.queue_position) + 1
        },
        num_seeds: if downloading_side { live.peers } else { 0 },
        num_leechs: if downloading_side { 0 } else { live.peers },
        num_complete: swarm.map_or(-1, |s| s.seeders as i64),
        num_incomplete: swarm.map_or(-1, |s| s.leechers as i64),
        ratio: row.ratio(),
        popularity: 0.0,
        eta: eta(row),
        state,
        seq_dl: settings.sequential,
        f_l_piece_prio: false,
        category: fixed.category.clone().unwrap_or_default(),
        tags: fixed.tags.join(", "),
        super_seeding: false,
        force_start: false,
        save_path: fixed.save_dir.display().to_string(),
        download_path: "",
        content_path,
        root_path,
        added_on: fixed.added_at,
        completion_on: fixed.completed_at.unwrap_or(-1),
        tracker,
        trackers_count: trackers.len(),
        dl_limit: unlimited_as_minus_one(settings.download_bytes_per_s),
        up_limit: unlimited_as_minus_one(settings.upload_bytes_per_s),
        downloaded: live.downloaded,
        uploaded: live.uploaded,
        downloaded_session: live.downloaded,
        uploaded_session: live.uploaded,
        amount_left: left,
        completed: wanted.saturating_sub(left),
        max_ratio: settings
            .share
            .ratio
            .resolve(configured.ratio_limit)
            .unwrap_or(-1.0),
        max_seeding_time: minutes(
            settings
                .share
                .seeding_minutes
                .resolve(configured.seeding_time_limit.map(|d| d.as_secs() / 60)),
        ),
        max_inactive_seeding_time: minutes(settings.share.idle_minutes.resolve(None)),
        ratio_limit: ratio_limit(settings.share.ratio),
        seeding_time_limit: minutes_limit(settings.share.seeding_minutes),
        inactive_seeding_time_limit: minutes_limit(settings.share.idle_minutes),
        share_limits_mode: "Default",
        share_limit_action: "Default",
        seen_complete: fixed.completed_at.unwrap_or(-1),
        last_activity: live.last_activity,
        auto_tmm: false,
        time_active: seeding_s + live.downloading.seconds(cx.now),
        seeding_time: seeding_s,
        availability: -1,
        reannounce: 0,
        comment: meta.comment.clone().unwrap_or_default(),
        private: meta.info.private,
        has_metadata: row.has_metadata(),
        connections_count: live.peers,
        connections_limit: cx.config.limits.max_peers_per_torrent,
        total_wasted: 0,
        pieces_num: layout.piece_count(),
        piece_size: layout.piece_length(),
        pieces_have: live.have_pieces,
        created_by: meta.created_by.clone().unwrap_or_default(),
        creation_date: meta.creation_date.unwrap_or(-1),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use ccbt_engine::metainfo::{Metainfo, NewFile, NewTorrent};
    use ccbt_engine::Sha1Digest;
    use ccbt_shards::swarm::TorrentFault;

    use super::*;
    use crate::daemon::catalog::{Fixed, Live, Timer};
    use crate::daemon::core::TorrentSettings;

    /// A two-file torrent of 3 pieces of 16 KiB (40,000 bytes), as a catalog row in `state`.
    pub(crate) fn row(state: TorrentState) -> Row {
        let bytes = NewTorrent {
            name: b"Show".to_vec(),
            piece_length: 16_384,
            files: vec![
                NewFile {
                    path: vec![b"a.mkv".to_vec()],
                    length: 30_000,
                },
                NewFile {
                    path: vec![b"b.nfo".to_vec()],
                    length: 10_000,
                },
            ],
            piece_hashes: vec![Sha1Digest::default(); 3],
            trackers: vec!["http://t.example/announce".into()],
            ..NewTorrent::default()
        }
        .encode()
        .unwrap();
        let meta = Arc::new(Metainfo::parse(&bytes).unwrap());
        Row {
            id: 1,
            info_hash: meta.info_hash,
            fixed: Arc::new(Fixed {
                revision: 1,
                meta,
                save_dir: PathBuf::from("/srv/tv"),
                added_at: 1_700_000_000,
                completed_at: None,
                category: Some("tv".into()),
                tags: vec!["a".into(), "b".into()],
                queue_position: 0,
                user_paused: false,
                queued: false,
                settings: TorrentSettings::default(),
            }),
            live: Live {
                state,
                peers: 0,
                peers_from: Default::default(),
                have_pieces: 0,
                checked_pieces: 0,
                wanted_left: 40_000,
                done: false,
                uploaded: 0,
                downloaded: 0,
                upload_rate: 0,
                download_rate: 0,
                swarm: None,
                error: None,
                seeding: Timer::default(),
                downloading: Timer::default(),
                last_activity: 0,
                metadata_fraction: 1.0,
            },
        }
    }

    fn with(mut r: Row, f: impl FnOnce(&mut Live, &mut Fixed)) -> Row {
        let mut fixed = Arc::try_unwrap(r.fixed).unwrap();
        f(&mut r.live, &mut fixed);
        r.fixed = Arc::new(fixed);
        r
    }

    #[test]
    fn states_are_the_5x_names_sonarr_maps() {
        use TorrentState as S;
        let seed = |l: &mut Live, _: &mut Fixed| {
            l.done = true;
            l.wanted_left = 0;
        };
        assert_eq!(state(&row(S::Downloading)), "stalledDL");
        let moving = with(row(S::Downloading), |l, _| l.download_rate = 5);
        assert_eq!(state(&moving), "downloading");
        assert_eq!(state(&with(row(S::Seeding), seed)), "stalledUP");
        let uploading = with(row(S::Seeding), |l, f| {
            seed(l, f);
            l.upload_rate = 9;
        });
        assert_eq!(state(&uploading), "uploading");
        assert_eq!(state(&row(S::Paused)), "stoppedDL");
        assert_eq!(state(&with(row(S::Paused), seed)), "stoppedUP");
        let queued = with(row(S::Paused), |_, f| f.queued = true);
        assert_eq!(state(&queued), "queuedDL");
        assert_eq!(state(&row(S::Queued)), "queuedDL");
        assert_eq!(state(&row(S::Checking)), "checkingDL");
        let rechecking = with(row(S::Checking), |l, _| l.done = true);
        assert_eq!(state(&rechecking), "checkingUP");
        let missing = with(row(S::Failed), |l, _| {
            l.error = Some(TorrentFault::io(
                None,
                &std::io::Error::from(std::io::ErrorKind::NotFound),
            ))
        });
        assert_eq!(state(&missing), "missingFiles");
        let broken = with(row(S::Failed), |l, _| {
            l.error = Some(TorrentFault::bad_data("x"))
        });
        assert_eq!(state(&broken), "error");
    }

    #[test]
    fn a_torrent_object_has_the_fields_sonarr_reads() {
        let config = Config::default();
        let cx = Context {
            now: Instant::now(),
            config: &config,
        };
        let r = with(row(TorrentState::Downloading), |l, _| {
            l.wanted_left = 10_000;
            l.download_rate = 1_000;
        });
        let t = torrent(&r, &cx).to_map();
        for key in [
            "hash",
            "name",
            "size",
            "progress",
            "eta",
            "state",
            "category",
            "save_path",
            "content_path",
            "ratio",
            "ratio_limit",
            "seeding_time",
            "seeding_time_limit",
            "inactive_seeding_time_limit",
            "last_activity",
            "tags",
            "magnet_uri",
        ] {
            assert!(t.contains_key(key), "no {key}");
        }
        assert_eq!(t["progress"], 0.75);
        assert_eq!(t["eta"], 10);
        assert_eq!(t["amount_left"], 10_000);
        assert_eq!(t["content_path"], "/srv/tv/Show");
        assert_eq!(t["root_path"], "/srv/tv/Show");
        assert_eq!(t["tags"], "a, b");
        assert_eq!(t["ratio_limit"], -2);
        assert_eq!(t["up_limit"], -1);
        assert_eq!(t["trackers_count"], 1);
        assert!(t["magnet_uri"]
            .as_str()
            .unwrap()
            .ends_with("&dn=Show&tr=http%3A%2F%2Ft.example%2Fannounce"));
    }
}
