//! A local HTTPS file server with a certificate for 127.0.0.1 that only the test trusts
//! (made by `openssl req`, served by `tests/scripts/https_server.py`), for the tests of
//! `.torrent` URLs over https in both APIs.

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
        require("openssl", "openssl");
        require("python3", "python3");
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

/// The port the server's `Serving HTTPS on 127.0.0.1 port N` line names.
fn announced_port(server: &mut Running) -> u16 {
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
