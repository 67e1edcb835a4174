//! Piece geometry: where each file sits in the torrent's byte stream, and which bytes of
//! which files make up each piece.

use std::collections::HashSet;

use thiserror::Error;

use super::{FileEntry, TorrentPath, FILES_MAX, PIECE_LENGTH_MAX};

/// The files of a torrent laid end to end and cut into pieces.
///
/// Invariants, checked by [`Layout::new`]: `1 <= piece_length <= PIECE_LENGTH_MAX`; files
/// are contiguous from offset 0; the total is non-zero and below 2^63; there are fewer than
/// 2^32 pieces (the wire protocol's piece index is 32 bits); no two stored files
/// share a path and no file sits where another needs a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    piece_length: u32,
    total_length: u64,
    files: Vec<FileEntry>,
}

/// Why a set of files cannot form a torrent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LayoutError {
    #[error("piece length {0} is outside 1..={PIECE_LENGTH_MAX}")]
    BadPieceLength(u32),
    #[error("the files add up to more than 2^63 bytes")]
    TotalLengthOverflow,
    #[error("the torrent holds no data")]
    Empty,
    #[error("more than {FILES_MAX} files")]
    TooManyFiles,
    #[error("{0} pieces; at most 2^32 - 1 can be addressed")]
    TooManyPieces(u64),
    #[error("file path {0} appears twice, or is both a file and a directory")]
    PathCollision(String),
}

/// A file for [`Layout::new`].
#[derive(Debug, Clone)]
pub struct LayoutFile {
    pub path: TorrentPath,
    pub length: u64,
    /// A BEP 47 pad file.
    pub pad: bool,
}

/// A piece number checked against its torrent's piece count ([`Info::piece`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PieceIndex(pub(super) u32);

impl PieceIndex {
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A run of bytes of one file that belongs to one piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpan {
    /// Index into [`Info::files`].
    pub file: usize,
    /// Offset within that file.
    pub offset: u64,
    pub len: u32,
}

impl Layout {
    pub fn new(
        piece_length: u32,
        files: impl IntoIterator<Item = LayoutFile>,
    ) -> Result<Self, LayoutError> {
        if piece_length == 0 || piece_length > PIECE_LENGTH_MAX {
            return Err(LayoutError::BadPieceLength(piece_length));
        }
        let mut entries = Vec::new();
        let mut offset = 0u64;
        for f in files {
            if entries.len() == FILES_MAX {
                return Err(LayoutError::TooManyFiles);
            }
            entries.push(FileEntry {
                path: f.path,
                length: f.length,
                offset,
                pad: f.pad,
            });
            offset = offset
                .checked_add(f.length)
                .filter(|&o| o <= i64::MAX as u64)
                .ok_or(LayoutError::TotalLengthOverflow)?;
        }
        if offset == 0 {
            return Err(LayoutError::Empty);
        }
        let pieces = offset.div_ceil(u64::from(piece_length));
        if pieces > u64::from(u32::MAX) {
            return Err(LayoutError::TooManyPieces(pieces));
        }
        check_collisions(&entries)?;
        Ok(Self {
            piece_length,
            total_length: offset,
            files: entries,
        })
    }

    /// No files and no pieces: the layout of a torrent whose info dict is not known yet
    /// (a magnet link's, while its metadata is fetched). [`Layout::new`] refuses an empty
    /// torrent; only front ends that show such a torrent use this one.
    pub fn unknown() -> Self {
        Self {
            piece_length: 16 << 10,
            total_length: 0,
            files: Vec::new(),
        }
    }

    pub fn piece_length(&self) -> u32 {
        self.piece_length
    }

    pub fn total_length(&self) -> u64 {
        self.total_length
    }

    /// Files in torrent order.
    pub fn files(&self) -> &[FileEntry] {
        &self.files
    }

    pub fn piece_count(&self) -> u32 {
        // Fits: `new` refuses layouts with more pieces than a u32 holds.
        self.total_length.div_ceil(u64::from(self.piece_length)) as u32
    }

    /// Validates a piece number from outside (a peer, a CLI argument).
    pub fn piece(&self, index: u32) -> Option<PieceIndex> {
        (index < self.piece_count()).then_some(PieceIndex(index))
    }

    /// All pieces in order.
    pub fn pieces(&self) -> impl Iterator<Item = PieceIndex> {
        (0..self.piece_count()).map(PieceIndex)
    }

    /// Byte offset of the piece in the torrent's stream.
    pub fn piece_offset(&self, piece: PieceIndex) -> u64 {
        u64::from(piece.0) * u64::from(self.piece_length)
    }

    /// Length of the piece: `piece_length`, except the last, which holds the remainder.
    pub fn piece_len(&self, piece: PieceIndex) -> u32 {
        let rest = self.total_length - self.piece_offset(piece);
        rest.min(u64::from(self.piece_length)) as u32
    }

    /// The file spans that make up a piece, in order. Empty files are skipped.
    pub fn piece_spans(&self, piece: PieceIndex) -> impl Iterator<Item = FileSpan> + '_ {
        let start = self.piece_offset(piece);
        let end = start + u64::from(self.piece_len(piece));
        // First file that ends after the piece starts.
        let first = self.files.partition_point(|f| f.offset + f.length <= start);
        self.files[first..]
            .iter()
            .enumerate()
            .take_while(move |(_, f)| f.offset < end)
            .filter(|(_, f)| f.length > 0)
            .map(move |(i, f)| {
                let from = start.max(f.offset);
                let to = end.min(f.offset + f.length);
                FileSpan {
                    file: first + i,
                    offset: from - f.offset,
                    len: (to - from) as u32,
                }
            })
    }

    /// The pieces that hold any byte of file `file`, as a half-open range.
    pub fn file_pieces(&self, file: usize) -> std::ops::Range<u32> {
        let f = &self.files[file];
        if f.length == 0 {
            return 0..0;
        }
        let pl = u64::from(self.piece_length);
        (f.offset / pl) as u32..(f.offset + f.length).div_ceil(pl) as u32
    }
}

/// Two files on one path, or a file where another file needs a directory, would make the
/// data of one overwrite the other's. Pad files are never stored, so they cannot collide.
fn check_collisions(files: &[FileEntry]) -> Result<(), LayoutError> {
    let stored = || files.iter().filter(|f| !f.pad);
    let mut seen: HashSet<&TorrentPath> = HashSet::with_capacity(files.len());
    for f in stored() {
        if !seen.insert(&f.path) {
            return Err(LayoutError::PathCollision(f.path.display()));
        }
    }
    for f in stored() {
        if let Some(dir) = f.path.parents().find(|p| seen.contains(p)) {
            return Err(LayoutError::PathCollision(dir.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn info(piece_length: u32, lengths: &[u64]) -> Layout {
        let files = lengths.iter().enumerate().map(|(i, &length)| LayoutFile {
            path: TorrentPath::new(["t".to_string(), format!("f{i}")]).unwrap(),
            length,
            pad: false,
        });
        Layout::new(piece_length, files).unwrap()
    }

    fn spans(info: &Layout, piece: u32) -> Vec<(usize, u64, u32)> {
        info.piece_spans(info.piece(piece).unwrap())
            .map(|s| (s.file, s.offset, s.len))
            .collect()
    }

    #[test]
    fn pieces_cross_files_and_skip_empty_ones() {
        // files:  [0..10) [10..10) [10..25) [25..26)
        // pieces: [0..8) [8..16) [16..24) [24..26)
        let t = info(8, &[10, 0, 15, 1]);
        assert_eq!(t.piece_count(), 4);
        assert_eq!(spans(&t, 0), [(0, 0, 8)]);
        assert_eq!(spans(&t, 1), [(0, 8, 2), (2, 0, 6)]);
        assert_eq!(spans(&t, 2), [(2, 6, 8)]);
        assert_eq!(spans(&t, 3), [(2, 14, 1), (3, 0, 1)]);
        assert_eq!(t.piece_len(t.piece(3).unwrap()), 2);
        assert_eq!(t.file_pieces(2), 1..4);
        assert_eq!(t.file_pieces(1), 0..0);
        assert_eq!(t.piece(4), None);
    }

    #[test]
    fn spans_cover_every_byte_once() {
        let t = info(7, &[3, 0, 0, 20, 1, 9, 0]);
        let mut covered = 0u64;
        for p in t.pieces() {
            let sum: u64 = t.piece_spans(p).map(|s| u64::from(s.len)).sum();
            assert_eq!(sum, u64::from(t.piece_len(p)));
            covered += sum;
        }
        assert_eq!(covered, t.total_length);
    }

    #[test]
    fn constructor_checks_its_invariants() {
        let f = |p: &[&str], length| LayoutFile {
            path: TorrentPath::new(p).unwrap(),
            length,
            pad: false,
        };
        assert_eq!(
            Layout::new(0, [f(&["a"], 1)]),
            Err(LayoutError::BadPieceLength(0))
        );
        assert_eq!(Layout::new(16, [f(&["a"], 0)]), Err(LayoutError::Empty));
        assert_eq!(
            Layout::new(1, [f(&["a"], 1 << 40)]),
            Err(LayoutError::TooManyPieces(1 << 40))
        );
        assert_eq!(
            Layout::new(16, [f(&["a"], u64::MAX / 2), f(&["b"], u64::MAX / 2)]),
            Err(LayoutError::TotalLengthOverflow)
        );
        assert_eq!(
            Layout::new(16, [f(&["d", "a"], 1), f(&["d", "a"], 1)]),
            Err(LayoutError::PathCollision("d/a".into()))
        );
        assert_eq!(
            Layout::new(16, [f(&["d", "a"], 1), f(&["d", "a", "b"], 1)]),
            Err(LayoutError::PathCollision("d/a".into()))
        );
        let pad = LayoutFile {
            pad: true,
            ..f(&["d", ".pad"], 3)
        };
        assert!(Layout::new(16, [f(&["d", "x"], 1), pad.clone(), pad]).is_ok());
    }
}
