//! Settings changed through an API (Transmission `session-set`, qBittorrent
//! `setPreferences` and `transfer/set*Limit`), and how a config reload treats them.
//!
//! A user who changes a speed limit in a web UI expects it to stay. So a reload keeps each
//! key set through an API, unless the config file itself changed that key since it was
//! last loaded: then the file is the newer word and wins. Either way the log says which
//! (`kept the value set through the API` / `the config file replaces ...`), so a reload
//! never undoes an API change silently.
//!
//! They are kept across restarts in [`FILE_NAME`] in the state directory (JSON, written
//! atomically on every change): each key with its value and the value the config had
//! under it when an API first set it. At start-up the same rule as a reload applies: a
//! key comes back unless the config (file, `CCBT_*` variables or flags) now says something
//! else for it than it did then, which means the operator changed it on purpose.
//!
//! Bounded: the set holds config keys, at most the [`CARRIED`] ones.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ccbt_config::Config;
use serde::{Deserialize, Serialize};

/// Where the settings set through an API are kept, in the state directory.
pub const FILE_NAME: &str = "api-settings.json";

/// What [`FILE_NAME`] holds for one key: TOML values, as `ccbt-uring config show` prints
/// them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Kept {
    /// The value set through the API.
    value: String,
    /// What the config said for the key when an API first set it.
    under: String,
}

/// Copies one key's value from the first config into the second.
type Carry = fn(&Config, &mut Config);

/// The keys an API can set, and how each is carried from one config to another.
const CARRIED: &[(&str, Carry)] = &[
    ("daemon.download_dir", |from, to| {
        to.daemon.download_dir = from.daemon.download_dir.clone()
    }),
    ("limits.upload_bytes_per_s", |from, to| {
        to.limits.upload_bytes_per_s = from.limits.upload_bytes_per_s
    }),
    ("limits.download_bytes_per_s", |from, to| {
        to.limits.download_bytes_per_s = from.limits.download_bytes_per_s
    }),
    ("share.ratio_limit", |from, to| {
        to.share.ratio_limit = from.share.ratio_limit
    }),
    ("share.seeding_time_limit", |from, to| {
        to.share.seeding_time_limit = from.share.seeding_time_limit
    }),
    ("share.action", |from, to| {
        to.share.action = from.share.action
    }),
    ("queue.max_active_downloads", |from, to| {
        to.queue.max_active_downloads = from.queue.max_active_downloads
    }),
    ("queue.max_active_seeds", |from, to| {
        to.queue.max_active_seeds = from.queue.max_active_seeds
    }),
    ("queue.max_active_checks", |from, to| {
        to.queue.max_active_checks = from.queue.max_active_checks
    }),
];

/// The config keys set through an API, each with what the config said under it.
#[derive(Debug, Default)]
pub struct ApiSettings {
    keys: Mutex<BTreeMap<String, String>>,
    /// Where they are kept; `None` keeps them in memory only (tests).
    path: Option<PathBuf>,
}

impl ApiSettings {
    /// The settings kept in `state_dir`, and `config` with those that still apply put in
    /// force. A missing file is no settings; an unreadable one is logged and ignored.
    pub fn load(state_dir: &Path, config: &Config) -> (ApiSettings, Config) {
        let path = state_dir.join(FILE_NAME);
        let stored: BTreeMap<String, Kept> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::error!(file = %path.display(), error = %e,
                    "settings set through the API are unreadable; starting without them");
                BTreeMap::new()
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e,
                    "cannot read the settings set through the API; starting without them");
                BTreeMap::new()
            }
        };
        let mut merged = config.clone();
        let mut keys = BTreeMap::new();
        for (key, kept) in stored {
            let Some((_, carry)) = CARRIED.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            let now = ccbt_config::value_of(config, &key);
            if now.as_deref() != Some(kept.under.as_str()) {
                tracing::warn!(key = %key, config = ?now, api = %kept.value,
                    "the config changed this key since it was set through the API: \
                     the config's value is used");
                continue;
            }
            match parse_one(&key, &kept.value) {
                Some(parsed) => {
                    carry(&parsed, &mut merged);
                    tracing::info!(key = %key, value = %kept.value,
                        "a value set through the API is in force");
                    keys.insert(key, kept.under);
                }
                None => tracing::warn!(key = %key, value = %kept.value,
                    "a value set through the API no longer parses; dropped"),
            }
        }
        let settings = ApiSettings {
            keys: Mutex::new(keys),
            path: Some(path),
        };
        settings.save(&settings.keys.lock().expect("api settings lock"), &merged);
        (settings, merged)
    }

    /// Writes the keys with their values in `live` (atomically: a temporary file renamed
    /// over the old one). A failure is logged: the settings still apply to this run.
    fn save(&self, keys: &BTreeMap<String, String>, live: &Config) {
        let Some(path) = &self.path else { return };
        let stored: BTreeMap<&String, Kept> = keys
            .iter()
            .filter_map(|(key, under)| {
                let value = ccbt_config::value_of(live, key)?;
                Some((
                    key,
                    Kept {
                        value,
                        under: under.clone(),
                    },
                ))
            })
            .collect();
        let write = || -> std::io::Result<()> {
            let text = serde_json::to_vec_pretty(&stored)?;
            let tmp = path.with_extension("json.tmp");
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, path)
        };
        if let Err(e) = write() {
            tracing::error!(file = %path.display(), error = %e,
                "cannot keep the settings set through the API; they are lost at a restart");
        }
    }

    /// Notes the keys in which `after` differs from `before`, as `api` (the protocol's
    /// name, for the log) set them.
    pub fn record(&self, api: &str, before: &Config, after: &Config) {
        let changed: Vec<String> = ccbt_config::diff(before, after)
            .into_iter()
            .map(|c| c.key)
            .filter(|k| CARRIED.iter().any(|(key, _)| key == k))
            .collect();
        if changed.is_empty() {
            return;
        }
        tracing::info!(api, keys = ?changed,
            "settings changed through the API: kept across reloads and restarts unless the \
             config changes them");
        let mut keys = self.keys.lock().expect("api settings lock");
        for key in changed {
            // Set through an API before: what the config said under it is still that.
            keys.entry(key)
                .or_insert_with_key(|key| ccbt_config::value_of(before, key).unwrap_or_default());
        }
        self.save(&keys, after);
    }

    /// The config a reload puts in force: the file's `new_file`, with every key set
    /// through an API carried over from `live`, unless the file changed that key since
    /// `old_file` (then the file wins and the key is no longer the API's).
    pub fn on_reload(&self, old_file: &Config, new_file: &Config, live: &Config) -> Config {
        let file_changed: BTreeSet<String> = ccbt_config::diff(old_file, new_file)
            .into_iter()
            .map(|c| c.key)
            .collect();
        let mut merged = new_file.clone();
        let mut keys = self.keys.lock().expect("api settings lock");
        keys.retain(|key, _| {
            let Some((_, carry)) = CARRIED.iter().find(|(k, _)| k == key) else {
                return false;
            };
            if file_changed.contains(key) {
                tracing::warn!(key = %key,
                    "config reload: the config file changed this key, so its value replaces \
                     the one set through the API");
                false
            } else {
                carry(live, &mut merged);
                tracing::info!(key = %key, "config reload: kept the value set through the API");
                true
            }
        });
        self.save(&keys, &merged);
        merged
    }
}

/// A config with `key` set to `value` (TOML) and the rest defaults; `None` if it does not
/// parse as that key's value.
fn parse_one(key: &str, value: &str) -> Option<Config> {
    let (section, name) = key.split_once('.')?;
    let text = format!("[{section}]\n{name} = {value}\n");
    ccbt_config::check_str(&text, Path::new(FILE_NAME)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccbt_config::ByteRate;

    #[test]
    fn a_reload_keeps_api_keys_unless_the_file_changed_them() {
        let file = Config::default();
        let mut live = file.clone();
        live.limits.upload_bytes_per_s = ByteRate(5_000);
        live.queue.max_active_downloads = 7;
        let settings = ApiSettings::default();
        settings.record("test", &file, &live);

        // The file changed only the download limit: both API keys are kept.
        let mut edited = file.clone();
        edited.limits.download_bytes_per_s = ByteRate(9_000);
        let merged = settings.on_reload(&file, &edited, &live);
        assert_eq!(merged.limits.upload_bytes_per_s, ByteRate(5_000));
        assert_eq!(merged.queue.max_active_downloads, 7);
        assert_eq!(merged.limits.download_bytes_per_s, ByteRate(9_000));

        // Now the file sets the upload limit too: the file wins, and keeps winning.
        let mut edited_again = edited.clone();
        edited_again.limits.upload_bytes_per_s = ByteRate(1_000);
        let merged = settings.on_reload(&edited, &edited_again, &merged);
        assert_eq!(merged.limits.upload_bytes_per_s, ByteRate(1_000));
        assert_eq!(merged.queue.max_active_downloads, 7);
        let again = settings.on_reload(&edited_again, &edited_again, &live);
        assert_eq!(again.limits.upload_bytes_per_s, ByteRate(1_000));
    }

    #[test]
    fn kept_settings_come_back_unless_the_config_changed_them_since() {
        let dir = tempfile::tempdir().unwrap();
        let file = Config::default();
        let (settings, live) = ApiSettings::load(dir.path(), &file);
        assert_eq!(live, file, "nothing kept yet");
        let mut changed = live.clone();
        changed.limits.upload_bytes_per_s = ByteRate(5_000);
        changed.daemon.download_dir = "/srv/from the api".into();
        changed.queue.max_active_downloads = 0;
        settings.record("test", &live, &changed);
        drop(settings);

        // Same config: every kept key is back, also the one set to a default value.
        let mut file_now = file.clone();
        file_now.queue.max_active_downloads = file.queue.max_active_downloads;
        let (settings, back) = ApiSettings::load(dir.path(), &file_now);
        assert_eq!(back.limits.upload_bytes_per_s, ByteRate(5_000));
        assert_eq!(back.daemon.download_dir, PathBuf::from("/srv/from the api"));
        assert_eq!(back.queue.max_active_downloads, 0);
        drop(settings);

        // The config now says something else for one key: the config's value is used,
        // and that key is no longer kept; the others still are.
        let mut edited = file.clone();
        edited.limits.upload_bytes_per_s = ByteRate(1_000);
        let (_settings, after_edit) = ApiSettings::load(dir.path(), &edited);
        assert_eq!(after_edit.limits.upload_bytes_per_s, ByteRate(1_000));
        assert_eq!(after_edit.queue.max_active_downloads, 0);
        let (_settings, again) = ApiSettings::load(dir.path(), &file);
        assert_eq!(
            again.limits.upload_bytes_per_s,
            file.limits.upload_bytes_per_s
        );
        assert_eq!(again.queue.max_active_downloads, 0);
    }

    #[test]
    fn a_broken_settings_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"{not json").unwrap();
        let file = Config::default();
        let (_settings, live) = ApiSettings::load(dir.path(), &file);
        assert_eq!(live, file);
        // Under the config's own value, so only the value's parse can refuse it.
        let under = ccbt_config::value_of(&file, "limits.upload_bytes_per_s").unwrap();
        let text = serde_json::json!({
            "limits.upload_bytes_per_s": {"value": "\"not a rate\"", "under": under},
            "no.such_key": {"value": "1", "under": "0"},
        });
        std::fs::write(dir.path().join(FILE_NAME), text.to_string()).unwrap();
        let (_settings, live) = ApiSettings::load(dir.path(), &file);
        assert_eq!(live, file);
    }

    #[test]
    fn every_key_an_api_sets_is_carried_under_the_name_diff_gives_it() {
        let file = Config::default();
        let mut live = file.clone();
        live.daemon.download_dir = "/srv/elsewhere".into();
        live.limits.upload_bytes_per_s = ByteRate(1);
        live.limits.download_bytes_per_s = ByteRate(2);
        live.share.ratio_limit = Some(3.5);
        live.share.seeding_time_limit = Some(std::time::Duration::from_secs(60));
        live.share.action = match file.share.action {
            ccbt_config::ShareAction::Pause => ccbt_config::ShareAction::Remove,
            _ => ccbt_config::ShareAction::Pause,
        };
        live.queue.max_active_downloads += 1;
        live.queue.max_active_seeds += 1;
        live.queue.max_active_checks += 1;
        assert_eq!(ccbt_config::diff(&file, &live).len(), CARRIED.len());
        let settings = ApiSettings::default();
        settings.record("test", &file, &live);
        let merged = settings.on_reload(&file, &file, &live);
        assert!(
            ccbt_config::diff(&merged, &live).is_empty(),
            "{:?}",
            ccbt_config::diff(&merged, &live)
        );
    }
}
