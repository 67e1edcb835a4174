//! `/metrics` of a real `ccbt-uring daemon`, read by real clients: a real Prometheus
//! (Debian's `prometheus`) scrapes the daemon every second while it seeds to aria2, and
//! its query API must return the bytes aria2 got; it raises the alerts of
//! `deploy/prometheus/` on a real full disk; `promtool` checks the exposition and the
//! rules (and runs their unit tests); refused connections and a lying peer's pieces
//! (hash failures) are counted; bad requests to
//! `/metrics` and `/events` get reasons. `/events` itself: `tests/api_events.rs`.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::http::{addr_of, http, labelled, sample, Reply, IO};
use common::swarm::{
    free_port, interop_ready, Announce, Client, Running, Tracker, REQUIRE_INTEROP,
};

const SEEDING: Duration = Duration::from_secs(30);
const TRANSFER: Duration = Duration::from_secs(90);
/// How long Prometheus may take to be ready, and to have scraped what we look for.
const PROMETHEUS: Duration = Duration::from_secs(60);

fn rules_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/ccbt-uring-rules.yml")
}

/// Whether Debian's prometheus (with promtool) is installed; with `CCBT_REQUIRE_INTEROP`
/// a missing one fails the test.
fn prometheus_ready() -> bool {
    let found = ["/usr/bin/prometheus", "/usr/bin/promtool"]
        .iter()
        .all(|p| Path::new(p).is_file());
    if found {
        return true;
    }
    let why =
        "prometheus is not installed: `apt-get install prometheus` (see tools/install-deps.sh)";
    if std::env::var_os(REQUIRE_INTEROP).is_some() {
        panic!("{why}; {REQUIRE_INTEROP} is set, so this is a failure");
    }
    eprintln!("skipping: {why}");
    false
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `promtool ARGS` with `stdin`; its exit status and output.
fn promtool(args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("/usr/bin/promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let deadline = Instant::now() + IO;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("promtool {args:?} did not finish within {IO:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A Prometheus the test owns: its config, rules and storage in its private dir, on a
/// free 127.0.0.1 port, scraping `target` (host:port) every second as job `ccbt-uring`.
struct Prometheus {
    running: Running,
    base: String,
}

impl Prometheus {
    #[track_caller]
    fn start(target: SocketAddr) -> Prometheus {
        let port = free_port();
        let running = Running::start(&format!("prometheus :{port}"), |dir| {
            let config = dir.join("prometheus.yml");
            std::fs::write(
                &config,
                format!(
                    "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  \
                     evaluation_interval: 1s\nrule_files:\n  - {rules:?}\n\
                     scrape_configs:\n  - job_name: ccbt-uring\n    static_configs:\n      \
                     - targets: ['{target}']\n",
                    rules = rules_file().display().to_string(),
                ),
            )
            .unwrap();
            let mut cmd = Command::new("/usr/bin/prometheus");
            cmd.arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .current_dir(dir);
            cmd
        });
        let mut prometheus = Prometheus {
            running,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + PROMETHEUS;
        loop {
            assert!(
                prometheus.running.is_running(),
                "prometheus exited:\n{}",
                prometheus.running.log_tail()
            );
            if TcpStream::connect(addr_of(&prometheus.base)).is_ok()
                && http(&prometheus.base, "GET", "/-/ready", &[]).status == 200
            {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                prometheus.running.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An instant query's result vector.
    #[track_caller]
    fn query(&self, promql: &str) -> Vec<serde_json::Value> {
        let reply = http(
            &self.base,
            "GET",
            &format!("/api/v1/query?query={}", percent_encode(promql)),
            &[],
        );
        assert_eq!(reply.status, 200, "{promql}: {reply:?}");
        let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(json["status"], "success", "{json}");
        json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The one value of an instant query, once it has one.
    fn value(&self, promql: &str) -> Option<f64> {
        let result = self.query(promql);
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `promql` has a value that `ok` accepts; returns it.
    #[track_caller]
    fn wait_value(&self, promql: &str, what: &str, ok: impl Fn(f64) -> bool) -> f64 {
        let deadline = Instant::now() + PROMETHEUS;
        loop {
            let value = self.value(promql);
            if let Some(v) = value.filter(|&v| ok(v)) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{promql} is {value:?}, not {what}, after {PROMETHEUS:?}:\n{}",
                self.running.log_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

#[test]
fn the_alert_rules_pass_promtool_and_fire_on_what_they_watch() {
    if !prometheus_ready() {
        return;
    }
    let (ok, out) = promtool(&["check", "rules", rules_file().to_str().unwrap()], "");
    assert!(ok, "promtool check rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    // deploy/prometheus/ccbt-uring-rules.test.yml: series shaped like ours, and the
    // alerts that must (and must not) fire on them.
    let tests = rules_file().with_file_name("ccbt-uring-rules.test.yml");
    let (ok, out) = promtool(&["test", "rules", tests.to_str().unwrap()], "");
    assert!(ok, "promtool test rules:\n{out}");
}

#[test]
fn prometheus_scrapes_the_bytes_a_real_downloader_got_and_promtool_accepts_it_all() {
    if !interop_ready(&[Client::Aria2]) || !prometheus_ready() {
        return;
    }
    let (ok, out) = promtool(&["check", "rules", rules_file().to_str().unwrap()], "");
    assert!(ok, "promtool check rules:\n{out}");

    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let tracker = Tracker::start();
    let torrent = tracker.torrent(dir.path(), Announce::Http);
    let size: u64 = common::swarm::TEST_FILES
        .iter()
        .map(|(_, n)| *n as u64)
        .sum();
    let mut daemon = Daemon::start(&home, &["--peer-port", &free_port().to_string()]);
    let prometheus = Prometheus::start(addr_of(&daemon.api));
    // The scrape works before anything happens (OpenMetrics, as Prometheus asks).
    prometheus.wait_value(r#"up{job="ccbt-uring"}"#, "1", |v| v == 1.0);
    assert_eq!(
        prometheus.value("ccbt_uploaded_bytes_total"),
        Some(0.0),
        "nothing was uploaded yet"
    );

    let hash = daemon.add(
        &torrent.path,
        &["--save-dir", torrent.data_dir.to_str().unwrap()],
    );
    daemon.wait_state(&hash, "seeding", SEEDING);
    tracker.wait_for_seeders(&hash, 1, SEEDING);
    prometheus.wait_value(r#"ccbt_torrents{state="seeding"}"#, "1", |v| v == 1.0);

    let out = dir.path().join("aria2");
    let mut aria2 = Client::Aria2.download(&torrent.path, &out, free_port());
    aria2.wait_success(TRANSFER);
    common::swarm::assert_same_tree(&torrent.content(), &torrent.content_in(&out));

    // What the daemon itself says it uploaded, once its counters settle: aria2 is gone.
    let direct = || {
        let reply = http(&daemon.api, "GET", "/metrics", &[]);
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.body
    };
    let deadline = Instant::now() + SEEDING;
    let uploaded = loop {
        let first = sample(&direct(), "ccbt_uploaded_bytes_total").unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        let again = sample(&direct(), "ccbt_uploaded_bytes_total").unwrap();
        if first == again && again >= size as f64 {
            break again;
        }
        assert!(
            Instant::now() < deadline,
            "uploaded bytes do not settle: {first} then {again} (size {size})"
        );
    };
    // aria2 got every byte from us (it had no other peer); a few blocks may have gone
    // twice (endgame), never a whole second copy.
    assert!(
        uploaded >= size as f64 && uploaded < 2.0 * size as f64,
        "uploaded {uploaded} for a download of {size} bytes"
    );
    let listed = daemon.torrent(&hash)["uploaded"].as_u64().unwrap();
    assert_eq!(
        listed as f64, uploaded,
        "the torrent's listing and /metrics disagree"
    );
    // Prometheus, through its query API, has the same figure, per shard and in total.
    let seen = prometheus.wait_value("ccbt_uploaded_bytes_total", "the bytes uploaded", |v| {
        v == uploaded
    });
    assert_eq!(seen, uploaded);
    prometheus.wait_value("sum(ccbt_shard_uploaded_bytes_total)", "the same", |v| {
        v == uploaded
    });
    // Serving read pieces from disk, and the daemon announced to the tracker.
    prometheus.wait_value("ccbt_disk_read_seconds_count", "> 0", |v| v > 0.0);
    prometheus.wait_value("ccbt_cache_misses_total", "> 0", |v| v > 0.0);
    prometheus.wait_value("ccbt_announce_seconds_count", "> 0", |v| v > 0.0);
    // aria2 is gone: no peer is counted any more.
    prometheus.wait_value("ccbt_peers", "0", |v| v == 0.0);
    // The add (and the shard's other commands) went through the inbox, which is empty now.
    prometheus.wait_value("sum(ccbt_shard_inbox_taken_total)", "> 0", |v| v > 0.0);
    prometheus.wait_value("sum(ccbt_shard_inbox_depth)", "0", |v| v == 0.0);
    assert_eq!(
        prometheus.value(r#"sum(ccbt_announce_failures_total)"#),
        Some(0.0)
    );
    // Prometheus loaded the alert rules, and none fires on a healthy daemon.
    let rules = http(&prometheus.base, "GET", "/api/v1/rules", &[]);
    let rules: serde_json::Value = serde_json::from_str(&rules.body).unwrap();
    let loaded: Vec<&serde_json::Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(loaded.len() >= 5, "{rules}");
    assert!(loaded.iter().all(|r| r["health"] == "ok"), "{rules}");
    assert!(
        loaded.iter().all(|r| r["state"] != "firing"),
        "an alert fires on a healthy daemon: {rules}"
    );

    // promtool lints the exposition (the classic format curl-like clients get), with and
    // without per-torrent series.
    for path in ["/metrics", "/metrics?torrents=1"] {
        let body = http(&daemon.api, "GET", path, &[]).body;
        let (ok, out) = promtool(&["check", "metrics"], &body);
        assert!(ok, "promtool check metrics {path}:\n{out}\n{body}");
    }
    let per_torrent = http(&daemon.api, "GET", "/metrics?torrents=1", &[]).body;
    assert!(
        per_torrent.contains(&format!(
            "ccbt_torrent_uploaded_bytes_total{{info_hash=\"{hash}\"}} {listed}"
        )),
        "{per_torrent}"
    );
    assert!(!direct().contains("ccbt_torrent_uploaded_bytes_total"));

    drop(prometheus);
    let status = daemon.stop(Duration::from_secs(10));
    assert!(status.success(), "{}", daemon.running.log());
}

#[test]
fn bad_requests_to_metrics_and_events_get_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ccbt.toml");
    std::fs::write(
        &config,
        "[control]\nusername = \"admin\"\npassword = \"s3cret\"\nlogin_max_failures = 3\n",
    )
    .unwrap();
    let daemon = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--peer-port",
            &free_port().to_string(),
        ],
    );
    let api = &daemon.api;
    // admin:s3cret
    let auth = ("Authorization", "Basic YWRtaW46czNjcmV0");
    let expect = |reply: Reply, status: u16, reason: &str| {
        assert_eq!(reply.status, status, "{reply:?}");
        assert!(reply.body.contains(reason), "{reply:?}");
        reply
    };
    // Credentials are set: none (or wrong ones) get a challenge.
    let refused = expect(
        http(api, "GET", "/metrics", &[]),
        401,
        "credentials required",
    );
    assert!(
        refused
            .head
            .to_ascii_lowercase()
            .contains("www-authenticate: basic"),
        "{refused:?}"
    );
    expect(
        http(api, "GET", "/events", &[]),
        401,
        "credentials required",
    );
    let ok = http(api, "GET", "/metrics", &[auth]);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert!(ok.body.contains("ccbt_shards "), "{}", ok.body);

    // Bad parameters, methods and hosts.
    expect(
        http(api, "GET", "/metrics?torrents=lots", &[auth]),
        400,
        "expected 1 or 0",
    );
    expect(
        http(api, "GET", "/metrics?shard=1", &[auth]),
        400,
        "unknown parameter \"shard\"",
    );
    expect(http(api, "GET", "/metrics?torrents=%ZZ", &[auth]), 400, "");
    expect(
        http(api, "POST", "/metrics", &[auth, ("Content-Length", "0")]),
        405,
        "GET only",
    );
    expect(
        http(api, "GET", "/events?since=yesterday", &[auth]),
        400,
        "expected an event id",
    );
    expect(
        http(api, "GET", "/events?limit=5", &[auth]),
        400,
        "unknown parameter",
    );
    expect(
        http(api, "GET", "/events", &[auth, ("Last-Event-ID", "-3")]),
        400,
        "Last-Event-ID",
    );
    expect(http(api, "DELETE", "/events", &[auth]), 405, "GET only");
    expect(
        http(api, "GET", "/metrics", &[auth, ("Host", "evil.example:80")]),
        421,
        "Host header",
    );
    // Wrong passwords, again and again: the address is banned, even with the right one.
    for _ in 0..3 {
        expect(
            http(
                api,
                "GET",
                "/metrics",
                &[("Authorization", "Basic YWRtaW46eA==")],
            ),
            401,
            "credentials",
        );
    }
    expect(
        http(api, "GET", "/metrics", &[auth]),
        403,
        "too many failed logins",
    );
}

/// Unmounts a file system the test mounted.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_shows_in_the_metrics_and_prometheus_raises_its_alerts() {
    if !interop_ready(&[]) || !prometheus_ready() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    // A 4 MiB file system for an 8.4 MiB torrent. Needs root (CI runs as root).
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&small)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        assert!(
            std::env::var_os(REQUIRE_INTEROP).is_none(),
            "cannot mount a small tmpfs (root is needed)"
        );
        eprintln!("skipping: cannot mount a small tmpfs");
        return;
    }
    let _unmount = Unmount(small.clone());
    let tracker = Tracker::start();
    let big = tracker.torrent(&dir.path().join("big"), Announce::Http);
    let _seeder = common::swarm::ccbt_seed(&big.path, &big.data_dir, free_port(), 1);
    tracker.wait_for_seeders(&big.info_hash, 1, SEEDING);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut daemon = Daemon::start(&home, &["--peer-port", &free_port().to_string()]);
    let prometheus = Prometheus::start(addr_of(&daemon.api));
    // Scraped healthy first, so the counters' rise is seen.
    prometheus.wait_value(r#"up{job="ccbt-uring"}"#, "1", |v| v == 1.0);
    prometheus.wait_value("ccbt_disk_errors_total", "0", |v| v == 0.0);

    let hash = daemon.add(&big.path, &["--save-dir", small.to_str().unwrap()]);
    let t = daemon.wait_state(&hash, "failed", TRANSFER);
    assert_eq!(t["error_kind"], "disk-full", "{t}");
    prometheus.wait_value(
        r#"ccbt_torrents_faulted{kind="disk-full"}"#,
        "1 torrent",
        |v| v == 1.0,
    );
    prometheus.wait_value(r#"ccbt_torrents{state="failed"}"#, "1", |v| v == 1.0);
    prometheus.wait_value("ccbt_disk_errors_total", "> 0", |v| v > 0.0);
    // It downloaded (and wrote) what fitted before the disk filled.
    prometheus.wait_value("ccbt_downloaded_bytes_total", "> 0", |v| v > 0.0);
    prometheus.wait_value("ccbt_disk_write_seconds_count", "> 0", |v| v > 0.0);
    // The rules see it: disk errors fire at once; the full disk is pending for its `for:`
    // minute (or firing, on a slow machine).
    prometheus.wait_value(
        r#"count(ALERTS{alertname="CcbtDiskErrors", alertstate="firing"})"#,
        "firing",
        |v| v == 1.0,
    );
    prometheus.wait_value(
        r#"count(ALERTS{alertname="CcbtDiskFull", kind="disk-full"})"#,
        "pending or firing",
        |v| v == 1.0,
    );
    assert_eq!(
        prometheus.value(r#"count(ALERTS{alertname="CcbtDaemonDown"})"#),
        None,
        "the daemon is up"
    );
    drop(prometheus);
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn refused_connections_are_counted_by_reason_and_shard() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ccbt.toml");
    let blocklist = dir.path().join("block.p2p");
    std::fs::write(&blocklist, "loopback:127.0.0.0-127.255.255.255\n").unwrap();
    std::fs::write(
        &config,
        format!("[blocklist]\npath = {:?}\n", blocklist.to_str().unwrap()),
    )
    .unwrap();
    let port = free_port();
    let mut daemon = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--peer-port",
            &port.to_string(),
            "--shards",
            "2",
        ],
    );
    daemon.wait_log("blocklist loaded", Duration::from_secs(10));
    let scrape = || http(&daemon.api, "GET", "/metrics", &[]).body;
    let refused = |text: &str| {
        labelled(
            text,
            "ccbt_connections_refused_total",
            "reason=\"blocklist\"",
        )
        .unwrap()
    };
    let before = refused(&scrape());
    // Three connections from a listed address: each is closed unanswered, and counted.
    for _ in 0..3 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(IO)).unwrap();
        let mut answer = [0u8; 68];
        assert_eq!(
            s.read(&mut answer).unwrap_or(0),
            0,
            "a listed address was answered"
        );
    }
    let deadline = Instant::now() + IO;
    let text = loop {
        let text = scrape();
        if refused(&text) >= before + 3.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "refusals not counted:\n{text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(refused(&text), before + 3.0, "{text}");
    // The shards' own series add up to the total, and no other reason was counted.
    let per_shard: f64 = (0..2)
        .map(|shard| {
            labelled(
                &text,
                "ccbt_shard_connections_refused_total",
                &format!("shard=\"{shard}\",reason=\"blocklist\""),
            )
            .unwrap()
        })
        .sum();
    assert_eq!(per_shard, refused(&text));
    for reason in ["per_ip", "shard_limit", "owner_busy"] {
        assert_eq!(
            labelled(
                &text,
                "ccbt_connections_refused_total",
                &format!("reason=\"{reason}\"")
            ),
            Some(0.0),
            "{text}"
        );
    }
    assert_eq!(sample(&text, "ccbt_shards"), Some(2.0));
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn a_lying_peer_shows_as_hash_failures_and_a_ban_event() {
    if !interop_ready(&[]) {
        return;
    }
    const PIECE: usize = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start();
    // A torrent of our own on the tracker, and a peer that serves it corrupted.
    let content = common::bytes(11, 20 * PIECE);
    let src = dir.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("lies.bin"), &content).unwrap();
    let torrent = dir.path().join("lies.torrent");
    common::run(
        common::ccbt()
            .args(["create", "--piece-size", "64K", "--tracker"])
            .arg(tracker.http_announce())
            .arg("-o")
            .arg(&torrent)
            .arg(src.join("lies.bin")),
    )
    .ok();
    let hex = common::our_info_hash(&torrent);
    tracker.allow(&hex);
    let mut info_hash = [0u8; 20];
    for (i, b) in info_hash.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    let liar = common::wire_peer::ScriptedSeeder::corrupt(info_hash, content, PIECE as u32);
    // The liar tells the tracker it seeds, as any seeder would.
    let announce = format!(
        "/announce?info_hash={}&peer_id=-XX0000-liarliarliar&port={}&uploaded=0\
         &downloaded=0&left=0&event=started&compact=1",
        info_hash
            .iter()
            .map(|b| format!("%{b:02X}"))
            .collect::<String>(),
        liar.addr.port()
    );
    // Again until the tracker lists it: once in four runs under load opentracker answered
    // 200 and still listed no seeder (cause not found; a retry is what a client does).
    let tracker_url = format!("http://127.0.0.1:{}", tracker.port());
    let deadline = Instant::now() + SEEDING;
    loop {
        let reply = http(&tracker_url, "GET", &announce, &[]);
        assert_eq!(reply.status, 200, "{reply:?}");
        if tracker.scrape(&hex).complete >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tracker does not list the liar: {reply:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut daemon = Daemon::start(&home, &["--peer-port", &free_port().to_string()]);
    let out = dir.path().join("out");
    let hash = daemon.add(&torrent, &["--save-dir", out.to_str().unwrap()]);
    assert_eq!(hash, hex);
    // Every piece from the liar fails its check; it is banned, and the events say so.
    let deadline = Instant::now() + TRANSFER;
    let text = loop {
        let text = http(&daemon.api, "GET", "/metrics", &[]).body;
        let events = daemon.remote(&["events", "--since", "0"]).ok().stdout;
        if sample(&text, "ccbt_hash_failures_total").unwrap_or(0.0) > 0.0
            && events.contains("peer-banned")
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no hash failure or ban seen:\n{text}\n{events}\n{}",
            daemon.running.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(liar.blocks_sent.load(std::sync::atomic::Ordering::Relaxed) > 0);
    let failures = sample(&text, "ccbt_hash_failures_total").unwrap();
    let per_shard: f64 = text
        .lines()
        .filter(|l| l.starts_with("ccbt_shard_hash_failures_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(per_shard, failures, "{text}");
    // The bytes it sent were received (and thrown away): payload down counts them.
    assert!(sample(&text, "ccbt_downloaded_bytes_total").unwrap() >= PIECE as f64);
    // Nothing it sent was kept.
    assert_eq!(daemon.torrent(&hash)["have_pieces"], 0);
    assert!(daemon.stop(Duration::from_secs(10)).success());
}
