//! One torrent in depth: `properties`, `files`, `trackers`, `pieceStates`. Everything but
//! the piece map comes from the catalog; the piece map is asked of the torrent's shard,
//! which answers from memory, with a deadline of [`PIECES_TIMEOUT`] (past it, `files`
//! falls back to the torrent's overall progress and `pieceStates` answers 503).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use ccbt_engine::Bitfield;
use serde_json::{json, Value};

use super::params::Params;
use super::serialize::{self, Context};
use super::{json, Qbt, Refusal, Reply};
use crate::daemon::catalog::Row;
use crate::daemon::core::priority_code;

pub const PIECES_TIMEOUT: Duration = Duration::from_secs(2);

fn row_of(q: &Qbt, p: &Params) -> Result<Arc<Row>, Refusal> {
    let hash = p.hash()?;
    q.api
        .catalog
        .current()
        .get(&hash)
        .cloned()
        .ok_or_else(Refusal::not_found)
}

pub async fn properties(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let row = row_of(&q, &p)?;
    let config = q.api.config();
    let cx = Context {
        now: std::time::Instant::now(),
        config: &config,
    };
    let t = serialize::torrent(&row, &cx);
    let live = &row.live;
    let active = t.time_active.max(1);
    let swarm = live.swarm;
    Ok(axum::Json(Properties {
        infohash_v1: t.hash.clone(),
        infohash_v2: "",
        name: t.name,
        save_path: t.save_path,
        download_path: "",
        creation_date: t.creation_date,
        piece_size: t.piece_size,
        comment: t.comment,
        total_wasted: 0,
        total_uploaded: live.uploaded,
        total_uploaded_session: live.uploaded,
        total_downloaded: live.downloaded,
        total_downloaded_session: live.downloaded,
        up_limit: t.up_limit,
        dl_limit: t.dl_limit,
        time_elapsed: t.time_active,
        seeding_time: t.seeding_time,
        nb_connections: live.peers,
        nb_connections_limit: t.connections_limit,
        share_ratio: t.ratio,
        addition_date: t.added_on,
        completion_date: t.completion_on,
        created_by: t.created_by,
        dl_speed_avg: live.downloaded / active,
        dl_speed: live.download_rate,
        eta: t.eta,
        last_seen: t.seen_complete,
        peers: t.num_leechs,
        peers_total: swarm.map_or(-1, |s| s.leechers as i64),
        pieces_have: live.have_pieces,
        pieces_num: t.pieces_num,
        reannounce: 0,
        seeds: t.num_seeds,
        seeds_total: swarm.map_or(-1, |s| s.seeders as i64),
        total_size: t.total_size,
        up_speed_avg: live.uploaded / active,
        up_speed: live.upload_rate,
        is_private_camel: t.private,
        is_private: t.private,
        has_metadata: true,
        progress: t.progress,
        hash: t.hash,
    })
    .into_response())
}

/// `torrents/properties`, qBittorrent's key set.
#[derive(serde::Serialize)]
struct Properties {
    hash: String,
    infohash_v1: String,
    infohash_v2: &'static str,
    name: String,
    save_path: String,
    download_path: &'static str,
    creation_date: i64,
    piece_size: u32,
    comment: String,
    total_wasted: u64,
    total_uploaded: u64,
    total_uploaded_session: u64,
    total_downloaded: u64,
    total_downloaded_session: u64,
    up_limit: i64,
    dl_limit: i64,
    time_elapsed: u64,
    seeding_time: u64,
    nb_connections: u64,
    nb_connections_limit: u32,
    share_ratio: f64,
    addition_date: i64,
    completion_date: i64,
    created_by: String,
    dl_speed_avg: u64,
    dl_speed: u64,
    eta: u64,
    last_seen: i64,
    peers: u64,
    peers_total: i64,
    pieces_have: u64,
    pieces_num: u32,
    reannounce: i64,
    seeds: u64,
    seeds_total: i64,
    total_size: u64,
    up_speed_avg: u64,
    up_speed: u64,
    #[serde(rename = "isPrivate")]
    is_private_camel: bool,
    is_private: bool,
    has_metadata: bool,
    progress: f64,
}

/// The torrent's have-bitfield from its shard, or `None` past the deadline.
async fn pieces_of(q: &Qbt, row: &Row) -> Option<Bitfield> {
    let pending = q.api.daemon.pieces(row.info_hash);
    match tokio::time::timeout(PIECES_TIMEOUT, pending).await {
        Ok(Ok(bits)) => bits,
        Ok(Err(e)) => {
            tracing::debug!(torrent = %row.info_hash, error = %e, "no piece map");
            None
        }
        Err(_) => {
            tracing::warn!(torrent = %row.info_hash, "the shard did not give the piece map in time");
            None
        }
    }
}

/// qBittorrent's file priorities: 0 skip, 1 normal, 6 high, 7 maximum (ours has low,
/// shown as normal).
pub fn qbt_priority(code: i8) -> u8 {
    match code {
        i8::MIN..=-1 => 0,
        0 | 1 => 1,
        _ => 6,
    }
}

/// Bytes of file `index` covered by pieces `have` holds.
fn file_have_bytes(row: &Row, index: usize, have: &Bitfield) -> u64 {
    let layout = &row.fixed.meta.info.layout;
    let file = &layout.files()[index];
    let (start, end) = (file.offset, file.offset + file.length);
    layout
        .file_pieces(index)
        .filter(|&p| have.get(p))
        .filter_map(|p| layout.piece(p))
        .map(|piece| {
            let from = layout.piece_offset(piece);
            let to = from + u64::from(layout.piece_len(piece));
            to.min(end).saturating_sub(from.max(start))
        })
        .sum()
}

pub async fn files(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let row = row_of(&q, &p)?;
    let wanted: Option<Vec<usize>> = p.get("indexes").map(|text| {
        text.split('|')
            .filter_map(|i| i.trim().parse().ok())
            .collect()
    });
    let have = pieces_of(&q, &row).await;
    let overall = serialize::progress(&row);
    let layout = &row.fixed.meta.info.layout;
    let settings = &row.fixed.settings;
    let mut out = Vec::new();
    for (index, file) in layout.files().iter().enumerate() {
        if file.pad || wanted.as_ref().is_some_and(|w| !w.contains(&index)) {
            continue;
        }
        let progress = match &have {
            _ if file.length == 0 => 1.0,
            Some(bits) => file_have_bytes(&row, index, bits) as f64 / file.length as f64,
            None => overall,
        };
        let range = layout.file_pieces(index);
        out.push(json!({
            "index": index,
            "name": file.path.display(),
            "size": file.length,
            "progress": progress,
            "priority": qbt_priority(priority_code(settings.priority(index))),
            "is_seed": progress >= 1.0,
            "piece_range": [range.start, range.end.saturating_sub(1).max(range.start)],
            "availability": -1,
        }));
    }
    json(Value::Array(out))
}

pub async fn trackers(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let row = row_of(&q, &p)?;
    let swarm = row.live.swarm;
    let peers = row.live.peers;
    // DHT, PeX and LSD rows first, as qBittorrent lists them: PeX works (status 2) unless
    // it is off or the torrent private (0, disabled, with the reason); DHT and LSD do not
    // run in the daemon yet.
    let pex = if row.fixed.meta.info.private {
        (0, "This torrent is private")
    } else if q.api.config().pex.enabled {
        (2, "")
    } else {
        (0, "disabled")
    };
    let mut out: Vec<Value> = [
        ("** [DHT] **", (0, "not supported")),
        ("** [PeX] **", pex),
        ("** [LSD] **", (0, "not supported")),
    ]
    .iter()
    .map(|(name, (status, msg))| {
        json!({"url": name, "status": status, "tier": -1, "num_peers": 0, "num_seeds": 0,
               "num_leeches": 0, "num_downloaded": 0, "msg": msg})
    })
    .collect();
    let meta = &row.fixed.meta;
    let tiers: Vec<Vec<String>> = if meta.announce_list.is_empty() {
        meta.announce.iter().map(|a| vec![a.clone()]).collect()
    } else {
        meta.announce_list.clone()
    };
    for (tier, urls) in tiers.iter().enumerate() {
        for url in urls {
            // We keep one answer per torrent, not per tracker: a torrent with an answer
            // shows every tracker as working with that answer's counts.
            out.push(json!({
                "url": url,
                "status": if swarm.is_some() { 2 } else { 1 },
                "tier": tier,
                "num_peers": if swarm.is_some() { peers as i64 } else { -1 },
                "num_seeds": swarm.map_or(-1, |s| s.seeders as i64),
                "num_leeches": swarm.map_or(-1, |s| s.leechers as i64),
                "num_downloaded": swarm.and_then(|s| s.downloaded).map_or(-1, |d| d as i64),
                "msg": "",
            }));
        }
    }
    json(Value::Array(out))
}

pub async fn piece_states(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let row = row_of(&q, &p)?;
    let count = row.fixed.meta.info.layout.piece_count();
    if !row.has_metadata() {
        // A magnet link's before its metadata: no pieces, as qBittorrent answers.
        return json(json!([]));
    }
    let Some(have) = pieces_of(&q, &row).await else {
        if row.live.done {
            return json(json!(vec![2; count as usize]));
        }
        return Err(Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "the torrent's piece map is not available right now".into(),
        ));
    };
    // 0: missing, 2: have (we do not report pieces in flight).
    let states: Vec<u8> = (0..count)
        .map(|i| if have.get(i) { 2 } else { 0 })
        .collect();
    json(json!(states))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::qbittorrent::serialize::tests::row;
    use ccbt_shards::swarm::TorrentState;

    #[test]
    fn file_progress_counts_the_bytes_of_pieces_held() {
        // Pieces of 16,384: a.mkv is bytes 0..30,000 (pieces 0-1), b.nfo 30,000..40,000
        // (pieces 1-2).
        let r = row(TorrentState::Downloading);
        let mut have = Bitfield::empty(3);
        have.set(1);
        assert_eq!(file_have_bytes(&r, 0, &have), 30_000 - 16_384);
        assert_eq!(file_have_bytes(&r, 1, &have), 32_768 - 30_000);
        have.set(2);
        assert_eq!(file_have_bytes(&r, 1, &have), 10_000);
        assert_eq!(file_have_bytes(&r, 0, &Bitfield::full(3)), 30_000);
    }
}
