//! `app/*`: who we say we are (qBittorrent 5.1.4, WebAPI 2.11.4: the version the *arr
//! apps gate stop/start names and share limits on) and the preferences we have.
//!
//! `setPreferences` applies what maps onto the daemon's live settings (save path, global
//! rate limits, share limits and their action, queue sizes) to the running daemon, kept
//! across reloads and restarts unless the config changes that key
//! ([`crate::daemon::api_settings`]). Every key it cannot apply is named in
//! a warning in the log, never dropped silently.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use ccbt_config::{ByteRate, ShareAction};
use ccbt_shards::swarm::RateLimits;
use serde_json::{json, Value};

use super::params::Params;
use super::{json, text, Qbt, Refusal, Reply};

pub const VERSION: &str = "v5.1.4";
pub const WEBAPI_VERSION: &str = "2.11.4";

pub async fn version() -> Reply {
    text(VERSION)
}

pub async fn webapi_version() -> Reply {
    text(WEBAPI_VERSION)
}

pub async fn build_info() -> Reply {
    let ours = concat!("ccbt-uring ", env!("CARGO_PKG_VERSION"));
    json(json!({
        "qt": "none",
        "libtorrent": ours,
        "boost": "none",
        "openssl": "none",
        "zlib": "none",
        "bitness": usize::BITS,
        "platform": "linux",
        "app": ours,
    }))
}

pub async fn default_save_path(State(q): State<Arc<Qbt>>) -> Reply {
    text(q.api.daemon.download_dir().display().to_string())
}

/// -1 for "none", as qBittorrent writes a disabled limit.
fn or_minus_one(v: Option<u64>) -> i64 {
    v.map_or(-1, |v| i64::try_from(v).unwrap_or(i64::MAX))
}

pub async fn preferences(State(q): State<Arc<Qbt>>) -> Reply {
    let c = q.api.config();
    let daemon = &q.api.daemon;
    let seeding_minutes = c.share.seeding_time_limit.map(|d| d.as_secs() / 60);
    let rate = |r: ByteRate| i64::try_from(r.0).unwrap_or(i64::MAX);
    let limit = |n: u32| if n == 0 { -1 } else { i64::from(n) };
    let mut prefs = json!({
        "save_path": daemon.download_dir().display().to_string(),
        "temp_path_enabled": false,
        "temp_path": "",
        "create_subfolder_enabled": true,
        "torrent_content_layout": "Original",
        "add_stopped_enabled": false,
        "start_paused_enabled": false,
        "auto_tmm_enabled": false,
        "preallocate_all": c.storage.preallocate == ccbt_config::Preallocate::Full,
        "max_ratio_enabled": c.share.ratio_limit.is_some(),
        "max_ratio": c.share.ratio_limit.unwrap_or(-1.0),
        "max_seeding_time_enabled": seeding_minutes.is_some(),
        "max_seeding_time": or_minus_one(seeding_minutes),
        "max_inactive_seeding_time_enabled": false,
        "max_inactive_seeding_time": -1,
        "max_ratio_act": match c.share.action {
            ShareAction::Pause => 0,
            ShareAction::Remove => 1,
        },
        "queueing_enabled": c.queue.max_active_downloads > 0 || c.queue.max_active_seeds > 0,
        "max_active_downloads": limit(c.queue.max_active_downloads),
        "max_active_uploads": limit(c.queue.max_active_seeds),
        "max_active_torrents": -1,
        "max_active_checking_torrents": limit(c.queue.max_active_checks),
        "dont_count_slow_torrents": false,
    });
    // Two halves: one json! of every key passes the macro's recursion limit.
    let network = json!({
        "dht": false,
        "pex": false,
        "lsd": false,
        "encryption": 0,
        "listen_port": daemon.port(),
        "random_port": false,
        "upnp": false,
        "dl_limit": rate(c.limits.download_bytes_per_s),
        "up_limit": rate(c.limits.upload_bytes_per_s),
        "alt_dl_limit": 0,
        "alt_up_limit": 0,
        "scheduler_enabled": false,
        "max_connec": i64::from(c.limits.max_connections_per_shard)
            * daemon.shard_count() as i64,
        "max_connec_per_torrent": c.limits.max_peers_per_torrent,
        "max_uploads": -1,
        "max_uploads_per_torrent": -1,
        "web_ui_address": c.daemon.control.ip().to_string(),
        "web_ui_port": c.daemon.control.port(),
        "web_ui_username": c.control.username,
        "web_ui_host_header_validation_enabled": true,
        "web_ui_csrf_protection_enabled": true,
        "web_ui_session_timeout": super::session::SESSION_IDLE.as_secs(),
        "web_ui_max_auth_fail_count": c.control.login_max_failures,
        "web_ui_ban_duration": c.control.login_ban_s,
        "bypass_local_auth": !q.api.access.needs_credentials(),
        "bypass_auth_subnet_whitelist_enabled": false,
        "web_ui_domain_list": c.control.host_whitelist.join(";"),
    });
    if let (Some(all), Value::Object(more)) = (prefs.as_object_mut(), network) {
        all.extend(more);
    }
    json(prefs)
}

/// What a setPreferences call changes.
#[derive(Debug, Default, PartialEq)]
pub struct Applied {
    pub applied: Vec<String>,
    pub not_applied: Vec<String>,
}

pub async fn set_preferences(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let text_json = p.need("json")?;
    let Value::Object(prefs) = serde_json::from_str::<Value>(text_json)
        .map_err(|e| Refusal::bad(format!("json: not valid JSON: {e}")))?
    else {
        return Err(Refusal::bad("json: expected a JSON object"));
    };
    let mut config = q.api.config();
    let mut applied = Applied::default();
    let mut new_save_dir = None;
    for (key, value) in &prefs {
        let ok = match key.as_str() {
            "save_path" => match value.as_str() {
                Some(path) => {
                    let dir = q
                        .api
                        .access
                        .save_dir(path, &q.api.daemon.download_dir())
                        .map_err(|e| Refusal(axum::http::StatusCode::FORBIDDEN, e.to_string()))?;
                    config.daemon.download_dir = dir.clone();
                    new_save_dir = Some(dir);
                    true
                }
                None => false,
            },
            "dl_limit" => set_rate(value, &mut config.limits.download_bytes_per_s),
            "up_limit" => set_rate(value, &mut config.limits.upload_bytes_per_s),
            "max_ratio_enabled" => match value.as_bool() {
                Some(false) => {
                    config.share.ratio_limit = None;
                    true
                }
                Some(true) => prefs
                    .get("max_ratio")
                    .and_then(Value::as_f64)
                    .is_some_and(|r| r >= 0.0),
                None => false,
            },
            "max_ratio" => match value.as_f64() {
                Some(r) if r >= 0.0 && prefs.get("max_ratio_enabled") != Some(&json!(false)) => {
                    config.share.ratio_limit = Some(r);
                    true
                }
                Some(_) => {
                    config.share.ratio_limit = None;
                    true
                }
                None => false,
            },
            "max_seeding_time_enabled" => match value.as_bool() {
                Some(false) => {
                    config.share.seeding_time_limit = None;
                    true
                }
                Some(true) => prefs
                    .get("max_seeding_time")
                    .and_then(Value::as_i64)
                    .is_some_and(|m| m >= 0),
                None => false,
            },
            "max_seeding_time" => match value.as_i64() {
                Some(m)
                    if m >= 0 && prefs.get("max_seeding_time_enabled") != Some(&json!(false)) =>
                {
                    config.share.seeding_time_limit = Some(Duration::from_secs(m as u64 * 60));
                    true
                }
                Some(_) => {
                    config.share.seeding_time_limit = None;
                    true
                }
                None => false,
            },
            "max_ratio_act" => match value.as_i64() {
                Some(0) => {
                    config.share.action = ShareAction::Pause;
                    true
                }
                Some(1) => {
                    config.share.action = ShareAction::Remove;
                    true
                }
                _ => false,
            },
            "queueing_enabled" => match value.as_bool() {
                Some(false) => {
                    config.queue.max_active_downloads = 0;
                    config.queue.max_active_seeds = 0;
                    true
                }
                Some(true) => true,
                None => false,
            },
            "max_active_downloads" => set_count(value, &mut config.queue.max_active_downloads),
            "max_active_uploads" => set_count(value, &mut config.queue.max_active_seeds),
            "max_active_checking_torrents" => set_count(value, &mut config.queue.max_active_checks),
            _ => false,
        };
        if ok {
            applied.applied.push(key.clone());
        } else {
            applied.not_applied.push(key.clone());
        }
    }
    if !applied.not_applied.is_empty() {
        tracing::warn!(keys = ?applied.not_applied,
            "WebAPI setPreferences: these keys are not supported (or their values are not) and were not applied");
    }
    if !applied.applied.is_empty() {
        tracing::info!(keys = ?applied.applied, "WebAPI setPreferences applied");
    }
    let limits = RateLimits {
        upload_bytes_per_s: config.limits.upload_bytes_per_s.0,
        download_bytes_per_s: config.limits.download_bytes_per_s.0,
    };
    let old = q.api.config();
    let limits_changed = old.limits.upload_bytes_per_s != config.limits.upload_bytes_per_s
        || old.limits.download_bytes_per_s != config.limits.download_bytes_per_s;
    q.api.set_config("WebAPI setPreferences", config);
    q.api
        .blocking(move |d| {
            if let Some(dir) = new_save_dir {
                d.set_download_dir(dir);
            }
            if limits_changed {
                d.set_global_limits(limits);
            }
        })
        .await;
    super::done()
}

/// qBittorrent's bytes per second; 0 or less is unlimited.
fn set_rate(value: &Value, into: &mut ByteRate) -> bool {
    match value.as_i64() {
        Some(v) => {
            *into = ByteRate(u64::try_from(v).unwrap_or(0));
            true
        }
        None => false,
    }
}

/// A count where -1 (or 0) means none, as our 0 does.
fn set_count(value: &Value, into: &mut u32) -> bool {
    match value.as_i64() {
        Some(v) => {
            *into = u32::try_from(v.max(0)).unwrap_or(u32::MAX);
            true
        }
        None => false,
    }
}
