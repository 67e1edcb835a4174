//! The shard's announce scheduler: the engine's [`Dispatcher`] driven by a task.
//!
//! A torrent whose announce is due (its own [`Announcer`](ccbt_engine::tracker::Announcer)
//! says when, spread and backed off) asks the gate with [`AnnounceGate::enter`] and waits;
//! the gate's task lets it through when its tracker host and the shard have room (caps
//! and pacing in the engine), and the [`GatePass`] it gets frees the room when dropped.
//! Dropping the waiting future (the torrent stopped) withdraws it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use ccbt_engine::tracker::dispatch::{DispatchLimits, Dispatcher, QueueFull, StartBurst, Ticket};
use futures_channel::oneshot;

use super::alarm::Alarm;
use super::clock::Clock;

/// Longest the gate's task sleeps with nothing to do; a submit rings it sooner.
const IDLE_NAP: Duration = Duration::from_secs(60);

pub struct AnnounceGate {
    dispatcher: RefCell<Dispatcher>,
    /// One per waiting ticket: bounded by the dispatcher's `queue_max`.
    waiters: RefCell<HashMap<Ticket, oneshot::Sender<()>>>,
    next_ticket: Cell<Ticket>,
    alarm: Alarm,
    clock: Clock,
    starts: RefCell<StartBurst>,
}

/// Room for one announce to `host`; freed when dropped.
pub struct GatePass {
    gate: Rc<AnnounceGate>,
    host: String,
}

impl Drop for GatePass {
    fn drop(&mut self) {
        self.gate.dispatcher.borrow_mut().done(&self.host);
        self.gate.alarm.ring();
    }
}

/// A ticket in line; withdrawn if dropped before it is let through.
struct InLine {
    gate: Rc<AnnounceGate>,
    host: String,
    ticket: Ticket,
    through: bool,
}

impl Drop for InLine {
    fn drop(&mut self) {
        if self.through {
            return;
        }
        self.gate.waiters.borrow_mut().remove(&self.ticket);
        let withdrawn = self
            .gate
            .dispatcher
            .borrow_mut()
            .cancel(&self.host, self.ticket);
        if !withdrawn {
            // Let through, but we left before hearing it: give the room back.
            self.gate.dispatcher.borrow_mut().done(&self.host);
            self.gate.alarm.ring();
        }
    }
}

impl AnnounceGate {
    pub fn new(limits: DispatchLimits, clock: Clock) -> Rc<AnnounceGate> {
        Rc::new(AnnounceGate {
            dispatcher: RefCell::new(Dispatcher::new(limits)),
            waiters: RefCell::default(),
            next_ticket: Cell::new(0),
            alarm: Alarm::default(),
            clock,
            starts: RefCell::default(),
        })
    }

    /// Waits for room to announce to `host` (`urgent`: an event such as `completed` goes
    /// first in its host's line). [`QueueFull`] at once if the line is at its bound.
    pub async fn enter(self: &Rc<Self>, host: &str, urgent: bool) -> Result<GatePass, QueueFull> {
        let ticket = self.next_ticket.get();
        self.next_ticket.set(ticket.wrapping_add(1));
        self.dispatcher.borrow_mut().submit(host, ticket, urgent)?;
        let (tx, rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(ticket, tx);
        let mut in_line = InLine {
            gate: self.clone(),
            host: host.to_string(),
            ticket,
            through: false,
        };
        self.alarm.ring();
        // The sender goes only when let through (or with the gate).
        let _ = rx.await;
        in_line.through = true;
        Ok(GatePass {
            gate: self.clone(),
            host: host.to_string(),
        })
    }

    /// A torrent's first announce: `true` if it starts on its own (see [`StartBurst`]), so
    /// it should go first in line.
    pub fn lone_start(&self) -> bool {
        self.starts.borrow_mut().start(self.clock.now())
    }

    /// The gate's task: lets tickets through as room appears, until the shard ends.
    pub async fn run(self: Rc<Self>) {
        loop {
            let now = self.clock.now();
            loop {
                let next = self.dispatcher.borrow_mut().poll(now);
                let Some((host, ticket)) = next else { break };
                let waiter = self.waiters.borrow_mut().remove(&ticket);
                let told = waiter.is_some_and(|tx| tx.send(()).is_ok());
                if !told {
                    // Nobody waits any more: the room goes back at once.
                    self.dispatcher.borrow_mut().done(&host);
                }
            }
            let wake = self.dispatcher.borrow().next_wake(now);
            let nap = wake.map_or(IDLE_NAP, |at| at.saturating_sub(now));
            self.alarm.sleep(nap.max(Duration::from_millis(1))).await;
        }
    }
}

/// The tracker host an announce or scrape URL goes to, as the gate counts hosts.
pub fn host_key(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}:{}",
            u.host_str().unwrap_or(""),
            u.port_or_known_default().unwrap_or(0)
        ),
        Err(_) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_a_dropped_waiter_leaves_the_line_and_a_pass_frees_room() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let limits = DispatchLimits {
                    per_host: 1,
                    host_gap: Duration::ZERO,
                    ..DispatchLimits::default()
                };
                let gate = AnnounceGate::new(limits, Clock::start());
                let task = glommio::spawn_local(gate.clone().run());
                let first = gate.enter("t:80", false).await.unwrap();
                let g = gate.clone();
                let second = glommio::spawn_local(async move { g.enter("t:80", false).await });
                glommio::timer::sleep(Duration::from_millis(20)).await;
                assert_eq!(
                    gate.dispatcher.borrow().waiting(),
                    1,
                    "capped at 1 in flight"
                );
                drop(second);
                glommio::timer::sleep(Duration::from_millis(20)).await;
                assert_eq!(gate.dispatcher.borrow().waiting(), 0, "left the line");
                assert_eq!(gate.waiters.borrow().len(), 0);
                drop(first);
                assert_eq!(gate.dispatcher.borrow().in_flight(), 0);
                let third = gate.enter("t:80", false).await.unwrap();
                drop(third);
                drop(task);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
