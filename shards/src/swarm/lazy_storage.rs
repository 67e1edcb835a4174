//! A torrent's files, opened at the first read when the torrent only seeds: ten thousand
//! idle seeds then hold no descriptors and no per-file state until a peer asks for a piece.
//! A torrent that downloads opens them at start, so a directory it cannot create or write is
//! reported at once.

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use ccbt_engine::metainfo::Layout;

use super::storage::{Preallocate, Storage, StorageError};

pub struct LazyStorage {
    open: RefCell<Option<Rc<Storage>>>,
    /// Where to open from, for a storage not opened yet.
    save_dir: PathBuf,
    layout: Rc<Layout>,
}

impl LazyStorage {
    /// Files already open.
    pub fn opened(storage: Storage, save_dir: PathBuf, layout: Rc<Layout>) -> Self {
        LazyStorage {
            open: RefCell::new(Some(Rc::new(storage))),
            save_dir,
            layout,
        }
    }

    /// Complete files, opened read-only when first needed.
    pub fn on_demand(save_dir: PathBuf, layout: Rc<Layout>) -> Self {
        LazyStorage {
            open: RefCell::new(None),
            save_dir,
            layout,
        }
    }

    /// The open files, opening them now if need be. Two first callers at once may both
    /// open; the first to finish is kept and the other's descriptors are closed.
    pub async fn get(&self) -> Result<Rc<Storage>, StorageError> {
        if let Some(open) = self.if_open() {
            return Ok(open);
        }
        let storage = Storage::open(
            &self.save_dir,
            self.layout.clone(),
            false,
            Preallocate::Sparse,
        )
        .await?;
        let mut open = self.open.borrow_mut();
        Ok(open.get_or_insert_with(|| Rc::new(storage)).clone())
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
