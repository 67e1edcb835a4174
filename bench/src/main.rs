//! `ccbt-bench`: measures ccbt-uring against real clients on this machine, in one run, and
//! reports medians and ratios (the machine is small and noisy: single runs mean little).
//!
//! Scenarios:
//! - `verify` (alias `recheck`, S3): a full recheck of a torrent by `ccbt-uring verify`,
//!   python3-libtorrent and Transmission (`transmission-cli -v`), with the data in the page
//!   cache (against `openssl speed -evp sha1` on all cores) and dropped from it (against
//!   fio's O_DIRECT read of the same file). Runs are interleaved so noise hits all alike.
//! - `download`: a 2 GiB download over loopback from local ccbt-uring seeders by
//!   ccbt-uring, libtorrent, aria2 and Transmission: rate, CPU per GiB and peak memory.
//! - `limits`: the machine's limits alone (OpenSSL SHA-1, fio O_DIRECT read, iperf3).

mod dataset;
mod download;
mod harness;
mod limits;
mod recheck;
mod report;

use anyhow::Result;
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
    /// S3 recheck, warm and cold: ccbt-uring vs libtorrent and Transmission, OpenSSL and fio.
    #[command(alias = "recheck")]
    Verify(recheck::RecheckArgs),
    /// Download speed, CPU and memory from local seeders: ccbt-uring vs libtorrent, aria2, Transmission.
    Download(download::DownloadArgs),
    /// The machine's limits: OpenSSL SHA-1 on all cores, fio O_DIRECT read, iperf3 loopback.
    Limits(limits::LimitsArgs),
}

fn main() -> Result<()> {
    match Cli::parse().scenario {
        Scenario::Verify(args) => println!("{}", recheck::run(args)?),
        Scenario::Download(args) => download::run(args)?,
        Scenario::Limits(args) => println!("{}", limits::run(args)?),
    }
    Ok(())
}
