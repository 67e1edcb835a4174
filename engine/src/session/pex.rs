//! Peer exchange (BEP 11) on a running torrent: what we tell each peer of the others, and
//! what we take from what it tells us.
//!
//! What we send: the listen addresses of our connected peers whose listen address we know
//! (we connected out to them, or their extension handshake gave `p`), as a diff against
//! what we last told that peer. The first message goes [`FIRST_DELAY`] after its extension
//! handshake offers ut_pex, later ones at most every [`SEND_INTERVAL`]; each names at most
//! [`SEND_MAX`] added and [`SEND_MAX`] dropped addresses (libtorrent's bounds), the rest
//! waiting for the next round. Flags: seed (0x02) for peers with every piece, reachable
//! (0x10) for peers we connected out to. A peer is never told of itself.
//!
//! What we take: the added addresses of a peer's message (cut at the codec's bound) go out
//! as [`Action::PexPeers`] for the shard's address book; dropped ones are ignored (the
//! book's back-off deals with dead addresses). A peer's message that arrives sooner than
//! [`RECEIVE_INTERVAL_MIN`] after the last one we took is ignored, not punished: clients
//! differ in how they round a minute. Only a payload that is not bencode drops the peer.
//!
//! None of this happens on a private torrent (BEP 27) or with PEX turned off: ut_pex is
//! left out of our extension handshake, nothing is sent and what arrives is ignored.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::{Action, DropReason, PeerKey, Torrent};
use crate::extension::Extension;
use crate::pex::{dialable, PexFlags, PexMessage};
use crate::wire::Message;

/// How long after a peer's extension handshake our first PEX message goes.
pub const FIRST_DELAY: Duration = Duration::from_secs(2);
/// The least time between two PEX messages to one peer.
pub const SEND_INTERVAL: Duration = Duration::from_secs(60);
/// Added (and, separately, dropped) addresses per message we send, at most.
pub const SEND_MAX: usize = 50;
/// A peer's PEX messages closer together than this are ignored.
pub const RECEIVE_INTERVAL_MIN: Duration = Duration::from_secs(45);
/// Addresses we remember having told one peer, at most. Each round adds at most
/// [`SEND_MAX`], all connected peers then; past this bound no more are added until dropped
/// ones make room (which happens [`SEND_MAX`] a round).
const TOLD_MAX: usize = 1000;

/// One peer's PEX state.
#[derive(Debug, Default)]
pub(super) struct PexPeer {
    /// When our next message to it is due; `None` until it offers ut_pex.
    next_send: Option<Duration>,
    /// What we told it and have not taken back since. Bounded by [`TOLD_MAX`].
    told: HashSet<SocketAddr>,
    /// When we last took a message of its.
    last_taken: Option<Duration>,
    /// Its messages ignored for coming too soon (for tests and logs).
    pub ignored: u32,
}

/// One round's message to a peer: what is connected now against what it was told.
/// `current` holds each connected peer's listen address once.
pub(super) fn diff(
    current: &[(SocketAddr, PexFlags)],
    told: &HashSet<SocketAddr>,
    itself: Option<SocketAddr>,
) -> PexMessage {
    let room = TOLD_MAX.saturating_sub(told.len());
    let added = current
        .iter()
        .filter(|(a, _)| Some(*a) != itself && !told.contains(a))
        .take(SEND_MAX.min(room))
        .copied()
        .collect();
    let now: HashSet<SocketAddr> = current.iter().map(|(a, _)| *a).collect();
    let mut dropped: Vec<SocketAddr> = told
        .iter()
        .filter(|a| !now.contains(a) || Some(**a) == itself)
        .copied()
        .collect();
    // A HashSet's order is arbitrary: sort so a round is repeatable.
    dropped.sort_unstable();
    dropped.truncate(SEND_MAX);
    PexMessage { added, dropped }
}

impl Torrent {
    /// Whether this torrent speaks PEX: turned on, and not private.
    pub(super) fn pex_enabled(&self) -> bool {
        self.config.pex && !self.private
    }

    /// A peer's extension handshake arrived: if it now offers ut_pex, our first message is
    /// due soon.
    pub(super) fn pex_on_handshake(&mut self, now: Duration, key: PeerKey) {
        let enabled = self.pex_enabled();
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        let offers = peer
            .extensions
            .as_ref()
            .and_then(|e| e.extensions.id(Extension::UtPex))
            .is_some();
        if !enabled || !offers {
            peer.pex.next_send = None;
        } else if peer.pex.next_send.is_none() {
            peer.pex.next_send = Some(now + FIRST_DELAY);
        }
    }

    /// A ut_pex message from `key`.
    pub(super) fn pex_on_message(
        &mut self,
        now: Duration,
        key: PeerKey,
        payload: &[u8],
    ) -> Result<(), DropReason> {
        if !self.pex_enabled() {
            return Ok(());
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        if let Some(last) = peer.pex.last_taken {
            if now.saturating_sub(last) < RECEIVE_INTERVAL_MIN {
                peer.pex.ignored = peer.pex.ignored.saturating_add(1);
                return Ok(());
            }
        }
        let msg = PexMessage::decode(payload)?;
        peer.pex.last_taken = Some(now);
        let learned: Vec<SocketAddr> = msg
            .added
            .into_iter()
            .map(|(a, _)| a)
            .filter(|&a| dialable(a))
            .collect();
        if !learned.is_empty() {
            self.actions.push_back(Action::PexPeers(learned));
        }
        Ok(())
    }

    /// The listen addresses of our connected peers, with their flags, each once.
    fn pex_current(&self) -> Vec<(SocketAddr, PexFlags)> {
        let mut seen = HashSet::new();
        self.peers
            .values()
            .filter_map(|p| {
                let addr = p.listen_addr()?;
                let mut flags = 0;
                if p.has.is_full() {
                    flags |= PexFlags::SEED;
                }
                if p.outgoing {
                    flags |= PexFlags::OUTGOING;
                }
                seen.insert(addr).then_some((addr, PexFlags(flags)))
            })
            .collect()
    }

    /// Sends every peer whose turn has come its diff. Part of [`Torrent::tick`].
    pub(super) fn pex_round(&mut self, now: Duration) {
        if !self.pex_enabled() {
            return;
        }
        let due = self
            .peers
            .values()
            .any(|p| p.pex.next_send.is_some_and(|t| t <= now));
        if !due {
            return;
        }
        let current = self.pex_current();
        for (&key, peer) in &mut self.peers {
            if peer.pex.next_send.is_none_or(|t| t > now) {
                continue;
            }
            let Some(id) = peer
                .extensions
                .as_ref()
                .and_then(|e| e.extensions.id(Extension::UtPex))
            else {
                peer.pex.next_send = None;
                continue;
            };
            peer.pex.next_send = Some(now + SEND_INTERVAL);
            let msg = diff(&current, &peer.pex.told, peer.listen_addr());
            if msg.added.is_empty() && msg.dropped.is_empty() {
                continue;
            }
            for a in &msg.dropped {
                peer.pex.told.remove(a);
            }
            peer.pex.told.extend(msg.added.iter().map(|(a, _)| *a));
            Message::Extended {
                id,
                payload: &msg.encode(),
            }
            .encode(&mut peer.outbox);
            peer.last_sent = now;
            self.actions.push_back(Action::Wake(key));
        }
    }

    /// How many of `key`'s PEX messages were ignored for coming too soon.
    pub fn pex_ignored(&self, key: PeerKey) -> u32 {
        self.peers.get(&key).map_or(0, |p| p.pex.ignored)
    }
}
