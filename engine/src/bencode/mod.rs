//! Bencode (BEP 3): a zero-copy decoder with explicit limits, and a canonical encoder.
//!
//! Decoded values borrow from the input, so parsing a 10 MiB torrent allocates only the
//! list and dict spines. Every dict keeps the exact bytes it was decoded from
//! ([`Dict::raw`]), which is what the info hash is computed over: re-encoding a dict a peer
//! or a file gave us could change its bytes (key order, integer form) and so its hash.

mod decode;
mod encode;
mod value;

pub use decode::{decode, decode_prefix, DecodeError, Limits};
pub use encode::{encode, encode_into};
pub use value::{Dict, Value};

#[cfg(test)]
mod tests;
