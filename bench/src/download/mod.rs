//! `download`: how fast each client downloads a 2 GiB torrent from the same local seeders
//! over loopback, and what it costs in CPU and memory.
//!
//! One opentracker, one data set (page-cached), and for every download a fresh set of
//! `ccbt-uring seed --shards 1` seeders and a fresh empty output dir. Each downloader runs
//! alone, under `/usr/bin/time` (CPU user+sys and peak RSS of it and its children), and
//! its bytes are compared with the source before its time counts. Each round also
//! measures what the seeders can serve at most, with `ccbt-loadgen leech` as the sink.

mod contenders;
mod report;
mod seeders;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::dataset::{self, DataSet};
use crate::harness::bins;
use crate::harness::ports::Ports;
use crate::harness::process::{self, wait_listening, Process};
use crate::harness::tracker::Tracker;
use contenders::Contender;
use report::{Results, Sample};
pub use seeders::Source;
use seeders::{Seeders, Setup};

#[derive(clap::Args)]
pub struct DownloadArgs {
    /// Size of the test torrent in MiB.
    #[arg(long, default_value_t = 2048)]
    size_mib: u64,
    /// Where to keep the test data and the downloads.
    #[arg(long, default_value = "/var/tmp/ccbt-bench")]
    dir: PathBuf,
    /// Rounds; every round runs each downloader once.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seeders to download from.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    seeders: u16,
    /// What seeds: the load generator's synthetic seeders, ccbt-uring seeders, or
    /// python3-libtorrent seeders. Each has its own table (`--write` section).
    #[arg(long, value_enum, default_value_t = Source::Synthetic)]
    pub source: Source,
    /// The ccbt-uring binary (seeders, and the ccbt-uring downloader).
    #[arg(long, default_value = "target/release/ccbt-uring")]
    ccbt: PathBuf,
    /// The ccbt-loadgen binary; default: next to this one.
    #[arg(long)]
    loadgen: Option<PathBuf>,
    /// Seconds any one download may take; a slower one is reported unfinished, with its
    /// rate so far.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Leave out libtorrent, aria2 and Transmission.
    #[arg(long)]
    only_ours: bool,
    /// The downloaders to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    contenders: Vec<Contender>,
    /// Write the results table into this Markdown file, between the scenario's markers.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// Time a downloader gets, once complete, to shut down (announce `stopped`, exit).
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(60);

/// How long a download may go without progress before it counts as stalled (and the run
/// goes on without it).
const STALL_LIMIT: Duration = Duration::from_secs(30);

/// Time transmission gets to listen and announce before the seeders start.
const ANNOUNCE_LIMIT: Duration = Duration::from_secs(30);

/// 512 MiB, one round, without Transmission (at its 10 MB/s on loopback it alone would take
/// a minute): well under a minute. rqbit runs when it is installed.
pub fn quick(ccbt: PathBuf, dir: PathBuf) -> DownloadArgs {
    DownloadArgs {
        size_mib: 512,
        dir,
        rounds: 1,
        seeders: 2,
        source: Source::Synthetic,
        ccbt,
        loadgen: None,
        timeout: 120,
        only_ours: false,
        contenders: vec![
            Contender::Ccbt,
            Contender::Libtorrent,
            Contender::Aria2,
            Contender::Rqbit,
        ],
        write: None,
    }
}

/// Runs the scenario and returns its Markdown.
pub fn run(args: DownloadArgs) -> Result<String> {
    let ccbt = bins::ccbt(&args.ccbt)?;
    let loadgen = bins::loadgen(args.loadgen.as_deref())?;
    let mut ports = Ports::default();
    let tracker_port = ports.next()?;
    let announce_url = Tracker::url(tracker_port);
    let bytes = args.size_mib << 20;
    if args.source == Source::Libtorrent {
        if let Some(why) = ccbt_testkit::clients::Client::Libtorrent.missing() {
            bail!("--source libtorrent needs python3-libtorrent: {why}");
        }
    }
    let (set, torrent) = if args.source.reads_data() {
        let set = dataset::prepare(&args.dir, bytes, &ccbt)?;
        let torrent = set.torrent_with_tracker(&ccbt, &announce_url)?;
        (set, torrent)
    } else {
        dataset::synthetic(&args.dir, bytes, &loadgen, &announce_url)?
    };
    let tracker = Tracker::start(tracker_port, &info_hash(&ccbt, &torrent)?)?;
    let evicted = dataset::evict_all_but(&args.dir, &set.data_file);
    eprintln!("dropped {evicted} other bench files from the page cache");
    let mut bench = Bench {
        source: args.source,
        loadgen: &loadgen,
        ccbt: &ccbt,
        torrent: &torrent,
        set: &set,
        tracker: &tracker,
        ports,
        seeders: usize::from(args.seeders),
        timeout: Duration::from_secs(args.timeout),
        out_root: &args.dir,
    };
    let mut results = Results::new(set.bytes, bench.seeders, args.source);
    let mut contenders = Vec::new();
    for contender in Contender::ALL
        .into_iter()
        .filter(|c| args.contenders.is_empty() || args.contenders.contains(c))
        .filter(|c| c.is_ours() || !args.only_ours)
    {
        match contender.missing() {
            Some(why) => results.skip(contender.name(), why),
            None => contenders.push(contender),
        }
    }
    for round in 0..args.rounds {
        eprintln!("round {}/{}", round + 1, args.rounds);
        bench.measure_seeders(&mut results)?;
        // Start each round with the next contender, so none always goes first.
        for i in 0..contenders.len() {
            let contender = contenders[(round + i) % contenders.len()];
            match bench.download(contender)? {
                Outcome::Done(sample) => {
                    results.record(contender.name(), contender.is_ours(), sample)
                }
                Outcome::Unfinished(why) => {
                    results.record_unfinished(contender.name(), contender.is_ours(), &why)
                }
            }
        }
    }
    let table = results.markdown();
    if let Some(path) = args.write {
        crate::report::write_section(&path, args.source.section(), &table)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(table)
}

/// What every download of the run shares.
struct Bench<'a> {
    source: Source,
    loadgen: &'a Path,
    ccbt: &'a Path,
    /// The data set's torrent, announcing to `tracker`.
    torrent: &'a Path,
    set: &'a DataSet,
    tracker: &'a Tracker,
    ports: Ports,
    seeders: usize,
    timeout: Duration,
    out_root: &'a Path,
}

impl<'a> Bench<'a> {
    /// Starts the seeders; `dial`: the port of a downloader they must connect to.
    fn start_seeders(&mut self, dial: Option<u16>) -> Result<Seeders<'a>> {
        let setup = Setup {
            source: self.source,
            ccbt: self.ccbt,
            loadgen: self.loadgen,
            torrent: self.torrent,
            data_dir: &self.set.save_dir,
            count: self.seeders,
            lifetime: self.timeout.as_secs() + 2 * ANNOUNCE_LIMIT.as_secs(),
        };
        Seeders::start(&setup, &mut self.ports, self.tracker, dial)
    }

    /// The seeders' capacity into a load-generator sink: all at once, and one alone.
    fn measure_seeders(&mut self, results: &mut Results) -> Result<()> {
        dataset::warm(&self.set.data_file)?;
        let seeders = self.start_seeders(None)?;
        let loadgen = self.loadgen;
        let all = seeders.capacity(loadgen, self.torrent, self.seeders)?;
        results.record_sink(
            &format!(
                "{} seeders → ccbt-loadgen sink ({} connections)",
                self.seeders, all.connections
            ),
            all.mb_per_s,
        );
        if self.seeders > 1 {
            let one = seeders.capacity(loadgen, self.torrent, 1)?;
            results.record_sink(
                &format!(
                    "1 seeder → ccbt-loadgen sink ({} connections)",
                    one.connections
                ),
                one.mb_per_s,
            );
        }
        Ok(())
    }

    /// One download by `contender` into a fresh dir, from fresh seeders, verified.
    ///
    /// The clock starts when the seeders are up (listening, listed by the tracker) and the
    /// downloader is started, and stops at the downloader's completion line, for every
    /// downloader alike (aria2 included): what each spends shutting down afterwards
    /// (announcing `stopped`, tearing down) is not counted for anyone. Transmission is started before the seeders (it
    /// accepts loopback peers but never dials them), so its clock starts when the seeders
    /// are up: its own start-up is not counted, the seeders' dialling it is.
    fn download(&mut self, contender: Contender) -> Result<Outcome> {
        let out_dir = self.out_root.join(format!("download-{}", contender.slug()));
        remove_dir(&out_dir)?;
        std::fs::create_dir_all(&out_dir)?;
        dataset::warm(&self.set.data_file)?;
        let port = self.ports.next()?;
        let command = contender.command(self.ccbt, self.torrent, &out_dir, port);
        let name = format!("{} :{port}", contender.name());
        let (mut downloader, seeders, start) = if contender.dials_loopback_peers() {
            let seeders = self.start_seeders(None)?;
            let start = Instant::now();
            (Process::start_timed(&name, command)?, seeders, start)
        } else {
            let mut downloader = Process::start_timed(&name, command)?;
            wait_listening(port, &mut downloader, ANNOUNCE_LIMIT)?;
            self.tracker.wait_listed(&[port], ANNOUNCE_LIMIT)?;
            let seeders = self.start_seeders(Some(port))?;
            (downloader, seeders, Instant::now())
        };
        let seconds = match self.wait(contender, &mut downloader, &out_dir, start)? {
            Ok(seconds) => seconds,
            Err(why) => {
                eprintln!("{}", downloader.log_tail());
                drop(downloader);
                drop(seeders);
                remove_dir(&out_dir)?;
                return Ok(Outcome::Unfinished(why));
            }
        };
        drop(seeders);
        let usage = downloader.usage()?;
        same_bytes(&self.set.data_file, &out_dir.join(self.set.name()))
            .with_context(|| format!("{name}: the download is wrong"))?;
        remove_dir(&out_dir)?;
        Ok(Outcome::Done(Sample {
            seconds,
            cpu_seconds: usage.cpu_seconds,
            max_rss_kib: usage.max_rss_kib,
        }))
    }

    /// Waits for `downloader` to finish (its completion line or exit, then exit status 0),
    /// giving up when it has gone [`STALL_LIMIT`] without progress or the timeout passes.
    /// Progress is what it has written (the allocated bytes of its sparse file), or its
    /// progress line for a client that allocates the file up front. Gives the seconds
    /// from `start` to its completion, or why it did not finish.
    fn wait(
        &self,
        contender: Contender,
        downloader: &mut Process,
        out_dir: &Path,
        start: Instant,
    ) -> Result<std::result::Result<f64, String>> {
        let (mut percent, mut last_progress) = (0.0, start);
        let line = contender.done_line();
        let done = loop {
            if downloader.done(Some(line))? {
                if !downloader.log().contains(line) {
                    eprintln!("{}", downloader.log_tail());
                    return Ok(Err(format!(
                        "exited ({}) without its completion line `{line}`",
                        downloader
                            .exit_status()?
                            .map_or("?".to_string(), |s| s.to_string())
                    )));
                }
                break Instant::now();
            }
            let now = Instant::now();
            let now_percent = contender
                .percent_in_log(&downloader.log())
                .unwrap_or_else(|| 100.0 * allocated_bytes(out_dir) as f64 / self.set.bytes as f64);
            if now_percent > percent {
                (percent, last_progress) = (now_percent, now);
            }
            if now > start + self.timeout {
                let mb_per_s = percent / 100.0 * self.set.bytes as f64
                    / now.duration_since(start).as_secs_f64()
                    / 1e6;
                return Ok(Err(format!(
                    "not done after {} s ({percent:.1}% done, {mb_per_s:.1} MB/s so far)",
                    self.timeout.as_secs()
                )));
            }
            if now > last_progress + STALL_LIMIT {
                return Ok(Err(format!(
                    "stalled at {percent:.1}%: no progress for {} s",
                    STALL_LIMIT.as_secs()
                )));
            }
            std::thread::sleep(process::POLL);
        };
        downloader.wait_success(done + SHUTDOWN_LIMIT)?;
        Ok(Ok(done.duration_since(start).as_secs_f64()))
    }
}

/// How one download ended.
enum Outcome {
    /// Complete, exited 0, and its bytes verified.
    Done(Sample),
    /// Stalled or too slow; why.
    Unfinished(String),
}

/// Bytes allocated on disk under `dir` (sparse files count what was written), recursively.
fn allocated_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => allocated_bytes(&e.path()),
            Ok(m) => m.blocks() * 512,
            Err(_) => 0,
        })
        .sum()
}

/// The info hash of `torrent` in hex, as `ccbt-uring info --json` gives it.
fn info_hash(ccbt: &Path, torrent: &Path) -> Result<String> {
    let out = Command::new(ccbt)
        .arg("info")
        .arg(torrent)
        .arg("--json")
        .output()?;
    if !out.status.success() {
        bail!(
            "ccbt-uring info failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    json["info_hash"]
        .as_str()
        .map(str::to_string)
        .context("no info_hash in `ccbt-uring info --json`")
}

/// Fails unless `got` holds exactly the bytes of `want` (`cmp`).
fn same_bytes(want: &Path, got: &Path) -> Result<()> {
    let out = Command::new("cmp").arg(want).arg(got).output()?;
    if !out.status.success() {
        bail!(
            "{} differs from {}: {}{}",
            got.display(),
            want.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        std::fs::write(&a, b"same bytes").unwrap();
        std::fs::write(&b, b"same bytes").unwrap();
        std::fs::write(&c, b"same bytez").unwrap();
        same_bytes(&a, &b).unwrap();
        assert!(same_bytes(&a, &c).is_err());
        assert!(same_bytes(&a, &dir.path().join("missing")).is_err());
    }
}
