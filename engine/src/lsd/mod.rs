//! BEP 14 local service discovery (LSD): peers on the same network segment find each
//! other by announcing their torrents to a multicast group, SSDP-style (HTTP-like text over
//! UDP).
//!
//! - [`announce`] is the datagram's codec: `BT-SEARCH * HTTP/1.1` with `Host`, `Port`, one
//!   or more `Infohash` headers and an optional `cookie` that lets a client drop its own
//!   announces when multicast loops back to it.
//! - [`service`] is the sans-I/O state machine a process runs once: a queue of torrents to
//!   announce, packed several to a datagram and paced; and, for what arrives, its own
//!   announces dropped, a rate limit, and each (address, torrent) passed on at most once a
//!   minute.
//!
//! Sockets, group membership and the choice of interface are the caller's (the shards').
//! IPv4 only for now (group A of BEP 14); the IPv6 group B is not joined.

use std::net::Ipv4Addr;

pub mod announce;
pub mod service;

#[cfg(test)]
mod tests;

pub use announce::{
    encode, hashes_per_datagram, Announce, LsdError, DATAGRAM_MAX, READ_HASHES_MAX,
};
pub use service::{Found, Lsd, LsdConfig, LsdCounters};

/// BEP 14's IPv4 multicast group (org-local scope).
pub const GROUP_V4: Ipv4Addr = Ipv4Addr::new(239, 192, 152, 143);
/// The UDP port announces go to.
pub const PORT: u16 = 6771;
