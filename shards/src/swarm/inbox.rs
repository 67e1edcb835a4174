//! A shard's inbox: a bounded queue that any thread may send to, and a doorbell the shard
//! awaits on its own io_uring ring, so an idle shard sleeps until something arrives instead
//! of polling.
//!
//! The doorbell is one end of a Unix socket pair. A sender rings it with a one-byte write,
//! but only when no ring is pending (an atomic flag), so a burst of messages costs one
//! write and one wake-up. The shard clears the flag before it drains the queue: a message
//! sent after the drain began finds the flag clear and rings again, so none is missed.
//!
//! Bound: [`Sender::try_send`] gives the message back when the queue is full; what that
//! means is the caller's policy (a refused connection, a "shard busy" command error).

use std::io::Write;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam::channel::{bounded, Receiver, TryRecvError, TrySendError};
use futures_lite::AsyncReadExt;

struct Bell {
    pending: AtomicBool,
    socket: StdUnixStream,
}

impl Bell {
    fn ring(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            // EAGAIN cannot happen while at most one byte is unread; any other error means
            // the shard is gone, and then nobody is listening anyway.
            let _ = (&self.socket).write(&[1]);
        }
    }
}

/// The sending side, for any thread.
pub struct Sender<T> {
    tx: crossbeam::channel::Sender<T>,
    bell: Arc<Bell>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            bell: self.bell.clone(),
        }
    }
}

impl<T> Sender<T> {
    /// Queues `msg` and wakes the shard; gives `msg` back if the queue is full or the
    /// shard has gone.
    pub fn try_send(&self, msg: T) -> Result<(), T> {
        self.tx.try_send(msg).map_err(|e| match e {
            TrySendError::Full(m) | TrySendError::Disconnected(m) => m,
        })?;
        self.bell.ring();
        Ok(())
    }

    /// Messages queued now and not yet taken by the shard.
    pub fn len(&self) -> usize {
        self.tx.len()
    }
}

/// The receiving side before it reaches its shard: plain data, so it can cross threads.
pub struct Parked<T> {
    rx: Receiver<T>,
    bell: Arc<Bell>,
    wake: OwnedFd,
}

/// A queue of at most `len` messages.
pub fn new<T>(len: usize) -> std::io::Result<(Sender<T>, Parked<T>)> {
    let (ring, wake) = StdUnixStream::pair()?;
    ring.set_nonblocking(true)?;
    wake.set_nonblocking(true)?;
    let bell = Arc::new(Bell {
        pending: AtomicBool::new(false),
        socket: ring,
    });
    let (tx, rx) = bounded(len);
    Ok((
        Sender {
            tx,
            bell: bell.clone(),
        },
        Parked {
            rx,
            bell,
            wake: OwnedFd::from(wake),
        },
    ))
}

/// A parked inbox each shard takes once when it starts.
pub type Slot<T> = Mutex<Option<Parked<T>>>;

/// The receiving side, on its shard.
pub struct Inbox<T> {
    rx: Receiver<T>,
    bell: Arc<Bell>,
    wake: glommio::net::UnixStream,
}

impl<T> Parked<T> {
    /// Moves the inbox onto the current shard (must run inside a glommio executor).
    pub fn open(self) -> Inbox<T> {
        // SAFETY: the descriptor is ours alone (from `new`), and glommio takes it over.
        let wake = unsafe { glommio::net::UnixStream::from_raw_fd(self.wake.into_raw_fd()) };
        Inbox {
            rx: self.rx,
            bell: self.bell,
            wake,
        }
    }
}

impl<T> Inbox<T> {
    /// Waits until at least one message is queued and moves every queued message into
    /// `out`. Returns false once every sender is gone and the queue is empty.
    pub async fn recv_all(&mut self, out: &mut Vec<T>) -> bool {
        loop {
            self.bell.pending.store(false, Ordering::SeqCst);
            loop {
                match self.rx.try_recv() {
                    Ok(msg) => out.push(msg),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return !out.is_empty(),
                }
            }
            if !out.is_empty() {
                return true;
            }
            let mut rung = [0u8; 64];
            match self.wake.read(&mut rung).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_sleeping_shard_wakes_for_each_burst_and_none_is_lost() {
        let (tx, parked) = new::<u32>(64).unwrap();
        let shard = glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let mut inbox = parked.open();
                let mut got = Vec::new();
                let mut batch = Vec::new();
                while got.len() < 1000 && inbox.recv_all(&mut batch).await {
                    got.append(&mut batch);
                }
                got
            })
            .unwrap();
        let mut sent = 0;
        while sent < 1000 {
            if tx.try_send(sent).is_ok() {
                sent += 1;
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
            if sent % 100 == 0 {
                // Let the shard fall asleep between bursts.
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let got = shard.join().unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn a_full_queue_gives_the_message_back() {
        let (tx, _parked) = new::<u32>(2).unwrap();
        assert!(tx.try_send(1).is_ok());
        assert!(tx.try_send(2).is_ok());
        assert_eq!(tx.try_send(3), Err(3));
    }
}
