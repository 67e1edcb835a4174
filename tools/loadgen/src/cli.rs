//! The command line: `dataset`, `make-torrent`, `seed` and `leech`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context as _, Result};
use ccbt_shards::pool::ShardConfig;
use clap::{Args, Parser, Subcommand};

use crate::report::{Progress, Summary};
use crate::{dataset, flood, leecher, net, seeder, torrent};

/// Longest run accepted.
const DURATION_MAX: u64 = 24 * 3600;

#[derive(Parser)]
#[command(name = "ccbt-loadgen", about = "Load generator for ccbt-uring")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write N torrents of deterministic data: OUT/data/<name>/... and OUT/torrents/<name>.torrent.
    Dataset {
        /// Number of torrents.
        #[arg(long, default_value_t = 100)]
        torrents: u32,
        /// Files per torrent (1 makes single-file torrents).
        #[arg(long, default_value_t = 3)]
        files: u32,
        /// Bytes per file.
        #[arg(long, default_value_t = 1 << 20)]
        file_bytes: u64,
        /// Piece length in bytes.
        #[arg(long, default_value_t = 1 << 18)]
        piece_length: u32,
        /// Seed for the contents; the same seed gives the same bytes and info hashes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a single-file torrent of synthetic content (a pure function of the seed).
    MakeTorrent {
        /// Content size in bytes.
        #[arg(long)]
        size: u64,
        /// Piece size in bytes (a multiple of 16 KiB).
        #[arg(long, default_value_t = 1 << 20)]
        piece_size: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write the .torrent.
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
        /// Also write the content itself as DIR/NAME, for real clients to seed or check.
        #[arg(long, value_name = "DIR")]
        write_files: Option<PathBuf>,
        /// File name inside the torrent (default synthetic-SEED-SIZE.bin).
        #[arg(long)]
        name: Option<String>,
        /// Announce URL; repeat for more tiers.
        #[arg(long = "tracker")]
        trackers: Vec<String>,
    },
    /// Simulated seeders serving make-torrent content generated on the fly.
    Seed {
        /// A .torrent from make-torrent, or a directory of them; repeat for more.
        #[arg(long = "torrent", required = true)]
        torrents: Vec<PathBuf>,
        /// First endpoint; the others take the following ports.
        #[arg(long, default_value = "127.0.0.1:6881")]
        listen: SocketAddr,
        /// Seeder endpoints (ports) to present.
        #[arg(long, default_value_t = 1)]
        peers: u16,
        /// Also connect to this peer and serve it the first torrent (for clients that do
        /// not dial loopback peers); repeat for more.
        #[arg(long = "dial")]
        dial: Vec<SocketAddr>,
        /// Most connections served at once.
        #[arg(long, default_value_t = 20_000)]
        max_connections: usize,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Hostile connections against a target: half-open, garbage handshakes, slowloris,
    /// never-readers, squatters, request and HAVE floods; reports what the target did with
    /// each kind.
    Flood {
        /// The .torrent whose info hash the handshakes name.
        #[arg(long)]
        torrent: PathBuf,
        /// Peer to flood.
        #[arg(long)]
        target: SocketAddr,
        /// Hostile connections kept.
        #[arg(long, default_value_t = 1000)]
        connections: u32,
        /// Kinds to mix, comma-separated (default: all).
        #[arg(long = "kind", value_enum, value_delimiter = ',')]
        kinds: Vec<flood::Kind>,
        /// Connections being opened at once.
        #[arg(long, default_value_t = 256)]
        connect_concurrency: u32,
        #[command(flatten)]
        run: RunArgs,
    },
    /// Simulated leechers downloading from a target and checking every piece.
    Leech {
        /// A .torrent, or a directory of them; repeat for more. Leechers spread over them.
        #[arg(long = "torrent", required = true)]
        torrents: Vec<PathBuf>,
        /// Peer to download from; repeat to spread leechers over several.
        #[arg(long = "target", required = true)]
        targets: Vec<SocketAddr>,
        /// Number of leecher connections.
        #[arg(long, default_value_t = 1)]
        peers: u32,
        /// Requests kept outstanding per connection.
        #[arg(long, default_value_t = 64)]
        pipeline: u32,
        /// Connections being opened at once.
        #[arg(long, default_value_t = 256)]
        connect_concurrency: u32,
        #[command(flatten)]
        run: RunArgs,
    },
}

/// Options every load mode takes.
#[derive(Args)]
struct RunArgs {
    /// Seconds to run; the run ends by itself.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// Print a progress line (JSON with --json) every second.
    #[arg(long)]
    progress: bool,
    /// Shards (threads) to run; default one per core.
    #[arg(long)]
    shards: Option<usize>,
    /// Allow addresses that are not loopback.
    #[arg(long)]
    allow_remote: bool,
}

impl RunArgs {
    fn duration(&self) -> Result<Duration> {
        ensure!(
            (1..=DURATION_MAX).contains(&self.duration),
            "--duration must be 1..={DURATION_MAX} seconds"
        );
        Ok(Duration::from_secs(self.duration))
    }

    fn shards(&self) -> ShardConfig {
        self.shards
            .map_or_else(ShardConfig::per_core, ShardConfig::with_count)
    }

    fn progress(&self) -> Progress {
        match (self.progress, self.json) {
            (false, _) => Progress::Off,
            (true, false) => Progress::Text,
            (true, true) => Progress::Json,
        }
    }

    fn print(&self, summary: &Summary) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string(summary)?);
        } else {
            print!("{}", summary.table());
        }
        Ok(())
    }
}

/// Parses the command line and runs it.
pub fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Dataset {
            torrents,
            files,
            file_bytes,
            piece_length,
            seed,
            out,
        } => {
            let spec = dataset::Spec {
                torrents,
                files,
                file_bytes,
                piece_length,
                seed,
            };
            let made = dataset::write(&spec, &out)?;
            println!("wrote {made} torrents under {}", out.display());
        }
        Command::MakeTorrent {
            size,
            piece_size,
            seed,
            out,
            write_files,
            name,
            trackers,
        } => {
            let spec = torrent::Spec {
                size,
                piece_size,
                seed,
                name,
                trackers,
            };
            let encoded = torrent::build(&spec)?;
            std::fs::write(&out, encoded)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!("wrote {}", out.display());
            if let Some(dir) = write_files {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let path = dir.join(spec.name());
                torrent::write_file(&spec, &path)?;
                println!("wrote {}", path.display());
            }
        }
        Command::Seed {
            torrents,
            listen,
            peers,
            dial,
            max_connections,
            run,
        } => {
            net::check_loopback(&listen, run.allow_remote)?;
            for peer in &dial {
                net::check_loopback(peer, run.allow_remote)?;
            }
            net::raise_fd_limit();
            let summary = seeder::run(seeder::Options {
                torrents: torrent::load_all(&torrents)?,
                listen,
                peers,
                duration: run.duration()?,
                shards: run.shards(),
                max_connections,
                dial,
                progress: run.progress(),
            })?;
            run.print(&summary)?;
        }
        Command::Flood {
            torrent,
            target,
            connections,
            kinds,
            connect_concurrency,
            run,
        } => {
            net::check_loopback(&target, run.allow_remote)?;
            net::raise_fd_limit();
            let torrent = torrent::load_all(std::slice::from_ref(&torrent))?
                .into_iter()
                .next()
                .context("no torrent loaded")?;
            let summary = flood::run(flood::Options {
                torrent,
                target,
                connections,
                kinds: if kinds.is_empty() {
                    flood::ALL_KINDS.to_vec()
                } else {
                    kinds
                },
                duration: run.duration()?,
                shards: run.shards(),
                connect_concurrency: connect_concurrency.max(1),
            })?;
            if run.json {
                println!("{}", serde_json::to_string(&summary)?);
            } else {
                print!("{}", summary.table());
            }
        }
        Command::Leech {
            torrents,
            targets,
            peers,
            pipeline,
            connect_concurrency,
            run,
        } => {
            for target in &targets {
                net::check_loopback(target, run.allow_remote)?;
            }
            net::raise_fd_limit();
            let summary = leecher::run(leecher::Options {
                torrents: torrent::load_all(&torrents)?,
                targets,
                peers,
                duration: run.duration()?,
                shards: run.shards(),
                pipeline,
                connect_concurrency: connect_concurrency.max(1),
                progress: run.progress(),
            })?;
            run.print(&summary)?;
        }
    }
    Ok(())
}
