//! What a torrent remembers about one web seed.

use std::collections::HashMap;
use std::time::Duration;

use super::{Backoff, WebSeedError};
use crate::picker::PeerKey;

/// A web seed as a front end shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebSeedState {
    /// May be asked for pieces (and may have requests in flight).
    Active,
    /// Failed; not asked again before `until`.
    BackingOff { until: Duration, error: String },
    /// Given up on for this torrent's run (bad data); its pieces went back to the picker.
    Dropped { reason: String },
}

/// One web seed of a torrent.
#[derive(Debug, Clone)]
pub struct WebSeed {
    pub url: String,
    /// Its key in the picker, outside the range peers get.
    pub key: PeerKey,
    pub(crate) backoff: Backoff,
    pub(crate) dropped: Option<WebSeedError>,
    pub(crate) last_error: Option<WebSeedError>,
    /// Pieces it sent that failed their hash.
    pub(crate) hash_failures: u32,
    /// It answered a range request with the whole file (200): ask for longer runs.
    pub(crate) ranges_ignored: bool,
    /// Bytes received of blocks not yet complete, by (piece, block index). Bounded by the
    /// blocks outstanding to it, which the picker bounds per run.
    pub(crate) partial: HashMap<(u32, u32), u32>,
    /// Piece payload it delivered that was wanted.
    pub(crate) downloaded: u64,
}

impl WebSeed {
    pub(crate) fn new(url: String, key: PeerKey) -> Self {
        WebSeed {
            url,
            key,
            backoff: Backoff::default(),
            dropped: None,
            last_error: None,
            hash_failures: 0,
            ranges_ignored: false,
            partial: HashMap::new(),
            downloaded: 0,
        }
    }

    pub fn state(&self, now: Duration) -> WebSeedState {
        if let Some(reason) = &self.dropped {
            return WebSeedState::Dropped {
                reason: reason.to_string(),
            };
        }
        match self.backoff.waiting(now) {
            Some(until) => WebSeedState::BackingOff {
                until,
                error: self
                    .last_error
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            },
            None => WebSeedState::Active,
        }
    }

    pub fn downloaded(&self) -> u64 {
        self.downloaded
    }

    /// Failures in a row since its last good response.
    pub fn failures(&self) -> u32 {
        self.backoff.failures()
    }
}
