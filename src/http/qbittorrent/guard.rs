//! What every `/api/v2` request passes before its handler:
//!
//! 1. the checks all the APIs share ([`Access::admit_client`](crate::http::Access::admit_client)):
//!    an address the whitelist refuses gets 403; a Host header that does not name us
//!    (DNS rebinding) 401, as qBittorrent answers it; a banned address (too many failed
//!    logins) 403;
//! 2. cross-site requests are refused with 401: when `Origin` (else `Referer`) is
//!    present, its host and port must equal the Host header's; when neither is,
//!    `Sec-Fetch-Site: cross-site` is refused;
//! 3. a session: a live `SID` cookie, or valid HTTP Basic credentials (Sonarr and Radarr
//!    send them up front), or no credentials configured and a loopback client
//!    (qBittorrent's "bypass authentication for clients on localhost"); otherwise 403.
//!    `auth/login` is exempt from this step only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

use super::session::cookie_of;
use super::Qbt;
use crate::http::access::{basic_credentials, reason, Denied};

pub const BANNED: &str =
    "Your IP address has been banned after too many failed authentication attempts.";

pub async fn check(State(q): State<Arc<Qbt>>, req: Request, next: Next) -> Response {
    let peer = peer_of(&req);
    let headers = req.headers();
    if let Err(denied) = q.api.access.admit_client(peer, headers) {
        return match denied {
            Denied::Banned => reason(StatusCode::FORBIDDEN, BANNED),
            Denied::Host => reason(
                StatusCode::UNAUTHORIZED,
                "Unauthorized: the Host header is not allowed (control.host_whitelist)",
            ),
            _ => reason(
                StatusCode::FORBIDDEN,
                "Forbidden: this address may not use the WebAPI",
            ),
        };
    }
    if let Err(why) = same_site(headers) {
        return reason(StatusCode::UNAUTHORIZED, &format!("Unauthorized: {why}"));
    }
    // Inside the `/api/v2` nest the path arrives without its prefix.
    let is_login = matches!(req.uri().path(), "/auth/login" | "/api/v2/auth/login");
    if !is_login && !authenticated(&q, headers, peer) {
        return reason(StatusCode::FORBIDDEN, "Forbidden");
    }
    next.run(req).await
}

/// The client's address (unspecified when the connection's is unknown: never loopback).
pub fn peer_of(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

fn authenticated(q: &Qbt, headers: &HeaderMap, peer: IpAddr) -> bool {
    let access = &q.api.access;
    if !access.needs_credentials() && peer_is_loopback(peer) {
        return true;
    }
    if cookie_of(headers).is_some_and(|sid| q.sessions.touch(sid)) {
        return true;
    }
    if !access.needs_credentials() {
        return false;
    }
    // Basic credentials (the *arr apps send them up front) count towards a ban like
    // `auth/login`'s, so a brute force cannot go around the login form.
    match basic_credentials(headers) {
        Some((user, password)) if access.check(&user, &password) => {
            access.login_succeeded(peer);
            true
        }
        Some(_) => {
            access.note_failed_login(peer);
            false
        }
        None => false,
    }
}

fn peer_is_loopback(peer: IpAddr) -> bool {
    match peer {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(v6.is_loopback(), |v4| v4.is_loopback()),
        IpAddr::V4(v4) => v4.is_loopback(),
    }
}

/// qBittorrent's cross-site check (`isCrossSiteRequest`).
pub fn same_site(headers: &HeaderMap) -> Result<(), String> {
    let value = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let source = value(header::ORIGIN)
        .map(|o| ("Origin", o))
        .or_else(|| value(header::REFERER).map(|r| ("Referer", r)));
    match source {
        Some((name, url)) => {
            let target = value(header::HOST)
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let from = authority(url);
            if from.is_some_and(|f| f == target) {
                Ok(())
            } else {
                Err(format!(
                    "cross-site request refused: {name} {url:?} is not this server ({target:?})"
                ))
            }
        }
        None => match value(header::HeaderName::from_static("sec-fetch-site")) {
            Some(site) if site.eq_ignore_ascii_case("cross-site") => {
                Err("cross-site request refused (Sec-Fetch-Site)".into())
            }
            _ => Ok(()),
        },
    }
}

/// `host[:port]` of a URL, lowercased, with the scheme's default port left out as a Host
/// header leaves it out.
fn authority(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    let host = parsed.host_str()?.to_ascii_lowercase();
    Some(match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn same_origin_passes_and_cross_site_is_refused() {
        let host = ("host", "127.0.0.1:8080");
        assert!(same_site(&headers(&[host])).is_ok());
        assert!(same_site(&headers(&[host, ("origin", "http://127.0.0.1:8080")])).is_ok());
        assert!(same_site(&headers(&[host, ("referer", "http://127.0.0.1:8080/x?y")])).is_ok());
        assert!(same_site(&headers(&[host, ("origin", "http://evil.example")])).is_err());
        assert!(same_site(&headers(&[host, ("origin", "http://127.0.0.1:8081")])).is_err());
        assert!(same_site(&headers(&[host, ("origin", "null")])).is_err());
        assert!(same_site(&headers(&[host, ("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_site(&headers(&[host, ("sec-fetch-site", "same-origin")])).is_ok());
        let plain = ("host", "localhost");
        assert!(same_site(&headers(&[plain, ("origin", "http://LOCALHOST")])).is_ok());
    }
}
