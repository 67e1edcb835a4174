//! A node's storage: the buffers of pieces under way, who sent each block in them, and the
//! pieces verified and written.

use std::collections::BTreeMap;

use ccbt_engine::{Bitfield, BLOCK_LEN};

use crate::events::NodeId;

/// A piece being received.
#[derive(Debug)]
pub struct PieceBuf {
    pub data: Vec<u8>,
    /// Per block: who sent the bytes now in it, and whether they differ from the content.
    pub senders: Vec<Option<(NodeId, bool)>>,
    /// Every block is in; the hash is under way and the engine must not hand in more.
    pub hashing: bool,
}

#[derive(Debug)]
pub struct Disk {
    pieces: BTreeMap<u32, PieceBuf>,
    /// Verified and written: survives a pause, as the data on a real disk does.
    pub verified: Bitfield,
    /// Bytes in `pieces`, and the most there ever were.
    buffered: u64,
    pub buffered_max: u64,
}

impl Disk {
    pub fn new(verified: Bitfield) -> Disk {
        Disk {
            pieces: BTreeMap::new(),
            verified,
            buffered: 0,
            buffered_max: 0,
        }
    }

    /// Stores a block the engine accepted. Panics if the piece is being hashed or is
    /// already verified: the engine must not accept such a block.
    pub fn store(
        &mut self,
        piece: u32,
        piece_len: u32,
        offset: u32,
        data: &[u8],
        sender: (NodeId, bool),
    ) {
        assert!(
            !self.verified.get(piece),
            "the engine accepted a block of verified piece {piece}"
        );
        let buf = self.pieces.entry(piece).or_insert_with(|| {
            self.buffered += u64::from(piece_len);
            self.buffered_max = self.buffered_max.max(self.buffered);
            PieceBuf {
                data: vec![0; piece_len as usize],
                senders: vec![None; piece_len.div_ceil(BLOCK_LEN) as usize],
                hashing: false,
            }
        });
        assert!(
            !buf.hashing,
            "the engine accepted a block of piece {piece} while it was being hashed"
        );
        buf.data[offset as usize..][..data.len()].copy_from_slice(data);
        buf.senders[(offset / BLOCK_LEN) as usize] = Some(sender);
    }

    /// The piece's last block is in: it goes to be hashed.
    pub fn complete(&mut self, piece: u32) {
        self.pieces
            .get_mut(&piece)
            .expect("a complete piece has a buffer")
            .hashing = true;
    }

    /// The piece's buffer, once its hash is ready.
    pub fn take(&mut self, piece: u32) -> PieceBuf {
        let buf = self
            .pieces
            .remove(&piece)
            .expect("a hashed piece has a buffer");
        assert!(
            buf.hashing,
            "piece {piece} was hashed before it was complete"
        );
        self.buffered -= buf.data.len() as u64;
        buf
    }

    /// A paused torrent drops its pieces under way.
    pub fn drop_partial(&mut self) {
        self.pieces.clear();
        self.buffered = 0;
    }
}
