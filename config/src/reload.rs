//! Hot reload: one thread polls the config file's identity (inode, size,
//! mtime, ctime) and reloads when it changes. Polling beats inotify here:
//! editors replace files by rename, the file may not exist yet, and four
//! stat calls a few times a second cost nothing.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::diagnostics::Diagnostic;
use crate::layers::{load, watched_files, Loaded, Sources};

/// How often the file is looked at. A change is reported after two equal
/// looks (so a half-written file is not read), well within a second.
const POLL: Duration = Duration::from_millis(200);

type Identity = Vec<Option<(u64, u64, u64, i64, i64, i64, i64)>>;

fn identity(files: &[PathBuf]) -> Identity {
    files
        .iter()
        .map(|path| {
            let m = std::fs::metadata(path).ok()?;
            Some((
                m.dev(),
                m.ino(),
                m.size(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            ))
        })
        .collect()
}

/// Watches the config and reports each reload. Dropping it stops the thread.
pub struct Reloader {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Reloader {
    /// Starts watching the files `sources` may load from. `on_change` runs on
    /// the reloader's thread with the new configuration, or with the problems
    /// (the caller keeps its last good configuration then). It is not called
    /// for the initial state: the caller loads that itself.
    pub fn spawn<F>(sources: Sources, on_change: F) -> Reloader
    where
        F: Fn(Result<Loaded, Vec<Diagnostic>>) + Send + 'static,
    {
        // One slot: a reload request while one is pending is the same request.
        let (wake, requests) = mpsc::sync_channel::<()>(1);
        // Looked at before returning, so an edit right after `spawn` counts.
        let files = watched_files(&sources);
        let mut seen = identity(&files);
        let thread = std::thread::Builder::new()
            .name("ccbt-config-reload".to_string())
            .spawn(move || {
                let reload = || on_change(load(&sources).map_err(|e| e.into_diagnostics()));
                let mut pending: Option<Identity> = None;
                loop {
                    match requests.recv_timeout(POLL) {
                        Ok(()) => {
                            seen = identity(&files);
                            pending = None;
                            reload();
                        }
                        Err(RecvTimeoutError::Timeout) => {
                            let now = identity(&files);
                            if now == seen {
                                pending = None;
                            } else if pending.as_ref() == Some(&now) {
                                seen = now;
                                pending = None;
                                reload();
                            } else {
                                pending = Some(now);
                            }
                        }
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .expect("spawning the config reload thread");
        Reloader {
            wake: Some(wake),
            thread: Some(thread),
        }
    }

    /// Reloads now whether or not the file changed (SIGHUP).
    pub fn reload_now(&self) {
        if let Some(wake) = &self.wake {
            match wake.try_send(()) {
                Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
            }
        }
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        drop(self.wake.take());
        if let Some(thread) = self.thread.take() {
            // A panic in `on_change` has already been reported by the thread.
            let _ = thread.join();
        }
    }
}
