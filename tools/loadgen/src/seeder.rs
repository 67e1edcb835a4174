//! `seed`: simulated seeders that serve synthetic content generated on the fly.
//!
//! Every shard binds every endpoint port (glommio sets `SO_REUSEPORT`), so the kernel
//! spreads connections over the shards whatever the number of endpoints. A connection is
//! two halves: the reader decodes requests into a queue (where a `cancel` can still remove
//! them), the writer drains the queue in batches of blocks cut from a per-shard cache of
//! generated pieces.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _, Result};
use ccbt_engine::metainfo::Layout;
use ccbt_engine::session::{extension_handshake, ADVERTISED_REQQ};
use ccbt_engine::wire::{
    decode_message, encode_piece_header, max_message_len, Handshake, Message, PeerId, Reserved,
    HANDSHAKE_LEN,
};
use ccbt_engine::{Bitfield, BlockRef, InfoHash};
use ccbt_shards::pool::{spawn, ShardConfig};
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::{TcpListener, TcpStream};
use glommio::sync::Semaphore;

use crate::content::Content;
use crate::net::{self, Ended, Gauge, Inbox};
use crate::report::{self, Counters, Local, Progress, Summary};
use crate::torrent::Loaded;

/// Largest request served; larger ones drop the peer (as libtorrent and others do).
pub const REQUEST_LEN_MAX: u32 = 128 << 10;
/// Requests one peer may have queued; more are refused (with a reject under the Fast
/// extension), as a real seeder does. We advertise a `reqq` well below it.
const QUEUED_MAX: usize = 2048;
/// Queued items (blocks and rejects) past which a peer that ignores our rejects is flooding
/// us and is dropped.
const FLOOD_MAX: usize = 2 * QUEUED_MAX;
/// Bytes the writer gathers before one write.
const BATCH_BYTES: usize = 256 << 10;
/// Idle time after which a keep-alive goes out.
const KEEPALIVE: Duration = Duration::from_secs(60);
/// Memory each shard may spend on cached pieces (at least two pieces, at most 64).
const CACHE_BYTES: usize = 64 << 20;
/// Most endpoints (listening ports) one run presents.
pub const ENDPOINTS_MAX: u16 = 4096;
/// Pause before dialling a `--dial` peer again.
const DIAL_RETRY: Duration = Duration::from_millis(500);

pub struct Options {
    pub torrents: Vec<Loaded>,
    pub listen: SocketAddr,
    /// Endpoints: ports `listen.port() ..`.
    pub peers: u16,
    pub duration: Duration,
    pub shards: ShardConfig,
    pub max_connections: usize,
    /// Peers to connect to (from the first endpoint's identity) and serve the first
    /// torrent to: for clients that never dial loopback peers, as Transmission.
    pub dial: Vec<SocketAddr>,
    pub progress: Progress,
}

/// A torrent as the seeder serves it.
struct Served {
    info_hash: InfoHash,
    layout: Layout,
    content: Content,
    bitfield: Vec<u8>,
    max_len: u32,
}

struct Shared {
    torrents: Vec<Served>,
    by_hash: HashMap<InfoHash, usize>,
    endpoints: Vec<(SocketAddr, PeerId)>,
    deadline: Instant,
    connections_per_shard: usize,
    cache_entries: usize,
    counters: Counters,
    dial: Vec<SocketAddr>,
}

/// Serves until the duration is up, then reports.
pub fn run(options: Options) -> Result<Summary> {
    ensure!(
        (1..=ENDPOINTS_MAX).contains(&options.peers),
        "--peers must be 1..={ENDPOINTS_MAX}"
    );
    let first = options.listen.port();
    ensure!(
        first != 0 && u32::from(first) + u32::from(options.peers) <= 65536,
        "ports {first}.. do not fit {} endpoints",
        options.peers
    );
    let mut torrents = Vec::new();
    let mut by_hash = HashMap::new();
    for t in options.torrents {
        let Some(content) = t.content else {
            bail!(
                "{} was not made by make-torrent: its content is unknown",
                t.path.display()
            );
        };
        let layout = t.meta.info.layout;
        let count = layout.piece_count();
        by_hash.insert(t.meta.info_hash, torrents.len());
        torrents.push(Served {
            info_hash: t.meta.info_hash,
            bitfield: Bitfield::full(count).as_bytes().to_vec(),
            max_len: max_message_len(count),
            layout,
            content,
        });
    }
    let largest = torrents
        .iter()
        .map(|t| t.layout.piece_length())
        .max()
        .unwrap_or(1) as usize;
    let shared = Arc::new(Shared {
        endpoints: (0..options.peers)
            .map(|i| {
                let addr = SocketAddr::new(options.listen.ip(), first + i);
                (addr, net::peer_id(b's', u64::from(i)))
            })
            .collect(),
        torrents,
        by_hash,
        deadline: Instant::now() + options.duration,
        connections_per_shard: options
            .max_connections
            .div_ceil(options.shards.count)
            .max(1),
        cache_entries: (CACHE_BYTES / largest).clamp(2, 64),
        counters: Counters::default(),
        dial: options.dial,
    });
    let task_shared = shared.clone();
    let shards = spawn(&options.shards, move |id| {
        shard(task_shared.clone(), id.0 == 0)
    })
    .context("starting the seeder shards")?;
    report::watch(
        "seed",
        shards,
        &shared.counters,
        options.progress,
        shared.deadline,
    )
}

/// One shard's state; everything here is touched only by its thread.
struct ShardState {
    local: Local,
    cache: RefCell<PieceCache>,
    tasks: Rc<Cell<usize>>,
    connections: Rc<Cell<usize>>,
}

/// `dials`: whether this shard connects to the `--dial` peers (one shard does).
async fn shard(shared: Arc<Shared>, dials: bool) -> Result<(), String> {
    let state = Rc::new(ShardState {
        local: Local::default(),
        cache: RefCell::new(PieceCache::new(shared.cache_entries)),
        tasks: Rc::default(),
        connections: Rc::default(),
    });
    let mut listeners = Vec::new();
    for (endpoint, (addr, _)) in shared.endpoints.iter().enumerate() {
        let listener =
            TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        listeners.push((endpoint, listener));
    }
    for (endpoint, listener) in listeners {
        glommio::spawn_local(accept(shared.clone(), state.clone(), endpoint, listener)).detach();
    }
    for &peer in shared.dial.iter().filter(|_| dials) {
        glommio::spawn_local(dial(shared.clone(), state.clone(), peer)).detach();
    }
    net::finish_shard(
        &state.local,
        &shared.counters,
        &state.tasks,
        shared.deadline,
        || None,
    )
    .await;
    Ok(())
}

async fn accept(
    shared: Arc<Shared>,
    state: Rc<ShardState>,
    endpoint: usize,
    listener: TcpListener,
) {
    let _task = Gauge::enter(&state.tasks);
    while let Some(accepted) = net::until(shared.deadline, listener.accept()).await {
        match accepted {
            Ok(stream) if state.connections.get() < shared.connections_per_shard => {
                let task = connection(shared.clone(), state.clone(), endpoint, stream, None);
                glommio::spawn_local(task).detach();
            }
            Ok(_) => {} // Over the connection limit: dropping the stream refuses it.
            Err(e) => {
                state.local.error(format!(
                    "accepting on {}: {e}",
                    shared.endpoints[endpoint].0
                ));
                net::pause_until(shared.deadline, Duration::from_millis(50)).await;
            }
        }
    }
}

/// Connects to `peer` and serves it the first torrent; connects again whenever the
/// connection fails or ends, until the deadline.
async fn dial(shared: Arc<Shared>, state: Rc<ShardState>, peer: SocketAddr) {
    let _task = Gauge::enter(&state.tasks);
    while Instant::now() < shared.deadline {
        match net::until(shared.deadline, TcpStream::connect(peer)).await {
            None => return,
            Some(Ok(stream)) => {
                connection(shared.clone(), state.clone(), 0, stream, Some(0)).await;
            }
            Some(Err(e)) => state.local.error(format!("cannot dial {peer}: {e}")),
        }
        net::pause_until(shared.deadline, DIAL_RETRY).await;
    }
}

/// `dialed`: the torrent we connected to serve (our handshake goes first); `None` for an
/// accepted connection, whose handshake names the torrent.
async fn connection(
    shared: Arc<Shared>,
    state: Rc<ShardState>,
    endpoint: usize,
    stream: TcpStream,
    dialed: Option<usize>,
) {
    let _task = Gauge::enter(&state.tasks);
    let _connection = Gauge::enter(&state.connections);
    Local::add(&state.local.connections, 1);
    let peer = stream.peer_addr().map_or("?".into(), |a| a.to_string());
    let Some(ended) = net::until(
        shared.deadline,
        serve(&shared, &state, endpoint, stream, dialed),
    )
    .await
    else {
        return;
    };
    Local::add(&state.local.disconnects, 1);
    if let Ended::Protocol(reason) = ended {
        state.local.error(format!("dropped peer {peer}: {reason}"));
    }
}

/// What the reader hands the writer.
enum Outgoing {
    Unchoke,
    Block(BlockRef),
    Reject(BlockRef),
}

/// The writer's work, with a doorbell rung once per item pushed.
struct Queue {
    items: RefCell<VecDeque<Outgoing>>,
    bell: Semaphore,
}

impl Queue {
    fn push(&self, item: Outgoing) {
        self.items.borrow_mut().push_back(item);
        self.bell.signal(1);
    }
}

async fn serve(
    shared: &Shared,
    state: &ShardState,
    endpoint: usize,
    mut stream: TcpStream,
    dialed: Option<usize>,
) -> Ended {
    let _ = stream.set_nodelay(true);
    let handshake = |info_hash| Handshake {
        reserved: Reserved::ours(),
        info_hash,
        peer_id: shared.endpoints[endpoint].1,
    };
    if let Some(index) = dialed {
        let ours = handshake(shared.torrents[index].info_hash);
        if let Err(e) = stream.write_all(&ours.encode()).await {
            return Ended::Io(e);
        }
    }
    let mut inbox = Inbox::new(max_message_len(0));
    while inbox.data().len() < HANDSHAKE_LEN {
        if let Err(e) = Handshake::peek_info_hash(inbox.data()) {
            return Ended::Protocol(format!("bad handshake: {e}"));
        }
        match inbox.read_from(&mut stream).await {
            Ok(0) => return Ended::Closed,
            Ok(_) => {}
            Err(e) => return Ended::Io(e),
        }
    }
    let theirs = match Handshake::parse(inbox.data()) {
        Ok(h) => h,
        Err(e) => return Ended::Protocol(format!("bad handshake: {e}")),
    };
    inbox.consume(HANDSHAKE_LEN);
    let Some(&index) = shared.by_hash.get(&theirs.info_hash) else {
        return Ended::Protocol(format!("unknown info hash {}", theirs.info_hash.to_hex()));
    };
    if dialed.is_some_and(|d| d != index) {
        return Ended::Protocol("answered for another torrent".into());
    }
    let torrent = &shared.torrents[index];
    let mut hello = match dialed {
        Some(_) => Vec::new(),
        None => handshake(theirs.info_hash).encode().to_vec(),
    };
    let fast = theirs.reserved.supports_fast();
    if fast {
        Message::HaveAll.encode(&mut hello);
    } else {
        Message::Bitfield(&torrent.bitfield).encode(&mut hello);
    }
    if theirs.reserved.supports_extensions() {
        // Our `reqq`, which clients such as Transmission size their pipelines by.
        let payload = extension_handshake(ADVERTISED_REQQ, None, false);
        Message::Extended {
            id: 0,
            payload: &payload,
        }
        .encode(&mut hello);
    }
    if let Err(e) = stream.write_all(&hello).await {
        return Ended::Io(e);
    }
    let (reader, writer) = futures_lite::io::split(stream);
    let queue = Queue {
        items: RefCell::default(),
        bell: Semaphore::new(0),
    };
    let mut inbox = Inbox::new(torrent.max_len).with_data(inbox.data());
    futures_lite::future::or(
        read_requests(reader, &mut inbox, &queue, torrent, fast),
        write_blocks(writer, &queue, index, torrent, state),
    )
    .await
}

/// `fast`: the peer speaks the Fast extension, so refused requests are rejected.
async fn read_requests(
    mut reader: impl AsyncRead + Unpin,
    inbox: &mut Inbox,
    queue: &Queue,
    torrent: &Served,
    fast: bool,
) -> Ended {
    let mut unchoked = false;
    loop {
        loop {
            let (message, used) = match decode_message(inbox.data(), torrent.max_len) {
                Ok(Some(decoded)) => decoded,
                Ok(None) => break,
                Err(e) => return Ended::Protocol(e.to_string()),
            };
            match message {
                Message::Interested if !unchoked => {
                    unchoked = true;
                    queue.push(Outgoing::Unchoke);
                }
                Message::Request(block) => {
                    if let Err(reason) = check_request(&torrent.layout, block) {
                        return Ended::Protocol(reason);
                    }
                    let queued = queue.items.borrow().len();
                    if queued >= FLOOD_MAX {
                        return Ended::Protocol(format!("more than {FLOOD_MAX} requests queued"));
                    }
                    if queued < QUEUED_MAX {
                        queue.push(Outgoing::Block(block));
                    } else if fast {
                        queue.push(Outgoing::Reject(block));
                    }
                }
                Message::Cancel(block) => {
                    let mut items = queue.items.borrow_mut();
                    let at = items
                        .iter()
                        .position(|o| matches!(o, Outgoing::Block(b) if *b == block));
                    if let Some(at) = at {
                        items.remove(at);
                    }
                }
                _ => {}
            }
            inbox.consume(used);
        }
        match inbox.read_from(&mut reader).await {
            Ok(0) => return Ended::Closed,
            Ok(_) => {}
            Err(e) => return Ended::Io(e),
        }
    }
}

/// Checks a request against the torrent: a sane length, inside one piece.
fn check_request(layout: &Layout, block: BlockRef) -> Result<(), String> {
    if block.len == 0 || block.len > REQUEST_LEN_MAX {
        return Err(format!("request of {} bytes", block.len));
    }
    let Some(piece) = layout.piece(block.piece) else {
        return Err(format!(
            "request for piece {} of {}",
            block.piece,
            layout.piece_count()
        ));
    };
    if u64::from(block.offset) + u64::from(block.len) > u64::from(layout.piece_len(piece)) {
        return Err(format!(
            "request for {}+{} beyond the end of piece {}",
            block.offset, block.len, block.piece
        ));
    }
    Ok(())
}

async fn write_blocks(
    mut writer: impl AsyncWrite + Unpin,
    queue: &Queue,
    index: usize,
    torrent: &Served,
    state: &ShardState,
) -> Ended {
    let mut out = Vec::with_capacity(BATCH_BYTES + REQUEST_LEN_MAX as usize + 64);
    loop {
        let rang = futures_lite::future::or(async { queue.bell.acquire(1).await.is_ok() }, async {
            glommio::timer::sleep(KEEPALIVE).await;
            false
        })
        .await;
        if !rang {
            Message::KeepAlive.encode(&mut out);
        }
        let mut served = 0;
        while out.len() < BATCH_BYTES {
            let Some(item) = queue.items.borrow_mut().pop_front() else {
                break;
            };
            match item {
                Outgoing::Unchoke => Message::Unchoke.encode(&mut out),
                Outgoing::Reject(b) => Message::RejectRequest(b).encode(&mut out),
                Outgoing::Block(b) => {
                    let piece = state.cache.borrow_mut().get(index, b.piece, || {
                        let at = torrent.layout.piece(b.piece).expect("request was checked");
                        torrent.content.piece(&torrent.layout, at)
                    });
                    out.extend_from_slice(&encode_piece_header(b.piece, b.offset, b.len));
                    out.extend_from_slice(&piece[b.offset as usize..][..b.len as usize]);
                    served += u64::from(b.len);
                }
            }
        }
        if out.is_empty() {
            continue; // The doorbell rang for a request since cancelled.
        }
        if let Err(e) = writer.write_all(&out).await {
            return Ended::Io(e);
        }
        out.clear();
        Local::add(&state.local.bytes, served);
    }
}

/// The most recently used generated pieces of this shard, so a piece is generated once
/// per burst of requests rather than once per block. Small, so a linear scan is cheapest.
struct PieceCache {
    entries: Vec<(usize, u32, Rc<[u8]>, u64)>,
    capacity: usize,
    tick: u64,
}

impl PieceCache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::with_capacity(capacity),
            capacity,
            tick: 0,
        }
    }

    fn get(&mut self, torrent: usize, piece: u32, make: impl FnOnce() -> Vec<u8>) -> Rc<[u8]> {
        self.tick += 1;
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.0 == torrent && e.1 == piece)
        {
            e.3 = self.tick;
            return e.2.clone();
        }
        let data: Rc<[u8]> = make().into();
        let entry = (torrent, piece, data.clone(), self.tick);
        if self.entries.len() < self.capacity {
            self.entries.push(entry);
        } else if let Some(oldest) = self.entries.iter_mut().min_by_key(|e| e.3) {
            *oldest = entry;
        }
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keeps_recent_pieces() {
        let mut cache = PieceCache::new(2);
        let made = Cell::new(0);
        let mut get = |p| {
            cache.get(0, p, || {
                made.set(made.get() + 1);
                vec![p as u8]
            })
        };
        get(1);
        get(2);
        get(1);
        get(3); // Evicts 2, the least recently used.
        get(1);
        assert_eq!(made.get(), 3);
        get(2);
        assert_eq!(made.get(), 4);
    }
}
