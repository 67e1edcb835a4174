use std::net::{Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

fn v4(n: u32, port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(n), port))
}

#[test]
fn a_message_reads_back_with_its_flags_and_both_families() {
    let msg = PexMessage {
        added: vec![
            (
                v4(0x7f00_0001, 6881),
                PexFlags(PexFlags::SEED | PexFlags::OUTGOING),
            ),
            (
                SocketAddr::from((Ipv6Addr::LOCALHOST, 51413)),
                PexFlags(PexFlags::UTP),
            ),
            (v4(0x0a00_0002, 1), PexFlags(0)),
        ],
        dropped: vec![
            v4(0x0a00_0003, 7000),
            SocketAddr::from((Ipv6Addr::LOCALHOST, 9)),
        ],
    };
    let back = PexMessage::decode(&msg.encode()).unwrap();
    // IPv4 first, then IPv6: the order of the keys.
    assert_eq!(back.added, vec![msg.added[0], msg.added[2], msg.added[1]]);
    assert_eq!(back.dropped, msg.dropped);
    let f = back.added[0].1;
    assert!(f.seed() && f.reachable() && !f.encryption() && !f.utp() && !f.holepunch());
}

#[test]
fn libtorrents_layout_decodes() {
    // As libtorrent writes one: flags beside each address; here `added6` is 12 bytes of
    // junk, too short for one IPv6 entry, and `dropped6` is missing.
    let payload = bencode::encode(&Value::Dict(
        Dict::new()
            .with(b"added", Value::Bytes(b"\x7f\x00\x00\x01\x1a\xe1"))
            .with(b"added.f", Value::Bytes(b"\x12"))
            .with(b"added6", Value::Bytes(&[0u8; 12]))
            .with(b"dropped", Value::Bytes(b"")),
    ));
    let msg = PexMessage::decode(&payload).unwrap();
    assert_eq!(msg.added, vec![(v4(0x7f00_0001, 6881), PexFlags(0x12))]);
    assert!(msg.dropped.is_empty());
}

#[test]
fn ten_thousand_addresses_are_cut_at_the_bound() {
    let msg = PexMessage {
        added: (0..10_000)
            .map(|n| (v4(0x0a00_0000 + n, 6881), PexFlags(0)))
            .collect(),
        dropped: (0..10_000).map(|n| v4(0x0b00_0000 + n, 6881)).collect(),
    };
    let payload = msg.encode();
    assert!(payload.len() > 120_000);
    let back = PexMessage::decode(&payload).unwrap();
    assert_eq!(back.added.len(), DECODE_ADDED_MAX);
    assert_eq!(back.dropped.len(), DECODE_DROPPED_MAX);
    assert_eq!(back.added[..], msg.added[..DECODE_ADDED_MAX]);
}

#[test]
fn garbage_types_read_as_nothing_and_only_broken_bencode_is_an_error() {
    for payload in [
        &b"de"[..],
        b"le",
        b"i5e",
        b"d5:addedi5e7:droppedli1eee",
        b"d5:added5:abcde7:added.fi3ee",
        b"d6:added65:shorte",
    ] {
        let msg = PexMessage::decode(payload).unwrap();
        assert!(
            msg.added.is_empty() && msg.dropped.is_empty(),
            "{payload:?}"
        );
    }
    // A flag byte missing reads as no flags; a tail shorter than an entry is ignored.
    let msg = PexMessage::decode(b"d5:added8:\x01\x02\x03\x04\x00\x50zze").unwrap();
    assert_eq!(msg.added, vec![(v4(0x0102_0304, 80), PexFlags(0))]);
    for broken in [&b"d5:added"[..], b"\xff", b"", b"d5:added6:abcdef"] {
        assert!(PexMessage::decode(broken).is_err(), "{broken:?}");
    }
}

#[test]
fn dialable_refuses_what_no_peer_listens_on() {
    assert!(dialable(v4(0x7f00_0001, 6881)));
    assert!(!dialable(v4(0x7f00_0001, 0)));
    assert!(!dialable(v4(0, 6881)));
    assert!(!dialable(v4(0xe000_0001, 6881)));
    assert!(!dialable(v4(u32::MAX, 6881)));
}

fn addr() -> impl Strategy<Value = SocketAddr> {
    prop_oneof![
        (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| v4(ip, port)),
        (any::<u128>(), any::<u16>())
            .prop_map(|(ip, port)| SocketAddr::from((Ipv6Addr::from(ip), port))),
    ]
}

proptest! {
    #[test]
    fn round_trip(
        added in proptest::collection::vec((addr(), any::<u8>()), 0..60),
        dropped in proptest::collection::vec(addr(), 0..60),
    ) {
        let msg = PexMessage {
            added: added.into_iter().map(|(a, f)| (a, PexFlags(f))).collect(),
            dropped,
        };
        let back = PexMessage::decode(&msg.encode()).unwrap();
        // Each family keeps its order; IPv4 comes first.
        let order = |v: &[SocketAddr]| {
            let mut out: Vec<SocketAddr> = v.iter().copied().filter(SocketAddr::is_ipv4).collect();
            out.extend(v.iter().copied().filter(SocketAddr::is_ipv6));
            out
        };
        let mut added_sorted: Vec<(SocketAddr, PexFlags)> =
            msg.added.iter().copied().filter(|(a, _)| a.is_ipv4()).collect();
        added_sorted.extend(msg.added.iter().copied().filter(|(a, _)| a.is_ipv6()));
        prop_assert_eq!(back.added, added_sorted);
        prop_assert_eq!(back.dropped, order(&msg.dropped));
    }

    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = PexMessage::decode(&bytes);
    }
}
