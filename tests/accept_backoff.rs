//! A daemon out of file descriptors does not spin on its listener: with its limit lowered
//! (prlimit, on the running process) and more connections than it has descriptors, each
//! failed `accept(2)` is followed by a back-off, counted in /metrics; once the connections
//! go the daemon accepts peers again.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::http::{http, sample};
use common::swarm::free_port;

/// Descriptors the daemon may open beyond those it holds when the limit is lowered.
const SPARE_FDS: usize = 16;
const CONNECTIONS: usize = 64;
/// How long the daemon is held out of descriptors.
const STARVED: Duration = Duration::from_secs(3);
/// Failed accepts allowed in [`STARVED`]: a back-off of 10 ms doubling to 1 s makes about
/// ten; a loop that retries at once makes hundreds of thousands.
const ACCEPT_ERRORS_MAX: f64 = 1000.0;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
fn a_daemon_out_of_descriptors_backs_off_instead_of_spinning() {
    let prlimit = common::require("prlimit", "util-linux");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut daemon = Daemon::start(
        dir.path(),
        &["--peer-port", &port.to_string(), "--shards", "1"],
    );
    let api = daemon.api.clone();
    let errors = |api: &str| {
        let text = http(api, "GET", "/metrics", &[]).body;
        sample(&text, "ccbt_accept_errors_total")
            .unwrap_or_else(|| panic!("no ccbt_accept_errors_total in /metrics:\n{text}"))
    };
    assert_eq!(errors(&api), 0.0);
    let pid = daemon.running.pid();
    let limit = open_fds(pid) + SPARE_FDS;
    let lowered = std::process::Command::new(&prlimit)
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .unwrap();
    assert!(lowered.success(), "prlimit failed");

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let held: Vec<TcpStream> = (0..CONNECTIONS)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok())
        .collect();
    assert!(
        held.len() > SPARE_FDS,
        "the kernel queued too few connections"
    );
    std::thread::sleep(STARVED);
    drop(held);

    // The API answers again once the held connections are gone (their handshake deadline
    // frees the ones the daemon accepted).
    let until = Instant::now() + Duration::from_secs(30);
    let failed = loop {
        if let Ok(Some(n)) = std::panic::catch_unwind(|| {
            let text = http(&api, "GET", "/metrics", &[]).body;
            sample(&text, "ccbt_accept_errors_total")
        }) {
            break n;
        }
        assert!(Instant::now() < until, "the API never answered again");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(failed >= 1.0, "the daemon never ran out of descriptors");
    assert!(
        failed <= ACCEPT_ERRORS_MAX,
        "{failed} failed accepts in {STARVED:?}: the accept loop spins"
    );
    assert!(daemon.running.is_running());
    drop(daemon);
}
