//! Settings changed through an API (Transmission `session-set`, qBittorrent
//! `setPreferences` and `transfer/set*Limit`), and how a config reload treats them.
//!
//! A user who changes a speed limit in a web UI expects it to stay. So a reload keeps each
//! key set through an API, unless the config file itself changed that key since it was
//! last loaded: then the file is the newer word and wins. Either way the log says which
//! (`kept the value set through the API` / `the config file replaces ...`), so a reload
//! never undoes an API change silently.
//!
//! They are not written anywhere: a restart starts from the config file again (the
//! daemon says so in the log when they are set). Put a setting in the file to keep it.
//!
//! Bounded: the set holds config keys, at most the [`CARRIED`] ones.

use std::collections::BTreeSet;
use std::sync::Mutex;

use ccbt_config::Config;

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

/// The config keys set through an API since the daemon started.
#[derive(Debug, Default)]
pub struct ApiSettings {
    keys: Mutex<BTreeSet<String>>,
}

impl ApiSettings {
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
            "settings changed through the API: a config reload keeps them, a restart \
             starts from the config file (put them there to keep them)");
        self.keys.lock().expect("api settings lock").extend(changed);
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
        keys.retain(|key| {
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
        merged
    }
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
