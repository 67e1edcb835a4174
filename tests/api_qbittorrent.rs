//! The qBittorrent WebAPI of a real daemon, driven from outside:
//!
//! - `qbittorrent_api_drives_the_daemon_as_sonarr_does`: the `qbittorrent-api` client
//!   from PyPI (in the venv `tools/install-deps.sh` makes at `target/venv`) runs
//!   `tests/scripts/qbt_sonarr.py` against the daemon; its step lines are checked, then
//!   what it did is checked on disk and through the daemon's own control socket.
//! - `the_webapi_refuses_what_it_must_over_raw_http`: sessions, Basic auth, CSRF, the
//!   Host check, malformed and oversized bodies, confined save paths and the login ban,
//!   with hand-written HTTP/1.1 on a socket, so every request is exactly what we mean;
//!   the daemon must answer every time and still be up at the end.
//! - `without_credentials_loopback_clients_need_no_login`: qBittorrent's localhost bypass.
//! - `https_urls_are_fetched_and_their_certificates_checked`: `torrents/add` with an
//!   https:// URL from a local HTTPS server (Python's `ssl`, a certificate made by
//!   `openssl req`): refused while the certificate is not trusted, added once it is.
//! - `hostile_parameters_on_every_endpoint_get_an_answer_never_a_crash`: a sweep.
//!
//! Without the venv the first test skips, or fails with `CCBT_REQUIRE_INTEROP` set (CI).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::daemon::Daemon;
use common::swarm::Running;
use common::{ccbt, run, run_for, write_tree};

const USER: &str = "sonarr";
const PASSWORD: &str = "s3cret-pass";

/// A config file with our credentials and `extra` lines of `[control]`.
fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("ccbt.toml");
    std::fs::write(
        &path,
        format!(
            "[control]\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n{extra}\n\
             [queue]\nmax_active_downloads = 5\n"
        ),
    )
    .unwrap();
    path
}

/// Content at `dir/name` and a .torrent of it made by our `create`.
fn content_and_torrent(root: &Path, dir: &Path, name: &str, files: &[(&str, usize)]) -> PathBuf {
    let tree: Vec<(String, usize)> = files
        .iter()
        .map(|(f, n)| (format!("{name}/{f}"), *n))
        .collect();
    let tree: Vec<(&str, usize)> = tree.iter().map(|(f, n)| (f.as_str(), *n)).collect();
    write_tree(dir, &tree);
    let torrent = root.join(format!("{name}.torrent"));
    run(ccbt()
        .arg("create")
        .arg(dir.join(name))
        .arg("-o")
        .arg(&torrent)
        .args(["--piece-size", "16K"]))
    .ok();
    torrent
}

#[test]
fn qbittorrent_api_drives_the_daemon_as_sonarr_does() {
    let Some(python) = common::venv::python_with("qbittorrentapi") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let media = root.join("media");
    let (tv, movies) = (media.join("tv"), media.join("movies"));
    let show = content_and_torrent(
        root,
        &tv,
        "Show.S01E01",
        &[
            ("episode.mkv", 700_000),
            ("episode.nfo", 1_234),
            ("Subs/en.srt", 9_000),
        ],
    );
    let film = content_and_torrent(root, &movies, "Film.2026", &[("film.mkv", 400_000)]);
    let cfg = config(
        root,
        &format!("allowed_save_dirs = [{:?}]", media.display().to_string()),
    );
    let mut daemon = Daemon::start(
        root,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--download-dir",
            root.join("downloads").to_str().unwrap(),
            "--peer-port",
            "0",
        ],
    );
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/qbt_sonarr.py");
    let ran = run_for(
        Command::new(&python).arg(driver).args([
            daemon.api.as_str(),
            USER,
            PASSWORD,
            show.to_str().unwrap(),
            tv.to_str().unwrap(),
            film.to_str().unwrap(),
            movies.to_str().unwrap(),
        ]),
        Duration::from_secs(180),
    );
    let log = daemon.running.log();
    assert_eq!(
        ran.code,
        Some(0),
        "the qbittorrent-api driver failed\nstdout:\n{}\nstderr:\n{}\ndaemon:\n{log}",
        ran.stdout,
        ran.stderr
    );
    for step in [
        "login",
        "version v5.1.4 2.11.4",
        "preferences",
        "category tv",
        "properties-after-add",
        "add-options",
        "second-add-by-url",
        "list-by-category",
        "files",
        "share-limits",
        "tags",
        "top-priority",
        "set-preferences",
        "trackers-and-pieces",
        "file-priority",
        "rate-limits",
        "categories-edit",
        "tags-edit",
        "queue-force-sequential",
        "renames",
        "recheck-and-transfer",
        "sync-quiet",
        "sync-increment",
        "sync-labels",
        "stop",
        "start",
        "pause-resume-4x",
        "delete-with-files",
        "logout",
    ] {
        assert!(
            ran.stdout
                .lines()
                .any(|l| l == format!("OK {step}") || l.starts_with(&format!("OK {step} "))),
            "step {step:?} did not pass:\n{}",
            ran.stdout
        );
    }
    // setPreferences names what it could not apply.
    assert!(
        log.contains("not applied") && log.contains("ccbt_test_unsupported"),
        "{log}"
    );
    // What the API did, seen from outside it: the show's data is gone, the film's is
    // there, and the daemon's control socket lists only the film, in its category.
    assert!(!tv.join("Show.S01E01").exists());
    assert!(movies.join("Film.2026/film.mkv").is_file());
    let list = daemon.remote(&["list"]).ok().json();
    let torrents = list["torrents"].as_array().unwrap();
    assert_eq!(torrents.len(), 1, "{list}");
    assert_eq!(torrents[0]["name"], "Film.2026");
    assert_eq!(torrents[0]["category"], "movies");
    // Categories and tags outlive a restart (the state database keeps them).
    assert!(daemon.stop(Duration::from_secs(30)).success());
    let daemon = Daemon::start(
        root,
        &["--config", cfg.to_str().unwrap(), "--peer-port", "0"],
    );
    let (_, cookie) = login(&daemon.api);
    let answer = request(
        &daemon.api,
        &format!("GET /api/v2/torrents/categories HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"),
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    let categories: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(
        categories["tv"]["savePath"],
        tv.to_str().unwrap(),
        "{categories}"
    );
    assert!(categories.get("movies").is_some(), "{categories}");
    let tags = request(
        &daemon.api,
        &format!("GET /api/v2/torrents/tags HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"),
    );
    assert_eq!(tags.body.trim(), r#"["sonarr"]"#, "{tags:?}");
}

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Sends `head` (request line and headers, ending in a blank line; a Host header and
/// `Connection: close` are added) and `body`, and reads the answer to the end. The
/// server may answer before taking the whole body (413): a write error then is fine.
fn exchange(api: &str, head: &str, body: &[u8]) -> Answer {
    let addr = api.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (first, rest) = head.split_once("\r\n").unwrap();
    let host = if rest.to_ascii_lowercase().contains("host:") {
        String::new()
    } else {
        format!("Host: {addr}\r\n")
    };
    let mut bytes = format!("{first}\r\n{host}Connection: close\r\n{rest}").into_bytes();
    bytes.extend_from_slice(body);
    let _ = stream.write_all(&bytes);
    let mut raw = Vec::new();
    if let Err(e) = stream.read_to_end(&mut raw) {
        // A reset after the answer arrived (we had more body to send): keep what came.
        assert!(!raw.is_empty(), "no answer from {addr}: {e}");
    }
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn request(api: &str, head: &str) -> Answer {
    exchange(api, head, b"")
}

fn post_form(api: &str, path: &str, extra_headers: &str, form: &str) -> Answer {
    exchange(
        api,
        &format!(
            "POST {path} HTTP/1.1\r\n{extra_headers}Content-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\n\r\n",
            form.len()
        ),
        form.as_bytes(),
    )
}

/// Logs in with the right password; the answer and the `SID=...` cookie.
fn login(api: &str) -> (Answer, String) {
    let answer = post_form(
        api,
        "/api/v2/auth/login",
        "",
        &format!("username={USER}&password={PASSWORD}"),
    );
    let cookie = answer
        .head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or(l.strip_prefix("Set-Cookie: "))
        })
        .and_then(|c| c.split(';').next())
        .unwrap_or_else(|| panic!("no cookie: {answer:?}"))
        .to_string();
    (answer, cookie)
}

fn multipart(boundary: &str, parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\
                     Content-Type: application/x-bittorrent\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

fn post_multipart(api: &str, cookie: &str, body: &[u8], declared: Option<usize>) -> Answer {
    exchange(
        api,
        &format!(
            "POST /api/v2/torrents/add HTTP/1.1\r\nCookie: {cookie}\r\n\
             Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: {}\r\n\r\n",
            declared.unwrap_or(body.len())
        ),
        body,
    )
}

#[track_caller]
fn refused(answer: &Answer, status: u16, words: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert!(
        answer.body.contains(words),
        "the reason should say {words:?}: {answer:?}"
    );
}

#[test]
fn the_webapi_refuses_what_it_must_over_raw_http() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let allowed = root.join("media");
    let torrent = content_and_torrent(root, &allowed, "Clip", &[("clip.mkv", 50_000)]);
    let cfg = config(
        root,
        &format!(
            "allowed_save_dirs = [{:?}]\nmax_request_bytes = 65536\nlogin_max_failures = 3\n",
            allowed.display().to_string()
        ),
    );
    let mut daemon = Daemon::start(
        root,
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--download-dir",
            root.to_str().unwrap(),
            "--peer-port",
            "0",
        ],
    );
    let api = daemon.api.clone();

    // No session: 403, as Sonarr's probe expects from a v2 API.
    refused(
        &request(&api, "GET /api/v2/app/webapiVersion HTTP/1.1\r\n\r\n"),
        403,
        "Forbidden",
    );
    let forged = request(
        &api,
        "GET /api/v2/app/version HTTP/1.1\r\nCookie: SID=not-a-session\r\n\r\n",
    );
    assert_eq!(forged.status, 403, "{forged:?}");

    // A bad password: 200 `Fails.`, no cookie.
    let bad = post_form(
        &api,
        "/api/v2/auth/login",
        "",
        "username=sonarr&password=nope",
    );
    assert_eq!((bad.status, bad.body.trim()), (200, "Fails."), "{bad:?}");
    assert!(!bad.head.to_ascii_lowercase().contains("set-cookie"));

    // A good one: `Ok.` and a session that works.
    let (good, cookie) = login(&api);
    assert_eq!(good.body.trim(), "Ok.", "{good:?}");
    let version = request(
        &api,
        &format!("GET /api/v2/app/version HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"),
    );
    assert_eq!((version.status, version.body.as_str()), (200, "v5.1.4"));

    // Basic auth, as Sonarr sends it up front.
    let basic = base64_basic(USER, PASSWORD);
    let with_basic = request(
        &api,
        &format!("GET /api/v2/app/webapiVersion HTTP/1.1\r\nAuthorization: Basic {basic}\r\n\r\n"),
    );
    assert_eq!(
        (with_basic.status, with_basic.body.as_str()),
        (200, "2.11.4")
    );
    let wrong = base64_basic(USER, "wrong");
    let with_wrong = request(
        &api,
        &format!("GET /api/v2/app/webapiVersion HTTP/1.1\r\nAuthorization: Basic {wrong}\r\n\r\n"),
    );
    assert_eq!(with_wrong.status, 403, "{with_wrong:?}");

    // Cross-site: refused even with a good session; the same origin passes.
    let addr = api.trim_start_matches("http://");
    refused(
        &request(
            &api,
            &format!(
                "GET /api/v2/app/version HTTP/1.1\r\nCookie: {cookie}\r\nOrigin: http://evil.example\r\n\r\n"
            ),
        ),
        401,
        "cross-site",
    );
    refused(
        &post_form(
            &api,
            "/api/v2/torrents/stop",
            &format!(
                "Cookie: {cookie}\r\nReferer: http://evil.example:{}/x\r\n",
                80
            ),
            "hashes=all",
        ),
        401,
        "cross-site",
    );
    let same = request(
        &api,
        &format!(
            "GET /api/v2/app/version HTTP/1.1\r\nCookie: {cookie}\r\nOrigin: http://{addr}\r\n\r\n"
        ),
    );
    assert_eq!(same.status, 200, "{same:?}");

    // DNS rebinding: a Host that is not us.
    refused(
        &request(
            &api,
            &format!(
                "GET /api/v2/app/version HTTP/1.1\r\nHost: evil.example\r\nCookie: {cookie}\r\n\r\n"
            ),
        ),
        401,
        "Host header",
    );

    // Malformed bodies: 400 with a reason, and the daemon answers on.
    let garbage = b"this is not multipart at all\r\n\r\n--";
    let answer = post_multipart(&api, &cookie, garbage, None);
    assert_eq!(answer.status, 400, "{answer:?}");
    assert!(answer.body.contains("multipart"), "{answer:?}");
    let truncated = multipart("XyZ", &[("torrents", Some("a.torrent"), b"d4:info")]);
    let answer = post_multipart(&api, &cookie, &truncated[..truncated.len() / 2], None);
    assert_eq!(answer.status, 400, "{answer:?}");
    let not_torrent = multipart(
        "XyZ",
        &[("torrents", Some("a.torrent"), b"<html>oops</html>")],
    );
    refused(
        &post_multipart(&api, &cookie, &not_torrent, None),
        415,
        "not a valid torrent file",
    );
    refused(
        &exchange(
            &api,
            &format!(
                "POST /api/v2/torrents/delete HTTP/1.1\r\nCookie: {cookie}\r\n\
                 Content-Type: application/json\r\nContent-Length: 2\r\n\r\n"
            ),
            b"{}",
        ),
        400,
        "x-www-form-urlencoded",
    );
    refused(
        &post_form(
            &api,
            "/api/v2/app/setPreferences",
            &format!("Cookie: {cookie}\r\n"),
            "json=%7Bnot-json",
        ),
        400,
        "not valid JSON",
    );
    refused(
        &post_form(
            &api,
            "/api/v2/torrents/setShareLimits",
            &format!("Cookie: {cookie}\r\n"),
            "hashes=all",
        ),
        400,
        "Missing parameter: ratioLimit",
    );
    refused(
        &request(
            &api,
            &format!(
                "GET /api/v2/torrents/properties?hash=zz HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"
            ),
        ),
        400,
        "not an info hash",
    );
    refused(
        &request(
            &api,
            &format!(
                "GET /api/v2/torrents/properties?hash={} HTTP/1.1\r\nCookie: {cookie}\r\n\r\n",
                "ab".repeat(20)
            ),
        ),
        404,
        "not found",
    );
    refused(
        &request(
            &api,
            &format!("GET /api/v2/torrents/delete HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"),
        ),
        405,
        "POST",
    );

    // Oversized: the body cap is 64 KiB here.
    let big = vec![b'x'; 200_000];
    let oversized = multipart("XyZ", &[("torrents", Some("big.torrent"), &big)]);
    refused(
        &post_multipart(&api, &cookie, &oversized, None),
        413,
        "max_request_bytes",
    );
    let big_form = format!("hashes={}", "a".repeat(100_000));
    refused(
        &post_form(
            &api,
            "/api/v2/torrents/stop",
            &format!("Cookie: {cookie}\r\n"),
            &big_form,
        ),
        413,
        "max_request_bytes",
    );

    // Save paths: outside control.allowed_save_dirs refused, inside accepted.
    let bytes = std::fs::read(&torrent).unwrap();
    let outside = multipart(
        "XyZ",
        &[
            ("torrents", Some("clip.torrent"), &bytes),
            ("savepath", None, b"/etc"),
        ],
    );
    refused(
        &post_multipart(&api, &cookie, &outside, None),
        403,
        "not under an allowed save directory",
    );
    let sneaky = multipart(
        "XyZ",
        &[
            ("torrents", Some("clip.torrent"), &bytes),
            ("savepath", None, b"media/../../.."),
        ],
    );
    refused(
        &post_multipart(&api, &cookie, &sneaky, None),
        403,
        "not under an allowed save directory",
    );
    assert_eq!(
        daemon.remote(&["list"]).ok().json()["torrents"],
        serde_json::json!([])
    );
    let inside = multipart(
        "XyZ",
        &[
            ("torrents", Some("clip.torrent"), &bytes),
            ("savepath", None, allowed.to_str().unwrap().as_bytes()),
            ("stopped", None, b"true"),
        ],
    );
    let answer = post_multipart(&api, &cookie, &inside, None);
    assert_eq!(
        (answer.status, answer.body.trim()),
        (200, "Ok."),
        "{answer:?}"
    );
    let magnet = post_form(
        &api,
        "/api/v2/torrents/add",
        &format!("Cookie: {cookie}\r\n"),
        &format!("urls=magnet%3A%3Fxt%3Durn%3Abtih%3A{}", "cd".repeat(20)),
    );
    // A magnet link is added at once, waiting for its metadata (nobody has it here).
    assert_eq!(magnet.body.trim(), "Ok.", "{magnet:?}");
    let listed = request(
        &api,
        &format!("GET /api/v2/torrents/info HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"),
    );
    let listed: serde_json::Value = serde_json::from_str(&listed.body).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let of = |hash: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["hash"] == hash)
            .cloned()
            .unwrap_or_else(|| panic!("no {hash} in {listed}"))
    };
    let fetching = of(&"cd".repeat(20));
    assert_eq!(fetching["state"], "metaDL", "{fetching}");
    assert_eq!(fetching["has_metadata"], false, "{fetching}");
    assert_eq!(fetching["size"], 0, "{fetching}");
    let file = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["hash"] != "cd".repeat(20))
        .cloned()
        .unwrap();
    assert_eq!(file["has_metadata"], true, "{file}");
    assert_eq!(file["save_path"], allowed.to_str().unwrap());
    // Added stopped: its data is checked (it is all there) but it does not start.
    let state = file["state"].as_str().unwrap();
    assert!(
        ["stoppedUP", "stoppedDL", "checkingUP", "checkingDL"].contains(&state),
        "{listed}"
    );

    // URLs: fetched over HTTP within the body cap; one past it fails with the reason logged.
    let served = root.join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::write(served.join("huge.torrent"), vec![b'd'; 200_000]).unwrap();
    let mut web = Running::start("http.server", |_| {
        let mut cmd = Command::new("/usr/bin/python3");
        cmd.args([
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&served);
        cmd
    });
    let port = wait_for_port(&mut web);
    let huge = post_form(
        &api,
        "/api/v2/torrents/add",
        &format!("Cookie: {cookie}\r\n"),
        &format!("urls=http%3A%2F%2F127.0.0.1%3A{port}%2Fhuge.torrent"),
    );
    assert_eq!(huge.body.trim(), "Fails.", "{huge:?}");
    let missing = post_form(
        &api,
        "/api/v2/torrents/add",
        &format!("Cookie: {cookie}\r\n"),
        &format!("urls=http%3A%2F%2F127.0.0.1%3A{port}%2Fmissing.torrent"),
    );
    assert_eq!(missing.body.trim(), "Fails.", "{missing:?}");
    web.stop(Duration::from_secs(5));
    let log = daemon.running.log();
    assert!(
        log.contains("huge.torrent: the file is over control.max_request_bytes"),
        "{log}"
    );
    assert!(log.contains("the server answered 404"), "{log}");

    // Brute force: three failures ban the address (the wrong Basic password above was
    // the first: Basic failures count like auth/login's, so a brute force cannot go
    // around the form), then even the right password and the session it had are refused.
    for _ in 0..2 {
        let bad = post_form(
            &api,
            "/api/v2/auth/login",
            "",
            "username=sonarr&password=guess",
        );
        assert_eq!(bad.body.trim(), "Fails.", "{bad:?}");
    }
    refused(
        &post_form(
            &api,
            "/api/v2/auth/login",
            "",
            &format!("username={USER}&password={PASSWORD}"),
        ),
        403,
        "banned",
    );
    refused(
        &request(
            &api,
            &format!("GET /api/v2/app/version HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"),
        ),
        403,
        "banned",
    );

    // Through all of it the daemon stayed up and its control socket answers.
    assert!(daemon.running.is_running(), "{}", daemon.running.log());
    assert!(!daemon.running.log().contains("panicked"));
    daemon.remote(&["list"]).ok();
    assert!(daemon.stop(Duration::from_secs(30)).success());
}

#[test]
fn without_credentials_loopback_clients_need_no_login() {
    let tmp = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(tmp.path(), &["--peer-port", "0"]);
    let api = daemon.api.clone();
    let version = request(&api, "GET /api/v2/app/version HTTP/1.1\r\n\r\n");
    assert_eq!((version.status, version.body.as_str()), (200, "v5.1.4"));
    let listed = request(&api, "GET /api/v2/torrents/info HTTP/1.1\r\n\r\n");
    assert_eq!((listed.status, listed.body.as_str()), (200, "[]"));
    // The cross-site and Host checks still hold without credentials.
    refused(
        &request(
            &api,
            "GET /api/v2/torrents/info HTTP/1.1\r\nOrigin: http://evil.example\r\n\r\n",
        ),
        401,
        "cross-site",
    );
    refused(
        &request(
            &api,
            "GET /api/v2/torrents/info HTTP/1.1\r\nHost: rebind.example:9091\r\n\r\n",
        ),
        401,
        "Host header",
    );
    assert!(daemon.stop(Duration::from_secs(30)).success());
}

/// Starts the daemon as [`Daemon::start`] does, with `env` added (the test's own
/// environment stays as it is); returns it and its API's base URL.
fn daemon_with_env(home: &Path, args: &[&str], env: &[(&str, &Path)]) -> (Running, String) {
    let home_dir = home.to_path_buf();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, PathBuf)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_path_buf()))
        .collect();
    let mut daemon = Running::start("ccbt-uring daemon", move |_| {
        let mut cmd = ccbt();
        cmd.arg("daemon")
            .args(&args)
            .args(["--control", "127.0.0.1:0", "--peer-port", "0"])
            .current_dir(&home_dir)
            .env("HOME", &home_dir)
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_CONFIG_HOME");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        cmd
    });
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let log = daemon.log();
        if let Some(api) = log
            .split("control API ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
        {
            return (daemon, api.to_string());
        }
        assert!(daemon.is_running(), "the daemon exited: {log}");
        assert!(
            std::time::Instant::now() < until,
            "the daemon is not ready: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn https_urls_are_fetched_and_their_certificates_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let media = root.join("media");
    let torrent = content_and_torrent(root, &media, "Clip", &[("clip.mkv", 30_000)]);
    let served = root.join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::copy(&torrent, served.join("clip.torrent")).unwrap();
    let web = common::https::HttpsServer::start(root, &served);
    let port = web.port;
    let cert = web.cert.clone();
    let link = format!("urls=https%3A%2F%2F127.0.0.1%3A{port}%2Fclip.torrent");
    let cfg = config(
        root,
        &format!("allowed_save_dirs = [{:?}]", media.display().to_string()),
    );
    let save = format!("&savepath={}", media.display());

    // Not trusted: the add fails, saying why.
    let (mut untrusting, api) = daemon_with_env(root, &["--config", cfg.to_str().unwrap()], &[]);
    let (_, cookie) = login(&api);
    let answer = post_form(
        &api,
        "/api/v2/torrents/add",
        &format!("Cookie: {cookie}\r\n"),
        &(link.clone() + &save),
    );
    assert_eq!(answer.body.trim(), "Fails.", "{answer:?}");
    let log = untrusting.log();
    assert!(log.contains("TLS") && log.contains("certificate"), "{log}");
    untrusting.stop(Duration::from_secs(30));

    // Trusted through OpenSSL's SSL_CERT_FILE: fetched and added.
    let (mut trusting, api) = daemon_with_env(
        root,
        &["--config", cfg.to_str().unwrap()],
        &[("SSL_CERT_FILE", &cert)],
    );
    let (_, cookie) = login(&api);
    let answer = post_form(
        &api,
        "/api/v2/torrents/add",
        &format!("Cookie: {cookie}\r\n"),
        &(link + &save),
    );
    assert_eq!(answer.body.trim(), "Ok.", "{answer:?}\n{}", trusting.log());
    let listed = request(
        &api,
        &format!("GET /api/v2/torrents/info HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"),
    );
    let listed: serde_json::Value = serde_json::from_str(&listed.body).unwrap();
    assert_eq!(listed[0]["name"], "Clip", "{listed}");
    trusting.stop(Duration::from_secs(30));
    drop(web);
}

/// Every endpoint, for the hostile-input sweep.
const ENDPOINTS: &[&str] = &[
    "app/version",
    "app/webapiVersion",
    "app/buildInfo",
    "app/preferences",
    "app/setPreferences",
    "app/defaultSavePath",
    "torrents/info",
    "torrents/properties",
    "torrents/files",
    "torrents/trackers",
    "torrents/pieceStates",
    "torrents/renameFile",
    "torrents/renameFolder",
    "torrents/add",
    "torrents/delete",
    "torrents/stop",
    "torrents/pause",
    "torrents/start",
    "torrents/resume",
    "torrents/recheck",
    "torrents/reannounce",
    "torrents/setLocation",
    "torrents/setShareLimits",
    "torrents/setUploadLimit",
    "torrents/setDownloadLimit",
    "torrents/uploadLimit",
    "torrents/downloadLimit",
    "torrents/filePrio",
    "torrents/topPrio",
    "torrents/bottomPrio",
    "torrents/increasePrio",
    "torrents/decreasePrio",
    "torrents/setForceStart",
    "torrents/toggleSequentialDownload",
    "torrents/setCategory",
    "torrents/categories",
    "torrents/createCategory",
    "torrents/editCategory",
    "torrents/removeCategories",
    "torrents/addTags",
    "torrents/removeTags",
    "torrents/tags",
    "torrents/createTags",
    "torrents/deleteTags",
    "sync/maindata",
    "sync/torrentPeers",
    "transfer/info",
    "transfer/uploadLimit",
    "transfer/downloadLimit",
    "transfer/setUploadLimit",
    "transfer/setDownloadLimit",
    "no/such/endpoint",
    "auth/logout",
];

#[test]
fn hostile_parameters_on_every_endpoint_get_an_answer_never_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let media = root.join("media");
    let torrent = content_and_torrent(root, &media, "Clip", &[("clip.mkv", 20_000)]);
    let cfg = config(
        root,
        &format!("allowed_save_dirs = [{:?}]", media.display().to_string()),
    );
    let mut daemon = Daemon::start(
        root,
        &["--config", cfg.to_str().unwrap(), "--peer-port", "0"],
    );
    let api = daemon.api.clone();
    let (_, cookie) = login(&api);
    // One torrent, so commands have something to act on.
    let bytes = std::fs::read(&torrent).unwrap();
    let add = multipart(
        "XyZ",
        &[
            ("torrents", Some("c.torrent"), &bytes),
            ("savepath", None, media.to_str().unwrap().as_bytes()),
        ],
    );
    assert_eq!(post_multipart(&api, &cookie, &add, None).body.trim(), "Ok.");
    let listed = request(
        &api,
        &format!("GET /api/v2/torrents/info HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"),
    );
    let listed: serde_json::Value = serde_json::from_str(&listed.body).unwrap();
    let hash = listed[0]["hash"].as_str().unwrap().to_string();
    let hostile = [
        format!("hash={hash}&oldPath=Clip%2Fclip.mkv&newPath=..%2F..%2Fescaped.mkv"),
        format!("hash={hash}&oldPath=Clip&newPath=%2F%2F%00"),
        format!("hash={hash}&oldPath=%2F&newPath={}", "x%2F".repeat(3000)),
        format!("hash={hash}&oldPath=Clip%2Fclip.mkv&newPath=Clip"),
        String::new(),
        "hashes=all&hash=zz&category=&tags=,,,&limit=-99999999999999999999&offset=-9223372036854775808&rid=-1".into(),
        "hashes=all&ratioLimit=NaN&seedingTimeLimit=1e300&inactiveSeedingTimeLimit=-3&limit=9223372036854775807".into(),
        "hashes=all&category=%2Fbad%2F&categories=%0A%0A&savePath=%2Fetc&location=..%2F..%2F&tags=%00".into(),
        "hashes=all&id=x%7C-1%7C99999999999&priority=9&value=maybe&json=%5B1%2C2%5D&urls=%FF%FE".into(),
        "hashes=all&sort=nonexistent&reverse=true&filter=garbage&offset=5&limit=1&deleteFiles=perhaps".into(),
        format!("hash={}&indexes=0%7Cx%7C999&json=%7B%22save_path%22%3A%22%2Fetc%22%7D", "ab".repeat(20)),
    ];
    for endpoint in ENDPOINTS {
        for form in &hostile {
            for answer in [
                post_form(
                    &api,
                    &format!("/api/v2/{endpoint}"),
                    &format!("Cookie: {cookie}\r\n"),
                    form,
                ),
                request(
                    &api,
                    &format!("GET /api/v2/{endpoint}?{form} HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"),
                ),
            ] {
                assert!(
                    answer.status < 500 || answer.status == 503,
                    "{endpoint} with {form:?}: {answer:?}"
                );
                if answer.status >= 400 {
                    assert!(
                        !answer.body.trim().is_empty(),
                        "{endpoint} {form:?}: no reason: {answer:?}"
                    );
                }
            }
        }
        let garbage = exchange(
            &api,
            &format!(
                "POST /api/v2/{endpoint} HTTP/1.1\r\nCookie: {cookie}\r\n\
                 Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 9\r\n\r\n"
            ),
            b"\xff\x00--XyZ\r\n",
        );
        assert!(
            garbage.status < 500,
            "{endpoint} with garbage multipart: {garbage:?}"
        );
    }
    assert!(daemon.running.is_running(), "{}", daemon.running.log());
    assert!(!root.join("escaped.mkv").exists() && !media.join("escaped.mkv").exists());
    assert!(
        !daemon.running.log().contains("panicked"),
        "{}",
        daemon.running.log()
    );
    // The sweep ended with auth/logout: the session is gone, a new login works.
    let gone = request(
        &api,
        &format!("GET /api/v2/app/version HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"),
    );
    assert_eq!(gone.status, 403, "{gone:?}");
    let (_, cookie) = login(&api);
    let version = request(
        &api,
        &format!("GET /api/v2/app/version HTTP/1.1\r\nCookie: {cookie}\r\n\r\n"),
    );
    assert_eq!(version.body, "v5.1.4");
    assert!(daemon.stop(Duration::from_secs(30)).success());
}

/// The port `python3 -m http.server 0` says it serves on.
fn wait_for_port(web: &mut Running) -> u16 {
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let log = web.log();
        if let Some(port) = log
            .lines()
            .find_map(|l| l.split(" port ").nth(1))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
        {
            return port;
        }
        assert!(web.is_running(), "http.server exited: {log}");
        assert!(
            std::time::Instant::now() < until,
            "http.server said no port: {log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn base64_basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
