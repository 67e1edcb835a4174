//! The peers other nodes announce to us (`announce_peer`), served back in `get_peers`.
//!
//! Bounds: at most [`StorageConfig::peers_per_hash_max`] peers per info hash (a new peer
//! when full replaces the one announced longest ago) and at most
//! [`StorageConfig::info_hashes_max`] info hashes (a new hash when full evicts the hash
//! first stored longest ago). Peers expire [`StorageConfig::peer_ttl`] after their latest
//! announce; a hash with no peers left is forgotten.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddrV4;
use std::time::Duration;

use super::id::NodeId;
use crate::rng::SplitMix64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageConfig {
    pub peers_per_hash_max: usize,
    pub info_hashes_max: usize,
    pub peer_ttl: Duration,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            peers_per_hash_max: 100,
            info_hashes_max: 5_000,
            peer_ttl: Duration::from_secs(30 * 60),
        }
    }
}

#[derive(Debug)]
struct Entry {
    /// Peer and the time of its latest announce.
    peers: Vec<(SocketAddrV4, Duration)>,
    /// Key in `order`.
    seq: u64,
}

#[derive(Debug)]
pub struct Storage {
    config: StorageConfig,
    hashes: HashMap<NodeId, Entry>,
    /// Insertion order of `hashes`, for eviction of the oldest.
    order: BTreeMap<u64, NodeId>,
    next_seq: u64,
}

impl Storage {
    pub fn new(config: StorageConfig) -> Storage {
        Storage {
            config,
            hashes: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
        }
    }

    pub fn hash_count(&self) -> usize {
        self.hashes.len()
    }

    pub fn peer_count(&self, info_hash: &NodeId) -> usize {
        self.hashes.get(info_hash).map_or(0, |e| e.peers.len())
    }

    /// Records that `peer` announced `info_hash` at `now`.
    pub fn announce(&mut self, now: Duration, info_hash: NodeId, peer: SocketAddrV4) {
        if !self.hashes.contains_key(&info_hash) {
            if self.hashes.len() >= self.config.info_hashes_max {
                if let Some((_, oldest)) = self.order.pop_first() {
                    self.hashes.remove(&oldest);
                }
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.insert(seq, info_hash);
            self.hashes.insert(
                info_hash,
                Entry {
                    peers: Vec::new(),
                    seq,
                },
            );
        }
        let entry = self.hashes.get_mut(&info_hash).expect("inserted above");
        if let Some(slot) = entry.peers.iter_mut().find(|(p, _)| *p == peer) {
            slot.1 = now;
        } else if entry.peers.len() < self.config.peers_per_hash_max {
            entry.peers.push((peer, now));
        } else if let Some(oldest) = entry.peers.iter_mut().min_by_key(|(_, t)| *t) {
            *oldest = (peer, now);
        }
    }

    /// Up to `max` live peers for `info_hash`, a random selection when there are more.
    pub(crate) fn peers(
        &self,
        now: Duration,
        info_hash: &NodeId,
        max: usize,
        rng: &mut SplitMix64,
    ) -> Vec<SocketAddrV4> {
        let Some(entry) = self.hashes.get(info_hash) else {
            return Vec::new();
        };
        let mut live: Vec<SocketAddrV4> = entry
            .peers
            .iter()
            .filter(|(_, t)| now < *t + self.config.peer_ttl)
            .map(|(p, _)| *p)
            .collect();
        if live.len() > max {
            for i in 0..max {
                let j = i + rng.below_u64((live.len() - i) as u64) as usize;
                live.swap(i, j);
            }
            live.truncate(max);
        }
        live
    }

    /// Up to `max` stored info hashes, a random selection (BEP 51 samples).
    pub(crate) fn sample(&self, max: usize, rng: &mut SplitMix64) -> Vec<NodeId> {
        let n = self.order.len();
        if n <= max {
            return self.order.values().copied().collect();
        }
        let start = rng.below_u64(n as u64) as usize;
        self.order
            .values()
            .cycle()
            .skip(start)
            .take(max)
            .copied()
            .collect()
    }

    /// Drops expired peers and empty hashes.
    pub fn expire(&mut self, now: Duration) {
        let ttl = self.config.peer_ttl;
        let order = &mut self.order;
        self.hashes.retain(|_, e| {
            e.peers.retain(|(_, t)| now < *t + ttl);
            if e.peers.is_empty() {
                order.remove(&e.seq);
            }
            !e.peers.is_empty()
        });
    }

    pub fn check_invariants(&self) {
        assert_eq!(self.hashes.len(), self.order.len());
        assert!(self.hashes.len() <= self.config.info_hashes_max);
        for (h, e) in &self.hashes {
            assert_eq!(self.order.get(&e.seq), Some(h));
            assert!(e.peers.len() <= self.config.peers_per_hash_max);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn peer(n: u32) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(0x0100_0000 + n), 6881)
    }

    fn hash(n: u32) -> NodeId {
        let mut id = [0u8; 20];
        id[..4].copy_from_slice(&n.to_be_bytes());
        NodeId(id)
    }

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn peers_per_hash_are_bounded_and_oldest_replaced() {
        let cfg = StorageConfig {
            peers_per_hash_max: 3,
            ..StorageConfig::default()
        };
        let mut st = Storage::new(cfg);
        let mut rng = SplitMix64::new(1);
        for i in 0..3 {
            st.announce(s(i), hash(1), peer(i as u32));
        }
        st.announce(s(10), hash(1), peer(0)); // refresh peer 0
        st.announce(s(11), hash(1), peer(9)); // replaces peer 1, the oldest
        let mut got = st.peers(s(12), &hash(1), 10, &mut rng);
        got.sort();
        assert_eq!(got, vec![peer(0), peer(2), peer(9)]);
        assert_eq!(st.peers(s(12), &hash(1), 2, &mut rng).len(), 2);
        st.check_invariants();
    }

    #[test]
    fn hashes_are_bounded_and_oldest_evicted() {
        let cfg = StorageConfig {
            info_hashes_max: 4,
            ..StorageConfig::default()
        };
        let mut st = Storage::new(cfg);
        let mut rng = SplitMix64::new(1);
        for i in 0..10 {
            st.announce(s(0), hash(i), peer(i));
            st.check_invariants();
        }
        assert_eq!(st.hash_count(), 4);
        assert_eq!(st.peer_count(&hash(5)), 0);
        assert_eq!(st.peer_count(&hash(9)), 1);
        let mut sample = st.sample(10, &mut rng);
        sample.sort();
        assert_eq!(sample, vec![hash(6), hash(7), hash(8), hash(9)]);
        assert_eq!(st.sample(2, &mut rng).len(), 2);
    }

    #[test]
    fn peers_expire_after_the_ttl() {
        let mut st = Storage::new(StorageConfig::default());
        let mut rng = SplitMix64::new(1);
        st.announce(s(0), hash(1), peer(1));
        st.announce(s(1000), hash(1), peer(2));
        let at = s(30 * 60 + 1);
        assert_eq!(st.peers(at, &hash(1), 10, &mut rng), vec![peer(2)]);
        st.expire(at);
        assert_eq!(st.peer_count(&hash(1)), 1);
        st.expire(s(10_000));
        assert_eq!(st.hash_count(), 0);
        st.check_invariants();
    }
}
