//! Shards: one glommio executor per core, each pinned to its own CPU.
//!
//! A shard is the unit of ownership: work placed on it runs only on its thread, with no
//! locks. [`spawn`] starts `count` shards running the same task (given its [`ShardId`]) and
//! [`Shards::join`] collects what each returned.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement, PoolPlacement};
use thiserror::Error;

use crate::runtime::{self, RuntimeError};

/// A shard's index, `0..count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub u16);

/// Most shards one process runs. Far more than any machine has cores; it bounds threads.
pub const SHARDS_MAX: usize = 1024;

/// How many shards to start and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardConfig {
    /// Number of executors.
    pub count: usize,
    /// Pin shard `i` to the `i`-th CPU this process may run on (round-robin if there are
    /// more shards than CPUs). Unpinned shards float, which only helps on shared machines.
    pub pin: bool,
    /// Memory each executor registers with io_uring for its buffers. Counts against the
    /// locked-memory limit; jobs that do no direct I/O need only glommio's 64 KiB minimum.
    pub io_memory_bytes: usize,
    /// Submission entries per io_uring ring (completions get twice as many). glommio's
    /// default of 128 lets completions overflow with thousands of sockets, and a shard then
    /// stalls; sized for a seedbox's connection counts.
    pub ring_depth: usize,
    /// Helper threads per shard for CPU-heavy work off the shard's loop (piece hashing).
    /// They float, so the kernel runs them on whichever core is idle.
    pub helper_threads: usize,
}

impl ShardConfig {
    /// One pinned shard per CPU this process is allowed to use.
    pub fn per_core() -> Self {
        Self::with_count(allowed_cpus().len())
    }

    /// `count` pinned shards (clamped to `1..=SHARDS_MAX`).
    pub fn with_count(count: usize) -> Self {
        Self {
            count: count.clamp(1, SHARDS_MAX),
            pin: true,
            io_memory_bytes: 64 << 10,
            ring_depth: 2048,
            helper_threads: 1,
        }
    }
}

#[derive(Debug, Error)]
pub enum ShardError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error("could not start shard {shard}: {message}")]
    Start { shard: u16, message: String },
    #[error("shard {shard} stopped with an error: {message}")]
    Failed { shard: u16, message: String },
}

/// The CPUs this process may run on (its affinity mask, which respects `taskset` and
/// cgroup cpusets), in order.
pub fn allowed_cpus() -> Vec<usize> {
    use nix::sched::{sched_getaffinity, CpuSet};
    use nix::unistd::Pid;
    let fallback = || (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect();
    match sched_getaffinity(Pid::from_raw(0)) {
        Ok(set) => {
            let cpus: Vec<usize> = (0..CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap_or(false))
                .collect();
            if cpus.is_empty() {
                fallback()
            } else {
                cpus
            }
        }
        Err(_) => fallback(),
    }
}

/// Running shards. Dropping this without [`Shards::join`] detaches the threads.
pub struct Shards<T: Send + 'static> {
    handles: Vec<ExecutorJoinHandle<T>>,
    finished: Arc<AtomicUsize>,
}

/// Starts `config.count` shards, each running `task(its id)` to completion.
pub fn spawn<F, Fut, T>(config: &ShardConfig, task: F) -> Result<Shards<T>, ShardError>
where
    F: Fn(ShardId) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    runtime::check()?;
    let cpus = allowed_cpus();
    let finished = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::with_capacity(config.count);
    for i in 0..config.count.min(SHARDS_MAX) {
        let id = ShardId(i as u16);
        let placement = if config.pin {
            Placement::Fixed(cpus[i % cpus.len()])
        } else {
            Placement::Unbound
        };
        let task = task.clone();
        let done = FinishGuard(finished.clone());
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{i}"))
            .io_memory(config.io_memory_bytes)
            .ring_depth(config.ring_depth)
            .blocking_thread_pool_placement(PoolPlacement::Unbound(config.helper_threads.max(1)))
            .spawn(move || async move {
                let _done = done;
                task(id).await
            })
            .map_err(|e| ShardError::Start {
                shard: id.0,
                message: e.to_string(),
            })?;
        handles.push(handle);
    }
    Ok(Shards { handles, finished })
}

/// Counts a shard as finished however its task ends, panics included.
struct FinishGuard(Arc<AtomicUsize>);

impl Drop for FinishGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

impl<T: Send + 'static> Shards<T> {
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// True once every shard's task has ended; [`Shards::join`] will then not block.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire) >= self.handles.len()
    }

    /// Waits for every shard and returns their results in shard order.
    pub fn join(self) -> Result<Vec<T>, ShardError> {
        let mut out = Vec::with_capacity(self.handles.len());
        let mut first_error = None;
        for (i, handle) in self.handles.into_iter().enumerate() {
            match handle.join() {
                Ok(value) => out.push(value),
                Err(e) => {
                    first_error.get_or_insert(ShardError::Failed {
                        shard: i as u16,
                        message: e.to_string(),
                    });
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shard_runs_once_on_its_own_cpu() {
        let config = ShardConfig::per_core();
        let shards = spawn(&config, |id| async move {
            let cpu = nix::sched::sched_getcpu().unwrap();
            (id, cpu)
        })
        .unwrap();
        assert_eq!(shards.count(), config.count);
        let results = shards.join().unwrap();
        let cpus = allowed_cpus();
        for (i, (id, cpu)) in results.into_iter().enumerate() {
            assert_eq!(id, ShardId(i as u16));
            assert_eq!(
                cpu,
                cpus[i % cpus.len()],
                "shard {i} is not on its pinned cpu"
            );
        }
    }

    #[test]
    fn more_shards_than_cores_share_round_robin() {
        let config = ShardConfig::with_count(allowed_cpus().len() * 2 + 1);
        let results = spawn(&config, |id| async move { id.0 })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(results, (0..config.count as u16).collect::<Vec<_>>());
    }

    #[test]
    fn a_panicking_shard_is_an_error_not_a_crash() {
        let config = ShardConfig::with_count(2);
        let shards = spawn(&config, |id| async move {
            assert!(id.0 != 1, "shard 1 fails on purpose");
            id.0
        })
        .unwrap();
        while !shards.is_finished() {
            std::thread::yield_now();
        }
        assert!(matches!(
            shards.join(),
            Err(ShardError::Failed { shard: 1, .. })
        ));
    }
}
