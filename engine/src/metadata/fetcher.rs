//! Fetching a magnet link's info dict from peers, as a state machine on virtual time.
//!
//! It tracks: the peers that offer ut_metadata with the size each said (`metadata_size`),
//! one assembly of the metadata at a time (every 16 KiB piece missing, asked of one peer,
//! or got from an address), the requests in flight with when they went out, and the last
//! copy that failed its hash with who sent each piece.
//!
//! The caller feeds it each peer's extension handshake ([`MetadataFetcher::add_peer`]) and
//! ut_metadata messages ([`MetadataFetcher::on_message`]), calls
//! [`MetadataFetcher::handle_timeout`] at [`MetadataFetcher::poll_timeout`], and sends what
//! [`MetadataFetcher::poll_transmit`] gives. [`MetadataFetcher::poll_event`] says which peers
//! to drop and, once the SHA-1 of the whole info dict matches the info hash, hands over its
//! bytes.
//!
//! Sizes: peers may disagree about `metadata_size`. The assembly takes the size most peers
//! said; only peers that said it are asked, and a piece whose `total_size` differs from what
//! its sender said drops that sender. A size over [`FetchConfig::size_max`] drops the peer
//! with [`PeerFault::TooLarge`] and is remembered ([`MetadataFetcher::too_large`]) so the
//! caller can say why the fetch got nowhere.
//!
//! Blame: a copy that fails its hash with one contributor convicts it (banned, dropped). With
//! several, they become suspects (asked only when no one else can be), the failed copy is
//! kept, and the next copy is taken from one peer alone: if that fails its sender is
//! convicted; if it verifies, each piece of the failed copy that differs convicts the address
//! that sent it.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use thiserror::Error;

use super::message::{piece_count, piece_len, MetadataError, MetadataMessage, METADATA_PIECE_LEN};
use crate::extension::{Extension, TheirHandshake};
use crate::hash::{InfoHash, Sha1};

/// The default for [`FetchConfig::size_max`]: 8 MiB, about 400,000 piece hashes (a
/// 100 GiB torrent of 256 KiB pieces). libtorrent's default is 4 MiB in 1.x; a larger
/// info dict is almost always a hostile peer.
pub const METADATA_SIZE_MAX_DEFAULT: u32 = 8 << 20;

/// Addresses convicted of sending bad metadata, remembered at most; past it no more are
/// added (the peer is still dropped).
const BANNED_MAX: usize = 1024;

/// A peer as the caller numbers it (unique among the peers it has added).
pub type FetchKey = u64;

/// The fetcher's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchConfig {
    /// Largest info dict accepted, in bytes.
    pub size_max: u32,
    /// Requests in flight to one peer.
    pub requests_per_peer_max: usize,
    /// Requests in flight in all.
    pub requests_max: usize,
    /// A request unanswered this long goes to another peer, and its peer rests as long.
    pub request_timeout: Duration,
    /// A peer that rejected a request is not asked again for this long.
    pub reject_backoff: Duration,
    /// Peers tracked at most: past it [`MetadataFetcher::add_peer`] refuses with
    /// [`PeerFault::TooManyPeers`].
    pub peers_max: usize,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            size_max: METADATA_SIZE_MAX_DEFAULT,
            requests_per_peer_max: 4,
            requests_max: 32,
            request_timeout: Duration::from_secs(10),
            reject_backoff: Duration::from_secs(10),
            peers_max: 200,
        }
    }
}

/// Why a peer is of no use to the fetch, or was dropped from it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PeerFault {
    #[error("does not offer ut_metadata")]
    NoExtension,
    #[error("has no metadata to give (no metadata_size)")]
    NoMetadata,
    #[error("says the metadata is {size} bytes; the limit is {max}")]
    TooLarge { size: u64, max: u32 },
    #[error("bad ut_metadata message: {0}")]
    Malformed(#[from] MetadataError),
    #[error("said the metadata is {said} bytes, then sent a piece of {sent}")]
    TotalSizeChanged { said: u32, sent: u32 },
    #[error("sent metadata that does not match the info hash; banned")]
    BadMetadata,
    #[error("address is banned for sending bad metadata")]
    Banned,
    #[error("the fetch has {0} peers already")]
    TooManyPeers(usize),
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchEvent {
    /// Close this peer's connection; the fetcher has forgotten it.
    Drop(FetchKey, PeerFault),
    /// The verified info dict: its SHA-1 is the info hash. Comes once; the fetch is over.
    Done(Vec<u8>),
}

/// An extended message to send: `Message::Extended { id: ext_id, payload }` to `peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub peer: FetchKey,
    pub ext_id: u8,
    pub payload: Vec<u8>,
}

/// How far the fetch is, for a status line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchProgress {
    /// Peers that offer the metadata.
    pub peers: usize,
    /// The size being assembled, once chosen.
    pub size: Option<u32>,
    pub pieces_got: u32,
    pub pieces_total: u32,
}

#[derive(Debug)]
struct Peer {
    addr: SocketAddr,
    ext_id: u8,
    size: u32,
    /// Pieces asked of it, with when.
    outstanding: Vec<(u32, Duration)>,
    /// Not asked before this (after a reject or a timeout).
    resting_until: Duration,
    /// Sent a piece of a copy that failed while others did too.
    suspect: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Missing,
    Asked(FetchKey),
    Got(SocketAddr),
}

#[derive(Debug)]
struct Assembly {
    size: u32,
    buf: Vec<u8>,
    slots: Vec<Slot>,
    /// After a failure: the one peer this copy is taken from, while it stays usable.
    source: Option<FetchKey>,
}

/// A copy that failed its hash, kept to convict whoever sent its bad pieces.
#[derive(Debug)]
struct FailedCopy {
    size: u32,
    bytes: Vec<u8>,
    from: Vec<SocketAddr>,
}

/// One magnet link's metadata being fetched. See the module doc.
#[derive(Debug)]
pub struct MetadataFetcher {
    info_hash: InfoHash,
    config: FetchConfig,
    peers: BTreeMap<FetchKey, Peer>,
    assembly: Option<Assembly>,
    failed: Option<FailedCopy>,
    /// The next copy is to come from one peer (a copy from several failed).
    single_source: bool,
    banned: HashSet<SocketAddr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<FetchEvent>,
    done: bool,
    too_large: Option<u64>,
    failures: u32,
}

impl MetadataFetcher {
    pub fn new(info_hash: InfoHash, config: FetchConfig) -> Self {
        MetadataFetcher {
            info_hash,
            config,
            peers: BTreeMap::new(),
            assembly: None,
            failed: None,
            single_source: false,
            banned: HashSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            done: false,
            too_large: None,
            failures: 0,
        }
    }

    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// The verified metadata has been handed over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether `addr` was convicted of sending bad metadata.
    pub fn is_banned(&self, addr: SocketAddr) -> bool {
        self.banned.contains(&addr)
    }

    /// The largest oversize `metadata_size` a peer claimed, if any did.
    pub fn too_large(&self) -> Option<u64> {
        self.too_large
    }

    /// Copies that failed their hash so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    pub fn progress(&self) -> FetchProgress {
        let (size, got, total) = match &self.assembly {
            Some(a) => (
                Some(a.size),
                a.slots.iter().filter(|s| matches!(s, Slot::Got(_))).count() as u32,
                a.slots.len() as u32,
            ),
            None => (None, 0, 0),
        };
        FetchProgress {
            peers: self.peers.len(),
            size,
            pieces_got: got,
            pieces_total: total,
        }
    }

    /// A peer sent its extension handshake (or a later one). On `Err` it is of no use to
    /// the fetch and is not tracked; the caller closes it (or keeps it for other reasons).
    pub fn add_peer(
        &mut self,
        now: Duration,
        key: FetchKey,
        addr: SocketAddr,
        theirs: &TheirHandshake,
    ) -> Result<(), PeerFault> {
        let result = self.admit(key, addr, theirs);
        if result.is_err() {
            self.remove_peer(now, key);
        }
        result?;
        self.fill(now);
        Ok(())
    }

    fn admit(
        &mut self,
        key: FetchKey,
        addr: SocketAddr,
        theirs: &TheirHandshake,
    ) -> Result<(), PeerFault> {
        if self.is_banned(addr) {
            return Err(PeerFault::Banned);
        }
        let ext_id = theirs
            .extensions
            .id(Extension::UtMetadata)
            .ok_or(PeerFault::NoExtension)?;
        let size = theirs
            .metadata_size
            .filter(|&s| s > 0)
            .ok_or(PeerFault::NoMetadata)?;
        if size > u64::from(self.config.size_max) {
            self.too_large = self.too_large.max(Some(size));
            return Err(PeerFault::TooLarge {
                size,
                max: self.config.size_max,
            });
        }
        let size = size as u32;
        if let Some(peer) = self.peers.get_mut(&key) {
            peer.ext_id = ext_id;
            if peer.size != size {
                // A new size: what it was asked under the old one is void.
                peer.size = size;
                let asked: Vec<u32> = peer.outstanding.drain(..).map(|(p, _)| p).collect();
                self.release(key, &asked);
            }
            return Ok(());
        }
        if self.peers.len() >= self.config.peers_max {
            return Err(PeerFault::TooManyPeers(self.peers.len()));
        }
        self.peers.insert(
            key,
            Peer {
                addr,
                ext_id,
                size,
                outstanding: Vec::new(),
                resting_until: Duration::ZERO,
                suspect: false,
            },
        );
        Ok(())
    }

    /// The connection closed: its requests go to others.
    pub fn remove_peer(&mut self, now: Duration, key: FetchKey) {
        if let Some(peer) = self.peers.remove(&key) {
            let asked: Vec<u32> = peer.outstanding.iter().map(|&(p, _)| p).collect();
            self.release(key, &asked);
            if let Some(a) = &mut self.assembly {
                if a.source == Some(key) {
                    a.source = None;
                }
            }
            self.fill(now);
        }
    }

    /// A ut_metadata message from `key` (the payload of an extended message sent under our
    /// ut_metadata id). On `Err` the peer is forgotten; the caller closes it.
    pub fn on_message(
        &mut self,
        now: Duration,
        key: FetchKey,
        payload: &[u8],
    ) -> Result<(), PeerFault> {
        let result = self.handle(now, key, payload);
        if result.is_err() {
            self.remove_peer(now, key);
        }
        result
    }

    fn handle(&mut self, now: Duration, key: FetchKey, payload: &[u8]) -> Result<(), PeerFault> {
        let msg = MetadataMessage::decode(payload)?;
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        match msg {
            MetadataMessage::Request { piece } => {
                // We have nothing to give yet.
                self.transmits.push_back(Transmit {
                    peer: key,
                    ext_id: peer.ext_id,
                    payload: MetadataMessage::Reject { piece }.encode(),
                });
            }
            MetadataMessage::Reject { piece } => {
                if let Some(i) = peer.outstanding.iter().position(|&(p, _)| p == piece) {
                    peer.outstanding.remove(i);
                    peer.resting_until = now + self.config.reject_backoff;
                    self.release(key, &[piece]);
                    self.fill(now);
                }
            }
            MetadataMessage::Data {
                piece,
                total_size,
                data,
            } => {
                if total_size != peer.size {
                    return Err(PeerFault::TotalSizeChanged {
                        said: peer.size,
                        sent: total_size,
                    });
                }
                let Some(i) = peer.outstanding.iter().position(|&(p, _)| p == piece) else {
                    return Ok(()); // Late, after a timeout gave it to another: ignored.
                };
                peer.outstanding.remove(i);
                let addr = peer.addr;
                let Some(a) = &mut self.assembly else {
                    return Ok(());
                };
                if a.size != total_size || a.slots[piece as usize] != Slot::Asked(key) {
                    return Ok(());
                }
                let start = (piece * METADATA_PIECE_LEN) as usize;
                a.buf[start..start + data.len()].copy_from_slice(data);
                a.slots[piece as usize] = Slot::Got(addr);
                if a.slots.iter().all(|s| matches!(s, Slot::Got(_))) {
                    self.verify(now);
                } else {
                    self.fill(now);
                }
            }
        }
        Ok(())
    }

    /// Requests unanswered past the timeout go to other peers.
    pub fn handle_timeout(&mut self, now: Duration) {
        let timeout = self.config.request_timeout;
        let mut expired = Vec::new();
        for (&key, peer) in &mut self.peers {
            let before = peer.outstanding.len();
            peer.outstanding.retain(|&(piece, sent)| {
                let late = now.saturating_sub(sent) >= timeout;
                if late {
                    expired.push((key, piece));
                }
                !late
            });
            if peer.outstanding.len() < before {
                peer.resting_until = now + timeout;
            }
        }
        for (key, piece) in expired {
            self.release(key, &[piece]);
        }
        self.fill(now);
    }

    /// When [`MetadataFetcher::handle_timeout`] next has work: a request's deadline or a
    /// resting peer's return.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.done {
            return None;
        }
        self.peers
            .values()
            .flat_map(|p| {
                p.outstanding
                    .iter()
                    .map(|&(_, sent)| sent + self.config.request_timeout)
                    .chain((p.resting_until > Duration::ZERO).then_some(p.resting_until))
            })
            .min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<FetchEvent> {
        self.events.pop_front()
    }

    /// Pieces `key` was asked for are missing again.
    fn release(&mut self, key: FetchKey, pieces: &[u32]) {
        if let Some(a) = &mut self.assembly {
            for &piece in pieces {
                if let Some(slot) = a.slots.get_mut(piece as usize) {
                    if *slot == Slot::Asked(key) {
                        *slot = Slot::Missing;
                    }
                }
            }
        }
    }

    /// Whether `peer` may be asked now for a copy of `size` bytes.
    fn usable(&self, peer: &Peer, size: u32, now: Duration, suspects_too: bool) -> bool {
        peer.size == size
            && peer.resting_until <= now
            && peer.outstanding.len() < self.config.requests_per_peer_max
            && (suspects_too || !peer.suspect)
    }

    /// The size most peers said (non-suspects first), ties to the one said first.
    fn choose_size(&self) -> Option<u32> {
        let pick = |suspects: bool| {
            let mut votes: BTreeMap<u32, (usize, FetchKey)> = BTreeMap::new();
            for (&key, p) in &self.peers {
                if suspects || !p.suspect {
                    let v = votes.entry(p.size).or_insert((0, key));
                    v.0 += 1;
                }
            }
            votes
                .into_iter()
                .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.1 .1.cmp(&a.1 .1)))
                .map(|(size, _)| size)
        };
        pick(false).or_else(|| pick(true))
    }

    /// Asks for missing pieces while requests may go out.
    fn fill(&mut self, now: Duration) {
        if self.done {
            return;
        }
        // An assembly nothing has come in for, whose size no peer offers any more, starts
        // over with the size peers offer now.
        if let Some(a) = &self.assembly {
            let idle = a.slots.iter().all(|s| *s == Slot::Missing);
            if idle && !self.peers.values().any(|p| p.size == a.size) {
                self.assembly = None;
            }
        }
        if self.assembly.is_none() {
            let Some(size) = self.choose_size() else {
                return;
            };
            self.assembly = Some(Assembly {
                size,
                buf: vec![0; size as usize],
                slots: vec![Slot::Missing; piece_count(size) as usize],
                source: None,
            });
        }
        let Some(a) = &self.assembly else { return };
        let size = a.size;
        let mut in_flight: usize = self.peers.values().map(|p| p.outstanding.len()).sum();
        let any_clear = self
            .peers
            .values()
            .any(|p| p.size == size && !p.suspect && p.resting_until <= now);
        let suspects_too = !any_clear;
        let mut candidates: Vec<FetchKey> = self
            .peers
            .iter()
            .filter(|(_, p)| self.usable(p, size, now, suspects_too))
            .map(|(&k, _)| k)
            .collect();
        if self.single_source {
            let a = self.assembly.as_mut().expect("made above");
            let source = a
                .source
                .filter(|k| self.peers.get(k).is_some_and(|p| p.resting_until <= now))
                .or_else(|| candidates.first().copied());
            a.source = source;
            candidates.retain(|k| Some(*k) == source);
        }
        for key in candidates {
            loop {
                if in_flight >= self.config.requests_max {
                    return;
                }
                let peer = &self.peers[&key];
                if peer.outstanding.len() >= self.config.requests_per_peer_max {
                    break;
                }
                let Some(piece) = self.pick(peer.addr) else {
                    return;
                };
                let a = self.assembly.as_mut().expect("made above");
                a.slots[piece as usize] = Slot::Asked(key);
                let peer = self.peers.get_mut(&key).expect("a candidate");
                peer.outstanding.push((piece, now));
                in_flight += 1;
                self.transmits.push_back(Transmit {
                    peer: key,
                    ext_id: peer.ext_id,
                    payload: MetadataMessage::Request { piece }.encode(),
                });
            }
        }
    }

    /// A missing piece for the peer at `addr`: one whose failed copy came from someone
    /// else if there is such, else the first missing.
    fn pick(&self, addr: SocketAddr) -> Option<u32> {
        let a = self.assembly.as_ref()?;
        let missing = || {
            a.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == Slot::Missing)
                .map(|(i, _)| i as u32)
        };
        let other_sender = self
            .failed
            .as_ref()
            .filter(|f| f.size == a.size)
            .and_then(|f| missing().find(|&i| f.from[i as usize] != addr));
        other_sender.or_else(|| missing().next())
    }

    /// Every piece is in: check the whole against the info hash.
    fn verify(&mut self, now: Duration) {
        let a = self
            .assembly
            .take()
            .expect("verify runs on a full assembly");
        let from: Vec<SocketAddr> = a
            .slots
            .iter()
            .map(|s| match s {
                Slot::Got(addr) => *addr,
                _ => unreachable!("every slot is got"),
            })
            .collect();
        if Sha1::digest(&a.buf) == self.info_hash {
            self.done = true;
            if let Some(failed) = self.failed.take().filter(|f| f.size == a.size) {
                let mut guilty: Vec<SocketAddr> = Vec::new();
                for (i, sender) in failed.from.iter().enumerate() {
                    let start = i * METADATA_PIECE_LEN as usize;
                    let end = start + piece_len(a.size, i as u32) as usize;
                    if failed.bytes[start..end] != a.buf[start..end] && !guilty.contains(sender) {
                        guilty.push(*sender);
                    }
                }
                for addr in guilty {
                    self.convict(addr);
                }
            }
            self.peers.clear();
            self.transmits.clear();
            self.events.push_back(FetchEvent::Done(a.buf));
            return;
        }
        self.failures += 1;
        let mut senders: Vec<SocketAddr> = from.clone();
        senders.sort();
        senders.dedup();
        if let [only] = senders[..] {
            self.convict(only);
        } else {
            for peer in self.peers.values_mut() {
                if senders.contains(&peer.addr) {
                    peer.suspect = true;
                }
            }
            self.single_source = true;
        }
        self.failed = Some(FailedCopy {
            size: a.size,
            bytes: a.buf,
            from,
        });
        self.fill(now);
    }

    /// `addr` sent bad metadata: banned, and dropped wherever connected.
    fn convict(&mut self, addr: SocketAddr) {
        if self.banned.len() < BANNED_MAX {
            self.banned.insert(addr);
        }
        let keys: Vec<FetchKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.addr == addr)
            .map(|(&k, _)| k)
            .collect();
        for key in keys {
            if let Some(peer) = self.peers.remove(&key) {
                let asked: Vec<u32> = peer.outstanding.iter().map(|&(p, _)| p).collect();
                self.release(key, &asked);
            }
            self.events
                .push_back(FetchEvent::Drop(key, PeerFault::BadMetadata));
        }
    }
}
