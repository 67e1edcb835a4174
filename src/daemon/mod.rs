//! `ccbt-uring daemon`: the seedbox. One long-lived process that holds many torrents,
//! takes new ones and drops old ones while it serves, keeps its state in SQLite so that
//! kill -9 loses at most a few seconds of progress, and comes back seeding at once.
//!
//! Threads: the shards (one per core), the state writer, the control socket, the watch
//! folders, the config reloader, the event recorder, and this one, which waits for
//! signals. None of the others touches a shard's state; they send it commands.

pub mod api_settings;
pub mod catalog;
pub mod control;
pub mod core;
pub mod events;
pub mod labels;
pub mod magnets;
pub mod policy;
pub mod queue_moves;
pub mod renames;
pub mod resume;
pub mod trackers;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use ccbt_config::{Config, Loaded, Sources};
use ccbt_engine::blocklist::{Blocklist, Limits as BlocklistLimits};
use ccbt_engine::metainfo::Metainfo;
use ccbt_engine::session::SessionConfig;
use ccbt_shards::swarm::{EventSink, Preallocate, RateLimits, ServeReads, Swarm, SwarmConfig};
use ccbt_shards::ShardConfig;
use ccbt_state::StateDb;
use crossbeam::channel::RecvTimeoutError;

use self::core::{Daemon, Entry};
use crate::cli::DaemonArgs;
use crate::failure::{Exit, Failure, OrExit, Outcome};

/// Events from the shards waiting to be recorded, at most. The recorder drains them
/// continuously; one that finds the queue full is dropped (see `EventSink`).
const EVENTS_LEN: usize = 65_536;

/// The flags, as the config layer's overrides.
pub fn overrides(args: &DaemonArgs) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut put = |key: &str, value: String| out.push((key.to_string(), value));
    if let Some(dir) = &args.state_dir {
        put("daemon.state_dir", dir.display().to_string());
    }
    if let Some(dir) = &args.download_dir {
        put("daemon.download_dir", dir.display().to_string());
    }
    for dir in &args.watch_dirs {
        put("daemon.watch_dirs", dir.display().to_string());
    }
    if let Some(port) = args.peer_port {
        put("daemon.peer_port", port.to_string());
    }
    if let Some(addr) = &args.control {
        put("daemon.control", addr.to_string());
    }
    if let Some(n) = args.shards {
        put("daemon.shards", n.to_string());
    }
    out
}

/// Loads the layered config, printing every problem with its line.
pub fn load_config(
    file: Option<PathBuf>,
    overrides: Vec<(String, String)>,
) -> Result<Loaded, Failure> {
    let sources = Sources::from_process(file, overrides).or_exit(Exit::Io)?;
    let loaded = ccbt_config::load(&sources).map_err(|e| {
        let lines: Vec<String> = e.into_diagnostics().iter().map(|d| d.to_string()).collect();
        Failure::new(
            Exit::BadInput,
            anyhow!("the configuration is wrong:\n{}", lines.join("\n")),
        )
    })?;
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    Ok(loaded)
}

fn swarm_config(config: &Config, pin: bool) -> SwarmConfig {
    let mut session = SessionConfig::default();
    session.choker.upload_slots = config.limits.upload_slots as usize;
    session.max_peers = config.limits.max_peers_per_torrent as usize;
    session.pex = config.pex.enabled;
    let mut shards = if config.daemon.shards == 0 {
        ShardConfig::per_core()
    } else {
        ShardConfig::with_count(config.daemon.shards as usize)
    };
    shards.pin = pin;
    SwarmConfig {
        shards,
        listen: std::net::IpAddr::from([0, 0, 0, 0]),
        port: config.daemon.peer_port,
        session,
        cache_bytes: (config.limits.cache_mib as usize) << 20,
        preallocate: match config.storage.preallocate {
            ccbt_config::Preallocate::Sparse => Preallocate::Sparse,
            ccbt_config::Preallocate::Full => Preallocate::Full,
        },
        serve_reads: match config.storage.serve_reads {
            ccbt_config::ServeReads::Direct => ServeReads::Direct,
            ccbt_config::ServeReads::Buffered => ServeReads::Buffered,
            ccbt_config::ServeReads::Auto => ServeReads::Auto,
        },
        symlinks: if config.storage.allow_symlinks_inside {
            ccbt_shards::swarm::Symlinks::Allowed
        } else {
            ccbt_shards::swarm::Symlinks::Refused
        },
        max_connections_per_shard: config.limits.max_connections_per_shard as usize,
        limits: rate_limits(config),
        max_connections_per_ip: config.limits.max_connections_per_ip as usize,
        open_files_per_shard: config.limits.open_files_per_shard as usize,
        hot_torrent_peers: config.limits.hot_torrent_peers as usize,
        web_seeds: config.web_seeds.enabled,
        announce: ccbt_shards::swarm::AnnounceConfig {
            limits: announce_limits(config),
            ..ccbt_shards::swarm::AnnounceConfig::default()
        },
        // The routing table outlives the process in STATE_DIR/dht.dat (written at
        // shutdown and every 5 minutes), so a restart rejoins without the routers.
        dht: ccbt_shards::swarm::DhtConfig {
            enabled: config.dht.enabled,
            bootstrap: config.dht.bootstrap.clone(),
            state_file: Some(config.daemon.state_dir.join("dht.dat")),
        },
        lsd: ccbt_shards::swarm::LsdConfig {
            enabled: config.lsd.enabled,
            // Checked when the config was read.
            interface: config.lsd.interface.parse().ok(),
        },
        ..SwarmConfig::default()
    }
}

/// How each shard paces its announces (`[trackers]`).
fn announce_limits(config: &Config) -> ccbt_shards::swarm::DispatchLimits {
    ccbt_shards::swarm::DispatchLimits {
        per_host: config.trackers.announces_per_host as usize,
        per_shard: config.trackers.announces_at_once as usize,
        host_gap: Duration::from_millis(u64::from(config.trackers.host_gap_ms)),
        ..ccbt_shards::swarm::DispatchLimits::default()
    }
}

/// The peer and connection limits a reload applies to running torrents.
fn peer_limits(config: &Config) -> ccbt_shards::swarm::PeerLimits {
    ccbt_shards::swarm::PeerLimits {
        upload_slots: config.limits.upload_slots as usize,
        max_peers_per_torrent: config.limits.max_peers_per_torrent as usize,
        max_connections_per_shard: config.limits.max_connections_per_shard as usize,
        max_connections_per_ip: config.limits.max_connections_per_ip as usize,
    }
}

fn rate_limits(config: &Config) -> RateLimits {
    RateLimits {
        upload_bytes_per_s: config.limits.upload_bytes_per_s.0,
        download_bytes_per_s: config.limits.download_bytes_per_s.0,
    }
}

/// Reads and parses the configured blocklist; `None` (and a log line) if there is none or
/// it cannot be read.
pub fn load_blocklist(config: &Config) -> Option<Arc<Blocklist>> {
    let path = config.blocklist.path.as_ref()?;
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the blocklist");
            return None;
        }
    };
    match Blocklist::parse(&bytes, &BlocklistLimits::default()) {
        Ok((list, report)) => {
            tracing::info!(
                path = %path.display(),
                ranges = list.ranges().count(),
                bad_lines = ?report,
                "blocklist loaded"
            );
            Some(Arc::new(list))
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "the blocklist is unusable");
            None
        }
    }
}

pub fn run(args: DaemonArgs) -> Outcome {
    let started = Instant::now();
    let loaded = load_config(args.config.clone(), overrides(&args))?;
    let config = loaded.config.clone();
    apply_log_filter(&config.daemon.log);
    // Refuses a control address beyond loopback without credentials, before anything
    // else starts.
    let access = crate::http::Access::from_config(&config, config.daemon.control)
        .map_err(|e| Failure::new(Exit::BadInput, anyhow!("{e}")))?;
    let state_dir = config.daemon.state_dir.clone();
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("cannot create the state directory {}", state_dir.display()))
        .or_exit(Exit::Io)?;
    let _lock = lock_state_dir(&state_dir)?;
    // Settings an API set in an earlier run, unless the config has changed them since.
    let (api_settings, config) = api_settings::ApiSettings::load(&state_dir, &config);
    let api_settings = Arc::new(api_settings);
    raise_open_files_limit();
    // Resume records reach the disk within about a second and a half of the pieces they
    // claim: a second for the torrent's durable round, half for the writer's batch.
    let state_config = ccbt_state::StateConfig {
        max_delay: Duration::from_millis(500),
        ..ccbt_state::StateConfig::default()
    };
    let opened = StateDb::open_with(&state_dir, state_config)
        .with_context(|| format!("cannot open the state in {}", state_dir.display()))
        .or_exit(Exit::Io)?;
    if let Some(r) = &opened.recovered {
        let line = format!(
            "{}: {}; kept it as {} and started from what could be read of it \
             ({} torrents salvaged, {} rows lost)",
            r.path.display(),
            r.reason,
            r.moved_to.display(),
            r.salvaged,
            r.skipped
        );
        tracing::error!("{line}");
        eprintln!("ccbt-uring: warning: {line}");
    }
    let stop = stop_flags()?;
    let (sink, events) = EventSink::new(EVENTS_LEN);
    let swarm = Swarm::start(swarm_config(&config, !args.no_pin), Some(sink))?;
    let hooks = events::Hooks::start(core::hook_limits(&config.hooks)).or_exit(Exit::Runtime)?;
    let daemon = Arc::new(Daemon::new(
        swarm,
        opened.db.writer(),
        config.daemon.download_dir.clone(),
        hooks,
        config.hooks.clone(),
    ));
    daemon
        .labels
        .restore(opened.categories.clone(), opened.tags.clone());
    let shards_stopped = Arc::new(AtomicBool::new(false));
    let recorder = {
        let (daemon, stopped) = (daemon.clone(), shards_stopped.clone());
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || loop {
                match events.recv_timeout(Duration::from_millis(100)) {
                    Ok(event) => resume::record_event(&daemon, event),
                    Err(RecvTimeoutError::Disconnected) => break,
                    // Everything the shards sent before they stopped is queued by now.
                    Err(_) if stopped.load(Ordering::Acquire) && events.is_empty() => break,
                    Err(_) => {}
                }
            })
            .or_exit(Exit::Runtime)?
    };
    if let Some(list) = load_blocklist(&config) {
        daemon.set_blocklist(list);
    }
    // Control answers first; torrents come back while it does (a listing shows them as
    // they arrive).
    let (socket, control) =
        control::serve(&state_dir, daemon.clone(), stop.term.clone()).or_exit(Exit::Io)?;
    daemon.set_max_active_downloads(config.queue.max_active_downloads);
    let restored = restore(&daemon, opened.torrents);
    let folders: watch::Folders = Arc::new(Mutex::new(config.daemon.watch_dirs.clone()));
    let watcher =
        watch::spawn(daemon.clone(), folders.clone(), stop.term.clone()).or_exit(Exit::Runtime)?;
    let live_config = Arc::new(Mutex::new(config.clone()));
    let catalog = catalog::Catalog::new(daemon.clone());
    let refresher = catalog
        .spawn_refresher(stop.term.clone())
        .or_exit(Exit::Runtime)?;
    let http = crate::http::serve(
        Arc::new(crate::http::Api {
            daemon: daemon.clone(),
            catalog: catalog.clone(),
            access,
            config: live_config.clone(),
            api_settings: api_settings.clone(),
            started,
            stop: stop.term.clone(),
        }),
        config.daemon.control,
    )
    .or_exit(Exit::Io)?;
    let policy = policy::spawn(daemon.clone(), live_config.clone(), stop.term.clone())
        .or_exit(Exit::Runtime)?;
    let reloader = reload_on_change(
        &args,
        &loaded,
        daemon.clone(),
        folders,
        live_config,
        api_settings,
    );
    println!(
        "ccbt-uring daemon: {restored} torrents, peer port {}, state in {}, control socket {}, \
         control API http://{}, ready in {:.3} s",
        daemon.port(),
        state_dir.display(),
        socket.display(),
        http.local_addr,
        started.elapsed().as_secs_f64()
    );
    tracing::info!(port = daemon.port(), torrents = restored, "daemon ready");
    let mut hups = 0;
    while !stop.term.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(50));
        let now = stop.hup.load(Ordering::Acquire);
        if now != hups {
            hups = now;
            tracing::info!("SIGHUP: reloading the configuration");
            if let Some(r) = &reloader {
                r.reload_now();
            }
        }
    }
    let stopping = Instant::now();
    tracing::info!("stopping");
    drop(reloader);
    let _ = watcher.join();
    let _ = policy.join();
    let _ = control.join();
    let _ = std::fs::remove_file(&socket);
    http.stop();
    let _ = refresher.join();
    daemon.stop();
    shards_stopped.store(true, Ordering::Release);
    let _ = recorder.join();
    daemon.state().flush().or_exit(Exit::Io)?;
    opened.db.close().or_exit(Exit::Io)?;
    println!(
        "ccbt-uring daemon: stopped in {:.3} s",
        stopping.elapsed().as_secs_f64()
    );
    Ok(Exit::Ok)
}

/// Puts every stored torrent back on its shard; returns how many.
fn restore(daemon: &Daemon, stored: Vec<ccbt_state::StoredTorrent>) -> usize {
    let mut names = Vec::with_capacity(stored.len());
    let mut torrents = Vec::with_capacity(stored.len());
    for (name, prepared) in prepare_all(stored) {
        match prepared {
            Ok(torrent) => {
                names.push(name);
                torrents.push(torrent);
            }
            Err(e) => {
                tracing::error!(name = %name, error = %e, "stored torrent no longer parses; skipped")
            }
        }
    }
    let mut count = 0;
    for (result, name) in daemon.start_many(torrents).into_iter().zip(names) {
        match result {
            Ok(()) => count += 1,
            Err(e) => tracing::error!(name = %name, error = %e, "cannot restore a torrent"),
        }
    }
    count
}

type Prepared = (Entry, ccbt_shards::swarm::Verify, bool);

/// Parses each stored torrent and compares its files with its resume data, on every core:
/// one by one, parsing and a `stat` per file would be most of a large start-up.
fn prepare_all(
    stored: Vec<ccbt_state::StoredTorrent>,
) -> Vec<(String, Result<Prepared, core::DaemonError>)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = stored.len().div_ceil(threads).max(1);
    let mut parts: Vec<Vec<ccbt_state::StoredTorrent>> = Vec::new();
    let mut rest = stored;
    while !rest.is_empty() {
        let tail = rest.split_off(chunk.min(rest.len()));
        parts.push(std::mem::replace(&mut rest, tail));
    }
    std::thread::scope(|scope| {
        let workers: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || part.into_iter().map(prepare).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a restore worker panicked"))
            .collect()
    })
}

fn prepare(t: ccbt_state::StoredTorrent) -> (String, Result<Prepared, core::DaemonError>) {
    let record = t.record;
    let save_dir = PathBuf::from(&record.save_path);
    // A magnet link whose metadata had not come yet: fetched again.
    let (meta, magnet) = match magnets::Source::from_bytes(record.metainfo) {
        magnets::Source::Magnet(link) => match magnets::PendingMagnet::parse(link) {
            Ok(pending) => (Arc::new(pending.placeholder()), Some(Arc::new(pending))),
            Err(e) => return (record.name, Err(e.into())),
        },
        magnets::Source::Torrent(bytes) => match Metainfo::parse(&bytes) {
            Ok(meta) => (Arc::new(meta), None),
            Err(e) => return (record.name, Err(e.into())),
        },
    };
    let settings = core::TorrentSettings::from_json(&record.settings);
    let meta = match &settings.trackers {
        Some(tiers) => Arc::new(trackers::with_tiers(&meta, tiers)),
        None => meta,
    };
    let meta = match settings.renames.apply(&meta) {
        _ if settings.renames.is_empty() => meta,
        Ok(renamed) => Arc::new(renamed),
        // Only a hand-edited record gets here: its files are looked for where the
        // `.torrent` puts them (and checked there).
        Err(e) => {
            tracing::warn!(torrent = %meta.info_hash, error = %e, "stored renames ignored");
            meta
        }
    };
    let (verify, how) = if magnet.is_some() {
        (
            ccbt_shards::swarm::Verify::Full,
            resume::Restored::Full {
                why: "its metadata is fetched again",
            },
        )
    } else {
        resume::verify_from(&meta, &save_dir, t.resume.as_ref())
    };
    tracing::debug!(torrent = %meta.info_hash, restored = ?how, "restored");
    if !matches!(how, resume::Restored::Trusted { .. }) {
        tracing::info!(torrent = %meta.info_hash, restored = ?how, "restored with a check");
    }
    let entry = Entry {
        id: 0,
        revision: 0,
        meta,
        magnet,
        status: Arc::default(),
        save_dir,
        added_at: record.added_at,
        completed_at: record.completed_at,
        category: record.category,
        tags: record.tags,
        uploaded_before: record.uploaded,
        downloaded_before: record.downloaded,
        queue_position: record.queue_position.clamp(0, i64::from(u32::MAX)) as u32,
        user_paused: record.paused,
        queued: false,
        seeding_since: None,
        idle_since: None,
        settings,
    };
    (record.name, Ok((entry, verify, record.paused)))
}

/// The keys a reload applies to the running daemon. The config marks more keys live
/// than this daemon applies yet (storage options): for those the log says a restart is
/// needed, which is true today.
fn applied_live(key: &str) -> bool {
    const PREFIXES: &[&str] = &["queue.", "share.", "hooks."];
    const KEYS: &[&str] = &[
        "daemon.download_dir",
        "daemon.watch_dirs",
        "limits.upload_bytes_per_s",
        "limits.download_bytes_per_s",
        "limits.upload_slots",
        "limits.max_peers_per_torrent",
        "limits.max_connections_per_shard",
        "limits.max_connections_per_ip",
        "blocklist.path",
        "daemon.log",
    ];
    KEYS.contains(&key) || PREFIXES.iter().any(|p| key.starts_with(p))
}

/// Applies what can change live when the config file changes (or on SIGHUP); says which
/// changes wait for a restart; keeps the last good config when the new one is wrong.
/// Settings changed through an API stay, unless the file changed them too
/// ([`api_settings`]).
fn reload_on_change(
    args: &DaemonArgs,
    loaded: &Loaded,
    daemon: Arc<Daemon>,
    folders: watch::Folders,
    live: Arc<Mutex<Config>>,
    api_settings: Arc<api_settings::ApiSettings>,
) -> Option<ccbt_config::Reloader> {
    let sources = Sources::from_process(args.config.clone(), overrides(args)).ok()?;
    let current = Mutex::new(loaded.config.clone());
    Some(ccbt_config::Reloader::spawn(
        sources,
        move |result| match result {
            Ok(new) => {
                let mut current = current.lock().expect("config lock");
                let mut live = live.lock().expect("config lock");
                let in_force = api_settings.on_reload(&current, &new.config, &live);
                for change in ccbt_config::diff(&current, &new.config) {
                    if change.live && applied_live(&change.key) {
                        tracing::info!(key = %change.key, old = %change.old, new = %change.new, "config changed");
                    } else {
                        tracing::warn!(key = %change.key, "this setting takes effect after a restart");
                    }
                }
                if in_force.daemon.log != live.daemon.log {
                    apply_log_filter(&in_force.daemon.log);
                }
                daemon.set_download_dir(in_force.daemon.download_dir.clone());
                daemon.set_hooks(in_force.hooks.clone());
                if rate_limits(&live) != rate_limits(&in_force) {
                    daemon.set_global_limits(rate_limits(&in_force));
                }
                if peer_limits(&live) != peer_limits(&in_force) {
                    daemon.set_peer_limits(peer_limits(&in_force));
                }
                // Re-read on every reload (SIGHUP, or the file changed): the list itself may
                // have changed where the path did not.
                daemon.set_blocklist(load_blocklist(&in_force).unwrap_or_default());
                *folders.lock().expect("watch folders lock") = in_force.daemon.watch_dirs.clone();
                *live = in_force;
                *current = new.config;
            }
            Err(diagnostics) => {
                for d in diagnostics {
                    tracing::error!("{d}");
                }
                tracing::error!(
                    "the configuration file has errors; the last good one stays in force"
                );
            }
        },
    ))
}

/// Makes `daemon.log` (the file's, or `CCBT_LOG` over it) the log filter; one that does
/// not parse is logged and the filter in force stays.
fn apply_log_filter(spec: &str) {
    match crate::logging::set_filter(spec) {
        Ok(()) => tracing::info!(filter = spec, "log filter applied"),
        Err(e) => tracing::error!(filter = spec, error = %e, "log filter not applied"),
    }
}

struct StopFlags {
    term: Arc<AtomicBool>,
    hup: Arc<AtomicUsize>,
}

fn stop_flags() -> Result<StopFlags, Failure> {
    let term = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, term.clone()).or_exit(Exit::Runtime)?;
    }
    let hup = Arc::new(AtomicUsize::new(0));
    let counter = hup.clone();
    // SAFETY: the handler only bumps an atomic, which is async-signal-safe.
    unsafe {
        signal_hook::low_level::register(signal_hook::consts::SIGHUP, move || {
            counter.fetch_add(1, Ordering::AcqRel);
        })
    }
    .or_exit(Exit::Runtime)?;
    Ok(StopFlags { term, hup })
}

/// One daemon per state directory: a second one would fight the first over the database
/// and the control socket.
fn lock_state_dir(dir: &Path) -> Result<std::fs::File, Failure> {
    use std::os::fd::AsRawFd;
    let path = dir.join("daemon.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
        .or_exit(Exit::Io)?;
    // SAFETY: flock on a descriptor we own.
    let locked =
        unsafe { nix::libc::flock(file.as_raw_fd(), nix::libc::LOCK_EX | nix::libc::LOCK_NB) };
    if locked != 0 {
        return Err(Failure::new(
            Exit::Runtime,
            anyhow!(
                "another ccbt-uring daemon uses {} (it holds {})",
                dir.display(),
                path.display()
            ),
        ));
    }
    Ok(file)
}

/// Raises the soft open-files limit to the hard one: a seedbox holds a socket per peer.
fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                Ok(()) => tracing::info!(from = soft, to = hard, "raised the open files limit"),
                Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trackers_section_paces_every_shards_announces() {
        let mut config = Config::default();
        config.trackers.announces_per_host = 2;
        config.trackers.announces_at_once = 10;
        config.trackers.host_gap_ms = 0;
        let limits = swarm_config(&config, false).announce.limits;
        assert_eq!(limits.per_host, 2);
        assert_eq!(limits.per_shard, 10);
        assert_eq!(limits.host_gap, Duration::ZERO);
        assert_eq!(
            limits.queue_max,
            ccbt_shards::swarm::DispatchLimits::default().queue_max
        );
    }
}
