//! Checking a torrent's data on its own shard: the files are opened read-only beneath the
//! save directory and read with `pread` (not mapped: a file another process truncates
//! mid-check must make its pieces missing, not kill the daemon with SIGBUS), and pieces
//! are hashed in batches on the shard's helper thread, so the shard goes on serving its
//! other torrents' peers and its listener while a check runs.

use std::cell::Cell;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use ccbt_engine::metainfo::Metainfo;
use ccbt_engine::Bitfield;

use crate::beneath::Symlinks;
use crate::hashing::{hash_piece, PieceOutcome};
use crate::mapped::{MappedFiles, Reading};

use super::status::TorrentStatus;

/// Bytes hashed per trip to the helper thread: a cancel or a stop waits at most one batch.
const BATCH_BYTES: u64 = 32 << 20;
/// A torrent this small is checked on the shard itself: hashing it takes well under a
/// millisecond, less than the trips to the helper thread cost (a seedbox restoring
/// 100,000 small torrents would spend most of its check time on those trips).
const INLINE_BYTES: u64 = 1 << 20;

/// Hashes `pieces` (all of them when `None`) of the torrent under `save_dir`; returns the
/// good ones, or `None` if `cancelled` was set before the end. Progress goes to
/// `status.checked_pieces`. Missing and unreadable files make their pieces missing.
pub async fn check(
    meta: Arc<Metainfo>,
    save_dir: PathBuf,
    symlinks: Symlinks,
    pieces: Option<Vec<u32>>,
    status: &TorrentStatus,
    cancelled: &Cell<bool>,
    mut on_good: impl FnMut(u32),
) -> Option<Bitfield> {
    let count = meta.info.layout.piece_count();
    let pieces = pieces.unwrap_or_else(|| (0..count).collect());
    if meta.info.layout.total_length() <= INLINE_BYTES {
        let files =
            MappedFiles::open_beneath(&save_dir, &meta.info.layout, symlinks, Reading::Pread);
        let mut good = Bitfield::empty(count);
        for &index in &pieces {
            if is_good(&meta, &files, index) {
                good.set(index);
                on_good(index);
            }
        }
        status
            .checked_pieces
            .store(pieces.len() as u64, Ordering::Relaxed);
        return Some(good);
    }
    let opener = meta.clone();
    let files = Arc::new(
        glommio::executor()
            .spawn_blocking(move || {
                MappedFiles::open_beneath(&save_dir, &opener.info.layout, symlinks, Reading::Pread)
            })
            .await,
    );
    let per_batch = (BATCH_BYTES / u64::from(meta.info.layout.piece_length()).max(1)).max(1);
    let mut good = Bitfield::empty(count);
    status.checked_pieces.store(0, Ordering::Relaxed);
    for batch in pieces.chunks(per_batch as usize) {
        if cancelled.get() {
            return None;
        }
        let hashed = batch.len() as u64;
        let (meta, files, batch) = (meta.clone(), files.clone(), batch.to_vec());
        let found: Vec<u32> = glommio::executor()
            .spawn_blocking(move || {
                batch
                    .into_iter()
                    .filter(|&index| is_good(&meta, &files, index))
                    .collect()
            })
            .await;
        for index in found {
            good.set(index);
            on_good(index);
        }
        status.checked_pieces.fetch_add(hashed, Ordering::Relaxed);
    }
    Some(good)
}

/// Whether piece `index` is on disk and hashes as the torrent says.
fn is_good(meta: &Metainfo, files: &MappedFiles, index: u32) -> bool {
    let layout = &meta.info.layout;
    let Some(piece) = layout.piece(index) else {
        return false;
    };
    matches!(hash_piece(layout, files, piece),
        PieceOutcome::Hashed(got) if got == meta.info.piece_hash(piece))
}
