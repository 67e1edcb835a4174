//! Whole swarms in one thread: torrents exchange encoded bytes through in-memory pipes.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use super::*;
use crate::hash::Sha1;
use crate::metainfo::{LayoutFile, TorrentPath};
use crate::wire::decode_message;

const PIECE: u32 = 64 * 1024;
const CAPS: PeerCaps = PeerCaps {
    dht_port: None,
    fast: true,
    extensions: true,
    outgoing: false,
};

fn layout(total: u64) -> Layout {
    let file = LayoutFile {
        path: TorrentPath::new([b"f".as_slice()]).unwrap(),
        length: total,
        pad: false,
    };
    Layout::new(PIECE, [file]).unwrap()
}

fn content(total: u64) -> Vec<u8> {
    (0..total).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// One simulated client: its torrent, its copy of the data, and its piece buffers.
struct Node {
    torrent: Torrent,
    data: Vec<u8>,
    /// Pieces whose blocks this node corrupts when serving.
    corrupt: Vec<u32>,
    done: bool,
}

/// A connection: (node, key) at each end, plus bytes in flight each way.
struct Link {
    ends: [(usize, PeerKey); 2],
    inbox: [Vec<u8>; 2],
    closed: bool,
}

struct Swarm {
    nodes: Vec<Node>,
    links: Vec<Link>,
    hashes: Vec<[u8; 20]>,
    now: Duration,
    drops: Vec<(usize, DropReason)>,
}

impl Swarm {
    fn new(total: u64, seeders: usize, leechers: usize) -> Swarm {
        let layout = layout(total);
        let data = content(total);
        let hashes = data
            .chunks(PIECE as usize)
            .map(|c| *Sha1::digest(c).as_bytes())
            .collect();
        let mut nodes = Vec::new();
        for i in 0..seeders + leechers {
            let seeder = i < seeders;
            let have = if seeder {
                Bitfield::full(layout.piece_count())
            } else {
                Bitfield::empty(layout.piece_count())
            };
            nodes.push(Node {
                torrent: Torrent::new(layout.clone(), &have, SessionConfig::default(), i as u64),
                data: if seeder {
                    data.clone()
                } else {
                    vec![0; total as usize]
                },
                corrupt: Vec::new(),
                done: seeder,
            });
        }
        Swarm {
            nodes,
            links: Vec::new(),
            hashes,
            now: Duration::ZERO,
            drops: Vec::new(),
        }
    }

    fn connect(&mut self, a: usize, b: usize) {
        let addr = |n: usize| SocketAddr::from((Ipv4Addr::new(10, 0, 0, n as u8 + 1), 6881));
        let ka = self.nodes[a]
            .torrent
            .add_peer(self.now, addr(b), CAPS)
            .unwrap();
        let kb = self.nodes[b]
            .torrent
            .add_peer(self.now, addr(a), CAPS)
            .unwrap();
        self.links.push(Link {
            ends: [(a, ka), (b, kb)],
            inbox: [Vec::new(), Vec::new()],
            closed: false,
        });
    }

    fn link_of(&self, node: usize, key: PeerKey) -> Option<(usize, usize)> {
        self.links.iter().enumerate().find_map(|(i, l)| {
            l.ends
                .iter()
                .position(|&e| e == (node, key))
                .filter(|_| !l.closed)
                .map(|side| (i, side))
        })
    }

    /// Moves every pending action and byte once; returns whether anything happened.
    fn step(&mut self) -> bool {
        let mut busy = false;
        for n in 0..self.nodes.len() {
            while let Some(action) = self.nodes[n].torrent.poll_action() {
                busy = true;
                match action {
                    Action::Wake(key) => self.flush(n, key),
                    Action::Disconnect(key, reason) => {
                        self.drops.push((n, reason));
                        if let Some((l, side)) = self.link_of(n, key) {
                            self.links[l].closed = true;
                            let (other, okey) = self.links[l].ends[1 - side];
                            self.nodes[other].torrent.remove_peer(okey);
                        }
                    }
                    Action::Done => self.nodes[n].done = true,
                    Action::PexPeers(_) => {}
                }
            }
        }
        for l in 0..self.links.len() {
            for side in 0..2 {
                if self.links[l].closed || self.links[l].inbox[side].is_empty() {
                    continue;
                }
                busy = true;
                let bytes = std::mem::take(&mut self.links[l].inbox[side]);
                self.deliver(l, side, &bytes);
                let (n, _) = self.links[l].ends[side];
                self.nodes[n].torrent.check_invariants();
            }
        }
        busy
    }

    fn flush(&mut self, n: usize, key: PeerKey) {
        let Some((l, side)) = self.link_of(n, key) else {
            return;
        };
        let mut out = Vec::new();
        self.nodes[n].torrent.take_outbox(key, &mut out);
        while let Some(block) = self.nodes[n].torrent.next_serve(key) {
            let node = &self.nodes[n];
            let start = u64::from(block.piece) * u64::from(PIECE) + u64::from(block.offset);
            let mut data = node.data[start as usize..][..block.len as usize].to_vec();
            if node.corrupt.contains(&block.piece) {
                data[0] ^= 0xff;
            }
            Message::Piece {
                piece: block.piece,
                offset: block.offset,
                data: &data,
            }
            .encode(&mut out);
            let now = self.now;
            self.nodes[n].torrent.on_block_sent(now, key, block.len);
        }
        self.links[l].inbox[1 - side].extend_from_slice(&out);
    }

    fn deliver(&mut self, l: usize, side: usize, bytes: &[u8]) {
        let (n, key) = self.links[l].ends[side];
        let max = crate::wire::max_message_len(self.nodes[n].torrent.layout().piece_count());
        let mut rest = bytes;
        while let Ok(Some((msg, used))) = decode_message(rest, max) {
            rest = &rest[used..];
            let now = self.now;
            match self.nodes[n].torrent.on_message(now, key, &msg) {
                Ok(Incoming::Block { piece_complete }) => {
                    let Message::Piece {
                        piece,
                        offset,
                        data,
                    } = msg
                    else {
                        unreachable!()
                    };
                    let start = piece as usize * PIECE as usize + offset as usize;
                    self.nodes[n].data[start..][..data.len()].copy_from_slice(data);
                    if piece_complete {
                        let len = self.nodes[n]
                            .torrent
                            .layout()
                            .piece_len(self.nodes[n].torrent.layout().piece(piece).unwrap())
                            as usize;
                        let start = piece as usize * PIECE as usize;
                        let data = &self.nodes[n].data[start..][..len];
                        let ok = Sha1::digest(data).as_bytes() == &self.hashes[piece as usize];
                        let digests = if self.nodes[n].torrent.wants_block_digests(piece, ok) {
                            block_digests(data)
                        } else {
                            Vec::new()
                        };
                        self.nodes[n]
                            .torrent
                            .piece_checked(now, piece, ok, &digests);
                    }
                }
                Ok(Incoming::Nothing) => {}
                Err(_) => return,
            }
        }
        assert!(rest.is_empty(), "whole messages only");
    }

    /// Runs until every node is done or `limit` simulated seconds pass.
    fn run(&mut self, limit: u64) -> bool {
        for _ in 0..limit * 10 {
            while self.step() {}
            if self.nodes.iter().all(|n| n.done) {
                return true;
            }
            self.now += Duration::from_millis(100);
            let now = self.now;
            for node in &mut self.nodes {
                node.torrent.tick(now);
                node.torrent.check_invariants();
            }
        }
        false
    }
}

#[test]
fn one_seeder_one_leecher_completes_with_the_right_bytes() {
    let total = 10 * u64::from(PIECE) + 1234;
    let mut swarm = Swarm::new(total, 1, 1);
    swarm.connect(0, 1);
    assert!(swarm.run(120), "download did not finish");
    assert_eq!(swarm.nodes[1].data, content(total));
    assert!(swarm.nodes[1].torrent.have().is_full());
    assert_eq!(swarm.nodes[0].torrent.stats(swarm.now).uploaded, total);
}

#[test]
fn pieces_flow_between_leechers() {
    let total = 40 * u64::from(PIECE);
    let mut swarm = Swarm::new(total, 1, 3);
    for a in 0..4 {
        for b in a + 1..4 {
            swarm.connect(a, b);
        }
    }
    assert!(swarm.run(300), "swarm did not finish");
    for n in 1..4 {
        assert_eq!(swarm.nodes[n].data, content(total), "leecher {n}");
    }
    let from_leechers: u64 = (1..4)
        .map(|n| swarm.nodes[n].torrent.stats(swarm.now).uploaded)
        .sum();
    assert!(from_leechers > 0, "leechers never uploaded to each other");
}

#[test]
fn a_peer_serving_corrupt_data_is_banned_and_the_download_completes() {
    let total = 16 * u64::from(PIECE);
    let mut swarm = Swarm::new(total, 2, 1);
    swarm.nodes[0].corrupt = (0..16).collect();
    swarm.connect(0, 2);
    swarm.connect(1, 2);
    assert!(swarm.run(300), "download did not finish");
    assert_eq!(swarm.nodes[2].data, content(total));
    assert!(swarm
        .drops
        .iter()
        .any(|(n, r)| *n == 2 && matches!(r, DropReason::HashFailures(_) | DropReason::BadData)));
    let t = &swarm.nodes[2].torrent;
    assert!(t.is_banned(SocketAddr::from((Ipv4Addr::new(10, 0, 0, 1), 9999))));
    assert!(
        !t.is_banned(SocketAddr::from((Ipv4Addr::new(10, 0, 0, 2), 9999))),
        "the honest seeder is not blamed"
    );
}

fn one_leecher_and_a_hostile_peer() -> (Torrent, PeerKey) {
    let layout = layout(4 * u64::from(PIECE));
    let mut t = Torrent::new(
        layout.clone(),
        &Bitfield::full(layout.piece_count()),
        SessionConfig::default(),
        1,
    );
    let key = t
        .add_peer(
            Duration::ZERO,
            "10.0.0.9:1".parse().unwrap(),
            PeerCaps::default(),
        )
        .unwrap();
    (t, key)
}

#[test]
fn hostile_messages_drop_only_that_peer() {
    type Expect = fn(&DropReason) -> bool;
    let cases: Vec<(Message<'static>, Expect)> = vec![
        (Message::Have(4), |r| {
            matches!(r, DropReason::PieceOutOfRange(4))
        }),
        (Message::Bitfield(&[0xff, 0xff]), |r| {
            matches!(r, DropReason::BadBitfield(_))
        }),
        (Message::Bitfield(&[0xf1]), |r| {
            matches!(r, DropReason::BadBitfield(BitfieldError::SpareBitsSet))
        }),
        (
            Message::Request(BlockRef {
                piece: 9,
                offset: 0,
                len: 16384,
            }),
            |r| matches!(r, DropReason::BadRequest(_)),
        ),
        (
            Message::Request(BlockRef {
                piece: 0,
                offset: PIECE - 1,
                len: 2,
            }),
            |r| matches!(r, DropReason::BadRequest(_)),
        ),
        (Message::HaveAll, |r| {
            matches!(r, DropReason::FastNotNegotiated)
        }),
    ];
    for (msg, expected) in cases {
        let (mut t, key) = one_leecher_and_a_hostile_peer();
        let other = t
            .add_peer(
                Duration::ZERO,
                "10.0.0.8:1".parse().unwrap(),
                PeerCaps::default(),
            )
            .unwrap();
        let err = t.on_message(Duration::ZERO, key, &msg).unwrap_err();
        assert!(expected(&err), "{msg:?} gave {err:?}");
        assert_eq!(t.peer_count(), 1, "only the hostile peer goes");
        assert!(t
            .on_message(Duration::ZERO, other, &Message::Interested)
            .is_ok());
    }
}

#[test]
fn requests_while_choked_beyond_the_allowance_drop_the_peer() {
    let (mut t, key) = one_leecher_and_a_hostile_peer();
    let block = BlockRef {
        piece: 0,
        offset: 0,
        len: 16384,
    };
    let allowance = SessionConfig::default().choked_request_allowance;
    for _ in 0..allowance {
        t.on_message(Duration::ZERO, key, &Message::Request(block))
            .unwrap();
    }
    assert_eq!(
        t.on_message(Duration::ZERO, key, &Message::Request(block)),
        Err(DropReason::RequestsWhileChoked)
    );
}

#[test]
fn an_interested_peer_is_unchoked_and_served() {
    let (mut t, key) = one_leecher_and_a_hostile_peer();
    t.on_message(Duration::ZERO, key, &Message::Interested)
        .unwrap();
    let mut out = Vec::new();
    t.take_outbox(key, &mut out);
    let mut msgs = Vec::new();
    let mut rest = out.as_slice();
    while let Ok(Some((m, used))) = decode_message(rest, 1 << 20) {
        msgs.push(format!("{m:?}"));
        rest = &rest[used..];
    }
    assert!(msgs.iter().any(|m| m == "Unchoke"), "{msgs:?}");
    let block = BlockRef {
        piece: 1,
        offset: 16384,
        len: 16384,
    };
    t.on_message(Duration::ZERO, key, &Message::Request(block))
        .unwrap();
    assert_eq!(t.peek_serve(key), Some(block));
    assert_eq!(t.peek_serve(key), Some(block), "peeking leaves it queued");
    assert_eq!(t.next_serve(key), Some(block));
    assert_eq!(t.peek_serve(key), None);
    assert_eq!(t.next_serve(key), None);
    // A request's arrival time (the clock given with it) comes out with it, for the
    // writer's service-time figure.
    let later = BlockRef { offset: 0, ..block };
    t.on_message(Duration::from_millis(1500), key, &Message::Request(later))
        .unwrap();
    assert_eq!(
        t.queued_requests(key).collect::<Vec<_>>(),
        [later],
        "queued_requests shows it"
    );
    assert_eq!(
        t.next_serve_timed(key),
        Some((later, Duration::from_millis(1500)))
    );
}

#[test]
fn a_later_bitfield_adds_pieces_like_haves() {
    let (mut t, key) = one_leecher_and_a_hostile_peer();
    t.on_message(Duration::ZERO, key, &Message::Port(6881))
        .unwrap();
    t.on_message(Duration::ZERO, key, &Message::Have(1))
        .unwrap();
    t.on_message(Duration::ZERO, key, &Message::Bitfield(&[0x80]))
        .unwrap();
    t.on_message(Duration::ZERO, key, &Message::Bitfield(&[0x20]))
        .unwrap();
    assert_eq!(
        t.peers[&key].has.iter_ones().collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert!(matches!(
        t.on_message(Duration::ZERO, key, &Message::Bitfield(&[0x08])),
        Err(DropReason::BadBitfield(_))
    ));
}

#[test]
fn a_full_request_queue_refuses_requests_without_dropping_the_peer() {
    let (mut t, key) = one_leecher_and_a_hostile_peer();
    t.on_message(Duration::ZERO, key, &Message::Interested)
        .unwrap();
    let block = BlockRef {
        piece: 0,
        offset: 0,
        len: 16384,
    };
    for _ in 0..SessionConfig::default().max_queued_requests + 50 {
        t.on_message(Duration::ZERO, key, &Message::Request(block))
            .unwrap();
    }
    assert_eq!(t.peer_count(), 1);
    assert_eq!(
        t.peers[&key].queued.len(),
        SessionConfig::default().max_queued_requests
    );
}

#[test]
fn the_peers_reqq_caps_our_requests_to_it() {
    let layout = layout(40 * u64::from(PIECE));
    let mut t = Torrent::new(
        layout.clone(),
        &Bitfield::empty(layout.piece_count()),
        SessionConfig::default(),
        1,
    );
    let caps = PeerCaps {
        dht_port: None,
        fast: true,
        extensions: true,
        outgoing: false,
    };
    let key = t
        .add_peer(Duration::ZERO, "10.0.0.7:1".parse().unwrap(), caps)
        .unwrap();
    let payload = extension::our_handshake(3, None, true);
    t.on_message(
        Duration::ZERO,
        key,
        &Message::Extended {
            id: 0,
            payload: &payload,
        },
    )
    .unwrap();
    t.on_message(Duration::ZERO, key, &Message::HaveAll)
        .unwrap();
    t.on_message(Duration::ZERO, key, &Message::Unchoke)
        .unwrap();
    assert_eq!(t.peers[&key].sent_requests.len(), 3);
}

#[test]
fn ut_metadata_requests_are_answered_rejected_past_the_end_and_bounded() {
    use crate::metadata::{MetadataMessage, METADATA_PIECE_LEN};
    use crate::wire::decode_message;
    let layout = layout(4 * u64::from(PIECE));
    let mut t = Torrent::new(
        layout.clone(),
        &Bitfield::full(layout.piece_count()),
        SessionConfig::default(),
        1,
    );
    let info: std::sync::Arc<[u8]> = (0..METADATA_PIECE_LEN + 10)
        .map(|i| i as u8)
        .collect::<Vec<u8>>()
        .into();
    t.set_info_dict(info.clone());
    let caps = PeerCaps {
        dht_port: None,
        fast: true,
        extensions: true,
        outgoing: false,
    };
    let key = t
        .add_peer(Duration::ZERO, "10.0.0.7:1".parse().unwrap(), caps)
        .unwrap();
    let mut out = Vec::new();
    t.take_outbox(key, &mut out);
    // Our handshake (after HAVE ALL) offers ut_metadata and tells the size.
    let (_, used) = decode_message(&out, 1 << 20).unwrap().unwrap();
    let (hs, _) = decode_message(&out[used..], 1 << 20).unwrap().unwrap();
    let Message::Extended { id: 0, payload } = hs else {
        panic!("{hs:?}")
    };
    let ours = crate::extension::TheirHandshake::parse(payload).unwrap();
    assert_eq!(ours.metadata_size, Some(info.len() as u64));
    let ut = ours
        .extensions
        .id(crate::extension::Extension::UtMetadata)
        .unwrap();
    // The peer says it takes ut_metadata under id 9.
    let theirs = b"d1:md11:ut_metadatai9eee";
    t.on_message(
        Duration::ZERO,
        key,
        &Message::Extended {
            id: 0,
            payload: theirs,
        },
    )
    .unwrap();
    let ask = |t: &mut Torrent, piece: u32| {
        let req = MetadataMessage::Request { piece }.encode();
        t.on_message(
            Duration::ZERO,
            key,
            &Message::Extended {
                id: ut,
                payload: &req,
            },
        )
        .unwrap();
        let mut out = Vec::new();
        t.take_outbox(key, &mut out);
        let (msg, _) = decode_message(&out, 1 << 20).unwrap().unwrap();
        let Message::Extended { id: 9, payload } = msg else {
            panic!("{msg:?}")
        };
        MetadataMessage::decode(payload).unwrap().encode()
    };
    let got = ask(&mut t, 1);
    assert_eq!(
        MetadataMessage::decode(&got).unwrap(),
        MetadataMessage::Data {
            piece: 1,
            total_size: info.len() as u32,
            data: &info[METADATA_PIECE_LEN as usize..]
        }
    );
    assert_eq!(
        MetadataMessage::decode(&ask(&mut t, 2)).unwrap(),
        MetadataMessage::Reject { piece: 2 }
    );
    // Past its answers per connection, every request is rejected.
    for _ in 0..super::metadata_answers_max(info.len()) {
        let _ = ask(&mut t, 0);
    }
    assert_eq!(
        MetadataMessage::decode(&ask(&mut t, 0)).unwrap(),
        MetadataMessage::Reject { piece: 0 }
    );
    // A malformed one drops the peer.
    assert!(matches!(
        t.on_message(
            Duration::ZERO,
            key,
            &Message::Extended {
                id: ut,
                payload: b"junk"
            }
        ),
        Err(DropReason::BadMetadataMessage(_))
    ));
}

/// Unchokes each peer in `keys` was sent since the last call.
fn unchoked(t: &mut Torrent, keys: &[PeerKey]) -> usize {
    let mut count = 0;
    for &key in keys {
        let mut out = Vec::new();
        t.take_outbox(key, &mut out);
        let mut rest = out.as_slice();
        while let Ok(Some((m, used))) = decode_message(rest, 1 << 20) {
            count += usize::from(matches!(m, Message::Unchoke));
            rest = &rest[used..];
        }
    }
    count
}

#[test]
fn new_peer_limits_apply_at_once_without_dropping_anyone() {
    let layout = layout(4 * u64::from(PIECE));
    let mut config = SessionConfig::default();
    config.choker.upload_slots = 1;
    let mut t = Torrent::new(
        layout.clone(),
        &Bitfield::full(layout.piece_count()),
        config,
        1,
    );
    let keys: Vec<PeerKey> = (1..=4)
        .map(|i| {
            let addr = format!("10.0.0.{i}:1").parse().unwrap();
            t.add_peer(Duration::ZERO, addr, PeerCaps::default())
                .unwrap()
        })
        .collect();
    for &key in &keys {
        t.on_message(Duration::ZERO, key, &Message::Interested)
            .unwrap();
    }
    t.tick(Duration::from_secs(1));
    assert_eq!(unchoked(&mut t, &keys), 1, "one slot");
    t.set_peer_limits(3, 2);
    t.tick(Duration::from_secs(2));
    assert_eq!(
        unchoked(&mut t, &keys),
        2,
        "two more slots, rechoked at once"
    );
    assert_eq!(t.peer_count(), 4, "a lower peer cap drops nobody");
    assert!(t
        .add_peer(
            Duration::from_secs(2),
            "10.0.0.9:1".parse().unwrap(),
            PeerCaps::default()
        )
        .is_err());
}

/// Found by the `peer_session` fuzz target: a piece we had that then failed a check left
/// its requests queued, and they were served from data we no longer claimed.
#[test]
fn a_had_piece_that_fails_a_check_is_served_to_nobody() {
    let (mut t, key) = one_leecher_and_a_hostile_peer();
    t.on_message(Duration::ZERO, key, &Message::Interested)
        .unwrap();
    let mut out = Vec::new();
    t.take_outbox(key, &mut out);
    let bad = BlockRef {
        piece: 1,
        offset: 0,
        len: 16384,
    };
    let good = BlockRef {
        piece: 2,
        offset: 0,
        len: 16384,
    };
    for block in [bad, good, bad] {
        t.on_message(Duration::ZERO, key, &Message::Request(block))
            .unwrap();
    }
    t.piece_checked(Duration::ZERO, 1, false, &[]);
    assert_eq!(t.next_serve(key), Some(good));
    assert_eq!(t.next_serve(key), None);
}

#[test]
fn a_dht_peer_is_told_our_port_after_the_first_messages() {
    use crate::wire::decode_message;
    let layout = layout(4 * u64::from(PIECE));
    let mut t = Torrent::new(
        layout.clone(),
        &Bitfield::full(layout.piece_count()),
        SessionConfig::default(),
        1,
    );
    let ids = |t: &mut Torrent, caps: PeerCaps, addr: &str| {
        let key = t
            .add_peer(Duration::ZERO, addr.parse().unwrap(), caps)
            .unwrap();
        let mut out = Vec::new();
        t.take_outbox(key, &mut out);
        let mut at = 0;
        let mut got = Vec::new();
        while let Some((msg, used)) = decode_message(&out[at..], 1 << 20).unwrap() {
            got.push(format!("{msg:?}"));
            at += used;
        }
        got
    };
    let with = PeerCaps {
        fast: true,
        extensions: true,
        outgoing: false,
        dht_port: Some(6881),
    };
    let got = ids(&mut t, with, "10.0.0.7:1");
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0], "HaveAll");
    assert!(got[1].starts_with("Extended"), "{got:?}");
    assert_eq!(got[2], "Port(6881)");
    let without = PeerCaps {
        dht_port: None,
        ..with
    };
    let got = ids(&mut t, without, "10.0.0.8:1");
    assert!(!got.iter().any(|m| m.starts_with("Port")), "{got:?}");
}
