//! The rechecking contenders; each run checks the whole data set once and gives decimal
//! GB/s. Every process started here is ours, bounded in time, and stopped by its own handle.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::dataset::DataSet;
use ccbt_testkit::clients::{Client, DEBIAN_PYTHON};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contender {
    Ccbt,
    Libtorrent,
    Transmission,
}

impl Contender {
    pub const ALL: [Contender; 3] = [Self::Ccbt, Self::Libtorrent, Self::Transmission];

    pub fn name(self) -> &'static str {
        match self {
            Self::Ccbt => "ccbt-uring verify",
            Self::Libtorrent => "python3-libtorrent recheck",
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
            Self::Libtorrent => Client::Libtorrent.missing(),
            Self::Transmission => Client::Transmission.missing(),
        }
    }

    /// Rechecks the data set once; decimal GB/s.
    pub fn run(self, ccbt: &Path, set: &DataSet) -> Result<f64> {
        match self {
            Self::Ccbt => ccbt_verify(ccbt, set),
            Self::Libtorrent => libtorrent_recheck(set),
            Self::Transmission => transmission_verify(set),
        }
    }
}

/// `ccbt-uring verify --json`, its own figure (bytes hashed / wall time of the recheck).
fn ccbt_verify(ccbt: &Path, set: &DataSet) -> Result<f64> {
    let out = Command::new(ccbt)
        .arg("verify")
        .arg(&set.torrent)
        .arg("--data")
        .arg(&set.save_dir)
        .arg("--json")
        .output()?;
    if !out.status.success() {
        bail!(
            "ccbt-uring verify failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    json["gb_per_s"].as_f64().context("no gb_per_s")
}

/// python3-libtorrent (Debian's, under /usr/bin/python3) with default settings, no resume
/// data: time from `add_torrent` until the check is done. Network off: no DHT, LSD,
/// UPnP or NAT-PMP; it listens on 127.0.0.1 only.
fn libtorrent_recheck(set: &DataSet) -> Result<f64> {
    const SCRIPT: &str = r#"
import sys, time, libtorrent as lt
s = lt.session({'listen_interfaces': '127.0.0.1:0', 'enable_dht': False, 'enable_lsd': False,
                'enable_upnp': False, 'enable_natpmp': False})
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
t1 = time.perf_counter()
if h.status().progress < 1.0:
    sys.exit('libtorrent did not find the data complete: progress %f' % h.status().progress)
print(t1 - t0)
"#;
    let out = Command::new(DEBIAN_PYTHON)
        .args(["-c", SCRIPT])
        .arg(&set.torrent)
        .arg(&set.save_dir)
        .output()
        .context("cannot run /usr/bin/python3 (apt-get install python3-libtorrent)")?;
    if !out.status.success() {
        bail!(
            "libtorrent recheck failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok(set.bytes as f64 / seconds / 1e9)
}

/// `transmission-cli -v` (Transmission 3.00) with DHT, LPD, PEX, uTP and port mapping off,
/// bound to 127.0.0.1. It reports progress as `Verifying local files (P%, ...)` roughly
/// five times a second; the rate is taken between its first and last progress reports, so
/// its start-up time is not counted against it.
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
    let mut child = Command::new("stdbuf")
        .args(["-o0", "transmission-cli", "-v"])
        .arg("-w")
        .arg(&set.save_dir)
        .arg("-g")
        .arg(config.path())
        .arg(&set.torrent)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run transmission-cli (apt-get install transmission-cli)")?;
    let mut stdout = child.stdout.take().expect("piped");
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut pending = Vec::new();
    let mut samples: Vec<(Instant, f64)> = Vec::new();
    let mut buf = [0u8; 4096];
    let result = 'read: loop {
        if Instant::now() > deadline {
            break Err(anyhow::anyhow!(
                "transmission-cli did not finish verifying in 120 s"
            ));
        }
        let n = stdout.read(&mut buf)?;
        if n == 0 {
            break Err(anyhow::anyhow!("transmission-cli exited while verifying"));
        }
        pending.extend_from_slice(&buf[..n]);
        // Status lines end in '\r' (redrawn in place) or '\n'.
        while let Some(end) = pending.iter().position(|&b| b == b'\r' || b == b'\n') {
            let line = String::from_utf8_lossy(&pending[..end]).into_owned();
            pending.drain(..=end);
            if let Some(pct) = verifying_percent(&line) {
                samples.push((Instant::now(), pct));
            } else if samples.is_empty() && line.starts_with("Seeding") {
                // It reports once a second: a small torrent is verified before the first
                // report, and there is nothing to time it by.
                break 'read Err(anyhow::anyhow!(
                    "transmission-cli verified it before its first progress report: too \
                     little data to time"
                ));
            } else if !samples.is_empty() && !line.trim().is_empty() {
                samples.push((Instant::now(), 100.0));
                break;
            }
        }
        if samples.last().is_some_and(|s| s.1 >= 100.0) {
            break rate(&samples, set.bytes);
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// `Verifying local files (12.34%, 12.34% valid)` -> 12.34.
fn verifying_percent(line: &str) -> Option<f64> {
    let rest = line.trim().strip_prefix("Verifying local files (")?;
    rest.split('%').next()?.trim().parse().ok()
}

fn rate(samples: &[(Instant, f64)], bytes: u64) -> Result<f64> {
    let (first, last) = (samples.first().unwrap(), samples.last().unwrap());
    let seconds = last.0.duration_since(first.0).as_secs_f64();
    if seconds <= 0.0 || last.1 <= first.1 {
        bail!("too few Transmission progress reports to time it");
    }
    Ok((last.1 - first.1) / 100.0 * bytes as f64 / seconds / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_transmission_progress() {
        assert_eq!(
            verifying_percent("Verifying local files (12.34%, 12.34% valid)   "),
            Some(12.34)
        );
        assert_eq!(
            verifying_percent("Seeding, uploading to 0 of 0 peer(s), 0 kB/s [None]"),
            None
        );
        let t0 = Instant::now();
        let samples = [(t0, 10.0), (t0 + Duration::from_secs(1), 60.0)];
        let gb_per_s = rate(&samples, 2_000_000_000).unwrap();
        assert!((gb_per_s - 1.0).abs() < 1e-9);
        assert!(rate(&samples[..1], 1).is_err());
    }
}
