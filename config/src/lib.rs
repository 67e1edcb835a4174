//! The ccbt-uring daemon's configuration.
//!
//! Layers, lowest to highest: built-in defaults, one `ccbt.toml` (the
//! `--config FILE`, or the first of `./ccbt.toml`,
//! `$XDG_CONFIG_HOME/ccbt/ccbt.toml`, `~/.ccbt.toml`), `CCBT_<SECTION>_<KEY>`
//! environment variables, then command-line flags. [`load`] stacks them and
//! records each key's [`Origin`]; [`check_file`] reports every problem in a
//! file with its line and column, and suggests the key meant for a typo;
//! [`show`] prints the result as commented TOML; [`diff`] says which changes a
//! running daemon can apply; [`Reloader`] notices file edits.
//!
//! It does not apply anything: the daemon owns the effects of a change, the
//! per-torrent overrides ([`TorrentSettings`] only says how they combine),
//! and the command line (it passes flags in as dotted keys). It reads the
//! environment only through [`Sources::env`], so callers and tests decide.

mod diagnostics;
mod layers;
mod paths;
mod reload;
mod schema;
mod setting;
mod show;
mod torrent;
pub mod units;

pub use diagnostics::{ConfigError, Diagnostic, Location};
pub use layers::{check_file, check_str, find_file, load, Loaded, Origin, Sources};
pub use paths::process_env;
pub use reload::Reloader;
pub use schema::{
    is_live, Blocklist, ByteRate, Config, Daemon, Dht, Hooks, Limits, Live, Lsd, Pex, Preallocate,
    Queue, ServeReads, Share, ShareAction, ShareLimits, Storage, WebSeeds,
};
pub use show::{diff, show, value_of, Change};
pub use torrent::{Effective, TorrentSettings};

impl Sources {
    /// Sources for the running process: its environment and working directory.
    pub fn from_process(
        file: Option<std::path::PathBuf>,
        overrides: Vec<(String, String)>,
    ) -> std::io::Result<Sources> {
        Ok(Sources {
            file,
            cwd: std::env::current_dir()?,
            env: process_env(),
            overrides,
        })
    }
}
