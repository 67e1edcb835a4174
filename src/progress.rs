//! Runs a hash job while showing progress on a terminal.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccbt_shards::{HashJob, HashProgress, PieceOutcome, ShardError};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What a finished hash job reports.
pub struct Hashed {
    pub outcomes: Vec<PieceOutcome>,
    pub bytes_hashed: u64,
    pub elapsed: Duration,
}

impl Hashed {
    pub fn gb_per_s(&self) -> f64 {
        self.bytes_hashed as f64 / self.elapsed.as_secs_f64().max(1e-9) / 1e9
    }
}

/// Waits for `job`, redrawing a progress bar on stderr ten times a second if stderr is a
/// terminal. The main thread only sleeps and reads counters: the shards do all the work.
/// Without a terminal it blocks in `join` at once, so the timing is exact.
pub fn wait(
    job: HashJob,
    progress: &Arc<HashProgress>,
    total_bytes: u64,
    started: Instant,
    what: &str,
) -> Result<Hashed, ShardError> {
    let bar =
        ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr_with_hz(10));
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    while !bar.is_hidden() && !job.is_finished() {
        bar.set_position(progress.bytes_hashed.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(10));
    }
    bar.finish_and_clear();
    let outcomes = job.join()?;
    Ok(Hashed {
        outcomes,
        bytes_hashed: progress.bytes_hashed.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    })
}
