//! A file another process truncates while its torrent is being checked: read with `pread`
//! (the daemon's way, `Reading::Pread`) the pieces past the new end come out missing and the
//! process goes on; read through a mapping (`Reading::Mapped`, the one-shot CLI's way) the
//! same check dies of SIGBUS, which is why the daemon does not map.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use ccbt_engine::metainfo::{Layout, LayoutFile, TorrentPath};
use ccbt_shards::beneath::Symlinks;
use ccbt_shards::hashing::hash_piece;
use ccbt_shards::{MappedFiles, PieceOutcome, Reading};

const PIECE: u32 = 16 << 10;
const LEN: usize = 10 * PIECE as usize;
/// Where the file is cut: inside piece 3.
const CUT: u64 = 3 * PIECE as u64 + 100;
/// Set in the child process that hashes through a mapping.
const CHILD: &str = "CCBT_TRUNCATED_MID_CHECK_CHILD";

fn layout() -> Layout {
    let file = LayoutFile {
        path: TorrentPath::new(["t", "f"]).unwrap(),
        length: LEN as u64,
        pad: false,
    };
    Layout::new(PIECE, [file]).unwrap()
}

/// Opens `dir/t/f` for hashing, then cuts it as another process would, then hashes.
fn open_cut_and_hash(dir: &Path, reading: Reading) -> Vec<PieceOutcome> {
    std::fs::create_dir_all(dir.join("t")).unwrap();
    std::fs::write(dir.join("t/f"), vec![7u8; LEN]).unwrap();
    let layout = layout();
    let files = MappedFiles::open_beneath(dir, &layout, Symlinks::Refused, reading);
    assert!(files.problems().is_empty());
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("t/f"))
        .unwrap()
        .set_len(CUT)
        .unwrap();
    (0..layout.piece_count())
        .map(|i| hash_piece(&layout, &files, layout.piece(i).unwrap()))
        .collect()
}

#[test]
fn pread_makes_pieces_past_the_cut_missing_and_survives() {
    let dir = tempfile::tempdir().unwrap();
    let out = open_cut_and_hash(dir.path(), Reading::Pread);
    let missing: Vec<usize> = (0..out.len())
        .filter(|&i| out[i] == PieceOutcome::Missing)
        .collect();
    assert_eq!(missing, (3..10).collect::<Vec<_>>());
    assert!(matches!(out[0], PieceOutcome::Hashed(_)));
}

#[test]
fn a_mapping_dies_of_sigbus_there() {
    if std::env::var_os(CHILD).is_some() {
        let dir = tempfile::tempdir().unwrap();
        open_cut_and_hash(dir.path(), Reading::Mapped);
        // Reaching this line means the mapping survived: the parent sees a clean exit.
        return;
    }
    let me = std::env::current_exe().unwrap();
    let status = std::process::Command::new(me)
        .args(["--exact", "a_mapping_dies_of_sigbus_there", "--nocapture"])
        .env(CHILD, "1")
        .status()
        .unwrap();
    assert_eq!(
        status.signal(),
        Some(nix::libc::SIGBUS),
        "hashing a truncated mapping ended with {status}, not SIGBUS"
    );
}
