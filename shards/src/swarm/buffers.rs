//! Piece memory: aligned buffers that blocks are gathered into, hashed in place and written
//! with O_DIRECT as they are, then kept in the read cache; and a per-shard pool that takes
//! them back when the cache lets go, so a steady download allocates nothing per piece.

use std::collections::HashMap;
use std::ops::Deref;

use glommio::io::{DmaBuffer, ReadResult};

/// Bytes of one piece, wherever they came from.
pub enum PieceBytes {
    /// A piece buffer (its first `len` bytes; the buffer may be rounded up).
    Dma(DmaBuffer, usize),
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
    free: HashMap<usize, Vec<DmaBuffer>>,
    bytes: usize,
    capacity: usize,
}

impl BufferPool {
    pub fn new(capacity_bytes: usize) -> Self {
        BufferPool {
            free: HashMap::new(),
            bytes: 0,
            capacity: capacity_bytes,
        }
    }

    /// A buffer of at least `len` bytes, rounded up to a page so it can be written directly.
    /// Its contents are whatever the last user left.
    pub fn take(&mut self, len: usize) -> DmaBuffer {
        let size = len.next_multiple_of(4096);
        if let Some(buf) = self.free.get_mut(&size).and_then(Vec::pop) {
            self.bytes -= size;
            return buf;
        }
        glommio::allocate_dma_buffer(size)
    }

    /// Takes a buffer back, unless the pool is full.
    pub fn give(&mut self, buf: DmaBuffer) {
        let size = buf.len();
        if self.bytes + size <= self.capacity {
            self.bytes += size;
            self.free.entry(size).or_default().push(buf);
        }
    }
}
