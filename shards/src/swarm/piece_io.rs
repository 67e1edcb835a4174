//! The disk side of one torrent: the buffers pieces are being filled in, the reads in
//! flight (with whoever waits for each), the shard's piece cache and read-ahead budget
//! as this torrent uses them, and its storage, opened lazily.
//!
//! It knows bytes and pieces, not peers or the engine: what a piece is worth (its hash,
//! whether the engine wants it) is decided by the torrent.

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::ops::Range;
use std::rc::Rc;
use std::sync::Arc;

use ccbt_engine::metainfo::{Layout, Metainfo};
use ccbt_engine::session::PeerKey;
use ccbt_engine::BlockRef;
use glommio::channels::local_channel::{self, LocalSender};
use glommio::io::DmaBuffer;
use lru::LruCache;

use super::buffers::{BufferPool, PieceBytes};
use super::cache::PieceCache;
use super::lazy_storage::LazyStorage;
use super::stats::{Held, ShardStats};
use super::storage::{ReadVia, ServeReads, StorageError};

/// Windows read for serving are widened to this (in piece offsets): a page, so they split
/// no page between two reads.
const WINDOW_ALIGN: u32 = 4096;

/// Requests scanned past the one being served when choosing what to read with it.
const WINDOW_SCAN: usize = 64;

/// Pieces a torrent remembers having read a window of, with the peer that asked (an LRU:
/// the least recent is forgotten past this). A second peer missing on one of them reads
/// the whole piece into the cache instead, for both and whoever comes next.
const RECENT_WINDOWS: usize = 256;

/// Bytes of a piece held to serve blocks from: the whole piece (from the cache, base 0) or
/// a window read for one send batch, `base` being the piece offset of its first byte.
#[derive(Clone)]
pub struct Served {
    pub piece: u32,
    pub bytes: Rc<PieceBytes>,
    pub base: u32,
}

impl Served {
    /// Where `block` lies in [`Served::bytes`], if it is of this piece and lies there whole.
    pub fn range_of(&self, block: BlockRef) -> Option<Range<usize>> {
        if block.piece != self.piece {
            return None;
        }
        let start = block.offset.checked_sub(self.base)? as usize;
        let end = start + block.len as usize;
        (end <= self.bytes.len()).then_some(start..end)
    }
}

/// The bytes of a piece to read for serving `first`: it and the requests of the same piece
/// among the next [`WINDOW_SCAN`] queued, as long as the run from the lowest to the highest
/// stays within `budget` bytes (the room left in the send batch; `first` is read whatever
/// it is), widened to [`WINDOW_ALIGN`] and cut at the piece's end.
pub fn read_window(
    first: BlockRef,
    queued: impl Iterator<Item = BlockRef>,
    budget: u32,
    piece_len: u32,
) -> Range<u32> {
    let mut start = first.offset;
    let mut end = first.offset.saturating_add(first.len);
    for block in queued.take(WINDOW_SCAN) {
        if block.piece != first.piece {
            continue;
        }
        let s = start.min(block.offset);
        let e = end.max(block.offset.saturating_add(block.len));
        if e - s <= budget {
            (start, end) = (s, e);
        }
    }
    let start = start / WINDOW_ALIGN * WINDOW_ALIGN;
    let end = end.next_multiple_of(WINDOW_ALIGN).min(piece_len);
    start.min(end)..end
}

pub struct PieceIo {
    /// Shard-local number of the torrent: its pieces' key in the shard's cache.
    index: u32,
    meta: Arc<Metainfo>,
    storage: LazyStorage,
    /// The shard's read cache, shared by its torrents.
    cache: Rc<RefCell<PieceCache>>,
    /// The shard's aligned buffers, backlog and read-ahead budget.
    pool: Rc<RefCell<BufferPool>>,
    /// Pieces being downloaded: blocks land in the aligned buffer each piece will be
    /// written from, until the piece is hashed.
    buffers: RefCell<HashMap<u32, DmaBuffer>>,
    /// Pieces being read from disk, with whoever waits for each.
    reads: RefCell<HashMap<u32, Vec<LocalSender<()>>>>,
    /// The shard's counters: disk latency and errors, cache hits and misses.
    stats: Arc<ShardStats>,
    /// How serving reads the disk.
    serve_reads: ServeReads,
    /// Pieces of which a window was read lately, and for whom (bounded LRU,
    /// [`RECENT_WINDOWS`]). Made at the first such read: `LruCache::new` allocates its
    /// whole table (about 8 KiB), which every idle torrent would otherwise hold.
    recent_windows: RefCell<Option<LruCache<u32, PeerKey>>>,
}

impl PieceIo {
    pub fn new(
        index: u32,
        meta: Arc<Metainfo>,
        storage: LazyStorage,
        cache: Rc<RefCell<PieceCache>>,
        pool: Rc<RefCell<BufferPool>>,
        stats: Arc<ShardStats>,
        serve_reads: ServeReads,
    ) -> Self {
        PieceIo {
            index,
            meta,
            storage,
            cache,
            pool,
            buffers: RefCell::new(HashMap::new()),
            reads: RefCell::new(HashMap::new()),
            stats,
            serve_reads,
            recent_windows: RefCell::new(None),
        }
    }

    /// Length of piece `piece`, if there is one.
    pub fn piece_len(&self, piece: u32) -> Option<u32> {
        let index = self.layout().piece(piece)?;
        Some(self.layout().piece_len(index))
    }

    /// Bytes to serve blocks of `piece` from, covering at least `window` (see
    /// [`read_window`]), for peer `peer`.
    ///
    /// A cached piece is served whole. Otherwise only the window is read, held by the
    /// caller's send batch alone and never cached, so a partial read can be served as no
    /// other range: a busy peer costs the shard its batch's bytes (about 256 KiB), not a
    /// whole piece. With direct reads, a piece another peer read a window of lately, or a
    /// window that is the whole piece, is read whole into the cache instead, which then
    /// serves everyone that asks for it.
    pub async fn serve_data(
        &self,
        piece: u32,
        window: Range<u32>,
        peer: PeerKey,
    ) -> Result<Served, StorageError> {
        let Some(piece_len) = self.piece_len(piece) else {
            return Ok(Served {
                piece,
                bytes: Rc::new(PieceBytes::Heap(Vec::new())),
                base: 0,
            });
        };
        let whole_read_running = self.reads.borrow().contains_key(&piece);
        let cached = self.cache.borrow().contains((self.index, piece));
        let via = match self.serve_reads {
            ServeReads::Direct => ReadVia::Direct,
            ServeReads::Buffered => ReadVia::Buffered,
            ServeReads::Auto => ReadVia::CachedOrDirect,
        };
        let shared = via == ReadVia::Direct && {
            let mut recent = self.recent_windows.borrow_mut();
            let recent = recent.get_or_insert_with(|| {
                LruCache::new(NonZeroUsize::new(RECENT_WINDOWS).expect("not zero"))
            });
            match recent.put(piece, peer) {
                Some(other) => other != peer,
                None => false,
            }
        };
        if cached || whole_read_running || shared || window == (0..piece_len) {
            let bytes = self.piece_data(piece).await?;
            return Ok(Served {
                piece,
                bytes,
                base: 0,
            });
        }
        self.stats.cache_miss();
        let read = match self.storage.get().await {
            Ok(storage) => {
                let began = std::time::Instant::now();
                let read = storage.read_range(piece, window.clone(), via).await;
                self.stats.disk_read.observe(began.elapsed());
                read
            }
            Err(e) => Err(e),
        };
        if read.is_err() {
            self.stats.disk_error();
        }
        Ok(Served {
            piece,
            bytes: Rc::new(read?),
            base: window.start,
        })
    }

    fn layout(&self) -> &Layout {
        &self.meta.info.layout
    }

    pub fn storage(&self) -> &LazyStorage {
        &self.storage
    }

    /// Copies a wanted block into its piece's buffer.
    pub fn store_block(&self, piece: u32, offset: u32, data: &[u8]) {
        let Some(index) = self.layout().piece(piece) else {
            return;
        };
        let len = self.layout().piece_len(index) as usize;
        let mut buffers = self.buffers.borrow_mut();
        let buf = buffers.entry(piece).or_insert_with(|| {
            let buf = self.pool.borrow_mut().take_direct(len);
            self.stats.hold(Held::PiecesInProgress, buf.len() as u64);
            buf
        });
        let dst = &mut buf.as_bytes_mut()[..len];
        if let Some(dst) = dst.get_mut(offset as usize..offset as usize + data.len()) {
            dst.copy_from_slice(data);
        }
    }

    /// Whether any piece is being filled.
    pub fn filling(&self) -> bool {
        !self.buffers.borrow().is_empty()
    }

    /// Takes out the buffer `piece` was filled in, to hash it.
    pub fn take_filled(&self, piece: u32) -> Option<DmaBuffer> {
        let buf = self.buffers.borrow_mut().remove(&piece)?;
        self.stats.release(Held::PiecesInProgress, buf.len() as u64);
        Some(buf)
    }

    /// A filled buffer whose piece is not kept (it failed its hash) goes back to the pool.
    pub fn discard(&self, buf: DmaBuffer) {
        self.pool.borrow_mut().give_direct(buf);
    }

    /// Counts a complete piece of `len` bytes in the shard's backlog until the returned
    /// guard is dropped.
    pub fn enter_backlog(&self, len: usize) -> InBacklog {
        InBacklog::enter(&self.pool, len)
    }

    /// Waits while the shard's pieces waiting for hashing and writing are over their
    /// limit, so readers stop taking in blocks the disk cannot keep up with.
    pub async fn backlog_room(&self) {
        BufferPool::backlog_room(&self.pool).await;
    }

    /// Writes a verified piece and keeps it in the cache.
    pub async fn write_piece(
        &self,
        piece: u32,
        buf: DmaBuffer,
        len: usize,
    ) -> Result<(), StorageError> {
        let direct = Rc::new(buf);
        let written = match self.storage.get().await {
            Ok(storage) => {
                let began = std::time::Instant::now();
                let written = storage.write_piece(piece, &direct, len).await;
                self.stats.disk_write.observe(began.elapsed());
                written
            }
            Err(e) => Err(e),
        };
        if written.is_err() {
            self.stats.disk_error();
        }
        written?;
        self.keep(piece, PieceBytes::Dma(direct, len));
        Ok(())
    }

    /// A piece to serve, from the cache or the disk. Several peers asking for the same piece
    /// share one read.
    pub async fn piece_data(&self, piece: u32) -> Result<Rc<PieceBytes>, StorageError> {
        loop {
            if let Some(hit) = self.cache.borrow_mut().get((self.index, piece)) {
                self.stats.cache_hit();
                return Ok(hit);
            }
            let waiting = {
                let mut reads = self.reads.borrow_mut();
                match reads.get_mut(&piece) {
                    Some(waiters) => {
                        let (tx, rx) = local_channel::new_bounded(1);
                        waiters.push(tx);
                        Some(rx)
                    }
                    None => {
                        reads.insert(piece, Vec::new());
                        None
                    }
                }
            };
            match waiting {
                // Someone else is reading it; look again once they are done.
                Some(rx) => {
                    rx.recv().await;
                }
                None => {
                    self.stats.cache_miss();
                    let read = match self.storage.get().await {
                        Ok(storage) => {
                            let began = std::time::Instant::now();
                            let read = storage.read_piece(piece).await;
                            self.stats.disk_read.observe(began.elapsed());
                            read
                        }
                        Err(e) => Err(e),
                    };
                    if read.is_err() {
                        self.stats.disk_error();
                    }
                    for waiter in self.reads.borrow_mut().remove(&piece).unwrap_or_default() {
                        let _ = waiter.try_send(());
                    }
                    return Ok(self.keep(piece, read?));
                }
            }
        }
    }

    /// Starts reading pieces a peer will want next, so serving does not wait on the disk for
    /// a piece that could have been read while the last one went out.
    ///
    /// Reads ahead only within the shard's read-ahead budget (a quarter of the cache):
    /// with hundreds of peers each on a piece of its own, unbounded read-ahead filled the
    /// cache with pieces evicted before they were sent, which were then read twice.
    ///
    /// Only [`ServeReads::Direct`] reads ahead: buffered reads have the kernel's read-ahead,
    /// and `auto` reads only what is asked.
    pub fn read_ahead(self: &Rc<Self>, pieces: Vec<u32>) {
        if self.serve_reads != ServeReads::Direct {
            return;
        }
        for piece in pieces {
            let cached = self.cache.borrow().contains((self.index, piece));
            if cached || self.reads.borrow().contains_key(&piece) {
                continue;
            }
            let Some(index) = self.layout().piece(piece) else {
                continue;
            };
            let len = self.layout().piece_len(index) as usize;
            if !self.pool.borrow_mut().read_ahead_start(len) {
                return;
            }
            let claim = ReadAheadClaim {
                pool: self.pool.clone(),
                len,
            };
            let io = self.clone();
            glommio::spawn_local(async move {
                let _ = io.piece_data(piece).await;
                drop(claim);
            })
            .detach();
        }
    }

    /// Puts a piece in the shard's cache; buffers it pushes out go back to the pool.
    fn keep(&self, piece: u32, data: PieceBytes) -> Rc<PieceBytes> {
        let data = Rc::new(data);
        let evicted = self
            .cache
            .borrow_mut()
            .insert((self.index, piece), data.clone());
        for old in evicted {
            // Unless a peer is still sending from it, the buffer is free again.
            if let Ok(PieceBytes::Dma(buf, _)) = Rc::try_unwrap(old) {
                if let Ok(buf) = Rc::try_unwrap(buf) {
                    self.pool.borrow_mut().give_direct(buf);
                }
            }
        }
        data
    }
}

/// Bytes of the shard's read-ahead budget a read holds until dropped (read, failed, or
/// its task dropped with the shard).
struct ReadAheadClaim {
    pool: Rc<RefCell<BufferPool>>,
    len: usize,
}

impl Drop for ReadAheadClaim {
    fn drop(&mut self) {
        self.pool.borrow_mut().read_ahead_done(self.len);
    }
}

/// A complete piece counted in the shard's backlog until dropped (written, failed or
/// abandoned).
pub struct InBacklog {
    pool: Rc<RefCell<BufferPool>>,
    len: usize,
}

impl InBacklog {
    fn enter(pool: &Rc<RefCell<BufferPool>>, len: usize) -> InBacklog {
        pool.borrow_mut().backlog_add(len);
        InBacklog {
            pool: pool.clone(),
            len,
        }
    }
}

impl Drop for InBacklog {
    fn drop(&mut self) {
        self.pool.borrow_mut().backlog_done(self.len);
    }
}

impl Drop for PieceIo {
    /// Pieces left half-filled (the torrent stopped) leave the in-progress gauge.
    fn drop(&mut self) {
        let held: usize = self.buffers.borrow().values().map(DmaBuffer::len).sum();
        self.stats.release(Held::PiecesInProgress, held as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K16: u32 = 16 << 10;

    fn b(piece: u32, offset: u32, len: u32) -> BlockRef {
        BlockRef { piece, offset, len }
    }

    #[test]
    fn a_window_takes_the_queued_blocks_of_its_piece_within_the_budget() {
        let queued = (1..40).map(|i| b(3, i * K16, K16));
        // 256 KiB of room: the first block and the next fifteen.
        assert_eq!(
            read_window(b(3, 0, K16), queued, 256 << 10, 1 << 20),
            0..256 << 10
        );
        // Other pieces' requests are passed over, not counted.
        let mixed = [
            b(4, 0, K16),
            b(3, K16, K16),
            b(9, 0, K16),
            b(3, 3 * K16, K16),
        ];
        assert_eq!(
            read_window(b(3, 0, K16), mixed.into_iter(), 256 << 10, 1 << 20),
            0..4 * K16
        );
    }

    #[test]
    fn the_first_block_is_read_whatever_the_budget() {
        let queued = [b(3, K16, K16)];
        assert_eq!(
            read_window(b(3, 5 * K16, K16), queued.into_iter(), 1, 1 << 20),
            5 * K16..6 * K16
        );
    }

    #[test]
    fn odd_offsets_widen_to_pages_and_stop_at_a_short_last_piece() {
        // A block at an odd offset (peers may ask for any range) in a 40 000-byte piece.
        let got = read_window(b(7, 1000, 3000), std::iter::empty(), 256 << 10, 40_000);
        assert_eq!(got, 0..4096);
        let got = read_window(b(7, 30_000, 10_000), std::iter::empty(), 256 << 10, 40_000);
        assert_eq!(
            got,
            28_672..40_000,
            "cut at the piece's end, not rounded past it"
        );
        assert!(got.start % WINDOW_ALIGN == 0);
    }

    #[test]
    fn requests_that_would_stretch_the_window_past_the_budget_are_left_out() {
        // Asked out of order, with a far one that alone would make the run 1 MiB long.
        let queued = [b(1, 2 * K16, K16), b(1, 63 * K16, K16), b(1, K16, K16)];
        assert_eq!(
            read_window(b(1, 0, K16), queued.into_iter(), 256 << 10, 1 << 20),
            0..3 * K16
        );
    }

    #[test]
    fn a_served_window_only_answers_for_the_blocks_it_holds() {
        let served = Served {
            piece: 0,
            bytes: Rc::new(PieceBytes::Heap(vec![0; 4 * K16 as usize])),
            base: 2 * K16,
        };
        assert_eq!(served.range_of(b(1, 2 * K16, K16)), None, "another piece");
        assert_eq!(served.range_of(b(0, 2 * K16, K16)), Some(0..K16 as usize));
        assert_eq!(
            served.range_of(b(0, 5 * K16, K16)),
            Some(3 * K16 as usize..4 * K16 as usize)
        );
        assert_eq!(served.range_of(b(0, K16, K16)), None, "before the window");
        assert_eq!(served.range_of(b(0, 6 * K16, K16)), None, "after it");
        assert_eq!(
            served.range_of(b(0, 5 * K16 + 1, K16)),
            None,
            "straddling its end"
        );
    }
}
