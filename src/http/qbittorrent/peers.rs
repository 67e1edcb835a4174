//! `sync/torrentPeers?hash=…&rid=N`: one torrent's connected peers, as qBittorrent's web
//! UI (and VueTorrent) poll them for the peers tab. Every answer is a full update
//! (`full_update: true`, which the protocol lets a server send at any `rid`): a peer list
//! is at most the torrent's peer limit long, so increments would save little. 404 for an
//! unknown torrent; an empty list for a stopped one or one whose shard did not answer in
//! time.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use ccbt_shards::swarm::{PeerInfo, PeerOrigin};
use serde_json::{json, Map, Value};

use super::params::Params;
use super::{json, Qbt, Refusal, Reply};

/// How long the answer waits for the torrent's shard.
const PEERS_TIMEOUT: Duration = Duration::from_millis(500);

/// What qBittorrent's flag letters mean, as its `flags_desc` spells them.
fn flags(p: &PeerInfo) -> (String, String) {
    let v = &p.view;
    let mut letters = Vec::new();
    let mut said = Vec::new();
    for (on, letter, meaning) in [
        (
            v.am_interested && !v.peer_choking,
            "D",
            "Downloading from peer",
        ),
        (
            v.am_interested && v.peer_choking,
            "d",
            "We would download, but peer does not want to send",
        ),
        (v.peer_interested && !v.am_choking, "U", "Uploading to peer"),
        (
            v.peer_interested && v.am_choking,
            "u",
            "Peer wants to download, but we do not send",
        ),
        (
            !v.peer_choking && !v.am_interested,
            "K",
            "Peer is unchoking us, but we're not interested",
        ),
        (
            !v.am_choking && !v.peer_interested,
            "?",
            "We unchoked this peer, but they're not interested",
        ),
        (p.origin == PeerOrigin::Incoming, "I", "Incoming connection"),
        (p.origin == PeerOrigin::Dht, "H", "Peer from DHT"),
        (p.origin == PeerOrigin::Pex, "X", "Peer from PEX"),
        (p.origin == PeerOrigin::Lsd, "L", "Peer from LSD"),
    ] {
        if on {
            letters.push(letter);
            said.push(format!("{letter} = {meaning}"));
        }
    }
    (letters.join(" "), said.join("\n"))
}

fn peer_json(p: &PeerInfo) -> Value {
    let v = &p.view;
    let (flags, flags_desc) = flags(p);
    json!({
        "client": ccbt_engine::wire::client_name(&p.peer_id),
        "peer_id_client": String::from_utf8_lossy(&p.peer_id[..8]),
        "connection": "BT",
        "country": "",
        "country_code": "",
        "dl_speed": v.download_rate,
        "up_speed": v.upload_rate,
        "downloaded": v.downloaded,
        "uploaded": v.uploaded,
        "files": "",
        "flags": flags,
        "flags_desc": flags_desc,
        "ip": v.addr.ip().to_string(),
        "port": v.addr.port(),
        "progress": v.progress,
        "relevance": 0.0,
    })
}

pub async fn torrent_peers(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let hash = p.hash()?;
    if q.api.catalog.current().get(&hash).is_none() {
        return Err(Refusal::not_found());
    }
    let rid = p
        .get("rid")
        .and_then(|r| r.parse::<u64>().ok())
        .unwrap_or(0);
    let peers = match tokio::time::timeout(PEERS_TIMEOUT, q.api.daemon.peers(hash)).await {
        Ok(Ok(peers)) => peers,
        Ok(Err(e)) => {
            tracing::debug!(torrent = %hash, error = %e, "no peer list");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!(torrent = %hash, "the shard did not list the peers in time");
            Vec::new()
        }
    };
    let listed: Map<String, Value> = peers
        .iter()
        .map(|p| (p.view.addr.to_string(), peer_json(p)))
        .collect();
    json(json!({
        "full_update": true,
        "rid": rid + 1,
        "show_flags": true,
        "peers": listed,
    }))
}
