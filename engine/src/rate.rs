//! Transfer-rate estimation: bytes per second over a short sliding window.
//!
//! One [`RateMeter`] per direction per peer (and one per torrent for totals). The choker ranks
//! peers by these rates, so they must follow changes within seconds and fall to zero when a
//! peer goes quiet. The meter keeps one byte counter per wall-clock second in a fixed ring:
//! recording a block is an add and, at most once a second, clearing a few slots.

use std::time::Duration;

/// Whole seconds of history the rate is averaged over (plus the current, partial second).
const WINDOW_SECS: u64 = 5;

/// One slot per whole second in the window, and one for the second in progress.
const BUCKETS: usize = WINDOW_SECS as usize + 1;

/// Bytes per second for one stream of data, over the last ~5 seconds.
///
/// Time comes in as `now` (monotonic, from the caller's origin). Time that goes backwards is
/// treated as no time passing: the meter never panics and never un-counts bytes.
#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    /// Bytes received in second `s`, at `buckets[s % BUCKETS]`, for the `BUCKETS` seconds
    /// ending at `newest_sec`.
    buckets: [u64; BUCKETS],
    /// The second the newest bucket belongs to.
    newest_sec: u64,
    /// The latest time seen by `record` (time never runs backwards inside the meter).
    latest: Duration,
    /// When the first bytes arrived: a young meter divides by the time it has been running,
    /// not by the whole window, so a new peer's rate is not underestimated.
    first: Option<Duration>,
    total: u64,
}

impl RateMeter {
    /// A meter that has seen nothing: rate 0, total 0.
    pub fn new() -> RateMeter {
        RateMeter::default()
    }

    /// Counts `bytes` transferred at `now`.
    pub fn record(&mut self, now: Duration, bytes: u64) {
        let now = now.max(self.latest);
        self.latest = now;
        self.first.get_or_insert(now);
        let sec = now.as_secs();
        if sec > self.newest_sec {
            self.advance_to(sec);
        }
        let slot = &mut self.buckets[bucket_of(sec)];
        *slot = slot.saturating_add(bytes);
        self.total = self.total.saturating_add(bytes);
    }

    /// Bytes per second over the window ending at `now`; 0 once the meter has been silent for
    /// longer than the window.
    pub fn rate(&self, now: Duration) -> u64 {
        let Some(first) = self.first else {
            return 0;
        };
        let now = now.max(self.latest);
        let sec = now.as_secs();
        let oldest = sec.saturating_sub(WINDOW_SECS);
        let bytes: u128 = (oldest..=sec.min(self.newest_sec))
            .filter(|s| self.newest_sec - s < BUCKETS as u64)
            .map(|s| u128::from(self.buckets[bucket_of(s)]))
            .sum();
        let window_ms = u128::from(WINDOW_SECS * 1000 + u64::from(now.subsec_millis()));
        let running_ms = now.saturating_sub(first).as_millis().max(1000);
        let span_ms = window_ms.min(running_ms);
        u64::try_from(bytes * 1000 / span_ms).unwrap_or(u64::MAX)
    }

    /// Every byte ever recorded (saturating).
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Moves the ring forward to second `sec` (later than `newest_sec`), clearing the seconds
    /// that passed in silence.
    fn advance_to(&mut self, sec: u64) {
        if sec - self.newest_sec >= BUCKETS as u64 {
            self.buckets = [0; BUCKETS];
        } else {
            for s in self.newest_sec + 1..=sec {
                self.buckets[bucket_of(s)] = 0;
            }
        }
        self.newest_sec = sec;
    }
}

fn bucket_of(sec: u64) -> usize {
    (sec % BUCKETS as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn new_meter_is_idle() {
        let m = RateMeter::new();
        assert_eq!(m.rate(ms(0)), 0);
        assert_eq!(m.rate(ms(123_456)), 0);
        assert_eq!(m.total(), 0);
    }

    #[test]
    fn steady_stream_reads_its_rate() {
        let mut m = RateMeter::new();
        // 16 KiB every 100 ms = 163 840 B/s, for 20 s.
        for tick in 0..200 {
            m.record(ms(tick * 100), 16_384);
        }
        let rate = m.rate(ms(19_950));
        assert!((160_000..=168_000).contains(&rate), "rate {rate}");
        assert_eq!(m.total(), 200 * 16_384);
    }

    #[test]
    fn young_meter_is_not_underestimated() {
        let mut m = RateMeter::new();
        // Starts late in the run: 10 000 B/s for 2 s.
        for tick in 0..20 {
            m.record(ms(100_000 + tick * 100), 1_000);
        }
        let rate = m.rate(ms(102_000));
        assert!((9_000..=11_000).contains(&rate), "rate {rate}");
    }

    #[test]
    fn silent_peer_decays_to_zero() {
        let mut m = RateMeter::new();
        for tick in 0..100 {
            m.record(ms(tick * 100), 10_000);
        }
        let busy = m.rate(ms(10_000));
        let later = m.rate(ms(13_000));
        assert!(later < busy && later > 0, "busy {busy}, later {later}");
        assert_eq!(m.rate(ms(16_000)), 0);
        assert_eq!(m.rate(ms(1_000_000)), 0);
        assert_eq!(m.total(), 1_000_000);
    }

    #[test]
    fn burst_is_spread_over_the_window() {
        let mut m = RateMeter::new();
        m.record(ms(0), 1);
        m.record(ms(60_000), 5_000_000);
        // One second after the burst: counted over a full window of 5 s + the partial second.
        assert_eq!(m.rate(ms(61_000)), 5_000_000 / 5);
        assert_eq!(m.rate(ms(65_999)), 5_000_000 * 1000 / 5_999);
        assert_eq!(m.rate(ms(66_000)), 0);
    }

    #[test]
    fn large_time_jumps_clear_history() {
        let mut m = RateMeter::new();
        m.record(ms(1_000), 1_000_000);
        m.record(Duration::from_secs(1 << 40), 500);
        assert_eq!(m.rate(Duration::from_secs(1 << 40)), 500 / 5);
        m.record(Duration::MAX, 7);
        assert_eq!(m.rate(Duration::MAX), 7 * 1000 / 5_999);
        assert_eq!(m.total(), 1_000_507);
    }

    #[test]
    fn time_going_backwards_is_no_time_passing() {
        let mut m = RateMeter::new();
        m.record(ms(10_500), 5_000);
        m.record(ms(2_000), 5_000);
        m.record(ms(0), 5_000);
        assert_eq!(m.total(), 15_000);
        assert_eq!(m.rate(ms(3_000)), m.rate(ms(10_500)));
        // Young meter: one second of running time (the floor).
        assert_eq!(m.rate(ms(10_500)), 15_000);
    }

    #[test]
    fn totals_saturate() {
        let mut m = RateMeter::new();
        m.record(ms(0), u64::MAX);
        m.record(ms(0), u64::MAX);
        assert_eq!(m.total(), u64::MAX);
        assert!(m.rate(ms(0)) > 0);
    }

    proptest! {
        #[test]
        fn never_panics_and_rate_is_bounded(
            events in proptest::collection::vec((0u64..20_000_000, 0u64..1 << 40), 0..64),
            probe in 0u64..40_000_000,
        ) {
            let mut m = RateMeter::new();
            let mut sum = 0u64;
            for (t, bytes) in &events {
                m.record(ms(*t), *bytes);
                sum = sum.saturating_add(*bytes);
            }
            prop_assert_eq!(m.total(), sum);
            // Nothing can arrive faster than everything recorded inside one second.
            prop_assert!(m.rate(ms(probe)) <= sum);
        }
    }
}
