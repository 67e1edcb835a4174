//! torrent-get: the fields asked for, of the torrents named, from the catalog's snapshot
//! (never from a shard, except the have-bitfield for per-file progress; see below).
//!
//! `format: "objects"` (the default) gives one object per torrent; `"table"` gives the
//! field names, then one array of values per torrent. With `ids: "recently-active"` the
//! answer also lists the ids `removed` in that time.
//!
//! Bounds: the have-bitfield is asked of the shards only for the first
//! [`MAX_PIECE_QUERIES`] torrents and only for [`PIECES_WAIT`] in all; torrents beyond
//! that, or whose shard is slow, get per-file progress estimated from their piece count.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccbt_engine::Bitfield;
use serde_json::{Map, Value};

use super::super::Api;
use super::dispatch::{Answer, Args};
use super::fields::{self, Context, Torrent};
use super::ids;

pub const MAX_PIECE_QUERIES: usize = 64;
pub const PIECES_WAIT: Duration = Duration::from_millis(500);

pub async fn get(api: &Arc<Api>, args: &Args) -> Answer {
    let names = args
        .strings("fields")?
        .ok_or("torrent-get needs \"fields\": the names of the fields to return")?;
    let mut seen = std::collections::HashSet::new();
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .collect();
    let table = match args.str("format")? {
        None | Some("objects") => false,
        Some("table") => true,
        Some(other) => return Err(format!("unknown format \"{other}\": use objects or table")),
    };
    let selection = ids::select(&api.catalog, args)?;
    let have = if names.iter().any(|n| fields::needs_pieces(n)) {
        pieces(api, &selection).await
    } else {
        HashMap::new()
    };
    let config = api.config();
    let ctx = Context {
        now: Instant::now(),
        config: &config,
    };
    let torrents = selection.rows.iter().map(|row| Torrent {
        row,
        have: have.get(&row.id),
    });
    let list: Vec<Value> = if table {
        let header = Value::Array(names.iter().map(|n| Value::String(n.clone())).collect());
        std::iter::once(header)
            .chain(torrents.map(|t| {
                Value::Array(
                    names
                        .iter()
                        .map(|n| fields::value(&ctx, &t, n).unwrap_or(Value::Null))
                        .collect(),
                )
            }))
            .collect()
    } else {
        torrents
            .map(|t| {
                Value::Object(
                    names
                        .iter()
                        .filter_map(|n| fields::value(&ctx, &t, n).map(|v| (n.clone(), v)))
                        .collect(),
                )
            })
            .collect()
    };
    let mut out = Map::new();
    out.insert("torrents".into(), Value::Array(list));
    if let Some(removed) = selection.removed {
        out.insert("removed".into(), Value::from(removed));
    }
    Ok(out)
}

/// The have-bitfields of (up to [`MAX_PIECE_QUERIES`] of) the selected torrents, by id;
/// those not answered within [`PIECES_WAIT`] are left out.
async fn pieces(api: &Arc<Api>, selection: &ids::Selection) -> HashMap<u32, Bitfield> {
    let mut asked = tokio::task::JoinSet::new();
    for row in selection.rows.iter().take(MAX_PIECE_QUERIES) {
        let pending = api.daemon.pieces(row.info_hash);
        let id = row.id;
        asked.spawn(async move { (id, pending.await) });
    }
    let mut have = HashMap::new();
    let deadline = tokio::time::Instant::now() + PIECES_WAIT;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, asked.join_next()).await {
        if let Ok((id, Ok(Some(bits)))) = joined {
            have.insert(id, bits);
        }
    }
    asked.abort_all();
    have
}
