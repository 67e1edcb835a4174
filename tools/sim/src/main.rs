//! `ccbt-sim`: runs the swarm simulator over a range of seeds; every failure prints the
//! command that replays it.

use std::ops::Range;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ccbt_sim::Scenario;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Deterministic swarm simulator for the ccbt-uring engine")]
struct Args {
    /// Seeds to run, `A..B` (B excluded) or one seed.
    #[arg(long, default_value = "0..100")]
    seeds: String,
    /// Instead of small random swarms, one large swarm of this many peers per seed.
    #[arg(long)]
    large: Option<usize>,
    /// Share of the large swarm's peers that are liars.
    #[arg(long, default_value_t = 0.1)]
    liars: f64,
    /// Share of segments the large swarm's network loses.
    #[arg(long, default_value_t = 0.05)]
    loss: f64,
    /// Skip the invariant checks after each event (faster; properties are still checked).
    #[arg(long)]
    no_invariants: bool,
    /// Print a line for every run, not only for failures.
    #[arg(long, short)]
    verbose: bool,
    /// Runs at once (threads); each run is single-threaded and depends only on its seed.
    #[arg(long, short, default_value_t = 1)]
    jobs: usize,
}

/// Totals over the runs.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    simulated: Duration,
}

fn seeds(text: &str) -> anyhow::Result<Range<u64>> {
    let range = match text.split_once("..") {
        Some((a, b)) => a.parse().context("first seed")?..b.parse().context("last seed")?,
        None => {
            let seed: u64 = text.parse().context("seed")?;
            seed..seed + 1
        }
    };
    if range.is_empty() {
        bail!("no seeds in {text}");
    }
    Ok(range)
}

fn scenario(args: &Args, seed: u64) -> Scenario {
    let mut scenario = match args.large {
        Some(peers) => {
            let liars = (peers as f64 * args.liars).round() as usize;
            Scenario::large(seed, peers, liars, args.loss)
        }
        None => Scenario::random(seed),
    };
    scenario.check_every_event = !args.no_invariants;
    scenario
}

fn run_one(args: &Args, seed: u64, tally: &Mutex<Tally>) {
    let outcome = ccbt_sim::run(scenario(args, seed));
    let mut tally = tally.lock().expect("no run panics outside catch_unwind");
    match outcome {
        Ok(report) => {
            tally.passed += 1;
            tally.simulated += report.simulated;
            if args.verbose {
                println!("{report}");
            }
        }
        Err(e) => {
            tally.failed += 1;
            let large = args
                .large
                .map(|p| format!(" --large {p} --liars {} --loss {}", args.liars, args.loss))
                .unwrap_or_default();
            println!("FAILED {e}\n  replay: ccbt-sim --seeds {seed}{large} --verbose");
        }
    }
}

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let range = seeds(&args.seeds)?;
    let wall = Instant::now();
    let next = AtomicU64::new(range.start);
    let tally = Mutex::new(Tally::default());
    std::thread::scope(|scope| {
        for _ in 0..args.jobs.max(1) {
            scope.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= range.end {
                    break;
                }
                run_one(&args, seed, &tally);
            });
        }
    });
    let tally = tally
        .into_inner()
        .expect("no run panics outside catch_unwind");
    let wall = wall.elapsed();
    println!(
        "{} passed, {} failed; {:.0} s simulated in {:.1} s ({:.0} simulated s per wall s)",
        tally.passed,
        tally.failed,
        tally.simulated.as_secs_f64(),
        wall.as_secs_f64(),
        tally.simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    );
    Ok(if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
