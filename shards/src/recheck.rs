//! A full recheck: hash every piece on disk and compare with the torrent's hashes.

use ccbt_engine::metainfo::Info;

use crate::hashing::PieceOutcome;

/// What a recheck found for one piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceState {
    Good,
    /// Some bytes are not on disk (missing or short file).
    Missing,
    /// All bytes are there but their hash is wrong.
    Bad,
}

/// The result of a recheck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecheckReport {
    pub states: Vec<PieceState>,
}

impl RecheckReport {
    /// Compares hash outcomes (one per piece, in order) with the torrent's piece hashes.
    pub fn new(info: &Info, outcomes: &[PieceOutcome]) -> Self {
        assert_eq!(outcomes.len(), info.pieces.len(), "one outcome per piece");
        let states = outcomes
            .iter()
            .zip(info.pieces.iter())
            .map(|(outcome, want)| match outcome {
                PieceOutcome::Hashed(got) if got == want => PieceState::Good,
                PieceOutcome::Hashed(_) => PieceState::Bad,
                PieceOutcome::Missing => PieceState::Missing,
            })
            .collect();
        Self { states }
    }

    /// Piece numbers in `state`, ascending.
    pub fn pieces_in(&self, state: PieceState) -> Vec<u32> {
        (0..self.states.len() as u32)
            .filter(|&i| self.states[i as usize] == state)
            .collect()
    }

    pub fn count(&self, state: PieceState) -> usize {
        self.states.iter().filter(|&&s| s == state).count()
    }

    pub fn is_complete(&self) -> bool {
        self.states.iter().all(|&s| s == PieceState::Good)
    }
}
