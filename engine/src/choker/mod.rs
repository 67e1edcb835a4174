//! Choking (BEP 3): which peers we upload to.
//!
//! Every `rechoke_interval` the caller hands the [`Choker`] a snapshot of its peers and gets
//! back the complete set to unchoke; it diffs that against what it last sent and emits
//! CHOKE / UNCHOKE. Upload slots are few on purpose: a handful of peers at full speed finish
//! pieces and trade them on, where hundreds at a trickle would not.
//!
//! - Regular slots (`upload_slots - 1`) go to interested peers on merit: while leeching,
//!   tit-for-tat on what they give us; while seeding, the fastest takers, rotated round-robin
//!   so nobody waits forever (`line.rs`).
//! - One optimistic slot, rotated every `optimistic_interval`, goes to a random interested
//!   peer outside the regular set, so unproven peers (and newcomers with nothing to trade yet)
//!   get a chance to show their speed (`optimistic.rs`).
//!
//! All randomness derives from the seed and the round number, never from the order of the
//! candidate list: the same inputs and seed always give the same answer.

mod line;
mod optimistic;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::rng::scramble;

use line::Line;
use optimistic::Optimistic;

pub use line::SEEDING_QUOTA_ROUNDS;

/// How the caller names a peer connection (unique among live connections).
pub type PeerKey = u32;

/// Slot count and timing of the choker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChokerConfig {
    /// Peers unchoked at once, the optimistic slot included; 0 means no limit.
    pub upload_slots: usize,
    /// Time between regular rechokes.
    pub rechoke_interval: Duration,
    /// Time an optimistic unchoke lasts before the slot moves on.
    pub optimistic_interval: Duration,
}

impl Default for ChokerConfig {
    /// The classic BitTorrent values: 4 slots, rechoke every 10 s, new optimistic every 30 s.
    fn default() -> Self {
        ChokerConfig {
            upload_slots: 4,
            rechoke_interval: Duration::from_secs(10),
            optimistic_interval: Duration::from_secs(30),
        }
    }
}

/// One connected peer as the choker sees it at a rechoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    pub peer: PeerKey,
    /// They want data from us; only interested peers are ever unchoked.
    pub interested: bool,
    /// Bytes per second we receive from them.
    pub download_rate: u64,
    /// Bytes per second we send them.
    pub upload_rate: u64,
    /// When the connection was made (same clock as `now`).
    pub connected_at: Duration,
    /// We currently have them unchoked.
    pub unchoked: bool,
    /// They left an unchoke unused (asked for nothing while unchoked): they rank behind
    /// every other peer, and the optimistic slot passes them over while anyone else waits.
    /// A peer holding a slot it does not use keeps it from a peer that would.
    pub left_unchoke_unused: bool,
}

/// Decides, round after round, which peers we upload to.
#[derive(Debug, Clone)]
pub struct Choker {
    config: ChokerConfig,
    seed: u64,
    /// Calls to `rechoke` so far: each gets its own random draws.
    round: u64,
    next_regular: Duration,
    line: Line,
    optimistic: Optimistic,
}

impl Choker {
    /// A choker with no history; its first rechoke is due at once.
    pub fn new(config: ChokerConfig, seed: u64) -> Choker {
        Choker {
            config,
            seed,
            round: 0,
            next_regular: Duration::ZERO,
            line: Line::default(),
            optimistic: Optimistic::default(),
        }
    }

    /// A new slot count (a config reload), used from the next round on, which comes at
    /// once.
    pub fn set_upload_slots(&mut self, slots: usize) {
        self.config.upload_slots = slots;
        self.next_regular = Duration::ZERO;
    }

    /// When `rechoke` should next be called: the next regular round, or the end of the
    /// current optimistic turn if that comes first.
    pub fn next_rechoke(&self) -> Duration {
        match self.optimistic.rotation_due() {
            Some(at) => self.next_regular.min(at),
            None => self.next_regular,
        }
    }

    /// The peer holding the optimistic slot, if any.
    pub fn optimistic(&self) -> Option<PeerKey> {
        self.optimistic.peer()
    }

    /// The complete set of peers to have unchoked from `now` on, sorted by key.
    ///
    /// Call it when [`next_rechoke`](Self::next_rechoke) comes due; calling it early (say,
    /// because an unchoked peer left) is fine: vacated slots are refilled, but the round-robin
    /// quota only counts rounds that were due, and the optimistic peer keeps its turn.
    /// Candidates listed twice count once (the first entry wins).
    pub fn rechoke(
        &mut self,
        now: Duration,
        candidates: &[Candidate],
        seeding: bool,
    ) -> Vec<PeerKey> {
        self.round = self.round.wrapping_add(1);
        let draw = Draw::new(self.seed, self.round);
        let due = now >= self.next_regular;
        if due {
            self.next_regular = now.saturating_add(self.config.rechoke_interval);
        }

        let interested = interested_peers(candidates);
        self.line.admit(&interested, &draw);
        let regular: Vec<PeerKey> = match self.config.upload_slots {
            0 => interested.iter().map(|c| c.peer).collect(),
            slots => {
                let mut ranked = self.line.rank(&interested, seeding, &draw);
                ranked.truncate(slots - 1);
                ranked
            }
        };
        self.line.settle(&regular, due, &draw);

        let optimistic = if self.config.upload_slots == 0 {
            self.optimistic = Optimistic::default();
            None
        } else {
            self.optimistic
                .update(now, &interested, &regular, &self.config, &draw)
        };

        let mut unchoke = regular;
        unchoke.extend(optimistic);
        unchoke.sort_unstable();
        unchoke
    }
}

/// The interested candidates, sorted by key, one entry per key.
fn interested_peers(candidates: &[Candidate]) -> Vec<&Candidate> {
    let mut interested: Vec<&Candidate> = candidates.iter().filter(|c| c.interested).collect();
    interested.sort_by_key(|c| c.peer);
    interested.dedup_by_key(|c| c.peer);
    interested
}

/// Seeded randomness for one rechoke round: a function of (seed, round, what is drawn for),
/// so draws do not depend on the order candidates arrive in.
#[derive(Debug, Clone, Copy)]
struct Draw {
    key: u64,
}

impl Draw {
    /// Keeps the optimistic draw apart from per-peer draws (peer keys are below 2^32).
    const OPTIMISTIC_SALT: u64 = 0xA5A5_A5A5_0000_0000;

    fn new(seed: u64, round: u64) -> Draw {
        Draw {
            key: scramble(seed ^ scramble(round)),
        }
    }

    /// A random rank for `peer`, used to break ties.
    fn for_peer(&self, peer: PeerKey) -> u64 {
        scramble(self.key ^ u64::from(peer))
    }

    /// The random number behind this round's optimistic pick.
    fn optimistic(&self) -> u64 {
        scramble(self.key ^ Self::OPTIMISTIC_SALT)
    }
}
