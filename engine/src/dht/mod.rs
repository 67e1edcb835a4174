//! The mainline DHT (BEP 5) as a sans-I/O node, in the shape of quinn-proto: datagrams and
//! time go in ([`Node::handle_packet`], [`Node::handle_timeout`]), datagrams, timers and
//! events come out ([`Node::poll_transmit`], [`Node::poll_timeout`], [`Node::poll_event`]).
//!
//! What it does: KRPC encoding ([`krpc`]), a k-bucket routing table ([`table`]), announce
//! tokens ([`token`]), the peers other nodes announce to us ([`storage`]), iterative lookups
//! ([`lookup`]), per-IP query rate limits ([`limiter`]) and BEP 42 node ids ([`id`]).
//! IPv4 only; BEP 32 (IPv6) is not implemented.
//!
//! What it does not do: own a socket, read a clock or persist anything. The shard that runs
//! it owns the UDP socket and passes the time in as a `Duration` since its own epoch, as the
//! tracker and session machines do. Every table is bounded; each bound's doc says what
//! happens when it is hit.

pub mod id;
pub mod krpc;
pub mod limiter;
pub mod lookup;
pub mod node;
pub mod storage;
pub mod table;
pub mod token;

pub use id::NodeId;
pub use lookup::{LookupId, LookupKind, LookupStats};
pub use node::{Config, DhtError, Event, Node, SnapshotError, Stats, Transmit};
