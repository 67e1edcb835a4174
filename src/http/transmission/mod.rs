//! Transmission's RPC (the legacy protocol, with rpc-version 17 semantics, as Transmission
//! 4.0 speaks it) and Transmission's web UI, for Sonarr/Radarr, `transmission-remote` and
//! the 3.00 web UI.
//!
//! What it does not do: JSON-RPC 2.0 (Transmission 4.1's new protocol) and port tests
//! (port-test answers with an error that says so).
//!
//! Layout: [`transport`] (the HTTP side: access checks, the session-id dance, the JSON
//! envelope), [`dispatch`] (method names to handlers), [`ids`] (which torrents a call
//! names), [`fields`], [`file_stats`] and [`trackers`] (torrent-get's fields), one module
//! per method group; [`web`] serves the web UI's files.

mod actions;
mod dispatch;
mod fields;
mod file_stats;
mod guard;
mod ids;
mod session;
mod session_id;
mod torrent_add;
mod torrent_get;
mod torrent_set;
mod trackers;
mod transport;
mod web;

use std::sync::Arc;

use axum::routing::any;
use axum::Router;

use super::Api;

/// The RPC at `/transmission/rpc` (transmission-remote 3.00 posts to `.../rpc/`) and the
/// web UI at `/transmission/web/`.
pub fn router() -> Router<Arc<Api>> {
    Router::new()
        .route("/transmission/rpc", any(transport::rpc))
        .route("/transmission/rpc/", any(transport::rpc))
        .merge(web::router())
}
