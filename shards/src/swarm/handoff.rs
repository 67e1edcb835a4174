//! Passing accepted connections between shards.
//!
//! The kernel spreads incoming connections over the shards' SO_REUSEPORT listeners without
//! knowing which torrent they are for. The accepting shard reads the handshake, and when the
//! torrent lives elsewhere it sends the socket (as an owned fd) and the bytes read so far to
//! the owner. Queues are bounded: when one is full the connection is refused rather than
//! queued without limit. Receivers poll with `try_recv` and an async sleep that backs off
//! when idle, never a blocking receive (which spins with `sched_yield`).

use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::Mutex;
use std::time::Duration;

use crossbeam::channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};

/// Connections waiting for one shard at most.
pub const QUEUE_LEN: usize = 1024;
const POLL_MIN: Duration = Duration::from_millis(1);
const POLL_MAX: Duration = Duration::from_millis(16);

/// A connection on its way to the shard that owns its torrent.
pub struct Handoff {
    pub socket: OwnedFd,
    pub addr: SocketAddr,
    /// Everything read so far: at least the whole handshake.
    pub read: Vec<u8>,
}

/// A shard's receiving end, taken once by the shard when it starts.
pub type Inbox = Mutex<Option<Receiver<Handoff>>>;

/// One queue per shard: every shard may send to any; only the owner receives.
pub fn queues(shards: usize) -> (Vec<Sender<Handoff>>, Vec<Inbox>) {
    (0..shards)
        .map(|_| {
            let (tx, rx) = bounded(QUEUE_LEN);
            (tx, Mutex::new(Some(rx)))
        })
        .unzip()
}

/// Sends a connection to its owner; gives it back if the owner's queue is full or gone.
pub fn send(to: &Sender<Handoff>, handoff: Handoff) -> Result<(), Handoff> {
    to.try_send(handoff).map_err(|e| match e {
        TrySendError::Full(h) | TrySendError::Disconnected(h) => h,
    })
}

/// Receives handed-off connections until `stop` says so, passing each to `accept`.
pub async fn receive(
    rx: Receiver<Handoff>,
    stop: impl Fn() -> bool,
    mut accept: impl FnMut(Handoff),
) {
    let mut wait = POLL_MIN;
    while !stop() {
        match rx.try_recv() {
            Ok(h) => {
                accept(h);
                wait = POLL_MIN;
                continue;
            }
            Err(TryRecvError::Empty) => {}
            Err(TryRecvError::Disconnected) => return,
        }
        glommio::timer::sleep(wait).await;
        wait = (wait * 2).min(POLL_MAX);
    }
}
