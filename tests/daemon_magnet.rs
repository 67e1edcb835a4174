//! Magnet links added to `ccbt-uring daemon` through every way in: `transmission-remote -a
//! MAGNET` (Transmission RPC), qBittorrent's `torrents/add` with `urls=magnet:...`, a
//! `.magnet` file in a watch folder, and `remote add MAGNET` on the control socket.
//!
//! - The first test downloads a torrent known only by its magnet link (its tracker names a
//!   `ccbt-uring seed`), compares the bytes, and restarts the daemon with the seeder gone:
//!   the torrent comes back complete, so the fetched `.torrent` was kept.
//! - The second keeps links nobody can answer: each is listed as fetching its metadata
//!   (qBittorrent `metaDL`, `has_metadata` false; Transmission `totalSize` 0, not
//!   finished), can be paused (kept paused across a restart, named by its `dn`), resumed
//!   and removed; a broken link is refused with a reason; an indexer's download link that
//!   redirects to a magnet link is followed.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::http::{form_escape, send};
use common::require;
use common::swarm::{
    self, assert_same_tree, free_port, interop_ready, wait_listening, Announce, Running, Tracker,
    DEBIAN_PYTHON,
};
use serde_json::{json, Value};

const SEEDING: Duration = Duration::from_secs(30);
const TRANSFER: Duration = Duration::from_secs(90);
const STOP: Duration = Duration::from_secs(10);

/// The torrent with `hash` as Transmission's torrent-get shows it (`None`: not listed).
#[track_caller]
fn transmission_torrent(daemon: &Daemon, hash: &str) -> Option<Value> {
    let v = daemon.rpc(
        json!({"method": "torrent-get", "arguments": {"ids": [hash], "fields": [
            "id", "name", "hashString", "status", "totalSize", "leftUntilDone", "isFinished",
            "metadataPercentComplete", "percentDone", "pieceCount", "errorString"
        ]}}),
    );
    assert_eq!(v["result"], "success", "{v}");
    v["arguments"]["torrents"]
        .as_array()
        .unwrap()
        .first()
        .cloned()
}

/// qBittorrent's torrents/info entry for `hash` (loopback: no login needed).
#[track_caller]
fn qbittorrent_torrent(daemon: &Daemon, hash: &str) -> Option<Value> {
    let answer = send(
        &daemon.api,
        "GET",
        &format!("/api/v2/torrents/info?hashes={hash}"),
        &[],
        b"",
    );
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json().as_array().unwrap().first().cloned()
}

/// qBittorrent's torrents/add with `urls=URL` and `more` (`&key=value...`); answers `Ok.`.
#[track_caller]
fn qbittorrent_add(daemon: &Daemon, url: &str, more: &str) {
    let form = format!("urls={}{more}", form_escape(url));
    let added = send(
        &daemon.api,
        "POST",
        "/api/v2/torrents/add",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    assert_eq!((added.status, added.body.trim()), (200, "Ok."), "{added:?}");
}

/// Waits until `pred` holds for what `get` returns.
#[track_caller]
fn wait_until<T: std::fmt::Debug>(
    daemon: &Daemon,
    what: &str,
    limit: Duration,
    get: impl Fn() -> T,
    pred: impl Fn(&T) -> bool,
) -> T {
    let until = Instant::now() + limit;
    loop {
        let now = get();
        if pred(&now) {
            return now;
        }
        assert!(
            Instant::now() < until,
            "{what}: not as expected after {limit:?}: {now:?}\n{}",
            daemon.running.log_tail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_daemon(home: &Path, downloads: &Path, extra: &[&str]) -> Daemon {
    std::fs::create_dir_all(home).unwrap();
    let port = free_port().to_string();
    let mut args = vec![
        "--peer-port",
        &port,
        "--download-dir",
        downloads.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Daemon::start(home, &args)
}

#[test]
fn a_magnet_link_from_transmission_remote_downloads_and_its_torrent_is_kept() {
    if !interop_ready(&[]) {
        return;
    }
    require("transmission-remote", "transmission-cli");
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start();
    let torrent = tracker.torrent(dir.path(), Announce::Http);
    let mut seeder = swarm::ccbt_seed(&torrent.path, &torrent.data_dir, free_port(), 1);
    tracker.wait_for_seeders(&torrent.info_hash, 1, SEEDING);
    let downloads = dir.path().join("downloads");
    let home = dir.path().join("home");
    let mut daemon = start_daemon(&home, &downloads, &[]);

    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn={}&tr={}",
        torrent.info_hash,
        torrent.name,
        form_escape(&tracker.http_announce())
    );
    let out = daemon.transmission_remote(&["-a", &magnet]);
    assert!(out.contains("responded: \"success\""), "{out}");
    let done = wait_until(
        &daemon,
        "the magnet's download",
        TRANSFER,
        || transmission_torrent(&daemon, &torrent.info_hash),
        |t| t.as_ref().is_some_and(|t| t["percentDone"] == 1.0),
    )
    .unwrap();
    assert_same_tree(&torrent.content(), &torrent.content_in(&downloads));
    assert_eq!(done["name"], torrent.name.as_str(), "{done}");
    assert_eq!(done["metadataPercentComplete"], 1.0, "{done}");
    let pieces = done["pieceCount"].as_u64().unwrap();
    assert!(pieces > 1, "{done}");
    let size = done["totalSize"].as_u64().unwrap();
    assert!(size > 0, "{done}");
    daemon.wait_log("metadata fetched; torrent kept", SEEDING);
    // A second add of the same link is a duplicate, not a second fetch.
    let again = daemon.rpc(json!({"method": "torrent-add", "arguments": {"filename": magnet}}));
    assert_eq!(
        again["arguments"]["torrent-duplicate"]["hashString"],
        torrent.info_hash.as_str(),
        "{again}"
    );
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());

    // Nobody can give the metadata now: the torrent comes back from what was kept.
    seeder.stop(STOP);
    let mut daemon = start_daemon(&home, &downloads, &[]);
    let back = wait_until(
        &daemon,
        "the restored torrent",
        SEEDING,
        || transmission_torrent(&daemon, &torrent.info_hash),
        |t| t.as_ref().is_some_and(|t| t["percentDone"] == 1.0),
    )
    .unwrap();
    assert_eq!(back["pieceCount"].as_u64(), Some(pieces), "{back}");
    assert_eq!(back["totalSize"].as_u64(), Some(size), "{back}");
    assert!(
        !daemon.running.log().contains("fetching metadata"),
        "the metadata was fetched again:\n{}",
        daemon.running.log()
    );
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
}

#[test]
fn magnet_links_wait_for_metadata_through_every_way_in_and_can_be_paused_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let downloads = dir.path().join("downloads");
    let home = dir.path().join("home");
    let watch = dir.path().join("watch");
    std::fs::create_dir_all(&watch).unwrap();
    let mut daemon = start_daemon(&home, &downloads, &["--watch-dir", watch.to_str().unwrap()]);
    // Info hashes nobody has; the peer named is a port nothing listens on.
    let dead_peer = format!("127.0.0.1:{}", free_port());
    let link =
        |hash: &str, name: &str| format!("magnet:?xt=urn:btih:{hash}&dn={name}&x.pe={dead_peer}");
    let (qbt, trn, watched, remote) = (
        "a1".repeat(20),
        "b2".repeat(20),
        "c3".repeat(20),
        "d4".repeat(20),
    );

    // qBittorrent's torrents/add with urls=magnet:...
    qbittorrent_add(&daemon, &link(&qbt, "From qBittorrent API"), "&category=tv");
    let t = qbittorrent_torrent(&daemon, &qbt).expect("listed at once");
    assert_eq!(t["state"], "metaDL", "{t}");
    assert_eq!(t["has_metadata"], false, "{t}");
    assert_eq!(t["name"], "From qBittorrent API", "{t}");
    assert_eq!(t["size"], 0, "{t}");
    assert_eq!(t["progress"], 0.0, "{t}");
    assert_eq!(t["category"], "tv", "{t}");
    let get = |path: &str| {
        let answer = send(
            &daemon.api,
            "GET",
            &format!("/api/v2/torrents/{path}?hash={qbt}"),
            &[],
            b"",
        );
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        answer.json()
    };
    assert_eq!(get("pieceStates"), json!([]));
    assert_eq!(get("files"), json!([]));
    let pex = get("trackers")[1].clone();
    assert_eq!(
        (pex["url"].as_str(), pex["status"].as_i64()),
        (Some("** [PeX] **"), Some(2)),
        "{pex}"
    );

    // Transmission's torrent-add with a magnet as `filename`, added paused.
    let v = daemon.rpc(json!({"method": "torrent-add", "arguments": {
        "filename": link(&trn, "From Transmission"), "paused": true, "labels": ["movies"]
    }}));
    assert_eq!(v["result"], "success", "{v}");
    assert_eq!(
        v["arguments"]["torrent-added"]["name"], "From Transmission",
        "{v}"
    );
    let t = transmission_torrent(&daemon, &trn).unwrap();
    // Sonarr reads totalSize 0 as a magnet still queued; it must never look finished.
    assert_eq!(t["status"], 0, "paused: {t}");
    assert_eq!(t["totalSize"], 0, "{t}");
    assert_eq!(t["isFinished"], false, "{t}");
    assert_eq!(t["metadataPercentComplete"], 0.0, "{t}");
    let fetching = transmission_torrent(&daemon, &qbt).unwrap();
    assert_eq!(fetching["status"], 4, "fetching is downloading: {fetching}");
    assert_eq!(fetching["isFinished"], false, "{fetching}");

    // An indexer's download link that redirects to a magnet link.
    let redirected = "e5".repeat(20);
    let port = free_port();
    let target = link(&redirected, "Redirected");
    let _indexer = Running::start("redirecting server", |_| {
        let mut cmd = Command::new(DEBIAN_PYTHON);
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scripts/web_seed_server.py"))
            .args(["to", &port.to_string(), &target]);
        cmd
    });
    wait_listening(port, &_indexer);
    qbittorrent_add(
        &daemon,
        &format!("http://127.0.0.1:{port}/get/1234.torrent"),
        "",
    );
    let t = qbittorrent_torrent(&daemon, &redirected).expect("the redirect's magnet");
    assert_eq!(t["name"], "Redirected", "{t}");

    // A `.magnet` file in the watch folder, and `remote add MAGNET` on the control socket.
    std::fs::write(
        watch.join("show.magnet"),
        format!("{}\n", link(&watched, "Watched")),
    )
    .unwrap();
    wait_until(
        &daemon,
        "the watched magnet",
        Duration::from_secs(20),
        || qbittorrent_torrent(&daemon, &watched),
        |t| t.is_some(),
    );
    assert!(watch.join("added/show.magnet").exists());
    let hash = daemon.add(Path::new(&link(&remote, "From remote")), &[]);
    assert_eq!(hash, remote);

    // Pause a fetch, resume it, pause it again; remove another.
    let pause =
        |hash: &str| daemon.rpc(json!({"method": "torrent-stop", "arguments": {"ids": [hash]}}));
    let start =
        |hash: &str| daemon.rpc(json!({"method": "torrent-start", "arguments": {"ids": [hash]}}));
    assert_eq!(pause(&qbt)["result"], "success");
    let status = |hash: &str| transmission_torrent(&daemon, hash).map(|t| t["status"].clone());
    wait_until(
        &daemon,
        "paused fetch",
        SEEDING,
        || status(&qbt),
        |s| *s == Some(json!(0)),
    );
    assert_eq!(start(&qbt)["result"], "success");
    wait_until(
        &daemon,
        "resumed fetch",
        SEEDING,
        || status(&qbt),
        |s| *s == Some(json!(4)),
    );
    assert_eq!(
        qbittorrent_torrent(&daemon, &qbt).unwrap()["state"],
        "metaDL"
    );
    assert_eq!(pause(&qbt)["result"], "success");
    let v = daemon.rpc(json!({"method": "torrent-remove", "arguments": {"ids": [remote], "delete-local-data": true}}),
    );
    assert_eq!(v["result"], "success", "{v}");
    assert!(transmission_torrent(&daemon, &remote).is_none());
    // What needs the files says why it cannot yet.
    let v = daemon.rpc(json!({"method": "torrent-verify", "arguments": {"ids": [watched]}}));
    assert!(
        v["result"]
            .as_str()
            .unwrap()
            .contains("still fetching its metadata"),
        "{v}"
    );
    // A broken link is refused with a reason, and nothing is added.
    let v = daemon
        .rpc(json!({"method": "torrent-add", "arguments": {"filename": "magnet:?dn=no-hash"}}));
    assert!(
        v["result"]
            .as_str()
            .unwrap()
            .starts_with("not a valid magnet link"),
        "{v}"
    );
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());

    // After a restart: the links are back with their names and labels, the paused ones
    // paused, the others fetching; the removed one is gone.
    let daemon = start_daemon(&home, &downloads, &["--watch-dir", watch.to_str().unwrap()]);
    for (hash, name, state) in [
        (&qbt, "From qBittorrent API", "stoppedDL"),
        (&trn, "From Transmission", "stoppedDL"),
        (&watched, "Watched", "metaDL"),
    ] {
        let t = qbittorrent_torrent(&daemon, hash).unwrap_or_else(|| panic!("{name} is gone"));
        assert_eq!(t["name"], name, "{t}");
        assert_eq!(t["state"], state, "{t}");
    }
    assert_eq!(
        qbittorrent_torrent(&daemon, &qbt).unwrap()["category"],
        "tv"
    );
    let t = daemon
        .rpc(json!({"method": "torrent-get", "arguments": {"ids": [trn], "fields": ["labels"]}}));
    assert_eq!(
        t["arguments"]["torrents"][0]["labels"],
        json!(["movies"]),
        "{t}"
    );
    assert!(qbittorrent_torrent(&daemon, &remote).is_none());
}
