//! How many connections a shard holds at once, handshakes in progress included. Past the
//! bound, incoming connections are closed at once and no new ones are dialled.

use std::cell::Cell;
use std::rc::Rc;

#[derive(Clone)]
pub struct ConnectionBudget {
    used: Rc<Cell<usize>>,
    /// Shared by every clone, so a reload's new bound applies to all of them.
    max: Rc<Cell<usize>>,
}

/// One connection's share of the budget, given back when dropped.
pub struct Slot(Rc<Cell<usize>>);

impl ConnectionBudget {
    pub fn new(max: usize) -> Self {
        ConnectionBudget {
            used: Rc::default(),
            max: Rc::new(Cell::new(max)),
        }
    }

    /// A new bound (a config reload). Lowering it closes nothing: new connections wait
    /// until the count is under it.
    pub fn set_max(&self, max: usize) {
        self.max.set(max);
    }

    pub fn try_take(&self) -> Option<Slot> {
        if self.used.get() >= self.max.get() {
            return None;
        }
        self.used.set(self.used.get() + 1);
        Some(Slot(self.used.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back_when_dropped() {
        let budget = ConnectionBudget::new(2);
        let a = budget.try_take().unwrap();
        let _b = budget.try_take().unwrap();
        assert!(budget.try_take().is_none());
        drop(a);
        assert!(budget.try_take().is_some());
    }
}
