//! The disk side of one torrent: the buffers pieces are being filled in, the reads in
//! flight (with whoever waits for each), the shard's piece cache and read-ahead budget
//! as this torrent uses them, and its storage, opened lazily.
//!
//! It knows bytes and pieces, not peers or the engine: what a piece is worth (its hash,
//! whether the engine wants it) is decided by the torrent.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use ccbt_engine::metainfo::{Layout, Metainfo};
use glommio::channels::local_channel::{self, LocalSender};
use glommio::io::DmaBuffer;

use super::buffers::{BufferPool, PieceBytes};
use super::cache::PieceCache;
use super::lazy_storage::LazyStorage;
use super::stats::{Held, ShardStats};
use super::storage::StorageError;

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
}

impl PieceIo {
    pub fn new(
        index: u32,
        meta: Arc<Metainfo>,
        storage: LazyStorage,
        cache: Rc<RefCell<PieceCache>>,
        pool: Rc<RefCell<BufferPool>>,
        stats: Arc<ShardStats>,
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
        }
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
    pub fn read_ahead(self: &Rc<Self>, pieces: Vec<u32>) {
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
