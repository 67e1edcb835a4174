//! One line of a blocklist file: which format it is in, and the range it names.
//!
//! [`parse_line`] is pure and total (it never panics, whatever the bytes), which makes it the
//! entry point for fuzzing the line grammar; [`Blocklist::parse`](super::Blocklist::parse) is
//! the one for whole files.

use std::net::Ipv6Addr;

use thiserror::Error;

/// An inclusive range of addresses, both ends of the same family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRange {
    V4 { first: u32, last: u32 },
    V6 { first: u128, last: u128 },
}

/// What one line of a blocklist file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A blank line or a comment (`#…`, `//…`).
    Skip,
    /// A range to block.
    Block(IpRange),
    /// An eMule line whose access level is above 127: eMule and qBittorrent let these
    /// addresses through, so we do too.
    Allow(IpRange),
}

/// Why a line is not a blocklist entry. Each message finishes "line N: …".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum LineError {
    #[error("no address range (`first-last`) found")]
    NoRange,
    #[error("not an IPv4 or IPv6 address")]
    BadAddress,
    #[error("range mixes IPv4 and IPv6")]
    MixedFamilies,
    #[error("range ends before it starts")]
    Reversed,
    #[error("eMule access level is not a number")]
    BadAccessLevel,
}

/// eMule's rule: entries with an access level above this are not blocked.
pub const EMULE_ALLOW_ABOVE: u64 = 127;

/// Reads one line (without its line terminator; a trailing `\r` is fine).
///
/// Formats, detected per line:
/// - eMule `ipfilter.dat`: `001.002.003.000 - 001.002.003.255 , 100 , description`. The
///   range is the first comma-separated field; the access level, if present, the second.
///   Fields with leading zeros are decimal (`010` is ten), as eMule reads them.
/// - P2P / PeerGuardian text: `description:1.2.3.0-1.2.3.255`. The description may hold
///   colons: for IPv4 the range is what follows the last colon. For IPv6
///   (`desc:2001:db8::-2001:db8::ffff`) the start address is the longest colon-delimited
///   suffix before the `-` that parses, so a description should not end in hex groups.
///   A bare `first-last` with no description is accepted too.
///
/// Only the address bytes are interpreted: a description in Latin-1 or any other encoding
/// does not make a line invalid.
pub fn parse_line(line: &[u8]) -> Result<Line, LineError> {
    let line = line.trim_ascii();
    if line.is_empty() || line.starts_with(b"#") || line.starts_with(b"//") {
        return Ok(Line::Skip);
    }
    if let Some(parsed) = parse_emule(line) {
        return parsed;
    }
    parse_p2p(line)
}

/// `Some` if the line looks like eMule's format (its first comma field is a range of two
/// IPv4 addresses); `None` to try the P2P format instead.
fn parse_emule(line: &[u8]) -> Option<Result<Line, LineError>> {
    let mut fields = line.split(|&b| b == b',');
    let range = fields.next()?;
    let (first, last) = split_once(range, b'-')?;
    let first = parse_ipv4(first.trim_ascii())?;
    let last = parse_ipv4(last.trim_ascii())?;
    let range = match v4_range(first, last) {
        Ok(range) => range,
        Err(e) => return Some(Err(e)),
    };
    let level = match fields.next().map(<[u8]>::trim_ascii) {
        None | Some(b"") => return Some(Ok(Line::Block(range))),
        Some(level) => level,
    };
    Some(match parse_decimal(level) {
        Some(level) if level > EMULE_ALLOW_ABOVE => Ok(Line::Allow(range)),
        Some(_) => Ok(Line::Block(range)),
        None => Err(LineError::BadAccessLevel),
    })
}

fn parse_p2p(line: &[u8]) -> Result<Line, LineError> {
    // The last address contains no '-', so the separator is the last '-'.
    let dash = line
        .iter()
        .rposition(|&b| b == b'-')
        .ok_or(LineError::NoRange)?;
    let (head, last) = (&line[..dash], line[dash + 1..].trim_ascii());
    let v4_first = || {
        let first = match head.iter().rposition(|&b| b == b':') {
            Some(colon) => &head[colon + 1..],
            None => head,
        };
        parse_ipv4(first.trim_ascii())
    };
    if let Some(last) = parse_ipv4(last) {
        return match v4_first() {
            Some(first) => v4_range(first, last).map(Line::Block),
            None if v6_first(head).is_some() => Err(LineError::MixedFamilies),
            None => Err(LineError::BadAddress),
        };
    }
    let last = parse_ipv6(last).ok_or(LineError::BadAddress)?;
    match v6_first(head) {
        Some(first) if first <= last => Ok(Line::Block(IpRange::V6 { first, last })),
        Some(_) => Err(LineError::Reversed),
        None if v4_first().is_some() => Err(LineError::MixedFamilies),
        None => Err(LineError::BadAddress),
    }
}

/// The IPv6 address ending `head`: its longest suffix that starts at the beginning or after
/// a colon and parses.
fn v6_first(head: &[u8]) -> Option<u128> {
    let starts = std::iter::once(0).chain(
        head.iter()
            .enumerate()
            .filter(|(_, &b)| b == b':')
            .map(|(i, _)| i + 1),
    );
    starts
        .map(|start| head[start..].trim_ascii())
        // No address is longer than 45 characters: skip the work for longer suffixes.
        .filter(|candidate| candidate.len() <= 45)
        .find_map(parse_ipv6)
}

fn v4_range(first: u32, last: u32) -> Result<IpRange, LineError> {
    if first <= last {
        Ok(IpRange::V4 { first, last })
    } else {
        Err(LineError::Reversed)
    }
}

fn split_once(bytes: &[u8], sep: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|&b| b == sep)?;
    Some((&bytes[..at], &bytes[at + 1..]))
}

/// Dotted-quad IPv4, each part 1–3 decimal digits up to 255; leading zeros are decimal.
pub(crate) fn parse_ipv4(text: &[u8]) -> Option<u32> {
    let mut parts = text.split(|&b| b == b'.');
    let mut addr = 0u32;
    for _ in 0..4 {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 3 {
            return None;
        }
        let value = u32::try_from(parse_decimal(part)?).ok()?;
        if value > 255 {
            return None;
        }
        addr = addr << 8 | value;
    }
    parts.next().is_none().then_some(addr)
}

/// An IPv6 address in any form `std` accepts (including `::ffff:1.2.3.4`).
fn parse_ipv6(text: &[u8]) -> Option<u128> {
    // Bound the work: no address is longer than 45 characters.
    if text.len() > 45 {
        return None;
    }
    let text = std::str::from_utf8(text).ok()?;
    text.parse::<Ipv6Addr>().ok().map(u128::from)
}

/// Unsigned decimal digits only (no sign, no spaces); `None` on overflow.
fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}
