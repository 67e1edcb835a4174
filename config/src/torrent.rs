//! Per-torrent overrides, the top layer. The daemon stores and applies them;
//! this module only says how they combine with the global configuration.

use std::path::PathBuf;
use std::time::Duration;

use crate::schema::{ByteRate, Config, Preallocate, ShareAction, ShareLimits};

/// The settings one torrent may override; `None` means "as configured".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TorrentSettings {
    /// Picks the `[share.categories.NAME]` limits.
    pub category: Option<String>,
    pub download_dir: Option<PathBuf>,
    /// This torrent's own caps (0 = none of its own); the global
    /// `[limits]` caps still apply to all torrents together.
    pub upload_bytes_per_s: Option<ByteRate>,
    pub download_bytes_per_s: Option<ByteRate>,
    pub max_peers: Option<u32>,
    pub upload_slots: Option<u32>,
    /// `Some(None)` lifts the ratio limit for this torrent.
    pub ratio_limit: Option<Option<f64>>,
    /// `Some(None)` lifts the seeding time limit for this torrent.
    pub seeding_time_limit: Option<Option<Duration>>,
    pub share_action: Option<ShareAction>,
    pub preallocate: Option<Preallocate>,
}

/// What applies to one torrent after every layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Effective {
    pub download_dir: PathBuf,
    /// The torrent's own caps; [`ByteRate::UNLIMITED`] when it has none.
    pub upload_bytes_per_s: ByteRate,
    pub download_bytes_per_s: ByteRate,
    pub max_peers: u32,
    pub upload_slots: u32,
    /// Torrent override, else its category's table, else `[share]`.
    pub share: ShareLimits,
    pub preallocate: Preallocate,
}

impl TorrentSettings {
    pub fn resolve(&self, global: &Config) -> Effective {
        let category = global.share.for_category(self.category.as_deref());
        Effective {
            download_dir: self
                .download_dir
                .clone()
                .unwrap_or_else(|| global.daemon.download_dir.clone()),
            upload_bytes_per_s: self.upload_bytes_per_s.unwrap_or(ByteRate::UNLIMITED),
            download_bytes_per_s: self.download_bytes_per_s.unwrap_or(ByteRate::UNLIMITED),
            max_peers: self
                .max_peers
                .unwrap_or(global.limits.max_peers_per_torrent),
            upload_slots: self.upload_slots.unwrap_or(global.limits.upload_slots),
            share: ShareLimits {
                ratio_limit: self.ratio_limit.unwrap_or(category.ratio_limit),
                seeding_time_limit: self
                    .seeding_time_limit
                    .unwrap_or(category.seeding_time_limit),
                action: self.share_action.unwrap_or(category.action),
            },
            preallocate: self.preallocate.unwrap_or(global.storage.preallocate),
        }
    }
}
