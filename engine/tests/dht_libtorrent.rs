//! Interop: our DHT node against libtorrent's (Debian's python3-libtorrent), on 127.0.0.1.
//! libtorrent bootstraps from our node only, then announces an info hash through the DHT;
//! our node must (a) get answers from libtorrent to its own queries, (b) store
//! libtorrent's announce, which needs our token to round-trip through libtorrent, and (c)
//! announce to libtorrent with libtorrent's token and get that peer back from it.
//!
//! The test harness owns the socket and the clock (the engine never does). It skips when
//! python3-libtorrent is missing, and fails instead when `CCBT_REQUIRE_INTEROP` is set.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ccbt_engine::dht::{Config, Event, LookupKind, Node, NodeId};

const REQUIRE_INTEROP: &str = "CCBT_REQUIRE_INTEROP";
const PYTHON: &str = "/usr/bin/python3";

fn libtorrent_available() -> bool {
    let ok = Command::new(PYTHON)
        .args(["-c", "import libtorrent"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    let why = "python3-libtorrent not installed: `apt-get install python3-libtorrent` \
               (see tools/install-deps.sh)";
    if std::env::var_os(REQUIRE_INTEROP).is_some() {
        panic!("{why}; {REQUIRE_INTEROP} is set, so this is a failure");
    }
    eprintln!("skipping: {why}; set {REQUIRE_INTEROP}=1 to fail instead");
    false
}

/// libtorrent with the DHT on, bootstrapping from `our_port` only, adding a magnet for
/// `hash_hex` after 2 s (so it announces that hash on the DHT), for at most 40 s. Prints its
/// UDP port first.
const SCRIPT: &str = r#"
import sys, time
import libtorrent as lt
our_port, hash_hex, save_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = lt.session({
    'listen_interfaces': '127.0.0.1:0',
    'enable_dht': True, 'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'dht_bootstrap_nodes': '127.0.0.1:%d' % our_port,
    'dht_restrict_routing_ips': False, 'dht_restrict_search_ips': False,
    'alert_mask': lt.alert.category_t.dht_notification | lt.alert.category_t.error_notification,
})
print('port', s.listen_port(), flush=True)
start = time.time()
announced = False
while time.time() < start + 40:
    if not announced and time.time() > start + 2:
        # A magnet for the hash: libtorrent looks it up and announces it on the DHT.
        atp = lt.parse_magnet_uri('magnet:?xt=urn:btih:' + hash_hex)
        atp.save_path = save_path
        s.add_torrent(atp)
        announced = True
        print('announced', flush=True)
    s.wait_for_alert(200)
    for a in s.pop_alerts():
        print(type(a).__name__, a.message(), flush=True)
"#;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // Only the child we started, by its handle (its PID).
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn libtorrent_answers_us_and_announces_to_us() {
    if !libtorrent_available() {
        return;
    }
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let our_port = socket.local_addr().unwrap().port();
    let hash = NodeId([0x42; 20]);
    let hash_hex: String = hash.0.iter().map(|b| format!("{b:02x}")).collect();

    // libtorrent's save path for the magnet (nothing is downloaded: no peer has it).
    let save = std::env::temp_dir().join(format!("ccbt-dht-libtorrent-{}", std::process::id()));
    std::fs::create_dir_all(&save).unwrap();
    let mut child = Command::new(PYTHON)
        .args([
            "-c",
            SCRIPT,
            &our_port.to_string(),
            &hash_hex,
            save.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Killed(child);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("libtorrent printed its port");
    let lt_port: u16 = first
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    let lt_addr = SocketAddrV4::new([127, 0, 0, 1].into(), lt_port);

    let start = Instant::now();
    let now = || start.elapsed();
    let mut node = Node::new(NodeId([0x17; 20]), Config::default(), now());
    node.bootstrap(now(), &[SocketAddr::V4(lt_addr)]).unwrap();
    let mut log = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Duration::from_secs(40);
    let (mut answered, mut stored) = (false, false);
    while now() < deadline && !(answered && stored) {
        while let Some(t) = node.poll_transmit() {
            socket.send_to(&t.bytes, t.dest).unwrap();
        }
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            node.handle_packet(now(), from, &buf[..n]);
        }
        if node.poll_timeout().is_some_and(|t| t <= now()) {
            node.handle_timeout(now());
        }
        while node.poll_event().is_some() {}
        while let Ok(line) = rx.try_recv() {
            log.push(line);
        }
        answered = node
            .table()
            .nodes()
            .any(|e| e.addr == lt_addr && e.last_response.is_some());
        stored = node.storage().peer_count(&hash) == 1;
    }
    // Our announce to libtorrent, then our get_peers: libtorrent must have taken our token
    // and must give the peer back.
    let ours = NodeId([0x43; 20]);
    let mut found = Vec::new();
    if answered && stored {
        node.announce(now(), ours.into(), Some(7777)).unwrap();
        let mut asked = false;
        let mut announce_sent_at = None;
        while now() < deadline && found.is_empty() {
            while let Some(t) = node.poll_transmit() {
                socket.send_to(&t.bytes, t.dest).unwrap();
            }
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                node.handle_packet(now(), from, &buf[..n]);
            }
            if node.poll_timeout().is_some_and(|t| t <= now()) {
                node.handle_timeout(now());
            }
            while let Some(e) = node.poll_event() {
                match e {
                    Event::LookupDone {
                        kind: LookupKind::Announce { .. },
                        stats,
                        ..
                    } => {
                        assert!(stats.announced >= 1, "{stats:?}");
                        announce_sent_at = Some(now());
                    }
                    Event::Peers { peers, .. } => found.extend(peers),
                    _ => {}
                }
            }
            // Give libtorrent a moment to answer the announce before asking.
            if !asked && announce_sent_at.is_some_and(|t| now() > t + Duration::from_millis(500)) {
                node.get_peers(now(), ours.into()).unwrap();
                asked = true;
            }
        }
    }
    drop(child);
    let _ = std::fs::remove_dir_all(&save);
    let stats = *node.stats();
    assert!(
        answered,
        "libtorrent never answered our queries; stats {stats:?}; its log: {log:?}"
    );
    assert!(
        stored,
        "libtorrent's announce never reached our storage; stats {stats:?}; its log: {log:?}"
    );
    assert_eq!(
        found,
        vec![SocketAddrV4::new([127, 0, 0, 1].into(), 7777)],
        "libtorrent did not give back the peer we announced; stats {stats:?}; its log: {log:?}"
    );
    assert_eq!(stats.malformed, 0, "{stats:?}");
    assert_eq!(stats.bad_tokens, 0, "{stats:?}");
}
