//! The Fast extension's sets in a session (BEP 6): what a choked peer may fetch from us,
//! what we fetch from a peer that chokes us, and suggestions, each on virtual time.

use std::net::SocketAddr;
use std::time::Duration;

use super::fast::{allowed_fast_set, ALLOWED_FAST_SET_SIZE, CHOKED_PIECES_BUDGET};
use super::*;
use crate::metainfo::{LayoutFile, TorrentPath};
use crate::wire::decode_message;

const FAST: PeerCaps = PeerCaps {
    dht_port: None,
    fast: true,
    extensions: false,
    outgoing: false,
};
const PIECES: u64 = 64;
const HASH: crate::InfoHash = Sha1Digest([0x5a; 20]);

fn peer_addr() -> SocketAddr {
    SocketAddr::from(([10, 1, 2, 3], 6881))
}

/// A torrent of 64 pieces of one block each, seeding or empty, that knows its info hash.
fn torrent(seed: bool) -> Torrent {
    let file = LayoutFile {
        path: TorrentPath::new([b"f".as_slice()]).unwrap(),
        length: u64::from(BLOCK_LEN) * PIECES,
        pad: false,
    };
    let layout = Layout::new(BLOCK_LEN, [file]).unwrap();
    let have = if seed {
        Bitfield::full(layout.piece_count())
    } else {
        Bitfield::empty(layout.piece_count())
    };
    let mut t = Torrent::new(layout, &have, SessionConfig::default(), 3);
    t.set_info_hash(HASH);
    t
}

fn block(piece: u32) -> BlockRef {
    BlockRef {
        piece,
        offset: 0,
        len: BLOCK_LEN,
    }
}

#[track_caller]
fn send(t: &mut Torrent, key: PeerKey, msg: Message<'_>) {
    t.on_message(Duration::ZERO, key, &msg).unwrap();
}

/// What the torrent queued for the peer since the last call, as messages.
fn sent(t: &mut Torrent, key: PeerKey) -> Vec<String> {
    let mut out = Vec::new();
    t.take_outbox(key, &mut out);
    let mut msgs = Vec::new();
    let mut rest = out.as_slice();
    while let Ok(Some((m, used))) = decode_message(rest, 1 << 20) {
        msgs.push(format!("{m:?}"));
        rest = &rest[used..];
    }
    msgs
}

fn the_set() -> Vec<u32> {
    allowed_fast_set(
        peer_addr().ip(),
        &HASH,
        PIECES as u32,
        ALLOWED_FAST_SET_SIZE,
    )
}

#[test]
fn a_newcomer_gets_its_allowed_set_and_is_served_it_while_choked() {
    let mut t = torrent(true);
    let key = t.add_peer(Duration::ZERO, peer_addr(), FAST).unwrap();
    sent(&mut t, key);
    send(&mut t, key, Message::HaveNone);
    let set = the_set();
    let expected: Vec<String> = set
        .iter()
        .map(|&p| format!("{:?}", Message::AllowedFast(p)))
        .collect();
    assert_eq!(sent(&mut t, key), expected);

    // Choked: a request in the set is served, one outside it refused.
    let outside = (0..PIECES as u32).find(|p| !set.contains(p)).unwrap();
    send(&mut t, key, Message::Request(block(outside)));
    send(&mut t, key, Message::Request(block(set[0])));
    assert_eq!(
        sent(&mut t, key),
        [format!("{:?}", Message::RejectRequest(block(outside)))]
    );
    assert_eq!(t.next_serve(key), Some(block(set[0])));
    assert_eq!(t.next_serve(key), None);
}

#[test]
fn a_choked_peer_fetches_its_set_only_up_to_the_budget() {
    let mut t = torrent(true);
    let key = t.add_peer(Duration::ZERO, peer_addr(), FAST).unwrap();
    send(&mut t, key, Message::HaveNone);
    sent(&mut t, key);
    let piece = the_set()[0];
    let budget = CHOKED_PIECES_BUDGET as usize * ALLOWED_FAST_SET_SIZE;
    for _ in 0..budget {
        send(&mut t, key, Message::Request(block(piece)));
        assert_eq!(t.next_serve(key), Some(block(piece)));
    }
    send(&mut t, key, Message::Request(block(piece)));
    assert_eq!(t.next_serve(key), None);
    assert_eq!(
        sent(&mut t, key),
        [format!("{:?}", Message::RejectRequest(block(piece)))]
    );
}

/// The budget belongs to the host, not the connection: reconnecting (the load
/// generator's request flood did, tens of thousands of times) does not buy it a fresh one.
/// Unchoking one of its peers starts it again.
#[test]
fn a_host_that_reconnects_carries_on_with_its_spent_budget() {
    let mut t = torrent(true);
    let piece = the_set()[0];
    let budget = CHOKED_PIECES_BUDGET as usize * ALLOWED_FAST_SET_SIZE;
    let mut served = 0;
    for port in 0..budget as u16 {
        // Another connection from the same /24 each time.
        let addr = SocketAddr::from(([10, 1, 2, (port % 250) as u8], 40_000 + port));
        let key = t.add_peer(Duration::ZERO, addr, FAST).unwrap();
        send(&mut t, key, Message::HaveNone);
        for _ in 0..2 {
            send(&mut t, key, Message::Request(block(piece)));
        }
        while t.next_serve(key).is_some() {
            served += 1;
        }
        t.check_invariants();
        t.remove_peer(key);
    }
    assert_eq!(
        served, budget,
        "blocks served to one host's connections while choked"
    );
    // Another /24 has its own.
    let key = t
        .add_peer(Duration::ZERO, SocketAddr::from(([10, 1, 3, 1], 1)), FAST)
        .unwrap();
    send(&mut t, key, Message::HaveNone);
    let theirs = allowed_fast_set(
        [10, 1, 3, 1].into(),
        &HASH,
        PIECES as u32,
        ALLOWED_FAST_SET_SIZE,
    );
    send(&mut t, key, Message::Request(block(theirs[0])));
    assert_eq!(t.next_serve(key), Some(block(theirs[0])));
}

#[test]
fn a_peer_with_pieces_or_without_fast_gets_no_set() {
    let mut t = torrent(true);
    let key = t.add_peer(Duration::ZERO, peer_addr(), FAST).unwrap();
    sent(&mut t, key);
    let mut bits = Bitfield::empty(PIECES as u32);
    for p in 0..ALLOWED_FAST_SET_SIZE as u32 {
        bits.set(p);
    }
    send(&mut t, key, Message::Bitfield(bits.as_bytes()));
    assert!(sent(&mut t, key).is_empty());

    let plain = PeerCaps {
        dht_port: None,
        fast: false,
        extensions: false,
        outgoing: false,
    };
    let other = SocketAddr::from(([10, 9, 9, 9], 6881));
    let key = t.add_peer(Duration::ZERO, other, plain).unwrap();
    sent(&mut t, key);
    send(&mut t, key, Message::Bitfield(&[0; 8]));
    assert!(sent(&mut t, key).is_empty());
}

#[test]
fn while_a_peer_chokes_us_we_fetch_what_it_allows_and_nothing_else() {
    let mut t = torrent(false);
    let key = t.add_peer(Duration::ZERO, peer_addr(), FAST).unwrap();
    sent(&mut t, key);
    send(&mut t, key, Message::HaveAll);
    assert_eq!(sent(&mut t, key), [format!("{:?}", Message::Interested)]);
    // Junk and out-of-range pieces cost nothing.
    send(&mut t, key, Message::AllowedFast(u32::MAX));
    send(&mut t, key, Message::AllowedFast(PIECES as u32));
    assert!(sent(&mut t, key).is_empty());
    send(&mut t, key, Message::AllowedFast(17));
    assert_eq!(
        sent(&mut t, key),
        [format!("{:?}", Message::Request(block(17)))]
    );
    for p in 0..1000 {
        send(&mut t, key, Message::AllowedFast(p % PIECES as u32));
    }
    assert!(t.peers[&key].fast_sets.allowed_in.len() <= super::fast::ALLOWED_IN_MAX);
}

#[test]
fn suggested_pieces_are_fetched_first() {
    let mut t = torrent(false);
    let key = t.add_peer(Duration::ZERO, peer_addr(), FAST).unwrap();
    sent(&mut t, key);
    send(&mut t, key, Message::HaveAll);
    send(&mut t, key, Message::SuggestPiece(40));
    send(&mut t, key, Message::SuggestPiece(41));
    sent(&mut t, key);
    send(&mut t, key, Message::Unchoke);
    let requests = sent(&mut t, key);
    assert_eq!(
        requests[..2],
        [
            format!("{:?}", Message::Request(block(40))),
            format!("{:?}", Message::Request(block(41)))
        ]
    );
    assert!(requests.len() > 2, "then the picker's own choice");
}
