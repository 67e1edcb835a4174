//! `ccbt-loadgen` as a library: the deterministic data that tests, benchmarks and the load
//! generator share, so that a failure anywhere reproduces from its seed, and the simulated
//! swarm (seeders and leechers, one glommio shard per core) that pushes a client to its limit.

pub mod cli;
pub mod content;
pub mod dataset;
pub mod flood;
pub mod leecher;
pub mod net;
pub mod report;
pub mod seeder;
pub mod torrent;

/// A deterministic byte stream (xorshift64): the same seed always gives the same bytes.
#[derive(Debug, Clone)]
pub struct PseudoRandom(u64);

impl PseudoRandom {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Fills `buf` with the next bytes of the stream (whole 8-byte words; a tail shorter than
    /// a word takes the first bytes of one).
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let x = &mut self.0;
            *x ^= *x << 13;
            *x ^= *x >> 7;
            *x ^= *x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// `len` bytes of the stream for `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    PseudoRandom::new(seed).fill(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_chunking_does_not_matter() {
        assert_eq!(bytes(7, 100), bytes(7, 100));
        assert_ne!(bytes(7, 100), bytes(8, 100));
        let mut r = PseudoRandom::new(7);
        let (mut a, mut b) = (vec![0; 64], vec![0; 36]);
        r.fill(&mut a);
        r.fill(&mut b);
        assert_eq!([a, b].concat(), bytes(7, 100));
    }
}
