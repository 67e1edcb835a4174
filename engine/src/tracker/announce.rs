//! What an announce says and what a tracker answers, independent of HTTP or UDP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::hash::InfoHash;

/// Shortest announce interval we obey, in seconds. A tracker asking for less would have us
/// hammer it (or is broken); 30 s is still far below what real trackers ask.
pub const INTERVAL_MIN: u32 = 30;

/// Longest announce interval we obey, in seconds. Past two hours the peer list goes stale
/// and the tracker forgets us, so we announce anyway.
pub const INTERVAL_MAX: u32 = 2 * 60 * 60;

/// Most peers we take from one response. Trackers return ~50–200; more is a waste of
/// memory (or an attack), so the rest are dropped.
pub const PEERS_MAX: usize = 2000;

/// Longest failure/warning message we keep, in bytes: enough for any human sentence.
const MESSAGE_LEN_MAX: usize = 1024;

/// The `event` of an announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Event {
    /// A regular, periodic announce.
    #[default]
    None,
    /// The first announce of a session.
    Started,
    /// The download just finished (sent once, not when starting as a seed).
    Completed,
    /// The torrent is stopping.
    Stopped,
}

impl Event {
    /// The HTTP query value; `None` for a regular announce, which sends no `event`.
    pub fn http_name(self) -> Option<&'static str> {
        match self {
            Event::None => None,
            Event::Started => Some("started"),
            Event::Completed => Some("completed"),
            Event::Stopped => Some("stopped"),
        }
    }

    /// The BEP 15 event code.
    pub fn udp_code(self) -> u32 {
        match self {
            Event::None => 0,
            Event::Completed => 1,
            Event::Started => 2,
            Event::Stopped => 3,
        }
    }
}

/// One announce: who we are and how far along the torrent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    pub info_hash: InfoHash,
    pub peer_id: [u8; 20],
    /// The port we accept peer connections on.
    pub port: u16,
    pub uploaded: u64,
    pub downloaded: u64,
    pub left: u64,
    pub event: Event,
    /// How many peers we want; `None` lets the tracker choose.
    pub num_want: Option<u32>,
    /// A random value that stays the same for the session, so the tracker can tell us apart
    /// from another client behind the same address.
    pub key: u32,
    /// The `tracker id` the tracker gave us last time, echoed back.
    pub tracker_id: Option<Vec<u8>>,
}

/// A tracker's answer to an announce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnnounceResponse {
    /// Seconds until the next regular announce, clamped to [`INTERVAL_MIN`]..=[`INTERVAL_MAX`].
    pub interval: u32,
    /// Seconds we must wait at least before announcing again, clamped likewise.
    pub min_interval: Option<u32>,
    /// At most [`PEERS_MAX`] peers; entries with port 0 are dropped.
    pub peers: Vec<SocketAddr>,
    pub seeders: Option<u32>,
    pub leechers: Option<u32>,
    pub warning: Option<String>,
    pub tracker_id: Option<Vec<u8>>,
}

/// A tracker's counts for one torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScrapeStats {
    /// Seeders.
    pub complete: u32,
    /// Leechers.
    pub incomplete: u32,
    /// How many times the torrent was completed.
    pub downloaded: u32,
}

/// Clamps a tracker's interval (any integer it sent) into the range we obey.
pub(crate) fn clamp_interval(secs: i64) -> u32 {
    // The clamp bounds fit in u32, so the cast is exact.
    secs.clamp(i64::from(INTERVAL_MIN), i64::from(INTERVAL_MAX)) as u32
}

/// A tracker's count (seeders, leechers…) as a u32; negative counts are nonsense.
pub(crate) fn count(n: i64) -> Option<u32> {
    u32::try_from(n).ok()
}

/// A tracker-supplied message, bounded and made printable.
pub(crate) fn message(bytes: &[u8]) -> String {
    let bytes = &bytes[..bytes.len().min(MESSAGE_LEN_MAX)];
    String::from_utf8_lossy(bytes)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Appends compact peers (BEP 23: 4-byte IPv4 + 2-byte port; BEP 7: 16-byte IPv6 + port)
/// to `out`, up to [`PEERS_MAX`]. `bytes` must be a whole number of entries.
pub(crate) fn push_compact_peers(
    bytes: &[u8],
    ipv6: bool,
    out: &mut Vec<SocketAddr>,
) -> Result<(), String> {
    let entry = if ipv6 { 18 } else { 6 };
    if bytes.len() % entry != 0 {
        return Err(format!(
            "compact peer list of {} bytes is not a whole number of {entry}-byte entries",
            bytes.len()
        ));
    }
    for chunk in bytes.chunks_exact(entry) {
        let (ip, port) = chunk.split_at(entry - 2);
        let ip: IpAddr = if ipv6 {
            let octets: [u8; 16] = ip.try_into().map_err(|_| "bad IPv6 entry")?;
            Ipv6Addr::from(octets).into()
        } else {
            let octets: [u8; 4] = ip.try_into().map_err(|_| "bad IPv4 entry")?;
            Ipv4Addr::from(octets).into()
        };
        push_peer(
            SocketAddr::new(ip, u16::from_be_bytes([port[0], port[1]])),
            out,
        );
    }
    Ok(())
}

/// Adds one peer unless the list is full or the peer is unreachable (port 0).
pub(crate) fn push_peer(peer: SocketAddr, out: &mut Vec<SocketAddr>) {
    if out.len() < PEERS_MAX && peer.port() != 0 {
        out.push(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_clamped() {
        assert_eq!(clamp_interval(-5), INTERVAL_MIN);
        assert_eq!(clamp_interval(1), INTERVAL_MIN);
        assert_eq!(clamp_interval(1800), 1800);
        assert_eq!(clamp_interval(i64::MAX), INTERVAL_MAX);
    }

    #[test]
    fn compact_peers_decode_and_are_capped() {
        let mut out = Vec::new();
        push_compact_peers(
            &[10, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 0],
            false,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, ["10.0.0.1:6881".parse().unwrap()]);
        let many = [1u8, 2, 3, 4, 0, 1].repeat(PEERS_MAX + 10);
        let mut out = Vec::new();
        push_compact_peers(&many, false, &mut out).unwrap();
        assert_eq!(out.len(), PEERS_MAX);
        assert!(push_compact_peers(&[0; 7], false, &mut out).is_err());
        assert!(push_compact_peers(&[0; 6], true, &mut out).is_err());
    }

    #[test]
    fn messages_are_bounded_and_printable() {
        assert_eq!(message(b"bad\r\nthing"), "bad  thing");
        assert_eq!(message(&[b'x'; 5000]).len(), MESSAGE_LEN_MAX);
    }
}
