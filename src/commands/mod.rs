//! One module per subcommand.

mod check_many;
pub mod config;
pub mod create;
pub mod download;
pub mod info;
pub(crate) mod magnet;
pub mod remote;
mod remote_http;
pub mod seed;
mod seed_many;
pub(crate) mod swarm;
pub mod top;
pub mod verify;

use std::path::Path;

use anyhow::Context as _;
use ccbt_engine::metainfo::Metainfo;

use crate::failure::{Exit, Failure, OrExit};

/// The most we read of a `.torrent` file (the bencode limit; larger is refused unread).
const TORRENT_FILE_BYTES_MAX: u64 = ccbt_engine::bencode::Limits::TORRENT.input_len_max as u64;

/// Reads and parses a `.torrent` file, with the exit code that fits each failure.
pub fn load_torrent(path: &Path) -> Result<Metainfo, Failure> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .or_exit(Exit::Io)?
        .len();
    if len > TORRENT_FILE_BYTES_MAX {
        return Err(Failure::new(
            Exit::BadInput,
            anyhow::anyhow!(
                "{} is {len} bytes; a .torrent may be at most {TORRENT_FILE_BYTES_MAX}",
                path.display()
            ),
        ));
    }
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read {}", path.display()))
        .or_exit(Exit::Io)?;
    let meta = Metainfo::parse(&bytes)
        .with_context(|| format!("{} is not a valid torrent", path.display()))
        .or_exit(Exit::BadInput)?;
    crate::changed_paths::log(&meta);
    Ok(meta)
}
