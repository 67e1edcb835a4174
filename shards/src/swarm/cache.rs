//! The shard's read cache for seeding: whole pieces, least recently used out first, bounded
//! in bytes. O_DIRECT bypasses the page cache, so without this every block a peer asks for
//! would be a disk read; with it, the 8-16 requests for one piece cost one read.
//!
//! Its byte bound also covers pieces it evicted that a peer's send batch still holds: they
//! stay in memory until the batch is sent (or its peer dropped at the write deadline), so
//! they count against the cache until then, and the cache keeps that much less itself.

use std::rc::{Rc, Weak};

use lru::LruCache;

use super::buffers::PieceBytes;

/// Which torrent (by shard-local number) and which piece.
pub type CacheKey = (u32, u32);

pub struct PieceCache {
    pieces: LruCache<CacheKey, Rc<PieceBytes>>,
    /// Bytes of cached pieces plus [`PieceCache::pinned`] ones.
    bytes: usize,
    capacity: usize,
    /// Evicted pieces something still held at eviction (a send batch), with their length:
    /// counted in `bytes` until the last holder lets go. At most two per peer writer
    /// (`send_batch::MAX_PIECES`), and pruned at every insert.
    pinned: Vec<(Weak<PieceBytes>, usize)>,
}

impl PieceCache {
    pub fn new(capacity_bytes: usize) -> Self {
        PieceCache {
            pieces: LruCache::unbounded(),
            bytes: 0,
            capacity: capacity_bytes,
            pinned: Vec::new(),
        }
    }

    /// Whether the piece is cached, without counting as a use.
    pub fn contains(&self, key: CacheKey) -> bool {
        self.pieces.contains(&key)
    }

    pub fn get(&mut self, key: CacheKey) -> Option<Rc<PieceBytes>> {
        self.pieces.get(&key).cloned()
    }

    /// Adds a piece, evicting the least recently used until it fits; returns what left, so
    /// its buffers can be reused. A piece larger than the whole cache is not kept.
    pub fn insert(&mut self, key: CacheKey, piece: Rc<PieceBytes>) -> Vec<Rc<PieceBytes>> {
        let mut evicted = Vec::new();
        let bytes = &mut self.bytes;
        self.pinned.retain(|(held, len)| {
            let alive = held.strong_count() > 0;
            if !alive {
                *bytes -= len;
            }
            alive
        });
        if piece.len() > self.capacity {
            evicted.push(piece);
            return evicted;
        }
        if let Some(old) = self.pieces.put(key, piece.clone()) {
            self.leave(&old);
            evicted.push(old);
        }
        self.bytes += piece.len();
        while self.bytes > self.capacity {
            match self.pieces.pop_lru() {
                Some((_, old)) => {
                    self.leave(&old);
                    evicted.push(old);
                }
                None => break,
            }
        }
        evicted
    }

    /// A piece leaves the cache: its bytes stay counted while anyone else holds it.
    fn leave(&mut self, old: &Rc<PieceBytes>) {
        // `old` is the cache's own handle: any other means a send batch or a reader has it.
        if Rc::strong_count(old) > 1 {
            self.pinned.push((Rc::downgrade(old), old.len()));
        } else {
            self.bytes -= old.len();
        }
    }

    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_within_its_byte_bound_evicting_the_least_recent() {
        let mut c = PieceCache::new(300);
        let piece = |n: u8, len: usize| Rc::new(PieceBytes::Heap(vec![n; len]));
        for p in 0..3 {
            c.insert((0, p), piece(p as u8, 100));
        }
        assert!(c.get((0, 0)).is_some());
        assert_eq!(c.insert((0, 3), piece(3, 100)).len(), 1);
        assert!(c.bytes() <= 300);
        assert!(c.get((0, 1)).is_none(), "least recently used goes first");
        assert!(c.get((0, 0)).is_some());
        c.insert((0, 9), piece(0, 301));
        assert!(c.get((0, 9)).is_none());
    }

    #[test]
    fn evicted_pieces_a_send_batch_still_holds_count_against_the_bound() {
        let mut c = PieceCache::new(300);
        let piece = |n: u8| Rc::new(PieceBytes::Heap(vec![n; 100]));
        for p in 0..3 {
            c.insert((0, p), piece(p as u8));
        }
        let sending = c.get((0, 0)).unwrap();
        c.get((0, 1));
        c.get((0, 2));
        // Piece 0 is evicted but still being sent: it takes room, so piece 1 goes too.
        drop(c.insert((0, 3), piece(3)));
        assert!(c.get((0, 1)).is_none(), "a pinned piece must count");
        assert!(c.get((0, 2)).is_some() && c.get((0, 3)).is_some());
        assert_eq!(c.bytes(), 300);
        // Once sent, its room comes back.
        drop(sending);
        drop(c.insert((0, 4), piece(4)));
        assert!(c.get((0, 2)).is_some() && c.get((0, 3)).is_some() && c.get((0, 4)).is_some());
        assert_eq!(c.bytes(), 300);
    }
}
