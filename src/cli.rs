//! The command line, as clap sees it.

use std::path::PathBuf;

use ccbt_engine::metainfo::PIECE_LENGTH_MAX;
use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success (verify: every piece is good)
  1  verify: some pieces are missing or bad; download: stopped before complete;
     seed: the data is incomplete (with several torrents: none of them can be seeded)
  2  the command line is wrong
  3  the torrent or magnet link is invalid or unsafe
  4  a file could not be read or written
  5  the runtime cannot start here (io_uring disabled, memlock too low)";

/// ccbt-uring: a thread-per-core io_uring BitTorrent engine.
#[derive(Debug, Parser)]
#[command(name = "ccbt-uring", version, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a .torrent from a file or directory, hashing on every core.
    #[command(after_help = EXIT_CODES)]
    Create(CreateArgs),
    /// Show what a .torrent file or magnet link holds.
    #[command(after_help = EXIT_CODES)]
    Info(InfoArgs),
    /// Recheck downloaded data against a .torrent, hashing on every core. Reads only.
    #[command(after_help = EXIT_CODES)]
    Verify(VerifyArgs),
    /// Download a torrent into a directory, then exit (or keep seeding with --seed).
    #[command(after_help = EXIT_CODES)]
    Download(DownloadArgs),
    /// Check torrents' data, then seed them until stopped (Ctrl-C).
    #[command(after_help = EXIT_CODES)]
    Seed(SeedArgs),
    /// Run the seedbox daemon: torrents added and removed while it runs, state that
    /// survives a crash. Runs with built-in defaults and no config file.
    #[command(after_help = EXIT_CODES)]
    Daemon(DaemonArgs),
    /// Steer a running daemon: through its control socket, or over HTTP with --url.
    #[command(after_help = EXIT_CODES)]
    Remote(RemoteArgs),
    /// A live dashboard of a daemon's torrents and shards, local or remote (--url).
    #[command(after_help = TOP_KEYS)]
    Top(TopArgs),
    /// Show the daemon's effective configuration, or check a config file.
    #[command(after_help = EXIT_CODES)]
    Config(ConfigArgs),
}

/// `ccbt-uring daemon`. Every flag is also a config key (`ccbt-uring config show`).
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The config file (default: the first of ./ccbt.toml, $XDG_CONFIG_HOME/ccbt/ccbt.toml,
    /// ~/.ccbt.toml that exists; none is needed).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the state database and control socket live (default
    /// $XDG_DATA_HOME/ccbt-uring, i.e. ~/.local/share/ccbt-uring).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where new torrents' data goes (default ~/Downloads).
    #[arg(long, value_name = "DIR")]
    pub download_dir: Option<PathBuf>,
    /// A folder whose dropped-in .torrent files are added (repeatable).
    #[arg(long = "watch-dir", value_name = "DIR")]
    pub watch_dirs: Vec<PathBuf>,
    /// TCP port for peers (default 6881; 0 picks a free one).
    #[arg(long, value_name = "P")]
    pub peer_port: Option<u16>,
    /// Where the HTTP control API listens (default 127.0.0.1:9091): `remote --url` and
    /// `top` use it. An address beyond loopback needs [control] credentials.
    #[arg(long, value_name = "ADDR:PORT")]
    pub control: Option<std::net::SocketAddr>,
    /// Shards to run (default: one per core).
    #[arg(long, value_name = "N")]
    pub shards: Option<u32>,
    /// Do not pin shards to cores (for machines whose cores are shared).
    #[arg(long)]
    pub no_pin: bool,
}

#[derive(Debug, Args)]
pub struct RemoteArgs {
    /// The daemon's state directory (its control socket is `control.sock` there).
    #[arg(long, value_name = "DIR", conflicts_with = "socket")]
    pub state_dir: Option<PathBuf>,
    /// The control socket itself.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Talk to the daemon over HTTP instead (its native API): `http://HOST:PORT`, the
    /// daemon's `--control` address. Verbs: add, list, info, pause, resume, recheck,
    /// reannounce, remove, stats.
    #[arg(long, value_name = "URL", conflicts_with_all = ["state_dir", "socket"])]
    pub url: Option<String>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// Print answers as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(subcommand)]
    pub action: RemoteAction,
}

#[derive(Debug, Subcommand)]
pub enum RemoteAction {
    /// Add a .torrent file or a magnet link.
    Add {
        torrent: PathBuf,
        /// Save directory (default: the daemon's download directory). With --url a
        /// relative one is under the daemon's download directory.
        #[arg(long, value_name = "DIR")]
        save_dir: Option<PathBuf>,
        /// Add it stopped (its data is still checked).
        #[arg(long)]
        paused: bool,
    },
    /// List torrents with their state and progress.
    List,
    /// One torrent in full: sizes, rates, trackers, files.
    Info {
        hash: String,
    },
    /// The session: torrents per state, rates, totals, per-shard load (with --url).
    Stats,
    /// How many torrents are in each state.
    Summary,
    /// Remove a torrent (its data stays unless --delete-data).
    Remove {
        hash: String,
        #[arg(long)]
        delete_data: bool,
    },
    Pause {
        hash: String,
    },
    Resume {
        hash: String,
    },
    /// Hash the torrent's data again.
    Recheck {
        hash: String,
    },
    /// Announce to its tracker now.
    Reannounce {
        hash: String,
    },
    /// Move the torrent's data under another save directory.
    Move {
        hash: String,
        to: PathBuf,
    },
    /// Set a torrent's own rate limits (0: none; the global limits still apply).
    SetLimits {
        hash: String,
        /// Bytes per second it may upload.
        #[arg(long, default_value_t = 0)]
        up: u64,
        /// Bytes per second it may download.
        #[arg(long, default_value_t = 0)]
        down: u64,
    },
    /// Recent events (added, checked, completed, error, removed, tracker error, peer
    /// banned), after sequence number --since.
    Events {
        #[arg(long, default_value_t = 0)]
        since: u64,
    },
    /// Stop the daemon (as SIGTERM does).
    Shutdown,
}

/// HTTP Basic credentials for a daemon with `[control]` username and password set.
#[derive(Debug, Args)]
pub struct CredentialArgs {
    /// User name (default: $CCBT_USER).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Password (default: $CCBT_PASSWORD; prefer the variable: arguments show in `ps`).
    #[arg(long, value_name = "TEXT")]
    pub password: Option<String>,
}

impl CredentialArgs {
    /// The flags, else the environment; none when neither gives a user or a password.
    pub fn resolve(&self) -> Option<(String, String)> {
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let user = self.user.clone().or_else(|| from_env("CCBT_USER"));
        let password = self.password.clone().or_else(|| from_env("CCBT_PASSWORD"));
        if user.is_none() && password.is_none() {
            return None;
        }
        Some((user.unwrap_or_default(), password.unwrap_or_default()))
    }
}

const TOP_KEYS: &str = "Keys:
  up/down, j/k, PgUp/PgDn, Home/End   select a torrent
  s / S      sort by the next / previous column      r   reverse the order
  /          filter by name (type, Enter to keep, Esc to clear)
  p          pause the selected torrent               u   resume it
  q, Ctrl-C  quit";

/// `ccbt-uring top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// The daemon's HTTP address (default: http:// and the configured daemon.control,
    /// normally 127.0.0.1:9091).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    #[command(flatten)]
    pub credentials: CredentialArgs,
    /// How often to refresh, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub interval_ms: u64,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub action: ConfigAction,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the effective configuration, with where each value came from.
    Show {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Check a config file; errors are listed with their line numbers.
    Check { file: PathBuf },
}

/// Options every command that joins a swarm shares.
#[derive(Debug, Args)]
pub struct SwarmArgs {
    /// TCP port every shard listens on for peers.
    #[arg(long, default_value_t = 6881)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, value_name = "IP", default_value = "0.0.0.0")]
    pub listen: std::net::IpAddr,
    /// Peer connections each shard holds at most, handshakes in progress included.
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub max_connections: usize,
    /// Peers each torrent connects with at most (a seedbox serving many leechers raises
    /// it; --max-connections still bounds each shard).
    #[arg(long, value_name = "N", default_value_t = 80, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_peers: u32,
    /// Read cache for seeding, per shard, in MiB: pieces read from disk stay in it so
    /// peers asking for the same piece do not read it again. A seedbox with memory to spare
    /// and many leechers on different pieces serves more with a larger one.
    #[arg(long, value_name = "MIB", default_value_t = 64, value_parser = clap::value_parser!(u32).range(4..=1_048_576))]
    pub cache_mib: u32,
    /// Upload slots per torrent (0: unchoke every interested peer).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub upload_slots: usize,
    /// File descriptors each shard's seeding torrents keep open at most; past it the
    /// least recently read torrent's files are closed until its next read.
    #[arg(long, value_name = "N", default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..))]
    pub open_files: u32,
    /// A complete torrent with at least N peers is served from every shard, each keeping
    /// the peers it accepted; 0: each torrent from its own shard only.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub hot_peers: usize,
    /// Reserve every file's blocks before downloading instead of growing sparse files.
    #[arg(long)]
    pub preallocate: bool,
    /// How seeding reads the disk: `direct` (O_DIRECT into the read cache above),
    /// `buffered` (through the kernel's page cache, as other clients do) or `auto` (from
    /// the page cache when it already holds the blocks, O_DIRECT otherwise).
    #[arg(long, value_name = "HOW", value_enum, default_value_t = ServeReadsArg::Auto)]
    pub serve_reads: ServeReadsArg,
    /// Also connect to this peer (repeatable), besides those the trackers name.
    #[arg(long = "peer", value_name = "IP:PORT")]
    pub peers: Vec<std::net::SocketAddr>,
    /// Turn peer exchange (BEP 11, ut_pex) off: neither tell peers of others nor learn
    /// peers from them. Private torrents never use it.
    #[arg(long)]
    pub no_pex: bool,
    /// Run no DHT node (BEP 5): peers come from trackers and --peer only.
    #[arg(long)]
    pub no_dht: bool,
    /// Join the DHT through this node instead of the well-known routers (repeatable).
    #[arg(long = "dht-bootstrap", value_name = "HOST:PORT", value_parser = parse_host_port)]
    pub dht_bootstrap: Vec<String>,
    /// Run no local service discovery (BEP 14); `CCBT_LSD_ENABLED=false` does the same.
    /// LSD is off anyway while peers listen on loopback only and no --lsd-interface is set.
    #[arg(long)]
    pub no_lsd: bool,
    /// Multicast LSD announces on the interface with this IPv4 address (default: the
    /// --listen address, or the kernel's choice when that is every address).
    #[arg(long, value_name = "IPV4")]
    pub lsd_interface: Option<std::net::Ipv4Addr>,
    #[command(flatten)]
    pub shards: ShardArgs,
}

/// `--serve-reads`: see [`ccbt_shards::swarm::ServeReads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeReadsArg {
    Direct,
    Buffered,
    Auto,
}

impl From<ServeReadsArg> for ccbt_shards::swarm::ServeReads {
    fn from(arg: ServeReadsArg) -> Self {
        match arg {
            ServeReadsArg::Direct => ccbt_shards::swarm::ServeReads::Direct,
            ServeReadsArg::Buffered => ccbt_shards::swarm::ServeReads::Buffered,
            ServeReadsArg::Auto => ccbt_shards::swarm::ServeReads::Auto,
        }
    }
}

/// `HOST:PORT`, checked for shape only: the name is resolved when the DHT joins.
pub fn parse_host_port(s: &str) -> Result<String, String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(s.to_string()),
        _ => Err(format!("{s:?} is not HOST:PORT")),
    }
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// A .torrent file, or a magnet link (`magnet:?xt=urn:btih:...`): its metadata is
    /// fetched from peers first.
    #[arg(value_name = "TORRENT|MAGNET")]
    pub torrent: PathBuf,
    /// The save directory: the torrent's name is created inside it. Data already there is
    /// checked first and only missing pieces are fetched.
    #[arg(
        short = 'o',
        long = "output",
        visible_alias = "data",
        value_name = "DIR"
    )]
    pub output: PathBuf,
    /// Keep seeding after the download completes, until stopped.
    #[arg(long)]
    pub seed: bool,
    /// Fetch pieces strictly in order (for streaming), not rarest first.
    #[arg(long)]
    pub sequential: bool,
    /// Download only these files (0-based indexes as `info` lists them, e.g. 0,2,5).
    #[arg(long, value_name = "FILE_INDEXES", value_delimiter = ',')]
    pub only: Vec<usize>,
    /// Also fetch from this web seed (BEP 19; repeatable): an http:// URL that holds the
    /// torrent's file (single-file) or its directory's parent (multi-file).
    #[arg(long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Ignore the torrent's web seeds (and any --web-seed).
    #[arg(long)]
    pub no_web_seeds: bool,
    #[command(flatten)]
    pub magnet: MagnetArgs,
    #[command(flatten)]
    pub swarm: SwarmArgs,
}

/// How a magnet link's metadata is fetched.
#[derive(Debug, Args)]
pub struct MagnetArgs {
    /// Give up on a magnet link whose metadata has not arrived within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    pub metadata_timeout: u64,
    /// The largest metadata (info dict) accepted from peers, in KiB: a peer offering more
    /// is dropped, and if no peer offers less the fetch fails.
    #[arg(long, value_name = "KIB", default_value_t = ccbt_engine::metadata::METADATA_SIZE_MAX_DEFAULT / 1024,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub metadata_max: u32,
    /// Write the fetched metadata as a .torrent file here (magnet links only).
    #[arg(long, value_name = "FILE")]
    pub save_torrent: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// .torrent files, or directories of them. With more than one torrent, a torrent whose
    /// data is incomplete or that cannot be read is reported and skipped; the rest seed.
    #[arg(value_name = "TORRENT|DIR", required = true)]
    pub torrents: Vec<PathBuf>,
    /// The save directory that holds each torrent's name.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    #[command(flatten)]
    pub swarm: SwarmArgs,
}

/// How many shards (executors, pinned one per CPU by default) to run.
#[derive(Debug, Args)]
pub struct ShardArgs {
    /// Number of shards; default: one per CPU this process may use.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub shards: Option<u16>,
    /// Let the kernel place the shards instead of pinning one to each CPU: better when
    /// other busy processes share the machine's cores.
    #[arg(long)]
    pub no_pin: bool,
}

impl ShardArgs {
    pub fn config(&self) -> ccbt_shards::ShardConfig {
        let mut config = match self.shards {
            Some(n) => ccbt_shards::ShardConfig::with_count(n.into()),
            None => ccbt_shards::ShardConfig::per_core(),
        };
        config.pin = !self.no_pin;
        config
    }
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The file or directory to share. A directory becomes a multi-file torrent; files are
    /// ordered by path, byte-wise, and hidden and empty files are included (as mktorrent).
    pub path: PathBuf,
    /// Where to write the .torrent.
    #[arg(short, long, value_name = "OUT.torrent")]
    pub output: PathBuf,
    /// Tracker announce URL; repeat for more. Each becomes its own tier, in order.
    #[arg(short = 't', long = "tracker", value_name = "URL")]
    pub trackers: Vec<String>,
    /// Web seed URL (BEP 19); repeat for more.
    #[arg(short = 'w', long = "web-seed", value_name = "URL")]
    pub web_seeds: Vec<String>,
    /// Piece size in bytes (a power of two, 16 KiB to 256 MiB; suffixes K, M allowed), or
    /// `auto`: the smallest power of two from 16 KiB to 16 MiB giving at most 2048 pieces.
    #[arg(long, value_name = "BYTES|auto", default_value = "auto", value_parser = parse_piece_size)]
    pub piece_size: PieceSize,
    /// Mark the torrent private (BEP 27): peers come only from its trackers.
    #[arg(long)]
    pub private: bool,
    /// A comment stored in the torrent.
    #[arg(long, value_name = "TEXT")]
    pub comment: Option<String>,
    /// The torrent's name; default: the file or directory name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Leave out the creation date and `created by`, so the same input gives the same file.
    #[arg(long)]
    pub no_date: bool,
    /// Overwrite OUT.torrent if it exists.
    #[arg(short, long)]
    pub force: bool,
    #[command(flatten)]
    pub shards: ShardArgs,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// A .torrent file, or a magnet link (`magnet:?xt=urn:btih:...`).
    #[arg(value_name = "TORRENT|MAGNET")]
    pub source: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// For a magnet link: fetch its metadata from peers (its trackers, `x.pe` and
    /// `--peer`) and show the torrent as for a .torrent file.
    #[arg(long)]
    pub fetch: bool,
    #[command(flatten)]
    pub magnet: MagnetArgs,
    #[command(flatten)]
    pub swarm: SwarmArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The .torrent file.
    pub torrent: PathBuf,
    /// The save path: the directory that holds the torrent's name (as in libtorrent).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub shards: ShardArgs,
}

/// A piece size from the command line; `None` means `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PieceSize(pub Option<u32>);

/// `auto` gives `None`; otherwise a power of two from 16 KiB to 256 MiB, with an optional
/// `K`/`M` (binary) suffix.
fn parse_piece_size(s: &str) -> Result<PieceSize, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(PieceSize(None));
    }
    let (digits, unit) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 1u64 << 20),
        _ => (s, 1),
    };
    let n = digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{s:?} is not a byte count or `auto`"))?;
    if !n.is_power_of_two() || n < 16 << 10 || n > u64::from(PIECE_LENGTH_MAX) {
        return Err(format!("{n} must be a power of two from 16 KiB to 256 MiB"));
    }
    Ok(PieceSize(Some(n as u32)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_sizes() {
        assert_eq!(parse_piece_size("auto"), Ok(PieceSize(None)));
        assert_eq!(parse_piece_size("262144"), Ok(PieceSize(Some(262144))));
        assert_eq!(parse_piece_size("256K"), Ok(PieceSize(Some(262144))));
        assert_eq!(parse_piece_size("4m"), Ok(PieceSize(Some(4 << 20))));
        assert!(parse_piece_size("1000").is_err());
        assert!(parse_piece_size("8K").is_err());
        assert!(parse_piece_size("512M").is_err());
        assert!(parse_piece_size("-1").is_err());
        assert!(parse_piece_size("99999999999999999999K").is_err());
    }

    #[test]
    fn swarm_options_reach_the_configs() {
        let cli = Cli::try_parse_from([
            "ccbt-uring",
            "seed",
            "t.torrent",
            "--data",
            "d",
            "--shards",
            "3",
            "--no-pin",
            "--max-peers",
            "700",
            "--cache-mib",
            "512",
        ])
        .unwrap();
        let Command::Seed(args) = cli.command else {
            panic!("not seed");
        };
        let shards = args.swarm.shards.config();
        assert_eq!((shards.count, shards.pin), (3, false));
        assert_eq!(args.swarm.max_peers, 700);
        let swarm = crate::commands::swarm::config(&args.swarm);
        assert_eq!(swarm.cache_bytes, 512 << 20);
        assert_eq!(swarm.session.max_peers, 700);
        for bad in ["0", "3", "x"] {
            let parsed = Cli::try_parse_from(["ccbt-uring", "seed", "t", "--cache-mib", bad]);
            assert!(parsed.is_err(), "--cache-mib {bad} was taken");
        }
        let pinned = ShardArgs {
            shards: None,
            no_pin: false,
        };
        assert!(pinned.config().pin);
    }
}
