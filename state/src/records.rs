//! The plain records the daemon stores, and how their compound fields are encoded in
//! SQLite columns. Nothing here touches a database.

/// A torrent's v1 info hash (SHA-1 of its `info` dictionary).
pub type InfoHash = [u8; 20];

/// Largest `.torrent` accepted by [`Write::Upsert`](crate::Write::Upsert): 64 MiB. Real
/// torrents are kilobytes to a few MiB; the cap keeps one bad caller from filling the
/// disk or the writer's memory, and stays well under SQLite's 1 GB blob limit.
pub const MAX_METAINFO_LEN: usize = 64 << 20;

/// One torrent's row in `torrents`: what the daemon needs to add it again after a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TorrentRecord {
    pub info_hash: InfoHash,
    /// The raw `.torrent` bytes, exactly as added (at most [`MAX_METAINFO_LEN`]).
    pub metainfo: Vec<u8>,
    pub name: String,
    /// The directory that holds the torrent's name (as `--data` on the CLI).
    pub save_path: String,
    pub category: Option<String>,
    /// Stored as a JSON array of strings, so a tag may hold any character, commas too.
    pub tags: Vec<String>,
    /// Unix seconds.
    pub added_at: i64,
    /// Unix seconds; `None` while incomplete.
    pub completed_at: Option<i64>,
    pub paused: bool,
    pub queue_position: i64,
    /// Per-torrent overrides as a JSON object; opaque to this crate, stored as given.
    pub settings: String,
    /// Payload bytes over the torrent's lifetime. Stored as SQLite's i64, saturating.
    pub uploaded: u64,
    pub downloaded: u64,
    /// The last error the daemon reported for this torrent, if it is stopped by one.
    pub error: Option<String>,
}

/// One row of `categories`: a qBittorrent-style category and where its torrents go by
/// default ("" = the daemon's download directory).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CategoryRecord {
    pub name: String,
    pub save_path: String,
}

/// One torrent's row in `resume`: what lets the daemon skip a full recheck.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeRecord {
    pub info_hash: InfoHash,
    pub piece_count: u32,
    /// Verified pieces, MSB-first as in BitTorrent's bitfield message: exactly
    /// `piece_count.div_ceil(8)` bytes.
    pub have: Vec<u8>,
    /// One stamp per file in metainfo order, taken when `have` was: a file whose size
    /// or mtime differs on restart must be rechecked.
    pub files: Vec<FileStamp>,
    /// Unix seconds.
    pub updated_at: i64,
}

/// A file's size and modification time, to tell whether it changed behind our back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    /// Nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

/// A torrent as read back at open: its record and, if any survived, its resume data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTorrent {
    pub record: TorrentRecord,
    pub resume: Option<ResumeRecord>,
}

/// Bytes per encoded [`FileStamp`]: size then mtime, both little-endian.
const STAMP_LEN: usize = 16;

/// Encodes file stamps as the `resume.files` BLOB: 16 bytes per file, `size` as u64
/// little-endian then `mtime_ns` as i64 little-endian. Fixed width keeps it trivially
/// decodable and 10k-file torrents small.
pub fn encode_files(files: &[FileStamp]) -> Vec<u8> {
    let mut out = Vec::with_capacity(files.len() * STAMP_LEN);
    for f in files {
        out.extend_from_slice(&f.size.to_le_bytes());
        out.extend_from_slice(&f.mtime_ns.to_le_bytes());
    }
    out
}

/// Decodes [`encode_files`]'s output; `None` if the length is not a multiple of 16.
pub fn decode_files(blob: &[u8]) -> Option<Vec<FileStamp>> {
    if blob.len() % STAMP_LEN != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(blob.len() / STAMP_LEN);
    for chunk in blob.chunks_exact(STAMP_LEN) {
        let (size, mtime) = chunk.split_at(8);
        out.push(FileStamp {
            size: u64::from_le_bytes(size.try_into().ok()?),
            mtime_ns: i64::from_le_bytes(mtime.try_into().ok()?),
        });
    }
    Some(out)
}

/// Why a bitfield does not fit its piece count, or `None` if it does: the length must be
/// exactly `piece_count.div_ceil(8)` and the spare low bits of the last byte zero (as
/// BEP 3 requires of the bitfield message), so a stored one can be sent as is.
pub fn bitfield_problem(piece_count: u32, have: &[u8]) -> Option<&'static str> {
    let want = piece_count.div_ceil(8) as usize;
    if have.len() != want {
        return Some("bitfield length does not match piece count");
    }
    let spare = (want * 8) as u64 - u64::from(piece_count);
    if spare > 0 {
        let last = have[want - 1];
        if last & ((1u8 << spare) - 1) != 0 {
            return Some("bitfield has spare bits set past the last piece");
        }
    }
    None
}

/// Encodes tags as a JSON array of strings.
pub fn encode_tags(tags: &[String]) -> String {
    serde_json::Value::from(tags.to_vec()).to_string()
}

/// Decodes [`encode_tags`]'s output; `None` unless it is a JSON array of strings.
pub fn decode_tags(text: &str) -> Option<Vec<String>> {
    match serde_json::from_str::<serde_json::Value>(text).ok()? {
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// u64 counters go in SQLite's signed INTEGER; real totals never reach 2^63.
pub(crate) fn u64_to_sql(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn files_round_trip(raw in proptest::collection::vec((any::<u64>(), any::<i64>()), 0..64)) {
            let files: Vec<FileStamp> =
                raw.into_iter().map(|(size, mtime_ns)| FileStamp { size, mtime_ns }).collect();
            let blob = encode_files(&files);
            prop_assert_eq!(blob.len(), files.len() * 16);
            prop_assert_eq!(decode_files(&blob), Some(files));
        }

        #[test]
        fn files_reject_ragged(blob in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(decode_files(&blob).is_some(), blob.len() % 16 == 0);
        }

        #[test]
        fn bitfield_of_pieces_is_accepted(bits in proptest::collection::vec(any::<bool>(), 0..300)) {
            // Build MSB-first, as a BitTorrent peer would.
            let mut have = vec![0u8; bits.len().div_ceil(8)];
            for (i, b) in bits.iter().enumerate() {
                if *b {
                    have[i / 8] |= 0x80 >> (i % 8);
                }
            }
            prop_assert_eq!(bitfield_problem(bits.len() as u32, &have), None);
            // One byte too many or too few is refused.
            let mut longer = have.clone();
            longer.push(0);
            prop_assert!(bitfield_problem(bits.len() as u32, &longer).is_some());
            if !have.is_empty() {
                prop_assert!(bitfield_problem(bits.len() as u32, &have[1..]).is_some());
            }
        }

        #[test]
        fn tags_round_trip(tags in proptest::collection::vec(".*", 0..8)) {
            prop_assert_eq!(decode_tags(&encode_tags(&tags)), Some(tags));
        }
    }

    #[test]
    fn spare_bits_are_refused() {
        assert_eq!(bitfield_problem(9, &[0xff, 0x80]), None);
        assert!(bitfield_problem(9, &[0xff, 0x40]).is_some());
        assert_eq!(bitfield_problem(0, &[]), None);
    }

    #[test]
    fn tags_reject_non_arrays() {
        assert_eq!(decode_tags("a,b"), None);
        assert_eq!(decode_tags("[1]"), None);
        assert_eq!(decode_tags("{}"), None);
    }
}
