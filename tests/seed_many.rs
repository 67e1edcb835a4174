//! `ccbt-uring seed` with many torrents: a directory of them seeds from one process; a
//! torrent with incomplete or missing data and a .torrent that is not one are reported and
//! skipped; idle torrents wake up and serve when a peer comes; nothing to seed is exit 1.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use ccbt_engine::metainfo::Metainfo;
use common::swarm::{free_port, wait_listening, Running};
use common::wire_peer::{self, message, request, wait_for};
use common::{ccbt, run};

const PIECE: u32 = 16384;

/// Five single-file torrents of two pieces each under `root`: `torrents/` and `data/`.
fn dataset(root: &Path) {
    let spec = ccbt_loadgen::dataset::Spec {
        torrents: 5,
        files: 1,
        file_bytes: 2 * u64::from(PIECE),
        piece_length: PIECE,
        seed: 7,
    };
    ccbt_loadgen::dataset::write(&spec, root).unwrap();
}

fn info_hash(torrent: &Path) -> [u8; 20] {
    *Metainfo::parse(&std::fs::read(torrent).unwrap())
        .unwrap()
        .info_hash
        .as_bytes()
}

fn seed(root: &Path, port: u16) -> Running {
    let (torrents, data) = (root.join("torrents"), root.join("data"));
    Running::start("ccbt-uring seed (many)", move |_| {
        let mut cmd = ccbt();
        cmd.arg("seed")
            .arg(&torrents)
            .arg("--data")
            .arg(&data)
            .args(["--listen", "127.0.0.1", "--port", &port.to_string()])
            .args(["--shards", "2"]);
        cmd
    })
}

#[test]
fn a_directory_seeds_and_bad_torrents_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    dataset(root);
    // t000001: a flipped byte; t000002: no data; plus a file that is no torrent.
    let mut bytes = std::fs::read(root.join("data/t000001")).unwrap();
    bytes[100] ^= 1;
    std::fs::write(root.join("data/t000001"), bytes).unwrap();
    std::fs::remove_file(root.join("data/t000002")).unwrap();
    std::fs::write(root.join("torrents/zz-garbage.torrent"), b"d4:infoi1ee").unwrap();

    let port = free_port();
    let mut seeder = seed(root, port);
    wait_listening(port, &seeder);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seeder.log().contains("loaded in") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = seeder.log();
    assert!(
        log.contains("seeding 3 torrents on port") && log.contains("(3 skipped)"),
        "{log}"
    );
    assert!(
        log.contains("skipping t000001: its data is incomplete"),
        "{log}"
    );
    assert!(
        log.contains("skipping t000002: its data is incomplete"),
        "{log}"
    );
    assert!(log.contains("zz-garbage.torrent"), "{log}");

    // Let the torrents fall idle, then ask one of them for a block: it must wake and serve.
    std::thread::sleep(Duration::from_millis(500));
    let torrent = root.join("torrents/t000004.torrent");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut peer = wire_peer::connect(addr, &info_hash(&torrent), 1);
    peer.write_all(&message(2, &[])).unwrap(); // interested
    assert!(
        wait_for(&mut peer, 1, Duration::from_secs(10)).is_some(),
        "an idle torrent unchokes an interested peer\n{}",
        seeder.log()
    );
    peer.write_all(&request(1, 0, PIECE)).unwrap();
    let block = wait_for(&mut peer, wire_peer::PIECE, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no block\n{}", seeder.log()));
    let data = std::fs::read(root.join("data/t000004")).unwrap();
    assert_eq!(&block[8..], &data[PIECE as usize..]);

    let status = seeder.stop(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", seeder.log());
}

/// Regular files under `dir` that process `pid` holds open.
fn open_files_under(pid: u32, dir: &Path) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

#[test]
fn seeding_keeps_at_most_the_open_files_limit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    dataset(root);
    let data = root.join("data").canonicalize().unwrap();
    let port = free_port();
    // Each torrent's one file takes two descriptors (buffered and direct, where direct
    // works) or one: a limit of 2 holds one torrent's files at a time.
    let mut seeder = Running::start("ccbt-uring seed --open-files 2", |_| {
        let mut cmd = ccbt();
        cmd.arg("seed")
            .arg(root.join("torrents"))
            .arg("--data")
            .arg(&data)
            .args(["--listen", "127.0.0.1", "--port", &port.to_string()])
            .args(["--shards", "1", "--open-files", "2"]);
        cmd
    });
    wait_listening(port, &seeder);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut most = 0;
    for i in 0..5 {
        let torrent = root.join(format!("torrents/t{i:06}.torrent"));
        let mut peer = wire_peer::connect(addr, &info_hash(&torrent), 1);
        peer.write_all(&message(2, &[])).unwrap();
        assert!(wait_for(&mut peer, 1, Duration::from_secs(10)).is_some());
        peer.write_all(&request(0, 0, PIECE)).unwrap();
        let block = wait_for(&mut peer, wire_peer::PIECE, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no block from torrent {i}\n{}", seeder.log()));
        let bytes = std::fs::read(data.join(format!("t{i:06}"))).unwrap();
        assert_eq!(&block[8..], &bytes[..PIECE as usize]);
        most = most.max(open_files_under(seeder.pid(), &data));
    }
    assert!(most >= 1, "no file was open while serving");
    assert!(most <= 2, "{most} files open under a limit of 2");
    assert!(seeder.stop(Duration::from_secs(10)).success());
}

#[test]
fn nothing_to_seed_is_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    dataset(root);
    std::fs::remove_dir_all(root.join("data")).unwrap();
    std::fs::create_dir(root.join("data")).unwrap();
    let ran = run(ccbt()
        .arg("seed")
        .arg(root.join("torrents"))
        .arg("--data")
        .arg(root.join("data"))
        .args(["--listen", "127.0.0.1", "--port", &free_port().to_string()]))
    .expect_code(1);
    assert!(
        ran.stderr.contains("none of the 5 torrents can be seeded"),
        "{}",
        ran.stderr
    );
}
