//! `ccbt-bench`: measures ccbt-uring against real clients on this machine, in one run, and
//! reports medians and ratios (the machine is small and noisy: single runs mean little).
//!
//! Scenarios:
//! - `download` (S1): a download over loopback from the load generator's synthetic seeders
//!   (or, with `--source libtorrent`, from python3-libtorrent seeders) by ccbt-uring,
//!   libtorrent, aria2, Transmission and rqbit: rate, CPU per GiB and peak memory.
//! - `seed` (S2, S5): one torrent seeded to 50 and 500 load-generator leechers by
//!   ccbt-uring, libtorrent, aria2 and rqbit, with MB per CPU second, and a shallow-pipeline
//!   latency window each; and ccbt-uring with one shard against all, over eight torrents
//!   and for one hot torrent.
//! - `verify` (alias `recheck`, S3): a full recheck of a torrent by `ccbt-uring verify`,
//!   python3-libtorrent and Transmission (`transmission-cli -v`), each timed by the bench's
//!   clock from its start, with the data in the page cache (against `openssl speed -evp
//!   sha1` on all cores) and dropped from it (against the best of fio's O_DIRECT reads at
//!   deep queues and its buffered read-ahead of the same file). Runs are interleaved so
//!   noise hits all alike.
//! - `many` (S4): 10,000 small torrents loaded and seeding: load time and RSS per torrent,
//!   ccbt-uring vs python3-libtorrent.
//! - `api` (S7): the control APIs at 100,000 torrents while seeding at full rate:
//!   Transmission `torrent-get`, qBittorrent `torrents/info` and `sync/maindata`
//!   latency, vs transmission-daemon and qbittorrent-nox at 10,000.
//! - `limits`: the machine's limits alone (OpenSSL SHA-1, fio O_DIRECT read, iperf3).
//! - `quick` and `full`: every scenario, short (under 3 minutes) or at full size;
//!   `--update-md` rewrites their sections of BENCHMARKS.md.

mod api;
mod daemon;
mod dataset;
mod download;
mod harness;
mod limits;
mod many;
mod recheck;
mod report;
mod seed;
mod suite;

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
    /// Every scenario, short (under 3 minutes): S1, S2 and S5, S3, S4.
    Quick(suite::SuiteArgs),
    /// Every scenario at full size (about half an hour).
    Full(suite::SuiteArgs),
    /// S1: download speed, CPU and memory from synthetic seeders: ccbt-uring vs libtorrent, aria2, Transmission.
    Download(download::DownloadArgs),
    /// S2 and S5: seeding to many leechers, and core scaling: ccbt-uring vs libtorrent, aria2.
    Seed(seed::SeedArgs),
    /// S3: recheck, warm and cold: ccbt-uring vs libtorrent and Transmission, OpenSSL and fio.
    #[command(alias = "recheck")]
    Verify(recheck::RecheckArgs),
    /// S4: many small torrents seeding at once: load time and RSS per torrent vs libtorrent.
    Many(many::ManyArgs),
    /// S6: the seedbox daemon with many torrents: adding, restart, RSS, shutdown and
    /// announces; vs qbittorrent-nox and transmission-daemon.
    Daemon(daemon::DaemonArgs),
    /// S7: the control APIs at scale: listing and increment latency while seeding at full
    /// rate; vs transmission-daemon and qbittorrent-nox.
    Api(api::ApiArgs),
    /// The machine's limits: OpenSSL SHA-1 on all cores, fio O_DIRECT read, iperf3 loopback.
    Limits(limits::LimitsArgs),
}

fn main() -> Result<()> {
    let scenario = Cli::parse().scenario;
    harness::process::stop_all_on_signal()?;
    match scenario {
        Scenario::Quick(args) => suite::run(suite::Size::Quick, args)?,
        Scenario::Full(args) => suite::run(suite::Size::Full, args)?,
        Scenario::Download(args) => println!("{}", download::run(args)?),
        Scenario::Seed(args) => println!("{}", seed::run(args)?),
        Scenario::Verify(args) => println!("{}", recheck::run(args)?),
        Scenario::Many(args) => println!("{}", many::run(args)?),
        Scenario::Daemon(args) => println!("{}", daemon::run(args)?),
        Scenario::Api(args) => println!("{}", api::run(args)?),
        Scenario::Limits(args) => println!("{}", limits::run(args)?),
    }
    Ok(())
}
