//! The LSD announce datagram (BEP 14):
//!
//! ```text
//! BT-SEARCH * HTTP/1.1\r\n
//! Host: 239.192.152.143:6771\r\n
//! Port: <the sender's peer port>\r\n
//! Infohash: <40 hex digits>\r\n        (one or more)
//! cookie: <opaque>\r\n                  (optional)
//! \r\n
//! \r\n
//! ```
//!
//! Reading is lenient where real clients differ and strict where it costs: header names
//! in any case, bare `\n` line ends, unknown headers and malformed info hashes skipped; but
//! the request line must be `BT-SEARCH * HTTP/1.1`, the datagram at most
//! [`READ_LEN_MAX`] bytes, the port 1..=65535, and at most [`READ_HASHES_MAX`] info hashes
//! are read (the rest ignored), so one datagram costs one bounded scan.

use thiserror::Error;

use crate::InfoHash;

/// Announces are packed to at most this many bytes, as BEP 14 asks (no fragmentation).
pub const DATAGRAM_MAX: usize = 1400;
/// Longer datagrams are refused unread.
pub const READ_LEN_MAX: usize = 2048;
/// Info hashes read from one datagram; more are ignored.
pub const READ_HASHES_MAX: usize = 32;
/// Cookies longer than this are refused (ours are 16 hex digits).
const COOKIE_LEN_MAX: usize = 64;

const REQUEST_LINE: &str = "BT-SEARCH * HTTP/1.1";

/// Why a datagram is not an announce.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LsdError {
    #[error("datagram of {0} bytes, over {READ_LEN_MAX}")]
    TooLong(usize),
    #[error("not text")]
    NotText,
    #[error("not a BT-SEARCH request")]
    NotSearch,
    #[error("no valid Port header")]
    NoPort,
    #[error("no valid Infohash header")]
    NoInfoHash,
}

/// One announce, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announce {
    /// The sender's peer port.
    pub port: u16,
    /// At most [`READ_HASHES_MAX`], in the order sent, without repeats.
    pub info_hashes: Vec<InfoHash>,
    pub cookie: Option<String>,
}

impl Announce {
    pub fn parse(bytes: &[u8]) -> Result<Announce, LsdError> {
        if bytes.len() > READ_LEN_MAX {
            return Err(LsdError::TooLong(bytes.len()));
        }
        let text = std::str::from_utf8(bytes).map_err(|_| LsdError::NotText)?;
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        if lines.next().map(str::trim) != Some(REQUEST_LINE) {
            return Err(LsdError::NotSearch);
        }
        let mut port = None;
        let mut info_hashes: Vec<InfoHash> = Vec::new();
        let mut cookie = None;
        for line in lines {
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.trim().eq_ignore_ascii_case("port") {
                port = value.parse::<u16>().ok().filter(|&p| p != 0);
            } else if name.trim().eq_ignore_ascii_case("infohash") {
                let Ok(hash) = value.parse::<InfoHash>() else {
                    continue;
                };
                if info_hashes.len() < READ_HASHES_MAX && !info_hashes.contains(&hash) {
                    info_hashes.push(hash);
                }
            } else if name.trim().eq_ignore_ascii_case("cookie") && value.len() <= COOKIE_LEN_MAX {
                cookie = Some(value.to_string());
            }
        }
        let port = port.ok_or(LsdError::NoPort)?;
        if info_hashes.is_empty() {
            return Err(LsdError::NoInfoHash);
        }
        Ok(Announce {
            port,
            info_hashes,
            cookie,
        })
    }
}

/// Bytes one `Infohash` header takes.
const PER_HASH: usize = "Infohash: \r\n".len() + 40;

fn head(port: u16) -> String {
    format!(
        "{REQUEST_LINE}\r\nHost: {}:{}\r\nPort: {port}\r\n",
        super::GROUP_V4,
        super::PORT
    )
}

fn tail(cookie: &str) -> String {
    format!("cookie: {cookie}\r\n\r\n\r\n")
}

/// How many info hashes one datagram from `port` with `cookie` holds (25 with ours).
pub fn hashes_per_datagram(port: u16, cookie: &str) -> usize {
    let fixed = head(port).len() + tail(cookie).len();
    (DATAGRAM_MAX.saturating_sub(fixed) / PER_HASH).max(1)
}

/// Announces of `info_hashes` from `port`, as few datagrams as fit [`DATAGRAM_MAX`] each.
pub fn encode(port: u16, cookie: &str, info_hashes: &[InfoHash]) -> Vec<Vec<u8>> {
    let (head, tail) = (head(port), tail(cookie));
    info_hashes
        .chunks(hashes_per_datagram(port, cookie))
        .map(|hashes| {
            let mut datagram = head.clone();
            for hash in hashes {
                datagram.push_str("Infohash: ");
                datagram.push_str(&hash.to_hex());
                datagram.push_str("\r\n");
            }
            datagram.push_str(&tail);
            datagram.into_bytes()
        })
        .collect()
}
