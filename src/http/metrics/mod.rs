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
//! - inbox depth, capacity, messages taken and commands refused because it was full
//!   (per shard only);
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
use prometheus_client::registry::Registry;

mod classic;
mod collector;
mod families;

use super::access::reason;
use super::Api;
use collector::Collected;

/// What Prometheus asks for, and what others get.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const CLASSIC_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

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
    if let Some(refused) = api.access.plain_refusal(peer.ip(), &headers) {
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
}
