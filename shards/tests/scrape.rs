//! Scrapes against tiny trackers on 127.0.0.1: many torrents' counts in few requests,
//! published in each torrent's status.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ccbt_engine::hash::Sha1Digest;
use ccbt_engine::metainfo::{Metainfo, NewFile, NewTorrent};
use ccbt_engine::Bitfield;
use ccbt_shards::swarm::{Swarm, SwarmConfig, SwarmCounts, TorrentSpec, TorrentStatus, Verify};
use ccbt_shards::ShardConfig;
use common::tracker::{scrape_every_hash, Tracker, UdpTracker};

fn torrent(i: usize, tracker: &str) -> Arc<Metainfo> {
    let t = NewTorrent {
        name: format!("s{i}").into_bytes(),
        piece_length: 16 << 10,
        files: vec![NewFile {
            path: Vec::new(),
            length: 1000,
        }],
        piece_hashes: vec![Sha1Digest([7; 20])],
        trackers: vec![tracker.to_string()],
        ..NewTorrent::default()
    };
    Arc::new(Metainfo::parse(&t.encode().unwrap()).unwrap())
}

fn start(n: usize, url: &str, dir: &std::path::Path) -> (Swarm, Vec<Arc<TorrentStatus>>) {
    let swarm = Swarm::start(
        SwarmConfig {
            shards: ShardConfig::with_count(1),
            listen: "127.0.0.1".parse().unwrap(),
            port: 0,
            cache_bytes: 1 << 20,
            ..SwarmConfig::default()
        },
        None,
    )
    .unwrap();
    let pending: Vec<_> = (0..n)
        .map(|i| {
            swarm.add(TorrentSpec {
                metainfo: torrent(i, url),
                save_dir: dir.to_path_buf(),
                verify: Verify::Trusted(Bitfield::full(1)),
                sequential: false,
                priorities: None,
                keep_seeding: true,
                paused: false,
                peers: Vec::new(),
                upload_bytes_per_s: 0,
                download_bytes_per_s: 0,
            })
        })
        .collect();
    let statuses = pending.into_iter().map(|p| p.wait().unwrap()).collect();
    (swarm, statuses)
}

fn wait_all(statuses: &[Arc<TorrentStatus>], want: SwarmCounts) -> Duration {
    let t = Instant::now();
    while !statuses.iter().all(|s| s.swarm() == Some(want)) {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "counts did not arrive"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

/// 150 torrents on one HTTP tracker: their counts come in 3 scrape requests (64 hashes
/// at most each).
#[test]
fn http_scrape_batches_and_publishes_counts() {
    const N: usize = 150;
    let tracker = Tracker::start(
        Duration::ZERO,
        b"d8:intervali1800e5:peers0:e",
        scrape_every_hash,
    );
    let dir = tempfile::tempdir().unwrap();
    let (swarm, statuses) = start(N, &tracker.url("127.0.0.1"), dir.path());
    let took = wait_all(
        &statuses,
        SwarmCounts {
            seeders: 3,
            leechers: 5,
            downloaded: Some(7),
        },
    );
    let scrapes = tracker
        .record
        .arrivals
        .lock()
        .unwrap()
        .iter()
        .filter(|a| a.path == "/scrape")
        .count();
    eprintln!("{N} torrents' counts in {took:?} from {scrapes} scrape requests");
    assert_eq!(scrapes, N.div_ceil(64));
    swarm.shutdown().unwrap();
}

/// 200 torrents on one UDP tracker: 3 scrape packets of at most 74 hashes.
#[test]
fn udp_scrape_batches_and_publishes_counts() {
    const N: usize = 200;
    let tracker = UdpTracker::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("udp://127.0.0.1:{}/announce", tracker.port);
    let (swarm, statuses) = start(N, &url, dir.path());
    let took = wait_all(
        &statuses,
        SwarmCounts {
            seeders: 11,
            leechers: 12,
            downloaded: Some(13),
        },
    );
    let packets = tracker.scrapes.lock().unwrap().clone();
    eprintln!("{N} torrents' counts in {took:?} from scrape packets of {packets:?} hashes");
    assert_eq!(packets.iter().sum::<usize>(), N);
    assert_eq!(packets.len(), N.div_ceil(74));
    assert!(packets.iter().all(|&n| n <= 74));
    swarm.shutdown().unwrap();
}
