//! `ccbt-uring seed` with several torrents (or directories of them): read them all, recheck
//! them in one batched hash job, skip (and report) those that cannot seed, and seed the rest
//! from one swarm until stopped.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use ccbt_engine::metainfo::Metainfo;
use ccbt_shards::swarm::{Swarm, TorrentSpec, TorrentState, TorrentStatus, Verify};
use ccbt_shards::{PieceState, RecheckReport};

use super::check_many::check_all;
use super::swarm;
use crate::cli::SeedArgs;
use crate::failure::{Exit, Failure, Outcome};
use crate::format;

/// Plain status lines come this often.
const LINE_EVERY: Duration = Duration::from_secs(10);
/// How long the shards may take to open every torrent and listen.
const START_TIMEOUT: Duration = Duration::from_secs(600);

pub fn run(args: SeedArgs) -> Outcome {
    let started_at = Instant::now();
    let stop_signal = swarm::stop_on_signals()?;
    let paths = torrent_files(&args.torrents);
    let mut skipped = 0usize;
    let mut seen = HashSet::new();
    let mut torrents = Vec::new();
    for (path, loaded) in load_all(&paths) {
        match loaded {
            Ok(t) if seen.insert(t.info_hash) => torrents.push(Arc::new(t)),
            Ok(t) => {
                skipped += 1;
                eprintln!(
                    "skipping {}: the same torrent ({}) is listed twice",
                    path.display(),
                    t.info_hash.to_hex()
                );
            }
            Err(e) => {
                skipped += 1;
                eprintln!("skipping {}: {:#}", path.display(), e.error);
            }
        }
    }
    let config = swarm::config(&args.swarm);
    if !args.data.is_dir() {
        return Err(Failure::new(
            Exit::Io,
            anyhow!("{} is not a directory", args.data.display()),
        ));
    }
    let reports = check_all(&torrents, &args.data, &config.shards)?;
    let mut specs = Vec::new();
    for (metainfo, report) in torrents.into_iter().zip(reports) {
        if !report.is_complete() {
            skipped += 1;
            eprintln!(
                "skipping {}: {}",
                metainfo.info.name.display(),
                incomplete(&report)
            );
            continue;
        }
        specs.push(TorrentSpec {
            metainfo,
            save_dir: args.data.clone(),
            verify: Verify::Trusted(swarm::have_from(&report)),
            paused: false,
            sequential: false,
            priorities: None,
            keep_seeding: true,
            peers: args.swarm.peers.clone(),
            upload_bytes_per_s: 0,
            download_bytes_per_s: 0,
        });
    }
    if specs.is_empty() {
        return Err(Failure::new(
            Exit::Incomplete,
            anyhow!("none of the {skipped} torrents can be seeded"),
        ));
    }
    let names: Vec<String> = specs
        .iter()
        .map(|s| s.metainfo.info.name.display())
        .collect();
    let swarm = Swarm::start(config, None)?;
    let pending: Vec<_> = specs.into_iter().map(|spec| swarm.add(spec)).collect();
    let mut statuses = Vec::with_capacity(pending.len());
    for p in pending {
        statuses.push(p.wait()?);
    }
    // Complete torrents open their files on first read, so each is seeding (or failed)
    // as soon as its shard has started it.
    let deadline = Instant::now() + START_TIMEOUT;
    let started = |s: &TorrentStatus| s.state() != TorrentState::Queued;
    while !statuses.iter().all(|s| started(s))
        && !swarm.is_finished()
        && !stop_signal.load(Ordering::Relaxed)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(2));
    }
    if stop_signal.load(Ordering::Relaxed) {
        eprintln!("stopping");
        swarm.shutdown()?;
        return Ok(Exit::Ok);
    }
    let failed = report_failures(&statuses, &names);
    let seeding = names.len() - failed;
    if seeding == 0 {
        swarm.shutdown()?;
        return Err(Failure::new(
            Exit::Io,
            anyhow!("none of the torrents could be opened"),
        ));
    }
    println!(
        "seeding {seeding} torrents on port {}, loaded in {:.3} s ({} skipped)",
        swarm.port(),
        started_at.elapsed().as_secs_f64(),
        skipped + failed
    );
    let mut last_line = Instant::now();
    while !stop_signal.load(Ordering::Relaxed) && !swarm.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
        if last_line.elapsed() >= LINE_EVERY {
            last_line = Instant::now();
            print_totals(&statuses);
        }
    }
    eprintln!("stopping");
    swarm.shutdown()?;
    print_totals(&statuses);
    Ok(Exit::Ok)
}

/// The arguments' .torrent files: files as given, directories' `*.torrent` files in name
/// order. A directory that cannot be listed is reported and skipped.
fn torrent_files(args: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for arg in args {
        if !arg.is_dir() {
            out.push(arg.clone());
            continue;
        }
        match std::fs::read_dir(arg) {
            Ok(entries) => {
                let mut found: Vec<PathBuf> = entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "torrent") && p.is_file())
                    .collect();
                found.sort();
                out.extend(found);
            }
            Err(e) => eprintln!("skipping {}: cannot list it: {e}", arg.display()),
        }
    }
    out
}

/// Reads and parses every file, on all cores: parsing ten thousand torrents one by one
/// would be most of the start-up time.
fn load_all(paths: &[PathBuf]) -> Vec<(&Path, Result<Metainfo, Failure>)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = paths.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = paths
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|p| (p.as_path(), super::load_torrent(p)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a torrent loader panicked"))
            .collect()
    })
}

/// Why a recheck does not allow seeding, in one line.
fn incomplete(report: &RecheckReport) -> String {
    let list = |state| {
        let pieces = report.pieces_in(state);
        if pieces.is_empty() {
            "none".to_string()
        } else {
            format::ranges(&pieces)
        }
    };
    format!(
        "its data is incomplete: missing pieces {}, bad pieces {}",
        list(PieceState::Missing),
        list(PieceState::Bad)
    )
}

/// Reports torrents whose shard could not open them; returns how many.
fn report_failures(statuses: &[Arc<TorrentStatus>], names: &[String]) -> usize {
    let mut failed = 0;
    for (status, name) in statuses.iter().zip(names) {
        if let Some(fault) = status.fault() {
            failed += 1;
            eprintln!("skipping {name}: {fault}");
        }
    }
    failed
}

/// One line of totals over every torrent.
fn print_totals(statuses: &[Arc<TorrentStatus>]) {
    let (mut peers, mut uploaded, mut rate) = (0, 0, 0);
    for s in statuses {
        peers += s.peers.load(Ordering::Relaxed);
        uploaded += s.uploaded.load(Ordering::Relaxed);
        rate += s.upload_rate.load(Ordering::Relaxed);
    }
    println!(
        "seeding: {} torrents, {peers} peers, up {}/s, uploaded {}",
        statuses.len(),
        format::bytes(rate),
        format::bytes(uploaded)
    );
}
