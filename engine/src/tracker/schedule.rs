//! When to announce next.
//!
//! After a success we wait the tracker's interval (never less than its min interval), and
//! only ever later than that, never sooner:
//!
//! - **Spread.** The first time a torrent waits a given interval, it waits it plus a
//!   random part of one more interval (its *phase*, drawn from its seed). A daemon that
//!   starts 100,000 torrents together thus re-announces them evenly over an interval
//!   instead of all in the same second, and stays spread: later waits are the interval
//!   plus at most [`DRIFT_PER_MILLE`] ‰, so the phases do not march back into step.
//! - **Retry soon.** A torrent that still wants peers and got none from its first
//!   announces asks again after 15 s, 30 s, 60 s, 120 s, 240 s ([`RETRY_SOON_TRIES`] tries)
//!   rather than a whole interval, but never sooner than the tracker's min interval and
//!   never later than the plain interval. Getting peers, or not wanting any, ends it.
//!
//! After a failure we back off exponentially — 15 s, 30 s, 60 s … capped at 30 min — with a
//! ±10 % jitter so that many torrents that failed together do not retry in lock-step.

use std::time::Duration;

use super::AnnounceResponse;
use crate::rng::SplitMix64;

/// The first retry delay after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_secs(15);

/// The longest retry delay after repeated failures.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30 * 60);

/// The first "retry soon" delay for a fresh torrent the tracker gave no peers.
pub const RETRY_SOON_FIRST: Duration = Duration::from_secs(15);

/// How many times a fresh torrent retries soon before it waits whole intervals.
pub const RETRY_SOON_TRIES: u32 = 5;

/// Steady-state jitter after the first spread wait, in per-mille of the interval (later
/// only).
pub const DRIFT_PER_MILLE: u64 = 10;

/// Announce timing for one tracker (or one torrent's tracker list).
#[derive(Debug, Clone)]
pub struct AnnounceSchedule {
    next: Duration,
    failures: u32,
    rng: SplitMix64,
    /// "Retry soon" tries left; 0 once the torrent got peers or used them up.
    soon_left: u32,
    /// The wait we last spread over (zero: none yet). A new interval spreads again.
    spread_for: Duration,
}

impl AnnounceSchedule {
    /// A schedule whose first announce is due at once; `seed` drives the jitter.
    pub fn new(seed: u64) -> Self {
        Self {
            next: Duration::ZERO,
            failures: 0,
            rng: SplitMix64::new(seed),
            soon_left: RETRY_SOON_TRIES,
            spread_for: Duration::ZERO,
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

    /// The announce succeeded: wait the tracker's interval, and at least its min interval,
    /// spread as the module docs say. `wants_peers`: the torrent is incomplete and short of
    /// peers, so an empty answer is worth asking again soon.
    pub fn on_success(&mut self, now: Duration, response: &AnnounceResponse, wants_peers: bool) {
        self.failures = 0;
        let floor = Duration::from_secs(u64::from(response.min_interval.unwrap_or_default()));
        let wait = Duration::from_secs(u64::from(response.interval)).max(floor);
        if !wants_peers || !response.peers.is_empty() {
            self.soon_left = 0;
        }
        if self.soon_left > 0 {
            let doublings = RETRY_SOON_TRIES - self.soon_left;
            self.soon_left -= 1;
            let soon = RETRY_SOON_FIRST.saturating_mul(1 << doublings);
            self.next = now.saturating_add(soon.max(floor).min(wait));
            return;
        }
        let extra = if self.spread_for != wait {
            self.spread_for = wait;
            // A phase in [0, 1) of one interval, in per-million.
            wait.mul_f64(self.rng.below_u64(1_000_000) as f64 / 1e6)
        } else {
            wait.mul_f64(self.rng.below_u64(DRIFT_PER_MILLE + 1) as f64 / 1e3)
        };
        self.next = now.saturating_add(wait).saturating_add(extra);
    }

    /// The announce failed: back off.
    pub fn on_failure(&mut self, now: Duration) {
        self.failures = self.failures.saturating_add(1);
        self.next = now.saturating_add(self.backoff());
    }

    /// Nothing was sent: ask at `at` instead, no failure counted.
    pub fn defer_until(&mut self, at: Duration) {
        self.next = at;
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

    fn resp(interval: u32, min_interval: Option<u32>, peers: usize) -> AnnounceResponse {
        AnnounceResponse {
            interval,
            min_interval,
            peers: (0..peers)
                .map(|i| std::net::SocketAddr::from(([10, 0, 0, 1], 1000 + i as u16)))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn success_waits_the_interval_and_min_interval_spread_once_then_steady() {
        let mut s = AnnounceSchedule::new(1);
        assert!(s.is_due(Duration::ZERO));
        // First wait at 1800 s: spread over one more interval.
        s.on_success(secs(10), &resp(1800, None, 0), false);
        assert!(
            s.next() >= secs(1810) && s.next() < secs(3610),
            "{:?}",
            s.next()
        );
        // Then steady: the interval plus at most 1 %.
        s.on_success(secs(5000), &resp(1800, None, 0), false);
        assert!(
            s.next() >= secs(6800) && s.next() <= secs(6818),
            "{:?}",
            s.next()
        );
        // The min interval wins over a shorter interval; a new wait spreads again.
        s.on_success(secs(10), &resp(1800, Some(3600), 0), false);
        assert!(s.next() >= secs(3610) && s.next() < secs(7210));
        assert!(!s.is_due(secs(3609)));
        s.announce_now();
        assert!(s.is_due(secs(3609)));
    }

    /// 100,000 torrents announcing in the same second re-announce evenly over the next
    /// interval: no 1-second bin above twice the mean, and none before the interval.
    #[test]
    fn many_torrents_started_together_spread_over_an_interval() {
        const N: u64 = 100_000;
        const INTERVAL: u64 = 1800;
        let mut bins = vec![0u32; 2 * INTERVAL as usize + 1];
        let mut seconds: Vec<Vec<u32>> = vec![vec![0; INTERVAL as usize]; 3];
        for seed in 0..N {
            let mut s = AnnounceSchedule::new(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            s.on_success(secs(0), &resp(INTERVAL as u32, None, 50), true);
            let first = s.next();
            assert!(first >= secs(INTERVAL), "never earlier than the interval");
            bins[first.as_secs() as usize] += 1;
            // Steady state keeps the phase: three more rounds stay spread.
            let mut at = first;
            for round in seconds.iter_mut() {
                s.on_success(at, &resp(INTERVAL as u32, None, 50), true);
                assert!(s.next() >= at + secs(INTERVAL));
                at = s.next();
                round[(at.as_secs() % INTERVAL) as usize] += 1;
            }
        }
        let mean = N as f64 / INTERVAL as f64;
        let peak = *bins.iter().max().unwrap() as f64;
        assert!(peak <= 2.0 * mean, "peak {peak} vs mean {mean}");
        for round in &seconds {
            let peak = *round.iter().max().unwrap() as f64;
            assert!(peak <= 2.0 * mean, "steady peak {peak} vs mean {mean}");
        }
    }

    #[test]
    fn a_fresh_torrent_without_peers_retries_soon_then_backs_off() {
        let mut s = AnnounceSchedule::new(3);
        let mut now = secs(0);
        let mut delays = Vec::new();
        for _ in 0..RETRY_SOON_TRIES {
            s.on_success(now, &resp(1800, None, 0), true);
            delays.push((s.next() - now).as_secs());
            now = s.next();
        }
        assert_eq!(delays, [15, 30, 60, 120, 240]);
        s.on_success(now, &resp(1800, None, 0), true);
        assert!(
            s.next() - now >= secs(1800),
            "tries used up: whole intervals"
        );
    }

    #[test]
    fn retry_soon_respects_min_interval_and_ends_with_peers_or_seeding() {
        let mut s = AnnounceSchedule::new(4);
        s.on_success(secs(0), &resp(1800, Some(45), 0), true);
        assert_eq!(s.next(), secs(45), "never sooner than min interval");
        s.on_success(secs(45), &resp(1800, Some(45), 0), true);
        assert_eq!(s.next(), secs(45 + 45));
        s.on_success(secs(90), &resp(1800, None, 3), true);
        assert!(s.next() >= secs(90 + 1800), "peers came: whole intervals");
        s.on_success(secs(0), &resp(1800, None, 0), true);
        assert!(s.next() >= secs(1800), "and it does not come back");

        let mut seed = AnnounceSchedule::new(5);
        seed.on_success(secs(0), &resp(1800, None, 0), false);
        assert!(seed.next() >= secs(1800), "a seed does not hurry");

        let mut short = AnnounceSchedule::new(6);
        short.on_success(secs(0), &resp(30, None, 0), true);
        short.on_success(secs(15), &resp(30, None, 0), true);
        assert_eq!(short.next(), secs(15 + 30), "never later than the interval");
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
            false,
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
        fn next_is_never_before_now_nor_the_min_interval(
            events in proptest::collection::vec(
                (any::<bool>(), 0u64..10_000, 30u32..7200, proptest::option::of(30u32..7200), 0usize..2, any::<bool>()),
                0..50,
            ),
            seed in any::<u64>(),
        ) {
            let mut s = AnnounceSchedule::new(seed);
            let mut now = Duration::ZERO;
            for (ok, step, interval, min_interval, peers, wants) in events {
                now += Duration::from_secs(step);
                if ok {
                    s.on_success(now, &resp(interval, min_interval, peers), wants);
                    let floor = u64::from(min_interval.unwrap_or(0));
                    prop_assert!(s.next() >= now + secs(floor));
                    prop_assert!(s.next() <= now + secs(2 * u64::from(interval.max(min_interval.unwrap_or(0)))));
                } else {
                    s.on_failure(now);
                    prop_assert!(s.next() - now <= BACKOFF_MAX * 11 / 10);
                }
                prop_assert!(s.next() >= now);
            }
        }
    }
}
