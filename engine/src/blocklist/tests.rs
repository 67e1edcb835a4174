//! Blocklist tests: both formats, range edges, merging, eMule access levels, malformed lines,
//! the range limit, and `contains` against a linear scan.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

fn load(text: impl AsRef<[u8]>) -> (Blocklist, ParseReport) {
    Blocklist::parse(text.as_ref(), &Limits::default()).unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from(Ipv4Addr::new(a, b, c, d))
}

#[test]
fn p2p_format_blocks_the_range_and_nothing_around_it() {
    let (list, report) = load("Some ISP:1.2.3.0-1.2.3.255\n");
    assert_eq!(report.blocked_ranges, 1);
    assert!(list.contains(ip("1.2.3.0")));
    assert!(list.contains(ip("1.2.3.128")));
    assert!(list.contains(ip("1.2.3.255")));
    assert!(!list.contains(ip("1.2.2.255")));
    assert!(!list.contains(ip("1.2.4.0")));
}

#[test]
fn p2p_description_may_hold_colons_dashes_commas_and_latin1() {
    assert_eq!(
        parse_line(b"Evil: Corp - a, b:c:10.0.0.1-10.0.0.9"),
        Ok(Line::Block(IpRange::V4 {
            first: v4(10, 0, 0, 1),
            last: v4(10, 0, 0, 9)
        }))
    );
    assert_eq!(
        parse_line(b"Caf\xe9 R\xe9seau:10.0.0.1-10.0.0.9\r"),
        Ok(Line::Block(IpRange::V4 {
            first: v4(10, 0, 0, 1),
            last: v4(10, 0, 0, 9)
        }))
    );
    assert_eq!(
        parse_line(b"10.0.0.1 - 10.0.0.9"),
        Ok(Line::Block(IpRange::V4 {
            first: v4(10, 0, 0, 1),
            last: v4(10, 0, 0, 9)
        }))
    );
}

#[test]
fn p2p_ipv6_ranges() {
    let (list, _) = load("v6 net: docs:2001:db8::-2001:db8::ffff\n");
    assert!(list.contains(ip("2001:db8::")));
    assert!(list.contains(ip("2001:db8::ffff")));
    assert!(!list.contains(ip("2001:db8::1:0")));
    assert!(!list.contains(ip("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")));
    assert_eq!(list.v6_ranges(), 1);
    assert_eq!(list.v4_ranges(), 0);
    assert_eq!(parse_line(b"x:1.2.3.4-::1"), Err(LineError::MixedFamilies));
    assert_eq!(parse_line(b"x:::1-1.2.3.4"), Err(LineError::MixedFamilies));
}

#[test]
fn emule_format_with_leading_zeros_read_as_decimal() {
    let (list, report) =
        load("001.002.003.000 - 001.002.003.255 , 100 , Some description, with commas\n");
    assert_eq!(report.blocked_ranges, 1);
    assert!(list.contains(ip("1.2.3.0")));
    assert!(list.contains(ip("1.2.3.255")));
    assert!(!list.contains(ip("1.2.4.0")));
    // "010" is ten, not octal eight.
    let (list, _) = load("010.000.000.010 - 010.000.000.010 , 0 , x\n");
    assert!(list.contains(ip("10.0.0.10")));
    assert!(!list.contains(ip("8.0.0.8")));
}

#[test]
fn emule_access_level_above_127_is_not_blocked() {
    let (list, report) = load(
        "001.000.000.000 - 001.000.000.255 , 127 , blocked\n\
         002.000.000.000 - 002.000.000.255 , 128 , allowed\n\
         003.000.000.000 - 003.000.000.255 , 0 , blocked\n\
         004.000.000.000 - 004.000.000.255\n",
    );
    assert!(list.contains(ip("1.0.0.1")));
    assert!(!list.contains(ip("2.0.0.1")));
    assert!(list.contains(ip("3.0.0.1")));
    assert!(list.contains(ip("4.0.0.1")), "no level field: blocked");
    assert_eq!((report.blocked_ranges, report.allowed_ranges), (3, 1));
    assert_eq!(
        parse_line(b"1.0.0.0 - 1.0.0.255 , high , x"),
        Err(LineError::BadAccessLevel)
    );
}

#[test]
fn comments_blank_lines_and_bom_are_skipped() {
    let (list, report) =
        load("\u{feff}# a comment\n\n   \n// another\r\nA:5.5.5.5-5.5.5.5\r\n   # indented\n");
    assert_eq!(report.bad_lines, 0);
    assert_eq!(report.lines, 6);
    assert_eq!(list.v4_ranges(), 1);
    assert!(list.contains(ip("5.5.5.5")));
    let (empty, _) = load("# nothing here\n");
    assert!(empty.is_empty());
    assert!(!empty.contains(ip("5.5.5.5")));
}

#[test]
fn both_formats_in_one_file() {
    let (list, report) = load("A:1.0.0.0-1.0.0.9\n002.000.000.000 - 002.000.000.009 , 50 , B\n");
    assert_eq!(report.blocked_ranges, 2);
    assert!(list.contains(ip("1.0.0.9")) && list.contains(ip("2.0.0.9")));
}

#[test]
fn overlapping_and_adjacent_ranges_merge() {
    let (list, _) = load(
        "a:1.0.0.10-1.0.0.20\n\
         b:1.0.0.15-1.0.0.30\n\
         c:1.0.0.31-1.0.0.40\n\
         d:1.0.0.42-1.0.0.50\n\
         e:1.0.0.12-1.0.0.13\n",
    );
    let ranges: Vec<_> = list.ranges().collect();
    assert_eq!(
        ranges,
        [
            IpRange::V4 {
                first: v4(1, 0, 0, 10),
                last: v4(1, 0, 0, 40)
            },
            IpRange::V4 {
                first: v4(1, 0, 0, 42),
                last: v4(1, 0, 0, 50)
            },
        ]
    );
    assert!(!list.contains(ip("1.0.0.41")));
}

#[test]
fn whole_address_space_edges() {
    let (list, _) = load("all:0.0.0.0-255.255.255.255\nx:255.255.255.255-255.255.255.255\n");
    assert_eq!(list.v4_ranges(), 1);
    assert!(list.contains(ip("0.0.0.0")) && list.contains(ip("255.255.255.255")));
    let (list, _) = load("top:255.255.255.254-255.255.255.255\n");
    assert!(list.contains(ip("255.255.255.255")));
    assert!(!list.contains(ip("255.255.255.253")));
    let (list, _) = load("all6:::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff\n");
    assert!(
        list.contains(ip("::")) && list.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
    );
}

#[test]
fn ipv4_mapped_ipv6_is_checked_against_ipv4_ranges() {
    let (list, _) = load("a:1.2.3.0-1.2.3.255\n");
    let mapped = IpAddr::V6(Ipv4Addr::new(1, 2, 3, 4).to_ipv6_mapped());
    assert!(list.contains(mapped));
    assert!(!list.contains(IpAddr::V6(Ipv4Addr::new(1, 2, 4, 4).to_ipv6_mapped())));
    // Not mapped: the IPv4-compatible form ::1.2.3.4 is a different (IPv6) address.
    assert!(!list.contains(IpAddr::V6("::1.2.3.4".parse::<Ipv6Addr>().unwrap())));
}

#[test]
fn malformed_lines_are_reported_with_line_numbers() {
    let (list, report) = load(
        b"good:1.0.0.0-1.0.0.255\n\
         no range here\n\
         bad:1.0.0.300-1.0.0.400\n\
         backwards:9.0.0.0-1.0.0.0\n\
         \xff\xfe:garbage\n\
         good:2.0.0.0-2.0.0.255\n",
    );
    assert_eq!(report.blocked_ranges, 2);
    assert_eq!(report.bad_lines, 4);
    let lines: Vec<_> = report
        .first_bad_lines
        .iter()
        .map(|b| (b.line, b.error))
        .collect();
    assert_eq!(
        lines,
        [
            (2, LineError::NoRange),
            (3, LineError::BadAddress),
            (4, LineError::Reversed),
            (5, LineError::NoRange),
        ]
    );
    assert!(list.contains(ip("2.0.0.1")));
}

#[test]
fn invalid_utf8_lines_are_skipped_not_fatal() {
    let text = b"a:1.0.0.0-1.0.0.1\n\xff\xff\xff-\xfe\n";
    let (list, report) = Blocklist::parse(text, &Limits::default()).unwrap();
    assert_eq!(report.bad_lines, 1);
    assert_eq!(report.first_bad_lines[0].line, 2);
    assert!(list.contains(ip("1.0.0.1")));
}

#[test]
fn bad_line_list_is_bounded_but_all_are_counted() {
    let mut text = String::from("a:1.0.0.0-1.0.0.1\n");
    for _ in 0..50 {
        text.push_str("junk\n");
    }
    let limits = Limits {
        bad_lines_listed_max: 20,
        ..Limits::default()
    };
    let (_, report) = Blocklist::parse(text.as_bytes(), &limits).unwrap();
    assert_eq!(report.bad_lines, 50);
    assert_eq!(report.first_bad_lines.len(), 20);
    assert_eq!(report.first_bad_lines[19].line, 21);
}

#[test]
fn nothing_parsed_is_an_error() {
    let err =
        Blocklist::parse(b"<html>\n<body>not a list</body>\n", &Limits::default()).unwrap_err();
    assert_eq!(
        err,
        BlocklistError::NothingParsed {
            bad_lines: 2,
            first_line: 1
        }
    );
    assert!(Blocklist::parse(b"", &Limits::default())
        .unwrap()
        .0
        .is_empty());
}

#[test]
fn the_range_limit_is_an_error_naming_it() {
    let text = "a:1.0.0.0-1.0.0.1\nb:2.0.0.0-2.0.0.1\nc:3.0.0.0-3.0.0.1\n";
    let limits = Limits {
        ranges_max: 2,
        ..Limits::default()
    };
    let err = Blocklist::parse(text.as_bytes(), &limits).unwrap_err();
    assert_eq!(err, BlocklistError::TooManyRanges { max: 2, line: 3 });
    assert_eq!(
        err.to_string(),
        "more than 2 ranges (limit reached at line 3)"
    );
    let exact = Limits {
        ranges_max: 3,
        ..Limits::default()
    };
    assert!(Blocklist::parse(text.as_bytes(), &exact).is_ok());
    assert_eq!(Limits::default().ranges_max, 4_000_000);
}

#[test]
fn ipv4_parser_edges() {
    use super::parse::parse_ipv4;
    assert_eq!(parse_ipv4(b"0.0.0.0"), Some(0));
    assert_eq!(parse_ipv4(b"255.255.255.255"), Some(u32::MAX));
    assert_eq!(parse_ipv4(b"001.002.003.004"), Some(v4(1, 2, 3, 4)));
    for bad in [
        &b"256.0.0.0"[..],
        b"1.2.3",
        b"1.2.3.4.5",
        b"1..2.3",
        b"0001.2.3.4",
        b"1.2.3.-4",
        b"1.2.3.4 ",
        b"",
    ] {
        assert_eq!(parse_ipv4(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

fn naive(ranges: &[IpRange], addr: IpAddr) -> bool {
    let (a4, a6) = match addr {
        IpAddr::V4(a) => (Some(u32::from(a)), None),
        IpAddr::V6(a) => (a.to_ipv4_mapped().map(u32::from), Some(u128::from(a))),
    };
    ranges.iter().any(|r| match *r {
        IpRange::V4 { first, last } => a4.is_some_and(|a| first <= a && a <= last),
        IpRange::V6 { first, last } => a6.is_some_and(|a| first <= a && a <= last),
    })
}

/// Addresses clustered in a small space so ranges overlap, touch and are probed at their
/// edges often.
fn small_v4() -> impl Strategy<Value = u32> {
    (0u32..64).prop_map(|x| 0x0A00_0000 + x)
}

fn range_strategy() -> impl Strategy<Value = IpRange> {
    prop_oneof![
        3 => (small_v4(), 0u32..8).prop_map(|(first, len)| IpRange::V4 { first, last: first + len }),
        1 => (0u128..64, 0u128..8).prop_map(|(first, len)| IpRange::V6 { first, last: first + len }),
    ]
}

proptest! {
    #[test]
    fn contains_agrees_with_a_linear_scan(
        ranges in proptest::collection::vec(range_strategy(), 0..40),
        probes in proptest::collection::vec(0u32..80, 1..60),
    ) {
        // Through the text parser, so the property covers it too.
        let mut text = String::new();
        for r in &ranges {
            match *r {
                IpRange::V4 { first, last } => {
                    text.push_str(&format!("d:{}-{}\n", Ipv4Addr::from(first), Ipv4Addr::from(last)));
                }
                IpRange::V6 { first, last } => {
                    text.push_str(&format!("d:{}-{}\n", Ipv6Addr::from(first), Ipv6Addr::from(last)));
                }
            }
        }
        let (list, report) = Blocklist::parse(text.as_bytes(), &Limits::default()).unwrap();
        prop_assert_eq!(report.blocked_ranges, ranges.len());
        prop_assert_eq!(&list, &Blocklist::from_iter_ranges(ranges.iter().copied()));
        for p in probes {
            let a4 = Ipv4Addr::from(0x0A00_0000 + p);
            for addr in [IpAddr::V4(a4), IpAddr::V6(a4.to_ipv6_mapped()), IpAddr::V6(Ipv6Addr::from(u128::from(p)))] {
                prop_assert_eq!(list.contains(addr), naive(&ranges, addr), "{}", addr);
            }
        }
        // Merged output really is sorted, disjoint and non-adjacent.
        let merged: Vec<_> = list.ranges().collect();
        for pair in merged.windows(2) {
            if let [IpRange::V4 { last, .. }, IpRange::V4 { first, .. }] = pair {
                prop_assert!(u64::from(*last) + 1 < u64::from(*first));
            }
            if let [IpRange::V6 { last, .. }, IpRange::V6 { first, .. }] = pair {
                prop_assert!(last + 1 < *first);
            }
        }
    }

    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Blocklist::parse(&bytes, &Limits::default());
        for line in bytes.split(|&b| b == b'\n') {
            let _ = parse_line(line);
        }
    }

    #[test]
    fn parse_never_panics_on_near_miss_lines(line in "[0-9a-f:.,\\- ]{0,60}") {
        let _ = parse_line(line.as_bytes());
    }
}
