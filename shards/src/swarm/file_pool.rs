//! A bound on the descriptors a shard's seeding torrents keep open.
//!
//! A complete torrent opens its files at its first read (see `lazy_storage`); without a
//! bound, a seedbox that served each of 100,000 torrents once would hold every file of all
//! of them open. The pool counts the descriptors of each torrent's open files and, past
//! its limit, closes the least recently read torrent's files (they open again at its next
//! read). Files a read is using close when that read is done. Torrents that download keep
//! their files open for as long as they run (their writes must not reopen per piece): they
//! count toward the limit but are never closed by it; if they alone exceed it, that is
//! logged once.

use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};

use lru::LruCache;

use super::storage::Storage;

/// Where a torrent keeps its open files; the pool may empty it.
pub type OpenSlot = RefCell<Option<Rc<Storage>>>;

pub struct FilePool {
    limit: usize,
    /// Closable torrents, least recently read last, with their descriptor counts.
    closable: RefCell<LruCache<u32, (usize, Weak<OpenSlot>)>>,
    open: Cell<usize>,
    pinned: Cell<usize>,
    warned: Cell<bool>,
}

impl FilePool {
    /// At most `limit` descriptors (not counting pinned torrents' beyond it).
    pub fn new(limit: usize) -> FilePool {
        FilePool {
            limit: limit.max(1),
            closable: RefCell::new(LruCache::unbounded()),
            open: Cell::new(0),
            pinned: Cell::new(0),
            warned: Cell::new(false),
        }
    }

    /// Descriptors open now, closable or pinned.
    pub fn open(&self) -> usize {
        self.open.get() + self.pinned.get()
    }

    /// A downloading torrent opened `fds` descriptors it keeps until it stops.
    pub fn pinned(&self, fds: usize) {
        self.pinned.set(self.pinned.get() + fds);
        if self.pinned.get() > self.limit && !self.warned.replace(true) {
            tracing::warn!(
                open = self.pinned.get(),
                limit = self.limit,
                "downloading torrents alone hold more files open than open_files_per_shard"
            );
        }
        self.make_room();
    }

    pub fn unpinned(&self, fds: usize) {
        self.pinned.set(self.pinned.get().saturating_sub(fds));
    }

    /// Torrent `index` opened `fds` descriptors into `slot`, which the pool may close.
    pub fn opened(&self, index: u32, fds: usize, slot: &Rc<OpenSlot>) {
        if let Some((old, _)) = self
            .closable
            .borrow_mut()
            .put(index, (fds, Rc::downgrade(slot)))
        {
            self.open.set(self.open.get().saturating_sub(old));
        }
        self.open.set(self.open.get() + fds);
        self.make_room();
    }

    /// Torrent `index` read from its files: it is the last to be closed.
    pub fn touch(&self, index: u32) {
        self.closable.borrow_mut().promote(&index);
    }

    /// Torrent `index` closed its files itself (it stopped).
    pub fn closed(&self, index: u32) {
        if let Some((fds, _)) = self.closable.borrow_mut().pop(&index) {
            self.open.set(self.open.get().saturating_sub(fds));
        }
    }

    fn make_room(&self) {
        while self.open() > self.limit {
            let Some((index, (fds, slot))) = self.closable.borrow_mut().pop_lru() else {
                return;
            };
            self.open.set(self.open.get().saturating_sub(fds));
            if let Some(slot) = slot.upgrade() {
                tracing::trace!(torrent = index, fds, "closing an idle torrent's files");
                slot.borrow_mut().take();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_read_torrent_is_closed_past_the_limit() {
        let pool = FilePool::new(4);
        let slots: Vec<Rc<OpenSlot>> = (0..3).map(|_| Rc::new(RefCell::new(None))).collect();
        // Slots hold no real files here: the pool only empties them.
        pool.opened(0, 2, &slots[0]);
        pool.opened(1, 2, &slots[1]);
        assert_eq!(pool.open(), 4);
        pool.touch(0);
        pool.opened(2, 2, &slots[2]);
        // Torrent 1 was read least recently: its two descriptors went.
        assert_eq!(pool.open(), 4);
        assert!(pool.closable.borrow().contains(&0));
        assert!(!pool.closable.borrow().contains(&1));
        pool.closed(0);
        assert_eq!(pool.open(), 2);
        // Pinned (downloading) torrents count, and push the closable ones out.
        pool.pinned(4);
        assert_eq!(pool.open(), 4);
        assert!(pool.closable.borrow().is_empty());
        pool.unpinned(4);
        assert_eq!(pool.open(), 0);
    }
}
