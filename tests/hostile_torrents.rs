//! Odd and hostile torrents, written byte by byte as real-world ones come: the harmless
//! oddities are stored under safe paths inside the save directory and named by `info`; the
//! rest are refused with a clear error; none crashes or writes outside the save directory.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use ccbt_engine::bencode::{encode, Dict, Value};
use ccbt_engine::hash::Sha1;
use common::swarm::{self, free_port, wait_listening};
use common::{ccbt, run, run_for};

const PIECE: usize = 16 << 10;
const LIMIT: Duration = Duration::from_secs(120);
/// Directories above the deepest file of the deep-tree case.
const DEPTH: usize = 1500;

/// One file of a hand-made torrent: its raw path components, its bytes.
struct RawFile {
    path: Vec<Vec<u8>>,
    data: Vec<u8>,
}

fn raw(path: &[&[u8]], len: usize, seed: u8) -> RawFile {
    RawFile {
        path: path.iter().map(|c| c.to_vec()).collect(),
        data: (0..len)
            .map(|i| (i as u8).wrapping_mul(31) ^ seed)
            .collect(),
    }
}

/// A multi-file torrent of `files` named `name`, `extra` bytes after its end.
fn torrent(name: &[u8], files: &[RawFile], piece: usize, extra: &[u8]) -> Vec<u8> {
    let stream: Vec<u8> = files.iter().flat_map(|f| f.data.iter().copied()).collect();
    let pieces: Vec<u8> = stream
        .chunks(piece)
        .flat_map(|c| Sha1::digest(c).0)
        .collect();
    let list = files
        .iter()
        .map(|f| {
            Value::Dict(
                Dict::new()
                    .with(b"length", Value::Int(f.data.len() as i64))
                    .with(
                        b"path",
                        Value::List(f.path.iter().map(|c| Value::Bytes(c)).collect()),
                    ),
            )
        })
        .collect();
    let info = Dict::new()
        .with(b"name", Value::Bytes(name))
        .with(b"piece length", Value::Int(piece as i64))
        .with(b"pieces", Value::Bytes(&pieces))
        .with(b"files", Value::List(list));
    let mut bytes = encode(&Value::Dict(Dict::new().with(b"info", Value::Dict(info))));
    bytes.extend_from_slice(extra);
    bytes
}

fn info_json(path: &Path) -> serde_json::Value {
    run(ccbt().args(["info", "--json"]).arg(path)).ok().json()
}

/// Every file under `root`, relative to it.
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(root).unwrap().to_path_buf())
        .collect();
    out.sort();
    out
}

#[test]
fn odd_paths_are_stored_inside_under_safe_names_and_info_names_them() {
    let dir = tempfile::tempdir().unwrap();
    let long = [&b"n".repeat(300)[..], b".bin"].concat();
    let files = [
        raw(&[b"", b"etc", b"passwd"], 20_000, 1),
        raw(&[b"a\\b"], 5_000, 2),
        raw(&[b"Same"], 3_000, 3),
        raw(&[b"same"], 3_000, 4),
        raw(&[&long], 2_000, 5),
        raw(&[b"x", b"", b"y"], 7_000, 6),
    ];
    let t = dir.path().join("odd.torrent");
    std::fs::write(&t, torrent(b"odd/name", &files, PIECE, b"\n")).unwrap();
    let stored = [
        "odd_name/etc/passwd".to_string(),
        "odd_name/a_b".to_string(),
        "odd_name/Same".to_string(),
        "odd_name/same (1)".to_string(),
        format!("odd_name/{}.bin", "n".repeat(251)),
        "odd_name/x/y".to_string(),
    ];

    let json = info_json(&t);
    let paths: Vec<&str> = json["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, stored, "{json}");
    assert_eq!(json["trailing_bytes_ignored"], 1, "{json}");
    let changed: Vec<u64> = json["changed_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["file"].as_u64().unwrap())
        .collect();
    // The name held a separator, so every file moved; file 3 also collided by case.
    assert_eq!(changed, [0, 1, 2, 3, 3, 4, 5], "{json}");
    let text = run(ccbt().arg("info").arg(&t)).ok();
    assert!(
        text.stdout.contains("changed:    7 paths made safe"),
        "{}",
        text.stdout
    );

    // A seeder holding the data under those paths has all of it, and a download puts it
    // under the same paths, inside its save directory and nowhere else.
    let data = dir.path().join("data");
    for (f, path) in files.iter().zip(&stored) {
        let at = data.join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, &f.data).unwrap();
    }
    let port = free_port();
    let seeder = swarm::ccbt_seed(&t, &data, port, 1);
    wait_listening(port, &seeder);
    assert!(
        seeder.log().contains("changed to a safe one"),
        "{}",
        seeder.log()
    );
    let out = dir.path().join("out");
    let peer = format!("127.0.0.1:{port}");
    swarm::ccbt_swarm("download", &t, &out, free_port(), 1, &["--peer", &peer]).wait_success(LIMIT);
    let want: Vec<PathBuf> = {
        let mut w: Vec<PathBuf> = stored.iter().map(PathBuf::from).collect();
        w.sort();
        w
    };
    assert_eq!(files_under(&out), want);
    for (f, path) in files.iter().zip(&stored) {
        assert!(std::fs::read(out.join(path)).unwrap() == f.data, "{path}");
    }
}

/// `info` on `bytes` fails with exit 3 (bad input) and a reason that contains `says`.
#[track_caller]
fn refused(dir: &Path, bytes: &[u8], says: &str) {
    let t = dir.join("hostile.torrent");
    std::fs::write(&t, bytes).unwrap();
    let ran = run_for(ccbt().arg("info").arg(&t), LIMIT).expect_code(3);
    assert!(ran.stderr.contains(says), "{says:?} not in: {}", ran.stderr);
}

/// `bytes` with the first `from` replaced by `to`.
fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("the pattern is there");
    [&bytes[..at], to, &bytes[at + from.len()..]].concat()
}

#[test]
fn what_cannot_be_made_safe_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    refused(
        d,
        &torrent(b"t", &[raw(&[b"..", b"etc", b"passwd"], 10, 0)], PIECE, b""),
        "`..`",
    );
    refused(
        d,
        &torrent(b"..", &[raw(&[b"a"], 10, 0)], PIECE, b""),
        "`..`",
    );
    refused(
        d,
        &torrent(b"t", &[raw(&[b"a\0b"], 10, 0)], PIECE, b""),
        "NUL",
    );
    // Absurd piece sizes: zero, negative, beyond 256 MiB.
    for piece in ["0", "-16384", "4294967296"] {
        let bytes = replace(
            &torrent(b"t", &[raw(&[b"a"], 10, 0)], PIECE, b""),
            b"12:piece lengthi16384e",
            format!("12:piece lengthi{piece}e").as_bytes(),
        );
        refused(d, &bytes, "`piece length`");
    }
    // A `pieces` string far larger than the data: 10 bytes, a million hashes.
    let big = vec![7u8; 20 * 1_000_000];
    let info = Dict::new()
        .with(b"name", Value::Bytes(b"t"))
        .with(b"piece length", Value::Int(PIECE as i64))
        .with(b"pieces", Value::Bytes(&big))
        .with(b"length", Value::Int(10));
    let bytes = encode(&Value::Dict(Dict::new().with(b"info", Value::Dict(info))));
    refused(d, &bytes, "`pieces` lists 1000000");
}

#[test]
fn zero_length_files_and_deep_directories_download_inside() {
    let dir = tempfile::tempdir().unwrap();
    let deep: Vec<&[u8]> = std::iter::repeat_n(&b"d"[..], DEPTH)
        .chain([&b"bottom.bin"[..]])
        .collect();
    let files = [
        raw(&[b"empty-1"], 0, 0),
        raw(&deep, 40_000, 1),
        raw(&[b"sub", b"empty-2"], 0, 0),
        raw(&[b"tail.bin"], 1_000, 2),
    ];
    let t = dir.path().join("t.torrent");
    std::fs::write(&t, torrent(b"t", &files, PIECE, b"")).unwrap();
    // The seeder's copy, written one directory at a time (the whole path is over
    // what some tools take in one go).
    let data = dir.path().join("data");
    let mut at = data.join("t");
    std::fs::create_dir_all(at.join("sub")).unwrap();
    std::fs::write(at.join("empty-1"), b"").unwrap();
    std::fs::write(at.join("sub/empty-2"), b"").unwrap();
    std::fs::write(at.join("tail.bin"), &files[3].data).unwrap();
    for _ in 0..DEPTH {
        at.push("d");
    }
    std::fs::create_dir_all(&at).unwrap();
    std::fs::write(at.join("bottom.bin"), &files[1].data).unwrap();

    let port = free_port();
    let seeder = swarm::ccbt_seed(&t, &data, port, 1);
    wait_listening(port, &seeder);
    let out = dir.path().join("out");
    let peer = format!("127.0.0.1:{port}");
    swarm::ccbt_swarm("download", &t, &out, free_port(), 1, &["--peer", &peer]).wait_success(LIMIT);
    swarm::assert_same_tree(&data.join("t"), &out.join("t"));
}

/// Half a million one-byte files parse (and are listed); a million, the most a torrent may
/// list, is past the bencode decoder's bound on values per input (4 per file entry), and is
/// refused by it with a clear error before any of it is kept.
#[test]
fn many_tiny_files_parse_and_a_million_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let files = |n: usize| -> Vec<RawFile> {
        (0..n)
            .map(|i| RawFile {
                path: vec![format!("f{i:07}").into_bytes()],
                data: vec![(i % 251) as u8],
            })
            .collect()
    };
    let t = dir.path().join("many.torrent");
    std::fs::write(&t, torrent(b"m", &files(500_000), PIECE, b"")).unwrap();
    let ran = run_for(ccbt().arg("info").arg(&t), LIMIT).ok();
    assert!(
        ran.stdout.contains("files:      500000"),
        "{}",
        &ran.stdout[..400]
    );

    refused(
        dir.path(),
        &torrent(b"m", &files(1_000_000), PIECE, b""),
        "more than 3000000 values in one input",
    );
}
