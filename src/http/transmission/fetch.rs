//! Fetches a `.torrent` from an `http://` URL (torrent-add's `filename`), with a size cap,
//! a time limit and at most [`MAX_REDIRECTS`] redirects. `https://` is refused with a
//! reason: the daemon carries no TLS client.

use std::time::Duration;

use axum::http::{header, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use thiserror::Error;

pub const MAX_REDIRECTS: usize = 5;
pub const TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("{0}: not a URL this can fetch")]
    BadUrl(String),
    #[error(
        "{0}: https URLs are not fetched (the daemon has no TLS client); download the \
         .torrent and send it as \"metainfo\" (base64)"
    )]
    Https(String),
    #[error("{url}: {why}")]
    Failed { url: String, why: String },
    #[error("{url}: the server answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("{url}: the file is over {limit} bytes")]
    TooLarge { url: String, limit: usize },
    #[error("{0}: no answer within 30 s")]
    Timeout(String),
    #[error("{0}: more than 5 redirects")]
    Redirects(String),
}

/// The body of `url`, at most `limit` bytes.
pub async fn fetch(url: &str, limit: usize) -> Result<Vec<u8>, FetchError> {
    tokio::time::timeout(TIMEOUT, follow(url.to_string(), limit))
        .await
        .map_err(|_| FetchError::Timeout(url.to_string()))?
}

async fn follow(mut url: String, limit: usize) -> Result<Vec<u8>, FetchError> {
    for _ in 0..=MAX_REDIRECTS {
        match get(&url, limit).await? {
            Fetched::Body(b) => return Ok(b),
            Fetched::Redirect(to) => url = to,
        }
    }
    Err(FetchError::Redirects(url))
}

enum Fetched {
    Body(Vec<u8>),
    Redirect(String),
}

async fn get(url: &str, limit: usize) -> Result<Fetched, FetchError> {
    if url.starts_with("https://") {
        return Err(FetchError::Https(url.to_string()));
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| FetchError::BadUrl(url.to_string()))?;
    let (Some("http"), Some(authority)) = (uri.scheme_str(), uri.authority().cloned()) else {
        return Err(FetchError::BadUrl(url.to_string()));
    };
    let failed = |why: String| FetchError::Failed {
        url: url.to_string(),
        why,
    };
    let port = authority.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((authority.host(), port))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| failed(e.to_string()))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    let request = Request::get(path)
        .header(header::HOST, authority.as_str())
        .header(
            header::USER_AGENT,
            concat!("ccbt-uring/", env!("CARGO_PKG_VERSION")),
        )
        .header(header::ACCEPT, "application/x-bittorrent, */*")
        .body(axum::body::Body::empty())
        .map_err(|e| failed(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let status = response.status();
    if status.is_redirection() {
        driver.abort();
        let to = response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| failed(format!("{status} without a Location")))?;
        let to = if to.starts_with('/') {
            format!("http://{authority}{to}")
        } else {
            to.to_string()
        };
        return Ok(Fetched::Redirect(to));
    }
    if !status.is_success() {
        driver.abort();
        return Err(FetchError::Status {
            url: url.to_string(),
            status,
        });
    }
    let body = axum::body::to_bytes(axum::body::Body::new(response.into_body()), limit)
        .await
        .map_err(|_| FetchError::TooLarge {
            url: url.to_string(),
            limit,
        });
    driver.abort();
    Ok(Fetched::Body(body?.to_vec()))
}
