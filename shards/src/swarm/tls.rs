//! TLS for the shard's HTTP clients (https trackers and https web seeds): OpenSSL through
//! `native-tls`, so the system's CA store and `SSL_CERT_FILE` decide what is trusted, as
//! they do for the control plane's fetches. A certificate that does not verify for the
//! URL's host fails the connection, with OpenSSL's reason.
//!
//! Each connection builds its own OpenSSL context (the crate offers no shared one), which
//! loads the CA bundle: a few milliseconds on the shard thread per new connection. Tracker
//! connections are kept alive and pooled, so a shard pays it per tracker, not per announce.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;
use glommio::timer::timeout;

/// A connection to an HTTP server: plain, or TLS for an `https://` URL.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<async_native_tls::TlsStream<TcpStream>>),
}

/// Connects to `addr`, and for `tls_host` (an https URL's host) does the TLS handshake,
/// checking the server's certificate names that host; all within `limit`.
pub async fn connect(
    addr: SocketAddr,
    tls_host: Option<&str>,
    limit: Duration,
) -> io::Result<Stream> {
    let tcp = TcpStream::connect_timeout(addr, limit).await?;
    let Some(host) = tls_host else {
        return Ok(Stream::Plain(tcp));
    };
    let handshake = async {
        async_native_tls::connect(host, tcp)
            .await
            .map_err(|e| io::Error::other(format!("TLS with {host}: {e}")))
    };
    let tls = timeout(limit, async { Ok(handshake.await) })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    Ok(Stream::Tls(Box::new(tls)))
}

/// The host to verify for `url`, if it is an https URL.
pub fn tls_host(url: &url::Url) -> Option<String> {
    (url.scheme() == "https").then(|| url.host_str().unwrap_or_default().to_string())
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}
