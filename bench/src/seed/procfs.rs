//! What the kernel says about a seeder: which child of ours it is, how much CPU its
//! process group has used, and its peak resident set. Read straight from /proc so the
//! CPU can be taken over the load window alone, not over the seeder's start-up check.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The fields of `/proc/PID/stat` the benchmark uses.
#[derive(Clone, Debug, PartialEq)]
struct Stat {
    pid: u32,
    /// The command name: the executable's file name, cut to 15 bytes.
    comm: String,
    ppid: u32,
    pgrp: u32,
    /// utime + stime of the process (all its threads) plus cutime + cstime of the
    /// children it has reaped, in clock ticks.
    cpu_ticks: u64,
}

/// Parses one `/proc/PID/stat` line. The command name sits in parentheses and may hold
/// spaces or parentheses itself, so the fields are counted from its last `)`.
fn parse_stat(line: &str) -> Option<Stat> {
    let (head, tail) = line.rsplit_once(')')?;
    let (pid, comm) = head.split_once('(')?;
    // tail: " S ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    // stime cutime cstime ..." (fields 3.. of proc(5)).
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        pid: pid.trim().parse().ok()?,
        comm: comm.to_string(),
        ppid: field(4)? as u32,
        pgrp: field(5)? as u32,
        cpu_ticks: field(14)? + field(15)? + field(16)? + field(17)?,
    })
}

/// Every process in /proc that can still be read.
fn all_processes() -> Result<Vec<Stat>> {
    let mut stats = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let name = entry?.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        // A process can exit between the listing and the read.
        if let Ok(line) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            stats.extend(parse_stat(&line));
        }
    }
    Ok(stats)
}

/// Children of this process running `program` that lead their own process group (as
/// every `harness::process::Process` does).
pub fn children_running(program: &Path) -> Result<HashSet<u32>> {
    let me = std::process::id();
    let comm = comm_of(program);
    Ok(all_processes()?
        .into_iter()
        .filter(|s| s.ppid == me && s.pgrp == s.pid && s.comm == comm)
        .map(|s| s.pid)
        .collect())
}

/// The one child running `program` started since `before` was taken: the process just
/// started.
pub fn new_child(program: &Path, before: &HashSet<u32>) -> Result<u32> {
    let new: Vec<u32> = children_running(program)?
        .difference(before)
        .copied()
        .collect();
    match new[..] {
        [pid] => Ok(pid),
        _ => bail!(
            "expected one new {} process, found {new:?}",
            program.display()
        ),
    }
}

/// The kernel's name for a process running `program`: the file name as given to exec
/// (symbolic links not followed), cut to 15 bytes.
fn comm_of(program: &Path) -> String {
    let name = program.file_name().unwrap_or_default().to_string_lossy();
    name.bytes().take(15).map(char::from).collect()
}

/// CPU seconds used so far by every process in the group `pgrp` (threads included),
/// and by the children they reaped.
pub fn group_cpu_seconds(pgrp: u32) -> Result<f64> {
    let ticks: u64 = all_processes()?
        .iter()
        .filter(|s| s.pgrp == pgrp)
        .map(|s| s.cpu_ticks)
        .sum();
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// CPU seconds used so far by each thread of `pid` whose name (the one the program gave
/// it, `/proc/PID/task/TID/stat`) `wanted` accepts, by thread name. A thread that exits
/// between the listing and the read is left out; threads of the same name are summed.
pub fn threads_cpu_seconds(pid: u32, wanted: fn(&str) -> bool) -> Result<Vec<(String, f64)>> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("process {pid} is gone"))?;
    let per_second = clock_ticks_per_second();
    let mut threads = Vec::new();
    for task in tasks {
        let path = task?.path().join("stat");
        let Some(stat) = std::fs::read_to_string(path)
            .ok()
            .and_then(|l| parse_stat(&l))
        else {
            continue;
        };
        if !wanted(&stat.comm) {
            continue;
        }
        // A thread's cutime and cstime are 0: its ticks are its own. Threads of one name
        // (a shard's executor and its helper) count as one.
        let cpu = stat.cpu_ticks as f64 / per_second;
        match threads.iter_mut().find(|(name, _)| *name == stat.comm) {
            Some((_, total)) => *total += cpu,
            None => threads.push((stat.comm, cpu)),
        }
    }
    threads.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(threads)
}

/// The busiest thread's share of the CPU the threads used between `before` and `after`
/// (as [`threads_cpu_seconds`] gives them): 1/N when N threads shared the work evenly,
/// 1.0 when one did it all; `None` when they used none.
pub fn busiest_share(before: &[(String, f64)], after: &[(String, f64)]) -> Option<f64> {
    let used: Vec<f64> = after
        .iter()
        .map(|(name, cpu)| {
            let start = before.iter().find(|(n, _)| n == name).map_or(0.0, |b| b.1);
            (cpu - start).max(0.0)
        })
        .collect();
    let total: f64 = used.iter().sum();
    (total > 0.0).then(|| used.iter().copied().fold(0.0, f64::max) / total)
}

/// Restarts `pid`'s peak resident set from its current one (`5` to /proc/PID/clear_refs),
/// so the peak read after a window is the window's own: start-up checks map the whole
/// file for a moment (ccbt-uring's recheck through mmap, libtorrent's mmap storage), and
/// would otherwise be what the peak shows.
pub fn reset_peak_rss(pid: u32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .with_context(|| format!("cannot reset the peak RSS of process {pid}"))
}

/// The peak resident set of `pid` so far (VmHWM), in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is gone"))?;
    parse_vm_hwm(&status).context("no VmHWM in /proc/PID/status")
}

/// `VmHWM:  123456 kB` (a tab after the colon) -> 123456.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// `getconf CLK_TCK`: the unit of the CPU times in /proc (100 on every Linux in use).
fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_stat_lines() {
        let line = "4242 (python3 (x) y) S 100 4242 100 0 -1 4194560 500 0 0 0 \
                    150 25 7 3 20 0 5 0 1000 1000000 300 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                pid: 4242,
                comm: "python3 (x) y".to_string(),
                ppid: 100,
                pgrp: 4242,
                cpu_ticks: 150 + 25 + 7 + 3
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn names_processes_as_the_kernel_does() {
        assert_eq!(comm_of(Path::new("/usr/bin/python3")), "python3");
        assert_eq!(
            comm_of(Path::new("/x/a-very-long-program-name")),
            "a-very-long-pro"
        );
    }

    #[test]
    fn busiest_thread_share() {
        let t = |v: &[(&str, f64)]| -> Vec<(String, f64)> {
            v.iter().map(|(n, c)| (n.to_string(), *c)).collect()
        };
        let before = t(&[("shard-0", 1.0), ("shard-1", 1.0)]);
        let even = t(&[("shard-0", 3.0), ("shard-1", 3.0)]);
        assert_eq!(busiest_share(&before, &even), Some(0.5));
        // A thread that started during the window counts from zero.
        let one = t(&[("shard-0", 4.0), ("shard-1", 1.0), ("shard-2", 1.0)]);
        assert_eq!(busiest_share(&before, &one), Some(0.75));
        assert_eq!(busiest_share(&before, &before), None);
        let mine = threads_cpu_seconds(std::process::id(), |_| true).unwrap();
        assert!(!mine.is_empty());
    }

    #[test]
    fn reads_peak_rss() {
        let status = "Name:\tccbt-uring\nVmPeak:\t  900 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm(status), Some(12345));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }

    #[test]
    fn finds_and_measures_its_own_child() {
        use crate::harness::process::Process;
        let sh = Path::new("sh");
        let before = children_running(sh).unwrap();
        let mut cmd = Command::new(sh);
        // Burn a little CPU, then wait to be stopped.
        cmd.args([
            "-c",
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 60",
        ]);
        let mut process = Process::start("busy sh", cmd).unwrap();
        let pid = new_child(sh, &before).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(group_cpu_seconds(pid).unwrap() > 0.0);
        assert!(peak_rss_kib(pid).unwrap() > 0);
        process.stop().unwrap();
    }
}
