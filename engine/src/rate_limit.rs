//! Rate limits on payload bytes: token buckets, one per torrent and direction plus a global
//! one per direction (this shard's share of the user's limit), and [`Limits`] to take from
//! both at once.
//!
//! Why: seedbox users cap upload and download per torrent and overall. A bucket fills at
//! `bytes_per_s` up to `burst_bytes`; sending or receiving `n` payload bytes takes `n`
//! tokens. When a bucket is empty the caller asks [`TokenBucket::ready_at`] when to try again
//! and sleeps until then instead of polling.
//!
//! Tokens are kept exactly, in billionths of a byte, so a million tiny takes lose nothing to
//! rounding and the long-run rate is the configured one.
//!
//! Time: `now` is the caller's monotonic clock, as everywhere in the engine. Time is assumed
//! never to go backwards; a `now` earlier than the latest one seen is treated as no time
//! having passed (nothing refills, nothing panics).

use std::time::Duration;

/// Token units per byte: tokens are counted in nanobyte so that refilling for `ns`
/// nanoseconds at `bytes_per_s` adds exactly `ns * bytes_per_s` units.
const UNITS_PER_BYTE: u128 = 1_000_000_000;

/// A token bucket on payload bytes. `bytes_per_s == 0` means unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    bytes_per_s: u64,
    burst_bytes: u64,
    /// Tokens held, in [`UNITS_PER_BYTE`] per byte; at most `burst_bytes * UNITS_PER_BYTE`.
    units: u128,
    /// The latest `now` seen; tokens are counted up to this time.
    latest: Duration,
}

impl TokenBucket {
    /// A full bucket filling at `bytes_per_s` up to `burst_bytes`.
    ///
    /// `bytes_per_s == 0` is unlimited: every take is granted in full. `burst_bytes == 0`
    /// means one second's worth (`bytes_per_s`), a sensible default for a config that leaves
    /// it out; a burst smaller than the largest single take the caller makes (e.g. a 16 KiB
    /// block) only slows that caller down, it never blocks it: [`ready_at`](Self::ready_at)
    /// waits for at most a full bucket.
    pub fn new(bytes_per_s: u64, burst_bytes: u64) -> TokenBucket {
        let burst_bytes = effective_burst(bytes_per_s, burst_bytes);
        TokenBucket {
            bytes_per_s,
            burst_bytes,
            units: u128::from(burst_bytes) * UNITS_PER_BYTE,
            latest: Duration::ZERO,
        }
    }

    /// An unlimited bucket.
    pub fn unlimited() -> TokenBucket {
        TokenBucket::new(0, 0)
    }

    /// True if this bucket never limits.
    pub fn is_unlimited(&self) -> bool {
        self.bytes_per_s == 0
    }

    /// The configured rate; 0 means unlimited.
    pub fn bytes_per_s(&self) -> u64 {
        self.bytes_per_s
    }

    /// The most tokens the bucket holds (after the `0` = one second default is applied).
    pub fn burst_bytes(&self) -> u64 {
        self.burst_bytes
    }

    /// Takes up to `want` tokens at `now` and returns how many were granted: all of `want`
    /// if unlimited, otherwise what is available, possibly 0.
    pub fn take(&mut self, now: Duration, want: u64) -> u64 {
        self.refill(now);
        let granted = want.min(self.available_now());
        self.consume(granted);
        granted
    }

    /// Whole tokens available at `now` (`u64::MAX` if unlimited), without taking any.
    pub fn available(&self, now: Duration) -> u64 {
        if self.is_unlimited() {
            return u64::MAX;
        }
        whole_bytes(self.units_at(now))
    }

    /// The earliest time (on the caller's clock, `>= now`) at which at least
    /// `want.min(burst_bytes)` tokens will be available, if nothing else takes any meanwhile.
    /// Returns `now` if they already are. Sleep for `ready_at(now, want) - now`.
    pub fn ready_at(&self, now: Duration, want: u64) -> Duration {
        let need = u128::from(want.min(self.burst_bytes)) * UNITS_PER_BYTE;
        let have = self.units_at(now);
        if self.is_unlimited() || have >= need {
            return now;
        }
        let rate = u128::from(self.bytes_per_s);
        let wait_ns = (need - have).div_ceil(rate);
        let wait = u64::try_from(wait_ns).map_or(Duration::MAX, Duration::from_nanos);
        now.max(self.latest).saturating_add(wait)
    }

    /// Changes the rate and burst at `now` (a config reload). Tokens earned before `now` are
    /// counted at the old rate, then capped at the new burst, so a reload neither hands out
    /// a free burst nor takes away tokens that fit. Going from unlimited to limited starts
    /// with a full bucket, as [`new`](Self::new) does.
    pub fn set_rate(&mut self, now: Duration, bytes_per_s: u64, burst_bytes: u64) {
        let was_unlimited = self.is_unlimited();
        self.refill(now);
        self.bytes_per_s = bytes_per_s;
        self.burst_bytes = effective_burst(bytes_per_s, burst_bytes);
        let cap = self.cap_units();
        self.units = if was_unlimited {
            cap
        } else {
            self.units.min(cap)
        };
    }

    fn cap_units(&self) -> u128 {
        u128::from(self.burst_bytes) * UNITS_PER_BYTE
    }

    /// Tokens (in units) the bucket would hold at `now`.
    fn units_at(&self, now: Duration) -> u128 {
        let elapsed_ns = now.saturating_sub(self.latest).as_nanos();
        let earned = elapsed_ns.saturating_mul(u128::from(self.bytes_per_s));
        self.units.saturating_add(earned).min(self.cap_units())
    }

    fn refill(&mut self, now: Duration) {
        self.units = self.units_at(now);
        self.latest = self.latest.max(now);
    }

    /// Whole tokens held now (after `refill`).
    fn available_now(&self) -> u64 {
        if self.is_unlimited() {
            u64::MAX
        } else {
            whole_bytes(self.units)
        }
    }

    /// Removes `bytes` tokens (at most [`available_now`](Self::available_now)).
    fn consume(&mut self, bytes: u64) {
        if !self.is_unlimited() {
            self.units = self
                .units
                .saturating_sub(u128::from(bytes) * UNITS_PER_BYTE);
        }
    }
}

impl Default for TokenBucket {
    /// Unlimited.
    fn default() -> Self {
        TokenBucket::unlimited()
    }
}

fn effective_burst(bytes_per_s: u64, burst_bytes: u64) -> u64 {
    if burst_bytes == 0 {
        bytes_per_s
    } else {
        burst_bytes
    }
}

fn whole_bytes(units: u128) -> u64 {
    u64::try_from(units / UNITS_PER_BYTE).unwrap_or(u64::MAX)
}

/// The two-level limit for one transfer direction: a grant must fit both the torrent's
/// bucket and the global (this shard's) bucket, and is taken from both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits;

impl Limits {
    /// Takes up to `want` bytes at `now` from both buckets: the grant is the smallest of
    /// `want` and what each bucket holds, and both lose exactly the grant.
    pub fn take(
        now: Duration,
        torrent_bucket: &mut TokenBucket,
        global_bucket: &mut TokenBucket,
        want: u64,
    ) -> u64 {
        torrent_bucket.refill(now);
        global_bucket.refill(now);
        let granted = want
            .min(torrent_bucket.available_now())
            .min(global_bucket.available_now());
        torrent_bucket.consume(granted);
        global_bucket.consume(granted);
        granted
    }

    /// When both buckets will hold what each needs for `want` (each capped at its own burst):
    /// the later of the two [`TokenBucket::ready_at`] times.
    pub fn ready_at(
        now: Duration,
        torrent_bucket: &TokenBucket,
        global_bucket: &TokenBucket,
        want: u64,
    ) -> Duration {
        torrent_bucket
            .ready_at(now, want)
            .max(global_bucket.ready_at(now, want))
    }
}

/// Shard `shard`'s share of a global `bytes_per_s` split over `shards` shards: an even split,
/// the remainder going to the lowest-numbered shards, so the shares add up to the limit.
/// 0 (unlimited) stays 0; a limited rate never becomes a 0 share (which would mean
/// unlimited): each share is at least 1 byte/s.
pub fn shard_share(bytes_per_s: u64, shards: u32, shard: u32) -> u64 {
    if bytes_per_s == 0 || shards == 0 {
        return bytes_per_s;
    }
    let n = u64::from(shards);
    let extra = u64::from(u64::from(shard) < bytes_per_s % n);
    (bytes_per_s / n + extra).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    /// Greedy takes of 1..4000 bytes every 0..2 ms from `start` to `end`; bytes granted.
    fn drive(
        bucket: &mut TokenBucket,
        rng: &mut SplitMix64,
        start: Duration,
        end: Duration,
    ) -> u64 {
        let mut now = start;
        let mut total = 0;
        while now < end {
            total += bucket.take(now, 1 + rng.below_u64(4000));
            now += Duration::from_micros(rng.below_u64(2000));
        }
        total
    }

    #[test]
    fn rate_holds_within_one_percent_over_ten_seconds() {
        let mut rng = SplitMix64::new(42);
        let mut bucket = TokenBucket::new(1_000_000, 16_384);
        let total = drive(&mut bucket, &mut rng, Duration::ZERO, secs(10));
        let expected = 10_000_000.0;
        let error = (total as f64 - expected).abs() / expected;
        assert!(error < 0.01, "granted {total} over 10 s, {error:.4} off");
    }

    #[test]
    fn burst_is_available_at_once_and_never_exceeded() {
        let mut bucket = TokenBucket::new(1000, 5000);
        assert_eq!(bucket.take(secs(1), 1_000_000), 5000);
        assert_eq!(bucket.take(secs(1), 1), 0);
        assert_eq!(bucket.take(secs(1) + 500 * MS, 10_000), 500);
        // A long idle spell refills to the burst, not beyond.
        assert_eq!(bucket.available(secs(3600)), 5000);
        assert_eq!(bucket.take(secs(3600), 1_000_000), 5000);
    }

    #[test]
    fn zero_burst_means_one_second_of_rate() {
        let bucket = TokenBucket::new(2000, 0);
        assert_eq!(bucket.burst_bytes(), 2000);
        assert_eq!(bucket.available(Duration::ZERO), 2000);
    }

    #[test]
    fn unlimited_grants_everything_at_once() {
        let mut bucket = TokenBucket::new(0, 0);
        assert!(bucket.is_unlimited());
        assert_eq!(bucket.take(Duration::ZERO, u64::MAX), u64::MAX);
        assert_eq!(bucket.take(Duration::ZERO, 7), 7);
        assert_eq!(bucket.ready_at(secs(5), u64::MAX), secs(5));
        assert_eq!(TokenBucket::default(), TokenBucket::unlimited());
    }

    #[test]
    fn rate_change_mid_way() {
        let mut rng = SplitMix64::new(7);
        let mut bucket = TokenBucket::new(1_000_000, 10_000);
        let first = drive(&mut bucket, &mut rng, Duration::ZERO, secs(5));
        bucket.set_rate(secs(5), 100_000, 10_000);
        let second = drive(&mut bucket, &mut rng, secs(5), secs(15));
        assert!((4_950_000..=5_010_000).contains(&first), "{first}");
        assert!((990_000..=1_010_000).contains(&second), "{second}");
    }

    #[test]
    fn set_rate_caps_tokens_at_the_new_burst_and_keeps_what_fits() {
        let mut bucket = TokenBucket::new(1000, 10_000);
        assert_eq!(bucket.take(Duration::ZERO, 4000), 4000);
        // 6000 held + 1000 earned at the old rate, then capped at 5000.
        bucket.set_rate(secs(1), 10, 5000);
        assert_eq!(bucket.available(secs(1)), 5000);
        bucket.set_rate(secs(1), 10, 50_000);
        assert_eq!(
            bucket.available(secs(1)),
            5000,
            "raising the burst gives nothing free"
        );
        // Unlimited -> limited starts full.
        let mut bucket = TokenBucket::unlimited();
        bucket.set_rate(secs(9), 100, 300);
        assert_eq!(bucket.take(secs(9), 1000), 300);
        assert_eq!(bucket.take(secs(10), 1000), 100);
        bucket.set_rate(secs(10), 0, 0);
        assert_eq!(bucket.take(secs(10), 1000), 1000);
    }

    #[test]
    fn ready_at_is_exact() {
        let mut bucket = TokenBucket::new(1_000_000, 16_384);
        assert_eq!(bucket.take(secs(2), 16_384), 16_384);
        assert_eq!(bucket.ready_at(secs(2), 0), secs(2));
        let at = bucket.ready_at(secs(2), 1000);
        assert_eq!(at, secs(2) + MS);
        assert!(bucket.available(at - Duration::from_nanos(1)) < 1000);
        assert_eq!(bucket.take(at, 1000), 1000);
        // Asking for more than the burst waits for a full bucket only.
        let at = bucket.ready_at(at, 1 << 30);
        assert_eq!(bucket.take(at, 1 << 30), 16_384);
        // A rate that does not divide evenly rounds the wait up, never down.
        let mut odd = TokenBucket::new(3, 10);
        odd.take(Duration::ZERO, 10);
        let at = odd.ready_at(Duration::ZERO, 1);
        assert_eq!(at, Duration::from_nanos(333_333_334));
        assert_eq!(odd.take(at, 1), 1);
    }

    #[test]
    fn time_going_backwards_counts_as_no_time() {
        let mut bucket = TokenBucket::new(1000, 1000);
        assert_eq!(bucket.take(secs(10), 1000), 1000);
        assert_eq!(bucket.take(secs(5), 1000), 0);
        assert_eq!(bucket.available(secs(1)), 0);
        assert_eq!(bucket.ready_at(secs(1), 100), secs(10) + 100 * MS);
        assert_eq!(bucket.take(secs(10) + 100 * MS, 1000), 100);
    }

    #[test]
    fn two_level_grant_fits_both_and_takes_from_both() {
        let mut torrent = TokenBucket::new(100, 1000);
        let mut global = TokenBucket::new(1000, 300);
        assert_eq!(
            Limits::take(Duration::ZERO, &mut torrent, &mut global, 500),
            300
        );
        assert_eq!(torrent.available(Duration::ZERO), 700);
        assert_eq!(global.available(Duration::ZERO), 0);
        // The torrent now limits: 700 + 100 earned, the global refilled to its 300 burst.
        assert_eq!(
            Limits::ready_at(Duration::ZERO, &torrent, &global, 200),
            200 * MS
        );
        assert_eq!(Limits::take(secs(1), &mut torrent, &mut global, 1000), 300);
        assert_eq!(torrent.available(secs(1)), 500);
        let mut unlimited = TokenBucket::unlimited();
        assert_eq!(
            Limits::take(secs(1), &mut torrent, &mut unlimited, 2000),
            500
        );
        assert_eq!(
            Limits::ready_at(secs(1), &torrent, &unlimited, 100),
            secs(2)
        );
    }

    #[test]
    fn shard_shares_add_up() {
        let shares: Vec<u64> = (0..3).map(|s| shard_share(1000, 3, s)).collect();
        assert_eq!(shares, [334, 333, 333]);
        assert_eq!(shard_share(0, 4, 1), 0);
        assert_eq!(
            shard_share(2, 4, 3),
            1,
            "never 0, which would mean unlimited"
        );
        assert_eq!(shard_share(500, 0, 0), 500);
    }

    proptest! {
        #[test]
        fn granted_never_exceeds_rate_times_time_plus_burst(
            bytes_per_s in 1u64..10_000_000,
            burst_bytes in 1u64..1_000_000,
            steps in proptest::collection::vec((0u64..50_000_000, 0u64..2_000_000), 1..200),
        ) {
            let mut bucket = TokenBucket::new(bytes_per_s, burst_bytes);
            let mut now = Duration::ZERO;
            let mut granted: u128 = 0;
            for (dt_ns, want) in steps {
                now += Duration::from_nanos(dt_ns);
                let got = bucket.take(now, want);
                prop_assert!(got <= want);
                granted += u128::from(got);
                let bound = u128::from(burst_bytes)
                    + now.as_nanos() * u128::from(bytes_per_s) / UNITS_PER_BYTE;
                prop_assert!(granted <= bound, "{} > {}", granted, bound);
                let at = bucket.ready_at(now, want);
                prop_assert!(at >= now);
                prop_assert!(bucket.available(at) >= want.min(burst_bytes));
            }
        }
    }
}
