//! Announcing to (and scraping) trackers over the shard's own sockets: HTTP on a glommio TCP stream (with
//! the request and response codec from the engine) and UDP (BEP 15) on a glommio socket.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ccbt_engine::tracker::http::{
    announce_from_http, announce_url, parse_scrape_all, scrape_url_many, HTTP_SCRAPE_HASHES_MAX,
};
use ccbt_engine::tracker::http_response::get_request;
use ccbt_engine::tracker::udp::SCRAPE_HASHES_MAX;
use ccbt_engine::tracker::{
    Announce, AnnounceResponse, HttpResponse, ResponseReader, ScrapeStats, TrackerError,
    UdpAnnouncer, UdpStep,
};
use ccbt_engine::InfoHash;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::UdpSocket;

use super::tls::{self, Stream};
use glommio::timer::timeout;
use thiserror::Error;

use super::clock::Clock;
use super::resolver::{DnsCache, ResolveError};
use super::stats::AnnounceFailure;

/// Longest a whole HTTP announce may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);
/// The most a tracker's response may weigh.
const BODY_MAX: usize = 1 << 20;
/// UDP retransmits before giving up (BEP 15 allows 8; a CLI user should not wait an hour).
const UDP_TRIES: u32 = 3;

pub const USER_AGENT: &str = concat!("ccbt-uring/", env!("CARGO_PKG_VERSION"));

/// Why an announce got no answer: the tracker's fault, the network's, or the clock's.
#[derive(Debug, Error)]
pub enum AnnounceError {
    #[error(transparent)]
    Tracker(#[from] TrackerError),
    #[error("cannot reach the tracker: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot reach the tracker: {0}")]
    Runtime(#[from] glommio::GlommioError<()>),
    #[error("the tracker did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
}

impl AnnounceError {
    /// The kind metrics count it under.
    pub fn failure(&self) -> AnnounceFailure {
        match self {
            AnnounceError::Tracker(TrackerError::Failure(_)) => AnnounceFailure::Refused,
            AnnounceError::Tracker(TrackerError::TimedOut { .. }) | AnnounceError::Timeout(_) => {
                AnnounceFailure::Timeout
            }
            AnnounceError::Tracker(_) => AnnounceFailure::Protocol,
            AnnounceError::Io(_) | AnnounceError::Runtime(_) => AnnounceFailure::Network,
            AnnounceError::Resolve(_) => AnnounceFailure::Resolve,
        }
    }
}

/// Idle keep-alive connections kept per tracker address, and in all, per shard.
const IDLE_PER_TRACKER: usize = 4;
const IDLE_MAX: usize = 64;
/// Reuse an idle connection only this soon: trackers close idle ones after a while.
const IDLE_FRESH: Duration = Duration::from_secs(20);

/// UDP trackers remembered per shard, at most.
const UDP_IDS_MAX: usize = 1024;

/// Where a kept connection goes: the address and, for https, the host its TLS session
/// verified.
type Server = (SocketAddr, Option<String>);

/// A shard's connections to trackers, shared by its torrents: idle HTTP keep-alive streams,
/// UDP connection ids (BEP 15 lets one be reused for a minute), and the tracker names
/// resolved. A seedbox with thousands of torrents on one tracker should not open a
/// connection, connect, or look the name up for each.
pub struct TrackerConnections {
    idle: RefCell<HashMap<Server, Vec<(Stream, Instant)>>>,
    udp_ids: RefCell<HashMap<SocketAddr, (u64, Duration)>>,
    dns: Rc<DnsCache>,
}

impl TrackerConnections {
    pub fn new(dns: Rc<DnsCache>) -> TrackerConnections {
        TrackerConnections {
            idle: RefCell::default(),
            udp_ids: RefCell::default(),
            dns,
        }
    }

    fn take(&self, to: &Server) -> Option<Stream> {
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(to)?;
        while let Some((stream, since)) = list.pop() {
            if since.elapsed() < IDLE_FRESH {
                return Some(stream);
            }
        }
        None
    }

    fn put(&self, to: Server, stream: Stream) {
        let mut idle = self.idle.borrow_mut();
        let total: usize = idle.values().map(Vec::len).sum();
        let list = idle.entry(to).or_default();
        if list.len() < IDLE_PER_TRACKER && total < IDLE_MAX {
            list.push((stream, Instant::now()));
        }
    }
}

/// Sends one announce to `url` and returns the tracker's answer.
pub async fn announce(
    url: &str,
    request: &Announce,
    clock: &Clock,
    connections: &TrackerConnections,
    seed: u64,
) -> Result<AnnounceResponse, AnnounceError> {
    if url.starts_with("udp://") {
        announce_udp(url, request, clock, connections, seed).await
    } else {
        announce_http(url, request, connections).await
    }
}

fn bad(url: &str, why: &str) -> TrackerError {
    TrackerError::BadUrl {
        url: url.to_string(),
        reason: why.to_string(),
    }
}

/// Where a tracker URL points: host and port (the scheme's default if none), resolved off
/// the shard thread (see `resolver`).
pub(super) async fn endpoint(
    url: &str,
    connections: &TrackerConnections,
) -> Result<SocketAddr, AnnounceError> {
    let parsed = url::Url::parse(url).map_err(|e| bad(url, &e.to_string()))?;
    let host = parsed.host_str().ok_or_else(|| bad(url, "no host"))?;
    let port = parsed
        .port_or_known_default()
        .ok_or_else(|| bad(url, "no port"))?;
    Ok(connections.dns.lookup(host, port).await?)
}

async fn announce_http(
    url: &str,
    request: &Announce,
    connections: &TrackerConnections,
) -> Result<AnnounceResponse, AnnounceError> {
    let full = announce_url(url, request)?;
    let response = http_get(url, &full, connections).await?;
    Ok(announce_from_http(&response)?)
}

/// GETs `full` from the tracker of `base`, on a kept connection if there is one.
async fn http_get(
    base: &str,
    full: &str,
    connections: &TrackerConnections,
) -> Result<HttpResponse, AnnounceError> {
    let parsed = url::Url::parse(full).map_err(|e| bad(base, &e.to_string()))?;
    let addr = endpoint(base, connections).await?;
    let to = (addr, tls::tls_host(&parsed));
    let request_bytes = get_request(&parsed, USER_AGENT);
    // A kept connection the tracker has meanwhile closed fails at once: retry on a new one.
    if let Some(stream) = connections.take(&to) {
        if let Ok(response) = exchange(stream, to.clone(), &request_bytes, connections).await {
            return Ok(response);
        }
    }
    let stream = tls::connect(addr, to.1.as_deref(), HTTP_TIMEOUT).await?;
    exchange(stream, to, &request_bytes, connections).await
}

/// Scrapes `hashes` at the tracker of announce URL `url`: HTTP (BEP 48, the first
/// [`HTTP_SCRAPE_HASHES_MAX`]) or UDP (BEP 15, the first [`SCRAPE_HASHES_MAX`]). Returns
/// the counts the tracker gave, by info hash.
pub async fn scrape(
    url: &str,
    hashes: &[InfoHash],
    clock: &Clock,
    connections: &TrackerConnections,
    seed: u64,
) -> Result<Vec<(InfoHash, ScrapeStats)>, AnnounceError> {
    if url.starts_with("udp://") {
        let hashes = &hashes[..hashes.len().min(SCRAPE_HASHES_MAX)];
        let machine = UdpAnnouncer::scrape(hashes.to_vec(), None, seed);
        return match udp_exchange(url, machine, clock, connections).await? {
            UdpStep::Scraped(stats) => Ok(hashes.iter().copied().zip(stats).collect()),
            _ => Err(bad(url, "the tracker answered a scrape with something else").into()),
        };
    }
    let full = scrape_url_many(url, hashes)
        .ok_or_else(|| bad(url, "the tracker has no scrape URL (BEP 48 convention)"))?;
    let response = http_get(url, &full, connections).await?;
    if response.status != 200 {
        return Err(TrackerError::HttpStatus(response.status).into());
    }
    Ok(parse_scrape_all(&response.body)?)
}

/// The most hashes one scrape of `url` carries.
pub fn scrape_batch_max(url: &str) -> usize {
    if url.starts_with("udp://") {
        SCRAPE_HASHES_MAX
    } else {
        HTTP_SCRAPE_HASHES_MAX
    }
}

/// One request and its response on `stream`, which goes back to the pool if the tracker
/// keeps it alive.
async fn exchange(
    mut stream: Stream,
    to: Server,
    request: &[u8],
    connections: &TrackerConnections,
) -> Result<HttpResponse, AnnounceError> {
    let exchange = async {
        stream.write_all(request).await?;
        let mut reader = ResponseReader::new(BODY_MAX);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = stream.read(&mut buf).await?;
            let step = if n == 0 {
                reader.on_eof().map(Some)
            } else {
                reader.feed(&buf[..n])
            };
            if let Some(response) = step? {
                return Ok::<_, AnnounceError>(response);
            }
        }
    };
    let response = timeout(HTTP_TIMEOUT, async { Ok(exchange.await) })
        .await
        .map_err(|_| AnnounceError::Timeout(HTTP_TIMEOUT))??;
    if response.keep_alive {
        connections.put(to, stream);
    }
    Ok(response)
}

async fn announce_udp(
    url: &str,
    request: &Announce,
    clock: &Clock,
    connections: &TrackerConnections,
    seed: u64,
) -> Result<AnnounceResponse, AnnounceError> {
    let machine = UdpAnnouncer::new(request.clone(), None, seed);
    match udp_exchange(url, machine, clock, connections).await? {
        UdpStep::Done(response) => Ok(response),
        _ => Err(bad(url, "the tracker answered an announce with something else").into()),
    }
}

/// Runs one BEP 15 exchange (announce or scrape) to its end: the final `Done` or
/// `Scraped` step. Reuses and remembers the tracker's connection id.
async fn udp_exchange(
    url: &str,
    mut machine: UdpAnnouncer,
    clock: &Clock,
    connections: &TrackerConnections,
) -> Result<UdpStep, AnnounceError> {
    let addr = endpoint(url, connections).await?;
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal")
    } else {
        "[::]:0".parse().expect("literal")
    };
    let socket = UdpSocket::bind(local).map_err(std::io::Error::from)?;
    let cached = connections.udp_ids.borrow().get(&addr).copied();
    machine.set_connection(cached);
    machine.set_max_tries(UDP_TRIES);
    machine.set_ipv6(addr.is_ipv6());
    let first = machine.start(clock.now());
    send(&socket, &first, addr).await?;
    let mut buf = vec![0u8; 2048];
    loop {
        let wait = machine.timeout().saturating_sub(clock.now());
        let step = match timeout(wait.max(Duration::from_millis(1)), async {
            Ok(socket.recv_from(&mut buf).await)
        })
        .await
        {
            Ok(Ok((n, from))) if from == addr => machine.on_datagram(clock.now(), &buf[..n]),
            Ok(Ok(_)) => UdpStep::Ignore,
            Ok(Err(e)) => return Err(std::io::Error::from(e).into()),
            Err(_) => machine.on_timeout(clock.now()),
        };
        match step {
            UdpStep::Send(bytes) => send(&socket, &bytes, addr).await?,
            UdpStep::Failed(e) => return Err(e.into()),
            UdpStep::Ignore => {}
            done => {
                if let Some(id) = machine.connection() {
                    let mut ids = connections.udp_ids.borrow_mut();
                    if ids.len() < UDP_IDS_MAX || ids.contains_key(&addr) {
                        ids.insert(addr, id);
                    }
                }
                return Ok(done);
            }
        }
    }
}

async fn send(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) -> Result<(), AnnounceError> {
    socket
        .send_to(bytes, to)
        .await
        .map(drop)
        .map_err(|e| std::io::Error::from(e).into())
}
