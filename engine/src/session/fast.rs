//! The Fast extension's (BEP 6) sets: pieces a choked peer may still fetch (allowed fast,
//! both ways) and pieces a peer suggests we fetch first. Have-all/none and reject live in
//! the session itself.
//!
//! The allowed-fast set is computed as BEP 6 specifies, from the peer's IPv4 address
//! masked to /24 and the info hash, so the same host gets the same pieces from every
//! connection (reconnecting does not buy it new ones). IPv6 peers get none: BEP 6 defines
//! the set for IPv4 only.
//!
//! Bounds: what a peer tells us is kept up to [`ALLOWED_IN_MAX`] allowed pieces and
//! [`SUGGESTED_MAX`] suggestions (further allowed pieces are ignored; a further suggestion
//! pushes out the oldest). What we serve a choked peer under its allowed set is capped at
//! [`CHOKED_PIECES_BUDGET`] times the set's pieces in bytes until it is unchoked, counted
//! per host (/24) across its connections ([`ChokedBudgets`]); past that its requests are
//! refused like any other while choked.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::hash::Sha1;
#[cfg(test)]
use crate::Sha1Digest;
use crate::{Bitfield, InfoHash};

/// Allowed-fast pieces we give a peer (libtorrent's and BEP 6's default).
pub const ALLOWED_FAST_SET_SIZE: usize = 10;
/// Allowed-fast pieces we keep of what a peer allows us.
pub const ALLOWED_IN_MAX: usize = 32;
/// Suggestions we keep of a peer's.
pub const SUGGESTED_MAX: usize = 16;
/// How many times over a choked peer may fetch its allowed set before we refuse.
pub const CHOKED_PIECES_BUDGET: u64 = 2;

/// BEP 6's allowed-fast set of `k` pieces for a peer at `ip` (IPv4 only), in the order
/// the algorithm yields them. Fewer when the torrent has fewer pieces.
pub fn allowed_fast_set(ip: IpAddr, info_hash: &InfoHash, pieces: u32, k: usize) -> Vec<u32> {
    let IpAddr::V4(v4) = ip else {
        return Vec::new();
    };
    let k = k.min(pieces as usize);
    let mut set = Vec::with_capacity(k);
    let mut x = Vec::with_capacity(24);
    x.extend_from_slice(&(u32::from(v4) & 0xffff_ff00).to_be_bytes());
    x.extend_from_slice(info_hash.as_bytes());
    while set.len() < k {
        let digest = Sha1::digest(&x);
        let bytes = digest.as_bytes();
        for word in bytes.chunks_exact(4) {
            if set.len() >= k {
                break;
            }
            let y = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            let index = y % pieces;
            if !set.contains(&index) {
                set.push(index);
            }
        }
        x.clear();
        x.extend_from_slice(bytes);
    }
    set
}

/// Hosts whose choked allowed-fast spending is remembered, at most; past it the oldest is
/// forgotten (an attacker rotating through more /24s than this gets a fresh budget for
/// each, as it would get a fresh allowed set).
pub const CHOKED_BUDGET_HOSTS_MAX: usize = 4096;

/// Bytes served under allowed fast to choked peers, per IPv4 /24 (what the allowed set is
/// computed for): a host that reconnects carries on with what it spent instead of fetching
/// its set again on every connection. Spending starts again when one of its peers is
/// unchoked. IPv6 peers get no allowed set, so no entry.
#[derive(Debug, Default)]
pub(super) struct ChokedBudgets {
    spent: std::collections::HashMap<u32, u64>,
    /// `spent`'s keys, oldest first.
    order: VecDeque<u32>,
}

impl ChokedBudgets {
    fn host(ip: IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(v4) => Some(u32::from(v4) & 0xffff_ff00),
            IpAddr::V6(_) => None,
        }
    }

    pub fn spent(&self, ip: IpAddr) -> u64 {
        Self::host(ip)
            .and_then(|h| self.spent.get(&h).copied())
            .unwrap_or(0)
    }

    pub fn spend(&mut self, ip: IpAddr, bytes: u64) {
        let Some(host) = Self::host(ip) else { return };
        if !self.spent.contains_key(&host) {
            if self.order.len() >= CHOKED_BUDGET_HOSTS_MAX {
                if let Some(oldest) = self.order.pop_front() {
                    self.spent.remove(&oldest);
                }
            }
            self.order.push_back(host);
        }
        *self.spent.entry(host).or_default() += bytes;
    }

    pub fn reset(&mut self, ip: IpAddr) {
        if let Some(host) = Self::host(ip) {
            if self.spent.remove(&host).is_some() {
                self.order.retain(|&h| h != host);
            }
        }
    }

    #[cfg(any(test, feature = "invariants"))]
    pub fn check_invariants(&self) {
        assert!(
            self.spent.len() <= CHOKED_BUDGET_HOSTS_MAX,
            "choked budgets over bound"
        );
        assert_eq!(self.spent.len(), self.order.len(), "choked budget order");
    }
}

/// One peer's Fast-extension sets.
#[derive(Debug, Default)]
pub(super) struct FastSets {
    /// Pieces it may fetch from us while choked (sent as ALLOWED_FAST once).
    pub allowed_out: Vec<u32>,
    /// Whether `allowed_out` was computed (once, after its first piece list).
    pub offered: bool,
    /// Pieces it lets us fetch while it chokes us.
    pub allowed_in: Vec<u32>,
    /// Pieces it suggests, oldest first.
    pub suggested: VecDeque<u32>,
}

impl FastSets {
    pub fn allows_out(&self, piece: u32) -> bool {
        self.allowed_out.contains(&piece)
    }

    /// Keeps an ALLOWED_FAST of its, within the bound.
    pub fn allow_in(&mut self, piece: u32) {
        if self.allowed_in.len() < ALLOWED_IN_MAX && !self.allowed_in.contains(&piece) {
            self.allowed_in.push(piece);
        }
    }

    /// Keeps a SUGGEST_PIECE of its; the oldest goes when the list is full.
    pub fn suggest(&mut self, piece: u32) {
        if self.suggested.contains(&piece) {
            return;
        }
        if self.suggested.len() >= SUGGESTED_MAX {
            self.suggested.pop_front();
        }
        self.suggested.push_back(piece);
    }

    /// The pieces of `list` that the peer has and we lack, as a piece set for the picker;
    /// `None` when there are none.
    pub fn usable<'a>(
        list: impl IntoIterator<Item = &'a u32>,
        peer_has: &Bitfield,
        we_have: &Bitfield,
    ) -> Option<Bitfield> {
        let mut set: Option<Bitfield> = None;
        for &piece in list {
            if peer_has.get(piece) && !we_have.get(piece) {
                set.get_or_insert_with(|| Bitfield::empty(peer_has.len()))
                    .set(piece);
            }
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// BEP 6's own example: 80.4.4.200, an info hash of 0xaa bytes, 1313 pieces.
    #[test]
    fn the_set_matches_bep_6s_example() {
        let ip: IpAddr = "80.4.4.200".parse().unwrap();
        let hash = Sha1Digest([0xaa; 20]);
        assert_eq!(
            allowed_fast_set(ip, &hash, 1313, 7),
            [1059, 431, 808, 1217, 287, 376, 1188]
        );
        assert_eq!(
            allowed_fast_set(ip, &hash, 1313, 9),
            [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]
        );
        // The same /24 gets the same set; IPv6 none; a small torrent all it has.
        let neighbour: IpAddr = "80.4.4.1".parse().unwrap();
        assert_eq!(
            allowed_fast_set(neighbour, &hash, 1313, 7),
            allowed_fast_set(ip, &hash, 1313, 7)
        );
        assert!(allowed_fast_set("::1".parse().unwrap(), &hash, 1313, 7).is_empty());
        let mut small = allowed_fast_set(ip, &hash, 3, 10);
        small.sort_unstable();
        assert_eq!(small, [0, 1, 2]);
    }

    #[test]
    fn what_a_peer_tells_us_stays_bounded() {
        let mut sets = FastSets::default();
        for piece in 0..1000 {
            sets.allow_in(piece);
            sets.allow_in(piece);
            sets.suggest(piece);
            sets.suggest(piece);
        }
        assert_eq!(sets.allowed_in.len(), ALLOWED_IN_MAX);
        assert_eq!(sets.suggested.len(), SUGGESTED_MAX);
        assert_eq!(sets.suggested.front(), Some(&(1000 - SUGGESTED_MAX as u32)));
    }
}
