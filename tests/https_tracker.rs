//! An https tracker: opentracker behind a TLS proxy (`tests/scripts/tls_proxy.py`) with a
//! certificate only the test trusts. A download announcing there is refused while the
//! certificate is not trusted (OpenSSL's reason in its log, no request relayed), and finds
//! the seeder through it once `SSL_CERT_FILE` names the certificate; bytes compared.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::https::tls_proxy;
use common::run;
use common::swarm::{assert_same_tree, ccbt_seed, free_port, interop_ready, Announce, Tracker};

#[test]
fn a_download_announces_to_an_https_tracker_once_its_certificate_is_trusted() {
    if !interop_ready(&[]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tracker = Tracker::start();
    let torrent = tracker.torrent(dir.path(), Announce::Http);
    let _seeder = ccbt_seed(&torrent.path, &torrent.data_dir, free_port(), 1);
    tracker.wait_for_seeders(&torrent.info_hash, 1, Duration::from_secs(30));
    let proxy = tls_proxy(dir.path(), tracker.port());
    // The same files and pieces, announcing to the proxy: the same info hash.
    let https = dir.path().join("https.torrent");
    run(Command::new("mktorrent")
        .args(["-l", &common::swarm::PIECE_LEN.trailing_zeros().to_string()])
        .args([
            "-a",
            &format!("https://127.0.0.1:{}/announce", proxy.port),
            "-o",
        ])
        .arg(&https)
        .arg(torrent.content()))
    .ok();
    let download = |out: &std::path::Path, trust: &std::path::Path| {
        common::https::download_trusting(&https, out, trust)
    };

    // A CA bundle of nothing: the system's CAs do not vouch for 127.0.0.1.
    let mut d = download(
        &dir.path().join("untrusted"),
        std::path::Path::new("/dev/null"),
    );
    let until = Instant::now() + Duration::from_secs(20);
    while !d.log().contains("certificate verify failed") {
        assert!(Instant::now() < until, "{}", d.log());
        assert!(d.is_running(), "{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    d.stop(Duration::from_secs(5));
    assert!(
        !proxy.running.log().contains("relayed"),
        "{}",
        proxy.running.log()
    );

    let out = dir.path().join("out");
    let mut d = download(&out, &proxy.cert);
    d.wait_success(Duration::from_secs(90));
    assert_same_tree(&torrent.content(), &torrent.content_in(&out));
    assert!(
        proxy.running.log().contains("relayed"),
        "{}",
        proxy.running.log()
    );
}
