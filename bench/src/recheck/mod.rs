//! S3, `verify` (alias `recheck`): a full recheck of one torrent's data by ccbt-uring,
//! python3-libtorrent and Transmission, twice per round: warm (the file in the page cache)
//! against OpenSSL's SHA-1 on every core, and cold (the file dropped from the page cache)
//! against the disk's ceiling: the best of fio's O_DIRECT reads at deep queues and large
//! blocks and its buffered read with the kernel's read-ahead, of the same file. Every
//! contender is timed by one outside clock, ours included: from the moment its process is
//! started to its completion line (or its exit), not by its own report. The limits are
//! measured in the same rounds as the contenders, and each round starts with the next
//! contender, so noise hits every one alike.

mod contenders;
mod report;

use std::path::PathBuf;

use anyhow::Result;

use crate::dataset::{self, DataSet};
use crate::limits::{self, FioRead, Limit};
use contenders::Contender;
use report::Phase;

#[derive(clap::Args)]
pub struct RecheckArgs {
    /// Size of the test torrent in MiB.
    #[arg(long, default_value_t = 2048)]
    size_mib: u64,
    /// Where to keep the test data (reused between runs if it is already the right size).
    #[arg(long, default_value = "/var/tmp/ccbt-bench")]
    dir: PathBuf,
    /// Rounds; every round runs each contender once warm and once cold.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// The ccbt-uring binary to measure.
    #[arg(long, default_value = "target/release/ccbt-uring")]
    ccbt: PathBuf,
    /// Leave out the Transmission and libtorrent contenders.
    #[arg(long)]
    only_ours: bool,
    /// The quick preset: 512 MiB, one round (overrides --size-mib and --rounds).
    #[arg(long)]
    quick: bool,
    /// Write the results into this Markdown file, between the scenario's markers.
    #[arg(long)]
    pub write: Option<PathBuf>,
}

/// 512 MiB, one round: warm and cold in well under a minute.
pub fn quick(ccbt: PathBuf, dir: PathBuf) -> RecheckArgs {
    RecheckArgs {
        size_mib: 512,
        dir,
        rounds: 1,
        ccbt,
        only_ours: false,
        quick: true,
        write: None,
    }
}

/// The targets of issue 4: shares of the phase's limit.
const WARM_TARGET: f64 = 0.85;
const COLD_TARGET: f64 = 0.90;

/// The reads that may set the cold ceiling; the best median is the ceiling.
const COLD_CEILINGS: [FioRead; 3] = [
    FioRead::Direct {
        block_mib: 1,
        iodepth: 32,
    },
    FioRead::Direct {
        block_mib: 4,
        iodepth: 64,
    },
    FioRead::Buffered {
        block_mib: 4,
        iodepth: 64,
    },
];

pub fn run(args: RecheckArgs) -> Result<String> {
    let args = if args.quick {
        RecheckArgs {
            only_ours: args.only_ours,
            write: args.write,
            ..quick(args.ccbt, args.dir)
        }
    } else {
        args
    };
    let ccbt = crate::harness::bins::ccbt(&args.ccbt)?;
    let set = dataset::prepare(&args.dir, args.size_mib << 20, &ccbt)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let openssl = format!("openssl speed -evp sha1, {cores} cores");
    let ours = Contender::Ccbt.name();
    let mut warm = Phase::new(&[&openssl], ours, WARM_TARGET);
    let fio: Vec<String> = COLD_CEILINGS.iter().map(|r| r.name()).collect();
    let fio_names: Vec<&str> = fio.iter().map(String::as_str).collect();
    let mut cold = Phase::new(&fio_names, ours, COLD_TARGET);
    let mut contenders = Vec::new();
    for contender in Contender::ALL {
        if args.only_ours && !contender.is_ours() {
            continue;
        }
        match contender.missing() {
            Some(install) => {
                let line = format!("{}: not installed, skipped ({install})", contender.name());
                eprintln!("{line}");
                warm.note(line.clone());
                cold.note(line);
            }
            None => contenders.push(contender),
        }
    }
    let bench = Bench {
        ccbt: &ccbt,
        set: &set,
        contenders: &contenders,
    };
    for round in 0..args.rounds {
        eprintln!("round {}/{}", round + 1, args.rounds);
        eprintln!(" warm");
        record_limit(&mut warm, &openssl, limits::openssl_sha1_all_cores());
        bench.warm_round(round, &mut warm)?;
        eprintln!(" cold");
        for read in COLD_CEILINGS {
            dataset::evict(&set.data_file)?;
            record_limit(
                &mut cold,
                &read.name(),
                limits::fio_read(&set.data_file, read),
            );
        }
        bench.cold_round(round, &mut cold)?;
    }
    let markdown = format!(
        "Data: {:.2} GiB in one file, 1 MiB pieces; {} round{}, contenders interleaved; medians. \
         Every contender is timed by the bench's clock, from the start of its process to its \
         completion line or exit ({}), so start-up counts for everyone.\n\n\
         **Warm**: the file is read into the page cache before every run.\n\n{}\n{}\n\n\
         **Cold**: the file is dropped from the page cache (`POSIX_FADV_DONTNEED`, checked \
         with `mincore`) before every run.\n\n{}\n{}\n",
        set.bytes as f64 / f64::from(1 << 30),
        args.rounds,
        if args.rounds == 1 { "" } else { "s" },
        contenders::clock_note(),
        warm.table(),
        warm.statement(),
        cold.table(),
        cold.statement(),
    );
    if let Some(path) = &args.write {
        crate::report::write_section(path, "verify", &markdown)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(markdown)
}

struct Bench<'a> {
    ccbt: &'a std::path::Path,
    set: &'a DataSet,
    contenders: &'a [Contender],
}

impl Bench<'_> {
    /// Each contender once, from a fully cached file. Transmission drops the file from the
    /// page cache after verifying, so the file is warmed again before every contender.
    fn warm_round(&self, round: usize, phase: &mut Phase) -> Result<()> {
        for contender in self.in_turn(round) {
            dataset::warm(&self.set.data_file)?;
            phase.record(contender.name(), contender.run(self.ccbt, self.set));
        }
        Ok(())
    }

    /// Each contender once, with none of the file cached.
    fn cold_round(&self, round: usize, phase: &mut Phase) -> Result<()> {
        for contender in self.in_turn(round) {
            dataset::evict(&self.set.data_file)?;
            phase.record(contender.name(), contender.run(self.ccbt, self.set));
        }
        Ok(())
    }

    /// The contenders, starting with a different one each round.
    fn in_turn(&self, round: usize) -> impl Iterator<Item = Contender> + '_ {
        let n = self.contenders.len();
        (0..n).map(move |i| self.contenders[(round + i) % n])
    }
}

/// Records a measured limit; a missing tool becomes a note saying what to install.
fn record_limit(phase: &mut Phase, who: &str, limit: Result<Limit>) {
    match limit {
        Ok(Limit::Measured(gb_per_s)) => phase.record(who, Ok(gb_per_s)),
        Ok(Limit::Missing(install)) => {
            let line = format!("{who}: not measured, the tool is missing ({install})");
            eprintln!("  {line}");
            phase.note(line);
        }
        Err(e) => phase.record(who, Err(e)),
    }
}
