//! torrent-set: file selection and priorities, speed limits (kB/s, with their *Limited
//! flags), seed ratio and idle limits with their modes, labels, queue position,
//! sequential download and the trackers (`trackerList`, or `trackerAdd`, `trackerRemove`
//! and `trackerReplace`), for each torrent named.
//!
//! Keys ccbt-uring cannot honour (`location` without a move, bandwidth priority,
//! per-torrent peer limits) are named in the error; the others still apply.

use std::sync::Arc;

use ccbt_engine::picker::Priority;
use ccbt_engine::InfoHash;

use crate::daemon::catalog::Row;
use crate::daemon::core::{priority_of, Override, ShareOverride};

use super::super::Api;
use super::dispatch::{Answer, Args};
use super::ids;

/// The largest speed limit taken, kB/s (about 4 TB/s): larger values are capped.
pub const KBPS_MAX: i64 = u32::MAX as i64;

/// Keys named in the error rather than applied, with why.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("location", "use torrent-set-location"),
    ("bandwidthPriority", "torrents have no bandwidth priority"),
    (
        "peer-limit",
        "the peer limit is per daemon (limits.max_peers_per_torrent)",
    ),
    (
        "honorsSessionLimits",
        "every torrent honours the global limits",
    ),
    ("group", "bandwidth groups are not supported"),
];

pub async fn set(api: &Arc<Api>, args: &Args) -> Answer {
    let selection = ids::select(&api.catalog, args)?;
    let changes = Changes::read(args)?;
    let mut problems: Vec<String> = UNSUPPORTED
        .iter()
        .filter(|(k, _)| args.has(k))
        .map(|(k, why)| format!("{k} ({why})"))
        .collect();
    for row in &selection.rows {
        if let Err(e) = apply(api, row, &changes).await {
            problems.push(format!("torrent {}: {e}", row.id));
        }
    }
    api.refreshed().await;
    if problems.is_empty() {
        Ok(Default::default())
    } else {
        Err(format!("not applied: {}", problems.join("; ")))
    }
}

/// What a torrent-set (or a torrent-add's file keys) asks to change.
#[derive(Debug, Default)]
pub struct Changes {
    wanted: Option<Vec<usize>>,
    unwanted: Option<Vec<usize>>,
    high: Option<Vec<usize>>,
    normal: Option<Vec<usize>>,
    low: Option<Vec<usize>>,
    upload_kbps: Option<i64>,
    upload_limited: Option<bool>,
    download_kbps: Option<i64>,
    download_limited: Option<bool>,
    ratio: Option<f64>,
    ratio_mode: Option<i64>,
    idle_minutes: Option<i64>,
    idle_mode: Option<i64>,
    labels: Option<Vec<String>>,
    queue_position: Option<i64>,
    sequential: Option<bool>,
    trackers: Option<TrackerEdit>,
}

/// How torrent-set changes the trackers (tracker ids are their places in torrent-get's
/// `trackers`, tiers in order).
#[derive(Debug)]
enum TrackerEdit {
    /// `trackerList` (rpc-version 17): the whole list, a blank line between tiers.
    List(Vec<Vec<String>>),
    /// `trackerAdd`, `trackerRemove`, `trackerReplace` (older clients, transmission-remote
    /// 3.00's `-td` and `-tr`): each added URL a tier of its own at the end.
    Edit {
        add: Vec<String>,
        remove: Vec<usize>,
        replace: Vec<(usize, String)>,
    },
}

impl TrackerEdit {
    fn read(args: &Args) -> Result<Option<TrackerEdit>, String> {
        if let Some(list) = args.str("trackerList")? {
            return Ok(Some(TrackerEdit::List(
                crate::daemon::trackers::parse_list(list),
            )));
        }
        let add = args.strings("trackerAdd")?;
        let remove = args.indices("trackerRemove")?;
        let replace = match args.raw("trackerReplace") {
            None => None,
            Some(serde_json::Value::Array(items)) => {
                let mut pairs = Vec::new();
                for pair in items.chunks(2) {
                    match pair {
                        [serde_json::Value::Number(id), serde_json::Value::String(url)] => {
                            let id = id
                                .as_u64()
                                .ok_or("trackerReplace: a tracker id is not a whole number")?;
                            pairs.push((id as usize, url.clone()));
                        }
                        _ => {
                            return Err("trackerReplace must alternate tracker ids and URLs".into())
                        }
                    }
                }
                Some(pairs)
            }
            Some(_) => return Err("trackerReplace must be an array".into()),
        };
        if add.is_none() && remove.is_none() && replace.is_none() {
            return Ok(None);
        }
        Ok(Some(TrackerEdit::Edit {
            add: add.unwrap_or_default(),
            remove: remove.unwrap_or_default(),
            replace: replace.unwrap_or_default(),
        }))
    }

    /// The tiers after the edit, from the torrent's `current` ones.
    fn apply(&self, current: Vec<Vec<String>>) -> Result<Vec<Vec<String>>, String> {
        let (add, remove, replace) = match self {
            TrackerEdit::List(tiers) => return Ok(tiers.clone()),
            TrackerEdit::Edit {
                add,
                remove,
                replace,
            } => (add, remove, replace),
        };
        let count: usize = current.iter().map(Vec::len).sum();
        let unknown = |id: usize| format!("no tracker {id} (the torrent has {count})");
        let mut tiers = current;
        let mut id = 0;
        for tier in &mut tiers {
            for url in tier.iter_mut() {
                if let Some((_, new)) = replace.iter().find(|(r, _)| *r == id) {
                    *url = new.clone();
                }
                id += 1;
            }
        }
        if let Some(&bad) = replace
            .iter()
            .map(|(r, _)| r)
            .chain(remove)
            .find(|&&r| r >= count)
        {
            return Err(unknown(bad));
        }
        let mut id = 0;
        for tier in &mut tiers {
            tier.retain(|_| {
                let keep = !remove.contains(&id);
                id += 1;
                keep
            });
        }
        tiers.extend(add.iter().map(|url| vec![url.clone()]));
        Ok(tiers)
    }
}

impl Changes {
    pub fn read(args: &Args) -> Result<Changes, String> {
        let labels = args.strings("labels")?;
        if let Some(bad) = labels.iter().flatten().find(|l| l.contains(',')) {
            return Err(format!(
                "label \"{bad}\" has a comma, which labels cannot hold"
            ));
        }
        Ok(Changes {
            wanted: args.indices("files-wanted")?,
            unwanted: args.indices("files-unwanted")?,
            high: args.indices("priority-high")?,
            normal: args.indices("priority-normal")?,
            low: args.indices("priority-low")?,
            upload_kbps: args.int("uploadLimit")?,
            upload_limited: args.bool("uploadLimited")?,
            download_kbps: args.int("downloadLimit")?,
            download_limited: args.bool("downloadLimited")?,
            ratio: args.real("seedRatioLimit")?,
            ratio_mode: args.int("seedRatioMode")?,
            idle_minutes: args.int("seedIdleLimit")?,
            idle_mode: args.int("seedIdleMode")?,
            labels,
            queue_position: args.int("queuePosition")?,
            sequential: args.bool("sequentialDownload")?,
            trackers: TrackerEdit::read(args)?,
        })
    }

    fn touches_files(&self) -> bool {
        self.wanted.is_some()
            || self.unwanted.is_some()
            || self.high.is_some()
            || self.normal.is_some()
            || self.low.is_some()
    }
}

/// Applies `changes` to one torrent.
pub async fn apply(api: &Arc<Api>, row: &Row, c: &Changes) -> Result<(), String> {
    let hash = row.info_hash;
    let fixed = &row.fixed;
    let files = fixed.meta.info.layout.files().len();
    if c.touches_files() {
        let priorities = file_priorities(&fixed.settings.priorities, files, c)?;
        run(api, move |d| d.set_priorities(hash, priorities)).await?;
    }
    let settings = &fixed.settings;
    let upload = limit(c.upload_kbps, c.upload_limited, settings.upload_bytes_per_s);
    let download = limit(
        c.download_kbps,
        c.download_limited,
        settings.download_bytes_per_s,
    );
    if (upload, download) != (settings.upload_bytes_per_s, settings.download_bytes_per_s) {
        run(api, move |d| d.set_limits(hash, upload, download)).await?;
    }
    let share = ShareOverride {
        ratio: over(c.ratio_mode, c.ratio, settings.share.ratio, "seedRatio")?,
        idle_minutes: over(
            c.idle_mode,
            c.idle_minutes.map(|m| m.max(0) as u64),
            settings.share.idle_minutes,
            "seedIdle",
        )?,
        seeding_minutes: settings.share.seeding_minutes,
    };
    if share != settings.share {
        run(api, move |d| d.set_share(hash, share)).await?;
    }
    if let Some(labels) = &c.labels {
        let (category, tags) = (fixed.category.clone(), labels.clone());
        run(api, move |d| d.set_labels(hash, category, tags)).await?;
    }
    if let Some(edit) = &c.trackers {
        let tiers = edit.apply(fixed.meta.trackers())?;
        run(api, move |d| d.set_trackers(hash, tiers)).await?;
    }
    if let Some(on) = c.sequential {
        if on != settings.sequential {
            run(api, move |d| d.set_sequential(hash, on)).await?;
        }
    }
    if let Some(position) = c.queue_position {
        let order = queue_with(api, hash, position.max(0) as usize);
        run(api, move |d| d.reorder_queue(&order)).await?;
    }
    Ok(())
}

async fn run(
    api: &Arc<Api>,
    f: impl FnOnce(&crate::daemon::core::Daemon) -> Result<(), crate::daemon::core::DaemonError>
        + Send
        + 'static,
) -> Result<(), String> {
    api.blocking(f).await.map_err(|e| e.to_string())
}

/// Every torrent in queue order, with `hash` moved to `position`.
fn queue_with(api: &Api, hash: InfoHash, position: usize) -> Vec<InfoHash> {
    let snapshot = api.catalog.current();
    let mut rows: Vec<_> = snapshot
        .rows
        .iter()
        .filter(|r| r.info_hash != hash)
        .map(|r| (r.fixed.queue_position, r.info_hash))
        .collect();
    rows.sort();
    let mut order: Vec<InfoHash> = rows.into_iter().map(|(_, h)| h).collect();
    order.insert(position.min(order.len()), hash);
    order
}

/// The new limit in bytes per second (0: none), from kB/s and the *Limited flag. A value
/// is capped at [`KBPS_MAX`].
fn limit(kbps: Option<i64>, limited: Option<bool>, now: u64) -> u64 {
    let bytes = kbps.map(|k| k.clamp(0, KBPS_MAX) as u64 * 1000);
    match (limited, bytes) {
        (Some(false), _) => 0,
        (Some(true), Some(b)) => b,
        // Turned on without a value: Transmission's default, 100 kB/s.
        (Some(true), None) if now == 0 => 100_000,
        (Some(true), None) => now,
        // A value alone sets the limit (ccbt-uring keeps no disabled limit).
        (None, Some(b)) => b,
        (None, None) => now,
    }
}

/// A share limit from Transmission's mode (0 global, 1 its own, 2 unlimited) and value.
fn over<T: Copy>(
    mode: Option<i64>,
    value: Option<T>,
    now: Override<T>,
    name: &str,
) -> Result<Override<T>, String> {
    Ok(match (mode, value) {
        (Some(0), _) => Override::Global,
        (Some(2), _) => Override::Unlimited,
        (Some(1), Some(v)) => Override::Limit(v),
        (Some(1), None) => match now {
            Override::Limit(v) => Override::Limit(v),
            _ => return Err(format!("{name}Mode 1 needs {name}Limit")),
        },
        (Some(m), _) => return Err(format!("{name}Mode {m} is not 0, 1 or 2")),
        // A value alone: its own limit, as when the mode says so.
        (None, Some(v)) => Override::Limit(v),
        (None, None) => now,
    })
}

/// Per-file priorities after the change; an empty index list means every file.
fn file_priorities(now: &[i8], files: usize, c: &Changes) -> Result<Vec<Priority>, String> {
    let mut codes: Vec<i8> = (0..files)
        .map(|i| now.get(i).copied().unwrap_or(1))
        .collect();
    // A file's priority is kept apart from whether it is wanted: a skipped file that is
    // wanted again gets normal priority unless a priority is given.
    let mut set = |list: &Option<Vec<usize>>, f: &dyn Fn(i8) -> i8| -> Result<(), String> {
        let Some(list) = list else { return Ok(()) };
        let all: Vec<usize> = if list.is_empty() {
            (0..files).collect()
        } else {
            list.clone()
        };
        for i in all {
            let slot = codes.get_mut(i).ok_or_else(|| {
                format!("file index {i} is out of range (the torrent has {files} files)")
            })?;
            *slot = f(*slot);
        }
        Ok(())
    };
    set(&c.wanted, &|p| if p < 0 { 1 } else { p })?;
    set(&c.unwanted, &|_| -1)?;
    set(&c.high, &|p| if p < 0 { p } else { 2 })?;
    set(&c.normal, &|p| if p < 0 { p } else { 1 })?;
    set(&c.low, &|p| if p < 0 { p } else { 0 })?;
    Ok(codes.into_iter().map(priority_of).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edit(args: serde_json::Value) -> TrackerEdit {
        let args = Args(args.as_object().unwrap().clone());
        TrackerEdit::read(&args).unwrap().expect("an edit")
    }

    #[test]
    fn tracker_edits_work_on_ids_in_tier_order() {
        let current = vec![
            vec!["http://a/1".to_string(), "http://b/1".to_string()],
            vec!["udp://c:80".to_string()],
        ];
        let e = edit(serde_json::json!({
            "trackerRemove": [1], "trackerReplace": [2, "udp://d:80"], "trackerAdd": ["http://e/1"]
        }));
        assert_eq!(
            e.apply(current.clone()).unwrap(),
            vec![
                vec!["http://a/1".to_string()],
                vec!["udp://d:80".to_string()],
                vec!["http://e/1".to_string()]
            ]
        );
        let e = edit(serde_json::json!({"trackerRemove": [3]}));
        assert!(e
            .apply(current.clone())
            .unwrap_err()
            .contains("no tracker 3"));
        let e = edit(serde_json::json!({"trackerList": "http://x/1\n\nhttp://y/1"}));
        assert_eq!(
            e.apply(current).unwrap(),
            vec![
                vec!["http://x/1".to_string()],
                vec!["http://y/1".to_string()]
            ]
        );
        let args = Args(
            serde_json::json!({"trackerReplace": ["1", 2]})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert!(TrackerEdit::read(&args).is_err());
    }

    #[test]
    fn limits_follow_the_limited_flags() {
        assert_eq!(limit(Some(50), Some(true), 0), 50_000);
        assert_eq!(limit(Some(50), Some(false), 7), 0);
        assert_eq!(limit(None, Some(true), 0), 100_000);
        assert_eq!(limit(Some(20), None, 0), 20_000);
        assert_eq!(limit(None, None, 9), 9);
        assert_eq!(limit(Some(i64::MAX), Some(true), 0), KBPS_MAX as u64 * 1000);
    }

    #[test]
    fn share_modes_map_to_overrides() {
        let none: Override<f64> = Override::Global;
        assert_eq!(
            over(Some(1), Some(1.5), none, "r"),
            Ok(Override::Limit(1.5))
        );
        assert_eq!(over(Some(2), Some(1.5), none, "r"), Ok(Override::Unlimited));
        assert_eq!(
            over(Some(0), None, Override::Limit(3.0), "r"),
            Ok(Override::Global)
        );
        assert!(over(Some(1), None, none, "r").is_err());
        assert!(over(Some(7), None, none, "r").is_err());
    }

    #[test]
    fn file_selection_and_priorities_combine() {
        let c = Changes {
            unwanted: Some(vec![1]),
            high: Some(vec![0, 1]),
            ..Changes::default()
        };
        assert_eq!(
            file_priorities(&[], 3, &c),
            Ok(vec![Priority::High, Priority::Skip, Priority::Normal])
        );
        let again = Changes {
            wanted: Some(vec![]),
            ..Changes::default()
        };
        assert_eq!(
            file_priorities(&[2, -1, 0], 3, &again),
            Ok(vec![Priority::High, Priority::Normal, Priority::Low])
        );
        let bad = Changes {
            low: Some(vec![5]),
            ..Changes::default()
        };
        assert!(file_priorities(&[], 3, &bad)
            .unwrap_err()
            .contains("out of range"));
    }
}
