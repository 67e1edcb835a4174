//! Children that lead their own process group (`Command::process_group(0)`), so a client's
//! own children (transmission under its wrapper script, python under `/usr/bin/time`)
//! stop with it.

use std::fs::File;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub use nix::sys::signal::Signal;

use nix::sys::signal::killpg;
use nix::unistd::Pid;

/// Starts `cmd` as the leader of a new process group, stdin closed, stdout and stderr
/// both into a new file at `log`.
pub fn spawn_logged(cmd: &mut Command, log: &Path) -> io::Result<Child> {
    let out = File::create(log)?;
    let err = out.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
}

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
    use std::time::{Duration, Instant};

    /// Running, not gone and not a zombie (this sandbox's init may never reap one).
    fn running(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, s)| !s.starts_with('Z'))
        })
    }

    #[test]
    fn a_logged_child_leads_its_group_and_writes_its_log() {
        let dir = std::env::temp_dir().join(format!("ccbt-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; cut -d' ' -f5 /proc/$$/stat"]);
        let mut child = spawn_logged(&mut cmd, &log).unwrap();
        assert!(child.wait().unwrap().success());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("out\n") && text.contains("err\n"), "{text}");
        let group: u32 = text.lines().last().unwrap().trim().parse().unwrap();
        assert_eq!(group, child.id());
        std::fs::remove_dir_all(&dir).unwrap();
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
