//! Limits and timings of one torrent's swarm; defaults follow common client practice.

use std::time::Duration;

use crate::choker::ChokerConfig;

/// How a torrent treats its peers.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Connected peers at most; more are refused.
    pub max_peers: usize,
    /// Requests a peer may queue with us; further ones are refused (Fast) or ignored: a
    /// bound on what one peer can make us hold.
    pub max_queued_requests: usize,
    /// Requests a peer may send while we choke it before it is dropped. Some arrive
    /// legitimately after a choke crosses them on the wire.
    pub choked_request_allowance: u32,
    /// After we choke a peer we had unchoked, its requests for this long are refused but
    /// counted only against `max_queued_requests` (plus the allowance), not the
    /// allowance: a leecher with a deep pipeline answers every block that was in our
    /// socket buffer ahead of the choke with a new request, hundreds on a fast link
    /// (libtorrent likewise counts requests while choked only 2 s after its choke).
    pub choke_grace: Duration,
    /// Hash failures a peer may contribute to before it is banned from the torrent.
    pub hash_failures_to_ban: u32,
    /// A request unanswered this long goes back to the picker and the peer counts as snubbed.
    pub request_timeout: Duration,
    /// Drop a peer we want pieces from that has delivered no block for this long since a
    /// request of ours timed out: a peer that claims pieces and never serves them would
    /// otherwise hold its slot for ever with keep-alives (libtorrent's `peer_timeout` is
    /// of the same order). Slow peers deliver something well within it.
    pub snubbed_timeout: Duration,
    /// When the torrent is full, a new peer replaces the one that has moved no block
    /// either way for longest, if that is at least this long (libtorrent also makes room
    /// this way). Without it, peers that take every slot and then only wait (choked, or
    /// never reading) lock every newcomer out for as long as they stay.
    pub replace_idle_after: Duration,
    /// The same for a suspect peer (see `Peer::is_suspect`): one that asked for blocks it
    /// had no leave to ask for before we ever unchoked it, or that left an unchoke unused;
    /// such peers also go first. A peer that takes a slot, sends a few requests while
    /// choked or says it is interested and asks for nothing when unchoked, and then only
    /// waits (the flood's never-readers and squatters), gives way to a newcomer this soon,
    /// while peers that wait as the protocol asks keep the longer `replace_idle_after`.
    pub replace_suspect_after: Duration,
    /// An interested peer we unchoked that asks for nothing for this long is choked again
    /// and ranked behind every other peer until it uses an unchoke (a real peer asks
    /// within a round trip). Without it, peers that say they are interested and then only
    /// wait take a seeding torrent's upload slots in turn, each for a whole rotation,
    /// while leechers that would use them wait behind.
    pub unchoke_unused_after: Duration,
    /// Send a keep-alive after this long without sending anything.
    pub keepalive_interval: Duration,
    /// Drop a peer silent for this long.
    pub idle_timeout: Duration,
    /// Drop a peer when neither side has been interested for this long: keep-alives alone
    /// do not hold one of the torrent's slots for ever (libtorrent's inactivity timeout).
    pub uninterested_timeout: Duration,
    /// Bytes of encoded messages a peer's outbox may hold beyond its first piece list;
    /// past it the peer is dropped (it is not reading what we send, and each refused
    /// request it sends would add a reject).
    pub outbox_max_bytes: usize,
    /// Peer exchange (BEP 11) with peers that offer it; never on a private torrent.
    pub pex: bool,
    pub choker: ChokerConfig,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            max_peers: 80,
            max_queued_requests: 2000,
            choked_request_allowance: 32,
            choke_grace: Duration::from_secs(2),
            hash_failures_to_ban: 2,
            request_timeout: Duration::from_secs(20),
            snubbed_timeout: Duration::from_secs(120),
            replace_idle_after: Duration::from_secs(30),
            replace_suspect_after: Duration::from_secs(5),
            unchoke_unused_after: Duration::from_secs(3),
            keepalive_interval: Duration::from_secs(90),
            idle_timeout: Duration::from_secs(180),
            uninterested_timeout: Duration::from_secs(600),
            outbox_max_bytes: 256 * 1024,
            pex: true,
            choker: ChokerConfig::default(),
        }
    }
}
