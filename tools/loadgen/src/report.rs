//! Counting and reporting: shard-local counters flushed to shared atomics a few times a
//! second (so the hot path never touches a shared cache line), a watcher on the main
//! thread that samples them once a second, and the final summary as a table or JSON.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use ccbt_shards::pool::Shards;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Totals across shards, updated by [`Local::flush`].
#[derive(Debug, Default)]
pub struct Counters {
    pub bytes: AtomicU64,
    pub connections: AtomicU64,
    pub errors: AtomicU64,
    pub disconnects: AtomicU64,
    pub connect_failures: AtomicU64,
    /// What each shard handed in when it stopped.
    pub reports: Mutex<Vec<ShardReport>>,
}

/// One shard's counters since its last flush.
#[derive(Debug, Default)]
pub struct Local {
    pub bytes: Cell<u64>,
    pub connections: Cell<u64>,
    pub errors: Cell<u64>,
    pub disconnects: Cell<u64>,
    pub connect_failures: Cell<u64>,
    /// The first few error messages, for the report.
    messages: RefCell<Vec<String>>,
}

/// Error messages kept (and printed to stderr) per shard; the rest are only counted.
const MESSAGES_KEPT: usize = 20;

impl Local {
    pub fn add(cell: &Cell<u64>, n: u64) {
        cell.set(cell.get() + n);
    }

    /// Counts an error and keeps its message if it is among the first few.
    pub fn error(&self, message: String) {
        Self::add(&self.errors, 1);
        let mut kept = self.messages.borrow_mut();
        if kept.len() < MESSAGES_KEPT {
            eprintln!("error: {message}");
            kept.push(message);
        }
    }

    pub fn flush(&self, to: &Counters) {
        for (cell, total) in [
            (&self.bytes, &to.bytes),
            (&self.connections, &to.connections),
            (&self.errors, &to.errors),
            (&self.disconnects, &to.disconnects),
            (&self.connect_failures, &to.connect_failures),
        ] {
            total.fetch_add(cell.take(), Ordering::Relaxed);
        }
    }

    pub fn take_messages(&self) -> Vec<String> {
        self.messages.take()
    }
}

/// What each shard hands in when its run ends. Shards hand it in rather than return it so
/// that the watcher can report without joining a shard that fails to stop.
#[derive(Debug)]
pub struct ShardReport {
    pub messages: Vec<String>,
    /// Block latencies in microseconds (leech mode).
    pub latency: Option<Histogram<u64>>,
}

/// A histogram for latencies from 1 µs to 10 minutes at 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub samples: u64,
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub mode: &'static str,
    pub seconds: f64,
    pub bytes: u64,
    /// Megabytes (10^6 bytes) per second over the whole run.
    pub mb_per_s: f64,
    pub connections: u64,
    pub errors: u64,
    pub disconnects: u64,
    pub connect_failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_us: Option<Latency>,
    /// Bytes moved in each whole second of the run.
    pub per_second: Vec<u64>,
    /// The first error messages, as they happened.
    pub error_messages: Vec<String>,
    /// Shards that had not stopped a few seconds after the deadline; they are left behind
    /// (the process exits anyway) and only their flushed counters are included.
    pub stuck_shards: usize,
}

/// How long after the deadline the watcher waits for shards before reporting without
/// them. glommio timers can fire late when thousands of sockets are in flight; this keeps
/// the run bounded whatever happens inside a shard.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// How to print progress each second, if at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    Off,
    Text,
    Json,
}

/// Samples `counters` each second until every shard has finished (or `deadline` plus a
/// grace period has passed), then builds the summary.
pub fn watch(
    mode: &'static str,
    shards: Shards<Result<(), String>>,
    counters: &Counters,
    progress: Progress,
    deadline: Instant,
) -> Result<Summary> {
    let start = Instant::now();
    let mut per_second = Vec::new();
    let mut last = 0;
    while !shards.is_finished() && Instant::now() < deadline + STOP_GRACE {
        std::thread::sleep(Duration::from_millis(20));
        let due = start + Duration::from_secs(per_second.len() as u64 + 1);
        if Instant::now() < due {
            continue;
        }
        let bytes = counters.bytes.load(Ordering::Relaxed);
        per_second.push(bytes - last);
        last = bytes;
        print_progress(mode, progress, per_second.len(), counters);
    }
    let seconds = start.elapsed().as_secs_f64();
    let shard_count = shards.count();
    if shards.is_finished() {
        for result in shards.join().map_err(|e| anyhow!("{e}"))? {
            result.map_err(|e| anyhow!(e))?;
        }
    }
    let reports =
        std::mem::take(&mut *counters.reports.lock().expect("no shard panics holding it"));
    let stuck_shards = shard_count - reports.len();
    if stuck_shards > 0 {
        eprintln!(
            "warning: {stuck_shards} shards had not stopped {STOP_GRACE:?} after the deadline"
        );
    }
    let mut latency: Option<Histogram<u64>> = None;
    let mut error_messages = Vec::new();
    for report in reports {
        error_messages.extend(report.messages);
        if let Some(h) = report.latency {
            match &mut latency {
                Some(all) => all.add(&h).map_err(|e| anyhow!("merging latencies: {e}"))?,
                None => latency = Some(h),
            }
        }
    }
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let bytes = load(&counters.bytes);
    Ok(Summary {
        mode,
        seconds,
        bytes,
        mb_per_s: bytes as f64 / seconds.max(1e-9) / 1e6,
        connections: load(&counters.connections),
        errors: load(&counters.errors),
        disconnects: load(&counters.disconnects),
        connect_failures: load(&counters.connect_failures),
        latency_us: latency.filter(|h| !h.is_empty()).map(|h| Latency {
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            samples: h.len(),
        }),
        per_second,
        error_messages,
        stuck_shards,
    })
}

fn print_progress(mode: &str, progress: Progress, second: usize, counters: &Counters) {
    let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
    match progress {
        Progress::Off => {}
        Progress::Text => println!(
            "{mode} t={second:>4}s  total {:>10.1} MB  conns {:>6}  errors {}",
            load(&counters.bytes) as f64 / 1e6,
            load(&counters.connections),
            load(&counters.errors),
        ),
        Progress::Json => println!(
            "{}",
            serde_json::json!({
                "mode": mode, "second": second, "bytes_total": load(&counters.bytes),
                "connections": load(&counters.connections), "errors": load(&counters.errors),
            })
        ),
    }
}

impl Summary {
    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "mode          {}\nseconds       {:.2}\nbytes         {}\nthroughput    {:.1} MB/s\n\
             connections   {}\nerrors        {}\ndisconnects   {}\nconnect fails {}\n",
            self.mode,
            self.seconds,
            self.bytes,
            self.mb_per_s,
            self.connections,
            self.errors,
            self.disconnects,
            self.connect_failures,
        );
        if let Some(l) = &self.latency_us {
            out += &format!(
                "latency (µs)  p50 {}  p99 {}  p99.9 {}  max {}  ({} blocks)\n",
                l.p50, l.p99, l.p999, l.max, l.samples
            );
        }
        let rates: Vec<String> = self
            .per_second
            .iter()
            .map(|b| format!("{:.0}", *b as f64 / 1e6))
            .collect();
        out += &format!("MB each second {}\n", rates.join(" "));
        if self.stuck_shards > 0 {
            out += &format!(
                "stuck shards  {} (left behind; counters only)\n",
                self.stuck_shards
            );
        }
        for m in &self.error_messages {
            out += &format!("error: {m}\n");
        }
        out
    }
}
