//! Piece geometry: which bytes of which files make up a piece.

use super::Info;

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

impl Info {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::{FileEntry, TorrentPath};
    use crate::Sha1Digest;

    #[track_caller]
    fn info(piece_length: u32, lengths: &[u64]) -> Info {
        let mut offset = 0;
        let files = lengths
            .iter()
            .enumerate()
            .map(|(i, &length)| {
                let f = FileEntry {
                    path: TorrentPath::new(["t".to_string(), format!("f{i}")]).unwrap(),
                    length,
                    offset,
                    pad: false,
                };
                offset += length;
                f
            })
            .collect();
        let count = offset.div_ceil(u64::from(piece_length)) as usize;
        Info {
            name: TorrentPath::new(["t"]).unwrap(),
            piece_length,
            pieces: vec![Sha1Digest::default(); count].into(),
            files,
            private: false,
            multi_file: true,
            total_length: offset,
        }
    }

    fn spans(info: &Info, piece: u32) -> Vec<(usize, u64, u32)> {
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
        for p in t.pieces_iter() {
            let sum: u64 = t.piece_spans(p).map(|s| u64::from(s.len)).sum();
            assert_eq!(sum, u64::from(t.piece_len(p)));
            covered += sum;
        }
        assert_eq!(covered, t.total_length);
    }
}
