//! Who may use the control APIs, shared by all of them: credentials, the client-address
//! and Host-header whitelists, bans after repeated failed logins, and where an API may
//! put a torrent's data.
//!
//! Rules (Transmission's and qBittorrent's defaults, made strict): with no credentials
//! configured the APIs answer only on a loopback listener and only to loopback clients;
//! with credentials every request must carry them (Basic auth or a login session), from
//! any client the IP whitelist allows. The Host header must be localhost, an IP literal or
//! a whitelisted name, so a web page on another site cannot reach us through DNS
//! rebinding.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use ipnet::IpNet;
use thiserror::Error;

/// Addresses tracked for failed logins at most; the oldest is forgotten first.
pub const MAX_TRACKED_ADDRESSES: usize = 10_000;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum AccessError {
    #[error("control.ip_whitelist: {0:?} is not an address or CIDR range")]
    BadRange(String),
    #[error(
        "daemon.control {0} is not a loopback address: set control.username and \
         control.password first (no credentials: loopback only)"
    )]
    NeedsCredentials(SocketAddr),
}

/// The answers a save path can get.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("{0}: not under an allowed save directory")]
    NotAllowed(PathBuf),
    #[error("the save path is empty")]
    Empty,
}

pub struct Access {
    credentials: Option<(String, String)>,
    ip_whitelist: Vec<IpNet>,
    host_whitelist: Vec<String>,
    allowed_save_dirs: Vec<PathBuf>,
    pub max_request_bytes: usize,
    bans: Mutex<Bans>,
}

impl Access {
    pub fn from_config(
        config: &ccbt_config::Config,
        listen: SocketAddr,
    ) -> Result<Access, AccessError> {
        let c = &config.control;
        let credentials = (!c.username.is_empty() || !c.password.is_empty())
            .then(|| (c.username.clone(), c.password.clone()));
        if credentials.is_none() && !listen.ip().is_loopback() {
            return Err(AccessError::NeedsCredentials(listen));
        }
        let ip_whitelist = c
            .ip_whitelist
            .iter()
            .map(|text| parse_range(text).ok_or_else(|| AccessError::BadRange(text.clone())))
            .collect::<Result<_, _>>()?;
        let download_dir = &config.daemon.download_dir;
        Ok(Access {
            credentials,
            ip_whitelist,
            host_whitelist: c
                .host_whitelist
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            allowed_save_dirs: c
                .allowed_save_dirs
                .iter()
                .map(|d| lexical(&download_dir.join(d)))
                .collect(),
            max_request_bytes: usize::try_from(c.max_request_bytes).unwrap_or(usize::MAX),
            bans: Mutex::new(Bans::new(
                c.login_max_failures,
                Duration::from_secs(u64::from(c.login_ban_s)),
            )),
        })
    }

    /// Whether requests must carry credentials.
    pub fn needs_credentials(&self) -> bool {
        self.credentials.is_some()
    }

    /// The client may talk to us at all (before credentials): loopback always; others if
    /// credentials are set and the whitelist (if any) has them.
    pub fn client_allowed(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        if peer.is_loopback() {
            return true;
        }
        self.credentials.is_some()
            && (self.ip_whitelist.is_empty() || self.ip_whitelist.iter().any(|n| n.contains(&peer)))
    }

    /// The Host header names us: localhost, an IP literal, or a whitelisted name.
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(host) = headers
            .get(axum::http::header::HOST)
            .and_then(|h| h.to_str().ok())
        else {
            // HTTP/1.0 clients may leave it out; nothing to rebind then.
            return true;
        };
        let name = host_name(host).to_ascii_lowercase();
        name == "localhost"
            || name.ends_with(".localhost")
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
            || self.host_whitelist.iter().any(|w| w == "*" || *w == name)
    }

    /// A user name and password match the configured ones (constant time).
    pub fn check(&self, user: &str, password: &str) -> bool {
        match &self.credentials {
            None => true,
            Some((u, p)) => {
                eq_ct(u.as_bytes(), user.as_bytes()) & eq_ct(p.as_bytes(), password.as_bytes())
            }
        }
    }

    /// The address is banned for too many failed logins.
    pub fn is_banned(&self, peer: IpAddr) -> bool {
        self.bans
            .lock()
            .expect("bans lock")
            .is_banned(canonical(peer), Instant::now())
    }

    /// Counts a failed login; returns whether the address is now banned.
    pub fn login_failed(&self, peer: IpAddr) -> bool {
        self.bans
            .lock()
            .expect("bans lock")
            .failed(canonical(peer), Instant::now())
    }

    pub fn login_succeeded(&self, peer: IpAddr) {
        self.bans.lock().expect("bans lock").forget(canonical(peer));
    }

    /// Where an API asked to put a torrent's data, made absolute (relative to the
    /// download directory), with `.` and `..` resolved, symlinks of the existing part
    /// followed, and checked against `control.allowed_save_dirs`.
    pub fn save_dir(&self, requested: &str, download_dir: &Path) -> Result<PathBuf, PathError> {
        let requested = requested.trim();
        if requested.is_empty() {
            return Err(PathError::Empty);
        }
        let path = resolve(&download_dir.join(requested));
        if self.allowed_save_dirs.is_empty()
            || self
                .allowed_save_dirs
                .iter()
                .any(|root| path.starts_with(resolve(root)))
        {
            Ok(path)
        } else {
            Err(PathError::NotAllowed(path))
        }
    }
}

/// Why the shared checks turned a request away. Each API answers it in its own words
/// and status codes (Transmission's 401 challenge, qBittorrent's 403, JSON for the
/// native API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Not loopback, and not allowed by credentials and `control.ip_whitelist`.
    Address,
    /// The Host header names someone else (DNS rebinding).
    Host,
    /// Banned for repeated failed logins.
    Banned,
    /// Credentials are set and the request carries none: a challenge, not a failure.
    NoCredentials,
    /// Credentials are set and the request's are wrong (counted towards a ban).
    WrongCredentials,
}

impl Access {
    /// The checks every API makes first, in one order: the client address, the Host
    /// header, a ban. qBittorrent then checks its cross-site rule and its session; the
    /// others go on to [`Access::admit_basic`].
    pub fn admit_client(&self, peer: IpAddr, headers: &HeaderMap) -> Result<(), Denied> {
        if !self.client_allowed(peer) {
            return Err(Denied::Address);
        }
        if !self.host_allowed(headers) {
            return Err(Denied::Host);
        }
        if self.is_banned(peer) {
            return Err(Denied::Banned);
        }
        Ok(())
    }

    /// [`Access::admit_client`], then HTTP Basic credentials when any are configured:
    /// right ones clear the address's failures, wrong ones count towards its ban (logged
    /// when it begins).
    pub fn admit_basic(&self, peer: IpAddr, headers: &HeaderMap) -> Result<(), Denied> {
        self.admit_client(peer, headers)?;
        if !self.needs_credentials() {
            return Ok(());
        }
        match basic_credentials(headers) {
            Some((user, password)) if self.check(&user, &password) => {
                self.login_succeeded(peer);
                Ok(())
            }
            Some(_) => {
                self.note_failed_login(peer);
                Err(Denied::WrongCredentials)
            }
            None => Err(Denied::NoCredentials),
        }
    }

    /// [`Access::admit_basic`] for the plain endpoints (`/metrics`, `/events`): the client
    /// whitelist (403), the Host header against DNS rebinding (421), bans after failed
    /// credentials (403), and Basic credentials when any are set (401 with a challenge).
    /// `None`: the request may go on; otherwise the answer that refuses it.
    pub fn plain_refusal(&self, peer: IpAddr, headers: &HeaderMap) -> Option<Response> {
        let refused = match self.admit_basic(peer, headers).err()? {
            Denied::Address => reason(
                StatusCode::FORBIDDEN,
                "this address may not use the control API (control.ip_whitelist)",
            ),
            Denied::Host => reason(
                StatusCode::MISDIRECTED_REQUEST,
                "the Host header names neither localhost, an IP address nor a name in \
                 control.host_whitelist",
            ),
            Denied::Banned => reason(
                StatusCode::FORBIDDEN,
                "too many failed logins from this address; try again later",
            ),
            Denied::NoCredentials | Denied::WrongCredentials => {
                let mut challenge = reason(
                    StatusCode::UNAUTHORIZED,
                    "credentials required (HTTP Basic, control.username and control.password)",
                );
                challenge.headers_mut().insert(
                    "www-authenticate",
                    axum::http::HeaderValue::from_static("Basic realm=\"ccbt-uring\""),
                );
                challenge
            }
        };
        Some(refused)
    }

    /// Counts a failed login and says in the log when it bans the address.
    pub fn note_failed_login(&self, peer: IpAddr) {
        if self.login_failed(peer) {
            tracing::warn!(%peer, "banned after repeated failed logins (control.login_ban_s)");
        }
    }
}

/// A plain-text answer with a status: the reason a request was refused.
pub fn reason(status: StatusCode, text: &str) -> Response {
    (
        status,
        [("content-type", "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

/// The user and password of a `Basic` Authorization header.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn eq_ct(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// `::ffff:1.2.3.4` is 1.2.3.4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn parse_range(text: &str) -> Option<IpNet> {
    let text = text.trim();
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The host of a Host header, without its port.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// `.` and `..` resolved without touching the disk (`..` never climbs above `/`).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// [`lexical`], then the longest existing prefix canonicalized (symlinks followed).
fn resolve(path: &Path) -> PathBuf {
    let clean = lexical(path);
    let mut existing = clean.clone();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_owned()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return clean,
        }
    }
}

/// Failed logins per address, and bans.
struct Bans {
    max_failures: u32,
    ban_for: Duration,
    by_address: HashMap<IpAddr, Failures>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    banned_until: Option<Instant>,
}

impl Bans {
    fn new(max_failures: u32, ban_for: Duration) -> Bans {
        Bans {
            max_failures: max_failures.max(1),
            ban_for,
            by_address: HashMap::new(),
        }
    }

    fn is_banned(&self, ip: IpAddr, now: Instant) -> bool {
        self.by_address
            .get(&ip)
            .and_then(|f| f.banned_until)
            .is_some_and(|until| now < until)
    }

    fn failed(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.by_address.contains_key(&ip) && self.by_address.len() >= MAX_TRACKED_ADDRESSES {
            // Forget the quietest address (unbanned ones first).
            if let Some(oldest) = self
                .by_address
                .iter()
                .min_by_key(|(_, f)| (f.banned_until.is_some(), f.last))
                .map(|(ip, _)| *ip)
            {
                self.by_address.remove(&oldest);
            }
        }
        let f = self.by_address.entry(ip).or_insert(Failures {
            count: 0,
            last: now,
            banned_until: None,
        });
        if f.banned_until.is_some_and(|until| now >= until) {
            f.count = 0;
            f.banned_until = None;
        }
        f.count += 1;
        f.last = now;
        if f.count >= self.max_failures {
            f.banned_until = Some(now + self.ban_for);
        }
        f.banned_until.is_some()
    }

    fn forget(&mut self, ip: IpAddr) {
        self.by_address.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(user: &str, pass: &str, listen: &str) -> Result<Access, AccessError> {
        let mut config = ccbt_config::Config::default();
        config.control.username = user.into();
        config.control.password = pass.into();
        config.control.ip_whitelist = vec!["10.1.0.0/16".into(), "192.168.7.9".into()];
        config.daemon.download_dir = "/srv/dl".into();
        config.control.allowed_save_dirs = vec!["/srv/dl".into(), "tv".into()];
        Access::from_config(&config, listen.parse().unwrap())
    }

    #[test]
    fn no_credentials_means_loopback_only() {
        assert_eq!(
            access("", "", "0.0.0.0:9091").err(),
            Some(AccessError::NeedsCredentials(
                "0.0.0.0:9091".parse().unwrap()
            ))
        );
        let a = access("", "", "127.0.0.1:9091").unwrap();
        assert!(a.client_allowed("127.0.0.1".parse().unwrap()));
        assert!(a.client_allowed("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!a.client_allowed("10.1.2.3".parse().unwrap()));
        assert!(a.check("anyone", "anything"));
    }

    #[test]
    fn credentials_and_the_whitelist_apply_to_others() {
        let a = access("admin", "s3cret", "0.0.0.0:9091").unwrap();
        assert!(a.client_allowed("10.1.2.3".parse().unwrap()));
        assert!(a.client_allowed("192.168.7.9".parse().unwrap()));
        assert!(!a.client_allowed("192.168.7.10".parse().unwrap()));
        assert!(a.check("admin", "s3cret"));
        assert!(!a.check("admin", "s3cre"));
        assert!(!a.check("admi", "s3cret"));
    }

    #[test]
    fn the_shared_checks_run_address_host_ban_then_credentials() {
        let a = access("admin", "s3cret", "0.0.0.0:9091").unwrap();
        let allowed: IpAddr = "10.1.2.3".parse().unwrap();
        let with = |host: &str, auth: Option<&str>| {
            let mut h = HeaderMap::new();
            h.insert("host", host.parse().unwrap());
            if let Some(auth) = auth {
                h.insert("authorization", auth.parse().unwrap());
            }
            h
        };
        let good = with("10.0.0.1:9091", Some("Basic YWRtaW46czNjcmV0"));
        let wrong = with("10.0.0.1:9091", Some("Basic YWRtaW46eA=="));
        assert_eq!(a.admit_basic(allowed, &good), Ok(()));
        assert_eq!(
            a.admit_basic("192.168.7.10".parse().unwrap(), &good),
            Err(Denied::Address)
        );
        assert_eq!(
            a.admit_basic(
                allowed,
                &with("evil.example", Some("Basic YWRtaW46czNjcmV0"))
            ),
            Err(Denied::Host)
        );
        assert_eq!(
            a.admit_basic(allowed, &with("10.0.0.1:9091", None)),
            Err(Denied::NoCredentials)
        );
        assert!(!a.is_banned(allowed), "a missing password is not a failure");
        // Wrong passwords until the ban (control.login_max_failures; bounded here).
        for _ in 0..100 {
            if a.admit_basic(allowed, &wrong) != Err(Denied::WrongCredentials) {
                break;
            }
        }
        assert_eq!(a.admit_basic(allowed, &wrong), Err(Denied::Banned));
        assert_eq!(a.admit_basic(allowed, &good), Err(Denied::Banned));
        assert_eq!(a.admit_client(allowed, &good), Err(Denied::Banned));
    }

    #[test]
    fn host_headers_are_checked_against_rebinding() {
        let a = access("", "", "127.0.0.1:9091").unwrap();
        let host = |h: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("host", h.parse().unwrap());
            a.host_allowed(&headers)
        };
        assert!(host("localhost:9091"));
        assert!(host("127.0.0.1:9091"));
        assert!(host("[::1]:9091"));
        assert!(!host("evil.example:9091"));
        assert!(!host("evil.example"));
    }

    #[test]
    fn save_paths_are_resolved_and_confined() {
        let a = access("admin", "x", "127.0.0.1:9091").unwrap();
        let dl = Path::new("/srv/dl");
        assert_eq!(
            a.save_dir("movies", dl),
            Ok(PathBuf::from("/srv/dl/movies"))
        );
        assert_eq!(
            a.save_dir("/srv/dl/tv/../x", dl),
            Ok(PathBuf::from("/srv/dl/x"))
        );
        assert_eq!(
            a.save_dir("../../etc", dl),
            Err(PathError::NotAllowed(PathBuf::from("/etc")))
        );
        assert_eq!(a.save_dir("  ", dl), Err(PathError::Empty));
    }

    #[test]
    fn repeated_failures_ban_an_address_for_a_while() {
        let mut bans = Bans::new(3, Duration::from_secs(60));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(!bans.failed(ip, t0));
        assert!(!bans.failed(ip, t0));
        assert!(bans.failed(ip, t0));
        assert!(bans.is_banned(ip, t0 + Duration::from_secs(59)));
        assert!(!bans.is_banned(ip, t0 + Duration::from_secs(61)));
        assert!(
            !bans.failed(ip, t0 + Duration::from_secs(61)),
            "a new round after the ban"
        );
    }
}
