//! The seeders every contender downloads from, and the load generator that measures what
//! they can serve at most. Either synthetic seeders (`ccbt-loadgen seed`: content made on
//! the fly, no disk, little CPU; the default, so the seeders are not what is measured),
//! `ccbt-uring seed --shards 1` processes, or python3-libtorrent seeders (a real client's
//! seeding, so that our own seeders' tuning is no part of our downloader's figure), each on
//! its own port, all serving the same page-cached data dir.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::harness::bins;
use crate::harness::ports::Ports;
use crate::harness::process::{wait_listening, Process, POLL};
use crate::harness::tracker::Tracker;
use ccbt_testkit::clients::DEBIAN_PYTHON;

/// Time a seeder gets to check its data and start listening.
const START_LIMIT: Duration = Duration::from_secs(120);

/// Time for the tracker to list every seeder once they listen.
const ANNOUNCE_LIMIT: Duration = Duration::from_secs(30);

/// Leecher connections the load generator opens per seeder (fewer than a seeder's 8
/// upload slots, so none waits to be unchoked).
const SINK_PEERS_PER_SEEDER: usize = 4;

/// Seconds each load-generator run lasts.
const SINK_SECONDS: u64 = 5;

/// Which seeders serve the downloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// `ccbt-loadgen seed`: synthetic content, no disk.
    Synthetic,
    /// `ccbt-uring seed --shards 1` processes reading the data set from the page cache.
    Ccbt,
    /// python3-libtorrent 2.0 seeders (`lt_client.py seed` with its seedbox preset) sharing
    /// the data set read-only.
    Libtorrent,
}

impl Source {
    /// The Markdown section its table goes to: each source has a table of its own.
    pub fn section(self) -> &'static str {
        match self {
            Source::Synthetic => "download",
            Source::Ccbt => "download-ccbt",
            Source::Libtorrent => "download-libtorrent",
        }
    }

    /// Whether it seeds a data set on disk (and so needs one made and a real torrent).
    pub fn reads_data(self) -> bool {
        self != Source::Synthetic
    }
}

/// What `lt_client.py` prints each second once libtorrent has checked the data.
const LT_SEEDING: &str = "state=seeding";

/// What the data set and the programs are, for starting seeders.
pub struct Setup<'a> {
    pub source: Source,
    pub ccbt: &'a Path,
    pub loadgen: &'a Path,
    pub torrent: &'a Path,
    pub data_dir: &'a Path,
    pub count: usize,
    /// Seconds the seeders must last at least.
    pub lifetime: u64,
}

/// Running seeders, stopped when dropped.
pub struct Seeders<'t> {
    ports: Vec<u16>,
    _processes: Vec<Process>,
    /// The tracker, for seeders it lists only because we announced them.
    announced_to: Option<&'t Tracker>,
}

impl Drop for Seeders<'_> {
    fn drop(&mut self) {
        if let Some(tracker) = self.announced_to {
            for &port in &self.ports {
                let _ = tracker.announce_seeder(port, true);
            }
        }
    }
}

impl<'t> Seeders<'t> {
    /// Starts `setup.count` seeders and returns once the tracker lists each. `dial`: a
    /// downloader that does not dial loopback peers, which they must connect to (ccbt-uring
    /// seeders do so on their own: they announce after it did).
    pub fn start(
        setup: &Setup,
        ports: &mut Ports,
        tracker: &'t Tracker,
        dial: Option<u16>,
    ) -> Result<Seeders<'t>> {
        match setup.source {
            Source::Ccbt => Self::start_ccbt(setup, ports, tracker),
            Source::Libtorrent => Self::start_libtorrent(setup, ports, tracker),
            Source::Synthetic => Self::start_synthetic(setup, ports, tracker, dial),
        }
    }

    /// One `ccbt-loadgen seed` process with `setup.count` endpoints on consecutive ports,
    /// announced to the tracker on its behalf.
    fn start_synthetic(
        setup: &Setup,
        ports: &mut Ports,
        tracker: &'t Tracker,
        dial: Option<u16>,
    ) -> Result<Seeders<'t>> {
        let count = u16::try_from(setup.count).context("too many seeders")?;
        let first = ports.next_run(count)?;
        let mut cmd = Command::new(setup.loadgen);
        cmd.arg("seed")
            .arg("--torrent")
            .arg(setup.torrent)
            .args(["--listen", &format!("127.0.0.1:{first}")])
            .args(["--peers", &count.to_string()])
            .args(["--duration", &setup.lifetime.to_string()]);
        if let Some(port) = dial {
            cmd.args(["--dial", &format!("127.0.0.1:{port}")]);
        }
        let mut process = Process::start(&format!("ccbt-loadgen seed :{first}"), cmd)?;
        let seeder_ports: Vec<u16> = (first..first + count).collect();
        for &port in &seeder_ports {
            wait_listening(port, &mut process, START_LIMIT)?;
        }
        let seeders = Seeders {
            ports: seeder_ports,
            _processes: vec![process],
            announced_to: Some(tracker),
        };
        for &port in &seeders.ports {
            tracker.announce_seeder(port, false)?;
        }
        tracker.wait_listed(&seeders.ports, ANNOUNCE_LIMIT)?;
        Ok(seeders)
    }

    /// `ccbt-uring seed --shards 1` processes, seeder `i` pinned (with `taskset`) to the `i`-th CPU
    /// this process may use, round robin: a one-shard ccbt-uring pins its shard to the
    /// first CPU it is allowed, so without this every seeder would share one core. Returns
    /// once each listens and the tracker lists it, having announced (and dialled the
    /// peers the tracker named then).
    fn start_ccbt(setup: &Setup, ports: &mut Ports, tracker: &'t Tracker) -> Result<Seeders<'t>> {
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
        Seeders::listed(processes, seeder_ports, tracker)
    }

    /// `lt_client.py seed` processes with `LT_SEEDBOX=1` (libtorrent's own
    /// `high_performance_seed()` preset, several connections per IP allowed), unpinned (it
    /// runs threads of its own), all on the same data dir, read-only. Returns once each has
    /// checked the data, listens, and the tracker lists it (it announces itself, and dials
    /// the peers the tracker names, as a seed does by default).
    fn start_libtorrent(
        setup: &Setup,
        ports: &mut Ports,
        tracker: &'t Tracker,
    ) -> Result<Seeders<'t>> {
        let mut processes = Vec::new();
        let mut seeder_ports = Vec::new();
        for _ in 0..setup.count {
            let port = ports.next()?;
            let mut cmd = Command::new(DEBIAN_PYTHON);
            cmd.arg("-u")
                .arg(bins::client_scripts().join("lt_client.py"))
                .arg("seed")
                .arg(setup.torrent)
                .arg(setup.data_dir)
                .arg(port.to_string())
                .env("LT_SEEDBOX", "1");
            processes.push(Process::start(
                &format!("python3-libtorrent seed :{port}"),
                cmd,
            )?);
            seeder_ports.push(port);
        }
        let deadline = Instant::now() + START_LIMIT;
        for process in &mut processes {
            while !process.done(Some(LT_SEEDING))? {
                if Instant::now() > deadline {
                    bail!(
                        "a libtorrent seeder did not finish checking\n{}",
                        process.log_tail()
                    );
                }
                std::thread::sleep(POLL);
            }
            if process.exit_status()?.is_some() {
                bail!("a libtorrent seeder exited\n{}", process.log_tail());
            }
        }
        Seeders::listed(processes, seeder_ports, tracker)
    }

    /// Seeders started on `ports`, once each listens and the tracker lists it.
    fn listed(
        mut processes: Vec<Process>,
        ports: Vec<u16>,
        tracker: &'t Tracker,
    ) -> Result<Seeders<'t>> {
        for (process, &port) in processes.iter_mut().zip(&ports) {
            wait_listening(port, process, START_LIMIT)?;
        }
        tracker.wait_listed(&ports, ANNOUNCE_LIMIT)?;
        Ok(Seeders {
            ports,
            _processes: processes,
            announced_to: None,
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
