//! The seeders every contender downloads from: `ccbt-uring seed --shards 1` processes on
//! their own ports, all serving the same page-cached data dir, and the load generator that
//! measures what they can serve at most.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::harness::ports::Ports;
use crate::harness::process::{wait_listening, Process};
use crate::harness::tracker::Tracker;

/// Time a seeder gets to check its data and start listening.
const START_LIMIT: Duration = Duration::from_secs(120);

/// Time for the tracker to list every seeder once they listen.
const ANNOUNCE_LIMIT: Duration = Duration::from_secs(30);

/// Leecher connections the load generator opens per seeder (fewer than a seeder's 8
/// upload slots, so none waits to be unchoked).
const SINK_PEERS_PER_SEEDER: usize = 4;

/// Seconds each load-generator run lasts.
const SINK_SECONDS: u64 = 5;

/// What the data set and the programs are, for starting seeders.
pub struct Setup<'a> {
    pub ccbt: &'a Path,
    pub torrent: &'a Path,
    pub data_dir: &'a Path,
    pub count: usize,
}

/// Running seeders, stopped when dropped.
pub struct Seeders {
    ports: Vec<u16>,
    _processes: Vec<Process>,
}

impl Seeders {
    /// Starts `setup.count` seeders, seeder `i` pinned (with `taskset`) to the `i`-th CPU
    /// this process may use, round robin: a one-shard ccbt-uring pins its shard to the
    /// first CPU it is allowed, so without this every seeder would share one core. Returns
    /// once each listens and the tracker lists it, having announced (and dialled the
    /// peers the tracker named then).
    pub fn start(setup: &Setup, ports: &mut Ports, tracker: &Tracker) -> Result<Seeders> {
        let cpus = allowed_cpus()?;
        let mut processes = Vec::new();
        let mut seeder_ports = Vec::new();
        for i in 0..setup.count {
            let port = ports.next()?;
            let cpu = cpus[i % cpus.len()];
            let mut cmd = Command::new("taskset");
            cmd.args(["-c", &cpu.to_string()])
                .arg(setup.ccbt)
                .arg("seed")
                .arg(setup.torrent)
                .arg("--data")
                .arg(setup.data_dir)
                .args(["--shards", "1", "--listen", "127.0.0.1", "--port"])
                .arg(port.to_string())
                .env("CCBT_LOG", "warn");
            processes.push(Process::start(
                &format!("ccbt-uring seed :{port} (cpu {cpu})"),
                cmd,
            )?);
            seeder_ports.push(port);
        }
        for (process, &port) in processes.iter_mut().zip(&seeder_ports) {
            wait_listening(port, process, START_LIMIT)?;
        }
        tracker.wait_listed(&seeder_ports, ANNOUNCE_LIMIT)?;
        Ok(Seeders {
            ports: seeder_ports,
            _processes: processes,
        })
    }

    fn targets(&self) -> Vec<SocketAddr> {
        self.ports
            .iter()
            .map(|&p| SocketAddr::from(([127, 0, 0, 1], p)))
            .collect()
    }

    /// What the first `count` seeders serve at most, in MB/s: `ccbt-loadgen leech` with
    /// [`SINK_PEERS_PER_SEEDER`] connections to each at once, for [`SINK_SECONDS`]. The
    /// leecher checks every piece's SHA-1 and throws the data away, so this is the
    /// seeders' capacity into a loopback sink (sharing the cores with that sink, as they
    /// share them with a real downloader).
    pub fn capacity(&self, loadgen: &Path, torrent: &Path, count: usize) -> Result<Sink> {
        let targets: Vec<SocketAddr> = self.targets().into_iter().take(count).collect();
        let mut cmd = Command::new(loadgen);
        cmd.arg("leech").arg("--torrent").arg(torrent);
        for target in &targets {
            cmd.arg("--target").arg(target.to_string());
        }
        cmd.args([
            "--peers",
            &(SINK_PEERS_PER_SEEDER * targets.len()).to_string(),
        ])
        .args(["--duration", &SINK_SECONDS.to_string(), "--json"]);
        let mut process = Process::start("ccbt-loadgen leech", cmd)?;
        process.wait_success(Instant::now() + Duration::from_secs(SINK_SECONDS + 30))?;
        let log = process.log();
        let json: serde_json::Value = log
            .lines()
            .rev()
            .find(|l| l.starts_with('{'))
            .map(serde_json::from_str)
            .transpose()?
            .with_context(|| format!("no JSON summary from ccbt-loadgen:\n{log}"))?;
        if json["errors"].as_u64() != Some(0) {
            bail!("ccbt-loadgen leech saw errors: {}", json["error_messages"]);
        }
        Ok(Sink {
            mb_per_s: json["mb_per_s"].as_f64().context("no mb_per_s")?,
            connections: targets.len() * SINK_PEERS_PER_SEEDER,
        })
    }
}

/// One load-generator measurement of the seeders.
#[derive(Clone, Copy, Debug)]
pub struct Sink {
    pub mb_per_s: f64,
    pub connections: usize,
}

/// The CPUs this process may run on (`Cpus_allowed_list` in /proc/self/status).
fn allowed_cpus() -> Result<Vec<usize>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .context("no Cpus_allowed_list in /proc/self/status")?;
    parse_cpu_list(list.trim()).with_context(|| format!("cannot read CPU list {list:?}"))
}

/// `0-2,5` -> [0, 1, 2, 5].
fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => cpus.extend(a.parse::<usize>().ok()?..=b.parse().ok()?),
            None => cpus.push(part.parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

/// Where the load generator is: next to the bench binary, as `cargo build --release
/// -p ccbt-loadgen` puts it.
pub fn default_loadgen() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("ccbt-loadgen"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_lists() {
        assert_eq!(parse_cpu_list("0-1"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0-2,5"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list(""), None);
        assert!(!allowed_cpus().unwrap().is_empty());
    }
}
