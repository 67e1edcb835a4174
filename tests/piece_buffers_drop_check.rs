//! The shard's gauge of piece buffers in progress follows a real download: a scripted
//! seeder sends one block of a piece and goes quiet, the half-filled buffer shows in
//! `/metrics`, and once the torrent is removed the gauge is back to zero (rqbit's drop
//! checks, for the memory a peer made us take).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::http::{http, sample};
use common::swarm::free_port;
use common::wire_peer::{handshake, message, read_message, REQUEST};

const PIECE: usize = 64 * 1024;
const PIECES: usize = 4;
const GAUGE: &str = "ccbt_piece_buffers_in_progress_bytes";

fn gauge(api: &str) -> f64 {
    let text = http(api, "GET", "/metrics", &[]).body;
    sample(&text, GAUGE).unwrap_or_else(|| panic!("no {GAUGE} in /metrics:\n{text}"))
}

#[track_caller]
fn wait_gauge(api: &str, what: &str, ok: impl Fn(f64) -> bool, log: impl Fn() -> String) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let value = gauge(api);
        if ok(value) {
            return;
        }
        assert!(
            Instant::now() < until,
            "{what}: {GAUGE} is {value}\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_half_filled_piece_is_counted_and_released_with_its_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let content = common::bytes(5, PIECES * PIECE);
    std::fs::write(src.join("file.bin"), &content).unwrap();
    let torrent = dir.path().join("t.torrent");
    common::run(
        common::ccbt()
            .args(["create", "--no-date", "--piece-size", "64K", "-o"])
            .arg(&torrent)
            .arg(src.join("file.bin")),
    )
    .ok();
    let hex = common::our_info_hash(&torrent);
    let mut info_hash = [0u8; 20];
    for (i, b) in info_hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    let port = free_port();
    let daemon = Daemon::start(
        dir.path(),
        &["--peer-port", &port.to_string(), "--shards", "1"],
    );
    let save = dir.path().join("save");
    std::fs::create_dir_all(&save).unwrap();
    let hash = daemon.add(&torrent, &["--save-dir", save.to_str().unwrap()]);
    let api = daemon.api.clone();
    assert_eq!(gauge(&api), 0.0);

    // A seeder that connects to the daemon, has everything, and answers one request.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut peer = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    peer.write_all(&handshake(&info_hash, 3)).unwrap();
    let mut theirs = [0u8; 68];
    std::io::Read::read_exact(&mut peer, &mut theirs).expect("the daemon's handshake");
    peer.write_all(&message(5, &[0xf0])).unwrap(); // bitfield: all four pieces
    peer.write_all(&message(1, &[])).unwrap(); // unchoke
    let ask = loop {
        match read_message(&mut peer) {
            Ok(Some((REQUEST, payload))) => break payload,
            Ok(_) => {}
            Err(e) => panic!("no request from the daemon: {e}\n{}", daemon.running.log()),
        }
    };
    let piece = u32::from_be_bytes(ask[0..4].try_into().unwrap()) as usize;
    let offset = u32::from_be_bytes(ask[4..8].try_into().unwrap()) as usize;
    let len = u32::from_be_bytes(ask[8..12].try_into().unwrap()) as usize;
    let start = piece * PIECE + offset;
    let mut block = ask[0..8].to_vec();
    block.extend_from_slice(&content[start..start + len]);
    peer.write_all(&message(7, &block)).unwrap();

    // One block of a 64 KiB piece is in: its whole buffer is held, and counted.
    wait_gauge(
        &api,
        "a piece buffer in progress",
        |v| v >= PIECE as f64,
        || daemon.running.log(),
    );
    drop(peer);
    daemon.remote(&["remove", &hash]).ok();
    wait_gauge(
        &api,
        "the removed torrent's buffers",
        |v| v == 0.0,
        || daemon.running.log(),
    );
    drop(daemon);
}
