//! A local HTTPS file server with a certificate for 127.0.0.1 that only the test trusts
//! (made by `openssl req`, served by `tests/scripts/https_server.py`), for the tests of
//! `.torrent` URLs over https in both APIs; and a TLS proxy in front of opentracker, for
//! https trackers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::swarm::Running;
use super::{require, run};

pub struct HttpsServer {
    pub running: Running,
    pub port: u16,
    /// The server's self-signed certificate: what `SSL_CERT_FILE` must name to trust it.
    pub cert: PathBuf,
}

impl HttpsServer {
    /// Serves `dir` over HTTPS, with the key and certificate written under `keys`.
    #[track_caller]
    pub fn start(keys: &Path, dir: &Path) -> HttpsServer {
        HttpsServer::script("https server", "https_server.py", keys, dir.as_os_str())
    }

    /// `tests/scripts/SCRIPT CERT KEY ARG`, with a certificate made under `keys`, on the
    /// port it announces.
    #[track_caller]
    fn script(name: &str, script: &str, keys: &Path, arg: &std::ffi::OsStr) -> HttpsServer {
        require("python3", "python3");
        let (cert, key) = self_signed(keys);
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/scripts")
            .join(script);
        let (c, a) = (cert.clone(), arg.to_owned());
        let mut running = Running::start(name, move |_| {
            let mut cmd = Command::new("python3");
            cmd.arg("-u").arg(&script).arg(&c).arg(&key).arg(&a);
            cmd
        });
        let port = announced_port(&mut running);
        HttpsServer {
            running,
            port,
            cert,
        }
    }

    /// `https://127.0.0.1:PORT/NAME`.
    pub fn url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/{name}", self.port)
    }
}

/// `tests/scripts/tls_proxy.py`: TLS on a port of its own, relayed to 127.0.0.1:`upstream`
/// (opentracker, which speaks plain HTTP), with a certificate made under `keys`.
#[track_caller]
pub fn tls_proxy(keys: &Path, upstream: u16) -> HttpsServer {
    HttpsServer::script(
        "tls proxy",
        "tls_proxy.py",
        keys,
        std::ffi::OsStr::new(&upstream.to_string()),
    )
}

/// `ccbt-uring download TORRENT --data OUT` on one shard, listening on 127.0.0.1 without a
/// DHT, trusting only the certificates in `trust` (`SSL_CERT_FILE`; /dev/null trusts none).
#[track_caller]
pub fn download_trusting(torrent: &Path, out: &Path, trust: &Path) -> Running {
    let args: Vec<std::ffi::OsString> = [
        "download".as_ref(),
        torrent.as_os_str(),
        "--data".as_ref(),
        out.as_os_str(),
        "--shards".as_ref(),
        "1".as_ref(),
        "--port".as_ref(),
        std::ffi::OsStr::new(&super::swarm::free_port().to_string()),
        "--listen".as_ref(),
        "127.0.0.1".as_ref(),
        "--no-dht".as_ref(),
    ]
    .iter()
    .map(|a| a.to_os_string())
    .collect();
    let trust = trust.to_path_buf();
    Running::start(
        "ccbt-uring download (trusting one certificate)",
        move |_| {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccbt-uring"));
            cmd.args(&args)
                .env("CCBT_LOG", "info")
                .env("CCBT_LSD_ENABLED", "false")
                .env("SSL_CERT_FILE", &trust);
            cmd
        },
    )
}

/// A certificate for 127.0.0.1 and its key, made by `openssl req` under `keys`, as
/// (cert.pem, key.pem): trusted only where `SSL_CERT_FILE` names it.
#[track_caller]
pub fn self_signed(keys: &Path) -> (PathBuf, PathBuf) {
    require("openssl", "openssl");
    let (cert, key) = (keys.join("cert.pem"), keys.join("key.pem"));
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert))
    .ok();
    (cert, key)
}

/// The port the server's `Serving HTTPS on 127.0.0.1 port N` line names.
pub fn announced_port(server: &mut Running) -> u16 {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let log = server.log();
        if let Some(port) = log
            .lines()
            .find_map(|l| l.split(" port ").nth(1))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.trim().parse().ok())
        {
            return port;
        }
        assert!(server.is_running(), "the https server exited: {log}");
        assert!(
            Instant::now() < until,
            "the https server said no port: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
