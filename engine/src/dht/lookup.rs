//! One iterative lookup (BEP 5, Kademlia): keep the candidates nearest the target sorted
//! by XOR distance, query the closest not yet asked, at most `alpha` at a time, fold the
//! nodes each answer names into the candidates, and stop when the `k` closest live
//! candidates have all answered. A `get_peers` lookup also gathers peers and the tokens
//! the closest nodes gave, for `announce_peer`. A query unanswered for `stall_after` stops
//! counting (neither an `alpha` slot nor a place among the `k`), so one lost packet or dead
//! node delays a lookup by that, not by the full query timeout.
//!
//! Bounds: at most [`CANDIDATES_MAX`] candidates (the farthest are dropped), at most
//! `nodes_per_response_max` nodes taken from one answer, at most [`QUERIES_MAX`] queries,
//! at most `peers_max` distinct peers kept. This type sends nothing: the node asks it what
//! to query next and tells it what came back.

use std::collections::HashSet;
use std::net::SocketAddrV4;
use std::time::Duration;

use super::id::NodeId;
use super::krpc::Response;

/// Candidates kept per lookup.
pub const CANDIDATES_MAX: usize = 64;

/// Queries one lookup may send before it stops whatever the state.
pub const QUERIES_MAX: u32 = 128;

/// A lookup's handle, unique for the node's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LookupId(pub u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// `find_node`: bootstrap and bucket refresh.
    FindNode,
    GetPeers,
    /// `get_peers`, then `announce_peer` to the closest nodes that gave a token.
    Announce {
        port: u16,
        implied_port: bool,
    },
}

/// What a finished lookup did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LookupStats {
    pub queries: u32,
    pub responses: u32,
    pub failures: u32,
    pub peers: u32,
    /// `announce_peer` queries sent at the end.
    pub announced: u32,
    pub duration: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Fresh,
    InFlight { sent_at: Duration },
    Responded,
    Failed,
}

#[derive(Debug, Clone)]
struct Candidate {
    /// Unknown for bootstrap addresses until they answer; sorted first then.
    id: Option<NodeId>,
    addr: SocketAddrV4,
    state: State,
    token: Option<Vec<u8>>,
}

#[derive(Debug)]
pub struct Lookup {
    pub id: LookupId,
    pub target: NodeId,
    pub kind: LookupKind,
    /// Started by the node itself (refresh), not by a caller.
    pub internal: bool,
    /// A query unanswered for this long is *stalled*: it no longer holds one of the `alpha`
    /// slots nor a place among the `k` closest, so the lookup goes on without it (an answer
    /// that comes later is still used). Never, unless set.
    pub stall_after: Duration,
    pub started: Duration,
    pub stats: LookupStats,
    candidates: Vec<Candidate>,
    peers: HashSet<SocketAddrV4>,
    peers_max: usize,
}

impl Lookup {
    pub fn new(
        id: LookupId,
        target: NodeId,
        kind: LookupKind,
        seeds: impl IntoIterator<Item = (Option<NodeId>, SocketAddrV4)>,
        now: Duration,
        peers_max: usize,
    ) -> Lookup {
        let mut l = Lookup {
            id,
            target,
            kind,
            internal: false,
            stall_after: Duration::MAX,
            started: now,
            stats: LookupStats::default(),
            candidates: Vec::new(),
            peers: HashSet::new(),
            peers_max,
        };
        for (id, addr) in seeds {
            l.add(id, addr);
        }
        l
    }

    fn key(&self, id: &Option<NodeId>) -> [u8; 20] {
        id.map_or([0; 20], |id| id.distance(&self.target))
    }

    fn add(&mut self, id: Option<NodeId>, addr: SocketAddrV4) {
        if addr.port() == 0
            || self
                .candidates
                .iter()
                .any(|c| c.addr == addr || (id.is_some() && c.id == id))
        {
            return;
        }
        let key = self.key(&id);
        let at = self.candidates.partition_point(|c| self.key(&c.id) <= key);
        if at >= CANDIDATES_MAX {
            return;
        }
        self.candidates.insert(
            at,
            Candidate {
                id,
                addr,
                state: State::Fresh,
                token: None,
            },
        );
        self.candidates.truncate(CANDIDATES_MAX);
    }

    fn stalled(&self, c: &Candidate, now: Duration) -> bool {
        matches!(c.state, State::InFlight { sent_at } if now.saturating_sub(sent_at) >= self.stall_after)
    }

    /// Queries in flight and not stalled.
    fn in_flight(&self, now: Duration) -> usize {
        self.candidates
            .iter()
            .filter(|c| matches!(c.state, State::InFlight { .. }) && !self.stalled(c, now))
            .count()
    }

    fn any_in_flight(&self) -> bool {
        self.candidates
            .iter()
            .any(|c| matches!(c.state, State::InFlight { .. }))
    }

    /// Indexes of the `k` closest candidates that are neither failed nor stalled.
    fn top(&self, now: Duration, k: usize) -> Vec<usize> {
        (0..self.candidates.len())
            .filter(|&i| {
                let c = &self.candidates[i];
                c.state != State::Failed && !self.stalled(c, now)
            })
            .take(k)
            .collect()
    }

    /// The next node to query, marked in flight, if fewer than `alpha` are in flight and
    /// one of the `k` closest live candidates has not been asked.
    pub fn next_query(
        &mut self,
        now: Duration,
        alpha: usize,
        k: usize,
    ) -> Option<(Option<NodeId>, SocketAddrV4)> {
        if self.in_flight(now) >= alpha || self.stats.queries >= QUERIES_MAX {
            return None;
        }
        let i = self
            .top(now, k)
            .into_iter()
            .find(|&i| self.candidates[i].state == State::Fresh)?;
        let c = &mut self.candidates[i];
        c.state = State::InFlight { sent_at: now };
        self.stats.queries += 1;
        Some((c.id, c.addr))
    }

    /// Undoes [`next_query`](Self::next_query) when the query could not be sent.
    pub fn unsend(&mut self, addr: SocketAddrV4) {
        if let Some(c) = self.candidates.iter_mut().find(|c| c.addr == addr) {
            if matches!(c.state, State::InFlight { .. }) {
                c.state = State::Fresh;
                self.stats.queries -= 1;
            }
        }
    }

    /// Folds in an answer from `addr`. Returns the peers not seen before in this lookup.
    pub fn on_response(
        &mut self,
        addr: SocketAddrV4,
        r: &Response,
        own_id: &NodeId,
        nodes_max: usize,
    ) -> Vec<SocketAddrV4> {
        let Some(i) = self
            .candidates
            .iter()
            .position(|c| c.addr == addr && matches!(c.state, State::InFlight { .. }))
        else {
            return Vec::new();
        };
        self.stats.responses += 1;
        let mut c = self.candidates.remove(i);
        c.state = State::Responded;
        c.token = r.token.clone();
        c.id = Some(r.id);
        // Re-insert at its place now that its id is known.
        let key = self.key(&c.id);
        let at = self.candidates.partition_point(|x| self.key(&x.id) <= key);
        if !self.candidates.iter().any(|x| x.id == c.id) {
            self.candidates.insert(at, c);
        }
        for n in r.nodes.iter().take(nodes_max) {
            if n.id != *own_id {
                self.add(Some(n.id), n.addr);
            }
        }
        let mut fresh = Vec::new();
        if self.kind != LookupKind::FindNode {
            for p in &r.values {
                if self.peers.len() >= self.peers_max {
                    break;
                }
                if self.peers.insert(*p) {
                    fresh.push(*p);
                }
            }
        }
        self.stats.peers = self.peers.len() as u32;
        fresh
    }

    /// Notes that the query to `addr` failed (timeout, error, or the wrong node answered).
    pub fn on_failure(&mut self, addr: SocketAddrV4) {
        if let Some(c) = self
            .candidates
            .iter_mut()
            .find(|c| c.addr == addr && matches!(c.state, State::InFlight { .. }))
        {
            c.state = State::Failed;
            self.stats.failures += 1;
        }
    }

    /// True when the `k` closest candidates neither failed nor stalled have all answered
    /// (or none is left, or the query budget is spent and nothing is in flight).
    pub fn is_done(&self, now: Duration, k: usize) -> bool {
        let top = self.top(now, k);
        if top.is_empty() {
            // Nothing but stalled queries left: wait for them rather than end with nothing.
            return !self.any_in_flight();
        }
        if top
            .iter()
            .all(|&i| self.candidates[i].state == State::Responded)
        {
            return true;
        }
        self.stats.queries >= QUERIES_MAX && !self.any_in_flight()
    }

    /// The `k` closest nodes that answered with a token: where to announce.
    pub fn announce_targets(&self, k: usize) -> Vec<(NodeId, SocketAddrV4, Vec<u8>)> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .filter_map(|c| Some((c.id?, c.addr, c.token.clone()?)))
            .take(k)
            .collect()
    }

    /// The `k` closest nodes that answered, closest first.
    pub fn closest_responded(&self, k: usize) -> Vec<NodeId> {
        self.candidates
            .iter()
            .filter(|c| c.state == State::Responded)
            .filter_map(|c| c.id)
            .take(k)
            .collect()
    }

    pub fn check_invariants(&self) {
        assert!(self.candidates.len() <= CANDIDATES_MAX);
        assert!(self.peers.len() <= self.peers_max);
        let keys: Vec<_> = self.candidates.iter().map(|c| self.key(&c.id)).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]), "candidates sorted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::krpc::CompactNode;
    use std::net::Ipv4Addr;

    fn addr(n: u32) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::from(0x0A00_0000 + n), 6881)
    }

    fn id(n: u8) -> NodeId {
        let mut b = [0u8; 20];
        b[0] = n;
        NodeId(b)
    }

    fn answer(from: u8, nodes: &[u8]) -> Response {
        Response {
            id: id(from),
            nodes: nodes
                .iter()
                .map(|&n| CompactNode {
                    id: id(n),
                    addr: addr(n.into()),
                })
                .collect(),
            token: Some(vec![from]),
            ..Response::default()
        }
    }

    /// Target 0: closer ids are smaller. A lookup from node 100 learns of 50, then 10..17,
    /// queries at most alpha at once, and ends once the 8 closest answered.
    #[test]
    fn converges_on_the_closest_with_bounded_concurrency() {
        let own = id(255);
        let mut l = Lookup::new(
            LookupId(1),
            id(0),
            LookupKind::GetPeers,
            [(Some(id(100)), addr(100))],
            Duration::ZERO,
            100,
        );
        let (_, a) = l.next_query(Duration::ZERO, 3, 8).unwrap();
        assert_eq!(a, addr(100));
        assert!(
            l.next_query(Duration::ZERO, 3, 8).is_none(),
            "nothing else to ask yet"
        );
        l.on_response(a, &answer(100, &[50, 60, 70, 80]), &own, 16);
        let asked: Vec<_> = std::iter::from_fn(|| l.next_query(Duration::ZERO, 3, 8)).collect();
        assert_eq!(asked.len(), 3, "alpha in flight");
        assert_eq!(asked[0].1, addr(50));
        l.on_response(
            addr(50),
            &answer(50, &(10..18).collect::<Vec<_>>()),
            &own,
            16,
        );
        l.on_failure(addr(60));
        l.on_response(addr(70), &answer(70, &[]), &own, 16);
        while !l.is_done(Duration::ZERO, 8) {
            let Some((_, a)) = l.next_query(Duration::ZERO, 3, 8) else {
                panic!("stuck: {l:?}");
            };
            let n = a.ip().octets()[3];
            l.on_response(a, &answer(n, &[]), &own, 16);
            l.check_invariants();
        }
        let closest = l.closest_responded(8);
        assert_eq!(closest, (10..18).map(id).collect::<Vec<_>>());
        assert_eq!(l.announce_targets(8).len(), 8);
        assert_eq!(l.stats.failures, 1);
    }

    #[test]
    fn hostile_answers_are_bounded() {
        let own = id(255);
        let mut l = Lookup::new(
            LookupId(1),
            id(0),
            LookupKind::GetPeers,
            [(None, addr(1))],
            Duration::ZERO,
            10,
        );
        let (_, a) = l.next_query(Duration::ZERO, 3, 8).unwrap();
        // Thousands of nodes and peers in one answer: only nodes_max nodes are taken, only
        // peers_max peers kept.
        let mut r = answer(1, &[]);
        for n in 0..3000u32 {
            let mut b = [0u8; 20];
            b[..4].copy_from_slice(&n.to_be_bytes());
            r.nodes.push(CompactNode {
                id: NodeId(b),
                addr: addr(1000 + n),
            });
            r.values.push(addr(100_000 + n));
        }
        let peers = l.on_response(a, &r, &own, 16);
        assert_eq!(peers.len(), 10);
        assert!(l.candidates.len() <= 17);
        // A response from someone never asked changes nothing.
        assert!(l.on_response(addr(77), &r, &own, 16).is_empty());
        assert_eq!(l.stats.responses, 1);
        l.check_invariants();
    }

    #[test]
    fn no_candidates_is_done_at_once() {
        let l = Lookup::new(
            LookupId(1),
            id(0),
            LookupKind::FindNode,
            [],
            Duration::ZERO,
            1,
        );
        assert!(l.is_done(Duration::ZERO, 8));
    }
}

#[cfg(test)]
mod stall_tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn addr(n: u8) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, n), 6881)
    }

    fn id(n: u8) -> NodeId {
        let mut b = [0u8; 20];
        b[0] = n;
        NodeId(b)
    }

    /// A silent node stops holding a slot after `stall_after`: the next candidate is asked,
    /// the lookup can end without it, and its late answer still counts.
    #[test]
    fn a_stalled_query_frees_its_slot_and_its_place() {
        let seeds = [(Some(id(1)), addr(1)), (Some(id(2)), addr(2))];
        let mut l = Lookup::new(
            LookupId(1),
            id(0),
            LookupKind::FindNode,
            seeds,
            Duration::ZERO,
            1,
        );
        l.stall_after = Duration::from_secs(1);
        let t0 = Duration::ZERO;
        assert_eq!(l.next_query(t0, 2, 2).map(|q| q.1), Some(addr(1)));
        assert_eq!(l.next_query(t0, 2, 2).map(|q| q.1), Some(addr(2)));
        assert!(
            !l.is_done(Duration::from_secs(5), 2),
            "only stalled queries left: wait, do not end empty"
        );
        l.unsend(addr(1));
        l.unsend(addr(2));
        assert_eq!(l.next_query(t0, 1, 1).map(|q| q.1), Some(addr(1)));
        assert!(l.next_query(t0, 1, 1).is_none(), "alpha 1 in flight");
        assert!(!l.is_done(t0, 1));
        let t1 = Duration::from_secs(1);
        assert_eq!(
            l.next_query(t1, 1, 1).map(|q| q.1),
            Some(addr(2)),
            "stalled: next asked"
        );
        let r = Response {
            id: id(2),
            ..Response::default()
        };
        l.on_response(addr(2), &r, &id(255), 16);
        assert!(l.is_done(t1, 1), "the closest not stalled answered");
        let r = Response {
            id: id(1),
            ..Response::default()
        };
        l.on_response(addr(1), &r, &id(255), 16);
        assert_eq!(l.closest_responded(1), vec![id(1)], "late answer used");
    }
}
