//! What the seeder and leecher share: deadlines, buffered reading of wire messages, task
//! gauges, our handshake identity, and the process limits a big run needs.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Result};
use ccbt_engine::wire::{PeerId, Reserved};
use futures_lite::{AsyncRead, AsyncReadExt};
use hdrhistogram::Histogram;

use crate::content::splitmix64;
use crate::report::{Counters, Local, ShardReport};

/// Runs `fut` until it finishes or `deadline` passes (`None`).
pub async fn until<T>(deadline: Instant, fut: impl Future<Output = T>) -> Option<T> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(remaining).await;
        None
    })
    .await
}

/// Sleeps for `pause`, or less if the deadline comes first.
pub async fn pause_until(deadline: Instant, pause: Duration) {
    let remaining = deadline.saturating_duration_since(Instant::now());
    glommio::timer::sleep(pause.min(remaining)).await;
}

/// How often a shard moves its counters to the shared totals.
const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Flushes `local` into `counters` until the deadline, then waits (up to a grace period)
/// for the shard's tasks, which all stop at the deadline, to finish.
pub async fn tend_shard(
    local: &Local,
    counters: &Counters,
    tasks: &Rc<Cell<usize>>,
    deadline: Instant,
) {
    while Instant::now() < deadline {
        pause_until(deadline, FLUSH_EVERY).await;
        local.flush(counters);
    }
    let grace = Instant::now() + Duration::from_secs(1);
    while tasks.get() > 0 && Instant::now() < grace {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    local.flush(counters);
}

/// Tends the shard to the end (see [`tend_shard`]), then hands in its report: its error
/// messages and, for leechers, its latency histogram.
pub async fn finish_shard(
    local: &Local,
    counters: &Counters,
    tasks: &Rc<Cell<usize>>,
    deadline: Instant,
    latency: impl FnOnce() -> Option<Histogram<u64>>,
) {
    tend_shard(local, counters, tasks, deadline).await;
    counters
        .reports
        .lock()
        .expect("no shard panics holding it")
        .push(ShardReport {
            messages: local.take_messages(),
            latency: latency(),
        });
}

/// Counts a live thing (a task, a connection) for as long as it is held.
pub struct Gauge(Rc<Cell<usize>>);

impl Gauge {
    pub fn enter(count: &Rc<Cell<usize>>) -> Gauge {
        count.set(count.get() + 1);
        Gauge(count.clone())
    }
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// Bytes read from a peer and not yet decoded. Sized to hold the largest message the
/// torrent allows plus room to read ahead, so a full buffer always holds a whole message.
pub struct Inbox {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Inbox {
    pub fn new(max_message_len: u32) -> Inbox {
        Inbox {
            buf: vec![0; max_message_len as usize + 4 + (64 << 10)],
            start: 0,
            end: 0,
        }
    }

    /// This inbox holding `bytes` already read (which must fit).
    pub fn with_data(mut self, bytes: &[u8]) -> Inbox {
        self.buf[..bytes.len()].copy_from_slice(bytes);
        self.end = bytes.len();
        self
    }

    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    pub fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        }
    }

    /// Reads what the peer has sent; `Ok(0)` when it has closed the connection.
    pub async fn read_from<R: AsyncRead + Unpin>(&mut self, from: &mut R) -> io::Result<usize> {
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let n = from.read(&mut self.buf[self.end..]).await?;
        self.end += n;
        Ok(n)
    }
}

/// Why a connection ended.
#[derive(Debug)]
pub enum Ended {
    /// The peer closed it.
    Closed,
    Io(io::Error),
    /// The peer broke the protocol; counted as an error.
    Protocol(String),
}

impl From<io::Error> for Ended {
    fn from(e: io::Error) -> Self {
        Ended::Io(e)
    }
}

/// We speak the Fast extension (for have-all and rejects) and nothing else.
pub fn reserved() -> Reserved {
    let mut bytes = [0; 8];
    bytes[7] = 0x04;
    Reserved(bytes)
}

/// A printable peer id for simulated peer `n`: distinct per peer, the same on every run.
pub fn peer_id(role: u8, n: u64) -> PeerId {
    let mut random = [0; 12];
    random[..8].copy_from_slice(&splitmix64(n ^ (u64::from(role) << 56)).to_le_bytes());
    random[8..].copy_from_slice(&(n as u32).to_le_bytes());
    PeerId::generate(random)
}

/// Refuses addresses off this machine unless the user asked for them.
pub fn check_loopback(addr: &SocketAddr, allow_remote: bool) -> Result<()> {
    ensure!(
        allow_remote || addr.ip().is_loopback(),
        "{addr} is not a loopback address; pass --allow-remote to load another machine"
    );
    Ok(())
}

/// Raises the open-file limit to its hard maximum: thousands of connections need
/// thousands of descriptors, and the soft limit is often 1024.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
