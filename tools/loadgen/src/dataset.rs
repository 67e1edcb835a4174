//! Deterministic data sets of many torrents.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use ccbt_engine::hash::Sha1;
use ccbt_engine::metainfo::{NewFile, NewTorrent};

use crate::bytes;

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub torrents: u32,
    pub files: u32,
    pub file_bytes: u64,
    pub piece_length: u32,
    pub seed: u64,
}

/// Most bytes one data set may hold; a typo in `--file-bytes` should not fill a disk.
const DATASET_BYTES_MAX: u64 = 64 << 30;

/// Writes the data set under `out` and returns how many torrents it made.
pub fn write(spec: &Spec, out: &Path) -> Result<u32> {
    ensure!(
        spec.files >= 1 && spec.file_bytes >= 1,
        "torrents need at least one non-empty file"
    );
    let total = u64::from(spec.torrents) * u64::from(spec.files) * spec.file_bytes;
    ensure!(
        total <= DATASET_BYTES_MAX,
        "{total} bytes is more than the {DATASET_BYTES_MAX}-byte limit"
    );
    let (data_dir, torrent_dir) = (out.join("data"), out.join("torrents"));
    std::fs::create_dir_all(&torrent_dir)
        .with_context(|| format!("cannot create {}", torrent_dir.display()))?;
    for t in 0..spec.torrents {
        let name = format!("t{t:06}");
        let contents: Vec<Vec<u8>> = (0..spec.files)
            .map(|f| {
                bytes(
                    spec.seed ^ (u64::from(t) << 32) ^ u64::from(f),
                    spec.file_bytes as usize,
                )
            })
            .collect();
        let single = spec.files == 1;
        let root = data_dir.join(&name);
        for (f, data) in contents.iter().enumerate() {
            let path = if single {
                data_dir.join(&name)
            } else {
                root.join(format!("f{f}.bin"))
            };
            std::fs::create_dir_all(path.parent().expect("has a parent"))?;
            std::fs::write(&path, data)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let stream = contents.concat();
        let torrent = NewTorrent {
            name: name.clone().into_bytes(),
            piece_length: spec.piece_length,
            files: (0..spec.files)
                .map(|f| NewFile {
                    path: if single {
                        vec![]
                    } else {
                        vec![format!("f{f}.bin").into_bytes()]
                    },
                    length: spec.file_bytes,
                })
                .collect(),
            piece_hashes: stream
                .chunks(spec.piece_length as usize)
                .map(Sha1::digest)
                .collect(),
            created_by: Some("ccbt-loadgen".into()),
            ..NewTorrent::default()
        };
        let encoded = torrent.encode().context("encoding a generated torrent")?;
        std::fs::write(torrent_dir.join(format!("{name}.torrent")), encoded)?;
    }
    Ok(spec.torrents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccbt_engine::metainfo::Metainfo;

    #[test]
    fn generated_torrents_parse_and_match_their_data() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            torrents: 3,
            files: 2,
            file_bytes: 40_000,
            piece_length: 16384,
            seed: 9,
        };
        assert_eq!(write(&spec, dir.path()).unwrap(), 3);
        let again = tempfile::tempdir().unwrap();
        write(&spec, again.path()).unwrap();
        for t in 0..3 {
            let name = format!("t{t:06}");
            let bytes = std::fs::read(dir.path().join(format!("torrents/{name}.torrent"))).unwrap();
            let m = Metainfo::parse(&bytes).unwrap();
            assert_eq!(m.info.layout.total_length(), 80_000);
            // Hash the files as laid out on disk, independently of how they were written.
            let mut stream = Vec::new();
            for f in m.info.layout.files() {
                let path: std::path::PathBuf = f.path.display().split('/').collect();
                stream.extend(std::fs::read(dir.path().join("data").join(path)).unwrap());
            }
            let hashes: Vec<_> = stream.chunks(16384).map(Sha1::digest).collect();
            assert_eq!(&hashes[..], &m.info.pieces[..]);
            // Deterministic: the same spec gives the same torrent.
            let other =
                std::fs::read(again.path().join(format!("torrents/{name}.torrent"))).unwrap();
            assert_eq!(bytes, other);
        }
    }

    #[test]
    fn refuses_absurd_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let spec = Spec {
            torrents: 1000,
            files: 1000,
            file_bytes: 1 << 30,
            piece_length: 16384,
            seed: 1,
        };
        assert!(write(&spec, dir.path()).is_err());
    }
}
