//! Virtual time: events ordered by when they happen, ties broken by the order they were
//! scheduled, so a run depends on nothing but its seed.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::network::{ConnId, Side};

pub type NodeId = usize;

#[derive(Debug)]
pub enum Event {
    /// The node's periodic work: the torrent's tick, dialling, a script's next move.
    Tick(NodeId),
    /// A dial from `from` reaches `to` after a round trip: both ends add the peer.
    Connect {
        from: NodeId,
        to: NodeId,
        delay: Duration,
    },
    /// Bytes one end wrote arrive at the other end, `to`.
    Arrive {
        conn: ConnId,
        to: Side,
        bytes: Vec<u8>,
    },
    /// The receiver read `len` bytes: the sender's socket buffer has room again.
    Ack {
        conn: ConnId,
        sender: Side,
        len: u64,
    },
    /// The other end closed: after all it sent, `to` sees the connection end.
    Close { conn: ConnId, to: Side },
    /// The network cuts the connection: both ends see it at once.
    Cut { conn: ConnId },
    /// Has the writer at `side` taken no byte for the write deadline?
    StallCheck { conn: ConnId, side: Side },
    /// A complete piece's hash is ready (storage latency).
    Hashed {
        node: NodeId,
        generation: u32,
        piece: u32,
    },
    /// A torrent paused by a full disk starts again.
    Resume(NodeId),
}

struct Entry {
    at: Duration,
    seq: u64,
    event: Event,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The pending events, earliest first. Unbounded by design: every event is caused by a
/// bounded part of the world (a connection's in-flight bytes, a node's one tick).
#[derive(Default)]
pub struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    now: Duration,
}

impl Queue {
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Schedules `event` at `at` (never in the past).
    pub fn at(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at: at.max(self.now),
            seq: self.seq,
            event,
        }));
    }

    pub fn after(&mut self, delay: Duration, event: Event) {
        self.at(self.now + delay, event);
    }

    /// The next event, moving time to it.
    pub fn pop(&mut self) -> Option<Event> {
        let Reverse(entry) = self.heap.pop()?;
        self.now = entry.at;
        Some(entry.event)
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}
