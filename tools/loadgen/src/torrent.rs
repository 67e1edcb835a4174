//! `make-torrent`: single-file torrents over synthetic [`Content`], and loading torrents
//! back for the seeder and leecher.
//!
//! The content seed travels in the torrent's `comment` (outside the info dict), so
//! `seed --torrent T` needs nothing else to regenerate the data; different seeds still give
//! different pieces and therefore different info hashes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{bail, ensure, Context as _, Result};
use ccbt_engine::hash::{Sha1, Sha1Digest};
use ccbt_engine::metainfo::{Metainfo, NewFile, NewTorrent, PIECE_LENGTH_MAX};
use ccbt_engine::BLOCK_LEN;

use crate::content::Content;

/// What a synthetic torrent is made of.
#[derive(Debug, Clone)]
pub struct Spec {
    pub size: u64,
    pub piece_size: u32,
    pub seed: u64,
    pub name: Option<String>,
    pub trackers: Vec<String>,
}

/// Largest synthetic torrent: big enough for any benchmark, small enough that a typo in
/// `--size` does not fill a disk with `--write-files`.
pub const SIZE_MAX: u64 = 1 << 40;
/// Most torrents one run loads (`--torrent` repeated or a directory).
pub const TORRENTS_MAX: usize = 10_000;
/// Prefix of the comment that carries the content seed.
const SEED_COMMENT: &str = "ccbt-loadgen synthetic content, seed ";

impl Spec {
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("synthetic-{}-{}.bin", self.seed, self.size))
    }

    fn check(&self) -> Result<()> {
        ensure!(
            (1..=SIZE_MAX).contains(&self.size),
            "--size must be 1..={SIZE_MAX} bytes"
        );
        ensure!(
            self.piece_size >= BLOCK_LEN
                && self.piece_size <= PIECE_LENGTH_MAX
                && self.piece_size % BLOCK_LEN == 0,
            "--piece-size must be a multiple of {BLOCK_LEN} up to {PIECE_LENGTH_MAX}"
        );
        ensure!(
            self.size.div_ceil(u64::from(self.piece_size)) <= u64::from(u32::MAX),
            "too many pieces; use a larger --piece-size"
        );
        Ok(())
    }
}

/// The bencoded `.torrent` for `spec`. Hashes pieces on every core.
pub fn build(spec: &Spec) -> Result<Vec<u8>> {
    spec.check()?;
    let content = Content::new(spec.seed);
    let torrent = NewTorrent {
        name: spec.name().into_bytes(),
        piece_length: spec.piece_size,
        files: vec![NewFile {
            path: vec![],
            length: spec.size,
        }],
        piece_hashes: hash_pieces(&content, spec.size, spec.piece_size),
        trackers: spec.trackers.clone(),
        comment: Some(format!("{SEED_COMMENT}{}", spec.seed)),
        created_by: Some("ccbt-loadgen".into()),
        ..NewTorrent::default()
    };
    torrent.encode().context("encoding the torrent")
}

/// SHA-1 of every piece of the first `size` bytes of `content`, using one thread per CPU;
/// each thread takes the next unhashed piece, so uneven speeds even out.
pub fn hash_pieces(content: &Content, size: u64, piece_size: u32) -> Vec<Sha1Digest> {
    let count = size.div_ceil(u64::from(piece_size)) as u32;
    let next = AtomicU32::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut hashes = vec![Sha1Digest([0; 20]); count as usize];
    let found: Vec<Vec<(u32, Sha1Digest)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut buf = vec![0; piece_size as usize];
                    let mut done = Vec::new();
                    loop {
                        let piece = next.fetch_add(1, Ordering::Relaxed);
                        if piece >= count {
                            return done;
                        }
                        let start = u64::from(piece) * u64::from(piece_size);
                        let len = (size - start).min(u64::from(piece_size)) as usize;
                        content.fill(start, &mut buf[..len]);
                        done.push((piece, Sha1::digest(&buf[..len])));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("hash worker panicked"))
            .collect()
    });
    for (piece, hash) in found.into_iter().flatten() {
        hashes[piece as usize] = hash;
    }
    hashes
}

/// Writes the content itself to `path`, for real clients to seed or verify.
pub fn write_file(spec: &Spec, path: &Path) -> Result<()> {
    spec.check()?;
    let content = Content::new(spec.seed);
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let mut buf = vec![0; 4 << 20];
    let mut at = 0;
    while at < spec.size {
        let n = (spec.size - at).min(buf.len() as u64) as usize;
        content.fill(at, &mut buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("cannot write {}", path.display()))?;
        at += n as u64;
    }
    out.flush()?;
    Ok(())
}

/// A torrent a seeder or leecher works on.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub meta: Metainfo,
    /// The generator, when the torrent came from `make-torrent`.
    pub content: Option<Content>,
}

/// Loads each `.torrent` named, expanding directories to the `.torrent` files in them
/// (sorted, so runs are reproducible).
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Loaded>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "torrent"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
        ensure!(
            files.len() <= TORRENTS_MAX,
            "more than {TORRENTS_MAX} torrents"
        );
    }
    if files.is_empty() {
        bail!("no .torrent files given");
    }
    files.into_iter().map(|p| load(&p)).collect()
}

fn load(path: &Path) -> Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta =
        Metainfo::parse(&bytes).with_context(|| format!("{} is not a torrent", path.display()))?;
    let content = meta
        .comment
        .as_deref()
        .and_then(|c| c.strip_prefix(SEED_COMMENT))
        .and_then(|s| s.parse().ok())
        .map(Content::new);
    Ok(Loaded {
        path: path.to_owned(),
        meta,
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torrent_hashes_match_generated_pieces() {
        let spec = Spec {
            size: 5 * 32768 + 1000,
            piece_size: 32768,
            seed: 3,
            name: None,
            trackers: vec!["http://127.0.0.1:6969/announce".into()],
        };
        let meta = Metainfo::parse(&build(&spec).unwrap()).unwrap();
        assert_eq!(meta.info.layout.piece_count(), 6);
        let content = Content::new(3);
        for piece in meta.info.layout.pieces() {
            let data = content.piece(&meta.info.layout, piece);
            assert_eq!(Sha1::digest(&data), meta.info.piece_hash(piece));
        }
        assert_eq!(
            meta.announce.as_deref(),
            spec.trackers.first().map(|s| &**s)
        );
    }

    #[test]
    fn refuses_bad_sizes() {
        let spec = |size, piece_size| Spec {
            size,
            piece_size,
            seed: 1,
            name: None,
            trackers: vec![],
        };
        assert!(build(&spec(0, 16384)).is_err());
        assert!(build(&spec(100, 1000)).is_err());
        assert!(build(&spec(SIZE_MAX + 1, 1 << 20)).is_err());
    }
}
