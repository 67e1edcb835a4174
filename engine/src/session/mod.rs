//! One torrent's swarm as a state machine: peers' messages and the clock go in; messages to
//! send, blocks to serve, pieces to check and peers to drop come out.
//!
//! The I/O layer owns sockets and disk. It calls [`Torrent::on_message`] for every decoded
//! message, copies a block's bytes into its piece buffer when told the block is wanted,
//! hashes complete pieces and reports back with [`Torrent::piece_checked`], and drains
//! [`Torrent::poll_action`] and each peer's outbox ([`Torrent::take_outbox`]).

mod blame;
mod config;
mod extension;
mod fast;
#[cfg(test)]
mod fast_tests;
use fast::{ChokedBudgets, FastSets};
#[cfg(test)]
mod hostile_tests;
mod peer;
mod pex;
#[cfg(test)]
mod pex_tests;
mod serve_queue;
#[cfg(test)]
mod tests;
mod web;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

use crate::bitfield::BitfieldError;
use crate::choker::{Candidate, Choker};
use crate::metainfo::Layout;
use crate::picker::{request_queue_depth, Picker, Priority};
use crate::rate::RateMeter;
use crate::wire::Message;
use crate::{Bitfield, BlockRef, Sha1Digest, BLOCK_LEN};

pub use crate::picker::PeerKey;
use blame::{BanKey, Blame, Finding};
pub use config::SessionConfig;
pub use extension::{metadata_answers_max, our_handshake as extension_handshake, ADVERTISED_REQQ};
use peer::Peer;
pub use pex::{FIRST_DELAY as PEX_FIRST_DELAY, SEND_INTERVAL as PEX_SEND_INTERVAL};
pub use web::{WebData, WebSeedId, WebStore, RUN_BYTES, WEB_SEEDS_MAX};

/// The largest block we serve to a peer that asks for more than 16 KiB.
pub const MAX_SERVED_BLOCK: u32 = 8 * BLOCK_LEN;
/// Banned addresses remembered per torrent, at most.
const BANNED_MAX: usize = 10_000;

/// SHA-1 of each 16 KiB block of a piece, for [`Torrent::piece_checked`].
pub fn block_digests(piece_data: &[u8]) -> Vec<Sha1Digest> {
    piece_data
        .chunks(BLOCK_LEN as usize)
        .map(crate::hash::Sha1::digest)
        .collect()
}

/// What both ends of a connection support, from the reserved bits of the handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerCaps {
    /// BEP 6, the Fast extension.
    pub fast: bool,
    /// BEP 10, the extension protocol.
    pub extensions: bool,
    /// We connected out to it (so its address is where it listens, for PEX).
    pub outgoing: bool,
    /// BEP 5: both ends run a DHT node; ours listens on this UDP port, which the peer is
    /// told with a `port` message after our first messages.
    pub dht_port: Option<u16>,
}

/// What the I/O layer must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The peer has bytes in its outbox or blocks to serve: wake its writer.
    Wake(PeerKey),
    /// Close the connection; the torrent has already forgotten the peer.
    Disconnect(PeerKey, DropReason),
    /// Every wanted piece is verified.
    Done,
    /// A peer told us of these addresses through PEX (BEP 11): candidates to dial, at most
    /// `pex::DECODE_ADDED_MAX` per message, at most one message per peer every 45 s.
    PexPeers(Vec<SocketAddr>),
}

/// Why a peer was dropped: each is a line in a log a user may read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DropReason {
    #[error("bad bitfield: {0}")]
    BadBitfield(#[from] BitfieldError),
    #[error("sent HAVE ALL/HAVE NONE without the Fast extension")]
    FastNotNegotiated,
    #[error("named piece {0}, which this torrent does not have")]
    PieceOutOfRange(u32),
    #[error("requested {0:?}, outside its piece or too large")]
    BadRequest(BlockRef),
    #[error("sent block {0:?}, outside its piece")]
    BadBlock(BlockRef),
    #[error("kept requesting while choked")]
    RequestsWhileChoked,
    #[error("sent data that failed the hash check {0} times; banned")]
    HashFailures(u32),
    #[error("sent a block that differs from the verified piece; banned")]
    BadData,
    #[error("address is banned from this torrent")]
    Banned,
    #[error("silent for {0:?}")]
    Idle(Duration),
    #[error("both sides are seeds")]
    BothSeeds,
    #[error("connected to ourselves")]
    SelfConnection,
    #[error("already connected to this peer")]
    Duplicate,
    #[error("the torrent has {0} peers already")]
    TooManyPeers(usize),
    #[error("delivered no requested block for {0:?}")]
    Snubbing(Duration),
    #[error("replaced by a new peer: the torrent was full and it moved no data for {0:?}")]
    Replaced(Duration),
    #[error("neither side interested for {0:?}")]
    Uninterested(Duration),
    #[error("stopped reading: {0} bytes wait to be sent to it")]
    NotReading(usize),
    #[error("{0}")]
    BadMetadataMessage(#[from] crate::metadata::MetadataError),
    #[error("{0}")]
    BadPexMessage(#[from] crate::pex::PexError),
}

/// What the caller does with a message's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// Nothing to store.
    Nothing,
    /// A wanted block: copy its bytes into the piece's buffer. When `piece_complete`, every
    /// block of that piece is in: hash it and call [`Torrent::piece_checked`].
    Block { piece_complete: bool },
}

/// A connected peer as a peer list shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerView {
    pub key: PeerKey,
    pub addr: SocketAddr,
    /// We dialled it (else it connected to us).
    pub outgoing: bool,
    /// Its share of the torrent's pieces, 0.0 to 1.0.
    pub progress: f64,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    /// Payload bytes per second from it and to it.
    pub download_rate: u64,
    pub upload_rate: u64,
    pub downloaded: u64,
    pub uploaded: u64,
}

/// Figures for progress lines and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TorrentStats {
    pub peers: usize,
    pub unchoked_by: usize,
    pub have_pieces: u32,
    pub wanted_left: u32,
    pub downloaded: u64,
    pub uploaded: u64,
    pub download_rate: u64,
    pub upload_rate: u64,
    pub wasted: u64,
    /// Bytes waiting in peers' outboxes for their writers.
    pub outbox_bytes: u64,
}

/// One torrent's peers, pieces and choking.
#[derive(Debug)]
pub struct Torrent {
    config: SessionConfig,
    layout: Layout,
    picker: Picker,
    choker: Choker,
    peers: BTreeMap<PeerKey, Peer>,
    next_key: PeerKey,
    banned: HashSet<BanKey>,
    blame: Blame,
    /// What choked peers fetched under allowed fast, per host (see `fast`).
    choked_budgets: ChokedBudgets,
    actions: VecDeque<Action>,
    download: RateMeter,
    upload: RateMeter,
    wasted: u64,
    done_reported: bool,
    /// The torrent's info hash, for BEP 6's allowed-fast sets; `None` offers none.
    info_hash: Option<crate::InfoHash>,
    /// The info dict's bytes, served to peers that ask (BEP 9); `None` serves nothing.
    info_dict: Option<std::sync::Arc<[u8]>>,
    scratch: Vec<BlockRef>,
    /// Elementary steps taken for peers' messages (pieces walked, queue entries scanned):
    /// lets a test bound what hostile input costs without timing it.
    steps: u64,
    /// Web seeds (BEP 19), at most `web::WEB_SEEDS_MAX`; see `web`.
    web: Vec<crate::webseed::WebSeed>,
    /// A private torrent (BEP 27): no peer exchange, whatever the config says.
    private: bool,
}

impl Torrent {
    /// `have`: pieces already verified on disk. `seed` makes every random choice repeatable.
    pub fn new(layout: Layout, have: &Bitfield, config: SessionConfig, seed: u64) -> Self {
        let picker = Picker::new(&layout, have, seed);
        let choker = Choker::new(config.choker.clone(), seed ^ 0x9e37_79b9_7f4a_7c15);
        let done_reported = picker.is_done();
        Torrent {
            config,
            layout,
            picker,
            choker,
            peers: BTreeMap::new(),
            next_key: 0,
            banned: HashSet::new(),
            blame: Blame::default(),
            choked_budgets: ChokedBudgets::default(),
            actions: VecDeque::new(),
            download: RateMeter::new(),
            upload: RateMeter::new(),
            wasted: 0,
            done_reported,
            info_hash: None,
            info_dict: None,
            scratch: Vec::new(),
            steps: 0,
            web: Vec::new(),
            private: false,
        }
    }

    /// Marks the torrent private (BEP 27): peers come only from its trackers, so PEX is
    /// neither offered, sent nor taken. Set before peers are added.
    pub fn set_private(&mut self, private: bool) {
        self.private = private;
    }

    /// Lets peers with few pieces fetch BEP 6's allowed-fast set from us while choked.
    pub fn set_info_hash(&mut self, info_hash: crate::InfoHash) {
        self.info_hash = Some(info_hash);
    }

    /// The info dict to serve to peers that ask for it (BEP 9). Set before peers are
    /// added: our extension handshake tells its size.
    pub fn set_info_dict(&mut self, info: std::sync::Arc<[u8]>) {
        self.info_dict = Some(info);
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    pub fn have(&self) -> &Bitfield {
        self.picker.have()
    }

    /// All wanted pieces are verified.
    pub fn is_done(&self) -> bool {
        self.picker.is_done()
    }

    pub fn set_sequential(&mut self, on: bool) {
        self.picker.set_sequential(on);
    }

    /// New upload slots (rechoked at once) and peer cap (a config reload). Lowering the
    /// cap drops nobody: it only refuses new peers until the count is under it.
    pub fn set_peer_limits(&mut self, upload_slots: usize, max_peers: usize) {
        self.config.choker.upload_slots = upload_slots;
        self.choker.set_upload_slots(upload_slots);
        self.config.max_peers = max_peers;
    }

    /// The upload slots and peer cap in force (see [`Torrent::set_peer_limits`]).
    pub fn peer_limits(&self) -> (usize, usize) {
        (self.config.choker.upload_slots, self.config.max_peers)
    }

    pub fn set_file_priorities(&mut self, priorities: &[Priority]) {
        self.picker.set_file_priorities(&self.layout, priorities);
        self.done_reported = self.picker.is_done();
    }

    /// See `steps`: the work peers' messages have cost so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Whether a connection with `addr` would be refused.
    pub fn is_banned(&self, addr: SocketAddr) -> bool {
        self.banned.contains(&BanKey::of(addr))
    }

    /// Room for another connection.
    pub fn wants_peers(&self) -> bool {
        self.peers.len() < self.config.max_peers
    }

    /// A peer finished the handshake. `fast`: both sides set the Fast extension bit.
    pub fn add_peer(
        &mut self,
        now: Duration,
        addr: SocketAddr,
        caps: PeerCaps,
    ) -> Result<PeerKey, DropReason> {
        let fast = caps.fast;
        if self.is_banned(addr) {
            return Err(DropReason::Banned);
        }
        if self.peers.len() >= self.config.max_peers && !self.make_room(now) {
            return Err(DropReason::TooManyPeers(self.peers.len()));
        }
        // Keys wrap after 2^32 connections: skip any still in use (at most `max_peers`).
        let mut key = self.next_key;
        // The top of the key space belongs to web seeds.
        while self.peers.contains_key(&key) || key >= web::WEB_KEY_MIN {
            key = key.wrapping_add(1);
        }
        self.next_key = key.wrapping_add(1);
        let mut peer = Peer::new(addr, fast, self.layout.piece_count(), now);
        peer.outgoing = caps.outgoing;
        let have = self.picker.have();
        let first = if fast && have.is_full() {
            Message::HaveAll
        } else if fast && have.has_none() {
            Message::HaveNone
        } else {
            Message::Bitfield(have.as_bytes())
        };
        first.encode(&mut peer.outbox);
        if caps.extensions {
            let payload = extension::our_handshake(
                extension::ADVERTISED_REQQ.min(self.config.max_queued_requests),
                self.info_dict.as_ref().map(|i| i.len() as u32),
                self.pex_enabled(),
            );
            Message::Extended {
                id: 0,
                payload: &payload,
            }
            .encode(&mut peer.outbox);
        }
        if let Some(port) = caps.dht_port {
            Message::Port(port).encode(&mut peer.outbox);
        }
        self.peers.insert(key, peer);
        self.actions.push_back(Action::Wake(key));
        Ok(key)
    }

    /// Drops the peer a newcomer may replace (see [`SessionConfig::replace_idle_after`]),
    /// if there is one: for a caller whose own cap is full (a hot torrent counts its peers
    /// on every shard). [`Torrent::add_peer`] does this itself when the torrent is full.
    pub fn make_room(&mut self, now: Duration) -> bool {
        match self.replaceable_peer(now) {
            Some((victim, idle)) => {
                self.drop_peer(victim, DropReason::Replaced(idle));
                true
            }
            None => false,
        }
    }

    /// The peer a newcomer may replace in a full torrent: of those that moved no block
    /// for `replace_idle_after` (`replace_suspect_after` for a suspect, see
    /// `Peer::is_suspect`), a suspect, else one that neither side is interested in, else
    /// the one idle longest (lowest key on a tie, so the choice repeats). With how long it
    /// was idle.
    fn replaceable_peer(&self, now: Duration) -> Option<(PeerKey, Duration)> {
        self.peers
            .iter()
            .map(|(&key, p)| (key, p, now.saturating_sub(p.last_payload)))
            .filter(|&(_, p, idle)| {
                idle >= if p.is_suspect() {
                    self.config.replace_suspect_after
                } else {
                    self.config.replace_idle_after
                }
            })
            .min_by_key(|&(key, p, idle)| {
                let useful = p.am_interested || p.peer_interested;
                (!p.is_suspect(), useful, std::cmp::Reverse(idle), key)
            })
            .map(|(key, _, idle)| (key, idle))
    }

    /// The connection closed, or the caller is closing it.
    pub fn remove_peer(&mut self, key: PeerKey) {
        if let Some(peer) = self.peers.remove(&key) {
            self.picker.peer_left(&peer.has);
            self.picker.on_peer_gone(key);
        }
    }

    /// Panics unless the torrent's parts agree and every bound holds: the picker's
    /// indexes, each peer's requests against the picker's record of them, the unchoke
    /// count, the per-peer queues and outbox, and the ban and blame tables. For tests and
    /// the swarm simulator (feature `invariants`), which call it after every step.
    #[cfg(any(test, feature = "invariants"))]
    pub fn check_invariants(&self) {
        self.picker.check_invariants();
        self.blame.check_invariants();
        self.choked_budgets.check_invariants();
        assert!(self.banned.len() <= BANNED_MAX, "ban table over bound");
        let slots = self.config.choker.upload_slots;
        let unchoked = self.peers.values().filter(|p| !p.am_choking).count();
        assert!(
            slots == 0 || unchoked <= slots,
            "{unchoked} peers unchoked with {slots} slots"
        );
        for (&key, peer) in &self.peers {
            assert!(
                !self.is_banned(peer.addr),
                "banned {} still connected",
                peer.addr
            );
            assert!(
                peer.queued.slots() <= self.config.max_queued_requests,
                "peer {key} holds {} request slots",
                peer.queued.slots()
            );
            assert!(
                peer.outbox.len() <= self.outbox_max(),
                "peer {key} outbox holds {} bytes",
                peer.outbox.len()
            );
            let sent: std::collections::BTreeSet<(u32, u32)> = peer
                .sent_requests
                .iter()
                .map(|(b, _)| (b.piece, b.offset / BLOCK_LEN))
                .collect();
            assert_eq!(
                sent.len(),
                peer.sent_requests.len(),
                "peer {key}: a block requested twice"
            );
            assert_eq!(
                sent,
                self.picker.requested_from(key),
                "peer {key}: requests sent and the picker's record differ"
            );
        }
    }

    /// Handles one message from a peer. On `Err` the peer is already forgotten and a
    /// [`Action::Disconnect`] is queued; the caller closes the connection.
    pub fn on_message(
        &mut self,
        now: Duration,
        key: PeerKey,
        msg: &Message<'_>,
    ) -> Result<Incoming, DropReason> {
        match self.handle(now, key, msg).and_then(|incoming| {
            self.check_outbox(key)?;
            Ok(incoming)
        }) {
            Ok(incoming) => Ok(incoming),
            Err(reason) => {
                self.drop_peer(key, reason.clone());
                Err(reason)
            }
        }
    }

    fn handle(
        &mut self,
        now: Duration,
        key: PeerKey,
        msg: &Message<'_>,
    ) -> Result<Incoming, DropReason> {
        let pieces = self.layout.piece_count();
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(Incoming::Nothing);
        };
        peer.last_received = now;
        // Its first piece list replaces the empty one; any later one (or one after HAVEs)
        // only adds, so availability never counts a piece twice.
        let first = peer.awaiting_bitfield;
        if matches!(
            msg,
            Message::Have(_) | Message::Bitfield(_) | Message::HaveAll | Message::HaveNone
        ) {
            peer.awaiting_bitfield = false;
        }
        match *msg {
            Message::Extended { id: 0, payload } => {
                extension::read_handshake(&mut peer.extensions, payload);
                self.pex_on_handshake(now, key);
            }
            Message::Extended { id, payload }
                if crate::extension::Extension::from_local_id(id)
                    == Some(crate::extension::Extension::UtPex) =>
            {
                self.pex_on_message(now, key, payload)?;
            }
            Message::Extended { id, payload }
                if crate::extension::Extension::from_local_id(id)
                    == Some(crate::extension::Extension::UtMetadata) =>
            {
                extension::on_metadata_message(
                    self.info_dict.as_deref(),
                    peer.extensions.as_ref(),
                    &mut peer.metadata_answered,
                    payload,
                    &mut peer.outbox,
                )?;
                peer.last_sent = now;
                self.actions.push_back(Action::Wake(key));
            }
            // Out-of-range pieces and messages without the Fast extension are ignored, as
            // libtorrent does: neither costs us anything.
            Message::AllowedFast(piece) => {
                if peer.fast && piece < pieces {
                    peer.fast_sets.allow_in(piece);
                    if peer.peer_choking {
                        self.fill_requests(now, key);
                    }
                }
            }
            Message::SuggestPiece(piece) => {
                if peer.fast && piece < pieces && !self.picker.have().get(piece) {
                    peer.fast_sets.suggest(piece);
                }
            }
            Message::KeepAlive
            | Message::Port(_)
            | Message::Extended { .. }
            | Message::Unknown { .. } => {}
            Message::Bitfield(bytes) => {
                let has = Bitfield::from_wire(bytes, pieces)?;
                if first {
                    self.picker.peer_joined(&has);
                    peer.has = has;
                } else {
                    // A later bitfield stands for a batch of HAVEs (aria2 sends one instead
                    // of 20 or more); pieces never go away.
                    for piece in has.iter_ones() {
                        if peer.has.set(piece) {
                            self.picker.peer_has(piece);
                        }
                    }
                }
                self.after_peer_gained_pieces(now, key)?;
            }
            Message::HaveAll | Message::HaveNone => {
                if !peer.fast {
                    return Err(DropReason::FastNotNegotiated);
                }
                if matches!(msg, Message::HaveAll) {
                    if first {
                        peer.has = Bitfield::full(pieces);
                        self.picker.peer_joined(&peer.has);
                    } else if !peer.has.is_full() {
                        // Walked once: a repeated HAVE ALL finds the peer full and stops.
                        self.steps += u64::from(pieces);
                        for piece in 0..pieces {
                            if peer.has.set(piece) {
                                self.picker.peer_has(piece);
                            }
                        }
                    }
                    self.after_peer_gained_pieces(now, key)?;
                }
            }
            Message::Have(piece) => {
                if piece >= pieces {
                    return Err(DropReason::PieceOutOfRange(piece));
                }
                if peer.has.set(piece) {
                    self.picker.peer_has(piece);
                    self.after_peer_gained_pieces(now, key)?;
                }
            }
            Message::Choke => {
                peer.peer_choking = true;
                if !peer.fast {
                    // Without the Fast extension a choke silently discards our requests.
                    peer.sent_requests.clear();
                    self.picker.on_peer_gone(key);
                }
            }
            Message::Unchoke => {
                peer.peer_choking = false;
                self.fill_requests(now, key);
            }
            Message::Interested => {
                let was = std::mem::replace(&mut peer.peer_interested, true);
                if !was && peer.am_choking && self.free_upload_slot() {
                    self.rechoke(now);
                }
            }
            Message::NotInterested => {
                peer.peer_interested = false;
            }
            Message::Request(block) => self.on_request(now, key, block)?,
            Message::Cancel(block) => {
                self.steps += peer.queued.cancel(block);
            }
            Message::RejectRequest(block) => {
                if peer.fast {
                    if let Some(i) = peer.sent_requests.iter().position(|(b, _)| *b == block) {
                        peer.sent_requests.remove(i);
                        self.picker.on_request_dropped(key, block);
                        self.fill_requests(now, key);
                    }
                }
            }
            Message::Piece {
                piece,
                offset,
                data,
            } => return self.on_block(now, key, piece, offset, data.len()),
        }
        if first {
            self.offer_allowed_fast(now, key);
        }
        Ok(Incoming::Nothing)
    }

    /// After a Fast peer's first piece list: if it has fewer pieces than the allowed-fast
    /// set, tell it which pieces of its set (BEP 6) it may fetch while choked, of those we
    /// have (libtorrent does the same), so a newcomer gets going before an unchoke.
    fn offer_allowed_fast(&mut self, now: Duration, key: PeerKey) {
        let Some(info_hash) = self.info_hash else {
            return;
        };
        let pieces = self.layout.piece_count();
        let have = self.picker.have();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if !peer.fast || peer.fast_sets.offered || peer.awaiting_bitfield {
            return;
        }
        peer.fast_sets.offered = true;
        if peer.has.count() as usize >= fast::ALLOWED_FAST_SET_SIZE {
            return;
        }
        let set = fast::allowed_fast_set(
            peer.addr.ip(),
            &info_hash,
            pieces,
            fast::ALLOWED_FAST_SET_SIZE,
        );
        for &piece in set.iter().filter(|&&p| have.get(p)) {
            Message::AllowedFast(piece).encode(&mut peer.outbox);
        }
        peer.fast_sets.allowed_out = set;
        peer.last_sent = now;
        self.actions.push_back(Action::Wake(key));
    }

    /// Bytes a peer's outbox may hold: the configured bound past its first piece list.
    fn outbox_max(&self) -> usize {
        self.config.outbox_max_bytes + self.layout.piece_count().div_ceil(8) as usize
    }

    /// A peer whose outbox outgrew its bound is not reading: its writer is stuck on a full
    /// socket (the I/O layer's write deadline drops it too, later).
    fn check_outbox(&self, key: PeerKey) -> Result<(), DropReason> {
        match self.peers.get(&key) {
            Some(peer) if peer.outbox.len() > self.outbox_max() => {
                Err(DropReason::NotReading(peer.outbox.len()))
            }
            _ => Ok(()),
        }
    }

    fn on_request(
        &mut self,
        now: Duration,
        key: PeerKey,
        block: BlockRef,
    ) -> Result<(), DropReason> {
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        let Some(index) = self.layout.piece(block.piece) else {
            return Err(DropReason::BadRequest(block));
        };
        if !peer.am_choking {
            peer.requested_since_unchoke = true;
            peer.left_unchoke_unused = false;
        }
        let piece_len = self.layout.piece_len(index);
        let in_piece = block
            .offset
            .checked_add(block.len)
            .is_some_and(|end| end <= piece_len);
        if block.len == 0 || block.len > MAX_SERVED_BLOCK || !in_piece {
            return Err(DropReason::BadRequest(block));
        }
        // A request we will not serve: refused under the Fast extension, else ignored (the
        // peer re-requests after its time-out). A full queue is refused like this too, as
        // libtorrent does: Transmission, for one, queues many seconds' worth of requests.
        let full = peer.queued.slots() >= self.config.max_queued_requests;
        let have = self.picker.have().get(block.piece);
        // A choked peer may still fetch its allowed-fast pieces, up to a budget.
        let allowed_while_choked = peer.am_choking
            && have
            && peer.fast_sets.allows_out(block.piece)
            && self.choked_budgets.spent(peer.addr.ip()) + u64::from(block.len)
                <= fast::CHOKED_PIECES_BUDGET
                    * peer.fast_sets.allowed_out.len() as u64
                    * u64::from(self.layout.piece_length());
        if allowed_while_choked && !full {
            self.choked_budgets
                .spend(peer.addr.ip(), u64::from(block.len));
            peer.queued.push_back(block, now);
            self.actions.push_back(Action::Wake(key));
            return Ok(());
        }
        if peer.am_choking || full || !have {
            if peer.am_choking {
                if !peer.ever_unchoked && !peer.fast_sets.allows_out(block.piece) {
                    peer.unbidden_requests = true;
                }
                let crossing = peer
                    .choked_at
                    .is_some_and(|at| now.saturating_sub(at) < self.config.choke_grace);
                let (count, allowance) = if crossing {
                    let bound = self.config.max_queued_requests as u32;
                    (
                        &mut peer.requests_crossing_choke,
                        bound.saturating_add(self.config.choked_request_allowance),
                    )
                } else {
                    (
                        &mut peer.choked_requests,
                        self.config.choked_request_allowance,
                    )
                };
                *count += 1;
                if *count > allowance {
                    return Err(DropReason::RequestsWhileChoked);
                }
            }
            if peer.fast {
                Message::RejectRequest(block).encode(&mut peer.outbox);
                self.actions.push_back(Action::Wake(key));
            }
            return Ok(());
        }
        peer.queued.push_back(block, now);
        self.actions.push_back(Action::Wake(key));
        Ok(())
    }

    fn on_block(
        &mut self,
        now: Duration,
        key: PeerKey,
        piece: u32,
        offset: u32,
        len: usize,
    ) -> Result<Incoming, DropReason> {
        let block = BlockRef {
            piece,
            offset,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        };
        let fits = self.layout.piece(piece).is_some_and(|p| {
            offset
                .checked_add(block.len)
                .is_some_and(|end| end <= self.layout.piece_len(p))
        });
        if !fits {
            return Err(DropReason::BadBlock(block));
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(Incoming::Nothing);
        };
        peer.download.record(now, len as u64);
        peer.snubbed_since = None;
        self.download.record(now, len as u64);
        if let Some(i) = peer.sent_requests.iter().position(|(b, _)| *b == block) {
            let (_, sent) = peer.sent_requests.remove(i).unwrap_or((block, now));
            peer.sample_rtt(now.saturating_sub(sent));
        }
        let from = peer.addr;
        let outcome = self.picker.on_block(key, block);
        if !outcome.accepted {
            self.wasted += len as u64;
            self.fill_requests(now, key);
            return Ok(Incoming::Nothing);
        }
        // Only a block we wanted keeps a peer from being replaced: unrequested ones would
        // cost a squatter 16 KiB a slot every `replace_idle_after`.
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.last_payload = now;
        }
        self.blame.on_block(piece, offset, from);
        for other in outcome.cancel {
            if let Some(p) = self.peers.get_mut(&other) {
                if let Some(i) = p.sent_requests.iter().position(|(b, _)| *b == block) {
                    p.sent_requests.remove(i);
                }
                Message::Cancel(block).encode(&mut p.outbox);
                p.last_sent = now;
                self.actions.push_back(Action::Wake(other));
            }
        }
        self.fill_requests(now, key);
        Ok(Incoming::Block {
            piece_complete: outcome.piece_complete,
        })
    }

    /// Whether [`Torrent::piece_checked`] needs the SHA-1 of each 16 KiB block of the piece
    /// (rarely: a failed piece from several peers, and its later good copy), to tell which
    /// peer sent bad data.
    pub fn wants_block_digests(&self, piece: u32, ok: bool) -> bool {
        self.blame.wants_digests(piece, ok)
    }

    /// The I/O layer hashed a complete piece: `ok` if it matched and has been written.
    /// `block_digests`: per-block SHA-1 when [`Torrent::wants_block_digests`] asked, else
    /// empty.
    pub fn piece_checked(
        &mut self,
        now: Duration,
        piece: u32,
        ok: bool,
        block_digests: &[Sha1Digest],
    ) {
        let Some(index) = self.layout.piece(piece) else {
            return;
        };
        if !ok {
            self.wasted += u64::from(self.layout.piece_len(index));
            if self.picker.have().get(piece) {
                // A piece we had failed a check (its data went bad): nobody is served it
                // any more; under the Fast extension their requests are rejected.
                for peer in self.peers.values_mut() {
                    for block in peer.queued.cancel_piece(piece) {
                        if peer.fast {
                            Message::RejectRequest(block).encode(&mut peer.outbox);
                        }
                    }
                }
            }
            let contributors = self.picker.on_piece_failed(piece);
            self.web_seed_strikes(&contributors);
            let findings = self.blame.on_failed(piece, block_digests);
            self.punish(&findings);
            self.refill_all(now);
            return;
        }
        let findings = self.blame.on_verified(piece, block_digests);
        self.punish(&findings);
        self.picker.on_piece_verified(piece);
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            let interesting = {
                let peer = &self.peers[&key];
                peer.am_interested && self.picker.peer_is_interesting(&peer.has)
            };
            let peer = self.peers.get_mut(&key).expect("key from the map");
            Message::Have(piece).encode(&mut peer.outbox);
            peer.last_sent = now;
            if peer.am_interested && !interesting {
                peer.am_interested = false;
                Message::NotInterested.encode(&mut peer.outbox);
            }
            self.actions.push_back(Action::Wake(key));
        }
        if self.picker.is_done() && !self.done_reported {
            self.done_reported = true;
            self.actions.push_back(Action::Done);
            let seeds: Vec<PeerKey> = self
                .peers
                .iter()
                .filter(|(_, p)| p.has.is_full())
                .map(|(k, _)| *k)
                .collect();
            for key in seeds {
                self.drop_peer(key, DropReason::BothSeeds);
            }
        }
    }

    /// The next block to send to `key`, if it still wants one.
    pub fn next_serve(&mut self, key: PeerKey) -> Option<BlockRef> {
        self.next_serve_timed(key).map(|(block, _)| block)
    }

    /// [`Torrent::next_serve`], with the time (as given to [`Torrent::on_message`]) its
    /// request arrived: a writer measures service time from it.
    pub fn next_serve_timed(&mut self, key: PeerKey) -> Option<(BlockRef, Duration)> {
        let peer = self.peers.get_mut(&key)?;
        // While choked, only requests under its allowed-fast set are queued.
        let front = peer.queued.front()?;
        if peer.am_choking && !peer.fast_sets.allows_out(front.piece) {
            return None;
        }
        peer.queued.pop_front_timed()
    }

    /// The block [`Torrent::next_serve`] would give, left queued: a writer that must end
    /// its batch before that block's piece looks first.
    pub fn peek_serve(&self, key: PeerKey) -> Option<BlockRef> {
        let peer = self.peers.get(&key)?;
        let front = peer.queued.front()?;
        if peer.am_choking && !peer.fast_sets.allows_out(front.piece) {
            return None;
        }
        Some(front)
    }

    /// The requests `key` has queued, in order (now and then a cancelled one among them):
    /// what a writer may read from disk in one go with the block it serves next.
    pub fn queued_requests(&self, key: PeerKey) -> impl Iterator<Item = BlockRef> + '_ {
        self.peers
            .get(&key)
            .into_iter()
            .flat_map(|peer| peer.queued.iter().copied())
    }

    /// Pieces `key` has asked for most of, among its next queued requests: worth reading
    /// from disk whole, ahead of serving them. A peer that spreads a few requests over many
    /// pieces gets no read-ahead, which would only read pieces it takes one block of.
    pub fn upcoming_pieces(&self, key: PeerKey, max: usize) -> Vec<u32> {
        const SCAN: usize = 512;
        let Some(peer) = self.peers.get(&key) else {
            return Vec::new();
        };
        let mut counts: Vec<(u32, u32)> = Vec::new();
        for block in peer.queued.iter().take(SCAN) {
            if let Some((_, n)) = counts.iter_mut().find(|(p, _)| *p == block.piece) {
                *n += 1;
            } else if counts.len() < max * 4 {
                counts.push((block.piece, 1));
            }
        }
        counts
            .into_iter()
            .filter(|&(piece, n)| {
                let blocks = self.layout.piece(piece).map_or(u32::MAX, |p| {
                    crate::block::block_count(self.layout.piece_len(p))
                });
                2 * n >= blocks
            })
            .map(|(piece, _)| piece)
            .take(max)
            .collect()
    }

    /// A block's bytes went out to `key`.
    pub fn on_block_sent(&mut self, now: Duration, key: PeerKey, len: u32) {
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.upload.record(now, u64::from(len));
            peer.last_sent = now;
            peer.last_payload = now;
        }
        self.upload.record(now, u64::from(len));
    }

    /// Moves the peer's pending encoded messages into `out` (which the caller then writes).
    pub fn take_outbox(&mut self, key: PeerKey, out: &mut Vec<u8>) {
        if let Some(peer) = self.peers.get_mut(&key) {
            out.append(&mut peer.outbox);
        }
    }

    /// Periodic work; call about once a second.
    pub fn tick(&mut self, now: Duration) {
        let mut idle = Vec::new();
        let mut stalled = Vec::new();
        for (&key, peer) in &mut self.peers {
            let silent = now.saturating_sub(peer.last_received);
            if silent > self.config.idle_timeout {
                idle.push((key, DropReason::Idle(silent)));
                continue;
            }
            if peer.peer_interested || peer.am_interested {
                peer.last_interest = now;
            } else if now.saturating_sub(peer.last_interest) > self.config.uninterested_timeout {
                idle.push((
                    key,
                    DropReason::Uninterested(self.config.uninterested_timeout),
                ));
                continue;
            }
            if let Some(since) = peer.snubbed_since {
                // It claims pieces we want and delivers none of them: its slot is worth
                // more to a peer that serves (it could be lying about its pieces).
                let snubbing = now.saturating_sub(since);
                if peer.am_interested && snubbing > self.config.snubbed_timeout {
                    idle.push((key, DropReason::Snubbing(snubbing)));
                    continue;
                }
            }
            if let Some(&(_, sent)) = peer.sent_requests.front() {
                if now.saturating_sub(sent) > self.config.request_timeout {
                    stalled.push(key);
                }
            }
            if now.saturating_sub(peer.last_sent) > self.config.keepalive_interval {
                Message::KeepAlive.encode(&mut peer.outbox);
                peer.last_sent = now;
                self.actions.push_back(Action::Wake(key));
            }
        }
        for (key, reason) in idle {
            self.drop_peer(key, reason);
        }
        // Outboxes grow between ticks only by what the torrent sends everyone (HAVEs,
        // cancels), a few bytes per verified piece: checked here, and after each message
        // for the peer that sent it.
        let max = self.outbox_max();
        let not_reading: Vec<(PeerKey, usize)> = self
            .peers
            .iter()
            .filter(|(_, p)| p.outbox.len() > max)
            .map(|(&k, p)| (k, p.outbox.len()))
            .collect();
        for (key, bytes) in not_reading {
            self.drop_peer(key, DropReason::NotReading(bytes));
        }
        for key in stalled {
            // A snubbing peer's requests go back to the picker for others to take.
            if let Some(peer) = self.peers.get_mut(&key) {
                peer.sent_requests.clear();
                peer.snubbed_since.get_or_insert(now);
            }
            self.picker.on_peer_gone(key);
        }
        if self.mark_unused_unchokes(now) || now >= self.choker.next_rechoke() {
            self.rechoke(now);
        }
        self.pex_round(now);
        self.refill_all(now);
    }

    /// Marks the unchoked peers that have asked for nothing within `unchoke_unused_after`
    /// of their unchoke; true if there were any, so that their slots go to others now.
    fn mark_unused_unchokes(&mut self, now: Duration) -> bool {
        let after = self.config.unchoke_unused_after;
        let mut any = false;
        for peer in self.peers.values_mut() {
            let unused = !peer.am_choking
                && peer.peer_interested
                && !peer.requested_since_unchoke
                && !peer.left_unchoke_unused
                && now.saturating_sub(peer.unchoked_at) >= after;
            if unused {
                peer.left_unchoke_unused = true;
                any = true;
            }
        }
        any
    }

    /// When [`Torrent::tick`] next has timed work.
    pub fn next_tick(&self) -> Duration {
        let after = self.config.unchoke_unused_after;
        self.peers
            .values()
            .filter(|p| !p.am_choking && !p.requested_since_unchoke && !p.left_unchoke_unused)
            .map(|p| p.unchoked_at.saturating_add(after))
            .fold(self.choker.next_rechoke(), Duration::min)
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn stats(&self, now: Duration) -> TorrentStats {
        TorrentStats {
            peers: self.peers.len(),
            unchoked_by: self.peers.values().filter(|p| !p.peer_choking).count(),
            have_pieces: self.picker.have().count(),
            wanted_left: self.picker.wanted_left(),
            downloaded: self.download.total(),
            uploaded: self.upload.total(),
            download_rate: self.download.rate(now),
            upload_rate: self.upload.rate(now),
            wasted: self.wasted,
            outbox_bytes: self.peers.values().map(|p| p.outbox.len() as u64).sum(),
        }
    }

    /// One line per connected peer, for front ends' peer lists (as many as there are
    /// peers: bounded by the peer limit).
    pub fn peer_views(&self, now: Duration) -> Vec<PeerView> {
        let pieces = self.layout.piece_count().max(1);
        self.peers
            .iter()
            .map(|(&key, p)| PeerView {
                key,
                addr: p.addr,
                outgoing: p.outgoing,
                progress: f64::from(p.has.count()) / f64::from(pieces),
                am_choking: p.am_choking,
                am_interested: p.am_interested,
                peer_choking: p.peer_choking,
                peer_interested: p.peer_interested,
                download_rate: p.download.rate(now),
                upload_rate: p.upload.rate(now),
                downloaded: p.download.total(),
                uploaded: p.upload.total(),
            })
            .collect()
    }

    /// Bans convicted peers and those out of strikes, dropping them if connected.
    fn punish(&mut self, findings: &[Finding]) {
        for finding in findings {
            let (addr, reason) = match *finding {
                Finding::Strike(addr, n) if n >= self.config.hash_failures_to_ban => {
                    (addr, DropReason::HashFailures(n))
                }
                Finding::Strike(..) => continue,
                Finding::Guilty(addr) => (addr, DropReason::BadData),
            };
            if self.banned.len() < BANNED_MAX {
                self.banned.insert(BanKey::of(addr));
            }
            let keys: Vec<PeerKey> = self
                .peers
                .iter()
                .filter(|(_, p)| BanKey::of(p.addr) == BanKey::of(addr))
                .map(|(k, _)| *k)
                .collect();
            for key in keys {
                self.drop_peer(key, reason.clone());
            }
        }
    }

    fn drop_peer(&mut self, key: PeerKey, reason: DropReason) {
        if self.peers.contains_key(&key) {
            self.remove_peer(key);
            self.actions.push_back(Action::Disconnect(key, reason));
        }
    }

    /// The peer has new pieces: become interested if we want any, and request.
    fn after_peer_gained_pieces(&mut self, now: Duration, key: PeerKey) -> Result<(), DropReason> {
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        if self.picker.is_done() && peer.has.is_full() {
            return Err(DropReason::BothSeeds);
        }
        if !peer.am_interested && self.picker.peer_is_interesting(&peer.has) {
            peer.am_interested = true;
            Message::Interested.encode(&mut peer.outbox);
            peer.last_sent = now;
            self.actions.push_back(Action::Wake(key));
        }
        self.fill_requests(now, key);
        Ok(())
    }

    /// Tops up our requests to `key` to its pipeline depth.
    fn fill_requests(&mut self, now: Duration, key: PeerKey) {
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if !peer.am_interested || (peer.peer_choking && peer.fast_sets.allowed_in.is_empty()) {
            return;
        }
        let depth = if peer.snubbed_since.is_some() {
            1
        } else {
            request_queue_depth(peer.download.rate(now), peer.rtt)
                .min(peer.reqq().unwrap_or(extension::DEFAULT_REQQ))
        };
        let outstanding = self.picker.outstanding(key);
        if outstanding >= depth {
            return;
        }
        self.scratch.clear();
        let want = depth - outstanding;
        let have = self.picker.have();
        if peer.peer_choking {
            // Choked under the Fast extension: only the pieces it allows us (BEP 6).
            let Some(allowed) = FastSets::usable(&peer.fast_sets.allowed_in, &peer.has, have)
            else {
                return;
            };
            self.picker.pick(key, &allowed, want, &mut self.scratch);
        } else {
            // Its suggestions first, while we lack them (BEP 6); then the picker's choice.
            peer.fast_sets.suggested.retain(|&p| !have.get(p));
            let suggested = FastSets::usable(&peer.fast_sets.suggested, &peer.has, have);
            if let Some(suggested) = suggested {
                self.picker.pick(key, &suggested, want, &mut self.scratch);
            }
            let left = want.saturating_sub(self.scratch.len());
            if left > 0 {
                self.picker.pick(key, &peer.has, left, &mut self.scratch);
            }
        }
        if self.scratch.is_empty() {
            return;
        }
        for &block in &self.scratch {
            Message::Request(block).encode(&mut peer.outbox);
            peer.sent_requests.push_back((block, now));
        }
        peer.last_sent = now;
        self.actions.push_back(Action::Wake(key));
    }

    fn refill_all(&mut self, now: Duration) {
        let keys: Vec<PeerKey> = self.peers.keys().copied().collect();
        for key in keys {
            self.fill_requests(now, key);
        }
    }

    fn free_upload_slot(&self) -> bool {
        let slots = self.config.choker.upload_slots;
        slots == 0 || self.peers.values().filter(|p| !p.am_choking).count() < slots
    }

    /// Applies the choker's decision: UNCHOKE the chosen, CHOKE the rest.
    fn rechoke(&mut self, now: Duration) {
        let candidates: Vec<Candidate> = self
            .peers
            .iter()
            .map(|(&key, p)| Candidate {
                peer: key,
                interested: p.peer_interested,
                download_rate: p.download.rate(now),
                upload_rate: p.upload.rate(now),
                connected_at: p.connected_at,
                unchoked: !p.am_choking,
                left_unchoke_unused: p.left_unchoke_unused,
            })
            .collect();
        let seeding = self.picker.is_done();
        let unchoke: HashSet<PeerKey> = self
            .choker
            .rechoke(now, &candidates, seeding)
            .into_iter()
            .collect();
        let mut kept = Vec::new();
        for (&key, peer) in &mut self.peers {
            let should = unchoke.contains(&key);
            if should && peer.am_choking {
                peer.am_choking = false;
                peer.unchoked_at = now;
                peer.requested_since_unchoke = false;
                peer.ever_unchoked = true;
                peer.unbidden_requests = false;
                peer.choked_requests = 0;
                peer.requests_crossing_choke = 0;
                self.choked_budgets.reset(peer.addr.ip());
                Message::Unchoke.encode(&mut peer.outbox);
            } else if !should && !peer.am_choking {
                peer.am_choking = true;
                peer.choked_at = Some(now);
                Message::Choke.encode(&mut peer.outbox);
                // Requests under its allowed-fast set stay (BEP 6); the rest are refused.
                let sets = &peer.fast_sets;
                for (block, at) in peer.queued.drain() {
                    if sets.allows_out(block.piece) {
                        kept.push((block, at));
                    } else if peer.fast {
                        Message::RejectRequest(block).encode(&mut peer.outbox);
                    }
                }
                for (block, at) in kept.drain(..) {
                    peer.queued.push_back(block, at);
                }
            } else {
                continue;
            }
            peer.last_sent = now;
            self.actions.push_back(Action::Wake(key));
        }
    }
}
