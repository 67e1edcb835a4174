//! `flood`: hostile connections against a target, of the kinds a seedbox on the internet
//! meets: connections that never send a handshake, garbage handshakes, a handshake
//! trickled a byte a second (slowloris), peers that ask for blocks and never read them,
//! peers that take a slot and wait as the protocol asks (squatters), request floods and
//! HAVE floods.
//!
//! Connection `i` is of kind `kinds[i mod kinds]` and runs on shard `i mod shards`. Each
//! holds its connection as long as the target lets it, then dials again after a pause, so
//! the pressure lasts the whole run. What the target did to each kind (connections made,
//! refused, closed by it and how long they lasted, still open at the end) is the report.

use std::cell::Cell;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use ccbt_engine::metainfo::Layout;
use ccbt_engine::wire::{Handshake, Message};
use ccbt_engine::{BlockRef, InfoHash, BLOCK_LEN};
use ccbt_shards::pool::{spawn, ShardConfig, ShardId};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use serde::Serialize;

use crate::content::splitmix64;
use crate::net::{self, Gauge};
use crate::torrent::Loaded;

/// Most hostile connections one run holds.
pub const CONNECTIONS_MAX: u32 = 20_000;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before a closed or refused connection dials again.
const REDIAL_PAUSE: Duration = Duration::from_millis(250);
/// A slowloris writes one byte this often.
const TRICKLE: Duration = Duration::from_secs(1);
/// A flooding connection writes a burst this often.
const BURST_EVERY: Duration = Duration::from_millis(50);
/// Messages per burst.
const BURST: usize = 256;
/// A never-reader's receive buffer: small, so the target's sends stall at once.
const NEVER_READ_RCVBUF: usize = 4096;

/// What a hostile connection does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// Connects and sends nothing.
    HalfOpen,
    /// Sends 68 random bytes where the handshake belongs.
    Garbage,
    /// Sends a valid handshake one byte a second.
    Slowloris,
    /// Handshakes, asks for blocks, and never reads a byte.
    NeverRead,
    /// Handshakes, says it is interested, and waits with keep-alives, asking for nothing:
    /// as a real peer waiting for an upload slot does.
    Squat,
    /// Handshakes and floods requests (reading what comes back).
    RequestSpam,
    /// Handshakes and floods HAVE, HAVE ALL and HAVE NONE.
    HaveSpam,
}

pub const ALL_KINDS: [Kind; 7] = [
    Kind::HalfOpen,
    Kind::Garbage,
    Kind::Slowloris,
    Kind::NeverRead,
    Kind::Squat,
    Kind::RequestSpam,
    Kind::HaveSpam,
];

pub struct Options {
    pub torrent: Loaded,
    pub target: SocketAddr,
    pub connections: u32,
    pub kinds: Vec<Kind>,
    pub duration: Duration,
    pub shards: ShardConfig,
    /// Connections being opened at once, over all shards.
    pub connect_concurrency: u32,
}

/// What the target did to one kind of connection.
#[derive(Debug, Default)]
struct Tally {
    connected: AtomicU64,
    refused: AtomicU64,
    closed_by_target: AtomicU64,
    held_ms: AtomicU64,
    open: AtomicU64,
    open_max: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_read: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
pub struct KindSummary {
    pub kind: Kind,
    /// Connections of this kind the run keeps.
    pub slots: u32,
    pub connected: u64,
    /// Dials that failed or timed out.
    pub refused: u64,
    pub closed_by_target: u64,
    /// Mean time the target kept one before closing it.
    pub mean_held_s: f64,
    /// Connections open at the end.
    pub open_at_end: u64,
    /// Most open at once.
    pub open_max: u64,
    pub bytes_sent: u64,
    pub bytes_read: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FloodSummary {
    pub mode: &'static str,
    pub seconds: f64,
    pub connections: u32,
    pub kinds: Vec<KindSummary>,
}

impl FloodSummary {
    pub fn table(&self) -> String {
        let mut out = format!(
            "flood: {} connections for {:.1} s\n{:<13} {:>6} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>12} {:>12}\n",
            self.connections,
            self.seconds,
            "kind",
            "slots",
            "connected",
            "refused",
            "closed",
            "held s",
            "open",
            "max open",
            "sent",
            "read"
        );
        for k in &self.kinds {
            out += &format!(
                "{:<13} {:>6} {:>9} {:>8} {:>8} {:>9.1} {:>8} {:>8} {:>12} {:>12}\n",
                serde_json::to_value(k.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                k.slots,
                k.connected,
                k.refused,
                k.closed_by_target,
                k.mean_held_s,
                k.open_at_end,
                k.open_max,
                k.bytes_sent,
                k.bytes_read
            );
        }
        out
    }

    pub fn kind(&self, kind: Kind) -> Option<&KindSummary> {
        self.kinds.iter().find(|k| k.kind == kind)
    }
}

struct Shared {
    info_hash: InfoHash,
    layout: Layout,
    target: SocketAddr,
    connections: u32,
    kinds: Vec<Kind>,
    tallies: Vec<Tally>,
    shards: u32,
    connect_per_shard: u64,
    deadline: Instant,
}

/// Floods the target until the duration is up, then reports.
pub fn run(options: Options) -> Result<FloodSummary> {
    ensure!(
        (1..=CONNECTIONS_MAX).contains(&options.connections),
        "--connections must be 1..={CONNECTIONS_MAX}"
    );
    ensure!(!options.kinds.is_empty(), "no --kind given");
    let shards = options.shards.count as u32;
    let started = Instant::now();
    let shared = Arc::new(Shared {
        info_hash: options.torrent.meta.info_hash,
        layout: options.torrent.meta.info.layout,
        target: options.target,
        connections: options.connections,
        tallies: options.kinds.iter().map(|_| Tally::default()).collect(),
        kinds: options.kinds,
        shards,
        connect_per_shard: u64::from(options.connect_concurrency.div_ceil(shards).max(1)),
        deadline: started + options.duration,
    });
    let task_shared = shared.clone();
    let pool = spawn(&options.shards, move |id| shard(task_shared.clone(), id))
        .context("starting the flood shards")?;
    // Every task stops at the deadline; a shard stuck past it is left behind.
    let stop_by = shared.deadline + Duration::from_secs(5);
    while !pool.is_finished() && Instant::now() < stop_by {
        std::thread::sleep(Duration::from_millis(20));
    }
    let seconds = started.elapsed().as_secs_f64();
    if pool.is_finished() {
        pool.join().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let kinds = shared
        .kinds
        .iter()
        .zip(&shared.tallies)
        .enumerate()
        .map(|(i, (&kind, t))| {
            let closed = load(&t.closed_by_target);
            KindSummary {
                kind,
                slots: (i as u32..shared.connections)
                    .step_by(shared.kinds.len())
                    .count() as u32,
                connected: load(&t.connected),
                refused: load(&t.refused),
                closed_by_target: closed,
                mean_held_s: load(&t.held_ms) as f64 / 1000.0 / closed.max(1) as f64,
                open_at_end: load(&t.open),
                open_max: load(&t.open_max),
                bytes_sent: load(&t.bytes_sent),
                bytes_read: load(&t.bytes_read),
            }
        })
        .collect();
    Ok(FloodSummary {
        mode: "flood",
        seconds,
        connections: shared.connections,
        kinds,
    })
}

async fn shard(shared: Arc<Shared>, id: ShardId) -> Result<(), String> {
    let dialling = Rc::new(Semaphore::new(shared.connect_per_shard));
    let tasks: Rc<Cell<usize>> = Rc::default();
    for index in (u32::from(id.0)..shared.connections).step_by(shared.shards as usize) {
        let (shared, dialling, tasks) = (shared.clone(), dialling.clone(), tasks.clone());
        glommio::spawn_local(async move {
            let _task = Gauge::enter(&tasks);
            hostile(&shared, &dialling, index).await;
        })
        .detach();
    }
    glommio::timer::sleep(shared.deadline.saturating_duration_since(Instant::now())).await;
    let grace = Instant::now() + Duration::from_secs(2);
    while tasks.get() > 0 && Instant::now() < grace {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// One hostile connection slot: dial, misbehave until the target closes it, dial again.
async fn hostile(shared: &Shared, dialling: &Semaphore, index: u32) {
    let slot = index as usize % shared.kinds.len();
    let (kind, tally) = (shared.kinds[slot], &shared.tallies[slot]);
    let mut rng = splitmix64(u64::from(index) | 1 << 40);
    while Instant::now() < shared.deadline {
        let dialled = {
            let Ok(_permit) = dialling.acquire_permit(1).await else {
                return;
            };
            net::until(
                shared.deadline,
                TcpStream::connect_timeout(shared.target, CONNECT_TIMEOUT),
            )
            .await
        };
        let mut stream = match dialled {
            None => return,
            Some(Err(_)) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
                net::pause_until(shared.deadline, REDIAL_PAUSE).await;
                continue;
            }
            Some(Ok(stream)) => stream,
        };
        tally.connected.fetch_add(1, Ordering::Relaxed);
        let open = tally.open.fetch_add(1, Ordering::Relaxed) + 1;
        tally.open_max.fetch_max(open, Ordering::Relaxed);
        let began = Instant::now();
        rng = splitmix64(rng);
        let ended = net::until(
            shared.deadline,
            misbehave(kind, &mut stream, shared, tally, index, rng),
        )
        .await;
        if ended.is_none() {
            // Still open at the deadline: it counts as held to the end.
            return;
        }
        tally.open.fetch_sub(1, Ordering::Relaxed);
        tally.closed_by_target.fetch_add(1, Ordering::Relaxed);
        tally
            .held_ms
            .fetch_add(began.elapsed().as_millis() as u64, Ordering::Relaxed);
        drop(stream);
        net::pause_until(shared.deadline, REDIAL_PAUSE).await;
    }
}

/// Does what `kind` does until the target closes the connection.
async fn misbehave(
    kind: Kind,
    stream: &mut TcpStream,
    shared: &Shared,
    tally: &Tally,
    index: u32,
    mut rng: u64,
) {
    let handshake = Handshake {
        reserved: net::reserved(),
        info_hash: shared.info_hash,
        peer_id: net::peer_id(b'f', u64::from(index)),
    }
    .encode();
    let sent = |n: usize| tally.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
    match kind {
        Kind::HalfOpen => {
            read_until_closed(stream, tally).await;
        }
        Kind::Garbage => {
            let mut junk = [0u8; 68];
            for chunk in junk.chunks_mut(8) {
                rng = splitmix64(rng);
                chunk.copy_from_slice(&rng.to_le_bytes()[..chunk.len()]);
            }
            if stream.write_all(&junk).await.is_ok() {
                sent(junk.len());
                read_until_closed(stream, tally).await;
            }
        }
        Kind::Slowloris => {
            let mut probe = [0u8; 64];
            for byte in handshake.iter().cycle() {
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
                sent(1);
                let read = futures_lite::future::or(
                    async { Some(stream.read(&mut probe).await) },
                    async {
                        glommio::timer::sleep(TRICKLE).await;
                        None
                    },
                );
                match read.await {
                    Some(Ok(0)) | Some(Err(_)) => return,
                    Some(Ok(n)) => {
                        tally.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    None => {}
                }
            }
        }
        Kind::NeverRead => {
            // SAFETY: the descriptor belongs to `stream`, which outlives this borrow.
            let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
            let _ = nix::sys::socket::setsockopt(
                &fd,
                nix::sys::socket::sockopt::RcvBuf,
                &NEVER_READ_RCVBUF,
            );
            let mut out = handshake.to_vec();
            Message::Interested.encode(&mut out);
            // Under the choked allowance, so only the writer's deadline can drop it.
            for _ in 0..24 {
                rng = splitmix64(rng);
                Message::Request(block(&shared.layout, rng)).encode(&mut out);
            }
            if stream.write_all(&out).await.is_err() {
                return;
            }
            sent(out.len());
            // Keep-alives until a write fails: the only way it learns it was dropped.
            loop {
                glommio::timer::sleep(Duration::from_secs(5)).await;
                let mut ka = Vec::new();
                Message::KeepAlive.encode(&mut ka);
                if stream.write_all(&ka).await.is_err() {
                    return;
                }
                sent(ka.len());
            }
        }
        Kind::Squat => {
            let mut out = handshake.to_vec();
            Message::HaveNone.encode(&mut out);
            Message::Interested.encode(&mut out);
            if stream.write_all(&out).await.is_err() {
                return;
            }
            sent(out.len());
            let mut inbox = [0u8; 1024];
            loop {
                let read = futures_lite::future::or(
                    async { Some(stream.read(&mut inbox).await) },
                    async {
                        glommio::timer::sleep(Duration::from_secs(5)).await;
                        None
                    },
                );
                match read.await {
                    Some(Ok(0)) | Some(Err(_)) => return,
                    Some(Ok(n)) => {
                        tally.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    None => {
                        let mut ka = Vec::new();
                        Message::KeepAlive.encode(&mut ka);
                        if stream.write_all(&ka).await.is_err() {
                            return;
                        }
                        sent(ka.len());
                    }
                }
            }
        }
        Kind::RequestSpam | Kind::HaveSpam => {
            let mut out = handshake.to_vec();
            Message::HaveNone.encode(&mut out);
            Message::Interested.encode(&mut out);
            let mut inbox = vec![0u8; 16 * 1024];
            loop {
                for _ in 0..BURST {
                    rng = splitmix64(rng);
                    let message = if kind == Kind::RequestSpam {
                        Message::Request(block(&shared.layout, rng))
                    } else {
                        match rng % 16 {
                            0 => Message::HaveAll,
                            1 => Message::HaveNone,
                            _ => Message::Have((rng >> 8) as u32 % shared.layout.piece_count()),
                        }
                    };
                    message.encode(&mut out);
                }
                if stream.write_all(&out).await.is_err() {
                    return;
                }
                sent(out.len());
                out.clear();
                // Read what came back until the next burst is due.
                let next = Instant::now() + BURST_EVERY;
                while Instant::now() < next {
                    let read = futures_lite::future::or(
                        async { Some(stream.read(&mut inbox).await) },
                        async {
                            glommio::timer::sleep(next.saturating_duration_since(Instant::now()))
                                .await;
                            None
                        },
                    );
                    match read.await {
                        Some(Ok(0)) | Some(Err(_)) => return,
                        Some(Ok(n)) => {
                            tally.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        None => break,
                    }
                }
            }
        }
    }
}

async fn read_until_closed(stream: &mut TcpStream, tally: &Tally) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf).await {
        if n == 0 {
            return;
        }
        tally.bytes_read.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A valid request: a block inside some piece.
fn block(layout: &Layout, random: u64) -> BlockRef {
    let piece = (random % u64::from(layout.piece_count())) as u32;
    let len = layout.piece_len(layout.piece(piece).expect("in range"));
    let offset = ((random >> 32) % u64::from(len.div_ceil(BLOCK_LEN))) as u32 * BLOCK_LEN;
    BlockRef {
        piece,
        offset,
        len: BLOCK_LEN.min(len - offset),
    }
}
