//! A peer's requests to us, in the order they came, with a constant-time CANCEL.
//!
//! A cancel does not search the queue: it forgets the block's live count, and the entry
//! stays behind as a tombstone that serving skips. Tombstones take queue slots (so request
//! and cancel spam cannot grow the queue past its bound) and are swept out, in one pass,
//! once they outnumber the live entries: each sweep costs no more than the cancels that
//! made it necessary.
//!
//! Each entry keeps the time its request arrived (the caller's clock, as given to the
//! torrent), so a writer can tell how long a block waited to be served.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::BlockRef;

/// Sweep only queues at least this long: smaller ones cost nothing to keep.
const SWEEP_MIN: usize = 64;

#[derive(Debug, Default)]
pub(super) struct ServeQueue {
    /// Requests in arrival order, with their arrival times, tombstones included.
    order: VecDeque<(BlockRef, Duration)>,
    /// Copies of each block still wanted (a peer may ask twice).
    live: HashMap<BlockRef, u32>,
    live_total: usize,
}

impl ServeQueue {
    /// Queue slots taken, tombstones included: what the queue's bound applies to.
    pub fn slots(&self) -> usize {
        self.order.len()
    }

    /// Requests still wanted.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.live_total
    }

    /// Queues `block`, which arrived at `at`.
    pub fn push_back(&mut self, block: BlockRef, at: Duration) {
        self.order.push_back((block, at));
        *self.live.entry(block).or_default() += 1;
        self.live_total += 1;
    }

    /// Forgets every queued copy of `block`; returns the steps taken (1, or a sweep's
    /// length when this cancel triggers one).
    pub fn cancel(&mut self, block: BlockRef) -> u64 {
        if let Some(n) = self.live.remove(&block) {
            self.live_total -= n as usize;
        }
        self.skip_tombstones();
        let dead = self.order.len() - self.live_total;
        if self.order.len() >= SWEEP_MIN && dead > self.live_total {
            let steps = self.order.len() as u64;
            self.sweep();
            return steps;
        }
        1
    }

    /// Forgets every queued request for `piece` (we no longer have it); returns them,
    /// one per copy. Costs a pass over the live requests, at most the queue's bound.
    pub fn cancel_piece(&mut self, piece: u32) -> Vec<BlockRef> {
        let mut gone = Vec::new();
        self.live.retain(|block, n| {
            if block.piece != piece {
                return true;
            }
            gone.extend(std::iter::repeat_n(*block, *n as usize));
            false
        });
        self.live_total -= gone.len();
        self.skip_tombstones();
        if self.order.len() >= SWEEP_MIN && self.order.len() - self.live_total > self.live_total {
            self.sweep();
        }
        gone
    }

    pub fn front(&self) -> Option<BlockRef> {
        self.order.front().map(|(block, _)| *block)
    }

    #[cfg(test)]
    pub fn pop_front(&mut self) -> Option<BlockRef> {
        self.pop_front_timed().map(|(block, _)| block)
    }

    /// The front request and when it arrived.
    pub fn pop_front_timed(&mut self) -> Option<(BlockRef, Duration)> {
        let (block, at) = self.order.pop_front()?;
        self.take_live(block);
        self.skip_tombstones();
        Some((block, at))
    }

    /// Entries in order (a tombstone among them now and then): for read-ahead guesses.
    pub fn iter(&self) -> impl Iterator<Item = &BlockRef> {
        self.order.iter().map(|(block, _)| block)
    }

    /// Every live request with its arrival time, in order, leaving the queue empty.
    pub fn drain(&mut self) -> Vec<(BlockRef, Duration)> {
        let mut out = Vec::with_capacity(self.live_total);
        while let Some(entry) = self.pop_front_timed() {
            out.push(entry);
        }
        self.order.clear();
        out
    }

    fn take_live(&mut self, block: BlockRef) {
        if let Some(n) = self.live.get_mut(&block) {
            *n -= 1;
            self.live_total -= 1;
            if *n == 0 {
                self.live.remove(&block);
            }
        }
    }

    /// Keeps the invariant that the front entry, if any, is live.
    fn skip_tombstones(&mut self) {
        while let Some((front, _)) = self.order.front() {
            if self.live.contains_key(front) {
                break;
            }
            self.order.pop_front();
        }
    }

    /// Drops every tombstone, keeping live entries in order. A block queued twice and then
    /// re-requested keeps its first copies' places.
    fn sweep(&mut self) {
        let mut left = self.live.clone();
        self.order.retain(|(b, _)| match left.get_mut(b) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(piece: u32) -> BlockRef {
        BlockRef {
            piece,
            offset: 0,
            len: 16384,
        }
    }

    #[test]
    fn a_pieces_requests_go_at_once_copies_included() {
        let mut q = ServeQueue::default();
        for p in [1, 2, 1, 3, 1] {
            q.push_back(b(p), Duration::ZERO);
        }
        assert_eq!(q.cancel_piece(1), vec![b(1); 3]);
        assert!(q.cancel_piece(1).is_empty());
        assert_eq!(q.len(), 2);
        let served: Vec<u32> = q.drain().iter().map(|(b, _)| b.piece).collect();
        assert_eq!(served, vec![2, 3]);
    }

    #[test]
    fn cancelled_requests_are_skipped_and_swept() {
        let mut q = ServeQueue::default();
        for p in 0..100 {
            q.push_back(b(p), Duration::ZERO);
        }
        for p in (0..100).filter(|p| p % 3 != 0) {
            q.cancel(b(p));
        }
        assert_eq!(q.len(), 34);
        assert!(q.slots() < 100, "the tombstones were swept");
        let served: Vec<u32> = q.drain().iter().map(|(b, _)| b.piece).collect();
        assert_eq!(served, (0..100).filter(|p| p % 3 == 0).collect::<Vec<_>>());
        assert_eq!((q.len(), q.slots()), (0, 0));
    }

    #[test]
    fn each_request_keeps_its_arrival_time_through_cancels_and_drains() {
        let mut q = ServeQueue::default();
        let ms = Duration::from_millis;
        for p in 0..80 {
            q.push_back(b(p), ms(u64::from(p)));
        }
        for p in (0..80).filter(|p| p % 4 != 0) {
            q.cancel(b(p));
        }
        assert_eq!(q.pop_front_timed(), Some((b(0), ms(0))));
        let rest = q.drain();
        assert_eq!(rest.len(), 19);
        assert!(rest.iter().all(|(b, at)| *at == ms(u64::from(b.piece))));
    }

    #[test]
    fn a_block_asked_twice_is_served_twice_unless_cancelled() {
        let mut q = ServeQueue::default();
        q.push_back(b(1), Duration::ZERO);
        q.push_back(b(2), Duration::ZERO);
        q.push_back(b(1), Duration::ZERO);
        assert_eq!(q.pop_front(), Some(b(1)));
        assert_eq!(q.pop_front(), Some(b(2)));
        assert_eq!(q.pop_front(), Some(b(1)));
        q.push_back(b(1), Duration::ZERO);
        q.push_back(b(1), Duration::ZERO);
        q.cancel(b(1));
        assert_eq!((q.front(), q.len(), q.slots()), (None, 0, 0));
    }
}
