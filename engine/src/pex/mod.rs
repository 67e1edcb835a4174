//! BEP 11 peer exchange (`ut_pex`): the message's codec.
//!
//! A message is a bencoded dict of compact address lists: `added` (IPv4, 6 bytes each) with
//! one flag byte per address in `added.f`, `dropped`, and the same three for IPv6
//! (`added6`, `added6.f`, `dropped6`, 18 bytes each). What a torrent does with them (whom
//! it tells, how often, what it takes from peers) is `session::pex`'s.
//!
//! Decoding is bounded: at most [`DECODE_ADDED_MAX`] added and [`DECODE_DROPPED_MAX`]
//! dropped addresses are read from a message (IPv4 first, then IPv6); the rest of a longer
//! list is ignored, not an error, so a peer naming ten thousand addresses costs one scan
//! and a few KiB. Only a payload that is not bencode is an error; a field of the wrong type,
//! a list whose length is not a multiple of its entry size (the tail is ignored) or a
//! missing flag byte (reads as no flags) reads as what it can.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

use crate::bencode::{self, Dict, Limits, Value};

#[cfg(test)]
mod tests;

/// Added addresses read from one message, at most; more are ignored.
pub const DECODE_ADDED_MAX: usize = 200;
/// Dropped addresses read from one message, at most; more are ignored.
pub const DECODE_DROPPED_MAX: usize = 200;

/// What a PEX payload may weigh. The wire's message bound already caps its size; these
/// only keep a hostile dict cheap (a handful of keys, four address strings).
const LIMITS: Limits = Limits {
    depth_max: 4,
    string_len_max: 1 << 20,
    input_len_max: 1 << 20,
    items_max: 256,
};

/// The flag byte BEP 11 (and libtorrent) attach to each added address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// 0x01: prefers encrypted connections.
    pub const ENCRYPTION: u8 = 0x01;
    /// 0x02: a seed (or upload only).
    pub const SEED: u8 = 0x02;
    /// 0x04: speaks uTP.
    pub const UTP: u8 = 0x04;
    /// 0x08: supports ut_holepunch.
    pub const HOLEPUNCH: u8 = 0x08;
    /// 0x10: reachable: the sender connected out to it, so it accepts connections.
    pub const OUTGOING: u8 = 0x10;

    pub fn encryption(self) -> bool {
        self.0 & Self::ENCRYPTION != 0
    }
    pub fn seed(self) -> bool {
        self.0 & Self::SEED != 0
    }
    pub fn utp(self) -> bool {
        self.0 & Self::UTP != 0
    }
    pub fn holepunch(self) -> bool {
        self.0 & Self::HOLEPUNCH != 0
    }
    pub fn reachable(self) -> bool {
        self.0 & Self::OUTGOING != 0
    }
}

/// One ut_pex message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PexMessage {
    /// Peers the sender is connected to now and had not told of, with their flags.
    pub added: Vec<(SocketAddr, PexFlags)>,
    /// Peers it told of before and is no longer connected to.
    pub dropped: Vec<SocketAddr>,
}

/// Why a PEX payload was refused: only bencode that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PexError {
    #[error("ut_pex message is not bencode: {0}")]
    NotBencode(#[from] bencode::DecodeError),
}

impl PexMessage {
    /// The payload of the extended message (its id is the peer's for ut_pex). IPv4 and
    /// IPv6 addresses go to their own keys; every key is written, empty when there is
    /// nothing, as libtorrent does.
    pub fn encode(&self) -> Vec<u8> {
        let (mut added, mut added_f, mut added6, mut added6_f) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &(addr, flags) in &self.added {
            match addr {
                SocketAddr::V4(_) => {
                    compact(&mut added, addr);
                    added_f.push(flags.0);
                }
                SocketAddr::V6(_) => {
                    compact(&mut added6, addr);
                    added6_f.push(flags.0);
                }
            }
        }
        let (mut dropped, mut dropped6) = (Vec::new(), Vec::new());
        for &addr in &self.dropped {
            match addr {
                SocketAddr::V4(_) => compact(&mut dropped, addr),
                SocketAddr::V6(_) => compact(&mut dropped6, addr),
            }
        }
        let dict = Dict::new()
            .with(b"added", Value::Bytes(&added))
            .with(b"added.f", Value::Bytes(&added_f))
            .with(b"added6", Value::Bytes(&added6))
            .with(b"added6.f", Value::Bytes(&added6_f))
            .with(b"dropped", Value::Bytes(&dropped))
            .with(b"dropped6", Value::Bytes(&dropped6));
        bencode::encode(&Value::Dict(dict))
    }

    /// Reads a payload, bounded as the module doc says.
    pub fn decode(payload: &[u8]) -> Result<PexMessage, PexError> {
        let value = bencode::decode(payload, &LIMITS)?;
        let mut msg = PexMessage::default();
        let Some(dict) = value.as_dict() else {
            return Ok(msg);
        };
        let bytes = |key: &[u8]| dict.get(key).and_then(Value::as_bytes).unwrap_or(&[]);
        for (list, flags, len) in [
            (bytes(b"added"), bytes(b"added.f"), 6),
            (bytes(b"added6"), bytes(b"added6.f"), 18),
        ] {
            for (i, entry) in list.chunks_exact(len).enumerate() {
                if msg.added.len() >= DECODE_ADDED_MAX {
                    break;
                }
                let f = PexFlags(flags.get(i).copied().unwrap_or(0));
                msg.added.push((parse_compact(entry), f));
            }
        }
        for (list, len) in [(bytes(b"dropped"), 6), (bytes(b"dropped6"), 18)] {
            for entry in list.chunks_exact(len) {
                if msg.dropped.len() >= DECODE_DROPPED_MAX {
                    break;
                }
                msg.dropped.push(parse_compact(entry));
            }
        }
        Ok(msg)
    }
}

/// Whether an address a peer named is worth dialling: a unicast address and a port.
pub fn dialable(addr: SocketAddr) -> bool {
    let ip = addr.ip();
    addr.port() != 0
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && ip != IpAddr::V4(Ipv4Addr::BROADCAST)
}

fn compact(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// A 6- or 18-byte compact entry (the caller chunks by one of those sizes).
fn parse_compact(entry: &[u8]) -> SocketAddr {
    let (ip, port) = entry.split_at(entry.len() - 2);
    let port = u16::from_be_bytes([port[0], port[1]]);
    let ip = match <[u8; 4]>::try_from(ip) {
        Ok(v4) => IpAddr::V4(Ipv4Addr::from(v4)),
        Err(_) => IpAddr::V6(Ipv6Addr::from(
            <[u8; 16]>::try_from(ip).expect("chunks of 18 bytes"),
        )),
    };
    SocketAddr::new(ip, port)
}
