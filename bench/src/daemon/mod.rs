//! `daemon` (S6): the seedbox at scale. `ccbt-uring daemon` on an empty state directory
//! takes N small torrents through its control socket and seeds them; it is stopped with
//! SIGTERM and started again, and the restart is measured: until the control socket
//! answers, until every torrent seeds again from its resume data, the RSS per idle torrent,
//! and the clean shutdown. An opentracker on 127.0.0.1 is every torrent's tracker; its
//! announce count, read ten times a second, shows how the daemon spreads its announces.
//!
//! Side by side, qbittorrent-nox and transmission-daemon load a slice of the same torrents
//! through their APIs (see [`others`]).
//!
//! The data set is `ccbt-loadgen dataset` (single-file torrents, no tracker, made once
//! and reused); each run writes copies of its torrents that announce to this run's tracker
//! (the info hash does not change: the announce URL is outside the info dictionary).

mod announces;
pub(crate) mod control;
pub(crate) mod others;
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use ccbt_testkit::process::{signal_group, Signal};

use crate::harness::bins;
use crate::harness::ports::Ports;
use crate::harness::process::Process;
use crate::harness::tracker::Tracker;
use crate::many::report::parse_vm_rss;
use announces::Sampler;
use others::Other;
use report::Ours;

#[derive(clap::Args)]
pub struct DaemonArgs {
    /// Torrents the ccbt-uring daemon holds.
    #[arg(long, default_value_t = 100_000)]
    torrents: u32,
    /// Torrents qbittorrent-nox and transmission-daemon load (the first of the same set).
    #[arg(long, default_value_t = 10_000)]
    others_torrents: u32,
    /// Bytes of each torrent's single file.
    #[arg(long, default_value_t = 8 << 10)]
    file_bytes: u64,
    /// Piece length of the torrents.
    #[arg(long, default_value_t = 16 << 10)]
    piece_length: u32,
    /// Control connections the adds are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Where to keep the data set (reused when already made).
    #[arg(long, default_value = "/var/tmp/ccbt-bench")]
    dir: PathBuf,
    /// The ccbt-uring binary to measure.
    #[arg(long, default_value = "target/release/ccbt-uring")]
    ccbt: PathBuf,
    /// The ccbt-loadgen binary; default: next to this one.
    #[arg(long)]
    loadgen: Option<PathBuf>,
    /// Seconds any one step of the ccbt-uring daemon may take.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Seconds the other daemons get to seed everything; past that, how many seed is
    /// reported (Transmission 3.00 sleeps 100 ms in every torrent's check).
    #[arg(long, default_value_t = 300)]
    others_limit: u64,
    /// Seconds the restarted daemon idles, all torrents seeding, before it is stopped: the
    /// announce pattern's quiet stretch between the start and stop bursts.
    #[arg(long, default_value_t = 10)]
    observe: u64,
    /// Leave out qbittorrent-nox and transmission-daemon.
    #[arg(long)]
    only_ours: bool,
    /// The quick preset instead of the counts above: 5,000 torrents, 1,000 for the others.
    #[arg(long)]
    quick: bool,
    /// Write the results table into this Markdown file, between the scenario's markers.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// A run of well under a minute: 5,000 torrents, 1,000 for the other daemons.
pub fn quick(ccbt: PathBuf, dir: PathBuf) -> DaemonArgs {
    DaemonArgs {
        torrents: 5_000,
        others_torrents: 1_000,
        file_bytes: 8 << 10,
        piece_length: 16 << 10,
        connections: 4,
        dir,
        ccbt,
        loadgen: None,
        timeout: 60,
        others_limit: 15,
        observe: 5,
        only_ours: false,
        quick: true,
        write: None,
    }
}

/// Time after every torrent seeds before RSS is read, for start-up work to settle.
pub const SETTLE: Duration = Duration::from_secs(1);
/// How often the daemon is asked for its listing while the bench waits on it.
const LIST_EVERY: Duration = Duration::from_millis(50);
/// How often the bench tries the control socket before it first answers.
const CONNECT_EVERY: Duration = Duration::from_millis(5);

pub fn run(args: DaemonArgs) -> Result<String> {
    let args = if args.quick {
        DaemonArgs {
            only_ours: args.only_ours,
            loadgen: args.loadgen,
            write: args.write,
            ..quick(args.ccbt, args.dir)
        }
    } else {
        args
    };
    let ccbt = bins::ccbt(&args.ccbt)?;
    let loadgen = bins::loadgen(args.loadgen.as_deref())?;
    let mut ports = Ports::default();
    let tracker_port = ports.next()?;
    let shape = Shape {
        torrents: args.torrents,
        file_bytes: args.file_bytes,
        piece_length: args.piece_length,
    };
    let set = prepare(&args.dir, shape, &loadgen, &Tracker::url(tracker_port))?;
    let tracker = Tracker::start_allowing(tracker_port, &set.hashes)?;
    let limit = Duration::from_secs(args.timeout);
    let mut notes = Vec::new();

    let run = OurRun {
        ccbt: &ccbt,
        data: &set.data,
        tracker: tracker.port(),
        connections: args.connections,
        limit,
        observe: Duration::from_secs(args.observe),
    };
    eprintln!("daemon: ccbt-uring daemon with 1 torrent (the RSS baseline)");
    // The baseline needs no quiet stretch: only its RSS is used.
    let baseline = OurRun {
        observe: Duration::ZERO,
        ..run
    };
    let ours = baseline
        .measure(&set.torrents[..1], &mut ports)
        .and_then(|one| {
            eprintln!(
                "daemon: ccbt-uring daemon with {} torrents",
                set.torrents.len()
            );
            let mut many = run.measure(&set.torrents, &mut ports)?;
            many.rss_one_kib = one.rss_many_kib;
            Ok(many)
        });
    let ours = match ours {
        Ok(ours) => Some(ours),
        Err(e) => {
            eprintln!("{e:#}");
            let first = format!("{e:#}");
            notes.push(format!(
                "ccbt-uring daemon: no figures: {}.",
                first.lines().next().unwrap_or_default()
            ));
            None
        }
    };

    let mut rows = Vec::new();
    let count = (args.others_torrents as usize).min(set.torrents.len());
    for other in Other::ALL {
        if args.only_ours {
            break;
        }
        if let Some(why) = other.missing() {
            notes.push(format!("{}: skipped: {why}.", other.name()));
            continue;
        }
        eprintln!("daemon: {} with {count} torrents", other.name());
        let others_limit = Duration::from_secs(args.others_limit);
        match others::measure(
            other,
            &set.tracked,
            count,
            &set.data,
            &mut ports,
            others_limit,
        ) {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("{e:#}");
                let first = format!("{e:#}");
                notes.push(format!(
                    "{}: no figures: {}.",
                    other.name(),
                    first.lines().next().unwrap_or_default()
                ));
            }
        }
    }
    drop(tracker);
    let table = report::markdown(ours.as_ref(), &rows, &notes);
    if let Some(path) = &args.write {
        crate::report::write_section(path, "daemon", &table)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(table)
}

/// The data set, and this run's copies of its torrents with a tracker.
pub(crate) struct DataSet {
    pub data: PathBuf,
    /// This run's torrents (announcing to its tracker), in name order.
    pub torrents: Vec<PathBuf>,
    /// The directory that holds them.
    pub tracked: PathBuf,
    /// The same torrents without a tracker, in name order.
    pub plain: Vec<PathBuf>,
    pub hashes: Vec<String>,
}

/// What the data set is made of.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    pub torrents: u32,
    pub file_bytes: u64,
    pub piece_length: u32,
}

/// Makes the data set unless a complete one is there; writes its torrents with `announce`.
pub(crate) fn prepare(dir: &Path, shape: Shape, loadgen: &Path, announce: &str) -> Result<DataSet> {
    let Shape {
        torrents,
        file_bytes,
        piece_length,
    } = shape;
    let root = dir.join(format!("daemon-{torrents}x{file_bytes}-{piece_length}"));
    let (plain, data, tracked) = (
        root.join("torrents"),
        root.join("data"),
        root.join("tracked"),
    );
    let made = std::fs::read_dir(&plain).map_or(0, |d| d.count());
    if made != torrents as usize {
        eprintln!(
            "daemon: writing {torrents} torrents under {}",
            root.display()
        );
        crate::dataset::write_many(loadgen, &root, torrents, file_bytes, piece_length)?;
    }
    let _ = std::fs::remove_dir_all(&tracked);
    std::fs::create_dir_all(&tracked)?;
    let mut names: Vec<_> = std::fs::read_dir(&plain)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()?;
    names.sort();
    let mut torrents = Vec::with_capacity(names.len());
    let mut untracked = Vec::with_capacity(names.len());
    let mut hashes = Vec::with_capacity(names.len());
    for name in names {
        let bytes = std::fs::read(plain.join(&name))?;
        let meta = ccbt_engine::metainfo::Metainfo::parse(&bytes)
            .with_context(|| format!("{}", plain.join(&name).display()))?;
        hashes.push(meta.info_hash.to_hex());
        let path = tracked.join(&name);
        std::fs::write(&path, with_announce(&bytes, announce)?)?;
        torrents.push(path);
        untracked.push(plain.join(&name));
    }
    Ok(DataSet {
        data,
        torrents,
        tracked,
        plain: untracked,
        hashes,
    })
}

/// The torrent with an `announce` key added in front (where it sorts: the data set's
/// torrents have no key before "announce"). The info dictionary is untouched.
fn with_announce(torrent: &[u8], url: &str) -> Result<Vec<u8>> {
    ensure!(torrent.first() == Some(&b'd'), "a torrent is a dictionary");
    let colon = torrent
        .iter()
        .position(|&b| b == b':')
        .context("no first key")?;
    let len: usize = std::str::from_utf8(&torrent[1..colon])?.parse()?;
    let first_key = torrent
        .get(colon + 1..colon + 1 + len)
        .context("a cut first key")?;
    ensure!(
        first_key > &b"announce"[..],
        "the torrent has a key before \"announce\""
    );
    let mut out = Vec::with_capacity(torrent.len() + url.len() + 16);
    out.extend_from_slice(b"d8:announce");
    out.extend_from_slice(format!("{}:{url}", url.len()).as_bytes());
    out.extend_from_slice(&torrent[1..]);
    Ok(out)
}

/// How the ccbt-uring daemon runs.
pub(crate) struct OurRun<'a> {
    pub ccbt: &'a Path,
    pub data: &'a Path,
    pub tracker: u16,
    pub connections: usize,
    pub limit: Duration,
    pub observe: Duration,
}

impl OurRun<'_> {
    /// A fresh state dir: start, add every torrent, wait until all seed, SIGTERM; start
    /// again, wait until the socket answers and all seed, read RSS, idle, SIGTERM.
    fn measure(&self, torrents: &[PathBuf], ports: &mut Ports) -> Result<Ours> {
        let n = torrents.len();
        let dir = tempfile::Builder::new()
            .prefix("ccbt-bench-s6-")
            .tempdir_in("/var/tmp")?;
        let state = dir.path().join("state");
        let socket = state.join("control.sock");
        let peer_port = ports.next()?;

        let sampler = Sampler::start(self.tracker);
        let started = Instant::now();
        let mut daemon = self.start(dir.path(), &state, peer_port)?;
        self.wait_answers(&socket, &mut daemon)?;
        let adding = Instant::now();
        let hashes = control::add_all(&socket, torrents, self.data, self.connections)?;
        let add_seconds = adding.elapsed().as_secs_f64();
        ensure!(hashes.len() == n, "{} of {n} adds answered", hashes.len());
        self.wait_seeding(&socket, n, &mut daemon)?;
        let first_seeding_seconds = started.elapsed().as_secs_f64();
        let first_stop_seconds = self.stop(&mut daemon)?;
        let first_announces = sampler.finish();

        let sampler = Sampler::start(self.tracker);
        let started = Instant::now();
        let mut daemon = self.start(dir.path(), &state, peer_port)?;
        self.wait_answers(&socket, &mut daemon)?;
        let list_seconds = started.elapsed().as_secs_f64();
        self.wait_seeding(&socket, n, &mut daemon)?;
        let restart_seeding_seconds = started.elapsed().as_secs_f64();
        std::thread::sleep(SETTLE);
        let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid()))?;
        let rss = parse_vm_rss(&status).context("no VmRSS in /proc/PID/status")?;
        let parts: Vec<&str> = status
            .lines()
            .filter(|l| l.starts_with("Rss"))
            .map(|l| l.trim())
            .collect();
        eprintln!("daemon: {n} torrents seeding again: {}", parts.join(", "));
        let ready_line_seconds = parse_ready(&daemon.log());
        std::thread::sleep(self.observe.saturating_sub(SETTLE));
        let restart_stop_seconds = self.stop(&mut daemon)?;
        let restart_announces = sampler.finish();
        Ok(Ours {
            torrents: n as u64,
            add_connections: self.connections,
            add_seconds,
            first_seeding_seconds,
            first_stop_seconds,
            list_seconds,
            ready_line_seconds,
            restart_seeding_seconds,
            rss_many_kib: rss,
            rss_one_kib: rss,
            restart_stop_seconds,
            first_announces,
            restart_announces,
        })
    }

    pub fn start(&self, home: &Path, state: &Path, peer_port: u16) -> Result<Process> {
        let mut cmd = Command::new(self.ccbt);
        cmd.arg("daemon")
            .arg("--state-dir")
            .arg(state)
            .arg("--download-dir")
            .arg(self.data)
            .args(["--peer-port", &peer_port.to_string(), "--no-pin"])
            .args(["--control", "127.0.0.1:0"])
            // The others run with LPD off too; and nothing multicasts off the machine.
            .env("CCBT_LSD_ENABLED", "false")
            .env("HOME", home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME");
        Process::start("ccbt-uring daemon", cmd)
    }

    /// Waits until a `list` on the control socket is answered.
    pub fn wait_answers(&self, socket: &Path, daemon: &mut Process) -> Result<()> {
        let deadline = Instant::now() + self.limit;
        loop {
            if socket.exists() && control::list(socket).is_ok() {
                return Ok(());
            }
            self.check(daemon, deadline, "answer on its control socket")?;
            std::thread::sleep(CONNECT_EVERY);
        }
    }

    /// Waits until the daemon holds `n` torrents, all seeding (asked with `summary`: a
    /// full listing of 100,000 every 50 ms would load the daemon it measures).
    pub fn wait_seeding(&self, socket: &Path, n: usize, daemon: &mut Process) -> Result<()> {
        let deadline = Instant::now() + self.limit;
        loop {
            let listing = control::summary(socket)?;
            if listing.torrents == n && listing.seeding == n {
                return Ok(());
            }
            self.check(daemon, deadline, &format!("seed all {n} ({listing:?})"))?;
            std::thread::sleep(LIST_EVERY);
        }
    }

    fn check(&self, daemon: &mut Process, deadline: Instant, what: &str) -> Result<()> {
        if let Some(status) = daemon.exit_status()? {
            bail!("the daemon exited ({status})\n{}", daemon.log_tail());
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon did not {what} in {:?}\n{}",
                self.limit,
                daemon.log_tail()
            );
        }
        Ok(())
    }

    /// SIGTERM; the seconds until it exited, successfully.
    pub fn stop(&self, daemon: &mut Process) -> Result<f64> {
        let stopping = Instant::now();
        signal_group(daemon.pid(), Signal::SIGTERM);
        let deadline = stopping + self.limit;
        loop {
            if let Some(status) = daemon.exit_status()? {
                let seconds = stopping.elapsed().as_secs_f64();
                ensure!(
                    status.success(),
                    "the daemon exited with {status} on SIGTERM\n{}",
                    daemon.log_tail()
                );
                return Ok(seconds);
            }
            if Instant::now() > deadline {
                bail!(
                    "the daemon did not stop in {:?}\n{}",
                    self.limit,
                    daemon.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// `ccbt-uring daemon: N torrents, ..., ready in S s`: S.
fn parse_ready(log: &str) -> Option<f64> {
    log.lines().find_map(|line| {
        let rest = line.strip_prefix("ccbt-uring daemon: ")?;
        let (_, secs) = rest.rsplit_once(", ready in ")?;
        secs.strip_suffix(" s")?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ready_line() {
        let log = "x\nccbt-uring daemon: 5 torrents, peer port 1, state in /s, control socket /s/control.sock, ready in 0.125 s\n";
        assert_eq!(parse_ready(log), Some(0.125));
        assert_eq!(parse_ready("ccbt-uring daemon: stopped in 0.1 s"), None);
    }

    #[test]
    fn adds_an_announce_url_in_front() {
        let t = b"d10:created by3:abc4:infod4:name1:xee";
        let out = with_announce(t, "http://h/a").unwrap();
        assert_eq!(
            &out[..],
            &b"d8:announce10:http://h/a10:created by3:abc4:infod4:name1:xee"[..]
        );
        assert!(with_announce(b"d1:a1:be", "u").is_err());
        assert!(with_announce(b"l1:ae", "u").is_err());
    }

    #[test]
    fn the_scripts_are_in_the_repository() {
        for s in ["qbt_many.py", "tr_many.py"] {
            assert!(bins::bench_scripts().join(s).is_file());
        }
    }
}
