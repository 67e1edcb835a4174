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

use super::super::Api;
use super::dispatch::Args;
use super::fields::{self, Context, Field, Out, Torrent};
use super::ids;
use ccbt_shards::swarm::{PeerInfo, Pending};

pub const MAX_PIECE_QUERIES: usize = 64;
pub const PIECES_WAIT: Duration = Duration::from_millis(500);

pub async fn get(api: &Arc<Api>, args: &Args) -> Result<Vec<u8>, String> {
    let names = args
        .strings("fields")?
        .ok_or("torrent-get needs \"fields\": the names of the fields to return")?;
    let mut seen = std::collections::HashSet::new();
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .collect();
    let columns: Vec<Option<Field>> = names.iter().map(|n| Field::parse(n)).collect();
    let table = match args.str("format")? {
        None | Some("objects") => false,
        Some("table") => true,
        Some(other) => return Err(format!("unknown format \"{other}\": use objects or table")),
    };
    let selection = ids::select(&api.catalog, args)?;
    let have = if columns.iter().flatten().any(|f| f.needs_pieces()) {
        pieces(api, &selection).await
    } else {
        HashMap::new()
    };
    let peers = if columns.contains(&Some(Field::Peers)) {
        peers(api, &selection).await
    } else {
        HashMap::new()
    };
    let config = api.config();
    // A listing of 100,000 torrents takes a core for a few hundred milliseconds: off the
    // workers that answer other requests.
    tokio::task::spawn_blocking(move || {
        let listing = Listing {
            ctx: Context {
                now: Instant::now(),
                config: &config,
            },
            selection: &selection,
            have: &have,
            peers: &peers,
            names: &names,
            columns: &columns,
            table,
        };
        listing.write()
    })
    .await
    .map_err(|e| format!("the listing failed: {e}"))?
}

/// The answer's arguments, written torrent by torrent as they are computed.
struct Listing<'a> {
    ctx: Context<'a>,
    selection: &'a ids::Selection,
    have: &'a HashMap<u32, Bitfield>,
    peers: &'a HashMap<u32, Vec<PeerInfo>>,
    names: &'a [String],
    /// Each name's field, resolved once for the whole answer.
    columns: &'a [Option<Field>],
    table: bool,
}

/// Bytes to reserve per torrent and field, so a large answer is not copied as it grows.
const BYTES_PER_FIELD_GUESS: usize = 20;

impl Listing<'_> {
    /// The arguments object. Rows are written by hand around serde_json's values: each
    /// object key is escaped once per answer rather than once per torrent.
    fn write(&self) -> Result<Vec<u8>, String> {
        let fail = |e: serde_json::Error| format!("cannot write the listing: {e}");
        let rows = &self.selection.rows;
        let mut out =
            Vec::with_capacity(64 + rows.len() * (2 + self.names.len() * BYTES_PER_FIELD_GUESS));
        out.extend_from_slice(b"{\"torrents\":[");
        if self.table {
            serde_json::to_writer(&mut out, self.names).map_err(fail)?;
        }
        // `"name":` for each known field, in the order asked.
        let keyed: Vec<(Vec<u8>, Field)> = self
            .names
            .iter()
            .zip(self.columns)
            .filter_map(|(name, field)| {
                let mut key = serde_json::to_vec(name).ok()?;
                key.push(b':');
                Some((key, (*field)?))
            })
            .collect();
        for (i, row) in rows.iter().enumerate() {
            if i > 0 || self.table {
                out.push(b',');
            }
            let t = Torrent {
                row,
                have: self.have.get(&row.id),
                peers: self.peers.get(&row.id).map(Vec::as_slice),
            };
            if self.table {
                out.push(b'[');
                for (j, field) in self.columns.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    match field {
                        Some(field) => {
                            let value = fields::value(&self.ctx, &t, *field);
                            serde_json::to_writer(&mut out, &value).map_err(fail)?;
                        }
                        None => out.extend_from_slice(b"null"),
                    }
                }
                out.push(b']');
            } else {
                out.push(b'{');
                let mut first = true;
                for (key, field) in &keyed {
                    let value = fields::value(&self.ctx, &t, *field);
                    if matches!(value, Out::Absent) {
                        continue;
                    }
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    out.extend_from_slice(key);
                    serde_json::to_writer(&mut out, &value).map_err(fail)?;
                }
                out.push(b'}');
            }
        }
        out.push(b']');
        if let Some(removed) = &self.selection.removed {
            out.extend_from_slice(b",\"removed\":");
            serde_json::to_writer(&mut out, removed).map_err(fail)?;
        }
        out.push(b'}');
        Ok(out)
    }
}

/// The have-bitfields of (up to [`MAX_PIECE_QUERIES`] of) the selected torrents, by id;
/// those not answered within [`PIECES_WAIT`] (or not known yet) are left out.
async fn pieces(api: &Arc<Api>, selection: &ids::Selection) -> HashMap<u32, Bitfield> {
    ask_shards(selection, |h| api.daemon.pieces(h))
        .await
        .into_iter()
        .filter_map(|(id, bits)| Some((id, bits?)))
        .collect()
}

/// The connected peers of (up to [`MAX_PIECE_QUERIES`] of) the selected torrents, by id;
/// those not answered within [`PIECES_WAIT`] are left out (and list no peers).
async fn peers(api: &Arc<Api>, selection: &ids::Selection) -> HashMap<u32, Vec<PeerInfo>> {
    ask_shards(selection, |h| api.daemon.peers(h)).await
}

/// Asks the shards about (up to [`MAX_PIECE_QUERIES`] of) the selected torrents at once,
/// and keeps the answers that come within [`PIECES_WAIT`], by torrent id.
async fn ask_shards<T: Send + 'static>(
    selection: &ids::Selection,
    ask: impl Fn(ccbt_engine::InfoHash) -> Pending<T>,
) -> HashMap<u32, T> {
    let mut asked = tokio::task::JoinSet::new();
    for row in selection.rows.iter().take(MAX_PIECE_QUERIES) {
        let pending = ask(row.info_hash);
        let id = row.id;
        asked.spawn(async move { (id, pending.await) });
    }
    let mut answers = HashMap::new();
    let deadline = tokio::time::Instant::now() + PIECES_WAIT;
    while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, asked.join_next()).await {
        if let Ok((id, Ok(answer))) = joined {
            answers.insert(id, answer);
        }
    }
    asked.abort_all();
    answers
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccbt_config::Config;
    use ccbt_shards::swarm::TorrentState;
    use serde_json::Value;

    /// The fields Sonarr and Radarr ask for (as S7 in BENCHMARKS.md).
    const ARR_FIELDS: &[&str] = &[
        "id",
        "hashString",
        "name",
        "downloadDir",
        "totalSize",
        "leftUntilDone",
        "isFinished",
        "eta",
        "status",
        "secondsDownloading",
        "secondsSeeding",
        "errorString",
        "uploadedEver",
        "downloadedEver",
        "seedRatioLimit",
        "seedRatioMode",
        "seedIdleLimit",
        "seedIdleMode",
        "fileCount",
        "labels",
    ];

    fn listing(rows: Vec<Arc<crate::daemon::catalog::Row>>, names: &[&str], table: bool) -> String {
        let config = Config::default();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let columns: Vec<Option<Field>> = names.iter().map(|n| Field::parse(n)).collect();
        let selection = ids::Selection {
            rows,
            removed: None,
        };
        let have = HashMap::new();
        let peers = HashMap::new();
        let listing = Listing {
            ctx: Context {
                now: Instant::now(),
                config: &config,
            },
            selection: &selection,
            have: &have,
            peers: &peers,
            names: &names,
            columns: &columns,
            table,
        };
        String::from_utf8(listing.write().unwrap()).unwrap()
    }

    #[test]
    fn objects_leave_out_unknown_names_and_tables_give_them_null() {
        let row = Arc::new(fields::tests::row(TorrentState::Seeding, 10, |f, _| {
            f.tags = vec!["tv".into()];
        }));
        let objects: Value = serde_json::from_str(&listing(
            vec![row.clone()],
            &[
                "id",
                "hashString",
                "name",
                "downloadDir",
                "labels",
                "noSuchField",
                "pieces",
            ],
            false,
        ))
        .unwrap();
        let t = &objects["torrents"][0];
        assert_eq!(t["id"], 1);
        assert_eq!(t["hashString"], row.info_hash.to_hex());
        assert_eq!(t["name"], "x");
        assert_eq!(t["downloadDir"], "/srv");
        assert_eq!(t["labels"], serde_json::json!(["tv"]));
        assert!(t.get("noSuchField").is_none());
        assert_eq!(t["pieces"], "/8A=", "all 10 pieces, from the count alone");
        let table: Value =
            serde_json::from_str(&listing(vec![row], &["id", "noSuchField", "status"], true))
                .unwrap();
        assert_eq!(
            table["torrents"],
            serde_json::json!([["id", "noSuchField", "status"], [1, null, 6]])
        );
    }

    /// What a full *arr listing costs per torrent, without HTTP: run with
    /// `cargo test --release --bin ccbt-uring arr_listing_cost -- --ignored --nocapture`.
    /// It prints and asserts nothing about time (BENCHMARKS.md S7 has the figures).
    #[test]
    #[ignore = "a measurement, not a test"]
    fn arr_listing_cost() {
        let rows: Vec<_> = (0..100_000u32)
            .map(|i| {
                let mut r = fields::tests::row(TorrentState::Seeding, 10, |f, l| {
                    f.tags = vec!["tv-sonarr".into()];
                    l.uploaded = u64::from(i) * 1000;
                });
                r.id = i + 1;
                Arc::new(r)
            })
            .collect();
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..9 {
            let started = Instant::now();
            bytes = listing(rows.clone(), ARR_FIELDS, false).len();
            times.push(started.elapsed());
        }
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "torrent-get, *arr fields, {} torrents: median {:?} ({:.2} µs a torrent), {} bytes",
            rows.len(),
            median,
            median.as_secs_f64() * 1e6 / rows.len() as f64,
            bytes
        );
    }
}
