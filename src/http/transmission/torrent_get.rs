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
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use serde_json::Value;

use super::super::Api;
use super::dispatch::Args;
use super::fields::{self, Context, Torrent};
use super::ids;

pub const MAX_PIECE_QUERIES: usize = 64;
pub const PIECES_WAIT: Duration = Duration::from_millis(500);

pub async fn get(api: &Arc<Api>, args: &Args) -> Result<String, String> {
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
    let listing = Listing {
        ctx: Context {
            now: Instant::now(),
            config: &config,
        },
        selection: &selection,
        have: &have,
        names: &names,
        table,
    };
    serde_json::to_string(&listing).map_err(|e| format!("cannot write the listing: {e}"))
}

/// The answer's arguments, written field by field as they are computed.
struct Listing<'a> {
    ctx: Context<'a>,
    selection: &'a ids::Selection,
    have: &'a HashMap<u32, Bitfield>,
    names: &'a [String],
    table: bool,
}

impl Serialize for Listing<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("torrents", &Rows(self))?;
        if let Some(removed) = &self.selection.removed {
            map.serialize_entry("removed", removed)?;
        }
        map.end()
    }
}

struct Rows<'a>(&'a Listing<'a>);

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let l = self.0;
        let mut seq = s.serialize_seq(None)?;
        if l.table {
            seq.serialize_element(l.names)?;
        }
        for row in &l.selection.rows {
            let t = Torrent {
                row,
                have: l.have.get(&row.id),
            };
            if l.table {
                seq.serialize_element(&TableRow(l, &t))?;
            } else {
                seq.serialize_element(&Object(l, &t))?;
            }
        }
        seq.end()
    }
}

/// One torrent as an object of the known fields asked for.
struct Object<'a>(&'a Listing<'a>, &'a Torrent<'a>);

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let Object(l, t) = self;
        let mut map = s.serialize_map(None)?;
        for name in l.names {
            if let Some(v) = fields::value(&l.ctx, t, name) {
                map.serialize_entry(name, &v)?;
            }
        }
        map.end()
    }
}

/// One torrent as a table row: a value (or null) per field asked for.
struct TableRow<'a>(&'a Listing<'a>, &'a Torrent<'a>);

impl Serialize for TableRow<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let TableRow(l, t) = self;
        let mut seq = s.serialize_seq(Some(l.names.len()))?;
        for name in l.names {
            seq.serialize_element(&fields::value(&l.ctx, t, name).unwrap_or(Value::Null))?;
        }
        seq.end()
    }
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
