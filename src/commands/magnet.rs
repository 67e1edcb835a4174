//! Magnet links on the command line: turning one into the swarm's [`MagnetSpec`], and
//! waiting for its metadata with a deadline and a clear reason when it does not come.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use ccbt_engine::magnet::{Magnet, PeerAddr};
use ccbt_engine::metainfo::Metainfo;
use ccbt_shards::swarm::{FaultKind, MagnetSpec, TorrentState, TorrentStatus};

use crate::cli::{MagnetArgs, SwarmArgs};
use crate::failure::{Exit, Failure, OrExit};

/// How often a progress line is printed while the metadata is fetched.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Whether `source` is a magnet link rather than a path.
pub fn is_magnet(source: &str) -> bool {
    source
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
}

pub fn parse(source: &str) -> Result<Magnet, Failure> {
    Magnet::parse(source)
        .context("not a valid magnet link")
        .or_exit(Exit::BadInput)
}

/// The magnet's `x.pe` peers (host names resolved here, once) and `--peer`s.
fn peers(magnet: &Magnet, swarm: &SwarmArgs) -> Vec<SocketAddr> {
    let mut peers = swarm.peers.clone();
    for addr in magnet_peers(magnet) {
        if !peers.contains(&addr) {
            peers.push(addr);
        }
    }
    peers
}

/// The magnet's `x.pe` peers, host names resolved here (blocking, once).
pub fn magnet_peers(magnet: &Magnet) -> Vec<SocketAddr> {
    let mut peers = Vec::new();
    for p in &magnet.peers {
        let found: Vec<SocketAddr> = match p {
            PeerAddr::Ip(addr) => vec![*addr],
            PeerAddr::Host(host, port) => match (host.as_str(), *port).to_socket_addrs() {
                Ok(addrs) => addrs.collect(),
                Err(e) => {
                    tracing::warn!(host, error = %e, "cannot resolve a magnet link's peer");
                    Vec::new()
                }
            },
        };
        for addr in found {
            if !peers.contains(&addr) {
                peers.push(addr);
            }
        }
    }
    peers
}

/// The magnet's `so` (BEP 53) as file indices; empty: every file. Ranges are cut at the
/// largest file count a torrent may have.
pub fn selected_files(magnet: &Magnet) -> Vec<usize> {
    magnet
        .select_only
        .iter()
        .flat_map(|r| (*r.start() as usize)..=(*r.end() as usize).min(1_000_000))
        .collect()
}

/// What the swarm is given for `magnet`. `only`: file indices (`--only`); the magnet's
/// own `so` is used when none are given.
pub fn spec(
    magnet: &Magnet,
    args: &MagnetArgs,
    swarm: &SwarmArgs,
    save_dir: PathBuf,
    only: &[usize],
) -> MagnetSpec {
    let select_only = if only.is_empty() {
        selected_files(magnet)
    } else {
        only.to_vec()
    };
    MagnetSpec {
        info_hash: magnet.info_hash,
        display_name: magnet.display_name.clone(),
        trackers: magnet.trackers.clone(),
        web_seeds: magnet.web_seeds.clone(),
        peers: peers(magnet, swarm),
        metadata_size_max: args.metadata_max.saturating_mul(1024),
        metadata_only: false,
        select_only,
        save_dir,
        sequential: false,
        keep_seeding: false,
        paused: false,
        upload_bytes_per_s: 0,
        download_bytes_per_s: 0,
    }
}

/// Waits until the torrent's metadata is known; prints a line every few seconds. Fails
/// when the fetch failed, the deadline passed, or a signal came.
pub fn wait_for_metadata(
    status: &TorrentStatus,
    name: &str,
    timeout: Duration,
    stop_signal: &AtomicBool,
) -> Result<Arc<Metainfo>, Failure> {
    let began = Instant::now();
    let mut last_line = Instant::now();
    loop {
        if let Some(meta) = status.metainfo() {
            eprintln!(
                "metadata: fetched in {:.1} s ({} bytes)",
                began.elapsed().as_secs_f64(),
                meta.info_bytes.len()
            );
            return Ok(meta);
        }
        if let Some(fault) = status.fault() {
            let code = if fault.kind == FaultKind::Metadata {
                Exit::BadInput
            } else {
                Exit::Io
            };
            return Err(Failure::new(code, anyhow!("{name}: {fault}")));
        }
        if status.state() == TorrentState::Failed {
            return Err(Failure::new(
                Exit::Runtime,
                anyhow!("{name}: the fetch failed"),
            ));
        }
        if stop_signal.load(Ordering::Relaxed) {
            return Err(Failure::new(
                Exit::Incomplete,
                anyhow!("{name}: stopped before the metadata arrived"),
            ));
        }
        let (connections, offering, got, total) = (
            status.metadata_connections.load(Ordering::Relaxed),
            status.metadata_peers.load(Ordering::Relaxed),
            status.metadata_pieces_got.load(Ordering::Relaxed),
            status.metadata_pieces_total.load(Ordering::Relaxed),
        );
        if began.elapsed() >= timeout {
            let why = if connections == 0 {
                "no peer could be reached (give one with --peer, or a tracker in the link)"
                    .to_string()
            } else {
                format!(
                    "{connections} connections, {offering} peers offering it, \
                     {got}/{total} pieces"
                )
            };
            return Err(Failure::new(
                Exit::Incomplete,
                anyhow!("{name}: no metadata within {} s: {why}", timeout.as_secs()),
            ));
        }
        if last_line.elapsed() >= LINE_EVERY {
            last_line = Instant::now();
            eprintln!(
                "fetching metadata: {connections} connections, {offering} offering it, \
                 {got}/{total} pieces"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes the fetched metadata as a `.torrent` (with the magnet's trackers and web seeds)
/// to `path`.
pub fn save_torrent(
    path: &Path,
    meta: &Metainfo,
    trackers: &[String],
    web_seeds: &[String],
) -> Result<(), Failure> {
    let bytes = ccbt_engine::metadata::torrent_file(&meta.info_bytes, trackers, web_seeds);
    std::fs::write(path, bytes)
        .with_context(|| format!("cannot write {}", path.display()))
        .or_exit(Exit::Io)?;
    eprintln!("saved {}", path.display());
    Ok(())
}
