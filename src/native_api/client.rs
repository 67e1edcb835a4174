//! A blocking client of the native API, over plain HTTP (ureq): what `remote --url` and
//! `top` talk to a daemon with, local or remote.
//!
//! Bounds: every call gives up after [`Client::timeout`]; a listing is read up to
//! [`LISTING_BYTES_MAX`], any other answer up to [`ANSWER_BYTES_MAX`] (more is an error,
//! not a bigger buffer).

use std::time::Duration;

use base64::Engine as _;
use thiserror::Error;

use super::wire::{self, Action};

/// A listing of 100,000 torrents is about 60 MB of JSON.
pub const LISTING_BYTES_MAX: u64 = 512 << 20;
/// Any other answer.
pub const ANSWER_BYTES_MAX: u64 = 16 << 20;
/// How long one call may take by default.
pub const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("{0} is not an http:// URL of a daemon (like http://127.0.0.1:9091)")]
    BadUrl(String),
    #[error("cannot reach the daemon at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the daemon refused the credentials ({0}); set --user/--password or CCBT_USER/CCBT_PASSWORD")]
    Unauthorized(String),
    #[error("the daemon refused: {error} ({kind}, HTTP {status})")]
    Refused {
        status: u16,
        kind: String,
        error: String,
    },
    #[error("the daemon's answer to {path} is not what this version expects: {reason}")]
    BadAnswer { path: String, reason: String },
}

impl ClientError {
    /// The API's kind of error (`unknown-torrent`, `bad-torrent`, ...), when it gave one.
    pub fn kind(&self) -> &str {
        match self {
            ClientError::BadUrl(_) => "bad-url",
            ClientError::Unreachable { .. } => "unreachable",
            ClientError::Unauthorized(_) => "unauthorized",
            ClientError::Refused { kind, .. } => kind,
            ClientError::BadAnswer { .. } => "bad-answer",
        }
    }
}

/// Options of an add.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    pub save_dir: Option<String>,
    pub paused: bool,
    pub category: Option<String>,
    pub tags: Vec<String>,
}

pub struct Client {
    agent: ureq::Agent,
    /// `http://host:port`, without a trailing slash.
    base: String,
    authorization: Option<String>,
}

impl Client {
    /// A client of the daemon at `url` (`http://HOST:PORT`, a path after it is ignored),
    /// sending `credentials` as HTTP Basic when given.
    pub fn new(
        url: &str,
        credentials: Option<(String, String)>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let bad = || ClientError::BadUrl(url.to_string());
        let parsed: ureq::http::Uri = url.parse().map_err(|_| bad())?;
        if parsed.scheme_str() != Some("http") {
            return Err(bad());
        }
        let authority = parsed.authority().ok_or_else(bad)?;
        if authority.as_str().contains('@') || authority.host().is_empty() {
            return Err(bad());
        }
        let base = format!("http://{}", authority.as_str());
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build();
        Ok(Client {
            agent: ureq::Agent::new_with_config(config),
            base,
            authorization: credentials.map(|(user, password)| {
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
                )
            }),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn list(&self) -> Result<wire::TorrentList, ClientError> {
        self.get("/ccbt/v1/torrents", LISTING_BYTES_MAX)
    }

    /// What changed after the listing numbered `since` (a full listing when the daemon
    /// cannot say: see [`wire::TorrentList::full`]).
    pub fn list_since(&self, since: u64) -> Result<wire::TorrentList, ClientError> {
        self.get(
            &format!("/ccbt/v1/torrents?since={since}"),
            LISTING_BYTES_MAX,
        )
    }

    pub fn details(&self, hash: &str) -> Result<wire::Details, ClientError> {
        self.get(
            &format!("/ccbt/v1/torrents/{}", segment(hash)),
            ANSWER_BYTES_MAX,
        )
    }

    pub fn shards(&self) -> Result<Vec<wire::Shard>, ClientError> {
        self.get("/ccbt/v1/shards", ANSWER_BYTES_MAX)
    }

    pub fn stats(&self) -> Result<wire::Stats, ClientError> {
        self.get("/ccbt/v1/stats", ANSWER_BYTES_MAX)
    }

    /// Adds a torrent from its .torrent bytes.
    pub fn add(&self, metainfo: &[u8], options: &AddOptions) -> Result<wire::Added, ClientError> {
        let path = "/ccbt/v1/torrents";
        let mut request = self
            .with_auth(self.agent.post(format!("{}{path}", self.base)))
            .header("content-type", "application/x-bittorrent")
            .query("paused", if options.paused { "true" } else { "false" });
        if let Some(dir) = &options.save_dir {
            request = request.query("save_dir", dir);
        }
        if let Some(category) = &options.category {
            request = request.query("category", category);
        }
        if !options.tags.is_empty() {
            request = request.query("tags", options.tags.join(","));
        }
        let response = request.send(metainfo).map_err(|e| self.unreachable(e))?;
        answer(path, response, ANSWER_BYTES_MAX)
    }

    pub fn act(&self, hash: &str, action: Action) -> Result<wire::Done, ClientError> {
        let path = format!("/ccbt/v1/torrents/{}/{}", segment(hash), action.name());
        let response = self
            .with_auth(self.agent.post(format!("{}{path}", self.base)))
            .send_empty()
            .map_err(|e| self.unreachable(e))?;
        answer(&path, response, ANSWER_BYTES_MAX)
    }

    pub fn remove(&self, hash: &str, delete_data: bool) -> Result<wire::Done, ClientError> {
        let path = format!("/ccbt/v1/torrents/{}", segment(hash));
        let response = self
            .with_auth(self.agent.delete(format!("{}{path}", self.base)))
            .query("delete_data", if delete_data { "true" } else { "false" })
            .call()
            .map_err(|e| self.unreachable(e))?;
        answer(&path, response, ANSWER_BYTES_MAX)
    }

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        limit: u64,
    ) -> Result<T, ClientError> {
        let response = self
            .with_auth(self.agent.get(format!("{}{path}", self.base)))
            .call()
            .map_err(|e| self.unreachable(e))?;
        answer(path, response, limit)
    }

    fn with_auth<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.authorization {
            Some(value) => request.header("authorization", value),
            None => request,
        }
    }

    fn unreachable(&self, e: ureq::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        }
    }
}

/// A hash as one path segment: anything but hex digits is percent-encoded, so a bad
/// argument reaches the daemon as a bad hash rather than as another path.
fn segment(hash: &str) -> String {
    hash.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The answer's JSON, or the refusal it carries.
fn answer<T: serde::de::DeserializeOwned>(
    path: &str,
    mut response: ureq::http::Response<ureq::Body>,
    limit: u64,
) -> Result<T, ClientError> {
    let status = response.status();
    let bad = |reason: String| ClientError::BadAnswer {
        path: path.to_string(),
        reason,
    };
    let text = response
        .body_mut()
        .with_config()
        .limit(limit)
        .read_to_string()
        .map_err(|e| bad(e.to_string()))?;
    if status.is_success() {
        return serde_json::from_str(&text).map_err(|e| bad(e.to_string()));
    }
    let refusal: Option<wire::ApiError> = serde_json::from_str(&text).ok();
    if status == ureq::http::StatusCode::UNAUTHORIZED {
        return Err(ClientError::Unauthorized(
            refusal.map_or_else(|| "HTTP 401".to_string(), |r| r.error),
        ));
    }
    Err(match refusal {
        Some(r) => ClientError::Refused {
            status: status.as_u16(),
            kind: r.kind,
            error: r.error,
        },
        None => ClientError::Refused {
            status: status.as_u16(),
            kind: format!("http-{}", status.as_u16()),
            error: text.trim().chars().take(200).collect(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_keep_only_host_and_port() {
        let c = Client::new("http://127.0.0.1:9091/transmission/", None, TIMEOUT).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:9091");
        let c = Client::new("http://[::1]:8080", None, TIMEOUT).unwrap();
        assert_eq!(c.base_url(), "http://[::1]:8080");
        for bad in ["127.0.0.1:9091", "https://example.org", "ftp://x", ""] {
            assert!(
                matches!(Client::new(bad, None, TIMEOUT), Err(ClientError::BadUrl(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_hash_stays_one_path_segment() {
        assert_eq!(segment("abc123"), "abc123");
        assert_eq!(segment("../x"), "%2E%2E%2Fx");
    }
}
