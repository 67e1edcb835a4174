//! Watch folders: a `.torrent` (or a `.magnet` file holding a magnet link) dropped into
//! one is added (to the default download directory) and then moved to `added/` beside it, or to `failed/` with the reason in a
//! `.error` file, so the folder shows at a glance what happened to each file.
//!
//! The folders are looked at every [`SCAN_EVERY`]. A file is taken only once its size and
//! mtime have held still for a whole scan, so one still being written is not read half
//! way. At most [`FILES_PER_SCAN`] files are taken per folder and scan.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::control::read_torrent;
use super::core::{AddRequest, Daemon};
use super::magnets::Source;

pub const SCAN_EVERY: Duration = Duration::from_secs(1);
const FILES_PER_SCAN: usize = 1000;

/// The folders to watch; the config reload replaces them.
pub type Folders = Arc<Mutex<Vec<PathBuf>>>;

pub fn spawn(
    daemon: Arc<Daemon>,
    folders: Folders,
    stop: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || {
            // What each candidate looked like at the last scan.
            let mut seen: HashMap<PathBuf, (u64, SystemTime)> = HashMap::new();
            while !stop.load(Ordering::Relaxed) {
                let dirs = folders.lock().expect("watch folders lock").clone();
                let mut still_there = HashMap::new();
                for dir in &dirs {
                    scan(&daemon, dir, &mut seen, &mut still_there);
                }
                seen = still_there;
                std::thread::sleep(SCAN_EVERY);
            }
        })
}

fn scan(
    daemon: &Daemon,
    dir: &Path,
    seen: &mut HashMap<PathBuf, (u64, SystemTime)>,
    still_there: &mut HashMap<PathBuf, (u64, SystemTime)>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten().take(FILES_PER_SCAN) {
        let path = entry.path();
        if path
            .extension()
            .is_none_or(|x| x != "torrent" && x != "magnet")
        {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let stamp = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        );
        if seen.get(&path) != Some(&stamp) {
            still_there.insert(path, stamp);
            continue;
        }
        take(daemon, dir, &path);
    }
}

fn take(daemon: &Daemon, dir: &Path, path: &Path) {
    let added = read_torrent(path).and_then(|bytes| {
        daemon.add(AddRequest {
            source: Source::from_bytes(bytes),
            save_dir: None,
            paused: false,
            category: None,
            tags: Vec::new(),
        })
    });
    let Some(name) = path.file_name() else { return };
    match added {
        Ok(hash) => {
            tracing::info!(file = %path.display(), torrent = %hash, "added from the watch folder");
            move_into(path, &dir.join("added"), name);
        }
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "watch folder file refused");
            let failed = dir.join("failed");
            if let Some(moved) = move_into(path, &failed, name) {
                let mut error = moved.into_os_string();
                error.push(".error");
                let _ = std::fs::write(PathBuf::from(error), format!("{e}\n"));
            }
        }
    }
}

/// Moves `path` into `to/` (made if need be), under a fresh name if one is taken.
fn move_into(path: &Path, to: &Path, name: &std::ffi::OsStr) -> Option<PathBuf> {
    if let Err(e) = std::fs::create_dir_all(to) {
        tracing::warn!(dir = %to.display(), error = %e, "cannot make the watch folder's subfolder");
        return None;
    }
    let mut target = to.join(name);
    let mut n = 1;
    while target.exists() {
        let mut alt = name.to_os_string();
        alt.push(format!(".{n}"));
        target = to.join(alt);
        n += 1;
    }
    match std::fs::rename(path, &target) {
        Ok(()) => Some(target),
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot move a watch folder file");
            None
        }
    }
}
