//! `ccbt-bench`: measures ccbt-uring against real clients on this machine, in one run, and
//! reports medians and ratios (the machine is small and noisy: single runs mean little).
//!
//! Scenarios:
//! - `verify`: a full recheck of a torrent whose data is in the page cache, by
//!   `ccbt-uring verify`, python3-libtorrent and Transmission (`transmission-cli -v`),
//!   against `openssl speed -evp sha1` summed over all cores as the hashing ceiling.
//!   Runs are interleaved so that noise hits every contender alike.
//! - `download`: a 2 GiB download over loopback from local ccbt-uring seeders by
//!   ccbt-uring, libtorrent, aria2 and Transmission: rate, CPU per GiB and peak memory.
//! - `many`: N small torrents loaded and seeding: load time and RSS per torrent, ccbt-uring
//!   vs libtorrent.

mod contenders;
mod dataset;
mod download;
mod harness;
mod many;
mod report;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ccbt-bench",
    about = "Benchmarks ccbt-uring against real clients"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Recheck speed on page-cached data: ccbt-uring vs OpenSSL's ceiling, libtorrent and Transmission.
    Verify(VerifyArgs),
    /// Download speed, CPU and memory from local seeders: ccbt-uring vs libtorrent, aria2, Transmission.
    Download(download::DownloadArgs),
    /// Many small torrents seeding at once: load time and RSS per torrent vs libtorrent.
    Many(many::ManyArgs),
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// Size of the test torrent in GiB.
    #[arg(long, default_value_t = 2)]
    size_gib: u64,
    /// Where to keep the test data (reused between runs if it is already the right size).
    #[arg(long, default_value = "/var/tmp/ccbt-bench")]
    dir: PathBuf,
    /// Rounds; every round runs each contender once.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The ccbt-uring binary to measure.
    #[arg(long, default_value = "target/release/ccbt-uring")]
    ccbt: PathBuf,
    /// Leave out the Transmission and libtorrent contenders.
    #[arg(long)]
    only_ours: bool,
    /// Write the results table into this Markdown file, between the scenario's markers.
    #[arg(long)]
    write: Option<PathBuf>,
}

fn main() -> Result<()> {
    match Cli::parse().scenario {
        Scenario::Verify(args) => verify(args),
        Scenario::Download(args) => download::run(args),
        Scenario::Many(args) => many::run(args).map(drop),
    }
}

fn verify(args: VerifyArgs) -> Result<()> {
    let ccbt = std::fs::canonicalize(&args.ccbt).with_context(|| {
        format!(
            "{} not found: run `cargo build --release` first",
            args.ccbt.display()
        )
    })?;
    let set = dataset::prepare(&args.dir, args.size_gib << 30, &ccbt)?;
    // Transmission drops the file from the page cache after verifying (posix_fadvise
    // DONTNEED), so the cache is warmed again before every contender.
    let warm = || dataset::warm(&set.data_file);
    let mut results = report::Results::new(set.bytes);
    for round in 1..=args.rounds {
        eprintln!("round {round}/{}", args.rounds);
        results.record(
            "openssl speed -evp sha1, all cores",
            contenders::openssl_all_cores()?,
        );
        warm()?;
        results.record("ccbt-uring verify", contenders::ccbt_verify(&ccbt, &set)?);
        if !args.only_ours {
            warm()?;
            results.record(
                "python3-libtorrent recheck",
                contenders::libtorrent_recheck(&set)?,
            );
            warm()?;
            results.record(
                "Transmission 3.00 verify",
                contenders::transmission_verify(&set)?,
            );
        }
    }
    let table = results.markdown("ccbt-uring verify", "openssl speed -evp sha1, all cores");
    println!("{table}");
    if let Some(path) = args.write {
        report::write_section(&path, "verify", &table)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
