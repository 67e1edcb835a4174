//! An IP blocklist: the address ranges peers must not come from, read from the files other
//! clients read (P2P/PeerGuardian text and eMule `ipfilter.dat`; see [`parse_line`]).
//!
//! Why: seedbox users load community blocklists of a few hundred thousand ranges and expect
//! every incoming and outgoing connection to be checked against them, so a check must be
//! cheap and loading a broken or hostile file must neither panic nor eat unbounded memory.
//!
//! Ranges are merged (overlapping and adjacent ones) into sorted, disjoint lists, one per
//! family, so [`Blocklist::contains`] is one binary search: O(log n). Memory per range after
//! merging: 8 bytes for IPv4, 32 bytes for IPv6; while parsing, every range read (before
//! merging) costs the same, which [`Limits::ranges_max`] bounds.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, as a dual-stack socket reports IPv4 peers)
//! are checked against the IPv4 ranges as well as the IPv6 ones.

mod parse;

#[cfg(test)]
mod tests;

use std::net::IpAddr;

use thiserror::Error;

pub use parse::{parse_line, IpRange, Line, LineError, EMULE_ALLOW_ABOVE};

/// Bounds on what [`Blocklist::parse`] accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most ranges read from one file, counted before merging (blocked and allowed lines
    /// alike). Reaching it is an error ([`BlocklistError::TooManyRanges`]), not a silent
    /// truncation: a half-loaded blocklist would let through peers the user meant to block.
    pub ranges_max: usize,
    /// Most malformed lines listed in the [`ParseReport`]; all of them are counted.
    pub bad_lines_listed_max: usize,
}

impl Limits {
    /// 4,000,000 ranges (about ten times the largest public lists; at most 128 MiB while
    /// parsing, if every range is IPv6, 32 MiB if IPv4) and the first 20 malformed lines.
    pub const DEFAULT: Limits = Limits {
        ranges_max: 4_000_000,
        bad_lines_listed_max: 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A line that was skipped as malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadLine {
    /// 1-based line number.
    pub line: usize,
    pub error: LineError,
}

/// What [`Blocklist::parse`] read, for the log line a daemon prints after loading.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParseReport {
    /// Lines in the input.
    pub lines: usize,
    /// Ranges read from lines that block.
    pub blocked_ranges: usize,
    /// eMule lines with access level above 127, which are not blocked.
    pub allowed_ranges: usize,
    /// Malformed lines, all of them.
    pub bad_lines: usize,
    /// The first malformed lines, up to [`Limits::bad_lines_listed_max`].
    pub first_bad_lines: Vec<BadLine>,
}

/// Why a whole file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BlocklistError {
    /// Some lines were malformed and none were entries: probably not a blocklist at all.
    #[error(
        "no blocklist entries found; {bad_lines} malformed lines (first at line {first_line})"
    )]
    NothingParsed { bad_lines: usize, first_line: usize },
    /// The file holds more ranges than [`Limits::ranges_max`].
    #[error("more than {max} ranges (limit reached at line {line})")]
    TooManyRanges { max: usize, line: usize },
}

/// An inclusive range in a merged list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span<T> {
    first: T,
    last: T,
}

/// Sorted, disjoint, non-adjacent address ranges; see the module docs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Blocklist {
    v4: Vec<Span<u32>>,
    v6: Vec<Span<u128>>,
}

impl Blocklist {
    /// An empty list, which blocks nothing.
    pub fn new() -> Blocklist {
        Blocklist::default()
    }

    /// Reads a whole file. Formats may be mixed line by line; a UTF-8 byte order mark is
    /// skipped. Malformed lines are skipped and reported; they only fail the parse if no line
    /// was an entry at all. A file of only comments and blank lines gives an empty list.
    pub fn parse(text: &[u8], limits: &Limits) -> Result<(Blocklist, ParseReport), BlocklistError> {
        let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        let mut report = ParseReport::default();
        let mut first_bad = 0;
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        // `split_inclusive`: a final newline does not make an extra, empty line.
        for (index, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
            let number = index + 1;
            report.lines = number;
            let range = match parse_line(line) {
                Ok(Line::Skip) => continue,
                Ok(Line::Block(range)) => {
                    report.blocked_ranges += 1;
                    Some(range)
                }
                Ok(Line::Allow(_)) => {
                    report.allowed_ranges += 1;
                    None
                }
                Err(error) => {
                    report.bad_lines += 1;
                    if first_bad == 0 {
                        first_bad = number;
                    }
                    if report.first_bad_lines.len() < limits.bad_lines_listed_max {
                        report.first_bad_lines.push(BadLine {
                            line: number,
                            error,
                        });
                    }
                    continue;
                }
            };
            if report.blocked_ranges + report.allowed_ranges > limits.ranges_max {
                return Err(BlocklistError::TooManyRanges {
                    max: limits.ranges_max,
                    line: number,
                });
            }
            match range {
                Some(IpRange::V4 { first, last }) => v4.push(Span { first, last }),
                Some(IpRange::V6 { first, last }) => v6.push(Span { first, last }),
                None => {}
            }
        }
        if report.bad_lines > 0 && report.blocked_ranges + report.allowed_ranges == 0 {
            return Err(BlocklistError::NothingParsed {
                bad_lines: report.bad_lines,
                first_line: first_bad,
            });
        }
        Ok((Blocklist::from_ranges(v4, v6), report))
    }

    /// A list blocking exactly the given ranges (in any order, overlapping or not).
    pub fn from_iter_ranges(ranges: impl IntoIterator<Item = IpRange>) -> Blocklist {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for range in ranges {
            match range {
                IpRange::V4 { first, last } if first <= last => v4.push(Span { first, last }),
                IpRange::V6 { first, last } if first <= last => v6.push(Span { first, last }),
                _ => {}
            }
        }
        Blocklist::from_ranges(v4, v6)
    }

    fn from_ranges(v4: Vec<Span<u32>>, v6: Vec<Span<u128>>) -> Blocklist {
        Blocklist {
            v4: merge(v4, |x| x.checked_add(1)),
            v6: merge(v6, |x| x.checked_add(1)),
        }
    }

    /// Whether `addr` lies in a blocked range. O(log n).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(v4) => find(&self.v4, u32::from(v4)),
            IpAddr::V6(v6) => {
                v6.to_ipv4_mapped()
                    .is_some_and(|v4| find(&self.v4, u32::from(v4)))
                    || find(&self.v6, u128::from(v6))
            }
        }
    }

    /// Merged IPv4 ranges held.
    pub fn v4_ranges(&self) -> usize {
        self.v4.len()
    }

    /// Merged IPv6 ranges held.
    pub fn v6_ranges(&self) -> usize {
        self.v6.len()
    }

    /// True if the list blocks nothing.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// The merged ranges, IPv4 first, each family in ascending order.
    pub fn ranges(&self) -> impl Iterator<Item = IpRange> + '_ {
        let v4 = self.v4.iter().map(|s| IpRange::V4 {
            first: s.first,
            last: s.last,
        });
        let v6 = self.v6.iter().map(|s| IpRange::V6 {
            first: s.first,
            last: s.last,
        });
        v4.chain(v6)
    }
}

/// Sorts and merges overlapping or adjacent spans; `next` is `x + 1`, `None` at the top of
/// the address space.
fn merge<T: Ord + Copy>(mut spans: Vec<Span<T>>, next: impl Fn(T) -> Option<T>) -> Vec<Span<T>> {
    spans.sort_unstable();
    let mut merged: Vec<Span<T>> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            // Touches the previous span: `span.first <= last + 1` (always, if `last` is the
            // top address).
            Some(prev) if next(prev.last).is_none_or(|after| span.first <= after) => {
                prev.last = prev.last.max(span.last);
            }
            _ => merged.push(span),
        }
    }
    merged.shrink_to_fit();
    merged
}

fn find<T: Ord + Copy>(spans: &[Span<T>], addr: T) -> bool {
    let after = spans.partition_point(|s| s.first <= addr);
    after > 0 && spans[after - 1].last >= addr
}
