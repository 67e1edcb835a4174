//! `torrents/info`: the listing, filtered (`filter`, `category`, `tag`, `hashes`), sorted
//! by any key of the torrent object (`sort`, `reverse`) and paged (`offset`, `limit`), all
//! from the catalog's snapshot. Filtering happens on rows before anything is serialized,
//! so a narrow query over many torrents costs little.

use std::cmp::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::Value;

use super::params::{Hashes, Params};
use super::serialize::{self, Context, TorrentInfo};
use super::{Qbt, Refusal, Reply};
use crate::daemon::catalog::Row;

/// qBittorrent's `filter` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    All,
    Downloading,
    Seeding,
    Completed,
    Stopped,
    Running,
    Active,
    Inactive,
    Stalled,
    StalledUploading,
    StalledDownloading,
    Checking,
    Moving,
    Errored,
}

impl Filter {
    pub fn parse(text: &str) -> Option<Filter> {
        Some(match text {
            "all" | "" => Filter::All,
            "downloading" => Filter::Downloading,
            "seeding" | "uploading" => Filter::Seeding,
            "completed" => Filter::Completed,
            "stopped" | "paused" => Filter::Stopped,
            "running" | "resumed" => Filter::Running,
            "active" => Filter::Active,
            "inactive" => Filter::Inactive,
            "stalled" => Filter::Stalled,
            "stalled_uploading" => Filter::StalledUploading,
            "stalled_downloading" => Filter::StalledDownloading,
            "checking" => Filter::Checking,
            "moving" => Filter::Moving,
            "errored" => Filter::Errored,
            _ => return None,
        })
    }

    /// Whether a torrent in qBittorrent state `state` with these rates passes.
    pub fn admits(self, state: &str, moving_data: bool) -> bool {
        let downloading = matches!(
            state,
            "downloading"
                | "stalledDL"
                | "checkingDL"
                | "stoppedDL"
                | "queuedDL"
                | "forcedDL"
                | "metaDL"
                | "forcedMetaDL"
        );
        let uploading = matches!(
            state,
            "uploading" | "stalledUP" | "checkingUP" | "queuedUP" | "forcedUP"
        );
        let stopped = matches!(state, "stoppedUP" | "stoppedDL");
        let active = moving_data || state == "downloading";
        match self {
            Filter::All => true,
            Filter::Downloading => downloading,
            Filter::Seeding => uploading,
            Filter::Completed => uploading || state == "stoppedUP",
            Filter::Stopped => stopped,
            Filter::Running => !stopped,
            Filter::Active => active,
            Filter::Inactive => !active,
            Filter::Stalled => matches!(state, "stalledUP" | "stalledDL"),
            Filter::StalledUploading => state == "stalledUP",
            Filter::StalledDownloading => state == "stalledDL",
            Filter::Checking => state.starts_with("checking"),
            Filter::Moving => state == "moving",
            Filter::Errored => matches!(state, "error" | "missingFiles"),
        }
    }
}

/// The request's `filter`, `category`, `tag` and `hashes`.
pub struct Selection {
    filter: Filter,
    category: Option<String>,
    tag: Option<String>,
    /// Only these (looked up one by one, so a short list over many torrents is cheap).
    pub hashes: Option<Vec<ccbt_engine::InfoHash>>,
}

impl Selection {
    pub fn from_params(p: &Params) -> Result<Selection, Refusal> {
        let filter = match p.get("filter") {
            None => Filter::All,
            Some(f) => Filter::parse(f)
                .ok_or_else(|| Refusal::bad(format!("filter: unknown filter {f:?}")))?,
        };
        let hashes = match p.get("hashes") {
            None => None,
            Some(_) => match p.hashes()? {
                Hashes::All => None,
                Hashes::Some(list) => Some(list),
            },
        };
        Ok(Selection {
            filter,
            category: p.get("category").map(String::from),
            tag: p.get("tag").map(String::from),
            hashes,
        })
    }

    /// Whether the row passes `filter`, `category` and `tag` (`hashes` picks the rows
    /// before this is asked).
    pub fn admits(&self, row: &Row) -> bool {
        // An empty category or tag selects the torrents without one.
        if let Some(c) = &self.category {
            if row.fixed.category.as_deref().unwrap_or("") != c {
                return false;
            }
        }
        if let Some(t) = &self.tag {
            let ok = if t.is_empty() {
                row.fixed.tags.is_empty()
            } else {
                row.fixed.tags.iter().any(|x| x == t)
            };
            if !ok {
                return false;
            }
        }
        let moving = row.live.download_rate + row.live.upload_rate > 0;
        self.filter.admits(serialize::state(row), moving)
    }
}

/// Orders JSON values as qBittorrent's sort does: numbers by value, strings by text.
fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (Some(_), None) => Ordering::Greater,
        (None, Some(_)) => Ordering::Less,
        _ => Ordering::Equal,
    }
}

pub async fn list(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let selection = Selection::from_params(&p)?;
    let sort = p.get("sort").map(String::from);
    let reverse = p.flag("reverse")?.unwrap_or(false);
    let limit: Option<i64> = p.number("limit")?;
    let offset: i64 = p.number("offset")?.unwrap_or(0);
    let snapshot = q.api.catalog.current();
    let config = q.api.config();
    let cx = Context {
        now: std::time::Instant::now(),
        config: &config,
    };
    let rows: Vec<&Arc<Row>> = match &selection.hashes {
        None => snapshot.rows.iter().collect(),
        Some(hashes) => {
            let mut seen = std::collections::HashSet::new();
            hashes
                .iter()
                .filter(|h| seen.insert(**h))
                .filter_map(|h| snapshot.get(h))
                .collect()
        }
    };
    let mut items: Vec<TorrentInfo> = rows
        .into_iter()
        .filter(|r| selection.admits(r))
        .map(|r| serialize::torrent(r, &cx))
        .collect();
    if let Some(key) = &sort {
        // Any key may be asked for: take it from each object's JSON form.
        let mut keyed: Vec<(Option<Value>, TorrentInfo)> = items
            .into_iter()
            .map(|t| (t.to_map().remove(key), t))
            .collect();
        keyed.sort_by(|a, b| compare(a.0.as_ref(), b.0.as_ref()));
        items = keyed.into_iter().map(|(_, t)| t).collect();
    }
    if reverse {
        items.reverse();
    }
    let len = items.len() as i64;
    // A negative offset counts from the end, as qBittorrent's does.
    let start = if offset < 0 {
        len.saturating_add(offset).max(0)
    } else {
        offset.min(len)
    };
    let end = match limit {
        Some(n) if n > 0 => start.saturating_add(n).min(len),
        _ => len,
    };
    let page = &items[start as usize..end as usize];
    Ok(axum::Json(page).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_qbittorrent_states() {
        let f = |name: &str| Filter::parse(name).unwrap();
        assert!(f("downloading").admits("stoppedDL", false));
        assert!(f("downloading").admits("stalledDL", false));
        assert!(!f("downloading").admits("uploading", true));
        assert!(f("seeding").admits("stalledUP", false));
        assert!(!f("seeding").admits("stoppedUP", false));
        assert!(f("completed").admits("stoppedUP", false));
        assert!(f("paused").admits("stoppedUP", false));
        assert!(f("stopped").admits("stoppedDL", false));
        assert!(!f("stopped").admits("uploading", true));
        assert!(f("active").admits("uploading", true));
        assert!(f("inactive").admits("stalledUP", false));
        assert!(f("stalled").admits("stalledDL", false));
        assert!(f("errored").admits("missingFiles", false));
        assert!(f("checking").admits("checkingUP", false));
        assert!(Filter::parse("nonsense").is_none());
    }

    #[test]
    fn numbers_sort_by_value_and_strings_by_text() {
        use serde_json::json;
        assert_eq!(compare(Some(&json!(2)), Some(&json!(10))), Ordering::Less);
        assert_eq!(
            compare(Some(&json!("b")), Some(&json!("a"))),
            Ordering::Greater
        );
        assert_eq!(
            compare(Some(&json!(1.5)), Some(&json!(1.5))),
            Ordering::Equal
        );
    }
}
