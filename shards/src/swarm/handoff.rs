//! Passing accepted connections between shards.
//!
//! The kernel spreads incoming connections over the shards' SO_REUSEPORT listeners without
//! knowing which torrent they are for. The accepting shard reads the handshake, and when the
//! torrent belongs to another shard it sends the socket (as an owned fd) and the bytes read
//! so far through the owner's inbox. The inbox is bounded: when it is full the connection
//! is refused rather than queued without limit.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

/// A connection on its way to the shard that owns its torrent.
pub struct Handoff {
    pub socket: OwnedFd,
    pub addr: SocketAddr,
    /// Everything read so far: at least the whole handshake.
    pub read: Vec<u8>,
}
