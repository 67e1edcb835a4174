//! The shard's read cache for seeding: whole pieces, least recently used out first, bounded
//! in bytes. O_DIRECT bypasses the page cache, so without this every block a peer asks for
//! would be a disk read; with it, the 8-16 requests for one piece cost one read.

use std::rc::Rc;

use lru::LruCache;

use super::buffers::PieceBytes;

/// Which torrent (by shard-local number) and which piece.
pub type CacheKey = (u32, u32);

pub struct PieceCache {
    pieces: LruCache<CacheKey, Rc<PieceBytes>>,
    bytes: usize,
    capacity: usize,
}

impl PieceCache {
    pub fn new(capacity_bytes: usize) -> Self {
        PieceCache {
            pieces: LruCache::unbounded(),
            bytes: 0,
            capacity: capacity_bytes,
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
        if piece.len() > self.capacity {
            evicted.push(piece);
            return evicted;
        }
        if let Some(old) = self.pieces.put(key, piece.clone()) {
            self.bytes -= old.len();
            evicted.push(old);
        }
        self.bytes += piece.len();
        while self.bytes > self.capacity {
            match self.pieces.pop_lru() {
                Some((_, old)) => {
                    self.bytes -= old.len();
                    evicted.push(old);
                }
                None => break,
            }
        }
        evicted
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
}
