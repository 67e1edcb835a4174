//! Which of a shard's waiting announces may go now.
//!
//! A seedbox holds tens of thousands of torrents, most on a handful of trackers. Left to
//! themselves they would all announce in the same second at start and hammer each tracker
//! host with hundreds of requests at once. The dispatcher sits between the torrents (who
//! say "I need to announce to host H") and the sockets (who do it), and lets a ticket go
//! only while:
//!
//! - fewer than [`DispatchLimits::per_host`] announces to its host are in flight,
//! - fewer than [`DispatchLimits::per_shard`] announces are in flight in all, and
//! - at least [`DispatchLimits::host_gap`] passed since the host's previous dispatch, which
//!   paces a burst (100,000 `started` at daemon start) into a steady stream while a lone
//!   new torrent still goes at once.
//!
//! Hosts take turns (round robin), so a torrent on a small tracker does not wait behind
//! 100,000 on a big one. Waiting tickets are bounded by [`DispatchLimits::queue_max`]:
//! past it [`Dispatcher::submit`] refuses with [`QueueFull`], and the caller tries again
//! later (the shard defers the torrent's announce by a few seconds; nothing is lost, the
//! torrent just asks again).
//!
//! Sans-I/O: the caller passes the time in and reports each finished announce back with
//! [`Dispatcher::done`].

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use thiserror::Error;

/// Caps on announces in flight and waiting, per shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchLimits {
    /// Announces in flight to one tracker host at once.
    pub per_host: usize,
    /// Announces in flight on the shard at once, all hosts together.
    pub per_shard: usize,
    /// Least time between two dispatches to the same host.
    pub host_gap: Duration,
    /// Tickets waiting, all hosts together.
    pub queue_max: usize,
}

impl Default for DispatchLimits {
    fn default() -> Self {
        DispatchLimits {
            per_host: 4,
            per_shard: 64,
            // 50 announces a second per host per shard: 100,000 `started` spread over
            // ~33 min, shorter than a typical 30–60 min interval.
            host_gap: Duration::from_millis(20),
            // Enough for every torrent of a big seedbox's shard to wait at once.
            queue_max: 131_072,
        }
    }
}

/// The dispatcher's queue is at [`DispatchLimits::queue_max`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("{0} announces are already waiting on this shard")]
pub struct QueueFull(pub usize);

/// A waiting announce: whoever submitted it knows what the number stands for.
pub type Ticket = u64;

#[derive(Debug, Default)]
struct Host {
    waiting: VecDeque<Ticket>,
    in_flight: usize,
    /// The host's next dispatch may go no sooner than this.
    next_slot: Duration,
}

/// The per-shard announce gate; see the module docs.
#[derive(Debug)]
pub struct Dispatcher {
    limits: DispatchLimits,
    /// Only hosts with a waiting ticket or one in flight: bounded by `queue_max +
    /// per_shard`. A host with neither is dropped (its pacing slot with it, which at
    /// worst lets one announce go `host_gap` early).
    hosts: HashMap<String, Host>,
    /// Hosts with waiting tickets, in turn order; each appears once.
    turns: VecDeque<String>,
    waiting: usize,
    in_flight: usize,
}

impl Dispatcher {
    pub fn new(limits: DispatchLimits) -> Self {
        Dispatcher {
            limits: DispatchLimits {
                per_host: limits.per_host.max(1),
                per_shard: limits.per_shard.max(1),
                ..limits
            },
            hosts: HashMap::new(),
            turns: VecDeque::new(),
            waiting: 0,
            in_flight: 0,
        }
    }

    pub fn limits(&self) -> DispatchLimits {
        self.limits
    }

    /// Queues `ticket` for `host` (any key naming the tracker host, e.g. `host:port`).
    /// `urgent` tickets (an event a tracker must hear: `completed`) go to the front of
    /// their host's line.
    pub fn submit(&mut self, host: &str, ticket: Ticket, urgent: bool) -> Result<(), QueueFull> {
        if self.waiting >= self.limits.queue_max {
            return Err(QueueFull(self.waiting));
        }
        let entry = self.hosts.entry(host.to_string()).or_default();
        if entry.waiting.is_empty() {
            self.turns.push_back(host.to_string());
        }
        if urgent {
            entry.waiting.push_front(ticket);
        } else {
            entry.waiting.push_back(ticket);
        }
        self.waiting += 1;
        Ok(())
    }

    /// Withdraws a waiting ticket (its torrent stopped). Linear in the host's line; rare.
    pub fn cancel(&mut self, host: &str, ticket: Ticket) -> bool {
        let Some(entry) = self.hosts.get_mut(host) else {
            return false;
        };
        let Some(at) = entry.waiting.iter().position(|t| *t == ticket) else {
            return false;
        };
        entry.waiting.remove(at);
        self.waiting -= 1;
        if entry.waiting.is_empty() {
            self.turns.retain(|h| h != host);
        }
        self.forget_if_idle(host);
        true
    }

    /// The next ticket allowed to go now, with its host; the caller reports it back with
    /// [`Dispatcher::done`] once the announce finished (well or not).
    pub fn poll(&mut self, now: Duration) -> Option<(String, Ticket)> {
        if self.in_flight >= self.limits.per_shard {
            return None;
        }
        for _ in 0..self.turns.len() {
            let host = self.turns.pop_front()?;
            let entry = self.hosts.get_mut(&host).expect("a host in turn is known");
            if entry.in_flight >= self.limits.per_host || entry.next_slot > now {
                self.turns.push_back(host);
                continue;
            }
            let ticket = entry.waiting.pop_front().expect("a host in turn waits");
            entry.in_flight += 1;
            entry.next_slot = now.saturating_add(self.limits.host_gap);
            if !entry.waiting.is_empty() {
                self.turns.push_back(host.clone());
            }
            self.waiting -= 1;
            self.in_flight += 1;
            return Some((host, ticket));
        }
        None
    }

    /// An announce [`Dispatcher::poll`] let go to `host` finished.
    pub fn done(&mut self, host: &str) {
        if let Some(entry) = self.hosts.get_mut(host) {
            if entry.in_flight > 0 {
                entry.in_flight -= 1;
                self.in_flight -= 1;
            }
        }
        self.forget_if_idle(host);
    }

    /// When a ticket that cannot go now might: the earliest pacing slot among hosts that
    /// wait only for it. `None` when nothing waits, or when what waits needs a
    /// [`Dispatcher::done`] first.
    pub fn next_wake(&self, now: Duration) -> Option<Duration> {
        if self.in_flight >= self.limits.per_shard {
            return None;
        }
        self.turns
            .iter()
            .filter_map(|h| self.hosts.get(h))
            .filter(|e| e.in_flight < self.limits.per_host)
            .map(|e| e.next_slot.max(now))
            .min()
    }

    pub fn waiting(&self) -> usize {
        self.waiting
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn in_flight_to(&self, host: &str) -> usize {
        self.hosts.get(host).map_or(0, |e| e.in_flight)
    }

    /// Hosts remembered (waiting or in flight), for tests of the bound.
    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    fn forget_if_idle(&mut self, host: &str) {
        if let Some(entry) = self.hosts.get(host) {
            if entry.in_flight == 0 && entry.waiting.is_empty() {
                self.hosts.remove(host);
            }
        }
    }
}

/// Tells a torrent added on its own from one of a crowd, so the lone one's first
/// announce can jump the line (the user just added it and waits for peers) while a daemon
/// resuming 100,000 torrents still sends their `started` in turn. The first
/// [`StartBurst::LONE_MAX`] starts in each [`StartBurst::WINDOW`] count as lone: a crowd
/// misread (adds trickling in) lets at most 8 a second go first, which the caps still
/// bound.
#[derive(Debug, Default, Clone)]
pub struct StartBurst {
    window_start: Duration,
    count: u32,
}

impl StartBurst {
    pub const WINDOW: Duration = Duration::from_secs(1);
    pub const LONE_MAX: u32 = 8;

    /// A torrent starts now: is it (still) one of few?
    pub fn start(&mut self, now: Duration) -> bool {
        if self.count == 0 || now.saturating_sub(self.window_start) >= Self::WINDOW {
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count <= Self::LONE_MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn limits(per_host: usize, per_shard: usize, gap_ms: u64, queue_max: usize) -> DispatchLimits {
        DispatchLimits {
            per_host,
            per_shard,
            host_gap: ms(gap_ms),
            queue_max,
        }
    }

    #[test]
    fn a_lone_announce_goes_at_once() {
        let mut d = Dispatcher::new(DispatchLimits::default());
        d.submit("t:80", 1, false).unwrap();
        assert_eq!(d.poll(ms(0)), Some(("t:80".into(), 1)));
        assert_eq!(d.poll(ms(0)), None);
        d.done("t:80");
        assert_eq!(d.hosts(), 0, "an idle host is forgotten");
    }

    #[test]
    fn per_host_cap_holds_and_other_hosts_take_turns() {
        let mut d = Dispatcher::new(limits(2, 64, 0, 100));
        for t in 0..10 {
            d.submit("big:80", t, false).unwrap();
        }
        d.submit("small:80", 100, false).unwrap();
        let mut went = Vec::new();
        while let Some((h, t)) = d.poll(ms(0)) {
            went.push((h, t));
        }
        assert_eq!(went.len(), 3);
        assert!(went.contains(&("small:80".into(), 100)));
        assert_eq!(d.in_flight_to("big:80"), 2);
        d.done("big:80");
        assert_eq!(d.poll(ms(0)).map(|x| x.1), Some(2), "FIFO within a host");
    }

    #[test]
    fn per_shard_cap_holds() {
        let mut d = Dispatcher::new(limits(4, 5, 0, 100));
        for h in 0..10 {
            d.submit(&format!("h{h}"), h, false).unwrap();
        }
        let n = std::iter::from_fn(|| d.poll(ms(0))).count();
        assert_eq!(n, 5);
        assert_eq!(d.next_wake(ms(0)), None, "waits for a done");
        d.done("h0");
        assert!(d.poll(ms(0)).is_some());
    }

    #[test]
    fn the_gap_paces_a_burst() {
        let mut d = Dispatcher::new(limits(100, 100, 20, 10_000));
        for t in 0..1000 {
            d.submit("t", t, false).unwrap();
        }
        let mut times = Vec::new();
        let mut now = ms(0);
        while times.len() < 1000 {
            while let Some((h, _)) = d.poll(now) {
                times.push(now);
                d.done(&h);
            }
            if let Some(wake) = d.next_wake(now) {
                now = wake.max(now + ms(1));
            }
        }
        // 1000 announces 20 ms apart: 20 s, 50 a second.
        assert_eq!(times[999], ms(999 * 20));
        for w in times.windows(2) {
            assert!(w[1] - w[0] >= ms(20));
        }
    }

    #[test]
    fn the_queue_is_bounded_and_cancel_frees_room() {
        let mut d = Dispatcher::new(limits(1, 1, 0, 3));
        for t in 0..3 {
            d.submit("t", t, false).unwrap();
        }
        assert_eq!(d.submit("t", 9, false), Err(QueueFull(3)));
        assert!(d.cancel("t", 1));
        assert!(!d.cancel("t", 1));
        d.submit("t", 9, true).unwrap();
        assert_eq!(d.poll(ms(0)).map(|x| x.1), Some(9), "urgent first");
    }

    #[test]
    fn a_lone_start_is_told_from_a_crowd() {
        let mut b = StartBurst::default();
        let crowd = (0..1000).filter(|_| b.start(ms(5))).count();
        assert_eq!(crowd, StartBurst::LONE_MAX as usize);
        assert!(!b.start(ms(900)), "still the same burst");
        assert!(b.start(ms(2_000)), "later, on its own");
    }

    proptest! {
        /// Whatever the order of submits, polls, dones and cancels, the caps hold and the
        /// counts add up.
        #[test]
        fn caps_always_hold(ops in proptest::collection::vec((0u8..4, 0u8..6, any::<bool>()), 0..400)) {
            let l = limits(2, 5, 10, 50);
            let mut d = Dispatcher::new(l);
            let mut now = ms(0);
            let mut flying: Vec<String> = Vec::new();
            let mut next_ticket = 0;
            for (op, host, urgent) in ops {
                let host = format!("h{host}");
                match op {
                    0 => { let _ = d.submit(&host, next_ticket, urgent); next_ticket += 1; }
                    1 => if let Some((h, _)) = d.poll(now) { flying.push(h); },
                    2 => if let Some(h) = flying.pop() { d.done(&h); },
                    _ => { d.cancel(&host, next_ticket.saturating_sub(1)); now += ms(7); }
                }
                prop_assert!(d.in_flight() <= l.per_shard);
                prop_assert!(d.waiting() <= l.queue_max);
                prop_assert_eq!(d.in_flight(), flying.len());
                for h in 0..6 {
                    let name = format!("h{h}");
                    prop_assert!(d.in_flight_to(&name) <= l.per_host);
                }
                prop_assert!(d.hosts() <= 6);
            }
        }
    }
}
