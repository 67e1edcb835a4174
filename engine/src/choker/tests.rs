use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn peer(key: PeerKey, download_rate: u64, upload_rate: u64) -> Candidate {
    Candidate {
        peer: key,
        interested: true,
        download_rate,
        upload_rate,
        connected_at: Duration::ZERO,
        unchoked: false,
        left_unchoke_unused: false,
    }
}

fn config(upload_slots: usize) -> ChokerConfig {
    ChokerConfig {
        upload_slots,
        ..ChokerConfig::default()
    }
}

/// The peers in `unchoked` that hold regular (not optimistic) slots.
fn regular(choker: &Choker, unchoked: &[PeerKey]) -> BTreeSet<PeerKey> {
    unchoked
        .iter()
        .copied()
        .filter(|p| Some(*p) != choker.optimistic())
        .collect()
}

#[test]
fn default_config_is_classic() {
    let c = ChokerConfig::default();
    assert_eq!(c.upload_slots, 4);
    assert_eq!(c.rechoke_interval, secs(10));
    assert_eq!(c.optimistic_interval, secs(30));
}

#[test]
fn tit_for_tat_rewards_the_best_givers() {
    let mut candidates: Vec<Candidate> = [100, 600, 300, 500, 200, 400]
        .iter()
        .zip(1..)
        .map(|(rate, key)| peer(key, *rate, 0))
        .collect();
    candidates.push(Candidate {
        interested: false,
        ..peer(7, 10_000, 0)
    });
    let mut choker = Choker::new(ChokerConfig::default(), 1);
    let unchoked = choker.rechoke(secs(0), &candidates, false);
    assert_eq!(unchoked.len(), 4);
    assert_eq!(regular(&choker, &unchoked), BTreeSet::from([2, 4, 6]));
    let optimistic = choker.optimistic().expect("an optimistic peer");
    assert!([1, 3, 5].contains(&optimistic));
    assert!(!unchoked.contains(&7));
}

#[test]
fn leeching_ties_keep_unchoked_peers_then_go_by_seed() {
    let candidates: Vec<Candidate> = (1..=8)
        .map(|key| Candidate {
            unchoked: key == 5,
            left_unchoke_unused: false,
            ..peer(key, 1_000, 0)
        })
        .collect();
    let mut outcomes = BTreeSet::new();
    for seed in 0..20 {
        let mut choker = Choker::new(ChokerConfig::default(), seed);
        let unchoked = choker.rechoke(secs(0), &candidates, false);
        let regular = regular(&choker, &unchoked);
        assert!(regular.contains(&5), "seed {seed}: {regular:?}");
        let mut again = Choker::new(ChokerConfig::default(), seed);
        assert_eq!(again.rechoke(secs(0), &candidates, false), unchoked);
        outcomes.insert(regular.into_iter().collect::<Vec<_>>());
    }
    assert!(
        outcomes.len() > 1,
        "ties must not always resolve the same way"
    );
}

#[test]
fn seeding_ranks_by_upload_rate() {
    let candidates: Vec<Candidate> = [(1, 50), (2, 900), (3, 10), (4, 700), (5, 800)]
        .iter()
        .map(|&(key, up)| peer(key, 0, up))
        .collect();
    let mut choker = Choker::new(ChokerConfig::default(), 3);
    let unchoked = choker.rechoke(secs(0), &candidates, true);
    assert_eq!(regular(&choker, &unchoked), BTreeSet::from([2, 4, 5]));
}

/// Seeds to ten peers for 30 rounds; while unchoked, peer k takes k * 10 kB/s (so the fast
/// ones would keep their slots forever on rate alone), and a choked peer's measured rate
/// lingers for `lag` rounds. Every peer must get a regular slot, none for more than the quota
/// at a stretch.
fn assert_seeding_rotation_is_fair(lag: usize) {
    let mut choker = Choker::new(ChokerConfig::default(), 7);
    let mut history: Vec<Vec<PeerKey>> = Vec::new();
    let mut streak: BTreeMap<PeerKey, u32> = BTreeMap::new();
    let mut served = BTreeSet::new();
    for round in 0..30 {
        let recent = |key: PeerKey, rounds: usize| {
            history.iter().rev().take(rounds).any(|u| u.contains(&key))
        };
        let candidates: Vec<Candidate> = (1..=10)
            .map(|key| Candidate {
                unchoked: recent(key, 1),
                left_unchoke_unused: false,
                ..peer(
                    key,
                    0,
                    if recent(key, 1 + lag) {
                        u64::from(key) * 10_000
                    } else {
                        0
                    },
                )
            })
            .collect();
        let unchoked = choker.rechoke(secs(round * 10), &candidates, true);
        assert_eq!(unchoked.len(), 4);
        let holders = regular(&choker, &unchoked);
        for key in 1..=10 {
            if holders.contains(&key) {
                let s = streak.entry(key).or_default();
                *s += 1;
                assert!(
                    *s <= SEEDING_QUOTA_ROUNDS,
                    "lag {lag}: peer {key} held a slot {s} rounds in a row (round {round})"
                );
            } else {
                streak.remove(&key);
            }
        }
        served.extend(holders);
        history.push(unchoked);
    }
    assert_eq!(served, (1..=10).collect(), "lag {lag}");
}

#[test]
fn seeding_rotation_serves_every_waiting_peer() {
    assert_seeding_rotation_is_fair(0);
}

#[test]
fn seeding_rotation_ignores_rates_left_over_from_a_last_turn() {
    assert_seeding_rotation_is_fair(2);
}

#[test]
fn seeding_without_waiters_keeps_everyone_unchoked() {
    let candidates: Vec<Candidate> = (1..=3).map(|key| peer(key, 0, 5_000)).collect();
    let mut choker = Choker::new(ChokerConfig::default(), 11);
    for round in 0..10 {
        assert_eq!(
            choker.rechoke(secs(round * 10), &candidates, true),
            vec![1, 2, 3]
        );
    }
}

#[test]
fn fewer_interested_than_slots_unchokes_all_interested() {
    let candidates: Vec<Candidate> = (1..=6)
        .map(|key| Candidate {
            interested: key % 2 == 0,
            ..peer(key, u64::from(key), u64::from(key))
        })
        .collect();
    for seeding in [false, true] {
        let mut choker = Choker::new(ChokerConfig::default(), 5);
        assert_eq!(choker.rechoke(secs(0), &candidates, seeding), vec![2, 4, 6]);
    }
}

#[test]
fn unlimited_slots_unchoke_every_interested_peer() {
    let candidates: Vec<Candidate> = (0..60)
        .map(|key| Candidate {
            interested: key % 6 != 0,
            ..peer(key, 0, 0)
        })
        .collect();
    let mut choker = Choker::new(config(0), 2);
    let unchoked = choker.rechoke(secs(0), &candidates, false);
    assert_eq!(unchoked, (0..60).filter(|k| k % 6 != 0).collect::<Vec<_>>());
    assert_eq!(choker.optimistic(), None);
    assert_eq!(choker.next_rechoke(), secs(10));
}

/// One fast regular peer (key 1) and eight idle ones, with two slots: the optimistic slot
/// always goes to one of the idle ones.
fn one_giver_and_idlers() -> Vec<Candidate> {
    (1..=9)
        .map(|key| peer(key, if key == 1 { 1_000_000 } else { 0 }, 0))
        .collect()
}

#[test]
fn optimistic_rotates_every_interval_and_not_between() {
    let candidates = one_giver_and_idlers();
    let mut choker = Choker::new(config(2), 9);
    assert_eq!(choker.next_rechoke(), secs(0));
    let mut previous = None;
    // Due rounds every 10 s, plus early calls at 5, 15 and 35 s.
    for t in [
        0, 5, 10, 15, 20, 30, 35, 40, 50, 60, 70, 80, 90, 100, 110, 120,
    ] {
        let unchoked = choker.rechoke(secs(t), &candidates, false);
        let current = choker.optimistic();
        assert!(current.is_some_and(|p| p != 1 && unchoked.contains(&p)));
        assert_eq!(unchoked.len(), 2);
        assert!(unchoked.contains(&1));
        if t % 30 == 0 {
            assert_ne!(current, previous, "rotation due at {t} s");
        } else {
            assert_eq!(current, previous, "no rotation at {t} s");
        }
        previous = current;
    }
}

#[test]
fn next_rechoke_wakes_up_for_the_optimistic_rotation() {
    let config = ChokerConfig {
        optimistic_interval: secs(25),
        ..config(2)
    };
    let candidates = one_giver_and_idlers();
    let mut choker = Choker::new(config, 4);
    choker.rechoke(secs(0), &candidates, false);
    assert_eq!(choker.next_rechoke(), secs(10));
    choker.rechoke(secs(10), &candidates, false);
    choker.rechoke(secs(20), &candidates, false);
    assert_eq!(choker.next_rechoke(), secs(25));
    let before = choker.optimistic();
    choker.rechoke(secs(25), &candidates, false);
    assert_ne!(choker.optimistic(), before);
    assert_eq!(choker.next_rechoke(), secs(30));
}

#[test]
fn newcomers_are_three_times_as_likely_to_be_optimistic() {
    // One slot, so it is the optimistic one; peer 2 connected 10 s ago, peer 1 long ago.
    let trials = 4_000;
    let newcomer_share = |connected_at: Duration| {
        let candidates = [
            peer(1, 0, 0),
            Candidate {
                connected_at,
                ..peer(2, 0, 0)
            },
        ];
        let picked = (0..trials)
            .filter(|seed| {
                let mut choker = Choker::new(config(1), *seed);
                choker.rechoke(secs(300), &candidates, false) == vec![2]
            })
            .count();
        picked as f64 / trials as f64
    };
    let new = newcomer_share(secs(290));
    assert!((0.72..=0.78).contains(&new), "newcomer drawn {new}");
    // Connected 100 s ago: past two intervals, no longer a newcomer.
    let old = newcomer_share(secs(200));
    assert!((0.47..=0.53).contains(&old), "old peer drawn {old}");
}

#[test]
fn optimistic_peer_that_leaves_or_loses_interest_is_replaced_at_once() {
    let mut candidates = one_giver_and_idlers();
    let mut choker = Choker::new(config(2), 21);
    choker.rechoke(secs(0), &candidates, false);
    let first = choker.optimistic().expect("optimistic peer");

    candidates.retain(|c| c.peer != first);
    let unchoked = choker.rechoke(secs(4), &candidates, false);
    let second = choker.optimistic().expect("replacement");
    assert_ne!(second, first);
    assert!(unchoked.contains(&second) && !unchoked.contains(&first));
    assert_eq!(unchoked.len(), 2);

    for c in candidates.iter_mut().filter(|c| c.peer == second) {
        c.interested = false;
    }
    let unchoked = choker.rechoke(secs(7), &candidates, false);
    let third = choker.optimistic().expect("replacement");
    assert!(third != first && third != second);
    assert!(!unchoked.contains(&second));
    // The replacement gets a full turn.
    assert_eq!(choker.next_rechoke(), secs(10));
    choker.rechoke(secs(10), &candidates, false);
    choker.rechoke(secs(20), &candidates, false);
    choker.rechoke(secs(30), &candidates, false);
    assert_eq!(choker.optimistic(), Some(third));
}

#[test]
fn optimistic_peer_promoted_to_regular_frees_the_slot() {
    let mut candidates = one_giver_and_idlers();
    let mut choker = Choker::new(config(2), 13);
    choker.rechoke(secs(0), &candidates, false);
    let lucky = choker.optimistic().expect("optimistic peer");
    for c in candidates.iter_mut().filter(|c| c.peer == lucky) {
        c.download_rate = 5_000_000;
    }
    let unchoked = choker.rechoke(secs(10), &candidates, false);
    assert_eq!(regular(&choker, &unchoked), BTreeSet::from([lucky]));
    assert!(choker.optimistic().is_some_and(|p| p != lucky));
    assert_eq!(unchoked.len(), 2);
}

#[test]
fn repeated_candidates_count_once() {
    let candidates = [peer(3, 10, 0), peer(3, 20, 0), peer(4, 0, 0)];
    let mut choker = Choker::new(ChokerConfig::default(), 0);
    assert_eq!(choker.rechoke(secs(0), &candidates, false), vec![3, 4]);
}

#[test]
fn no_interested_peers_means_nobody_unchoked() {
    let candidates = [Candidate {
        interested: false,
        ..peer(1, 10, 10)
    }];
    let mut choker = Choker::new(ChokerConfig::default(), 0);
    assert!(choker.rechoke(secs(0), &candidates, true).is_empty());
    assert!(choker.rechoke(secs(0), &[], false).is_empty());
    assert_eq!(choker.optimistic(), None);
    // Time going backwards is just an early call.
    assert!(choker.rechoke(secs(0), &candidates, true).is_empty());
}

/// Per peer: interested, download rate, upload rate, connected at (s), unchoked.
type PeerParams = (bool, u64, u64, u64, bool);

fn rounds_strategy() -> impl Strategy<Value = Vec<(u64, bool, BTreeMap<PeerKey, PeerParams>)>> {
    let peers = proptest::collection::btree_map(
        0u32..24,
        (any::<bool>(), 0u64..4, 0u64..4, 0u64..200, any::<bool>()),
        0..16,
    );
    proptest::collection::vec((0u64..25, any::<bool>(), peers), 1..20)
}

fn candidates_of(peers: &BTreeMap<PeerKey, PeerParams>) -> Vec<Candidate> {
    peers
        .iter()
        .map(|(&key, &(interested, down, up, at, unchoked))| Candidate {
            peer: key,
            interested,
            download_rate: down,
            upload_rate: up,
            connected_at: secs(at),
            unchoked,
            // Some peers left an unchoke unused: every property holds for them too.
            left_unchoke_unused: key % 7 == 3,
        })
        .collect()
}

proptest! {
    #[test]
    fn rechoke_invariants(
        slots in 0usize..6,
        seed in any::<u64>(),
        rounds in rounds_strategy(),
    ) {
        let mut choker = Choker::new(config(slots), seed);
        let mut reversed = Choker::new(config(slots), seed);
        let mut now = Duration::ZERO;
        for (step, seeding, peers) in &rounds {
            now += secs(*step);
            let candidates = candidates_of(peers);
            let unchoked = choker.rechoke(now, &candidates, *seeding);

            let interested: Vec<PeerKey> =
                candidates.iter().filter(|c| c.interested).map(|c| c.peer).collect();
            prop_assert!(unchoked.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
            prop_assert!(unchoked.iter().all(|p| interested.contains(p)));
            if slots == 0 || interested.len() <= slots {
                prop_assert_eq!(&unchoked, &interested);
            } else {
                prop_assert_eq!(unchoked.len(), slots);
            }
            if let Some(p) = choker.optimistic() {
                prop_assert!(unchoked.contains(&p));
            }
            prop_assert!(choker.next_rechoke() > now);

            // Same inputs and seed, candidates in another order: same answer.
            let mut backwards = candidates.clone();
            backwards.reverse();
            prop_assert_eq!(reversed.rechoke(now, &backwards, *seeding), unchoked);
        }
    }
}

/// A peer that left an unchoke unused ranks behind every other, seeding or leeching, and
/// the optimistic slot passes it over while anyone else waits; alone, it is still served.
#[test]
fn peers_that_left_an_unchoke_unused_come_last() {
    let squatter = |key| Candidate {
        left_unchoke_unused: true,
        ..peer(key, 0, 0)
    };
    for seeding in [true, false] {
        let candidates = [squatter(1), squatter(2), peer(3, 0, 0), peer(4, 0, 0)];
        let mut choker = Choker::new(config(2), 7);
        let unchoked = choker.rechoke(secs(0), &candidates, seeding);
        assert_eq!(unchoked.len(), 2);
        assert!(
            !unchoked.contains(&1) && !unchoked.contains(&2),
            "seeding {seeding}: {unchoked:?}"
        );
        let alone = [squatter(1)];
        let mut choker = Choker::new(config(2), 7);
        assert_eq!(choker.rechoke(secs(0), &alone, seeding), vec![1]);
    }
}
