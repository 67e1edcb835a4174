//! The machine's own limits, measured in the same run as the contenders so a figure can be
//! read as a share of what this machine can do at all: SHA-1 hashing on every core
//! (OpenSSL), sequential O_DIRECT reads from the disk (fio), TCP over loopback (iperf3).
//! A tool that is not installed gives [`Limit::Missing`], never an error.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::harness::ports::Ports;
use crate::harness::process::Process;

/// A limit as measured, or the tool that measures it is missing.
#[derive(Debug, Clone, PartialEq)]
pub enum Limit {
    /// In the unit the measuring function names.
    Measured(f64),
    /// What to install to measure it.
    Missing(&'static str),
}

/// `ccbt-bench limits`: every limit once, for a look at the machine before a run.
#[derive(clap::Args)]
pub struct LimitsArgs {
    /// A large file on the disk to measure with fio (skipped without one).
    #[arg(long)]
    file: Option<PathBuf>,
}

/// A table of the machine's limits; a limit that cannot be measured says why.
pub fn run(args: LimitsArgs) -> Result<String> {
    let show = |limit: Result<Limit>, unit: &str| match limit {
        Ok(Limit::Measured(value)) => format!("{value:.2} {unit}"),
        Ok(Limit::Missing(install)) => format!("not measured: {install}"),
        Err(e) => format!("failed: {e:#}"),
    };
    let mut out = String::from("| limit | figure |\n|---|---:|\n");
    out += &format!(
        "| openssl speed -evp sha1, all cores | {} |\n",
        show(openssl_sha1_all_cores(), "GB/s")
    );
    if let Some(file) = &args.file {
        out += &format!(
            "| fio O_DIRECT sequential read of {} | {} |\n",
            file.display(),
            show(fio_direct_read(file), "GB/s")
        );
    }
    out += &format!(
        "| iperf3 over 127.0.0.1, one stream | {} |\n",
        show(iperf3_loopback(), "MB/s")
    );
    Ok(out)
}

/// Runs `cmd`; `None` if its program is not installed.
fn output(cmd: &mut Command) -> Result<Option<Output>> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(out) => Ok(Some(out)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("cannot run {cmd:?}")),
    }
}

/// SHA-1 over 1 MiB buffers on every core, in decimal GB/s: `openssl speed -multi <cores>
/// -evp sha1`, summed over the cores by OpenSSL. The buffer stays in the CPU cache, so
/// this is the hashing ceiling of any recheck.
pub fn openssl_sha1_all_cores() -> Result<Limit> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let Some(out) = output(Command::new("openssl").stderr(Stdio::null()).args([
        "speed",
        "-mr",
        "-multi",
        &cores.to_string(),
        "-evp",
        "sha1",
        "-bytes",
        "1048576",
        "-seconds",
        "2",
    ]))?
    else {
        return Ok(Limit::Missing("apt-get install openssl"));
    };
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(Limit::Measured(parse_openssl(&text)? / 1e9))
}

/// Bytes per second from `openssl speed -mr -multi N`: the `+F:` line not prefixed by
/// `Got:` (those are the per-core ones) holds the total; its last field is the rate.
fn parse_openssl(text: &str) -> Result<f64> {
    let line = text
        .lines()
        .find(|l| l.starts_with("+F:"))
        .with_context(|| format!("no +F: line in openssl output:\n{text}"))?;
    line.rsplit(':')
        .next()
        .unwrap_or("")
        .trim()
        .parse()
        .context("openssl +F: value")
}

/// How fio reads a file sequentially, to find the disk's ceiling: with O_DIRECT at a block
/// size and queue depth (what the device gives, whatever is cached), or buffered from a
/// file dropped from the page cache (what the kernel's read-ahead gives, which is how
/// `ccbt-uring verify` reads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FioRead {
    Direct { block_mib: u32, iodepth: u32 },
    Buffered { block_mib: u32, iodepth: u32 },
}

impl FioRead {
    /// What the table calls it.
    pub fn name(self) -> String {
        match self {
            FioRead::Direct { block_mib, iodepth } => {
                format!("fio O_DIRECT read, {block_mib} MiB blocks, {iodepth} in flight")
            }
            FioRead::Buffered { block_mib, iodepth } => {
                format!("fio buffered read, {block_mib} MiB blocks, {iodepth} in flight")
            }
        }
    }

    /// fio's options for it, and the I/O engines to try in turn.
    fn options(self) -> (Vec<String>, &'static [&'static str]) {
        let (direct, block_mib, iodepth) = match self {
            FioRead::Direct { block_mib, iodepth } => (1, block_mib, iodepth),
            // Through the page cache with the kernel's read-ahead (fio drops the file's
            // cached pages before it starts). Many reads in flight: one synchronous read at
            // a time (`psync`) made 0.13-0.19 GB/s here, where O_DIRECT made 0.7-1.1.
            FioRead::Buffered { block_mib, iodepth } => (0, block_mib, iodepth),
        };
        (
            vec![
                format!("--direct={direct}"),
                format!("--bs={block_mib}M"),
                format!("--iodepth={iodepth}"),
            ],
            &["io_uring", "libaio"],
        )
    }
}

/// Sequential O_DIRECT read of all of `file` in decimal GB/s, 1 MiB blocks, 32 in flight:
/// what `ccbt-bench limits` shows.
pub fn fio_direct_read(file: &Path) -> Result<Limit> {
    fio_read(
        file,
        FioRead::Direct {
            block_mib: 1,
            iodepth: 32,
        },
    )
}

/// A sequential read of all of `file` by fio as `how` says, read-only, in decimal GB/s
/// (io_uring, or libaio if io_uring is refused, for O_DIRECT).
pub fn fio_read(file: &Path, how: FioRead) -> Result<Limit> {
    let size = std::fs::metadata(file)
        .with_context(|| format!("cannot stat {}", file.display()))?
        .len();
    let (options, engines) = how.options();
    let mut failures = Vec::new();
    for engine in engines {
        let Some(out) = output(
            Command::new("fio")
                .args(["--name=seqread", "--rw=read", "--readonly"])
                .args(&options)
                .arg("--output-format=json")
                .arg(format!("--ioengine={engine}"))
                .arg(format!("--size={size}"))
                .arg(format!("--filename={}", file.display())),
        )?
        else {
            return Ok(Limit::Missing("apt-get install fio"));
        };
        match parse_fio(&String::from_utf8_lossy(&out.stdout)) {
            Ok(bytes_per_s) if out.status.success() => {
                return Ok(Limit::Measured(bytes_per_s / 1e9))
            }
            Ok(_) => failures.push(format!("{engine}: fio exited with {}", out.status)),
            Err(e) => failures.push(format!(
                "{engine}: {e:#}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    }
    bail!(
        "{} failed on {}: {}",
        how.name(),
        file.display(),
        failures.join("; ")
    )
}

/// Read bandwidth in bytes per second from fio's `--output-format=json`.
fn parse_fio(json: &str) -> Result<f64> {
    // fio may print notes before the JSON document.
    let start = json.find('{').context("no JSON in fio output")?;
    let doc: serde_json::Value = serde_json::from_str(&json[start..]).context("fio JSON")?;
    let job = &doc["jobs"][0];
    let error = job["error"].as_i64().context("no jobs[0].error")?;
    if error != 0 {
        bail!("fio job failed with error {error}");
    }
    let bw = job["read"]["bw_bytes"]
        .as_f64()
        .context("no jobs[0].read.bw_bytes")?;
    if bw <= 0.0 {
        bail!("fio read nothing");
    }
    Ok(bw)
}

/// How long the iperf3 client sends, and how long the server gets to start listening.
const IPERF3_SECONDS: u64 = 5;
const IPERF3_START_LIMIT: Duration = Duration::from_secs(5);

/// TCP throughput over 127.0.0.1 in decimal MB/s, one stream, as the receiver counts it:
/// a one-shot `iperf3 -s -1` on a free port and `iperf3 -c` against it for five seconds.
pub fn iperf3_loopback() -> Result<Limit> {
    if output(Command::new("iperf3").arg("--version"))?.is_none() {
        return Ok(Limit::Missing("apt-get install iperf3"));
    }
    let port = Ports::default().next()?.to_string();
    let mut server = Command::new("iperf3");
    server.args(["-s", "-1", "-B", "127.0.0.1", "-p", &port]);
    let server = Process::start("iperf3 server", server)?;
    // Probing the port with a bare connection would use up the one-shot server, so the
    // client itself retries until the server listens.
    let deadline = Instant::now() + IPERF3_START_LIMIT;
    loop {
        let out = output(Command::new("iperf3").args([
            "-c",
            "127.0.0.1",
            "-p",
            &port,
            "--connect-timeout",
            "1000",
            "-t",
            &IPERF3_SECONDS.to_string(),
            "-J",
        ]))?
        .context("iperf3 vanished")?;
        let text = String::from_utf8_lossy(&out.stdout);
        match parse_iperf3(&text) {
            Ok(bits_per_s) => return Ok(Limit::Measured(bits_per_s / 8.0 / 1e6)),
            Err(e) if !text.contains("Connection refused") || Instant::now() > deadline => {
                bail!("iperf3 failed: {e:#}\n{}", server.log_tail())
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Received bits per second from `iperf3 -c ... -J`.
fn parse_iperf3(json: &str) -> Result<f64> {
    let doc: serde_json::Value = serde_json::from_str(json).context("iperf3 JSON")?;
    if let Some(error) = doc["error"].as_str() {
        bail!("{error}");
    }
    doc["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no end.sum_received.bits_per_second")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openssl_totals() {
        // Captured from OpenSSL 3.0, `-mr -multi 2`.
        let text = "Got: +F:25:sha1:580911104.00 from 0\n\
                    Got: +F:25:sha1:664797184.00 from 1\n\
                    +F:25:sha1:1245708288.00\n";
        assert_eq!(parse_openssl(text).unwrap(), 1245708288.0);
        assert!(parse_openssl("Forked child 0\n").is_err());
    }

    #[test]
    fn reads_fio_bandwidth() {
        // Captured from fio 3.33, trimmed to the fields that matter.
        let ok = r#"{"fio version": "fio-3.33", "jobs": [{"jobname": "seqread", "error": 0,
            "read": {"io_bytes": 536870912, "io_kbytes": 524288, "bw_bytes": 1157049379,
            "bw": 1129931, "iops": 1103.448276, "runtime": 464}}]}"#;
        assert_eq!(parse_fio(ok).unwrap(), 1157049379.0);
        let noted = format!("fio: note: something\n{ok}");
        assert_eq!(parse_fio(&noted).unwrap(), 1157049379.0);
        let failed = r#"{"fio version": "fio-3.33", "jobs": [{"jobname": "x", "error": 2,
            "read": {"io_bytes": 0, "bw_bytes": 0}}]}"#;
        assert!(parse_fio(failed).is_err());
        assert!(parse_fio("fio: refusing extend of file").is_err());
    }

    #[test]
    fn reads_iperf3_throughput() {
        // Captured from iperf 3.12, trimmed.
        let ok = r#"{"start": {"version": "iperf 3.12"}, "intervals": [], "end": {"streams": [],
            "sum_sent": {"start": 0, "end": 1.000083, "seconds": 1.000083, "bytes": 1149501440,
            "bits_per_second": 9195248314.389906, "retransmits": 5, "sender": true},
            "sum_received": {"start": 0, "end": 1.000112, "seconds": 1.000112,
            "bytes": 1149501440, "bits_per_second": 9194981682.05161, "sender": true},
            "sender_tcp_congestion": "bbr", "receiver_tcp_congestion": "bbr"}}"#;
        assert_eq!(parse_iperf3(ok).unwrap(), 9194981682.05161);
        let refused = r#"{"start": {"connected": [], "version": "iperf 3.12"}, "intervals": [],
            "end": {}, "error": "unable to connect to server: Connection refused"}"#;
        let err = parse_iperf3(refused).unwrap_err().to_string();
        assert!(err.contains("Connection refused"), "{err}");
    }
}
