//! A `ccbt-uring daemon` the test owns: its own HOME (so the built-in defaults land in a
//! temp dir), its state dir, and `remote` calls to it through its control socket.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ccbt_testkit::process::{signal_group, Signal};

use super::swarm::Running;
use super::{ccbt, run_for, Ran};

pub struct Daemon {
    pub running: Running,
    pub home: PathBuf,
    pub state_dir: PathBuf,
    /// The HTTP control API's base URL, `http://127.0.0.1:PORT`.
    pub api: String,
}

/// How long a daemon may take to say it is ready.
const READY: Duration = Duration::from_secs(20);

impl Daemon {
    /// Starts `ccbt-uring daemon ARGS` with HOME=`home` and no XDG variables, so that
    /// everything not given lands under `home`; waits for its ready line.
    #[track_caller]
    pub fn start(home: &Path, args: &[&str]) -> Daemon {
        Daemon::start_with_env(home, args, &[])
    }

    /// [`Daemon::start`] with `env` added to its environment (e.g. `SSL_CERT_FILE`).
    #[track_caller]
    pub fn start_with_env(home: &Path, args: &[&str], env: &[(&str, &Path)]) -> Daemon {
        let env: Vec<(String, PathBuf)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_path_buf()))
            .collect();
        let state_dir = state_dir_of(home, args);
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        // Tests run side by side: each API on a port of its own unless a test names one.
        if !args.iter().any(|a| a == "--control") {
            args.extend(["--control".to_string(), "127.0.0.1:0".to_string()]);
        }
        let home_dir = home.to_path_buf();
        let running = Running::start("ccbt-uring daemon", move |_| {
            let mut cmd = ccbt();
            cmd.arg("daemon")
                .args(&args)
                .current_dir(&home_dir)
                .env("HOME", &home_dir)
                .env_remove("XDG_DATA_HOME")
                .env_remove("XDG_CONFIG_HOME")
                .env("RUST_BACKTRACE", "1")
                .env(
                    "CCBT_LOG",
                    std::env::var("CCBT_LOG").unwrap_or("info".into()),
                );
            // An empty value removes the variable (CCBT_LOG, which is set above).
            for (key, value) in &env {
                if value.as_os_str().is_empty() {
                    cmd.env_remove(key);
                } else {
                    cmd.env(key, value);
                }
            }
            cmd
        });
        let mut daemon = Daemon {
            running,
            home: home.to_path_buf(),
            state_dir,
            api: String::new(),
        };
        daemon.wait_log("ccbt-uring daemon: ", READY);
        daemon.api = api_of(&daemon.running.log());
        daemon
    }

    /// Waits until the daemon's log holds `text`.
    #[track_caller]
    pub fn wait_log(&mut self, text: &str, limit: Duration) {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if self.running.log().contains(text) {
                return;
            }
            assert!(
                self.running.is_running(),
                "the daemon exited:\n{}",
                self.running.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no `{text}` in the daemon's log:\n{}", self.running.log());
    }

    /// `ccbt-uring remote --state-dir S --json ARGS`.
    #[track_caller]
    pub fn remote(&self, args: &[&str]) -> Ran {
        run_for(
            ccbt()
                .arg("remote")
                .arg("--state-dir")
                .arg(&self.state_dir)
                .arg("--json")
                .args(args),
            Duration::from_secs(60),
        )
    }

    /// Adds a torrent; returns its hash.
    #[track_caller]
    pub fn add(&self, torrent: &Path, extra: &[&str]) -> String {
        let mut args = vec!["add", torrent.to_str().unwrap()];
        args.extend_from_slice(extra);
        let ran = self.remote(&args).ok();
        ran.json()["hash"].as_str().unwrap().to_string()
    }

    /// The torrent as `remote list` shows it.
    #[track_caller]
    pub fn torrent(&self, hash: &str) -> serde_json::Value {
        let list = self.remote(&["list"]).ok().json();
        list["torrents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["hash"] == hash)
            .cloned()
            .unwrap_or_else(|| panic!("no torrent {hash} in {list}"))
    }

    /// Waits until the torrent is in `state`; returns it.
    #[track_caller]
    pub fn wait_state(&mut self, hash: &str, state: &str, limit: Duration) -> serde_json::Value {
        let until = Instant::now() + limit;
        loop {
            let t = self.torrent(hash);
            if t["state"] == state {
                return t;
            }
            if Instant::now() > until {
                panic!(
                    "torrent {hash} is not {state} after {limit:?}: {t}\n{}",
                    self.running.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, and the exit status within `limit`.
    pub fn stop(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.running.stop(limit)
    }

    /// `transmission-remote HOST:PORT ARGS` against this daemon's API, within a minute;
    /// its stdout, checked for success.
    #[track_caller]
    pub fn transmission_remote(&self, args: &[&str]) -> String {
        super::require("transmission-remote", "transmission-cli");
        let mut cmd = std::process::Command::new("transmission-remote");
        cmd.arg(self.api.trim_start_matches("http://")).args(args);
        let ran = run_for(&mut cmd, Duration::from_secs(60));
        assert_eq!(
            ran.code,
            Some(0),
            "{args:?}: {}\n{}",
            ran.stdout,
            ran.stderr
        );
        ran.stdout
    }

    /// One Transmission RPC call (no credentials), with the session-id dance.
    #[track_caller]
    pub fn rpc(&self, body: serde_json::Value) -> serde_json::Value {
        let body = body.to_string();
        let first = super::http::send(&self.api, "POST", "/transmission/rpc", &[], body.as_bytes());
        assert_eq!(first.status, 409, "{first:?}");
        let id = first
            .header("X-Transmission-Session-Id")
            .expect("a session id")
            .to_string();
        let answer = super::http::send(
            &self.api,
            "POST",
            "/transmission/rpc",
            &[("X-Transmission-Session-Id", &id)],
            body.as_bytes(),
        );
        assert_eq!(answer.status, 200, "{body}: {}", answer.body);
        answer.json()
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(&mut self) {
        signal_group(self.running.pid(), Signal::SIGKILL);
        while self.running.is_running() {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// `..., control API http://ADDR, ready in ...` of the ready line.
fn api_of(log: &str) -> String {
    log.lines()
        .find_map(|l| l.split("control API ").nth(1))
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_else(|| panic!("no control API address in the daemon's log:\n{log}"))
        .to_string()
}

fn state_dir_of(home: &Path, args: &[&str]) -> PathBuf {
    args.windows(2)
        .find(|w| w[0] == "--state-dir")
        .map(|w| PathBuf::from(w[1]))
        .unwrap_or_else(|| home.join(".local/share/ccbt-uring"))
}
