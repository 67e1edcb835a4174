//! Commands on torrents named by `hashes` (`all` or `|`-separated): delete, stop/start
//! (and the 4.x pause/resume), recheck, reannounce, location, share and rate limits, file
//! priorities, queue order, force start, sequential download (tracker edits are in
//! `tracker_edits`).
//!
//! As in qBittorrent, hashes that name no torrent are skipped in bulk commands; a
//! command that names one torrent (`hash`) answers 404 for an unknown one.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use ccbt_engine::InfoHash;
use serde_json::{Map, Value};

use super::params::{Hashes, Params};
use super::{done, json, Qbt, Refusal, Reply};
use crate::daemon::core::{priority_of, Daemon, DaemonError, Override, ShareOverride};
use crate::daemon::queue_moves::{reordered, Move};

/// The torrents `hashes` names that exist, in queue order.
pub fn targets(q: &Qbt, p: &Params) -> Result<Vec<InfoHash>, Refusal> {
    let snapshot = q.api.catalog.current();
    let mut rows: Vec<_> = match p.hashes()? {
        Hashes::All => snapshot.rows.iter().collect(),
        Hashes::Some(list) => list.iter().filter_map(|h| snapshot.get(h)).collect(),
    };
    rows.sort_by_key(|r| r.fixed.queue_position);
    let mut seen = HashSet::new();
    Ok(rows
        .into_iter()
        .map(|r| r.info_hash)
        .filter(|h| seen.insert(*h))
        .collect())
}

/// Runs `f` on each target on the blocking pool, then refreshes the catalog. A torrent
/// removed meanwhile is skipped; the first other error is the answer.
pub async fn each(
    q: &Qbt,
    hashes: Vec<InfoHash>,
    f: impl Fn(&Daemon, InfoHash) -> Result<(), DaemonError> + Send + 'static,
) -> Reply {
    let result = q
        .api
        .blocking(move |d| {
            for h in hashes {
                match f(d, h) {
                    Ok(()) | Err(DaemonError::Unknown(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
        .await;
    q.api.refreshed().await;
    result?;
    done()
}

pub async fn delete(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let delete_files = p.flag("deleteFiles")?.unwrap_or(false);
    let hashes = targets(&q, &p)?;
    each(&q, hashes, move |d, h| d.remove(h, delete_files)).await
}

pub async fn stop(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let hashes = targets(&q, &p)?;
    each(&q, hashes, |d, h| d.pause(h)).await
}

pub async fn start(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let hashes = targets(&q, &p)?;
    each(&q, hashes, |d, h| d.resume(h)).await
}

pub async fn recheck(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let hashes = targets(&q, &p)?;
    each(&q, hashes, |d, h| d.recheck(h)).await
}

pub async fn reannounce(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let hashes = targets(&q, &p)?;
    each(&q, hashes, |d, h| d.reannounce(h)).await
}

/// Force start: we have no queue bypass, so `value=true` starts the torrent and the
/// queue still applies to it; `false` changes nothing.
pub async fn set_force_start(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let on = p.flag("value")?.unwrap_or(false);
    let hashes = targets(&q, &p)?;
    if !on {
        return done();
    }
    each(&q, hashes, |d, h| d.resume(h)).await
}

pub async fn toggle_sequential(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let snapshot = q.api.catalog.current();
    let flips: Vec<(InfoHash, bool)> = targets(&q, &p)?
        .into_iter()
        .filter_map(|h| snapshot.get(&h).map(|r| (h, !r.fixed.settings.sequential)))
        .collect();
    let hashes = flips.iter().map(|(h, _)| *h).collect();
    let flips: std::collections::HashMap<InfoHash, bool> = flips.into_iter().collect();
    each(&q, hashes, move |d, h| d.set_sequential(h, flips[&h])).await
}

pub async fn set_location(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let location = p.need("location")?;
    if location.trim().is_empty() {
        return Err(Refusal::bad("Save path cannot be empty"));
    }
    let to = q
        .api
        .access
        .save_dir(location, &q.api.daemon.download_dir())
        .map_err(|e| Refusal(StatusCode::FORBIDDEN, format!("location: {e}")))?;
    let hashes = targets(&q, &p)?;
    each(&q, hashes, move |d, h| d.move_storage(h, to.clone())).await
}

/// -2 as configured, -1 none, else the limit; what qBittorrent's setShareLimits takes.
fn share_limit<T>(
    p: &Params,
    name: &str,
    make: impl Fn(f64) -> Option<T>,
) -> Result<Override<T>, Refusal> {
    let v = p
        .real(name)?
        .ok_or_else(|| Refusal::bad(format!("Missing parameter: {name}")))?;
    Ok(match v {
        -2.0 => Override::Global,
        -1.0 => Override::Unlimited,
        v if v >= 0.0 => Override::Limit(
            make(v).ok_or_else(|| Refusal::bad(format!("{name}: {v} is out of range")))?,
        ),
        v => {
            return Err(Refusal::bad(format!(
                "{name}: {v} is not -2, -1 or a limit"
            )))
        }
    })
}

pub async fn set_share_limits(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let minutes = |v: f64| (v.fract() == 0.0 && v <= u32::MAX as f64).then_some(v as u64);
    let ratio = share_limit(&p, "ratioLimit", Some)?;
    let seeding_minutes = share_limit(&p, "seedingTimeLimit", minutes)?;
    // Optional before WebAPI 2.9.
    let idle_minutes = if p.get("inactiveSeedingTimeLimit").is_some() {
        share_limit(&p, "inactiveSeedingTimeLimit", minutes)?
    } else {
        Override::Global
    };
    let share = ShareOverride {
        ratio,
        seeding_minutes,
        idle_minutes,
    };
    let hashes = targets(&q, &p)?;
    each(&q, hashes, move |d, h| d.set_share(h, share)).await
}

/// A per-torrent rate limit, bytes per second; 0 or less is none.
fn rate_limit(p: &Params) -> Result<u64, Refusal> {
    let v: i64 = p
        .number("limit")?
        .ok_or_else(|| Refusal::bad("Missing parameter: limit"))?;
    Ok(u64::try_from(v).unwrap_or(0))
}

/// Sets one direction of the targets' rate limits, keeping the other.
async fn set_rate(q: &Qbt, p: &Params, upload: bool) -> Reply {
    let limit = rate_limit(p)?;
    let snapshot = q.api.catalog.current();
    let hashes = targets(q, p)?;
    let current: std::collections::HashMap<InfoHash, (u64, u64)> = hashes
        .iter()
        .filter_map(|h| snapshot.get(h))
        .map(|r| {
            let s = &r.fixed.settings;
            (r.info_hash, (s.upload_bytes_per_s, s.download_bytes_per_s))
        })
        .collect();
    each(q, hashes, move |d, h| {
        let (up, down) = current.get(&h).copied().unwrap_or((0, 0));
        if upload {
            d.set_limits(h, limit, down)
        } else {
            d.set_limits(h, up, limit)
        }
    })
    .await
}

pub async fn set_upload_limit(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    set_rate(&q, &p, true).await
}

pub async fn set_download_limit(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    set_rate(&q, &p, false).await
}

/// `{hash: limit}` with 0 for none, as qBittorrent's uploadLimit/downloadLimit answer.
fn limits_of(q: &Qbt, p: &Params, upload: bool) -> Reply {
    let snapshot = q.api.catalog.current();
    let mut out = Map::new();
    for h in targets(q, p)? {
        if let Some(r) = snapshot.get(&h) {
            let s = &r.fixed.settings;
            let v = if upload {
                s.upload_bytes_per_s
            } else {
                s.download_bytes_per_s
            };
            out.insert(h.to_hex(), Value::from(v));
        }
    }
    json(Value::Object(out))
}

pub async fn upload_limit(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    limits_of(&q, &p, true)
}

pub async fn download_limit(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    limits_of(&q, &p, false)
}

/// qBittorrent's file priority codes to ours: 0 skip, 1 normal, 6 and 7 high.
pub fn priority_from_qbt(code: i64) -> Option<i8> {
    match code {
        0 => Some(-1),
        1 => Some(1),
        6 | 7 => Some(2),
        _ => None,
    }
}

pub async fn file_prio(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let hash = p.hash()?;
    let code: i64 = p
        .number("priority")?
        .ok_or_else(|| Refusal::bad("Missing parameter: priority"))?;
    let ours = priority_from_qbt(code)
        .ok_or_else(|| Refusal::bad(format!("Priority is not valid: {code}")))?;
    let ids: Vec<usize> = p
        .need("id")?
        .split('|')
        .map(|i| {
            i.trim()
                .parse()
                .map_err(|_| Refusal::bad(format!("File IDs must be integers: {i:?}")))
        })
        .collect::<Result<_, _>>()?;
    let snapshot = q.api.catalog.current();
    let row = snapshot.get(&hash).ok_or_else(Refusal::not_found)?;
    let files = row.fixed.meta.info.layout.files().len();
    if let Some(bad) = ids.iter().find(|&&i| i >= files) {
        return Err(Refusal(
            StatusCode::CONFLICT,
            format!("File ID is not valid: {bad}"),
        ));
    }
    let settings = &row.fixed.settings;
    let priorities: Vec<_> = (0..files)
        .map(|i| {
            if ids.contains(&i) {
                priority_of(ours)
            } else {
                settings.priority(i)
            }
        })
        .collect();
    each(&q, vec![hash], move |d, h| {
        d.set_priorities(h, priorities.clone())
    })
    .await
}

async fn queue_move(q: &Qbt, p: &Params, how: Move) -> Reply {
    let c = q.api.config();
    if c.queue.max_active_downloads == 0 && c.queue.max_active_seeds == 0 {
        return Err(Refusal::conflict("Torrent queueing must be enabled"));
    }
    let selected: HashSet<InfoHash> = targets(q, p)?.into_iter().collect();
    let snapshot = q.api.catalog.current();
    let mut queue: Vec<_> = snapshot.rows.iter().collect();
    queue.sort_by_key(|r| r.fixed.queue_position);
    let queue: Vec<InfoHash> = queue.into_iter().map(|r| r.info_hash).collect();
    let order = reordered(&queue, &selected, how);
    q.api.blocking(move |d| d.reorder_queue(&order)).await?;
    q.api.refreshed().await;
    done()
}

pub async fn top_prio(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    queue_move(&q, &p, Move::Top).await
}

pub async fn bottom_prio(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    queue_move(&q, &p, Move::Bottom).await
}

pub async fn increase_prio(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    queue_move(&q, &p, Move::Up).await
}

pub async fn decrease_prio(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    queue_move(&q, &p, Move::Down).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(i: u8) -> InfoHash {
        InfoHash::from_str(&format!("{i:02x}").repeat(20)).unwrap()
    }
    use std::str::FromStr;

    #[test]
    fn queue_moves_keep_the_others_in_order() {
        let queue: Vec<InfoHash> = (0..5).map(h).collect();
        let sel: HashSet<InfoHash> = [h(2), h(4)].into_iter().collect();
        let names = |v: Vec<InfoHash>| v.iter().map(|x| x.as_bytes()[0]).collect::<Vec<u8>>();
        assert_eq!(names(reordered(&queue, &sel, Move::Top)), [2, 4, 0, 1, 3]);
        assert_eq!(
            names(reordered(&queue, &sel, Move::Bottom)),
            [0, 1, 3, 2, 4]
        );
        assert_eq!(names(reordered(&queue, &sel, Move::Up)), [0, 2, 1, 4, 3]);
        assert_eq!(names(reordered(&queue, &sel, Move::Down)), [0, 1, 3, 2, 4]);
        let first: HashSet<InfoHash> = [h(0)].into_iter().collect();
        assert_eq!(names(reordered(&queue, &first, Move::Up)), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn file_priorities_map_both_ways() {
        assert_eq!(priority_from_qbt(0), Some(-1));
        assert_eq!(priority_from_qbt(1), Some(1));
        assert_eq!(priority_from_qbt(7), Some(2));
        assert_eq!(priority_from_qbt(3), None);
        for code in [0, 1, 6] {
            let ours = priority_from_qbt(code).unwrap();
            assert_eq!(i64::from(super::super::details::qbt_priority(ours)), code);
        }
    }
}
