//! Serving reads only the blocks asked for when a piece is not cached: every block must
//! still come back with the right bytes, whatever its offset, across file boundaries and
//! in a short last piece, in each `--serve-reads` mode, on a disk file system (/var/tmp,
//! O_DIRECT) and on tmpfs (/dev/shm, where every read is buffered).

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::swarm::{self, free_port, wait_listening, Running};
use common::wire_peer::{self, message, read_message, request, wait_for};
use common::{bytes, ccbt, run};

/// 256 KiB pieces over files of odd lengths: windows (at most 256 KiB, and less once a
/// batch holds blocks) are smaller than pieces, pieces cross file edges, and the last piece
/// is short. Total 1_005_124 bytes: 4 pieces, the last of 218_692.
const FILES: &[(&str, usize)] = &[
    ("pack/a.bin", 300_001),
    ("pack/b.bin", 5_000),
    ("pack/c.bin", 700_123),
];
const PIECE: u32 = 256 * 1024;
const LIMIT: Duration = Duration::from_secs(30);

/// The torrent's byte stream, as `common::write_tree` writes its files.
fn content() -> Vec<u8> {
    FILES
        .iter()
        .enumerate()
        .flat_map(|(i, (_, len))| bytes(i as u64 + 1, *len))
        .collect()
}

fn info_hash(torrent: &Path) -> [u8; 20] {
    let hex = common::our_info_hash(torrent);
    let mut out = [0u8; 20];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// Requests, as (piece, offset, length): odd offsets and lengths, blocks across the edges
/// of a.bin/b.bin (piece 1 holds 300_001..305_001 of the stream) and b.bin/c.bin, the very
/// end of the short last piece, and a run of whole blocks that one window serves.
fn requests() -> Vec<(u32, u32, u32)> {
    let last_len = (content().len() as u32) - 3 * PIECE;
    let mut r = vec![
        (0, 1, 1000),
        (0, 4095, 2),
        (0, PIECE - 7, 7),
        (1, 300_001 - PIECE - 100, 200),
        (1, 305_001 - PIECE - 16_000, 16_384),
        (1, 40_000, 16_384),
        (3, last_len - 16_384, 16_384),
        (3, last_len - 1, 1),
        (3, 12_345, 6_789),
    ];
    r.extend((0..16).map(|i| (2, i * 16_384, 16_384)));
    r
}

/// Asks for every request at once, and checks each block that comes back against the
/// torrent's bytes.
fn fetch_and_check(seed: &Running, port: u16, hash: &[u8; 20], id: u8, what: &str) {
    let content = content();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut peer = wire_peer::connect(addr, hash, id);
    peer.write_all(&message(2, &[])).unwrap(); // interested
    assert!(
        wait_for(&mut peer, 1, LIMIT).is_some(),
        "{what}: no unchoke"
    );
    let wanted = requests();
    let mut out = Vec::new();
    for &(piece, offset, len) in &wanted {
        out.extend_from_slice(&request(piece, offset, len));
    }
    peer.write_all(&out).unwrap();
    let mut got: HashMap<(u32, u32), Vec<u8>> = HashMap::new();
    let until = Instant::now() + LIMIT;
    while got.len() < wanted.len() && Instant::now() < until {
        match read_message(&mut peer) {
            Ok(Some((wire_peer::PIECE, payload))) => {
                let piece = u32::from_be_bytes(payload[0..4].try_into().unwrap());
                let offset = u32::from_be_bytes(payload[4..8].try_into().unwrap());
                got.insert((piece, offset), payload[8..].to_vec());
            }
            Ok(_) => {}
            Err(e) => panic!("{what}: {e} after {} blocks\n{}", got.len(), seed.log()),
        }
    }
    for (piece, offset, len) in wanted {
        let start = (piece * PIECE + offset) as usize;
        let block = got
            .get(&(piece, offset))
            .unwrap_or_else(|| panic!("{what}: block {piece}/{offset} never came"));
        assert_eq!(block.len(), len as usize, "{what}: {piece}/{offset}");
        assert!(
            block[..] == content[start..start + len as usize],
            "{what}: wrong bytes for {piece}/{offset}+{len}"
        );
    }
}

#[test]
fn blocks_read_in_part_are_the_torrents_bytes_in_every_mode_and_file_system() {
    for root in common::storage_roots() {
        let dir = tempfile::tempdir_in(&root).unwrap();
        common::write_tree(&dir.path().join("data"), FILES);
        let torrent = dir.path().join("t.torrent");
        run(ccbt()
            .args(["create", "--no-date", "--piece-size", "256K", "-o"])
            .arg(&torrent)
            .arg(dir.path().join("data/pack")))
        .ok();
        let hash = info_hash(&torrent);
        for mode in ["direct", "buffered", "auto"] {
            let port = free_port();
            let mut seed = swarm::ccbt_swarm(
                "seed",
                &torrent,
                &dir.path().join("data"),
                port,
                1,
                &["--serve-reads", mode, "--upload-slots", "0"],
            );
            wait_listening(port, &seed);
            let what = format!("{} {mode}", root.display());
            // A second peer asks for the same pieces: with direct reads that makes the
            // shard read them whole into its cache, which must serve the same bytes.
            fetch_and_check(&seed, port, &hash, 1, &what);
            fetch_and_check(&seed, port, &hash, 2, &format!("{what}, second peer"));
            assert!(seed.is_running(), "{what}: the seeder died\n{}", seed.log());
            seed.stop(Duration::from_secs(10));
        }
    }
}
