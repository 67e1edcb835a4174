//! How many connections a shard holds at once, handshakes in progress included. Past the
//! bound, incoming connections are closed at once and no new ones are dialled.

use std::cell::Cell;
use std::rc::Rc;

#[derive(Clone)]
pub struct ConnectionBudget {
    used: Rc<Cell<usize>>,
    max: usize,
}

/// One connection's share of the budget, given back when dropped.
pub struct Slot(Rc<Cell<usize>>);

impl ConnectionBudget {
    pub fn new(max: usize) -> Self {
        ConnectionBudget {
            used: Rc::default(),
            max,
        }
    }

    pub fn try_take(&self) -> Option<Slot> {
        if self.used.get() >= self.max {
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
