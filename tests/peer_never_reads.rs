//! Peers that ask for blocks and never read them, against a real `ccbt-uring daemon`: each
//! is dropped once its writer has made no progress for the write deadline, and the shard's
//! memory gauges (peers, bytes pinned by send batches, piece buffers in progress, queued
//! outgoing bytes) are back to zero once they are gone, as rqbit's drop checks require.
//! A well-behaved peer is served throughout.

mod common;

use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::http::{http, sample};
use common::swarm::free_port;
use common::wire_peer::{self, handshake, message, request, wait_for};

const PIECE: usize = 64 * 1024;
const PIECES: usize = 64;
const BLOCKS_PER_PIECE: u32 = (PIECE / 16384) as u32;
const HOSTILE: usize = 300;
/// Long enough for the write deadline (20 s) and a loaded machine; the finding was that
/// such peers were all still connected after 30 s.
const DROPPED_WITHIN: Duration = Duration::from_secs(90);

/// A connection with a 4 KiB receive buffer, which reads only until it is unchoked (`None`
/// if it is not).
fn never_reading_peer(addr: SocketAddr, info_hash: &[u8; 20], id: u16) -> Option<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    nix::sys::socket::setsockopt(&s, nix::sys::socket::sockopt::RcvBuf, &4096).expect("SO_RCVBUF");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut hs = handshake(info_hash, 0);
    hs[66..].copy_from_slice(&id.to_be_bytes());
    s.write_all(&hs).unwrap();
    let mut theirs = [0u8; 68];
    std::io::Read::read_exact(&mut s, &mut theirs).expect("their handshake");
    s.write_all(&message(2, &[])).unwrap(); // interested
    wait_for(&mut s, 1, Duration::from_secs(20))?; // unchoke
                                                   // From here on it reads nothing. Every block of the torrent, twice: far more than the socket buffers hold.
    let mut asks = Vec::new();
    for _ in 0..2 {
        for piece in 0..PIECES as u32 {
            for b in 0..BLOCKS_PER_PIECE {
                asks.extend_from_slice(&request(piece, b * 16384, 16384));
            }
        }
    }
    s.write_all(&asks).unwrap();
    s.set_nonblocking(true).unwrap();
    Some(s)
}

/// A keep-alive to every peer still open, so none of them is idle; returns how many of
/// them the daemon has closed (a write fails once the other side is gone).
fn keep_alive(peers: &mut [Option<TcpStream>]) -> usize {
    for slot in peers.iter_mut() {
        if let Some(s) = slot {
            match s.write(&[0, 0, 0, 0]) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => *slot = None,
            }
        }
    }
    peers.iter().filter(|p| p.is_none()).count()
}

fn gauge(api: &str, name: &str) -> f64 {
    let text = http(api, "GET", "/metrics", &[]).body;
    sample(&text, name).unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[test]
fn peers_that_never_read_are_dropped_and_their_memory_returned() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let content = common::bytes(21, PIECES * PIECE);
    std::fs::write(data.join("file.bin"), &content).unwrap();
    let torrent = dir.path().join("t.torrent");
    common::run(
        common::ccbt()
            .args(["create", "--no-date", "--piece-size", "64K", "-o"])
            .arg(&torrent)
            .arg(data.join("file.bin")),
    )
    .ok();
    let hex = common::our_info_hash(&torrent);
    let mut info_hash = [0u8; 20];
    for (i, b) in info_hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    let config = dir.path().join("ccbt.toml");
    // Every interested peer unchoked, and room for all of them.
    std::fs::write(
        &config,
        "[limits]\nupload_slots = 0\nmax_peers_per_torrent = 400\n",
    )
    .unwrap();
    let port = free_port();
    let mut daemon = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--peer-port",
            &port.to_string(),
            "--shards",
            "1",
        ],
    );
    let hash = daemon.add(&torrent, &["--save-dir", data.to_str().unwrap()]);
    daemon.wait_state(&hash, "seeding", Duration::from_secs(60));
    let addr = SocketAddr::from(([127, 0, 0, 1], port));

    let mut hostile: Vec<Option<TcpStream>> = (0..HOSTILE)
        .map(|i| {
            let peer = never_reading_peer(addr, &info_hash, i as u16);
            assert!(
                peer.is_some(),
                "hostile peer {i} was not unchoked\n{}",
                daemon.running.log()
            );
            peer
        })
        .collect();
    let api = daemon.api.clone();
    let until = Instant::now() + Duration::from_secs(30);
    while gauge(&api, "ccbt_peers") < HOSTILE as f64 {
        assert!(
            Instant::now() < until,
            "the hostile peers never all connected: {} of {HOSTILE}\n{}",
            gauge(&api, "ccbt_peers"),
            daemon.running.log_tail()
        );
        keep_alive(&mut hostile);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        gauge(&api, "ccbt_send_batch_pinned_bytes") > 0.0,
        "writers blocked on full sockets hold pieces"
    );

    // A well-behaved peer is served while the hostile ones hold their sockets full.
    let mut good = wire_peer::connect(addr, &info_hash, 251);
    good.write_all(&message(2, &[])).unwrap();
    assert!(wait_for(&mut good, 1, Duration::from_secs(20)).is_some());
    good.write_all(&request(5, 0, 16384)).unwrap();
    let block = wait_for(&mut good, wire_peer::PIECE, Duration::from_secs(20))
        .unwrap_or_else(|| panic!("no block for the good peer\n{}", daemon.running.log_tail()));
    assert_eq!(&block[8..], &content[5 * PIECE..5 * PIECE + 16384]);
    drop(good);

    let until = Instant::now() + DROPPED_WITHIN;
    loop {
        let closed = keep_alive(&mut hostile);
        let peers = gauge(&api, "ccbt_peers");
        if peers == 0.0 {
            break;
        }
        assert!(
            Instant::now() < until,
            "{peers} peers still connected {DROPPED_WITHIN:?} after {HOSTILE} that never \
             read connected ({closed} closed)\n{}",
            daemon.running.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let text = http(&api, "GET", "/metrics", &[]).body;
    for name in [
        "ccbt_send_batch_pinned_bytes",
        "ccbt_piece_buffers_in_progress_bytes",
        "ccbt_peer_outbox_bytes",
    ] {
        assert_eq!(
            sample(&text, name),
            Some(0.0),
            "{name} is not back to zero with no peers\n{text}"
        );
    }
    let stalls = sample(&text, "ccbt_peer_write_stalls_total").unwrap_or(0.0);
    assert!(
        stalls >= HOSTILE as f64,
        "{stalls} of {HOSTILE} peers were dropped at the write deadline\n{text}"
    );
    assert!(
        daemon.running.log().contains("stopped reading"),
        "the log does not say why the peers were dropped\n{}",
        daemon.running.log_tail()
    );
    drop(hostile);
    assert!(daemon.stop(Duration::from_secs(10)).success());
}
