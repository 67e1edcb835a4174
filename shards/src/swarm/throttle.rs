//! Rate limits on payload bytes as a shard applies them: each torrent and each shard owns a
//! [`Throttle`] (an upload and a download bucket), and each peer task a [`Meter`] per
//! direction that takes from its torrent's and its shard's bucket together.
//!
//! Why here and not in the engine: the engine decides *what* to send, the shard decides
//! *when* bytes move. Buckets are `RefCell`s owned by one shard: no locks on the hot path.
//!
//! A throttled task sleeps on a glommio timer until the buckets say it may go on, but never
//! longer than [`RECHECK`] at a time, so a limit raised (or lifted) while it sleeps applies
//! within that. When both buckets are unlimited a take is two `Cell` reads: no timer, no
//! allocation.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use ccbt_engine::rate_limit::{Limits, TokenBucket};

use super::clock::Clock;

/// The longest a throttled task sleeps before it looks at its buckets again: the bound on
/// how late a raised limit is noticed.
pub const RECHECK: Duration = Duration::from_millis(100);

/// A bucket holds a quarter second of its rate: enough that a throttled transfer moves in
/// few, large steps, small enough that a fresh or lowered limit cannot be overshot by more
/// than that at once.
const BURST_DIVISOR: u64 = 4;

/// The limits the user sets, in payload bytes per second; 0 is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    pub upload_bytes_per_s: u64,
    pub download_bytes_per_s: u64,
}

/// Which way payload moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Upload,
    Download,
}

/// One bucket and whether it limits at all (read without borrowing, for the unlimited case).
#[derive(Default)]
struct Bucket {
    limited: Cell<bool>,
    tokens: RefCell<TokenBucket>,
    /// Granted since the last [`Throttle::take_usage`], and whether a take got less than
    /// it asked for: a shard's demand, for sharing the global limit (see `share`).
    used: Cell<u64>,
    starved: Cell<bool>,
}

impl Bucket {
    fn set(&self, now: Duration, bytes_per_s: u64) {
        let burst = (bytes_per_s / BURST_DIVISOR).max(1);
        self.tokens.borrow_mut().set_rate(now, bytes_per_s, burst);
        self.limited.set(bytes_per_s != 0);
    }
}

/// An upload and a download bucket: one torrent's limits, or one shard's share of the
/// global ones.
#[derive(Default)]
pub struct Throttle {
    upload: Bucket,
    download: Bucket,
}

impl Throttle {
    pub fn new(now: Duration, limits: RateLimits) -> Throttle {
        let throttle = Throttle::default();
        throttle.set(now, limits);
        throttle
    }

    /// Applies new limits at `now`; transfers waiting on the buckets see them within
    /// [`RECHECK`].
    pub fn set(&self, now: Duration, limits: RateLimits) {
        self.upload.set(now, limits.upload_bytes_per_s);
        self.download.set(now, limits.download_bytes_per_s);
    }

    /// The rates now in force.
    pub fn limits(&self) -> RateLimits {
        let rate = |b: &Bucket| {
            if b.limited.get() {
                b.tokens.borrow().bytes_per_s()
            } else {
                0
            }
        };
        RateLimits {
            upload_bytes_per_s: rate(&self.upload),
            download_bytes_per_s: rate(&self.download),
        }
    }

    /// Bytes granted since the last call, whether a take fell short, and the rate: then
    /// starts counting again.
    pub fn take_usage(&self, direction: Direction) -> (u64, bool, u64) {
        let b = self.bucket(direction);
        let rate = if b.limited.get() {
            b.tokens.borrow().bytes_per_s()
        } else {
            0
        };
        (b.used.take(), b.starved.take(), rate)
    }

    fn bucket(&self, direction: Direction) -> &Bucket {
        match direction {
            Direction::Upload => &self.upload,
            Direction::Download => &self.download,
        }
    }
}

/// One peer's way through its torrent's and its shard's bucket in one direction. It keeps
/// the tokens it has taken but not yet spent (`credit`), so a block larger than what the
/// buckets hold at once is paid for in several takes, none lost.
pub struct Meter {
    torrent: Rc<Throttle>,
    shard: Rc<Throttle>,
    direction: Direction,
    clock: Clock,
    /// Tokens taken and not yet spent; at most one `want` (a block, or one read's payload).
    credit: u64,
}

impl Meter {
    pub fn new(
        torrent: Rc<Throttle>,
        shard: Rc<Throttle>,
        direction: Direction,
        clock: Clock,
    ) -> Meter {
        Meter {
            torrent,
            shard,
            direction,
            clock,
            credit: 0,
        }
    }

    /// Neither bucket limits.
    pub fn is_unlimited(&self) -> bool {
        !self.torrent.bucket(self.direction).limited.get()
            && !self.shard.bucket(self.direction).limited.get()
    }

    /// The tighter of the two rates, if either limits.
    pub fn rate(&self) -> Option<u64> {
        [&self.torrent, &self.shard]
            .iter()
            .map(|t| t.bucket(self.direction))
            .filter(|b| b.limited.get())
            .map(|b| b.tokens.borrow().bytes_per_s())
            .min()
    }

    /// Takes what the buckets hold towards `want` without waiting. True (and `want` spent)
    /// once all of it is paid for; false leaves what was taken as credit for the next try.
    pub fn try_spend(&mut self, want: u64) -> bool {
        if self.is_unlimited() {
            self.credit = 0;
            return true;
        }
        if self.credit < want {
            let now = self.clock.now();
            let (torrent, shard) = (
                &self.torrent.bucket(self.direction).tokens,
                &self.shard.bucket(self.direction).tokens,
            );
            let asked = want - self.credit;
            let granted = Limits::take(
                now,
                &mut torrent.borrow_mut(),
                &mut shard.borrow_mut(),
                asked,
            );
            self.credit += granted;
            let bucket = self.shard.bucket(self.direction);
            if bucket.limited.get() {
                bucket.used.set(bucket.used.get() + granted);
                if granted < asked {
                    bucket.starved.set(true);
                }
            }
        }
        if self.credit >= want {
            self.credit -= want;
            true
        } else {
            false
        }
    }

    /// How long until the buckets could pay the rest of `want`, at most [`RECHECK`].
    fn wait_for(&self, want: u64) -> Duration {
        let now = self.clock.now();
        let rest = want.saturating_sub(self.credit);
        let ready = Limits::ready_at(
            now,
            &self.torrent.bucket(self.direction).tokens.borrow(),
            &self.shard.bucket(self.direction).tokens.borrow(),
            rest,
        );
        ready
            .saturating_sub(now)
            .clamp(Duration::from_millis(1), RECHECK)
    }

    /// Waits (on a timer, never spinning) until `want` bytes are paid for, without spending
    /// them: the next [`try_spend`](Self::try_spend) of up to `want` succeeds. For a writer
    /// that waits for room before it knows which block it will send.
    ///
    /// Gives up, returning false, once `alive` says the transfer has ended (it is asked
    /// after every sleep), so a closed connection is not held open by a slow limit.
    pub async fn fill(&mut self, want: u64, alive: impl Fn() -> bool) -> bool {
        loop {
            if self.is_unlimited() || self.credit >= want {
                return true;
            }
            if self.try_spend(want) {
                // Paid in full: keep it as credit, not spent.
                self.credit += want;
                return true;
            }
            glommio::timer::sleep(self.wait_for(want)).await;
            if !alive() {
                return false;
            }
        }
    }

    /// Pays for `want` bytes, sleeping while the buckets are empty; returns at once when
    /// unlimited. False if `alive` said the transfer ended first (see [`fill`](Self::fill)).
    pub async fn spend(&mut self, want: u64, alive: impl Fn() -> bool) -> bool {
        while !self.try_spend(want) {
            glommio::timer::sleep(self.wait_for(want)).await;
            if !alive() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::LocalExecutorBuilder;
    use std::time::Instant;

    fn limits(up: u64, down: u64) -> RateLimits {
        RateLimits {
            upload_bytes_per_s: up,
            download_bytes_per_s: down,
        }
    }

    #[test]
    fn unlimited_spends_at_once_and_keeps_no_credit() {
        let clock = Clock::start();
        let torrent = Rc::new(Throttle::default());
        let shard = Rc::new(Throttle::default());
        let mut meter = Meter::new(torrent, shard, Direction::Upload, clock);
        assert!(meter.is_unlimited());
        assert!(meter.try_spend(u64::MAX));
        assert_eq!(meter.credit, 0);
    }

    #[test]
    fn the_tighter_bucket_wins_and_credit_carries_over() {
        let clock = Clock::start();
        let torrent = Rc::new(Throttle::new(clock.now(), limits(4000, 0)));
        let shard = Rc::new(Throttle::new(clock.now(), limits(1_000_000, 0)));
        let mut meter = Meter::new(torrent.clone(), shard, Direction::Upload, clock);
        // The torrent's burst is 1000 bytes: a 1500-byte block takes two goes.
        assert!(!meter.try_spend(1500));
        assert_eq!(meter.credit, 1000);
        assert!(meter.wait_for(1500) <= RECHECK);
        // Download is unlimited on both.
        let down = Meter::new(
            torrent,
            Rc::new(Throttle::default()),
            Direction::Download,
            clock,
        );
        assert!(down.is_unlimited());
    }

    #[test]
    fn spend_sleeps_for_the_rate_and_a_raise_applies_within_recheck() {
        LocalExecutorBuilder::default()
            .spawn(|| async move {
                let clock = Clock::start();
                let torrent = Rc::new(Throttle::new(clock.now(), limits(0, 100_000)));
                let shard = Rc::new(Throttle::default());
                let mut meter = Meter::new(torrent.clone(), shard, Direction::Download, clock);
                // 25 KB burst, then 100 KB/s: 75 KB more takes about 0.75 s.
                let start = Instant::now();
                assert!(meter.spend(100_000, || true).await);
                let took = start.elapsed();
                assert!(took >= Duration::from_millis(700), "{took:?}");
                assert!(took < Duration::from_millis(1000), "{took:?}");
                // Down to 1 byte/s: 1 MB would take days; lift the limit while waiting.
                torrent.set(clock.now(), limits(0, 1));
                let lifter = torrent.clone();
                glommio::spawn_local(async move {
                    glommio::timer::sleep(Duration::from_millis(200)).await;
                    lifter.set(clock.now(), limits(0, 0));
                })
                .detach();
                let start = Instant::now();
                assert!(meter.spend(1_000_000, || true).await);
                let took = start.elapsed();
                assert!(took < Duration::from_millis(200) + RECHECK * 2, "{took:?}");
                // A transfer that ends while it waits gives up within one sleep.
                torrent.set(clock.now(), limits(0, 1));
                let start = Instant::now();
                assert!(!meter.fill(1_000_000, || start.elapsed() < RECHECK).await);
                assert!(start.elapsed() < RECHECK * 3);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
