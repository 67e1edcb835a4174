//! The shard's read cache for seeding: whole pieces, least recently used out first, bounded
//! in bytes. O_DIRECT bypasses the page cache, so without this every block a peer asks for
//! would be a disk read; with it, the 8-16 requests for one piece cost one read.

use std::rc::Rc;

use lru::LruCache;

/// Which torrent (by shard-local number) and which piece.
pub type CacheKey = (u32, u32);

pub struct PieceCache {
    pieces: LruCache<CacheKey, Rc<[u8]>>,
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

    pub fn get(&mut self, key: CacheKey) -> Option<Rc<[u8]>> {
        self.pieces.get(&key).cloned()
    }

    /// Adds a piece, evicting the least recently used until it fits. A piece larger than the
    /// whole cache is not kept.
    pub fn insert(&mut self, key: CacheKey, piece: Rc<[u8]>) {
        if piece.len() > self.capacity {
            return;
        }
        if let Some(old) = self.pieces.put(key, piece.clone()) {
            self.bytes -= old.len();
        }
        self.bytes += piece.len();
        while self.bytes > self.capacity {
            match self.pieces.pop_lru() {
                Some((_, old)) => self.bytes -= old.len(),
                None => break,
            }
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
        for p in 0..3 {
            c.insert((0, p), vec![p as u8; 100].into());
        }
        assert!(c.get((0, 0)).is_some());
        c.insert((0, 3), vec![3; 100].into());
        assert!(c.bytes() <= 300);
        assert!(c.get((0, 1)).is_none(), "least recently used goes first");
        assert!(c.get((0, 0)).is_some());
        c.insert((0, 9), vec![0; 301].into());
        assert!(c.get((0, 9)).is_none());
    }
}
