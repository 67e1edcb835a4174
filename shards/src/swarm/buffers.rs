//! Piece memory, pooled per shard so a steady download allocates nothing per piece: the
//! aligned buffers that blocks are gathered into, hashed in place, written from with
//! O_DIRECT and then kept in the read cache (which gives them back when it evicts them).

use std::collections::HashMap;
use std::ops::Deref;
use std::rc::Rc;

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
}

impl BufferPool {
    pub fn new(capacity_bytes: usize) -> Self {
        BufferPool {
            direct: HashMap::new(),
            bytes: 0,
            capacity: capacity_bytes,
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
