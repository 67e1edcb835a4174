//! Saying `stopped` to trackers without holding up shutdown.
//!
//! A daemon with 100,000 torrents stopping would otherwise open 100,000 announces at once
//! and then wait 3 s for each dead tracker. Goodbyes on a shard go at most
//! [`Goodbyes::new`]'s `concurrent` at a time; once the shard is shutting down they also
//! share one deadline: a goodbye that has not started by then is skipped, one in flight
//! is cut at it, and the shard logs once how many it skipped.

use std::cell::Cell;
use std::time::Duration;

use glommio::sync::Semaphore;

use super::clock::Clock;

/// Longest one goodbye may take.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_secs(3);

pub struct Goodbyes {
    slots: Semaphore,
    clock: Clock,
    /// Set at shutdown: goodbyes end by then.
    deadline: Cell<Option<Duration>>,
    skipped: Cell<u64>,
}

/// May this torrent say goodbye, and for how long.
pub enum Turn<'a> {
    /// Go, within this time; holding the permit.
    Go(Duration, glommio::sync::Permit<'a>),
    /// Too late: skip it (counted).
    Skip,
}

impl Goodbyes {
    pub fn new(concurrent: usize, clock: Clock) -> Goodbyes {
        Goodbyes {
            slots: Semaphore::new(concurrent.max(1) as u64),
            clock,
            deadline: Cell::new(None),
            skipped: Cell::new(0),
        }
    }

    /// The shard is shutting down: goodbyes end within `budget` from now.
    pub fn shutting_down(&self, budget: Duration) {
        self.deadline.set(Some(self.clock.now() + budget));
    }

    /// Waits for a turn to say goodbye, or says skip.
    pub async fn turn(&self) -> Turn<'_> {
        let Some(deadline) = self.deadline.get() else {
            return match self.slots.acquire_permit(1).await {
                Ok(p) => Turn::Go(GOODBYE_TIMEOUT, p),
                Err(_) => Turn::Skip,
            };
        };
        let left = deadline.saturating_sub(self.clock.now());
        let permit =
            glommio::timer::timeout(left, async { Ok(self.slots.acquire_permit(1).await.ok()) })
                .await;
        match permit {
            Ok(Some(p)) => {
                let left = deadline.saturating_sub(self.clock.now());
                if left.is_zero() {
                    self.skip();
                    Turn::Skip
                } else {
                    Turn::Go(left.min(GOODBYE_TIMEOUT), p)
                }
            }
            _ => {
                self.skip();
                Turn::Skip
            }
        }
    }

    fn skip(&self) {
        self.skipped.set(self.skipped.get() + 1);
    }

    /// Goodbyes skipped at the deadline.
    pub fn skipped(&self) -> u64 {
        self.skipped.get()
    }
}
