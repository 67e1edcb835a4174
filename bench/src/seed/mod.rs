//! `seed` (scenarios S2 and S5). S2: one torrent seeded to 50 and to 500 `ccbt-loadgen
//! leech` leechers by ccbt-uring, libtorrent, aria2 and rqbit, each tuned as a seedbox:
//! upload rate and block latency as the load generator measured them, the seeder's CPU
//! per GiB (and MB per CPU second) over the load window alone, its peak RSS, and iperf3
//! over loopback as the machine's limit; then, in windows of their own, every seeder at
//! the largest leecher count with a shallow request pipeline (4), so that the latency is a
//! service time rather than the queue a 64-deep pipeline makes. S5: ccbt-uring with one
//! shard against one per core, twice: the S2 load spread over eight torrents of the same
//! total size, and the S2 torrent alone (one hot torrent, served from every shard).
//!
//! Every window gets a freshly started seeder on the same page-cached data, started and
//! checked before the window opens; seeders take turns, and each round starts with the
//! next one, so noise hits all alike.

mod load;
mod procfs;
mod report;
mod seeders;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::dataset;
use crate::harness::bins;
use crate::harness::ports::Ports;
use crate::limits::Limit;
use load::Load;
use report::{Loopback, Results, Sample};
use seeders::Seeder;

#[derive(clap::Args)]
pub struct SeedArgs {
    /// Size of the test torrent in MiB.
    #[arg(long, default_value_t = 2048)]
    size_mib: u64,
    /// Where to keep the test data (shared with the other scenarios, reused if present).
    #[arg(long, default_value = "/var/tmp/ccbt-bench")]
    dir: PathBuf,
    /// Leecher counts to load each seeder with, comma separated.
    #[arg(long, value_delimiter = ',', default_values_t = [50, 500])]
    leechers: Vec<u32>,
    /// Seconds of each load window.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Rounds; every round runs each seeder once per leecher count.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests each leecher keeps outstanding in the throughput windows (ccbt-loadgen's
    /// default).
    #[arg(long, default_value_t = 64)]
    pipeline: u32,
    /// Leechers of the latency windows (every seeder, S2's torrent); 0 leaves them out.
    #[arg(long, default_value_t = 500)]
    latency_leechers: u32,
    /// Requests each leecher keeps outstanding in the latency windows: few, so a block's
    /// latency is its service time, not its wait behind the leecher's own queue.
    #[arg(long, default_value_t = 4)]
    latency_pipeline: u32,
    /// The ccbt-uring binary to measure.
    #[arg(long, default_value = "target/release/ccbt-uring")]
    ccbt: PathBuf,
    /// The ccbt-loadgen binary; default: next to this one.
    #[arg(long)]
    loadgen: Option<PathBuf>,
    /// Leave out libtorrent and aria2.
    #[arg(long)]
    only_ours: bool,
    /// Write the S2 and S5 tables into this Markdown file, between the `seed` and
    /// `scaling` markers.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// A run that takes about two minutes: 256 MiB, 50 and 500 leechers, one round of 5 s
/// windows, the latency windows at 500 leechers.
pub fn quick(ccbt: PathBuf, dir: PathBuf) -> SeedArgs {
    SeedArgs {
        size_mib: 256,
        dir,
        leechers: vec![50, 500],
        seconds: 5,
        rounds: 1,
        pipeline: 64,
        latency_leechers: 500,
        latency_pipeline: 4,
        ccbt,
        loadgen: None,
        only_ours: false,
        write: None,
    }
}

/// Runs S2 and S5 and returns both sections as Markdown.
pub fn run(args: SeedArgs) -> Result<String> {
    let ccbt = bins::ccbt(&args.ccbt)?;
    let loadgen = bins::loadgen(args.loadgen.as_deref())?;
    let set = dataset::prepare(&args.dir, args.size_mib << 20, &ccbt)?;
    let one = Target {
        torrent: set.torrent.clone(),
        save_dir: set.save_dir.clone(),
        files: vec![set.data_file.clone()],
    };
    let spread = spread_target(&args, &loadgen)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results = Results::new(set.bytes, args.seconds, args.pipeline, args.rounds, cores);
    let mut scaling = Results::new(set.bytes, args.seconds, args.pipeline, args.rounds, cores);
    let mut hot = Results::new(set.bytes, args.seconds, args.pipeline, args.rounds, cores);
    let mut latency = Results::new(
        set.bytes,
        args.seconds,
        args.latency_pipeline,
        args.rounds,
        cores,
    );
    let mut ports = Ports::default();

    eprintln!("iperf3 over loopback ...");
    results.set_loopback(match crate::limits::iperf3_loopback() {
        Ok(Limit::Measured(rate)) => Loopback::MbPerS(rate),
        Ok(Limit::Missing(_)) => Loopback::Missing,
        Err(e) => Loopback::Failed(first_line(&e)),
    });

    let mut seeders = Vec::new();
    for seeder in Seeder::ALL {
        if (args.only_ours && !seeder.is_ours()) || seeder == Seeder::CcbtOneShard {
            continue;
        }
        match seeder.missing() {
            Some(why) => results.skip(why),
            None => seeders.push(seeder),
        }
    }
    let bench = Bench {
        ccbt: &ccbt,
        loadgen: &loadgen,
    };
    let shards = [Seeder::CcbtOneShard, Seeder::CcbtAllShards];
    for round in 0..args.rounds {
        eprintln!("round {}/{}", round + 1, args.rounds);
        for &leechers in &args.leechers {
            let load = |pipeline| Load {
                leechers,
                seconds: args.seconds,
                pipeline,
            };
            for seeder in in_turn(&seeders, round) {
                bench.record(&mut results, seeder, &one, load(args.pipeline), &mut ports);
            }
            for seeder in in_turn(&shards, round) {
                bench.record(
                    &mut scaling,
                    seeder,
                    &spread,
                    load(args.pipeline),
                    &mut ports,
                );
            }
            for seeder in in_turn(&shards, round) {
                bench.record(&mut hot, seeder, &one, load(args.pipeline), &mut ports);
            }
        }
        if args.latency_leechers > 0 {
            let load = Load {
                leechers: args.latency_leechers,
                seconds: args.seconds,
                pipeline: args.latency_pipeline,
            };
            for seeder in in_turn(&seeders, round) {
                bench.record(&mut latency, seeder, &one, load, &mut ports);
            }
        }
    }

    let s2 = results.seed_markdown(&latency);
    let s5 = format!(
        "**Eight torrents**: {SPREAD_TORRENTS} torrents of {} MiB each (the S2 total), the \
         leechers spread evenly over them. {}\n\
         **One hot torrent**: the S2 torrent alone, every leecher on it. {}",
        args.size_mib / u64::from(SPREAD_TORRENTS),
        scaling.scaling_markdown(report::TARGET_SPREAD_SCALING),
        hot.scaling_markdown(report::TARGET_HOT_SCALING),
    );
    if let Some(path) = &args.write {
        crate::report::write_section(path, "seed", &s2)?;
        crate::report::write_section(path, "scaling", &s5)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(format!(
        "### S2: seeding to many leechers\n\n{s2}\n### S5: core scaling\n\n{s5}"
    ))
}

/// `items`, starting with a different one each round, so none always goes first.
fn in_turn<T: Copy>(items: &[T], round: usize) -> impl Iterator<Item = T> + '_ {
    (0..items.len()).map(move |i| items[(round + i) % items.len()])
}

/// Torrents S5 spreads the load over: enough that hashing them onto two shards is close
/// to even.
const SPREAD_TORRENTS: u32 = 8;

/// What a window seeds: a torrent or a directory of them, the save dir, and the files to
/// warm.
struct Target {
    torrent: PathBuf,
    save_dir: PathBuf,
    files: Vec<PathBuf>,
}

/// S5's data: [`SPREAD_TORRENTS`] single-file torrents of `ccbt-loadgen dataset` with
/// 1 MiB pieces, as much data as S2's torrent, made once under `dir`.
fn spread_target(args: &SeedArgs, loadgen: &Path) -> Result<Target> {
    let file_bytes = (args.size_mib << 20) / u64::from(SPREAD_TORRENTS);
    let root = args
        .dir
        .join(format!("spread-{SPREAD_TORRENTS}x{file_bytes}"));
    let names: Vec<String> = (0..SPREAD_TORRENTS).map(|t| format!("t{t:06}")).collect();
    let target = Target {
        torrent: root.join("torrents"),
        save_dir: root.join("data"),
        files: names.iter().map(|n| root.join("data").join(n)).collect(),
    };
    let complete = target
        .files
        .iter()
        .all(|f| std::fs::metadata(f).is_ok_and(|m| m.len() == file_bytes));
    if !complete {
        eprintln!(
            "writing {SPREAD_TORRENTS} torrents under {}",
            root.display()
        );
        let _ = std::fs::remove_dir_all(&root);
        let status = std::process::Command::new(loadgen)
            .arg("dataset")
            .args(["--torrents", &SPREAD_TORRENTS.to_string(), "--files", "1"])
            .args(["--file-bytes", &file_bytes.to_string()])
            .args(["--piece-length", &(1u32 << 20).to_string()])
            .arg("--out")
            .arg(&root)
            .status()
            .with_context(|| format!("cannot run {}", loadgen.display()))?;
        anyhow::ensure!(status.success(), "ccbt-loadgen dataset failed ({status})");
    }
    Ok(target)
}

/// Whether a thread is one of ccbt-uring's shards, by the name glommio gives them: the
/// shard's name and the executor's id (`shard-0-3`, `shard-1-4`; not their resolvers,
/// `shard0-dns0`). The CPU split between them shows whether a torrent's serving is spread
/// over the shards.
fn is_shard_thread(name: &str) -> bool {
    name.strip_prefix("shard-").is_some_and(|n| {
        let mut parts = n.split('-');
        let number = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        number(parts.next()) && number(parts.next()) && parts.next().is_none()
    })
}

/// What every window shares.
struct Bench<'a> {
    ccbt: &'a Path,
    loadgen: &'a Path,
}

impl Bench<'_> {
    /// One window, recorded as a sample or as why it does not count.
    fn record(
        &self,
        results: &mut Results,
        seeder: Seeder,
        target: &Target,
        load: Load,
        ports: &mut Ports,
    ) {
        let leechers = load.leechers;
        match self.window(seeder, target, load, ports) {
            Ok(Ok(sample)) => results.record(seeder, leechers, sample),
            Ok(Err(why)) => results.record_invalid(seeder, leechers, why),
            Err(e) => {
                eprintln!("{e:#}");
                results.record_invalid(seeder, leechers, first_line(&e));
            }
        }
    }

    /// One load window against a fresh `seeder`: the sample, or why the window does not
    /// count (load-generator errors, nothing served, the seeder gone).
    fn window(
        &self,
        seeder: Seeder,
        target: &Target,
        load: Load,
        ports: &mut Ports,
    ) -> Result<std::result::Result<Sample, String>> {
        for file in &target.files {
            dataset::warm(file)?;
        }
        let port = ports.next()?;
        let mut running = seeder.start(self.ccbt, &target.torrent, &target.save_dir, port)?;
        procfs::reset_peak_rss(running.pid)?;
        let cpu_before = procfs::group_cpu_seconds(running.pid)?;
        let shards_before = procfs::threads_cpu_seconds(running.pid, is_shard_thread)?;
        let measured = load::run(self.loadgen, &target.torrent, port, load)?;
        let seeder_cpu_s = procfs::group_cpu_seconds(running.pid)? - cpu_before;
        let busiest_shard = if seeder.is_ours() {
            let after = procfs::threads_cpu_seconds(running.pid, is_shard_thread)?;
            procfs::busiest_share(&shards_before, &after)
        } else {
            None
        };
        let peak_rss_kib = procfs::peak_rss_kib(running.pid)?;
        if let Some(status) = running.process.exit_status()? {
            eprintln!("{}", running.process.log_tail());
            return Ok(Err(format!(
                "the seeder exited during the window ({status})"
            )));
        }
        drop(running);
        if measured.errors > 0 {
            return Ok(Err(format!(
                "{} load-generator errors, the first: {}",
                measured.errors,
                measured.first_error.as_deref().unwrap_or("?")
            )));
        }
        if measured.bytes == 0 {
            return Ok(Err("served nothing".to_string()));
        }
        Ok(Ok(Sample {
            measured,
            seeder_cpu_s,
            peak_rss_kib,
            busiest_shard,
        }))
    }
}

/// The first line of an error chain, for a table note (the full error goes to stderr).
fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_shard_threads_by_name() {
        assert!(is_shard_thread("shard-0-3") && is_shard_thread("shard-12-15"));
        assert!(!is_shard_thread("shard0-dns0") && !is_shard_thread("shard-0-dns0"));
        assert!(!is_shard_thread("shard-0") && !is_shard_thread("shard-0-"));
        assert!(!is_shard_thread("ccbt-uring") && !is_shard_thread("dht-dns0"));
    }
}
