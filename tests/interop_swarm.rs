//! Interop in a real swarm on 127.0.0.1: aria2c, transmission-cli and libtorrent from Debian
//! seed to and download from `ccbt-uring` (1 and 2 shards) through a real opentracker, and
//! every downloaded byte is compared with the seeder's.
//!
//! Each client and shard count meets both tracker faces: when a client seeds, ccbt-uring
//! announces over HTTP with 1 shard and over UDP with 2; when ccbt-uring seeds, the other
//! way round. The swarm test runs three leechers at once from one libtorrent seeder.
//!
//! transmission 3.00 never dials 127.x peers, so whenever it downloads it announces first
//! and the seeder dials it (see `common::swarm`). That asks of `ccbt-uring seed` what every
//! seeder here does: connect to the leechers the tracker lists.
//!
//! The programs come from `tools/install-deps.sh`. Without them these tests skip, unless
//! `CCBT_REQUIRE_INTEROP` is set (as in CI), which makes a missing program a failure.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::swarm::{
    self, assert_same_tree, free_port, interop_ready, Announce, Client, Running, TestTorrent,
    Tracker,
};

/// Time for a seeder to verify its data and announce itself as complete.
const SEEDER_READY: Duration = Duration::from_secs(15);
/// Time for a leecher to announce.
const LEECHER_READY: Duration = Duration::from_secs(10);
/// Time for one transfer of the ~8.4 MiB test torrent. Healthy runs take 1-4 s, except
/// with transmission, which unchokes every 10 s and ramps up slowly: ~15 s.
const TRANSFER: Duration = Duration::from_secs(40);
/// Time for ccbt-uring seed to announce `stopped` and exit after SIGTERM.
const SEED_STOP: Duration = Duration::from_secs(10);

/// A torrent on a fresh tracker, with a temp dir for everyone's downloads.
/// The swarm test's seeder upload cap: about 4 s for the whole torrent to one leecher.
const SWARM_SEED_RATE: u32 = 2_000_000;

struct Setup {
    dir: tempfile::TempDir,
    tracker: Tracker,
    torrent: TestTorrent,
}

impl Setup {
    /// `None` (the test skips) if a program `clients` need is missing.
    fn new(clients: &[Client], announce: Announce) -> Option<Setup> {
        if !interop_ready(clients) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tracker = Tracker::start();
        let torrent = tracker.torrent(dir.path(), announce);
        Some(Setup {
            dir,
            tracker,
            torrent,
        })
    }

    fn out(&self, who: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("out-{who}"))
    }

    fn hash(&self) -> &str {
        &self.torrent.info_hash
    }

    /// Starts a seeder and a downloader in the order that lets them meet: the seeder first
    /// (the downloader dials it), or, for a downloader that will not dial loopback peers,
    /// the downloader first (the seeder dials it).
    fn pair(
        &self,
        downloader_dials: bool,
        seed: impl FnOnce() -> Running,
        download: impl FnOnce() -> Running,
    ) -> (Running, Running) {
        if downloader_dials {
            let seeder = seed();
            self.tracker.wait_for_seeders(self.hash(), 1, SEEDER_READY);
            (seeder, download())
        } else {
            let downloader = download();
            self.tracker
                .wait_for_leechers(self.hash(), 1, LEECHER_READY);
            (seed(), downloader)
        }
    }

    #[track_caller]
    fn assert_downloaded(&self, out: &Path) {
        assert_same_tree(&self.torrent.content(), &self.torrent.content_in(out));
    }
}

/// `client` seeds; `ccbt-uring download --shards N` fetches everything.
fn client_seeds_ccbt_downloads(client: Client, shards: u32) {
    let announce = if shards == 1 {
        Announce::Http
    } else {
        Announce::Udp
    };
    let Some(s) = Setup::new(&[client], announce) else {
        return;
    };
    let out = s.out("ccbt");
    let (_seeder, mut downloader) = s.pair(
        true,
        || client.seed(&s.torrent.path, &s.torrent.data_dir, free_port()),
        || swarm::ccbt_download(&s.torrent.path, &out, free_port(), shards),
    );
    let took = downloader.wait_success(TRANSFER);
    s.assert_downloaded(&out);
    eprintln!(
        "{} seeded, ccbt-uring ({shards} shards, {announce:?} tracker) downloaded in {took:.1?}",
        client.name()
    );
}

/// `ccbt-uring seed --shards N` seeds; `client` downloads everything; on SIGTERM the seeder
/// announces `stopped` and exits 0.
fn ccbt_seeds_client_downloads(client: Client, shards: u32) {
    let announce = if shards == 1 {
        Announce::Udp
    } else {
        Announce::Http
    };
    let Some(s) = Setup::new(&[client], announce) else {
        return;
    };
    let out = s.out(client.name());
    let seed_port = free_port();
    let (mut seeder, mut downloader) = s.pair(
        client.dials_loopback_peers(),
        || swarm::ccbt_seed(&s.torrent.path, &s.torrent.data_dir, seed_port, shards),
        || client.download(&s.torrent.path, &out, free_port()),
    );
    let took = downloader.wait_success(TRANSFER);
    s.assert_downloaded(&out);
    eprintln!(
        "ccbt-uring ({shards} shards, {announce:?} tracker) seeded, {} downloaded in {took:.1?}",
        client.name()
    );

    assert!(seeder.is_running(), "ccbt-uring seed exited while seeding");
    let status = seeder.stop(SEED_STOP);
    assert!(
        status.success(),
        "ccbt-uring seed ended with {status} on SIGTERM"
    );
    assert!(
        !s.tracker.peer_ports(s.hash()).contains(&seed_port),
        "ccbt-uring seed exited without announcing `stopped`"
    );
}

#[test]
fn aria2_seeds_ccbt_downloads_1_shard() {
    client_seeds_ccbt_downloads(Client::Aria2, 1);
}

#[test]
fn aria2_seeds_ccbt_downloads_2_shards() {
    client_seeds_ccbt_downloads(Client::Aria2, 2);
}

#[test]
fn transmission_seeds_ccbt_downloads_1_shard() {
    client_seeds_ccbt_downloads(Client::Transmission, 1);
}

#[test]
fn transmission_seeds_ccbt_downloads_2_shards() {
    client_seeds_ccbt_downloads(Client::Transmission, 2);
}

#[test]
fn libtorrent_seeds_ccbt_downloads_1_shard() {
    client_seeds_ccbt_downloads(Client::Libtorrent, 1);
}

#[test]
fn libtorrent_seeds_ccbt_downloads_2_shards() {
    client_seeds_ccbt_downloads(Client::Libtorrent, 2);
}

#[test]
fn ccbt_seeds_aria2_downloads_1_shard() {
    ccbt_seeds_client_downloads(Client::Aria2, 1);
}

#[test]
fn ccbt_seeds_aria2_downloads_2_shards() {
    ccbt_seeds_client_downloads(Client::Aria2, 2);
}

#[test]
fn ccbt_seeds_transmission_downloads_1_shard() {
    ccbt_seeds_client_downloads(Client::Transmission, 1);
}

#[test]
fn ccbt_seeds_transmission_downloads_2_shards() {
    ccbt_seeds_client_downloads(Client::Transmission, 2);
}

#[test]
fn ccbt_seeds_libtorrent_downloads_1_shard() {
    ccbt_seeds_client_downloads(Client::Libtorrent, 1);
}

#[test]
fn ccbt_seeds_libtorrent_downloads_2_shards() {
    ccbt_seeds_client_downloads(Client::Libtorrent, 2);
}

/// One libtorrent seeder; aria2, transmission and ccbt-uring leech at the same time and
/// may trade pieces among themselves.
#[test]
fn libtorrent_seeds_aria2_transmission_and_ccbt_at_once() {
    let Some(s) = Setup::new(&Client::ALL, Announce::Http) else {
        return;
    };
    // transmission announces first: it only trades with peers that dial it.
    let mut transmission =
        Client::Transmission.download(&s.torrent.path, &s.out("transmission"), free_port());
    s.tracker.wait_for_leechers(s.hash(), 1, LEECHER_READY);
    // A slow seeder: the leechers must get much of the torrent from each other.
    let _seeder = Client::libtorrent_seed_throttled(
        &s.torrent.path,
        &s.torrent.data_dir,
        free_port(),
        SWARM_SEED_RATE,
    );
    s.tracker.wait_for_seeders(s.hash(), 1, SEEDER_READY);
    let mut aria2 = Client::Aria2.download(&s.torrent.path, &s.out("aria2"), free_port());
    // ccbt-uring stays on as a seed, so that the others can keep fetching from it.
    let out = s.out("ccbt");
    let mut ccbt = swarm::ccbt_swarm(
        "download",
        &s.torrent.path,
        &out,
        free_port(),
        2,
        &["--seed"],
    );

    let start = Instant::now();
    while !ccbt.log().contains("download complete") {
        assert!(start.elapsed() < TRANSFER, "ccbt-uring did not complete");
        assert!(ccbt.is_running(), "ccbt-uring exited");
        std::thread::sleep(Duration::from_millis(100));
    }
    s.assert_downloaded(&out);
    eprintln!("ccbt done after {:.1?}", start.elapsed());
    for (who, leecher) in [("aria2", &mut aria2), ("transmission", &mut transmission)] {
        let took = leecher.wait_success(TRANSFER.saturating_sub(start.elapsed()));
        s.assert_downloaded(&s.out(who));
        eprintln!("{who} done after {took:.1?}");
    }
    assert!(ccbt.stop(Duration::from_secs(10)).success());
    let uploaded = uploaded_bytes(&ccbt.log());
    assert!(
        uploaded > 0,
        "ccbt-uring uploaded nothing to the other leechers\n{}",
        ccbt.log()
    );
    eprintln!("ccbt-uring uploaded {uploaded} bytes to the other leechers");
}

/// The upload total from ccbt-uring's last progress line ("..., uploaded 1.50 MiB").
fn uploaded_bytes(log: &str) -> u64 {
    let line = log
        .lines()
        .rev()
        .find_map(|l| l.split("uploaded ").nth(1))
        .unwrap_or("0 B");
    let mut parts = line.split_whitespace();
    let n: f64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0.0);
    let unit = match parts.next().unwrap_or("B") {
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => 1.0,
    };
    (n * unit) as u64
}

/// The harness itself, without ccbt-uring: every client seeds to and downloads from another
/// real client, through both tracker faces. If this fails, the tests above say nothing
/// about ccbt-uring.
#[test]
fn real_clients_trade_with_each_other() {
    for (seeder, downloader, announce) in [
        (Client::Libtorrent, Client::Aria2, Announce::Udp),
        (Client::Aria2, Client::Transmission, Announce::Http),
        (Client::Transmission, Client::Libtorrent, Announce::Udp),
    ] {
        let Some(s) = Setup::new(&[seeder, downloader], announce) else {
            return;
        };
        let out = s.out(downloader.name());
        let (_seeder, mut leecher) = s.pair(
            downloader.dials_loopback_peers(),
            || seeder.seed(&s.torrent.path, &s.torrent.data_dir, free_port()),
            || downloader.download(&s.torrent.path, &out, free_port()),
        );
        let took = leecher.wait_success(TRANSFER);
        s.assert_downloaded(&out);
        eprintln!(
            "{} seeded, {} downloaded ({announce:?} tracker) in {took:.1?}",
            seeder.name(),
            downloader.name()
        );
    }
}
