//! The fetcher on virtual time, against honest, slow, silent and lying peers.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::extension::{Extension, TheirExtensions, TheirHandshake};
use crate::hash::Sha1;

const S: Duration = Duration::from_secs(1);

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 6881))
}

fn handshake(size: u64) -> TheirHandshake {
    TheirHandshake {
        extensions: TheirExtensions::default().with(Extension::UtMetadata, 3),
        metadata_size: Some(size),
        ..TheirHandshake::default()
    }
}

/// Metadata of `len` bytes that are not all alike.
fn info(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn fetcher(info: &[u8]) -> MetadataFetcher {
    MetadataFetcher::new(Sha1::digest(info), FetchConfig::default())
}

/// Requests waiting, as (peer, piece).
fn requests(f: &mut MetadataFetcher) -> Vec<(FetchKey, u32)> {
    let mut out = Vec::new();
    while let Some(t) = f.poll_transmit() {
        assert_eq!(t.ext_id, 3, "sent under the id the peer gave");
        match MetadataMessage::decode(&t.payload).unwrap() {
            MetadataMessage::Request { piece } => out.push((t.peer, piece)),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

fn events(f: &mut MetadataFetcher) -> Vec<FetchEvent> {
    std::iter::from_fn(|| f.poll_event()).collect()
}

/// Answers every request from `data` (which may be wrong) until none are left.
#[track_caller]
fn answer_all(f: &mut MetadataFetcher, now: Duration, sources: &[(FetchKey, &[u8])]) {
    loop {
        let asked = requests(f);
        if asked.is_empty() {
            return;
        }
        for (peer, piece) in asked {
            let data = sources.iter().find(|(k, _)| *k == peer).unwrap().1;
            let _ = f.on_message(now, peer, &answer(data, piece));
        }
    }
}

#[test]
fn fetches_from_one_honest_peer_within_its_bounds() {
    let info = info(40_000);
    let mut f = fetcher(&info);
    f.add_peer(Duration::ZERO, 1, addr(1), &handshake(info.len() as u64))
        .unwrap();
    let asked = requests(&mut f);
    assert_eq!(
        asked,
        [(1, 0), (1, 1), (1, 2)],
        "three pieces, at most four in flight"
    );
    assert_eq!(f.progress().pieces_total, 3);
    for (peer, piece) in asked {
        f.on_message(S, peer, &answer(&info, piece)).unwrap();
    }
    assert_eq!(events(&mut f), [FetchEvent::Done(info)]);
    assert!(f.is_done());
    assert_eq!(f.poll_timeout(), None);
}

#[test]
fn requests_stay_within_the_per_peer_and_overall_bounds() {
    let info = info(60 * 16 * 1024);
    let mut f = fetcher(&info);
    for k in 0..20 {
        f.add_peer(
            Duration::ZERO,
            k,
            addr(k as u8),
            &handshake(info.len() as u64),
        )
        .unwrap();
    }
    let asked = requests(&mut f);
    assert_eq!(asked.len(), FetchConfig::default().requests_max);
    for k in 0..20 {
        let n = asked.iter().filter(|(p, _)| *p == k).count();
        assert!(n <= FetchConfig::default().requests_per_peer_max, "{n}");
    }
    let mut pieces: Vec<u32> = asked.iter().map(|(_, p)| *p).collect();
    pieces.dedup();
    assert_eq!(pieces.len(), asked.len(), "no piece asked twice");
    for (peer, piece) in asked {
        f.on_message(S, peer, &answer(&info, piece)).unwrap();
    }
    let sources: Vec<(FetchKey, &[u8])> = (0..20).map(|k| (k, &info[..])).collect();
    answer_all(&mut f, S, &sources);
    assert_eq!(events(&mut f), [FetchEvent::Done(info)]);
}

#[test]
fn a_lone_liar_is_convicted_and_an_honest_peer_completes() {
    let info = info(9_000);
    let mut lie = info.clone();
    lie[100] ^= 1;
    let mut f = fetcher(&info);
    f.add_peer(Duration::ZERO, 1, addr(1), &handshake(info.len() as u64))
        .unwrap();
    answer_all(&mut f, S, &[(1, &lie)]);
    assert_eq!(
        events(&mut f),
        [FetchEvent::Drop(1, PeerFault::BadMetadata)]
    );
    assert!(f.is_banned(addr(1)));
    assert_eq!(f.failures(), 1);
    // It comes back on a new connection: refused.
    assert_eq!(
        f.add_peer(2 * S, 9, addr(1), &handshake(info.len() as u64)),
        Err(PeerFault::Banned)
    );
    f.add_peer(2 * S, 2, addr(2), &handshake(info.len() as u64))
        .unwrap();
    answer_all(&mut f, 3 * S, &[(2, &info)]);
    assert_eq!(events(&mut f), [FetchEvent::Done(info)]);
}

#[test]
fn a_liar_among_several_is_found_and_only_it_is_banned() {
    let info = info(5 * 16 * 1024 + 10);
    let mut lie = info.clone();
    lie[5 * 16 * 1024 + 5] ^= 0x40; // wrong in the last piece only
    let mut f = fetcher(&info);
    for (k, n) in [(1, 1), (2, 2), (3, 3)] {
        f.add_peer(Duration::ZERO, k, addr(n), &handshake(info.len() as u64))
            .unwrap();
    }
    let sources: [(FetchKey, &[u8]); 3] = [(1, &info), (2, &lie), (3, &info)];
    // Four pieces to the first peer, the last two to the liar.
    let first = requests(&mut f);
    assert_eq!(first, [(1, 0), (1, 1), (1, 2), (1, 3), (2, 4), (2, 5)]);
    for (peer, piece) in first {
        let data = sources.iter().find(|(k, _)| *k == peer).unwrap().1;
        f.on_message(S, peer, &answer(data, piece)).unwrap();
    }
    assert_eq!(f.failures(), 1);
    // The copy is taken again from the one peer not under suspicion.
    let again = requests(&mut f);
    assert!(again.iter().all(|(p, _)| *p == 3), "{again:?}");
    for (peer, piece) in again {
        f.on_message(2 * S, peer, &answer(&info, piece)).unwrap();
    }
    answer_all(&mut f, 2 * S, &sources);
    assert_eq!(
        events(&mut f),
        [
            FetchEvent::Drop(2, PeerFault::BadMetadata),
            FetchEvent::Done(info)
        ]
    );
    assert!(f.is_banned(addr(2)));
    assert!(!f.is_banned(addr(1)) && !f.is_banned(addr(3)));
}

#[test]
fn two_peers_split_the_work_and_the_liar_is_convicted_by_comparison() {
    let info = info(2 * 16 * 1024);
    let mut lie = info.clone();
    lie[16 * 1024 + 1] ^= 1; // wrong in piece 1 only
    let mut f = MetadataFetcher::new(
        Sha1::digest(&info),
        FetchConfig {
            requests_per_peer_max: 1,
            ..FetchConfig::default()
        },
    );
    f.add_peer(Duration::ZERO, 1, addr(1), &handshake(info.len() as u64))
        .unwrap();
    f.add_peer(Duration::ZERO, 2, addr(2), &handshake(info.len() as u64))
        .unwrap();
    // One request each: peer 1 gets piece 0, the liar piece 1.
    assert_eq!(requests(&mut f), [(1, 0), (2, 1)]);
    f.on_message(S, 1, &answer(&info, 0)).unwrap();
    f.on_message(S, 2, &answer(&lie, 1)).unwrap();
    assert_eq!(f.failures(), 1);
    assert!(
        events(&mut f).is_empty(),
        "two senders: no one convicted yet"
    );
    // The next copy comes from one peer alone (peer 1, the first).
    answer_all(&mut f, 2 * S, &[(1, &info), (2, &lie)]);
    assert_eq!(
        events(&mut f),
        [
            FetchEvent::Drop(2, PeerFault::BadMetadata),
            FetchEvent::Done(info)
        ]
    );
    assert!(f.is_banned(addr(2)));
    assert!(!f.is_banned(addr(1)));
}

#[test]
fn a_lying_total_size_drops_the_peer() {
    let info = info(20_000);
    let mut f = fetcher(&info);
    f.add_peer(Duration::ZERO, 1, addr(1), &handshake(info.len() as u64))
        .unwrap();
    let _ = requests(&mut f);
    let other = MetadataMessage::Data {
        piece: 0,
        total_size: 16 * 1024 + 5,
        data: &info[..16 * 1024],
    }
    .encode();
    assert_eq!(
        f.on_message(S, 1, &other),
        Err(PeerFault::TotalSizeChanged {
            said: 20_000,
            sent: 16 * 1024 + 5
        })
    );
    assert_eq!(f.progress().peers, 0);
}

#[test]
fn malformed_messages_drop_the_peer() {
    let info = info(100);
    let mut f = fetcher(&info);
    f.add_peer(Duration::ZERO, 1, addr(1), &handshake(100))
        .unwrap();
    let _ = requests(&mut f);
    // Its piece is shorter than the total it names.
    let short = b"d8:msg_typei1e5:piecei0e10:total_sizei100eeabc";
    assert!(matches!(
        f.on_message(S, 1, short),
        Err(PeerFault::Malformed(MetadataError::BadPieceLength { .. }))
    ));
    f.add_peer(S, 2, addr(2), &handshake(100)).unwrap();
    assert!(matches!(
        f.on_message(S, 2, b"i5e"),
        Err(PeerFault::Malformed(MetadataError::NotDict))
    ));
    assert_eq!(f.progress().peers, 0);
}

#[test]
fn oversize_metadata_is_refused_with_its_own_error() {
    let mut f = MetadataFetcher::new(
        Sha1::digest(b"x"),
        FetchConfig {
            size_max: 1 << 20,
            ..FetchConfig::default()
        },
    );
    assert_eq!(
        f.add_peer(Duration::ZERO, 1, addr(1), &handshake(1 << 30)),
        Err(PeerFault::TooLarge {
            size: 1 << 30,
            max: 1 << 20
        })
    );
    assert_eq!(f.too_large(), Some(1 << 30));
    assert!(requests(&mut f).is_empty());
    assert_eq!(
        f.add_peer(Duration::ZERO, 2, addr(2), &TheirHandshake::default()),
        Err(PeerFault::NoExtension)
    );
    assert_eq!(
        f.add_peer(
            Duration::ZERO,
            3,
            addr(3),
            &TheirHandshake {
                metadata_size: None,
                ..handshake(0)
            }
        ),
        Err(PeerFault::NoMetadata)
    );
}

#[test]
fn disagreeing_sizes_go_with_the_majority() {
    let info = info(30_000);
    let mut f = fetcher(&info);
    f.add_peer(Duration::ZERO, 1, addr(1), &handshake(31_000))
        .unwrap();
    f.add_peer(Duration::ZERO, 2, addr(2), &handshake(30_000))
        .unwrap();
    f.add_peer(Duration::ZERO, 3, addr(3), &handshake(30_000))
        .unwrap();
    // The first peer's size was chosen before the others came; nothing has arrived yet, and
    // it keeps its requests. Once it leaves, the majority's size is taken.
    let asked = requests(&mut f);
    assert!(asked.iter().all(|(p, _)| *p == 1), "{asked:?}");
    f.remove_peer(S, 1);
    assert_eq!(f.progress().size, Some(30_000));
    answer_all(&mut f, S, &[(2, &info), (3, &info)]);
    assert_eq!(events(&mut f), [FetchEvent::Done(info)]);
}

#[test]
fn a_silent_peer_times_out_and_another_is_asked() {
    let info = info(1000);
    let mut f = fetcher(&info);
    f.add_peer(Duration::ZERO, 1, addr(1), &handshake(1000))
        .unwrap();
    assert_eq!(requests(&mut f), [(1, 0)]);
    f.add_peer(S, 2, addr(2), &handshake(1000)).unwrap();
    assert!(
        requests(&mut f).is_empty(),
        "piece 0 is asked of peer 1 already"
    );
    let deadline = f.poll_timeout().unwrap();
    assert_eq!(deadline, FetchConfig::default().request_timeout);
    f.handle_timeout(deadline - Duration::from_millis(1));
    assert!(requests(&mut f).is_empty());
    f.handle_timeout(deadline);
    assert_eq!(requests(&mut f), [(2, 0)]);
    // Peer 1's late answer is ignored; peer 2's completes.
    f.on_message(deadline, 1, &answer(&info, 0)).unwrap();
    assert!(events(&mut f).is_empty());
    f.on_message(deadline, 2, &answer(&info, 0)).unwrap();
    assert_eq!(events(&mut f), [FetchEvent::Done(info)]);
}

#[test]
fn a_reject_rests_the_peer_and_another_is_asked() {
    let info = info(1000);
    let mut f = fetcher(&info);
    f.add_peer(Duration::ZERO, 1, addr(1), &handshake(1000))
        .unwrap();
    f.add_peer(Duration::ZERO, 2, addr(2), &handshake(1000))
        .unwrap();
    assert_eq!(requests(&mut f), [(1, 0)]);
    f.on_message(S, 1, &MetadataMessage::Reject { piece: 0 }.encode())
        .unwrap();
    assert_eq!(requests(&mut f), [(2, 0)]);
    f.on_message(S, 2, &MetadataMessage::Reject { piece: 0 }.encode())
        .unwrap();
    assert!(requests(&mut f).is_empty(), "both rest");
    let back = f.poll_timeout().unwrap();
    assert_eq!(back, S + FetchConfig::default().reject_backoff);
    f.handle_timeout(back);
    assert_eq!(requests(&mut f), [(1, 0)]);
}

#[test]
fn a_closed_peer_gives_its_requests_back() {
    let info = info(3 * 16 * 1024);
    let mut f = fetcher(&info);
    f.add_peer(Duration::ZERO, 1, addr(1), &handshake(info.len() as u64))
        .unwrap();
    assert_eq!(requests(&mut f).len(), 3);
    f.add_peer(S, 2, addr(2), &handshake(info.len() as u64))
        .unwrap();
    f.remove_peer(S, 1);
    assert_eq!(requests(&mut f), [(2, 0), (2, 1), (2, 2)]);
}

#[test]
fn requests_to_us_are_rejected_while_we_have_nothing() {
    let mut f = fetcher(b"abc");
    f.add_peer(Duration::ZERO, 1, addr(1), &handshake(3))
        .unwrap();
    let _ = requests(&mut f);
    f.on_message(S, 1, &MetadataMessage::Request { piece: 0 }.encode())
        .unwrap();
    let t = f.poll_transmit().unwrap();
    assert_eq!(
        MetadataMessage::decode(&t.payload),
        Ok(MetadataMessage::Reject { piece: 0 })
    );
}

#[test]
fn peers_past_the_bound_are_refused() {
    let mut f = MetadataFetcher::new(
        Sha1::digest(b"x"),
        FetchConfig {
            peers_max: 2,
            ..FetchConfig::default()
        },
    );
    f.add_peer(Duration::ZERO, 1, addr(1), &handshake(1))
        .unwrap();
    f.add_peer(Duration::ZERO, 2, addr(2), &handshake(1))
        .unwrap();
    assert_eq!(
        f.add_peer(Duration::ZERO, 3, addr(3), &handshake(1)),
        Err(PeerFault::TooManyPeers(2))
    );
}

#[test]
fn answers_serve_pieces_and_reject_out_of_range() {
    let info = info(16 * 1024 + 3);
    assert_eq!(
        MetadataMessage::decode(&answer(&info, 1)),
        Ok(MetadataMessage::Data {
            piece: 1,
            total_size: info.len() as u32,
            data: &info[16 * 1024..]
        })
    );
    assert_eq!(
        MetadataMessage::decode(&answer(&info, 2)),
        Ok(MetadataMessage::Reject { piece: 2 })
    );
}

#[test]
fn a_wrapped_torrent_keeps_the_info_hash_and_the_trackers() {
    let original = crate::metainfo::NewTorrent {
        name: b"a.bin".to_vec(),
        piece_length: 16 * 1024,
        files: vec![crate::metainfo::NewFile {
            path: vec![],
            length: 40_000,
        }],
        piece_hashes: vec![Sha1::digest(b"p"); 3],
        trackers: vec!["http://ignored/announce".into()],
        ..Default::default()
    }
    .encode()
    .unwrap();
    let m = crate::metainfo::Metainfo::parse(&original).unwrap();
    let trackers = vec!["udp://t1:1/a".to_string(), "http://t2/b".to_string()];
    let seeds = vec!["http://ws1/files/".to_string(), "http://ws2/x".to_string()];
    let wrapped = torrent_file(&m.info_bytes, &trackers, &seeds);
    let back = crate::metainfo::Metainfo::parse(&wrapped).unwrap();
    assert_eq!(back.info_hash, m.info_hash);
    assert_eq!(back.announce.as_deref(), Some("udp://t1:1/a"));
    assert_eq!(
        back.trackers(),
        [vec![trackers[0].clone()], vec![trackers[1].clone()]]
    );
    assert_eq!(back.web_seeds, seeds);
    let bare = crate::metainfo::Metainfo::parse(&torrent_file(&m.info_bytes, &[], &[])).unwrap();
    assert_eq!(bare.info_hash, m.info_hash);
    assert!(bare.trackers().is_empty());
    assert!(bare.web_seeds.is_empty());
}

proptest::proptest! {
    /// Whatever a crowd of peers sends, the fetcher never panics, never keeps more
    /// requests in flight than its bounds, and if it finishes, hands over the right bytes.
    #[test]
    fn hostile_crowds(
        seed in proptest::collection::vec((0u8..6, 0u32..4, proptest::num::u8::ANY), 1..120),
    ) {
        let info = info(3 * 16 * 1024 + 77);
        let cfg = FetchConfig::default();
        let mut f = fetcher(&info);
        let mut now = Duration::ZERO;
        for (i, &(what, piece, byte)) in seed.iter().enumerate() {
            now += Duration::from_millis(700);
            let key = u64::from(byte % 5);
            match what {
                0 => { let _ = f.add_peer(now, key, addr(byte % 5), &handshake(
                    if byte % 7 == 0 { 999 } else { info.len() as u64 })); }
                1 => { let _ = f.on_message(now, key, &answer(&info, piece)); }
                2 => {
                    let mut lie = info.clone();
                    lie[i % info.len()] ^= 1;
                    let _ = f.on_message(now, key, &answer(&lie, piece));
                }
                3 => { let _ = f.on_message(now, key, &[byte; 9]); }
                4 => f.remove_peer(now, key),
                _ => f.handle_timeout(now),
            }
            let mut in_flight = 0;
            while f.poll_transmit().is_some() { in_flight += 1; }
            proptest::prop_assert!(in_flight <= cfg.requests_max);
            while let Some(e) = f.poll_event() {
                if let FetchEvent::Done(bytes) = e {
                    proptest::prop_assert_eq!(&bytes, &info);
                }
            }
        }
    }
}
