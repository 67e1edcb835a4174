//! The peer wire protocol: the handshake and the length-prefixed messages peers exchange
//! over TCP (BEP 3), with the Fast extension's messages (BEP 6), the DHT `port` message
//! (BEP 5) and the extension protocol's framing (BEP 10).
//!
//! Sans-I/O and zero-copy: [`decode_message`] reads one message from the front of whatever
//! bytes the caller has buffered and borrows payloads (bitfields, blocks, extension
//! payloads) straight from that buffer; encoders append to a caller's `Vec` or, for blocks,
//! return a fixed header so the block itself is sent from wherever it already lives.
//! Every length a peer sends is checked against a per-torrent limit before anything waits
//! for or copies the body, so a peer can make us hold at most [`max_message_len`] bytes.

mod client_name;
mod error;
mod handshake;
mod message;

pub use client_name::client_name;
pub use error::WireError;
pub use handshake::{Handshake, PeerId, Reserved, HANDSHAKE_LEN, PROTOCOL};
pub use message::{decode_message, encode_piece_header, max_message_len, Message};

#[cfg(test)]
mod tests;
