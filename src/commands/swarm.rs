//! What `download` and `seed` share: starting the swarm, showing progress, stopping on
//! Ctrl-C or SIGTERM.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use ccbt_engine::metainfo::Metainfo;
use ccbt_engine::session::SessionConfig;
use ccbt_engine::Bitfield;
use ccbt_shards::swarm::{
    DhtConfig, LsdConfig, MagnetSpec, Preallocate, Swarm, SwarmConfig, TorrentSpec, TorrentStatus,
};
use ccbt_shards::{PieceState, RecheckReport};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::SwarmArgs;
use crate::failure::{Exit, Failure};
use crate::format;

/// Plain progress lines, when stdout is not a terminal, come this often.
const LINE_EVERY: Duration = Duration::from_secs(2);

/// Pieces the check found good.
pub fn have_from(report: &RecheckReport) -> Bitfield {
    let mut have = Bitfield::empty(report.states.len() as u32);
    for (i, state) in report.states.iter().enumerate() {
        if *state == PieceState::Good {
            have.set(i as u32);
        }
    }
    have
}

pub fn config(args: &SwarmArgs) -> SwarmConfig {
    let mut session = SessionConfig::default();
    session.choker.upload_slots = args.upload_slots;
    session.max_peers = args.max_peers as usize;
    session.pex = !args.no_pex;
    SwarmConfig {
        shards: args.shards.config(),
        listen: args.listen,
        port: args.port,
        session,
        max_connections_per_shard: args.max_connections.max(1),
        open_files_per_shard: args.open_files as usize,
        hot_torrent_peers: args.hot_peers,
        cache_bytes: (args.cache_mib as usize) << 20,
        preallocate: if args.preallocate {
            Preallocate::Full
        } else {
            Preallocate::Sparse
        },
        serve_reads: args.serve_reads.into(),
        dht: dht_config(args),
        lsd: LsdConfig {
            enabled: !args.no_lsd && lsd_allowed_by_env(),
            interface: args.lsd_interface,
        },
        ..SwarmConfig::default()
    }
}

/// `CCBT_LSD_ENABLED`, the daemon's `[lsd] enabled` variable, turns LSD off for the
/// one-shot commands too (tests set it so that nothing multicasts beyond their hosts).
fn lsd_allowed_by_env() -> bool {
    let value = std::env::var("CCBT_LSD_ENABLED").unwrap_or_default();
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "false" | "0" | "no" | "off"
    )
}

fn dht_config(args: &SwarmArgs) -> DhtConfig {
    let mut dht = DhtConfig {
        enabled: !args.no_dht,
        ..DhtConfig::default()
    };
    if !args.dht_bootstrap.is_empty() {
        dht.bootstrap = args.dht_bootstrap.clone();
    }
    dht
}

/// A flag that SIGINT or SIGTERM raises.
pub fn stop_on_signals() -> Result<Arc<AtomicBool>, Failure> {
    let stop_signal = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop_signal.clone())
            .map_err(|e| Failure::new(Exit::Runtime, e.into()))?;
    }
    Ok(stop_signal)
}

/// How a swarm run ended.
pub enum Ended {
    /// Every wanted piece is verified and on disk.
    Complete,
    /// Stopped by a signal first.
    Interrupted,
}

/// Runs one torrent until it completes (unless `keep_seeding`) or a signal stops it.
pub fn run(
    metainfo: Metainfo,
    spec: impl FnOnce(Arc<Metainfo>) -> TorrentSpec,
    config: SwarmConfig,
    verb: &str,
) -> Result<Ended, Failure> {
    let stop_signal = stop_on_signals()?;
    let metainfo = Arc::new(metainfo);
    let spec = spec(metainfo.clone());
    let swarm = Swarm::start(config, None)?;
    let status = swarm.add(spec).wait()?;
    follow(swarm, status, &metainfo, verb, &stop_signal)
}

/// Runs a magnet link's torrent: its metadata is fetched first (within `timeout`), then
/// it goes on as [`run`]. `save_torrent`: where to write the fetched `.torrent`.
pub fn run_magnet(
    spec: MagnetSpec,
    config: SwarmConfig,
    timeout: Duration,
    save_torrent: Option<&std::path::Path>,
    verb: &str,
) -> Result<Ended, Failure> {
    let stop_signal = stop_on_signals()?;
    let (trackers, web_seeds) = (spec.trackers.clone(), spec.web_seeds.clone());
    let name = spec
        .display_name
        .clone()
        .unwrap_or_else(|| spec.info_hash.to_hex());
    let swarm = Swarm::start(config, None)?;
    let status = swarm.add_magnet(spec).wait()?;
    eprintln!("fetching metadata of {name} on port {}", swarm.port());
    let metainfo = match super::magnet::wait_for_metadata(&status, &name, timeout, &stop_signal) {
        Ok(m) => m,
        Err(e) => {
            swarm.shutdown()?;
            return Err(e);
        }
    };
    if let Some(path) = save_torrent {
        super::magnet::save_torrent(path, &metainfo, &trackers, &web_seeds)?;
    }
    crate::changed_paths::log(&metainfo);
    follow(swarm, status, &metainfo, verb, &stop_signal)
}

/// Each shard's service time for the blocks it served (request in to last byte handed to
/// the socket), one line per shard that served any.
fn print_service_times(verb: &str, shards: &[ccbt_shards::swarm::ShardStatsSnapshot]) {
    for s in shards.iter().filter(|s| s.service.count > 0) {
        println!(
            "{verb}: shard {} service time p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} blocks",
            s.shard,
            s.service.p50.as_secs_f64() * 1e3,
            s.service.p99.as_secs_f64() * 1e3,
            s.service.max.as_secs_f64() * 1e3,
            s.service.count
        );
    }
}

/// Shows the torrent's progress until it ends or a signal comes, then stops the swarm.
fn follow(
    swarm: Swarm,
    status: Arc<TorrentStatus>,
    metainfo: &Metainfo,
    verb: &str,
    stop_signal: &AtomicBool,
) -> Result<Ended, Failure> {
    eprintln!(
        "{verb} {} ({}) on port {}",
        metainfo.info.name.display(),
        metainfo.info_hash.to_hex(),
        swarm.port()
    );
    let mut view = View::new(metainfo, verb);
    let mut said_complete = status.done.load(Ordering::Acquire);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        view.update(&status);
        if !said_complete && status.done.load(Ordering::Acquire) {
            said_complete = true;
            view.complete(&status);
        }
        if stop_signal.load(Ordering::Relaxed) {
            eprintln!("stopping");
            break;
        }
        // Without --seed the torrent ends by itself once complete, after telling the
        // tracker.
        if status.finished.load(Ordering::Acquire) || swarm.is_finished() {
            break;
        }
    }
    // Read before the shards stop: they take their counters with them.
    let shards = swarm.shard_stats();
    // Stops the torrent if it still runs: the tracker hears `stopped`.
    swarm.shutdown()?;
    view.finish(&status);
    print_service_times(verb, &shards);
    let ended = if status.done.load(Ordering::Acquire) {
        Ended::Complete
    } else {
        Ended::Interrupted
    };
    if let Some(fault) = status.fault() {
        return Err(Failure::new(Exit::Io, anyhow!(fault)));
    }
    Ok(ended)
}

/// A progress bar on a terminal, plain lines otherwise.
struct View {
    bar: Option<ProgressBar>,
    total_pieces: u64,
    piece_length: u64,
    total_bytes: u64,
    last_line: Instant,
    verb: String,
}

impl View {
    fn new(metainfo: &Metainfo, verb: &str) -> View {
        let layout = &metainfo.info.layout;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(layout.total_length()),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {msg} eta {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_prefix(verb.to_string());
            bar
        });
        View {
            bar,
            total_pieces: u64::from(layout.piece_count()),
            piece_length: u64::from(layout.piece_length()),
            total_bytes: layout.total_length(),
            last_line: Instant::now(),
            verb: verb.to_string(),
        }
    }

    fn update(&mut self, s: &TorrentStatus) {
        let have = s.have_pieces.load(Ordering::Relaxed);
        let done_bytes = (have * self.piece_length).min(self.total_bytes);
        let mut rates = format!(
            "down {}/s up {}/s, {} peers",
            format::bytes(s.download_rate.load(Ordering::Relaxed)),
            format::bytes(s.upload_rate.load(Ordering::Relaxed)),
            s.peers.load(Ordering::Relaxed)
        );
        let web_seeds = s.web_seeds.load(Ordering::Relaxed);
        if web_seeds > 0 {
            let failing = s.web_seeds_failing.load(Ordering::Relaxed);
            rates.push_str(&format!(", {web_seeds} web seeds"));
            if failing > 0 {
                rates.push_str(&format!(" ({failing} backing off)"));
            }
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done_bytes);
            bar.set_message(rates);
        } else if self.last_line.elapsed() >= LINE_EVERY {
            self.last_line = Instant::now();
            println!(
                "{}: {:.1}% ({}/{} pieces), {}, uploaded {}",
                self.verb,
                have as f64 * 100.0 / self.total_pieces.max(1) as f64,
                have,
                self.total_pieces,
                rates,
                format::bytes(s.uploaded.load(Ordering::Relaxed))
            );
        }
    }

    /// The moment every piece is verified and written (scripts wait for this line).
    fn complete(&mut self, s: &TorrentStatus) {
        if let Some(bar) = &self.bar {
            bar.suspend(|| println!("{}: complete", self.verb));
        } else {
            println!(
                "{}: complete, {} pieces verified",
                self.verb,
                s.have_pieces.load(Ordering::Relaxed)
            );
        }
    }

    fn finish(&mut self, s: &TorrentStatus) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!(
            "{}: {} of {} pieces, downloaded {}, uploaded {}",
            self.verb,
            s.have_pieces.load(Ordering::Relaxed),
            self.total_pieces,
            format::bytes(s.downloaded.load(Ordering::Relaxed)),
            format::bytes(s.uploaded.load(Ordering::Relaxed))
        );
    }
}
