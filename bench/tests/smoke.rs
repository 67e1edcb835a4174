//! CI's smoke run of every scenario: tiny sizes and one round, so it takes seconds, but
//! with the real contenders (CI installs them), so the harness cannot rot unnoticed. Each
//! test checks that every contender produced a figure, not what the figure is: timing on a
//! shared CI machine proves nothing.
//!
//! Uses the debug `ccbt-uring` and `ccbt-loadgen` that `cargo test --workspace` builds next
//! to `ccbt-bench`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest any one scenario may take here.
const LIMIT: Duration = Duration::from_secs(240);

fn sibling(name: &str) -> PathBuf {
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_ccbt-bench"));
    let path = bench.with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: run the workspace's tests (`cargo test --workspace`), which build it",
        path.display()
    );
    path
}

/// A fresh dir for one run's data sets, under /var/tmp: on disk, as a seedbox's data is,
/// rather than in a /tmp that may be a tmpfs.
fn smoke_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ccbt-bench-smoke-")
        .tempdir_in("/var/tmp")
        .unwrap()
}

/// Starts `ccbt-bench SCENARIO ARGS... --ccbt <debug ccbt-uring> --dir DIR`, stdout and
/// stderr as `output` makes them, in a process group of its own, so that a run past the
/// limit is stopped with every client it started.
fn start_bench(scenario: &str, args: &[&str], dir: &Path, output: fn() -> Stdio) -> Child {
    sibling("ccbt-loadgen");
    Command::new(env!("CARGO_BIN_EXE_ccbt-bench"))
        .arg(scenario)
        .args(args)
        .arg("--ccbt")
        .arg(sibling("ccbt-uring"))
        .arg("--dir")
        .arg(dir)
        .stdout(output())
        .stderr(output())
        .process_group(0)
        .spawn()
        .unwrap()
}

/// Runs `ccbt-bench SCENARIO ARGS... --ccbt <debug ccbt-uring> --dir <temp>` and gives its
/// Markdown.
fn bench(scenario: &str, args: &[&str]) -> String {
    let dir = smoke_dir();
    let started = Instant::now();
    let mut child = start_bench(scenario, args, dir.path(), Stdio::piped);
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > LIMIT {
            // SAFETY: kill(2) on the group this test created; no memory is touched.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let out = child.wait_with_output().unwrap();
            panic!(
                "{scenario} ran past {LIMIT:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{scenario} failed:\n{stderr}\n{stdout}"
    );
    stdout
}

/// The table row that starts with `| who |`.
fn row<'a>(markdown: &'a str, who: &str) -> &'a str {
    let start = format!("| {who} |");
    markdown
        .lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("no row for {who}:\n{markdown}"))
}

#[test]
fn download_scenario_measures_every_downloader() {
    let md = bench(
        "download",
        &[
            "--size-mib",
            "16",
            "--rounds",
            "1",
            "--timeout",
            "60",
            "--contenders",
            "ccbt,libtorrent,aria2,rqbit",
        ],
    );
    let mut downloaders = vec![
        "ccbt-uring download",
        "python3-libtorrent 2.0",
        "aria2c 1.36",
    ];
    // rqbit is not a Debian package and CI does not build it: where it is missing, the
    // table must say so and how to install it.
    if rqbit_installed() {
        downloaders.push("rqbit");
    } else {
        assert!(
            md.contains("rqbit: skipped: rqbit not found") && md.contains("cargo install rqbit"),
            "{md}"
        );
    }
    for who in downloaders {
        assert!(
            row(&md, who).contains("| 1/1 |"),
            "{who} did not finish:\n{md}"
        );
    }
    assert!(md.contains("ccbt-loadgen sink"), "{md}");
}

#[test]
fn download_scenario_downloads_from_libtorrent_seeders() {
    let md = bench(
        "download",
        &[
            "--source",
            "libtorrent",
            "--size-mib",
            "8",
            "--rounds",
            "1",
            "--timeout",
            "60",
            "--contenders",
            "ccbt,aria2",
        ],
    );
    assert!(md.contains("2 python3-libtorrent 2.0 seeders"), "{md}");
    assert!(
        md.contains("Targets (issue 13), from libtorrent seeders: ccbt-uring download is"),
        "{md}"
    );
    for who in ["ccbt-uring download", "aria2c 1.36"] {
        assert!(
            row(&md, who).contains("| 1/1 |"),
            "{who} did not finish:\n{md}"
        );
    }
    assert!(md.contains("2 seeders → ccbt-loadgen sink"), "{md}");
}

/// Whether `rqbit` is on PATH or where `cargo install` puts it.
fn rqbit_installed() -> bool {
    Command::new("sh")
        .args([
            "-c",
            "command -v rqbit || test -x \"${CARGO_HOME:-$HOME/.cargo}/bin/rqbit\"",
        ])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn seed_scenario_measures_every_seeder_and_both_shard_counts() {
    // Windows of 2 s, not 1: aria2 takes in new peers a few per second, and with the other
    // smoke tests running beside it on 2 cores it once served nothing in a 1 s window.
    let md = bench(
        "seed",
        &[
            "--size-mib",
            "16",
            "--leechers",
            "4",
            "--seconds",
            "2",
            "--rounds",
            "1",
            "--pipeline",
            "8",
            "--latency-leechers",
            "3",
            "--latency-pipeline",
            "2",
        ],
    );
    for who in [
        "ccbt-uring, all shards",
        "python3-libtorrent 2.0",
        "aria2c 1.36",
    ] {
        assert!(
            row(&md, &format!("{who} | 4")).contains("| 1/1 |"),
            "{who} has no valid throughput window:\n{md}"
        );
        assert!(
            row(&md, &format!("{who} | 3 | 2")).contains("| 1/1 |"),
            "{who} has no valid latency window:\n{md}"
        );
    }
    assert!(md.contains("MB per CPU s"), "{md}");
    assert!(md.contains("- latency: p99 "), "no latency verdict:\n{md}");
    // S5 twice: eight torrents and one hot torrent, each with a ratio and a verdict.
    let ratios: Vec<&str> = md.lines().filter(|l| l.starts_with("| 4 |")).collect();
    assert_eq!(ratios.len(), 2, "{md}");
    for line in ratios {
        assert!(line.trim_end().ends_with("x |"), "no S5 ratio:\n{md}");
        // The shard threads' CPU split was read from /proc.
        assert!(line.contains("% |"), "no busiest-shard share:\n{md}");
    }
    assert!(md.contains("**One hot torrent**"), "{md}");
    assert!(md.contains("target ≥ 1.6x on 2 cores"), "{md}");
}

#[test]
fn recheck_scenario_measures_warm_cold_and_the_limits() {
    let md = bench("verify", &["--size-mib", "16", "--rounds", "1"]);
    assert!(md.contains("ccbt-uring verify"), "{md}");
    assert!(md.contains("openssl"), "{md}");
    // Every disk ceiling was measured, and the best is named.
    for limit in [
        "| fio O_DIRECT read, 1 MiB blocks, 32 in flight |",
        "| fio O_DIRECT read, 4 MiB blocks, 64 in flight |",
        "| fio buffered read, 4 MiB blocks, 64 in flight |",
    ] {
        assert!(md.contains(limit), "no {limit}:\n{md}");
    }
    assert!(md.contains("The ceiling is **fio "), "{md}");
    // Timed by the bench's clock, every contender has a figure even at this size.
    for who in [
        "ccbt-uring verify",
        "python3-libtorrent recheck",
        "python3-libtorrent recheck, hashing_threads 2",
        "Transmission 3.00 verify",
    ] {
        row(&md, who);
    }
    assert!(!md.contains("not measured"), "a limit is missing:\n{md}");
    assert!(!md.contains("failed"), "a run failed:\n{md}");
}

#[test]
fn many_scenario_loads_and_seeds_every_torrent() {
    let md = bench("many", &["--torrents", "20", "--timeout", "60"]);
    for who in [
        "ccbt-uring seed (recheck)",
        "python3-libtorrent 2.0 (recheck)",
    ] {
        let line = row(&md, who);
        assert!(
            line.contains("| 20 |"),
            "{who} did not load 20 torrents:\n{md}"
        );
        assert!(line.contains("yes"), "{who} did not seed:\n{md}");
    }
}

#[test]
fn daemon_scenario_measures_the_daemon_and_the_others() {
    let md = bench(
        "daemon",
        &[
            "--torrents",
            "200",
            "--others-torrents",
            "100",
            "--timeout",
            "120",
            "--others-limit",
            "30",
            "--observe",
            "2",
        ],
    );
    for step in [
        "| add 200 torrents",
        "| restart: start until the control socket answers `list`",
        "| restart: start until all 200 seed",
        "| RSS per idle torrent",
        "| clean shutdown after the restart",
        "| restart: start, seeding, idle, shutdown |",
    ] {
        assert!(md.contains(step), "no `{step}`:\n{md}");
    }
    assert!(
        row(&md, "ccbt-uring daemon, restart").contains("| 200 |"),
        "{md}"
    );
    // Each other daemon has figures, or says why not and what to install.
    for who in ["qbittorrent-nox 4.5", "transmission-daemon 3.00"] {
        let measured = md
            .lines()
            .any(|l| l.starts_with(&format!("| {who} | 100 |")));
        let noted = md.contains(&format!("{who}: skipped: ")) && md.contains("apt-get install");
        assert!(
            measured || noted,
            "{who} has neither figures nor a note:\n{md}"
        );
        if !measured {
            eprintln!("{who} was skipped: {md}");
        }
    }
}

/// The children of `parent` that lead their own process group (the clients a scenario
/// starts), from /proc.
fn group_leading_children(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let fields = stat_fields(pid);
            fields.get(1) == Some(&parent.to_string()) && fields.get(2) == Some(&pid.to_string())
        })
        .collect()
}

/// Whether `pid` is running: it exists and is not a zombie waiting for a reaper.
fn alive(pid: u32) -> bool {
    stat_fields(pid).first().is_some_and(|state| state != "Z")
}

/// The fields of `/proc/PID/stat` after the command name (state, ppid, pgrp, ...), or
/// none if the process is gone. The name may hold spaces and parentheses, so the fields
/// start after its last `) `.
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

/// SIGTERM to ccbt-bench alone (not its group) mid-run: it must kill the clients it
/// started before it exits, not leave them running.
#[test]
fn a_terminated_bench_leaves_no_client_running() {
    let dir = smoke_dir();
    let mut child = start_bench(
        "seed",
        &[
            "--only-ours",
            "--size-mib",
            "16",
            "--leechers",
            "4",
            "--seconds",
            "30",
            "--rounds",
            "1",
        ],
        dir.path(),
        Stdio::null,
    );
    let started = Instant::now();
    let clients = loop {
        let clients = group_leading_children(child.id());
        // The seeder and the load generator, both in their windows.
        if clients.len() >= 2 {
            break clients;
        }
        if started.elapsed() > LIMIT || child.try_wait().unwrap().is_some() {
            // SAFETY: kill(2) on the group this test created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            panic!("ccbt-bench never had two clients running: {clients:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // SAFETY: kill(2) on the process this test started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while clients.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = clients.into_iter().filter(|&pid| alive(pid)).collect();
    for &pid in &left {
        // SAFETY: kill(2) on a client group ccbt-bench (our child) started and left
        // behind, so that a failing run does not leave it running either.
        unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
    }
    assert!(left.is_empty(), "clients still running: {left:?}");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status:?}");
}
