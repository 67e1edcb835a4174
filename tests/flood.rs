//! The load generator's flood against `seed`: every kind of hostile connection at once
//! (half-open, garbage handshakes, slowloris, never-readers, request and HAVE floods),
//! with leechers that were downloading before it began and go on through it, and new
//! leechers arriving once the flood holds every slot of the torrent.
//!
//! What must hold: the seeder survives; each hostile kind is closed by it (handshake
//! kinds within the handshake deadline); its descriptors and memory stay under their
//! bounds and the descriptors come back once the flood stops; the leechers it was serving
//! go on getting data all through the flood (they move payload, so the flood cannot take
//! their slots); and what every leecher gets is verified data. Throughputs are printed,
//! not asserted (whether newcomers win a freed slot against the flood's own newcomers
//! varies, and the flood generator shares the machine's cores): the figures for the
//! benchmark are in BENCHMARKS.md.

mod common;

use std::path::Path;
use std::time::Duration;

use ccbt_loadgen::flood::{self, Kind};
use ccbt_loadgen::{leecher, report::Progress, torrent};
use ccbt_shards::pool::ShardConfig;
use common::swarm::{self, free_port, wait_listening};

const FLOOD: u32 = 600;
const FLOOD_FOR: Duration = Duration::from_secs(55);
/// The leechers arrive this long after the flood started, and leech until it ends.
const ARRIVE_AFTER: Duration = Duration::from_secs(6);
const LEECH_FOR: Duration = Duration::from_secs(45);
/// The leechers that stay start this long before the flood and leech until it ends.
const STAY_BEFORE: Duration = Duration::from_secs(3);
/// The shards' handshake deadline, with room for a loaded machine.
const HANDSHAKE_HELD_MAX_S: f64 = 15.0;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        .unwrap_or(0)
}

fn leech(torrent: &Path, port: u16, peers: u32, for_: Duration) -> ccbt_loadgen::report::Summary {
    leecher::run(leecher::Options {
        torrents: torrent::load_all(&[torrent.to_path_buf()]).unwrap(),
        targets: vec![([127, 0, 0, 1], port).into()],
        peers,
        duration: for_,
        shards: ShardConfig::with_count(1),
        pipeline: 64,
        connect_concurrency: 16,
        progress: Progress::Off,
    })
    .unwrap()
}

#[test]
fn a_flood_of_hostile_connections_does_not_lock_leechers_out() {
    ccbt_loadgen::net::raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let spec = torrent::Spec {
        size: 32 << 20,
        piece_size: 256 << 10,
        seed: 14,
        name: Some("flood.bin".into()),
        trackers: Vec::new(),
    };
    let torrent_path = dir.path().join("flood.torrent");
    std::fs::write(&torrent_path, torrent::build(&spec).unwrap()).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    torrent::write_file(&spec, &data.join("flood.bin")).unwrap();
    let port = free_port();
    let mut seed = swarm::ccbt_swarm("seed", &torrent_path, &data, port, 2, &["--no-dht"]);
    wait_listening(port, &seed);
    let pid = seed.pid();

    let before = leech(&torrent_path, port, 8, Duration::from_secs(5));
    assert!(before.bytes > 0 && before.errors == 0, "{before:?}");
    std::thread::sleep(Duration::from_secs(1));
    let fds_idle = open_fds(pid);

    let staying = {
        let torrent_path = torrent_path.clone();
        std::thread::spawn(move || leech(&torrent_path, port, 4, STAY_BEFORE + FLOOD_FOR))
    };
    std::thread::sleep(STAY_BEFORE);
    let flooding = {
        let torrent_path = torrent_path.clone();
        std::thread::spawn(move || {
            flood::run(flood::Options {
                torrent: torrent::load_all(&[torrent_path]).unwrap().remove(0),
                target: ([127, 0, 0, 1], port).into(),
                connections: FLOOD,
                kinds: flood::ALL_KINDS.to_vec(),
                duration: FLOOD_FOR,
                shards: ShardConfig::with_count(1),
                connect_concurrency: 64,
            })
            .unwrap()
        })
    };
    std::thread::sleep(ARRIVE_AFTER);
    let watching = std::thread::spawn(move || {
        let (mut fds_max, mut rss_max) = (0, 0);
        for _ in 0..LEECH_FOR.as_secs() {
            std::thread::sleep(Duration::from_secs(1));
            fds_max = fds_max.max(open_fds(pid));
            rss_max = rss_max.max(rss_kib(pid));
        }
        (fds_max, rss_max)
    });
    let during = leech(&torrent_path, port, 8, LEECH_FOR);
    let (fds_max, rss_max) = watching.join().unwrap();
    let flooded = flooding.join().unwrap();
    let stayed = staying.join().unwrap();
    print!("{}", flooded.table());
    // Each second of the flood but its first, which may have begun before it did.
    let flood_seconds = &stayed.per_second[STAY_BEFORE.as_secs() as usize + 1..];
    println!(
        "leechers: {:.0} MB/s alone; under the flood {:.0} MB/s for newcomers, {:.0} MB/s for those that stayed; seeder: {fds_max} fds (idle {fds_idle}), {} MiB RSS at most",
        before.mb_per_s,
        during.mb_per_s,
        flood_seconds.iter().sum::<u64>() as f64 / flood_seconds.len() as f64 / 1e6,
        rss_max / 1024
    );

    assert!(seed.is_running(), "the seeder died\n{}", seed.log_tail());
    // Whether the leechers win a freed slot against the flood's own newcomers varies from
    // run to run (one CI run got none in 45 s): the figure is printed, not asserted; the
    // replacement rule has its own engine test.
    assert_eq!(during.errors, 0, "{:?}", during.error_messages);
    assert_eq!(stayed.errors, 0, "{:?}", stayed.error_messages);
    // The leechers the seeder was serving are never locked out: some data in every
    // 5 s of the flood.
    for (i, window) in flood_seconds.chunks(5).enumerate() {
        assert!(
            window.iter().sum::<u64>() > 0,
            "the staying leechers got nothing in seconds {}..{} of the flood: {:?}",
            5 * i,
            5 * i + window.len(),
            stayed.per_second
        );
    }
    for kind in flood::ALL_KINDS {
        let k = flooded.kind(kind).unwrap();
        assert!(k.connected > 0, "{kind:?} never connected: {k:?}");
        assert!(k.closed_by_target > 0, "{kind:?} was never closed: {k:?}");
        if matches!(kind, Kind::HalfOpen | Kind::Slowloris) {
            assert!(
                k.mean_held_s <= HANDSHAKE_HELD_MAX_S,
                "{kind:?} held for {} s",
                k.mean_held_s
            );
        }
    }
    // Two shards of 2000 connections each bound the sockets (`--max-connections`); the
    // listeners, files, rings and pipes are a few dozen more.
    assert!(fds_max <= 2 * 2000 + 200, "{fds_max} descriptors open");
    assert!(rss_max < 1 << 20, "{rss_max} KiB resident");
    // The flood's connections are gone: the descriptors come back.
    let mut fds_after = open_fds(pid);
    for _ in 0..40 {
        if fds_after <= fds_idle + 16 {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
        fds_after = open_fds(pid);
    }
    assert!(
        fds_after <= fds_idle + 16,
        "{fds_after} descriptors open after the flood, {fds_idle} before"
    );
    assert!(seed.is_running(), "the seeder died\n{}", seed.log_tail());
}
