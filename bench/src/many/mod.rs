//! `many` (S4): N small torrents loaded and seeding in one process. How long until all of
//! them seed, and how much resident memory each torrent costs once idle.
//!
//! The data set is `ccbt-loadgen dataset` (single-file torrents, made once and reused). Each
//! seeder runs twice: with all N torrents and with one, both reading the same directory
//! layout; RSS per torrent is (VmRSS with N - VmRSS with 1) / (N - 1), read from
//! /proc/PID/status a moment after the seeder says every torrent seeds. While the N-torrent
//! seeder runs, a short `ccbt-loadgen leech` of three of its torrents shows they really serve.
//!
//! Contenders: `ccbt-uring seed DIR` (which rechecks all data first), and python3-libtorrent
//! through `bench/scripts/lt_many.py`, both with a recheck (like for like) and in libtorrent's
//! seed_mode (no check at start).

pub mod report;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::harness::bins;
use crate::harness::ports::Ports;
use crate::harness::process::{Process, POLL};
use ccbt_testkit::clients::{Client, DEBIAN_PYTHON};
use report::Row;

#[derive(clap::Args)]
pub struct ManyArgs {
    /// Number of torrents.
    #[arg(long, default_value_t = 10_000)]
    torrents: u32,
    /// Bytes of each torrent's single file.
    #[arg(long, default_value_t = 32 << 10)]
    file_bytes: u64,
    /// Piece length of the torrents.
    #[arg(long, default_value_t = 16 << 10)]
    piece_length: u32,
    /// Where to keep the data set (reused when already made).
    #[arg(long, default_value = "/var/tmp/ccbt-bench")]
    dir: PathBuf,
    /// The ccbt-uring binary to measure.
    #[arg(long, default_value = "target/release/ccbt-uring")]
    ccbt: PathBuf,
    /// The ccbt-loadgen binary; default: next to this one.
    #[arg(long)]
    loadgen: Option<PathBuf>,
    /// Seconds a seeder may take to load every torrent.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Leave out libtorrent.
    #[arg(long)]
    only_ours: bool,
    /// The quick preset instead of the counts above: 1,000 torrents.
    #[arg(long)]
    quick: bool,
    /// Write the results table into this Markdown file, between the scenario's markers.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// A run that takes well under a minute: 1,000 torrents.
pub fn quick(ccbt: PathBuf, dir: PathBuf) -> ManyArgs {
    ManyArgs {
        torrents: 1000,
        file_bytes: 32 << 10,
        piece_length: 16 << 10,
        dir,
        ccbt,
        loadgen: None,
        timeout: 60,
        only_ours: false,
        quick: true,
        write: None,
    }
}

/// Time after the "loaded" line before RSS is read, for start-up work to settle.
const SETTLE: Duration = Duration::from_secs(1);
/// Torrents the short leech fetches, and for how long.
const LEECH_TORRENTS: usize = 3;
const LEECH_SECONDS: u32 = 2;

#[derive(Clone, Copy)]
enum Seeder {
    Ccbt,
    LibtorrentRecheck,
    LibtorrentSeedMode,
}

impl Seeder {
    fn name(self) -> &'static str {
        match self {
            Seeder::Ccbt => "ccbt-uring seed (recheck)",
            Seeder::LibtorrentRecheck => "python3-libtorrent 2.0 (recheck)",
            Seeder::LibtorrentSeedMode => "python3-libtorrent 2.0 (seed_mode, no check)",
        }
    }

    fn command(self, ccbt: &Path, torrents: &Path, data: &Path, port: u16) -> Command {
        match self {
            Seeder::Ccbt => {
                let mut cmd = Command::new(ccbt);
                cmd.arg("seed").arg(torrents).arg("--data").arg(data).args([
                    "--listen",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                ]);
                cmd
            }
            Seeder::LibtorrentRecheck | Seeder::LibtorrentSeedMode => {
                let mut cmd = Command::new(DEBIAN_PYTHON);
                cmd.arg("-u")
                    .arg(bins::bench_scripts().join("lt_many.py"))
                    .arg(match self {
                        Seeder::LibtorrentSeedMode => "seed_mode",
                        _ => "recheck",
                    })
                    .arg(torrents)
                    .arg(data)
                    .arg(port.to_string());
                cmd
            }
        }
    }
}

pub fn run(args: ManyArgs) -> Result<String> {
    let args = if args.quick {
        ManyArgs {
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
    let set = prepare(&args, &loadgen)?;
    let mut seeders = vec![Seeder::Ccbt];
    let mut skipped = Vec::new();
    if !args.only_ours {
        match Client::Libtorrent.missing() {
            None => seeders.extend([Seeder::LibtorrentRecheck, Seeder::LibtorrentSeedMode]),
            Some(why) => skipped.push(format!("skipped: {why}.")),
        }
    }
    let mut ports = Ports::default();
    let limit = Duration::from_secs(args.timeout);
    let mut rows = Vec::new();
    for seeder in seeders {
        eprintln!("many: {} with {} torrents", seeder.name(), args.torrents);
        let many = Run {
            seeder,
            ccbt: &ccbt,
            torrents: &set.torrents,
            data: &set.data,
            port: ports.next()?,
            limit,
        };
        let one_port = ports.next()?;
        let measure = || {
            let ((count, load_seconds, rss_many_kib), served) =
                many.measure(|port| leech(&loadgen, &set.torrents, port))?;
            let one = Run {
                torrents: &set.one,
                port: one_port,
                ..many
            };
            let ((_, _, rss_one_kib), ()) = one.measure(|_| Ok(()))?;
            anyhow::Ok(Row {
                name: seeder.name().to_string(),
                torrents: count,
                load_seconds,
                rss_many_kib,
                rss_one_kib,
                served: Some(served),
            })
        };
        // python3-libtorrent has been seen to crash (SIGSEGV) now and then while adding
        // torrents; one crash gets a second try, and a second failure is reported.
        let measured = measure().or_else(|e| {
            eprintln!("{e:#}\nmany: trying {} once more", seeder.name());
            measure()
        });
        // One seeder failing (not loading in time, say) is a result, not the end of the run.
        match measured {
            Ok(row) => rows.push(row),
            Err(e) => {
                eprintln!("{e:#}");
                let first = format!("{e:#}");
                let first = first.lines().next().unwrap_or_default();
                skipped.push(format!("{}: no figures: {first}.", seeder.name()));
            }
        }
    }
    let table = report::markdown(&rows, &skipped);
    if let Some(path) = &args.write {
        crate::report::write_section(path, "many", &table)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(table)
}

/// The data set's paths.
struct DataSet {
    /// Every .torrent.
    torrents: PathBuf,
    /// The first .torrent alone, for the one-torrent baseline.
    one: PathBuf,
    data: PathBuf,
}

/// Makes the data set unless a complete one is there already.
fn prepare(args: &ManyArgs, loadgen: &Path) -> Result<DataSet> {
    let root = args.dir.join(format!(
        "many-{}x{}-{}",
        args.torrents, args.file_bytes, args.piece_length
    ));
    let set = DataSet {
        torrents: root.join("torrents"),
        one: root.join("one"),
        data: root.join("data"),
    };
    let made = std::fs::read_dir(&set.torrents).map_or(0, |d| d.count());
    let first = set.torrents.join("t000000.torrent");
    if made != args.torrents as usize || !set.one.join("t000000.torrent").is_file() {
        eprintln!(
            "many: writing {} torrents under {}",
            args.torrents,
            root.display()
        );
        crate::dataset::write_many(
            loadgen,
            &root,
            args.torrents,
            args.file_bytes,
            args.piece_length,
        )?;
        std::fs::create_dir_all(&set.one)?;
        std::fs::copy(&first, set.one.join("t000000.torrent"))?;
    }
    Ok(set)
}

/// One seeder process over one directory of torrents.
#[derive(Clone, Copy)]
struct Run<'a> {
    seeder: Seeder,
    ccbt: &'a Path,
    torrents: &'a Path,
    data: &'a Path,
    port: u16,
    limit: Duration,
}

impl Run<'_> {
    /// Starts the seeder, waits until it says all torrents seed, reads its RSS, runs
    /// `meanwhile` against its port, and stops it. Returns (torrents seeding, load seconds,
    /// VmRSS in KiB) and what `meanwhile` gave.
    fn measure<T>(&self, meanwhile: impl FnOnce(u16) -> Result<T>) -> Result<((u64, f64, u64), T)> {
        let cmd = self
            .seeder
            .command(self.ccbt, self.torrents, self.data, self.port);
        let mut process = Process::start(self.seeder.name(), cmd)?;
        let deadline = Instant::now() + self.limit;
        let (count, seconds) = loop {
            if let Some(found) = report::parse_loaded(&process.log()) {
                break found;
            }
            if let Some(status) = process.exit_status()? {
                bail!(
                    "{} exited ({status})\n{}",
                    process.name(),
                    process.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not load in time\n{}",
                    process.name(),
                    process.log_tail()
                );
            }
            std::thread::sleep(POLL);
        };
        std::thread::sleep(SETTLE);
        let status = std::fs::read_to_string(format!("/proc/{}/status", process.pid()))?;
        let rss = report::parse_vm_rss(&status).context("no VmRSS in /proc/PID/status")?;
        let got = meanwhile(self.port)?;
        process.stop()?;
        Ok(((count, seconds, rss), got))
    }
}

/// A short leech of the first few torrents: proof they are served, in a few words.
fn leech(loadgen: &Path, torrents: &Path, port: u16) -> Result<String> {
    let mut cmd = Command::new(loadgen);
    cmd.arg("leech");
    for t in 0..LEECH_TORRENTS {
        cmd.arg("--torrent")
            .arg(torrents.join(format!("t{t:06}.torrent")));
    }
    let out = cmd
        .args(["--target", &format!("127.0.0.1:{port}")])
        .args(["--peers", &LEECH_TORRENTS.to_string()])
        .args(["--duration", &LEECH_SECONDS.to_string(), "--json"])
        .output()
        .with_context(|| format!("cannot run {}", loadgen.display()))?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "ccbt-loadgen leech printed no JSON: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    let bytes = json["bytes"].as_u64().unwrap_or(0);
    let errors = json["errors"].as_u64().unwrap_or(0);
    Ok(if bytes > 0 && errors == 0 {
        format!("yes: {} KiB verified", bytes >> 10)
    } else {
        format!("no: {bytes} bytes, {errors} errors")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_libtorrent_script_is_in_the_repository() {
        assert!(bins::bench_scripts().join("lt_many.py").is_file());
    }
}
