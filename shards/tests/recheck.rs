//! Hashing real files on disk across shards, and rechecking them against a torrent.

use std::path::Path;
use std::sync::Arc;

use ccbt_engine::hash::Sha1;
use ccbt_engine::metainfo::{Layout, LayoutFile, Metainfo, NewFile, NewTorrent, TorrentPath};
use ccbt_shards::{
    HashJob, HashProgress, MappedFiles, PieceOutcome, PieceState, RecheckReport, ShardConfig,
};

const PIECE: u32 = 16 << 10;

/// Files `name/f0..fn` with deterministic contents of the given lengths.
fn write_files(dir: &Path, lengths: &[usize]) -> Vec<Vec<u8>> {
    std::fs::create_dir_all(dir.join("t")).unwrap();
    lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let data: Vec<u8> = (0..len).map(|b| (b * 31 + i * 7) as u8).collect();
            std::fs::write(dir.join(format!("t/f{i}")), &data).unwrap();
            data
        })
        .collect()
}

fn layout(lengths: &[usize], pads: &[usize]) -> Layout {
    let files = lengths.iter().enumerate().map(|(i, &len)| LayoutFile {
        path: TorrentPath::new(["t".to_string(), format!("f{i}")]).unwrap(),
        length: len as u64,
        pad: pads.contains(&i),
    });
    Layout::new(PIECE, files).unwrap()
}

fn hash_all(layout: &Arc<Layout>, data: MappedFiles) -> Vec<PieceOutcome> {
    let progress = Arc::new(HashProgress::default());
    let job = HashJob::start(
        &ShardConfig::per_core(),
        layout.clone(),
        Arc::new(data),
        progress.clone(),
    )
    .unwrap();
    let out = job.join().unwrap();
    assert_eq!(
        progress
            .pieces_done
            .load(std::sync::atomic::Ordering::Relaxed),
        layout.piece_count()
    );
    out
}

/// Reference: SHA-1 of each piece of the concatenated stream.
fn expected(stream: &[u8]) -> Vec<PieceOutcome> {
    stream
        .chunks(PIECE as usize)
        .map(|c| PieceOutcome::Hashed(Sha1::digest(c)))
        .collect()
}

fn torrent_for(lengths: &[usize], stream: &[u8]) -> Metainfo {
    let t = NewTorrent {
        name: b"t".to_vec(),
        piece_length: PIECE,
        files: (0..lengths.len())
            .map(|i| NewFile {
                path: vec![format!("f{i}").into_bytes()],
                length: lengths[i] as u64,
            })
            .collect(),
        piece_hashes: stream.chunks(PIECE as usize).map(Sha1::digest).collect(),
        ..NewTorrent::default()
    };
    Metainfo::parse(&t.encode().unwrap()).unwrap()
}

#[test]
fn shards_hash_every_piece_like_a_single_pass() {
    let dir = tempfile::tempdir().unwrap();
    let lengths = [100_000, 0, 3, 250_000, 16384, 1];
    let stream = write_files(dir.path(), &lengths).concat();
    let layout = Arc::new(layout(&lengths, &[]));
    let data = MappedFiles::open_under(dir.path(), &layout);
    assert!(
        data.problems().is_empty(),
        "{:?}",
        data.problems()
            .iter()
            .map(|p| &p.reason)
            .collect::<Vec<_>>()
    );
    assert_eq!(hash_all(&layout, data), expected(&stream));
}

#[test]
fn pad_files_hash_as_zeros_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let lengths = [5000, PIECE as usize - 5000, 20_000];
    let mut written = write_files(dir.path(), &lengths);
    std::fs::remove_file(dir.path().join("t/f1")).unwrap();
    written[1] = vec![0; lengths[1]];
    let layout = Arc::new(layout(&lengths, &[1]));
    let data = MappedFiles::open_under(dir.path(), &layout);
    assert!(data.problems().is_empty());
    assert_eq!(hash_all(&layout, data), expected(&written.concat()));
}

#[test]
fn recheck_names_bad_and_missing_pieces_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let lengths = [70_000, 40_000, 30_000];
    let stream = write_files(dir.path(), &lengths).concat();
    let torrent = torrent_for(&lengths, &stream);
    let layout = Arc::new(torrent.info.layout.clone());

    // Flip one byte in piece 1 (offset 20000 of f0), truncate f1, delete f2.
    let f0 = dir.path().join("t/f0");
    let mut bytes = std::fs::read(&f0).unwrap();
    bytes[20_000] ^= 0x01;
    std::fs::write(&f0, &bytes).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("t/f1"))
        .unwrap()
        .set_len(10_000)
        .unwrap();
    std::fs::remove_file(dir.path().join("t/f2")).unwrap();
    let before = snapshot(dir.path());

    let data = MappedFiles::open_under(dir.path(), &layout);
    let problems: Vec<_> = data.problems().iter().map(|p| p.file).collect();
    assert_eq!(problems, [1, 2]);
    let report = RecheckReport::new(&torrent.info, &hash_all(&layout, data));

    // Pieces: 0 [0,16384) 1 [16384,32768) ... f1 covers [70000,110000), f2 [110000,140000).
    // f1 now holds [70000,80000): pieces 4 (65536..81920) onward need missing bytes.
    assert_eq!(report.pieces_in(PieceState::Bad), [1]);
    assert_eq!(
        report.pieces_in(PieceState::Missing),
        (4..9).collect::<Vec<_>>()
    );
    assert_eq!(report.pieces_in(PieceState::Good), [0, 2, 3]);
    assert!(!report.is_complete());
    assert_eq!(
        snapshot(dir.path()),
        before,
        "a recheck must not change anything on disk"
    );
}

/// Every path under `dir` with its length, mtime and contents' hash.
fn snapshot(dir: &Path) -> Vec<(String, u64, std::time::SystemTime, String)> {
    let mut out: Vec<_> = walk(dir)
        .into_iter()
        .map(|p| {
            let meta = std::fs::metadata(&p).unwrap();
            let hash = if meta.is_file() {
                Sha1::digest(&std::fs::read(&p).unwrap()).to_hex()
            } else {
                String::new()
            };
            (
                p.display().to_string(),
                meta.len(),
                meta.modified().unwrap(),
                hash,
            )
        })
        .collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
