//! What a run did, in figures: for the CLI's lines and for tests that want more than a pass.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use ccbt_engine::session::DropReason;

use crate::events::NodeId;
use crate::scenario::{Role, Scenario, Script};

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub seed: u64,
    pub nodes: usize,
    pub pieces: u64,
    pub events: u64,
    pub simulated: Duration,
    pub wall: Duration,
    pub dials: u64,
    pub connections: u64,
    pub segments: u64,
    pub losses: u64,
    pub cuts: u64,
    pub read_errors: u64,
    pub disk_full: u64,
    pub failed_pieces: u64,
    pub pex_learned: u64,
    /// Dials refused, by reason.
    pub refusals: BTreeMap<String, u64>,
    /// Peers the engines dropped, by reason.
    pub drops: BTreeMap<String, u64>,
    /// (who banned, whom, its role).
    pub bans: Vec<(NodeId, NodeId, Role)>,
    /// Liar and bad-disk nodes that corrupted two or more pieces at a node and were
    /// banned by it.
    pub liars_caught: u64,
    /// Writers dropped at the write deadline, and how many of them were to never-readers.
    pub stalled: u64,
    pub stalled_never_readers: u64,
    /// Most bytes one connection held for a never-reader when it was dropped.
    pub never_reader_held_max: u64,
    /// Most bytes of pieces under way one node ever held.
    pub buffered_max: u64,
}

impl Report {
    pub fn new(sc: &Scenario) -> Report {
        Report {
            seed: sc.seed,
            nodes: sc.roles.len(),
            pieces: sc.content_len.div_ceil(u64::from(sc.piece_len)),
            ..Report::default()
        }
    }

    pub fn dropped(&mut self, reason: &DropReason) {
        *self.drops.entry(reason_name(reason)).or_default() += 1;
    }

    pub fn refused(&mut self, reason: Option<&DropReason>) {
        let name = reason.map_or_else(|| "paused".to_string(), reason_name);
        *self.refusals.entry(name).or_default() += 1;
    }

    pub fn stalled(&mut self, peer: Role, held: u64) {
        self.stalled += 1;
        if peer == Role::Script(Script::NeverReads) {
            self.stalled_never_readers += 1;
            self.never_reader_held_max = self.never_reader_held_max.max(held);
        }
    }

    /// Simulated seconds per wall-clock second.
    pub fn speed(&self) -> f64 {
        self.simulated.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The variant's name, without its figures: drops are counted by kind.
fn reason_name(reason: &DropReason) -> String {
    let debug = format!("{reason:?}");
    debug
        .split(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or_default()
        .to_string()
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: {} nodes, {} pieces, done at {:.1} s simulated in {:.2} s ({:.0}x); {} events, {} connections, {} cuts, {} losses, {} failed pieces, {} bans, {} disk-full pauses, {} read errors, {} stalled writers; at most {} KiB of pieces under way at a node",
            self.seed,
            self.nodes,
            self.pieces,
            self.simulated.as_secs_f64(),
            self.wall.as_secs_f64(),
            self.speed(),
            self.events,
            self.connections,
            self.cuts,
            self.losses,
            self.failed_pieces,
            self.bans.len(),
            self.disk_full,
            self.read_errors,
            self.stalled,
            self.buffered_max / 1024,
        )
    }
}
