//! Finding who sent bad data ("smart ban", as libtorrent calls it).
//!
//! A piece that fails its hash usually holds blocks from several peers, and blaming all of
//! them would ban honest peers alongside the liar. So a failed piece keeps a digest of each
//! block and who sent it; when the piece later passes, every block whose digest differs
//! from the verified one convicts its sender at once. A piece from a single peer is also a
//! strike against it (a ban after `hash_failures_to_ban`), for the peer that keeps sending
//! the same bad piece when nobody else has it.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use crate::{Sha1Digest, BLOCK_LEN};

/// Pieces whose failed blocks we remember, at most: each costs about 28 bytes per block.
const SUSPECT_PIECES_MAX: usize = 1024;
/// Failed copies of one piece remembered, at most.
const SUSPECT_COPIES_MAX: usize = 4;
/// Addresses with strikes remembered, at most; past it the oldest is forgotten, so
/// addresses rotated through the table cost each other peer at most its own entry.
const STRIKES_MAX: usize = 10_000;

/// What a ban or a strike applies to: a host, except on loopback, where every local
/// process shares the address and banning it would ban innocent local peers with the
/// guilty one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum BanKey {
    Host(IpAddr),
    Endpoint(SocketAddr),
}

impl BanKey {
    pub fn of(addr: SocketAddr) -> BanKey {
        if addr.ip().is_loopback() {
            BanKey::Endpoint(addr)
        } else {
            BanKey::Host(addr.ip())
        }
    }
}

/// What a hash result proves about a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Finding {
    /// It alone sent a piece that failed: its count of such pieces so far.
    Strike(SocketAddr, u32),
    /// Its block differs from the verified piece: it sent bad data.
    Guilty(SocketAddr),
}

#[derive(Debug, Default)]
pub(super) struct Blame {
    /// Pieces under way: who sent each received block (block offset, sender).
    senders: HashMap<u32, Vec<(u32, SocketAddr)>>,
    /// Failed pieces with several senders: what each sent.
    suspects: HashMap<u32, Vec<(u32, SocketAddr, Sha1Digest)>>,
    strikes: HashMap<BanKey, u32>,
    /// `strikes`' keys, oldest first.
    strike_order: VecDeque<BanKey>,
}

impl Blame {
    /// Panics unless every table is within its bound and the strike order lists each
    /// struck host once.
    #[cfg(any(test, feature = "invariants"))]
    pub fn check_invariants(&self) {
        assert!(
            self.suspects.len() <= SUSPECT_PIECES_MAX,
            "suspect pieces over bound"
        );
        assert!(self.strikes.len() <= STRIKES_MAX, "strike table over bound");
        assert_eq!(self.strikes.len(), self.strike_order.len(), "strike order");
    }

    pub fn on_block(&mut self, piece: u32, offset: u32, from: SocketAddr) {
        self.senders.entry(piece).or_default().push((offset, from));
    }

    /// Whether [`Blame::on_failed`] / [`Blame::on_verified`] need per-block digests.
    pub fn wants_digests(&self, piece: u32, ok: bool) -> bool {
        if ok {
            self.suspects.contains_key(&piece)
        } else {
            self.senders.contains_key(&piece)
        }
    }

    /// The piece failed. `digests`: SHA-1 of each 16 KiB block of the failed data, when
    /// [`Blame::wants_digests`] asked for them.
    pub fn on_failed(&mut self, piece: u32, digests: &[Sha1Digest]) -> Vec<Finding> {
        let senders = self.senders.remove(&piece).unwrap_or_default();
        let mut findings = Vec::new();
        let remembered = !digests.is_empty()
            && (self.suspects.len() < SUSPECT_PIECES_MAX || self.suspects.contains_key(&piece));
        if remembered {
            let entry = self.suspects.entry(piece).or_default();
            // Keep a few failed copies of a piece, not every one a liar can send.
            let room = (SUSPECT_COPIES_MAX * digests.len()).saturating_sub(entry.len());
            for &(offset, from) in senders.iter().take(room) {
                if let Some(d) = digests.get((offset / BLOCK_LEN) as usize) {
                    entry.push((offset, from, *d));
                }
            }
            if several(&senders) {
                // Wait for the proof rather than blame every sender.
                return findings;
            }
        }
        let mut seen: Vec<SocketAddr> = Vec::new();
        for (_, from) in senders {
            if seen.contains(&from) {
                continue;
            }
            seen.push(from);
            let key = BanKey::of(from);
            if !self.strikes.contains_key(&key) {
                if self.strikes.len() >= STRIKES_MAX {
                    if let Some(oldest) = self.strike_order.pop_front() {
                        self.strikes.remove(&oldest);
                    }
                }
                self.strike_order.push_back(key);
            }
            let n = self.strikes.entry(key).or_default();
            *n += 1;
            findings.push(Finding::Strike(from, *n));
        }
        findings
    }

    /// The piece passed. `digests` as for [`Blame::on_failed`], of the good data.
    pub fn on_verified(&mut self, piece: u32, digests: &[Sha1Digest]) -> Vec<Finding> {
        self.senders.remove(&piece);
        let Some(suspects) = self.suspects.remove(&piece) else {
            return Vec::new();
        };
        let mut guilty: Vec<SocketAddr> = Vec::new();
        for (offset, from, digest) in suspects {
            let good = digests.get((offset / BLOCK_LEN) as usize);
            if good.is_some_and(|g| *g != digest) && !guilty.contains(&from) {
                guilty.push(from);
            }
        }
        guilty.into_iter().map(Finding::Guilty).collect()
    }
}

fn several(senders: &[(u32, SocketAddr)]) -> bool {
    senders.iter().any(|(_, a)| *a != senders[0].1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Sha1;

    fn addr(n: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, n], 1))
    }

    #[test]
    fn a_lone_sender_gets_strikes_and_is_convicted_once_another_copy_passes() {
        let mut b = Blame::default();
        let bad = [Sha1::digest(b"x"), Sha1::digest(b"b")];
        for round in 1..=2 {
            b.on_block(0, 0, addr(1));
            b.on_block(0, BLOCK_LEN, addr(1));
            assert!(b.wants_digests(0, false));
            assert_eq!(b.on_failed(0, &bad), vec![Finding::Strike(addr(1), round)]);
        }
        b.on_block(0, 0, addr(2));
        b.on_block(0, BLOCK_LEN, addr(2));
        let good = [Sha1::digest(b"a"), Sha1::digest(b"b")];
        assert_eq!(b.on_verified(0, &good), vec![Finding::Guilty(addr(1))]);
    }

    #[test]
    fn a_mixed_piece_convicts_only_the_peer_whose_block_differs() {
        let mut b = Blame::default();
        let good = [Sha1::digest(b"a"), Sha1::digest(b"b")];
        let bad = [Sha1::digest(b"a"), Sha1::digest(b"x")];
        b.on_block(3, 0, addr(1));
        b.on_block(3, BLOCK_LEN, addr(2));
        assert!(b.wants_digests(3, false));
        assert!(b.on_failed(3, &bad).is_empty(), "no one is blamed yet");
        assert!(b.wants_digests(3, true));
        b.on_block(3, 0, addr(1));
        b.on_block(3, BLOCK_LEN, addr(1));
        assert_eq!(b.on_verified(3, &good), vec![Finding::Guilty(addr(2))]);
        assert!(!b.wants_digests(3, true));
    }

    #[test]
    fn loopback_peers_are_told_apart_by_port() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert_ne!(BanKey::of(a), BanKey::of(b));
        assert_eq!(
            BanKey::of(addr(1)),
            BanKey::of(SocketAddr::from(([10, 0, 0, 1], 2)))
        );
    }

    fn nth_addr(n: u32) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + n), 1))
    }

    /// One strike from a single-sender piece of `from`.
    fn strike(b: &mut Blame, from: SocketAddr) -> Vec<Finding> {
        b.on_block(9, 0, from);
        b.on_failed(9, &[Sha1::digest(b"bad")])
    }

    #[test]
    fn a_full_strike_table_forgets_only_its_oldest_entry() {
        let mut b = Blame::default();
        for n in 0..STRIKES_MAX as u32 {
            strike(&mut b, nth_addr(n));
        }
        // One more address: the table is full, and only the oldest (0) makes room.
        strike(&mut b, nth_addr(STRIKES_MAX as u32));
        assert_eq!(
            strike(&mut b, nth_addr(1)),
            vec![Finding::Strike(nth_addr(1), 2)],
            "rotating addresses must not wipe everyone's strikes"
        );
        assert_eq!(
            strike(&mut b, nth_addr(0)),
            vec![Finding::Strike(nth_addr(0), 1)]
        );
        assert!(b.strikes.len() <= STRIKES_MAX);
    }
}
