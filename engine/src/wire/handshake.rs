//! The 68-byte handshake that opens every peer connection (BEP 3):
//! `19` `"BitTorrent protocol"` `reserved[8]` `info_hash[20]` `peer_id[20]`.

use std::fmt;

use super::WireError;
use crate::hash::{InfoHash, Sha1Digest};

/// The protocol string, preceded on the wire by its length byte (19).
pub const PROTOCOL: &[u8; 19] = b"BitTorrent protocol";

/// Bytes in a handshake: length byte, protocol string, reserved, info hash, peer id.
pub const HANDSHAKE_LEN: usize = 1 + PROTOCOL.len() + 8 + 20 + 20;

const RESERVED_AT: usize = 1 + PROTOCOL.len();
const INFO_HASH_AT: usize = RESERVED_AT + 8;
const PEER_ID_AT: usize = INFO_HASH_AT + 20;

/// Azureus-style client prefix: `-`, two letters for the client, four for the version, `-`.
const CLIENT_PREFIX: &[u8; 8] = b"-CU0100-";

/// The characters the random part of our peer id is drawn from.
const PEER_ID_ALPHABET: &[u8; 62] =
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The 20 bytes a peer names itself with. Arbitrary bytes from other clients; ours are
/// printable so they read well in logs and trackers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// Our peer id: `-CU0100-` then 12 alphanumerics picked by `random` (the caller supplies
    /// the randomness; the engine has no source of its own). The slight modulo bias does not
    /// matter: the id only has to differ between sessions, not be unguessable.
    pub fn generate(random: [u8; 12]) -> PeerId {
        let mut id = [0; 20];
        id[..CLIENT_PREFIX.len()].copy_from_slice(CLIENT_PREFIX);
        for (slot, r) in id[CLIENT_PREFIX.len()..].iter_mut().zip(random) {
            *slot = PEER_ID_ALPHABET[usize::from(r) % PEER_ID_ALPHABET.len()];
        }
        PeerId(id)
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Debug for PeerId {
    /// Printable bytes as-is, the rest escaped: `PeerId("-qB4650-\x01...")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PeerId(\"{}\")", self.0.escape_ascii())
    }
}

/// The 8 reserved handshake bytes, where each side advertises the extensions it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Reserved(pub [u8; 8]);

impl Reserved {
    const EXTENSIONS: (usize, u8) = (5, 0x10); // BEP 10
    const FAST: (usize, u8) = (7, 0x04); // BEP 6
    const DHT: (usize, u8) = (7, 0x01); // BEP 5

    /// What we advertise: the extension protocol (for ut_metadata and ut_pex) and the Fast
    /// extension (for have-all/none and explicit rejects). No DHT.
    pub fn ours() -> Reserved {
        let mut bytes = [0; 8];
        for (at, bit) in [Self::EXTENSIONS, Self::FAST] {
            bytes[at] |= bit;
        }
        Reserved(bytes)
    }

    /// These bits and BEP 5's DHT bit: we run a DHT node and send `port` to peers that
    /// set it too.
    pub fn with_dht(mut self) -> Reserved {
        self.0[Self::DHT.0] |= Self::DHT.1;
        self
    }

    /// BEP 10: the peer understands `extended` messages.
    pub fn supports_extensions(&self) -> bool {
        self.has(Self::EXTENSIONS)
    }

    /// BEP 6: the peer understands have-all/none, suggest, reject and allowed-fast.
    pub fn supports_fast(&self) -> bool {
        self.has(Self::FAST)
    }

    /// BEP 5: the peer runs a DHT node and may send a `port` message.
    pub fn supports_dht(&self) -> bool {
        self.has(Self::DHT)
    }

    fn has(&self, (at, bit): (usize, u8)) -> bool {
        self.0[at] & bit != 0
    }
}

/// A parsed or to-be-sent handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Handshake {
    pub reserved: Reserved,
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
}

impl Handshake {
    pub fn encode(&self) -> [u8; HANDSHAKE_LEN] {
        let mut out = [0; HANDSHAKE_LEN];
        out[0] = PROTOCOL.len() as u8;
        out[1..RESERVED_AT].copy_from_slice(PROTOCOL);
        out[RESERVED_AT..INFO_HASH_AT].copy_from_slice(&self.reserved.0);
        out[INFO_HASH_AT..PEER_ID_AT].copy_from_slice(self.info_hash.as_bytes());
        out[PEER_ID_AT..].copy_from_slice(self.peer_id.as_bytes());
        out
    }

    /// Parses the handshake at the front of `bytes`; anything after the first
    /// [`HANDSHAKE_LEN`] bytes is the peer's first messages and is left alone.
    pub fn parse(bytes: &[u8]) -> Result<Handshake, WireError> {
        check_protocol_prefix(bytes)?;
        let Some(bytes) = bytes.first_chunk::<HANDSHAKE_LEN>() else {
            return Err(WireError::HandshakeTruncated { len: bytes.len() });
        };
        Ok(Handshake {
            reserved: Reserved(sub_array(bytes, RESERVED_AT)),
            info_hash: Sha1Digest(sub_array(bytes, INFO_HASH_AT)),
            peer_id: PeerId(sub_array(bytes, PEER_ID_AT)),
        })
    }

    /// The info hash of a handshake still arriving, so a listener can pick the torrent (or
    /// hang up) before the peer id is in. `Ok(None)` until 48 bytes are buffered; an error as
    /// soon as the bytes seen so far cannot start a BitTorrent handshake.
    pub fn peek_info_hash(bytes: &[u8]) -> Result<Option<InfoHash>, WireError> {
        check_protocol_prefix(bytes)?;
        Ok(bytes
            .first_chunk::<PEER_ID_AT>()
            .map(|b| Sha1Digest(sub_array(b, INFO_HASH_AT))))
    }
}

/// Checks as much of the length byte and protocol string as `bytes` holds.
fn check_protocol_prefix(bytes: &[u8]) -> Result<(), WireError> {
    let mut expected = [0; RESERVED_AT];
    expected[0] = PROTOCOL.len() as u8;
    expected[1..].copy_from_slice(PROTOCOL);
    let seen = bytes.len().min(RESERVED_AT);
    if bytes[..seen] == expected[..seen] {
        Ok(())
    } else {
        Err(WireError::NotBitTorrent)
    }
}

/// The `N` bytes of `bytes` starting at `at`; `at + N` is within `M` at every call site.
fn sub_array<const N: usize, const M: usize>(bytes: &[u8; M], at: usize) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Handshake {
        Handshake {
            reserved: Reserved::ours(),
            info_hash: Sha1Digest([0xAA; 20]),
            peer_id: PeerId(*b"-CU0100-abcdefghijkl"),
        }
    }

    #[test]
    fn golden_bytes() {
        let mut want = vec![19];
        want.extend_from_slice(b"BitTorrent protocol");
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0x10, 0, 0x04]);
        want.extend_from_slice(&[0xAA; 20]);
        want.extend_from_slice(b"-CU0100-abcdefghijkl");
        assert_eq!(sample().encode().as_slice(), want.as_slice());
        assert_eq!(Handshake::parse(&want), Ok(sample()));
    }

    #[test]
    fn trailing_bytes_are_left_for_the_message_decoder() {
        let mut bytes = sample().encode().to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 1, 2]);
        assert_eq!(Handshake::parse(&bytes), Ok(sample()));
    }

    #[test]
    fn rejects_other_protocols() {
        let good = sample().encode();
        let mut bad_len = good;
        bad_len[0] = 18;
        let mut bad_pstr = good;
        bad_pstr[5] ^= 0x20;
        for bad in [
            &bad_len[..],
            &bad_pstr[..],
            b"GET / HTTP/1.1\r\n",
            &[0; 68][..],
        ] {
            assert_eq!(Handshake::parse(bad), Err(WireError::NotBitTorrent));
            assert_eq!(
                Handshake::peek_info_hash(bad),
                Err(WireError::NotBitTorrent)
            );
        }
        assert_eq!(
            Handshake::parse(&good[..67]),
            Err(WireError::HandshakeTruncated { len: 67 })
        );
    }

    #[test]
    fn peek_routes_once_the_info_hash_is_in() {
        let good = sample().encode();
        for n in 0..PEER_ID_AT {
            assert_eq!(Handshake::peek_info_hash(&good[..n]), Ok(None), "{n} bytes");
        }
        for n in PEER_ID_AT..=HANDSHAKE_LEN {
            assert_eq!(
                Handshake::peek_info_hash(&good[..n]),
                Ok(Some(sample().info_hash))
            );
        }
        // Garbage is refused from its first wrong byte, long before 48 bytes arrive.
        assert_eq!(
            Handshake::peek_info_hash(b"G"),
            Err(WireError::NotBitTorrent)
        );
        assert_eq!(
            Handshake::peek_info_hash(b"\x13BitTorrent pro\x00"),
            Err(WireError::NotBitTorrent)
        );
    }

    #[test]
    fn reserved_bits() {
        let ours = Reserved::ours();
        assert_eq!(ours.0, [0, 0, 0, 0, 0, 0x10, 0, 0x04]);
        assert!(ours.supports_extensions() && ours.supports_fast() && !ours.supports_dht());
        let with_dht = ours.with_dht();
        assert_eq!(with_dht.0, [0, 0, 0, 0, 0, 0x10, 0, 0x05]);
        assert!(with_dht.supports_dht() && with_dht.supports_fast());
        let dht_only = Reserved([0, 0, 0, 0, 0, 0, 0, 0x01]);
        assert!(dht_only.supports_dht() && !dht_only.supports_fast());
        assert!(!Reserved::default().supports_extensions());
    }

    #[test]
    fn generated_peer_id_is_ours_and_printable() {
        let id = PeerId::generate([0, 61, 62, 255, 7, 8, 9, 10, 11, 12, 13, 14]);
        assert_eq!(&id.0[..8], b"-CU0100-");
        assert_eq!(&id.0[8..12], b"0z07");
        assert!(id.0.iter().all(|b| b.is_ascii_graphic()));
        assert_ne!(id, PeerId::generate([1; 12]));
        assert_eq!(
            format!(
                "{:?}",
                PeerId(*b"-qB4650-\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c")
            ),
            r#"PeerId("-qB4650-\x01\x02\x03\x04\x05\x06\x07\x08\t\n\x0b\x0c")"#
        );
    }

    proptest::proptest! {
        #[test]
        fn parse_and_peek_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)) {
            let _ = Handshake::parse(&bytes);
            let _ = Handshake::peek_info_hash(&bytes);
        }

        #[test]
        fn round_trip(reserved: [u8; 8], hash: [u8; 20], peer: [u8; 20]) {
            let h = Handshake { reserved: Reserved(reserved), info_hash: Sha1Digest(hash), peer_id: PeerId(peer) };
            proptest::prop_assert_eq!(Handshake::parse(&h.encode()), Ok(h));
        }
    }
}
