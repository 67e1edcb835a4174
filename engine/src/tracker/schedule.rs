//! When to announce next.
//!
//! After a success we wait the tracker's interval (never less than its min interval).
//! After a failure we back off exponentially — 15 s, 30 s, 60 s … capped at 30 min — with a
//! ±10 % jitter so that many torrents that failed together do not retry in lock-step.

use std::time::Duration;

use super::AnnounceResponse;
use crate::rng::SplitMix64;

/// The first retry delay after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_secs(15);

/// The longest retry delay after repeated failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// Announce timing for one tracker (or one torrent's tracker list).
#[derive(Debug, Clone)]
pub struct AnnounceSchedule {
    next: Duration,
    failures: u32,
    rng: SplitMix64,
}

impl AnnounceSchedule {
    /// A schedule whose first announce is due at once; `seed` drives the jitter.
    pub fn new(seed: u64) -> Self {
        Self {
            next: Duration::ZERO,
            failures: 0,
            rng: SplitMix64::new(seed),
        }
    }

    /// When the next announce is due (absolute, on the caller's clock).
    pub fn next(&self) -> Duration {
        self.next
    }

    pub fn is_due(&self, now: Duration) -> bool {
        now >= self.next
    }

    /// Failures since the last success.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The announce succeeded: wait the tracker's interval, and at least its min interval.
    pub fn on_success(&mut self, now: Duration, response: &AnnounceResponse) {
        self.failures = 0;
        let secs = response
            .interval
            .max(response.min_interval.unwrap_or_default());
        self.next = now.saturating_add(Duration::from_secs(u64::from(secs)));
    }

    /// The announce failed: back off.
    pub fn on_failure(&mut self, now: Duration) {
        self.failures = self.failures.saturating_add(1);
        self.next = now.saturating_add(self.backoff());
    }

    /// An event (completed, stopped) must reach the tracker now, whatever the interval.
    pub fn announce_now(&mut self) {
        self.next = Duration::ZERO;
    }

    /// 15 s · 2^(failures − 1), capped, then scaled by a factor in [0.9, 1.1].
    fn backoff(&mut self) -> Duration {
        let doublings = self.failures.saturating_sub(1).min(16);
        let base = BACKOFF_MIN.saturating_mul(1 << doublings).min(BACKOFF_MAX);
        // Jitter in per-mille: 900..=1100.
        let per_mille = 900 + self.rng.below_u64(201) as u32;
        base * per_mille / 1000
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn success_waits_the_interval_and_min_interval() {
        let mut s = AnnounceSchedule::new(1);
        assert!(s.is_due(Duration::ZERO));
        let mut resp = AnnounceResponse {
            interval: 1800,
            ..Default::default()
        };
        s.on_success(secs(10), &resp);
        assert_eq!(s.next(), secs(1810));
        resp.min_interval = Some(3600);
        s.on_success(secs(10), &resp);
        assert_eq!(s.next(), secs(3610));
        assert!(!s.is_due(secs(3609)));
        s.announce_now();
        assert!(s.is_due(secs(3609)));
    }

    #[test]
    fn failures_back_off_with_jitter_up_to_the_cap() {
        let mut s = AnnounceSchedule::new(2);
        let mut delays = Vec::new();
        for _ in 0..12 {
            s.on_failure(secs(100));
            delays.push(s.next() - secs(100));
        }
        for (n, d) in delays.iter().enumerate() {
            let base = (BACKOFF_MIN * (1 << n.min(16))).min(BACKOFF_MAX);
            assert!(*d >= base * 9 / 10 && *d <= base * 11 / 10, "{n}: {d:?}");
        }
        assert_eq!(s.failures(), 12);
        s.on_success(
            secs(0),
            &AnnounceResponse {
                interval: 60,
                ..Default::default()
            },
        );
        assert_eq!(s.failures(), 0);
        s.on_failure(secs(0));
        assert!(s.next() <= secs(17), "back-off restarts after a success");
    }

    #[test]
    fn jitter_is_deterministic_per_seed() {
        let run = |seed| {
            let mut s = AnnounceSchedule::new(seed);
            s.on_failure(Duration::ZERO);
            s.next()
        };
        assert_eq!(run(5), run(5));
        assert!((0..8).map(run).any(|d| d != run(5)));
    }

    proptest! {
        #[test]
        fn next_is_never_before_now(
            events in proptest::collection::vec((any::<bool>(), 0u64..10_000, 0u32..100_000), 0..50),
            seed in any::<u64>(),
        ) {
            let mut s = AnnounceSchedule::new(seed);
            let mut now = Duration::ZERO;
            for (ok, step, interval) in events {
                now += Duration::from_secs(step);
                if ok {
                    s.on_success(now, &AnnounceResponse { interval, ..Default::default() });
                } else {
                    s.on_failure(now);
                    prop_assert!(s.next() - now <= BACKOFF_MAX * 11 / 10);
                }
                prop_assert!(s.next() >= now);
            }
        }
    }
}
