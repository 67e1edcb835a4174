//! What happened in the daemon, for people and programs: a bounded log of recent events
//! (added, checked, completed, error, removed, tracker error, peer banned) that APIs read
//! by sequence number, and hooks that run a program when a torrent completes or fails.
//!
//! Bounds: the log keeps the last [`LOG_LEN`] events (a reader that falls further behind
//! sees a gap in the sequence numbers); at most `hooks.max_running` hook programs run at
//! once, at most [`HOOKS_WAITING_MAX`] more wait (past that a hook is skipped and logged),
//! and each is killed after `hooks.timeout_s`.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub const LOG_LEN: usize = 10_000;
const HOOKS_WAITING_MAX: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    Added,
    Checked,
    Completed,
    Error,
    Removed,
    TrackerError,
    PeerBanned,
    /// A magnet link's metadata was fetched and the torrent kept.
    MetadataFetched,
}

#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub seq: u64,
    /// Unix seconds.
    pub at: i64,
    pub kind: EventKind,
    pub hash: String,
    pub detail: Option<String>,
}

/// The last [`LOG_LEN`] events, and a wake-up for readers that wait for the next one.
pub struct EventLog {
    inner: Mutex<(u64, VecDeque<Event>)>,
    /// The latest sequence number, sent after each push: a waiting reader (the event
    /// stream) wakes once per change instead of polling.
    latest: tokio::sync::watch::Sender<u64>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            inner: Mutex::default(),
            latest: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// Events read after a sequence number.
#[derive(Debug, Default)]
pub struct Batch {
    /// Oldest first.
    pub events: Vec<Event>,
    /// Events after the asked-for number that the log no longer keeps (the reader fell
    /// further behind than [`LOG_LEN`]); they would have come before `events`.
    pub missed: u64,
}

impl EventLog {
    /// A receiver that sees the latest sequence number change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.latest.subscribe()
    }

    /// Events after `seq`, at most `max`, and how many after it are lost. Sequence
    /// numbers are contiguous in the log, so this costs what it returns.
    pub fn after(&self, seq: u64, max: usize) -> Batch {
        let inner = self.inner.lock().expect("event log lock");
        let Some(first) = inner.1.front().map(|e| e.seq) else {
            return Batch::default();
        };
        let skip = usize::try_from((seq + 1).saturating_sub(first)).unwrap_or(usize::MAX);
        Batch {
            events: inner.1.iter().skip(skip).take(max).cloned().collect(),
            missed: first.saturating_sub(seq + 1),
        }
    }

    pub fn push(&self, kind: EventKind, hash: String, detail: Option<String>) {
        let mut inner = self.inner.lock().expect("event log lock");
        inner.0 += 1;
        let seq = inner.0;
        if inner.1.len() == LOG_LEN {
            inner.1.pop_front();
        }
        inner.1.push_back(Event {
            seq,
            at: super::core::unix_now(),
            kind,
            hash,
            detail,
        });
        drop(inner);
        self.latest.send_replace(seq);
    }

    /// Events after `seq`, oldest first, at most `max`.
    pub fn since(&self, seq: u64, max: usize) -> Vec<Event> {
        let inner = self.inner.lock().expect("event log lock");
        inner
            .1
            .iter()
            .filter(|e| e.seq > seq)
            .take(max)
            .cloned()
            .collect()
    }
}

/// What a hook program learns of its torrent, in its environment. The `TR_*` names are
/// the ones Transmission's `script-torrent-done` gets, so existing scripts work.
#[derive(Debug, Clone)]
pub struct HookCall {
    pub program: PathBuf,
    pub event: &'static str,
    pub hash: String,
    pub name: String,
    pub dir: PathBuf,
    pub error: Option<String>,
}

impl HookCall {
    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env("CCBT_EVENT", self.event)
            .env("CCBT_TORRENT_HASH", &self.hash)
            .env("CCBT_TORRENT_NAME", &self.name)
            .env("CCBT_TORRENT_DIR", &self.dir)
            .env("CCBT_TORRENT_ERROR", self.error.as_deref().unwrap_or(""))
            .env("TR_TORRENT_HASH", &self.hash)
            .env("TR_TORRENT_NAME", &self.name)
            .env("TR_TORRENT_DIR", &self.dir)
            .env("TR_APP_VERSION", env!("CARGO_PKG_VERSION"));
        cmd
    }
}

/// Limits the hooks run under; the config reload may change them.
#[derive(Debug, Clone, Copy)]
pub struct HookLimits {
    pub max_running: usize,
    pub timeout: Duration,
}

/// Runs hook programs on a thread of its own, within [`HookLimits`].
pub struct Hooks {
    waiting: Arc<Mutex<VecDeque<HookCall>>>,
    limits: Arc<Mutex<HookLimits>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Hooks {
    pub fn start(limits: HookLimits) -> std::io::Result<Hooks> {
        let waiting: Arc<Mutex<VecDeque<HookCall>>> = Arc::default();
        let limits = Arc::new(Mutex::new(limits));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (waiting, limits, stop) = (waiting.clone(), limits.clone(), stop.clone());
            std::thread::Builder::new()
                .name("hooks".into())
                .spawn(move || run_hooks(&waiting, &limits, &stop))?
        };
        Ok(Hooks {
            waiting,
            limits,
            stop,
            thread: Some(thread),
        })
    }

    pub fn set_limits(&self, limits: HookLimits) {
        *self.limits.lock().expect("hook limits lock") = limits;
    }

    /// Queues a hook; skipped (and logged) if too many wait already.
    pub fn call(&self, call: HookCall) {
        let mut waiting = self.waiting.lock().expect("hook queue lock");
        if waiting.len() >= HOOKS_WAITING_MAX {
            tracing::warn!(program = %call.program.display(), torrent = %call.hash,
                "too many hooks waiting; this one is skipped");
            return;
        }
        waiting.push_back(call);
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run_hooks(waiting: &Mutex<VecDeque<HookCall>>, limits: &Mutex<HookLimits>, stop: &AtomicBool) {
    let mut running: Vec<(Child, Instant, HookCall)> = Vec::new();
    loop {
        let limits = *limits.lock().expect("hook limits lock");
        running.retain_mut(|(child, started, call)| match child.try_wait() {
            Ok(Some(status)) => {
                if !status.success() {
                    tracing::warn!(program = %call.program.display(), %status, "hook failed");
                }
                false
            }
            Ok(None) if started.elapsed() > limits.timeout => {
                tracing::warn!(program = %call.program.display(), timeout = ?limits.timeout,
                    "hook ran too long; killed");
                let _ = child.kill();
                let _ = child.wait();
                false
            }
            Ok(None) => true,
            Err(_) => false,
        });
        let stopping = stop.load(Ordering::Acquire);
        while running.len() < limits.max_running.max(1) && !stopping {
            let Some(call) = waiting.lock().expect("hook queue lock").pop_front() else {
                break;
            };
            match call.command().spawn() {
                Ok(child) => running.push((child, Instant::now(), call)),
                Err(e) => tracing::warn!(program = %call.program.display(), error = %e,
                    "cannot run a hook"),
            }
        }
        // On stop, hooks already running get to finish (within their timeout).
        if stopping && running.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_last_events_in_order() {
        let log = EventLog::default();
        for i in 0..(LOG_LEN + 5) {
            log.push(EventKind::Added, format!("{i}"), None);
        }
        let all = log.since(0, usize::MAX);
        assert_eq!(all.len(), LOG_LEN);
        assert_eq!(all[0].seq, 6);
        let tail = log.since(LOG_LEN as u64 + 3, 10);
        assert_eq!(
            tail.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![LOG_LEN as u64 + 4, LOG_LEN as u64 + 5]
        );
    }

    #[test]
    fn reading_after_a_number_says_how_many_were_lost() {
        let log = EventLog::default();
        assert_eq!(log.after(0, 10).events.len(), 0);
        let mut woken = log.subscribe();
        for i in 0..(LOG_LEN + 5) {
            log.push(EventKind::Added, format!("{i}"), None);
        }
        assert!(woken.has_changed().unwrap());
        assert_eq!(*woken.borrow_and_update(), LOG_LEN as u64 + 5);
        // The first five are gone: a reader at 2 missed 3..=5.
        let behind = log.after(2, 3);
        assert_eq!(behind.missed, 3);
        assert_eq!(
            behind.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![6, 7, 8]
        );
        let current = log.after(LOG_LEN as u64 + 3, 10);
        assert_eq!(current.missed, 0);
        assert_eq!(current.events.len(), 2);
        assert!(log.after(LOG_LEN as u64 + 5, 10).events.is_empty());
    }

    #[test]
    fn hooks_run_with_the_torrents_fields_and_are_killed_after_their_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = dir.path().join("hook.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$CCBT_EVENT $TR_TORRENT_HASH $CCBT_TORRENT_NAME\" >> {}\n\
                 [ \"$CCBT_TORRENT_NAME\" = slow ] && sleep 30\nexit 0\n",
                out.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let hooks = Hooks::start(HookLimits {
            max_running: 1,
            timeout: Duration::from_millis(500),
        })
        .unwrap();
        let call = |name: &str| HookCall {
            program: script.clone(),
            event: "completed",
            hash: "ab".repeat(20),
            name: name.into(),
            dir: dir.path().to_path_buf(),
            error: None,
        };
        let t = Instant::now();
        hooks.call(call("slow"));
        hooks.call(call("fast"));
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.lines().count() == 2 {
                assert!(
                    text.contains(&format!("completed {} fast", "ab".repeat(20))),
                    "{text}"
                );
                break;
            }
            assert!(Instant::now() < until, "hooks did not run: {text:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        // "fast" waited for "slow" (one at a time), which was killed at its timeout.
        assert!(t.elapsed() >= Duration::from_millis(450));
        assert!(t.elapsed() < Duration::from_secs(10));
    }
}
