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
        require("python3", "python3");
        let (cert, key) = self_signed(keys);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/https_server.py");
        let (c, k, d) = (cert.clone(), key, dir.to_path_buf());
        let mut running = Running::start("https server", move |_| {
            let mut cmd = Command::new("python3");
            cmd.arg("-u").arg(&script).arg(&c).arg(&k).arg(&d);
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
    require("python3", "python3");
    let (cert, key) = self_signed(keys);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/tls_proxy.py");
    let (c, k) = (cert.clone(), key);
    let mut running = Running::start("tls proxy", move |_| {
        let mut cmd = Command::new("python3");
        cmd.arg("-u")
            .arg(&script)
            .arg(&c)
            .arg(&k)
            .arg(upstream.to_string());
        cmd
    });
    let port = announced_port(&mut running);
    HttpsServer {
        running,
        port,
        cert,
    }
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
