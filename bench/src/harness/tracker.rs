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
        anyhow::ensure!(
            info_hash.len() == 40 && info_hash.bytes().all(|b| b.is_ascii_hexdigit()),
            "not a hex info hash: {info_hash}"
        );
        let info_hash = info_hash.to_ascii_lowercase();
        let dir = tempfile::Builder::new()
            .prefix("ccbt-bench-tracker-")
            .tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let whitelist = dir.path().join("whitelist");
        std::fs::write(&whitelist, format!("{info_hash}\n"))?;
        std::fs::set_permissions(&whitelist, std::fs::Permissions::from_mode(0o644))?;
        let mut cmd = Command::new("opentracker");
        cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()])
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
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .with_context(|| format!("tracker on port {} is gone", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        )?;
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply)?;
        match reply.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(end) => Ok(reply.split_off(end + 4)),
            None => bail!("not HTTP: {}", String::from_utf8_lossy(&reply)),
        }
    }
}
