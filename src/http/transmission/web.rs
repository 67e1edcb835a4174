//! Transmission's web UI, served from `control.web_ui_dir` (Debian's transmission-common
//! installs it at /usr/share/transmission/web; its files are GPL and stay out of this
//! repository). `/` and `/transmission` lead to it with a 301, as Transmission does.
//! The same access rules as the RPC apply (address, Host, ban, Basic credentials).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;

use super::super::access::reason;
use super::super::Api;
use super::guard;

pub const PREFIX: &str = "/transmission/web/";

pub fn router() -> Router<Arc<Api>> {
    Router::new()
        .route("/", any(to_web_ui))
        .route("/transmission", any(to_web_ui))
        .route("/transmission/", any(to_web_ui))
        .route("/transmission/web", any(to_web_ui))
        .route("/transmission/web/", any(files))
        .route("/transmission/web/{*path}", any(files))
}

async fn to_web_ui() -> Response {
    (
        StatusCode::MOVED_PERMANENTLY,
        [(header::LOCATION, PREFIX)],
        "the web UI is at /transmission/web/\n",
    )
        .into_response()
}

async fn files(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request<Body>,
) -> Response {
    if let Err(refusal) = guard::admit(&api.access, peer.ip(), request.headers()) {
        return refusal.into_response();
    }
    let dir = api.config().control.web_ui_dir;
    let Some(dir) = dir.filter(|d| d.join("index.html").is_file()) else {
        return reason(
            StatusCode::NOT_FOUND,
            "no web UI: control.web_ui_dir is not set or has no index.html (Debian's \
             transmission-common installs one at /usr/share/transmission/web)",
        );
    };
    let (mut parts, body) = request.into_parts();
    let rest = parts
        .uri
        .path()
        .strip_prefix(PREFIX)
        .unwrap_or("")
        .to_string();
    parts.uri = match format!("/{rest}").parse() {
        Ok(uri) => uri,
        Err(_) => return reason(StatusCode::BAD_REQUEST, "not a file path"),
    };
    let request = Request::from_parts(parts, body);
    let service = tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true);
    match tower::ServiceExt::oneshot(service, request).await {
        Ok(r) => r.map(Body::new),
        Err(never) => match never {},
    }
}
