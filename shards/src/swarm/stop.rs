//! A torrent's stop request: set by a command (pause, remove, shutdown) and seen by
//! everything that should end with the run — the run loop, a background check, and the
//! announce waiting in the shard's line, which is woken to leave it.

use std::cell::Cell;
use std::task::{Poll, Waker};

#[derive(Default)]
pub struct StopSignal {
    stop: Cell<bool>,
    /// The announce waiting in the shard's gate (one announce is in flight at a time, so
    /// one waker).
    waker: Cell<Option<Waker>>,
}

impl StopSignal {
    /// Sets the flag and wakes whoever waits in [`StopSignal::stopped`].
    pub fn request(&self) {
        self.stop.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.stop.get()
    }

    /// The flag itself, for work that polls it (a background check).
    pub fn flag(&self) -> &Cell<bool> {
        &self.stop
    }

    /// Returns once a stop is requested.
    pub async fn stopped(&self) {
        std::future::poll_fn(|cx| {
            if self.stop.get() {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await;
    }
}
