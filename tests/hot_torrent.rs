//! One hot, complete torrent served from every shard (`shards/src/swarm/replica.rs`): a
//! daemon with two shards keeps the peers each shard accepted once the torrent has
//! `hot_torrent_peers` peers, serves them correct bytes (every piece SHA-1 checked by the
//! load generator's leechers), adds the replicas' peers and uploads into the torrent's
//! status, counts its peer cap over both shards, and drops every peer, on both shards,
//! when the torrent is paused.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ccbt_loadgen::{dataset, leecher, report::Progress, torrent};
use ccbt_shards::pool::ShardConfig;
use common::daemon::Daemon;
use common::http::{http, sample};
use common::swarm::free_port;
use common::wire_peer::{closed_within, connect, message};
use serde_json::json;

const INTERESTED: u8 = 2;
const SEEDING: Duration = Duration::from_secs(30);
const STOP: Duration = Duration::from_secs(10);
/// Long enough for the owner's tick (100 ms) to see the torrent hot and for the other
/// shard to build its replica.
const REPLICATED: Duration = Duration::from_millis(600);

/// One torrent of `bytes` in 256 KiB pieces, written under `out`; its .torrent.
fn one_torrent(out: &Path, bytes: u64) -> std::path::PathBuf {
    dataset::write(
        &dataset::Spec {
            torrents: 1,
            files: 1,
            file_bytes: bytes,
            piece_length: 256 << 10,
            seed: 7,
        },
        out,
    )
    .unwrap();
    out.join("torrents/t000000.torrent")
}

/// A daemon with two shards and `limits` (lines of `[limits]`), seeding one torrent of
/// `bytes`.
struct Seeding {
    _dir: tempfile::TempDir,
    daemon: Daemon,
    torrent_path: PathBuf,
    data: PathBuf,
    hash: String,
    raw: [u8; 20],
    addr: SocketAddr,
}

fn seeding(bytes: u64, limits: &str) -> Seeding {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let set = dir.path().join("set");
    let torrent_path = one_torrent(&set, bytes);
    let config = home.join("ccbt.toml");
    std::fs::write(&config, format!("[limits]\n{limits}\n")).unwrap();
    let port = free_port();
    let mut daemon = Daemon::start(
        &home,
        &[
            "--config",
            config.to_str().unwrap(),
            "--peer-port",
            &port.to_string(),
            "--shards",
            "2",
            "--no-pin",
        ],
    );
    let data = set.join("data");
    let hash = daemon.add(&torrent_path, &["--save-dir", data.to_str().unwrap()]);
    daemon.wait_state(&hash, "seeding", SEEDING);
    Seeding {
        _dir: dir,
        daemon,
        torrent_path,
        raw: raw_hash(&hash),
        hash,
        data,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

fn raw_hash(hash: &str) -> [u8; 20] {
    <ccbt_engine::InfoHash as std::str::FromStr>::from_str(hash)
        .unwrap()
        .0
}

/// A peer that handshakes and says it is interested, then just holds the connection.
fn interested_peer(addr: SocketAddr, hash: &[u8; 20], id: u8) -> TcpStream {
    let mut s = connect(addr, hash, id);
    s.write_all(&message(INTERESTED, &[])).unwrap();
    s
}

fn replica_accepts(daemon: &Daemon) -> f64 {
    let scrape = http(&daemon.api, "GET", "/metrics", &[]);
    sample(&scrape.body, "ccbt_replica_accepts_total").unwrap_or_else(|| {
        panic!(
            "no ccbt_replica_accepts_total in the scrape:\n{}",
            scrape.body
        )
    })
}

/// `peersConnected` and `uploadedEver` of the torrent, through the Transmission RPC.
fn peers_and_uploaded(daemon: &Daemon, hash: &str) -> (u64, u64) {
    let answer = daemon.rpc(json!({
        "method": "torrent-get",
        "arguments": {"ids": [hash], "fields": ["peersConnected", "uploadedEver"]}
    }));
    let t = &answer["arguments"]["torrents"][0];
    (
        t["peersConnected"].as_u64().unwrap(),
        t["uploadedEver"].as_u64().unwrap(),
    )
}

/// Polls `what` until `ok` holds, within `limit`; the last value either way.
fn wait_until<T: std::fmt::Debug>(
    limit: Duration,
    mut what: impl FnMut() -> T,
    ok: impl Fn(&T) -> bool,
) -> T {
    let until = Instant::now() + limit;
    loop {
        let value = what();
        if ok(&value) || Instant::now() > until {
            return value;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_hot_torrent_is_served_from_every_shard_and_stops_with_its_owner() {
    let Seeding {
        _dir,
        mut daemon,
        torrent_path,
        data,
        hash,
        raw,
        addr,
    } = seeding(
        16 << 20,
        "hot_torrent_peers = 4\nmax_peers_per_torrent = 200",
    );

    // Four peers make it hot; they are all the owner's (handed to it if need be).
    let mut held: Vec<TcpStream> = (1..=4).map(|id| interested_peer(addr, &raw, id)).collect();
    std::thread::sleep(REPLICATED);
    assert_eq!(replica_accepts(&daemon), 0.0, "a replica before it was hot");

    // 40 leechers, each checking every piece it takes against its SHA-1.
    let torrents = torrent::load_all(std::slice::from_ref(&torrent_path)).unwrap();
    let summary = leecher::run(leecher::Options {
        torrents,
        targets: vec![addr],
        peers: 40,
        duration: Duration::from_secs(4),
        shards: ShardConfig {
            pin: false,
            ..ShardConfig::with_count(1)
        },
        pipeline: 16,
        connect_concurrency: 8,
        progress: Progress::Off,
    })
    .unwrap();
    assert_eq!(summary.errors, 0, "{:?}", summary.error_messages);
    assert!(summary.bytes > 0, "nothing was served: {summary:?}");
    assert_eq!(summary.connections, 40, "{summary:?}");
    let took = replica_accepts(&daemon);
    // The blocks' service times are on /metrics, on both shards.
    let scrape = http(&daemon.api, "GET", "/metrics", &[]).body;
    let served = sample(&scrape, "ccbt_service_seconds_count").unwrap_or(0.0);
    assert!(served > 0.0, "no service times on /metrics:\n{scrape}");
    for shard in 0..2 {
        let name = format!("ccbt_shard_service_seconds_count{{shard=\"{shard}\"}}");
        assert!(
            sample(&scrape, &name).is_some_and(|n| n > 0.0),
            "shard {shard} served no block"
        );
    }
    assert!(
        took > 0.0,
        "no leecher was served by the other shard's replica\n{}",
        daemon.running.log_tail()
    );

    // What the replica served is in the torrent's figures.
    let (_, uploaded) = wait_until(
        Duration::from_secs(5),
        || peers_and_uploaded(&daemon, &hash),
        |(_, up)| *up >= summary.bytes,
    );
    assert!(
        uploaded >= summary.bytes,
        "uploadedEver {uploaded} < the {} bytes the leechers took",
        summary.bytes
    );

    // Twelve more held peers: both shards' peers are counted.
    held.extend((5..=16).map(|id| {
        std::thread::sleep(Duration::from_millis(30));
        interested_peer(addr, &raw, id)
    }));
    let (peers, _) = wait_until(
        Duration::from_secs(5),
        || peers_and_uploaded(&daemon, &hash),
        |(peers, _)| *peers == 16,
    );
    assert_eq!(peers, 16, "peersConnected over both shards");
    assert!(
        replica_accepts(&daemon) > took,
        "no held peer is the replica's"
    );

    // Pausing drops every peer, the replica's too.
    daemon.remote(&["pause", &hash]).ok();
    for (i, s) in held.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "peer {i} still connected after pause\n{}",
            daemon.running.log_tail()
        );
    }
    daemon.wait_state(&hash, "paused", SEEDING);
    daemon.remote(&["resume", &hash]).ok();
    daemon.wait_state(&hash, "seeding", SEEDING);
    daemon.remote(&["remove", &hash, "--delete-data"]).ok();
    let file = std::fs::read_dir(&data).unwrap().count();
    assert_eq!(file, 0, "the data was not deleted");
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
}

#[test]
fn the_peer_cap_counts_the_peers_of_every_shard() {
    let Seeding {
        _dir,
        mut daemon,
        hash,
        raw,
        addr,
        ..
    } = seeding(2 << 20, "hot_torrent_peers = 4\nmax_peers_per_torrent = 10");
    let mut peers: Vec<TcpStream> = (1..=4).map(|id| interested_peer(addr, &raw, id)).collect();
    std::thread::sleep(REPLICATED);
    // One at a time, slower than the shards' 100 ms ticks, so the counts are fresh.
    peers.extend((5..=20).map(|id| {
        std::thread::sleep(Duration::from_millis(200));
        interested_peer(addr, &raw, id)
    }));
    let mut open = 0;
    for s in peers.iter_mut() {
        if !closed_within(s, Duration::from_millis(300)) {
            open += 1;
        }
    }
    assert_eq!(open, 10, "peers kept with a cap of 10 over two shards");
    assert!(
        replica_accepts(&daemon) > 0.0,
        "no peer landed on the replica: the test proves nothing"
    );
    let (connected, _) = peers_and_uploaded(&daemon, &hash);
    assert_eq!(connected, 10);
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
}

/// A held peer whose reader thread follows what we last said: choked or unchoked.
struct Watched {
    _stream: TcpStream,
    unchoked: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

fn watched_peer(addr: SocketAddr, hash: &[u8; 20], id: u8) -> Watched {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stream = interested_peer(addr, hash, id);
    let unchoked = std::sync::Arc::new(AtomicBool::new(false));
    let (mut reader, flag) = (stream.try_clone().unwrap(), unchoked.clone());
    reader.set_read_timeout(None).unwrap();
    std::thread::spawn(move || {
        while let Ok(message) = common::wire_peer::read_message(&mut reader) {
            match message {
                Some((0, _)) => flag.store(false, Ordering::Release),
                Some((1, _)) => flag.store(true, Ordering::Release),
                _ => {}
            }
        }
        flag.store(false, Ordering::Release);
    });
    Watched {
        _stream: stream,
        unchoked,
    }
}

#[test]
fn upload_slots_are_shared_out_not_multiplied_by_the_shards() {
    use std::sync::atomic::Ordering;
    let Seeding {
        _dir,
        mut daemon,
        raw,
        addr,
        ..
    } = seeding(
        2 << 20,
        "hot_torrent_peers = 4\nupload_slots = 4\nmax_peers_per_torrent = 100",
    );
    let mut peers: Vec<Watched> = (1..=4).map(|id| watched_peer(addr, &raw, id)).collect();
    std::thread::sleep(REPLICATED);
    peers.extend((5..=16).map(|id| {
        std::thread::sleep(Duration::from_millis(30));
        watched_peer(addr, &raw, id)
    }));
    let unchoked = || {
        peers
            .iter()
            .filter(|p| p.unchoked.load(Ordering::Acquire))
            .count()
    };
    // Let the choke messages of the owner's first rechoke (4 slots, then its share of
    // 2) arrive; from then on the two shards together unchoke at most the 4 slots.
    std::thread::sleep(Duration::from_secs(1));
    let mut most = 0;
    let until = Instant::now() + Duration::from_secs(14);
    while Instant::now() < until {
        let now = unchoked();
        assert!(
            now <= 4,
            "{now} peers unchoked with 4 upload slots over two shards"
        );
        most = most.max(now);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        replica_accepts(&daemon) > 0.0,
        "no peer landed on the replica: the test proves nothing"
    );
    assert_eq!(most, 4, "the two shards never used all 4 slots");
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
}
