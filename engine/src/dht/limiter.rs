//! Per-IP rate limit on inbound queries: a token bucket per source address, so one host
//! flooding us with queries costs us at most `per_ip_burst` answers and then
//! `per_ip_per_s` answers a second, while everyone else is served as usual.
//!
//! Bound: at most `ips_max` addresses are tracked. A new address when the table is full
//! evicts the address heard from longest ago (a full bucket and an evicted one behave the
//! same, so evicting idle addresses loses nothing; a spoofed-address flood can at worst
//! reset some buckets, and every packet still costs it one token).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Tokens are kept in millionths of a query so refill is exact at any rate.
const UNITS: u64 = 1_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Sustained queries per second answered per address.
    pub per_ip_per_s: u32,
    /// Queries answered back to back before the rate applies.
    pub per_ip_burst: u32,
    /// Addresses tracked.
    pub ips_max: usize,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            per_ip_per_s: 10,
            per_ip_burst: 40,
            ips_max: 4_096,
        }
    }
}

#[derive(Debug)]
pub struct Limiter {
    config: LimiterConfig,
    /// Tokens (in [`UNITS`]) and the time they were counted at.
    buckets: HashMap<Ipv4Addr, (u64, Duration)>,
}

impl Limiter {
    pub fn new(config: LimiterConfig) -> Limiter {
        Limiter {
            config,
            buckets: HashMap::new(),
        }
    }

    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Takes one token for `ip`; false means drop the query.
    pub fn allow(&mut self, now: Duration, ip: Ipv4Addr) -> bool {
        let burst = u64::from(self.config.per_ip_burst) * UNITS;
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.config.ips_max {
            if let Some(stalest) = self.buckets.iter().min_by_key(|(_, (_, t))| *t) {
                let stalest = *stalest.0;
                self.buckets.remove(&stalest);
            }
        }
        let (units, at) = self.buckets.entry(ip).or_insert((burst, now));
        let elapsed = now.saturating_sub(*at);
        let refill = elapsed.as_micros() as u64 * u64::from(self.config.per_ip_per_s);
        *units = units.saturating_add(refill).min(burst);
        *at = now.max(*at);
        if *units >= UNITS {
            *units -= UNITS;
            true
        } else {
            false
        }
    }

    /// Forgets addresses whose bucket has refilled (they are indistinguishable from new).
    pub fn forget_idle(&mut self, now: Duration) {
        let rate = u64::from(self.config.per_ip_per_s.max(1));
        let full = u64::from(self.config.per_ip_burst) * UNITS;
        self.buckets.retain(|_, (units, at)| {
            let elapsed = now.saturating_sub(*at).as_micros() as u64;
            units.saturating_add(elapsed.saturating_mul(rate)) < full
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_rate_per_address() {
        let cfg = LimiterConfig {
            per_ip_per_s: 10,
            per_ip_burst: 5,
            ips_max: 16,
        };
        let mut l = Limiter::new(cfg);
        let a = Ipv4Addr::new(1, 1, 1, 1);
        let b = Ipv4Addr::new(2, 2, 2, 2);
        let granted = (0..100).filter(|_| l.allow(ms(0), a)).count();
        assert_eq!(granted, 5);
        assert!(l.allow(ms(0), b), "another address is unaffected");
        assert!(!l.allow(ms(50), a));
        assert!(l.allow(ms(100), a), "one token per 100 ms at 10/s");
        // Over 10 s of flood, about burst + 10/s * 10 s are granted.
        let granted = (0..10_000).filter(|i| l.allow(ms(100 + i), a)).count();
        assert!((99..=106).contains(&granted), "{granted}");
    }

    #[test]
    fn table_is_bounded_and_idle_entries_are_forgotten() {
        let cfg = LimiterConfig {
            per_ip_per_s: 10,
            per_ip_burst: 5,
            ips_max: 8,
        };
        let mut l = Limiter::new(cfg);
        for i in 0..1000u32 {
            l.allow(ms(u64::from(i)), Ipv4Addr::from(i));
            assert!(l.tracked() <= 8);
        }
        l.forget_idle(ms(1000 + 600));
        assert_eq!(l.tracked(), 0);
    }
}
