//! Magnet links both ways, on 127.0.0.1 through a real opentracker: `ccbt-uring download
//! MAGNET` fetches the metadata and the data from seeders that are each of libtorrent,
//! aria2 and Transmission; each of them downloads from a magnet link while ccbt-uring seeds
//! (so the metadata came from us); bytes compared each time. Scripted peers that lie about
//! the metadata (wrong bytes, a changed total_size, an oversize one) are dropped, and the
//! download still completes from an honest peer; `info MAGNET --fetch` prints the fetched
//! torrent and saves it.
//!
//! transmission 3.00 never dials 127.x peers: when it downloads, it announces first and the
//! ccbt-uring seeder dials it (see `common::swarm`). The interop programs come from
//! `tools/install-deps.sh`; without them those tests skip unless `CCBT_REQUIRE_INTEROP` is
//! set.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccbt_engine::bencode::{self, Dict, Value};
use ccbt_engine::extension::{Extension, TheirHandshake};
use ccbt_engine::metadata::MetadataMessage;
use ccbt_engine::metainfo::Metainfo;
use common::swarm::{
    self, assert_same_tree, free_port, interop_ready, wait_listening, Announce, Client, Running,
    TestTorrent, Tracker,
};
use common::wire_peer::{message, read_message};

/// Time for a seeder to verify its data and announce itself as complete.
const SEEDER_READY: Duration = Duration::from_secs(15);
/// Time for a leecher to announce.
const LEECHER_READY: Duration = Duration::from_secs(15);
/// Time for the metadata and the ~8.4 MiB of data (transmission ramps up slowly).
const TRANSFER: Duration = Duration::from_secs(60);

/// The extended message id (BEP 10).
const EXTENDED: u8 = 20;
/// The id our scripted peers take ut_metadata under.
const THEIR_UT_METADATA: u8 = 7;

struct Setup {
    dir: tempfile::TempDir,
    tracker: Tracker,
    torrent: TestTorrent,
}

impl Setup {
    fn new(clients: &[Client]) -> Option<Setup> {
        if !interop_ready(clients) {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let tracker = Tracker::start();
        let torrent = tracker.torrent(dir.path(), Announce::Http);
        Some(Setup {
            dir,
            tracker,
            torrent,
        })
    }

    fn out(&self, who: &str) -> std::path::PathBuf {
        self.dir.path().join(format!("out-{who}"))
    }

    /// The torrent's magnet link, with the tracker (`tr`) and no other help.
    fn magnet(&self) -> String {
        format!(
            "magnet:?xt=urn:btih:{}&dn={}&tr={}",
            self.torrent.info_hash,
            self.torrent.name,
            url_encode(&self.tracker.http_announce())
        )
    }

    #[track_caller]
    fn assert_downloaded(&self, out: &Path) {
        assert_same_tree(&self.torrent.content(), &self.torrent.content_in(out));
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `ccbt-uring download MAGNET -o OUT --peer PEER...` on 127.0.0.1.
fn ccbt_download_magnet(magnet: &str, out: &Path, peers: &[SocketAddr], extra: &[&str]) -> Running {
    let mut args: Vec<String> = vec![
        "download".into(),
        magnet.into(),
        "-o".into(),
        out.display().to_string(),
        "--shards".into(),
        "1".into(),
        "--port".into(),
        free_port().to_string(),
        "--listen".into(),
        "127.0.0.1".into(),
    ];
    if !extra.contains(&"--metadata-timeout") {
        args.extend(["--metadata-timeout".into(), "40".into()]);
    }
    for p in peers {
        args.push("--peer".into());
        args.push(p.to_string());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    swarm::ccbt("ccbt-uring download MAGNET", args)
}

/// `client` seeds the .torrent; ccbt-uring downloads from the magnet link alone (plus the
/// seeder's address, as `x.pe` would give it).
fn client_seeds_ccbt_downloads_magnet(client: Client) {
    let Some(s) = Setup::new(&[client]) else {
        return;
    };
    let port = free_port();
    let seeder = client.seed(&s.torrent.path, &s.torrent.data_dir, port);
    // Listed as a seeder, it listens. (No probe connection: transmission takes one
    // connection per address, handshakes included, and would refuse ours beside it.)
    s.tracker
        .wait_for_seeders(&s.torrent.info_hash, 1, SEEDER_READY);
    let out = s.out("ccbt");
    let seeder_addr = SocketAddr::from(([127, 0, 0, 1], port));
    let saved = s.dir.path().join("fetched.torrent");
    let mut downloader = ccbt_download_magnet(
        &s.magnet(),
        &out,
        &[seeder_addr],
        &["--save-torrent", saved.to_str().unwrap()],
    );
    let took = downloader.wait_success(TRANSFER);
    s.assert_downloaded(&out);
    let log = downloader.log();
    assert!(log.contains("metadata: fetched"), "{log}");
    // The saved .torrent is the original's info dict under the magnet's tracker.
    let fetched = Metainfo::parse(&std::fs::read(&saved).unwrap()).unwrap();
    let original = Metainfo::parse(&std::fs::read(&s.torrent.path).unwrap()).unwrap();
    assert_eq!(fetched.info_hash, original.info_hash);
    assert_eq!(&*fetched.info_bytes, &*original.info_bytes);
    assert_eq!(
        fetched.announce.as_deref(),
        Some(&*s.tracker.http_announce())
    );
    eprintln!(
        "{} seeded, ccbt-uring downloaded a magnet link in {took:.1?}",
        client.name()
    );
    drop(seeder);
}

/// ccbt-uring seeds; `client` downloads from a magnet link: the metadata can only come
/// from us.
fn ccbt_seeds_client_downloads_magnet(client: Client) {
    let Some(s) = Setup::new(&[client]) else {
        return;
    };
    let out = s.out(client.name());
    let seed_port = free_port();
    let seed = || {
        let seeder = swarm::ccbt_seed(&s.torrent.path, &s.torrent.data_dir, seed_port, 1);
        s.tracker
            .wait_for_seeders(&s.torrent.info_hash, 1, SEEDER_READY);
        seeder
    };
    let (_seeder, mut downloader) = if client.dials_loopback_peers() {
        let seeder = seed();
        (
            seeder,
            client.download_magnet(&s.magnet(), &out, free_port()),
        )
    } else {
        let downloader = client.download_magnet(&s.magnet(), &out, free_port());
        s.tracker
            .wait_for_leechers(&s.torrent.info_hash, 1, LEECHER_READY);
        (seed(), downloader)
    };
    let took = downloader.wait_success(TRANSFER);
    s.assert_downloaded(&out);
    eprintln!(
        "ccbt-uring seeded, {} downloaded a magnet link in {took:.1?}",
        client.name()
    );
}

#[test]
fn libtorrent_seeds_ccbt_downloads_a_magnet() {
    client_seeds_ccbt_downloads_magnet(Client::Libtorrent);
}

#[test]
fn aria2_seeds_ccbt_downloads_a_magnet() {
    client_seeds_ccbt_downloads_magnet(Client::Aria2);
}

#[test]
fn transmission_seeds_ccbt_downloads_a_magnet() {
    client_seeds_ccbt_downloads_magnet(Client::Transmission);
}

#[test]
fn ccbt_seeds_libtorrent_downloads_a_magnet() {
    ccbt_seeds_client_downloads_magnet(Client::Libtorrent);
}

#[test]
fn ccbt_seeds_aria2_downloads_a_magnet() {
    ccbt_seeds_client_downloads_magnet(Client::Aria2);
}

#[test]
fn ccbt_seeds_transmission_downloads_a_magnet() {
    ccbt_seeds_client_downloads_magnet(Client::Transmission);
}

/// How a scripted peer lies about the metadata.
#[derive(Clone, Copy, Debug)]
enum Lie {
    /// Says the true size, sends bytes that differ.
    WrongBytes,
    /// Says the true size, then sends a piece with another total_size.
    TotalSize,
    /// Says the metadata is 100 MiB.
    Oversize,
}

/// A scripted peer on 127.0.0.1 that offers the metadata `info` and lies as `lie` says.
/// Counts the requests it got and the connections ccbt-uring closed on it.
struct Liar {
    addr: SocketAddr,
    asked: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
}

impl Liar {
    fn start(info_hash: [u8; 20], info: Vec<u8>, lie: Lie) -> Liar {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let asked = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (a, c) = (asked.clone(), closed.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (info, a, c) = (info.clone(), a.clone(), c.clone());
                std::thread::spawn(move || {
                    if liar_conn(conn, &info_hash, &info, lie, &a) {
                        c.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        Liar {
            addr,
            asked,
            closed,
        }
    }
}

/// One connection of a liar; true if the other side closed it.
fn liar_conn(
    mut s: TcpStream,
    info_hash: &[u8; 20],
    info: &[u8],
    lie: Lie,
    asked: &AtomicUsize,
) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut theirs = [0u8; 68];
    if s.read_exact(&mut theirs).is_err() || &theirs[28..48] != info_hash {
        return false;
    }
    let mut hs = common::wire_peer::handshake(info_hash, b'L');
    hs[25] |= 0x10; // BEP 10
    s.write_all(&hs).unwrap();
    let size = match lie {
        Lie::Oversize => 100 << 20,
        _ => info.len() as i64,
    };
    let m = Dict::new().with(b"ut_metadata", Value::Int(i64::from(THEIR_UT_METADATA)));
    let ext = Dict::new()
        .with(b"m", Value::Dict(m))
        .with(b"metadata_size", Value::Int(size));
    let mut payload = vec![0u8];
    payload.extend(bencode::encode(&Value::Dict(ext)));
    let _ = s.write_all(&message(EXTENDED, &payload));
    // The id to send ut_metadata messages to ccbt-uring under, from its handshake.
    let mut ours = None;
    loop {
        match read_message(&mut s) {
            Ok(Some((EXTENDED, body))) if body.first() == Some(&0) => {
                let hs = TheirHandshake::parse(&body[1..]).expect("ccbt-uring's handshake");
                ours = hs.extensions.id(Extension::UtMetadata);
            }
            Ok(Some((EXTENDED, body))) if body.first() == Some(&THEIR_UT_METADATA) => {
                let Ok(MetadataMessage::Request { piece }) = MetadataMessage::decode(&body[1..])
                else {
                    continue;
                };
                asked.fetch_add(1, Ordering::SeqCst);
                let start = piece as usize * 16384;
                let end = (start + 16384).min(info.len());
                let mut data = info[start..end].to_vec();
                let mut total = info.len() as u32;
                match lie {
                    Lie::WrongBytes => data[0] ^= 0xff,
                    Lie::TotalSize => {
                        // A piece that fits the changed total: only the change is wrong.
                        total += 1;
                        if end == info.len() {
                            data.push(0);
                        }
                    }
                    Lie::Oversize => {}
                }
                let mut body = vec![ours.expect("its handshake came first")];
                body.extend(
                    MetadataMessage::Data {
                        piece,
                        total_size: total,
                        data: &data,
                    }
                    .encode(),
                );
                let _ = s.write_all(&message(EXTENDED, &body));
            }
            Ok(_) => {}
            Err(e) => {
                return e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut;
            }
        }
    }
}

/// A TCP relay to `target` that holds every connection until `open()` says so: lets a test
/// put an honest peer behind the liars.
fn gated_relay(target: SocketAddr, open: impl Fn() -> bool + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(open);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(inbound) = conn else { return };
            let open = open.clone();
            std::thread::spawn(move || {
                let until = Instant::now() + Duration::from_secs(30);
                while !open() && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let Ok(outbound) = TcpStream::connect(target) else {
                    return;
                };
                let (mut a, mut b) = (inbound.try_clone().unwrap(), outbound.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a, &mut b);
                    let _ = b.shutdown(std::net::Shutdown::Both);
                });
                let (mut a, mut b) = (outbound, inbound);
                let _ = std::io::copy(&mut a, &mut b);
                let _ = b.shutdown(std::net::Shutdown::Both);
            });
        }
    });
    addr
}

fn raw_info_hash(torrent: &Path) -> ([u8; 20], Vec<u8>) {
    let m = Metainfo::parse(&std::fs::read(torrent).unwrap()).unwrap();
    (m.info_hash.0, m.info_bytes.to_vec())
}

/// Needs only mktorrent and opentracker (for the test torrent), not the other clients.
fn local_setup() -> Option<Setup> {
    Setup::new(&[])
}

#[test]
fn lying_metadata_peers_are_dropped_and_the_download_completes_from_an_honest_one() {
    let Some(s) = local_setup() else {
        return;
    };
    let (info_hash, info) = raw_info_hash(&s.torrent.path);
    let liars: Vec<Liar> = [Lie::WrongBytes, Lie::TotalSize, Lie::Oversize]
        .into_iter()
        .map(|lie| Liar::start(info_hash, info.clone(), lie))
        .collect();
    let seed_port = free_port();
    let seeder = swarm::ccbt_seed(&s.torrent.path, &s.torrent.data_dir, seed_port, 1);
    wait_listening(seed_port, &seeder);
    // The honest seeder is reached only once every liar has been dropped.
    let closed: Vec<Arc<AtomicUsize>> = liars.iter().map(|l| l.closed.clone()).collect();
    let honest = gated_relay(SocketAddr::from(([127, 0, 0, 1], seed_port)), move || {
        closed.iter().all(|c| c.load(Ordering::SeqCst) > 0)
    });
    let out = s.out("ccbt");
    let mut peers: Vec<SocketAddr> = liars.iter().map(|l| l.addr).collect();
    peers.push(honest);
    // Only the magnet's info hash: no tracker, so the peers are exactly these.
    let magnet = format!("magnet:?xt=urn:btih:{}", s.torrent.info_hash);
    let mut downloader = ccbt_download_magnet(&magnet, &out, &peers, &[]);
    downloader.wait_success(TRANSFER);
    s.assert_downloaded(&out);
    for (liar, lie) in liars.iter().zip(["wrong bytes", "total size", "oversize"]) {
        assert!(
            liar.closed.load(Ordering::SeqCst) > 0,
            "the {lie} liar was not dropped"
        );
    }
    let asked = liars[0].asked.load(Ordering::SeqCst) + liars[1].asked.load(Ordering::SeqCst);
    assert!(asked >= 2, "both size-telling liars were asked ({asked})");
    assert_eq!(
        liars[2].asked.load(Ordering::SeqCst),
        0,
        "oversize is never asked"
    );
    let log = downloader.log();
    for why in [
        "does not match the info hash",
        "then sent a piece of",
        "the limit is",
    ] {
        assert!(log.contains(why), "no `{why}` in the log:\n{log}");
    }
}

#[test]
fn oversize_metadata_alone_fails_with_its_own_error() {
    let Some(s) = local_setup() else {
        return;
    };
    let (info_hash, info) = raw_info_hash(&s.torrent.path);
    let liar = Liar::start(info_hash, info, Lie::Oversize);
    let magnet = format!("magnet:?xt=urn:btih:{}", s.torrent.info_hash);
    let out = s.out("ccbt");
    let mut run = ccbt_download_magnet(&magnet, &out, &[liar.addr], &["--metadata-max", "1024"]);
    let began = Instant::now();
    while run.is_running() && began.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = run.exit_status().expect("ended within 30 s");
    assert_eq!(status.code(), Some(3), "{}", run.log());
    let log = run.log();
    assert!(
        log.contains("104857600 bytes; the limit is 1048576"),
        "{log}"
    );
}

#[test]
fn a_magnet_with_no_reachable_peer_times_out_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let dead = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let magnet = format!("magnet:?xt=urn:btih:{}", "ab".repeat(20));
    let mut run = ccbt_download_magnet(
        &magnet,
        &dir.path().join("out"),
        &[dead],
        &["--metadata-timeout", "2"],
    );
    let began = Instant::now();
    while run.is_running() && began.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = run.exit_status().expect("ended within 20 s");
    assert_eq!(status.code(), Some(1), "{}", run.log());
    assert!(
        run.log().contains("no metadata within 2 s"),
        "{}",
        run.log()
    );
}

#[test]
fn info_fetch_shows_and_saves_the_torrent_fetched_from_a_ccbt_seed() {
    let Some(s) = local_setup() else {
        return;
    };
    let seed_port = free_port();
    let seeder = swarm::ccbt_seed(&s.torrent.path, &s.torrent.data_dir, seed_port, 1);
    wait_listening(seed_port, &seeder);
    let saved = s.dir.path().join("saved.torrent");
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&x.pe=127.0.0.1:{seed_port}",
        s.torrent.info_hash
    );
    let ran = common::run_for(
        common::ccbt()
            .args([
                "info",
                &magnet,
                "--fetch",
                "--json",
                "--listen",
                "127.0.0.1",
            ])
            .args(["--port", &free_port().to_string(), "--save-torrent"])
            .arg(&saved),
        Duration::from_secs(60),
    )
    .ok();
    let report = ran.json();
    assert_eq!(report["source"], "torrent");
    assert_eq!(report["info_hash"], s.torrent.info_hash);
    assert_eq!(report["name"], s.torrent.name);
    assert_eq!(
        report["files"].as_array().unwrap().len(),
        swarm::TEST_FILES.len()
    );
    let fetched = Metainfo::parse(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(fetched.info_hash.to_hex(), s.torrent.info_hash);
}
