use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use proptest::prelude::*;

use super::announce::READ_LEN_MAX;
use super::*;
use crate::InfoHash;

fn hash(n: u8) -> InfoHash {
    crate::Sha1Digest([n; 20])
}

fn from(last: u8) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::new(10, 0, 0, last), PORT))
}

#[test]
fn an_announce_reads_back() {
    let datagrams = encode(51413, "c00k1e", &[hash(1), hash(2)]);
    assert_eq!(datagrams.len(), 1);
    let text = std::str::from_utf8(&datagrams[0]).unwrap();
    assert!(
        text.starts_with("BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 51413\r\n")
    );
    assert!(text.ends_with("cookie: c00k1e\r\n\r\n\r\n"));
    let got = Announce::parse(&datagrams[0]).unwrap();
    assert_eq!(
        got,
        Announce {
            port: 51413,
            info_hashes: vec![hash(1), hash(2)],
            cookie: Some("c00k1e".into()),
        }
    );
}

#[test]
fn what_other_clients_send_is_read() {
    // libtorrent's layout, with a lower-case cookie header; Transmission's, without one;
    // upper-case hex, bare line feeds and header names in other cases.
    let hex = hash(0xab).to_hex();
    let libtorrent = format!(
        "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: {hex}\r\ncookie: 5f2a\r\n\r\n\r\n"
    );
    let transmission = format!(
        "BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: {}\r\n\r\n\r\n",
        hex.to_uppercase()
    );
    let loose =
        format!("BT-SEARCH * HTTP/1.1\nHOST: x\nport:6881\nINFOHASH:  {hex} \nX-Other: 1\n\n");
    for text in [libtorrent, transmission, loose] {
        let got = Announce::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text:?}"));
        assert_eq!(got.port, 6881);
        assert_eq!(got.info_hashes, vec![hash(0xab)]);
    }
}

#[test]
fn what_is_not_an_announce_is_refused() {
    let hex = hash(1).to_hex();
    let cases: Vec<(Vec<u8>, LsdError)> = vec![
        (
            format!("M-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: {hex}\r\n\r\n").into_bytes(),
            LsdError::NotSearch,
        ),
        (
            format!("BT-SEARCH * HTTP/1.1\r\nInfohash: {hex}\r\n\r\n").into_bytes(),
            LsdError::NoPort,
        ),
        (
            format!("BT-SEARCH * HTTP/1.1\r\nPort: 0\r\nInfohash: {hex}\r\n\r\n").into_bytes(),
            LsdError::NoPort,
        ),
        (
            format!("BT-SEARCH * HTTP/1.1\r\nPort: 70000\r\nInfohash: {hex}\r\n\r\n").into_bytes(),
            LsdError::NoPort,
        ),
        (
            b"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: 1234\r\n\r\n".to_vec(),
            LsdError::NoInfoHash,
        ),
        (
            // A header after the blank line is not read.
            format!("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n\r\nInfohash: {hex}\r\n\r\n").into_bytes(),
            LsdError::NoInfoHash,
        ),
        (vec![0xff, 0xfe, 0x00], LsdError::NotText),
        (
            vec![b'a'; READ_LEN_MAX + 1],
            LsdError::TooLong(READ_LEN_MAX + 1),
        ),
    ];
    for (bytes, want) in cases {
        assert_eq!(
            Announce::parse(&bytes),
            Err(want),
            "{:?}",
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn a_datagram_yields_at_most_its_bound_of_torrents_without_repeats() {
    let mut text = String::from("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n");
    // 34 lines (within READ_LEN_MAX), 33 distinct hashes.
    for n in 0..34u8 {
        let line = format!("Infohash: {}\r\n", hash(n % 33).to_hex());
        text.push_str(&line);
    }
    text.push_str("\r\n");
    let got = Announce::parse(text.as_bytes()).unwrap();
    assert_eq!(got.info_hashes.len(), READ_HASHES_MAX);
    let expected: Vec<InfoHash> = (0..READ_HASHES_MAX as u8).map(hash).collect();
    assert_eq!(got.info_hashes, expected);
}

#[test]
fn many_torrents_are_packed_into_datagrams_within_the_limit() {
    let hashes: Vec<InfoHash> = (0..=99).map(hash).collect();
    let per = hashes_per_datagram(65535, "0123456789abcdef");
    assert_eq!(per, 25);
    let datagrams = encode(65535, "0123456789abcdef", &hashes);
    assert_eq!(datagrams.len(), 100usize.div_ceil(per));
    let mut back = Vec::new();
    for d in &datagrams {
        assert!(d.len() <= DATAGRAM_MAX, "{} bytes", d.len());
        back.extend(Announce::parse(d).unwrap().info_hashes);
    }
    assert_eq!(back, hashes);
}

#[test]
fn own_announces_are_dropped_and_others_passed_on_once_a_minute() {
    let mut us = Lsd::new(6881, 1, LsdConfig::default());
    let mut them = Lsd::new(7000, 2, LsdConfig::default());
    assert_ne!(us.cookie(), them.cookie());
    us.announce(hash(1));
    let ours = us.poll_datagram(Duration::ZERO).unwrap();
    assert!(us
        .handle_datagram(Duration::ZERO, from(1), &ours)
        .is_empty());
    assert_eq!(us.counters().own, 1);

    let found = them.handle_datagram(Duration::ZERO, from(1), &ours);
    let peer = SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 6881));
    assert_eq!(
        found,
        vec![Found {
            info_hash: hash(1),
            peer
        }]
    );
    // The same announce again within the minute passes nothing on; after it, it does.
    assert!(them
        .handle_datagram(Duration::from_secs(30), from(1), &ours)
        .is_empty());
    assert_eq!(them.counters().repeats, 1);
    assert_eq!(
        them.handle_datagram(Duration::from_secs(61), from(1), &ours)
            .len(),
        1
    );
    // From another address it is another peer.
    assert_eq!(
        them.handle_datagram(Duration::from_secs(62), from(2), &ours)
            .len(),
        1
    );
}

#[test]
fn announces_are_queued_once_packed_and_paced() {
    let config = LsdConfig {
        queue_max: 110,
        ..LsdConfig::default()
    };
    let mut lsd = Lsd::new(6881, 3, config);
    for n in 0..110u8 {
        assert!(lsd.announce(hash(n)));
        assert!(lsd.announce(hash(n)), "asking twice is not an error");
    }
    assert_eq!(lsd.queued(), 110);
    assert!(!lsd.announce(hash(200)), "over the bound");
    assert_eq!(lsd.counters().queue_full, 1);

    // 4 datagrams at once (the burst), then one every 250 ms.
    let now = Duration::from_secs(1);
    let burst: Vec<Vec<u8>> = std::iter::from_fn(|| lsd.poll_datagram(now)).collect();
    assert_eq!(burst.len(), 4);
    let per = hashes_per_datagram(6881, lsd.cookie());
    assert_eq!(lsd.queued(), 110 - 4 * per);
    let next = lsd.poll_timeout(now).unwrap();
    assert!(
        next > now && next <= now + Duration::from_millis(250),
        "{next:?}"
    );
    assert!(lsd.poll_datagram(next).is_some());
    assert_eq!(lsd.queued(), 0);
    assert_eq!(lsd.poll_timeout(next), None);
    assert_eq!(lsd.counters().torrents_announced, 110);
    // Sent, a torrent can queue again.
    assert!(lsd.announce(hash(5)));
}

#[test]
fn a_flood_costs_a_counter_and_the_table_stays_bounded() {
    let config = LsdConfig {
        received_per_s: 10,
        remembered_max: 50,
        ..LsdConfig::default()
    };
    let mut lsd = Lsd::new(6881, 4, config);
    let now = Duration::from_secs(5);
    let mut found = 0;
    for n in 0..1000u32 {
        let d = encode(1000 + (n % 60_000) as u16, "x", &[hash((n % 250) as u8)]);
        found += lsd.handle_datagram(now, from(9), &d[0]).len();
    }
    assert_eq!(found, 10);
    assert_eq!(lsd.counters().rate_limited, 990);
    // Over many seconds: at most `remembered_max` pairs kept.
    for s in 0..100u64 {
        for n in 0..10u8 {
            let d = encode(2000 + s as u16 * 10 + u16::from(n), "x", &[hash(n)]);
            lsd.handle_datagram(Duration::from_secs(10 + s), from(n), &d[0]);
        }
        assert!(lsd.remembered() <= 50);
    }
}

proptest! {
    #[test]
    fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let _ = Announce::parse(&bytes);
        let mut lsd = Lsd::new(1, 5, LsdConfig::default());
        for f in lsd.handle_datagram(Duration::ZERO, from(3), &bytes) {
            prop_assert!(f.peer.port() != 0);
        }
    }

    #[test]
    fn what_is_encoded_reads_back(
        port in 1u16..,
        cookie in "[0-9a-f]{1,16}",
        seeds in proptest::collection::vec(any::<[u8; 20]>(), 1..80),
    ) {
        let mut hashes: Vec<InfoHash> = seeds.into_iter().map(crate::Sha1Digest).collect();
        hashes.dedup();
        let mut back = Vec::new();
        for d in encode(port, &cookie, &hashes) {
            prop_assert!(d.len() <= DATAGRAM_MAX);
            let a = Announce::parse(&d).unwrap();
            prop_assert_eq!(a.port, port);
            prop_assert_eq!(a.cookie.as_deref(), Some(cookie.as_str()));
            back.extend(a.info_hashes);
        }
        prop_assert_eq!(back, hashes);
    }
}
