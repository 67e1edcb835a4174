//! Rechecking many torrents in one pass: a single hash job over every torrent's pieces, so
//! ten thousand small torrents cost one start of the shards, not ten thousand, and every
//! core stays busy to the end whatever the torrents' sizes. It runs before any peer is
//! served, so shards hash without yielding.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ccbt_engine::metainfo::{Layout, Metainfo};
use ccbt_shards::hashing::hash_piece;
use ccbt_shards::{pool, MappedFiles, PieceOutcome, RecheckReport, ShardConfig, ShardError};

/// Bytes one shard claims at a time (as `HashJob` does for one torrent).
const CLAIM_BYTES: u64 = 8 << 20;

/// A run of pieces of one torrent, hashed by one shard in one go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Unit {
    torrent: u32,
    first: u32,
    end: u32,
}

/// Splits every torrent into runs of about [`CLAIM_BYTES`]; a small torrent is one run.
fn units(layouts: &[&Layout]) -> Vec<Unit> {
    let mut out = Vec::new();
    for (t, layout) in layouts.iter().enumerate() {
        let claim = (CLAIM_BYTES / u64::from(layout.piece_length())).max(1) as u32;
        let count = layout.piece_count();
        let mut first = 0;
        while first < count {
            let end = first.saturating_add(claim).min(count);
            out.push(Unit {
                torrent: t as u32,
                first,
                end,
            });
            first = end;
        }
    }
    out
}

/// One torrent's files, mapped while some shard still hashes its pieces and unmapped after
/// the last run, so a huge number of torrents never holds a huge number of mappings.
struct OpenFiles {
    files: Mutex<Option<Arc<MappedFiles>>>,
    runs_left: AtomicU32,
}

/// Hashes every piece of every torrent under the save directory `save_dir` (read-only), on
/// all shards, and compares with each torrent's hashes: one report per torrent, in order.
pub fn check_all(
    torrents: &[Arc<Metainfo>],
    save_dir: &Path,
    config: &ShardConfig,
) -> Result<Vec<RecheckReport>, ShardError> {
    let layouts: Vec<&Layout> = torrents.iter().map(|t| &t.info.layout).collect();
    let units = Arc::new(units(&layouts));
    let mut runs = vec![0u32; torrents.len()];
    for u in units.iter() {
        runs[u.torrent as usize] += 1;
    }
    let open: Arc<Vec<OpenFiles>> = Arc::new(
        runs.into_iter()
            .map(|n| OpenFiles {
                files: Mutex::new(None),
                runs_left: AtomicU32::new(n),
            })
            .collect(),
    );
    let torrents_shared: Arc<Vec<Arc<Metainfo>>> = Arc::new(torrents.to_vec());
    let save_dir = Arc::new(save_dir.to_path_buf());
    let cursor = Arc::new(AtomicUsize::new(0));
    let shards = pool::spawn(config, move |_shard| {
        let (torrents, units, open, save_dir, cursor) = (
            torrents_shared.clone(),
            units.clone(),
            open.clone(),
            save_dir.clone(),
            cursor.clone(),
        );
        async move {
            let mut found = Vec::new();
            loop {
                let i = cursor.fetch_add(1, Ordering::Relaxed);
                let Some(unit) = units.get(i) else { break };
                let t = unit.torrent as usize;
                let layout = &torrents[t].info.layout;
                let files = open[t]
                    .files
                    .lock()
                    .expect("files lock")
                    .get_or_insert_with(|| Arc::new(MappedFiles::open_under(&save_dir, layout)))
                    .clone();
                for index in unit.first..unit.end {
                    let piece = layout.piece(index).expect("index below piece count");
                    found.push((unit.torrent, index, hash_piece(layout, &files, piece)));
                }
                drop(files);
                if open[t].runs_left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    open[t].files.lock().expect("files lock").take();
                }
            }
            found
        }
    })?;
    let mut outcomes: Vec<Vec<PieceOutcome>> = layouts
        .iter()
        .map(|l| vec![PieceOutcome::Missing; l.piece_count() as usize])
        .collect();
    for shard in shards.join()? {
        for (t, index, outcome) in shard {
            outcomes[t as usize][index as usize] = outcome;
        }
    }
    Ok(torrents
        .iter()
        .zip(&outcomes)
        .map(|(t, o)| RecheckReport::new(&t.info, o))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccbt_engine::hash::Sha1;
    use ccbt_engine::metainfo::{NewFile, NewTorrent};
    use ccbt_shards::PieceState;

    fn torrent(name: &str, data: &[u8], piece: u32) -> Arc<Metainfo> {
        let t = NewTorrent {
            name: name.as_bytes().to_vec(),
            piece_length: piece,
            files: vec![NewFile {
                path: vec![],
                length: data.len() as u64,
            }],
            piece_hashes: data.chunks(piece as usize).map(Sha1::digest).collect(),
            ..NewTorrent::default()
        };
        Arc::new(Metainfo::parse(&t.encode().unwrap()).unwrap())
    }

    #[test]
    fn big_torrents_split_into_runs_and_small_ones_stay_whole() {
        let small = torrent("a", &[1; 40_000], 16384);
        let big = torrent("b", &vec![2; 20 << 20], 1 << 20);
        let u = units(&[&small.info.layout, &big.info.layout]);
        assert_eq!(
            u,
            vec![
                Unit {
                    torrent: 0,
                    first: 0,
                    end: 3
                },
                Unit {
                    torrent: 1,
                    first: 0,
                    end: 8
                },
                Unit {
                    torrent: 1,
                    first: 8,
                    end: 16
                },
                Unit {
                    torrent: 1,
                    first: 16,
                    end: 20
                },
            ]
        );
    }

    #[test]
    fn each_torrent_gets_its_own_report() {
        let dir = tempfile::tempdir().unwrap();
        let good: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
        let mut bad = good.clone();
        std::fs::write(dir.path().join("good"), &good).unwrap();
        bad[20_000] ^= 1;
        std::fs::write(dir.path().join("bad"), &bad).unwrap();
        let torrents = vec![
            torrent("good", &good, 16384),
            torrent("bad", &good, 16384),
            torrent("gone", &good, 16384),
        ];
        let reports = check_all(&torrents, dir.path(), &ShardConfig::with_count(2)).unwrap();
        assert!(reports[0].is_complete());
        assert_eq!(reports[1].pieces_in(PieceState::Bad), vec![1]);
        assert_eq!(reports[1].count(PieceState::Good), 3);
        assert_eq!(reports[2].count(PieceState::Missing), 4);
    }
}
