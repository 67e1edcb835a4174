//! Magnet URIs (BEP 9 `xt=urn:btih:`, BEP 53 `so`, `x.pe` peers, BEP 19 `ws`).

use std::net::SocketAddr;
use std::ops::RangeInclusive;

use thiserror::Error;

use crate::hash::{InfoHash, Sha1Digest};

/// The longest magnet URI we read. Real ones are well under 4 KiB even with many trackers.
pub const MAGNET_LEN_MAX: usize = 64 << 10;

/// A parsed magnet link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Magnet {
    pub info_hash: InfoHash,
    /// `dn`: a name to show until the metadata arrives.
    pub display_name: Option<String>,
    /// `tr`: trackers, in order, each its own tier.
    pub trackers: Vec<String>,
    /// `ws`: web seeds.
    pub web_seeds: Vec<String>,
    /// `x.pe`: peers to try directly.
    pub peers: Vec<PeerAddr>,
    /// `so` (BEP 53): file indices to download; empty means all.
    pub select_only: Vec<RangeInclusive<u32>>,
    /// `xl`: the exact length in bytes, if given.
    pub exact_length: Option<u64>,
}

/// A peer address from `x.pe`: an IP socket address or a host name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerAddr {
    Ip(SocketAddr),
    Host(String, u16),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MagnetError {
    #[error("not a magnet URI (it must start with `magnet:?`)")]
    NotMagnet,
    #[error("the magnet URI is {0} bytes long; the limit is {MAGNET_LEN_MAX}")]
    TooLong(usize),
    #[error("the magnet URI has no `xt=urn:btih:` info hash")]
    NoInfoHash,
    #[error("`{0}` is not a 40-digit hex or 32-character base32 info hash")]
    BadInfoHash(String),
    #[error("the magnet URI names two different info hashes")]
    ConflictingInfoHash,
    #[error("`x.pe={0}` is not a host:port peer address")]
    BadPeer(String),
    #[error("`so={0}` is not a list of file indices and ranges such as `0,2,4-6`")]
    BadSelectOnly(String),
    #[error("`xl={0}` is not a byte count")]
    BadLength(String),
}

impl Magnet {
    pub fn parse(uri: &str) -> Result<Self, MagnetError> {
        if uri.len() > MAGNET_LEN_MAX {
            return Err(MagnetError::TooLong(uri.len()));
        }
        let query = uri
            .strip_prefix("magnet:?")
            .or_else(|| {
                uri.get(..8)
                    .filter(|p| p.eq_ignore_ascii_case("magnet:?"))
                    .map(|_| &uri[8..])
            })
            .ok_or(MagnetError::NotMagnet)?;

        let mut info_hash = None;
        let mut magnet = Magnet {
            info_hash: InfoHash::default(),
            display_name: None,
            trackers: Vec::new(),
            web_seeds: Vec::new(),
            peers: Vec::new(),
            select_only: Vec::new(),
            exact_length: None,
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            // BEP 9 allows numbered keys (`tr.1`, `xt.2`) for repeated parameters.
            let key = key
                .split_once('.')
                .filter(|(_, n)| n.bytes().all(|b| b.is_ascii_digit()))
                .map_or(&*key, |(k, _)| k);
            match key {
                "xt" => {
                    let Some(hash) = value.strip_prefix("urn:btih:") else {
                        continue; // urn:btmh: (v2) and others: not ours yet.
                    };
                    let hash = parse_btih(hash)?;
                    if info_hash.is_some_and(|h| h != hash) {
                        return Err(MagnetError::ConflictingInfoHash);
                    }
                    info_hash = Some(hash);
                }
                "dn" => magnet.display_name = Some(value.into_owned()),
                "tr" if !value.is_empty() && !magnet.trackers.contains(&value.to_string()) => {
                    magnet.trackers.push(value.into_owned())
                }
                "ws" if !value.is_empty() => magnet.web_seeds.push(value.into_owned()),
                "x.pe" => magnet.peers.push(parse_peer(&value)?),
                "so" => magnet.select_only = parse_select_only(&value)?,
                "xl" => {
                    let len = value
                        .parse()
                        .map_err(|_| MagnetError::BadLength(value.to_string()))?;
                    magnet.exact_length = Some(len);
                }
                _ => {}
            }
        }
        magnet.info_hash = info_hash.ok_or(MagnetError::NoInfoHash)?;
        Ok(magnet)
    }
}

fn parse_btih(s: &str) -> Result<InfoHash, MagnetError> {
    let bad = || MagnetError::BadInfoHash(s.to_string());
    let bytes = match s.len() {
        40 => data_encoding::HEXLOWER_PERMISSIVE
            .decode(s.as_bytes())
            .map_err(|_| bad())?,
        32 => data_encoding::BASE32
            .decode(s.to_ascii_uppercase().as_bytes())
            .map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    Ok(Sha1Digest(bytes.try_into().map_err(|_| bad())?))
}

fn parse_peer(s: &str) -> Result<PeerAddr, MagnetError> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(PeerAddr::Ip(addr));
    }
    let bad = || MagnetError::BadPeer(s.to_string());
    let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse::<u16>().map_err(|_| bad())?;
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if !host_ok {
        return Err(bad());
    }
    Ok(PeerAddr::Host(host.to_string(), port))
}

fn parse_select_only(s: &str) -> Result<Vec<RangeInclusive<u32>>, MagnetError> {
    let bad = || MagnetError::BadSelectOnly(s.to_string());
    s.split(',')
        .map(|part| {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b) = (
                a.parse::<u32>().map_err(|_| bad())?,
                b.parse::<u32>().map_err(|_| bad())?,
            );
            if a > b {
                return Err(bad());
            }
            Ok(a..=b)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";

    #[test]
    fn full_magnet() {
        let uri = format!(
            "magnet:?xt=urn:btih:{HEX}&dn=Some+Name%21&tr=udp%3A%2F%2Ft1%3A80&tr.1=http://t2/a\
             &ws=http%3A%2F%2Fws%2Fx&x.pe=10.0.0.1:6881&x.pe=[::1]:7000&x.pe=peer.example:51413\
             &so=0,2,4-6&xl=1234&xt=urn:btmh:1220abcd"
        );
        let m = Magnet::parse(&uri).unwrap();
        assert_eq!(m.info_hash.to_hex(), HEX);
        assert_eq!(m.display_name.as_deref(), Some("Some Name!"));
        assert_eq!(m.trackers, ["udp://t1:80", "http://t2/a"]);
        assert_eq!(m.web_seeds, ["http://ws/x"]);
        assert_eq!(
            m.peers,
            [
                PeerAddr::Ip("10.0.0.1:6881".parse().unwrap()),
                PeerAddr::Ip("[::1]:7000".parse().unwrap()),
                PeerAddr::Host("peer.example".into(), 51413),
            ]
        );
        assert_eq!(m.select_only, [0..=0, 2..=2, 4..=6]);
        assert_eq!(m.exact_length, Some(1234));
    }

    #[test]
    fn base32_equals_hex() {
        let b32 =
            data_encoding::BASE32.encode(&data_encoding::HEXLOWER.decode(HEX.as_bytes()).unwrap());
        let a = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", b32.to_lowercase())).unwrap();
        let b = Magnet::parse(&format!("MAGNET:?xt=urn:btih:{}", HEX.to_uppercase())).unwrap();
        assert_eq!(a.info_hash, b.info_hash);
        assert_eq!(a.info_hash.to_hex(), HEX);
    }

    #[test]
    fn errors_are_named() {
        assert_eq!(Magnet::parse("http://x"), Err(MagnetError::NotMagnet));
        assert_eq!(Magnet::parse("magnet:?dn=x"), Err(MagnetError::NoInfoHash));
        assert!(matches!(
            Magnet::parse("magnet:?xt=urn:btih:1234"),
            Err(MagnetError::BadInfoHash(_))
        ));
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&x.pe=nope")),
            Err(MagnetError::BadPeer(_))
        ));
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&so=5-2")),
            Err(MagnetError::BadSelectOnly(_))
        ));
        let other = "0".repeat(40);
        assert_eq!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&xt=urn:btih:{other}")),
            Err(MagnetError::ConflictingInfoHash)
        );
        assert!(matches!(
            Magnet::parse(&"magnet:?".repeat(10_000)),
            Err(MagnetError::TooLong(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "magnet:\\?[a-z.=&:%0-9A-F,\\-\\[\\]]{0,200}") {
            let _ = Magnet::parse(&s);
        }
    }
}
