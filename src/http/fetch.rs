//! Fetching a `.torrent` named by URL: qBittorrent's `torrents/add` (`urls`, what Prowlarr
//! and the *arr apps send when an indexer gives a download link) and Transmission's
//! `torrent-add` (`filename`). One fetcher, so both APIs have the same schemes, bounds and
//! error texts.
//!
//! `http://` and `https://`; TLS is the system's OpenSSL, with its CA store (OpenSSL's
//! default paths, so `SSL_CERT_FILE` and `SSL_CERT_DIR` apply) and host name checks: a
//! certificate that does not verify fails the add. Bounds: the whole fetch (connect,
//! redirects and body) within [`FETCH_TIMEOUT`], at most [`MAX_REDIRECTS`] redirects, and a
//! body no larger than the caller's cap (`control.max_request_bytes`, like an upload).
//!
//! A magnet link, given or redirected to (indexers often answer a torrent's download link
//! with a redirect to its magnet link), is returned as such: the daemon fetches its
//! metadata from peers.

use std::time::Duration;

pub use crate::daemon::magnets::Source;

use axum::body::Body;
use hyper_util::rt::TokioIo;
use thiserror::Error;

pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_REDIRECTS: usize = 5;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum FetchError {
    #[error("{0:?} is not a URL")]
    BadUrl(String),
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("{0}: too many redirects")]
    Redirects(String),
    #[error("{url}: the file is over control.max_request_bytes ({cap} bytes)")]
    TooLarge { url: String, cap: usize },
    #[error("{0}: no answer within {FETCH_TIMEOUT:?}")]
    Timeout(String),
}

/// The `.torrent` behind `url` (following redirects), or the magnet link it is or leads to.
pub async fn fetch(url: &str, cap: usize) -> Result<Source, FetchError> {
    let url = url.to_string();
    match tokio::time::timeout(FETCH_TIMEOUT, follow(url.clone(), cap)).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout(url)),
    }
}

async fn follow(mut url: String, cap: usize) -> Result<Source, FetchError> {
    for _ in 0..=MAX_REDIRECTS {
        if crate::commands::magnet::is_magnet(&url) {
            return Ok(Source::Magnet(url));
        }
        match get(&url, cap).await? {
            Answer::Body(bytes) => return Ok(Source::Torrent(bytes)),
            Answer::Redirect(to) => url = to,
        }
    }
    Err(FetchError::Redirects(url))
}

enum Answer {
    Body(Vec<u8>),
    Redirect(String),
}

async fn get(url: &str, cap: usize) -> Result<Answer, FetchError> {
    let parsed = url::Url::parse(url).map_err(|_| FetchError::BadUrl(url.into()))?;
    let tls = match parsed.scheme() {
        "http" => false,
        "https" => true,
        _ => return Err(FetchError::BadUrl(url.into())),
    };
    let failed = |reason: String| FetchError::Failed {
        url: url.into(),
        reason,
    };
    let host = parsed
        .host_str()
        .ok_or_else(|| FetchError::BadUrl(url.into()))?
        .to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
        .await
        .map_err(|e| failed(format!("cannot connect: {e}")))?;
    let name = host.trim_matches(['[', ']']);
    let (mut sender, driver) = if tls {
        let connector = tokio_native_tls::native_tls::TlsConnector::new()
            .map_err(|e| failed(format!("no TLS: {e}")))?;
        let stream = tokio_native_tls::TlsConnector::from(connector)
            .connect(name, stream)
            .await
            .map_err(|e| failed(format!("TLS: {e}")))?;
        start(TokioIo::new(stream)).await
    } else {
        start(TokioIo::new(stream)).await
    }
    .map_err(|e| failed(e.to_string()))?;
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let authority = match parsed.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.clone(),
    };
    let request = hyper::Request::get(path)
        .header("host", authority)
        .header(
            "user-agent",
            concat!("ccbt-uring/", env!("CARGO_PKG_VERSION")),
        )
        .header("accept", "application/x-bittorrent, */*")
        .body(Body::empty())
        .map_err(|e| failed(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    let answer = if status.is_redirection() {
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| failed(format!("{status} without a Location")))?;
        let to = parsed
            .join(location)
            .map(String::from)
            .or_else(|_| Ok::<_, FetchError>(location.to_string()))?;
        Answer::Redirect(to)
    } else if status.is_success() {
        let body = axum::body::to_bytes(Body::new(response.into_body()), cap)
            .await
            .map_err(|e| {
                if over_the_cap(&e) {
                    FetchError::TooLarge {
                        url: url.into(),
                        cap,
                    }
                } else {
                    failed(format!("the body broke off: {e}"))
                }
            })?;
        Answer::Body(body.to_vec())
    } else {
        return Err(failed(format!("the server answered {status}")));
    };
    driver.abort();
    Ok(answer)
}

/// Whether reading a body failed because it passed the cap (a `LengthLimitError` somewhere
/// in the error's chain), rather than because the connection broke.
fn over_the_cap(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// An HTTP/1.1 client connection on `io`, driven by a task of its own.
async fn start<T>(
    io: T,
) -> Result<
    (
        hyper::client::conn::http1::SendRequest<Body>,
        tokio::task::JoinHandle<()>,
    ),
    hyper::Error,
>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender, driver))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn magnets_are_returned_and_other_schemes_refused() {
        let link = "magnet:?xt=urn:btih:00";
        assert!(matches!(fetch(link, 100).await, Ok(Source::Magnet(l)) if l == link));
        assert!(matches!(
            fetch("ftp://x/y", 100).await,
            Err(FetchError::BadUrl(_))
        ));
        assert!(matches!(
            fetch("not a url", 100).await,
            Err(FetchError::BadUrl(_))
        ));
    }
}
