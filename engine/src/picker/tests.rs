use std::collections::{BTreeSet, VecDeque};

use proptest::prelude::*;

use super::*;
use crate::metainfo::{LayoutFile, TorrentPath};
use crate::BLOCK_LEN;

const BL: u32 = BLOCK_LEN;

fn layout(piece_length: u32, lengths: &[u64]) -> Layout {
    let files = lengths.iter().enumerate().map(|(i, &length)| LayoutFile {
        path: TorrentPath::new(["t".to_string(), format!("f{i}")]).unwrap(),
        length,
        pad: false,
    });
    Layout::new(piece_length, files).unwrap()
}

fn bits(n: u32, pieces: impl IntoIterator<Item = u32>) -> Bitfield {
    let mut b = Bitfield::empty(n);
    for p in pieces {
        b.set(p);
    }
    b
}

/// Picks and checks the picker's internal invariants afterwards.
fn pick(picker: &mut Picker, peer: PeerKey, has: &Bitfield, max: usize) -> Vec<BlockRef> {
    let mut out = Vec::new();
    picker.pick(peer, has, max, &mut out);
    picker.check_invariants();
    assert!(out.len() <= max);
    out
}

fn pieces(blocks: &[BlockRef]) -> Vec<u32> {
    blocks.iter().map(|b| b.piece).collect()
}

/// `count` one-block pieces, nothing on disk.
fn one_block_pieces(count: u32, seed: u64) -> (Layout, Picker) {
    let l = layout(BL, &[u64::from(count * BL)]);
    let p = Picker::new(&l, &Bitfield::empty(count), seed);
    (l, p)
}

#[test]
fn rarest_piece_first() {
    let (_, mut p) = one_block_pieces(4, 1);
    let seed = Bitfield::full(4);
    p.peer_joined(&seed);
    p.peer_joined(&bits(4, [0, 1, 2]));
    p.peer_joined(&bits(4, [0, 1]));
    p.peer_joined(&bits(4, [0]));
    assert_eq!(p.availability(3), 1);
    assert_eq!(p.availability(0), 4);
    let order: Vec<u32> = (0..4)
        .flat_map(|_| pieces(&pick(&mut p, 9, &seed, 1)))
        .collect();
    assert_eq!(order, [3, 2, 1, 0]);
}

#[test]
fn equal_availability_ties_break_by_seed() {
    let order = |seed| {
        let (_, mut p) = one_block_pieces(64, seed);
        let all = Bitfield::full(64);
        p.peer_joined(&all);
        pieces(&pick(&mut p, 0, &all, 64))
    };
    assert_eq!(order(1), order(1));
    assert_ne!(order(1), order(2));
    let mut sorted = order(1);
    sorted.sort_unstable();
    assert_eq!(sorted, (0..64).collect::<Vec<_>>());
}

#[test]
fn availability_changes_reorder_pieces() {
    let (_, mut p) = one_block_pieces(3, 5);
    let all = Bitfield::full(3);
    for piece in [0, 0, 1] {
        p.peer_has(piece);
    }
    p.peer_has(99);
    p.check_invariants();
    assert_eq!(pieces(&pick(&mut p, 0, &all, 1)), [2]);
    p.peer_left(&bits(3, [0, 0, 1]));
    p.peer_left(&bits(3, [0]));
    p.check_invariants();
    assert_eq!(p.availability(0), 0);
    p.peer_has(1);
    assert_eq!(pieces(&pick(&mut p, 0, &all, 1)), [0]);
}

#[test]
fn seeds_are_a_counter_even_when_made_by_haves() {
    let (_, mut p) = one_block_pieces(3, 5);
    let all = Bitfield::full(3);
    p.peer_joined(&all);
    p.peer_joined(&bits(3, [0]));
    p.peer_has(1);
    p.peer_has(2); // now a seed, counted per piece
    assert_eq!(
        (0..3).map(|i| p.availability(i)).collect::<Vec<_>>(),
        [2, 2, 2]
    );
    p.peer_left(&all);
    assert_eq!(
        (0..3).map(|i| p.availability(i)).collect::<Vec<_>>(),
        [1, 1, 1]
    );
    p.peer_left(&all);
    p.check_invariants();
    assert_eq!(
        (0..3).map(|i| p.availability(i)).collect::<Vec<_>>(),
        [0, 0, 0]
    );
    assert!(p.peer_is_interesting(&all));
    assert!(!p.peer_is_interesting(&Bitfield::empty(3)));
}

#[test]
fn sequential_takes_the_lowest_missing_piece_the_peer_has() {
    let l = layout(2 * BL, &[u64::from(8 * 2 * BL)]);
    let mut p = Picker::new(&l, &bits(8, [4]), 3);
    p.peer_joined(&bits(8, [7])); // rarest, ignored in sequential mode
    p.set_sequential(true);
    let some = bits(8, [1, 2, 3, 5, 7]);
    let got = pick(&mut p, 0, &some, 3);
    assert_eq!(pieces(&got), [1, 1, 2]);
    let all = Bitfield::full(8);
    assert_eq!(pieces(&pick(&mut p, 1, &all, 6)), [0, 0, 2, 3, 3, 5]);
    p.set_sequential(false);
    assert!(!p.is_sequential());
    // The partial piece 5 first, then the rarest new one (7 has a peer, 6 none).
    assert_eq!(pieces(&pick(&mut p, 1, &all, 3)), [5, 6, 6]);
}

#[test]
fn priorities_order_pieces_and_skip_is_never_picked() {
    // Pieces: 0,1 High | 2,3 Skip | 4 Low | 5 Low+Normal = Normal | 6 Normal.
    let half = u64::from(BL / 2);
    let l = layout(BL, &[2 * 16384, 2 * 16384, 16384 + half, half + 16384]);
    let mut p = Picker::new(&l, &Bitfield::empty(7), 11);
    use Priority::*;
    p.set_file_priorities(&l, &[High, Skip, Low, Normal]);
    p.check_invariants();
    assert_eq!(
        (0..7).map(|i| p.piece_priority(i)).collect::<Vec<_>>(),
        [High, High, Skip, Skip, Low, Normal, Normal]
    );
    assert!(!p.is_wanted(2) && p.is_wanted(4));
    assert_eq!(p.wanted_left(), 5);
    // High pieces are the most common, the Low one the rarest: class still wins.
    p.peer_joined(&bits(7, [0, 1, 5, 6]));
    p.peer_joined(&bits(7, [0, 1]));
    assert!(!p.peer_is_interesting(&bits(7, [2, 3])));
    let all = Bitfield::full(7);
    let order = pieces(&pick(&mut p, 0, &all, 10));
    assert_eq!(order.len(), 5);
    assert_eq!(
        order[..2].iter().collect::<BTreeSet<_>>(),
        [0, 1].iter().collect()
    );
    assert_eq!(
        order[2..4].iter().collect::<BTreeSet<_>>(),
        [5, 6].iter().collect()
    );
    assert_eq!(order[4], 4);
    p.set_file_priorities(&l, &[Skip; 4]);
    p.check_invariants();
    assert!(p.is_done());
    assert!(!p.in_endgame());
    assert!(pick(&mut p, 1, &all, 10).is_empty());
}

#[test]
fn partial_pieces_are_finished_before_new_ones_start() {
    let l = layout(4 * BL, &[u64::from(3 * 4 * BL)]);
    let mut p = Picker::new(&l, &Bitfield::empty(3), 2);
    let all = Bitfield::full(3);
    p.peer_joined(&all);
    p.peer_joined(&bits(3, [0, 1]));
    p.peer_joined(&bits(3, [0]));
    let first = pick(&mut p, 0, &bits(3, [0]), 1);
    assert_eq!(first, [block(0, 0, 4 * BL)]);
    // Piece 2 is rarer, but piece 0 is under way.
    assert_eq!(pieces(&pick(&mut p, 1, &all, 3)), [0, 0, 0]);
    assert_eq!(pieces(&pick(&mut p, 1, &all, 1)), [2]);
    assert_eq!(p.outstanding(1), 4);
}

#[test]
fn endgame_duplicates_requests_and_lists_cancels() {
    let l = layout(2 * BL, &[u64::from(2 * BL)]);
    let mut p = Picker::new(&l, &Bitfield::empty(1), 4);
    let all = Bitfield::full(1);
    let b0 = block(0, 0, 2 * BL);
    let b1 = block(0, 1, 2 * BL);
    assert_eq!(pick(&mut p, 1, &all, 10), [b0, b1]);
    assert!(p.in_endgame());
    assert!(
        pick(&mut p, 1, &all, 10).is_empty(),
        "never twice to one peer"
    );
    assert_eq!(pick(&mut p, 2, &all, 10), [b0, b1]);
    assert_eq!(pick(&mut p, 3, &all, 10), [b0, b1]);
    assert!(pick(&mut p, 4, &all, 10).is_empty(), "at most two extra");
    let got = p.on_block(2, b0);
    assert_eq!(
        got,
        BlockOutcome {
            accepted: true,
            piece_complete: false,
            cancel: vec![1, 3]
        }
    );
    assert!(!p.on_block(1, b0).accepted, "cancelled, arrived anyway");
    assert!(!p.on_block(2, b0).accepted, "already received");
    let got = p.on_block(3, b1);
    assert!(got.accepted && got.piece_complete);
    assert_eq!(got.cancel, [1, 2]);
    p.check_invariants();
    assert_eq!((1..=4).map(|k| p.outstanding(k)).sum::<usize>(), 0);
    p.on_piece_verified(0);
    assert!(p.is_done() && !p.in_endgame());
    assert_eq!(p.have().count(), 1);
}

#[test]
fn endgame_is_per_peer_once_its_pieces_are_all_requested() {
    let l = layout(BL, &[u64::from(2 * BL)]);
    let mut p = Picker::new(&l, &Bitfield::empty(2), 4);
    let only0 = bits(2, [0]);
    assert_eq!(pieces(&pick(&mut p, 1, &only0, 5)), [0]);
    assert!(!p.in_endgame());
    assert_eq!(pieces(&pick(&mut p, 2, &only0, 5)), [0]);
    assert_eq!(pieces(&pick(&mut p, 3, &Bitfield::full(2), 5)), [1, 0]);
}

#[test]
fn failed_piece_names_contributors_and_is_fetched_again() {
    let l = layout(2 * BL, &[u64::from(2 * BL)]);
    let mut p = Picker::new(&l, &Bitfield::empty(1), 4);
    let all = Bitfield::full(1);
    let b0 = pick(&mut p, 7, &all, 1)[0];
    let b1 = pick(&mut p, 3, &all, 1)[0];
    assert!(p.on_block(7, b0).accepted);
    assert!(p.on_block(3, b1).piece_complete);
    assert_eq!(p.on_piece_failed(0), [3, 7]);
    p.check_invariants();
    assert_eq!(p.wanted_left(), 1);
    assert_eq!(pick(&mut p, 7, &all, 5), [b0, b1]);
    // Even a verified piece can be failed later (a recheck); it is wanted again.
    assert!(p.on_block(7, b0).accepted && p.on_block(7, b1).piece_complete);
    p.on_piece_verified(0);
    assert!(p.is_done());
    assert_eq!(p.on_piece_failed(0), Vec::<PeerKey>::new());
    assert_eq!(p.wanted_left(), 1);
    assert_eq!(pick(&mut p, 1, &all, 5), [b0, b1]);
}

#[test]
fn peer_gone_and_dropped_requests_free_blocks() {
    let l = layout(2 * BL, &[u64::from(4 * BL)]);
    let mut p = Picker::new(&l, &Bitfield::empty(2), 9);
    let all = Bitfield::full(2);
    let mine = pick(&mut p, 1, &all, 4);
    assert_eq!(p.outstanding(1), 4);
    p.on_peer_gone(1);
    p.check_invariants();
    assert_eq!(p.outstanding(1), 0);
    let again = pick(&mut p, 2, &all, 4);
    assert_eq!(again.iter().collect::<BTreeSet<_>>(), mine.iter().collect());
    p.on_request_dropped(2, again[0]);
    p.on_request_dropped(2, again[0]);
    p.check_invariants();
    assert_eq!(p.outstanding(2), 3);
    assert_eq!(pick(&mut p, 3, &all, 1), [again[0]]);
    // In endgame a block whose first requester leaves stays with the duplicate.
    assert_eq!(pick(&mut p, 4, &all, 1).len(), 1);
    p.on_peer_gone(2);
    p.check_invariants();
    assert_eq!(p.outstanding(4), 1);
}

#[test]
fn hostile_blocks_and_indexes_are_refused() {
    let l = layout(2 * BL + 10, &[u64::from(2 * BL + 10)]);
    let mut p = Picker::new(&l, &Bitfield::empty(1), 1);
    let got = pick(&mut p, 1, &Bitfield::full(1), 5);
    assert_eq!(got[2].len, 10);
    for bad in [
        BlockRef {
            piece: 1,
            offset: 0,
            len: BL,
        },
        BlockRef {
            piece: u32::MAX,
            offset: 0,
            len: BL,
        },
        BlockRef {
            piece: 0,
            offset: 1,
            len: BL,
        },
        BlockRef {
            piece: 0,
            offset: 0,
            len: BL - 1,
        },
        BlockRef {
            piece: 0,
            offset: 3 * BL,
            len: 10,
        },
        BlockRef {
            piece: 0,
            offset: 2 * BL,
            len: BL,
        },
    ] {
        assert!(!p.on_block(1, bad).accepted);
        p.on_request_dropped(1, bad);
    }
    assert!(
        !p.on_block(2, got[0]).accepted,
        "not requested from this peer"
    );
    p.peer_has(5);
    p.peer_joined(&Bitfield::full(40));
    p.peer_left(&Bitfield::full(40));
    p.on_piece_verified(3);
    assert!(p.on_piece_failed(3).is_empty());
    assert!(!p.is_wanted(3));
    assert!(pick(&mut p, 2, &Bitfield::full(7), 5).len() <= 5);
    p.check_invariants();
    assert_eq!(p.outstanding(1), 3);
}

#[test]
fn large_torrents_pick_without_scanning_every_piece() {
    // 100k pieces and 60k blocks picked: anything O(pieces) per pick would not finish.
    let n = 100_000;
    let (_, mut p) = one_block_pieces(n, 8);
    let mut rng = SplitMix64::new(8);
    let peers: Vec<Bitfield> = (0..8)
        .map(|_| bits(n, (0..n).filter(|_| rng.below(2) == 0)))
        .chain([Bitfield::full(n)])
        .collect();
    for has in &peers {
        p.peer_joined(has);
    }
    let mut out = Vec::new();
    for round in 0..2000 {
        let k = round % peers.len();
        p.pick(k as PeerKey, &peers[k], 30, &mut out);
    }
    assert_eq!(out.len(), 60_000);
    let distinct: BTreeSet<BlockRef> = out.iter().copied().collect();
    assert_eq!(distinct.len(), out.len());
    assert!(out
        .iter()
        .enumerate()
        .all(|(i, b)| peers[i / 30 % peers.len()].get(b.piece)));
    let outstanding: usize = (0..peers.len()).map(|k| p.outstanding(k as PeerKey)).sum();
    assert_eq!(outstanding, out.len());
}

/// A piece length of three blocks, the last one short, over files of mixed priority.
fn sim_layout() -> (Layout, Vec<Priority>) {
    use Priority::*;
    let l = layout(
        2 * BL + 5000,
        &[100_000, 50_000, 0, 300_000, 7, 1_000_000, 123_456],
    );
    (l, vec![Normal, Skip, Skip, High, Low, Normal, Skip])
}

/// Peers with random bitfields that together hold every piece; some start as seeds.
fn random_peers(n: u32, count: usize, rng: &mut SplitMix64) -> Vec<Bitfield> {
    let mut peers: Vec<Bitfield> = (0..count)
        .map(|i| {
            if i % 4 == 3 {
                Bitfield::full(n)
            } else {
                bits(n, (0..n).filter(|_| rng.below(2) == 0))
            }
        })
        .collect();
    for piece in 0..n {
        let k = rng.below(count as u32) as usize;
        peers[k].set(piece);
    }
    peers
}

#[test]
fn simulated_download_fetches_exactly_the_wanted_blocks() {
    let (l, prios) = sim_layout();
    let n = l.piece_count();
    let mut rng = SplitMix64::new(42);
    let peers = random_peers(n, 7, &mut rng);
    let mut p = Picker::new(&l, &bits(n, [3]), 42);
    p.set_file_priorities(&l, &prios);
    for has in &peers {
        p.peer_joined(has);
    }
    let wanted: BTreeSet<u32> = (0..n).filter(|&i| p.is_wanted(i)).collect();
    let mut in_flight: Vec<VecDeque<BlockRef>> = vec![VecDeque::new(); peers.len()];
    let mut received = BTreeSet::new();
    let mut failed_once = BTreeSet::new();
    let mut rounds = 0;
    while !p.is_done() {
        rounds += 1;
        assert!(rounds < 5000, "no progress");
        for (k, has) in peers.iter().enumerate() {
            let peer = k as PeerKey;
            let depth = 2 + k;
            let room = depth.saturating_sub(p.outstanding(peer));
            for b in pick(&mut p, peer, has, room) {
                assert!(has.get(b.piece) && wanted.contains(&b.piece) && !p.have().get(b.piece));
                assert!(!in_flight[k].contains(&b), "requested twice from one peer");
                in_flight[k].push_back(b);
            }
            assert_eq!(in_flight[k].len(), p.outstanding(peer));
        }
        for k in 0..peers.len() {
            let peer = k as PeerKey;
            // Peer 0 is slow: the endgame must route around it.
            let Some(b) = (k > 0 || rounds % 7 == 0)
                .then(|| in_flight[k].pop_front())
                .flatten()
            else {
                continue;
            };
            match rng.below(20) {
                0 => p.on_request_dropped(peer, b),
                1 if k == 5 && rounds % 50 == 0 => {
                    p.on_peer_gone(peer);
                    in_flight[k].clear();
                }
                _ => {
                    let got = p.on_block(peer, b);
                    assert!(got.accepted);
                    received.insert(b);
                    for c in got.cancel {
                        in_flight[c as usize].retain(|x| *x != b);
                    }
                    if got.piece_complete {
                        if failed_once.insert(b.piece) && rng.below(4) == 0 {
                            assert!(p.on_piece_failed(b.piece).contains(&peer));
                        } else {
                            p.on_piece_verified(b.piece);
                        }
                    }
                }
            }
        }
        p.check_invariants();
    }
    let expected: BTreeSet<BlockRef> = wanted
        .iter()
        .filter(|&&i| i != 3)
        .flat_map(|&i| {
            let len = l.piece_len(l.piece(i).unwrap());
            (0..block_count(len)).map(move |j| block(i, j, len))
        })
        .collect();
    assert_eq!(received, expected);
    assert_eq!(
        p.have().count() as usize,
        wanted.len() + usize::from(!wanted.contains(&3))
    );
    assert!(wanted.iter().all(|&i| p.have().get(i)));
}

#[derive(Debug, Clone)]
enum Op {
    Pick { peer: usize, max: usize },
    Deliver { peer: usize, nth: usize },
    Drop { peer: usize, nth: usize },
    Gone { peer: usize },
    Have { peer: usize, piece: u32 },
    Priority { file: usize, prio: Priority },
    Sequential(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let peer = 0usize..5;
    let prio = prop_oneof![
        Just(Priority::Skip),
        Just(Priority::Low),
        Just(Priority::Normal),
        Just(Priority::High)
    ];
    prop_oneof![
        4 => (peer.clone(), 0usize..12).prop_map(|(peer, max)| Op::Pick { peer, max }),
        4 => (peer.clone(), 0usize..20).prop_map(|(peer, nth)| Op::Deliver { peer, nth }),
        1 => (peer.clone(), 0usize..20).prop_map(|(peer, nth)| Op::Drop { peer, nth }),
        1 => peer.clone().prop_map(|peer| Op::Gone { peer }),
        1 => (peer, 0u32..64).prop_map(|(peer, piece)| Op::Have { peer, piece }),
        1 => (0usize..7, prio).prop_map(|(file, prio)| Op::Priority { file, prio }),
        1 => any::<bool>().prop_map(Op::Sequential),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn picker_invariants_hold_and_downloads_finish(
        seed in any::<u64>(),
        ops in proptest::collection::vec(op(), 0..150),
    ) {
        let (l, mut prios) = sim_layout();
        let n = l.piece_count();
        let mut rng = SplitMix64::new(seed);
        let mut peers = random_peers(n, 5, &mut rng);
        let mut p = Picker::new(&l, &Bitfield::empty(n), seed);
        p.set_file_priorities(&l, &prios);
        for has in &peers {
            p.peer_joined(has);
        }
        let mut in_flight: Vec<Vec<BlockRef>> = vec![Vec::new(); peers.len()];
        let mut out = Vec::new();
        for op in ops {
            match op {
                Op::Pick { peer, max } => {
                    out.clear();
                    p.pick(peer as PeerKey, &peers[peer], max, &mut out);
                    prop_assert!(out.len() <= max);
                    for b in &out {
                        prop_assert!(peers[peer].get(b.piece), "peer lacks {}", b.piece);
                        prop_assert!(p.is_wanted(b.piece), "Skip piece {}", b.piece);
                        prop_assert!(!in_flight[peer].contains(b), "twice to one peer");
                        in_flight[peer].push(*b);
                    }
                }
                Op::Deliver { peer, nth } if !in_flight[peer].is_empty() => {
                    let nth = nth % in_flight[peer].len();
                    let b = in_flight[peer].remove(nth);
                    let got = p.on_block(peer as PeerKey, b);
                    prop_assert!(got.accepted);
                    for c in got.cancel {
                        in_flight[c as usize].retain(|x| *x != b);
                    }
                    if got.piece_complete {
                        p.on_piece_verified(b.piece);
                    }
                }
                Op::Drop { peer, nth } if !in_flight[peer].is_empty() => {
                    let nth = nth % in_flight[peer].len();
                    let b = in_flight[peer].remove(nth);
                    p.on_request_dropped(peer as PeerKey, b);
                }
                Op::Gone { peer } => {
                    p.on_peer_gone(peer as PeerKey);
                    p.peer_left(&peers[peer]);
                    in_flight[peer].clear();
                    p.peer_joined(&peers[peer]);
                }
                Op::Have { peer, piece } => {
                    if peers[peer].set(piece % n) {
                        p.peer_has(piece % n);
                    }
                }
                Op::Priority { file, prio } => {
                    prios[file] = prio;
                    p.set_file_priorities(&l, &prios);
                }
                Op::Sequential(on) => p.set_sequential(on),
                Op::Deliver { .. } | Op::Drop { .. } => {}
            }
            p.check_invariants();
            for (k, f) in in_flight.iter().enumerate() {
                prop_assert_eq!(f.len(), p.outstanding(k as PeerKey));
            }
        }
        // Whatever happened, the swarm can still finish the download.
        for rounds in 0.. {
            if p.is_done() {
                break;
            }
            prop_assert!(rounds < 2000, "stuck with {} left", p.wanted_left());
            for (k, has) in peers.iter().enumerate() {
                out.clear();
                p.pick(k as PeerKey, has, 3, &mut out);
                in_flight[k].extend_from_slice(&out);
                if let Some(b) = in_flight[k].pop() {
                    let got = p.on_block(k as PeerKey, b);
                    prop_assert!(got.accepted);
                    for c in got.cancel {
                        in_flight[c as usize].retain(|x| *x != b);
                    }
                    if got.piece_complete {
                        p.on_piece_verified(b.piece);
                    }
                }
            }
        }
        p.check_invariants();
        prop_assert!((0..n).all(|i| !p.is_wanted(i) || p.have().get(i)));
    }
}

/// Runs `pick_run` and checks the invariants afterwards.
fn run(p: &mut Picker, peer: PeerKey, max: usize, more: impl FnMut(u32) -> bool) -> Vec<BlockRef> {
    let mut out = Vec::new();
    p.pick_run(peer, max, &mut out, more);
    p.check_invariants();
    out
}

#[test]
fn a_run_is_whole_consecutive_pieces_and_stops_at_a_started_one() {
    // 8 pieces of 2 blocks.
    let l = layout(2 * BL, &[u64::from(16 * BL)]);
    let mut p = Picker::new(&l, &Bitfield::empty(8), 3);
    // A peer starts piece 3.
    assert_eq!(pieces(&pick(&mut p, 1, &bits(8, [3]), 1)), [3]);
    let got = run(&mut p, 100, 100, |_| true);
    assert_eq!(
        pieces(&got),
        [0, 0, 1, 1, 2, 2],
        "whole pieces, up to the started one"
    );
    assert_eq!(got[1].offset, BL);
    // The next run starts after it; `more` can end it after the first piece.
    assert_eq!(pieces(&run(&mut p, 100, 100, |_| false)), [4, 4]);
    // A small budget still takes the first piece whole, then stops.
    assert_eq!(pieces(&run(&mut p, 100, 1, |_| true)), [5, 5]);
}

#[test]
fn a_run_falls_back_to_open_blocks_once_every_piece_is_started() {
    let l = layout(2 * BL, &[u64::from(6 * BL)]);
    let mut p = Picker::new(&l, &Bitfield::empty(3), 9);
    let got = run(&mut p, 100, 6, |_| true);
    assert_eq!(pieces(&got), [0, 0, 1, 1, 2, 2]);
    // Freed again; a peer takes 5 of the 6 blocks, and the run gets the open one first,
    // then endgame duplicates.
    p.on_peer_gone(100);
    p.check_invariants();
    let peer = pick(&mut p, 1, &Bitfield::full(3), 5);
    assert_eq!(peer.len(), 5);
    assert!(p.is_requested(1, peer[0]));
    let tail = run(&mut p, 100, 6, |_| true);
    assert!(!peer.contains(&tail[0]), "the open block comes first");
    assert!(p.in_endgame());
}
