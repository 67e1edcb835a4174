//! The native JSON API under `/ccbt/v1/`, for ccbt-uring's own tools (`remote --url`,
//! `top`) and for scripts: torrents, one torrent's details and files, the load of each
//! shard, session stats, and the commands add, pause, resume, recheck, reannounce and
//! remove.
//!
//! | method and path | answer |
//! | --- | --- |
//! | `GET /ccbt/v1/torrents[?since=SEQ]` | [`wire::TorrentList`]: all, or what changed after `SEQ` |
//! | `GET /ccbt/v1/torrents/{hash}` | [`wire::Details`] |
//! | `POST /ccbt/v1/torrents` | [`wire::Added`] (201); body: the .torrent's bytes with options as [`wire::AddQuery`] parameters, or JSON [`wire::AddBody`] (`Content-Type: application/json`) |
//! | `POST /ccbt/v1/torrents/{hash}/{pause,resume,recheck,reannounce}` | [`wire::Done`] |
//! | `DELETE /ccbt/v1/torrents/{hash}?delete_data=true` | [`wire::Done`] |
//! | `GET /ccbt/v1/shards` | a [`wire::Shard`] per shard |
//! | `GET /ccbt/v1/stats` | [`wire::Stats`] |
//!
//! Listings come from the catalog's snapshot, never from a shard; commands run on the
//! blocking pool. Access follows [`super::Access`] as the other APIs do: loopback clients
//! without credentials when none are configured, HTTP Basic on every request when they
//! are, the IP whitelist (403), the Host check (421) and login bans (403). Every refusal is
//! a JSON [`wire::ApiError`] with a status that fits (400, 401, 403, 404, 405, 409, 413,
//! 421, 503); bodies are capped by `control.max_request_bytes` (413).

mod views;

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use ccbt_engine::metainfo::RenameError;
use ccbt_engine::InfoHash;
use ccbt_shards::swarm::CommandError;

use super::Api;
use crate::daemon::core::{AddRequest, DaemonError};
use crate::native_api::wire::{self, Action};

/// How long a details request waits for the shard to say which pieces it has before it
/// answers without per-file progress.
const PIECES_TIMEOUT: Duration = Duration::from_secs(2);

/// Tags one add may give at most (more: 400).
const TAGS_MAX: usize = 64;

pub fn router() -> Router<Arc<Api>> {
    Router::new()
        .route(
            "/ccbt/v1/torrents",
            get(list).post(add).fallback(method_not_allowed),
        )
        .route(
            "/ccbt/v1/torrents/{hash}",
            get(details).delete(remove).fallback(method_not_allowed),
        )
        .route(
            "/ccbt/v1/torrents/{hash}/{action}",
            post(action).fallback(method_not_allowed),
        )
        .route("/ccbt/v1/shards", get(shards).fallback(method_not_allowed))
        .route("/ccbt/v1/stats", get(stats).fallback(method_not_allowed))
        .route("/ccbt/v1", get(not_found).fallback(not_found))
        .route("/ccbt/v1/", get(not_found).fallback(not_found))
        .route("/ccbt/v1/{*rest}", get(not_found).fallback(not_found))
}

/// A refusal: status, kind and reason, as JSON.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    kind: &'static str,
    text: String,
}

impl Refusal {
    fn new(status: StatusCode, kind: &'static str, text: impl Into<String>) -> Refusal {
        Refusal {
            status,
            kind,
            text: text.into(),
        }
    }

    fn bad_request(text: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, "bad-request", text)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(wire::ApiError {
                error: self.text,
                kind: self.kind.to_string(),
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"ccbt-uring\""),
            );
        }
        response
    }
}

impl From<DaemonError> for Refusal {
    fn from(e: DaemonError) -> Refusal {
        let status = match &e {
            DaemonError::BadTorrent(_)
            | DaemonError::BadMagnet(_)
            | DaemonError::Read { .. }
            | DaemonError::Label(_)
            | DaemonError::Trackers(_) => StatusCode::BAD_REQUEST,
            DaemonError::Duplicate(_) | DaemonError::Command(CommandError::Duplicate(_)) => {
                StatusCode::CONFLICT
            }
            DaemonError::Unknown(_) | DaemonError::Command(CommandError::UnknownTorrent(_)) => {
                StatusCode::NOT_FOUND
            }
            DaemonError::Command(CommandError::BadFileIndex { .. }) => StatusCode::BAD_REQUEST,
            DaemonError::Rename(RenameError::NotFound(_)) => StatusCode::NOT_FOUND,
            DaemonError::Rename(RenameError::BadPath(_)) => StatusCode::BAD_REQUEST,
            DaemonError::Rename(_) => StatusCode::CONFLICT,
            DaemonError::Command(CommandError::FetchingMetadata(_)) => StatusCode::CONFLICT,
            DaemonError::Command(CommandError::Fault(_)) => StatusCode::CONFLICT,
            DaemonError::Command(CommandError::Busy(_) | CommandError::ShardGone)
            | DaemonError::State(_)
            | DaemonError::Flush(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        let kind = match &e {
            DaemonError::Command(CommandError::UnknownTorrent(_)) => "unknown-torrent",
            DaemonError::Command(CommandError::Duplicate(_)) => "duplicate",
            _ => e.kind(),
        };
        Refusal::new(status, kind, e.to_string())
    }
}

/// The request passed the access rules: its client, Host header and credentials.
/// Taken first by every handler, so nothing is read or parsed for a refused client.
pub struct Allowed;

impl FromRequestParts<Arc<Api>> for Allowed {
    type Rejection = Refusal;

    async fn from_request_parts(parts: &mut Parts, api: &Arc<Api>) -> Result<Allowed, Refusal> {
        let Some(ConnectInfo(peer)) = parts.extensions.get::<ConnectInfo<SocketAddr>>().copied()
        else {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the client's address is unknown",
            ));
        };
        use crate::http::access::Denied;
        let Err(denied) = api.access.admit_basic(peer.ip(), &parts.headers) else {
            return Ok(Allowed);
        };
        Err(match denied {
            Denied::Address => Refusal::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("{} may not use this API (control.ip_whitelist)", peer.ip()),
            ),
            Denied::Host => Refusal::new(
                StatusCode::MISDIRECTED_REQUEST,
                "bad-host",
                "the Host header names no address of this daemon (control.host_whitelist)",
            ),
            Denied::Banned => Refusal::new(
                StatusCode::FORBIDDEN,
                "banned",
                "too many failed logins from this address; try again later",
            ),
            Denied::WrongCredentials => Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong user name or password",
            ),
            Denied::NoCredentials => Refusal::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "credentials required (HTTP Basic)",
            ),
        })
    }
}

/// The path's parameters, or why they cannot be read (bad percent-encoding, not UTF-8).
fn path_part<T>(path: Result<Path<T>, PathRejection>) -> Result<T, Refusal> {
    path.map(|Path(p)| p)
        .map_err(|e| Refusal::bad_request(e.body_text()))
}

fn parse_hash(text: &str) -> Result<InfoHash, Refusal> {
    InfoHash::from_str(text).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad-hash",
            format!("{text:?} is not an info hash: {e}"),
        )
    })
}

async fn list(
    _: Allowed,
    State(api): State<Arc<Api>>,
    query: Result<Query<wire::ListQuery>, QueryRejection>,
) -> Result<Json<wire::TorrentList>, Refusal> {
    let Query(query) = query.map_err(|e| Refusal::bad_request(e.body_text()))?;
    let shards = api.daemon.shard_count();
    if let Some(changes) = query
        .since
        .and_then(|since| api.catalog.changes_since(since))
    {
        return Ok(Json(views::increment(&changes, shards)));
    }
    Ok(Json(views::list(&api.catalog.current(), shards)))
}

async fn details(
    _: Allowed,
    State(api): State<Arc<Api>>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<wire::Details>, Refusal> {
    let hash = parse_hash(&path_part(path)?)?;
    let snapshot = api.catalog.current();
    let row = snapshot
        .get(&hash)
        .cloned()
        .ok_or(DaemonError::Unknown(hash))?;
    let pieces = match tokio::time::timeout(PIECES_TIMEOUT, api.daemon.pieces(hash)).await {
        Ok(Ok(bits)) => bits,
        Ok(Err(_)) | Err(_) => None,
    };
    Ok(Json(views::details(
        &row,
        api.daemon.shard_count(),
        pieces.as_ref(),
        Instant::now(),
    )))
}

async fn shards(_: Allowed, State(api): State<Arc<Api>>) -> Json<Vec<wire::Shard>> {
    let snapshot = api.catalog.current();
    Json(views::shards(&snapshot, api.daemon.shard_count()))
}

async fn stats(_: Allowed, State(api): State<Arc<Api>>) -> Json<wire::Stats> {
    let snapshot = api.catalog.current();
    Json(views::stats(
        &snapshot,
        api.daemon.shard_count(),
        api.started.elapsed().as_secs(),
    ))
}

/// `POST /ccbt/v1/torrents`: the .torrent's bytes (options in the query), or JSON.
async fn add(
    _: Allowed,
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    query: Result<Query<wire::AddQuery>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<wire::Added>), Refusal> {
    let body = body.map_err(|e| {
        let status = e.status();
        let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
            "too-large"
        } else {
            "bad-request"
        };
        Refusal::new(status, kind, e.body_text())
    })?;
    let Query(query) = query.map_err(|e| Refusal::bad_request(e.body_text()))?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let options = if is_json {
        if query != wire::AddQuery::default() {
            return Err(Refusal::bad_request(
                "a JSON add takes its options in the body, not the query",
            ));
        }
        let parsed: wire::AddBody = serde_json::from_slice(&body)
            .map_err(|e| Refusal::bad_request(format!("bad JSON: {e}")))?;
        let metainfo = base64::engine::general_purpose::STANDARD
            .decode(parsed.metainfo.trim())
            .map_err(|e| Refusal::bad_request(format!("metainfo is not base64: {e}")))?;
        (
            metainfo,
            parsed.save_dir,
            parsed.paused,
            parsed.category,
            parsed.tags,
        )
    } else {
        let tags = query
            .tags
            .iter()
            .flat_map(|t| t.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        (
            body.to_vec(),
            query.save_dir,
            query.paused,
            query.category,
            tags,
        )
    };
    let (metainfo, save_dir, paused, category, tags) = options;
    if metainfo.is_empty() {
        return Err(Refusal::bad_request(
            "no torrent: send the .torrent file's bytes (or a magnet link) as the body",
        ));
    }
    if tags.len() > TAGS_MAX {
        return Err(Refusal::bad_request(format!(
            "{} tags; at most {TAGS_MAX}",
            tags.len()
        )));
    }
    let save_dir = match save_dir {
        None => None,
        Some(dir) => Some(
            api.access
                .save_dir(&dir, &api.daemon.download_dir())
                .map_err(|e| {
                    Refusal::new(StatusCode::FORBIDDEN, "path-not-allowed", e.to_string())
                })?,
        ),
    };
    let request = AddRequest {
        source: crate::daemon::magnets::Source::from_bytes(metainfo),
        save_dir,
        paused,
        category: category.filter(|c| !c.is_empty()),
        tags,
    };
    let hash = api.blocking(move |d| d.add(request)).await?;
    api.refreshed().await;
    let id = api.catalog.current().get(&hash).map(|r| r.id);
    Ok((
        StatusCode::CREATED,
        Json(wire::Added {
            hash: hash.to_hex(),
            id,
        }),
    ))
}

async fn action(
    _: Allowed,
    State(api): State<Arc<Api>>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<wire::Done>, Refusal> {
    let (hash, action) = path_part(path)?;
    let hash = parse_hash(&hash)?;
    let Some(action) = Action::from_name(&action) else {
        let names: Vec<&str> = Action::ALL.iter().map(|a| a.name()).collect();
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "unknown-action",
            format!("no action {action:?}; there are {}", names.join(", ")),
        ));
    };
    api.blocking(move |d| match action {
        Action::Pause => d.pause(hash),
        Action::Resume => d.resume(hash),
        Action::Recheck => d.recheck(hash),
        Action::Reannounce => d.reannounce(hash),
    })
    .await?;
    api.refreshed().await;
    Ok(Json(wire::Done { ok: true }))
}

async fn remove(
    _: Allowed,
    State(api): State<Arc<Api>>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<wire::RemoveQuery>, QueryRejection>,
) -> Result<Json<wire::Done>, Refusal> {
    let hash = parse_hash(&path_part(path)?)?;
    let Query(query) = query.map_err(|e| Refusal::bad_request(e.body_text()))?;
    api.blocking(move |d| d.remove(hash, query.delete_data))
        .await?;
    api.refreshed().await;
    Ok(Json(wire::Done { ok: true }))
}

async fn method_not_allowed(_: Allowed) -> Refusal {
    Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this path does not take that method",
    )
}

async fn not_found(_: Allowed) -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "no such path under /ccbt/v1/ (torrents, torrents/{hash}, shards, stats)",
    )
}
