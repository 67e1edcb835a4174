//! A real swarm on 127.0.0.1: opentracker, aria2c, transmission-cli and python3-libtorrent
//! from Debian, and ccbt-uring, each a process the test owns.
//!
//! Every process is a [`Running`]: it has its own temp dir and log, lives in its own process
//! group, and is stopped (SIGTERM, then SIGKILL) when dropped. When a test panics, say on a
//! timeout, every `Running` still alive prints the tail of its log while the stack unwinds,
//! so a failure shows what each peer and the tracker were doing.
//!
//! Loopback quirk: transmission 3.00 never dials a peer whose address is 127.x (its
//! `isMartianAddr` filter has no setting) but accepts such peers when they dial in. So when
//! transmission downloads, the test starts it first and waits until the tracker lists it,
//! then starts the seeder, which learns transmission's address from its own announce and
//! connects. [`Client::dials_loopback_peers`] says which clients need that order.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ccbt_testkit::clients::ARIA2_LOOPBACK;
use ccbt_testkit::process::{signal_group, spawn_logged, Signal};
use ccbt_testkit::tracker::compact_peer_ports;

use super::{run, transmission_info_hash, write_tree};

pub use ccbt_testkit::clients::DEBIAN_PYTHON;

/// Set (to anything) in CI: a missing interop package fails the test instead of skipping it.
pub const REQUIRE_INTEROP: &str = "CCBT_REQUIRE_INTEROP";

/// Piece length of [`make_torrent`]'s torrents.
pub const PIECE_LEN: usize = 256 * 1024;

/// The files of [`make_torrent`]'s torrents, about 8.4 MiB: one smaller than a piece, one of
/// a piece and a byte, files that span many pieces and end mid-piece, a nested directory.
pub const TEST_FILES: &[(&str, usize)] = &[
    ("a.bin", 3_000_001),
    ("docs/readme.txt", 1_000),
    ("sub/dir/big.bin", 5_500_017),
    ("z.dat", PIECE_LEN + 1),
];

/// How long a process gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Lines of each log printed when a test fails.
const LOG_TAIL_LINES: usize = 120;

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .any(|d| d.join(program).is_file())
}

fn python_libtorrent_installed() -> bool {
    Command::new(DEBIAN_PYTHON)
        .args(["-c", "import libtorrent"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether the tracker, mktorrent, transmission-show and `clients` are installed. If not:
/// with `CCBT_REQUIRE_INTEROP` set the test fails with an install hint (as
/// [`super::require`] does); without it the test prints why and returns `false`, so the
/// caller skips.
#[track_caller]
pub fn interop_ready(clients: &[Client]) -> bool {
    let mut missing: Vec<(&str, &str)> = [
        ("opentracker", "opentracker"),
        ("mktorrent", "mktorrent"),
        ("transmission-show", "transmission-cli"),
        ("stdbuf", "coreutils"),
    ]
    .into_iter()
    .filter(|(program, _)| !on_path(program))
    .collect();
    for client in clients {
        match client {
            Client::Aria2 if !on_path("aria2c") => missing.push(("aria2c", "aria2")),
            Client::Transmission if !on_path("transmission-cli") => {
                missing.push(("transmission-cli", "transmission-cli"))
            }
            Client::Libtorrent if !python_libtorrent_installed() => {
                missing.push(("libtorrent for /usr/bin/python3", "python3-libtorrent"))
            }
            _ => {}
        }
    }
    if missing.is_empty() {
        return true;
    }
    let programs: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
    let mut packages: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
    packages.sort_unstable();
    packages.dedup();
    let why = format!(
        "{} not installed: `apt-get install {}` (see tools/install-deps.sh)",
        programs.join(", "),
        packages.join(" ")
    );
    if std::env::var_os(REQUIRE_INTEROP).is_some() {
        panic!("{why}; {REQUIRE_INTEROP} is set, so this is a failure");
    }
    eprintln!("skipping: {why}; set {REQUIRE_INTEROP}=1 to fail instead");
    false
}

/// A TCP and UDP port on 127.0.0.1 that is free now and that this process has not handed
/// out before. Taken below the kernel's ephemeral range (32768+) so outgoing connections
/// do not grab it before the program that was given it binds it.
pub fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let random = std::collections::hash_map::RandomState::new();
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    let port = (0..10_000u64)
        .map(|attempt| {
            let mut hasher = random.build_hasher();
            hasher.write_u64(attempt);
            20_000 + (hasher.finish() % 12_000) as u16
        })
        .find(|&port| {
            !given.contains(&port)
                && TcpListener::bind(("127.0.0.1", port)).is_ok()
                && UdpSocket::bind(("127.0.0.1", port)).is_ok()
        })
        .expect("no free port in 20000..32000");
    given.insert(port);
    port
}

/// A process the test started, with its own temp dir and a log of its stdout and stderr.
/// Dropping it stops it; dropping it while the test panics also prints its log.
pub struct Running {
    name: String,
    child: Child,
    exited: Option<ExitStatus>,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Running {
    /// Starts the command `make` builds; `make` gets this process's private dir (for
    /// config, state, whatever must not outlive it). Stdin is closed; stdout and stderr
    /// both go to the log. The process leads its own group, so stopping it also stops the
    /// processes it started.
    #[track_caller]
    pub fn start(name: &str, make: impl FnOnce(&Path) -> Command) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut cmd = make(dir.path());
        let child = spawn_logged(&mut cmd, &log)
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Running {
            name: name.to_string(),
            child,
            exited: None,
            log,
            dir,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process's private dir (removed when this is dropped).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The log so far: carriage-return progress redraws turned into lines, runs of
    /// identical lines folded into one.
    pub fn log(&self) -> String {
        let raw = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&raw).replace('\r', "\n");
        let mut out = String::new();
        let mut last = None;
        for line in text.lines().map(str::trim_end).filter(|l| !l.is_empty()) {
            if last != Some(line) {
                out.push_str(line);
                out.push('\n');
            }
            last = Some(line);
        }
        out
    }

    /// The last [`LOG_TAIL_LINES`] lines of [`Running::log`], with a header.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
        let mut out = format!("===== {} (pid {}) log", self.name, self.pid());
        if skip > 0 {
            out.push_str(&format!(", last {LOG_TAIL_LINES} of {} lines", lines.len()));
        }
        out.push_str(" =====\n");
        for line in &lines[skip..] {
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// The exit status, if the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().unwrap();
        }
        self.exited
    }

    pub fn is_running(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// Waits for the process to exit with status 0. Fails the test if it exits otherwise or
    /// is still running after `limit` (every process's log is printed as the test unwinds).
    /// Returns how long it waited.
    #[track_caller]
    pub fn wait_success(&mut self, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exit_status() {
                assert!(
                    status.success(),
                    "{} failed ({status}) after {:.1?}",
                    self.name,
                    start.elapsed()
                );
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{} did not finish within {limit:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asks the process (and its group) to stop with SIGTERM; kills the group if it is
    /// still running after `grace`. Returns its exit status.
    pub fn stop(&mut self, grace: Duration) -> ExitStatus {
        if let Some(status) = self.exit_status() {
            return status;
        }
        let group = self.pid();
        signal_group(group, Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exit_status() {
                // The leader is gone; stragglers it left in the group go too.
                signal_group(group, Signal::SIGKILL);
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_group(group, Signal::SIGKILL);
        let status = self.child.wait().unwrap();
        self.exited = Some(status);
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop(STOP_GRACE);
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail());
        }
    }
}

/// Which real client plays a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// aria2c 1.36.
    Aria2,
    /// transmission-cli 3.00, through `tests/scripts/transmission_client.sh`.
    Transmission,
    /// libtorrent 2.0 through python3-libtorrent and `tests/scripts/lt_client.py`.
    Libtorrent,
}

impl Client {
    pub const ALL: [Client; 3] = [Client::Aria2, Client::Transmission, Client::Libtorrent];

    pub fn name(&self) -> &'static str {
        match self {
            Client::Aria2 => "aria2c",
            Client::Transmission => "transmission-cli",
            Client::Libtorrent => "libtorrent",
        }
    }

    /// Whether the client connects to 127.0.0.1 peers it learns from the tracker.
    /// transmission 3.00 does not (see the module docs): as a downloader it must announce
    /// before its seeder does.
    pub fn dials_loopback_peers(&self) -> bool {
        !matches!(self, Client::Transmission)
    }

    /// Verifies the data of `torrent` under `data_dir` (the directory that holds the
    /// torrent's top-level file or folder), then seeds it on 127.0.0.1:`port` until dropped.
    #[track_caller]
    pub fn seed(&self, torrent: &Path, data_dir: &Path, port: u16) -> Running {
        self.start("seed", torrent, data_dir, port, None)
    }

    /// libtorrent seeding at most `bytes_per_s`, so that leechers must also trade with each
    /// other.
    #[track_caller]
    pub fn libtorrent_seed_throttled(
        torrent: &Path,
        data_dir: &Path,
        port: u16,
        bytes_per_s: u32,
    ) -> Running {
        Client::Libtorrent.start("seed", torrent, data_dir, port, Some(bytes_per_s))
    }

    /// Downloads `torrent` into `out_dir`, listening on 127.0.0.1:`port`; the process exits
    /// 0 once the download is complete and verified (see [`Running::wait_success`]).
    #[track_caller]
    pub fn download(&self, torrent: &Path, out_dir: &Path, port: u16) -> Running {
        std::fs::create_dir_all(out_dir).unwrap();
        self.start("download", torrent, out_dir, port, None)
    }

    /// Downloads from a magnet link into `out_dir`, listening on 127.0.0.1:`port`: the
    /// client fetches the metadata from the peers the link's tracker names, then the data.
    /// Exits 0 once complete, as [`Client::download`].
    #[track_caller]
    pub fn download_magnet(&self, magnet: &str, out_dir: &Path, port: u16) -> Running {
        std::fs::create_dir_all(out_dir).unwrap();
        match self {
            Client::Aria2 => {
                let name = format!("aria2c download magnet :{port}");
                Running::start(&name, |_| {
                    let mut cmd = Command::new("aria2c");
                    cmd.args(ARIA2_LOOPBACK)
                        .args(["--enable-dht=false", "--seed-time=0"])
                        .args(["--bt-save-metadata=false", "--bt-metadata-only=false"])
                        .arg(format!("--listen-port={port}"))
                        .arg(format!("--dir={}", out_dir.display()))
                        .arg(magnet);
                    cmd
                })
            }
            _ => self.start("download", Path::new(magnet), out_dir, port, None),
        }
    }

    #[track_caller]
    fn start(
        &self,
        mode: &str,
        torrent: &Path,
        dir: &Path,
        port: u16,
        upload_limit: Option<u32>,
    ) -> Running {
        let name = format!("{} {mode} :{port}", self.name());
        match self {
            Client::Aria2 => Running::start(&name, |private| {
                let mut cmd = Command::new("aria2c");
                cmd.args(aria2_args(torrent, private));
                cmd.arg(format!("--listen-port={port}"))
                    .arg(format!("--dir={}", dir.display()));
                if mode == "seed" {
                    cmd.args(["--check-integrity=true", "--seed-ratio=0.0"]);
                } else {
                    cmd.arg("--seed-time=0");
                }
                cmd.arg(torrent);
                cmd
            }),
            Client::Transmission => Running::start(&name, |private| {
                let mut cmd = Command::new("bash");
                cmd.arg(tests_dir().join("scripts/transmission_client.sh"))
                    .arg(mode)
                    .arg(torrent)
                    .arg(dir)
                    .arg(port.to_string())
                    .env("TMPDIR", private);
                cmd
            }),
            Client::Libtorrent => Running::start(&name, |_| {
                let mut cmd = Command::new(DEBIAN_PYTHON);
                cmd.arg("-u")
                    .arg(tests_dir().join("scripts/lt_client.py"))
                    .arg(mode)
                    .arg(torrent)
                    .arg(dir)
                    .arg(port.to_string());
                if let Some(limit) = upload_limit {
                    cmd.env("LT_UPLOAD_LIMIT", limit.to_string());
                }
                cmd
            }),
        }
    }
}

/// aria2c options shared by seeding and downloading: quiet, plain progress lines every
/// second, bound to 127.0.0.1, no LPD or PeX. aria2 speaks to UDP trackers only through
/// its DHT socket, so for a `udp://` torrent DHT is on, but with a fresh routing table in
/// `private` and no bootstrap node it finds nobody.
fn aria2_args(torrent: &Path, private: &Path) -> Vec<String> {
    let mut args: Vec<String> = ARIA2_LOOPBACK.map(String::from).into();
    let metainfo = std::fs::read(torrent).unwrap();
    if metainfo.windows(6).any(|w| w == b"udp://") {
        args.push("--enable-dht=true".into());
        args.push(format!("--dht-listen-port={}", free_port()));
        args.push(format!(
            "--dht-file-path={}",
            private.join("dht.dat").display()
        ));
    } else {
        args.push("--enable-dht=false".into());
    }
    args
}

/// Runs ccbt-uring with `args` as a [`Running`] named `name`.
#[track_caller]
pub fn ccbt<I, S>(name: &str, args: I) -> Running
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    Running::start(name, |_| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccbt-uring"));
        // No LSD multicast beyond the test's hosts (see `common::ccbt`).
        cmd.args(&args)
            .env("CCBT_LSD_ENABLED", "false")
            .env("RUST_BACKTRACE", "1")
            .env(
                "CCBT_LOG",
                std::env::var("CCBT_LOG").unwrap_or("info".into()),
            );
        cmd
    })
}

/// `ccbt-uring download TORRENT -o OUT --shards N --port P`.
#[track_caller]
pub fn ccbt_download(torrent: &Path, out_dir: &Path, port: u16, shards: u32) -> Running {
    ccbt_swarm("download", torrent, out_dir, port, shards, &[])
}

/// `ccbt-uring seed TORRENT --data DIR --shards N --port P`.
#[track_caller]
pub fn ccbt_seed(torrent: &Path, data_dir: &Path, port: u16, shards: u32) -> Running {
    ccbt_swarm("seed", torrent, data_dir, port, shards, &[])
}

/// `ccbt-uring VERB TORRENT --data DIR --shards N --port P --listen 127.0.0.1 EXTRA...`
/// (`--data` is also `download`'s name for `-o`).
#[track_caller]
pub fn ccbt_swarm(
    verb: &str,
    torrent: &Path,
    dir: &Path,
    port: u16,
    shards: u32,
    extra: &[&str],
) -> Running {
    let mut args: Vec<OsString> = vec![verb.into(), torrent.into(), "--data".into(), dir.into()];
    for arg in [
        "--shards",
        &shards.to_string(),
        "--port",
        &port.to_string(),
        "--listen",
        "127.0.0.1",
    ]
    .iter()
    .chain(extra)
    {
        args.push(arg.into());
    }
    ccbt(
        &format!(
            "ccbt-uring {verb} --shards {shards} :{port} {}",
            extra.join(" ")
        ),
        args,
    )
}

/// Which of the tracker's two faces a torrent announces to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announce {
    Http,
    Udp,
}

/// What the tracker says about one torrent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scrape {
    /// Seeders.
    pub complete: u64,
    /// Leechers.
    pub incomplete: u64,
}

/// opentracker on 127.0.0.1, HTTP and UDP on one port. Debian builds it with a whitelist,
/// so a torrent must be [`Tracker::allow`]ed (done by [`Tracker::torrent`]) before peers
/// can announce it. Announce intervals are opentracker's (about 30 minutes): each client
/// announces once when it starts, and a peer learns only of peers that announced before it.
pub struct Tracker {
    port: u16,
    process: Running,
}

impl Tracker {
    /// Starts opentracker on a free port and waits until it accepts connections.
    #[track_caller]
    pub fn start() -> Tracker {
        for _ in 0..3 {
            let port = free_port();
            let mut process = Running::start(&format!("opentracker :{port}"), |dir| {
                // As root opentracker chroots into `dir` and drops to `nobody`, who must be
                // able to read the whitelist; as another user it only chdirs there.
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
                let whitelist = dir.join("whitelist");
                std::fs::write(&whitelist, format!("{}\n", "0".repeat(40))).unwrap();
                std::fs::set_permissions(&whitelist, std::fs::Permissions::from_mode(0o644))
                    .unwrap();
                let mut cmd = Command::new("opentracker");
                cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()])
                    .args(["-P", &port.to_string(), "-w", "whitelist", "-d"])
                    .arg(dir)
                    .current_dir(dir);
                cmd
            });
            let deadline = Instant::now() + Duration::from_secs(5);
            while process.is_running() && Instant::now() < deadline {
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Tracker { port, process };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("opentracker did not come up:\n{}", process.log_tail());
        }
        panic!("opentracker did not start on 127.0.0.1");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn http_announce(&self) -> String {
        format!("http://127.0.0.1:{}/announce", self.port)
    }

    pub fn udp_announce(&self) -> String {
        format!("udp://127.0.0.1:{}", self.port)
    }

    pub fn announce_url(&self, announce: Announce) -> String {
        match announce {
            Announce::Http => self.http_announce(),
            Announce::Udp => self.udp_announce(),
        }
    }

    /// Makes [`make_torrent`]'s torrent under `root`, announcing here, and allows it.
    #[track_caller]
    pub fn torrent(&self, root: &Path, announce: Announce) -> TestTorrent {
        let torrent = make_torrent(root, &self.announce_url(announce));
        self.allow(&torrent.info_hash);
        torrent
    }

    /// Adds `info_hash` (hex) to the whitelist, makes opentracker reload it (SIGHUP) and
    /// waits until it accepts announces for it.
    #[track_caller]
    pub fn allow(&self, info_hash: &str) {
        let whitelist = self.process.dir().join("whitelist");
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&whitelist)
            .unwrap();
        writeln!(file, "{}", info_hash.to_lowercase()).unwrap();
        drop(file);
        signal_group(self.process.pid(), Signal::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let reply = self.http_get(&format!(
                "/announce?info_hash={}&peer_id=-CCBTPROBE-000000000&port=1&uploaded=0\
                 &downloaded=0&left=1&compact=1&event=stopped",
                percent_encode_hex(info_hash)
            ));
            if !contains(&reply, b"failure reason") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "opentracker still refuses {info_hash} after a whitelist reload: {}",
                String::from_utf8_lossy(&reply)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Seeders and leechers of `info_hash` (hex).
    #[track_caller]
    pub fn scrape(&self, info_hash: &str) -> Scrape {
        let body = self.http_get(&format!(
            "/scrape?info_hash={}",
            percent_encode_hex(info_hash)
        ));
        Scrape {
            complete: bencoded_int(&body, "complete").unwrap_or(0),
            incomplete: bencoded_int(&body, "incomplete").unwrap_or(0),
        }
    }

    /// Waits until the tracker lists at least `seeders` seeders of `info_hash`.
    #[track_caller]
    pub fn wait_for_seeders(&self, info_hash: &str, seeders: u64, limit: Duration) -> Scrape {
        self.wait_for(info_hash, limit, &format!("{seeders} seeder(s)"), |s| {
            s.complete >= seeders
        })
    }

    /// Waits until the tracker lists at least `leechers` leechers of `info_hash`.
    #[track_caller]
    pub fn wait_for_leechers(&self, info_hash: &str, leechers: u64, limit: Duration) -> Scrape {
        self.wait_for(info_hash, limit, &format!("{leechers} leecher(s)"), |s| {
            s.incomplete >= leechers
        })
    }

    #[track_caller]
    fn wait_for(
        &self,
        info_hash: &str,
        limit: Duration,
        what: &str,
        done: impl Fn(&Scrape) -> bool,
    ) -> Scrape {
        let deadline = Instant::now() + limit;
        loop {
            let scrape = self.scrape(info_hash);
            if done(&scrape) {
                return scrape;
            }
            assert!(
                Instant::now() < deadline,
                "tracker never listed {what} within {limit:?}: {scrape:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The ports of the peers the tracker lists for `info_hash` (all peers are on
    /// 127.0.0.1). Asks as a probe leecher, which then announces `stopped` to leave again.
    #[track_caller]
    pub fn peer_ports(&self, info_hash: &str) -> Vec<u16> {
        let query = |event: &str| {
            format!(
                "/announce?info_hash={}&peer_id=-CCBTPROBE-000000001&port=1&uploaded=0\
                 &downloaded=0&left=1&compact=1&numwant=200{event}",
                percent_encode_hex(info_hash)
            )
        };
        let body = self.http_get(&query(""));
        self.http_get(&query("&event=stopped"));
        compact_peer_ports(&body)
            .unwrap_or_else(|| panic!("no peers in {}", String::from_utf8_lossy(&body)))
            .into_iter()
            .filter(|&port| port != 1)
            .collect()
    }

    /// The body of an HTTP GET of `path` on the tracker.
    #[track_caller]
    fn http_get(&self, path: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .unwrap_or_else(|e| panic!("tracker on port {} is gone: {e}", self.port));
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut reply = Vec::new();
        stream
            .read_to_end(&mut reply)
            .unwrap_or_else(|e| panic!("tracker reply to {path}: {e}"));
        match reply.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) => reply.split_off(end + 4),
            None => panic!("not HTTP: {}", String::from_utf8_lossy(&reply)),
        }
    }
}

fn percent_encode_hex(info_hash: &str) -> String {
    assert_eq!(info_hash.len(), 40, "not a hex info hash: {info_hash}");
    info_hash
        .as_bytes()
        .chunks(2)
        .map(|pair| format!("%{}", std::str::from_utf8(pair).unwrap()))
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The integer after the bencoded key `key` (`<len>:<key>i<digits>e`), first occurrence.
fn bencoded_int(body: &[u8], key: &str) -> Option<u64> {
    let pattern = format!("{}:{key}i", key.len());
    let start = body
        .windows(pattern.len())
        .position(|w| w == pattern.as_bytes())?
        + pattern.len();
    let digits = &body[start..];
    let end = digits.iter().position(|&b| b == b'e')?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

/// A torrent of [`TEST_FILES`] made by mktorrent, with its data.
#[derive(Clone, Debug)]
pub struct TestTorrent {
    /// The .torrent file.
    pub path: PathBuf,
    /// The directory holding the torrent's top-level folder: a seeder's data dir.
    pub data_dir: PathBuf,
    /// The torrent's name, its top-level folder.
    pub name: String,
    /// Lowercase hex, as transmission-show prints it.
    pub info_hash: String,
}

impl TestTorrent {
    /// The torrent's content as the seeder has it.
    pub fn content(&self) -> PathBuf {
        self.data_dir.join(&self.name)
    }

    /// Where a download into `out_dir` puts the content.
    pub fn content_in(&self, out_dir: &Path) -> PathBuf {
        out_dir.join(&self.name)
    }
}

/// Writes [`TEST_FILES`] (deterministic bytes) under `root/seed/swarm-test/` and makes
/// `root/swarm-test.torrent` of them with mktorrent: [`PIECE_LEN`] pieces, `announce`.
#[track_caller]
pub fn make_torrent(root: &Path, announce: &str) -> TestTorrent {
    let name = "swarm-test";
    let data_dir = root.join("seed");
    write_tree(&data_dir.join(name), TEST_FILES);
    let path = root.join(format!("{name}.torrent"));
    let piece_log2 = PIECE_LEN.trailing_zeros().to_string();
    run(Command::new("mktorrent")
        .args(["-l", &piece_log2, "-a", announce, "-o"])
        .arg(&path)
        .arg(data_dir.join(name)))
    .ok();
    let info_hash = transmission_info_hash(&path);
    TestTorrent {
        path,
        data_dir,
        name: name.to_string(),
        info_hash,
    }
}

/// Asserts that the trees at `expected` and `actual` hold the same files with the same
/// bytes, and nothing else.
#[track_caller]
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let files = |root: &Path| -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root)
            .into_iter()
            .map(|e| e.unwrap_or_else(|e| panic!("walking {}: {e}", root.display())))
            .filter(|e| !e.file_type().is_dir())
            .map(|e| e.path().strip_prefix(root).unwrap().to_path_buf())
            .collect();
        files.sort();
        files
    };
    assert!(actual.is_dir(), "{} is not a directory", actual.display());
    let (want, got) = (files(expected), files(actual));
    assert_eq!(
        want,
        got,
        "different files in {} and {}",
        expected.display(),
        actual.display()
    );
    for file in &want {
        let a = std::fs::read(expected.join(file)).unwrap();
        let b = std::fs::read(actual.join(file)).unwrap();
        if a != b {
            let at = a.iter().zip(&b).position(|(x, y)| x != y);
            panic!(
                "{} differs: {} bytes expected, {} bytes got, first difference at byte {:?}",
                file.display(),
                a.len(),
                b.len(),
                at
            );
        }
    }
}

/// Waits until `who` accepts connections on 127.0.0.1:`port`.
#[track_caller]
pub fn wait_listening(port: u16, who: &Running) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let until = Instant::now() + Duration::from_secs(20);
    while Instant::now() < until {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} does not listen on {port}\n{}", who.name(), who.log());
}
