//! SplitMix64: the engine's one seeded generator (tie-breaks, shuffles, jitter, transaction
//! ids). The engine takes randomness as a seed so that a run replays exactly; statistical
//! quality beyond "well mixed" is not needed.

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A repeatable random number drawn from a key, without keeping a generator: one SplitMix64
/// step from state `x`.
pub(crate) fn scramble(x: u64) -> u64 {
    mix(x.wrapping_add(GAMMA))
}

/// SplitMix64's output function: a cheap, well-mixed bijection on `u64`.
fn mix(x: u64) -> u64 {
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..bound` (`bound > 0`), by rejection so no value is favoured.
    pub(crate) fn below_u64(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % bound;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % bound;
            }
        }
    }

    /// A value in `0..n` (multiply-shift, no modulo bias worth caring about); 0 when `n` is 0.
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_below_stays_in_range() {
        let (mut a, mut b) = (SplitMix64::new(7), SplitMix64::new(7));
        assert_eq!(a.next_u64(), b.next_u64());
        assert_ne!(a.next_u64(), SplitMix64::new(8).next_u64());
        assert!((0..1000).all(|_| a.below(5) < 5));
        assert_eq!(a.below(0), 0);
    }
}
