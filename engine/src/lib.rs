//! `ccbt-engine`: the sans-I/O core of ccbt-uring.
//!
//! What it does: parses and builds the formats BitTorrent speaks (bencode, v1 metainfo,
//! magnet URIs), computes piece geometry and info hashes, and — as the engine grows — holds
//! the protocol state machines. Bytes and time go in; values, messages and actions come out.
//!
//! What it does not do: no sockets, no files, no threads, no clock. It never imports an async
//! runtime. Callers (the `ccbt-shards` crate, the CLI, tests) own all I/O and pass the current
//! time in as a value. `tests/house_rules.rs` enforces this.

pub mod bencode;
pub mod bitfield;
pub mod block;
pub mod blocklist;
pub mod choker;
pub mod dht;
pub mod extension;
pub mod hash;
pub mod http;
pub mod lsd;
pub mod magnet;
pub mod metadata;
pub mod metainfo;
pub mod pex;
pub mod picker;
pub mod queue;
pub mod rate;
pub mod rate_limit;
mod rng;
pub mod session;
pub mod share_limits;
pub mod tracker;
pub mod webseed;
pub mod wire;

pub use bitfield::Bitfield;
pub use block::{BlockRef, BLOCK_LEN};
pub use hash::{InfoHash, Sha1Digest};
