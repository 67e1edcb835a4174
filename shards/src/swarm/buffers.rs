//! Piece memory, pooled per shard so a steady download allocates nothing per piece: the
//! aligned buffers that blocks are gathered into, hashed in place, written from with
//! O_DIRECT and then kept in the read cache (which gives them back when it evicts them).
//!
//! It also bounds the backlog: bytes of complete pieces waiting for their hash check and
//! their write. Past the limit, peer readers stop reading their sockets until the hasher
//! and the disk catch up (TCP then slows the senders), so a download that outruns its
//! hashing or its disk holds bounded memory instead of queueing pieces without end.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;
use std::rc::Rc;

use glommio::channels::local_channel::{self, LocalSender};
use glommio::io::{DmaBuffer, ReadResult};

/// Bytes of one piece, wherever they came from.
pub enum PieceBytes {
    /// A piece buffer (its first `len` bytes; the buffer may be rounded up). Shared,
    /// because a finished write may still hold a reference for a while.
    Dma(Rc<DmaBuffer>, usize),
    /// A direct read straight from the file, not copied.
    Read(ReadResult),
    /// Assembled from several files.
    Heap(Vec<u8>),
}

impl Deref for PieceBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            PieceBytes::Dma(buf, len) => &buf.as_bytes()[..*len],
            PieceBytes::Read(r) => r,
            PieceBytes::Heap(v) => v,
        }
    }
}

/// Free piece buffers by size, bounded in bytes.
pub struct BufferPool {
    direct: HashMap<usize, Vec<DmaBuffer>>,
    bytes: usize,
    capacity: usize,
    backlog_bytes: usize,
    backlog_max: usize,
    /// Readers waiting for the backlog to shrink (one per peer at most).
    waiting: Vec<LocalSender<()>>,
    /// Bytes of pieces being read ahead of any request for them, and the most allowed.
    /// Read-ahead past what the cache can hold only reads pieces that are evicted
    /// before they are sent, and read again when they are.
    read_ahead_bytes: usize,
    read_ahead_max: usize,
}

impl BufferPool {
    /// `capacity_bytes` of free buffers kept; readers pause while more than
    /// `backlog_max_bytes` of pieces wait for hashing or writing; at most
    /// `read_ahead_max_bytes` of pieces are read ahead at once.
    pub fn new(
        capacity_bytes: usize,
        backlog_max_bytes: usize,
        read_ahead_max_bytes: usize,
    ) -> Self {
        BufferPool {
            direct: HashMap::new(),
            bytes: 0,
            capacity: capacity_bytes,
            backlog_bytes: 0,
            backlog_max: backlog_max_bytes,
            waiting: Vec::new(),
            read_ahead_bytes: 0,
            read_ahead_max: read_ahead_max_bytes,
        }
    }

    /// Claims `len` bytes of the read-ahead budget; false, and nothing claimed, when the
    /// budget has no room (the read is skipped: it is only a guess).
    pub fn read_ahead_start(&mut self, len: usize) -> bool {
        if self.read_ahead_bytes + len > self.read_ahead_max {
            return false;
        }
        self.read_ahead_bytes += len;
        true
    }

    /// A read ahead of `len` bytes ended (read, failed or abandoned).
    pub fn read_ahead_done(&mut self, len: usize) {
        self.read_ahead_bytes = self.read_ahead_bytes.saturating_sub(len);
    }

    /// A complete piece of `len` bytes joins the backlog.
    pub fn backlog_add(&mut self, len: usize) {
        self.backlog_bytes += len;
    }

    /// A piece of `len` bytes left the backlog (written, or failed); wakes the readers
    /// once there is room.
    pub fn backlog_done(&mut self, len: usize) {
        self.backlog_bytes = self.backlog_bytes.saturating_sub(len);
        if self.backlog_bytes <= self.backlog_max {
            for reader in self.waiting.drain(..) {
                let _ = reader.try_send(());
            }
        }
    }

    /// Waits while the backlog is over its limit.
    pub async fn backlog_room(pool: &RefCell<BufferPool>) {
        loop {
            let wait = {
                let mut pool = pool.borrow_mut();
                if pool.backlog_bytes <= pool.backlog_max {
                    return;
                }
                let (tx, rx) = local_channel::new_bounded(1);
                pool.waiting.push(tx);
                rx
            };
            wait.recv().await;
        }
    }

    /// An aligned buffer of at least `len` bytes, rounded up to a page so it can be written
    /// directly. Its contents are whatever the last user left.
    pub fn take_direct(&mut self, len: usize) -> DmaBuffer {
        let size = len.next_multiple_of(4096);
        if let Some(buf) = self.direct.get_mut(&size).and_then(Vec::pop) {
            self.bytes -= size;
            return buf;
        }
        glommio::allocate_dma_buffer(size)
    }

    /// Takes an aligned buffer back, unless the pool is full.
    pub fn give_direct(&mut self, buf: DmaBuffer) {
        let size = buf.len();
        if self.bytes + size <= self.capacity {
            self.bytes += size;
            self.direct.entry(size).or_default().push(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_ahead_stays_within_its_budget() {
        let mut pool = BufferPool::new(0, 0, 3 << 20);
        assert!(pool.read_ahead_start(1 << 20));
        assert!(pool.read_ahead_start(2 << 20));
        assert!(!pool.read_ahead_start(1), "the budget is full");
        pool.read_ahead_done(1 << 20);
        assert!(pool.read_ahead_start(1 << 20));
        assert!(!pool.read_ahead_start(1 << 20));
        pool.read_ahead_done(3 << 20);
        pool.read_ahead_done(1 << 20);
        assert!(pool.read_ahead_start(3 << 20), "done never goes below zero");
    }
}
