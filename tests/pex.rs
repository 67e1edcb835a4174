//! Peer exchange (BEP 11) with real libtorrent peers, both ways, on 127.0.0.1.
//!
//! (a) ccbt-uring is told of one peer only (libtorrent A, by `--peer`); A knows a seeder B
//! that it connected to itself, and only A's ut_pex message can tell ccbt-uring of B. A
//! downloads at 2 KB/s, so whatever ccbt-uring gets it must get from B: B's upload proves it.
//! (b) ccbt-uring seeds to libtorrent C and dials libtorrent D (which speaks no PEX); C
//! learns D only through ccbt-uring's ut_pex message and connects to it.
//!
//! libtorrent sends its first ut_pex message to a peer at its first one-second tick with
//! two peers connected, and folds peers of one IP into one unless
//! `allow_multiple_connections_per_ip` is on (the script sets it).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::swarm::{
    self, assert_same_tree, free_port, interop_ready, make_torrent, Client, Running, DEBIAN_PYTHON,
    TEST_FILES,
};

fn script() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/lt_pex.py")
}

/// No tracker answers (port 1 refuses at once): peers come from `--peer` and PEX only.
const DEAD_TRACKER: &str = "http://127.0.0.1:1/announce";

fn libtorrent(name: &str, args: &[String]) -> Running {
    let args = args.to_vec();
    Running::start(name, move |_| {
        let mut cmd = Command::new(DEBIAN_PYTHON);
        cmd.arg("-u").arg(script()).args(&args);
        cmd
    })
}

#[track_caller]
fn wait_log(who: &mut Running, text: &str, limit: Duration) {
    let start = Instant::now();
    while !who.log().contains(text) {
        assert!(
            who.is_running(),
            "{} exited before printing {text:?}",
            who.name()
        );
        assert!(
            start.elapsed() < limit,
            "{} did not print {text:?} in {limit:?}",
            who.name()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Libtorrent A (ut_pex, 2 KB/s, empty) connected to seeder B (no PEX), once both are up.
fn a_and_b(dir: &Path, torrent: &swarm::TestTorrent) -> (Running, u16) {
    let (a_port, b_port) = (free_port(), free_port());
    let empty = dir.join("a");
    std::fs::create_dir_all(&empty).unwrap();
    let mut lt = libtorrent(
        "libtorrent A (ut_pex) and seeder B (no PEX)",
        &[
            "learn".into(),
            torrent.path.display().to_string(),
            torrent.data_dir.display().to_string(),
            empty.display().to_string(),
            a_port.to_string(),
            b_port.to_string(),
        ],
    );
    wait_log(&mut lt, "ready", Duration::from_secs(30));
    (lt, a_port)
}

/// B's payload upload so far, from the script's once-a-second lines.
fn b_uploaded(lt: &Running) -> u64 {
    lt.log()
        .lines()
        .filter_map(|l| l.strip_prefix("B uploaded "))
        .filter_map(|l| l.split(';').next()?.parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn ccbt_uring_downloads_from_a_seeder_it_learned_only_through_pex() {
    if !interop_ready(&[Client::Libtorrent]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path(), DEAD_TRACKER);
    let (lt, a_port) = a_and_b(dir.path(), &torrent);
    let out = dir.path().join("out");
    let a = format!("127.0.0.1:{a_port}");
    let mut ccbt = swarm::ccbt_swarm(
        "download",
        &torrent.path,
        &out,
        free_port(),
        1,
        &["--peer", &a],
    );
    ccbt.wait_success(Duration::from_secs(90));
    assert_same_tree(&torrent.content(), &torrent.content_in(&out));
    let log = ccbt.log();
    assert!(
        log.contains("learned peers through PEX"),
        "ccbt-uring never took A's PEX message:\n{log}"
    );
    // B's upload, printed once a second: nearly all of the torrent went to ccbt-uring.
    std::thread::sleep(Duration::from_millis(1500));
    let uploaded = b_uploaded(&lt);
    let total: u64 = TEST_FILES.iter().map(|(_, n)| *n as u64).sum();
    assert!(
        uploaded >= total * 3 / 4,
        "B uploaded {uploaded} of {total} bytes: ccbt-uring did not download from it"
    );
    eprintln!("B, known only through PEX, uploaded {uploaded} of {total} bytes");
}

/// The control for the test above: with `--no-pex` the same swarm gives ccbt-uring only
/// A, which has next to nothing, and B serves it nothing.
#[test]
fn with_no_pex_ccbt_uring_never_hears_of_the_seeder() {
    if !interop_ready(&[Client::Libtorrent]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path(), DEAD_TRACKER);
    let (lt, a_port) = a_and_b(dir.path(), &torrent);
    let a = format!("127.0.0.1:{a_port}");
    let mut ccbt = swarm::ccbt_swarm(
        "download",
        &torrent.path,
        &dir.path().join("out"),
        free_port(),
        1,
        &["--peer", &a, "--no-pex"],
    );
    // libtorrent A sends its PEX message within a few seconds of the extension handshake.
    std::thread::sleep(Duration::from_secs(15));
    assert!(ccbt.is_running(), "finished without B: {}", ccbt.log_tail());
    assert!(!ccbt.log().contains("learned peers through PEX"));
    let uploaded = b_uploaded(&lt);
    assert!(
        uploaded < 1 << 20,
        "B uploaded {uploaded} bytes: to A only, at 2 KB/s"
    );
}

#[test]
fn libtorrent_learns_a_peer_through_ccbt_urings_pex() {
    if !interop_ready(&[Client::Libtorrent]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path(), DEAD_TRACKER);
    let (c_port, d_port, ccbt_port) = (free_port(), free_port(), free_port());
    let (c_dir, d_dir) = (dir.path().join("c"), dir.path().join("d"));
    std::fs::create_dir_all(&c_dir).unwrap();
    std::fs::create_dir_all(&d_dir).unwrap();
    let mut lt = libtorrent(
        "libtorrent C (ut_pex) and D (no PEX)",
        &[
            "tell".into(),
            torrent.path.display().to_string(),
            c_dir.display().to_string(),
            d_dir.display().to_string(),
            c_port.to_string(),
            d_port.to_string(),
            ccbt_port.to_string(),
        ],
    );
    wait_log(&mut lt, "ready", Duration::from_secs(30));
    let d = format!("127.0.0.1:{d_port}");
    let _seeder = swarm::ccbt_swarm(
        "seed",
        &torrent.path,
        &torrent.data_dir,
        ccbt_port,
        1,
        &["--peer", &d, "--upload-slots", "0"],
    );
    lt.wait_success(Duration::from_secs(90));
    assert!(lt.log().contains("C learned D through PEX"));
}
