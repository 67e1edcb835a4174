//! Per-file progress from a torrent's have-bitfield (asked of its shard), or an estimate
//! from the piece count when the shard did not answer in time.

use ccbt_engine::metainfo::Layout;
use ccbt_engine::Bitfield;

/// Bytes of each file (in torrent order) covered by pieces the torrent has.
pub fn completed(layout: &Layout, have: Option<&Bitfield>, have_pieces: u64) -> Vec<u64> {
    let files = layout.files();
    match have {
        Some(bits) => files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (start, end) = (f.offset, f.offset + f.length);
                layout
                    .file_pieces(i)
                    .filter(|&p| bits.get(p))
                    .filter_map(|p| layout.piece(p))
                    .map(|p| {
                        let p_start = layout.piece_offset(p);
                        let p_end = p_start + u64::from(layout.piece_len(p));
                        end.min(p_end).saturating_sub(start.max(p_start))
                    })
                    .sum()
            })
            .collect(),
        None => {
            let pieces = u64::from(layout.piece_count()).max(1);
            files
                .iter()
                .map(|f| {
                    if have_pieces >= pieces {
                        f.length
                    } else {
                        // An estimate: the share of pieces the torrent has.
                        (u128::from(f.length) * u128::from(have_pieces) / u128::from(pieces)) as u64
                    }
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccbt_engine::metainfo::Metainfo;

    /// A two-file torrent: a.bin 5 bytes, b.bin 7 bytes, pieces of 4 bytes (3 pieces).
    fn layout() -> Layout {
        let mut info = Vec::new();
        info.extend_from_slice(b"d5:filesl");
        info.extend_from_slice(b"d6:lengthi5e4:pathl5:a.binee");
        info.extend_from_slice(b"d6:lengthi7e4:pathl5:b.binee");
        info.extend_from_slice(b"e4:name1:t12:piece lengthi4e6:pieces60:");
        info.extend_from_slice(&[0u8; 60]);
        info.extend_from_slice(b"e");
        let mut t = b"d4:info".to_vec();
        t.extend_from_slice(&info);
        t.extend_from_slice(b"e");
        Metainfo::parse(&t).unwrap().info.layout
    }

    #[test]
    fn pieces_are_split_between_the_files_they_cover() {
        let layout = layout();
        let mut have = Bitfield::empty(3);
        have.set(1); // bytes 4..8: a.bin's last byte, b.bin's first three
        assert_eq!(completed(&layout, Some(&have), 1), vec![1, 3]);
        have.set(2); // bytes 8..12
        assert_eq!(completed(&layout, Some(&have), 2), vec![1, 7]);
        assert_eq!(completed(&layout, None, 3), vec![5, 7]);
        assert_eq!(completed(&layout, None, 0), vec![0, 0]);
    }
}
