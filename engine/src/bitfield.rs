//! Which pieces someone has: a fixed-length bit set in the wire's byte order (piece 0 is the
//! high bit of byte 0).

use thiserror::Error;

/// Why bytes from a peer are not a valid bitfield for this torrent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BitfieldError {
    #[error("bitfield is {got} bytes; {want} pieces need {}", want.div_ceil(8))]
    WrongLength { got: usize, want: u32 },
    #[error("bitfield sets bits past the last piece")]
    SpareBitsSet,
}

/// A set of piece indexes below a fixed piece count.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: u32,
    ones: u32,
}

impl Bitfield {
    /// No pieces.
    pub fn empty(len: u32) -> Self {
        Bitfield {
            bytes: vec![0; len.div_ceil(8) as usize],
            len,
            ones: 0,
        }
    }

    /// Every piece.
    pub fn full(len: u32) -> Self {
        let mut b = Self::empty(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }

    /// Checks a peer's `bitfield` payload: exact length, spare bits clear (BEP 3 says a peer
    /// sending otherwise should be dropped).
    pub fn from_wire(bytes: &[u8], len: u32) -> Result<Self, BitfieldError> {
        let want = len.div_ceil(8) as usize;
        if bytes.len() != want {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                want: len,
            });
        }
        let spare = (want * 8) as u32 - len;
        if spare > 0 && bytes[want - 1] & ((1u8 << spare) - 1) != 0 {
            return Err(BitfieldError::SpareBitsSet);
        }
        let ones = bytes.iter().map(|b| b.count_ones()).sum();
        Ok(Bitfield {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    /// The payload of a `bitfield` message.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The piece count this set ranges over.
    pub fn len(&self) -> u32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many pieces are in the set.
    pub fn count(&self) -> u32 {
        self.ones
    }

    pub fn is_full(&self) -> bool {
        self.ones == self.len
    }

    pub fn has_none(&self) -> bool {
        self.ones == 0
    }

    /// Whether `piece` is in the set; out-of-range pieces are not.
    pub fn get(&self, piece: u32) -> bool {
        piece < self.len && self.bytes[(piece / 8) as usize] & (0x80 >> (piece % 8)) != 0
    }

    /// Adds `piece`; returns whether it was new. Out-of-range pieces are ignored (false).
    pub fn set(&mut self, piece: u32) -> bool {
        if piece >= self.len || self.get(piece) {
            return false;
        }
        self.bytes[(piece / 8) as usize] |= 0x80 >> (piece % 8);
        self.ones += 1;
        true
    }

    /// Removes `piece`; returns whether it was there.
    pub fn clear(&mut self, piece: u32) -> bool {
        if !self.get(piece) {
            return false;
        }
        self.bytes[(piece / 8) as usize] &= !(0x80 >> (piece % 8));
        self.ones -= 1;
        true
    }

    /// The pieces in the set, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = u32> + '_ {
        self.bytes.iter().enumerate().flat_map(move |(i, &byte)| {
            (0..8u32)
                .filter(move |bit| byte & (0x80 >> bit) != 0)
                .map(move |bit| i as u32 * 8 + bit)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wire_checks_length_and_spare_bits() {
        assert_eq!(
            Bitfield::from_wire(&[0xff], 9),
            Err(BitfieldError::WrongLength { got: 1, want: 9 })
        );
        assert_eq!(
            Bitfield::from_wire(&[0xff, 0x40], 9),
            Err(BitfieldError::SpareBitsSet)
        );
        let b = Bitfield::from_wire(&[0xff, 0x80], 9).unwrap();
        assert!(b.is_full());
        assert_eq!(b.count(), 9);
        assert!(Bitfield::from_wire(&[0xff], 8).unwrap().is_full());
    }

    #[test]
    fn set_and_clear_keep_the_count() {
        let mut b = Bitfield::empty(10);
        assert!(b.set(3));
        assert!(!b.set(3));
        assert!(!b.set(10));
        assert!(b.get(3) && !b.get(4) && !b.get(99));
        assert_eq!(b.count(), 1);
        assert!(b.clear(3));
        assert!(b.has_none());
        assert_eq!(Bitfield::full(10).count(), 10);
    }

    proptest! {
        #[test]
        fn wire_round_trip(pieces in proptest::collection::btree_set(0u32..200, 0..50), extra in 0u32..8) {
            let len = 200 + extra;
            let mut b = Bitfield::empty(len);
            for &p in &pieces { b.set(p); }
            let back = Bitfield::from_wire(b.as_bytes(), len).unwrap();
            prop_assert_eq!(&back, &b);
            prop_assert_eq!(back.iter_ones().collect::<Vec<_>>(), pieces.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn from_wire_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40), len in 0u32..400) {
            let _ = Bitfield::from_wire(&bytes, len);
        }
    }
}
