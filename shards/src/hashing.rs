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
        let read_ahead = Arc::new(ReadAhead::new(&layout));
        let shards = pool::spawn(config, move |_shard| {
            let (layout, data, progress, cursor, read_ahead) = (
                layout.clone(),
                data.clone(),
                progress.clone(),
                cursor.clone(),
                read_ahead.clone(),
            );
            async move {
                let mut outcomes = Vec::new();
                loop {
                    let first = cursor.fetch_add(claim, Ordering::Relaxed);
                    if first >= piece_count {
                        break;
                    }
                    let end = first.saturating_add(claim).min(piece_count);
                    read_ahead.reach_past(end, &layout, &data);
                    for index in first..end {
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

/// How far past the pieces being hashed the kernel is asked to have read. On a cold file
/// the mapping's own readahead keeps about one request in flight per shard, and the shards
/// wait for the disk in turn; asking for the next pieces early keeps enough reads queued
/// to run the disk at its sequential rate while both cores hash.
const READ_AHEAD_BYTES: u64 = 64 << 20;

/// The pieces below `requested` have been asked for (`MADV_WILLNEED`); shared by the
/// shards, so each piece is asked for once, by whichever shard moves the window first.
struct ReadAhead {
    requested: AtomicU32,
    window: u32,
}

impl ReadAhead {
    fn new(layout: &Layout) -> Self {
        let window = READ_AHEAD_BYTES / u64::from(layout.piece_length());
        Self {
            requested: AtomicU32::new(0),
            window: window.max(1) as u32,
        }
    }

    /// Asks for every piece up to [`READ_AHEAD_BYTES`] past piece `end` that nobody has
    /// asked for yet.
    fn reach_past(&self, end: u32, layout: &Layout, data: &MappedFiles) {
        let target = end.saturating_add(self.window).min(layout.piece_count());
        let from = self.requested.fetch_max(target, Ordering::Relaxed);
        for index in from..target {
            let piece = layout.piece(index).expect("index below piece count");
            for span in layout.piece_spans(piece) {
                data.will_need(&span);
            }
        }
    }
}

/// Hashes one piece across the files it spans.
pub fn hash_piece(layout: &Layout, data: &MappedFiles, piece: PieceIndex) -> PieceOutcome {
    static ZEROS: [u8; 16 << 10] = [0; 16 << 10];
    let mut hasher = Sha1::new();
    for span in layout.piece_spans(piece) {
        match data.span(&span) {
            SpanData::Bytes(bytes) => update_prefetching(&mut hasher, bytes),
            SpanData::Read(bytes) => hasher.update(&bytes),
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

/// Bytes hashed between prefetch batches, and how far ahead the batch reaches. Measured with
/// `examples/prefetch_probe.rs` (BENCHMARKS.md): page-cache pages are physically scattered
/// and the hardware prefetcher stops at every 4 KiB page, so without this one core hashes a
/// mapped file at about half the speed it hashes a cached buffer.
const PREFETCH_STEP_BYTES: usize = 1 << 10;
const PREFETCH_AHEAD_BYTES: usize = 8 << 10;

/// Hashes `bytes`, asking the CPU to load the cache lines [`PREFETCH_AHEAD_BYTES`] ahead of
/// the ones being hashed.
fn update_prefetching(hasher: &mut Sha1, bytes: &[u8]) {
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + PREFETCH_STEP_BYTES).min(bytes.len());
        let ahead = (at + PREFETCH_AHEAD_BYTES).min(bytes.len())
            ..(end + PREFETCH_AHEAD_BYTES).min(bytes.len());
        for line in ahead.step_by(64) {
            prefetch(&bytes[line]);
        }
        hasher.update(&bytes[at..end]);
        at = end;
    }
}

#[inline(always)]
fn prefetch(byte: &u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults and reads nothing into the program.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((byte as *const u8).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = byte;
}
