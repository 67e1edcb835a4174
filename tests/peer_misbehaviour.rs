//! Peers that break the protocol or lie: each is dropped alone, and a download survives a
//! peer serving corrupt data, which gets banned. Runs with one shard and with two (where a
//! connection may land on the shard that does not own the torrent and be handed over).

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::swarm::{self, free_port, wait_listening, Running};
use common::wire_peer::{self, closed_within, message, request, wait_for, ScriptedSeeder};
use common::{bytes, ccbt, run};

/// 35 pieces of 64 KiB: a bitfield of 5 bytes with 5 spare bits.
const PIECE: usize = 64 * 1024;
const PIECES: usize = 35;

struct Fixture {
    dir: tempfile::TempDir,
    content: Vec<u8>,
    info_hash: [u8; 20],
}

fn fixture(len: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let content = bytes(7, len);
    std::fs::create_dir(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/file.bin"), &content).unwrap();
    run(ccbt()
        .args(["create", "--no-date", "--piece-size", "64K", "-o"])
        .arg(dir.path().join("t.torrent"))
        .arg(dir.path().join("data/file.bin")))
    .ok();
    let hex = common::our_info_hash(&dir.path().join("t.torrent"));
    let mut info_hash = [0u8; 20];
    for (i, b) in info_hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    Fixture {
        dir,
        content,
        info_hash,
    }
}

fn seeder(dir: &Path, port: u16, shards: u32) -> Running {
    let s = swarm::ccbt_seed(&dir.join("t.torrent"), &dir.join("data"), port, shards);
    wait_listening(port, &s);
    s
}

fn hostile_peers_are_dropped_alone(shards: u32) {
    let f = fixture(PIECES * PIECE);
    let port = free_port();
    let seed = seeder(f.dir.path(), port, shards);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let mut good = wire_peer::connect(addr, &f.info_hash, 1);
    good.write_all(&message(2, &[])).unwrap(); // interested
    assert!(
        wait_for(&mut good, 1, Duration::from_secs(10)).is_some(),
        "an interested peer is unchoked\n{}",
        seed.log()
    );

    let mut spare_bits = vec![0xffu8; PIECES.div_ceil(8)];
    *spare_bits.last_mut().unwrap() = 0xff;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("oversized message", {
            let mut m = (64u32 << 20).to_be_bytes().to_vec();
            m.push(7);
            m
        }),
        (
            "have out of range",
            message(4, &(PIECES as u32).to_be_bytes()),
        ),
        (
            "bitfield too long",
            message(5, &vec![0xff; PIECES.div_ceil(8) + 1]),
        ),
        ("bitfield with spare bits", message(5, &spare_bits)),
        ("request out of range", request(PIECES as u32, 0, 16384)),
        (
            "request past the piece end",
            request(0, PIECE as u32 - 8, 16),
        ),
        (
            "requests while choked",
            (0..64).flat_map(|i| request(i % 8, 0, 16384)).collect(),
        ),
        ("malformed have", message(4, &[0, 0])),
    ];
    for (what, bytes) in cases {
        let mut bad = wire_peer::connect(addr, &f.info_hash, 2);
        bad.write_all(&bytes).unwrap();
        assert!(
            closed_within(&mut bad, Duration::from_secs(10)),
            "{what}: the peer was not dropped\n{}",
            seed.log()
        );
    }
    // Not a BitTorrent handshake at all.
    let mut garbage = std::net::TcpStream::connect(addr).unwrap();
    garbage.write_all(&[0x47; 68]).unwrap();
    assert!(closed_within(&mut garbage, Duration::from_secs(10)));

    // The well-behaved peer was never disturbed.
    good.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    good.write_all(&request(3, 16384, 16384)).unwrap();
    let piece = wait_for(&mut good, wire_peer::PIECE, Duration::from_secs(10))
        .unwrap_or_else(|| panic!("no block for the good peer\n{}", seed.log()));
    let start = 3 * PIECE + 16384;
    assert_eq!(&piece[8..], &f.content[start..start + 16384]);
}

#[test]
fn hostile_peers_are_dropped_alone_one_shard() {
    hostile_peers_are_dropped_alone(1);
}

#[test]
fn hostile_peers_are_dropped_alone_two_shards() {
    hostile_peers_are_dropped_alone(2);
}

fn corrupt_peer_is_banned_and_the_download_completes(shards: u32) {
    let f = fixture(PIECES * PIECE);
    let liar = ScriptedSeeder::corrupt(f.info_hash, f.content.clone(), PIECE as u32);
    // The honest seeder unchokes late, so the liar's blocks surely arrive first.
    let honest = ScriptedSeeder::honest_after(
        Duration::from_millis(500),
        f.info_hash,
        f.content.clone(),
        PIECE as u32,
    );
    let out = f.dir.path().join("out");
    let seed_addr = honest.addr.to_string();
    let mut download = swarm::ccbt_swarm(
        "download",
        &f.dir.path().join("t.torrent"),
        &out,
        free_port(),
        shards,
        &["--peer", &liar.addr.to_string(), "--peer", &seed_addr],
    );
    download.wait_success(Duration::from_secs(60));
    assert_eq!(std::fs::read(out.join("file.bin")).unwrap(), f.content);
    assert!(
        download.log().contains("banned"),
        "the corrupt peer was not banned\n{}",
        download.log()
    );
    assert!(liar.blocks_sent.load(std::sync::atomic::Ordering::Relaxed) > 0);
    assert_eq!(
        liar.connections.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "a banned peer is not called again"
    );
}

#[test]
fn corrupt_peer_is_banned_one_shard() {
    corrupt_peer_is_banned_and_the_download_completes(1);
}

#[test]
fn corrupt_peer_is_banned_two_shards() {
    corrupt_peer_is_banned_and_the_download_completes(2);
}

#[test]
fn connections_beyond_the_shard_limit_are_refused() {
    let f = fixture(PIECES * PIECE);
    let port = free_port();
    let seed = swarm::ccbt_swarm(
        "seed",
        &f.dir.path().join("t.torrent"),
        &f.dir.path().join("data"),
        port,
        1,
        &["--max-connections", "2"],
    );
    wait_listening(port, &seed);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // wait_listening's probe may still hold a slot for a moment.
    std::thread::sleep(Duration::from_millis(300));
    let _a = wire_peer::connect(addr, &f.info_hash, 1);
    let _b = wire_peer::connect(addr, &f.info_hash, 2);
    let mut third = std::net::TcpStream::connect(addr).unwrap();
    assert!(
        closed_within(&mut third, Duration::from_secs(5)),
        "a third connection was kept\n{}",
        seed.log()
    );
}
