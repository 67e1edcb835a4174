//! End to end through the binary: synthetic torrents, seed ↔ leech, a corrupting seeder,
//! and the time and connection bounds.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use ccbt_engine::hash::Sha1;
use ccbt_engine::metainfo::Metainfo;
use ccbt_engine::wire::{decode_message, encode_piece_header, Handshake, Message, Reserved};
use ccbt_engine::Bitfield;
use ccbt_loadgen::content::Content;
use serde_json::Value;

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ccbt-loadgen"))
}

fn run(args: &[&str]) -> Output {
    let out = loadgen().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn spawn(args: &[&str]) -> Child {
    loadgen()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The JSON summary a `--json` run printed last.
fn summary(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn make_torrent(dir: &Path, size: u64, piece: u32, seed: u64) -> String {
    let path = dir.join(format!("t{seed}.torrent"));
    let p = path.to_str().unwrap();
    run(&[
        "make-torrent",
        "--size",
        &size.to_string(),
        "--piece-size",
        &piece.to_string(),
    ]
    .into_iter()
    .chain(["--seed", &seed.to_string(), "-o", p])
    .collect::<Vec<_>>());
    p.to_owned()
}

#[test]
fn synthetic_content_matches_its_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = dir.path().join("a.torrent");
    let files = dir.path().join("files");
    let size = 3 * 65536 + 12345;
    run(&[
        "make-torrent",
        "--size",
        &size.to_string(),
        "--piece-size",
        "65536",
        "--seed",
        "11",
        "-o",
        torrent.to_str().unwrap(),
        "--write-files",
        files.to_str().unwrap(),
        "--name",
        "a.bin",
        "--tracker",
        "http://127.0.0.1:6969/announce",
    ]);
    let meta = Metainfo::parse(&std::fs::read(&torrent).unwrap()).unwrap();
    assert_eq!(meta.info.layout.total_length(), size);
    assert_eq!(
        meta.announce.as_deref(),
        Some("http://127.0.0.1:6969/announce")
    );
    let written = std::fs::read(files.join("a.bin")).unwrap();
    assert_eq!(written.len() as u64, size);
    let on_disk: Vec<_> = written.chunks(65536).map(Sha1::digest).collect();
    assert_eq!(&on_disk[..], &meta.info.pieces[..]);
    let content = Content::new(11);
    for piece in meta.info.layout.pieces() {
        let data = content.piece(&meta.info.layout, piece);
        assert_eq!(Sha1::digest(&data), meta.info.piece_hash(piece));
    }
}

#[test]
fn seed_and_leech_agree() {
    let dir = tempfile::tempdir().unwrap();
    let t1 = make_torrent(dir.path(), 8 << 20, 256 << 10, 1);
    let t2 = make_torrent(dir.path(), 3 << 20, 64 << 10, 2);
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let seed = spawn(&[
        "seed",
        "--torrent",
        &t1,
        "--torrent",
        &t2,
        "--listen",
        &listen,
        "--peers",
        "2",
        "--duration",
        "3",
        "--json",
    ]);
    let second = format!("127.0.0.1:{}", port + 1);
    let leech = run(&[
        "leech",
        "--torrent",
        &t1,
        "--torrent",
        &t2,
        "--target",
        &listen,
        "--target",
        &second,
        "--peers",
        "4",
        "--duration",
        "2",
        "--json",
    ]);
    let leech = summary(&leech);
    let seed = summary(&seed.wait_with_output().unwrap());
    assert_eq!(leech["mode"], "leech");
    assert_eq!(leech["errors"], 0, "{leech}");
    assert!(leech["bytes"].as_u64().unwrap() > 0, "{leech}");
    assert!(leech["latency_us"]["p50"].as_u64().unwrap() > 0, "{leech}");
    assert!(leech["latency_us"]["max"].as_u64() >= leech["latency_us"]["p999"].as_u64());
    assert_eq!(seed["errors"], 0, "{seed}");
    assert_eq!(leech["stuck_shards"], 0, "{leech}");
    assert!(
        seed["bytes"].as_u64() >= leech["bytes"].as_u64(),
        "{seed} {leech}"
    );
}

/// A one-connection seeder that serves `content` but flips a byte of piece 1's first block.
fn corrupting_seeder(listener: TcpListener, meta: Metainfo, content: Content) {
    let (mut stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0; 68];
    stream.read_exact(&mut buf).unwrap();
    let theirs = Handshake::parse(&buf).unwrap();
    let ours = Handshake {
        reserved: Reserved::default(),
        info_hash: meta.info_hash,
        ..theirs
    };
    let mut out = ours.encode().to_vec();
    let count = meta.info.layout.piece_count();
    Message::Bitfield(Bitfield::full(count).as_bytes()).encode(&mut out);
    Message::Unchoke.encode(&mut out);
    stream.write_all(&out).unwrap();
    buf.clear();
    let mut chunk = [0; 4096];
    loop {
        while let Ok(Some((message, used))) = decode_message(&buf, 1 << 20) {
            if let Message::Request(b) = message {
                let at = meta
                    .info
                    .layout
                    .piece_offset(meta.info.layout.piece(b.piece).unwrap());
                let mut data = vec![0; b.len as usize];
                content.fill(at + u64::from(b.offset), &mut data);
                if b.piece == 1 && b.offset == 0 {
                    data[100] ^= 1;
                }
                let mut reply = encode_piece_header(b.piece, b.offset, b.len).to_vec();
                reply.extend(data);
                if stream.write_all(&reply).is_err() {
                    return;
                }
            }
            buf.drain(..used);
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[test]
fn a_corrupt_block_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path(), 4 * 32768, 32768, 5);
    let meta = Metainfo::parse(&std::fs::read(&torrent).unwrap()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let fake = std::thread::spawn(move || corrupting_seeder(listener, meta, Content::new(5)));
    let out = run(&[
        "leech",
        "--torrent",
        &torrent,
        "--target",
        &target,
        "--peers",
        "1",
        "--duration",
        "1",
        "--json",
    ]);
    fake.join().unwrap();
    let report = summary(&out);
    assert!(report["errors"].as_u64().unwrap() >= 1, "{report}");
    let wanted = format!("piece 1 from {target} failed its hash");
    let messages = report["error_messages"].as_array().unwrap();
    assert!(
        messages.iter().any(|m| m.as_str() == Some(&wanted)),
        "{report}"
    );
    // The other pieces were fine, so far more bytes arrived than the bad piece holds.
    assert!(report["bytes"].as_u64().unwrap() > 4 * 32768, "{report}");
}

#[test]
fn time_and_connection_bounds_hold() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path(), 4 << 20, 1 << 20, 9);
    let listen = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let seed = spawn(&[
        "seed",
        "--torrent",
        &torrent,
        "--listen",
        &listen,
        "--duration",
        "1",
        "--json",
    ]);
    let leech = run(&[
        "leech",
        "--torrent",
        &torrent,
        "--target",
        &listen,
        "--peers",
        "3",
        "--duration",
        "1",
        "--json",
    ]);
    let seed = summary(&seed.wait_with_output().unwrap());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    let leech = summary(&leech);
    assert!(leech["connections"].as_u64().unwrap() <= 3, "{leech}");
    assert!(seed["connections"].as_u64().unwrap() <= 3, "{seed}");
    assert!(leech["seconds"].as_f64().unwrap() < 2.0, "{leech}");
}

#[test]
fn refuses_remote_addresses_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path(), 65536, 16384, 3);
    let out = loadgen()
        .args([
            "seed",
            "--torrent",
            &torrent,
            "--listen",
            "192.0.2.1:6881",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--allow-remote"));
}

#[test]
fn a_dialling_seeder_handshakes_first_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path(), 4 * 32768, 32768, 6);
    let meta = Metainfo::parse(&std::fs::read(&torrent).unwrap()).unwrap();
    // A leecher that only listens, as Transmission does towards loopback peers.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let leecher = listener.local_addr().unwrap().to_string();
    let port = free_port().to_string();
    let seeder = spawn(&[
        "seed",
        "--torrent",
        &torrent,
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--dial",
        &leecher,
        "--duration",
        "5",
    ]);
    let (mut stream, _) = listener.accept().unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = vec![0; 68];
    stream.read_exact(&mut buf).unwrap();
    let theirs = Handshake::parse(&buf).unwrap();
    assert_eq!(theirs.info_hash, meta.info_hash);
    let ours = Handshake {
        reserved: Reserved::default(),
        ..theirs
    };
    let mut out = ours.encode().to_vec();
    Message::Interested.encode(&mut out);
    Message::Request(ccbt_engine::BlockRef {
        piece: 2,
        offset: 0,
        len: 16384,
    })
    .encode(&mut out);
    stream.write_all(&out).unwrap();
    // Bitfield, unchoke, then the block; the request may be served after the unchoke.
    let mut inbox = Vec::new();
    let mut chunk = [0; 4096];
    let block = loop {
        let mut found = None;
        while let Ok(Some((message, used))) = decode_message(&inbox, 1 << 20) {
            if let Message::Piece {
                piece: 2,
                offset: 0,
                data,
            } = message
            {
                found = Some(data.to_vec());
            }
            inbox.drain(..used);
            if found.is_some() {
                break;
            }
        }
        if let Some(data) = found {
            break data;
        }
        let n = stream
            .read(&mut chunk)
            .expect("the seeder serves the block");
        assert!(n > 0, "the seeder hung up");
        inbox.extend_from_slice(&chunk[..n]);
    };
    let mut want = vec![0; 16384];
    Content::new(6).fill(2 * 32768, &mut want);
    assert_eq!(block, want);
    drop(stream);
    let out = seeder.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A shallow pipeline at seedbox scale: 500 leechers keeping 4 requests each in flight
/// all connect, check every piece, and time every block they receive once (so the
/// latency figure is per block served, a service time at this depth, not a queue's).
#[test]
fn five_hundred_leechers_with_a_pipeline_of_four() {
    let dir = tempfile::tempdir().unwrap();
    let torrent = make_torrent(dir.path(), 32 << 20, 1 << 20, 11);
    let listen = format!("127.0.0.1:{}", free_port());
    let seed = spawn(&[
        "seed",
        "--torrent",
        &torrent,
        "--listen",
        &listen,
        "--duration",
        "4",
        "--json",
    ]);
    let leech = run(&[
        "leech",
        "--torrent",
        &torrent,
        "--target",
        &listen,
        "--peers",
        "500",
        "--pipeline",
        "4",
        "--duration",
        "3",
        "--json",
    ]);
    let leech = summary(&leech);
    let seed = summary(&seed.wait_with_output().unwrap());
    assert_eq!(leech["errors"], 0, "{leech}");
    assert_eq!(seed["errors"], 0, "{seed}");
    assert_eq!(leech["connections"], 500, "{leech}");
    assert_eq!(leech["disconnects"], 0, "{leech}");
    let bytes = leech["bytes"].as_u64().unwrap();
    let samples = leech["latency_us"]["samples"].as_u64().unwrap();
    assert!(bytes > 0, "{leech}");
    // 16 KiB blocks (the pieces are whole blocks): one sample per block received.
    assert_eq!(samples, bytes / 16_384, "{leech}");
    let p50 = leech["latency_us"]["p50"].as_u64().unwrap();
    let p99 = leech["latency_us"]["p99"].as_u64().unwrap();
    assert!(p50 > 0 && p50 <= p99, "{leech}");
}
