//! `ccbt-uring verify`: a full, read-only recheck of downloaded data.

use std::sync::Arc;
use std::time::Instant;

use anyhow::anyhow;
use ccbt_shards::{HashJob, HashProgress, MappedFiles, PieceState, RecheckReport};
use serde::Serialize;

use crate::cli::VerifyArgs;
use crate::failure::{Exit, Failure, Outcome};
use crate::{format, progress};

pub fn run(args: VerifyArgs) -> Outcome {
    let torrent = super::load_torrent(&args.torrent)?;
    if !args.data.is_dir() {
        return Err(Failure::new(
            Exit::Io,
            anyhow!(
                "--data {} is not a directory (it should hold {})",
                args.data.display(),
                torrent.info.name.display()
            ),
        ));
    }
    let config = args.shards.config();
    let started = Instant::now();
    let layout = Arc::new(torrent.info.layout.clone());
    let data = Arc::new(MappedFiles::open_under(&args.data, &layout));
    let file_problems: Vec<FileProblem> = data
        .problems()
        .iter()
        .map(|p| FileProblem {
            path: layout.files()[p.file].path.display(),
            reason: p.reason.clone(),
        })
        .collect();
    let progress = Arc::new(HashProgress::default());
    let job = HashJob::start(&config, layout.clone(), data, progress.clone())?;
    let hashed = progress::wait(job, &progress, layout.total_length(), started, "verifying")?;
    let report = RecheckReport::new(&torrent.info, &hashed.outcomes);

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
