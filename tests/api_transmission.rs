//! The Transmission RPC and web UI of `ccbt-uring daemon`, driven by the real
//! `transmission-remote` 3.00 (Debian transmission-cli) and by raw HTTP: a download it
//! started, its list/info/files output, stop/start/verify, a ratio limit, removal with and
//! without data; credentials, the session-id dance, the Host check, bans, and bad bodies
//! answered with reasons while the daemon keeps answering; renames on disk and after a
//! restart.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::http::send;
use common::swarm::{self, assert_same_tree, free_port, interop_ready, Announce, Tracker};
use common::{require, run_for, Ran};
use serde_json::{json, Value};

const SEEDING: Duration = Duration::from_secs(30);
const TRANSFER: Duration = Duration::from_secs(90);
const STOP: Duration = Duration::from_secs(10);

/// `transmission-remote HOST:PORT [-n user:pass] ARGS`, within a minute.
fn remote(daemon: &Daemon, auth: Option<&str>, args: &[&str]) -> Ran {
    require("transmission-remote", "transmission-cli");
    let target = daemon.api.trim_start_matches("http://");
    let mut cmd = Command::new("transmission-remote");
    cmd.arg(target);
    if let Some(auth) = auth {
        cmd.args(["-n", auth]);
    }
    cmd.args(args);
    run_for(&mut cmd, Duration::from_secs(60))
}

/// Runs `transmission-remote ARGS`, checks it said "success", returns its stdout.
#[track_caller]
fn remote_ok(daemon: &Daemon, args: &[&str]) -> String {
    let ran = remote(daemon, None, args);
    assert_eq!(
        ran.code,
        Some(0),
        "{args:?}: {}\n{}",
        ran.stdout,
        ran.stderr
    );
    ran.stdout
}

/// One line of `transmission-remote -l`.
#[derive(Debug)]
struct Listed {
    id: u32,
    done: String,
    status: String,
    name: String,
}

/// Parses `-l`'s table by its header's columns.
fn parse_list(out: &str) -> Vec<Listed> {
    let mut lines = out.lines();
    let header = lines.next().unwrap_or_default();
    let (status_at, name_at) = (
        header.find("Status").expect("a Status column"),
        header.find("Name").expect("a Name column"),
    );
    lines
        .filter(|l| !l.starts_with("Sum:") && l.len() > name_at)
        .map(|l| {
            let tokens: Vec<&str> = l.split_whitespace().collect();
            Listed {
                id: tokens[0].trim_end_matches('*').parse().unwrap(),
                done: tokens[1].to_string(),
                status: l[status_at..name_at].trim().to_string(),
                name: l[name_at..].trim().to_string(),
            }
        })
        .collect()
}

#[track_caller]
fn listed(daemon: &Daemon, name: &str) -> Option<Listed> {
    parse_list(&remote_ok(daemon, &["-l"]))
        .into_iter()
        .find(|t| t.name == name)
}

/// Waits until `-l` shows the torrent as `pred` says.
#[track_caller]
fn wait_listed(daemon: &Daemon, name: &str, limit: Duration, pred: impl Fn(&Listed) -> bool) {
    let until = Instant::now() + limit;
    loop {
        let t = listed(daemon, name);
        if t.as_ref().is_some_and(&pred) {
            return;
        }
        assert!(
            Instant::now() < until,
            "{name} not as expected after {limit:?}: {t:?}\n{}",
            daemon.running.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `Key: value` of `-i`'s output.
fn info_value(out: &str, key: &str) -> Option<String> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().to_string())
}

#[test]
fn transmission_remote_downloads_lists_stops_starts_verifies_limits_and_removes() {
    if !interop_ready(&[]) {
        return;
    }
    require("transmission-remote", "transmission-cli");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start();
    let torrent = tracker.torrent(dir.path(), Announce::Http);
    // A second ccbt-uring seeds it through the tracker.
    let _seeder = swarm::ccbt_seed(&torrent.path, &torrent.data_dir, free_port(), 1);
    tracker.wait_for_seeders(&torrent.info_hash, 1, SEEDING);
    let downloads = dir.path().join("downloads");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let port = free_port().to_string();
    let mut daemon = Daemon::start(
        &home,
        &[
            "--peer-port",
            &port,
            "--download-dir",
            downloads.to_str().unwrap(),
        ],
    );

    let out = remote_ok(&daemon, &["-a", torrent.path.to_str().unwrap()]);
    assert!(out.contains("responded: \"success\""), "{out}");
    wait_listed(&daemon, &torrent.name, TRANSFER, |t| t.done == "100%");
    assert_same_tree(&torrent.content(), &torrent.content_in(&downloads));
    let t = listed(&daemon, &torrent.name).unwrap();
    assert_ne!(t.status, "Stopped", "{t:?}");

    let id = t.id.to_string();
    let info = remote_ok(&daemon, &["-t", &id, "-i"]);
    assert_eq!(info_value(&info, "Name").as_deref(), Some("swarm-test"));
    assert_eq!(
        info_value(&info, "Hash").as_deref(),
        Some(torrent.info_hash.as_str())
    );
    assert_eq!(
        info_value(&info, "Location").as_deref(),
        Some(downloads.to_str().unwrap())
    );
    assert_eq!(info_value(&info, "Percent Done").as_deref(), Some("100%"));
    assert_eq!(info_value(&info, "Piece Count").as_deref(), Some("34"));

    let files = remote_ok(&daemon, &["-t", &id, "-f"]);
    assert!(files.starts_with("swarm-test (4 files):"), "{files}");
    for (path, _) in swarm::TEST_FILES {
        let line = files
            .lines()
            .find(|l| l.ends_with(&format!("swarm-test/{path}")))
            .unwrap_or_else(|| panic!("no {path} in\n{files}"));
        assert!(line.contains("100% Normal   Yes"), "{line}");
    }

    remote_ok(&daemon, &["-t", &id, "-S"]);
    wait_listed(&daemon, &torrent.name, SEEDING, |t| t.status == "Stopped");
    remote_ok(&daemon, &["-t", &id, "-s"]);
    wait_listed(&daemon, &torrent.name, SEEDING, |t| {
        t.status != "Stopped" && t.done == "100%"
    });
    remote_ok(&daemon, &["-t", &id, "-v"]);
    wait_listed(&daemon, &torrent.name, SEEDING, |t| {
        t.done == "100%" && !t.status.contains("Verify")
    });

    remote_ok(&daemon, &["-t", &id, "-sr", "2.5"]);
    let info = remote_ok(&daemon, &["-t", &id, "-i"]);
    assert_eq!(info_value(&info, "Ratio Limit").as_deref(), Some("2.5"));

    // One file unwanted, then wanted again.
    let file_line = |files: &str, index: &str| -> String {
        files
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{index}:")))
            .unwrap_or_else(|| panic!("no file {index} in\n{files}"))
            .to_string()
    };
    remote_ok(&daemon, &["-t", &id, "-G", "1"]);
    let files = remote_ok(&daemon, &["-t", &id, "-f"]);
    assert!(file_line(&files, "1").contains(" No "), "{files}");
    assert!(file_line(&files, "0").contains(" Yes "), "{files}");
    remote_ok(&daemon, &["-t", &id, "-g", "1"]);
    let files = remote_ok(&daemon, &["-t", &id, "-f"]);
    assert!(file_line(&files, "1").contains(" Yes "), "{files}");

    // The tracker, the session's figures and a global limit.
    let trackers = remote_ok(&daemon, &["-t", &id, "-it"]);
    let tracker_line = format!("Tracker 0: 127.0.0.1:{}", tracker.port());
    assert!(trackers.contains(&tracker_line), "{trackers}");
    let stats = remote_ok(&daemon, &["-st"]);
    assert!(stats.contains("Started 1 times"), "{stats}");
    remote_ok(&daemon, &["-d", "300"]);
    let session = remote_ok(&daemon, &["-si"]);
    assert!(
        session.contains("Download speed limit: 300 kB/s"),
        "{session}"
    );
    assert!(session.contains("RPC version: 17"), "{session}");

    // Removed without its data: the files stay.
    remote_ok(&daemon, &["-t", &id, "-r"]);
    assert!(listed(&daemon, &torrent.name).is_none());
    assert_same_tree(&torrent.content(), &torrent.content_in(&downloads));

    // Added again onto that data (-w names the directory), then removed with it.
    remote_ok(
        &daemon,
        &[
            "-a",
            torrent.path.to_str().unwrap(),
            "-w",
            downloads.to_str().unwrap(),
        ],
    );
    wait_listed(&daemon, &torrent.name, SEEDING, |t| t.done == "100%");
    let id = listed(&daemon, &torrent.name).unwrap().id.to_string();
    remote_ok(&daemon, &["-t", &id, "--remove-and-delete"]);
    assert!(listed(&daemon, &torrent.name).is_none());
    assert!(
        !torrent.content_in(&downloads).exists(),
        "the data was not deleted"
    );
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
}

const BASIC_GOOD: &str = "Basic YWRtaW46czNjcmV0"; // admin:s3cret
const BASIC_BAD: &str = "Basic YWRtaW46d3Jvbmc="; // admin:wrong

/// An RPC call with good credentials and the session id.
fn call(api: &str, id: &str, body: Value) -> Value {
    let a = send(
        api,
        "POST",
        "/transmission/rpc",
        &[
            ("Authorization", BASIC_GOOD),
            ("X-Transmission-Session-Id", id),
            ("Content-Type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(a.status, 200, "{body}: {}", a.body);
    a.json()
}

/// Writes a small torrent of our own under `dir/data/NAME` with `ccbt-uring create`.
fn own_torrent(dir: &Path, name: &str, files: &[(&str, usize)]) -> PathBuf {
    let torrent = dir.join(format!("{name}.torrent"));
    common::own_torrent(&dir.join("data").join(name), files, &torrent)
}

#[test]
fn credentials_session_ids_hosts_bans_and_bad_bodies_are_answered_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("data");
    let config = dir.path().join("ccbt.toml");
    std::fs::write(
        &config,
        format!(
            "[control]\nusername = \"admin\"\npassword = \"s3cret\"\nlogin_max_failures = 3\n\
             max_request_bytes = 65536\nallowed_save_dirs = [\"{}\"]\n",
            downloads.display()
        ),
    )
    .unwrap();
    let torrent = own_torrent(dir.path(), "small", &[("one.bin", 70_000), ("two.bin", 9)]);
    let port = free_port().to_string();
    let mut daemon = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--peer-port",
            &port,
            "--download-dir",
            downloads.to_str().unwrap(),
        ],
    );
    let api = daemon.api.clone();
    let rpc = "/transmission/rpc";
    let session_get = br#"{"method":"session-get"}"#;

    // No credentials: a challenge.
    let a = send(&api, "POST", rpc, &[], session_get);
    assert_eq!(a.status, 401);
    assert_eq!(
        a.header("WWW-Authenticate"),
        Some("Basic realm=\"Transmission\"")
    );
    // Credentials, no session id, then a stale one: 409 with this run's id.
    let a = send(
        &api,
        "POST",
        rpc,
        &[("Authorization", BASIC_GOOD)],
        session_get,
    );
    assert_eq!(a.status, 409);
    let id = a
        .header("X-Transmission-Session-Id")
        .expect("the 409 carries the session id")
        .to_string();
    let stale = send(
        &api,
        "POST",
        rpc,
        &[
            ("Authorization", BASIC_GOOD),
            ("X-Transmission-Session-Id", "0123456789abcdef"),
        ],
        session_get,
    );
    assert_eq!(stale.status, 409);
    assert_eq!(stale.header("X-Transmission-Session-Id"), Some(id.as_str()));
    // GET gets the 409 too; with the id, a reason to POST.
    let get = send(&api, "GET", rpc, &[("Authorization", BASIC_GOOD)], b"");
    assert_eq!(get.status, 409);
    let get = send(
        &api,
        "GET",
        "/transmission/rpc/",
        &[
            ("Authorization", BASIC_GOOD),
            ("X-Transmission-Session-Id", &id),
        ],
        b"",
    );
    assert_eq!(get.status, 405, "{}", get.body);
    // The right call, with a form content type as transmission-remote sends it, and a tag.
    let a = send(
        &api,
        "POST",
        "/transmission/rpc/",
        &[
            ("Authorization", BASIC_GOOD),
            ("X-Transmission-Session-Id", &id),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        br#"{"method":"session-get","arguments":{"fields":["version","rpc-version","rpc-version-minimum","download-dir"]},"tag":42}"#,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["result"], "success");
    assert_eq!(v["tag"], 42);
    assert_eq!(v["arguments"]["rpc-version"], 17);
    assert_eq!(v["arguments"]["rpc-version-minimum"], 14);
    assert!(v["arguments"]["version"]
        .as_str()
        .unwrap()
        .starts_with("4.0.6 (ccbt-uring "));
    assert_eq!(v["arguments"]["download-dir"], downloads.to_str().unwrap());
    assert_eq!(v["arguments"].as_object().unwrap().len(), 4);

    // A Host that is not ours (DNS rebinding): 421.
    let a = send(
        &api,
        "POST",
        rpc,
        &[
            ("Host", "evil.example:9091"),
            ("Authorization", BASIC_GOOD),
            ("X-Transmission-Session-Id", &id),
        ],
        session_get,
    );
    assert_eq!(a.status, 421, "{}", a.body);

    // Bad bodies: reasons, and the daemon goes on answering.
    let auth = [
        ("Authorization", BASIC_GOOD),
        ("X-Transmission-Session-Id", id.as_str()),
    ];
    let a = send(&api, "POST", rpc, &auth, b"{\"method\": \"session-get\"");
    assert_eq!(a.status, 400);
    assert!(a.body.contains("not JSON"), "{}", a.body);
    let a = send(&api, "POST", rpc, &auth, b"[1, 2]");
    assert_eq!(a.status, 400);
    assert!(a.body.contains("JSON object"), "{}", a.body);
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-get", "arguments": [1]}),
    );
    assert_eq!(
        v["result"],
        "\"arguments\" must be a JSON object, not an array"
    );
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-get", "arguments": {"fields": "id"}}),
    );
    assert_eq!(
        v["result"],
        "\"fields\" must be a list of strings, not a string"
    );
    let v = call(&api, &id, json!({"method": "torrent-explode"}));
    assert_eq!(v["result"], "method name not recognized");
    let big = vec![b' '; 200_000];
    let a = send(&api, "POST", rpc, &auth, &big);
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(a.body.contains("max_request_bytes"), "{}", a.body);
    // A client that stops halfway through its body does not hold up the others, and
    // bytes that are not HTTP get a 400 and a closed connection.
    let addr = api.trim_start_matches("http://");
    let mut stuck = TcpStream::connect(addr).unwrap();
    stuck
        .write_all(
            b"POST /transmission/rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    garbage
        .write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = garbage.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    let v = call(&api, &id, json!({"method": "session-get"}));
    assert_eq!(v["result"], "success");
    drop(stuck);

    // transmission-remote answers the challenge with its credentials.
    let ran = remote(&daemon, Some("admin:s3cret"), &["-l"]);
    assert_eq!(ran.code, Some(0), "{}\n{}", ran.stdout, ran.stderr);
    assert!(ran.stdout.starts_with("    ID   Done"), "{}", ran.stdout);
    let ran = remote(&daemon, None, &["-l"]);
    assert_ne!(
        ran.code,
        Some(0),
        "no credentials must fail: {}",
        ran.stdout
    );

    // torrent-add: a save path outside the allowed ones, a broken magnet link, then the
    // real thing.
    use base64::Engine as _;
    let metainfo =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&torrent).unwrap());
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-add", "arguments": {"metainfo": metainfo, "download-dir": "/etc"}}),
    );
    assert!(
        v["result"]
            .as_str()
            .unwrap()
            .contains("not under an allowed save directory"),
        "{v}"
    );
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-add", "arguments": {"filename": "magnet:?dn=no-info-hash"}}),
    );
    assert!(
        v["result"]
            .as_str()
            .unwrap()
            .starts_with("not a valid magnet link"),
        "{v}"
    );
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-add", "arguments": {
            "metainfo": metainfo, "paused": false, "labels": ["tv"], "files-unwanted": [1]
        }}),
    );
    assert_eq!(v["result"], "success", "{v}");
    let added = &v["arguments"]["torrent-added"];
    assert_eq!(added["name"], "small");
    let tid = added["id"].as_u64().unwrap();
    let hash = added["hashString"].as_str().unwrap().to_string();
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-add", "arguments": {"metainfo": metainfo}}),
    );
    assert_eq!(v["arguments"]["torrent-duplicate"]["id"], tid, "{v}");

    // Sonarr's fields, asked by hash; the data is there, so it seeds after its check.
    let sonarr = [
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
        "file-count",
        "labels",
        "noSuchField",
    ];
    let until = Instant::now() + SEEDING;
    let t = loop {
        let v = call(
            &api,
            &id,
            json!({"method": "torrent-get", "arguments": {"ids": [hash], "fields": sonarr}}),
        );
        let t = v["arguments"]["torrents"][0].clone();
        if t["status"] == 6 {
            break t;
        }
        assert!(Instant::now() < until, "not seeding: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(t["id"], tid);
    assert_eq!(t["downloadDir"], downloads.to_str().unwrap());
    assert_eq!(t["totalSize"], 70_009);
    assert_eq!(t["leftUntilDone"], 0);
    assert_eq!(t["isFinished"], false);
    assert_eq!(t["errorString"], "");
    assert_eq!(t["fileCount"], 2);
    assert_eq!(t["labels"], json!(["tv"]));
    assert_eq!(t["eta"], -2, "seeding with no ratio limit never ends");
    assert!(
        t.get("noSuchField").is_none(),
        "unknown fields are left out"
    );

    // torrent-set as Sonarr sends it, then the table format shows it.
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-set", "arguments": {
            "ids": [hash], "seedRatioLimit": 1.5, "seedRatioMode": 1,
            "seedIdleLimit": 20, "seedIdleMode": 1, "labels": ["tv", "hd"]
        }}),
    );
    assert_eq!(v["result"], "success", "{v}");
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-get", "arguments": {
            "ids": tid, "format": "table",
            "fields": ["id", "seedRatioLimit", "seedRatioMode", "seedIdleLimit", "labels", "wanted", "sizeWhenDone"]
        }}),
    );
    assert_eq!(
        v["arguments"]["torrents"],
        json!([
            [
                "id",
                "seedRatioLimit",
                "seedRatioMode",
                "seedIdleLimit",
                "labels",
                "wanted",
                "sizeWhenDone"
            ],
            [tid, 1.5, 1, 20, ["tv", "hd"], [1, 0], 70_000]
        ])
    );
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-set", "arguments": {"ids": [tid], "trackerList": "ftp://x/announce"}}),
    );
    let result = v["result"].as_str().unwrap();
    assert!(
        result.contains("\"ftp://x/announce\" is not an http, https or udp tracker URL"),
        "{v}"
    );

    // Removed: recently-active names it in "removed"; the data stays.
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-remove", "arguments": {"ids": [tid]}}),
    );
    assert_eq!(v["result"], "success");
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-get", "arguments": {"ids": "recently-active", "fields": ["id"]}}),
    );
    assert_eq!(v["arguments"]["removed"], json!([tid]), "{v}");
    assert!(downloads.join("small/one.bin").is_file());

    // free-space on the download directory.
    let v = call(
        &api,
        &id,
        json!({"method": "free-space", "arguments": {"path": downloads.to_str().unwrap()}}),
    );
    assert!(v["arguments"]["size-bytes"].as_u64().unwrap() > 0, "{v}");
    assert!(
        v["arguments"]["total_size"].as_u64().unwrap()
            >= v["arguments"]["size-bytes"].as_u64().unwrap()
    );

    // Brute force: three wrong passwords, then even the right one is refused.
    for _ in 0..3 {
        let a = send(
            &api,
            "POST",
            rpc,
            &[("Authorization", BASIC_BAD)],
            session_get,
        );
        assert_eq!(a.status, 401);
    }
    let a = send(&api, "POST", rpc, &auth, session_get);
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(
        a.body.contains("Too many unsuccessful login attempts"),
        "{}",
        a.body
    );
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
}

#[test]
fn the_web_ui_is_served_from_its_directory_and_a_missing_one_is_named() {
    let web = Path::new("/usr/share/transmission/web");
    if !web.join("index.html").is_file() {
        let why = "Transmission's web UI is not installed: `apt-get install transmission-common`";
        if std::env::var_os("CCBT_REQUIRE_INTEROP").is_some() {
            panic!("{why} (see tools/install-deps.sh)");
        }
        return eprintln!("skipping: {why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let mut daemon = Daemon::start(dir.path(), &["--peer-port", &port]);
    let api = daemon.api.clone();
    for path in ["/", "/transmission", "/transmission/web"] {
        let a = send(&api, "GET", path, &[], b"");
        assert_eq!(a.status, 301, "{path}");
        assert_eq!(a.header("Location"), Some("/transmission/web/"), "{path}");
    }
    let index = send(&api, "GET", "/transmission/web/", &[], b"");
    assert_eq!(index.status, 200);
    assert_eq!(
        index.body,
        std::fs::read_to_string(web.join("index.html")).unwrap()
    );
    let js = send(
        &api,
        "GET",
        "/transmission/web/javascript/remote.js",
        &[],
        b"",
    );
    assert_eq!(js.status, 200);
    assert!(js.body.contains("X-Transmission-Session-Id"));
    let outside = send(
        &api,
        "GET",
        "/transmission/web/../../../etc/passwd",
        &[],
        b"",
    );
    assert_ne!(outside.status, 200, "{}", outside.body);
    assert!(daemon.stop(STOP).success());

    let config = dir.path().join("ccbt.toml");
    std::fs::write(&config, "[control]\nweb_ui_dir = \"/nonexistent/web\"\n").unwrap();
    let home = dir.path().join("second");
    std::fs::create_dir_all(&home).unwrap();
    let port = free_port().to_string();
    let mut daemon = Daemon::start(
        &home,
        &["--config", config.to_str().unwrap(), "--peer-port", &port],
    );
    let a = send(&daemon.api, "GET", "/transmission/web/", &[], b"");
    assert_eq!(a.status, 404);
    assert!(a.body.contains("control.web_ui_dir"), "{}", a.body);
    assert!(daemon.stop(STOP).success());
}

/// The venv's python with selenium, once Chromium, its driver and the UI are installed.
fn webui_python() -> Option<PathBuf> {
    let python = common::venv::python_with("selenium")?;
    let ready = Path::new("/usr/bin/chromium").is_file()
        && Path::new("/usr/bin/chromedriver").is_file()
        && Path::new("/usr/share/transmission/web/index.html").is_file();
    if ready {
        return Some(python);
    }
    let why = "the browser test needs chromium, chromium-driver and transmission-common: \
               run tools/install-deps.sh";
    if std::env::var_os("CCBT_REQUIRE_INTEROP").is_some() {
        panic!("{why}; CCBT_REQUIRE_INTEROP is set, so this is a failure");
    }
    eprintln!("skipping: {why}");
    None
}

#[test]
fn the_web_ui_in_chromium_lists_adds_and_removes_torrents() {
    let Some(python) = webui_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let first = own_torrent(dir.path(), "first-listed", &[("f.bin", 40_000)]);
    let second = own_torrent(dir.path(), "second-added", &[("s.bin", 30_000)]);
    let downloads = dir.path().join("data");
    let port = free_port().to_string();
    let mut daemon = Daemon::start(
        dir.path(),
        &[
            "--peer-port",
            &port,
            "--download-dir",
            downloads.to_str().unwrap(),
        ],
    );
    let api = daemon.api.clone();
    let id = send(&api, "POST", "/transmission/rpc", &[], b"")
        .header("X-Transmission-Session-Id")
        .unwrap()
        .to_string();
    use base64::Engine as _;
    let metainfo = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&first).unwrap());
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-add", "arguments": {"metainfo": metainfo}}),
    );
    assert_eq!(v["result"], "success", "{v}");

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("transmission-web-ui.png");
    let _ = std::fs::remove_file(&screenshot);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/webui_browser.py");
    let ran = run_for(
        Command::new(python)
            .arg(script)
            .arg(&api)
            .arg("first-listed")
            .arg(&second)
            .arg("second-added")
            .arg(&screenshot),
        Duration::from_secs(240),
    );
    assert_eq!(
        ran.code,
        Some(0),
        "the browser script failed:\n{}\n{}\n{}",
        ran.stdout,
        ran.stderr,
        daemon.running.log_tail()
    );
    let page: Value = serde_json::from_str(ran.stdout.trim().lines().last().unwrap()).unwrap();
    assert_eq!(page["listed"], json!(["second-added"]), "{page}");
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );

    // The RPC agrees with the page.
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-get", "arguments": {"fields": ["name", "downloadDir"]}}),
    );
    assert_eq!(
        v["arguments"]["torrents"],
        json!([{"name": "second-added", "downloadDir": downloads.to_str().unwrap()}]),
        "{v}"
    );
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
}

/// `python3 -m http.server` serving `dir` on 127.0.0.1, stopped (by PID) when dropped.
struct FileServer {
    _running: swarm::Running,
    port: u16,
}

impl FileServer {
    fn start(dir: &Path) -> FileServer {
        require("python3", "python3");
        let port = free_port();
        let dir = dir.to_path_buf();
        let running = swarm::Running::start("http.server", move |_| {
            let mut cmd = Command::new("python3");
            cmd.args(["-m", "http.server", "--bind", "127.0.0.1", "--directory"])
                .arg(&dir)
                .arg(port.to_string());
            cmd
        });
        let until = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < until, "http.server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        FileServer {
            _running: running,
            port,
        }
    }
}

/// torrent-add with an https:// `filename` goes through the same fetcher as the WebAPI's
/// `torrents/add`: refused with the TLS reason while the server's certificate is not
/// trusted, added once `SSL_CERT_FILE` names it.
#[test]
fn https_urls_are_fetched_once_their_certificate_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    own_torrent(dir.path(), "over-tls", &[("t.bin", 30_000)]);
    let server = common::https::HttpsServer::start(dir.path(), dir.path());
    let url = server.url("over-tls.torrent");
    let add = json!({"method": "torrent-add", "arguments": {"filename": url, "paused": true}});

    let untrusting_home = dir.path().join("untrusting");
    std::fs::create_dir_all(&untrusting_home).unwrap();
    let mut untrusting = Daemon::start(&untrusting_home, &[]);
    let id = session_id(&untrusting.api);
    let v = call_open(&untrusting.api, &id, add.clone());
    let result = v["result"].as_str().unwrap();
    assert!(
        result.contains("TLS") && result.contains("certificate"),
        "{v}"
    );
    assert!(untrusting.stop(STOP).success());

    let trusting_home = dir.path().join("trusting");
    std::fs::create_dir_all(&trusting_home).unwrap();
    let mut trusting =
        Daemon::start_with_env(&trusting_home, &[], &[("SSL_CERT_FILE", &server.cert)]);
    let id = session_id(&trusting.api);
    let v = call_open(&trusting.api, &id, add);
    assert_eq!(v["result"], "success", "{v}");
    assert_eq!(v["arguments"]["torrent-added"]["name"], "over-tls", "{v}");
    assert!(trusting.stop(STOP).success(), "{}", trusting.running.log());
}

/// Settings changed through session-set and setPreferences stay when the config file is
/// reloaded for another key, with a log line saying so; a key the file itself changes
/// takes the file's value, also with a log line. They stay across a restart too, unless
/// the file was edited for that key meanwhile.
#[test]
fn api_settings_survive_reloads_and_restarts_unless_the_file_changes_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("ccbt.toml");
    std::fs::write(&cfg, "[queue]\nmax_active_seeds = 4\n").unwrap();
    let mut daemon = Daemon::start(dir.path(), &["--config", cfg.to_str().unwrap()]);
    let api = daemon.api.clone();
    let id = session_id(&api);
    let set = json!({"method": "session-set", "arguments": {
        "speed-limit-down": 500, "speed-limit-down-enabled": true}});
    assert_eq!(call_open(&api, &id, set)["result"], "success");
    let prefs = send(
        &api,
        "POST",
        "/api/v2/app/setPreferences",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        br#"json={"max_active_downloads":9}"#,
    );
    assert_eq!(prefs.status, 200, "{}", prefs.body);
    let session = |daemon: &Daemon| {
        let get = json!({"method": "session-get", "arguments": {
            "fields": ["speed-limit-down", "speed-limit-down-enabled", "download-queue-size"]}});
        call_open(&daemon.api, &id, get)["arguments"].clone()
    };
    let set_by_apis = json!({"speed-limit-down": 500, "speed-limit-down-enabled": true,
        "download-queue-size": 9});
    assert_eq!(session(&daemon), set_by_apis);

    // The file changes another key: both API settings stay, and the log says so.
    std::fs::write(&cfg, "[queue]\nmax_active_seeds = 6\n").unwrap();
    daemon.wait_log("config reload: kept the value set through the API", SEEDING);
    assert_eq!(session(&daemon), set_by_apis, "{}", daemon.running.log());

    // The file sets the download limit itself: its value wins, with a warning.
    std::fs::write(
        &cfg,
        "[queue]\nmax_active_seeds = 6\n[limits]\ndownload_bytes_per_s = 2000000\n",
    )
    .unwrap();
    daemon.wait_log("its value replaces the one set through the API", SEEDING);
    assert_eq!(
        session(&daemon),
        json!({"speed-limit-down": 2000, "speed-limit-down-enabled": true,
            "download-queue-size": 9}),
        "{}",
        daemon.running.log()
    );
    assert!(daemon.stop(STOP).success());

    // A restart keeps what the API set (the file still says what it said then)...
    let mut daemon = Daemon::start(dir.path(), &["--config", cfg.to_str().unwrap()]);
    let id = session_id(&daemon.api);
    let session = |daemon: &Daemon| {
        let get = json!({"method": "session-get", "arguments": {
            "fields": ["speed-limit-down", "download-queue-size"]}});
        call_open(&daemon.api, &id, get)["arguments"].clone()
    };
    assert_eq!(
        session(&daemon),
        json!({"speed-limit-down": 2000, "download-queue-size": 9}),
        "{}",
        daemon.running.log()
    );
    assert!(daemon.stop(STOP).success());
    // ...unless the file was edited for that key while the daemon was down.
    std::fs::write(
        &cfg,
        "[queue]\nmax_active_seeds = 6\nmax_active_downloads = 3\n\
         [limits]\ndownload_bytes_per_s = 2000000\n",
    )
    .unwrap();
    let mut daemon = Daemon::start(dir.path(), &["--config", cfg.to_str().unwrap()]);
    let id = session_id(&daemon.api);
    let get = json!({"method": "session-get", "arguments": {"fields": ["download-queue-size"]}});
    assert_eq!(
        call_open(&daemon.api, &id, get)["arguments"],
        json!({"download-queue-size": 3}),
        "{}",
        daemon.running.log()
    );
    daemon.wait_log(
        "the config changed this key since it was set through the API",
        STOP,
    );
    assert!(daemon.stop(STOP).success());
}

/// A control address beyond loopback needs credentials: without them the daemon refuses
/// to start, saying what to set, before it binds anything (so the test never listens
/// beyond 127.0.0.1).
#[test]
fn a_control_address_beyond_loopback_without_credentials_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ran = run_for(
        common::ccbt()
            .args(["daemon", "--control", "0.0.0.0:0", "--peer-port", "0"])
            .current_dir(dir.path())
            .env("HOME", dir.path())
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME"),
        Duration::from_secs(30),
    );
    assert_ne!(ran.code, Some(0), "{ran:?}");
    assert!(
        ran.stderr.contains("control.username") && ran.stderr.contains("loopback"),
        "{ran:?}"
    );
    assert!(!ran.stderr.contains("panicked"), "{ran:?}");
    assert!(
        !ran.stdout.contains("ccbt-uring daemon: "),
        "it started: {ran:?}"
    );
}

/// The session id a first, id-less call is answered (409) with.
fn session_id(api: &str) -> String {
    send(api, "POST", "/transmission/rpc", &[], b"")
        .header("X-Transmission-Session-Id")
        .unwrap()
        .to_string()
}

/// An RPC call to a daemon without credentials (loopback), with the session id.
fn call_open(api: &str, id: &str, body: Value) -> Value {
    let a = send(
        api,
        "POST",
        "/transmission/rpc",
        &[("X-Transmission-Session-Id", id)],
        body.to_string().as_bytes(),
    );
    assert_eq!(a.status, 200, "{body}: {}", a.body);
    a.json()
}

#[test]
fn adds_by_url_and_path_share_limits_finish_a_torrent_and_the_queue_moves() {
    let dir = tempfile::tempdir().unwrap();
    // Served by URL from dir.
    own_torrent(dir.path(), "by-url", &[("u.bin", 50_000)]);
    let b = own_torrent(dir.path(), "by-path", &[("p.bin", 20_000)]);
    let server = FileServer::start(dir.path());
    let downloads = dir.path().join("data");
    let port = free_port().to_string();
    let mut daemon = Daemon::start(
        dir.path(),
        &[
            "--peer-port",
            &port,
            "--download-dir",
            downloads.to_str().unwrap(),
        ],
    );
    let api = daemon.api.clone();
    let id = send(&api, "POST", "/transmission/rpc", &[], b"")
        .header("X-Transmission-Session-Id")
        .unwrap()
        .to_string();

    let url = format!("http://127.0.0.1:{}/by-url.torrent", server.port);
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-add", "arguments": {"filename": url}}),
    );
    assert_eq!(v["arguments"]["torrent-added"]["name"], "by-url", "{v}");
    let ua = v["arguments"]["torrent-added"]["id"].as_u64().unwrap();
    let missing = format!("http://127.0.0.1:{}/nothing.torrent", server.port);
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-add", "arguments": {"filename": missing}}),
    );
    assert!(v["result"].as_str().unwrap().contains("404"), "{v}");
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-add", "arguments": {"filename": b.to_str().unwrap(), "paused": true}}),
    );
    assert_eq!(v["arguments"]["torrent-added"]["name"], "by-path", "{v}");
    let ub = v["arguments"]["torrent-added"]["id"].as_u64().unwrap();
    drop(server);

    // Queue order: added order first; then the second moves to the top.
    let queue = |api: &str| -> Vec<(u64, u64)> {
        let v = call(
            api,
            &id,
            json!({"method": "torrent-get", "arguments": {"fields": ["id", "queuePosition"]}}),
        );
        let mut q: Vec<(u64, u64)> = v["arguments"]["torrents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["queuePosition"].as_u64().unwrap(),
                    t["id"].as_u64().unwrap(),
                )
            })
            .collect();
        q.sort();
        q
    };
    assert_eq!(queue(&api), vec![(0, ua), (1, ub)]);
    let v = call(
        &api,
        &id,
        json!({"method": "queue-move-top", "arguments": {"ids": [ub]}}),
    );
    assert_eq!(v["result"], "success");
    assert_eq!(queue(&api), vec![(0, ub), (1, ua)]);
    call(
        &api,
        &id,
        json!({"method": "queue-move-down", "arguments": {"ids": [ub]}}),
    );
    assert_eq!(queue(&api), vec![(0, ua), (1, ub)]);

    // The paused one is stopped (0), not finished; a ratio limit of 0 finishes the other
    // once it seeds: stopped by its limit, isFinished as Sonarr reads it.
    let get = |ids: u64| {
        call(
            &api,
            &id,
            json!({"method": "torrent-get", "arguments": {"ids": [ids], "fields": ["status", "isFinished", "leftUntilDone", "percentDone"]}}),
        )["arguments"]["torrents"][0]
            .clone()
    };
    let t = get(ub);
    assert_eq!(
        (t["status"].clone(), t["isFinished"].clone()),
        (json!(0), json!(false)),
        "{t}"
    );
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-set", "arguments": {"ids": [ua], "seedRatioLimit": 0.0, "seedRatioMode": 1}}),
    );
    assert_eq!(v["result"], "success", "{v}");
    let until = Instant::now() + SEEDING;
    loop {
        let t = get(ua);
        if t["isFinished"] == true {
            assert_eq!(t["status"], 0, "{t}");
            assert_eq!(t["leftUntilDone"], 0, "{t}");
            assert_eq!(t["percentDone"], 1.0, "{t}");
            break;
        }
        assert!(
            Instant::now() < until,
            "never finished: {t}\n{}",
            daemon.running.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // session-set: what it has is applied, the rest is named.
    let v = call(
        &api,
        &id,
        json!({"method": "session-set", "arguments": {"speed-limit-down": 300, "speed-limit-down-enabled": true}}),
    );
    assert_eq!(v["result"], "success", "{v}");
    let v = call(
        &api,
        &id,
        json!({"method": "session-set", "arguments": {"dht-enabled": true, "pex-enabled": false}}),
    );
    assert_eq!(
        v["result"],
        "not applied (ccbt-uring has no such setting, or not this value): dht-enabled"
    );
    let v = call(
        &api,
        &id,
        json!({"method": "session-get", "arguments": {"fields": ["speed-limit-down", "speed-limit-down-enabled", "dht-enabled"]}}),
    );
    assert_eq!(
        v["arguments"],
        json!({"speed-limit-down": 300, "speed-limit-down-enabled": true, "dht-enabled": false})
    );
    let v = call(&api, &id, json!({"method": "session-stats"}));
    assert_eq!(v["arguments"]["torrentCount"], 2, "{v}");

    // Moved with its data, through set-location.
    let moved = dir.path().join("moved");
    let v = call(
        &api,
        &id,
        json!({"method": "torrent-set-location", "arguments": {"ids": [ub], "location": moved.to_str().unwrap(), "move": true}}),
    );
    assert_eq!(v["result"], "success", "{v}");
    assert!(moved.join("by-path/p.bin").is_file());
    assert!(!downloads.join("by-path/p.bin").exists());

    // session-close stops the daemon.
    let v = call(&api, &id, json!({"method": "session-close"}));
    assert_eq!(v["result"], "success");
    let until = Instant::now() + STOP;
    while daemon.running.is_running() {
        assert!(
            Instant::now() < until,
            "session-close did not stop the daemon"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(daemon
        .running
        .log()
        .contains("ccbt-uring daemon: stopped in"));
}

#[test]
fn arguments_of_every_wrong_shape_get_answers_and_the_daemon_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = own_torrent(dir.path(), "target", &[("t.bin", 33_000), ("u.bin", 5)]);
    let downloads = dir.path().join("data");
    let config = dir.path().join("ccbt.toml");
    // Nothing may be moved or saved outside the test's directory, whatever is asked.
    std::fs::write(
        &config,
        format!(
            "[control]\nallowed_save_dirs = [\"{}\"]\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let port = free_port().to_string();
    let mut daemon = Daemon::start(
        dir.path(),
        &[
            "--config",
            config.to_str().unwrap(),
            "--peer-port",
            &port,
            "--download-dir",
            downloads.to_str().unwrap(),
        ],
    );
    let api = daemon.api.clone();
    let id = send(&api, "POST", "/transmission/rpc", &[], b"")
        .header("X-Transmission-Session-Id")
        .unwrap()
        .to_string();
    use base64::Engine as _;
    let metainfo =
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&torrent).unwrap());
    let add = json!({"method": "torrent-add", "arguments": {"metainfo": metainfo}});
    assert_eq!(call(&api, &id, add.clone())["result"], "success");

    let methods = [
        "session-get",
        "session-set",
        "session-stats",
        "free-space",
        "port-test",
        "blocklist-update",
        "torrent-get",
        "torrent-add",
        "torrent-set",
        "torrent-start",
        "torrent-start-now",
        "torrent-stop",
        "torrent-verify",
        "torrent-reannounce",
        "torrent-remove",
        "torrent-set-location",
        "torrent-rename-path",
        "queue-move-top",
        "queue-move-up",
        "queue-move-down",
        "queue-move-bottom",
    ];
    let keys = [
        "ids",
        "fields",
        "format",
        "filename",
        "metainfo",
        "download-dir",
        "paused",
        "labels",
        "files-wanted",
        "files-unwanted",
        "priority-high",
        "priority-normal",
        "priority-low",
        "uploadLimit",
        "uploadLimited",
        "downloadLimit",
        "downloadLimited",
        "seedRatioLimit",
        "seedRatioMode",
        "seedIdleLimit",
        "seedIdleMode",
        "queuePosition",
        "location",
        "move",
        "delete-local-data",
        "path",
        "speed-limit-down",
        "speed-limit-down-enabled",
        "download-queue-size",
        "seed-queue-enabled",
        "seedRatioLimited",
        "trackerList",
        "sequentialDownload",
    ];
    let junk = [
        json!(null),
        json!(true),
        json!(-1),
        json!(1e300),
        json!(2.5),
        json!(""),
        json!("NaN"),
        json!("/"),
        json!([]),
        json!([-1, "x", null, {}, 1e20]),
        json!({"a": {"b": [1]}}),
        json!("x".repeat(10_000)),
        json!([
            "recently-active",
            1,
            "0000000000000000000000000000000000000000"
        ]),
    ];
    let mut answered = 0;
    let mut send = |body: Value| {
        let a = send(
            &api,
            "POST",
            "/transmission/rpc",
            &[("X-Transmission-Session-Id", &id)],
            body.to_string().as_bytes(),
        );
        assert_eq!(a.status, 200, "{body}: {}", a.body);
        let v = a.json();
        assert!(v["result"].is_string(), "{body}: {v}");
        answered += 1;
    };
    for method in methods {
        for value in &junk {
            let all: serde_json::Map<String, Value> = keys
                .iter()
                .map(|k| (k.to_string(), value.clone()))
                .collect();
            send(json!({"method": method, "arguments": all}));
        }
    }
    for method in ["torrent-set", "torrent-add", "session-set", "torrent-get"] {
        for key in keys {
            for value in &junk {
                send(json!({"method": method, "arguments": {key: value}}));
            }
            // Junk may have removed the torrent: put it back for the next key.
            let _ = call(&api, &id, add.clone());
        }
    }
    assert!(answered > 1_500, "{answered}");
    let v = call(
        &api,
        &id,
        json!({"method": "session-get", "arguments": {"fields": ["version"]}}),
    );
    assert_eq!(v["result"], "success");
    assert!(daemon.running.is_running());
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
    assert!(
        !daemon.running.log().contains("panicked"),
        "{}",
        daemon.running.log()
    );
}

/// `transmission-remote --find DIR` (torrent-set-location without a move): the data is
/// looked for where the user says it is now and every piece is checked there; nothing
/// is moved. A place without the data leaves it at 0%.
#[test]
fn find_looks_for_the_data_where_it_is_now_and_checks_it() {
    require("transmission-remote", "transmission-cli");
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let port = free_port().to_string();
    let mut daemon = Daemon::start(&home, &["--peer-port", &port]);
    let torrent = own_torrent(dir.path(), "found", &[("f.bin", 700_000)]);
    let data = dir.path().join("data");
    remote_ok(
        &daemon,
        &[
            "-a",
            torrent.to_str().unwrap(),
            "-w",
            data.to_str().unwrap(),
        ],
    );
    wait_listed(&daemon, "found", SEEDING, |t| t.done == "100%");
    let id = listed(&daemon, "found").unwrap().id.to_string();

    // The data, copied elsewhere by the user.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(elsewhere.join("found")).unwrap();
    std::fs::copy(data.join("found/f.bin"), elsewhere.join("found/f.bin")).unwrap();
    remote_ok(&daemon, &["-t", &id, "--find", elsewhere.to_str().unwrap()]);
    let info = remote_ok(&daemon, &["-t", &id, "-i"]);
    assert_eq!(
        info_value(&info, "Location").as_deref(),
        Some(elsewhere.to_str().unwrap())
    );
    // Checked there: a second check of it finishes (the first was the add's).
    let checks = || daemon.running.log().matches("check finished").count();
    let until = Instant::now() + SEEDING;
    while checks() < 2 {
        assert!(Instant::now() < until, "{}", daemon.running.log_tail());
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_listed(&daemon, "found", SEEDING, |t| {
        t.done == "100%" && t.status != "Verifying"
    });
    assert!(
        data.join("found/f.bin").is_file(),
        "the old copy was moved or deleted"
    );

    // A place without it: checked, nothing there.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    remote_ok(&daemon, &["-t", &id, "--find", empty.to_str().unwrap()]);
    wait_listed(&daemon, "found", SEEDING, |t| t.done == "0%");
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
}

/// torrent-rename-path, on disk (O_DIRECT and tmpfs) and in listings: a file, a folder
/// and the torrent's top folder (which renames the torrent); the refusals; and after a
/// restart the files are found where they were put, with nothing to download.
#[test]
fn renames_move_files_on_disk_and_stay_after_a_restart() {
    for root in common::storage_roots() {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let data = dir.path().join("data");
        let torrent = own_torrent(
            dir.path(),
            "show",
            &[("a.mkv", 300_000), ("a.nfo", 1_000), ("subs/en.srt", 9_000)],
        );
        let original = std::fs::read(data.join("show/a.mkv")).unwrap();
        let args = ["--peer-port", "0", "--download-dir", data.to_str().unwrap()];
        let mut daemon = Daemon::start(&home, &args);
        let api = daemon.api.clone();
        let sid = session_id(&api);
        let rpc = |method: &str, arguments: Value| {
            call_open(
                &api,
                &sid,
                json!({"method": method, "arguments": arguments}),
            )
        };
        let v = rpc(
            "torrent-add",
            json!({"filename": torrent.to_str().unwrap()}),
        );
        let id = v["arguments"]["torrent-added"]["id"].as_u64().unwrap();
        let listing = || {
            let v = rpc(
                "torrent-get",
                json!({"ids": [id], "fields": ["name", "files", "percentDone", "status"]}),
            );
            v["arguments"]["torrents"][0].clone()
        };
        let names = |t: &Value| -> Vec<String> {
            t["files"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["name"].as_str().unwrap().to_string())
                .collect()
        };
        let seeding = || {
            let until = Instant::now() + SEEDING;
            loop {
                let t = listing();
                if t["percentDone"] == 1.0 && t["status"] == 6 {
                    return t;
                }
                assert!(Instant::now() < until, "{t}\n{}", daemon.running.log_tail());
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        seeding();

        let v = rpc(
            "torrent-rename-path",
            json!({"ids": [id], "path": "show/a.nfo", "name": "episode.nfo"}),
        );
        assert_eq!(v["result"], "success", "{v}");
        assert_eq!(
            v["arguments"],
            json!({"path": "show/a.nfo", "name": "episode.nfo", "id": id})
        );
        let v = rpc(
            "torrent-rename-path",
            json!({"ids": [id], "path": "show/subs", "name": "Subtitles"}),
        );
        assert_eq!(v["result"], "success", "{v}");
        let v = rpc(
            "torrent-rename-path",
            json!({"ids": [id], "path": "show", "name": "Show (2026)"}),
        );
        assert_eq!(v["result"], "success", "{v}");
        let t = seeding();
        let renamed = [
            "Show (2026)/a.mkv",
            "Show (2026)/episode.nfo",
            "Show (2026)/Subtitles/en.srt",
        ];
        assert_eq!(t["name"], "Show (2026)", "{t}");
        assert_eq!(names(&t), renamed, "{t}");
        for path in renamed {
            assert!(data.join(path).is_file(), "{path} is not on disk");
        }
        assert!(!data.join("show").exists(), "the old folder stayed");
        assert_eq!(
            std::fs::read(data.join("Show (2026)/a.mkv")).unwrap(),
            original
        );

        // Refusals leave everything as it was.
        std::fs::write(data.join("Show (2026)/stray.txt"), b"not ours").unwrap();
        for (path, name, words) in [
            ("Show (2026)/a.mkv", "episode.nfo", "taken"),
            ("Show (2026)/nothing", "x", "no file or folder"),
            ("Show (2026)/a.mkv", "../a.mkv", "name"),
            ("Show (2026)/a.mkv", "sub/a.mkv", "name"),
            ("Show (2026)/a.mkv", "stray.txt", "exists"),
        ] {
            let v = rpc(
                "torrent-rename-path",
                json!({"ids": [id], "path": path, "name": name}),
            );
            let result = v["result"].as_str().unwrap();
            assert!(result.contains(words), "{path} -> {name}: {v}");
        }
        let v = rpc(
            "torrent-rename-path",
            json!({"ids": [], "path": "Show (2026)/a.mkv", "name": "b.mkv"}),
        );
        assert!(v["result"].as_str().unwrap().contains("exactly one"), "{v}");
        assert_eq!(
            std::fs::read(data.join("Show (2026)/stray.txt")).unwrap(),
            b"not ours"
        );
        assert_eq!(names(&seeding()), renamed);

        // After a restart: the same names, the data found where it was put.
        assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
        let mut daemon = Daemon::start(&home, &args);
        let api = daemon.api.clone();
        let sid = session_id(&api);
        let until = Instant::now() + SEEDING;
        let t = loop {
            let v = call_open(
                &api,
                &sid,
                json!({"method": "torrent-get", "arguments": {"fields": ["name", "files", "percentDone", "status"]}}),
            );
            let t = v["arguments"]["torrents"][0].clone();
            if t["percentDone"] == 1.0 && t["status"] == 6 {
                break t;
            }
            assert!(Instant::now() < until, "{t}\n{}", daemon.running.log_tail());
            std::thread::sleep(Duration::from_millis(100));
        };
        assert_eq!(t["name"], "Show (2026)", "{t}");
        assert_eq!(names(&t), renamed, "{t}");
        assert!(
            !data.join("show").exists(),
            "files were made at the old paths"
        );
        assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
    }
}

/// torrent-get's `peersFrom` and `peers`: a peer the daemon dialled from a tracker's
/// answer counts `fromTracker`, one that connected to it `fromIncoming`; each is listed
/// with its address, client and what flows; none outlives its connection.
#[test]
fn peers_from_says_where_each_connected_peer_came_from() {
    if !interop_ready(&[]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start();
    // The seeder announces first, so it never hears of the daemon: the daemon dials it.
    let from_tracker = tracker.torrent(dir.path(), Announce::Http);
    let _seeder = swarm::ccbt_seed(&from_tracker.path, &from_tracker.data_dir, free_port(), 1);
    tracker.wait_for_seeders(&from_tracker.info_hash, 1, SEEDING);
    // A torrent with no tracker, seeded by the daemon to a peer that dials in.
    let incoming = own_torrent(dir.path(), "incoming", &[("f.bin", 2_000_000)]);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let downloads = dir.path().join("downloads");
    let port = free_port();
    let mut daemon = Daemon::start(&home, &["--peer-port", &port.to_string()]);
    let api = daemon.api.clone();
    let sid = session_id(&api);
    let rpc = |method: &str, arguments: Value| {
        call_open(
            &api,
            &sid,
            json!({"method": method, "arguments": arguments}),
        )
    };
    let add = |torrent: &Path, to: &Path| {
        let v = rpc(
            "torrent-add",
            json!({"filename": torrent.to_str().unwrap(), "download-dir": to.to_str().unwrap()}),
        );
        let id = v["arguments"]["torrent-added"]["id"].as_u64().unwrap();
        // Slow, so each peer stays connected while we look.
        let v = rpc(
            "torrent-set",
            json!({"ids": [id], "downloadLimit": 20, "downloadLimited": true,
                   "uploadLimit": 20, "uploadLimited": true}),
        );
        assert_eq!(v["result"], "success", "{v}");
        id
    };
    let peers_from = |id: u64| {
        let v = rpc(
            "torrent-get",
            json!({"ids": [id], "fields": ["peersFrom", "peersConnected", "status", "peers"]}),
        );
        v["arguments"]["torrents"][0].clone()
    };
    let wait = |id: u64, what: &str, want: fn(&Value) -> bool| {
        let until = Instant::now() + SEEDING;
        loop {
            let t = peers_from(id);
            if want(&t) {
                return t;
            }
            assert!(Instant::now() < until, "{what}: {t}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let dialled = add(&from_tracker.path, &downloads);
    let t = wait(dialled, "the seeder, from the tracker, sending", |t| {
        t["peersFrom"]["fromTracker"] == 1 && t["peers"][0]["isDownloadingFrom"] == true
    });
    assert_eq!(t["peersFrom"]["fromIncoming"], 0, "{t}");
    assert_eq!(t["peersConnected"], 1, "{t}");
    let seeder = &t["peers"][0];
    assert_eq!(seeder["address"], "127.0.0.1", "{t}");
    assert_eq!(seeder["clientName"], "ccbt-uring 0.1", "{t}");
    assert_eq!(seeder["isIncoming"], false, "{t}");
    assert_eq!(seeder["progress"], 1.0, "{t}");
    assert!(seeder["flagStr"].as_str().unwrap().contains('D'), "{t}");

    let seeded = add(&incoming, &dir.path().join("data"));
    wait(seeded, "seeding (checked)", |t| t["status"] == 6);
    let _leecher = swarm::ccbt_swarm(
        "download",
        &incoming,
        &dir.path().join("leecher"),
        free_port(),
        1,
        &["--peer", &format!("127.0.0.1:{port}"), "--no-dht"],
    );
    let t = wait(seeded, "the leecher, dialling in, served", |t| {
        t["peersFrom"]["fromIncoming"] == 1 && t["peers"][0]["isUploadingTo"] == true
    });
    let leecher = &t["peers"][0];
    assert_eq!(leecher["isIncoming"], true, "{t}");
    assert!(leecher["flagStr"].as_str().unwrap().contains("UI"), "{t}");
    assert_eq!(t["peers"].as_array().unwrap().len(), 1, "{t}");
    // The same peer through qBittorrent's sync/torrentPeers (loopback: no login).
    let v = rpc(
        "torrent-get",
        json!({"ids": [seeded], "fields": ["hashString"]}),
    );
    let hash = v["arguments"]["torrents"][0]["hashString"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = send(
        &api,
        "GET",
        &format!("/api/v2/sync/torrentPeers?hash={hash}&rid=3"),
        &[],
        b"",
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    let peers: Value = answer.json();
    assert_eq!(peers["full_update"], true, "{peers}");
    assert_eq!(peers["rid"], 4, "{peers}");
    let listed = peers["peers"].as_object().unwrap();
    assert_eq!(listed.len(), 1, "{peers}");
    let (key, peer) = listed.iter().next().unwrap();
    assert!(key.starts_with("127.0.0.1:"), "{peers}");
    assert_eq!(peer["client"], "ccbt-uring 0.1", "{peers}");
    assert!(peer["flags"].as_str().unwrap().contains('I'), "{peers}");
    let unknown = send(
        &api,
        "GET",
        &format!("/api/v2/sync/torrentPeers?hash={}", "ab".repeat(20)),
        &[],
        b"",
    );
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(t["peersFrom"]["fromTracker"], 0, "{t}");
    for key in ["fromCache", "fromDht", "fromLpd", "fromLtep", "fromPex"] {
        assert_eq!(t["peersFrom"][key], 0, "{key}: {t}");
    }
    // Stopped, it has no peers from anywhere.
    let v = rpc("torrent-stop", json!({"ids": [seeded]}));
    assert_eq!(v["result"], "success", "{v}");
    wait(seeded, "no peers once stopped", |t| {
        t["peersFrom"]["fromIncoming"] == 0 && t["peersConnected"] == 0 && t["peers"] == json!([])
    });
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
}
