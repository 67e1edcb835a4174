//! The requests S7 times, spoken to any daemon that offers the API: Transmission RPC
//! (ccbt-uring and transmission-daemon) and qBittorrent WebAPI v2 (ccbt-uring and
//! qbittorrent-nox). A sample is the whole exchange: request sent, every byte of the
//! answer read. Answers are parsed after the clock stops, to check them.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How long one request may take (Transmission 3.00 takes seconds at 10,000 torrents).
const ANSWER: Duration = Duration::from_secs(120);

/// The fields Sonarr and Radarr ask `torrent-get` for (their TransmissionProxy).
pub const ARR_FIELDS: &[&str] = &[
    "id",
    "hashString",
    "name",
    "downloadDir",
    "totalSize",
    "leftUntilDone",
    "isFinished",
    "eta",
    "status",
    "secondsDownloading",
    "secondsSeeding",
    "errorString",
    "uploadedEver",
    "downloadedEver",
    "seedRatioLimit",
    "seedRatioMode",
    "seedIdleLimit",
    "seedIdleMode",
    "fileCount",
    "labels",
];

/// Statuses come back as answers (a 409 is part of Transmission's protocol); cookies are
/// kept (qbittorrent-nox's sync state is per session).
fn agent() -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(ANSWER))
        .max_redirects(0)
        .http_status_as_error(false)
        .build();
    ureq::Agent::new_with_config(config)
}

/// The whole body, or the status as an error.
fn read_all(what: &str, mut response: ureq::http::Response<ureq::Body>) -> Result<Vec<u8>> {
    let status = response.status();
    let mut body = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(1 << 31)
        .read_to_end(&mut body)?;
    if !status.is_success() {
        bail!("{what}: HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}

/// Transmission RPC at `http://127.0.0.1:PORT/transmission/rpc`, with its session-id dance.
pub struct Transmission {
    url: String,
    session: String,
    agent: ureq::Agent,
}

impl Transmission {
    pub fn new(base: &str) -> Transmission {
        Transmission {
            url: format!("{base}/transmission/rpc"),
            session: String::new(),
            agent: agent(),
        }
    }

    /// One call; the raw answer and the time it took (a 409 retry is not timed).
    pub fn call(&mut self, body: &serde_json::Value) -> Result<(Vec<u8>, Duration)> {
        for _ in 0..3 {
            let started = Instant::now();
            let response = self
                .agent
                .post(&self.url)
                .header("X-Transmission-Session-Id", &self.session)
                .header("Content-Type", "application/json")
                .send(body.to_string())
                .context("Transmission RPC")?;
            if response.status() == 409 {
                self.session = response
                    .headers()
                    .get("X-Transmission-Session-Id")
                    .and_then(|v| v.to_str().ok())
                    .context("a 409 without X-Transmission-Session-Id")?
                    .to_string();
                continue;
            }
            let bytes = read_all("Transmission RPC", response)?;
            return Ok((bytes, started.elapsed()));
        }
        bail!("the session id kept changing")
    }

    /// A full `torrent-get` with the *arr fields: the answer's torrent count and time.
    pub fn arr_listing(&mut self) -> Result<(usize, usize, Duration)> {
        let (bytes, took) = self.call(&serde_json::json!({
            "method": "torrent-get",
            "arguments": {"fields": ARR_FIELDS},
        }))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        if v["result"] != "success" {
            bail!("torrent-get: {}", v["result"]);
        }
        let n = v["arguments"]["torrents"].as_array().map_or(0, Vec::len);
        Ok((n, bytes.len(), took))
    }
}

/// qBittorrent WebAPI v2 at `http://127.0.0.1:PORT/api/v2`, no login (localhost bypass).
pub struct Qbittorrent {
    base: String,
    agent: ureq::Agent,
}

/// One `sync/maindata` answer.
pub struct Maindata {
    pub rid: u64,
    /// Torrents in the answer (all of them in a full update, the changed ones otherwise).
    pub torrents: usize,
    pub full: bool,
    pub bytes: usize,
    pub took: Duration,
}

impl Qbittorrent {
    pub fn new(base: &str) -> Qbittorrent {
        Qbittorrent {
            base: format!("{base}/api/v2"),
            agent: agent(),
        }
    }

    fn get(&self, path: &str) -> Result<(Vec<u8>, Duration)> {
        let started = Instant::now();
        let r = self
            .agent
            .get(&format!("{}/{path}", self.base))
            .call()
            .with_context(|| format!("GET {path}"))?;
        let bytes = read_all(path, r)?;
        Ok((bytes, started.elapsed()))
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<()> {
        let r = self
            .agent
            .post(&format!("{}/{path}", self.base))
            .send_form(form.iter().copied())
            .with_context(|| format!("POST {path}"))?;
        read_all(path, r)?;
        Ok(())
    }

    /// A full `torrents/info`: the answer's torrent count, size and time.
    pub fn info(&self) -> Result<(usize, usize, Duration)> {
        let (bytes, took) = self.get("torrents/info")?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        let n = v.as_array().map_or(0, Vec::len);
        Ok((n, bytes.len(), took))
    }

    pub fn maindata(&self, rid: u64) -> Result<Maindata> {
        let (bytes, took) = self.get(&format!("sync/maindata?rid={rid}"))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        Ok(Maindata {
            rid: v["rid"].as_u64().context("no rid in sync/maindata")?,
            torrents: v["torrents"].as_object().map_or(0, |m| m.len()),
            full: v["full_update"] == true,
            bytes: bytes.len(),
            took,
        })
    }

    /// The hash of the torrent at `offset` in name order.
    pub fn hash_by_name(&self, offset: usize) -> Result<String> {
        let (bytes, _) = self.get(&format!(
            "torrents/info?filter=all&sort=name&limit=1&offset={offset}"
        ))?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)?;
        v[0]["hash"]
            .as_str()
            .map(str::to_string)
            .context("no torrent at that offset")
    }

    /// One change to one torrent: its upload limit, alternating between two values.
    pub fn touch(&self, hash: &str, round: u64) -> Result<()> {
        let limit = (1_000_000 + (round % 2) * 1_000).to_string();
        self.post(
            "torrents/setUploadLimit",
            &[("hashes", hash), ("limit", &limit)],
        )
    }
}
