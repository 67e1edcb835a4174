//! Incoming connections that still owe their handshake, oldest first, each holding its
//! connection slot here rather than in its own task.
//!
//! Why: a connection that never sends its handshake (half-open, or a handshake trickled a
//! byte a second) costs its sender nothing and holds one of the shard's connection slots
//! until the handshake deadline (10 s). A few thousand of them fill the whole budget, and
//! every newcomer is refused. A real peer sends its handshake as soon as it connects, so
//! when the budget is full a newcomer takes the slot of the connection that has owed its
//! handshake longest, if that one has owed it for [`EVICTABLE_AFTER`]: to lock newcomers
//! out, a flood now has to open the shard's whole budget of connections every
//! `EVICTABLE_AFTER`, and every one of them is closed within that time anyway.
//!
//! Bound: one entry per slot taken from the budget, so at most the budget.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use futures_channel::oneshot;

use super::budget::Slot;

/// How long a connection may owe its handshake before a newcomer may take its slot: well
/// past one round trip on the slowest links, so a real peer's handshake is never cut off
/// by a flood's newcomers.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(1);

/// The shard's connections that owe their handshake (cheap to clone: one room).
#[derive(Clone, Default)]
pub struct Handshakes(Rc<RefCell<Room>>);

#[derive(Default)]
struct Room {
    /// Numbers entries in arrival order, so the first key is the oldest.
    next: u64,
    waiting: BTreeMap<u64, Waiting>,
}

struct Waiting {
    /// Since when (the shard clock's time) it owes its handshake.
    since: Duration,
    slot: Slot,
    /// Dropped to tell the connection's task that its slot was taken.
    evict: oneshot::Sender<()>,
}

/// A connection's place in the room, from its accept to its handshake.
pub struct Pending {
    id: u64,
    room: Rc<RefCell<Room>>,
    evicted: oneshot::Receiver<()>,
}

impl Handshakes {
    /// Seats a connection that was just accepted with its connection slot.
    pub fn enter(&self, slot: Slot, now: Duration) -> Pending {
        let (evict, evicted) = oneshot::channel();
        let mut room = self.0.borrow_mut();
        let id = room.next;
        room.next += 1;
        room.waiting.insert(
            id,
            Waiting {
                since: now,
                slot,
                evict,
            },
        );
        Pending {
            id,
            room: self.0.clone(),
            evicted,
        }
    }

    /// The slot of the connection that has owed its handshake longest, if for at least
    /// [`EVICTABLE_AFTER`]; that connection's [`Pending::evicted`] resolves.
    pub fn evict_oldest(&self, now: Duration) -> Option<Slot> {
        let mut room = self.0.borrow_mut();
        let (_, oldest) = room.waiting.first_key_value()?;
        if now.saturating_sub(oldest.since) < EVICTABLE_AFTER {
            return None;
        }
        let (_, oldest) = room.waiting.pop_first()?;
        drop(oldest.evict);
        Some(oldest.slot)
    }

    /// Connections that owe their handshake now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.0.borrow().waiting.len()
    }
}

impl Pending {
    /// Resolves once a newcomer has taken this connection's slot: close it.
    pub async fn evicted(&mut self) {
        // The sender is only ever dropped, never used: either way the slot is gone.
        let _ = (&mut self.evicted).await;
    }

    /// The handshake arrived: the connection's slot, for it to hold from now on, or
    /// `None` if a newcomer took it meanwhile.
    pub fn admitted(self) -> Option<Slot> {
        self.leave()
    }

    fn leave(&self) -> Option<Slot> {
        let waiting = self.room.borrow_mut().waiting.remove(&self.id)?;
        Some(waiting.slot)
    }
}

impl Drop for Pending {
    /// A connection that ends before its handshake gives its slot back.
    fn drop(&mut self) {
        drop(self.leave());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swarm::budget::ConnectionBudget;

    const T0: Duration = Duration::from_secs(100);

    #[test]
    fn a_full_budget_gives_the_oldest_slot_to_a_newcomer_once_it_is_old_enough() {
        let budget = ConnectionBudget::new(2);
        let room = Handshakes::default();
        let first = room.enter(budget.try_take().unwrap(), T0);
        let _second = room.enter(budget.try_take().unwrap(), T0 + Duration::from_millis(10));
        assert!(budget.try_take().is_none());
        assert!(
            room.evict_oldest(T0 + EVICTABLE_AFTER / 2).is_none(),
            "too young to evict"
        );
        let slot = room.evict_oldest(T0 + EVICTABLE_AFTER).expect("the oldest");
        let mut first = first;
        futures_lite::future::block_on(first.evicted());
        assert!(first.admitted().is_none(), "its slot went to the newcomer");
        assert!(
            budget.try_take().is_none(),
            "the slot moved, it was not freed"
        );
        let _third = room.enter(slot, T0 + EVICTABLE_AFTER);
        assert_eq!(room.len(), 2);
    }

    #[test]
    fn a_connection_that_sends_its_handshake_keeps_its_slot_and_leaves_the_room() {
        let budget = ConnectionBudget::new(1);
        let room = Handshakes::default();
        let pending = room.enter(budget.try_take().unwrap(), T0);
        let slot = pending.admitted().expect("not evicted");
        assert_eq!(room.len(), 0);
        assert!(room.evict_oldest(T0 + EVICTABLE_AFTER * 10).is_none());
        assert!(budget.try_take().is_none(), "the peer holds it");
        drop(slot);
        assert!(budget.try_take().is_some());
    }

    #[test]
    fn a_connection_that_ends_before_its_handshake_frees_its_slot() {
        let budget = ConnectionBudget::new(1);
        let room = Handshakes::default();
        drop(room.enter(budget.try_take().unwrap(), T0));
        assert_eq!(room.len(), 0);
        assert!(budget.try_take().is_some());
    }

    #[test]
    fn eviction_goes_in_arrival_order() {
        let budget = ConnectionBudget::new(3);
        let room = Handshakes::default();
        let a = room.enter(budget.try_take().unwrap(), T0);
        let b = room.enter(budget.try_take().unwrap(), T0);
        let c = room.enter(budget.try_take().unwrap(), T0);
        let later = T0 + EVICTABLE_AFTER;
        let _s1 = room.evict_oldest(later).unwrap();
        assert!(a.admitted().is_none());
        let _s2 = room.evict_oldest(later).unwrap();
        assert!(b.admitted().is_none());
        assert!(c.admitted().is_some());
    }
}
