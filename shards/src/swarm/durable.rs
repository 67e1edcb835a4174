//! What a torrent's front end has been told is durable: the piece count of its last
//! `Durable` report, and whether `Completed` has been sent. Only kept when the front end
//! listens for events (it keeps resume data); the run loop reports again when the count
//! moves.

use std::cell::Cell;

pub struct DurableMark {
    /// Pieces last reported durable; `None` before the first report.
    pieces: Cell<Option<u32>>,
    completed_reported: Cell<bool>,
}

impl DurableMark {
    /// `done`: the torrent starts complete, so there is no completion to report.
    pub fn new(done: bool) -> Self {
        DurableMark {
            pieces: Cell::new(None),
            completed_reported: Cell::new(done),
        }
    }

    /// Whether `have` pieces differ from what was last reported.
    pub fn differs(&self, have: u32) -> bool {
        self.pieces.get() != Some(have)
    }

    /// `have` pieces are now known durable to the front end.
    pub fn reported(&self, have: u32) {
        self.pieces.set(Some(have));
    }

    /// True the first time it is called with `done`: completion should be reported now.
    pub fn take_completion(&self, done: bool) -> bool {
        if done && !self.completed_reported.get() {
            self.completed_reported.set(true);
            return true;
        }
        false
    }
}
