//! The machine's limit for seeding over loopback: what one TCP stream moves through
//! 127.0.0.1 (`iperf3`), measured in the same run as the seeders.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::harness::ports::Ports;
use crate::harness::process::{Process, POLL};

/// Length of the iperf3 run.
const SECONDS: u64 = 5;

/// Time the iperf3 server gets to listen.
const LISTEN_LIMIT: Duration = Duration::from_secs(10);

/// One TCP stream over loopback in MB/s (10^6 bytes), or `None` if iperf3 is missing.
pub fn loopback_mb_per_s(ports: &mut Ports) -> Result<Option<f64>> {
    let installed = Command::new("iperf3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        return Ok(None);
    }
    let port = ports.next()?.to_string();
    let mut server_cmd = Command::new("iperf3");
    // --forceflush: its log is a file, and the line waited for must not sit in a buffer.
    server_cmd.args(["-s", "-1", "--forceflush", "-B", "127.0.0.1", "-p", &port]);
    let mut server = Process::start("iperf3 -s", server_cmd)?;
    // Not `wait_listening`: a probe connection would be the one client `-1` serves.
    let deadline = Instant::now() + LISTEN_LIMIT;
    while !server.done(Some("Server listening"))? {
        if Instant::now() > deadline {
            bail!("iperf3 -s does not listen\n{}", server.log_tail());
        }
        std::thread::sleep(POLL);
    }
    let mut client_cmd = Command::new("iperf3");
    client_cmd.args([
        "-c",
        "127.0.0.1",
        "-p",
        &port,
        "-J",
        "-t",
        &SECONDS.to_string(),
    ]);
    let mut client = Process::start("iperf3 -c", client_cmd)?;
    client.wait_success(Instant::now() + Duration::from_secs(SECONDS + 20))?;
    parse_received(&client.log()).map(Some)
}

/// `end.sum_received.bits_per_second` of `iperf3 -J`, in MB/s.
fn parse_received(json: &str) -> Result<f64> {
    let v: serde_json::Value = serde_json::from_str(json).context("iperf3 -J output")?;
    let bits = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .with_context(|| format!("no end.sum_received in iperf3's report: {json}"))?;
    Ok(bits / 8.0 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_iperf3_json() {
        let json = r#"{"start":{},"end":{"sum_sent":{"bits_per_second":9e10},
            "sum_received":{"bits_per_second":8e10}}}"#;
        assert_eq!(parse_received(json).unwrap(), 10_000.0);
        assert!(parse_received("{}").is_err());
    }
}
