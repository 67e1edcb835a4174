//! Splitting the global rate limits between shards by what each one uses.
//!
//! A global limit is one number for the whole process, but each shard takes tokens from a
//! bucket of its own (no locks on the hot path). A fixed split (limit / shards) would give
//! a single hot torrent, which lives on one shard, only its shard's part. So every
//! [`EVERY`] each shard publishes its demand (what it used, plus an even share of the limit
//! if a transfer had to wait) in one atomic per shard and direction, and sets its own share
//! to the limit times its part of the total demand. The even share a waiting shard adds is
//! what makes busy shards converge to equal parts: asking for "twice what I got" would keep
//! any split as it was. A shard with no demand keeps a small
//! floor so a new transfer can start and make its demand known; it then grows its share
//! each round until it has its part.
//!
//! The shares may add up to a little more than the limit while they move (each shard reads
//! the others' last demand): by at most the idle shards' floors, [`FLOOR_DIVISOR`]-th of
//! the limit between them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::throttle::{Direction, RateLimits, Throttle};

/// How often shares are worked out again.
pub const EVERY: Duration = Duration::from_millis(250);
/// The share of a shard that uses nothing: limit / (FLOOR_DIVISOR * shards).
const FLOOR_DIVISOR: u64 = 32;

/// Each shard's last published demand, per direction.
pub struct Demand {
    bytes: Vec<[AtomicU64; 2]>,
}

impl Demand {
    pub fn new(shards: usize) -> Arc<Demand> {
        Arc::new(Demand {
            bytes: (0..shards)
                .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
                .collect(),
        })
    }

    fn slot(&self, shard: usize, direction: Direction) -> &AtomicU64 {
        &self.bytes[shard][match direction {
            Direction::Upload => 0,
            Direction::Download => 1,
        }]
    }
}

/// One direction's new share for `shard`, given its demand and everyone's.
pub fn share_of(limit: u64, shards: usize, mine: u64, total: u64) -> u64 {
    if limit == 0 {
        return 0;
    }
    let floor = (limit / (FLOOR_DIVISOR * shards.max(1) as u64)).max(1);
    if total == 0 {
        return (limit / shards.max(1) as u64).max(1);
    }
    let part = (u128::from(limit) * u128::from(mine) / u128::from(total)) as u64;
    part.clamp(floor, limit)
}

/// One round for one shard: publish its demand, read the others', set its shares.
pub fn rebalance(
    throttle: &Throttle,
    demand: &Demand,
    shard: usize,
    global: RateLimits,
    now: Duration,
) {
    let mut shares = RateLimits::default();
    for (direction, limit) in [
        (Direction::Upload, global.upload_bytes_per_s),
        (Direction::Download, global.download_bytes_per_s),
    ] {
        let (used, starved, _share) = throttle.take_usage(direction);
        let even = limit / demand.bytes.len().max(1) as u64;
        let mine = used + if starved { even } else { 0 };
        demand.slot(shard, direction).store(mine, Ordering::Relaxed);
        let total: u64 = (0..demand.bytes.len())
            .map(|s| demand.slot(s, direction).load(Ordering::Relaxed))
            .sum();
        let new = share_of(limit, demand.bytes.len(), mine, total);
        match direction {
            Direction::Upload => shares.upload_bytes_per_s = new,
            Direction::Download => shares.download_bytes_per_s = new,
        }
    }
    if throttle.limits() != shares {
        throttle.set(now, shares);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_busy_shard_gets_nearly_all_and_an_idle_one_a_floor() {
        let limit = 3_200_000;
        assert_eq!(share_of(limit, 2, 800_000, 800_000), limit);
        assert_eq!(share_of(limit, 2, 0, 800_000), limit / 64);
        assert_eq!(share_of(limit, 2, 400_000, 800_000), limit / 2);
        assert_eq!(share_of(limit, 2, 0, 0), limit / 2);
        assert_eq!(share_of(0, 2, 5, 5), 0);
    }

    #[test]
    fn shares_converge_to_what_each_shard_can_use() {
        // Two shards, each with a transfer that would take everything, one starting from
        // the floor: within a few rounds both hold about half, and together no more than
        // the limit plus the floors.
        let limit: u64 = 1 << 20;
        let mut share = [limit / 64, limit];
        for _ in 0..20 {
            // Each uses its whole share, waits for more, and so adds an even share.
            let demand = [share[0] + limit / 2, share[1] + limit / 2];
            let total = demand[0] + demand[1];
            share = [
                share_of(limit, 2, demand[0], total),
                share_of(limit, 2, demand[1], total),
            ];
        }
        let sum = share[0] + share[1];
        assert!(sum <= limit + limit / 32, "{share:?}");
        for s in share {
            assert!(
                (s as f64 - limit as f64 / 2.0).abs() < limit as f64 * 0.05,
                "{share:?}"
            );
        }
    }
}
