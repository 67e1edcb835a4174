//! Half-open connections (TCP connected, handshake never finished) cannot hold a shard's
//! connection budget: with a budget of three, three silent connections and one slowloris
//! that sends its handshake a byte a second fill it, and each is closed within the
//! handshake deadline (10 s), after which a real peer gets in. Nor can they keep a real
//! peer out meanwhile: once they have owed their handshake for a second, a newcomer takes
//! the slot of the oldest.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::swarm::{self, free_port, wait_listening, Running};
use common::wire_peer::{self, closed_within, handshake};
use common::{bytes, ccbt, run};

/// The handshake deadline (10 s) and room for a loaded machine.
const CLOSED_WITHIN: Duration = Duration::from_secs(30);

/// A seeder with a budget of three connections, its info hash, and its address.
fn seeder(dir: &Path) -> (Running, [u8; 20], SocketAddr) {
    std::fs::create_dir(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/file.bin"), bytes(3, 256 * 1024)).unwrap();
    let torrent = dir.join("t.torrent");
    run(ccbt()
        .args(["create", "--no-date", "--piece-size", "64K", "-o"])
        .arg(&torrent)
        .arg(dir.join("data/file.bin")))
    .ok();
    let hex = common::our_info_hash(&torrent);
    let mut info_hash = [0u8; 20];
    for (i, b) in info_hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    let port = free_port();
    let seed = swarm::ccbt_swarm(
        "seed",
        &torrent,
        &dir.join("data"),
        port,
        1,
        &["--max-connections", "3"],
    );
    wait_listening(port, &seed);
    // wait_listening's probe may still hold a slot for a moment.
    std::thread::sleep(Duration::from_millis(300));
    (seed, info_hash, SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn a_real_peer_takes_the_slot_of_the_oldest_half_open_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (seed, info_hash, addr) = seeder(dir.path());
    let mut silent: Vec<TcpStream> = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(addr).unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    // Past the second after which a connection that owes its handshake may be evicted,
    // and far short of the handshake deadline that would close them all anyway.
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let _good = wire_peer::connect(addr, &info_hash, 1);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the real peer waited {:?} for its handshake\n{}",
        started.elapsed(),
        seed.log()
    );
    assert!(
        closed_within(&mut silent[0], Duration::from_secs(2)),
        "the oldest silent connection was kept\n{}",
        seed.log()
    );
    // Eviction goes in arrival order: the next newcomer closes the second, not the third.
    let _extra = TcpStream::connect(addr).unwrap();
    assert!(
        closed_within(&mut silent[1], Duration::from_secs(2)),
        "the second silent connection was kept\n{}",
        seed.log()
    );
    assert!(
        !closed_within(&mut silent[2], Duration::from_millis(500)),
        "the youngest silent connection went before its deadline\n{}",
        seed.log()
    );
}

#[test]
fn half_open_handshakes_are_closed_and_free_the_shard_budget() {
    let dir = tempfile::tempdir().unwrap();
    let (seed, info_hash, addr) = seeder(dir.path());
    let mut silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let mut slow = TcpStream::connect(addr).unwrap();
    let started = Instant::now();
    // The budget is full: another connection is closed at once.
    let mut extra = TcpStream::connect(addr).unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)),
        "a fourth connection was kept\n{}",
        seed.log()
    );
    // A byte a second of a valid handshake: never done within the deadline.
    let hs = handshake(&info_hash, 9);
    slow.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut slow_closed = false;
    for byte in hs.iter().take(40) {
        if slow.write_all(&[*byte]).is_err() {
            slow_closed = true;
            break;
        }
        let mut probe = [0u8; 1];
        if matches!(std::io::Read::read(&mut slow, &mut probe), Ok(0)) {
            slow_closed = true;
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        slow_closed || closed_within(&mut slow, CLOSED_WITHIN),
        "the slowloris handshake was kept\n{}",
        seed.log()
    );
    for s in &mut silent {
        assert!(
            closed_within(s, CLOSED_WITHIN.saturating_sub(started.elapsed())),
            "a silent connection was kept past the handshake deadline\n{}",
            seed.log()
        );
    }
    // The budget is free again: a real peer finishes its handshake.
    let _good = wire_peer::connect(addr, &info_hash, 1);
}
