//! Rate limits, the blocklist and the per-IP cap, over real sockets on loopback: a seeding
//! `Swarm` and a downloading one in the same process.
//!
//! Rates are measured from the seed's (or downloader's) published byte counts and printed;
//! the asserts are the brief's bounds (within 10 %, within 2 s), nothing tighter.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccbt_engine::blocklist::{Blocklist, IpRange};
use ccbt_engine::hash::Sha1;
use ccbt_engine::metainfo::{Metainfo, NewFile, NewTorrent};
use ccbt_engine::wire::{Handshake, PeerId, Reserved, HANDSHAKE_LEN};
use ccbt_engine::Bitfield;
use ccbt_shards::swarm::{
    RateLimits, Swarm, SwarmConfig, TorrentOp, TorrentSpec, TorrentStatus, Verify,
};
use ccbt_shards::ShardConfig;

const PIECE: u32 = 256 << 10;
const MIB: u64 = 1 << 20;

fn config() -> SwarmConfig {
    let mut shards = ShardConfig::with_count(1);
    // The machine is shared: let the kernel place the shard.
    shards.pin = false;
    SwarmConfig {
        shards,
        listen: IpAddr::from([127, 0, 0, 1]),
        port: 0,
        cache_bytes: 16 << 20,
        ..SwarmConfig::default()
    }
}

/// A single-file torrent of `len` deterministic bytes, written under `dir`.
fn make_torrent(dir: &Path, len: usize) -> Arc<Metainfo> {
    let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 4099) as u8).collect();
    std::fs::write(dir.join("payload"), &data).unwrap();
    let t = NewTorrent {
        name: b"payload".to_vec(),
        piece_length: PIECE,
        files: vec![NewFile {
            path: vec![],
            length: len as u64,
        }],
        piece_hashes: data.chunks(PIECE as usize).map(Sha1::digest).collect(),
        ..NewTorrent::default()
    };
    Arc::new(Metainfo::parse(&t.encode().unwrap()).unwrap())
}

fn spec(meta: &Arc<Metainfo>, dir: &Path, seed: bool, peers: Vec<SocketAddr>) -> TorrentSpec {
    let pieces = meta.info.layout.piece_count();
    TorrentSpec {
        metainfo: meta.clone(),
        save_dir: dir.to_path_buf(),
        verify: Verify::Trusted(if seed {
            Bitfield::full(pieces)
        } else {
            Bitfield::empty(pieces)
        }),
        sequential: false,
        priorities: None,
        keep_seeding: true,
        paused: false,
        peers,
        upload_bytes_per_s: 0,
        download_bytes_per_s: 0,
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Waits until `counter` has moved past `bytes`, or panics after `within`.
fn wait_for_bytes(counter: impl Fn() -> u64, bytes: u64, within: Duration) {
    let deadline = Instant::now() + within;
    while counter() < bytes {
        assert!(Instant::now() < deadline, "no transfer started");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bytes per second `counter` moves over `over`.
fn rate(counter: &impl Fn() -> u64, over: Duration) -> f64 {
    let (t0, b0) = (Instant::now(), counter());
    std::thread::sleep(over);
    let (t1, b1) = (Instant::now(), counter());
    (b1 - b0) as f64 / (t1 - t0).as_secs_f64()
}

fn uploaded(status: &TorrentStatus) -> u64 {
    status.uploaded.load(Ordering::Relaxed)
}

fn downloaded(status: &TorrentStatus) -> u64 {
    status.downloaded.load(Ordering::Relaxed)
}

fn assert_near(what: &str, got: f64, limit: u64) {
    let off = (got - limit as f64) / limit as f64;
    println!(
        "{what}: {:.3} MiB/s against {:.3} MiB/s ({:+.1} %)",
        got / MIB as f64,
        limit as f64 / MIB as f64,
        off * 100.0
    );
    assert!(off.abs() <= 0.10, "{what}: {got:.0} B/s, limit {limit} B/s");
}

/// A seed with a global upload limit holds it over 5 s against a real downloader.
#[test]
fn global_upload_limit_holds_over_five_seconds() {
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(seed_dir.path(), 32 << 20);
    let limit = 2 * MIB;
    let seed = Swarm::start(
        SwarmConfig {
            limits: RateLimits {
                upload_bytes_per_s: limit,
                download_bytes_per_s: 0,
            },
            ..config()
        },
        None,
    )
    .unwrap();
    let seeding = seed
        .add(spec(&meta, seed_dir.path(), true, vec![]))
        .wait()
        .unwrap();
    let leech = Swarm::start(config(), None).unwrap();
    let _leeching = leech
        .add(spec(
            &meta,
            leech_dir.path(),
            false,
            vec![local(seed.port())],
        ))
        .wait()
        .unwrap();
    let up = || uploaded(&seeding);
    wait_for_bytes(up, 1, Duration::from_secs(10));
    // The buckets start full (a quarter second); measure past that.
    std::thread::sleep(Duration::from_secs(1));
    assert_near(
        "global upload limit",
        rate(&up, Duration::from_secs(5)),
        limit,
    );
    leech.shutdown().unwrap();
    seed.shutdown().unwrap();
}

/// A torrent's own download limit holds on the downloading side (the seed is unlimited).
#[test]
fn torrent_download_limit_holds() {
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(seed_dir.path(), 32 << 20);
    let limit = 3 * MIB / 2;
    let seed = Swarm::start(config(), None).unwrap();
    let _seeding = seed
        .add(spec(&meta, seed_dir.path(), true, vec![]))
        .wait()
        .unwrap();
    let leech = Swarm::start(config(), None).unwrap();
    let leeching = leech
        .add(TorrentSpec {
            download_bytes_per_s: limit,
            ..spec(&meta, leech_dir.path(), false, vec![local(seed.port())])
        })
        .wait()
        .unwrap();
    let down = || downloaded(&leeching);
    wait_for_bytes(down, 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    assert_near(
        "torrent download limit",
        rate(&down, Duration::from_secs(5)),
        limit,
    );
    leech.shutdown().unwrap();
    seed.shutdown().unwrap();
}

/// Limits changed while a transfer runs (globally, then for the torrent) hold within 2 s.
#[test]
fn limits_changed_mid_transfer_take_effect_within_two_seconds() {
    let seed_dir = tempfile::tempdir().unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(seed_dir.path(), 40 << 20);
    let seed = Swarm::start(config(), None).unwrap();
    let seeding = seed
        .add(TorrentSpec {
            upload_bytes_per_s: 4 * MIB,
            ..spec(&meta, seed_dir.path(), true, vec![])
        })
        .wait()
        .unwrap();
    let leech = Swarm::start(config(), None).unwrap();
    let _leeching = leech
        .add(spec(
            &meta,
            leech_dir.path(),
            false,
            vec![local(seed.port())],
        ))
        .wait()
        .unwrap();
    let up = || uploaded(&seeding);
    wait_for_bytes(up, 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(1));
    let before = rate(&up, Duration::from_secs(1));
    println!("before: {:.3} MiB/s", before / MIB as f64);

    // The global limit drops under the torrent's.
    let global = MIB;
    seed.set_global_limits(RateLimits {
        upload_bytes_per_s: global,
        download_bytes_per_s: 0,
    })
    .wait()
    .unwrap();
    let changed = Instant::now();
    let settled = time_to_settle(&up, global);
    println!("global limit settled in {settled:?}");
    std::thread::sleep(Duration::from_secs(2).saturating_sub(changed.elapsed()));
    assert_near(
        "lowered global limit",
        rate(&up, Duration::from_secs(2)),
        global,
    );

    // Then the torrent's own limit drops under the global one.
    let own = MIB / 2;
    seed.command(
        meta.info_hash,
        TorrentOp::SetLimits {
            upload_bytes_per_s: own,
            download_bytes_per_s: 0,
        },
    )
    .wait()
    .unwrap();
    let changed = Instant::now();
    let settled = time_to_settle(&up, own);
    println!("torrent limit settled in {settled:?}");
    std::thread::sleep(Duration::from_secs(2).saturating_sub(changed.elapsed()));
    assert_near(
        "lowered torrent limit",
        rate(&up, Duration::from_secs(2)),
        own,
    );
    leech.shutdown().unwrap();
    seed.shutdown().unwrap();
}

/// How long until a 250 ms window first runs at no more than 110 % of `limit` (measured,
/// printed, bounded by 2 s).
fn time_to_settle(counter: &impl Fn() -> u64, limit: u64) -> Duration {
    let start = Instant::now();
    loop {
        let r = rate(counter, Duration::from_millis(250));
        if r <= limit as f64 * 1.1 {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "still at {r:.0} B/s after 2 s"
        );
    }
}

fn handshake_for(meta: &Metainfo) -> [u8; HANDSHAKE_LEN] {
    Handshake {
        reserved: Reserved::ours(),
        info_hash: meta.info_hash,
        peer_id: PeerId([7; 20]),
    }
    .encode()
}

/// Sends a handshake and reads: the peer's handshake, or None if the connection was closed.
fn handshake_answered(stream: &mut TcpStream, hs: &[u8]) -> Option<Vec<u8>> {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    if stream.write_all(hs).is_err() {
        return None;
    }
    let mut got = vec![0u8; HANDSHAKE_LEN];
    let mut at = 0;
    while at < HANDSHAKE_LEN {
        match stream.read(&mut got[at..]) {
            Ok(0) => return None,
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
            // A signal for another thread of this process (the swarm's) can interrupt it.
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("no answer and no close: {e}"),
        }
    }
    Some(got)
}

fn range_of(ip: Ipv4Addr) -> IpRange {
    IpRange::V4 {
        first: u32::from(ip),
        last: u32::from(ip),
    }
}

/// A blocklisted address is closed without a handshake answer, and is not dialled.
#[test]
fn blocklisted_address_is_refused_both_ways() {
    let seed_dir = tempfile::tempdir().unwrap();
    let meta = make_torrent(seed_dir.path(), 4 << 20);
    let seed = Swarm::start(config(), None).unwrap();
    let seeding = seed
        .add(spec(&meta, seed_dir.path(), true, vec![]))
        .wait()
        .unwrap();
    let hs = handshake_for(&meta);
    let mut before = TcpStream::connect(local(seed.port())).unwrap();
    let answer = handshake_answered(&mut before, &hs).expect("answered before the blocklist");
    assert_eq!(Handshake::parse(&answer).unwrap().info_hash, meta.info_hash);
    drop(before);

    let list = Arc::new(Blocklist::from_iter_ranges([range_of(Ipv4Addr::LOCALHOST)]));
    seed.set_blocklist(list.clone()).wait().unwrap();
    let mut blocked = TcpStream::connect(local(seed.port())).unwrap();
    let started = Instant::now();
    assert!(handshake_answered(&mut blocked, &hs).is_none());
    println!(
        "blocklisted connection closed after {:?}",
        started.elapsed()
    );

    // Dialling: a downloader whose blocklist names the seed never connects to it.
    seed.set_blocklist(Arc::new(Blocklist::new()))
        .wait()
        .unwrap();
    let leech_dir = tempfile::tempdir().unwrap();
    let leech = Swarm::start(config(), None).unwrap();
    leech.set_blocklist(list).wait().unwrap();
    let leeching = leech
        .add(spec(
            &meta,
            leech_dir.path(),
            false,
            vec![local(seed.port())],
        ))
        .wait()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(leeching.peers.load(Ordering::Relaxed), 0);
    assert_eq!(seeding.peers.load(Ordering::Relaxed), 0);
    assert_eq!(downloaded(&leeching), 0);
    leech.shutdown().unwrap();
    seed.shutdown().unwrap();
}

/// A TCP connection to `to` from the loopback address `from` (bound before connecting;
/// std cannot, and nix's socket addresses need a feature this crate does not enable).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    use nix::libc;
    use std::os::fd::{FromRawFd, OwnedFd};
    let SocketAddr::V4(to) = to else {
        panic!("IPv4 only")
    };
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor this function owns, with valid addresses.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let src = sockaddr(SocketAddrV4::new(from, 0));
        let rc = libc::bind(
            fd.as_raw_fd(),
            (&src as *const libc::sockaddr_in).cast(),
            len,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        let dst = sockaddr(to);
        let rc = libc::connect(
            fd.as_raw_fd(),
            (&dst as *const libc::sockaddr_in).cast(),
            len,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from(fd)
    }
}

/// True if the server closed `stream` (EOF or reset) within `within`; false if it is still
/// open, waiting for our handshake.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => panic!("the server spoke first"),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => true,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
        Err(e) => panic!("{e}"),
    }
}

/// With loopback not exempt, the third connection from one address is refused while the
/// first two handshake; other addresses are not affected, and a freed place is reused.
#[test]
fn per_ip_cap_refuses_the_connection_past_it() {
    let seed = Swarm::start(
        SwarmConfig {
            max_connections_per_ip: 2,
            per_ip_exempt_loopback: false,
            ..config()
        },
        None,
    )
    .unwrap();
    let to = local(seed.port());
    let host = Ipv4Addr::new(127, 0, 0, 2);
    let mut first = connect_from(host, to);
    let mut second = connect_from(host, to);
    std::thread::sleep(Duration::from_millis(200));
    let mut third = connect_from(host, to);
    assert!(
        closed_within(&mut third, Duration::from_secs(2)),
        "third refused"
    );
    assert!(!closed_within(&mut first, Duration::from_millis(300)));
    assert!(!closed_within(&mut second, Duration::from_millis(300)));
    let mut other = connect_from(Ipv4Addr::new(127, 0, 0, 3), to);
    assert!(!closed_within(&mut other, Duration::from_millis(300)));
    // Closing one gives its place back (once the shard sees the close).
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    let mut again = connect_from(host, to);
    assert!(!closed_within(&mut again, Duration::from_millis(300)));
    let mut over = connect_from(host, to);
    assert!(closed_within(&mut over, Duration::from_secs(2)));
    seed.shutdown().unwrap();
}
