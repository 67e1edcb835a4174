//! What a hostile peer can make one torrent hold or compute: each test drives the session
//! on virtual time with messages a peer chose, and checks a bound rather than a duration.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::metainfo::{LayoutFile, TorrentPath};

const FAST: PeerCaps = PeerCaps {
    dht_port: None,
    fast: true,
    extensions: false,
    outgoing: false,
};

fn layout(piece_len: u32, pieces: u64) -> Layout {
    let file = LayoutFile {
        path: TorrentPath::new([b"f".as_slice()]).unwrap(),
        length: u64::from(piece_len) * pieces,
        pad: false,
    };
    Layout::new(piece_len, [file]).unwrap()
}

fn addr(n: u32) -> SocketAddr {
    SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + n), 6881))
}

/// A torrent with every piece (a seed) or none, of `pieces` 16 KiB pieces.
fn torrent(pieces: u64, seed: bool, config: SessionConfig) -> Torrent {
    let layout = layout(BLOCK_LEN, pieces);
    let have = if seed {
        Bitfield::full(layout.piece_count())
    } else {
        Bitfield::empty(layout.piece_count())
    };
    Torrent::new(layout, &have, config, 7)
}

fn block(piece: u32) -> BlockRef {
    BlockRef {
        piece,
        offset: 0,
        len: BLOCK_LEN,
    }
}

/// Hands the torrent one hostile message, then requires every bound and index to hold.
#[track_caller]
fn send(t: &mut Torrent, key: PeerKey, msg: Message<'_>) -> Result<Incoming, DropReason> {
    let incoming = t.on_message(Duration::ZERO, key, &msg);
    t.check_invariants();
    incoming
}

/// Under Fast, every request past a full queue is refused with a reject: a peer that
/// never reads them must be dropped once its outbox passes its bound, not grow it.
#[test]
fn rejects_for_a_peer_that_never_reads_stay_bounded() {
    let config = SessionConfig {
        max_queued_requests: 4,
        ..SessionConfig::default()
    };
    let max = config.outbox_max_bytes;
    let mut t = torrent(64, true, config);
    let key = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    send(&mut t, key, Message::Interested).unwrap();
    let mut dropped = None;
    for i in 0..100_000u32 {
        match send(&mut t, key, Message::Request(block(i % 64))) {
            Ok(_) => {}
            Err(reason) => {
                dropped = Some(reason);
                break;
            }
        }
        assert!(t.peers[&key].outbox.len() <= max + 64 / 8 + 17);
    }
    assert!(
        matches!(dropped, Some(DropReason::NotReading(_))),
        "{dropped:?}"
    );
    assert_eq!(t.peer_count(), 0);
}

/// A peer that takes its outbox is never dropped for it.
#[test]
fn a_peer_that_reads_its_rejects_stays() {
    let config = SessionConfig {
        max_queued_requests: 4,
        ..SessionConfig::default()
    };
    let mut t = torrent(64, true, config);
    let key = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    send(&mut t, key, Message::Interested).unwrap();
    let mut out = Vec::new();
    for i in 0..100_000u32 {
        send(&mut t, key, Message::Request(block(i % 64))).unwrap();
        out.clear();
        t.take_outbox(key, &mut out);
    }
    t.tick(Duration::from_secs(1));
    assert_eq!(t.peer_count(), 1);
}

/// HAVE ALL after other piece news walks the pieces once; repeating it costs nothing.
#[test]
fn a_repeated_have_all_does_not_walk_every_piece_again() {
    let pieces: u32 = 1 << 18;
    let mut t = torrent(u64::from(pieces), false, SessionConfig::default());
    let key = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    send(&mut t, key, Message::Have(0)).unwrap();
    for _ in 0..100 {
        send(&mut t, key, Message::HaveAll).unwrap();
    }
    assert!(t.peers[&key].has.is_full());
    assert!(
        t.steps() <= u64::from(pieces) + 100,
        "100 HAVE ALLs cost {} steps for {pieces} pieces",
        t.steps()
    );
}

/// CANCEL finds its request without scanning the peer's whole queue, and the queue still
/// serves what was not cancelled, in order.
#[test]
fn cancel_does_not_scan_the_request_queue() {
    let mut t = torrent(4096, true, SessionConfig::default());
    let key = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    send(&mut t, key, Message::Interested).unwrap();
    let queued = SessionConfig::default().max_queued_requests as u32;
    for piece in 0..queued {
        send(&mut t, key, Message::Request(block(piece))).unwrap();
    }
    let before = t.steps();
    // Cancel every odd request, last first: the worst order for a scan from the front.
    for piece in (0..queued).rev().filter(|p| p % 2 == 1) {
        send(&mut t, key, Message::Cancel(block(piece))).unwrap();
    }
    let cancels = u64::from(queued / 2);
    assert!(
        t.steps() - before <= 4 * cancels,
        "{cancels} cancels cost {} steps",
        t.steps() - before
    );
    let mut served = Vec::new();
    while let Some(b) = t.next_serve(key) {
        served.push(b.piece);
    }
    let even: Vec<u32> = (0..queued).filter(|p| p % 2 == 0).collect();
    assert_eq!(served, even);
}

/// Requests and cancels of the same block, over and over: the queue's memory stays
/// within its bound and the peer is still served.
#[test]
fn request_and_cancel_spam_keeps_the_queue_bounded() {
    let config = SessionConfig::default();
    let max = config.max_queued_requests;
    let mut t = torrent(64, true, config);
    let key = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    send(&mut t, key, Message::Interested).unwrap();
    let mut out = Vec::new();
    for i in 0..50_000u32 {
        send(&mut t, key, Message::Request(block(i % 64))).unwrap();
        send(&mut t, key, Message::Cancel(block(i % 64))).unwrap();
        assert!(t.peers[&key].queued.slots() <= max);
        out.clear();
        t.take_outbox(key, &mut out);
    }
    send(&mut t, key, Message::Request(block(5))).unwrap();
    assert_eq!(t.next_serve(key), Some(block(5)));
    assert_eq!(t.next_serve(key), None);
}

/// Peer keys wrap after 2^32 connections: the next key skips any still in use instead of
/// overwriting that live peer.
#[test]
fn a_wrapped_peer_key_never_overwrites_a_live_peer() {
    let mut t = torrent(64, false, SessionConfig::default());
    let first = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    let second = t.add_peer(Duration::ZERO, addr(2), FAST).unwrap();
    t.next_key = PeerKey::MAX;
    let last = t.add_peer(Duration::ZERO, addr(3), FAST).unwrap();
    let wrapped = t.add_peer(Duration::ZERO, addr(4), FAST).unwrap();
    assert_eq!(t.peer_count(), 4, "a live peer was overwritten");
    let keys = [first, second, last, wrapped];
    for (i, k) in keys.iter().enumerate() {
        assert!(!keys[..i].contains(k), "key {k} given twice: {keys:?}");
        assert_eq!(t.peers[k].addr, addr(i as u32 + 1));
    }
}

/// Keep-alives alone do not hold a slot for ever: when neither side is interested for
/// the idle policy's time, the peer is dropped; an interested one stays.
#[test]
fn a_peer_that_only_sends_keep_alives_is_dropped() {
    let config = SessionConfig::default();
    let limit = config.uninterested_timeout;
    let mut t = torrent(64, true, config);
    let idle = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    let keen = t.add_peer(Duration::ZERO, addr(2), FAST).unwrap();
    send(&mut t, idle, Message::HaveNone).unwrap();
    send(&mut t, keen, Message::HaveNone).unwrap();
    send(&mut t, keen, Message::Interested).unwrap();
    let mut now = Duration::ZERO;
    let mut out = Vec::new();
    while now <= limit + Duration::from_secs(120) {
        now += Duration::from_secs(30);
        for key in [idle, keen] {
            t.on_message(now, key, &Message::KeepAlive).ok();
            out.clear();
            t.take_outbox(key, &mut out);
        }
        t.tick(now);
    }
    let mut reasons = Vec::new();
    while let Some(action) = t.poll_action() {
        if let Action::Disconnect(key, why) = action {
            reasons.push((key, why));
        }
    }
    assert_eq!(
        reasons,
        vec![(idle, DropReason::Uninterested(limit))],
        "only the peer interested in nothing goes"
    );
    assert_eq!(t.peer_count(), 1);
}

/// The requests the torrent wrote to `key` since the last call.
fn requests_in_outbox(t: &mut Torrent, key: PeerKey) -> Vec<BlockRef> {
    let mut out = Vec::new();
    t.take_outbox(key, &mut out);
    let max = crate::wire::max_message_len(t.layout().piece_count());
    let mut rest = &out[..];
    let mut found = Vec::new();
    while let Ok(Some((msg, used))) = crate::wire::decode_message(rest, max) {
        if let Message::Request(block) = msg {
            found.push(block);
        }
        rest = &rest[used..];
    }
    found
}

/// A peer that claims every piece, unchokes us and never answers a request would hold
/// its slot for ever with keep-alives (the swarm simulator found leechers stuck beside
/// one). It is dropped once it has delivered nothing for `snubbed_timeout`; a slow peer
/// that lets requests time out but delivers now and then stays.
#[test]
fn a_peer_that_claims_pieces_and_never_serves_them_is_dropped() {
    let config = SessionConfig::default();
    let limit = config.snubbed_timeout;
    let mut t = torrent(64, false, config);
    let liar = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    let slow = t.add_peer(Duration::ZERO, addr(2), FAST).unwrap();
    for key in [liar, slow] {
        send(&mut t, key, Message::HaveAll).unwrap();
        send(&mut t, key, Message::Unchoke).unwrap();
    }
    let mut now = Duration::ZERO;
    let mut asked = Vec::new();
    let mut liar_dropped_at = None;
    while now < limit * 4 {
        now += Duration::from_secs(5);
        for key in [liar, slow] {
            t.on_message(now, key, &Message::KeepAlive).ok();
        }
        requests_in_outbox(&mut t, liar);
        asked.extend(requests_in_outbox(&mut t, slow));
        // The slow peer answers its oldest request once a minute: every request of it
        // times out (20 s), but it delivers.
        if now.as_secs() % 60 == 0 && !asked.is_empty() {
            let block = asked.remove(0);
            let data = vec![0u8; block.len as usize];
            let msg = Message::Piece {
                piece: block.piece,
                offset: block.offset,
                data: &data,
            };
            if let Ok(Incoming::Block { piece_complete }) = t.on_message(now, slow, &msg) {
                if piece_complete {
                    t.piece_checked(now, block.piece, true, &[]);
                }
            }
        }
        t.tick(now);
        t.check_invariants();
        while let Some(action) = t.poll_action() {
            if let Action::Disconnect(key, why) = action {
                assert_eq!(key, liar, "only the liar goes, not the slow peer ({why})");
                assert!(matches!(why, DropReason::Snubbing(d) if d > limit), "{why}");
                liar_dropped_at.get_or_insert(now);
            }
        }
    }
    let at = liar_dropped_at.expect("the peer that never serves was dropped");
    assert!(
        at <= limit + Duration::from_secs(60),
        "dropped at {at:?}: its first request timed out after 20 s, then {limit:?}"
    );
    assert_eq!(t.peer_count(), 1);
    assert!(t.stats(now).downloaded > 0, "the slow peer delivered");
}

/// Peers that fill a torrent and then only wait would lock every newcomer out (the flood
/// mode of the load generator found a seeder whose 80 slots were held by peers that never
/// read, while real leechers were refused for as long as it ran). A newcomer replaces the
/// peer idle longest once that one has moved nothing for `replace_idle_after`; a peer
/// moving blocks is never replaced, and before the idle time nobody is.
#[test]
fn a_full_torrent_replaces_its_longest_idle_peer_with_a_newcomer() {
    let config = SessionConfig {
        max_peers: 3,
        ..SessionConfig::default()
    };
    let after = config.replace_idle_after;
    let mut t = torrent(64, true, config);
    let waiting = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    let busy = t.add_peer(Duration::ZERO, addr(2), FAST).unwrap();
    let later = t.add_peer(Duration::from_secs(5), addr(3), FAST).unwrap();
    for key in [waiting, busy, later] {
        send(&mut t, key, Message::HaveNone).unwrap();
        send(&mut t, key, Message::Interested).unwrap();
    }
    assert!(matches!(
        t.add_peer(after / 2, addr(4), FAST),
        Err(DropReason::TooManyPeers(3))
    ));
    // `busy` takes blocks all along.
    let mut now = Duration::ZERO;
    while now < after + Duration::from_secs(10) {
        now += Duration::from_secs(1);
        t.on_block_sent(now, busy, BLOCK_LEN);
    }
    let newcomer = t.add_peer(now, addr(4), FAST).unwrap();
    t.check_invariants();
    let mut dropped = Vec::new();
    while let Some(action) = t.poll_action() {
        if let Action::Disconnect(key, why) = action {
            dropped.push((key, why));
        }
    }
    assert_eq!(dropped, vec![(waiting, DropReason::Replaced(now))]);
    // The next newcomer takes the slot of `later`, idle since 5 s; never `busy`'s.
    t.add_peer(now, addr(5), FAST).unwrap();
    assert!(matches!(
        t.poll_action(),
        Some(Action::Disconnect(k, DropReason::Replaced(_))) if k == later
    ));
    // The newcomers have moved nothing for less than the idle time: the torrent is full.
    assert!(matches!(
        t.add_peer(now, addr(6), FAST),
        Err(DropReason::TooManyPeers(3))
    ));
    assert_eq!(t.peer_count(), 3);
    let _ = newcomer;
}

/// A peer that asks for blocks before we ever unchoked it, outside its allowed-fast set,
/// and then only waits (as the flood's never-readers do) gives way to a newcomer after
/// `replace_suspect_after`, ahead of peers that wait as the protocol asks, which keep
/// the longer `replace_idle_after`. Requests that cross our choke after an unchoke are
/// the wire's doing and do not count.
#[test]
fn a_peer_with_unbidden_requests_gives_way_first_and_sooner() {
    // One upload slot, which `polite` takes: the other two stay choked.
    let config = SessionConfig {
        max_peers: 3,
        choker: crate::choker::ChokerConfig {
            upload_slots: 1,
            ..Default::default()
        },
        ..SessionConfig::default()
    };
    let (soon, later) = (config.replace_suspect_after, config.replace_idle_after);
    assert!(soon < later);
    let mut t = torrent(64, true, config);
    let polite = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    let pushy = t.add_peer(Duration::from_secs(1), addr(2), FAST).unwrap();
    let raced = t.add_peer(Duration::ZERO, addr(3), FAST).unwrap();
    for key in [polite, pushy, raced] {
        send(&mut t, key, Message::HaveNone).unwrap();
        send(&mut t, key, Message::Interested).unwrap();
    }
    let outside_allowed = (0..64)
        .find(|&p| !t.peers[&pushy].fast_sets.allows_out(p))
        .unwrap();
    let request = || {
        Message::Request(BlockRef {
            piece: outside_allowed,
            offset: 0,
            len: BLOCK_LEN,
        })
    };
    send(&mut t, pushy, request()).unwrap();
    // `raced` was unchoked once: its requests after our choke are the wire's doing.
    t.peers.get_mut(&raced).unwrap().ever_unchoked = true;
    send(&mut t, raced, request()).unwrap();
    while t.poll_action().is_some() {}
    assert!(!t.peers[&polite].am_choking && t.peers[&pushy].am_choking);
    assert!(t.peers[&pushy].unbidden_requests);
    assert!(!t.peers[&raced].unbidden_requests);

    let at = Duration::from_secs(1) + soon;
    assert!(matches!(
        t.add_peer(at - Duration::from_millis(1), addr(4), FAST),
        Err(DropReason::TooManyPeers(3))
    ));
    t.add_peer(at, addr(4), FAST).unwrap();
    let mut dropped = Vec::new();
    while let Some(action) = t.poll_action() {
        if let Action::Disconnect(key, why) = action {
            dropped.push((key, why));
        }
    }
    assert_eq!(dropped, vec![(pushy, DropReason::Replaced(soon))]);
    // The polite peers keep their slots until `replace_idle_after`.
    assert!(matches!(
        t.add_peer(later - Duration::from_millis(1), addr(5), FAST),
        Err(DropReason::TooManyPeers(3))
    ));
}

/// A peer that says it is interested and then asks for nothing when unchoked (a squatter)
/// would hold a seeding torrent's upload slot for a whole turn while a leecher waits: its
/// unchoke passes to the leecher after `unchoke_unused_after`, and it ranks last until it
/// uses an unchoke.
#[test]
fn an_unchoke_left_unused_goes_to_a_peer_that_waits() {
    let config = SessionConfig {
        choker: crate::choker::ChokerConfig {
            upload_slots: 1,
            ..Default::default()
        },
        ..SessionConfig::default()
    };
    let unused = config.unchoke_unused_after;
    let mut t = torrent(64, true, config);
    let squatter = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    let leecher = t.add_peer(Duration::ZERO, addr(2), FAST).unwrap();
    for key in [squatter, leecher] {
        send(&mut t, key, Message::HaveNone).unwrap();
        send(&mut t, key, Message::Interested).unwrap();
    }
    while t.poll_action().is_some() {}
    assert!(
        !t.peers[&squatter].am_choking,
        "the first interested peer got the slot"
    );
    assert!(t.peers[&leecher].am_choking);
    assert!(t.next_tick() <= unused);
    t.tick(unused - Duration::from_millis(100));
    assert!(!t.peers[&squatter].am_choking, "not yet");
    t.tick(unused);
    assert!(t.peers[&squatter].am_choking && t.peers[&squatter].left_unchoke_unused);
    assert!(
        !t.peers[&leecher].am_choking,
        "the waiting peer has the slot"
    );
    // The leecher uses it; at the rounds that follow, the squatter stays behind it.
    let request = Message::Request(BlockRef {
        piece: 0,
        offset: 0,
        len: BLOCK_LEN,
    });
    send(&mut t, leecher, request).unwrap();
    let mut now = unused;
    for _ in 0..12 {
        now += Duration::from_secs(10);
        t.on_block_sent(now, leecher, BLOCK_LEN);
        t.tick(now);
        assert!(t.peers[&squatter].am_choking, "unchoked again at {now:?}");
        assert!(!t.peers[&leecher].am_choking);
    }
    t.check_invariants();
}

/// A peer that left an unchoke unused is a suspect: a full torrent gives its slot to a
/// newcomer after `replace_suspect_after`, not `replace_idle_after`.
#[test]
fn a_squatter_on_an_unchoke_gives_way_to_a_newcomer_sooner() {
    let config = SessionConfig {
        max_peers: 2,
        ..SessionConfig::default()
    };
    let (unused, soon) = (config.unchoke_unused_after, config.replace_suspect_after);
    let mut t = torrent(64, true, config);
    let squatter = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    let waiting = t.add_peer(Duration::ZERO, addr(2), FAST).unwrap();
    send(&mut t, squatter, Message::HaveNone).unwrap();
    send(&mut t, squatter, Message::Interested).unwrap();
    send(&mut t, waiting, Message::HaveNone).unwrap();
    t.tick(unused);
    assert!(t.peers[&squatter].is_suspect() && !t.peers[&waiting].is_suspect());
    while t.poll_action().is_some() {}
    t.add_peer(soon, addr(3), FAST).unwrap();
    assert!(matches!(
        t.poll_action(),
        Some(Action::Disconnect(k, DropReason::Replaced(_))) if k == squatter
    ));
}

/// Blocks nobody asked for do not keep a squatter from being replaced.
#[test]
fn unrequested_blocks_do_not_keep_a_peer_from_being_replaced() {
    let config = SessionConfig {
        max_peers: 1,
        ..SessionConfig::default()
    };
    let after = config.replace_idle_after;
    let mut t = torrent(64, true, config);
    let squatter = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    send(&mut t, squatter, Message::HaveNone).unwrap();
    let data = vec![0u8; BLOCK_LEN as usize];
    let now = after + Duration::from_secs(1);
    let unasked = Message::Piece {
        piece: 0,
        offset: 0,
        data: &data,
    };
    t.on_message(now, squatter, &unasked).unwrap();
    while t.poll_action().is_some() {}
    t.add_peer(now, addr(2), FAST).unwrap();
    assert!(matches!(
        t.poll_action(),
        Some(Action::Disconnect(k, DropReason::Replaced(_))) if k == squatter
    ));
}

/// Requests that cross our choke on the wire (a deep pipeline answers every block that was
/// in the socket buffer ahead of the choke) are refused but do not drop the peer; past
/// `choke_grace`, the allowance holds again.
#[test]
fn requests_crossing_a_choke_do_not_drop_a_deep_pipeline() {
    let config = SessionConfig {
        choker: crate::choker::ChokerConfig {
            upload_slots: 1,
            ..Default::default()
        },
        ..SessionConfig::default()
    };
    let (unused, grace) = (config.unchoke_unused_after, config.choke_grace);
    let allowance = config.choked_request_allowance;
    let mut t = torrent(64, true, config);
    let peer = t.add_peer(Duration::ZERO, addr(1), FAST).unwrap();
    let other = t.add_peer(Duration::ZERO, addr(2), FAST).unwrap();
    for key in [peer, other] {
        send(&mut t, key, Message::HaveNone).unwrap();
        send(&mut t, key, Message::Interested).unwrap();
    }
    assert!(!t.peers[&peer].am_choking);
    // Choked (for leaving its unchoke unused; a rotation would do the same).
    t.tick(unused);
    assert!(t.peers[&peer].am_choking);
    let mut at = unused;
    for i in 0..500 {
        at = unused + grace * i / 600;
        let msg = Message::Request(block(i % 64));
        assert!(
            t.on_message(at, peer, &msg).is_ok(),
            "request {i} at {at:?}"
        );
        while t.poll_action().is_some() {}
        let mut out = Vec::new();
        t.take_outbox(peer, &mut out);
    }
    assert!(at < unused + grace);
    let after = unused + grace;
    for i in 0..allowance {
        let msg = Message::Request(block(i));
        t.on_message(after, peer, &msg).unwrap();
    }
    assert_eq!(
        t.on_message(after, peer, &Message::Request(block(0))),
        Err(DropReason::RequestsWhileChoked)
    );
    t.check_invariants();
}
