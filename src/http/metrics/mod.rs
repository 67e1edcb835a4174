//! Prometheus `/metrics`, in the OpenMetrics text format (`prometheus-client`) for
//! scrapers that ask for it, and the classic text format for the rest (see `classic`).
//!
//! A custom collector reads, at scrape time only, each shard's counters (atomics the
//! shards keep, see `ccbt_shards::swarm::ShardStats`) and the catalog's current
//! snapshot: a scrape never asks a shard anything and no background task exists for it.
//!
//! Series (`ccbt_shard_*` carry a `shard` label; the same name without `shard_` is the
//! sum over shards, so never `sum()` the two together):
//! - payload bytes up and down, peers, hash failures, disk errors, cache hits and
//!   misses, connections refused by `reason`, announce failures by `kind`;
//! - disk read and write latency and announce latency, as histograms (`_seconds`);
//! - inbox depth, capacity and commands refused because it was full (per shard only);
//! - torrents by `state` and faulted torrents by fault `kind` (`disk-full`, ...), upload
//!   and download rates, session uptime, build info, open event streams.
//!
//! Per-torrent series only with `?torrents=1`: six series per torrent (an info series
//! with its name, bytes up and down, peers, size, bytes verified), so 10,000 torrents make
//! 60,000 series (measured, debug build, 2 shards: 5.2 MB in about 100 ms, against
//! 17 KB in 4 ms without them): heavy for Prometheus; ask for it on a small box or in a
//! separate, slower scrape job.
//!
//! Access follows the other APIs' rules: loopback without credentials, Basic auth when
//! credentials are set, the client and Host whitelists.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ccbt_shards::swarm::{
    AnnounceFailure, HistogramSnapshot, RefusedConnection, ShardStatsSnapshot, TorrentState,
};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

mod classic;

use super::access::reason;
use super::Api;
use crate::daemon::catalog::Snapshot;

/// What Prometheus asks for, and what others get.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const CLASSIC_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Torrent names in labels are cut to this many characters.
const NAME_CHARS_MAX: usize = 200;
/// Fault kinds the faulted-torrents series always carries (0 when none), so alert rules
/// have a series to watch.
const FAULT_KINDS: [&str; 5] = ["disk-full", "permission", "not-found", "io", "bad-data"];
/// States the torrents series always carries.
const STATES: [&str; 8] = [
    "queued",
    "checking",
    "downloading",
    "seeding",
    "paused",
    "failed",
    "stopped",
    "waiting",
];

pub fn router() -> Router<Arc<Api>> {
    Router::new().route(
        "/metrics",
        get(scrape).fallback(|| async {
            reason(
                StatusCode::METHOD_NOT_ALLOWED,
                "/metrics answers GET only (a Prometheus scrape)",
            )
        }),
    )
}

/// The checks every plain HTTP endpoint here shares (metrics, events): the client
/// whitelist (403), the Host header against DNS rebinding (421), bans after failed
/// credentials (403), and Basic credentials when any are set (401 with a challenge).
/// `None`: the request may go on; otherwise the answer that refuses it.
pub(super) fn refusal(api: &Api, peer: SocketAddr, headers: &HeaderMap) -> Option<Response> {
    let access = &api.access;
    if !access.client_allowed(peer.ip()) {
        return Some(reason(
            StatusCode::FORBIDDEN,
            "this address may not use the control API (control.ip_whitelist)",
        ));
    }
    if !access.host_allowed(headers) {
        return Some(reason(
            StatusCode::MISDIRECTED_REQUEST,
            "the Host header names neither localhost, an IP address nor a name in \
             control.host_whitelist",
        ));
    }
    if !access.needs_credentials() {
        return None;
    }
    if access.is_banned(peer.ip()) {
        return Some(reason(
            StatusCode::FORBIDDEN,
            "too many failed logins from this address; try again later",
        ));
    }
    if access.check_basic(headers) {
        access.login_succeeded(peer.ip());
        return None;
    }
    if super::access::basic_credentials(headers).is_some() {
        access.login_failed(peer.ip());
    }
    let mut refused = reason(
        StatusCode::UNAUTHORIZED,
        "credentials required (HTTP Basic, control.username and control.password)",
    );
    refused.headers_mut().insert(
        "www-authenticate",
        axum::http::HeaderValue::from_static("Basic realm=\"ccbt-uring\""),
    );
    Some(refused)
}

/// What a scrape may ask for.
#[derive(Debug, Default, PartialEq, Eq)]
struct ScrapeOptions {
    per_torrent: bool,
}

fn options(query: &[(String, String)]) -> Result<ScrapeOptions, String> {
    let mut options = ScrapeOptions::default();
    for (key, value) in query {
        match key.as_str() {
            "torrents" => {
                options.per_torrent = match value.as_str() {
                    "1" | "true" | "yes" => true,
                    "0" | "false" | "no" | "" => false,
                    other => {
                        return Err(format!(
                            "torrents={other:?}: expected 1 or 0 (per-torrent series or not)"
                        ))
                    }
                }
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?}: /metrics takes only torrents=1"
                ))
            }
        }
    }
    Ok(options)
}

async fn scrape(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    if let Some(refused) = refusal(&api, peer, &headers) {
        return refused;
    }
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return reason(
                StatusCode::BAD_REQUEST,
                &format!("bad query string: {}", e.body_text()),
            )
        }
    };
    let options = match options(&query) {
        Ok(o) => o,
        Err(why) => return reason(StatusCode::BAD_REQUEST, &why),
    };
    let collected = Collected {
        shards: api.daemon.shard_stats(),
        catalog: api.catalog.current(),
        uptime_s: api.started.elapsed().as_secs_f64(),
        event_streams: super::sse::open_streams() as u64,
        per_torrent: options.per_torrent,
    };
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collected));
    let mut body = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_client::encoding::text::encode(&mut body, &registry) {
        tracing::error!(error = %e, "metrics could not be encoded");
        return reason(StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed");
    }
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|a| a.to_str().ok());
    if classic::wants_openmetrics(accept) {
        ([("content-type", OPENMETRICS)], body).into_response()
    } else {
        let body = classic::from_openmetrics(&body);
        ([("content-type", CLASSIC_TEXT)], body).into_response()
    }
}

/// Everything one scrape reports, read once at its start.
#[derive(Debug)]
struct Collected {
    shards: Vec<ShardStatsSnapshot>,
    catalog: Arc<Snapshot>,
    uptime_s: f64,
    event_streams: u64,
    per_torrent: bool,
}

type Fmt = Result<(), std::fmt::Error>;

/// A series' labels; empty for a metric with one series.
type Labels = Vec<(&'static str, String)>;

fn shard_label(s: &ShardStatsSnapshot) -> Labels {
    vec![("shard", s.shard.to_string())]
}

// Each helper writes a series without labels on the metric itself, so no empty `{}`.

/// A metric family of counters, one per label set.
fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, u64)>,
) -> Fmt {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in series {
        if labels.is_empty() {
            metric.encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        } else {
            metric
                .encode_family(&labels)?
                .encode_counter::<NoLabelSet, _, u64>(&value, None)?;
        }
    }
    Ok(())
}

/// A metric family of gauges, one per label set.
fn gauges<V: prometheus_client::encoding::EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, V)>,
) -> Fmt {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in series {
        if labels.is_empty() {
            metric.encode_gauge(&value)?;
        } else {
            metric.encode_family(&labels)?.encode_gauge(&value)?;
        }
    }
    Ok(())
}

fn histograms(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Labels, HistogramSnapshot)>,
) -> Fmt {
    let mut metric = enc.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in series {
        // The encoder writes the +Inf bucket itself, from the count.
        let bounded: Vec<(f64, u64)> = h
            .buckets
            .iter()
            .copied()
            .filter(|(le, _)| le.is_finite())
            .collect();
        if labels.is_empty() {
            metric.encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &bounded, None)?;
        } else {
            metric
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(h.sum_seconds, h.count, &bounded, None)?;
        }
    }
    Ok(())
}

/// Histograms of every shard added up (they share their bounds).
fn sum_histograms<'a>(all: impl Iterator<Item = &'a HistogramSnapshot>) -> HistogramSnapshot {
    let mut total: Option<HistogramSnapshot> = None;
    for h in all {
        match &mut total {
            None => total = Some(h.clone()),
            Some(t) => {
                for (sum, (_, n)) in t.buckets.iter_mut().zip(&h.buckets) {
                    sum.1 += n;
                }
                t.count += h.count;
                t.sum_seconds += h.sum_seconds;
            }
        }
    }
    total.unwrap_or_else(|| {
        ccbt_shards::swarm::ShardStats::default()
            .disk_read
            .snapshot()
    })
}

/// A label value as the exposition format wants it: backslash, quote and newline
/// escaped (the encoder writes values as given), and cut to a bounded length.
fn label_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(NAME_CHARS_MAX) + 8);
    for c in text.chars().take(NAME_CHARS_MAX) {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

impl Collected {
    fn per_shard(&self, pick: impl Fn(&ShardStatsSnapshot) -> u64) -> Vec<(Labels, u64)> {
        self.shards
            .iter()
            .map(|s| (shard_label(s), pick(s)))
            .collect()
    }

    fn total(&self, pick: impl Fn(&ShardStatsSnapshot) -> u64) -> [(Labels, u64); 1] {
        [(Vec::new(), self.shards.iter().map(pick).sum())]
    }

    /// A counter per shard and its total, under `ccbt_shard_NAME` and `ccbt_NAME`.
    fn counter_pair(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        pick: impl Fn(&ShardStatsSnapshot) -> u64 + Copy,
    ) -> Fmt {
        counters(
            enc,
            &format!("ccbt_shard_{name}"),
            &format!("{help}, per shard"),
            self.per_shard(pick),
        )?;
        counters(enc, &format!("ccbt_{name}"), help, self.total(pick))
    }

    fn histogram_pair(
        &self,
        enc: &mut DescriptorEncoder,
        name: &str,
        help: &str,
        pick: impl Fn(&ShardStatsSnapshot) -> &HistogramSnapshot + Copy,
    ) -> Fmt {
        histograms(
            enc,
            &format!("ccbt_shard_{name}"),
            &format!("{help}, per shard"),
            self.shards
                .iter()
                .map(|s| (shard_label(s), pick(s).clone())),
        )?;
        histograms(
            enc,
            &format!("ccbt_{name}"),
            help,
            [(Vec::new(), sum_histograms(self.shards.iter().map(pick)))],
        )
    }

    fn shards(&self, enc: &mut DescriptorEncoder) -> Fmt {
        self.counter_pair(
            enc,
            "uploaded_bytes",
            "Piece payload sent to peers this session",
            |s| s.uploaded_bytes,
        )?;
        self.counter_pair(
            enc,
            "downloaded_bytes",
            "Piece payload received from peers this session",
            |s| s.downloaded_bytes,
        )?;
        gauges(
            enc,
            "ccbt_shard_peers",
            "Peer connections established now, per shard",
            self.per_shard(|s| s.peers),
        )?;
        gauges(
            enc,
            "ccbt_peers",
            "Peer connections established now",
            self.total(|s| s.peers),
        )?;
        self.counter_pair(
            enc,
            "hash_failures",
            "Downloaded pieces that failed their SHA-1 check",
            |s| s.hash_failures,
        )?;
        self.counter_pair(
            enc,
            "disk_errors",
            "Piece reads and writes that failed (the torrent stops with a fault)",
            |s| s.disk_errors,
        )?;
        self.histogram_pair(
            enc,
            "disk_read_seconds",
            "Time to read a piece from disk for seeding",
            |s| &s.disk_read,
        )?;
        self.histogram_pair(
            enc,
            "disk_write_seconds",
            "Time to write a verified piece to disk",
            |s| &s.disk_write,
        )?;
        self.histogram_pair(
            enc,
            "announce_seconds",
            "Time from an announce's request to the tracker's answer (answered ones)",
            |s| &s.announce,
        )?;
        let failures = |s: &ShardStatsSnapshot, kind: AnnounceFailure| {
            s.announce_failures
                .iter()
                .find(|(k, _)| *k == kind)
                .map_or(0, |(_, n)| *n)
        };
        counters(
            enc,
            "ccbt_shard_announce_failures",
            "Announces that got no answer, by kind, per shard",
            self.shards.iter().flat_map(|s| {
                AnnounceFailure::ALL.iter().map(move |&k| {
                    (
                        vec![
                            ("shard", s.shard.to_string()),
                            ("kind", k.name().to_string()),
                        ],
                        failures(s, k),
                    )
                })
            }),
        )?;
        counters(
            enc,
            "ccbt_announce_failures",
            "Announces that got no answer, by kind",
            AnnounceFailure::ALL.iter().map(|&k| {
                (
                    vec![("kind", k.name().to_string())],
                    self.shards.iter().map(|s| failures(s, k)).sum::<u64>(),
                )
            }),
        )?;
        self.counter_pair(
            enc,
            "cache_hits",
            "Pieces to serve found in the read cache",
            |s| s.cache_hits,
        )?;
        self.counter_pair(
            enc,
            "cache_misses",
            "Pieces to serve read from disk (read-ahead included)",
            |s| s.cache_misses,
        )?;
        let refused = |s: &ShardStatsSnapshot, why: RefusedConnection| {
            s.refused
                .iter()
                .find(|(k, _)| *k == why)
                .map_or(0, |(_, n)| *n)
        };
        counters(
            enc,
            "ccbt_shard_connections_refused",
            "Peer connections refused before their handshake, by reason, per shard",
            self.shards.iter().flat_map(|s| {
                RefusedConnection::ALL.iter().map(move |&k| {
                    (
                        vec![
                            ("shard", s.shard.to_string()),
                            ("reason", k.name().to_string()),
                        ],
                        refused(s, k),
                    )
                })
            }),
        )?;
        counters(
            enc,
            "ccbt_connections_refused",
            "Peer connections refused before their handshake, by reason",
            RefusedConnection::ALL.iter().map(|&k| {
                (
                    vec![("reason", k.name().to_string())],
                    self.shards.iter().map(|s| refused(s, k)).sum::<u64>(),
                )
            }),
        )?;
        gauges(
            enc,
            "ccbt_shard_inbox_depth",
            "Commands and handed-off connections waiting in the shard's inbox",
            self.per_shard(|s| s.inbox_depth),
        )?;
        gauges(
            enc,
            "ccbt_shard_inbox_capacity",
            "The inbox's bound: past it commands are refused as busy",
            self.per_shard(|s| s.inbox_capacity),
        )?;
        counters(
            enc,
            "ccbt_shard_inbox_full",
            "Commands refused because the shard's inbox was full",
            self.per_shard(|s| s.inbox_full),
        )?;
        gauges(
            enc,
            "ccbt_shards",
            "Shards (one per core) the engine runs",
            [(Vec::new(), self.shards.len() as u64)],
        )
    }

    fn torrents(&self, enc: &mut DescriptorEncoder) -> Fmt {
        let rows = &self.catalog.rows;
        let state_of = |r: &crate::daemon::catalog::Row| match r.live.state {
            TorrentState::Paused if r.fixed.queued => "waiting",
            other => other.name(),
        };
        // One pass over the rows for both tallies (100,000 torrents: one walk, not 13).
        let mut by_state = [0u64; STATES.len()];
        let mut by_fault = [0u64; FAULT_KINDS.len()];
        for r in rows {
            let state = state_of(r);
            if let Some(i) = STATES.iter().position(|&s| s == state) {
                by_state[i] += 1;
            }
            if let Some(fault) = &r.live.error {
                let kind = crate::daemon::core::fault_kind(fault);
                if let Some(i) = FAULT_KINDS.iter().position(|&k| k == kind) {
                    by_fault[i] += 1;
                }
            }
        }
        gauges(
            enc,
            "ccbt_torrents",
            "Torrents by state (waiting: stopped by the queue until a slot frees)",
            STATES
                .iter()
                .zip(by_state)
                .map(|(&state, n)| (vec![("state", state.to_string())], n)),
        )?;
        gauges(
            enc,
            "ccbt_torrents_faulted",
            "Torrents stopped by a fault, by kind (disk-full: free space, then resume)",
            FAULT_KINDS
                .iter()
                .zip(by_fault)
                .map(|(&kind, n)| (vec![("kind", kind.to_string())], n)),
        )?;
        gauges(
            enc,
            "ccbt_upload_bytes_per_second",
            "Piece payload upload rate over every torrent",
            [(
                Vec::new(),
                rows.iter().map(|r| r.live.upload_rate).sum::<u64>(),
            )],
        )?;
        gauges(
            enc,
            "ccbt_download_bytes_per_second",
            "Piece payload download rate over every torrent",
            [(
                Vec::new(),
                rows.iter().map(|r| r.live.download_rate).sum::<u64>(),
            )],
        )?;
        if self.per_torrent {
            self.each_torrent(enc)?;
        }
        Ok(())
    }

    fn each_torrent(&self, enc: &mut DescriptorEncoder) -> Fmt {
        let rows = &self.catalog.rows;
        let hash = |r: &crate::daemon::catalog::Row| vec![("info_hash", r.info_hash.to_hex())];
        gauges(
            enc,
            "ccbt_torrent_info",
            "A torrent's name (value 1)",
            rows.iter().map(|r| {
                (
                    vec![
                        ("info_hash", r.info_hash.to_hex()),
                        ("name", label_text(&r.fixed.meta.info.name.display())),
                    ],
                    1u64,
                )
            }),
        )?;
        counters(
            enc,
            "ccbt_torrent_uploaded_bytes",
            "A torrent's payload uploaded, over every run",
            rows.iter().map(|r| (hash(r), r.live.uploaded)),
        )?;
        counters(
            enc,
            "ccbt_torrent_downloaded_bytes",
            "A torrent's payload downloaded, over every run",
            rows.iter().map(|r| (hash(r), r.live.downloaded)),
        )?;
        gauges(
            enc,
            "ccbt_torrent_peers",
            "A torrent's peer connections now",
            rows.iter().map(|r| (hash(r), r.live.peers)),
        )?;
        gauges(
            enc,
            "ccbt_torrent_size_bytes",
            "A torrent's total size",
            rows.iter().map(|r| (hash(r), r.total_size())),
        )?;
        gauges(
            enc,
            "ccbt_torrent_verified_bytes",
            "Bytes of a torrent's pieces that are verified",
            rows.iter().map(|r| (hash(r), r.have_bytes())),
        )
    }
}

impl Collector for Collected {
    fn encode(&self, mut enc: DescriptorEncoder) -> Fmt {
        gauges(
            &mut enc,
            "ccbt_build_info",
            "The running ccbt-uring's version (value 1)",
            [(
                vec![("version", env!("CARGO_PKG_VERSION").to_string())],
                1u64,
            )],
        )?;
        gauges(
            &mut enc,
            "ccbt_uptime_seconds",
            "Seconds since the daemon started",
            [(Vec::new(), self.uptime_s)],
        )?;
        gauges(
            &mut enc,
            "ccbt_event_streams",
            "Clients reading /events now",
            [(Vec::new(), self.event_streams)],
        )?;
        self.shards(&mut enc)?;
        self.torrents(&mut enc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_the_torrents_parameter_is_taken() {
        assert_eq!(options(&q(&[])), Ok(ScrapeOptions::default()));
        assert!(options(&q(&[("torrents", "1")])).unwrap().per_torrent);
        assert!(!options(&q(&[("torrents", "0")])).unwrap().per_torrent);
        let bad = options(&q(&[("torrents", "lots")])).unwrap_err();
        assert!(bad.contains("expected 1 or 0"), "{bad}");
        let unknown = options(&q(&[("shard", "1")])).unwrap_err();
        assert!(unknown.contains("unknown parameter \"shard\""), "{unknown}");
    }

    #[test]
    fn label_values_are_escaped_and_bounded() {
        assert_eq!(label_text("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
        assert_eq!(label_text(&"x".repeat(500)).len(), NAME_CHARS_MAX);
    }

    #[test]
    fn shard_histograms_add_up_bucket_by_bucket() {
        let a = ccbt_shards::swarm::ShardStats::default();
        let b = ccbt_shards::swarm::ShardStats::default();
        a.disk_read.observe(std::time::Duration::from_millis(1));
        b.disk_read.observe(std::time::Duration::from_millis(1));
        b.disk_read.observe(std::time::Duration::from_secs(1));
        let total = sum_histograms([a.disk_read.snapshot(), b.disk_read.snapshot()].iter());
        assert_eq!(total.count, 3);
        assert_eq!(total.buckets.last().unwrap().1, 3);
        let at_1ms = total.buckets.iter().find(|(le, _)| *le == 0.001).unwrap();
        assert_eq!(at_1ms.1, 2);
    }
}
