//! `ccbt-uring remote --url` against a real daemon over its native HTTP API (`/ccbt/v1/`):
//! add, list, info, pause, resume, stats and remove, with `--json` output parsed; wrong
//! or missing credentials give a clear error and a non-zero exit; and the API answers
//! bad requests (unknown hash, bad JSON, a non-torrent upload, an oversized body, unknown
//! paths and methods, a foreign Host header) with a JSON reason, never a crash. The
//! requests of the last part are sent with curl, a real HTTP client.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::{ccbt, require, run_for, Ran};

const SEEDING: Duration = Duration::from_secs(30);
const STOP: Duration = Duration::from_secs(10);

/// Writes `files` under `data/name` and makes a tracker-less torrent of them.
fn own_torrent(data: &Path, name: &str, files: &[(&str, usize)]) -> PathBuf {
    let torrent = data.with_file_name(format!("{name}.torrent"));
    common::own_torrent(&data.join(name), files, &torrent)
}

fn hash_of(torrent: &Path) -> String {
    ccbt_engine::metainfo::Metainfo::parse(&std::fs::read(torrent).unwrap())
        .unwrap()
        .info_hash
        .to_hex()
}

/// `ccbt-uring remote --url URL ARGS` with no credentials in the environment.
fn remote(url: &str, args: &[&str]) -> Ran {
    run_for(
        ccbt()
            .arg("remote")
            .arg("--url")
            .arg(url)
            .args(args)
            .env_remove("CCBT_USER")
            .env_remove("CCBT_PASSWORD"),
        Duration::from_secs(60),
    )
}

/// Polls `remote --url --json list` until the torrent is in `state`.
#[track_caller]
fn wait_state(daemon: &Daemon, hash: &str, state: &str) -> serde_json::Value {
    let until = Instant::now() + SEEDING;
    loop {
        let list = remote(&daemon.api, &["--json", "list"]).ok().json();
        let t = list["torrents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["hash"] == hash)
            .cloned()
            .unwrap_or_else(|| panic!("no {hash} in {list}"));
        if t["state"] == state {
            return t;
        }
        assert!(
            Instant::now() < until,
            "{hash} is not {state} after {SEEDING:?}: {t}\n{}",
            daemon.running.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn remote_over_http_adds_lists_shows_pauses_resumes_counts_and_removes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let alpha = own_torrent(&data, "alpha", &[("a.bin", 300_000), ("sub/b.bin", 70_000)]);
    let bravo = own_torrent(&data, "bravo", &[("only.bin", 50_000)]);
    let mut daemon = Daemon::start(dir.path(), &["--peer-port", "0"]);
    let api = daemon.api.clone();
    let data_arg = data.to_str().unwrap();

    let added = remote(
        &api,
        &[
            "--json",
            "add",
            alpha.to_str().unwrap(),
            "--save-dir",
            data_arg,
        ],
    )
    .ok()
    .json();
    let hash = hash_of(&alpha);
    assert_eq!(added["hash"], hash.as_str());
    assert!(added["id"].as_u64().is_some(), "{added}");
    let t = wait_state(&daemon, &hash, "seeding");
    assert_eq!(t["name"], "alpha");
    assert_eq!(t["size"], 370_000);
    assert_eq!(t["progress"], 1.0);
    assert_eq!(t["save_dir"], data_arg);

    // The text listing names it too.
    let text = remote(&api, &["list"]).ok().stdout;
    assert!(
        text.contains(&hash) && text.contains("seeding") && text.contains("alpha"),
        "{text}"
    );

    let info = remote(&api, &["--json", "info", &hash]).ok().json();
    assert_eq!(info["name"], "alpha");
    assert_eq!(info["pieces_known"], true, "{info}");
    let files = info["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{info}");
    assert_eq!(files[0]["path"], "alpha/a.bin");
    assert_eq!(files[1]["path"], "alpha/sub/b.bin");
    for f in files {
        assert_eq!(
            f["done"], f["length"],
            "a seeding torrent has every byte: {f}"
        );
    }
    let text = remote(&api, &["info", &hash]).ok().stdout;
    assert!(
        text.contains("alpha/sub/b.bin") && text.contains("100.0%"),
        "{text}"
    );

    remote(&api, &["--json", "pause", &hash]).ok();
    wait_state(&daemon, &hash, "paused");
    remote(&api, &["--json", "resume", &hash]).ok();
    wait_state(&daemon, &hash, "seeding");

    // A second torrent, added paused, its save directory relative to the daemon's
    // download directory (~/Downloads).
    let added = remote(
        &api,
        &[
            "--json",
            "add",
            bravo.to_str().unwrap(),
            "--save-dir",
            "../data",
            "--paused",
        ],
    )
    .ok()
    .json();
    let bravo_hash = added["hash"].as_str().unwrap().to_string();
    assert_eq!(bravo_hash, hash_of(&bravo));
    let t = wait_state(&daemon, &bravo_hash, "paused");
    let data_real = data.canonicalize().unwrap();
    assert_eq!(t["save_dir"], data_real.to_str().unwrap());

    let stats = remote(&api, &["--json", "stats"]).ok().json();
    assert_eq!(stats["stats"]["torrents"], 2, "{stats}");
    assert_eq!(stats["stats"]["states"]["seeding"], 1, "{stats}");
    assert_eq!(stats["stats"]["states"]["paused"], 1, "{stats}");
    let shards = stats["shards"].as_array().unwrap();
    assert_eq!(
        shards.len() as u64,
        stats["stats"]["shards"].as_u64().unwrap()
    );
    let per_shard: u64 = shards.iter().map(|s| s["torrents"].as_u64().unwrap()).sum();
    assert_eq!(per_shard, 2, "every torrent counted on one shard: {stats}");
    let text = remote(&api, &["stats"]).ok().stdout;
    assert!(
        text.contains("torrents:  2") && text.contains("shard   0:"),
        "{text}"
    );

    // Errors: by kind, with the exit codes of the socket verbs.
    let unknown = remote(&api, &["--json", "info", &"0".repeat(40)]).expect_code(5);
    assert_eq!(unknown.json()["kind"], "unknown-torrent");
    assert!(unknown.stderr.contains("no torrent"), "{}", unknown.stderr);
    let bad_hash = remote(&api, &["--json", "pause", "xyz"]).expect_code(3);
    assert_eq!(bad_hash.json()["kind"], "bad-hash");
    let junk = dir.path().join("junk.torrent");
    std::fs::write(&junk, b"this is not bencode").unwrap();
    let bad = remote(&api, &["--json", "add", junk.to_str().unwrap()]).expect_code(3);
    assert_eq!(bad.json()["kind"], "bad-torrent");
    let again = remote(&api, &["--json", "add", alpha.to_str().unwrap()]).expect_code(5);
    assert_eq!(again.json()["kind"], "duplicate");
    let socket_only = remote(&api, &["shutdown"]).expect_code(3);
    assert!(
        socket_only.stderr.contains("not offered over HTTP"),
        "{}",
        socket_only.stderr
    );

    // The socket's `info`: the torrent's row of its listing (any case of the hash).
    let row = daemon.remote(&["info", &hash.to_uppercase()]).ok().json();
    assert_eq!(row["torrents"][0]["hash"], hash.as_str(), "{row}");
    assert_eq!(row["torrents"].as_array().unwrap().len(), 1);
    let none = daemon.remote(&["info", &"0".repeat(40)]).expect_code(5);
    assert_eq!(none.json()["kind"], "unknown-torrent");

    // Remove one keeping its data, the other with it.
    remote(&api, &["--json", "remove", &bravo_hash]).ok();
    assert!(
        data.join("bravo/only.bin").is_file(),
        "bravo's data was kept"
    );
    remote(&api, &["--json", "remove", &hash, "--delete-data"]).ok();
    assert!(!data.join("alpha").exists(), "alpha's data was deleted");
    let list = remote(&api, &["--json", "list"]).ok().json();
    assert_eq!(list["torrents"].as_array().unwrap().len(), 0, "{list}");

    // The socket still speaks the old verbs, and `info` / `stats` too.
    assert_eq!(
        daemon.remote(&["stats"]).ok().json()["summary"]["torrents"],
        0
    );

    assert!(daemon.stop(STOP).success());
    // A daemon that is gone: unreachable, exit 4.
    let gone = remote(&api, &["list"]).expect_code(4);
    assert!(
        gone.stderr.contains("cannot reach the daemon"),
        "{}",
        gone.stderr
    );
}

fn with_credentials(dir: &Path, extra: &str) -> (Daemon, PathBuf) {
    let config = dir.join("ccbt.toml");
    std::fs::write(
        &config,
        format!(
            "[control]\nusername = \"admin\"\npassword = \"s3cret\"\nlogin_max_failures = 3\n{extra}"
        ),
    )
    .unwrap();
    let daemon = Daemon::start(
        dir,
        &["--config", config.to_str().unwrap(), "--peer-port", "0"],
    );
    (daemon, config)
}

#[test]
fn remote_over_http_needs_the_configured_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let (mut daemon, _) = with_credentials(dir.path(), "");
    let api = daemon.api.clone();

    let none = remote(&api, &["list"]).expect_code(3);
    assert!(
        none.stderr.contains("refused the credentials")
            && none.stderr.contains("credentials required"),
        "{}",
        none.stderr
    );
    let wrong = remote(
        &api,
        &["--json", "--user", "admin", "--password", "nope", "stats"],
    )
    .expect_code(3);
    assert_eq!(wrong.json()["kind"], "unauthorized");
    assert!(
        wrong.stderr.contains("wrong user name or password"),
        "{}",
        wrong.stderr
    );

    let right = remote(
        &api,
        &["--json", "--user", "admin", "--password", "s3cret", "stats"],
    )
    .ok();
    assert_eq!(right.json()["stats"]["torrents"], 0);
    // From the environment as well.
    let from_env = run_for(
        ccbt()
            .args(["remote", "--url", &api, "--json", "list"])
            .env("CCBT_USER", "admin")
            .env("CCBT_PASSWORD", "s3cret"),
        Duration::from_secs(60),
    )
    .ok();
    assert_eq!(from_env.json()["torrents"].as_array().unwrap().len(), 0);
    assert!(daemon.stop(STOP).success());
}

/// `curl` one request: the status and the body.
fn curl(args: &[&str]) -> (u16, String) {
    require("curl", "curl");
    let ran = run_for(
        Command::new("curl")
            .args(["-sS", "--max-time", "30", "-o", "-", "-w", "\n%{http_code}"])
            .args(args),
        Duration::from_secs(60),
    );
    let (body, status) = ran.stdout.rsplit_once('\n').unwrap_or(("", &ran.stdout));
    let status = status
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("no status from curl {args:?}: {ran:?}"));
    (status, body.to_string())
}

/// Asserts a JSON refusal with `status` and `kind`; returns its reason.
#[track_caller]
fn refused(answer: (u16, String), status: u16, kind: &str) -> String {
    let (got, body) = answer;
    assert_eq!(got, status, "{body}");
    let json: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(json["kind"], kind, "{json}");
    let reason = json["error"].as_str().unwrap().to_string();
    assert!(!reason.is_empty());
    reason
}

#[test]
fn the_native_api_answers_bad_requests_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let torrent = own_torrent(&data, "gamma", &[("g.bin", 40_000)]);
    let allowed = dir.path().join("allowed");
    let (mut daemon, _) = with_credentials(
        dir.path(),
        &format!(
            "allowed_save_dirs = [\"{}\"]\nmax_request_bytes = 65536\n",
            allowed.display()
        ),
    );
    let base = format!("{}/ccbt/v1", daemon.api);
    let auth = ["-u", "admin:s3cret"];
    let with_auth = |args: &[&str]| {
        let mut all: Vec<&str> = auth.to_vec();
        all.extend_from_slice(args);
        curl(&all)
    };
    let torrents = format!("{base}/torrents");
    let unknown = format!("{torrents}/{}", "0".repeat(40));

    refused(with_auth(&[&unknown]), 404, "unknown-torrent");
    refused(
        with_auth(&[&format!("{torrents}/not-a-hash")]),
        400,
        "bad-hash",
    );
    refused(
        with_auth(&["-X", "POST", &format!("{unknown}/pause")]),
        404,
        "unknown-torrent",
    );
    refused(
        with_auth(&["-X", "POST", &format!("{unknown}/explode")]),
        404,
        "unknown-action",
    );
    refused(
        with_auth(&["-X", "PUT", &torrents]),
        405,
        "method-not-allowed",
    );
    refused(
        with_auth(&[&format!("{base}/nothing/here")]),
        404,
        "not-found",
    );
    refused(with_auth(&[&format!("{base}/")]), 404, "not-found");
    refused(with_auth(&[&base]), 404, "not-found");
    refused(
        with_auth(&[&format!("{torrents}/%FF%FE")]),
        400,
        "bad-request",
    );
    refused(
        with_auth(&["-X", "DELETE", &format!("{unknown}?delete_data=maybe")]),
        400,
        "bad-request",
    );
    let json = ["-H", "content-type: application/json"];
    let reason = refused(
        with_auth(&[&json[..], &["--data-binary", "{\"metainfo\": ", &torrents]].concat()),
        400,
        "bad-request",
    );
    assert!(reason.contains("bad JSON"), "{reason}");
    refused(
        with_auth(
            &[
                &json[..],
                &[
                    "--data-binary",
                    "{\"metainfo\":\"AAAA\",\"colour\":1}",
                    &torrents,
                ],
            ]
            .concat(),
        ),
        400,
        "bad-request",
    );
    refused(
        with_auth(
            &[
                &json[..],
                &[
                    "--data-binary",
                    "{\"metainfo\":\"*not base64*\"}",
                    &torrents,
                ],
            ]
            .concat(),
        ),
        400,
        "bad-request",
    );
    let octets = ["-H", "content-type: application/x-bittorrent"];
    let reason = refused(
        with_auth(&[&octets[..], &["--data-binary", "d4:spamli1ee", &torrents]].concat()),
        400,
        "bad-torrent",
    );
    assert!(reason.contains("not a valid torrent"), "{reason}");
    refused(
        with_auth(&[&octets[..], &["-X", "POST", &torrents]].concat()),
        400,
        "bad-request",
    );
    refused(
        with_auth(
            &[
                &octets[..],
                &["--data-binary", "x", &format!("{torrents}?paused=perhaps")],
            ]
            .concat(),
        ),
        400,
        "bad-request",
    );
    // Larger than control.max_request_bytes: 413, and the connection is not left hanging.
    let big = dir.path().join("big.torrent");
    std::fs::write(&big, vec![b'x'; 200_000]).unwrap();
    refused(
        with_auth(
            &[
                &octets[..],
                &["--data-binary", &format!("@{}", big.display()), &torrents],
            ]
            .concat(),
        ),
        413,
        "too-large",
    );
    // A save directory outside control.allowed_save_dirs.
    let torrent_arg = format!("@{}", torrent.display());
    let outside = format!("{torrents}?save_dir={}", data.display());
    refused(
        with_auth(&[&octets[..], &["--data-binary", &torrent_arg, &outside]].concat()),
        403,
        "path-not-allowed",
    );
    // Inside it, it is added.
    let inside = format!(
        "{torrents}?save_dir={}&paused=true&tags=a,b",
        allowed.display()
    );
    let (status, body) =
        with_auth(&[&octets[..], &["--data-binary", &torrent_arg, &inside]].concat());
    assert_eq!(status, 201, "{body}");
    let added: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(added["hash"], hash_of(&torrent).as_str());
    let (status, body) = with_auth(&[&format!("{torrents}/{}", hash_of(&torrent))]);
    assert_eq!(status, 200, "{body}");
    let details: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(details["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(details["save_dir"], allowed.to_str().unwrap());

    // Increments: `?since=SEQ` sends only what changed after that answer.
    let get_json = |url: &str| -> serde_json::Value {
        let (status, body) = with_auth(&[url]);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let since = |seq: &serde_json::Value| format!("{torrents}?since={seq}");
    let gamma = hash_of(&torrent);
    let until = Instant::now() + SEEDING;
    let quiet_seq = loop {
        // Once its check is over, nothing about the paused torrent changes.
        let full = get_json(&torrents);
        assert_eq!(full["full"], true);
        std::thread::sleep(Duration::from_millis(1500));
        let increment = get_json(&since(&full["seq"]));
        assert_eq!(increment["full"], false, "{increment}");
        if increment["torrents"].as_array().unwrap().is_empty() {
            assert_eq!(increment["seq"], full["seq"]);
            break full["seq"].clone();
        }
        assert!(
            Instant::now() < until,
            "the listing never settled: {increment}"
        );
    };
    let (status, body) = with_auth(&["-X", "POST", &format!("{torrents}/{gamma}/resume")]);
    assert_eq!(status, 200, "{body}");
    let increment = get_json(&since(&quiet_seq));
    assert_eq!(increment["full"], false);
    let changed = increment["torrents"].as_array().unwrap();
    assert_eq!(changed.len(), 1, "{increment}");
    assert_eq!(changed[0]["hash"], gamma.as_str());
    let after_resume = increment["seq"].clone();
    let (status, body) = with_auth(&["-X", "DELETE", &format!("{torrents}/{gamma}")]);
    assert_eq!(status, 200, "{body}");
    let increment = get_json(&since(&after_resume));
    assert_eq!(
        increment["removed"],
        serde_json::json!([gamma]),
        "{increment}"
    );
    assert_eq!(
        get_json(&since(&serde_json::json!(1_000_000)))["full"],
        true
    );
    refused(
        with_auth(&[&format!("{torrents}?since=soon")]),
        400,
        "bad-request",
    );

    // A Host header that names another site (DNS rebinding): 421.
    refused(
        with_auth(&["-H", "Host: evil.example", &torrents]),
        421,
        "bad-host",
    );
    // No credentials: 401 with a Basic challenge.
    let (status, _) = curl(&[&torrents]);
    assert_eq!(status, 401);
    let headers = run_for(
        Command::new("curl").args(["-sS", "-o", "/dev/null", "-D", "-", &torrents]),
        Duration::from_secs(60),
    );
    assert!(
        headers
            .stdout
            .to_lowercase()
            .contains("www-authenticate: basic realm=\"ccbt-uring\""),
        "{}",
        headers.stdout
    );
    // Wrong ones until banned (login_max_failures = 3): then even the right ones are
    // refused from this address.
    refused(curl(&["-u", "admin:wrong", &torrents]), 401, "unauthorized");
    refused(curl(&["-u", "admin:wrong", &torrents]), 401, "unauthorized");
    refused(curl(&["-u", "admin:wrong", &torrents]), 401, "unauthorized");
    refused(with_auth(&[&torrents]), 403, "banned");

    assert!(daemon.running.is_running(), "{}", daemon.running.log_tail());
    assert!(
        !daemon.running.log().contains("panicked"),
        "{}",
        daemon.running.log()
    );
    assert!(daemon.stop(STOP).success());
}
