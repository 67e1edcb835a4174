//! What one torrent knows about one connected peer.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use super::fast::FastSets;
use super::pex::PexPeer;
use super::serve_queue::ServeQueue;
use crate::rate::RateMeter;
use crate::{Bitfield, BlockRef};

/// The four BEP 3 flags plus what the peer has, what we asked it for and what it asked us for.
#[derive(Debug)]
pub(super) struct Peer {
    pub addr: SocketAddr,
    pub fast: bool,
    /// We connected out to it: `addr` is where it listens.
    pub outgoing: bool,
    pub am_choking: bool,
    pub am_interested: bool,
    pub peer_choking: bool,
    pub peer_interested: bool,
    pub has: Bitfield,
    /// Whether its bitfield (or HAVE ALL/NONE) may still arrive: only before any piece news.
    pub awaiting_bitfield: bool,
    /// Our requests to it, oldest first, with when each was sent: for round-trip time and
    /// time-outs. Mirrors the picker's record for this peer.
    pub sent_requests: VecDeque<(BlockRef, Duration)>,
    /// Its requests to us, not yet served. Bounded by `max_queued_requests` slots.
    pub queued: ServeQueue,
    /// Requests received while we choke it, since the last choke, past its grace.
    pub choked_requests: u32,
    /// When we last choked it after an unchoke: requests already on the wire, and those
    /// it sends for blocks that were in our socket buffer ahead of the choke, arrive
    /// within `SessionConfig::choke_grace` of it and are counted apart.
    pub choked_at: Option<Duration>,
    /// Requests received within the grace of the last choke.
    pub requests_crossing_choke: u32,
    /// We have unchoked it at least once on this connection.
    pub ever_unchoked: bool,
    /// Before we ever unchoked it, it asked for a block outside its allowed-fast set. No
    /// choke can have crossed such a request on the wire, so neither BEP 3 nor BEP 6
    /// explains it: a full torrent replaces such a peer sooner
    /// (`SessionConfig::replace_suspect_after`).
    pub unbidden_requests: bool,
    /// When we last unchoked it.
    pub unchoked_at: Duration,
    /// It has asked for a block since we last unchoked it.
    pub requested_since_unchoke: bool,
    /// It let an unchoke pass unused for `SessionConfig::unchoke_unused_after`: the choker
    /// ranks it last until it uses one.
    pub left_unchoke_unused: bool,
    /// Since when it has let requests time out without delivering a block: it gets one
    /// request at a time until it delivers again, and is dropped after
    /// `SessionConfig::snubbed_timeout`.
    pub snubbed_since: Option<Duration>,
    pub download: RateMeter,
    pub upload: RateMeter,
    /// Its extension handshake (BEP 10), once it sent one: `reqq`, its extension ids.
    pub extensions: Option<crate::extension::TheirHandshake>,
    /// ut_metadata requests we answered on this connection (bounded, see `extension`).
    pub metadata_answered: u32,
    /// Smoothed round-trip time of our requests.
    pub rtt: Duration,
    pub connected_at: Duration,
    pub last_received: Duration,
    pub last_sent: Duration,
    /// When a block last moved either way (or when it connected): a full torrent replaces
    /// the peer idle longest (see `Torrent::add_peer`).
    pub last_payload: Duration,
    /// The last tick at which either side was interested (or when it connected).
    pub last_interest: Duration,
    /// Encoded messages waiting for the connection's writer. Bounded by
    /// `SessionConfig::outbox_max_bytes` past the first piece list: beyond it the peer is
    /// dropped as not reading (checked after each of its messages and at each tick).
    pub outbox: Vec<u8>,
    /// Allowed-fast and suggested pieces, both ways (BEP 6); empty without the Fast
    /// extension.
    pub fast_sets: FastSets,
    /// What we told it through PEX, and when we next do (see `pex`).
    pub pex: PexPeer,
}

impl Peer {
    pub fn new(addr: SocketAddr, fast: bool, pieces: u32, now: Duration) -> Self {
        Peer {
            addr,
            fast,
            outgoing: false,
            am_choking: true,
            am_interested: false,
            peer_choking: true,
            peer_interested: false,
            has: Bitfield::empty(pieces),
            awaiting_bitfield: true,
            sent_requests: VecDeque::new(),
            queued: ServeQueue::default(),
            choked_requests: 0,
            choked_at: None,
            requests_crossing_choke: 0,
            ever_unchoked: false,
            unbidden_requests: false,
            unchoked_at: now,
            requested_since_unchoke: false,
            left_unchoke_unused: false,
            snubbed_since: None,
            download: RateMeter::new(),
            upload: RateMeter::new(),
            extensions: None,
            metadata_answered: 0,
            rtt: Duration::from_millis(100),
            connected_at: now,
            last_received: now,
            last_sent: now,
            last_payload: now,
            last_interest: now,
            outbox: Vec::new(),
            fast_sets: FastSets::default(),
            pex: PexPeer::default(),
        }
    }

    /// It asked for blocks it had no leave to ask for, or it left an unchoke unused: a
    /// full torrent replaces it first, after `SessionConfig::replace_suspect_after`.
    pub fn is_suspect(&self) -> bool {
        self.unbidden_requests || self.left_unchoke_unused
    }

    /// Where it accepts connections, if we know: its address if we dialled it, else its
    /// address with the port its extension handshake gave (`p`).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        if self.outgoing {
            return Some(self.addr);
        }
        let port = self.extensions.as_ref()?.listen_port?;
        Some(SocketAddr::new(self.addr.ip(), port))
    }

    /// How many requests it queues, from its extension handshake.
    pub fn reqq(&self) -> Option<usize> {
        self.extensions.as_ref().and_then(|e| e.reqq)
    }

    /// Folds a round-trip sample into the estimate (RFC 6298's 1/8 gain).
    pub fn sample_rtt(&mut self, sample: Duration) {
        self.rtt = (self.rtt * 7 + sample) / 8;
    }
}
