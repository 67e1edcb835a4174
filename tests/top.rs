//! `ccbt-uring top` in a real terminal: tmux runs it detached at a fixed size against a
//! real daemon holding three torrents; `tmux capture-pane -p` shows what it draws. A key
//! press pauses the selected torrent (checked through the daemon's native API, not the
//! screen), the filter narrows the table, a tiny terminal still shows it, and when the
//! daemon goes away the screen says so instead of dying. The daemon has credentials, as
//! one reachable from other machines does; top takes them from the environment. The test
//! runs its own tmux server on a socket in its temp dir and kills only that session.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::{require, run_for, Ran};

const SEEDING: Duration = Duration::from_secs(30);
/// How long the screen may take to show a change (refreshes are 1 s apart).
const SHOWN: Duration = Duration::from_secs(20);
const STOP: Duration = Duration::from_secs(10);

fn own_torrent(data: &Path, name: &str, len: usize) -> PathBuf {
    let torrent = data.with_file_name(format!("{name}.torrent"));
    common::own_torrent(&data.join(name), &[("payload.bin", len)], &torrent)
}

/// A tmux server of our own (its socket in the test's temp dir) with one session.
struct Tmux {
    socket: PathBuf,
    session: &'static str,
}

impl Tmux {
    fn start(dir: &Path, command: &str) -> Tmux {
        let tmux = Tmux {
            socket: dir.join("tmux.sock"),
            session: "ccbt-top-test",
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            tmux.session,
            "-x",
            "140",
            "-y",
            "40",
            command,
        ])
        .ok();
        tmux
    }

    fn run(&self, args: &[&str]) -> Ran {
        require("tmux", "tmux");
        run_for(
            Command::new("tmux")
                .arg("-f")
                .arg("/dev/null")
                .arg("-S")
                .arg(&self.socket)
                .args(args),
            Duration::from_secs(30),
        )
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", self.session]).stdout
    }

    /// Waits until the screen satisfies `ok`; returns it.
    #[track_caller]
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let until = Instant::now() + SHOWN;
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < until,
                "the screen never showed {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", self.session];
        args.extend_from_slice(keys);
        self.run(&args).ok();
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-session", "-t", self.session]);
    }
}

/// The line of the torrents table that names `name`.
fn line_of<'a>(screen: &'a str, name: &str) -> Option<&'a str> {
    screen.lines().find(|l| l.contains(name))
}

/// The torrent's state as the daemon's native API gives it (or its refusal's kind: a
/// torrent added through the socket is listed from the catalog's next refresh).
fn state(api: &str, hash: &str) -> String {
    require("curl", "curl");
    let ran = run_for(
        Command::new("curl").args([
            "-sS",
            "-u",
            "admin:s3cret",
            "--max-time",
            "20",
            &format!("{api}/ccbt/v1/torrents/{hash}"),
        ]),
        Duration::from_secs(30),
    )
    .ok();
    let t: serde_json::Value = serde_json::from_str(&ran.stdout).unwrap();
    t["state"]
        .as_str()
        .or(t["kind"].as_str())
        .unwrap_or_else(|| panic!("neither a torrent nor a refusal: {t}"))
        .to_string()
}

#[track_caller]
fn wait_state(api: &str, hash: &str, want: &str) {
    let until = Instant::now() + SEEDING;
    while state(api, hash) != want {
        assert!(Instant::now() < until, "{hash} never became {want}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn top_shows_the_torrents_and_a_key_pauses_the_selected_one() {
    require("tmux", "tmux");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // With credentials, as a daemon reachable from other machines has them.
    let config = dir.path().join("ccbt.toml");
    std::fs::write(
        &config,
        "[control]\nusername = \"admin\"\npassword = \"s3cret\"\n",
    )
    .unwrap();
    let mut daemon = Daemon::start(
        dir.path(),
        &["--config", config.to_str().unwrap(), "--peer-port", "0"],
    );
    let mut hashes = Vec::new();
    for (name, len) in [
        ("alpha-set", 200_000),
        ("bravo-set", 300_000),
        ("charlie-set", 100_000),
    ] {
        let torrent = own_torrent(&data, name, len);
        hashes.push(daemon.add(&torrent, &["--save-dir", data.to_str().unwrap()]));
    }
    for hash in &hashes {
        wait_state(&daemon.api, hash, "seeding");
    }

    let log = dir.path().join("top.log");
    let command = format!(
        "CCBT_USER=admin CCBT_PASSWORD=s3cret {} top --url {} 2>{}; \
         echo top exited with $?; sleep 60",
        env!("CARGO_BIN_EXE_ccbt-uring"),
        daemon.api,
        log.display()
    );
    let tmux = Tmux::start(dir.path(), &command);
    let screen = tmux.wait("three seeding torrents", |s| {
        ["alpha-set", "bravo-set", "charlie-set"]
            .iter()
            .all(|n| line_of(s, n).is_some_and(|l| l.contains("seeding")))
    });
    eprintln!("the first screen:\n{screen}");
    assert!(screen.contains("connected"), "{screen}");
    assert!(screen.contains("3 torrents (3 seeding)"), "{screen}");
    assert!(screen.contains("shards:"), "the shards pane: {screen}");

    // Sorted by name: alpha is selected; one down is bravo; `p` pauses it.
    tmux.keys(&["Down"]);
    tmux.wait("bravo selected", |s| {
        line_of(s, "bravo-set").is_some_and(|l| l.starts_with("> "))
    });
    tmux.keys(&["p"]);
    wait_state(&daemon.api, &hashes[1], "paused");
    assert_eq!(state(&daemon.api, &hashes[0]), "seeding");
    assert_eq!(state(&daemon.api, &hashes[2]), "seeding");
    tmux.wait("bravo paused", |s| {
        line_of(s, "bravo-set").is_some_and(|l| l.contains("paused"))
    });
    // `u` resumes it.
    tmux.keys(&["u"]);
    wait_state(&daemon.api, &hashes[1], "seeding");

    // The filter narrows the table to what matches.
    tmux.keys(&["/", "c", "h", "a", "Enter"]);
    let screen = tmux.wait("only charlie", |s| {
        line_of(s, "charlie-set").is_some() && line_of(s, "alpha-set").is_none()
    });
    assert!(screen.contains("1 of 3 matching"), "{screen}");
    tmux.keys(&["Escape"]);
    tmux.wait("all three again", |s| line_of(s, "alpha-set").is_some());

    // A tiny terminal: the shards pane goes, the table stays; then back.
    tmux.run(&["resize-window", "-t", tmux.session, "-x", "40", "-y", "8"])
        .ok();
    let screen = tmux.wait("a small screen", |s| {
        s.lines().count() <= 8 && !s.contains("shards:") && line_of(s, "alpha").is_some()
    });
    assert!(screen.contains("ccbt-uring top"), "{screen}");
    tmux.run(&["resize-window", "-t", tmux.session, "-x", "140", "-y", "40"])
        .ok();
    tmux.wait("the shards pane again", |s| s.contains("shards:"));

    // The daemon goes away: top says so and keeps running.
    assert!(daemon.stop(STOP).success());
    tmux.wait("disconnected", |s| s.contains("disconnected"));
    tmux.keys(&["q"]);
    tmux.wait("a clean exit", |s| s.contains("top exited with 0"));
    let errors = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!errors.contains("panicked"), "{errors}");
}
