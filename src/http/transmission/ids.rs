//! Which torrents a call names: `ids` absent (all of them), a number or hash, a list of
//! numbers and hashes, or `"recently-active"` (changed in the last minute, with the ids
//! removed since). Names that match no torrent are skipped, as Transmission does.
//!
//! Bound: a list is as long as the request body allows (`control.max_request_bytes`);
//! repeated names count once.

use std::sync::Arc;
use std::time::Duration;

use ccbt_engine::InfoHash;
use serde_json::Value;

use crate::daemon::catalog::{Catalog, Row};

use super::dispatch::{kind_of, Args};

/// What `recently-active` covers (Transmission: the last 60 seconds).
pub const RECENT: Duration = Duration::from_secs(60);

pub struct Selection {
    pub rows: Vec<Arc<Row>>,
    /// With `recently-active`: the ids of torrents removed meanwhile.
    pub removed: Option<Vec<u32>>,
}

impl Selection {
    pub fn hashes(&self) -> Vec<InfoHash> {
        self.rows.iter().map(|r| r.info_hash).collect()
    }
}

pub fn select(catalog: &Catalog, args: &Args) -> Result<Selection, String> {
    let snapshot = catalog.current();
    let one = |v: &Value| -> Result<Option<Arc<Row>>, String> {
        match v {
            Value::Number(n) => Ok(n
                .as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .and_then(|id| snapshot.by_id(id).cloned())),
            Value::String(s) => match s.parse::<u32>() {
                Ok(id) => Ok(snapshot.by_id(id).cloned()),
                Err(_) => Ok(s
                    .trim()
                    .parse::<InfoHash>()
                    .ok()
                    .and_then(|h| snapshot.get(&h).cloned())),
            },
            other => Err(format!(
                "\"ids\" holds {}: give torrent ids or hash strings",
                kind_of(other)
            )),
        }
    };
    let rows = match args.raw("ids") {
        None | Some(Value::Null) => snapshot.rows.clone(),
        Some(Value::String(s)) if s == "recently-active" => {
            let (rows, removed) = catalog.recently_active(RECENT);
            return Ok(Selection {
                rows,
                removed: Some(removed),
            });
        }
        Some(Value::Array(items)) => {
            let mut rows = Vec::with_capacity(items.len());
            let mut seen = std::collections::HashSet::new();
            for v in items {
                if let Some(row) = one(v)? {
                    if seen.insert(row.id) {
                        rows.push(row);
                    }
                }
            }
            rows
        }
        Some(v) => one(v)?.into_iter().collect(),
    };
    Ok(Selection {
        rows,
        removed: None,
    })
}
