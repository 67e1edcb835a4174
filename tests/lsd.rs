//! Local service discovery (BEP 14) between hosts of a LAN the test builds itself: two
//! network namespaces joined by a veth pair (10.199.N.1 and 10.199.N.2), created for each
//! test and removed after it. Nothing is sent anywhere else: each program listens on its
//! namespace's address and multicasts on its veth only.
//!
//! In every case the torrent's tracker is dead (127.0.0.1:1 inside the namespace refuses),
//! the DHT is off and no `--peer` is given: LSD is the only way the two find each other.
//! - ccbt-uring seeds, ccbt-uring downloads.
//! - ccbt-uring downloads from libtorrent: libtorrent starts second, so ccbt-uring must read
//!   libtorrent's announce and dial it.
//! - libtorrent downloads from ccbt-uring: ccbt-uring starts second, so libtorrent must read
//!   ccbt-uring's announce and dial it.
//! - A private torrent (BEP 27) is never announced, while a public one beside it is: a
//!   listener on the group in the other namespace hears one and not the other.
//!
//! Needs root (namespaces), iproute2 and, for the libtorrent cases, python3-libtorrent.

mod common;

use std::ffi::OsString;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::swarm::{
    assert_same_tree, interop_ready, make_torrent, Client, Running, TestTorrent, DEBIAN_PYTHON,
};

/// No tracker answers: peers come from LSD only.
const DEAD_TRACKER: &str = "http://127.0.0.1:1/announce";
/// Every program's peer port (each namespace has its own ports).
const PEER_PORT: u16 = 6881;
const LIMIT: Duration = Duration::from_secs(60);

/// Two namespaces on one link. Dropped last (declare it first), it removes both, and the
/// veth pair with them.
struct Lan {
    hosts: [String; 2],
    addrs: [Ipv4Addr; 2],
}

impl Lan {
    /// The LAN for test number `n` (unique per test in this file).
    #[track_caller]
    fn new(n: u8) -> Lan {
        let tag = format!("{}{n}", std::process::id() % 100_000);
        let hosts = [format!("ccbt-lsd-{tag}-a"), format!("ccbt-lsd-{tag}-b")];
        let links = [format!("lsd{tag}a"), format!("lsd{tag}b")];
        let addrs = [Ipv4Addr::new(10, 199, n, 1), Ipv4Addr::new(10, 199, n, 2)];
        let lan = Lan { hosts, addrs };
        for host in &lan.hosts {
            ip(&["netns", "add", host]);
        }
        ip(&[
            "link",
            "add",
            &links[0],
            "netns",
            &lan.hosts[0],
            "type",
            "veth",
            "peer",
            "name",
            &links[1],
            "netns",
            &lan.hosts[1],
        ]);
        for ((host, link), addr) in lan.hosts.iter().zip(&links).zip(lan.addrs) {
            let cidr = format!("{addr}/24");
            ip(&["-n", host, "addr", "add", &cidr, "dev", link]);
            ip(&["-n", host, "link", "set", "lo", "up"]);
            ip(&["-n", host, "link", "set", link, "up"]);
            // Multicast leaves by the veth (the only link besides loopback).
            ip(&["-n", host, "route", "add", "224.0.0.0/4", "dev", link]);
        }
        lan
    }

    /// `program args...` inside host `i`, as a [`Running`] named `name`.
    fn run(&self, i: usize, name: &str, program: &Path, args: Vec<OsString>) -> Running {
        let host = self.hosts[i].clone();
        let program = program.to_path_buf();
        Running::start(name, move |_| {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &host])
                .arg(program)
                .args(args)
                .env_remove("CCBT_LSD_ENABLED")
                .env("RUST_BACKTRACE", "1")
                .env(
                    "CCBT_LOG",
                    std::env::var("CCBT_LOG").unwrap_or("info".into()),
                );
            cmd
        })
    }

    /// `ccbt-uring VERB TORRENT... --data DIR` on host `i`, listening on its address only.
    fn ccbt(&self, i: usize, verb: &str, torrents: &[&Path], dir: &Path) -> Running {
        let mut args: Vec<OsString> = vec![verb.into()];
        args.extend(torrents.iter().map(|t| t.as_os_str().to_owned()));
        for arg in [
            "--data".into(),
            dir.as_os_str().to_owned(),
            "--listen".into(),
            self.addrs[i].to_string().into(),
            "--port".into(),
            PEER_PORT.to_string().into(),
            "--no-dht".into(),
            "--shards".into(),
            "1".into(),
        ] {
            args.push(arg);
        }
        let name = format!("ccbt-uring {verb} on {}", self.addrs[i]);
        self.run(i, &name, Path::new(env!("CARGO_BIN_EXE_ccbt-uring")), args)
    }

    /// libtorrent seeding or downloading on host `i`, with LSD its only peer source.
    fn libtorrent(&self, i: usize, mode: &str, torrent: &Path, dir: &Path) -> Running {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/lt_lsd.py");
        let args = vec![
            "-u".into(),
            script.into(),
            mode.into(),
            torrent.into(),
            dir.into(),
            self.addrs[i].to_string().into(),
            PEER_PORT.to_string().into(),
        ];
        let name = format!("libtorrent {mode} on {}", self.addrs[i]);
        self.run(i, &name, Path::new(DEBIAN_PYTHON), args)
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for host in &self.hosts {
            let _ = Command::new("ip").args(["netns", "delete", host]).status();
        }
    }
}

#[track_caller]
fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip (iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {} failed (the LSD tests need root for network namespaces): {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
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

/// A torrent whose tracker is dead, and an empty directory to download it into.
fn torrent_and_out(dir: &Path) -> (TestTorrent, PathBuf) {
    let torrent = make_torrent(dir, DEAD_TRACKER);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    (torrent, out)
}

#[test]
fn ccbt_uring_finds_ccbt_uring_on_the_lan() {
    if !interop_ready(&[]) {
        return;
    }
    let lan = Lan::new(1);
    let dir = tempfile::tempdir().unwrap();
    let (torrent, out) = torrent_and_out(dir.path());
    let _seed = lan.ccbt(0, "seed", &[&torrent.path], &torrent.data_dir);
    let mut download = lan.ccbt(1, "download", &[&torrent.path], &out);
    download.wait_success(LIMIT);
    assert_same_tree(&torrent.content(), &torrent.content_in(&out));
}

#[test]
fn ccbt_uring_downloads_from_libtorrent_it_heard_on_the_lan() {
    if !interop_ready(&[Client::Libtorrent]) {
        return;
    }
    let lan = Lan::new(2);
    let dir = tempfile::tempdir().unwrap();
    let (torrent, out) = torrent_and_out(dir.path());
    let mut download = lan.ccbt(1, "download", &[&torrent.path], &out);
    // Its own announce went out before anyone listened: it must hear libtorrent's.
    wait_log(&mut download, "LSD (BEP 14) on", LIMIT);
    std::thread::sleep(Duration::from_millis(500));
    let _seed = lan.libtorrent(0, "seed", &torrent.path, &torrent.data_dir);
    download.wait_success(LIMIT);
    assert_same_tree(&torrent.content(), &torrent.content_in(&out));
}

#[test]
fn libtorrent_downloads_from_ccbt_uring_it_heard_on_the_lan() {
    if !interop_ready(&[Client::Libtorrent]) {
        return;
    }
    let lan = Lan::new(3);
    let dir = tempfile::tempdir().unwrap();
    let (torrent, out) = torrent_and_out(dir.path());
    let mut download = lan.libtorrent(1, "download", &torrent.path, &out);
    wait_log(&mut download, "lt_lsd: download", LIMIT);
    std::thread::sleep(Duration::from_secs(1));
    let _seed = lan.ccbt(0, "seed", &[&torrent.path], &torrent.data_dir);
    download.wait_success(LIMIT);
    assert!(
        download.log().contains("lsd_peer"),
        "libtorrent found ccbt-uring without an LSD announce?\n{}",
        download.log_tail()
    );
    assert_same_tree(&torrent.content(), &torrent.content_in(&out));
}

/// Prints `heard <hex>` for each info hash announced on the group, for `seconds`.
const LISTENER: &str = r#"
import socket, struct, sys, time
group, port, addr, seconds = "239.192.152.143", 6771, sys.argv[1], float(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((group, port))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton(group), socket.inet_aton(addr)))
print("listening", flush=True)
end = time.monotonic() + seconds
while time.monotonic() < end:
    s.settimeout(max(0.01, end - time.monotonic()))
    try:
        data, sender = s.recvfrom(4096)
    except socket.timeout:
        break
    for line in data.decode("ascii", "replace").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "infohash":
            print("heard %s from %s" % (value.strip().lower(), sender[0]), flush=True)
print("done", flush=True)
"#;

#[test]
fn a_private_torrent_is_never_announced_and_a_public_one_is() {
    if !interop_ready(&[]) {
        return;
    }
    let lan = Lan::new(4);
    let dir = tempfile::tempdir().unwrap();
    let (public, _) = torrent_and_out(dir.path());
    // The same files, private (BEP 27): another info hash.
    let private = dir.path().join("private.torrent");
    common::run(
        common::ccbt()
            .arg("create")
            .arg(public.content())
            .arg("-o")
            .arg(&private)
            .args(["--private", "-t", DEAD_TRACKER]),
    )
    .ok();
    let private_hash = common::our_info_hash(&private).to_lowercase();
    let mut listener = lan.run(
        1,
        "LSD listener",
        Path::new(DEBIAN_PYTHON),
        vec![
            "-u".into(),
            "-c".into(),
            LISTENER.into(),
            lan.addrs[1].to_string().into(),
            "15".into(),
        ],
    );
    wait_log(&mut listener, "listening", LIMIT);
    let mut seed = lan.ccbt(0, "seed", &[&public.path, &private], &public.data_dir);
    wait_log(&mut seed, "LSD (BEP 14) on", LIMIT);
    let public_heard = format!("heard {} from {}", public.info_hash, lan.addrs[0]);
    wait_log(&mut listener, &public_heard, LIMIT);
    // Both torrents were up when the public one went out (it is announced on start, and
    // the two are packed into one datagram if queued together); wait for the window.
    listener.wait_success(LIMIT);
    let log = listener.log();
    assert!(
        !log.contains(&private_hash),
        "the private torrent was announced:\n{log}"
    );
    assert!(seed.is_running(), "{}", seed.log_tail());
    assert!(
        seed.log().contains("seeding 2 torrents"),
        "the seeder did not load both torrents:\n{}",
        seed.log_tail()
    );
}
