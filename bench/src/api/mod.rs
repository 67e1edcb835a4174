//! `api` (S7): the control APIs at scale. The ccbt-uring daemon holds N small torrents
//! (S6's data set) and seeds one large one to load-generator leechers at full rate while
//! the bench times, one request at a time, what the *arr apps and web UIs ask most:
//! a full Transmission `torrent-get` with Sonarr's fields, a full qBittorrent
//! `torrents/info`, and a `sync/maindata` increment after one change. Side by side,
//! transmission-daemon and qbittorrent-nox hold a slice of the same torrents (S6's loader
//! scripts add them), seed the same large torrent to the same load, and answer the same
//! requests through their own APIs.
//!
//! The small torrents have no tracker here (S6's data set as made, without this run's
//! announce URL): a daemon announcing 100,000 torrents for the first time changes their
//! swarm counts for many minutes, and an increment "after one change" would hold those
//! too. Before increments are timed, each daemon is polled until two increments in a row
//! hold at most the changed torrent and the large one (or a minute passes; the table's
//! "torrents in answer" shows what the timed increments held).
//!
//! A sample is the whole exchange (request out, last byte of the answer in); answers are
//! parsed after the clock stops to check they hold every torrent. Each request kind gets
//! up to `--samples` samples or `--budget` seconds, whichever ends first (Transmission
//! 3.00 takes seconds per listing), and at least three.

pub(crate) mod clients;
mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

use crate::daemon::others::{self, Other};
use crate::daemon::{self as s6, control, OurRun, Shape};
use crate::harness::bins;
use crate::harness::ports::Ports;
use crate::harness::process::Process;
use crate::harness::tracker::Tracker;
use clients::{Qbittorrent, Transmission};
use report::{Kind, Latency, Row};

#[derive(clap::Args)]
pub struct ApiArgs {
    /// Torrents the ccbt-uring daemon holds.
    #[arg(long, default_value_t = 100_000)]
    torrents: u32,
    /// Torrents qbittorrent-nox and transmission-daemon hold (the first of the same set).
    #[arg(long, default_value_t = 10_000)]
    others_torrents: u32,
    /// Bytes of each small torrent's file.
    #[arg(long, default_value_t = 8 << 10)]
    file_bytes: u64,
    #[arg(long, default_value_t = 16 << 10)]
    piece_length: u32,
    /// Bytes of the large torrent seeded at full rate during the measurement.
    #[arg(long, default_value_t = 512 << 20)]
    hot_bytes: u64,
    /// Load-generator leechers downloading the large torrent.
    #[arg(long, default_value_t = 8)]
    leechers: u32,
    /// Samples per request kind at most.
    #[arg(long, default_value_t = 30)]
    samples: usize,
    /// Seconds per request kind at most (at least three samples are taken).
    #[arg(long, default_value_t = 60)]
    budget: u64,
    /// Where the data sets are kept (shared with S6).
    #[arg(long, default_value = "/var/tmp/ccbt-bench")]
    dir: PathBuf,
    #[arg(long, default_value = "target/release/ccbt-uring")]
    ccbt: PathBuf,
    #[arg(long)]
    loadgen: Option<PathBuf>,
    /// Seconds any one step of the ccbt-uring daemon may take.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Seconds the other daemons get to seed their torrents before they are measured
    /// anyway (with as many as seed by then).
    #[arg(long, default_value_t = 300)]
    others_limit: u64,
    /// Leave out qbittorrent-nox and transmission-daemon.
    #[arg(long)]
    only_ours: bool,
    /// The quick preset: 5,000 torrents, 1,000 for the others, short budgets.
    #[arg(long)]
    quick: bool,
    /// Write the results table into this Markdown file, between the scenario's markers.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// A run of a minute or two.
pub fn quick(ccbt: PathBuf, dir: PathBuf) -> ApiArgs {
    ApiArgs {
        torrents: 5_000,
        others_torrents: 1_000,
        file_bytes: 8 << 10,
        piece_length: 16 << 10,
        hot_bytes: 256 << 20,
        leechers: 4,
        samples: 10,
        budget: 15,
        dir,
        ccbt,
        loadgen: None,
        timeout: 120,
        others_limit: 30,
        only_ours: false,
        quick: true,
        write: None,
    }
}

/// The leechers' window: long enough to outlast every measurement of one daemon; they are
/// stopped when it is done.
const LOAD_SECONDS: u64 = 3600;
/// Time for the leechers to reach full rate before the first sample.
const RAMP: Duration = Duration::from_secs(3);

pub fn run(args: ApiArgs) -> Result<String> {
    let args = if args.quick {
        ApiArgs {
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
    let set = s6::prepare(&args.dir, shape, &loadgen, &Tracker::url(tracker_port))?;
    let (hot, hot_torrent) = crate::dataset::synthetic(
        &args.dir,
        args.hot_bytes,
        &loadgen,
        &Tracker::url(tracker_port),
    )?;
    let hot_bytes = std::fs::read(&hot_torrent)?;
    let hot_hash = ccbt_engine::metainfo::Metainfo::parse(&hot_bytes)?
        .info_hash
        .to_hex();
    // For the other daemons, whose loaders add a directory's torrents with one save path:
    // the large torrent among the small ones, its data linked into their data directory.
    let hot_name = hot.data_file.file_name().context("a data file name")?;
    let link = set.data.join(hot_name);
    if std::fs::symlink_metadata(&link).is_err() {
        std::os::unix::fs::symlink(&hot.data_file, &link)?;
    }
    let count = (args.others_torrents as usize).min(set.plain.len());
    let others_dir = tempfile::Builder::new()
        .prefix("ccbt-bench-s7-torrents-")
        .tempdir_in(&args.dir)?;
    std::fs::write(others_dir.path().join("0000-large.torrent"), &hot_bytes)?;
    for t in &set.plain[..count] {
        let name = t.file_name().context("a torrent file name")?;
        std::os::unix::fs::symlink(t, others_dir.path().join(name))?;
    }
    let mut allowed = set.hashes.clone();
    allowed.push(hot_hash.clone());
    let tracker = Tracker::start_allowing(tracker_port, &allowed)?;
    let budget = Budget {
        samples: args.samples.max(3),
        time: Duration::from_secs(args.budget),
    };
    let load = Load {
        loadgen: &loadgen,
        torrent: &hot_torrent,
        leechers: args.leechers,
    };
    let mut rows = Vec::new();
    let mut notes = Vec::new();

    eprintln!(
        "api: ccbt-uring daemon with {} torrents",
        set.torrents.len()
    );
    let run = OurRun {
        ccbt: &ccbt,
        data: &set.data,
        tracker: tracker.port(),
        connections: 4,
        limit: Duration::from_secs(args.timeout),
        observe: Duration::ZERO,
    };
    match measure_ours(
        &run,
        &set.plain,
        &hot_torrent,
        &hot.save_dir,
        load,
        budget,
        &mut ports,
    ) {
        Ok(mut r) => rows.append(&mut r),
        Err(e) => {
            eprintln!("{e:#}");
            notes.push(format!("ccbt-uring: no figures: {}", first_line(&e)));
        }
    }

    for other in Other::ALL {
        if args.only_ours {
            break;
        }
        if let Some(why) = other.missing() {
            notes.push(format!("{}: skipped: {why}.", other.name()));
            continue;
        }
        eprintln!("api: {} with {count} torrents", other.name());
        let limit = Duration::from_secs(args.others_limit);
        // The loader adds the large torrent first (its name sorts first), so that
        // Transmission verifies it before the small ones queued behind it.
        let measured = others::start_loaded(
            other,
            others_dir.path(),
            count + 1,
            &set.data,
            &mut ports,
            limit,
        )
        .and_then(|loaded| measure_other(other, loaded, count + 1, load, budget));
        match measured {
            Ok(mut r) => rows.append(&mut r),
            Err(e) => {
                eprintln!("{e:#}");
                notes.push(format!("{}: no figures: {}", other.name(), first_line(&e)));
            }
        }
    }
    drop(tracker);
    let table = report::markdown(&rows, &notes);
    if let Some(path) = &args.write {
        crate::report::write_section(path, "api", &table)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(table)
}

fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// How many samples a request kind gets.
#[derive(Clone, Copy)]
struct Budget {
    samples: usize,
    time: Duration,
}

/// Takes samples of `one` (which returns the torrents its answer held, its size and the
/// time it took) until the budget is spent.
fn sample(
    budget: Budget,
    mut one: impl FnMut(u64) -> Result<(usize, usize, Duration)>,
) -> Result<Latency> {
    let started = Instant::now();
    let mut took = Vec::new();
    let (mut torrents, mut bytes) = (0, 0);
    for round in 0.. {
        if took.len() >= budget.samples || (took.len() >= 3 && started.elapsed() > budget.time) {
            break;
        }
        let (n, b, t) = one(round)?;
        torrents = n;
        bytes = b;
        took.push(t);
    }
    Ok(Latency::of(&took, torrents, bytes))
}

/// The leechers of the large torrent.
#[derive(Clone, Copy)]
struct Load<'a> {
    loadgen: &'a Path,
    torrent: &'a Path,
    leechers: u32,
}

/// Leechers running against a daemon's peer port; their summary says what they got.
struct Leeching {
    process: Process,
}

impl Load<'_> {
    fn start(&self, peer_port: u16) -> Result<Leeching> {
        let mut cmd = Command::new(self.loadgen);
        cmd.arg("leech")
            .arg("--torrent")
            .arg(self.torrent)
            .args(["--target", &format!("127.0.0.1:{peer_port}")])
            .args(["--peers", &self.leechers.to_string()])
            .args([
                "--duration",
                &LOAD_SECONDS.to_string(),
                "--json",
                "--progress",
            ]);
        let process = Process::start("ccbt-loadgen leech", cmd)?;
        std::thread::sleep(RAMP);
        Ok(Leeching { process })
    }
}

impl Leeching {
    /// MB/s over the measurement's window (from the leechers' progress lines), then stops
    /// them.
    fn finish(mut self, since: Instant) -> Result<f64> {
        let window = since.elapsed().as_secs().max(1);
        let log = self.process.log();
        self.process.stop()?;
        Ok(rate_over(&log, window))
    }
}

/// MB/s over the last `window` seconds of `ccbt-loadgen --progress --json` lines
/// (`{"second": S, "bytes_total": B, ...}`).
fn rate_over(log: &str, window: u64) -> f64 {
    let points: Vec<(u64, u64)> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["second"].as_u64()?, v["bytes_total"].as_u64()?)))
        .collect();
    let Some(&(last_s, last_b)) = points.last() else {
        return 0.0;
    };
    let start = last_s.saturating_sub(window);
    let Some(&(first_s, first_b)) = points.iter().find(|(s, _)| *s >= start) else {
        return 0.0;
    };
    if last_s <= first_s {
        return 0.0;
    }
    (last_b - first_b) as f64 / (last_s - first_s) as f64 / 1e6
}

#[allow(clippy::too_many_arguments)]
fn measure_ours(
    run: &OurRun<'_>,
    torrents: &[PathBuf],
    hot_torrent: &Path,
    hot_dir: &Path,
    load: Load<'_>,
    budget: Budget,
    ports: &mut Ports,
) -> Result<Vec<Row>> {
    let n = torrents.len();
    let dir = tempfile::Builder::new()
        .prefix("ccbt-bench-s7-")
        .tempdir_in("/var/tmp")?;
    let state = dir.path().join("state");
    let socket = state.join("control.sock");
    let peer_port = ports.next()?;
    let mut daemon = run.start(dir.path(), &state, peer_port)?;
    run.wait_answers(&socket, &mut daemon)?;
    let hashes = control::add_all(&socket, torrents, run.data, 4)?;
    ensure!(hashes.len() == n, "{} of {n} adds answered", hashes.len());
    control::add_all(&socket, &[hot_torrent.to_path_buf()], hot_dir, 1)?;
    run.wait_seeding(&socket, n + 1, &mut daemon)?;
    let base = api_of(&daemon.log()).context("no control API address in the daemon's log")?;
    let rows = measure(
        "ccbt-uring",
        n + 1,
        &base,
        &[Kind::TorrentGet, Kind::TorrentsInfo, Kind::Increment],
        &hashes[0],
        load,
        peer_port,
        budget,
    );
    run.stop(&mut daemon)?;
    rows
}

fn measure_other(
    other: Other,
    mut loaded: others::Loaded,
    held: usize,
    load: Load<'_>,
    budget: Budget,
) -> Result<Vec<Row>> {
    let base = format!("http://127.0.0.1:{}", loaded.api);
    let kinds: &[Kind] = match other {
        Other::Transmission => &[Kind::TorrentGet],
        Other::Qbittorrent => &[Kind::TorrentsInfo, Kind::Increment],
    };
    // The first small torrent is the one an increment changes.
    let first = first_hash(&base, other)?;
    let rows = measure(
        other.name(),
        held,
        &base,
        kinds,
        &first,
        load,
        loaded.peer,
        budget,
    );
    loaded.client.stop()?;
    rows
}

/// A torrent of the client's other than the large one, for increments to change.
fn first_hash(base: &str, other: Other) -> Result<String> {
    match other {
        Other::Transmission => Ok(String::new()),
        // The second by name: the large torrent's name sorts first.
        Other::Qbittorrent => Qbittorrent::new(base).hash_by_name(1),
    }
}

#[allow(clippy::too_many_arguments)]
fn measure(
    daemon: &str,
    torrents: usize,
    base: &str,
    kinds: &[Kind],
    change_hash: &str,
    load: Load<'_>,
    peer_port: u16,
    budget: Budget,
) -> Result<Vec<Row>> {
    let leeching = load.start(peer_port)?;
    let window = Instant::now();
    let mut rows = Vec::new();
    for &kind in kinds {
        eprintln!("api: {daemon}: {}", kind.name());
        let latency = match kind {
            Kind::TorrentGet => {
                let mut tr = Transmission::new(base);
                sample(budget, |_| tr.arr_listing())?
            }
            Kind::TorrentsInfo => {
                let qb = Qbittorrent::new(base);
                sample(budget, |_| qb.info())?
            }
            Kind::Increment => {
                let qb = Qbittorrent::new(base);
                let mut rid = settle(&qb, daemon)?;
                sample(budget, |round| {
                    qb.touch(change_hash, round)?;
                    std::thread::sleep(PUBLISHED);
                    let m = qb.maindata(rid)?;
                    if m.full {
                        bail!("{daemon}: sync/maindata rid={rid} gave a full update");
                    }
                    rid = m.rid;
                    Ok((m.torrents, m.bytes, m.took))
                })?
            }
        };
        rows.push(Row {
            daemon: daemon.to_string(),
            torrents,
            kind,
            latency,
            upload_mb_s: 0.0,
        });
    }
    let rate = leeching.finish(window)?;
    for r in &mut rows {
        r.upload_mb_s = rate;
    }
    Ok(rows)
}

/// How long a daemon gets to go quiet before increments are timed.
const SETTLE_LIMIT: Duration = Duration::from_secs(60);
/// The wait between a change and the increment that should hold it: both daemons
/// publish changes on a timer (qBittorrent's is 1.5 s at most, ours 1 s).
const PUBLISHED: Duration = Duration::from_millis(1600);

/// Polls increments until two in a row hold at most two torrents (the large one, being
/// downloaded, always changes) or [`SETTLE_LIMIT`] passes; returns the rid to go on from.
fn settle(qb: &Qbittorrent, daemon: &str) -> Result<u64> {
    let started = Instant::now();
    let mut rid = qb.maindata(0)?.rid;
    let mut quiet = 0;
    while quiet < 2 && started.elapsed() < SETTLE_LIMIT {
        std::thread::sleep(PUBLISHED);
        let m = qb.maindata(rid)?;
        rid = m.rid;
        quiet = if m.torrents <= 2 { quiet + 1 } else { 0 };
    }
    eprintln!(
        "api: {daemon}: {} after {:.0} s",
        if quiet >= 2 {
            "quiet"
        } else {
            "still changing"
        },
        started.elapsed().as_secs_f64()
    );
    Ok(rid)
}

/// `... control API http://ADDR, ready in ...`: the base URL.
fn api_of(log: &str) -> Option<String> {
    log.lines()
        .find_map(|l| l.split("control API ").nth(1))
        .and_then(|rest| rest.split(',').next())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_api_address_from_the_ready_line() {
        let log = "ccbt-uring daemon: 3 torrents, peer port 1, state in /s, control socket /s/c, \
                   control API http://127.0.0.1:4567, ready in 0.1 s\n";
        assert_eq!(api_of(log).as_deref(), Some("http://127.0.0.1:4567"));
        assert_eq!(api_of("nothing"), None);
    }

    #[test]
    fn the_rate_is_over_the_window() {
        let log = "x\n{\"second\":1,\"bytes_total\":0}\n{\"second\":2,\"bytes_total\":100000000}\n\
                   {\"second\":3,\"bytes_total\":300000000}\n{\"second\":4,\"bytes_total\":500000000}\n";
        assert_eq!(rate_over(log, 2), 200.0);
        assert_eq!(rate_over("", 2), 0.0);
    }

    #[test]
    fn sampling_keeps_to_its_budget() {
        let budget = Budget {
            samples: 5,
            time: Duration::from_secs(60),
        };
        let mut calls = 0;
        let l = sample(budget, |_| {
            calls += 1;
            Ok((7, 100, Duration::from_millis(calls)))
        })
        .unwrap();
        assert_eq!(calls, 5);
        assert_eq!((l.samples, l.torrents, l.bytes), (5, 7, 100));
    }
}
