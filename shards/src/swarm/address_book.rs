//! The addresses a torrent has learned (from trackers, `--peer` and peer exchange), where
//! each came from, when each may be dialled again, and how many dials are in flight.
//!
//! The book decides *whom* to dial and *when*; the dialling itself is `dial`'s. An
//! address is "claimed" from the moment it is picked until its dial (and, if the
//! handshake succeeded, the whole connection) ends, so one address is never dialled
//! twice at once. After a connection ends the address waits 15 s per failure so far
//! (at least 15 s, at most 300 s) before it is picked again, so a peer that went away
//! is retried, but not in a tight loop. An address that never failed and whose
//! connection worked waits 2 s, doubling each time it ends again (up to 64 s): a peer
//! that restarts its torrent (Transmission does once it has fetched a magnet link's
//! metadata, and it never dials 127.x back) is met again at once, not 15 s later.
//!
//! The book is bounded by [`BOOK_MAX`] addresses. Past it, a newly learned address takes
//! the place of the unclaimed address that failed most often (a dead peer's, or one a
//! tracker handed out to fill the book); when no address has failed, new ones are
//! ignored until one does, or leaves the book (the shard refuses to dial it because it
//! is blocklisted). A book full of dead addresses so never locks out live ones. Every
//! source shares the bound: an address keeps the source it was first learned from.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::ip_guard::Refusal;

/// Addresses remembered per torrent.
const BOOK_MAX: usize = 2000;
/// How long an address whose host is at the shard's per-IP cap waits to be dialled again.
const PER_IP_RETRY: Duration = Duration::from_secs(30);

/// Where an address came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerSource {
    /// A tracker's announce response.
    Tracker,
    /// A peer's PEX message (BEP 11).
    Pex,
    /// A DHT lookup (BEP 5).
    Dht,
    /// A local service discovery announce (BEP 14).
    Lsd,
    /// The user (`--peer`, a magnet link's `x.pe`).
    Manual,
}

impl From<PeerSource> for super::status::PeerOrigin {
    fn from(source: PeerSource) -> Self {
        use super::status::PeerOrigin;
        match source {
            PeerSource::Tracker => PeerOrigin::Tracker,
            PeerSource::Pex => PeerOrigin::Pex,
            PeerSource::Dht => PeerOrigin::Dht,
            PeerSource::Lsd => PeerOrigin::Lsd,
            PeerSource::Manual => PeerOrigin::Manual,
        }
    }
}

/// What we know of an address we learned.
struct BookEntry {
    source: PeerSource,
    /// Claimed: being dialled, or connected through a dial of ours.
    connected: bool,
    next_try: Duration,
    failures: u32,
    /// Connections that worked and then ended, while it never failed.
    rejoins: u32,
}

pub struct AddressBook {
    entries: RefCell<HashMap<SocketAddr, BookEntry>>,
    /// Outgoing connection attempts not yet connected or failed.
    connecting: Cell<usize>,
    /// The port the shard listens on: a loopback address with it is ourselves.
    our_port: u16,
}

impl AddressBook {
    pub fn new(our_port: u16) -> Self {
        AddressBook {
            entries: RefCell::new(HashMap::new()),
            connecting: Cell::new(0),
            our_port,
        }
    }

    /// Adds addresses from `source`, up to [`BOOK_MAX`] in all; ones already known keep
    /// their state. Port 0 and our own listening address on loopback are skipped.
    pub fn learn(&self, peers: &[SocketAddr], source: PeerSource) {
        let mut book = self.entries.borrow_mut();
        // Addresses that may make room, most failures last; found once per call.
        let mut victims: Option<Vec<(u32, SocketAddr)>> = None;
        for &addr in peers {
            if addr.port() == 0 || (addr.port() == self.our_port && addr.ip().is_loopback()) {
                continue;
            }
            if book.len() >= BOOK_MAX && !book.contains_key(&addr) {
                let victims = victims.get_or_insert_with(|| {
                    let mut v: Vec<(u32, SocketAddr)> = book
                        .iter()
                        .filter(|(_, e)| !e.connected && e.failures > 0)
                        .map(|(a, e)| (e.failures, *a))
                        .collect();
                    v.sort_unstable();
                    v
                });
                let Some((_, victim)) = victims.pop() else {
                    break;
                };
                book.remove(&victim);
            }
            book.entry(addr).or_insert(BookEntry {
                source,
                connected: false,
                next_try: Duration::ZERO,
                failures: 0,
                rejoins: 0,
            });
        }
    }

    /// Claims an unclaimed address whose retry time has come, if there is one.
    pub fn claim_next(&self, now: Duration) -> Option<SocketAddr> {
        let mut book = self.entries.borrow_mut();
        let pick = book
            .iter()
            .find(|(_, e)| !e.connected && e.next_try <= now)
            .map(|(a, _)| *a);
        if let Some(addr) = pick {
            let e = book.get_mut(&addr).expect("picked from the book");
            e.connected = true;
        }
        pick
    }

    /// Gives a claimed address back untried (the shard had no connection slot for it).
    pub fn unclaim(&self, addr: SocketAddr) {
        if let Some(e) = self.entries.borrow_mut().get_mut(&addr) {
            e.connected = false;
        }
    }

    /// The shard will not dial `addr`: a blocklisted one is forgotten, one at its per-IP
    /// cap is tried again later.
    pub fn refused(&self, addr: SocketAddr, refusal: Refusal, now: Duration) {
        let mut book = self.entries.borrow_mut();
        match refusal {
            Refusal::Blocked => {
                book.remove(&addr);
            }
            Refusal::PerIpCap(_) => {
                if let Some(e) = book.get_mut(&addr) {
                    e.connected = false;
                    e.next_try = now + PER_IP_RETRY;
                }
            }
        }
    }

    /// A dial to a claimed address is starting.
    pub fn dial_started(&self) {
        self.connecting.set(self.connecting.get() + 1);
    }

    /// A dial's TCP connect finished, either way.
    pub fn dial_settled(&self) {
        self.connecting.set(self.connecting.get() - 1);
    }

    /// Dials not yet settled.
    pub fn dialling(&self) -> usize {
        self.connecting.get()
    }

    /// The dial to `addr` (and its connection, if it got one) ended, at `now`: the
    /// address is free to be claimed again after its back-off.
    pub fn dial_ended(&self, addr: SocketAddr, failed: bool, now: Duration) {
        let mut book = self.entries.borrow_mut();
        if let Some(e) = book.get_mut(&addr) {
            e.connected = false;
            if failed {
                e.failures += 1;
            }
            // Reconnect to a peer that went away, but not in a tight loop.
            let wait = if e.failures == 0 {
                e.rejoins += 1;
                2 << (e.rejoins - 1).min(5)
            } else {
                15 * u64::from(e.failures.clamp(1, 20))
            };
            e.next_try = now + Duration::from_secs(wait);
        }
    }

    /// Where the address `addr` came from, if it is in the book.
    pub fn source_of(&self, addr: &SocketAddr) -> Option<PeerSource> {
        self.entries.borrow().get(addr).map(|e| e.source)
    }

    /// How many addresses in the book came from `source`.
    pub fn count_from(&self, source: PeerSource) -> usize {
        self.entries
            .borrow()
            .values()
            .filter(|e| e.source == source)
            .count()
    }

    /// The soonest an unclaimed address may be dialled, for the run loop's nap.
    pub fn next_retry(&self) -> Option<Duration> {
        self.entries
            .borrow()
            .values()
            .filter(|e| !e.connected)
            .map(|e| e.next_try)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(n: u32) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + n), 6881))
    }

    fn all(n: u32) -> Vec<SocketAddr> {
        (0..n).map(addr).collect()
    }

    #[test]
    fn a_book_full_of_dead_addresses_makes_room_for_new_ones() {
        let book = AddressBook::new(6881);
        book.learn(&all(BOOK_MAX as u32), PeerSource::Tracker);
        let now = Duration::ZERO;
        // Every address fails once, one of them twice; one stays claimed (connected).
        while let Some(a) = book.claim_next(now) {
            book.dial_ended(a, true, now);
            if a == addr(7) {
                book.entries.borrow_mut().get_mut(&a).unwrap().failures += 1;
            }
        }
        book.entries
            .borrow_mut()
            .get_mut(&addr(9))
            .unwrap()
            .connected = true;
        let fresh = addr(BOOK_MAX as u32 + 1);
        book.learn(&[fresh], PeerSource::Pex);
        let entries = book.entries.borrow();
        assert!(entries.contains_key(&fresh), "a new address was locked out");
        assert!(
            !entries.contains_key(&addr(7)),
            "the most failed one makes room"
        );
        assert!(entries.contains_key(&addr(9)), "a claimed address stays");
        assert_eq!(entries.len(), BOOK_MAX);
        assert_eq!(entries[&fresh].source, PeerSource::Pex);
    }

    #[test]
    fn an_address_keeps_the_source_it_was_first_learned_from() {
        let book = AddressBook::new(6881);
        book.learn(&[addr(1)], PeerSource::Manual);
        book.learn(&[addr(1), addr(2), addr(3)], PeerSource::Pex);
        book.learn(&[addr(3), addr(4)], PeerSource::Tracker);
        assert_eq!(book.count_from(PeerSource::Manual), 1);
        assert_eq!(book.count_from(PeerSource::Pex), 2);
        assert_eq!(book.count_from(PeerSource::Tracker), 1);
    }

    #[test]
    fn a_working_peer_that_left_is_met_again_soon_and_a_failing_one_later() {
        let book = AddressBook::new(6881);
        book.learn(&[addr(1), addr(2)], PeerSource::Tracker);
        let now = Duration::ZERO;
        let (a, b) = (book.claim_next(now).unwrap(), book.claim_next(now).unwrap());
        book.dial_ended(a, false, now);
        book.dial_ended(b, true, now);
        let next = |x| book.entries.borrow()[&x].next_try;
        assert_eq!(next(a), Duration::from_secs(2));
        assert_eq!(next(b), Duration::from_secs(15));
        // Each further end doubles the wait, up to 64 s.
        for want in [4, 8, 16, 32, 64, 64] {
            book.entries.borrow_mut().get_mut(&a).unwrap().connected = true;
            book.dial_ended(a, false, now);
            assert_eq!(next(a), Duration::from_secs(want));
        }
        // Once it fails, it is a failing peer.
        book.dial_ended(a, true, now);
        assert_eq!(next(a), Duration::from_secs(15));
    }

    #[test]
    fn a_full_book_of_untried_addresses_keeps_them() {
        let book = AddressBook::new(6881);
        book.learn(&all(BOOK_MAX as u32 + 10), PeerSource::Tracker);
        assert_eq!(book.entries.borrow().len(), BOOK_MAX);
        assert!(!book
            .entries
            .borrow()
            .contains_key(&addr(BOOK_MAX as u32 + 1)));
    }
}
