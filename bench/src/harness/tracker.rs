//! opentracker on 127.0.0.1 (HTTP and UDP on one port), the only way the contenders and
//! the seeders meet. Debian builds it whitelist-only, so it starts with the benchmark's
//! info hash already allowed. Run as root it chroots into its dir and drops to `nobody`,
//! who must be able to read the whitelist there.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use ccbt_testkit::tracker::compact_peer_ports;

use super::process::Process;

pub struct Tracker {
    port: u16,
    info_hash: String,
    _process: Process,
    _dir: tempfile::TempDir,
}

impl Tracker {
    /// Starts opentracker on `port`, allowing only `info_hash` (40 hex digits), and waits
    /// until it accepts connections.
    pub fn start(port: u16, info_hash: &str) -> Result<Tracker> {
        Self::start_allowing(port, &[info_hash.to_string()])
    }

    /// Starts opentracker on `port`, allowing every one of `info_hashes` (40 hex digits
    /// each; [`Tracker`]'s own probes use the first), with its stats page open to
    /// 127.0.0.1, and waits until it accepts connections.
    pub fn start_allowing(port: u16, info_hashes: &[String]) -> Result<Tracker> {
        let first = info_hashes.first().context("no info hash to allow")?;
        let mut allowed = String::with_capacity(41 * info_hashes.len());
        for hash in info_hashes {
            anyhow::ensure!(
                hash.len() == 40 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
                "not a hex info hash: {hash}"
            );
            allowed += &hash.to_ascii_lowercase();
            allowed.push('\n');
        }
        let info_hash = first.to_ascii_lowercase();
        let dir = tempfile::Builder::new()
            .prefix("ccbt-bench-tracker-")
            .tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let whitelist = dir.path().join("whitelist");
        std::fs::write(&whitelist, allowed)?;
        std::fs::set_permissions(&whitelist, std::fs::Permissions::from_mode(0o644))?;
        let config = dir.path().join("opentracker.conf");
        std::fs::write(&config, "access.stats 127.0.0.1\n")?;
        std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644))?;
        let mut cmd = Command::new("opentracker");
        cmd.arg("-f")
            .arg(&config)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-P", &port.to_string(), "-w", "whitelist", "-d"])
            .arg(dir.path())
            .current_dir(dir.path());
        let mut process = Process::start(&format!("opentracker :{port}"), cmd)
            .context("apt-get install opentracker (tools/install-deps.sh)")?;
        super::process::wait_listening(port, &mut process, Duration::from_secs(5))?;
        Ok(Tracker {
            port,
            info_hash,
            _process: process,
            _dir: dir,
        })
    }

    /// The announce URL of a tracker on `port`, known before it starts.
    pub fn url(port: u16) -> String {
        format!("http://127.0.0.1:{port}/announce")
    }

    /// Waits until the tracker lists a peer on each of `ports` (every peer is on 127.0.0.1).
    pub fn wait_listed(&self, ports: &[u16], limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let listed = self.peer_ports()?;
            if ports.iter().all(|p| listed.contains(p)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the tracker lists ports {listed:?}, not all of {ports:?}, after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Announces a seeder on 127.0.0.1:`port` that does not announce itself (the load
    /// generator's synthetic seeders); `stopped` takes it off the list again.
    pub fn announce_seeder(&self, port: u16, stopped: bool) -> Result<()> {
        let event = if stopped { "stopped" } else { "started" };
        let query = format!(
            "/announce?info_hash={}&peer_id=-CCBTSYNTH-{port:09}&port={port}&uploaded=0\
             &downloaded=0&left=0&compact=1&event={event}",
            self.url_encoded_hash()
        );
        self.http_get(&query).map(drop)
    }

    /// Announces the tracker on `port` has answered since it started (HTTP and UDP), from
    /// the second line of its `stats?mode=conn` page. An associated function, so that a
    /// sampler on another thread needs only the port.
    pub fn announces_on(port: u16) -> Result<u64> {
        let body = http_get(port, "/stats?mode=conn")?;
        parse_conn_stats(&body)
            .with_context(|| format!("stats page: {}", String::from_utf8_lossy(&body)))
    }

    /// The tracker's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn url_encoded_hash(&self) -> String {
        self.info_hash
            .as_bytes()
            .chunks(2)
            .map(|pair| format!("%{}", String::from_utf8_lossy(pair)))
            .collect()
    }

    /// The ports of the peers the tracker lists. Asks as a probe leecher on port 1, which
    /// then announces `stopped` to leave again.
    fn peer_ports(&self) -> Result<Vec<u16>> {
        let encoded = self.url_encoded_hash();
        let query = |event: &str| {
            format!(
                "/announce?info_hash={encoded}&peer_id=-CCBTBENCH-000000001&port=1&uploaded=0\
                 &downloaded=0&left=1&compact=1&numwant=200{event}"
            )
        };
        let body = self.http_get(&query(""))?;
        self.http_get(&query("&event=stopped"))?;
        let peers = compact_peer_ports(&body)
            .with_context(|| format!("no peers in {}", String::from_utf8_lossy(&body)))?;
        Ok(peers.into_iter().filter(|&port| port != 1).collect())
    }

    fn http_get(&self, path: &str) -> Result<Vec<u8>> {
        http_get(self.port, path)
    }
}

/// A GET to the tracker on 127.0.0.1:`port`; the reply's body.
fn http_get(port: u16, path: &str) -> Result<Vec<u8>> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .with_context(|| format!("tracker on port {port} is gone"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply)?;
    match reply.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(end) => Ok(reply.split_off(end + 4)),
        None => bail!("not HTTP: {}", String::from_utf8_lossy(&reply)),
    }
}

/// opentracker's `stats?mode=conn` page: connections, then announces, one number a line.
fn parse_conn_stats(body: &[u8]) -> Option<u64> {
    String::from_utf8_lossy(body)
        .lines()
        .nth(1)?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_announce_count() {
        let page =
            b"7\n12\n4 seconds (0 hours)\nopentracker connections, 1 conns/s :: 0 success/s.";
        assert_eq!(parse_conn_stats(page), Some(12));
        assert_eq!(parse_conn_stats(b"<title>Access Denied</title>"), None);
    }
}
