//! Who may call the RPC or load the web UI, checked in Transmission's order: the client's
//! address (403), the Host header (421), a ban after failed logins (403), then HTTP Basic
//! credentials (401 with a challenge: transmission-remote sends them only after one).

use std::net::IpAddr;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::super::access::{reason, Denied};
use super::super::Access;

pub const REALM: &str = "Basic realm=\"Transmission\"";

/// Why a request was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Not loopback, and not allowed by credentials and `control.ip_whitelist`.
    Address,
    /// The Host header names someone else (DNS rebinding).
    Host,
    /// Banned for repeated failed logins.
    Banned,
    /// No credentials, or wrong ones: a challenge.
    Credentials,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Address => reason(StatusCode::FORBIDDEN, "Unauthorized IP Address."),
            Refusal::Host => reason(
                StatusCode::MISDIRECTED_REQUEST,
                "Unauthorized Host: add the name to control.host_whitelist, or use an IP \
                 address or localhost",
            ),
            Refusal::Banned => reason(
                StatusCode::FORBIDDEN,
                "Too many unsuccessful login attempts. Wait for the ban \
                 (control.login_ban_s) to end or restart the daemon.",
            ),
            Refusal::Credentials => {
                let mut r = reason(StatusCode::UNAUTHORIZED, "Unauthorized User");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static(REALM),
                );
                r
            }
        }
    }
}

/// `Ok` when the request may go on: the shared checks ([`Access::admit_basic`]) in
/// Transmission's words.
pub fn admit(access: &Access, peer: IpAddr, headers: &HeaderMap) -> Result<(), Refusal> {
    access
        .admit_basic(peer, headers)
        .map_err(|denied| match denied {
            Denied::Address => Refusal::Address,
            Denied::Host => Refusal::Host,
            Denied::Banned => Refusal::Banned,
            Denied::NoCredentials | Denied::WrongCredentials => Refusal::Credentials,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access() -> Access {
        let mut config = ccbt_config::Config::default();
        config.control.username = "admin".into();
        config.control.password = "s3cret".into();
        config.control.ip_whitelist = vec!["10.0.0.0/8".into()];
        config.control.login_max_failures = 2;
        Access::from_config(&config, "0.0.0.0:9091".parse().unwrap()).unwrap()
    }

    fn headers(host: &str, auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, a.parse().unwrap());
        }
        h
    }

    const GOOD: &str = "Basic YWRtaW46czNjcmV0";
    const BAD: &str = "Basic YWRtaW46eA==";

    #[test]
    fn addresses_hosts_credentials_and_bans_are_checked_in_order() {
        let a = access();
        let lan: IpAddr = "192.168.1.5".parse().unwrap();
        let allowed: IpAddr = "10.1.2.3".parse().unwrap();
        let ok = headers("10.0.0.1:9091", Some(GOOD));
        assert_eq!(admit(&a, lan, &ok), Err(Refusal::Address));
        assert_eq!(admit(&a, allowed, &ok), Ok(()));
        assert_eq!(
            admit(&a, allowed, &headers("evil.example", Some(GOOD))),
            Err(Refusal::Host)
        );
        let none = headers("10.0.0.1:9091", None);
        assert_eq!(admit(&a, allowed, &none), Err(Refusal::Credentials));
        assert!(!a.is_banned(allowed), "a missing password is not a failure");
        let bad = headers("10.0.0.1:9091", Some(BAD));
        assert_eq!(admit(&a, allowed, &bad), Err(Refusal::Credentials));
        assert_eq!(admit(&a, allowed, &bad), Err(Refusal::Credentials));
        assert_eq!(admit(&a, allowed, &ok), Err(Refusal::Banned));
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(admit(&a, loopback, &ok), Ok(()));
    }

    #[test]
    fn refusals_carry_transmissions_status_codes_and_the_challenge() {
        assert_eq!(
            Refusal::Address.into_response().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            Refusal::Host.into_response().status(),
            StatusCode::MISDIRECTED_REQUEST
        );
        assert_eq!(
            Refusal::Banned.into_response().status(),
            StatusCode::FORBIDDEN
        );
        let challenge = Refusal::Credentials.into_response();
        assert_eq!(challenge.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenge.headers()[header::WWW_AUTHENTICATE], REALM);
    }
}
