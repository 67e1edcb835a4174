//! The optimistic unchoke: one slot that ignores merit.
//!
//! Tit-for-tat alone never tries a peer it is not already trading with, and a newcomer has
//! nothing to trade. So one interested peer outside the regular set, drawn at random, is
//! unchoked for a whole `optimistic_interval`; if it turns out to be fast, the regular
//! ranking picks it up. Newcomers (connected within two intervals) are drawn three times as
//! often, as in the BitTorrent spec and mainline client, so they get a first piece quickly.

use std::time::Duration;

use super::{Candidate, ChokerConfig, Draw, PeerKey};

/// How much likelier a newly connected peer is to be drawn.
const NEWCOMER_WEIGHT: u64 = 3;

/// Who holds the optimistic slot and until when.
#[derive(Debug, Clone, Default)]
pub(super) struct Optimistic {
    peer: Option<PeerKey>,
    rotate_at: Duration,
}

impl Optimistic {
    pub(super) fn peer(&self) -> Option<PeerKey> {
        self.peer
    }

    /// When the current turn ends; `None` with no optimistic peer (the next rechoke, whenever
    /// it is, will try to fill the slot).
    pub(super) fn rotation_due(&self) -> Option<Duration> {
        self.peer.map(|_| self.rotate_at)
    }

    /// Keeps the optimistic peer until its turn ends, unless it left, lost interest, was
    /// promoted to a regular slot or left its unchoke unused; otherwise draws a new one, preferring anyone but the
    /// outgoing peer. `interested` is sorted by key.
    pub(super) fn update(
        &mut self,
        now: Duration,
        interested: &[&Candidate],
        regular: &[PeerKey],
        config: &ChokerConfig,
        draw: &Draw,
    ) -> Option<PeerKey> {
        let mut eligible: Vec<&Candidate> = interested
            .iter()
            .filter(|c| !regular.contains(&c.peer))
            .copied()
            .collect();
        // Peers that left an unchoke unused get another only when nobody else waits.
        if eligible.iter().any(|c| !c.left_unchoke_unused) {
            eligible.retain(|c| !c.left_unchoke_unused);
        }
        let current = self.peer;
        let current_eligible = eligible.iter().any(|c| Some(c.peer) == current);
        if current_eligible && now < self.rotate_at {
            return current;
        }

        let others: Vec<&Candidate> = eligible
            .iter()
            .filter(|c| Some(c.peer) != current)
            .copied()
            .collect();
        let pool = if others.is_empty() { eligible } else { others };
        let newcomer_window = config.optimistic_interval.saturating_mul(2);
        self.peer = weighted_pick(&pool, now, newcomer_window, draw.optimistic());
        if self.peer.is_some() {
            self.rotate_at = now.saturating_add(config.optimistic_interval);
        }
        self.peer
    }
}

/// Draws one of `pool` with probability proportional to its weight, using `random`.
fn weighted_pick(
    pool: &[&Candidate],
    now: Duration,
    newcomer_window: Duration,
    random: u64,
) -> Option<PeerKey> {
    let weight = |c: &Candidate| {
        if now.saturating_sub(c.connected_at) < newcomer_window {
            NEWCOMER_WEIGHT
        } else {
            1
        }
    };
    let total: u64 = pool.iter().map(|c| weight(c)).sum();
    if total == 0 {
        return None;
    }
    let mut point = random % total;
    for c in pool {
        let w = weight(c);
        if point < w {
            return Some(c.peer);
        }
        point -= w;
    }
    None
}
