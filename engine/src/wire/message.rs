//! Peer messages after the handshake: `<u32 length><u8 id><payload>`, big-endian, where a
//! zero length is a keep-alive.

use super::WireError;
use crate::block::{BlockRef, BLOCK_LEN};

/// Message ids: BEP 3, then BEP 5 (`port`), BEP 6 (Fast extension), BEP 10 (`extended`).
mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    pub const PORT: u8 = 9;
    pub const SUGGEST_PIECE: u8 = 0x0D;
    pub const HAVE_ALL: u8 = 0x0E;
    pub const HAVE_NONE: u8 = 0x0F;
    pub const REJECT_REQUEST: u8 = 0x10;
    pub const ALLOWED_FAST: u8 = 0x11;
    pub const EXTENDED: u8 = 20;
}

/// Bytes of a `piece` message before its block: length prefix, id, piece index, offset.
const PIECE_HEADER_LEN: usize = 13;

/// Headroom for extension-protocol messages beyond one block: a ut_metadata `data` message
/// is a short bencoded dict (~50 bytes) followed by a 16 KiB metadata piece, and extension
/// handshakes list extensions, a client name and addresses. Real ones stay well under this.
const EXTENSION_HEADROOM: u32 = 8 * 1024;

/// One peer message. Payloads borrow from the buffer it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have(u32),
    /// Raw payload; check it against the piece count with [`crate::Bitfield::from_wire`].
    Bitfield(&'a [u8]),
    Request(BlockRef),
    Piece {
        piece: u32,
        offset: u32,
        data: &'a [u8],
    },
    Cancel(BlockRef),
    /// BEP 5: the peer's DHT port.
    Port(u16),
    /// BEP 6: a piece the peer would like us to download (from it).
    SuggestPiece(u32),
    /// BEP 6: stands in for a bitfield with every bit set.
    HaveAll,
    /// BEP 6: stands in for an empty bitfield.
    HaveNone,
    /// BEP 6: the peer will not serve this request.
    RejectRequest(BlockRef),
    /// BEP 6: a piece we may request even while choked.
    AllowedFast(u32),
    /// BEP 10: `id` 0 is the extension handshake, others are the ids it assigned.
    Extended {
        id: u8,
        payload: &'a [u8],
    },
    /// An id we do not know; BEP 3 says to ignore it, so it is passed up, not rejected.
    Unknown {
        id: u8,
        payload: &'a [u8],
    },
}

impl Message<'_> {
    /// The id byte, or `None` for a keep-alive (which has none).
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => id::CHOKE,
            Message::Unchoke => id::UNCHOKE,
            Message::Interested => id::INTERESTED,
            Message::NotInterested => id::NOT_INTERESTED,
            Message::Have(_) => id::HAVE,
            Message::Bitfield(_) => id::BITFIELD,
            Message::Request(_) => id::REQUEST,
            Message::Piece { .. } => id::PIECE,
            Message::Cancel(_) => id::CANCEL,
            Message::Port(_) => id::PORT,
            Message::SuggestPiece(_) => id::SUGGEST_PIECE,
            Message::HaveAll => id::HAVE_ALL,
            Message::HaveNone => id::HAVE_NONE,
            Message::RejectRequest(_) => id::REJECT_REQUEST,
            Message::AllowedFast(_) => id::ALLOWED_FAST,
            Message::Extended { .. } => id::EXTENDED,
            Message::Unknown { id, .. } => *id,
        })
    }

    /// Bytes [`encode`](Self::encode) appends, length prefix included.
    pub fn encoded_len(&self) -> usize {
        4 + self.body_len()
    }

    /// Appends the message, length prefix first.
    ///
    /// # Panics
    ///
    /// If a payload is 4 GiB or more, which no message we build comes near.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        out.extend_from_slice(&frame_len(self.body_len()).to_be_bytes());
        out.extend(self.id());
        match self {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => {}
            Message::Have(piece) | Message::SuggestPiece(piece) | Message::AllowedFast(piece) => {
                out.extend_from_slice(&piece.to_be_bytes());
            }
            Message::Request(block) | Message::Cancel(block) | Message::RejectRequest(block) => {
                for word in [block.piece, block.offset, block.len] {
                    out.extend_from_slice(&word.to_be_bytes());
                }
            }
            Message::Piece {
                piece,
                offset,
                data,
            } => {
                out.extend_from_slice(&piece.to_be_bytes());
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(data);
            }
            Message::Port(port) => out.extend_from_slice(&port.to_be_bytes()),
            Message::Extended { id, payload } => {
                out.push(*id);
                out.extend_from_slice(payload);
            }
            Message::Bitfield(payload) | Message::Unknown { payload, .. } => {
                out.extend_from_slice(payload);
            }
        }
    }

    /// What the length prefix says: id plus payload.
    fn body_len(&self) -> usize {
        match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Have(_) | Message::SuggestPiece(_) | Message::AllowedFast(_) => 5,
            Message::Request(_) | Message::Cancel(_) | Message::RejectRequest(_) => 13,
            Message::Piece { data, .. } => 9 + data.len(),
            Message::Port(_) => 3,
            Message::Extended { payload, .. } => 2 + payload.len(),
            Message::Bitfield(payload) | Message::Unknown { payload, .. } => 1 + payload.len(),
        }
    }
}

/// The 13 bytes that precede a block in a `piece` message, so the block can be sent from
/// the caller's own buffer (a vectored write) instead of being copied into a message.
///
/// # Panics
///
/// If `data_len` is within 9 of `u32::MAX`; blocks are 16 KiB.
pub fn encode_piece_header(piece: u32, offset: u32, data_len: u32) -> [u8; PIECE_HEADER_LEN] {
    let len = data_len
        .checked_add(9)
        .expect("a block must be under 4 GiB to fit a length prefix");
    let mut out = [0; PIECE_HEADER_LEN];
    out[..4].copy_from_slice(&len.to_be_bytes());
    out[4] = id::PIECE;
    out[5..9].copy_from_slice(&piece.to_be_bytes());
    out[9..].copy_from_slice(&offset.to_be_bytes());
    out
}

fn frame_len(body_len: usize) -> u32 {
    u32::try_from(body_len).expect("a wire message must be under 4 GiB")
}

/// The largest message a peer of a torrent with `piece_count` pieces may send, to pass to
/// [`decode_message`] as `max_len`. It is the largest of:
///
/// - a `bitfield`: 1 + ⌈piece_count / 8⌉ bytes;
/// - a `piece` carrying one 16 KiB block: 9 + [`BLOCK_LEN`] (we never request more, and
///   most clients refuse larger requests anyway);
/// - an `extended` message: 1 + [`BLOCK_LEN`] + 8 KiB, for a ut_metadata piece with its
///   bencoded header, or an extension handshake.
///
/// Nothing legitimate is longer, and every connection may buffer up to this much, so a
/// tight bound is what keeps a misbehaving peer from costing us more memory than an honest
/// one. Before a magnet link's metadata arrives the piece count is unknown; pass the largest
/// piece count you would accept, since peers send their bitfield straight away.
pub fn max_message_len(piece_count: u32) -> u32 {
    let bitfield = 1 + piece_count.div_ceil(8);
    let piece = 9 + BLOCK_LEN;
    let extended = 1 + BLOCK_LEN + EXTENSION_HEADROOM;
    bitfield.max(piece).max(extended)
}

/// Decodes the message at the front of `buf`: `Ok(None)` until all of it is buffered,
/// otherwise the message and how many bytes it took. A length prefix above `max_len` is an
/// error as soon as its 4 bytes are in, so an oversized message is never waited for.
pub fn decode_message(buf: &[u8], max_len: u32) -> Result<Option<(Message<'_>, usize)>, WireError> {
    let Some((prefix, rest)) = buf.split_first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_be_bytes(*prefix);
    if len > max_len {
        return Err(WireError::TooLong { len, max: max_len });
    }
    let Some(body) = usize::try_from(len).ok().and_then(|n| rest.get(..n)) else {
        return Ok(None);
    };
    let consumed = prefix.len() + body.len();
    let Some((&id, payload)) = body.split_first() else {
        return Ok(Some((Message::KeepAlive, consumed)));
    };
    decode_body(id, len, payload).map(|message| Some((message, consumed)))
}

/// Decodes the payload of a message with id `id` and length prefix `len`.
fn decode_body(id: u8, len: u32, payload: &[u8]) -> Result<Message<'_>, WireError> {
    let bad = || WireError::BadLength { id, len };
    let empty = payload.is_empty();
    Ok(match id {
        id::CHOKE if empty => Message::Choke,
        id::UNCHOKE if empty => Message::Unchoke,
        id::INTERESTED if empty => Message::Interested,
        id::NOT_INTERESTED if empty => Message::NotInterested,
        id::HAVE_ALL if empty => Message::HaveAll,
        id::HAVE_NONE if empty => Message::HaveNone,
        id::CHOKE
        | id::UNCHOKE
        | id::INTERESTED
        | id::NOT_INTERESTED
        | id::HAVE_ALL
        | id::HAVE_NONE => return Err(bad()),
        id::HAVE | id::SUGGEST_PIECE | id::ALLOWED_FAST => {
            let [piece] = be_u32s(payload).ok_or_else(bad)?;
            match id {
                id::HAVE => Message::Have(piece),
                id::SUGGEST_PIECE => Message::SuggestPiece(piece),
                _ => Message::AllowedFast(piece),
            }
        }
        id::REQUEST | id::CANCEL | id::REJECT_REQUEST => {
            let [piece, offset, block_len] = be_u32s(payload).ok_or_else(bad)?;
            let block = BlockRef {
                piece,
                offset,
                len: block_len,
            };
            match id {
                id::REQUEST => Message::Request(block),
                id::CANCEL => Message::Cancel(block),
                _ => Message::RejectRequest(block),
            }
        }
        id::PIECE => {
            let (header, data) = payload.split_at_checked(8).ok_or_else(bad)?;
            let [piece, offset] = be_u32s(header).ok_or_else(bad)?;
            Message::Piece {
                piece,
                offset,
                data,
            }
        }
        id::BITFIELD => Message::Bitfield(payload),
        id::PORT => Message::Port(u16::from_be_bytes(payload.try_into().map_err(|_| bad())?)),
        id::EXTENDED => {
            let (&id, payload) = payload.split_first().ok_or_else(bad)?;
            Message::Extended { id, payload }
        }
        _ => Message::Unknown { id, payload },
    })
}

/// `payload` as exactly `N` big-endian `u32`s, or `None` if its length is not `4 * N`.
fn be_u32s<const N: usize>(payload: &[u8]) -> Option<[u32; N]> {
    if payload.len() != 4 * N {
        return None;
    }
    let mut out = [0; N];
    for (word, bytes) in out.iter_mut().zip(payload.chunks_exact(4)) {
        *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    }
    Some(out)
}

/// A message's name as BEP 3/5/6/10 spell it, for error messages.
pub(super) fn message_name(id: u8) -> &'static str {
    match id {
        id::CHOKE => "choke",
        id::UNCHOKE => "unchoke",
        id::INTERESTED => "interested",
        id::NOT_INTERESTED => "not interested",
        id::HAVE => "have",
        id::BITFIELD => "bitfield",
        id::REQUEST => "request",
        id::PIECE => "piece",
        id::CANCEL => "cancel",
        id::PORT => "port",
        id::SUGGEST_PIECE => "suggest piece",
        id::HAVE_ALL => "have all",
        id::HAVE_NONE => "have none",
        id::REJECT_REQUEST => "reject request",
        id::ALLOWED_FAST => "allowed fast",
        id::EXTENDED => "extended",
        _ => "unknown",
    }
}

/// The length prefix a message with this id must have, for error messages.
pub(super) fn expected_len(id: u8) -> &'static str {
    match id {
        id::CHOKE
        | id::UNCHOKE
        | id::INTERESTED
        | id::NOT_INTERESTED
        | id::HAVE_ALL
        | id::HAVE_NONE => "1",
        id::HAVE | id::SUGGEST_PIECE | id::ALLOWED_FAST => "5",
        id::REQUEST | id::CANCEL | id::REJECT_REQUEST => "13",
        id::PIECE => "at least 9",
        id::PORT => "3",
        id::EXTENDED => "at least 2",
        _ => "at least 1",
    }
}
