//! The native API's answers, built from the catalog's rows (never from a shard).

use std::collections::BTreeMap;
use std::time::Instant;

use ccbt_engine::metainfo::Layout;
use ccbt_engine::Bitfield;
use ccbt_shards::swarm::{shard_for, TorrentState};

use crate::daemon::catalog::{Changes, Row, Snapshot};
use crate::daemon::core::fault_kind;
use crate::native_api::wire;

/// A row's state as listings name it (`queued` for one waiting for a download slot).
pub fn state_name(row: &Row) -> &'static str {
    match row.live.state {
        TorrentState::Paused if row.fixed.queued => "queued",
        other => other.name(),
    }
}

pub fn torrent(row: &Row, shards: usize) -> wire::Torrent {
    let size = row.total_size();
    let have = row.have_bytes();
    let progress = if row.live.done && row.fixed.settings.priorities.is_empty() || size == 0 {
        1.0
    } else {
        have as f64 / size as f64
    };
    wire::Torrent {
        hash: row.info_hash.to_hex(),
        id: row.id,
        name: row.fixed.meta.info.name.display(),
        state: state_name(row).to_string(),
        progress,
        size,
        wanted_size: row.wanted_size(),
        have_bytes: have,
        download_rate: row.live.download_rate,
        upload_rate: row.live.upload_rate,
        peers: row.live.peers,
        uploaded: row.live.uploaded,
        downloaded: row.live.downloaded,
        ratio: row.ratio(),
        error: row.live.error.as_ref().map(|f| f.to_string()),
        error_kind: row.live.error.as_ref().map(|f| fault_kind(f).to_string()),
        save_dir: row.fixed.save_dir.display().to_string(),
        category: row.fixed.category.clone(),
        tags: row.fixed.tags.clone(),
        shard: shard_for(&row.info_hash, shards).0,
        added_at: row.fixed.added_at,
        queue_position: row.fixed.queue_position,
    }
}

pub fn list(snapshot: &Snapshot, shards: usize) -> wire::TorrentList {
    wire::TorrentList {
        seq: snapshot.seq,
        full: true,
        torrents: snapshot.rows.iter().map(|r| torrent(r, shards)).collect(),
        removed: Vec::new(),
    }
}

/// What changed since an earlier listing: its cost follows the number of changes.
pub fn increment(changes: &Changes, shards: usize) -> wire::TorrentList {
    wire::TorrentList {
        seq: changes.seq,
        full: false,
        torrents: changes.changed.iter().map(|r| torrent(r, shards)).collect(),
        removed: changes.removed.iter().map(|(h, _)| h.to_hex()).collect(),
    }
}

/// One torrent in full; `pieces` is its have-bitfield when the shard answered in time.
pub fn details(row: &Row, shards: usize, pieces: Option<&Bitfield>, now: Instant) -> wire::Details {
    let meta = &row.fixed.meta;
    let layout = &meta.info.layout;
    let mut trackers = meta.announce_list.clone();
    if trackers.is_empty() {
        trackers.extend(meta.announce.clone().map(|a| vec![a]));
    }
    let files = layout
        .files()
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.pad)
        .map(|(index, f)| wire::File {
            index,
            path: f.path.display(),
            length: f.length,
            priority: row
                .fixed
                .settings
                .priorities
                .get(index)
                .copied()
                .unwrap_or(1),
            done: pieces.map(|have| file_done(layout, index, have)),
        })
        .collect();
    wire::Details {
        torrent: torrent(row, shards),
        piece_count: layout.piece_count(),
        piece_length: layout.piece_length(),
        have_pieces: row.live.have_pieces,
        private: meta.info.private,
        comment: meta.comment.clone(),
        created_by: meta.created_by.clone(),
        trackers,
        completed_at: row.fixed.completed_at,
        seeding_s: row.live.seeding.seconds(now),
        downloading_s: row.live.downloading.seconds(now),
        files,
        pieces_known: pieces.is_some(),
    }
}

/// Verified bytes of file `index`: its overlap with each piece the bitfield has.
pub fn file_done(layout: &Layout, index: usize, have: &Bitfield) -> u64 {
    let Some(file) = layout.files().get(index) else {
        return 0;
    };
    let (start, end) = (file.offset, file.offset + file.length);
    let piece_length = u64::from(layout.piece_length());
    layout
        .file_pieces(index)
        .filter(|&p| p < have.len() && have.get(p))
        .map(|p| {
            let piece_start = u64::from(p) * piece_length;
            let piece_end = (piece_start + piece_length).min(layout.total_length());
            end.min(piece_end).saturating_sub(start.max(piece_start))
        })
        .sum()
}

/// Torrents, peers and rates per shard, every shard listed (an idle one with zeros).
pub fn shards(snapshot: &Snapshot, shards: usize) -> Vec<wire::Shard> {
    let mut out: Vec<wire::Shard> = (0..shards.max(1))
        .map(|i| wire::Shard {
            shard: i as u16,
            ..wire::Shard::default()
        })
        .collect();
    for row in &snapshot.rows {
        let s = &mut out[usize::from(shard_for(&row.info_hash, shards).0)];
        s.torrents += 1;
        s.peers += row.live.peers;
        s.download_rate += row.live.download_rate;
        s.upload_rate += row.live.upload_rate;
    }
    out
}

pub fn stats(snapshot: &Snapshot, shards: usize, uptime_s: u64) -> wire::Stats {
    let mut states = BTreeMap::new();
    let mut stats = wire::Stats {
        version: env!("CARGO_PKG_VERSION").to_string(),
        uptime_s,
        shards,
        torrents: snapshot.rows.len() as u64,
        ..wire::Stats::default()
    };
    for row in &snapshot.rows {
        *states.entry(state_name(row).to_string()).or_insert(0) += 1;
        stats.peers += row.live.peers;
        stats.download_rate += row.live.download_rate;
        stats.upload_rate += row.live.upload_rate;
        stats.uploaded += row.live.uploaded;
        stats.downloaded += row.live.downloaded;
    }
    stats.states = states;
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccbt_engine::metainfo::{LayoutFile, TorrentPath};

    /// Files of 10, 25 and 5 bytes in 16-byte pieces: pieces 0 [0,16), 1 [16,32),
    /// 2 [32,40). File a is in piece 0; b spans 0-1; c is in piece 2.
    fn layout() -> Layout {
        let file = |name: &str, length| LayoutFile {
            path: TorrentPath::new([name]).unwrap(),
            length,
            pad: false,
        };
        Layout::new(16, [file("a", 10), file("b", 25), file("c", 5)]).unwrap()
    }

    #[test]
    fn a_files_progress_counts_only_its_bytes_of_the_pieces_had() {
        let layout = layout();
        let mut have = Bitfield::empty(3);
        assert_eq!(
            (0..3)
                .map(|i| file_done(&layout, i, &have))
                .collect::<Vec<_>>(),
            [0, 0, 0]
        );
        have.set(1);
        // b has [16,32) = 16 of its 25 bytes; a and c nothing.
        assert_eq!(
            (0..3)
                .map(|i| file_done(&layout, i, &have))
                .collect::<Vec<_>>(),
            [0, 16, 0]
        );
        have.set(0);
        have.set(2);
        assert_eq!(
            (0..3)
                .map(|i| file_done(&layout, i, &have))
                .collect::<Vec<_>>(),
            [10, 25, 5]
        );
        assert_eq!(file_done(&layout, 9, &have), 0, "no such file");
        // A bitfield shorter than the torrent (it never is) counts what it covers.
        assert_eq!(file_done(&layout, 2, &Bitfield::full(2)), 0);
    }
}
