//! A byte range of the torrent cut into the files that hold it.

use crate::metainfo::Layout;

/// A run of bytes of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index into the layout's files.
    pub file: usize,
    /// Offset within the file.
    pub file_offset: u64,
    pub len: u64,
    /// Offset in the torrent's byte stream.
    pub global: u64,
    /// A BEP 47 pad file: zeros, never on the server.
    pub pad: bool,
}

/// The segments of the torrent's bytes `[start, end)`, in order; empty files are skipped.
/// Bytes beyond the torrent's end are ignored.
pub fn segments(layout: &Layout, start: u64, end: u64) -> Vec<Segment> {
    let end = end.min(layout.total_length());
    let files = layout.files();
    let first = files.partition_point(|f| f.offset + f.length <= start);
    files[first..]
        .iter()
        .enumerate()
        .take_while(|(_, f)| f.offset < end)
        .filter(|(_, f)| f.length > 0)
        .map(|(i, f)| {
            let from = start.max(f.offset);
            let to = end.min(f.offset + f.length);
            Segment {
                file: first + i,
                file_offset: from - f.offset,
                len: to - from,
                global: from,
                pad: f.pad,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::{LayoutFile, TorrentPath};

    #[test]
    fn ranges_split_at_file_edges_and_skip_empty_files() {
        // files [0,10) [10,10) pad [10,13) [13,30)
        let f = |name: &str, length, pad| LayoutFile {
            path: TorrentPath::new(["t", name]).unwrap(),
            length,
            pad,
        };
        let l = Layout::new(
            8,
            [
                f("a", 10, false),
                f("e", 0, false),
                f(".pad", 3, true),
                f("b", 17, false),
            ],
        )
        .unwrap();
        let got = segments(&l, 8, 20);
        assert_eq!(
            got,
            [
                Segment {
                    file: 0,
                    file_offset: 8,
                    len: 2,
                    global: 8,
                    pad: false
                },
                Segment {
                    file: 2,
                    file_offset: 0,
                    len: 3,
                    global: 10,
                    pad: true
                },
                Segment {
                    file: 3,
                    file_offset: 0,
                    len: 7,
                    global: 13,
                    pad: false
                },
            ]
        );
        assert_eq!(segments(&l, 29, 99).len(), 1);
        assert!(segments(&l, 30, 40).is_empty());
    }
}
