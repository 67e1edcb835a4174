//! `ccbt-uring verify`: a full, read-only recheck of downloaded data.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use ccbt_engine::metainfo::Metainfo;
use ccbt_shards::{HashJob, HashProgress, MappedFiles, PieceState, RecheckReport, ShardConfig};
use serde::Serialize;

use crate::cli::VerifyArgs;
use crate::failure::{Exit, Failure, Outcome};
use crate::progress::Hashed;
use crate::{format, progress};

pub fn run(args: VerifyArgs) -> Outcome {
    let torrent = super::load_torrent(&args.torrent)?;
    let config = args.shards.config();
    let checked = check_data(&torrent, &args.data, &config, "verifying")?;
    let Checked {
        report,
        hashed,
        file_problems,
    } = checked;

    let summary = Summary {
        name: torrent.info.name.display(),
        info_hash: torrent.info_hash.to_hex(),
        complete: report.is_complete(),
        pieces: report.states.len(),
        good: report.count(PieceState::Good),
        missing: report.pieces_in(PieceState::Missing),
        bad: report.pieces_in(PieceState::Bad),
        file_problems,
        bytes_hashed: hashed.bytes_hashed,
        seconds: hashed.elapsed.as_secs_f64(),
        gb_per_s: hashed.gb_per_s(),
        shards: config.count,
    };
    if args.json {
        crate::output::print_json(&summary);
    } else {
        crate::output::print(&summary.text());
    }
    Ok(if summary.complete {
        Exit::Ok
    } else {
        Exit::Incomplete
    })
}

/// What `verify` reports; the JSON form is this struct as is.
#[derive(Debug, Serialize)]
struct Summary {
    name: String,
    info_hash: String,
    /// True only when every piece is good.
    complete: bool,
    pieces: usize,
    good: usize,
    /// Pieces with bytes not on disk (missing or short files), ascending.
    missing: Vec<u32>,
    /// Pieces whose data is there but hashes wrong, ascending.
    bad: Vec<u32>,
    file_problems: Vec<FileProblem>,
    bytes_hashed: u64,
    seconds: f64,
    /// Decimal gigabytes hashed per second of wall time.
    gb_per_s: f64,
    shards: usize,
}

/// The outcome of hashing a torrent's data where it lies.
pub struct Checked {
    pub report: RecheckReport,
    pub hashed: Hashed,
    file_problems: Vec<FileProblem>,
}

/// Hashes every piece of `torrent` under the save directory `data` (read-only), on all
/// shards. `download` and `seed` start with this too.
pub fn check_data(
    torrent: &Metainfo,
    data: &Path,
    config: &ShardConfig,
    what: &str,
) -> Result<Checked, Failure> {
    if !data.is_dir() {
        return Err(Failure::new(
            Exit::Io,
            anyhow!(
                "{} is not a directory (it should hold {})",
                data.display(),
                torrent.info.name.display()
            ),
        ));
    }
    let started = Instant::now();
    let layout = Arc::new(torrent.info.layout.clone());
    let mapped = Arc::new(MappedFiles::open_under(data, &layout));
    let file_problems: Vec<FileProblem> = mapped
        .problems()
        .iter()
        .map(|p| FileProblem {
            path: layout.files()[p.file].path.display(),
            reason: p.reason.clone(),
        })
        .collect();
    let progress = Arc::new(HashProgress::default());
    let job = HashJob::start(config, layout.clone(), mapped, progress.clone())?;
    let hashed = progress::wait(job, &progress, layout.total_length(), started, what)?;
    let report = RecheckReport::new(&torrent.info, &hashed.outcomes);
    Ok(Checked {
        report,
        hashed,
        file_problems,
    })
}

#[derive(Debug, Serialize)]
struct FileProblem {
    path: String,
    reason: String,
}

impl Summary {
    fn text(&self) -> String {
        let mut out = format!(
            "name:       {}\ninfo hash:  {}\npieces:     {} ({} good, {} missing, {} bad)\n",
            self.name,
            self.info_hash,
            self.pieces,
            self.good,
            self.missing.len(),
            self.bad.len()
        );
        if !self.missing.is_empty() {
            out += &format!("missing:    {}\n", format::ranges(&self.missing));
        }
        if !self.bad.is_empty() {
            out += &format!("bad:        {}\n", format::ranges(&self.bad));
        }
        for p in &self.file_problems {
            out += &format!("file:       {}: {}\n", p.path, p.reason);
        }
        out += &format!(
            "hashed:     {} in {:.3} s, {:.2} GB/s on {} shards\nresult:     {}\n",
            format::bytes(self.bytes_hashed),
            self.seconds,
            self.gb_per_s,
            self.shards,
            if self.complete {
                "complete"
            } else {
                "incomplete"
            }
        );
        out
    }
}
