//! Who a shard talks to: the IP blocklist, and a cap on connections per IP address.
//!
//! Why a per-IP cap: without it one host can open enough connections to hold every slot a
//! torrent has, or a shard's whole connection budget. The cap counts connections in
//! progress (handshaking) and established, incoming and outgoing, on this shard.
//!
//! Loopback may be exempt ([`SwarmConfig::per_ip_exempt_loopback`](super::SwarmConfig)):
//! tests and benchmarks run hundreds of simulated peers from 127.0.0.1, which the cap would
//! otherwise refuse. A real loopback peer is a local process, already trusted as much as
//! the user.
//!
//! Bound: the map holds one entry per address with at least one connection, so at most as
//! many entries as the shard holds connections (`max_connections_per_shard`); an entry
//! goes when its count drops to 0.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::Arc;

use ccbt_engine::blocklist::Blocklist;
use thiserror::Error;

use super::stats::{RefusedConnection, ShardStats};

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refusal {
    #[error("the address is blocklisted")]
    Blocked,
    #[error("{0} connections with this address already")]
    PerIpCap(usize),
}

/// Connections held per address; only addresses with at least one are present.
type Counts = Rc<RefCell<HashMap<IpAddr, usize>>>;

/// One shard's blocklist and per-IP counts.
pub struct IpGuard {
    blocklist: RefCell<Arc<Blocklist>>,
    counts: Counts,
    max_per_ip: Cell<usize>,
    exempt_loopback: bool,
    /// Where refusals are counted (the shard's counters, which metrics read).
    stats: Arc<ShardStats>,
}

/// One connection's place under its address's cap, given back when dropped.
pub struct IpSlot {
    /// `None` for an exempt address, which is not counted.
    held: Option<(IpAddr, Counts)>,
}

impl IpGuard {
    /// `max_per_ip == 0` refuses every non-exempt address.
    pub fn new(max_per_ip: usize, exempt_loopback: bool, stats: Arc<ShardStats>) -> IpGuard {
        IpGuard {
            blocklist: RefCell::new(Arc::new(Blocklist::new())),
            counts: Rc::default(),
            max_per_ip: Cell::new(max_per_ip),
            exempt_loopback,
            stats,
        }
    }

    /// Replaces the blocklist; connections already open stay (the next check sees it).
    pub fn set_blocklist(&self, list: Arc<Blocklist>) {
        *self.blocklist.borrow_mut() = list;
    }

    /// Whether `ip` may be talked to at all (the blocklist only). Counts a refusal.
    pub fn allowed(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.blocklist.borrow().contains(ip) {
            self.stats.refused(RefusedConnection::Blocklist);
            tracing::debug!(%ip, "blocklisted address refused");
            return Err(Refusal::Blocked);
        }
        Ok(())
    }

    /// Admits one more connection with `ip`: not blocklisted and under the cap. The slot
    /// must be held for as long as the connection lives.
    /// A new cap (a config reload); connections over it stay, new ones wait.
    pub fn set_max_per_ip(&self, max_per_ip: usize) {
        self.max_per_ip.set(max_per_ip);
    }

    pub fn admit(&self, ip: IpAddr) -> Result<IpSlot, Refusal> {
        let ip = ip.to_canonical();
        self.allowed(ip)?;
        if self.exempt_loopback && ip.is_loopback() {
            return Ok(IpSlot { held: None });
        }
        let mut counts = self.counts.borrow_mut();
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.max_per_ip.get() {
            if *count == 0 {
                counts.remove(&ip);
            }
            self.stats.refused(RefusedConnection::PerIp);
            tracing::debug!(%ip, "per-IP connection cap reached");
            return Err(Refusal::PerIpCap(self.max_per_ip.get()));
        }
        *count += 1;
        Ok(IpSlot {
            held: Some((ip, self.counts.clone())),
        })
    }

    /// Connections refused so far: (blocklisted, over the per-IP cap).
    pub fn refused(&self) -> (u64, u64) {
        (
            self.stats.refused_count(RefusedConnection::Blocklist),
            self.stats.refused_count(RefusedConnection::PerIp),
        )
    }

    /// Addresses with at least one counted connection.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.counts.borrow().len()
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Some((ip, counts)) = self.held.take() {
            let mut counts = counts.borrow_mut();
            if let Some(count) = counts.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(&ip);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccbt_engine::blocklist::IpRange;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cap_refuses_the_next_and_frees_on_drop() {
        let guard = IpGuard::new(2, false, Arc::default());
        let a = guard.admit(ip("10.0.0.1")).unwrap();
        let _b = guard.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            guard.admit(ip("10.0.0.1")).err(),
            Some(Refusal::PerIpCap(2))
        );
        // The same host as an IPv4-mapped IPv6 address counts as the same host.
        assert!(guard.admit(ip("::ffff:10.0.0.1")).is_err());
        let _other = guard.admit(ip("10.0.0.2")).unwrap();
        drop(a);
        let _c = guard.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(guard.refused(), (0, 2));
    }

    #[test]
    fn entries_go_when_their_count_drops_to_zero() {
        let guard = IpGuard::new(1, false, Arc::default());
        let slots: Vec<_> = (1..=50u8)
            .map(|i| guard.admit(IpAddr::from([10, 0, 0, i])).unwrap())
            .collect();
        assert_eq!(guard.tracked(), 50);
        drop(slots);
        assert_eq!(guard.tracked(), 0);
        let none = IpGuard::new(0, false, Arc::default());
        assert!(none.admit(ip("10.0.0.1")).is_err());
        assert_eq!(none.tracked(), 0);
    }

    #[test]
    fn loopback_exemption_skips_the_cap_not_the_blocklist() {
        let guard = IpGuard::new(1, true, Arc::default());
        let held: Vec<_> = (0..10)
            .map(|_| guard.admit(ip("127.0.0.1")).unwrap())
            .collect();
        assert_eq!(guard.tracked(), 0);
        drop(held);
        guard.set_blocklist(Arc::new(Blocklist::from_iter_ranges([IpRange::V4 {
            first: u32::from(std::net::Ipv4Addr::LOCALHOST),
            last: u32::from(std::net::Ipv4Addr::LOCALHOST),
        }])));
        assert_eq!(guard.admit(ip("127.0.0.1")).err(), Some(Refusal::Blocked));
        assert_eq!(guard.allowed(ip("127.0.0.2")), Ok(()));
        assert_eq!(guard.refused(), (1, 0));
        let strict = IpGuard::new(1, false, Arc::default());
        let _one = strict.admit(ip("127.0.0.1")).unwrap();
        assert!(strict.admit(ip("127.0.0.1")).is_err());
    }
}
