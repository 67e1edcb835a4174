//! `ccbt-loadgen`: makes the load that ccbt-uring is measured under.
//!
//! Today it builds data sets: many torrents with deterministic contents, laid out as a
//! seedbox holds them (a save directory plus one `.torrent` per torrent), for rechecks,
//! start-up with thousands of torrents, and — once the peer wire lands — for its simulated
//! seeders and leechers to serve and fetch.

use std::path::PathBuf;

use anyhow::Result;
use ccbt_loadgen::dataset;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "ccbt-loadgen", about = "Load generator for ccbt-uring")]
struct Cli {
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
}

fn main() -> Result<()> {
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
            Ok(())
        }
    }
}
