//! Who may call the RPC or load the web UI, checked in Transmission's order: the client's
//! address (403), the Host header (421), a ban after failed logins (403), then HTTP Basic
//! credentials (401 with a challenge: transmission-remote sends them only after one).

use std::net::IpAddr;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::super::access::{basic_credentials, reason};
use super::super::Api;

pub const REALM: &str = "Basic realm=\"Transmission\"";

/// `Ok` when the request may go on; otherwise the refusal to send.
pub fn admit(api: &Api, peer: IpAddr, headers: &HeaderMap) -> Result<(), Response> {
    let access = &api.access;
    if !access.client_allowed(peer) {
        return Err(reason(StatusCode::FORBIDDEN, "Unauthorized IP Address."));
    }
    if !access.host_allowed(headers) {
        return Err(reason(
            StatusCode::MISDIRECTED_REQUEST,
            "Unauthorized Host: add the name to control.host_whitelist, or use an IP \
             address or localhost",
        ));
    }
    if access.is_banned(peer) {
        return Err(reason(
            StatusCode::FORBIDDEN,
            "Too many unsuccessful login attempts. Please restart the daemon or wait.",
        ));
    }
    if !access.needs_credentials() {
        return Ok(());
    }
    match basic_credentials(headers) {
        Some((user, password)) if access.check(&user, &password) => {
            access.login_succeeded(peer);
            Ok(())
        }
        Some(_) => {
            let banned = access.login_failed(peer);
            if banned {
                tracing::warn!(%peer, "banned after repeated failed logins");
            }
            Err(challenge())
        }
        // No credentials yet: a challenge, not a failure (clients send them after one).
        None => Err(challenge()),
    }
}

fn challenge() -> Response {
    let mut r = reason(StatusCode::UNAUTHORIZED, "Unauthorized User");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static(REALM),
    );
    r.into_response()
}
