//! `transfer/*`: the global rates and totals (from the same per-snapshot totals as
//! `sync/maindata`'s `server_state`) and the global rate limits, which are applied to
//! the running daemon and kept across reloads and restarts unless the config changes them
//! ([`crate::daemon::api_settings`]).

use std::sync::Arc;

use axum::extract::State;
use ccbt_config::ByteRate;
use ccbt_shards::swarm::RateLimits;
use serde_json::json;

use super::params::Params;
use super::{done, json, text, Qbt, Refusal, Reply};

pub async fn info(State(q): State<Arc<Qbt>>) -> Reply {
    let snapshot = q.api.catalog.current();
    let s = q.sync.server_state(&q, &snapshot);
    json(json!({
        "dl_info_speed": s["dl_info_speed"],
        "dl_info_data": s["dl_info_data"],
        "up_info_speed": s["up_info_speed"],
        "up_info_data": s["up_info_data"],
        "dl_rate_limit": s["dl_rate_limit"],
        "up_rate_limit": s["up_rate_limit"],
        "dht_nodes": 0,
        "connection_status": "connected",
    }))
}

pub async fn upload_limit(State(q): State<Arc<Qbt>>) -> Reply {
    text(q.api.config().limits.upload_bytes_per_s.0.to_string())
}

pub async fn download_limit(State(q): State<Arc<Qbt>>) -> Reply {
    text(q.api.config().limits.download_bytes_per_s.0.to_string())
}

async fn set_global(q: &Qbt, p: &Params, upload: bool) -> Reply {
    let limit: i64 = p
        .number("limit")?
        .ok_or_else(|| Refusal::bad("Missing parameter: limit"))?;
    let limit = ByteRate(u64::try_from(limit).unwrap_or(0));
    let mut c = q.api.config();
    if upload {
        c.limits.upload_bytes_per_s = limit;
    } else {
        c.limits.download_bytes_per_s = limit;
    }
    let limits = RateLimits {
        upload_bytes_per_s: c.limits.upload_bytes_per_s.0,
        download_bytes_per_s: c.limits.download_bytes_per_s.0,
    };
    q.api.set_config("WebAPI transfer limits", c);
    q.api.blocking(move |d| d.set_global_limits(limits)).await;
    done()
}

pub async fn set_upload_limit(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    set_global(&q, &p, true).await
}

pub async fn set_download_limit(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    set_global(&q, &p, false).await
}
