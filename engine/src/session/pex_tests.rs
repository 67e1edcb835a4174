//! Peer exchange on a torrent: when we send, what, how much, and what we take.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::*;
use crate::extension::{Extension, TheirHandshake};
use crate::metainfo::{LayoutFile, TorrentPath};
use crate::pex::{PexFlags, PexMessage, DECODE_ADDED_MAX};
use crate::wire::decode_message;

/// The id our test peers take ut_pex messages under.
const THEIR_PEX: u8 = 7;

fn torrent(config: SessionConfig) -> Torrent {
    let file = LayoutFile {
        path: TorrentPath::new([b"f".as_slice()]).unwrap(),
        length: 4 * 16384,
        pad: false,
    };
    let layout = Layout::new(16384, [file]).unwrap();
    Torrent::new(layout.clone(), &Bitfield::empty(4), config, 1)
}

fn at(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn addr(n: u32) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + n), 6881))
}

/// A peer at `addr(n)` joins; `outgoing`: we dialled it.
#[track_caller]
fn join(t: &mut Torrent, now: Duration, n: u32, outgoing: bool) -> PeerKey {
    let caps = PeerCaps {
        fast: true,
        extensions: true,
        outgoing,
        dht_port: None,
    };
    t.add_peer(now, addr(n), caps).unwrap()
}

/// Its extension handshake: ut_pex under [`THEIR_PEX`] if `pex`, and `p` if given.
#[track_caller]
fn handshake(t: &mut Torrent, now: Duration, key: PeerKey, pex: bool, port: Option<u16>) {
    let mut payload = String::from("d1:md");
    if pex {
        payload.push_str(&format!("6:ut_pexi{THEIR_PEX}e"));
    }
    payload.push('e');
    if let Some(p) = port {
        payload.push_str(&format!("1:pi{p}e"));
    }
    payload.push('e');
    let msg = Message::Extended {
        id: 0,
        payload: payload.as_bytes(),
    };
    t.on_message(now, key, &msg).unwrap();
}

/// The extended messages in `key`'s outbox with id `id`, payloads only (the outbox is
/// drained).
fn extended(t: &mut Torrent, key: PeerKey, id: u8) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    t.take_outbox(key, &mut buf);
    let mut out = Vec::new();
    let mut at = 0;
    while let Some((msg, used)) = decode_message(&buf[at..], 1 << 20).unwrap() {
        at += used;
        if let Message::Extended { id: got, payload } = msg {
            if got == id {
                out.push(payload.to_vec());
            }
        }
    }
    out
}

fn pex_sent(t: &mut Torrent, key: PeerKey) -> Vec<PexMessage> {
    extended(t, key, THEIR_PEX)
        .iter()
        .map(|p| PexMessage::decode(p).unwrap())
        .collect()
}

fn learned(t: &mut Torrent) -> Vec<Vec<SocketAddr>> {
    let mut out = Vec::new();
    while let Some(action) = t.poll_action() {
        if let Action::PexPeers(addrs) = action {
            out.push(addrs);
        }
    }
    out
}

fn their_pex(
    t: &mut Torrent,
    now: Duration,
    key: PeerKey,
    payload: &[u8],
) -> Result<(), DropReason> {
    let msg = Message::Extended {
        id: Extension::UtPex.local_id(),
        payload,
    };
    t.on_message(now, key, &msg).map(|_| ())
}

fn added(msg: &PexMessage) -> Vec<SocketAddr> {
    msg.added.iter().map(|(a, _)| *a).collect()
}

#[test]
fn the_first_message_comes_soon_and_later_ones_at_most_once_a_minute() {
    let mut t = torrent(SessionConfig::default());
    let keys: Vec<PeerKey> = (1..=3).map(|n| join(&mut t, at(0), n, true)).collect();
    for &k in &keys {
        handshake(&mut t, at(0), k, true, None);
        extended(&mut t, k, 0);
    }
    t.tick(at(1));
    assert!(
        pex_sent(&mut t, keys[0]).is_empty(),
        "not before FIRST_DELAY"
    );
    t.tick(PEX_FIRST_DELAY);
    let first = pex_sent(&mut t, keys[0]);
    assert_eq!(first.len(), 1);
    assert_eq!(added(&first[0]), vec![addr(2), addr(3)], "never itself");
    assert!(first[0]
        .added
        .iter()
        .all(|(_, f)| f.reachable() && !f.seed()));
    assert!(first[0].dropped.is_empty());
    // A fourth peer joins and the second leaves: nothing until a minute has passed.
    let fourth = join(&mut t, at(10), 4, true);
    t.remove_peer(keys[1]);
    for s in [10, 30, 61] {
        t.tick(at(s));
        assert!(pex_sent(&mut t, keys[0]).is_empty(), "at {s} s");
    }
    t.tick(PEX_FIRST_DELAY + PEX_SEND_INTERVAL);
    let next = pex_sent(&mut t, keys[0]);
    assert_eq!(next.len(), 1);
    assert_eq!(added(&next[0]), vec![addr(4)]);
    assert_eq!(next[0].dropped, vec![addr(2)]);
    // Nothing changed since: nothing is sent.
    t.tick(PEX_FIRST_DELAY + 2 * PEX_SEND_INTERVAL);
    assert!(pex_sent(&mut t, keys[0]).is_empty());
    // A peer that did not offer ut_pex is never sent one.
    handshake(&mut t, at(200), fourth, false, None);
    t.tick(at(300));
    assert!(t.peers.contains_key(&fourth));
    assert!(extended(&mut t, fourth, THEIR_PEX).is_empty());
}

#[test]
fn at_most_fifty_added_and_fifty_dropped_a_message() {
    let config = SessionConfig {
        max_peers: 200,
        ..SessionConfig::default()
    };
    let mut t = torrent(config);
    let listener = join(&mut t, at(0), 1000, true);
    handshake(&mut t, at(0), listener, true, None);
    let others: Vec<PeerKey> = (0..120).map(|n| join(&mut t, at(0), n, true)).collect();
    let mut told = Vec::new();
    let mut now = PEX_FIRST_DELAY;
    for want in [50, 50, 20] {
        t.tick(now);
        let sent = pex_sent(&mut t, listener);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].added.len(), want);
        told.extend(added(&sent[0]));
        now += PEX_SEND_INTERVAL;
    }
    told.sort();
    told.dedup();
    assert_eq!(told.len(), 120, "every peer told once");
    for k in others {
        t.remove_peer(k);
    }
    for want in [50, 50, 20] {
        // Silent for three minutes a peer would be dropped as idle.
        t.on_message(now, listener, &Message::KeepAlive).unwrap();
        t.tick(now);
        let sent = pex_sent(&mut t, listener);
        assert_eq!(sent[0].dropped.len(), want);
        assert!(sent[0].added.is_empty());
        now += PEX_SEND_INTERVAL;
    }
}

#[test]
fn an_incoming_peer_is_told_of_only_with_the_port_its_handshake_gave() {
    let mut t = torrent(SessionConfig::default());
    let listener = join(&mut t, at(0), 1, true);
    handshake(&mut t, at(0), listener, true, None);
    let silent = join(&mut t, at(0), 2, false);
    handshake(&mut t, at(0), silent, true, None);
    let said = join(&mut t, at(0), 3, false);
    handshake(&mut t, at(0), said, false, Some(51413));
    // A seed: flagged as one; incoming, so not flagged reachable.
    t.on_message(at(0), said, &Message::HaveAll).unwrap();
    t.tick(PEX_FIRST_DELAY);
    let sent = pex_sent(&mut t, listener);
    let want = SocketAddr::new(addr(3).ip(), 51413);
    assert_eq!(
        sent[0].added,
        vec![(want, PexFlags(PexFlags::SEED))],
        "the incoming peer without `p` is left out"
    );
    // The incoming peer with no known port is told of the outgoing one.
    let to_silent = pex_sent(&mut t, silent);
    assert_eq!(added(&to_silent[0]), vec![addr(1), want]);
}

#[test]
fn a_private_torrent_offers_sends_and_takes_no_pex() {
    for (private, enabled) in [(true, true), (false, false)] {
        let config = SessionConfig {
            pex: enabled,
            ..SessionConfig::default()
        };
        let mut t = torrent(config);
        t.set_private(private);
        let a = join(&mut t, at(0), 1, true);
        let ours = extended(&mut t, a, 0);
        let theirs = TheirHandshake::parse(&ours[0]).unwrap();
        assert_eq!(theirs.extensions.id(Extension::UtPex), None);
        assert!(theirs.extensions.id(Extension::UtMetadata).is_some());
        let b = join(&mut t, at(0), 2, true);
        handshake(&mut t, at(0), a, true, None);
        handshake(&mut t, at(0), b, true, None);
        for s in 1..200 {
            t.tick(at(s));
        }
        assert!(pex_sent(&mut t, a).is_empty() && pex_sent(&mut t, b).is_empty());
        let news = PexMessage {
            added: vec![(addr(9), PexFlags(0))],
            dropped: vec![],
        };
        their_pex(&mut t, at(200), a, &news.encode()).unwrap();
        assert!(learned(&mut t).is_empty());
        // Ignored outright, even when broken.
        their_pex(&mut t, at(300), a, b"\xff").unwrap();
    }
    // The same torrent public and with PEX on does offer it.
    let mut t = torrent(SessionConfig::default());
    let a = join(&mut t, at(0), 1, true);
    let ours = extended(&mut t, a, 0);
    let theirs = TheirHandshake::parse(&ours[0]).unwrap();
    assert_eq!(
        theirs.extensions.id(Extension::UtPex),
        Some(Extension::UtPex.local_id())
    );
}

#[test]
fn a_peers_messages_closer_than_45_s_are_ignored_not_punished() {
    let mut t = torrent(SessionConfig::default());
    let a = join(&mut t, at(0), 1, true);
    let msg = |n| {
        PexMessage {
            added: vec![(addr(n), PexFlags(PexFlags::SEED))],
            dropped: vec![addr(99)],
        }
        .encode()
    };
    their_pex(&mut t, at(0), a, &msg(10)).unwrap();
    assert_eq!(learned(&mut t), vec![vec![addr(10)]]);
    their_pex(&mut t, at(10), a, &msg(11)).unwrap();
    their_pex(&mut t, at(44), a, &msg(12)).unwrap();
    assert!(learned(&mut t).is_empty());
    assert_eq!(t.pex_ignored(a), 2);
    assert_eq!(t.peer_count(), 1, "still connected");
    their_pex(&mut t, at(45), a, &msg(13)).unwrap();
    assert_eq!(learned(&mut t), vec![vec![addr(13)]]);
}

#[test]
fn hostile_messages_cost_a_bounded_scan_and_only_broken_bencode_drops() {
    let mut t = torrent(SessionConfig::default());
    let a = join(&mut t, at(0), 1, true);
    // Ten thousand addresses: cut at the codec's bound.
    let flood = PexMessage {
        added: (0..10_000).map(|n| (addr(100 + n), PexFlags(0))).collect(),
        dropped: (0..10_000).map(addr).collect(),
    };
    their_pex(&mut t, at(0), a, &flood.encode()).unwrap();
    let got = learned(&mut t);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len(), DECODE_ADDED_MAX);
    // Garbage types, port 0, multicast and unspecified addresses: nothing learned, kept.
    let mut now = 0;
    for payload in [
        &b"d5:addedi5e7:dropped3:abce"[..],
        b"li1ei2ee",
        b"d5:added6:\x0a\x00\x00\x01\x00\x00e",
        b"d5:added6:\xe0\x00\x00\x01\x1a\xe1e",
        b"d5:added6:\x00\x00\x00\x00\x1a\xe1e",
    ] {
        now += 60;
        their_pex(&mut t, at(now), a, payload).unwrap();
        assert!(learned(&mut t).is_empty(), "{payload:?}");
    }
    assert_eq!(t.peer_count(), 1);
    // Not bencode: the peer is dropped with a reason.
    let err = their_pex(&mut t, at(now + 60), a, b"d5:added").unwrap_err();
    assert!(matches!(err, DropReason::BadPexMessage(_)), "{err}");
    assert_eq!(t.peer_count(), 0);
}
