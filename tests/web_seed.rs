//! Web seeds (BEP 19) against real HTTP servers on 127.0.0.1: Python's `http.server`
//! (which ignores `Range` and answers 200 with the whole file, one request per connection)
//! and `tests/scripts/web_seed_server.py` (byte ranges with keep-alive, as nginx serves
//! them, or a server that only fails). Each server is a process the test owns, stopped by
//! PID when dropped; every download is bounded in time.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::swarm::{
    assert_same_tree, ccbt_swarm, free_port, wait_listening, Running, DEBIAN_PYTHON,
};
use common::*;

/// Longest any download here may take.
const LIMIT: Duration = Duration::from_secs(90);

/// A multi-file tree whose names need URL-encoding, about 6 MiB.
const FILES: &[(&str, usize)] = &[
    ("a b.bin", 2_500_001),
    ("sub dir/c#1.bin", 3_300_017),
    ("z.txt", 1_000),
];

/// Enough that peers get pieces while the web seed holds its two runs.
const BIG_FILES: &[(&str, usize)] = &[("a b.bin", 30_000_001), ("sub dir/c#1.bin", 9_000_017)];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/web_seed_server.py")
}

/// `python3 -m http.server` serving `dir`.
fn python_http_server(dir: &Path) -> (Running, u16) {
    let port = free_port();
    let server = Running::start("python3 -m http.server", |_| {
        let mut cmd = Command::new(DEBIAN_PYTHON);
        cmd.args(["-u", "-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .arg("--directory")
            .arg(dir);
        cmd
    });
    wait_listening(port, &server);
    (server, port)
}

/// `web_seed_server.py MODE` (serving `dir` in `range` mode).
fn test_server(mode: &str, dir: &Path) -> (Running, u16) {
    let port = free_port();
    let server = Running::start(&format!("web_seed_server.py {mode}"), |_| {
        let mut cmd = Command::new(DEBIAN_PYTHON);
        cmd.arg("-u")
            .arg(script())
            .arg(mode)
            .arg(port.to_string())
            .arg(dir);
        cmd
    });
    wait_listening(port, &server);
    (server, port)
}

/// `ccbt-uring create SRC -o OUT --web-seed URL --piece-size 262144` (no tracker).
fn create(src: &Path, out: &Path, web_seed: &str) -> PathBuf {
    run(ccbt().arg("create").arg(src).arg("-o").arg(out).args([
        "--web-seed",
        web_seed,
        "--piece-size",
        "262144",
    ]))
    .ok();
    out.to_path_buf()
}

/// Downloads `torrent` into `out` with `extra` arguments, expecting success in time.
fn download(torrent: &Path, out: &Path, extra: &[&str]) -> Running {
    let mut d = ccbt_swarm("download", torrent, out, free_port(), 1, extra);
    d.wait_success(LIMIT);
    d
}

#[test]
fn single_file_from_python_http_server_alone() {
    let root = tempfile::tempdir().unwrap();
    let served = root.path().join("www");
    std::fs::create_dir(&served).unwrap();
    let file = served.join("big file.bin");
    std::fs::write(&file, bytes(7, 9_000_123)).unwrap();
    let (_server, port) = python_http_server(&served);
    // A URL ending in `/` gets the name appended (and encoded).
    let torrent = create(
        &file,
        &root.path().join("t.torrent"),
        &format!("http://127.0.0.1:{port}/"),
    );
    let out = root.path().join("out");
    let d = download(&torrent, &out, &[]);
    assert_eq!(
        std::fs::read(out.join("big file.bin")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    assert!(d.log().contains("using web seed"), "{}", d.log());
}

#[test]
fn multi_file_with_encoded_names_from_a_range_server_alone() {
    let root = tempfile::tempdir().unwrap();
    let served = root.path().join("www");
    let content = served.join("My Album");
    write_tree(&content, FILES);
    let (server, port) = test_server("range", &served);
    let torrent = create(
        &content,
        &root.path().join("t.torrent"),
        &format!("http://127.0.0.1:{port}"),
    );
    let out = root.path().join("out");
    download(&torrent, &out, &[]);
    assert_same_tree(&content, &out.join("My Album"));
    let log = server.log();
    assert!(log.contains("/My%20Album/sub%20dir/c%231.bin"), "{log}");
    assert!(
        log.contains("\" 206 "),
        "range requests answered 206:\n{log}"
    );
}

#[test]
fn web_seed_beside_a_peer_and_added_on_the_command_line() {
    let root = tempfile::tempdir().unwrap();
    let served = root.path().join("www");
    let content = served.join("My Album");
    write_tree(&content, BIG_FILES);
    let (server, port) = test_server("range", &served);
    // The torrent names no web seed: `--web-seed` adds it.
    let torrent = root.path().join("t.torrent");
    run(ccbt()
        .arg("create")
        .arg(&content)
        .arg("-o")
        .arg(&torrent)
        .args(["--piece-size", "262144"]))
    .ok();
    let seed_port = free_port();
    let mut seeder = ccbt_swarm("seed", &torrent, &served, seed_port, 1, &[]);
    wait_listening(seed_port, &seeder);
    let out = root.path().join("out");
    let peer = format!("127.0.0.1:{seed_port}");
    let url = format!("http://127.0.0.1:{port}/");
    download(&torrent, &out, &["--peer", &peer, "--web-seed", &url]);
    assert_same_tree(&content, &out.join("My Album"));
    // Both sources served: the web seed answered range requests, and the seeder uploaded
    // (the web seed holds at most two 4 MiB runs, so the peer gets the rest).
    assert!(server.log().contains("\" 206 "), "{}", server.log());
    seeder.stop(Duration::from_secs(15));
    let log = seeder.log();
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("uploaded "))
        .unwrap_or("");
    assert!(!last.is_empty() && !last.ends_with("uploaded 0 B"), "{log}");
}

#[test]
fn a_web_seed_serving_a_corrupted_file_is_dropped_and_a_peer_finishes() {
    let root = tempfile::tempdir().unwrap();
    let good = root.path().join("good");
    let bad = root.path().join("bad");
    let file = good.join("f.bin");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::create_dir_all(&good).unwrap();
    let data = bytes(3, 16 << 20);
    std::fs::write(&file, &data).unwrap();
    // One flipped byte in every piece.
    let mut corrupt = data.clone();
    for at in (100..corrupt.len()).step_by(262_144) {
        corrupt[at] ^= 0xff;
    }
    std::fs::write(bad.join("f.bin"), &corrupt).unwrap();
    let (_server, port) = test_server("range", &bad);
    let torrent = create(
        &file,
        &root.path().join("t.torrent"),
        &format!("http://127.0.0.1:{port}/f.bin"),
    );
    let seed_port = free_port();
    let seeder = ccbt_swarm("seed", &torrent, &good, seed_port, 1, &[]);
    wait_listening(seed_port, &seeder);
    let out = root.path().join("out");
    let d = download(
        &torrent,
        &out,
        &["--peer", &format!("127.0.0.1:{seed_port}")],
    );
    assert_eq!(std::fs::read(out.join("f.bin")).unwrap(), data);
    let log = d.log();
    assert!(log.contains("failed its hash"), "{log}");
    assert!(log.contains("web seed dropped"), "{log}");
}

/// A download whose only web seed fails as `mode` says: it backs off (several tries, ever
/// further apart), never crashes, and ends cleanly (exit 1, incomplete) on SIGTERM.
#[track_caller]
fn failing_web_seed_backs_off(mode: &str, error: &str) {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("f.bin");
    std::fs::write(&src, bytes(5, 1_000_000)).unwrap();
    let (server, port) = test_server(mode, root.path());
    let torrent = create(
        &src,
        &root.path().join("t.torrent"),
        &format!("http://127.0.0.1:{port}/f.bin"),
    );
    let out = root.path().join("out");
    let mut d = ccbt_swarm("download", &torrent, &out, free_port(), 1, &[]);
    let began = Instant::now();
    // Tries at about 0, 2 and 6 s (Retry-After: 1 is shorter than the back-off).
    while began.elapsed() < Duration::from_secs(8) {
        assert!(d.is_running(), "exited early:\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = d.stop(Duration::from_secs(15));
    assert_eq!(status.code(), Some(1), "incomplete:\n{}", d.log());
    let log = d.log();
    assert!(!log.contains("panicked"), "{log}");
    let backoffs = log.matches("web seed failed; backing off").count();
    // Growing waits (2 s, then 4 s): at most 3 tries in 8 s, where a fixed 2 s gives 4.
    assert!((2..=3).contains(&backoffs), "{backoffs} back-offs:\n{log}");
    assert!(log.contains(error), "{log}");
    let requests = server.log().matches("GET ").count();
    // A redirect loop costs up to 6 requests per try; the others one.
    assert!(
        requests <= backoffs * 6 + 6,
        "{requests} requests:\n{}",
        server.log()
    );
}

#[test]
fn a_web_seed_answering_404_backs_off() {
    failing_web_seed_backs_off("404", "HTTP 404");
}

#[test]
fn a_web_seed_answering_500_backs_off() {
    failing_web_seed_backs_off("500", "HTTP 500");
}

#[test]
fn a_web_seed_in_a_redirect_loop_backs_off() {
    failing_web_seed_backs_off("loop", "redirected more than 5 times");
}

#[test]
fn a_web_seed_closing_mid_body_backs_off() {
    failing_web_seed_backs_off("short", "closed before the HTTP response was complete");
}

#[test]
fn a_web_seed_naming_another_range_backs_off() {
    failing_web_seed_backs_off("lie", "is not the one asked for");
}

#[test]
fn multi_file_from_python_http_server_alone() {
    let root = tempfile::tempdir().unwrap();
    let served = root.path().join("www");
    let content = served.join("My Album");
    write_tree(&content, FILES);
    let (_server, port) = python_http_server(&served);
    let torrent = create(
        &content,
        &root.path().join("t.torrent"),
        &format!("http://127.0.0.1:{port}/"),
    );
    let out = root.path().join("out");
    download(&torrent, &out, &[]);
    assert_same_tree(&content, &out.join("My Album"));
}

#[test]
fn web_seeds_can_be_turned_off() {
    let root = tempfile::tempdir().unwrap();
    let src = root.path().join("f.bin");
    std::fs::write(&src, bytes(5, 300_000)).unwrap();
    let (server, port) = test_server("range", root.path());
    let torrent = create(
        &src,
        &root.path().join("t.torrent"),
        &format!("http://127.0.0.1:{port}/f.bin"),
    );
    let out = root.path().join("out");
    let mut d = ccbt_swarm(
        "download",
        &torrent,
        &out,
        free_port(),
        1,
        &["--no-web-seeds"],
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(d.is_running());
    d.stop(Duration::from_secs(15));
    assert_eq!(server.log().matches("GET ").count(), 0, "{}", server.log());
}

/// An https web seed: refused while its certificate is not trusted (the download names
/// the reason and gets nothing from it), used once `SSL_CERT_FILE` trusts it, with keep-alive
/// range requests over TLS; bytes compared.
#[test]
fn an_https_web_seed_is_used_once_its_certificate_is_trusted() {
    let root = tempfile::tempdir().unwrap();
    let (cert, key) = common::https::self_signed(root.path());
    let served = root.path().join("www");
    let content = served.join("My Album");
    write_tree(&content, FILES);
    let port = free_port();
    let server = Running::start("web_seed_server.py range (https)", |_| {
        let mut cmd = Command::new(DEBIAN_PYTHON);
        cmd.arg("-u")
            .arg(script())
            .args(["range", &port.to_string()])
            .arg(&served)
            .env("WEB_SEED_TLS_CERT", &cert)
            .env("WEB_SEED_TLS_KEY", &key);
        cmd
    });
    wait_listening(port, &server);
    let torrent = create(
        &content,
        &root.path().join("t.torrent"),
        &format!("https://127.0.0.1:{port}"),
    );
    // A CA bundle of nothing (/dev/null): the system's CAs do not vouch for 127.0.0.1.
    let start = |out: &Path, trust: Option<&Path>| {
        common::https::download_trusting(&torrent, out, trust.unwrap_or(Path::new("/dev/null")))
    };

    let untrusted = root.path().join("untrusted");
    let mut d = start(&untrusted, None);
    let until = Instant::now() + Duration::from_secs(20);
    while !d.log().contains("certificate verify failed") {
        assert!(Instant::now() < until, "{}", d.log());
        assert!(d.is_running(), "{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    d.stop(Duration::from_secs(5));
    assert!(
        !server.log().contains("GET "),
        "a request went over an unverified connection:\n{}",
        server.log()
    );

    let out = root.path().join("out");
    let mut d = start(&out, Some(&cert));
    d.wait_success(LIMIT);
    assert_same_tree(&content, &out.join("My Album"));
    let log = server.log();
    assert!(
        log.contains("\" 206 "),
        "range requests answered 206:\n{log}"
    );
}
