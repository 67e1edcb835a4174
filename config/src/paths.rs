//! Where things live on disk: the home and XDG directories, read from the
//! environment the caller passes in (never the process's own, so tests stay
//! independent), `~` expansion, and the config file search order.

use std::path::{Path, PathBuf};

/// The user's directories, as far as the environment tells.
#[derive(Clone, Debug)]
pub(crate) struct Home {
    home: Option<PathBuf>,
    config_home: Option<PathBuf>,
    data_home: Option<PathBuf>,
}

impl Home {
    pub(crate) fn from_env(env: &[(String, String)]) -> Home {
        // XDG says relative values are invalid and must be ignored.
        let absolute = |name: &str| {
            let value = env.iter().rev().find(|(k, _)| k == name)?.1.as_str();
            let path = PathBuf::from(value);
            path.is_absolute().then_some(path)
        };
        let home = absolute("HOME");
        Home {
            config_home: absolute("XDG_CONFIG_HOME")
                .or_else(|| home.as_ref().map(|h| h.join(".config"))),
            data_home: absolute("XDG_DATA_HOME")
                .or_else(|| home.as_ref().map(|h| h.join(".local/share"))),
            home,
        }
    }

    /// Without `HOME`, paths fall back to relative ones under the daemon's
    /// working directory rather than failing.
    fn home_or_dot(&self) -> PathBuf {
        self.home.clone().unwrap_or_else(|| PathBuf::from("."))
    }

    pub(crate) fn default_state_dir(&self) -> PathBuf {
        self.data_home
            .clone()
            .unwrap_or_else(|| PathBuf::from(".local/share"))
            .join("ccbt-uring")
    }

    pub(crate) fn default_download_dir(&self) -> PathBuf {
        self.home_or_dot().join("Downloads")
    }

    /// `~` and `~/x` become the home directory; `~user` is left alone.
    pub(crate) fn expand(&self, path: &str) -> PathBuf {
        match path.strip_prefix('~') {
            Some("") => self.home_or_dot(),
            Some(rest) if rest.starts_with('/') => self.home_or_dot().join(&rest[1..]),
            _ => PathBuf::from(path),
        }
    }

    /// The implicit config files, first found wins.
    pub(crate) fn candidates(&self, cwd: &Path) -> Vec<PathBuf> {
        let mut out = vec![cwd.join("ccbt.toml")];
        if let Some(config) = &self.config_home {
            out.push(config.join("ccbt/ccbt.toml"));
        }
        if let Some(home) = &self.home {
            out.push(home.join(".ccbt.toml"));
        }
        out
    }
}

/// The process environment as (name, value) pairs, skipping non-UTF-8 entries
/// (which `std::env::vars` would panic on).
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}
