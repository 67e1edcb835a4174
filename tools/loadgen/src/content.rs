//! Synthetic torrent content: every byte is a pure function of `(seed, offset)`, so a
//! seeder can serve any block of a multi-gigabyte torrent without storing it, and a test
//! can regenerate any piece to check it.
//!
//! How: the stream is cut into 16 KiB units. Unit `u` is a 16 KiB table of xorshift words
//! (made once from the seed) XORed word by word with a per-unit key,
//! `splitmix64(seed ^ u · φ)`. Making a unit is one XOR per 8 bytes over a table that sits
//! in L1, which the compiler vectorises: it runs at memory-copy speed (well over 5 GB/s per
//! core), so generation never limits a seeder. Every unit differs from every other, so a
//! block served at the wrong offset or from the wrong torrent fails its piece hash.

use ccbt_engine::metainfo::{Layout, PieceIndex};
use ccbt_engine::BLOCK_LEN;

use crate::PseudoRandom;

/// Bytes per generation unit: one block, so a block request touches exactly one key.
const UNIT: usize = BLOCK_LEN as usize;
const WORDS: usize = UNIT / 8;

/// The generator for one seed. 16 KiB; cheap to build, cheap to share.
#[derive(Clone)]
pub struct Content {
    seed: u64,
    table: Box<[u64; WORDS]>,
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Content").field("seed", &self.seed).finish()
    }
}

impl Content {
    pub fn new(seed: u64) -> Self {
        let mut bytes = vec![0; UNIT];
        PseudoRandom::new(seed).fill(&mut bytes);
        let mut table = Box::new([0; WORDS]);
        for (word, chunk) in table.iter_mut().zip(bytes.chunks_exact(8)) {
            *word = u64::from_le_bytes(chunk.try_into().expect("8-byte chunk"));
        }
        Self { seed, table }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Writes the stream's bytes `offset .. offset + buf.len()` into `buf`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut offset = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let within = (offset % UNIT as u64) as usize;
            let n = rest.len().min(UNIT - within);
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(n);
            self.fill_unit(offset / UNIT as u64, within, head);
            offset += n as u64;
            rest = tail;
        }
    }

    /// The bytes of one piece of a torrent laid out over this stream.
    pub fn piece(&self, layout: &Layout, piece: PieceIndex) -> Vec<u8> {
        let mut out = vec![0; layout.piece_len(piece) as usize];
        self.fill(layout.piece_offset(piece), &mut out);
        out
    }

    /// Fills `out` from unit `unit`, starting `within` bytes into it (`within + out.len()`
    /// stays inside the unit).
    fn fill_unit(&self, unit: u64, within: usize, out: &mut [u8]) {
        let key = splitmix64(self.seed ^ unit.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let word = |i: usize| (self.table[i] ^ key).to_le_bytes();
        if within % 8 != 0 {
            for (i, b) in out.iter_mut().enumerate() {
                let at = within + i;
                *b = word(at / 8)[at % 8];
            }
            return;
        }
        let first = within / 8;
        let last = first + out.len() / 8;
        let mut chunks = out.chunks_exact_mut(8);
        for (chunk, w) in (&mut chunks).zip(&self.table[first..]) {
            chunk.copy_from_slice(&(w ^ key).to_le_bytes());
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            // A short tail means the unit goes on past `out`, so this word exists.
            tail.copy_from_slice(&word(last)[..tail.len()]);
        }
    }
}

/// SplitMix64's finaliser: a well-mixed 64-bit value from any input.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(content: &Content, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        content.fill(0, &mut out);
        out
    }

    #[test]
    fn any_range_matches_the_whole_stream() {
        let content = Content::new(42);
        let stream = whole(&content, 5 * UNIT + 123);
        for (start, len) in [(0, 1), (3, 9), (7, UNIT), (UNIT - 5, 11), (8, 3 * UNIT + 7)] {
            let mut part = vec![0; len];
            content.fill(start as u64, &mut part);
            assert_eq!(part, stream[start..start + len], "range {start}+{len}");
        }
    }

    #[test]
    fn seeds_and_units_differ() {
        let a = whole(&Content::new(1), 2 * UNIT);
        let b = whole(&Content::new(2), 2 * UNIT);
        assert_ne!(a, b);
        assert_ne!(a[..UNIT], a[UNIT..]);
        assert_eq!(a, whole(&Content::new(1), 2 * UNIT));
    }

    /// `cargo test --release -p ccbt-loadgen -- --ignored --nocapture generation_speed`
    #[test]
    #[ignore = "a measurement, not a check"]
    fn generation_speed() {
        let content = Content::new(1);
        let mut buf = vec![0; 1 << 20];
        let start = std::time::Instant::now();
        for i in 0..4096u64 {
            content.fill(i << 20, &mut buf);
        }
        let secs = start.elapsed().as_secs_f64();
        println!("{:.1} GB/s", 4096.0 * (1 << 20) as f64 / secs / 1e9);
        assert_ne!(buf[0..8], buf[8..16]);
    }
}
