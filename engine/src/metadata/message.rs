//! ut_metadata messages (BEP 9): a bencoded dict, and for `data` the piece's bytes after it.
//!
//! Decoding checks only what one message can show (its shape, a sane index and size, and
//! that a piece's length fits the total it claims). Whether the total matches what the peer
//! said before is the fetcher's business.

use thiserror::Error;

use crate::bencode::{self, Dict, Limits, Value};

/// Bytes in every metadata piece but the last.
pub const METADATA_PIECE_LEN: u32 = 16 * 1024;

/// The most metadata we would ever speak of: the pieces an index can name are bounded by
/// this, before any configured limit. 64 MiB is past any torrent's info dict (a 2,000,000
/// piece torrent's hashes are 40 MB).
pub const METADATA_SIZE_HARD_MAX: u64 = 64 << 20;

/// The header of a message is a handful of small integers.
const LIMITS: Limits = Limits {
    depth_max: 2,
    string_len_max: 64,
    input_len_max: METADATA_PIECE_LEN as usize + 1024,
    items_max: 32,
};

const REQUEST: i64 = 0;
const DATA: i64 = 1;
const REJECT: i64 = 2;

/// One ut_metadata message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataMessage<'a> {
    Request {
        piece: u32,
    },
    Data {
        piece: u32,
        total_size: u32,
        data: &'a [u8],
    },
    Reject {
        piece: u32,
    },
}

/// Why a ut_metadata message was refused: each drops the peer that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetadataError {
    #[error("ut_metadata message is not bencode: {0}")]
    NotBencode(#[from] bencode::DecodeError),
    #[error("ut_metadata message is not a dictionary")]
    NotDict,
    #[error("ut_metadata message has no valid `{0}`")]
    Missing(&'static str),
    #[error("ut_metadata message of unknown type {0}")]
    UnknownType(i64),
    #[error("ut_metadata piece index {0} is out of range")]
    BadIndex(i64),
    #[error("ut_metadata total_size {0} is not a metadata size")]
    BadTotalSize(i64),
    #[error("ut_metadata piece {piece} has {len} bytes; its total_size {total_size} needs {want}")]
    BadPieceLength {
        piece: u32,
        len: usize,
        total_size: u32,
        want: u32,
    },
    #[error("ut_metadata {0} message carries bytes after its dictionary")]
    TrailingBytes(&'static str),
}

/// Pieces in metadata of `size` bytes.
pub fn piece_count(size: u32) -> u32 {
    size.div_ceil(METADATA_PIECE_LEN)
}

/// How long piece `piece` of metadata of `size` bytes is (0 past the end).
pub fn piece_len(size: u32, piece: u32) -> u32 {
    let start = u64::from(piece) * u64::from(METADATA_PIECE_LEN);
    u64::from(size)
        .saturating_sub(start)
        .min(u64::from(METADATA_PIECE_LEN)) as u32
}

impl<'a> MetadataMessage<'a> {
    /// Reads the payload of an extended message sent under our ut_metadata id.
    pub fn decode(payload: &'a [u8]) -> Result<Self, MetadataError> {
        let (value, used) = bencode::decode_prefix(payload, &LIMITS)?;
        let dict = value.as_dict().ok_or(MetadataError::NotDict)?;
        let int = |key: &'static str| {
            dict.get(key.as_bytes())
                .and_then(Value::as_int)
                .ok_or(MetadataError::Missing(key))
        };
        let kind = int("msg_type")?;
        let raw_piece = int("piece")?;
        let piece = u32::try_from(raw_piece)
            .ok()
            .filter(|&p| u64::from(p) * u64::from(METADATA_PIECE_LEN) < METADATA_SIZE_HARD_MAX)
            .ok_or(MetadataError::BadIndex(raw_piece))?;
        let rest = &payload[used..];
        match kind {
            REQUEST | REJECT => {
                if !rest.is_empty() {
                    let name = if kind == REQUEST { "request" } else { "reject" };
                    return Err(MetadataError::TrailingBytes(name));
                }
                Ok(if kind == REQUEST {
                    MetadataMessage::Request { piece }
                } else {
                    MetadataMessage::Reject { piece }
                })
            }
            DATA => {
                let raw_total = int("total_size")?;
                let total_size = u32::try_from(raw_total)
                    .ok()
                    .filter(|&t| t > 0 && u64::from(t) <= METADATA_SIZE_HARD_MAX)
                    .ok_or(MetadataError::BadTotalSize(raw_total))?;
                let want = piece_len(total_size, piece);
                if want == 0 {
                    return Err(MetadataError::BadIndex(raw_piece));
                }
                if rest.len() != want as usize {
                    return Err(MetadataError::BadPieceLength {
                        piece,
                        len: rest.len(),
                        total_size,
                        want,
                    });
                }
                Ok(MetadataMessage::Data {
                    piece,
                    total_size,
                    data: rest,
                })
            }
            other => Err(MetadataError::UnknownType(other)),
        }
    }

    /// The payload to send (after the extended message's id byte).
    pub fn encode(&self) -> Vec<u8> {
        let (kind, piece) = match *self {
            MetadataMessage::Request { piece } => (REQUEST, piece),
            MetadataMessage::Data { piece, .. } => (DATA, piece),
            MetadataMessage::Reject { piece } => (REJECT, piece),
        };
        let mut dict = Dict::new()
            .with(b"msg_type", Value::Int(kind))
            .with(b"piece", Value::Int(i64::from(piece)));
        if let MetadataMessage::Data { total_size, .. } = *self {
            dict.insert(b"total_size", Value::Int(i64::from(total_size)));
        }
        let mut out = bencode::encode(&Value::Dict(dict));
        if let MetadataMessage::Data { data, .. } = *self {
            out.extend_from_slice(data);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let data = vec![7u8; 100];
        for msg in [
            MetadataMessage::Request { piece: 3 },
            MetadataMessage::Reject { piece: 0 },
            MetadataMessage::Data {
                piece: 1,
                total_size: METADATA_PIECE_LEN + 100,
                data: &data,
            },
        ] {
            assert_eq!(MetadataMessage::decode(&msg.encode()), Ok(msg));
        }
    }

    #[test]
    fn reads_the_bep_9_examples() {
        assert_eq!(
            MetadataMessage::decode(b"d8:msg_typei0e5:piecei0ee"),
            Ok(MetadataMessage::Request { piece: 0 })
        );
        let mut data = b"d8:msg_typei1e5:piecei0e10:total_sizei3ee".to_vec();
        data.extend_from_slice(b"abc");
        assert_eq!(
            MetadataMessage::decode(&data),
            Ok(MetadataMessage::Data {
                piece: 0,
                total_size: 3,
                data: b"abc"
            })
        );
    }

    #[test]
    fn piece_lengths() {
        assert_eq!(piece_count(1), 1);
        assert_eq!(piece_count(METADATA_PIECE_LEN), 1);
        assert_eq!(piece_count(METADATA_PIECE_LEN + 1), 2);
        assert_eq!(piece_len(METADATA_PIECE_LEN + 1, 0), METADATA_PIECE_LEN);
        assert_eq!(piece_len(METADATA_PIECE_LEN + 1, 1), 1);
        assert_eq!(piece_len(METADATA_PIECE_LEN + 1, 2), 0);
    }

    #[test]
    fn refuses_what_cannot_be() {
        use MetadataError::*;
        let bad = |b: &[u8]| MetadataMessage::decode(b).unwrap_err();
        assert!(matches!(bad(b"le"), NotDict));
        assert!(matches!(bad(b"d5:piecei0ee"), Missing("msg_type")));
        assert!(matches!(bad(b"d8:msg_typei7e5:piecei0ee"), UnknownType(7)));
        assert!(matches!(bad(b"d8:msg_typei0e5:piecei-1ee"), BadIndex(-1)));
        assert!(matches!(
            bad(b"d8:msg_typei0e5:piecei99999999ee"),
            BadIndex(_)
        ));
        assert!(matches!(
            bad(b"d8:msg_typei0e5:piecei0eexyz"),
            TrailingBytes(_)
        ));
        // A data message whose bytes do not fit the total it claims.
        assert!(matches!(
            bad(b"d8:msg_typei1e5:piecei0e10:total_sizei5eeabc"),
            BadPieceLength {
                want: 5,
                len: 3,
                ..
            }
        ));
        assert!(matches!(
            bad(b"d8:msg_typei1e5:piecei1e10:total_sizei5eeabc"),
            BadIndex(1)
        ));
        assert!(matches!(
            bad(b"d8:msg_typei1e5:piecei0e10:total_sizei0ee"),
            BadTotalSize(0)
        ));
        assert!(matches!(
            bad(b"d8:msg_typei1e5:piecei0e10:total_sizei99999999999ee"),
            BadTotalSize(_)
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = MetadataMessage::decode(&bytes);
        }

        #[test]
        fn data_round_trips(total in 1u32..200_000, piece in 0u32..13) {
            let len = piece_len(total, piece);
            proptest::prop_assume!(len > 0);
            let data = vec![1u8; len as usize];
            let msg = MetadataMessage::Data { piece, total_size: total, data: &data };
            let bytes = msg.encode();
            proptest::prop_assert_eq!(MetadataMessage::decode(&bytes), Ok(msg));
        }
    }
}
