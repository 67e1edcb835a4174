//! The JSON shapes of the native API (`/ccbt/v1/`), shared by the server that writes them
//! and the clients (`remote --url`, `top`) that read them, so the two cannot drift apart.
//!
//! Sizes are bytes, rates bytes per second, times Unix seconds unless a name says `_s`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One torrent in a listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Torrent {
    /// The info hash, 40 hex digits.
    pub hash: String,
    /// This run's small number for it (Transmission's `id`).
    pub id: u32,
    pub name: String,
    /// `checking`, `downloading`, `seeding`, `paused`, `queued`, `failed`, `stopped`.
    pub state: String,
    /// Verified share of the torrent, 0 to 1.
    pub progress: f64,
    pub size: u64,
    /// Bytes of the files not skipped.
    pub wanted_size: u64,
    pub have_bytes: u64,
    pub download_rate: u64,
    pub upload_rate: u64,
    pub peers: u64,
    /// Totals over every run.
    pub uploaded: u64,
    pub downloaded: u64,
    pub ratio: f64,
    pub error: Option<String>,
    pub error_kind: Option<String>,
    pub save_dir: String,
    pub category: Option<String>,
    pub tags: Vec<String>,
    /// The shard that owns it.
    pub shard: u16,
    pub added_at: i64,
    pub queue_position: u32,
}

/// `GET /ccbt/v1/torrents`, or with `?since=SEQ` what changed after an earlier answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorrentList {
    /// The catalog's sequence number this answer is of: the next `since`.
    pub seq: u64,
    /// Every torrent (`true`), or only those changed or added since (`false`). A `since`
    /// the daemon no longer has (or never gave) gets a full listing.
    #[serde(default = "yes")]
    pub full: bool,
    pub torrents: Vec<Torrent>,
    /// In an increment: the hashes of torrents removed since.
    #[serde(default)]
    pub removed: Vec<String>,
}

fn yes() -> bool {
    true
}

/// The parameters of `GET /ccbt/v1/torrents`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// The `seq` of an earlier answer: send only what changed after it.
    #[serde(default)]
    pub since: Option<u64>,
}

/// `GET /ccbt/v1/torrents/{hash}`: the listing's fields and more.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Details {
    #[serde(flatten)]
    pub torrent: Torrent,
    pub piece_count: u32,
    pub piece_length: u32,
    pub have_pieces: u64,
    pub private: bool,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    /// Announce URLs, tier by tier.
    pub trackers: Vec<Vec<String>>,
    pub completed_at: Option<i64>,
    pub seeding_s: u64,
    pub downloading_s: u64,
    pub files: Vec<File>,
    /// False when the shard did not say in time which pieces it has: the files' `done`
    /// is then missing.
    pub pieces_known: bool,
}

/// One file of a torrent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    pub index: usize,
    /// Relative to the save directory (the torrent's name first for a multi-file one).
    pub path: String,
    pub length: u64,
    /// -1 skip, 0 low, 1 normal, 2 high.
    pub priority: i8,
    /// Verified bytes of it, when known.
    pub done: Option<u64>,
}

/// `GET /ccbt/v1/shards`: one per shard, in shard order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub shard: u16,
    pub torrents: u64,
    pub peers: u64,
    pub download_rate: u64,
    pub upload_rate: u64,
}

/// `GET /ccbt/v1/stats`: the session as a whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// ccbt-uring's version.
    pub version: String,
    pub uptime_s: u64,
    pub shards: usize,
    pub torrents: u64,
    /// Torrents per state name.
    pub states: BTreeMap<String, u64>,
    pub peers: u64,
    pub download_rate: u64,
    pub upload_rate: u64,
    /// Totals over every run of every torrent still held.
    pub uploaded: u64,
    pub downloaded: u64,
}

/// `POST /ccbt/v1/torrents` with a JSON body; the raw-bytes form takes the same options
/// as query parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    /// The .torrent file, base64.
    pub metainfo: String,
    #[serde(default)]
    pub save_dir: Option<String>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The options of an add, as query parameters (`?paused=true&save_dir=...`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddQuery {
    #[serde(default)]
    pub save_dir: Option<String>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub category: Option<String>,
    /// Comma-separated.
    #[serde(default)]
    pub tags: Option<String>,
}

/// The answer to an add.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Added {
    pub hash: String,
    pub id: Option<u32>,
}

/// `DELETE /ccbt/v1/torrents/{hash}?delete_data=true`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveQuery {
    #[serde(default)]
    pub delete_data: bool,
}

/// The answer to a command that returns nothing else.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Done {
    pub ok: bool,
}

/// Every refusal: what went wrong, and a stable name for its kind (`unknown-torrent`,
/// `bad-torrent`, `duplicate`, `bad-request`, `unauthorized`, ... and the daemon's own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
    pub kind: String,
}

/// The commands `POST /ccbt/v1/torrents/{hash}/{action}` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Recheck,
    Reannounce,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::Pause,
        Action::Resume,
        Action::Recheck,
        Action::Reannounce,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Recheck => "recheck",
            Action::Reannounce => "reannounce",
        }
    }

    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }
}
