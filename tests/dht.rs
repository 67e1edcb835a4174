//! The DHT (BEP 5) wired to the swarm, on 127.0.0.1 with no tracker anywhere:
//! - `download MAGNET` finds a libtorrent seeder through the DHT alone (the only node it is
//!   told of is libtorrent's, with `--dht-bootstrap`), fetches the metadata and the data;
//!   bytes compared;
//! - a private torrent (BEP 27) is never looked up or announced: a scripted bootstrap node
//!   counts the queries that reach it, and sees the public torrent seeded beside it but
//!   never the private one.
//!
//! - libtorrent downloads a magnet link from a ccbt-uring seeder it found through the DHT;
//! - the daemon keeps its routing table in `dht.dat` and rejoins from it after a restart;
//! - a peer's `port` message gets its DHT node one ping (none for a private torrent);
//! - a DHT of 22 nodes (18 libtorrent nodes holding no torrent, a libtorrent seeder and
//!   downloader, and two of ours) carries both ways: each side finds the other's seeder
//!   having joined through a mesh node that is not that seeder.
//!
//! libtorrent comes from Debian's python3-libtorrent (`tools/install-deps.sh`); without it
//! the first test skips unless `CCBT_REQUIRE_INTEROP` is set.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::swarm::{assert_same_tree, free_port, interop_ready, Client, Running};
use common::{ccbt, our_info_hash, run_for, write_tree};

const PYTHON: &str = "/usr/bin/python3";

fn script(name: &str) -> String {
    format!("{}/tests/scripts/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// `files` under `root/name`, and a tracker-less torrent of them (private if asked).
fn make_torrent(
    root: &Path,
    name: &str,
    files: &[(&str, usize)],
    private: bool,
) -> std::path::PathBuf {
    let content = root.join(name);
    write_tree(&content, files);
    let torrent = root.join(format!("{name}.torrent"));
    let mut cmd = ccbt();
    cmd.arg("create").arg(&content).arg("-o").arg(&torrent);
    if private {
        cmd.arg("--private");
    }
    run_for(&mut cmd, Duration::from_secs(60)).ok();
    torrent
}

/// Waits until `who`'s log has a line for which `want` holds.
fn wait_log(who: &Running, limit: Duration, what: &str, want: impl Fn(&str) -> bool) {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if who.log().lines().any(&want) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{} did not {what} within {limit:?}\n{}",
        who.name(),
        who.log()
    );
}

#[test]
fn download_a_magnet_from_a_libtorrent_seeder_found_through_the_dht() {
    if !interop_ready(&[Client::Libtorrent]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = [("a.bin", 3 << 20), ("sub/b.bin", 700_001)];
    let torrent = make_torrent(&seed_dir, "dhtswarm", &files, false);
    let hash = our_info_hash(&torrent);
    let (lt_port, our_port) = (free_port(), free_port());
    let (lt_torrent, lt_save) = (torrent.clone(), seed_dir.clone());
    let lt = Running::start("libtorrent", move |_| {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script("lt_dht_seed.py"))
            .arg(&lt_torrent)
            .arg(&lt_save)
            .arg(lt_port.to_string())
            .arg(our_port.to_string());
        cmd
    });
    wait_log(&lt, Duration::from_secs(15), "listen", |l| {
        l.starts_with("lt_dht_seed: listening")
    });
    let out = dir.path().join("out");
    let magnet = format!("magnet:?xt=urn:btih:{hash}");
    let started = Instant::now();
    let mut leech = Running::start("ccbt-uring", |_| {
        let mut cmd = ccbt();
        cmd.args(["download", &magnet, "-o"])
            .arg(&out)
            .args(["--listen", "127.0.0.1", "--port", &our_port.to_string()])
            .args(["--dht-bootstrap", &format!("127.0.0.1:{lt_port}")])
            .env("RUST_LOG", "info,ccbt_shards::swarm::dht=debug");
        cmd
    });
    leech.wait_success(Duration::from_secs(50));
    eprintln!("downloaded through the DHT in {:.1?}", started.elapsed());
    assert_same_tree(&seed_dir.join("dhtswarm"), &out.join("dhtswarm"));
    drop(lt);
}

#[test]
fn libtorrent_downloads_a_magnet_from_our_seeder_found_through_the_dht() {
    if !interop_ready(&[Client::Libtorrent]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let seed_dir = dir.path().join("seed");
    let files = [("c.bin", 2 << 20), ("d/e.bin", 300_007)];
    let torrent = make_torrent(&seed_dir, "ourswarm", &files, false);
    let hash = our_info_hash(&torrent);
    let (lt_port, our_port) = (free_port(), free_port());
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let magnet = format!("magnet:?xt=urn:btih:{hash}");
    let lt_out = out.clone();
    let mut lt = Running::start("libtorrent", move |_| {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script("lt_dht_download.py"))
            .arg(&magnet)
            .arg(&lt_out)
            .arg(lt_port.to_string())
            .arg(our_port.to_string());
        cmd
    });
    wait_log(&lt, Duration::from_secs(15), "listen", |l| {
        l.starts_with("lt_dht_download: listening")
    });
    let started = Instant::now();
    let seeder = Running::start("ccbt-uring", |_| {
        let mut cmd = ccbt();
        cmd.arg("seed")
            .arg(&torrent)
            .arg("--data")
            .arg(&seed_dir)
            .args(["--listen", "127.0.0.1", "--port", &our_port.to_string()])
            .args(["--dht-bootstrap", &format!("127.0.0.1:{lt_port}")]);
        cmd
    });
    lt.wait_success(Duration::from_secs(50));
    eprintln!(
        "libtorrent downloaded from us through the DHT in {:.1?}",
        started.elapsed()
    );
    assert_same_tree(&seed_dir.join("ourswarm"), &out.join("ourswarm"));
    drop(seeder);
}

#[test]
fn a_private_torrent_is_never_looked_up_or_announced() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let public = make_torrent(&data, "public", &[("p.bin", 100_000)], false);
    let private = make_torrent(&data, "private", &[("q.bin", 100_000)], true);
    let (public_hash, private_hash) = (our_info_hash(&public), our_info_hash(&private));
    let (boot_port, our_port) = (free_port(), free_port());
    let counter = Running::start("dht_counter", move |_| {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script("dht_counter.py")).arg(boot_port.to_string());
        cmd
    });
    wait_log(&counter, Duration::from_secs(10), "listen", |l| {
        l == "dht_counter: listening"
    });
    let seeder = Running::start("ccbt-uring", |_| {
        let mut cmd = ccbt();
        cmd.arg("seed")
            .arg(&private)
            .arg(&public)
            .arg("--data")
            .arg(&data)
            .args(["--listen", "127.0.0.1", "--port", &our_port.to_string()])
            .args(["--dht-bootstrap", &format!("127.0.0.1:{boot_port}")]);
        cmd
    });
    // The control: the public torrent seeded beside it is announced, so queries for a
    // torrent do reach the counter.
    wait_log(
        &counter,
        Duration::from_secs(30),
        "see the public torrent announced",
        |l| l == format!("query announce_peer {public_hash}"),
    );
    // Both torrents started together; give the private one as long again.
    std::thread::sleep(Duration::from_secs(6));
    let log = counter.log();
    let for_private: Vec<&str> = log.lines().filter(|l| l.contains(&private_hash)).collect();
    assert!(
        for_private.is_empty(),
        "queries for the private torrent reached the DHT: {for_private:?}\n{log}"
    );
    let queries = log.lines().filter(|l| l.starts_with("query ")).count();
    eprintln!("{queries} queries reached the bootstrap node, none for the private torrent");
    drop(seeder);
}

/// Libtorrent nodes of the mesh (`lt_dht_mesh.py`), besides the four peers.
const MESH_NODES: usize = 18;

#[test]
fn a_dht_of_twenty_two_nodes_finds_seeders_both_ways() {
    if !interop_ready(&[Client::Libtorrent]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mesh_ports: Vec<u16> = (0..MESH_NODES).map(|_| free_port()).collect();
    let ports: Vec<String> = mesh_ports.iter().map(u16::to_string).collect();
    let mesh = Running::start("libtorrent DHT mesh", move |_| {
        let mut cmd = Command::new(PYTHON);
        cmd.arg("-u").arg(script("lt_dht_mesh.py")).args(&ports);
        cmd
    });
    wait_log(&mesh, Duration::from_secs(30), "form one DHT", |l| {
        l == "mesh: ready"
    });
    let node = |i: usize| format!("127.0.0.1:{}", mesh_ports[i]);

    // libtorrent seeds A (joining through mesh node 0); we fetch A through node 17.
    let lt_dir = dir.path().join("lt-seed");
    let a = make_torrent(
        &lt_dir,
        "mesh-a",
        &[("a.bin", 2 << 20), ("s/b.bin", 99_991)],
        false,
    );
    let a_hash = our_info_hash(&a);
    let (lt_torrent, lt_save, lt_port, lt_boot) =
        (a.clone(), lt_dir.clone(), free_port(), mesh_ports[0]);
    let _lt_seed = Running::start("libtorrent seeder", move |_| {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script("lt_dht_seed.py"))
            .arg(&lt_torrent)
            .arg(&lt_save)
            .arg(lt_port.to_string())
            .arg(lt_boot.to_string());
        cmd
    });
    // We seed B (joining through node 1); libtorrent fetches B through node 16.
    let our_dir = dir.path().join("our-seed");
    let b = make_torrent(
        &our_dir,
        "mesh-b",
        &[("c.bin", 1 << 20), ("d/e.bin", 77_777)],
        false,
    );
    let b_hash = our_info_hash(&b);
    let _our_seed = Running::start("ccbt-uring seeder", |_| {
        let mut cmd = ccbt();
        cmd.arg("seed")
            .arg(&b)
            .arg("--data")
            .arg(&our_dir)
            .args(["--listen", "127.0.0.1", "--port", &free_port().to_string()])
            .args(["--dht-bootstrap", &node(1)]);
        cmd
    });

    let started = Instant::now();
    let out = dir.path().join("our-out");
    let mut our_leech = Running::start("ccbt-uring downloader", |_| {
        let mut cmd = ccbt();
        cmd.args(["download", &format!("magnet:?xt=urn:btih:{a_hash}"), "-o"])
            .arg(&out)
            .args(["--listen", "127.0.0.1", "--port", &free_port().to_string()])
            .args(["--dht-bootstrap", &node(MESH_NODES - 1)])
            .env("RUST_LOG", "info,ccbt_shards::swarm::dht=debug");
        cmd
    });
    let lt_out = dir.path().join("lt-out");
    std::fs::create_dir_all(&lt_out).unwrap();
    let (magnet_b, lt_out2, lt_boot2) = (
        format!("magnet:?xt=urn:btih:{b_hash}"),
        lt_out.clone(),
        mesh_ports[MESH_NODES - 2],
    );
    let mut lt_leech = Running::start("libtorrent downloader", move |_| {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script("lt_dht_download.py"))
            .arg(&magnet_b)
            .arg(&lt_out2)
            .arg(free_port().to_string())
            .arg(lt_boot2.to_string());
        cmd
    });
    our_leech.wait_success(Duration::from_secs(60));
    eprintln!(
        "ccbt-uring found libtorrent's seeder in {:.1?}",
        started.elapsed()
    );
    lt_leech.wait_success(Duration::from_secs(60));
    eprintln!("libtorrent found our seeder in {:.1?}", started.elapsed());
    assert_same_tree(&lt_dir.join("mesh-a"), &out.join("mesh-a"));
    assert_same_tree(&our_dir.join("mesh-b"), &lt_out.join("mesh-b"));
    drop(mesh);
}

#[test]
fn the_daemon_keeps_its_routing_table_across_a_restart() {
    let home = tempfile::tempdir().unwrap();
    let boot_port = free_port();
    let counter = Running::start("dht_counter", move |_| {
        let mut cmd = Command::new(PYTHON);
        cmd.arg(script("dht_counter.py")).arg(boot_port.to_string());
        cmd
    });
    wait_log(&counter, Duration::from_secs(10), "listen", |l| {
        l == "dht_counter: listening"
    });
    let queries = |c: &Running| c.log().lines().filter(|l| l.starts_with("query ")).count();
    let boot = format!("127.0.0.1:{boot_port}");
    let peer_port = free_port().to_string();
    let args = ["--peer-port", peer_port.as_str()];
    let mut daemon = Daemon::start_with_env(
        home.path(),
        &args,
        &[("CCBT_DHT_BOOTSTRAP", Path::new(&boot))],
    );
    wait_log(
        &counter,
        Duration::from_secs(15),
        "hear the daemon join",
        |l| l == "query find_node",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(daemon.stop(Duration::from_secs(15)).success());
    let saved =
        std::fs::read(daemon.state_dir.join("dht.dat")).expect("dht.dat written at shutdown");
    // Header (magic, our id) and one 26-byte node: the counter, under its id.
    assert_eq!(saved.len(), 28 + 26, "{saved:?}");
    assert_eq!(&saved[28..48], &[0x11; 20]);
    let before = queries(&counter);
    // Restarted with a bootstrap node that does not exist: the counter is asked again only
    // because the saved table named it.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut daemon = Daemon::start_with_env(
        home.path(),
        &args,
        &[("CCBT_DHT_BOOTSTRAP", Path::new(&nowhere))],
    );
    let until = Instant::now() + Duration::from_secs(20);
    while queries(&counter) == before {
        assert!(
            Instant::now() < until,
            "the restarted daemon never asked the node its saved table holds\n{}",
            daemon.running.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(daemon.stop(Duration::from_secs(15)).success());
}

/// BEP 5's `port` message: a peer that names its DHT node gets one ping there (once per
/// connection, however often it says so); a port of 0 names nothing; a private torrent's
/// peers are never pinged (BEP 27: no DHT for it).
#[test]
fn a_peers_port_message_gets_its_dht_node_pinged_once() {
    use common::wire_peer::{self, message};
    use std::io::Write;
    use std::net::{SocketAddr, UdpSocket};

    let dir = tempfile::tempdir().unwrap();
    let public = make_torrent(dir.path(), "public", &[("p.bin", 100_000)], false);
    let private = make_torrent(dir.path(), "private", &[("q.bin", 100_000)], true);
    let port = free_port();
    let seeder = ccbt_pair(&public, &private, dir.path(), port);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let pings = |info_hash: &str, ports: &[u16]| -> usize {
        let node = UdpSocket::bind("127.0.0.1:0").unwrap();
        node.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut hash = [0u8; 20];
        for (i, b) in hash.iter_mut().enumerate() {
            *b = u8::from_str_radix(&info_hash[2 * i..2 * i + 2], 16).unwrap();
        }
        let mut peer = wire_peer::connect(addr, &hash, 9);
        for &p in ports {
            let p = if p == 1 {
                node.local_addr().unwrap().port()
            } else {
                p
            };
            peer.write_all(&message(9, &p.to_be_bytes())).unwrap();
        }
        let until = Instant::now() + Duration::from_secs(3);
        let mut seen = 0;
        let mut buf = [0u8; 1500];
        while Instant::now() < until {
            if let Ok((n, _)) = node.recv_from(&mut buf) {
                let datagram = &buf[..n];
                let has = |s: &[u8]| datagram.windows(s.len()).any(|w| w == s);
                assert!(has(b"1:y1:q") && has(b"4:ping"), "{datagram:?}");
                seen += 1;
            }
        }
        seen
    };
    let public_hash = our_info_hash(&public);
    // 1 stands for the node's own port; it is said three times.
    assert_eq!(
        pings(&public_hash, &[1, 1, 1]),
        1,
        "{}",
        seeder.running.log_tail()
    );
    assert_eq!(pings(&public_hash, &[0]), 0);
    assert_eq!(pings(&our_info_hash(&private), &[1]), 0);
}

/// A daemon on `port` seeding both torrents (their data is under `root`), once both run.
fn ccbt_pair(public: &Path, private: &Path, root: &Path, port: u16) -> Daemon {
    let home = root.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let daemon = Daemon::start(&home, &["--peer-port", &port.to_string()]);
    for t in [public, private] {
        daemon
            .remote(&[
                "add",
                t.to_str().unwrap(),
                "--save-dir",
                root.to_str().unwrap(),
            ])
            .ok();
    }
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let list = daemon.remote(&["list"]).ok().json();
        let torrents = list["torrents"].as_array().cloned().unwrap_or_default();
        if torrents.len() == 2 && torrents.iter().all(|t| t["state"] == "seeding") {
            return daemon;
        }
        assert!(Instant::now() < until, "{list}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
