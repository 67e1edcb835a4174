//! The daemon's categories and tags as things of their own (qBittorrent's model): a
//! category has a name and a default save path and exists before any torrent is in it; a
//! tag exists once created, even on no torrent. Torrents hold names only (their
//! `category` and `tags`); this keeps the lists, stored in the state database's
//! `categories` and `tags` tables so they survive a restart.
//!
//! Bounds: at most [`MAX_CATEGORIES`] categories and [`MAX_TAGS`] tags, names at most
//! [`MAX_NAME_LEN`] bytes; past a bound a create is refused with [`LabelError::Full`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use ccbt_state::{CategoryRecord, StateWriter, Write, WriteError};
use thiserror::Error;

pub const MAX_CATEGORIES: usize = 10_000;
pub const MAX_TAGS: usize = 10_000;
pub const MAX_NAME_LEN: usize = 255;

/// How long a label change waits for room in the state writer's queue.
const STATE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum LabelError {
    #[error("invalid category name {0:?}")]
    BadCategory(String),
    #[error("invalid tag name {0:?}")]
    BadTag(String),
    #[error("category {0:?} already exists")]
    Exists(String),
    #[error("no category {0:?}")]
    Missing(String),
    #[error("too many {0} (at most {1})")]
    Full(&'static str, usize),
    #[error("the state database did not take the change: {0}")]
    State(#[from] WriteError),
}

/// A category's name and default save path ("" = the download directory).
pub type Categories = BTreeMap<String, String>;

pub struct Labels {
    state: StateWriter,
    categories: Mutex<Categories>,
    tags: Mutex<BTreeSet<String>>,
}

/// qBittorrent's rule: not empty, no leading or trailing `/`, no `//` (a `/` makes
/// subcategories); we also refuse control characters and overlong names.
pub fn valid_category(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !name.contains("//")
        && !name.chars().any(char::is_control)
}

/// A tag: not blank, no comma (the APIs pass tag lists comma-separated).
pub fn valid_tag(name: &str) -> bool {
    !name.trim().is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.contains(',')
        && !name.chars().any(char::is_control)
}

impl Labels {
    pub fn new(state: StateWriter) -> Labels {
        Labels {
            state,
            categories: Mutex::default(),
            tags: Mutex::default(),
        }
    }

    /// What the state database held at start-up.
    pub fn restore(&self, categories: Vec<CategoryRecord>, tags: Vec<String>) {
        let mut c = self.categories.lock().expect("categories lock");
        for r in categories.into_iter().take(MAX_CATEGORIES) {
            c.insert(r.name, r.save_path);
        }
        let mut t = self.tags.lock().expect("tags lock");
        t.extend(tags.into_iter().take(MAX_TAGS));
    }

    pub fn categories(&self) -> Categories {
        self.categories.lock().expect("categories lock").clone()
    }

    pub fn category(&self, name: &str) -> Option<String> {
        self.categories
            .lock()
            .expect("categories lock")
            .get(name)
            .cloned()
    }

    pub fn tags(&self) -> Vec<String> {
        self.tags
            .lock()
            .expect("tags lock")
            .iter()
            .cloned()
            .collect()
    }

    fn record(&self, write: Write) -> Result<(), LabelError> {
        Ok(self.state.write_blocking(write, STATE_WRITE_TIMEOUT)?)
    }

    /// Creates a category; `must_be_new` refuses one that exists (createCategory), else an
    /// existing one is left as it is (a torrent added with a category not yet known).
    pub fn create_category(
        &self,
        name: &str,
        save_path: &str,
        must_be_new: bool,
    ) -> Result<(), LabelError> {
        if !valid_category(name) {
            return Err(LabelError::BadCategory(name.into()));
        }
        {
            let mut c = self.categories.lock().expect("categories lock");
            if c.contains_key(name) {
                return if must_be_new {
                    Err(LabelError::Exists(name.into()))
                } else {
                    Ok(())
                };
            }
            if c.len() >= MAX_CATEGORIES {
                return Err(LabelError::Full("categories", MAX_CATEGORIES));
            }
            c.insert(name.into(), save_path.into());
        }
        self.record(Write::SetCategory(CategoryRecord {
            name: name.into(),
            save_path: save_path.into(),
        }))
    }

    /// A new save path for an existing category.
    pub fn edit_category(&self, name: &str, save_path: &str) -> Result<(), LabelError> {
        {
            let mut c = self.categories.lock().expect("categories lock");
            let Some(path) = c.get_mut(name) else {
                return Err(LabelError::Missing(name.into()));
            };
            *path = save_path.into();
        }
        self.record(Write::SetCategory(CategoryRecord {
            name: name.into(),
            save_path: save_path.into(),
        }))
    }

    /// Forgets the category; whether it existed.
    pub fn remove_category(&self, name: &str) -> Result<bool, LabelError> {
        let existed = self
            .categories
            .lock()
            .expect("categories lock")
            .remove(name)
            .is_some();
        if existed {
            self.record(Write::RemoveCategory(name.into()))?;
        }
        Ok(existed)
    }

    /// Creates the tags not yet known.
    pub fn create_tags(&self, names: &[String]) -> Result<(), LabelError> {
        if let Some(bad) = names.iter().find(|n| !valid_tag(n)) {
            return Err(LabelError::BadTag(bad.clone()));
        }
        let new: Vec<String> = {
            let mut t = self.tags.lock().expect("tags lock");
            let new: Vec<String> = names
                .iter()
                .filter(|n| !t.contains(n.as_str()))
                .cloned()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if t.len() + new.len() > MAX_TAGS {
                return Err(LabelError::Full("tags", MAX_TAGS));
            }
            t.extend(new.iter().cloned());
            new
        };
        for name in new {
            self.record(Write::AddTag(name))?;
        }
        Ok(())
    }

    pub fn delete_tags(&self, names: &[String]) -> Result<(), LabelError> {
        let gone: Vec<String> = {
            let mut t = self.tags.lock().expect("tags lock");
            names
                .iter()
                .filter(|n| t.remove(n.as_str()))
                .cloned()
                .collect()
        };
        for name in gone {
            self.record(Write::RemoveTag(name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_names_follow_qbittorrent() {
        assert!(valid_category("tv"));
        assert!(valid_category("tv/anime"));
        assert!(!valid_category(""));
        assert!(!valid_category("/tv"));
        assert!(!valid_category("tv/"));
        assert!(!valid_category("tv//anime"));
        assert!(!valid_category("tv\nx"));
        assert!(!valid_category(&"x".repeat(MAX_NAME_LEN + 1)));
    }

    #[test]
    fn tag_names_cannot_hold_a_comma() {
        assert!(valid_tag("hd"));
        assert!(valid_tag("1080p remux"));
        assert!(!valid_tag("a,b"));
        assert!(!valid_tag("  "));
    }
}
