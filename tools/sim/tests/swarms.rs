//! The simulator's properties over many seeds, the large swarm, exact replay, and
//! checks that the properties can fail.

use ccbt_sim::{Role, Scenario, Script};

/// Seeds every CI run covers; `ccbt-sim --seeds A..B` runs more.
const SEEDS: u64 = 300;

#[test]
fn a_few_hundred_random_swarms_complete_with_the_right_bytes() {
    let mut failures = Vec::new();
    let (mut bans, mut failed_pieces, mut stalls) = (0, 0, 0);
    for seed in 0..SEEDS {
        match ccbt_sim::run(Scenario::random(seed)) {
            Ok(report) => {
                bans += report.bans.len();
                failed_pieces += report.failed_pieces;
                stalls += report.stalled;
            }
            Err(e) => failures.push(format!("{e}\n  replay: ccbt-sim --seeds {seed} --verbose")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The seeds reach what they are for: liars banned, pieces failing, writers stalled.
    assert!(bans > 100, "{bans} bans");
    assert!(failed_pieces > 100, "{failed_pieces} failed pieces");
    assert!(stalls > 0, "no writer ever stalled");
}

/// The figure: 1,000 peers, a tenth of them liars, 5% of segments lost.
#[test]
fn a_thousand_peers_with_a_tenth_liars_and_lossy_links_complete() {
    let report = ccbt_sim::run(Scenario::large(1, 1000, 100, 0.05)).unwrap();
    println!("{report}");
    assert!(report.losses > 1000, "{} losses", report.losses);
    assert!(
        report.liars_caught >= 50,
        "{} liars caught",
        report.liars_caught
    );
    assert!(report.bans.iter().all(|&(_, _, role)| role == Role::Liar));
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 4, 12] {
        let a = ccbt_sim::run(Scenario::random(seed)).unwrap();
        let b = ccbt_sim::run(Scenario::random(seed)).unwrap();
        assert_eq!(
            (a.events, a.simulated, a.segments, &a.bans, &a.drops),
            (b.events, b.simulated, b.segments, &b.bans, &b.drops),
            "seed {seed}"
        );
    }
    let a = ccbt_sim::run(Scenario::random(5)).unwrap();
    let b = ccbt_sim::run(Scenario::random(6)).unwrap();
    assert_ne!((a.events, a.simulated), (b.events, b.simulated));
}

/// Peers that never read are dropped by their writers' deadline or by the outbox bound;
/// the bytes held for each stay under the socket buffer plus that bound.
#[test]
fn never_readers_are_dropped_and_hold_bounded_memory() {
    let mut held = 0;
    let mut dropped = 0;
    for seed in 0..20 {
        let mut sc = Scenario::random(seed);
        sc.roles = vec![Role::Seeder, Role::Leecher, Role::Leecher];
        sc.roles.extend([Role::Script(Script::NeverReads); 6]);
        sc.session.max_peers = 80;
        sc.session.choker.upload_slots = 8;
        let report = ccbt_sim::run(sc).unwrap_or_else(|e| panic!("{e}"));
        held = held.max(report.never_reader_held_max);
        dropped += report.stalled_never_readers + report.drops.get("NotReading").unwrap_or(&0);
    }
    assert!(dropped > 0, "no never-reader was dropped");
    assert!(
        held <= 256 * 1024 + 256 * 1024 + 64,
        "{held} bytes held for one"
    );
}
