//! `auth/login` and `auth/logout`. A good login answers `Ok.` with a `SID` cookie; a bad
//! one `Fails.` (HTTP 200, as qBittorrent 5.1 does) and counts towards the address's
//! ban; a banned address gets 403 before its password is even looked at.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::guard::{peer_of, BANNED};
use super::params::Params;
use super::session::{cookie_of, COOKIE};
use super::{text, Qbt, Refusal, Reply};

pub async fn login(State(q): State<Arc<Qbt>>, req: Request) -> Reply {
    let peer = peer_of(&req);
    let p = match <Params as axum::extract::FromRequest<()>>::from_request(req, &()).await {
        Ok(p) => p,
        Err(refused) => return Ok::<Response, Refusal>(refused),
    };
    let access = &q.api.access;
    if access.is_banned(peer) {
        return Err(Refusal(StatusCode::FORBIDDEN, BANNED.into()));
    }
    let user = p.get("username").unwrap_or("");
    let password = p.get("password").unwrap_or("");
    if !access.check(user, password) {
        if access.login_failed(peer) {
            tracing::warn!(%peer, "WebAPI login failed; address banned");
        } else {
            tracing::info!(%peer, "WebAPI login failed");
        }
        return text("Fails.");
    }
    access.login_succeeded(peer);
    let sid = q
        .sessions
        .create()
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=UTF-8".to_string(),
            ),
            (
                header::SET_COOKIE,
                format!("{COOKIE}={sid}; HttpOnly; SameSite=Strict; path=/"),
            ),
        ],
        "Ok.",
    )
        .into_response())
}

pub async fn logout(State(q): State<Arc<Qbt>>, headers: HeaderMap) -> Reply {
    if let Some(sid) = cookie_of(&headers) {
        q.sessions.end(sid);
    }
    super::done()
}
