//! A sleep that can be cut short: an idle torrent naps until its next timed work, and
//! whatever gives it something to do (a peer, addresses, stopping) rings it awake.

use std::cell::Cell;
use std::future::poll_fn;
use std::task::{Poll, Waker};
use std::time::Duration;

#[derive(Default)]
pub struct Alarm {
    rung: Cell<bool>,
    sleeper: Cell<Option<Waker>>,
}

impl Alarm {
    /// Sleeps for `nap`, or until [`Alarm::ring`], whichever comes first. A ring while
    /// awake makes the next sleep return at once, so no wake-up is lost.
    pub async fn sleep(&self, nap: Duration) {
        let rung = poll_fn(|cx| {
            if self.rung.get() {
                Poll::Ready(())
            } else {
                self.sleeper.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        });
        futures_lite::future::or(glommio::timer::sleep(nap), rung).await;
        self.rung.set(false);
        self.sleeper.set(None);
    }

    pub fn ring(&self) {
        self.rung.set(true);
        if let Some(waker) = self.sleeper.take() {
            waker.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;
    use std::time::Instant;

    #[test]
    fn a_ring_ends_a_long_sleep_and_an_early_ring_is_kept() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let alarm = Rc::new(Alarm::default());
                let ringer = alarm.clone();
                glommio::spawn_local(async move {
                    glommio::timer::sleep(Duration::from_millis(20)).await;
                    ringer.ring();
                })
                .detach();
                let t = Instant::now();
                alarm.sleep(Duration::from_secs(30)).await;
                assert!(t.elapsed() < Duration::from_secs(5));
                alarm.ring();
                let t = Instant::now();
                alarm.sleep(Duration::from_secs(30)).await;
                assert!(t.elapsed() < Duration::from_secs(5));
                let t = Instant::now();
                alarm.sleep(Duration::from_millis(30)).await;
                assert!(t.elapsed() >= Duration::from_millis(30));
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
