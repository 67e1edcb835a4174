//! Children that lead their own process group (`Command::process_group(0)`), so a client's
//! own children (transmission under its wrapper script, python under `/usr/bin/time`)
//! stop with it.

pub use nix::sys::signal::Signal;

use nix::sys::signal::killpg;
use nix::unistd::Pid;

/// Sends `signal` to the process group led by `leader`, a child of ours. A group that is
/// already gone is not an error: stopping is idempotent.
pub fn signal_group(leader: u32, signal: Signal) {
    let Ok(pid) = i32::try_from(leader) else {
        return;
    };
    // Never 0 or 1: that would name our own group or every process.
    if pid > 1 {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    /// Running, not gone and not a zombie (this sandbox's init may never reap one).
    fn running(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, s)| !s.starts_with('Z'))
        })
    }

    #[test]
    fn stops_the_leader_and_its_children() {
        let mut leader = Command::new("sh")
            .args(["-c", "sleep 30 & echo $!; wait"])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(leader.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let background = line.trim().to_string();
        assert!(running(&background));
        signal_group(leader.id(), Signal::SIGKILL);
        assert!(!leader.wait().unwrap().success());
        let deadline = Instant::now() + Duration::from_secs(5);
        while running(&background) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(!running(&background), "the leader's child survived");
        // Gone groups, and 0 (our own group), are no-ops.
        signal_group(leader.id(), Signal::SIGTERM);
        signal_group(0, Signal::SIGTERM);
    }
}
