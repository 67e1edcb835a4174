//! Blocks: the 16 KiB units in which pieces are requested and sent.

/// The block size every client requests (BEP 3 recommends 2^14 and most peers refuse more).
pub const BLOCK_LEN: u32 = 16 * 1024;

/// One block of one piece: what a `request`, `piece` header or `cancel` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockRef {
    pub piece: u32,
    /// Byte offset within the piece; a multiple of [`BLOCK_LEN`] for blocks we request.
    pub offset: u32,
    pub len: u32,
}

/// How many blocks a piece of `piece_len` bytes has.
pub fn block_count(piece_len: u32) -> u32 {
    piece_len.div_ceil(BLOCK_LEN)
}

/// The `index`-th block of a piece of `piece_len` bytes (the last one may be short).
pub fn block(piece: u32, index: u32, piece_len: u32) -> BlockRef {
    let offset = index * BLOCK_LEN;
    BlockRef {
        piece,
        offset,
        len: BLOCK_LEN.min(piece_len - offset),
    }
}

impl BlockRef {
    /// Which block of its piece this is, if it lies on a block boundary.
    pub fn index(&self) -> Option<u32> {
        (self.offset % BLOCK_LEN == 0).then_some(self.offset / BLOCK_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_block_is_short() {
        assert_eq!(block_count(BLOCK_LEN * 2 + 1), 3);
        assert_eq!(block(7, 2, BLOCK_LEN * 2 + 1).len, 1);
        assert_eq!(block(7, 1, BLOCK_LEN * 2 + 1).offset, BLOCK_LEN);
        assert_eq!(block_count(1), 1);
    }
}
