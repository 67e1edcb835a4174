//! Processes a scenario starts: each leads its own process group, logs its
//! stdout and stderr to a file, is bounded in time by its caller, and is stopped (SIGTERM to
//! its group, then SIGKILL) by its own PID when dropped. Nothing else is ever signalled.
//!
//! Drops do not run when ccbt-bench itself is killed, so the groups alive at any moment
//! are also listed in [`LIVE`]: [`stop_all_on_signal`] kills them on SIGINT, SIGTERM or
//! SIGHUP, and no client outlives an interrupted run.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ccbt_testkit::process::{signal_group, spawn_logged, Signal};

/// How long a process gets to exit after SIGTERM before its group is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How often waits look at the process and its log.
pub const POLL: Duration = Duration::from_millis(20);

/// The process groups started and not yet stopped, by leader PID. Only spawning,
/// stopping and the signal thread touch it: no measured path.
static LIVE: Mutex<Vec<u32>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<u32>> {
    LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// From now on, SIGINT, SIGTERM or SIGHUP kills every group still running, then exits
/// with 128 + the signal's number.
pub fn stop_all_on_signal() -> Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let leaders = live().clone();
            for &leader in &leaders {
                signal_group(leader, Signal::SIGKILL);
            }
            eprintln!(
                "ccbt-bench: stopped by signal {signal}; killed the {} client groups it had started",
                leaders.len()
            );
            std::process::exit(128 + signal);
        }
    });
    Ok(())
}

/// Lines of a log shown in an error.
const LOG_TAIL_LINES: usize = 40;

/// What `/usr/bin/time -f '%e %U %S %M'` reports: the process and every child it waited
/// for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Usage {
    pub cpu_seconds: f64,
    /// The largest resident set of any process in the tree, in KiB.
    pub max_rss_kib: u64,
}

/// A running process the scenario owns.
pub struct Process {
    name: String,
    child: Child,
    exited: Option<ExitStatus>,
    log: PathBuf,
    /// Where `/usr/bin/time` writes, for a process started with [`Process::start_timed`].
    usage: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Process {
    /// Starts `cmd` (stdin closed, stdout and stderr to a log in a private temp dir) as the
    /// leader of a new process group.
    pub fn start(name: &str, cmd: Command) -> Result<Process> {
        Self::spawn(name, cmd, false)
    }

    /// As [`Process::start`], under `/usr/bin/time`, so [`Process::usage`] can report the
    /// CPU time and peak RSS of the process and its children once it has exited.
    pub fn start_timed(name: &str, cmd: Command) -> Result<Process> {
        Self::spawn(name, cmd, true)
    }

    fn spawn(name: &str, cmd: Command, timed: bool) -> Result<Process> {
        let dir = tempfile::Builder::new().prefix("ccbt-bench-").tempdir()?;
        let log = dir.path().join("log");
        let usage = timed.then(|| dir.path().join("usage"));
        let mut cmd = match &usage {
            Some(file) => {
                let mut time = Command::new("/usr/bin/time");
                time.args(["-f", "%e %U %S %M", "-o"])
                    .arg(file)
                    .arg("--")
                    .arg(cmd.get_program())
                    .args(cmd.get_args());
                for (key, value) in cmd.get_envs() {
                    match value {
                        Some(v) => time.env(key, v),
                        None => time.env_remove(key),
                    };
                }
                if let Some(cwd) = cmd.get_current_dir() {
                    time.current_dir(cwd);
                }
                time
            }
            None => cmd,
        };
        let child = spawn_logged(&mut cmd, &log)
            .with_context(|| format!("cannot start {name} ({cmd:?})"))?;
        live().push(child.id());
        Ok(Process {
            name: name.to_string(),
            child,
            exited: None,
            log,
            usage,
            _dir: dir,
        })
    }

    /// The process id (of `/usr/bin/time` for a timed process).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The exit status, if the process has exited.
    pub fn exit_status(&mut self) -> Result<Option<ExitStatus>> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait()?;
        }
        Ok(self.exited)
    }

    /// The log so far, progress redraws (`\r`) turned into lines.
    pub fn log(&self) -> String {
        let raw = std::fs::read(&self.log).unwrap_or_default();
        String::from_utf8_lossy(&raw).replace('\r', "\n")
    }

    /// The last lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        let skip = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "----- {} log (last lines) -----\n{}",
            self.name,
            lines[skip..].join("\n")
        )
    }

    /// Waits until the process exits with status 0, or fails (with its log) if it exits
    /// otherwise or is still running at `deadline`.
    pub fn wait_success(&mut self, deadline: Instant) -> Result<()> {
        loop {
            if let Some(status) = self.exit_status()? {
                if !status.success() {
                    bail!("{} failed ({status})\n{}", self.name, self.log_tail());
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{} did not exit in time\n{}", self.name, self.log_tail());
            }
            std::thread::sleep(POLL);
        }
    }

    /// Whether the log contains `line` (if given) or the process has exited.
    pub fn done(&mut self, line: Option<&str>) -> Result<bool> {
        Ok(line.is_some_and(|l| self.log().contains(l)) || self.exit_status()?.is_some())
    }

    /// CPU time and peak RSS from `/usr/bin/time`, once the process has exited.
    pub fn usage(&self) -> Result<Usage> {
        let file = self
            .usage
            .as_ref()
            .context("not started under /usr/bin/time")?;
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("no /usr/bin/time report for {}", self.name))?;
        parse_usage(&text).with_context(|| format!("/usr/bin/time wrote {text:?}"))
    }

    /// Stops the process and its group: SIGTERM, then SIGKILL after a grace period.
    pub fn stop(&mut self) -> Result<()> {
        let stopped = self.stop_group();
        let leader = self.child.id();
        live().retain(|&l| l != leader);
        stopped
    }

    fn stop_group(&mut self) -> Result<()> {
        if self.exit_status()?.is_some() {
            return Ok(());
        }
        let group = self.child.id();
        signal_group(group, Signal::SIGTERM);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if self.exit_status()?.is_some() {
                // The leader is gone; anything it left in its group goes too.
                signal_group(group, Signal::SIGKILL);
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
        signal_group(group, Signal::SIGKILL);
        self.exited = Some(self.child.wait()?);
        Ok(())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The last line of a `%e %U %S %M` report (a killed command gets a line before it).
fn parse_usage(text: &str) -> Option<Usage> {
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [_, user, sys, rss] = fields[..] else {
        return None;
    };
    Some(Usage {
        cpu_seconds: user.parse::<f64>().ok()? + sys.parse::<f64>().ok()?,
        max_rss_kib: rss.parse().ok()?,
    })
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`, or `process`
/// exits, or `limit` passes.
pub fn wait_listening(port: u16, process: &mut Process, limit: Duration) -> Result<()> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Some(status) = process.exit_status()? {
            bail!(
                "{} exited ({status})\n{}",
                process.name(),
                process.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
    bail!(
        "{} does not listen on {port}\n{}",
        process.name(),
        process.log_tail()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_time_reports() {
        assert_eq!(
            parse_usage("12.50 3.25 1.75 204800\n"),
            Some(Usage {
                cpu_seconds: 5.0,
                max_rss_kib: 204800
            })
        );
        assert_eq!(
            parse_usage("Command terminated by signal 15\n1.00 0.50 0.25 1024\n")
                .map(|u| u.max_rss_kib),
            Some(1024)
        );
        assert_eq!(parse_usage("garbage"), None);
    }

    #[test]
    fn times_a_child_and_stops_another() {
        let mut timed = Process::start_timed("true", Command::new("true")).expect("true runs");
        timed
            .wait_success(Instant::now() + Duration::from_secs(10))
            .unwrap();
        assert!(timed.usage().unwrap().max_rss_kib > 0);

        let mut sleeper = Command::new("sleep");
        sleeper.arg("60");
        let mut sleeping = Process::start("sleep", sleeper).unwrap();
        sleeping.stop().unwrap();
        assert!(sleeping.exit_status().unwrap().is_some());
    }
}
