//! Tracker edits on a running `ccbt-uring daemon`, through the real `transmission-remote`
//! 3.00 (`-td URL` adds, `-tr ID` removes: trackerAdd / trackerRemove), Transmission's
//! `trackerList`, and qBittorrent's addTrackers / editTracker / removeTrackers. A tracker
//! added is announced to at once (a second opentracker sees the seeder), the edits are
//! kept across a restart, and bad URLs are refused with a reason.

mod common;

use std::time::Duration;

use common::daemon::Daemon;
use common::http::{form_escape, send};
use common::require;
use common::swarm::{free_port, interop_ready, Announce, Tracker};
use serde_json::json;

const SEEDING: Duration = Duration::from_secs(30);
const STOP: Duration = Duration::from_secs(10);

/// The torrent's tracker tiers, from torrent-get's `trackers`.
#[track_caller]
fn tiers(daemon: &Daemon, hash: &str) -> Vec<(u64, String)> {
    let v = daemon.rpc(
        json!({"method": "torrent-get", "arguments": {"ids": [hash], "fields": ["trackers"]}}),
    );
    v["arguments"]["torrents"][0]["trackers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["tier"].as_u64().unwrap(),
                t["announce"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// qBittorrent's torrents/FORM_PATH with a form body; the status and body.
fn qbittorrent(daemon: &Daemon, path: &str, form: &str) -> (u16, String) {
    let answer = send(
        &daemon.api,
        "POST",
        &format!("/api/v2/torrents/{path}"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes(),
    );
    (answer.status, answer.body)
}

#[test]
fn trackers_are_added_replaced_and_removed_through_both_apis_and_kept() {
    if !interop_ready(&[]) {
        return;
    }
    require("transmission-remote", "transmission-cli");
    let dir = tempfile::tempdir().unwrap();
    let first = Tracker::start();
    let second = Tracker::start();
    let torrent = first.torrent(dir.path(), Announce::Http);
    second.allow(&torrent.info_hash);
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let port = free_port().to_string();
    let data = torrent.data_dir.to_str().unwrap().to_string();
    let mut daemon = Daemon::start(&home, &["--peer-port", &port, "--download-dir", &data]);
    let hash = torrent.info_hash.clone();
    daemon.transmission_remote(&["-a", torrent.path.to_str().unwrap()]);
    first.wait_for_seeders(&hash, 1, SEEDING);
    assert_eq!(tiers(&daemon, &hash), vec![(0, first.http_announce())]);

    // transmission-remote -td: a tier of its own, announced to at once.
    let out = daemon.transmission_remote(&["-t", &hash, "-td", &second.udp_announce()]);
    assert!(out.contains("success"), "{out}");
    assert_eq!(
        tiers(&daemon, &hash),
        vec![(0, first.http_announce()), (1, second.udp_announce())]
    );
    // -tr 0 removes the first: the second is the current tracker now and hears us.
    daemon.transmission_remote(&["-t", &hash, "-tr", "0"]);
    assert_eq!(tiers(&daemon, &hash), vec![(0, second.udp_announce())]);
    second.wait_for_seeders(&hash, 1, SEEDING);

    // trackerList (Transmission 4): the whole list, tiers split by a blank line.
    let list = format!("{}\n\n{}", second.udp_announce(), first.http_announce());
    let v = daemon
        .rpc(json!({"method": "torrent-set", "arguments": {"ids": [hash], "trackerList": list}}));
    assert_eq!(v["result"], "success", "{v}");
    assert_eq!(
        tiers(&daemon, &hash),
        vec![(0, second.udp_announce()), (1, first.http_announce())]
    );
    let v = daemon.rpc(
        json!({"method": "torrent-set", "arguments": {"ids": [hash], "trackerAdd": ["ftp://x/y"]}}),
    );
    assert!(
        v["result"]
            .as_str()
            .unwrap()
            .contains("is not an http, https or udp tracker URL"),
        "{v}"
    );

    // qBittorrent: edit, remove, add; unknown URLs and bad ones answered as qBittorrent does.
    let edited = format!("http://127.0.0.1:{}/announce?edited=1", second.port());
    let form = format!(
        "hash={hash}&origUrl={}&newUrl={}",
        form_escape(&first.http_announce()),
        form_escape(&edited)
    );
    assert_eq!(qbittorrent(&daemon, "editTracker", &form).0, 200);
    assert_eq!(
        tiers(&daemon, &hash),
        vec![(0, second.udp_announce()), (1, edited.clone())]
    );
    let form = format!("hash={hash}&origUrl=http://nowhere/a&newUrl=http://b/c");
    assert_eq!(qbittorrent(&daemon, "editTracker", &form).0, 409);
    let form = format!("hash={hash}&urls={}", form_escape(&edited));
    assert_eq!(qbittorrent(&daemon, "removeTrackers", &form).0, 200);
    let form = format!("hash={hash}&urls=http://nowhere/a");
    assert_eq!(qbittorrent(&daemon, "removeTrackers", &form).0, 409);
    let form = format!("hash={hash}&urls={}", form_escape(&first.http_announce()));
    assert_eq!(qbittorrent(&daemon, "addTrackers", &form).0, 200);
    let (status, body) = qbittorrent(&daemon, "addTrackers", &format!("hash={hash}&urls=nope"));
    assert_eq!(status, 400, "{body}");
    let (status, _) = qbittorrent(
        &daemon,
        "addTrackers",
        &format!("hash={}&urls=http://a/b", "0".repeat(40)),
    );
    assert_eq!(status, 404);
    let kept = vec![(0, second.udp_announce()), (1, first.http_announce())];
    assert_eq!(tiers(&daemon, &hash), kept);
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());

    // After a restart the edited list is the torrent's.
    let mut daemon = Daemon::start(&home, &["--peer-port", &port, "--download-dir", &data]);
    assert_eq!(tiers(&daemon, &hash), kept);
    assert!(daemon.stop(STOP).success(), "{}", daemon.running.log());
}
