//! `seed` (scenarios S2 and S5): one torrent seeded to 50 and to 500 `ccbt-loadgen leech`
//! leechers by ccbt-uring (one shard, and one per core), libtorrent and aria2, each tuned
//! as a seedbox: upload rate and block latency as the load generator measured them, the
//! seeder's CPU per GiB over the load window alone, its peak RSS, and iperf3 over loopback
//! as the machine's limit.
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

use crate::dataset::{self, DataSet};
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
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Rounds; every round runs each seeder once per leecher count.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests each leecher keeps outstanding (ccbt-loadgen's default).
    #[arg(long, default_value_t = 64)]
    pipeline: u32,
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

/// A run that takes about a minute: 256 MiB, 50 and 500 leechers, one round of 5 s windows.
pub fn quick(ccbt: PathBuf, dir: PathBuf) -> SeedArgs {
    SeedArgs {
        size_mib: 256,
        dir,
        leechers: vec![50, 500],
        seconds: 5,
        rounds: 1,
        pipeline: 64,
        ccbt,
        loadgen: None,
        only_ours: false,
        write: None,
    }
}

/// Runs S2 and S5 and returns both sections as Markdown.
pub fn run(args: SeedArgs) -> Result<String> {
    let ccbt = existing(&args.ccbt, "cargo build --release -p ccbt-uring")?;
    let loadgen = existing(
        &args.loadgen.clone().unwrap_or_else(default_loadgen),
        "cargo build --release -p ccbt-loadgen",
    )?;
    let set = dataset::prepare(&args.dir, args.size_mib << 20, &ccbt)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut results = Results::new(set.bytes, args.seconds, args.pipeline, args.rounds, cores);
    let mut ports = Ports::default();

    eprintln!("iperf3 over loopback ...");
    results.set_loopback(match crate::limits::iperf3_loopback() {
        Ok(Limit::Measured(rate)) => Loopback::MbPerS(rate),
        Ok(Limit::Missing(_)) => Loopback::Missing,
        Err(e) => Loopback::Failed(first_line(&e)),
    });

    let mut seeders = Vec::new();
    for seeder in Seeder::ALL {
        if args.only_ours && !seeder.is_ours() {
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
        set: &set,
        seconds: args.seconds,
        pipeline: args.pipeline,
    };
    for round in 0..args.rounds {
        eprintln!("round {}/{}", round + 1, args.rounds);
        for &leechers in &args.leechers {
            for i in 0..seeders.len() {
                let seeder = seeders[(round + i) % seeders.len()];
                match bench.window(seeder, leechers, &mut ports) {
                    Ok(Ok(sample)) => results.record(seeder, leechers, sample),
                    Ok(Err(why)) => results.record_invalid(seeder, leechers, why),
                    Err(e) => {
                        eprintln!("{e:#}");
                        results.record_invalid(seeder, leechers, first_line(&e));
                    }
                }
            }
        }
    }

    let (s2, s5) = (results.seed_markdown(), results.scaling_markdown());
    if let Some(path) = &args.write {
        crate::report::write_section(path, "seed", &s2)?;
        crate::report::write_section(path, "scaling", &s5)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(format!(
        "### S2: seeding to many leechers\n\n{s2}\n### S5: core scaling\n\n{s5}"
    ))
}

/// What every window shares.
struct Bench<'a> {
    ccbt: &'a Path,
    loadgen: &'a Path,
    set: &'a DataSet,
    seconds: u64,
    pipeline: u32,
}

impl Bench<'_> {
    /// One load window against a fresh `seeder`: the sample, or why the window does not
    /// count (load-generator errors, nothing served, the seeder gone).
    fn window(
        &self,
        seeder: Seeder,
        leechers: u32,
        ports: &mut Ports,
    ) -> Result<std::result::Result<Sample, String>> {
        dataset::warm(&self.set.data_file)?;
        let port = ports.next()?;
        let mut running = seeder.start(self.ccbt, &self.set.torrent, &self.set.save_dir, port)?;
        let load = Load {
            leechers,
            seconds: self.seconds,
            pipeline: self.pipeline,
        };
        let cpu_before = procfs::group_cpu_seconds(running.pid)?;
        let measured = load::run(self.loadgen, &self.set.torrent, port, load)?;
        let seeder_cpu_s = procfs::group_cpu_seconds(running.pid)? - cpu_before;
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
        }))
    }
}

/// `path`, made absolute, or an error saying how to build it.
fn existing(path: &Path, build: &str) -> Result<PathBuf> {
    std::fs::canonicalize(path)
        .with_context(|| format!("{} not found: run `{build}` first", path.display()))
}

/// Where `cargo build --release -p ccbt-loadgen` puts the load generator: next to this binary.
fn default_loadgen() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name("ccbt-loadgen")
}

/// The first line of an error chain, for a table note (the full error goes to stderr).
fn first_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}
