//! The HTTP control plane at `daemon.control`: Transmission RPC (`/transmission/rpc`,
//! `/transmission/web/`), qBittorrent WebAPI v2 (`/api/v2/...`), Prometheus `/metrics`,
//! the event stream `/events`, and the native API `/ccbt/v1/...` (`remote --url`, `top`).
//! Their paths do not collide, so one listener serves all.
//!
//! It runs on threads of its own (a small tokio runtime), never on a shard. Listings are
//! answered from the [`Catalog`]'s snapshot; commands go to the [`Daemon`] on tokio's
//! blocking pool, so a command waiting for a shard or the state database never holds up
//! another request.
//!
//! Bounds: at most [`MAX_CONNECTIONS`] connections are served at once (more wait in the
//! listen backlog); request headers must arrive within [`HEADER_TIMEOUT`] and a whole
//! request within [`REQUEST_TIMEOUT`] (408 otherwise); bodies are capped at
//! `control.max_request_bytes` (413).

pub mod access;
pub mod fetch;
pub mod metrics;
pub mod native;
pub mod qbittorrent;
pub mod sse;
pub mod transmission;

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use ccbt_config::Config;
use hyper_util::rt::{TokioIo, TokioTimer};
use thiserror::Error;

use crate::daemon::catalog::Catalog;
use crate::daemon::core::Daemon;

pub use access::Access;

pub const MAX_CONNECTIONS: usize = 256;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What every handler shares.
pub struct Api {
    pub daemon: Arc<Daemon>,
    pub catalog: Arc<Catalog>,
    pub access: Access,
    /// The configuration in force: as last (re)loaded, with the API's changes. Changed
    /// only through [`Api::set_config`], so a reload knows what the API set.
    pub config: Arc<Mutex<Config>>,
    /// The keys set through an API, which a config reload keeps.
    pub api_settings: Arc<crate::daemon::api_settings::ApiSettings>,
    pub started: Instant,
    /// Set to stop the daemon (Transmission's `session-close`).
    pub stop: Arc<AtomicBool>,
}

impl Api {
    /// Runs a blocking daemon call on the blocking pool.
    pub async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Daemon) -> T + Send + 'static,
    ) -> T {
        let daemon = self.daemon.clone();
        tokio::task::spawn_blocking(move || f(&daemon))
            .await
            .expect("a daemon call panicked")
    }

    /// Refreshes the catalog after a command, so the next listing shows its effect.
    pub async fn refreshed(self: &Arc<Self>) {
        let catalog = self.catalog.clone();
        let _ = tokio::task::spawn_blocking(move || catalog.refresh()).await;
    }

    pub fn config(&self) -> Config {
        self.config.lock().expect("config lock").clone()
    }

    /// Puts `new` in force as the settings `api` (the protocol, for the log) changed;
    /// returns the config it replaced.
    pub fn set_config(&self, api: &str, new: Config) -> Config {
        let mut live = self.config.lock().expect("config lock");
        self.api_settings.record(api, &live, &new);
        std::mem::replace(&mut *live, new)
    }
}

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the HTTP threads: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The running server; [`Server::stop`] ends it.
pub struct Server {
    pub local_addr: SocketAddr,
    shutdown: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Stops accepting, lets requests in flight finish (up to a few seconds), and joins.
    pub fn stop(mut self) {
        self.finish();
    }

    fn finish(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(true);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Every route, with the layers all of them share.
pub fn router(api: Arc<Api>) -> Router {
    let max_body = api.access.max_request_bytes;
    Router::new()
        .merge(transmission::router())
        .merge(qbittorrent::router(&api))
        .merge(metrics::router())
        .merge(sse::router())
        .merge(native::router())
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .with_state(api)
}

/// Binds `addr` now (so a taken port is an error at start-up) and serves on threads of
/// its own.
pub fn serve(api: Arc<Api>, addr: SocketAddr) -> Result<Server, ServeError> {
    let listener =
        std::net::TcpListener::bind(addr).map_err(|source| ServeError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ServeError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| ServeError::Bind { addr, source })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("http")
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let app = router(api);
    let thread = std::thread::Builder::new()
        .name("http-accept".into())
        .spawn(move || runtime.block_on(accept_loop(listener, app, rx)))
        .map_err(ServeError::Runtime)?;
    Ok(Server {
        local_addr,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

async fn accept_loop(
    listener: std::net::TcpListener,
    app: Router,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return tracing::error!(error = %e, "control API listener unusable"),
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("semaphore never closed"),
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and the like: back off rather than spin.
                    tracing::warn!(error = %e, "control API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let mut stop = shutdown.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    let app = app.clone();
                    async move {
                        let req = req.map(axum::body::Body::new);
                        let response = tokio::time::timeout(
                            REQUEST_TIMEOUT,
                            tower::ServiceExt::oneshot(app, req),
                        )
                        .await;
                        Ok::<_, std::convert::Infallible>(match response {
                            Ok(Ok(r)) => r,
                            Ok(Err(never)) => match never {},
                            Err(_) => access::reason(
                                axum::http::StatusCode::REQUEST_TIMEOUT,
                                "the request took too long",
                            ),
                        })
                    }
                },
            );
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(3), conn).await;
                }
            }
        });
        // Reap finished connections so the set stays as small as the live ones.
        while connections.try_join_next().is_some() {}
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}
