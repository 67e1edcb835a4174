//! The line for regular upload slots: who holds one, for how long, and who waits behind whom.
//!
//! While leeching the ranking is pure tit-for-tat: whoever gives us the most. While seeding
//! nobody gives us anything, so peers are ranked by how fast they take, but a fast peer must
//! not keep a slot forever (libtorrent's round-robin seeding choker): after
//! [`SEEDING_QUOTA_ROUNDS`] due rounds in a slot it drops behind everyone else, and once out
//! it re-queues at the back, behind every peer that was already waiting.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use super::{Candidate, Draw, PeerKey};

/// Due rechoke rounds a peer may hold a regular slot while seeding before peers who wait go
/// first: 3 rounds is 30 s at the default interval, as long as one optimistic turn.
pub const SEEDING_QUOTA_ROUNDS: u32 = 3;

/// One interested peer's place in the line.
#[derive(Debug, Clone, Copy)]
struct Standing {
    /// Position in the line: lower waited longer. Handed out in increasing order.
    ticket: u64,
    /// Holds a regular slot.
    holding: bool,
    /// Due rounds held in the current stretch (0 when not holding).
    rounds: u32,
    /// Lost a slot and re-queued at the back (as opposed to never having had one).
    requeued: bool,
}

/// Standings of the currently interested peers.
#[derive(Debug, Clone, Default)]
pub(super) struct Line {
    standings: BTreeMap<PeerKey, Standing>,
    next_ticket: u64,
}

impl Line {
    /// Forgets peers that left or lost interest, and queues newcomers at the back, in random
    /// order among themselves. `interested` is sorted by key.
    pub(super) fn admit(&mut self, interested: &[&Candidate], draw: &Draw) {
        self.standings
            .retain(|peer, _| interested.binary_search_by_key(peer, |c| c.peer).is_ok());
        let mut newcomers: Vec<PeerKey> = interested
            .iter()
            .map(|c| c.peer)
            .filter(|peer| !self.standings.contains_key(peer))
            .collect();
        newcomers.sort_by_key(|peer| draw.for_peer(*peer));
        for peer in newcomers {
            let ticket = self.take_ticket();
            self.standings.insert(
                peer,
                Standing {
                    ticket,
                    holding: false,
                    rounds: 0,
                    requeued: false,
                },
            );
        }
    }

    /// All of `interested`, best claim to a regular slot first.
    pub(super) fn rank(
        &self,
        interested: &[&Candidate],
        seeding: bool,
        draw: &Draw,
    ) -> Vec<PeerKey> {
        let mut ranked: Vec<(RankKey, PeerKey)> = if seeding {
            let first_waiting = self
                .standings
                .values()
                .filter(|s| !s.holding && !s.requeued)
                .map(|s| s.ticket)
                .min()
                .unwrap_or(u64::MAX);
            interested
                .iter()
                .map(|c| (self.seeding_key(c, first_waiting), c.peer))
                .collect()
        } else {
            interested
                .iter()
                .map(|c| (leeching_key(c, draw), c.peer))
                .collect()
        };
        ranked.sort_unstable();
        ranked.into_iter().map(|(_, peer)| peer).collect()
    }

    /// Records the outcome of a round: `regular` now hold slots, everyone else waits. A due
    /// round counts towards the holders' quota; peers that lost their slot go to the back.
    pub(super) fn settle(&mut self, regular: &[PeerKey], due: bool, draw: &Draw) {
        let mut dropped = Vec::new();
        for (peer, standing) in &mut self.standings {
            let chosen = regular.contains(peer);
            if chosen {
                if !standing.holding {
                    standing.holding = true;
                    standing.rounds = 0;
                    standing.requeued = false;
                }
                if due {
                    standing.rounds = standing.rounds.saturating_add(1);
                }
            } else if standing.holding {
                dropped.push(*peer);
            }
        }
        dropped.sort_by_key(|peer| draw.for_peer(*peer));
        for peer in dropped {
            let ticket = self.take_ticket();
            if let Some(standing) = self.standings.get_mut(&peer) {
                *standing = Standing {
                    ticket,
                    holding: false,
                    rounds: 0,
                    requeued: true,
                };
            }
        }
    }

    /// Seeding: within quota before out of it, then fastest taker, then longest waiting.
    /// A re-queued peer counts as out of quota while anyone queued before it still waits, so
    /// the rate it kept from its last turn cannot carry it past them.
    fn seeding_key(&self, c: &Candidate, first_waiting: u64) -> RankKey {
        let Some(s) = self.standings.get(&c.peer) else {
            return (
                c.left_unchoke_unused,
                true,
                Reverse(c.upload_rate),
                false,
                u64::MAX,
            );
        };
        let spent = if s.holding {
            s.rounds >= SEEDING_QUOTA_ROUNDS
        } else {
            s.requeued && first_waiting < s.ticket
        };
        (
            c.left_unchoke_unused,
            spent,
            Reverse(c.upload_rate),
            false,
            s.ticket,
        )
    }

    fn take_ticket(&mut self) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket = self.next_ticket.saturating_add(1);
        ticket
    }
}

/// Sorts ascending: lower is a better claim to a slot. Fields: left an unchoke unused, out
/// of quota, rate, not yet unchoked, tie-break (line position or a random draw).
type RankKey = (bool, bool, Reverse<u64>, bool, u64);

/// Leeching: tit-for-tat on what they give us; on a tie, keep whoever is already unchoked
/// (no needless CHOKE/UNCHOKE churn), then a random order.
fn leeching_key(c: &Candidate, draw: &Draw) -> RankKey {
    (
        c.left_unchoke_unused,
        false,
        Reverse(c.download_rate),
        !c.unchoked,
        draw.for_peer(c.peer),
    )
}
