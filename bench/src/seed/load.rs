//! One load window: `ccbt-loadgen leech` with K leechers against a seeder, run under
//! `/usr/bin/time` so its own CPU shows whether the load generator was the bottleneck.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::harness::process::Process;

/// Time the load generator gets past its window to report and exit.
const REPORT_GRACE: Duration = Duration::from_secs(30);

/// The load: how many leechers, for how long, how deep their request pipelines.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub leechers: u32,
    pub seconds: u64,
    pub pipeline: u32,
}

/// What the load generator measured.
#[derive(Clone, Debug, PartialEq)]
pub struct Measured {
    /// Payload bytes received (and hash-checked).
    pub bytes: u64,
    pub mb_per_s: f64,
    /// Block latency, request sent to block received, in milliseconds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Connections made over the window, re-dials included, and how many were dropped.
    pub connections: u64,
    pub drops: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// CPU seconds of the load generator itself.
    pub loadgen_cpu_s: f64,
}

/// Runs `load` against 127.0.0.1:`port` and waits for the report.
pub fn run(loadgen: &Path, torrent: &Path, port: u16, load: Load) -> Result<Measured> {
    let mut cmd = Command::new(loadgen);
    cmd.arg("leech")
        .arg("--torrent")
        .arg(torrent)
        .args(["--target", &format!("127.0.0.1:{port}")])
        .args(["--peers", &load.leechers.to_string()])
        .args(["--pipeline", &load.pipeline.to_string()])
        .args(["--duration", &load.seconds.to_string(), "--json"]);
    let mut process = Process::start_timed("ccbt-loadgen leech", cmd)?;
    process.wait_success(Instant::now() + Duration::from_secs(load.seconds) + REPORT_GRACE)?;
    let log = process.log();
    let json = log
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .with_context(|| format!("no JSON summary from ccbt-loadgen:\n{log}"))?;
    parse_summary(json, process.usage()?.cpu_seconds)
}

/// Reads the load generator's `--json` summary.
fn parse_summary(json: &str, loadgen_cpu_s: f64) -> Result<Measured> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    let count = |key: &str| {
        v[key]
            .as_u64()
            .with_context(|| format!("no {key} in {json}"))
    };
    let ms = |key: &str| {
        v["latency_us"][key]
            .as_u64()
            .map_or(f64::NAN, |us| us as f64 / 1e3)
    };
    Ok(Measured {
        bytes: count("bytes")?,
        mb_per_s: v["mb_per_s"].as_f64().context("no mb_per_s")?,
        p50_ms: ms("p50"),
        p99_ms: ms("p99"),
        connections: count("connections")?,
        drops: count("disconnects")?,
        errors: count("errors")?,
        first_error: v["error_messages"][0].as_str().map(str::to_string),
        loadgen_cpu_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary() {
        let json = r#"{"mode":"leech","seconds":5.0,"bytes":5000000000,"mb_per_s":994.6,
            "connections":50,"errors":0,"disconnects":2,"connect_failures":0,
            "latency_us":{"p50":51359,"p99":92287,"p999":111999,"max":144383,"samples":304926},
            "per_second":[1],"error_messages":[],"stuck_shards":0}"#;
        let m = parse_summary(json, 3.5).unwrap();
        assert_eq!(m.bytes, 5_000_000_000);
        assert_eq!((m.p50_ms, m.p99_ms), (51.359, 92.287));
        assert_eq!((m.connections, m.drops, m.errors), (50, 2, 0));
        assert_eq!((m.first_error, m.loadgen_cpu_s), (None, 3.5));

        let failed = r#"{"bytes":0,"mb_per_s":0.0,"connections":1,"errors":3,"disconnects":1,
            "error_messages":["piece 7 from 127.0.0.1:1 failed its hash"]}"#;
        let m = parse_summary(failed, 0.1).unwrap();
        assert!(m.p99_ms.is_nan());
        assert_eq!(m.errors, 3);
        assert_eq!(
            m.first_error.as_deref(),
            Some("piece 7 from 127.0.0.1:1 failed its hash")
        );
        assert!(parse_summary("{}", 0.0).is_err());
    }
}
