//! The session methods: session-get/set/stats/close, free-space, port-test and
//! blocklist-update.
//!
//! session-set applies what ccbt-uring has a setting for (download-dir, the global speed
//! limits, the global seed ratio, the download and seed queue sizes) to the running
//! daemon's live configuration, kept across reloads and restarts unless the config changes
//! that key ([`crate::daemon::api_settings`]); a key it has no
//! setting for is accepted only when it asks for what session-get already reports, and
//! otherwise named in the error, so a client never believes a change that did not happen.

use std::sync::Arc;
use std::time::Duration;

use ccbt_config::Config;
use ccbt_shards::swarm::RateLimits;
use serde_json::{json, Map, Value};

use super::super::Api;
use super::dispatch::{Answer, Args};
use super::session_id;

pub const RPC_VERSION: i64 = 17;
pub const RPC_VERSION_MINIMUM: i64 = 14;
pub const RPC_VERSION_SEMVER: &str = "5.3.0";
/// Transmission's default speed limit, kB/s, shown while no limit is set.
const SPEED_LIMIT_DEFAULT_KBPS: u64 = 100;
/// How long free-space waits for the file system (a hung mount must not hold a request).
const STATVFS_WAIT: Duration = Duration::from_secs(5);

/// The `version` Sonarr/Radarr parse: a 4.0.x release (labels are on from 4.0), naming us.
pub fn version() -> String {
    format!("4.0.6 (ccbt-uring {})", env!("CARGO_PKG_VERSION"))
}

fn kbps(bytes_per_s: u64) -> (u64, bool) {
    if bytes_per_s == 0 {
        (SPEED_LIMIT_DEFAULT_KBPS, false)
    } else {
        (bytes_per_s.div_ceil(1000), true)
    }
}

/// Every session key, as session-get reports it.
fn values(api: &Api, config: &Config) -> Map<String, Value> {
    let (down, down_on) = kbps(config.limits.download_bytes_per_s.0);
    let (up, up_on) = kbps(config.limits.upload_bytes_per_s.0);
    let queue = &config.queue;
    let shards = api.daemon.shard_count() as u64;
    let v = json!({
        "alt-speed-down": 50, "alt-speed-enabled": false, "alt-speed-time-begin": 540,
        "alt-speed-time-day": 127, "alt-speed-time-enabled": false, "alt-speed-time-end": 1020,
        "alt-speed-up": 50,
        "blocklist-enabled": config.blocklist.path.is_some(),
        "blocklist-size": 0,
        "blocklist-url": "",
        "cache-size-mb": config.limits.cache_mib,
        "config-dir": config.daemon.state_dir.display().to_string(),
        "dht-enabled": false,
        "download-dir": api.daemon.download_dir().display().to_string(),
        "download-queue-enabled": queue.max_active_downloads > 0,
        "download-queue-size": queue.max_active_downloads,
        "encryption": "tolerated",
        "idle-seeding-limit": 30,
        "idle-seeding-limit-enabled": false,
        "incomplete-dir": "",
        "incomplete-dir-enabled": false,
        "lpd-enabled": false,
    });
    let more = json!({
        "peer-limit-global": u64::from(config.limits.max_connections_per_shard) * shards,
        "peer-limit-per-torrent": config.limits.max_peers_per_torrent,
        "peer-port": api.daemon.port(),
        "peer-port-random-on-start": false,
        "pex-enabled": false,
        "port-forwarding-enabled": false,
        "queue-stalled-enabled": false,
        "queue-stalled-minutes": 30,
        "rename-partial-files": false,
        "rpc-version": RPC_VERSION,
        "rpc-version-minimum": RPC_VERSION_MINIMUM,
        "rpc-version-semver": RPC_VERSION_SEMVER,
        "script-torrent-added-enabled": false,
        "script-torrent-added-filename": "",
        "script-torrent-done-enabled": config.hooks.on_complete.is_some(),
        "script-torrent-done-filename": config.hooks.on_complete.as_ref()
            .map_or(String::new(), |p| p.display().to_string()),
        "script-torrent-done-seeding-enabled": false,
        "script-torrent-done-seeding-filename": "",
    });
    let rest = json!({
        "seed-queue-enabled": queue.max_active_seeds > 0,
        "seed-queue-size": queue.max_active_seeds,
        "seedRatioLimit": config.share.ratio_limit.unwrap_or(2.0),
        "seedRatioLimited": config.share.ratio_limit.is_some(),
        "session-id": session_id::current(),
        "speed-limit-down": down,
        "speed-limit-down-enabled": down_on,
        "speed-limit-up": up,
        "speed-limit-up-enabled": up_on,
        "start-added-torrents": true,
        "tcp-enabled": true,
        "trash-original-torrent-files": false,
        "units": {
            "speed-units": ["kB/s", "MB/s", "GB/s", "TB/s"], "speed-bytes": 1000,
            "size-units": ["kB", "MB", "GB", "TB"], "size-bytes": 1000,
            "memory-units": ["KiB", "MiB", "GiB", "TiB"], "memory-bytes": 1024
        },
        "utp-enabled": false,
        "version": version(),
    });
    [v, more, rest]
        .into_iter()
        .filter_map(|part| match part {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .flatten()
        .collect()
}

pub async fn get(api: &Arc<Api>, args: &Args) -> Answer {
    let fields = args.strings("fields")?;
    let config = api.config();
    let api2 = api.clone();
    let mut all = api.blocking(move |_| values(&api2, &config)).await;
    Ok(match fields {
        None => all,
        Some(names) if names.is_empty() => all,
        Some(names) => names
            .iter()
            .filter_map(|n| all.remove(n).map(|v| (n.clone(), v)))
            .collect(),
    })
}

/// Two answers mean the same (2 and 2.0 are equal).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-9,
        _ => a == b,
    }
}

pub async fn set(api: &Arc<Api>, args: &Args) -> Answer {
    let mut config = api.config();
    let before = {
        let (api2, c) = (api.clone(), config.clone());
        api.blocking(move |_| values(&api2, &c)).await
    };
    let mut not_applied = Vec::new();
    let mut handled = std::collections::HashSet::new();
    let mut take = |key: &'static str| {
        handled.insert(key);
        key
    };

    let new_dir = match args.str(take("download-dir"))? {
        Some(dir) => Some(
            api.access
                .save_dir(dir, &api.blocking(|d| d.download_dir()).await)
                .map_err(|e| format!("download-dir: {e}"))?,
        ),
        None => None,
    };

    // Speed limits: ccbt-uring has one number per direction, 0 = none.
    let mut limits = RateLimits {
        upload_bytes_per_s: config.limits.upload_bytes_per_s.0,
        download_bytes_per_s: config.limits.download_bytes_per_s.0,
    };
    for (value_key, enabled_key, slot) in [
        (
            take("speed-limit-down"),
            take("speed-limit-down-enabled"),
            &mut limits.download_bytes_per_s,
        ),
        (
            take("speed-limit-up"),
            take("speed-limit-up-enabled"),
            &mut limits.upload_bytes_per_s,
        ),
    ] {
        let value = args
            .int(value_key)?
            .map(|k| k.clamp(0, super::torrent_set::KBPS_MAX) as u64);
        match (args.bool(enabled_key)?, value) {
            (Some(false), _) => *slot = 0,
            (Some(true), v) => *slot = v.unwrap_or_else(|| kbps(*slot).0).saturating_mul(1000),
            (None, Some(v)) if *slot != 0 => *slot = v.saturating_mul(1000),
            (None, Some(v)) if v != SPEED_LIMIT_DEFAULT_KBPS => not_applied.push(format!(
                "{value_key} (no limit is on: ccbt-uring keeps no disabled limit; send \
                 {enabled_key} too)"
            )),
            (None, _) => {}
        }
    }

    let ratio = args.real(take("seedRatioLimit"))?;
    match (args.bool(take("seedRatioLimited"))?, ratio) {
        (Some(false), _) => config.share.ratio_limit = None,
        (Some(true), r) => {
            config.share.ratio_limit = Some(r.or(config.share.ratio_limit).unwrap_or(2.0))
        }
        (None, Some(r)) if config.share.ratio_limit.is_some() => config.share.ratio_limit = Some(r),
        (None, Some(r)) if (r - 2.0).abs() > 1e-9 => not_applied
            .push("seedRatioLimit (no ratio limit is on; send seedRatioLimited too)".to_string()),
        (None, _) => {}
    }

    for (size_key, enabled_key, slot) in [
        (
            take("download-queue-size"),
            take("download-queue-enabled"),
            &mut config.queue.max_active_downloads,
        ),
        (
            take("seed-queue-size"),
            take("seed-queue-enabled"),
            &mut config.queue.max_active_seeds,
        ),
    ] {
        let size = args
            .int(size_key)?
            .map(|n| n.clamp(0, i64::from(u32::MAX)) as u32);
        match (args.bool(enabled_key)?, size) {
            (Some(false), _) => *slot = 0,
            (Some(true), Some(n)) => *slot = n,
            (Some(true), None) if *slot == 0 => {
                not_applied.push(format!("{enabled_key} (send {size_key} too)"))
            }
            (None, Some(n)) if *slot != 0 => *slot = n,
            (None, Some(_)) => not_applied.push(format!(
                "{size_key} (the queue is off; send {enabled_key} too)"
            )),
            _ => {}
        }
    }

    for key in args.keys() {
        if handled.contains(key) {
            continue;
        }
        let asked = args.raw(key).expect("a listed key");
        if !before.get(key).is_some_and(|now| same(now, asked)) {
            not_applied.push(key.to_string());
        }
    }

    // Apply what was understood.
    if let Some(dir) = new_dir {
        config.daemon.download_dir = dir.clone();
        api.blocking(move |d| d.set_download_dir(dir)).await;
    }
    let old_limits = {
        let live = api.config.lock().expect("config lock");
        RateLimits {
            upload_bytes_per_s: live.limits.upload_bytes_per_s.0,
            download_bytes_per_s: live.limits.download_bytes_per_s.0,
        }
    };
    config.limits.upload_bytes_per_s.0 = limits.upload_bytes_per_s;
    config.limits.download_bytes_per_s.0 = limits.download_bytes_per_s;
    if limits != old_limits {
        api.blocking(move |d| d.set_global_limits(limits)).await;
    }
    let downloads = config.queue.max_active_downloads;
    api.set_config("Transmission session-set", config);
    api.blocking(move |d| d.set_max_active_downloads(downloads))
        .await;

    if not_applied.is_empty() {
        Ok(Map::new())
    } else {
        Err(format!(
            "not applied (ccbt-uring has no such setting, or not this value): {}",
            not_applied.join(", ")
        ))
    }
}

pub async fn stats(api: &Arc<Api>) -> Answer {
    use std::sync::atomic::Ordering::Relaxed;
    let seconds = api.started.elapsed().as_secs();
    let totals = api
        .blocking(|d| {
            let mut t = Totals::default();
            d.for_each_entry(|e| {
                let s = &e.status;
                t.torrents += 1;
                match s.state() {
                    ccbt_shards::swarm::TorrentState::Downloading
                    | ccbt_shards::swarm::TorrentState::Seeding
                    | ccbt_shards::swarm::TorrentState::Checking => t.active += 1,
                    _ => t.paused += 1,
                }
                t.up_rate += s.upload_rate.load(Relaxed);
                t.down_rate += s.download_rate.load(Relaxed);
                t.up_now += s.uploaded.load(Relaxed);
                t.down_now += s.downloaded.load(Relaxed);
                t.up_ever += e.uploaded_before + s.uploaded.load(Relaxed);
                t.down_ever += e.downloaded_before + s.downloaded.load(Relaxed);
            });
            t
        })
        .await;
    let v = json!({
        "activeTorrentCount": totals.active,
        "pausedTorrentCount": totals.paused,
        "torrentCount": totals.torrents,
        "downloadSpeed": totals.down_rate,
        "uploadSpeed": totals.up_rate,
        "current-stats": {
            "uploadedBytes": totals.up_now, "downloadedBytes": totals.down_now,
            "filesAdded": 0, "sessionCount": 1, "secondsActive": seconds
        },
        // Totals over every run of the torrents the daemon holds now (removed torrents'
        // bytes and earlier runs' time are not kept).
        "cumulative-stats": {
            "uploadedBytes": totals.up_ever, "downloadedBytes": totals.down_ever,
            "filesAdded": totals.torrents, "sessionCount": 1, "secondsActive": seconds
        },
    });
    Ok(v.as_object().cloned().unwrap_or_default())
}

#[derive(Default)]
struct Totals {
    torrents: u64,
    active: u64,
    paused: u64,
    up_rate: u64,
    down_rate: u64,
    up_now: u64,
    down_now: u64,
    up_ever: u64,
    down_ever: u64,
}

/// session-close: the daemon stops (as after SIGTERM), after this answer is sent.
pub fn close(api: &Arc<Api>) -> Answer {
    tracing::info!("session-close: stopping the daemon");
    api.stop.store(true, std::sync::atomic::Ordering::Release);
    Ok(Map::new())
}

pub async fn free_space(args: &Args) -> Answer {
    let path = args
        .str("path")?
        .ok_or("free-space needs \"path\"")?
        .to_string();
    let asked = path.clone();
    let stat = tokio::time::timeout(
        STATVFS_WAIT,
        tokio::task::spawn_blocking(move || nix::sys::statvfs::statvfs(asked.as_str())),
    )
    .await
    .map_err(|_| format!("{path}: the file system did not answer within 5 s"))?
    .map_err(|_| "free-space: the query failed".to_string())?
    .map_err(|e| format!("{path}: {}", e.desc()))?;
    let block = stat.fragment_size();
    let mut out = Map::new();
    out.insert("path".into(), json!(path));
    out.insert(
        "size-bytes".into(),
        json!(stat.blocks_available().saturating_mul(block)),
    );
    out.insert(
        "total_size".into(),
        json!(stat.blocks().saturating_mul(block)),
    );
    Ok(out)
}

pub fn port_test() -> Answer {
    Err(
        "port-test is not supported: ccbt-uring has no outside service to test its \
         peer port from; check it from another host"
            .into(),
    )
}

pub fn blocklist_update(api: &Arc<Api>) -> Answer {
    let config = api.config();
    Err(match config.blocklist.path {
        Some(path) => format!(
            "blocklist-update is not supported: ccbt-uring reads its blocklist from {} \
             (blocklist.path) and reloads it when the file changes",
            path.display()
        ),
        None => "blocklist-update is not supported: ccbt-uring downloads no blocklist; \
                 set blocklist.path to a file it reloads when it changes"
            .into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_a_4_0_release_that_names_us() {
        assert!(version().starts_with("4.0.6 (ccbt-uring "));
        assert!(same(&json!(2), &json!(2.0)));
        assert!(!same(&json!(true), &json!(false)));
        assert_eq!(kbps(0), (100, false));
        assert_eq!(kbps(5_000), (5, true));
    }
}
