//! The rechecking contenders; each run checks the whole data set once and gives decimal
//! GB/s. Every process started here is ours, bounded in time, and stopped by its own handle.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::dataset::DataSet;
use ccbt_testkit::clients::{Client, DEBIAN_PYTHON};
use ccbt_testkit::process::{signal_group, Signal};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    Ccbt,
    /// libtorrent with its default settings (`hashing_threads` 1).
    Libtorrent,
    /// libtorrent with `hashing_threads` 2, one per core here: in the table so that
    /// "its default is its fastest setting here" is measured in the same run, not assumed.
    LibtorrentTwoHashers,
    Transmission,
}

impl Contender {
    pub const ALL: [Contender; 4] = [
        Self::Ccbt,
        Self::Libtorrent,
        Self::LibtorrentTwoHashers,
        Self::Transmission,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ccbt => "ccbt-uring verify",
            Self::Libtorrent => "python3-libtorrent recheck",
            Self::LibtorrentTwoHashers => "python3-libtorrent recheck, hashing_threads 2",
            Self::Transmission => "Transmission 3.00 verify",
        }
    }

    pub fn is_ours(self) -> bool {
        self == Self::Ccbt
    }

    /// Why this contender cannot run here (what to install), if it cannot.
    pub fn missing(self) -> Option<&'static str> {
        match self {
            Self::Ccbt => None,
            Self::Libtorrent | Self::LibtorrentTwoHashers => Client::Libtorrent.missing(),
            Self::Transmission => Client::Transmission.missing(),
        }
    }

    /// Rechecks the data set once; decimal GB/s.
    pub fn run(self, ccbt: &Path, set: &DataSet) -> Result<f64> {
        match self {
            Self::Ccbt => ccbt_verify(ccbt, set),
            Self::Libtorrent => libtorrent_recheck(set, 1),
            Self::LibtorrentTwoHashers => libtorrent_recheck(set, 2),
            Self::Transmission => transmission_verify(set),
        }
    }
}

/// Longest any one recheck may take, start-up included.
const RUN_LIMIT: Duration = Duration::from_secs(300);

/// Where each contender's clock stops, for the Markdown.
pub fn clock_note() -> &'static str {
    "ccbt-uring verify: its exit, once it has printed its summary; python3-libtorrent: the \
     line its wrapper prints once the check is done, Python's start-up and `import \
     libtorrent` included; Transmission: its first `Seeding` status line, once it has \
     verified the data"
}

/// How one timed run went: the seconds from just before its process was started to its
/// completion line (or exit), and what it printed on stdout by then.
#[derive(Debug)]
struct Timed {
    seconds: f64,
    stdout: String,
}

/// Starts `cmd` with stdout piped and gives the seconds from just before the start to the
/// first stdout line `done` accepts, or to the process's exit if `done` is `None`. Lines
/// end at `\n` or `\r` (Transmission redraws its status line in place). The process leads
/// a group of its own, which is killed (by the leader's PID) once it is timed, and after
/// [`RUN_LIMIT`] in any case; a run past the limit, an exit before the line, or a failed
/// exit is an error with the end of its stderr.
fn timed(mut cmd: Command, what: &str, done: Option<fn(&str) -> bool>) -> Result<Timed> {
    let started = Instant::now();
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {what}"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (lines, arrived) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || read_lines(stdout, &lines));
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = started + RUN_LIMIT;
    let mut printed = String::new();
    let outcome = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match arrived.recv_timeout(left) {
            Ok(line) => {
                printed += &line;
                printed.push('\n');
                if done.is_some_and(|done| done(&line)) {
                    break Ok(started.elapsed().as_secs_f64());
                }
            }
            // stdout closed: the process is exiting.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait()?;
                let seconds = started.elapsed().as_secs_f64();
                break match (done, status.success()) {
                    (None, true) => Ok(seconds),
                    (None, false) => Err(format!("exited with {status}")),
                    (Some(_), _) => Err(format!("exited ({status}) before its completion line")),
                };
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                break Err(format!("not done within {} s", RUN_LIMIT.as_secs()));
            }
        }
    };
    // Whatever it started goes too, so the pipes close and the readers end.
    signal_group(child.id(), Signal::SIGKILL);
    let _ = child.wait();
    let _ = reader.join();
    let stderr = errors.join().unwrap_or_default();
    match outcome {
        Ok(seconds) => Ok(Timed {
            seconds,
            stdout: printed,
        }),
        Err(why) => {
            let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!("{what} {why}: {}", tail.join(" / "))
        }
    }
}

/// Sends each line of `from` (ended by `\n` or `\r`, empty ones left out) as it arrives,
/// until it ends or the receiver is gone.
fn read_lines(mut from: impl Read, to: &std::sync::mpsc::Sender<String>) {
    let mut pending = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Some(end) = pending.iter().position(|&b| b == b'\r' || b == b'\n') {
            let line = String::from_utf8_lossy(&pending[..end]).trim().to_string();
            pending.drain(..=end);
            if !line.is_empty() && to.send(line).is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let _ = to.send(String::from_utf8_lossy(&pending).trim().to_string());
    }
}

/// `ccbt-uring verify --json`, timed to its exit; its summary must say the data is
/// complete. Its own `gb_per_s` (which leaves out its start-up) is not used.
fn ccbt_verify(ccbt: &Path, set: &DataSet) -> Result<f64> {
    let mut cmd = Command::new(ccbt);
    cmd.arg("verify")
        .arg(&set.torrent)
        .arg("--data")
        .arg(&set.save_dir)
        .arg("--json");
    let run = timed(cmd, "ccbt-uring verify", None)?;
    let json: serde_json::Value =
        serde_json::from_str(&run.stdout).context("ccbt-uring verify's JSON summary")?;
    if json["complete"].as_bool() != Some(true) {
        bail!("ccbt-uring verify did not find the data complete: {json}");
    }
    Ok(set.bytes as f64 / run.seconds / 1e9)
}

/// What the libtorrent wrapper prints once the check is done and the data complete.
const LT_CHECKED: &str = "lt_recheck: checked";

/// python3-libtorrent (Debian's, under /usr/bin/python3) with default settings but
/// `hashing_threads` (its default is 1), no resume data: timed from the start of Python to
/// the wrapper's line once the check is done. Network off: no DHT, LSD, UPnP or NAT-PMP; it
/// listens on 127.0.0.1 only.
fn libtorrent_recheck(set: &DataSet, hashing_threads: u32) -> Result<f64> {
    const SCRIPT: &str = r#"
import sys, time, libtorrent as lt
s = lt.session({'listen_interfaces': '127.0.0.1:0', 'enable_dht': False, 'enable_lsd': False,
                'enable_upnp': False, 'enable_natpmp': False,
                'hashing_threads': int(sys.argv[3])})
p = lt.add_torrent_params()
p.ti = lt.torrent_info(sys.argv[1])
p.save_path = sys.argv[2]
t0 = time.perf_counter()
h = s.add_torrent(p)
while True:
    st = h.status()
    if st.state not in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data) and st.state != 0:
        if time.perf_counter() - t0 > 0.05 or st.progress >= 1.0:
            break
    time.sleep(0.002)
if h.status().progress < 1.0:
    sys.exit('libtorrent did not find the data complete: progress %f' % h.status().progress)
print('lt_recheck: checked', flush=True)
"#;
    let mut cmd = Command::new(DEBIAN_PYTHON);
    cmd.args(["-c", SCRIPT])
        .arg(&set.torrent)
        .arg(&set.save_dir)
        .arg(hashing_threads.to_string());
    let run = timed(
        cmd,
        "python3-libtorrent recheck (/usr/bin/python3; apt-get install python3-libtorrent)",
        Some(|line| line == LT_CHECKED),
    )?;
    Ok(set.bytes as f64 / run.seconds / 1e9)
}

/// `transmission-cli -v` (Transmission 3.00) with DHT, LPD, PEX, uTP and port mapping off,
/// bound to 127.0.0.1, timed from its start to its first `Seeding` status line: it
/// verifies first (`Verifying local files (P%, ...)`) and only seeds once the data checked
/// out complete.
fn transmission_verify(set: &DataSet) -> Result<f64> {
    let config = tempfile::tempdir()?;
    let port = 20000 + (std::process::id() % 20000);
    std::fs::write(
        config.path().join("settings.json"),
        format!(
            r#"{{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
                "port-forwarding-enabled": false, "bind-address-ipv4": "127.0.0.1",
                "bind-address-ipv6": "::1", "peer-port": {port}, "message-level": 0}}"#
        ),
    )?;
    // Its status line is printf'd without a newline: unbuffer stdout or nothing arrives.
    let mut cmd = Command::new("stdbuf");
    cmd.args(["-o0", "transmission-cli", "-v"])
        .arg("-w")
        .arg(&set.save_dir)
        .arg("-g")
        .arg(config.path())
        .arg(&set.torrent);
    let run = timed(
        cmd,
        "transmission-cli (apt-get install transmission-cli)",
        Some(seeding),
    )?;
    Ok(set.bytes as f64 / run.seconds / 1e9)
}

/// `Seeding, uploading to 0 of 0 peer(s), 0 kB/s [None]`: verified and complete.
fn seeding(line: &str) -> bool {
    line.starts_with("Seeding")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_transmissions_completion_line() {
        assert!(seeding(
            "Seeding, uploading to 0 of 0 peer(s), 0 kB/s [None]"
        ));
        assert!(!seeding("Verifying local files (12.34%, 12.34% valid)"));
        assert!(!seeding("Progress: 2.6%, dl from 1 of 1 peers"));
    }

    #[test]
    fn times_to_the_line_or_to_the_exit() {
        // The line comes at once; the process would go on for a minute: it is stopped.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "printf 'a\rdone\n'; sleep 60"]);
        let run = timed(cmd, "sh", Some(|l| l == "done")).unwrap();
        assert!(run.seconds < 10.0, "{}", run.seconds);
        assert_eq!(
            run.stdout,
            "a
done
"
        );

        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 0.3; echo out"]);
        let run = timed(cmd, "sh", None).unwrap();
        assert!(run.seconds >= 0.3, "{}", run.seconds);
        assert_eq!(
            run.stdout,
            "out
"
        );

        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo nope >&2; exit 3"]);
        let e = timed(cmd, "sh", None).unwrap_err().to_string();
        assert!(e.contains("exited with") && e.contains("nope"), "{e}");

        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo something"]);
        let e = timed(cmd, "sh", Some(|l| l == "done"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("before its completion line"), "{e}");
    }
}
