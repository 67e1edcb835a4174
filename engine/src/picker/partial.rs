//! A piece being downloaded: the state of each of its blocks and who is involved.

use super::PeerKey;

/// How many peers may have one block requested at once: the first requester plus two
/// endgame duplicates, enough to route around one slow peer without wasting much bandwidth.
pub(super) const MAX_REQUESTERS: usize = 3;

/// The peers a block is requested from, in request order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Requesters {
    peers: [PeerKey; MAX_REQUESTERS],
    len: u8,
}

impl Requesters {
    pub(super) fn one(peer: PeerKey) -> Self {
        Requesters {
            peers: [peer; MAX_REQUESTERS],
            len: 1,
        }
    }

    pub(super) fn as_slice(&self) -> &[PeerKey] {
        &self.peers[..usize::from(self.len)]
    }

    pub(super) fn contains(&self, peer: PeerKey) -> bool {
        self.as_slice().contains(&peer)
    }

    pub(super) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Adds `peer`; false when the block already has [`MAX_REQUESTERS`] requesters.
    pub(super) fn push(&mut self, peer: PeerKey) -> bool {
        if self.len() == MAX_REQUESTERS {
            return false;
        }
        self.peers[self.len()] = peer;
        self.len += 1;
        true
    }

    /// Drops `peer`; returns whether it was there.
    pub(super) fn remove(&mut self, peer: PeerKey) -> bool {
        let Some(i) = self.as_slice().iter().position(|&p| p == peer) else {
            return false;
        };
        let len = self.len();
        self.peers.copy_within(i + 1..len, i);
        self.len -= 1;
        true
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BlockState {
    /// Nobody has it requested and we do not have it.
    Open,
    Requested(Requesters),
    /// Delivered by this peer, waiting for the piece's hash check.
    Received(PeerKey),
}

/// A piece with at least one block requested or received.
#[derive(Debug, Clone)]
pub(super) struct Partial {
    pub(super) piece: u32,
    pub(super) blocks: Vec<BlockState>,
    /// Blocks in [`BlockState::Open`].
    pub(super) open: u32,
    /// Blocks in [`BlockState::Received`].
    pub(super) received: u32,
}

impl Partial {
    pub(super) fn new(piece: u32, blocks: u32) -> Self {
        Partial {
            piece,
            blocks: vec![BlockState::Open; blocks as usize],
            open: blocks,
            received: 0,
        }
    }

    /// Nothing requested, nothing received: the piece can go back to the rarity lists.
    pub(super) fn is_untouched(&self) -> bool {
        self.open as usize == self.blocks.len()
    }

    pub(super) fn is_complete(&self) -> bool {
        self.received as usize == self.blocks.len()
    }

    /// The distinct peers that delivered blocks of this piece, ascending.
    pub(super) fn contributors(&self) -> Vec<PeerKey> {
        let mut peers: Vec<PeerKey> = self
            .blocks
            .iter()
            .filter_map(|b| match b {
                BlockState::Received(p) => Some(*p),
                _ => None,
            })
            .collect();
        peers.sort_unstable();
        peers.dedup();
        peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requesters_are_bounded_and_removable() {
        let mut r = Requesters::one(7);
        assert!(r.push(8) && r.push(9));
        assert!(!r.push(10));
        assert!(r.remove(8) && !r.remove(8));
        assert_eq!(r.as_slice(), [7, 9]);
        assert!(r.contains(9) && !r.contains(8));
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn contributors_are_distinct() {
        let mut p = Partial::new(0, 3);
        p.blocks = vec![
            BlockState::Received(5),
            BlockState::Received(2),
            BlockState::Received(5),
        ];
        assert_eq!(p.contributors(), [2, 5]);
    }
}
