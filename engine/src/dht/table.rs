//! The routing table (BEP 5): 160 k-buckets, bucket `i` holding nodes whose ids share
//! exactly `i` leading bits with ours, so the table knows many nodes near us and a few far
//! away. A fixed array of buckets is used instead of splitting: it has the same contents as
//! a split table for every bucket that fills, and no split bookkeeping.
//!
//! Node states follow BEP 5: *good* if it answered us within [`TableConfig::good_for`] (or
//! has answered once and queried us within that time), *bad* after
//! [`TableConfig::fails_bad`] queries in a row went unanswered, *questionable* otherwise.
//!
//! Bounds: at most `k` nodes and `replacements_max` replacement candidates per bucket, so
//! at most 160 × (k + replacements_max) entries. A new node for a full bucket takes the
//! place of a bad node, or else waits in the replacement cache (the oldest candidate is
//! dropped when it is full) while the caller pings the bucket's stalest questionable node;
//! if that node turns bad, the newest candidate takes its place.

use std::collections::VecDeque;
use std::net::SocketAddrV4;
use std::time::Duration;

use super::id::NodeId;
use super::krpc::CompactNode;

pub const BUCKETS: usize = 160;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableConfig {
    /// Nodes per bucket (BEP 5's K).
    pub k: usize,
    pub replacements_max: usize,
    /// How long an answer keeps a node good.
    pub good_for: Duration,
    /// Unanswered queries in a row that make a node bad.
    pub fails_bad: u8,
    /// A bucket unchanged for this long is refreshed with a lookup inside its range.
    pub refresh_after: Duration,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            k: 8,
            replacements_max: 8,
            good_for: Duration::from_secs(15 * 60),
            fails_bad: 2,
            refresh_after: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Good,
    Questionable,
    Bad,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: NodeId,
    pub addr: SocketAddrV4,
    pub last_response: Option<Duration>,
    /// Latest query or response from it.
    pub last_heard: Duration,
    pub fails: u8,
    /// When we last pinged it to check on it.
    pub pinged_at: Option<Duration>,
}

impl Entry {
    fn new(id: NodeId, addr: SocketAddrV4, now: Duration, responded: bool) -> Entry {
        Entry {
            id,
            addr,
            last_response: responded.then_some(now),
            last_heard: now,
            fails: 0,
            pinged_at: None,
        }
    }

    pub fn state(&self, now: Duration, cfg: &TableConfig) -> NodeState {
        if self.fails >= cfg.fails_bad {
            return NodeState::Bad;
        }
        match self.last_response {
            Some(t) if now < t + cfg.good_for || now < self.last_heard + cfg.good_for => {
                NodeState::Good
            }
            _ => NodeState::Questionable,
        }
    }

    pub fn compact(&self) -> CompactNode {
        CompactNode {
            id: self.id,
            addr: self.addr,
        }
    }
}

/// How a node was heard from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// It sent us a query: alive, but not proven to answer.
    Query,
    /// It answered one of our queries.
    Response,
}

/// What [`Table::heard`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Added,
    Updated,
    /// Kept as a replacement candidate; the caller should ping this node of the full bucket
    /// (its stalest questionable one), if any.
    Waiting {
        ping: Option<CompactNode>,
    },
    /// Our own id, or an id already in the table at another address.
    Rejected,
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    nodes: Vec<Entry>,
    replacements: VecDeque<Entry>,
    last_changed: Duration,
    /// Refresh at the next chance whatever `last_changed` says (set after joining).
    refresh_soon: bool,
}

#[derive(Debug, Clone)]
pub struct Table {
    id: NodeId,
    config: TableConfig,
    buckets: Vec<Bucket>,
}

impl Table {
    pub fn new(id: NodeId, config: TableConfig, now: Duration) -> Table {
        let bucket = Bucket {
            last_changed: now,
            ..Bucket::default()
        };
        Table {
            id,
            config,
            buckets: vec![bucket; BUCKETS],
        }
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// Nodes in the table (not counting replacement candidates).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn bucket_of(&self, id: &NodeId) -> Option<usize> {
        let i = self.id.common_prefix_bits(id);
        (i < BUCKETS).then_some(i)
    }

    /// Notes that `id` at `addr` was heard from, adding it if there is room.
    pub fn heard(&mut self, now: Duration, id: NodeId, addr: SocketAddrV4, how: Heard) -> Inserted {
        let Some(b) = self.bucket_of(&id) else {
            return Inserted::Rejected;
        };
        let cfg = self.config;
        let bucket = &mut self.buckets[b];
        let touch = |e: &mut Entry| {
            e.last_heard = now;
            if how == Heard::Response {
                e.last_response = Some(now);
                e.fails = 0;
            }
        };
        if let Some(e) = bucket.nodes.iter_mut().find(|e| e.id == id) {
            if e.addr != addr {
                return Inserted::Rejected;
            }
            touch(e);
            if how == Heard::Response {
                bucket.last_changed = now;
            }
            return Inserted::Updated;
        }
        if bucket.nodes.iter().any(|e| e.addr == addr) {
            return Inserted::Rejected;
        }
        bucket.replacements.retain(|e| e.id != id && e.addr != addr);
        let fresh = Entry::new(id, addr, now, how == Heard::Response);
        if bucket.nodes.len() < cfg.k {
            bucket.nodes.push(fresh);
            bucket.last_changed = now;
            return Inserted::Added;
        }
        if let Some(bad) = bucket
            .nodes
            .iter_mut()
            .find(|e| e.state(now, &cfg) == NodeState::Bad)
        {
            *bad = fresh;
            bucket.last_changed = now;
            return Inserted::Added;
        }
        if bucket.replacements.len() >= cfg.replacements_max {
            bucket.replacements.pop_front();
        }
        if cfg.replacements_max > 0 {
            bucket.replacements.push_back(fresh);
        }
        let ping = bucket
            .nodes
            .iter_mut()
            .filter(|e| e.state(now, &cfg) == NodeState::Questionable)
            .filter(|e| {
                e.pinged_at
                    .is_none_or(|t| now >= t + Duration::from_secs(60))
            })
            .min_by_key(|e| e.last_heard)
            .map(|e| {
                e.pinged_at = Some(now);
                e.compact()
            });
        Inserted::Waiting { ping }
    }

    /// Notes that a query to `id` at `addr` went unanswered. A node that becomes bad gives
    /// its place to the newest replacement candidate, if there is one.
    pub fn failed(&mut self, now: Duration, id: NodeId, addr: SocketAddrV4) {
        let Some(b) = self.bucket_of(&id) else {
            return;
        };
        let cfg = self.config;
        let bucket = &mut self.buckets[b];
        bucket.replacements.retain(|e| e.id != id);
        let Some(i) = bucket
            .nodes
            .iter()
            .position(|e| e.id == id && e.addr == addr)
        else {
            return;
        };
        let e = &mut bucket.nodes[i];
        e.fails = e.fails.saturating_add(1);
        if e.state(now, &cfg) == NodeState::Bad {
            if let Some(r) = bucket.replacements.pop_back() {
                bucket.nodes[i] = r;
                bucket.last_changed = now;
            }
        }
    }

    /// The `n` non-bad nodes closest to `target`, closest first.
    pub fn closest(&self, now: Duration, target: &NodeId, n: usize) -> Vec<CompactNode> {
        let mut all: Vec<CompactNode> = self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| e.state(now, &self.config) != NodeState::Bad)
            .map(Entry::compact)
            .collect();
        let key = |c: &CompactNode| c.id.distance(target);
        if all.len() > n && n > 0 {
            all.select_nth_unstable_by_key(n - 1, key);
            all.truncate(n);
        }
        all.sort_unstable_by_key(key);
        all.truncate(n);
        all
    }

    /// Buckets due a refresh: unchanged for `refresh_after`, and no deeper than one past the
    /// deepest non-empty bucket (buckets deeper than that cannot hold anyone yet).
    pub fn refresh_due(&self, now: Duration) -> Vec<usize> {
        let deepest = self
            .buckets
            .iter()
            .rposition(|b| !b.nodes.is_empty())
            .map_or(0, |d| (d + 1).min(BUCKETS - 1));
        (0..=deepest)
            .filter(|&i| {
                let b = &self.buckets[i];
                b.refresh_soon || now >= b.last_changed + self.config.refresh_after
            })
            .collect()
    }

    /// Marks every bucket due for refresh: Kademlia's join step after the lookup for our own
    /// id, which fills the far buckets that lookup never passes through.
    pub fn refresh_all_soon(&mut self) {
        for b in &mut self.buckets {
            b.refresh_soon = true;
        }
    }

    /// Marks bucket `i` as refreshed now (a lookup into it was started).
    pub fn mark_refreshed(&mut self, now: Duration, i: usize) {
        if let Some(b) = self.buckets.get_mut(i) {
            b.last_changed = now;
            b.refresh_soon = false;
        }
    }

    /// Up to `max` questionable nodes not pinged in the last minute, stalest first, marked
    /// as pinged: the caller pings them so bad nodes are found before a lookup trips on them.
    pub fn to_ping(&mut self, now: Duration, max: usize) -> Vec<CompactNode> {
        let cfg = self.config;
        let mut due: Vec<&mut Entry> = self
            .buckets
            .iter_mut()
            .flat_map(|b| b.nodes.iter_mut())
            .filter(|e| e.state(now, &cfg) == NodeState::Questionable)
            .filter(|e| {
                e.pinged_at
                    .is_none_or(|t| now >= t + Duration::from_secs(60))
            })
            .collect();
        due.sort_by_key(|e| e.last_heard);
        due.into_iter()
            .take(max)
            .map(|e| {
                e.pinged_at = Some(now);
                e.compact()
            })
            .collect()
    }

    /// Every node in the table, bucket by bucket.
    pub fn nodes(&self) -> impl Iterator<Item = &Entry> {
        self.buckets.iter().flat_map(|b| b.nodes.iter())
    }

    pub fn check_invariants(&self) {
        for (i, b) in self.buckets.iter().enumerate() {
            assert!(b.nodes.len() <= self.config.k);
            assert!(b.replacements.len() <= self.config.replacements_max);
            for e in b.nodes.iter().chain(b.replacements.iter()) {
                assert_eq!(self.id.common_prefix_bits(&e.id), i, "node in wrong bucket");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    /// An id sharing exactly `bits` leading bits with the all-zero id, varied by `n`.
    fn id_in(bits: usize, n: u8) -> NodeId {
        let mut r = [0u8; 20];
        r[19] = n;
        r[18] = 1;
        NodeId([0; 20]).with_prefix_of(bits, &NodeId(r))
    }

    fn addr(n: u32) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(0x0A00_0000 + n), 6881)
    }

    fn table() -> Table {
        Table::new(NodeId([0; 20]), TableConfig::default(), s(0))
    }

    #[test]
    fn bucket_holds_k_then_replacements_wait_and_a_ping_is_asked() {
        let mut t = table();
        for n in 0..8 {
            assert_eq!(
                t.heard(s(1), id_in(3, n), addr(n.into()), Heard::Response),
                Inserted::Added
            );
        }
        assert_eq!(t.len(), 8);
        // All good: the ninth waits, nobody to ping.
        assert_eq!(
            t.heard(s(2), id_in(3, 8), addr(8), Heard::Response),
            Inserted::Waiting { ping: None }
        );
        // 15 minutes later all are questionable: the stalest is to be pinged.
        let later = s(2 + 15 * 60);
        match t.heard(later, id_in(3, 9), addr(9), Heard::Query) {
            Inserted::Waiting { ping: Some(p) } => assert_eq!(p.id, id_in(3, 0)),
            other => panic!("{other:?}"),
        }
        // It fails twice: it is bad and the newest candidate takes its place.
        t.failed(later, id_in(3, 0), addr(0));
        assert_eq!(t.nodes().filter(|e| e.id == id_in(3, 0)).count(), 1);
        t.failed(later, id_in(3, 0), addr(0));
        assert!(t.nodes().all(|e| e.id != id_in(3, 0)));
        assert!(t.nodes().any(|e| e.id == id_in(3, 9)));
        assert_eq!(t.len(), 8);
        t.check_invariants();
    }

    #[test]
    fn replacement_cache_is_bounded() {
        let mut t = table();
        for n in 0..200u8 {
            t.heard(s(1), id_in(0, n), addr(n.into()), Heard::Response);
        }
        t.check_invariants();
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn own_id_and_moved_ids_are_rejected() {
        let mut t = table();
        assert_eq!(
            t.heard(s(1), NodeId([0; 20]), addr(1), Heard::Response),
            Inserted::Rejected
        );
        assert_eq!(
            t.heard(s(1), id_in(5, 1), addr(1), Heard::Response),
            Inserted::Added
        );
        assert_eq!(
            t.heard(s(1), id_in(5, 1), addr(2), Heard::Response),
            Inserted::Rejected
        );
        assert_eq!(
            t.heard(s(1), id_in(5, 2), addr(1), Heard::Response),
            Inserted::Rejected
        );
        assert_eq!(
            t.heard(s(2), id_in(5, 1), addr(1), Heard::Query),
            Inserted::Updated
        );
    }

    #[test]
    fn states_follow_bep5_timing() {
        let cfg = TableConfig::default();
        let mut e = Entry::new(id_in(1, 1), addr(1), s(0), true);
        assert_eq!(e.state(s(899), &cfg), NodeState::Good);
        assert_eq!(e.state(s(900), &cfg), NodeState::Questionable);
        e.last_heard = s(800); // it queried us after answering once
        assert_eq!(e.state(s(1000), &cfg), NodeState::Good);
        let never = Entry::new(id_in(1, 2), addr(2), s(0), false);
        assert_eq!(never.state(s(1), &cfg), NodeState::Questionable);
        e.fails = 2;
        assert_eq!(e.state(s(1), &cfg), NodeState::Bad);
    }

    #[test]
    fn closest_orders_by_xor_distance() {
        let mut t = table();
        for bits in 0..40 {
            t.heard(
                s(1),
                id_in(bits, bits as u8),
                addr(bits as u32),
                Heard::Response,
            );
        }
        let target = id_in(30, 0);
        let got = t.closest(s(1), &target, 8);
        assert_eq!(got.len(), 8);
        assert!(got
            .windows(2)
            .all(|w| w[0].id.distance(&target) <= w[1].id.distance(&target)));
        assert_eq!(got[0].id, id_in(30, 30));
    }

    #[test]
    fn idle_buckets_are_due_for_refresh() {
        let mut t = table();
        t.heard(s(0), id_in(2, 1), addr(1), Heard::Response);
        assert!(t.refresh_due(s(10)).is_empty());
        assert_eq!(t.refresh_due(s(15 * 60)), vec![0, 1, 2, 3]);
        t.mark_refreshed(s(15 * 60), 1);
        assert_eq!(t.refresh_due(s(15 * 60)), vec![0, 2, 3]);
        t.mark_refreshed(s(15 * 60), 0);
        t.refresh_all_soon();
        assert_eq!(t.refresh_due(s(15 * 60)), vec![0, 1, 2, 3]);
        let pings = t.to_ping(s(15 * 60), 4);
        assert_eq!(pings.len(), 1);
        assert!(
            t.to_ping(s(15 * 60 + 1), 4).is_empty(),
            "pinged a second ago"
        );
    }
}
