//! SHA-1, the one hash BitTorrent v1 uses for pieces and info hashes.
//!
//! All hashing in the project goes through [`Sha1`] so the backend can change in one place.
//! Today it is the `sha1` crate 0.10, which picks SHA-NI at run time; DESIGN.md records why
//! (it measured fastest here, and `sha1-asm` is archived).

use std::fmt;
use std::str::FromStr;

use sha1::Digest as _;

/// A 20-byte SHA-1 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Sha1Digest(pub [u8; 20]);

/// The SHA-1 of a torrent's bencoded `info` dict: the torrent's identity on the wire.
pub type InfoHash = Sha1Digest;

/// Incremental SHA-1 over one or more byte spans (a piece may cross file boundaries).
#[derive(Clone, Default)]
pub struct Sha1(sha1::Sha1);

impl Sha1 {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> Sha1Digest {
        Sha1Digest(self.0.finalize().into())
    }

    /// SHA-1 of one contiguous span.
    pub fn digest(data: &[u8]) -> Sha1Digest {
        let mut h = Self::new();
        h.update(data);
        h.finish()
    }
}

impl Sha1Digest {
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Sha1Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Sha1Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha1Digest({self})")
    }
}

/// Error for [`Sha1Digest::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 40 hex digits")]
pub struct ParseDigestError;

impl FromStr for Sha1Digest {
    type Err = ParseDigestError;

    /// Parses 40 hex digits, either case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.as_bytes())
            .map_err(|_| ParseDigestError)?;
        bytes
            .try_into()
            .map(Sha1Digest)
            .map_err(|_| ParseDigestError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            Sha1::digest(b"abc").to_hex(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let mut h = Sha1::new();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), Sha1::digest(b"abc"));
        assert_eq!(
            "A9993E364706816ABA3E25717850C26C9CD0D89D".parse::<Sha1Digest>(),
            Ok(Sha1::digest(b"abc"))
        );
        assert!("a999".parse::<Sha1Digest>().is_err());
    }
}
