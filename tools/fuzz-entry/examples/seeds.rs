//! Writes the seed corpora under `fuzz/corpus/<target>/`: small valid inputs made with the
//! engine's own encoders (a real small `.torrent`, every peer-wire message, tracker
//! replies, HTTP responses), so the fuzzer starts from inputs that reach deep.
//!
//!   cargo run -p ccbt-fuzz-entry --example seeds
//!
//! Existing files of the same name are overwritten; files found by fuzzing (crashes kept as
//! regressions) are left alone.

use std::path::{Path, PathBuf};

use ccbt_engine::bencode::{encode, Dict, Value};
use ccbt_engine::hash::Sha1;
use ccbt_engine::metadata::MetadataMessage;
use ccbt_engine::metainfo::{NewFile, NewTorrent};
use ccbt_engine::wire::{Handshake, Message, PeerId, Reserved};
use ccbt_engine::BlockRef;

fn write(root: &Path, target: &str, name: &str, bytes: &[u8]) {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("corpus directory");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

/// Bytes from a fixed xorshift stream, for the structured (arbitrary) targets.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Files whose paths collide on disk (by case, by Unicode form, a file where another needs
/// a directory): the sanitizer must separate them.
fn colliding_torrent() -> Vec<u8> {
    let file = |path: &[&[u8]], length| NewFile {
        path: path.iter().map(|c| c.to_vec()).collect(),
        length,
    };
    let files = vec![
        file(&[b"A.bin"], 10),
        file(&[b"a.bin"], 10),
        file(&[b"sub"], 10),
        file(&[b"sub", b"x"], 10),
        file(&["caf\u{e9}".as_bytes()], 10),
        file(&["cafe\u{301}".as_bytes()], 10),
        file(&[b"a (1).bin"], 10),
    ];
    NewTorrent {
        name: b"collide".to_vec(),
        piece_length: 16384,
        files,
        piece_hashes: vec![Sha1::digest(b"p")],
        ..NewTorrent::default()
    }
    .encode()
    .expect("a valid torrent")
}

fn torrent(multi: bool) -> Vec<u8> {
    let files = if multi {
        vec![
            NewFile {
                path: vec![b"a.bin".to_vec()],
                length: 20_000,
            },
            NewFile {
                path: vec![b"sub".to_vec(), b"b.txt".to_vec()],
                length: 5,
            },
        ]
    } else {
        vec![NewFile {
            path: vec![],
            length: 40_000,
        }]
    };
    let total: u64 = files.iter().map(|f| f.length).sum();
    let pieces = total.div_ceil(16384);
    NewTorrent {
        name: b"seed".to_vec(),
        piece_length: 16384,
        files,
        piece_hashes: (0..pieces).map(|i| Sha1::digest(&[i as u8])).collect(),
        private: multi,
        trackers: vec!["http://127.0.0.1:6969/announce".into()],
        web_seeds: if multi {
            vec!["http://127.0.0.1:8080/".into()]
        } else {
            vec![]
        },
        comment: Some("fuzz seed".into()),
        created_by: Some("ccbt-uring".into()),
        creation_date: Some(1_700_000_000),
    }
    .encode()
    .expect("a valid torrent")
}

fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let block = BlockRef {
        piece: 1,
        offset: 16384,
        len: 16384,
    };
    let data = vec![0xab; 64];
    let payload = ccbt_engine::session::extension_handshake(250, Some(12_345), true);
    let all = [
        ("keepalive", Message::KeepAlive),
        ("choke", Message::Choke),
        ("unchoke", Message::Unchoke),
        ("interested", Message::Interested),
        ("not_interested", Message::NotInterested),
        ("have", Message::Have(3)),
        ("bitfield", Message::Bitfield(&[0xff, 0x80])),
        ("request", Message::Request(block)),
        (
            "piece",
            Message::Piece {
                piece: 1,
                offset: 0,
                data: &data,
            },
        ),
        ("cancel", Message::Cancel(block)),
        ("port", Message::Port(6881)),
        ("suggest", Message::SuggestPiece(2)),
        ("have_all", Message::HaveAll),
        ("have_none", Message::HaveNone),
        ("reject", Message::RejectRequest(block)),
        ("allowed_fast", Message::AllowedFast(4)),
        (
            "extended",
            Message::Extended {
                id: 0,
                payload: &payload,
            },
        ),
        (
            "unknown",
            Message::Unknown {
                id: 99,
                payload: b"xyz",
            },
        ),
    ];
    let mut out = Vec::new();
    let mut stream = vec![9u8]; // the wire target's first byte sets the piece count
    for (name, msg) in all {
        let mut bytes = vec![9u8];
        msg.encode(&mut bytes);
        msg.encode(&mut stream);
        out.push((name, bytes));
    }
    out.push(("all_in_one_stream", stream));
    out
}

fn main() {
    let root: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");

    // bencode
    write(&root, "bencode", "torrent", &torrent(true));
    write(
        &root,
        "bencode",
        "nested",
        b"d1:ald1:bi-3eee1:c0:1:dle1:edee",
    );
    write(&root, "bencode", "int", b"i9223372036854775807e");

    // metainfo
    write(&root, "metainfo", "single_file.torrent", &torrent(false));
    write(&root, "metainfo", "multi_file.torrent", &torrent(true));
    write(
        &root,
        "metainfo",
        "colliding_paths.torrent",
        &colliding_torrent(),
    );

    // magnet
    let hash = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    write(
        &root,
        "magnet",
        "full",
        format!(
            "magnet:?xt=urn:btih:{hash}&dn=seed&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce\
             &ws=http%3A%2F%2F127.0.0.1%2Ff&x.pe=127.0.0.1:6881&x.pe=[::1]:6881&so=0,2-4&xl=40000"
        )
        .as_bytes(),
    );
    write(
        &root,
        "magnet",
        "base32",
        b"magnet:?xt=urn:btih:YEX6DQDLXISKTHOJ6UM3GNNKPQJWPKEK",
    );

    // handshake
    let hs = Handshake {
        reserved: Reserved::ours(),
        info_hash: Sha1::digest(b"info"),
        peer_id: PeerId::generate([7; 12]),
    };
    write(&root, "handshake", "ours", &hs.encode());
    let mut with_more = hs.encode().to_vec();
    with_more.extend_from_slice(&[0, 0, 0, 1, 2]);
    write(&root, "handshake", "then_interested", &with_more);

    // wire_message
    for (name, bytes) in messages() {
        write(&root, "wire_message", name, &bytes);
    }

    // extension_handshake
    write(
        &root,
        "extension_handshake",
        "ours",
        &ccbt_engine::session::extension_handshake(250, Some(31_000), true),
    );
    let m = Dict::new().with(b"ut_metadata", Value::Int(3));
    let theirs = Dict::new()
        .with(b"m", Value::Dict(m))
        .with(b"v", Value::Bytes(b"libtorrent/2.0"))
        .with(b"yourip", Value::Bytes(&[127, 0, 0, 1]))
        .with(b"p", Value::Int(6881))
        .with(b"reqq", Value::Int(500));
    write(
        &root,
        "extension_handshake",
        "libtorrent_like",
        &encode(&Value::Dict(theirs)),
    );

    // ut_metadata
    let piece = vec![b'x'; 100];
    for (name, msg) in [
        ("request", MetadataMessage::Request { piece: 0 }),
        ("reject", MetadataMessage::Reject { piece: 1 }),
        (
            "data",
            MetadataMessage::Data {
                piece: 0,
                total_size: 100,
                data: &piece,
            },
        ),
    ] {
        write(&root, "ut_metadata", name, &msg.encode());
    }

    // metadata_fetch, peer_session: structured (arbitrary) targets; any bytes make events.
    for (i, len) in [64usize, 512, 4096].into_iter().enumerate() {
        write(
            &root,
            "metadata_fetch",
            &format!("noise_{len}"),
            &noise(i as u64 + 11, len),
        );
        write(
            &root,
            "peer_session",
            &format!("noise_{len}"),
            &noise(i as u64 + 101, len),
        );
    }

    // http_tracker: a bencoded body, and whole HTTP responses (first byte: cut size).
    let peers = [127u8, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x1a, 0xe2];
    let announce = Dict::new()
        .with(b"interval", Value::Int(1800))
        .with(b"min interval", Value::Int(60))
        .with(b"complete", Value::Int(3))
        .with(b"incomplete", Value::Int(5))
        .with(b"tracker id", Value::Bytes(b"abc"))
        .with(b"peers", Value::Bytes(&peers));
    let body = encode(&Value::Dict(announce));
    write(&root, "http_tracker", "announce_body", &body);
    let mut response = vec![7u8];
    response.extend_from_slice(
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
    );
    response.extend_from_slice(&body);
    write(&root, "http_tracker", "announce_response", &response);
    write(
        &root,
        "http_tracker",
        "failure_400",
        b"\x03HTTP/1.0 400 Bad\r\n\r\nd14:failure reason4:nopee",
    );

    // udp_tracker
    let mut connect = vec![0, 0, 0, 0, 1, 2, 3, 4];
    connect.extend_from_slice(&0x1122_3344_5566_7788u64.to_be_bytes());
    write(&root, "udp_tracker", "connect", &connect);
    let mut ann = vec![0, 0, 0, 1, 1, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 2, 0, 0, 0, 3];
    ann.extend_from_slice(&peers);
    write(&root, "udp_tracker", "announce", &ann);
    let mut scrape = vec![0, 0, 0, 2, 1, 2, 3, 4];
    scrape.extend_from_slice(&[0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 1]);
    write(&root, "udp_tracker", "scrape", &scrape);
    write(
        &root,
        "udp_tracker",
        "error",
        b"\0\0\0\x03\x01\x02\x03\x04torrent unknown",
    );

    // http_response (first byte: cut size)
    write(
        &root,
        "http_response",
        "length",
        b"\x05HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 206 Partial\r\nContent-Length: 2\r\n\r\nab",
    );
    write(
        &root,
        "http_response",
        "chunked",
        b"\x02HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\nabc\r\n0\r\nTrailer: 1\r\n\r\n",
    );
    write(
        &root,
        "http_response",
        "interim_then_close",
        b"\x10HTTP/1.1 100 Continue\r\n\r\nHTTP/1.0 200 OK\r\nConnection: close\r\n\r\nbody until eof",
    );

    // state_records
    let stamps = [
        ccbt_state::FileStamp {
            size: 40_000,
            mtime_ns: 1_700_000_000_000_000_000,
        },
        ccbt_state::FileStamp {
            size: 5,
            mtime_ns: -1,
        },
    ];
    write(
        &root,
        "state_records",
        "files",
        &ccbt_state::encode_files(&stamps),
    );
    write(
        &root,
        "state_records",
        "tags",
        ccbt_state::encode_tags(&["linux".into(), "iso \"x\"".into()]).as_bytes(),
    );
    write(&root, "state_records", "bitfield", &[10, 0, 0xff, 0xc0]);

    // config_toml
    let example =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/ccbt.example.toml"))
            .expect("config/ccbt.example.toml");
    write(&root, "config_toml", "example.toml", &example);
    write(
        &root,
        "config_toml",
        "small.toml",
        b"[limits]\nupload_bytes_per_s = \"10 MiB\"\nmax_peers_per_torrent = 50\n[daemon]\npeer_port = 0\n",
    );

    // blocklist
    write(
        &root,
        "blocklist",
        "mixed",
        b"# comment\nsome range:1.2.3.0-1.2.3.255\n001.002.004.000 - 001.002.004.255 , 100 , dat\n10.0.0.0/8\n2001:db8::/32\n",
    );
    println!("seeds written under {}", root.display());
}
