//! Session-level targets: an arbitrary stream of events (peers connecting and leaving,
//! messages, time passing, pieces checked) driven into one engine state machine, checking
//! after every step the bounds the session promises. Like libtorrent's `peer_conn`, but
//! sans-I/O: no sockets, virtual time.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use ccbt_engine::bencode::{self, Dict, Value};
use ccbt_engine::extension::TheirHandshake;
use ccbt_engine::metadata::{FetchConfig, FetchEvent, MetadataFetcher, MetadataMessage};
use ccbt_engine::metainfo::{Layout, LayoutFile, TorrentPath};
use ccbt_engine::session::{
    block_digests, Action, Incoming, PeerCaps, SessionConfig, Torrent, MAX_SERVED_BLOCK,
};
use ccbt_engine::wire::{decode_message, max_message_len, Message};
use ccbt_engine::{Bitfield, BlockRef, BLOCK_LEN};

/// Steps per input at most, so one input cannot run for long (the fuzzer prefers many
/// short inputs to a few long ones).
const OPS_MAX: usize = 256;

/// Block payloads: an even first byte passes the harness's pretend hash check, odd fails.
static EVEN: [u8; 2 * BLOCK_LEN as usize] = [0; 2 * BLOCK_LEN as usize];
static ODD: [u8; 2 * BLOCK_LEN as usize] = [1; 2 * BLOCK_LEN as usize];

/// The info dict a session serves (BEP 9), made once per process.
fn served_info() -> Arc<[u8]> {
    static INFO: OnceLock<Arc<[u8]>> = OnceLock::new();
    INFO.get_or_init(|| Arc::from(vec![b'x'; 40_000])).clone()
}

/// One message a peer sends, with fields shaped so that most of them mean something to a
/// torrent of a few dozen pieces (and some do not).
#[derive(Arbitrary, Debug)]
enum Msg {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u8),
    Bitfield(Vec<u8>),
    HaveAll,
    HaveNone,
    Request {
        piece: u8,
        block: u8,
        len: Len,
    },
    Cancel {
        piece: u8,
        block: u8,
        len: Len,
    },
    Reject {
        piece: u8,
        block: u8,
        len: Len,
    },
    /// An answer to the `nth` request we sent this peer; `fill` is the data's byte.
    Answer {
        nth: u8,
        fill: u8,
    },
    Piece {
        piece: u8,
        block: u8,
        len: Len,
    },
    Suggest(u8),
    AllowedFast(u8),
    Port(u16),
    Extended {
        id: u8,
        payload: Vec<u8>,
    },
    /// A ut_metadata request under our id.
    MetadataRequest(u8),
    Unknown {
        id: u8,
        payload: Vec<u8>,
    },
    /// Any bytes, through the wire decoder as a connection's reader would.
    Raw(Vec<u8>),
}

/// A block length: mostly real ones.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Len {
    Block,
    Small(u16),
    Any(u32),
}

impl Len {
    fn get(self) -> u32 {
        match self {
            Len::Block => BLOCK_LEN,
            Len::Small(n) => u32::from(n),
            Len::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Connect {
        host: u8,
        fast: bool,
        extensions: bool,
    },
    Send {
        peer: u8,
        msg: Msg,
    },
    Tick {
        secs: u8,
    },
    /// The I/O layer finished hashing a complete piece (or says so of any piece).
    Checked {
        piece: u8,
        ok: bool,
    },
    /// The writer serves up to `count` queued blocks.
    Serve {
        peer: u8,
        count: u8,
    },
    /// The writer drains the outbox (a peer that never reads never gets this).
    Drain {
        peer: u8,
    },
    Close {
        peer: u8,
    },
}

/// The torrent the session is for, and its limits.
#[derive(Arbitrary, Debug)]
struct Setup {
    piece_blocks: u8,
    pieces: u8,
    tail: u16,
    have: Vec<u8>,
    max_peers: u8,
    max_queued: u8,
    outbox_max: u16,
    upload_slots: u8,
    info_dict: bool,
}

/// What the harness knows of one connection.
#[derive(Debug, Default)]
struct Conn {
    /// Requests we sent it, in order, as read back from its outbox.
    asked: Vec<BlockRef>,
    /// Bytes taken from its outbox so far.
    drained: usize,
}

struct Harness {
    t: Torrent,
    pieces: u32,
    max_peers: usize,
    outbox_max: usize,
    conns: BTreeMap<u32, Conn>,
    now: Duration,
    out: Vec<u8>,
}

/// Peer-wire session: arbitrary events into one [`Torrent`], and after each the session's
/// bounds hold (peers, outbox bytes, what it sends is valid wire and within the torrent).
pub fn peer_session(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(setup) = Setup::arbitrary(&mut u) else {
        return;
    };
    let Some(mut h) = Harness::new(&setup) else {
        return;
    };
    for _ in 0..OPS_MAX {
        let Ok(op) = Op::arbitrary(&mut u) else {
            break;
        };
        h.step(op);
        h.check();
    }
}

impl Harness {
    fn new(s: &Setup) -> Option<Harness> {
        let piece_len = u32::from(s.piece_blocks % 4 + 1) * BLOCK_LEN;
        let pieces = u64::from(s.pieces % 40) + 1;
        let tail = u64::from(s.tail) % u64::from(piece_len);
        let length = u64::from(piece_len) * pieces - tail;
        let file = LayoutFile {
            path: TorrentPath::new([b"f".as_slice()]).ok()?,
            length,
            pad: false,
        };
        let layout = Layout::new(piece_len, [file]).ok()?;
        let count = layout.piece_count();
        let mut have = Bitfield::empty(count);
        for piece in 0..count {
            if s.have
                .get(piece as usize / 8)
                .is_some_and(|b| b >> (piece % 8) & 1 == 1)
            {
                have.set(piece);
            }
        }
        let config = SessionConfig {
            max_peers: usize::from(s.max_peers % 8) + 1,
            max_queued_requests: usize::from(s.max_queued % 64) + 1,
            outbox_max_bytes: usize::from(s.outbox_max) + 64,
            choked_request_allowance: 4,
            choker: ccbt_engine::choker::ChokerConfig {
                upload_slots: usize::from(s.upload_slots % 5),
                ..Default::default()
            },
            ..SessionConfig::default()
        };
        let (max_peers, outbox_max) = (config.max_peers, config.outbox_max_bytes);
        let mut t = Torrent::new(layout, &have, config, 7);
        t.set_info_hash(ccbt_engine::hash::Sha1::digest(b"fuzz"));
        if s.info_dict {
            t.set_info_dict(served_info());
        }
        Some(Harness {
            t,
            pieces: count,
            max_peers,
            outbox_max,
            conns: BTreeMap::new(),
            now: Duration::ZERO,
            out: Vec::new(),
        })
    }

    /// The `n`th live connection (wrapping), if any.
    fn conn(&self, n: u8) -> Option<u32> {
        if self.conns.is_empty() {
            return None;
        }
        self.conns
            .keys()
            .nth(usize::from(n) % self.conns.len())
            .copied()
    }

    fn block(piece: u8, block: u8, len: Len) -> BlockRef {
        BlockRef {
            piece: u32::from(piece),
            offset: u32::from(block) * BLOCK_LEN,
            len: len.get(),
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Connect {
                host,
                fast,
                extensions,
            } => {
                let addr = SocketAddr::from((Ipv4Addr::new(10, 0, 0, host), 6881));
                // Odd hosts we dialled, even ones dialled us: both kinds in every run.
                let caps = PeerCaps {
                    fast,
                    extensions,
                    outgoing: host % 2 == 1,
                    dht_port: None,
                };
                if let Ok(key) = self.t.add_peer(self.now, addr, caps) {
                    let old = self.conns.insert(key, Conn::default());
                    assert!(old.is_none(), "key {key} given to two live peers");
                }
            }
            Op::Send { peer, msg } => {
                if let Some(key) = self.conn(peer) {
                    self.send(key, msg);
                }
            }
            Op::Tick { secs } => {
                self.now += Duration::from_secs(u64::from(secs));
                self.t.tick(self.now);
            }
            Op::Checked { piece, ok } => self.checked(u32::from(piece), ok),
            Op::Serve { peer, count } => {
                let Some(key) = self.conn(peer) else {
                    return;
                };
                for _ in 0..count {
                    let Some(block) = self.t.next_serve(key) else {
                        break;
                    };
                    let index = self.t.layout().piece(block.piece).expect("served in range");
                    let piece_len = self.t.layout().piece_len(index);
                    assert!(block.len > 0 && block.len <= MAX_SERVED_BLOCK, "{block:?}");
                    assert!(
                        u64::from(block.offset) + u64::from(block.len) <= u64::from(piece_len),
                        "served {block:?} past its piece"
                    );
                    assert!(self.t.have().get(block.piece), "served a piece we lack");
                    self.t.on_block_sent(self.now, key, block.len);
                }
                let _ = self.t.upcoming_pieces(key, 4);
            }
            Op::Drain { peer } => {
                if let Some(key) = self.conn(peer) {
                    self.drain(key);
                }
            }
            Op::Close { peer } => {
                if let Some(key) = self.conn(peer) {
                    self.t.remove_peer(key);
                    self.conns.remove(&key);
                }
            }
        }
        self.actions();
    }

    fn send(&mut self, key: u32, msg: Msg) {
        let metadata_request;
        let msg = match msg {
            Msg::KeepAlive => Message::KeepAlive,
            Msg::Choke => Message::Choke,
            Msg::Unchoke => Message::Unchoke,
            Msg::Interested => Message::Interested,
            Msg::NotInterested => Message::NotInterested,
            Msg::Have(p) => Message::Have(u32::from(p)),
            Msg::Bitfield(ref bits) => Message::Bitfield(bits),
            Msg::HaveAll => Message::HaveAll,
            Msg::HaveNone => Message::HaveNone,
            Msg::Request { piece, block, len } => Message::Request(Self::block(piece, block, len)),
            Msg::Cancel { piece, block, len } => Message::Cancel(Self::block(piece, block, len)),
            Msg::Reject { piece, block, len } => {
                Message::RejectRequest(Self::block(piece, block, len))
            }
            Msg::Answer { nth, fill } => {
                let Some(asked) = self.conns.get(&key).map(|c| &c.asked) else {
                    return;
                };
                if asked.is_empty() {
                    return;
                }
                let b = asked[usize::from(nth) % asked.len()];
                let fill = if fill % 2 == 0 { &EVEN } else { &ODD };
                Message::Piece {
                    piece: b.piece,
                    offset: b.offset,
                    data: &fill[..b.len.min(BLOCK_LEN) as usize],
                }
            }
            Msg::Piece { piece, block, len } => Message::Piece {
                piece: u32::from(piece),
                offset: u32::from(block) * BLOCK_LEN,
                data: &EVEN[..len.get().min(2 * BLOCK_LEN) as usize],
            },
            Msg::Suggest(p) => Message::SuggestPiece(u32::from(p)),
            Msg::AllowedFast(p) => Message::AllowedFast(u32::from(p)),
            Msg::Port(p) => Message::Port(p),
            Msg::Extended { id, ref payload } => Message::Extended { id, payload },
            Msg::MetadataRequest(piece) => {
                metadata_request = MetadataMessage::Request {
                    piece: u32::from(piece),
                }
                .encode();
                Message::Extended {
                    id: ccbt_engine::extension::Extension::UtMetadata.local_id(),
                    payload: &metadata_request,
                }
            }
            Msg::Unknown { id, ref payload } => Message::Unknown { id, payload },
            Msg::Raw(ref bytes) => {
                let max = max_message_len(self.pieces);
                match decode_message(bytes, max) {
                    Ok(Some((msg, _))) => return self.deliver(key, &msg),
                    _ => return,
                }
            }
        };
        self.deliver(key, &msg);
    }

    fn deliver(&mut self, key: u32, msg: &Message<'_>) {
        let before = self.t.steps();
        let result = self.t.on_message(self.now, key, msg);
        let cost = self.t.steps() - before;
        assert!(cost <= 100_000, "one {msg:?} cost {cost} steps");
        match result {
            Ok(Incoming::Block { piece_complete }) => {
                if let Message::Piece { piece, .. } = msg {
                    assert!(*piece < self.pieces);
                    if piece_complete {
                        // The harness hashes nothing: a complete piece passes if its first
                        // byte is even, so good and bad pieces both happen.
                        let ok = match msg {
                            Message::Piece { data, .. } => data.first().is_some_and(|b| b % 2 == 0),
                            _ => true,
                        };
                        self.checked(*piece, ok);
                    }
                } else {
                    panic!("{msg:?} gave a block");
                }
            }
            Ok(Incoming::Nothing) => {}
            Err(_) => {
                // The session forgot the peer and queued its Disconnect: `actions` sees it.
            }
        }
    }

    fn checked(&mut self, piece: u32, ok: bool) {
        let digests = if self.t.wants_block_digests(piece, ok) {
            let len = self
                .t
                .layout()
                .piece(piece)
                .map_or(0, |p| self.t.layout().piece_len(p));
            block_digests(&vec![0; len as usize])
        } else {
            Vec::new()
        };
        self.t.piece_checked(self.now, piece, ok, &digests);
    }

    /// Takes the outbox and checks that every byte in it is a valid message we may send.
    fn drain(&mut self, key: u32) {
        self.out.clear();
        self.t.take_outbox(key, &mut self.out);
        let max = max_message_len(self.pieces);
        let mut buf = &self.out[..];
        let conn = self.conns.get_mut(&key).expect("live connection");
        conn.drained += buf.len();
        while !buf.is_empty() {
            let (msg, used) = match decode_message(buf, max) {
                Ok(Some(m)) => m,
                other => panic!("our outbox holds bytes that are not a message: {other:?}"),
            };
            if let Message::Request(b) = msg {
                let index = self.t.layout().piece(b.piece).expect("requested in range");
                let piece_len = self.t.layout().piece_len(index);
                assert!(b.len > 0 && b.len <= BLOCK_LEN, "{b:?}");
                assert!(u64::from(b.offset) + u64::from(b.len) <= u64::from(piece_len));
                if conn.asked.len() < 4096 {
                    conn.asked.push(b);
                }
            }
            if let Message::Have(p) = msg {
                assert!(p < self.pieces);
            }
            buf = &buf[used..];
        }
    }

    fn actions(&mut self) {
        while let Some(action) = self.t.poll_action() {
            match action {
                Action::Disconnect(key, _) => {
                    assert!(
                        self.conns.remove(&key).is_some(),
                        "Disconnect for {key}, which is not connected"
                    );
                }
                Action::Wake(_) => {}
                Action::Done => assert!(self.t.is_done()),
                Action::PexPeers(addrs) => {
                    assert!(addrs.len() <= ccbt_engine::pex::DECODE_ADDED_MAX);
                }
            }
        }
    }

    fn check(&mut self) {
        assert_eq!(self.t.peer_count(), self.conns.len());
        assert!(self.t.peer_count() <= self.max_peers);
        let stats = self.t.stats(self.now);
        assert!(stats.have_pieces <= self.pieces);
        assert!(stats.wanted_left <= self.pieces);
        // Each outbox: its bound, plus the first piece list and extension handshake, plus
        // what a verified piece sends everyone between ticks.
        let per_peer = self.outbox_max + self.pieces.div_ceil(8) as usize + 4096;
        assert!(
            stats.outbox_bytes <= (per_peer * self.conns.len()) as u64,
            "{} outbox bytes for {} peers",
            stats.outbox_bytes,
            self.conns.len()
        );
    }
}

/// A small info dict, and the torrent of a magnet link for it.
fn info_dict() -> Vec<u8> {
    let pieces = vec![7u8; 20 * 3];
    let info = Dict::new()
        .with(b"name", Value::Bytes(b"fuzz"))
        .with(b"piece length", Value::Int(16384))
        .with(b"length", Value::Int(40_000))
        .with(b"pieces", Value::Bytes(&pieces));
    let mut filler = vec![b'z'; 20_000];
    filler[0] = b'a';
    let info = info.with(b"zpad", Value::Bytes(&filler));
    bencode::encode(&Value::Dict(info))
}

#[derive(Arbitrary, Debug)]
enum FetchOp {
    /// A peer's extension handshake; `size` says the real metadata size or any.
    Handshake {
        peer: u8,
        id: u8,
        size: Option<u32>,
    },
    /// A raw ut_metadata payload.
    Raw {
        peer: u8,
        payload: Vec<u8>,
    },
    /// Piece `piece` of the real metadata, or with its bytes flipped at `corrupt`.
    Data {
        peer: u8,
        piece: u8,
        corrupt: Option<u16>,
    },
    Reject {
        peer: u8,
        piece: u8,
    },
    Leave {
        peer: u8,
    },
    Wait {
        secs: u8,
    },
}

/// The BEP 9 metadata fetch: arbitrary handshakes and ut_metadata messages from a few
/// peers into a [`MetadataFetcher`]. What it reports done must hash to the info hash;
/// what it asks for must be valid ut_metadata requests.
pub fn metadata_fetch(data: &[u8]) {
    static INFO: OnceLock<(Vec<u8>, ccbt_engine::InfoHash)> = OnceLock::new();
    let (info, info_hash) = INFO.get_or_init(|| {
        let info = info_dict();
        let hash = ccbt_engine::hash::Sha1::digest(&info);
        (info, hash)
    });
    let info_hash = *info_hash;
    let mut f = MetadataFetcher::new(info_hash, FetchConfig::default());
    let mut u = Unstructured::new(data);
    let mut now = Duration::ZERO;
    let size = info.len() as u32;
    for _ in 0..OPS_MAX {
        let Ok(op) = FetchOp::arbitrary(&mut u) else {
            break;
        };
        let addr = |peer: u8| SocketAddr::from((Ipv4Addr::new(10, 0, 1, peer % 8), 6881));
        let key = |peer: u8| u64::from(peer % 8);
        match op {
            FetchOp::Handshake {
                peer,
                id,
                size: said,
            } => {
                let mut theirs = TheirHandshake::default();
                theirs.extensions = theirs
                    .extensions
                    .with(ccbt_engine::extension::Extension::UtMetadata, id);
                theirs.metadata_size = Some(u64::from(said.unwrap_or(size)));
                let _ = f.add_peer(now, key(peer), addr(peer), &theirs);
            }
            FetchOp::Raw { peer, payload } => {
                let _ = f.on_message(now, key(peer), &payload);
            }
            FetchOp::Data {
                peer,
                piece,
                corrupt,
            } => {
                let piece = u32::from(piece % 3);
                let start = piece as usize * 16384;
                if start >= info.len() {
                    continue;
                }
                let good = &info[start..(start + 16384).min(info.len())];
                let mut bad;
                let bytes = match corrupt {
                    Some(at) => {
                        bad = good.to_vec();
                        let at = usize::from(at) % bad.len();
                        bad[at] ^= 0x55;
                        &bad[..]
                    }
                    None => good,
                };
                let payload = MetadataMessage::Data {
                    piece,
                    total_size: size,
                    data: bytes,
                }
                .encode();
                let _ = f.on_message(now, key(peer), &payload);
            }
            FetchOp::Reject { peer, piece } => {
                let payload = MetadataMessage::Reject {
                    piece: u32::from(piece),
                }
                .encode();
                let _ = f.on_message(now, key(peer), &payload);
            }
            FetchOp::Leave { peer } => f.remove_peer(now, key(peer)),
            FetchOp::Wait { secs } => {
                now += Duration::from_secs(u64::from(secs));
                f.handle_timeout(now);
            }
        }
        while let Some(t) = f.poll_transmit() {
            match MetadataMessage::decode(&t.payload) {
                Ok(MetadataMessage::Request { .. }) => {}
                other => panic!("the fetcher sent {other:?}"),
            }
        }
        while let Some(event) = f.poll_event() {
            if let FetchEvent::Done(bytes) = event {
                assert!(ccbt_engine::hash::Sha1::digest(&bytes) == info_hash);
                assert!(f.is_done());
            }
        }
        let progress = f.progress();
        assert!(progress.pieces_got <= progress.pieces_total);
    }
}
