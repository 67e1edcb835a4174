//! Why bytes from a peer are not valid peer wire protocol.
//!
//! Each message is written to finish the sentence "peer 1.2.3.4:5 dropped: …".

use thiserror::Error;

use super::message::{expected_len, message_name};

/// A protocol violation that ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    /// The first bytes are not `19` followed by "BitTorrent protocol".
    #[error("not a BitTorrent handshake (expected \\x13\"BitTorrent protocol\")")]
    NotBitTorrent,
    /// [`Handshake::parse`](super::Handshake::parse) got fewer than 68 bytes.
    #[error("handshake cut short: {len} of 68 bytes")]
    HandshakeTruncated { len: usize },
    /// A length prefix above the torrent's limit: no honest peer sends it, and buffering it
    /// would let a peer make us hold arbitrary amounts of memory.
    #[error("message of {len} bytes exceeds this torrent's {max}-byte limit")]
    TooLong { len: u32, max: u32 },
    /// A message whose length does not fit its id (e.g. a 7-byte `have`).
    #[error(
        "malformed `{}` message (id {id}): length {len}, expected {}",
        message_name(*.id),
        expected_len(*.id)
    )]
    BadLength { id: u8, len: u32 },
}
