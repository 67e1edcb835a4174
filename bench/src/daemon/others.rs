//! The other seedbox daemons, side by side: qbittorrent-nox (WebAPI v2) and
//! transmission-daemon (RPC), each in a profile of its own on 127.0.0.1, loaded through
//! its API by a script in `bench/scripts/`, timed from its start until every torrent
//! seeds, and its RSS read from /proc once they all do.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::report::OtherRow;
use super::SETTLE;
use crate::harness::bins;
use crate::harness::ports::Ports;
use crate::harness::process::{Process, POLL};
use crate::many::report::parse_vm_rss;

#[derive(Clone, Copy, Debug)]
pub enum Other {
    Qbittorrent,
    Transmission,
}

impl Other {
    pub const ALL: [Other; 2] = [Other::Qbittorrent, Other::Transmission];

    pub fn name(self) -> &'static str {
        match self {
            Other::Qbittorrent => "qbittorrent-nox 4.5",
            Other::Transmission => "transmission-daemon 3.00",
        }
    }

    fn binary(self) -> &'static str {
        match self {
            Other::Qbittorrent => "qbittorrent-nox",
            Other::Transmission => "transmission-daemon",
        }
    }

    /// Why it cannot run here, with what to install.
    pub fn missing(self) -> Option<String> {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {}", self.binary())])
            .output()
            .is_ok_and(|o| o.status.success());
        (!found).then(|| {
            format!(
                "{} not found: apt-get install {} (tools/install-deps.sh)",
                self.binary(),
                self.binary()
            )
        })
    }

    fn script(self) -> &'static str {
        match self {
            Other::Qbittorrent => "qbt_many.py",
            Other::Transmission => "tr_many.py",
        }
    }

    /// How it adds and checks, for the table.
    pub fn how(self) -> &'static str {
        match self {
            Other::Qbittorrent => "WebAPI `torrents/add`, 100 a request, `skip_checking=true`",
            Other::Transmission => {
                "RPC `torrent-add` one by one; it verifies every torrent (no way to skip)"
            }
        }
    }

    /// The client's command, its profile written under `profile` first.
    fn command(self, profile: &Path, api: u16, peer: u16, data: &Path) -> Result<Command> {
        match self {
            Other::Qbittorrent => {
                let conf = profile.join("qBittorrent/config");
                std::fs::create_dir_all(&conf)?;
                std::fs::write(conf.join("qBittorrent.conf"), qbittorrent_conf(api, peer))?;
                let mut cmd = Command::new("qbittorrent-nox");
                cmd.arg(format!("--profile={}", profile.display()))
                    .arg(format!("--webui-port={api}"))
                    .arg(format!("--torrenting-port={peer}"));
                Ok(cmd)
            }
            Other::Transmission => {
                std::fs::write(profile.join("settings.json"), transmission_settings(data))?;
                let mut cmd = Command::new("transmission-daemon");
                cmd.args(["-f", "-g"])
                    .arg(profile)
                    .args(["-p", &api.to_string(), "-P", &peer.to_string(), "-w"])
                    .arg(data);
                Ok(cmd)
            }
        }
    }
}

/// qbittorrent-nox's profile: loopback only, no DHT/LSD/PeX/UPnP, no queueing, no WebUI
/// login from localhost, and several connections per IP allowed (every load-generator
/// leecher comes from 127.0.0.1; libtorrent's default would refuse all but one).
fn qbittorrent_conf(api: u16, peer: u16) -> String {
    format!(
        "[LegalNotice]\nAccepted=true\n\n\
         [BitTorrent]\nSession\\Port={peer}\nSession\\InterfaceAddress=127.0.0.1\n\
         Session\\DHTEnabled=false\nSession\\LSDEnabled=false\nSession\\PeXEnabled=false\n\
         Session\\QueueingSystemEnabled=false\nSession\\AddTorrentPaused=false\n\
         Session\\MultiConnectionsPerIp=true\n\n\
         [Preferences]\nWebUI\\Port={api}\nWebUI\\Address=127.0.0.1\n\
         WebUI\\LocalHostAuth=false\nWebUI\\CSRFProtection=false\n\
         WebUI\\HostHeaderValidation=false\nConnection\\UPnP=false\nGeneral\\Locale=en\n"
    )
}

fn transmission_settings(data: &Path) -> String {
    serde_json::json!({
        "rpc-enabled": true,
        "rpc-bind-address": "127.0.0.1",
        "rpc-authentication-required": false,
        "rpc-whitelist-enabled": false,
        "rpc-host-whitelist-enabled": false,
        "bind-address-ipv4": "127.0.0.1",
        "dht-enabled": false,
        "lpd-enabled": false,
        "pex-enabled": false,
        "utp-enabled": false,
        "port-forwarding-enabled": false,
        "download-dir": data,
        "incomplete-dir-enabled": false,
        "download-queue-enabled": false,
        "seed-queue-enabled": false,
        "queue-stalled-enabled": false,
        "ratio-limit-enabled": false,
        "idle-seeding-limit-enabled": false,
        "start-added-torrents": true,
        "message-level": 1,
    })
    .to_string()
}

/// One client with `count` torrents (then with one, for the baseline RSS).
pub fn measure(
    other: Other,
    torrents: &Path,
    count: usize,
    data: &Path,
    ports: &mut Ports,
    limit: Duration,
) -> Result<OtherRow> {
    let (ready, seeding, rss_many) = load(other, torrents, count, data, ports, limit)?;
    let (_, _, rss_one) = load(other, torrents, 1, data, ports, limit)?;
    Ok(OtherRow {
        name: other.name().to_string(),
        how: other.how().to_string(),
        torrents: count as u64,
        seeding,
        ready_seconds: ready,
        rss_many_kib: rss_many,
        rss_one_kib: rss_one,
    })
}

/// Starts the client in a fresh profile, loads `count` torrents through its API, waits
/// until all seed or `limit` passes; returns the seconds from its start, how many seed,
/// and its VmRSS then.
fn load(
    other: Other,
    torrents: &Path,
    count: usize,
    data: &Path,
    ports: &mut Ports,
    limit: Duration,
) -> Result<(f64, u64, u64)> {
    let mut loaded = start_loaded(other, torrents, count, data, ports, limit)?;
    std::thread::sleep(SETTLE);
    let status = std::fs::read_to_string(format!("/proc/{}/status", loaded.client.pid()))?;
    let rss = parse_vm_rss(&status).context("no VmRSS in /proc/PID/status")?;
    loaded.client.stop()?;
    Ok((loaded.ready_seconds, loaded.seeding, rss))
}

/// A client running with its torrents loaded.
pub struct Loaded {
    pub client: Process,
    /// Its API (WebUI or RPC) port and its peer port, on 127.0.0.1.
    pub api: u16,
    pub peer: u16,
    pub ready_seconds: f64,
    pub seeding: u64,
    /// Its profile; removed when dropped.
    pub _profile: tempfile::TempDir,
}

/// Starts the client in a fresh profile and loads `count` torrents through its API, as
/// [`load`] does; leaves it running.
pub fn start_loaded(
    other: Other,
    torrents: &Path,
    count: usize,
    data: &Path,
    ports: &mut Ports,
    limit: Duration,
) -> Result<Loaded> {
    let profile = tempfile::Builder::new()
        .prefix("ccbt-bench-s6-profile-")
        .tempdir_in("/var/tmp")?;
    let (api, peer) = (ports.next()?, ports.next()?);
    let cmd = other.command(profile.path(), api, peer, data)?;
    let started = Instant::now();
    let mut client = Process::start(other.name(), cmd)?;
    let mut script = Command::new("python3");
    script
        .arg("-u")
        .arg(bins::bench_scripts().join(other.script()))
        .arg(api.to_string())
        .arg(torrents)
        .arg(count.to_string())
        .arg(data)
        .arg(limit.as_secs().to_string());
    let mut loader = Process::start(&format!("{} loader", other.name()), script)?;
    // The loader keeps to `limit` itself; this is for a loader that hangs.
    let deadline = started + limit + Duration::from_secs(60);
    loop {
        if loader.exit_status()?.is_some() {
            break;
        }
        if let Some(status) = client.exit_status()? {
            bail!("{} exited ({status})\n{}", other.name(), client.log_tail());
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not seed {count} torrents in {limit:?}\n{}",
                other.name(),
                loader.log_tail()
            );
        }
        std::thread::sleep(POLL);
    }
    let ready_seconds = started.elapsed().as_secs_f64();
    loader.wait_success(Instant::now())?;
    let line = loader.log();
    let json: serde_json::Value = line
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("no JSON from {}'s loader: {line}", other.name()))?;
    let seeding = json["seeding"].as_u64().unwrap_or(0);
    if seeding == 0 {
        bail!(
            "{}: none of {count} seeds after {ready_seconds:.0} s",
            other.name()
        );
    }
    Ok(Loaded {
        client,
        api,
        peer,
        ready_seconds,
        seeding,
        _profile: profile,
    })
}
