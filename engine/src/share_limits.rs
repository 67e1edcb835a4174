//! Share limits: when a finished torrent has seeded enough, by ratio or by seeding time, and
//! what to do then (pause or remove it).
//!
//! Why: seedbox users set these globally, per category and per torrent. Each field resolves
//! independently, torrent first, then category, then global ([`ShareLimitSettings::resolve`]):
//! a torrent can set its own ratio yet inherit the seeding time. "No limit" must be
//! expressible at every level and override the level below, so a setting is a
//! [`Limit`] with three cases, as qBittorrent's -2 (use global) and -1 (no limit).
//!
//! Ratio, as Transmission computes it: uploaded / downloaded; for a torrent that downloaded
//! nothing (added complete, or verified from disk) uploaded / size of the verified data,
//! which for a complete torrent is its total size. With nothing to divide by, the ratio is
//! 0 if nothing was uploaded either and infinite otherwise.

use std::time::Duration;

/// One level's setting for one field.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Limit<T> {
    /// Use the level below (torrent → category → global). At the global level: no limit.
    #[default]
    Inherit,
    /// No limit, even if a lower level sets one.
    Unlimited,
    /// This limit.
    Value(T),
}

impl<T: Copy> Limit<T> {
    /// This level's setting if it makes one, else `below`.
    pub fn or(self, below: Limit<T>) -> Limit<T> {
        match self {
            Limit::Inherit => below,
            set => set,
        }
    }

    /// The limit in force, `None` for no limit.
    pub fn value(self) -> Option<T> {
        match self {
            Limit::Value(v) => Some(v),
            Limit::Inherit | Limit::Unlimited => None,
        }
    }
}

impl Limit<f64> {
    /// qBittorrent's encoding of a ratio limit: -2 inherit, -1 no limit, otherwise the value;
    /// other negatives and NaN read as no limit.
    pub fn from_qbittorrent_ratio(ratio: f64) -> Limit<f64> {
        if ratio == -2.0 {
            Limit::Inherit
        } else if ratio >= 0.0 {
            Limit::Value(ratio)
        } else {
            Limit::Unlimited
        }
    }
}

impl Limit<Duration> {
    /// qBittorrent's encoding of a seeding-time limit in minutes: -2 inherit, -1 (or any other
    /// negative) no limit.
    pub fn from_qbittorrent_minutes(minutes: i64) -> Limit<Duration> {
        match minutes {
            -2 => Limit::Inherit,
            m if m < 0 => Limit::Unlimited,
            m => Limit::Value(Duration::from_secs(m.unsigned_abs().saturating_mul(60))),
        }
    }
}

/// What to do with a torrent that reached a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShareAction {
    /// Stop seeding, keep the torrent and its data.
    #[default]
    Pause,
    /// Remove the torrent (its data stays on disk; deleting files is the caller's policy).
    Remove,
}

/// One level's share-limit settings (a torrent's, a category's or the global ones).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ShareLimitSettings {
    pub ratio: Limit<f64>,
    pub seeding_time: Limit<Duration>,
    /// `None`: use the level below; [`ShareAction::Pause`] if no level sets one.
    pub action: Option<ShareAction>,
}

impl ShareLimitSettings {
    /// The limits in force for a torrent: each field from the first level that sets it.
    pub fn resolve(
        torrent: &ShareLimitSettings,
        category: Option<&ShareLimitSettings>,
        global: &ShareLimitSettings,
    ) -> ShareLimits {
        let none = ShareLimitSettings::default();
        let category = category.unwrap_or(&none);
        ShareLimits {
            ratio: torrent.ratio.or(category.ratio).or(global.ratio).value(),
            seeding_time: torrent
                .seeding_time
                .or(category.seeding_time)
                .or(global.seeding_time)
                .value(),
            action: torrent
                .action
                .or(category.action)
                .or(global.action)
                .unwrap_or_default(),
        }
    }
}

/// The limits in force for one torrent; `None` = no limit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ShareLimits {
    /// Seed until uploaded / downloaded reaches this. NaN never triggers; negatives act as 0.
    pub ratio: Option<f64>,
    /// Seed for this long (time spent seeding, not time since added).
    pub seeding_time: Option<Duration>,
    pub action: ShareAction,
}

/// A torrent's transfer totals, as [`ShareLimits::reached`] reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShareStats {
    /// Payload bytes uploaded, ever.
    pub uploaded_bytes: u64,
    /// Payload bytes downloaded, ever.
    pub downloaded_bytes: u64,
    /// Bytes of verified data held (the total size, for a complete torrent): the ratio's
    /// denominator when nothing was downloaded.
    pub have_bytes: u64,
    /// Time spent seeding.
    pub seeding_time: Duration,
}

impl ShareStats {
    /// The share ratio; see the module docs.
    pub fn ratio(&self) -> f64 {
        let base = if self.downloaded_bytes > 0 {
            self.downloaded_bytes
        } else {
            self.have_bytes
        };
        match (self.uploaded_bytes, base) {
            (0, 0) => 0.0,
            (_, 0) => f64::INFINITY,
            (up, base) => up as f64 / base as f64,
        }
    }
}

/// Which limit a torrent reached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reason {
    Ratio {
        ratio: f64,
        limit: f64,
    },
    SeedingTime {
        seeding_time: Duration,
        limit: Duration,
    },
}

impl ShareLimits {
    /// The limit `stats` has reached, if any (ratio checked first); then apply
    /// [`action`](Self::action). Only meaningful for a torrent that is seeding.
    pub fn reached(&self, stats: &ShareStats) -> Option<Reason> {
        if let Some(limit) = self.ratio.filter(|r| !r.is_nan()) {
            let ratio = stats.ratio();
            if ratio >= limit.max(0.0) {
                return Some(Reason::Ratio { ratio, limit });
            }
        }
        match self.seeding_time {
            Some(limit) if stats.seeding_time >= limit => Some(Reason::SeedingTime {
                seeding_time: stats.seeding_time,
                limit,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn stats(up: u64, down: u64, have: u64, seeding_time: Duration) -> ShareStats {
        ShareStats {
            uploaded_bytes: up,
            downloaded_bytes: down,
            have_bytes: have,
            seeding_time,
        }
    }

    fn settings(ratio: Limit<f64>, seeding_time: Limit<Duration>) -> ShareLimitSettings {
        ShareLimitSettings {
            ratio,
            seeding_time,
            action: None,
        }
    }

    #[test]
    fn each_field_resolves_torrent_then_category_then_global() {
        let global = ShareLimitSettings {
            ratio: Limit::Value(2.0),
            seeding_time: Limit::Value(HOUR),
            action: Some(ShareAction::Remove),
        };
        let category = settings(Limit::Value(1.5), Limit::Inherit);
        let torrent = settings(Limit::Inherit, Limit::Value(2 * HOUR));
        let l = ShareLimitSettings::resolve(&torrent, Some(&category), &global);
        assert_eq!(
            l,
            ShareLimits {
                ratio: Some(1.5),
                seeding_time: Some(2 * HOUR),
                action: ShareAction::Remove
            }
        );
        let l = ShareLimitSettings::resolve(&ShareLimitSettings::default(), None, &global);
        assert_eq!((l.ratio, l.seeding_time), (Some(2.0), Some(HOUR)));
    }

    #[test]
    fn explicit_unlimited_overrides_lower_levels() {
        let global = settings(Limit::Value(2.0), Limit::Value(HOUR));
        let category = settings(Limit::Value(1.0), Limit::Unlimited);
        let torrent = settings(Limit::Unlimited, Limit::Inherit);
        let l = ShareLimitSettings::resolve(&torrent, Some(&category), &global);
        assert_eq!((l.ratio, l.seeding_time), (None, None));
        assert_eq!(l.action, ShareAction::Pause, "no level sets one: pause");
        let l = ShareLimitSettings::resolve(
            &ShareLimitSettings::default(),
            None,
            &ShareLimitSettings::default(),
        );
        assert_eq!(l, ShareLimits::default());
        assert_eq!(l.reached(&stats(u64::MAX, 1, 1, Duration::MAX)), None);
    }

    #[test]
    fn qbittorrent_sentinels() {
        assert_eq!(Limit::from_qbittorrent_ratio(-2.0), Limit::Inherit);
        assert_eq!(Limit::from_qbittorrent_ratio(-1.0), Limit::Unlimited);
        assert_eq!(Limit::from_qbittorrent_ratio(1.25), Limit::Value(1.25));
        assert_eq!(Limit::from_qbittorrent_ratio(f64::NAN), Limit::Unlimited);
        assert_eq!(Limit::from_qbittorrent_minutes(-2), Limit::Inherit);
        assert_eq!(Limit::from_qbittorrent_minutes(-1), Limit::Unlimited);
        assert_eq!(
            Limit::from_qbittorrent_minutes(90),
            Limit::Value(90 * 60 * Duration::from_secs(1))
        );
    }

    #[test]
    fn ratio_uses_size_when_nothing_was_downloaded() {
        assert_eq!(stats(300, 100, 1000, HOUR).ratio(), 3.0);
        // Added complete: 500 uploaded of a 1000-byte torrent.
        assert_eq!(stats(500, 0, 1000, HOUR).ratio(), 0.5);
        assert_eq!(stats(0, 0, 0, HOUR).ratio(), 0.0);
        assert_eq!(stats(1, 0, 0, HOUR).ratio(), f64::INFINITY);
    }

    #[test]
    fn reached_reports_the_limit_hit() {
        let l = ShareLimits {
            ratio: Some(2.0),
            seeding_time: Some(HOUR),
            action: ShareAction::Pause,
        };
        assert_eq!(l.reached(&stats(199, 100, 100, HOUR / 2)), None);
        assert_eq!(
            l.reached(&stats(200, 100, 100, HOUR / 2)),
            Some(Reason::Ratio {
                ratio: 2.0,
                limit: 2.0
            })
        );
        assert_eq!(
            l.reached(&stats(0, 100, 100, HOUR)),
            Some(Reason::SeedingTime {
                seeding_time: HOUR,
                limit: HOUR
            })
        );
        // Added complete and uploaded twice its size.
        assert!(matches!(
            l.reached(&stats(2000, 0, 1000, Duration::ZERO)),
            Some(Reason::Ratio { .. })
        ));
    }

    #[test]
    fn odd_ratio_limits_do_not_panic() {
        let zero = ShareLimits {
            ratio: Some(0.0),
            ..ShareLimits::default()
        };
        assert!(zero.reached(&stats(0, 100, 100, Duration::ZERO)).is_some());
        let nan = ShareLimits {
            ratio: Some(f64::NAN),
            ..ShareLimits::default()
        };
        assert_eq!(nan.reached(&stats(1 << 40, 1, 1, Duration::ZERO)), None);
        let negative = ShareLimits {
            ratio: Some(-3.0),
            ..ShareLimits::default()
        };
        assert!(negative.reached(&stats(0, 1, 1, Duration::ZERO)).is_some());
    }
}
