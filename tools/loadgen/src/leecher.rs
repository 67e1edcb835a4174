//! `leech`: simulated leechers that download from a target as fast as it will serve, check
//! every piece against its SHA-1, and time every block.
//!
//! Leecher `i` runs on shard `i mod shards`, fetches torrent `i mod torrents` from target
//! `i mod targets`, and walks the pieces from a start of its own so that leechers do not
//! all ask for the same piece. Pieces are hashed incrementally as blocks arrive in order
//! (blocks that overtake others wait in a small buffer), so a leecher holds at most its
//! pipeline's worth of data, not whole pieces. Having everything, it starts over, so the
//! load lasts the whole run. A dropped connection is re-dialled after a short pause.

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use ccbt_engine::hash::{Sha1, Sha1Digest};
use ccbt_engine::metainfo::Layout;
use ccbt_engine::wire::{decode_message, max_message_len, Handshake, Message, HANDSHAKE_LEN};
use ccbt_engine::{Bitfield, BlockRef, InfoHash, BLOCK_LEN};
use ccbt_shards::pool::{spawn, ShardConfig, ShardId};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use glommio::sync::Semaphore;
use hdrhistogram::Histogram;

use crate::content::splitmix64;
use crate::net::{self, Ended, Gauge, Inbox};
use crate::report::{self, Counters, Local, Progress, Summary};
use crate::torrent::Loaded;

/// Most simulated leechers one run starts.
pub const PEERS_MAX: u32 = 10_000;
/// Most requests a leecher keeps outstanding.
pub const PIPELINE_MAX: u32 = 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const REDIAL_PAUSE: Duration = Duration::from_millis(200);
/// Silence after which a keep-alive goes out.
const KEEPALIVE: Duration = Duration::from_secs(60);

pub struct Options {
    pub torrents: Vec<Loaded>,
    pub targets: Vec<SocketAddr>,
    pub peers: u32,
    pub duration: Duration,
    pub shards: ShardConfig,
    /// Outstanding requests per connection.
    pub pipeline: u32,
    /// Connections being opened at once, over all shards.
    pub connect_concurrency: u32,
    pub progress: Progress,
}

/// A torrent as a leecher wants it.
struct Wanted {
    info_hash: InfoHash,
    layout: Layout,
    hashes: Box<[Sha1Digest]>,
    max_len: u32,
}

struct Shared {
    torrents: Vec<Wanted>,
    targets: Vec<SocketAddr>,
    peers: u32,
    shards: u32,
    pipeline: usize,
    connect_per_shard: u64,
    deadline: Instant,
    counters: Counters,
}

/// Downloads until the duration is up, then reports.
pub fn run(options: Options) -> Result<Summary> {
    ensure!(
        (1..=PEERS_MAX).contains(&options.peers),
        "--peers must be 1..={PEERS_MAX}"
    );
    ensure!(
        (1..=PIPELINE_MAX).contains(&options.pipeline),
        "--pipeline must be 1..={PIPELINE_MAX}"
    );
    ensure!(!options.targets.is_empty(), "no target given");
    let shards = options.shards.count as u32;
    let shared = Arc::new(Shared {
        torrents: options
            .torrents
            .into_iter()
            .map(|t| Wanted {
                info_hash: t.meta.info_hash,
                max_len: max_message_len(t.meta.info.layout.piece_count()),
                hashes: t.meta.info.pieces,
                layout: t.meta.info.layout,
            })
            .collect(),
        targets: options.targets,
        peers: options.peers,
        shards,
        pipeline: options.pipeline as usize,
        connect_per_shard: u64::from(options.connect_concurrency.div_ceil(shards).max(1)),
        deadline: Instant::now() + options.duration,
        counters: Counters::default(),
    });
    let task_shared = shared.clone();
    let shards = spawn(&options.shards, move |id| shard(task_shared.clone(), id))
        .context("starting the leecher shards")?;
    report::watch(
        "leech",
        shards,
        &shared.counters,
        options.progress,
        shared.deadline,
    )
}

struct ShardState {
    local: Local,
    latency_us: RefCell<Histogram<u64>>,
    dialling: Semaphore,
    tasks: Rc<Cell<usize>>,
}

async fn shard(shared: Arc<Shared>, id: ShardId) -> Result<(), String> {
    let state = Rc::new(ShardState {
        local: Local::default(),
        latency_us: RefCell::new(report::latency_histogram()),
        dialling: Semaphore::new(shared.connect_per_shard),
        tasks: Rc::default(),
    });
    for index in (u32::from(id.0)..shared.peers).step_by(shared.shards as usize) {
        glommio::spawn_local(leecher(shared.clone(), state.clone(), index)).detach();
    }
    net::finish_shard(
        &state.local,
        &shared.counters,
        &state.tasks,
        shared.deadline,
        || Some(state.latency_us.replace(report::latency_histogram())),
    )
    .await;
    Ok(())
}

/// One simulated leecher: dial, handshake, download; re-dial if dropped.
async fn leecher(shared: Arc<Shared>, state: Rc<ShardState>, index: u32) {
    let _task = Gauge::enter(&state.tasks);
    let torrent = &shared.torrents[index as usize % shared.torrents.len()];
    let target = shared.targets[index as usize % shared.targets.len()];
    let mut start = splitmix64(u64::from(index));
    while Instant::now() < shared.deadline {
        let dialled = {
            let Ok(_permit) = state.dialling.acquire_permit(1).await else {
                return;
            };
            net::until(shared.deadline, dial(torrent, target, index)).await
        };
        match dialled {
            None => return,
            Some(Err(Ended::Protocol(reason))) => {
                state
                    .local
                    .error(format!("handshake with {target}: {reason}"));
            }
            Some(Err(_)) => Local::add(&state.local.connect_failures, 1),
            Some(Ok((stream, inbox))) => {
                Local::add(&state.local.connections, 1);
                start = splitmix64(start);
                let first = (start % u64::from(torrent.layout.piece_count())) as u32;
                let mut session = Session::new(torrent, target, first, shared.pipeline, &state);
                let Some(ended) = net::until(shared.deadline, session.run(stream, inbox)).await
                else {
                    return;
                };
                Local::add(&state.local.disconnects, 1);
                if let Ended::Protocol(reason) = ended {
                    state.local.error(format!("dropped {target}: {reason}"));
                }
            }
        }
        net::pause_until(shared.deadline, REDIAL_PAUSE).await;
    }
}

/// Connects and exchanges handshakes.
async fn dial(
    torrent: &Wanted,
    target: SocketAddr,
    index: u32,
) -> Result<(TcpStream, Inbox), Ended> {
    let mut stream = TcpStream::connect_timeout(target, CONNECT_TIMEOUT)
        .await
        .map_err(|e| Ended::Io(e.into()))?;
    let _ = stream.set_nodelay(true);
    let ours = Handshake {
        reserved: net::reserved(),
        info_hash: torrent.info_hash,
        peer_id: net::peer_id(b'l', u64::from(index)),
    };
    stream.write_all(&ours.encode()).await?;
    let mut inbox = Inbox::new(torrent.max_len);
    while inbox.data().len() < HANDSHAKE_LEN {
        if inbox.read_from(&mut stream).await? == 0 {
            return Err(Ended::Closed);
        }
    }
    let theirs = Handshake::parse(inbox.data()).map_err(|e| Ended::Protocol(e.to_string()))?;
    if theirs.info_hash != torrent.info_hash {
        return Err(Ended::Protocol(format!(
            "answered with info hash {} instead of {}",
            theirs.info_hash.to_hex(),
            torrent.info_hash.to_hex()
        )));
    }
    inbox.consume(HANDSHAKE_LEN);
    stream.write_all(&frame(Message::Interested)).await?;
    Ok((stream, inbox))
}

fn frame(message: Message<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.encoded_len());
    message.encode(&mut out);
    out
}

/// A request on the wire, and when it went out.
struct Pending {
    block: BlockRef,
    sent: Instant,
}

/// A piece being downloaded: hashed up to `hashed`, with blocks that arrived early parked.
struct Assembly {
    piece: u32,
    len: u32,
    requested: u32,
    hashed: u32,
    sha: Sha1,
    parked: Vec<(u32, Vec<u8>)>,
}

/// One connection's download state.
struct Session<'a> {
    torrent: &'a Wanted,
    target: SocketAddr,
    state: &'a ShardState,
    have: Option<Bitfield>,
    unchoked: bool,
    cursor: u32,
    pipeline: usize,
    pending: Vec<Pending>,
    active: Vec<Assembly>,
}

impl<'a> Session<'a> {
    fn new(
        torrent: &'a Wanted,
        target: SocketAddr,
        first: u32,
        pipeline: usize,
        state: &'a ShardState,
    ) -> Self {
        Self {
            torrent,
            target,
            state,
            have: None,
            unchoked: false,
            cursor: first,
            pipeline,
            pending: Vec::with_capacity(pipeline),
            active: Vec::new(),
        }
    }

    async fn run(&mut self, mut stream: TcpStream, mut inbox: Inbox) -> Ended {
        let mut out = Vec::with_capacity(self.pipeline * 17);
        loop {
            loop {
                let (message, used) = match decode_message(inbox.data(), self.torrent.max_len) {
                    Ok(Some(decoded)) => decoded,
                    Ok(None) => break,
                    Err(e) => return Ended::Protocol(e.to_string()),
                };
                if let Err(reason) = self.on_message(message) {
                    return Ended::Protocol(reason);
                }
                inbox.consume(used);
            }
            self.request_more(&mut out);
            if !out.is_empty() {
                if let Err(e) = stream.write_all(&out).await {
                    return Ended::Io(e);
                }
                out.clear();
            }
            let read = futures_lite::future::or(
                async { Some(inbox.read_from(&mut stream).await) },
                async {
                    glommio::timer::sleep(KEEPALIVE).await;
                    None
                },
            );
            match read.await {
                Some(Ok(0)) => return Ended::Closed,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Ended::Io(e),
                None => Message::KeepAlive.encode(&mut out),
            }
        }
    }

    fn on_message(&mut self, message: Message<'_>) -> Result<(), String> {
        let count = self.torrent.layout.piece_count();
        match message {
            Message::Unchoke => self.unchoked = true,
            Message::Choke => {
                // Outstanding requests are void; their pieces come round again next lap.
                self.unchoked = false;
                self.pending.clear();
                self.active.clear();
            }
            Message::Bitfield(bits) => {
                let have = Bitfield::from_wire(bits, count).map_err(|e| e.to_string())?;
                self.have = Some(have);
            }
            Message::HaveAll => self.have = Some(Bitfield::full(count)),
            Message::HaveNone => self.have = Some(Bitfield::empty(count)),
            Message::Have(piece) => {
                if piece >= count {
                    return Err(format!("have for piece {piece} of {count}"));
                }
                self.have
                    .get_or_insert_with(|| Bitfield::empty(count))
                    .set(piece);
            }
            Message::Piece {
                piece,
                offset,
                data,
            } => self.on_block(piece, offset, data),
            Message::RejectRequest(block) => {
                // The piece cannot complete on this lap; forget it and what is left of it.
                self.active.retain(|a| a.piece != block.piece);
                self.pending.retain(|p| p.block.piece != block.piece);
            }
            _ => {}
        }
        Ok(())
    }

    fn on_block(&mut self, piece: u32, offset: u32, data: &[u8]) {
        let Some(at) = self.pending.iter().position(|p| {
            p.block.piece == piece && p.block.offset == offset && p.block.len as usize == data.len()
        }) else {
            return; // Not asked for (or given up on): ignore, as clients do.
        };
        let sent = self.pending.swap_remove(at).sent;
        let micros = sent.elapsed().as_micros().max(1) as u64;
        self.state.latency_us.borrow_mut().saturating_record(micros);
        Local::add(&self.state.local.bytes, data.len() as u64);
        let Some(at) = self.active.iter().position(|a| a.piece == piece) else {
            return;
        };
        let assembly = &mut self.active[at];
        if offset != assembly.hashed {
            assembly.parked.push((offset, data.to_vec()));
            return;
        }
        assembly.sha.update(data);
        assembly.hashed += data.len() as u32;
        while let Some(next) = assembly
            .parked
            .iter()
            .position(|(o, _)| *o == assembly.hashed)
        {
            let (_, block) = assembly.parked.swap_remove(next);
            assembly.sha.update(&block);
            assembly.hashed += block.len() as u32;
        }
        if assembly.hashed == assembly.len {
            let done = self.active.swap_remove(at);
            if done.sha.finish() != self.torrent.hashes[piece as usize] {
                self.state.local.error(format!(
                    "piece {piece} from {} failed its hash",
                    self.target
                ));
            }
        }
    }

    /// Tops the pipeline up with requests for the pieces being fetched, starting new
    /// pieces in walk order as those run out.
    fn request_more(&mut self, out: &mut Vec<u8>) {
        if !self.unchoked || self.have.is_none() {
            return;
        }
        let now = Instant::now();
        while self.pending.len() < self.pipeline {
            let at = match self.active.iter().position(|a| a.requested < a.len) {
                Some(at) => at,
                None => match self.next_piece() {
                    Some(assembly) => {
                        self.active.push(assembly);
                        self.active.len() - 1
                    }
                    None => return,
                },
            };
            let a = &mut self.active[at];
            let block = BlockRef {
                piece: a.piece,
                offset: a.requested,
                len: BLOCK_LEN.min(a.len - a.requested),
            };
            a.requested += block.len;
            Message::Request(block).encode(out);
            self.pending.push(Pending { block, sent: now });
        }
    }

    /// The next piece after the cursor that the target has and is not already being
    /// fetched; the walk wraps, so a finished leecher starts over.
    fn next_piece(&mut self) -> Option<Assembly> {
        let layout = &self.torrent.layout;
        let have = self.have.as_ref()?;
        let count = layout.piece_count();
        for _ in 0..count {
            let piece = self.cursor;
            self.cursor = (self.cursor + 1) % count;
            if have.get(piece) && !self.active.iter().any(|a| a.piece == piece) {
                let len = layout.piece_len(layout.piece(piece)?);
                return Some(Assembly {
                    piece,
                    len,
                    requested: 0,
                    hashed: 0,
                    sha: Sha1::new(),
                    parked: Vec::new(),
                });
            }
        }
        None
    }
}
