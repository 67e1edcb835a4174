//! qBittorrent WebAPI v2 at `/api/v2/...`, as qBittorrent 5.1.4 (WebAPI 2.11.4) speaks it,
//! so Sonarr, Radarr, Prowlarr and the `qbittorrent-api` client work unchanged: `SID`
//! cookie sessions, `Ok.`/`Fails.` bodies, the 5.x stop/start names and the 4.x
//! pause/resume ones (Prowlarr still sends them).
//!
//! Every request passes [`guard`] first (client address, Host header, cross-site check,
//! session). Listings read the catalog's snapshot; commands go to the daemon on the
//! blocking pool and refresh the catalog, so the next listing shows them.
//!
//! Modules: [`session`] (SID store), [`guard`], [`auth`], [`app`] (identity and
//! preferences), [`serialize`] (a torrent as qBittorrent shows it), [`info`] (listing),
//! [`details`] (properties, files, trackers, piece states), [`add`], [`actions`],
//! [`labels`] (categories and tags), [`tracker_edits`], [`renames`] (files and folders),
//! [`sync`] (maindata increments), [`peers`] (a torrent's peers), [`transfer`].

pub mod actions;
pub mod add;
pub mod app;
pub mod auth;
pub mod details;
pub mod guard;
pub mod info;
pub mod labels;
pub mod params;
pub mod peers;
pub mod renames;
pub mod serialize;
pub mod session;
pub mod sync;
pub mod tracker_edits;
pub mod transfer;

use std::sync::Arc;

use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;

use super::access::reason;
use super::Api;

/// What the qBittorrent handlers share.
pub struct Qbt {
    pub api: Arc<Api>,
    pub sessions: session::Sessions,
    pub sync: sync::SyncPoints,
}

/// A refusal with qBittorrent's status and a plain-text reason.
#[derive(Debug)]
pub struct Refusal(pub StatusCode, pub String);

impl Refusal {
    pub fn bad(text: impl Into<String>) -> Refusal {
        Refusal(StatusCode::BAD_REQUEST, text.into())
    }

    pub fn not_found() -> Refusal {
        Refusal(StatusCode::NOT_FOUND, "Torrent hash was not found".into())
    }

    pub fn conflict(text: impl Into<String>) -> Refusal {
        Refusal(StatusCode::CONFLICT, text.into())
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        reason(self.0, &self.1)
    }
}

impl From<crate::daemon::core::DaemonError> for Refusal {
    fn from(e: crate::daemon::core::DaemonError) -> Refusal {
        use crate::daemon::core::DaemonError as E;
        use crate::daemon::labels::LabelError as L;
        let status = match &e {
            E::Unknown(_) => StatusCode::NOT_FOUND,
            E::BadTorrent(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            E::Duplicate(_) => StatusCode::CONFLICT,
            E::Command(ccbt_shards::swarm::CommandError::Busy(_)) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            E::Label(L::BadCategory(_) | L::BadTag(_)) => StatusCode::BAD_REQUEST,
            E::Label(L::Exists(_) | L::Missing(_) | L::Full(..)) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Refusal(status, e.to_string())
    }
}

impl From<crate::daemon::labels::LabelError> for Refusal {
    fn from(e: crate::daemon::labels::LabelError) -> Refusal {
        crate::daemon::core::DaemonError::from(e).into()
    }
}

pub type Reply = Result<Response, Refusal>;

/// 200 with an empty body: what qBittorrent answers a command that worked.
pub fn done() -> Reply {
    Ok(StatusCode::OK.into_response())
}

/// A plain-text 200 (versions, `Ok.`, `Fails.`).
pub fn text(body: impl Into<String>) -> Reply {
    Ok((
        StatusCode::OK,
        [("content-type", "text/plain; charset=UTF-8")],
        body.into(),
    )
        .into_response())
}

pub fn json(value: serde_json::Value) -> Reply {
    Ok(axum::Json(value).into_response())
}

/// A read endpoint: GET or POST (qBittorrent takes either for reads).
fn read<H, T>(h: H) -> MethodRouter<Arc<Qbt>>
where
    H: Handler<T, Arc<Qbt>> + Clone,
    T: 'static,
{
    get(h.clone()).post(h).fallback(wrong_method)
}

/// A command: POST only (qBittorrent refuses GET for anything that changes state).
fn command<H, T>(h: H) -> MethodRouter<Arc<Qbt>>
where
    H: Handler<T, Arc<Qbt>> + Clone,
    T: 'static,
{
    post(h).fallback(wrong_method)
}

async fn wrong_method() -> Response {
    reason(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed: this endpoint takes POST",
    )
}

async fn unknown_endpoint() -> Response {
    reason(StatusCode::NOT_FOUND, "Not Found: no such WebAPI endpoint")
}

pub fn router(api: &Arc<Api>) -> Router<Arc<Api>> {
    let qbt = Arc::new(Qbt {
        api: api.clone(),
        sessions: session::Sessions::default(),
        sync: sync::SyncPoints::default(),
    });
    let v2 = Router::new()
        .route("/auth/login", command(auth::login))
        .route("/auth/logout", command(auth::logout))
        .route("/app/version", read(app::version))
        .route("/app/webapiVersion", read(app::webapi_version))
        .route("/app/buildInfo", read(app::build_info))
        .route("/app/preferences", read(app::preferences))
        .route("/app/setPreferences", command(app::set_preferences))
        .route("/app/defaultSavePath", read(app::default_save_path))
        .route("/torrents/info", read(info::list))
        .route("/torrents/properties", read(details::properties))
        .route("/torrents/files", read(details::files))
        .route("/torrents/trackers", read(details::trackers))
        .route("/torrents/pieceStates", read(details::piece_states))
        .route("/torrents/addTrackers", command(tracker_edits::add))
        .route("/torrents/editTracker", command(tracker_edits::edit))
        .route("/torrents/removeTrackers", command(tracker_edits::remove))
        .route("/torrents/add", command(add::add))
        .route("/torrents/delete", command(actions::delete))
        .route("/torrents/stop", command(actions::stop))
        .route("/torrents/pause", command(actions::stop))
        .route("/torrents/start", command(actions::start))
        .route("/torrents/resume", command(actions::start))
        .route("/torrents/recheck", command(actions::recheck))
        .route("/torrents/reannounce", command(actions::reannounce))
        .route("/torrents/setLocation", command(actions::set_location))
        .route("/torrents/renameFile", command(renames::rename_file))
        .route("/torrents/renameFolder", command(renames::rename_folder))
        .route(
            "/torrents/setShareLimits",
            command(actions::set_share_limits),
        )
        .route(
            "/torrents/setUploadLimit",
            command(actions::set_upload_limit),
        )
        .route(
            "/torrents/setDownloadLimit",
            command(actions::set_download_limit),
        )
        .route("/torrents/uploadLimit", read(actions::upload_limit))
        .route("/torrents/downloadLimit", read(actions::download_limit))
        .route("/torrents/filePrio", command(actions::file_prio))
        .route("/torrents/topPrio", command(actions::top_prio))
        .route("/torrents/bottomPrio", command(actions::bottom_prio))
        .route("/torrents/increasePrio", command(actions::increase_prio))
        .route("/torrents/decreasePrio", command(actions::decrease_prio))
        .route("/torrents/setForceStart", command(actions::set_force_start))
        .route(
            "/torrents/toggleSequentialDownload",
            command(actions::toggle_sequential),
        )
        .route("/torrents/setCategory", command(labels::set_category))
        .route("/torrents/categories", read(labels::categories))
        .route("/torrents/createCategory", command(labels::create_category))
        .route("/torrents/editCategory", command(labels::edit_category))
        .route(
            "/torrents/removeCategories",
            command(labels::remove_categories),
        )
        .route("/torrents/addTags", command(labels::add_tags))
        .route("/torrents/removeTags", command(labels::remove_tags))
        .route("/torrents/tags", read(labels::tags))
        .route("/torrents/createTags", command(labels::create_tags))
        .route("/torrents/deleteTags", command(labels::delete_tags))
        .route("/sync/maindata", read(sync::maindata))
        .route("/sync/torrentPeers", read(peers::torrent_peers))
        .route("/transfer/info", read(transfer::info))
        .route("/transfer/uploadLimit", read(transfer::upload_limit))
        .route("/transfer/downloadLimit", read(transfer::download_limit))
        .route(
            "/transfer/setUploadLimit",
            command(transfer::set_upload_limit),
        )
        .route(
            "/transfer/setDownloadLimit",
            command(transfer::set_download_limit),
        )
        .fallback(unknown_endpoint)
        .layer(axum::middleware::from_fn_with_state(
            qbt.clone(),
            guard::check,
        ))
        .with_state(qbt);
    Router::new().nest("/api/v2", v2)
}
