//! A torrent's files, opened at the first read when the torrent only seeds: ten thousand
//! idle seeds then hold no descriptors and no per-file state until a peer asks for a piece,
//! and the shard's [`FilePool`] closes the least recently read ones past its limit. A
//! torrent that downloads opens them at start, so a directory it cannot create or write is
//! reported at once, and keeps them while it runs.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use ccbt_engine::metainfo::Layout;

use super::file_pool::{FilePool, OpenSlot};
use super::storage::{Preallocate, Storage, StorageError};
use crate::beneath::Symlinks;

pub struct LazyStorage {
    open: Rc<OpenSlot>,
    /// Where to open from, for a storage not opened yet.
    save_dir: PathBuf,
    /// Whether that open follows symlinks inside the tree.
    symlinks: Symlinks,
    layout: Rc<Layout>,
    pool: Rc<FilePool>,
    /// The torrent's shard-local number, the pool's key.
    index: u32,
    /// Descriptors held pinned (files opened for a download), given back on drop.
    pinned: usize,
}

impl LazyStorage {
    /// Files already open, for a download: they stay open while it runs.
    pub fn opened(
        storage: Storage,
        save_dir: PathBuf,
        symlinks: Symlinks,
        layout: Rc<Layout>,
        pool: Rc<FilePool>,
        index: u32,
    ) -> Self {
        let pinned = storage.descriptors();
        pool.pinned(pinned);
        LazyStorage {
            open: Rc::new(RefCell::new(Some(Rc::new(storage)))),
            save_dir,
            symlinks,
            layout,
            pool,
            index,
            pinned,
        }
    }

    /// Complete files, opened read-only when first needed.
    pub fn on_demand(
        save_dir: PathBuf,
        symlinks: Symlinks,
        layout: Rc<Layout>,
        pool: Rc<FilePool>,
        index: u32,
    ) -> Self {
        LazyStorage {
            open: Rc::new(RefCell::new(None)),
            save_dir,
            symlinks,
            layout,
            pool,
            index,
            pinned: 0,
        }
    }

    /// The open files, opening them now if need be. Two first callers at once may both
    /// open; the first to finish is kept and the other's descriptors are closed.
    pub async fn get(&self) -> Result<Rc<Storage>, StorageError> {
        if let Some(open) = self.if_open() {
            if self.pinned == 0 {
                self.pool.touch(self.index);
            }
            return Ok(open);
        }
        let storage = Storage::open(
            &self.save_dir,
            self.symlinks,
            self.layout.clone(),
            false,
            Preallocate::Sparse,
        )
        .await?;
        let fds = storage.descriptors();
        let kept = {
            let mut open = self.open.borrow_mut();
            let fresh = open.is_none();
            (open.get_or_insert_with(|| Rc::new(storage)).clone(), fresh)
        };
        if kept.1 {
            self.pool.opened(self.index, fds, &self.open);
        }
        Ok(kept.0)
    }

    /// The directory that holds the torrent's name.
    pub fn save_dir(&self) -> &std::path::Path {
        &self.save_dir
    }

    /// The files if something opened them (nothing to sync otherwise).
    pub fn if_open(&self) -> Option<Rc<Storage>> {
        self.open.borrow().clone()
    }
}

impl Drop for LazyStorage {
    fn drop(&mut self) {
        if self.pinned > 0 {
            self.pool.unpinned(self.pinned);
        } else if self.open.borrow().is_some() {
            self.pool.closed(self.index);
        }
    }
}
