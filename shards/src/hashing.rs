//! Piece hashing spread over every shard.
//!
//! Shards claim batches of pieces from a shared atomic cursor, so a shard that meets
//! missing data (nothing to hash) simply claims more, and all cores stay busy to the end.
//! Each piece is hashed in place on the mapped file bytes — no copy — and a shard yields to
//! its executor between pieces so that, once shards also serve peers, a recheck cannot
//! starve them.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use ccbt_engine::hash::{Sha1, Sha1Digest};
use ccbt_engine::metainfo::{Layout, PieceIndex};

use crate::mapped::{MappedFiles, SpanData};
use crate::pool::{self, ShardConfig, ShardError, Shards};

/// What hashing one piece found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceOutcome {
    Hashed(Sha1Digest),
    /// Some of the piece's bytes are not on disk.
    Missing,
}

/// Counters a caller can read while a job runs (for a progress bar).
#[derive(Debug, Default)]
pub struct HashProgress {
    pub pieces_done: AtomicU32,
    /// Bytes actually hashed (missing pieces add nothing).
    pub bytes_hashed: AtomicU64,
}

/// Bytes one shard claims at a time: large enough that the shared cursor is touched rarely,
/// small enough that shards finish within a batch of each other.
const CLAIM_BYTES: u64 = 8 << 20;

/// A running hash job. Poll [`HashJob::is_finished`], then [`HashJob::join`].
pub struct HashJob {
    shards: Shards<Vec<(u32, PieceOutcome)>>,
    piece_count: u32,
}

impl HashJob {
    /// Starts hashing every piece of `layout` from `data` on `config.count` shards.
    pub fn start(
        config: &ShardConfig,
        layout: Arc<Layout>,
        data: Arc<MappedFiles>,
        progress: Arc<HashProgress>,
    ) -> Result<Self, ShardError> {
        let piece_count = layout.piece_count();
        let claim = claim_size(&layout, config.count);
        let cursor = Arc::new(AtomicU32::new(0));
        let shards = pool::spawn(config, move |_shard| {
            let (layout, data, progress, cursor) = (
                layout.clone(),
                data.clone(),
                progress.clone(),
                cursor.clone(),
            );
            async move {
                let mut outcomes = Vec::new();
                loop {
                    let first = cursor.fetch_add(claim, Ordering::Relaxed);
                    if first >= piece_count {
                        break;
                    }
                    for index in first..first.saturating_add(claim).min(piece_count) {
                        let piece = layout.piece(index).expect("index below piece count");
                        let outcome = hash_piece(&layout, &data, piece);
                        if let PieceOutcome::Hashed(_) = outcome {
                            let len = u64::from(layout.piece_len(piece));
                            progress.bytes_hashed.fetch_add(len, Ordering::Relaxed);
                        }
                        progress.pieces_done.fetch_add(1, Ordering::Relaxed);
                        outcomes.push((index, outcome));
                        glommio::yield_if_needed().await;
                    }
                }
                outcomes
            }
        })?;
        Ok(Self {
            shards,
            piece_count,
        })
    }

    pub fn is_finished(&self) -> bool {
        self.shards.is_finished()
    }

    /// Waits for the job and returns one outcome per piece, in piece order.
    pub fn join(self) -> Result<Vec<PieceOutcome>, ShardError> {
        let mut all = vec![PieceOutcome::Missing; self.piece_count as usize];
        let mut seen = 0usize;
        for shard in self.shards.join()? {
            for (index, outcome) in shard {
                all[index as usize] = outcome;
                seen += 1;
            }
        }
        assert_eq!(seen, all.len(), "every piece is hashed exactly once");
        Ok(all)
    }
}

/// Pieces per claim: about [`CLAIM_BYTES`], but at least eight claims per shard so the work
/// spreads even on small torrents.
fn claim_size(layout: &Layout, shards: usize) -> u32 {
    let by_bytes = (CLAIM_BYTES / u64::from(layout.piece_length())).max(1);
    let by_spread = u64::from(layout.piece_count()) / (shards as u64 * 8);
    by_bytes.min(by_spread).max(1) as u32
}

/// Hashes one piece across the files it spans.
pub fn hash_piece(layout: &Layout, data: &MappedFiles, piece: PieceIndex) -> PieceOutcome {
    static ZEROS: [u8; 16 << 10] = [0; 16 << 10];
    let mut hasher = Sha1::new();
    for span in layout.piece_spans(piece) {
        match data.span(&span) {
            SpanData::Bytes(bytes) => hasher.update(bytes),
            SpanData::Zeros(mut n) => {
                while n > 0 {
                    let chunk = n.min(ZEROS.len() as u32);
                    hasher.update(&ZEROS[..chunk as usize]);
                    n -= chunk;
                }
            }
            SpanData::Missing => return PieceOutcome::Missing,
        }
    }
    PieceOutcome::Hashed(hasher.finish())
}
