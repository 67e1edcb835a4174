//! `ccbt-sim`: runs the swarm simulator over a range of seeds; every failure prints the
//! command that replays it.

use std::ops::Range;
use std::process::ExitCode;
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

fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let range = seeds(&args.seeds)?;
    let wall = Instant::now();
    let (mut passed, mut failed) = (0u64, 0u64);
    let mut simulated = Duration::ZERO;
    for seed in range {
        let mut scenario = match args.large {
            Some(peers) => {
                let liars = (peers as f64 * args.liars).round() as usize;
                Scenario::large(seed, peers, liars, args.loss)
            }
            None => Scenario::random(seed),
        };
        scenario.check_every_event = !args.no_invariants;
        match ccbt_sim::run(scenario) {
            Ok(report) => {
                passed += 1;
                simulated += report.simulated;
                if args.verbose {
                    println!("{report}");
                }
            }
            Err(e) => {
                failed += 1;
                let large = args
                    .large
                    .map(|p| format!(" --large {p} --liars {} --loss {}", args.liars, args.loss))
                    .unwrap_or_default();
                println!("FAILED {e}\n  replay: ccbt-sim --seeds {seed}{large} --verbose");
            }
        }
    }
    let wall = wall.elapsed();
    println!(
        "{passed} passed, {failed} failed; {:.0} s simulated in {:.1} s ({:.0} simulated s per wall s)",
        simulated.as_secs_f64(),
        wall.as_secs_f64(),
        simulated.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
