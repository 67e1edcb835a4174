//! Pieces ordered by availability, libtorrent style: one flat vector cut into buckets, bucket
//! `a` holding the pieces that `a` (non-seed) peers have. A HAVE moves a piece one bucket up,
//! which is one swap across a bucket boundary, so availability changes cost O(1) and a walk
//! from the front visits the rarest pieces first without sorting anything per pick.
//!
//! Within a bucket the order is random: pieces land on a random slot of their new bucket
//! (one more swap), so equally rare pieces are spread over the swarm instead of every client
//! starting at the lowest index.

use crate::rng::SplitMix64;

/// `pos` value for a piece that is in no list.
pub(super) const UNLISTED: u32 = u32::MAX;

/// The pieces of one priority class, rarest first. Piece positions live in a `pos` slice
/// shared by every class (a piece is in at most one list), indexed by piece.
#[derive(Debug, Clone, Default)]
pub(super) struct BucketList {
    order: Vec<u32>,
    /// `ends[a]` is one past the last slot of bucket `a`; the last entry is `order.len()`.
    ends: Vec<u32>,
}

impl BucketList {
    /// Builds a list from `(availability, random tie-break, piece)` entries; O(n log n),
    /// which is what a mode change (priorities) may cost.
    pub(super) fn build(mut entries: Vec<(u32, u64, u32)>, pos: &mut [u32]) -> Self {
        entries.sort_unstable();
        let mut list = BucketList {
            order: Vec::with_capacity(entries.len()),
            ends: Vec::new(),
        };
        for (avail, _, piece) in entries {
            list.grow_to(avail as usize);
            pos[piece as usize] = list.order.len() as u32;
            list.order.push(piece);
            // Entries arrive sorted, so the new piece only extends bucket `avail`.
            list.ends[avail as usize] += 1;
        }
        list
    }

    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// Pieces, rarest first.
    pub(super) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.order.iter().copied()
    }

    pub(super) fn first(&self) -> Option<u32> {
        self.order.first().copied()
    }

    /// Adds `piece`, which `avail` peers have. O(buckets above `avail`).
    pub(super) fn insert(&mut self, pos: &mut [u32], piece: u32, avail: u32, rng: &mut SplitMix64) {
        let avail = avail as usize;
        self.grow_to(avail);
        let top = self.ends.len() - 1;
        pos[piece as usize] = self.order.len() as u32;
        self.order.push(piece);
        self.ends[top] += 1;
        for bucket in (avail + 1..=top).rev() {
            self.step_down(pos, piece, bucket);
        }
        self.scatter(pos, piece, avail, rng);
    }

    /// Takes `piece` (availability `avail`) out. O(buckets above `avail`).
    pub(super) fn remove(&mut self, pos: &mut [u32], piece: u32, avail: u32) {
        let top = self.ends.len() - 1;
        for bucket in avail as usize..top {
            self.step_up(pos, piece, bucket);
        }
        let last = self.order.len() - 1;
        self.swap(pos, pos[piece as usize] as usize, last);
        self.order.pop();
        self.ends[top] -= 1;
        pos[piece as usize] = UNLISTED;
    }

    /// One more peer has `piece`, which `avail` peers had. O(1).
    pub(super) fn raise(&mut self, pos: &mut [u32], piece: u32, avail: u32, rng: &mut SplitMix64) {
        self.grow_to(avail as usize + 1);
        self.step_up(pos, piece, avail as usize);
        self.scatter(pos, piece, avail as usize + 1, rng);
    }

    /// One peer fewer has `piece`, which `avail` (at least 1) peers had. O(1).
    pub(super) fn lower(&mut self, pos: &mut [u32], piece: u32, avail: u32, rng: &mut SplitMix64) {
        self.step_down(pos, piece, avail as usize);
        self.scatter(pos, piece, avail as usize - 1, rng);
    }

    fn start(&self, bucket: usize) -> usize {
        bucket.checked_sub(1).map_or(0, |b| self.ends[b] as usize)
    }

    fn grow_to(&mut self, bucket: usize) {
        while self.ends.len() <= bucket {
            self.ends.push(self.order.len() as u32);
        }
    }

    fn swap(&mut self, pos: &mut [u32], i: usize, j: usize) {
        self.order.swap(i, j);
        pos[self.order[i] as usize] = i as u32;
        pos[self.order[j] as usize] = j as u32;
    }

    /// Moves `piece` from `bucket` to `bucket + 1` (which must exist): it trades places with
    /// the bucket's last piece and the boundary moves down past it.
    fn step_up(&mut self, pos: &mut [u32], piece: u32, bucket: usize) {
        let last = self.ends[bucket] as usize - 1;
        self.swap(pos, pos[piece as usize] as usize, last);
        self.ends[bucket] -= 1;
    }

    /// Moves `piece` from `bucket` (at least 1) to `bucket - 1`.
    fn step_down(&mut self, pos: &mut [u32], piece: u32, bucket: usize) {
        let first = self.start(bucket);
        self.swap(pos, pos[piece as usize] as usize, first);
        self.ends[bucket - 1] += 1;
    }

    /// Puts `piece` on a random slot of its bucket, keeping ties in random order.
    fn scatter(&mut self, pos: &mut [u32], piece: u32, bucket: usize, rng: &mut SplitMix64) {
        let start = self.start(bucket);
        let width = self.ends[bucket] as usize - start;
        let slot = start + rng.below(width as u32) as usize;
        self.swap(pos, pos[piece as usize] as usize, slot);
    }

    /// Panics unless positions and buckets agree with `avail`.
    #[cfg(any(test, feature = "invariants"))]
    pub(super) fn check(&self, pos: &[u32], avail: &[u32]) {
        assert_eq!(
            self.ends.last().map_or(0, |&e| e as usize),
            self.order.len()
        );
        for (i, &piece) in self.order.iter().enumerate() {
            assert_eq!(pos[piece as usize] as usize, i, "position of piece {piece}");
            let a = avail[piece as usize] as usize;
            assert!(
                self.start(a) <= i && i < self.ends[a] as usize,
                "bucket of {piece}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_moves_keep_pieces_sorted_by_availability() {
        let n = 40u32;
        let mut rng = SplitMix64::new(3);
        let mut pos = vec![UNLISTED; n as usize];
        let mut avail = vec![0u32; n as usize];
        let mut list = BucketList::build(Vec::new(), &mut pos);
        for step in 0..5000 {
            let piece = rng.below(n);
            let p = piece as usize;
            let listed = pos[p] != UNLISTED;
            match rng.below(4) {
                0 if !listed => list.insert(&mut pos, piece, avail[p], &mut rng),
                1 if listed => list.remove(&mut pos, piece, avail[p]),
                2 => {
                    if listed {
                        list.raise(&mut pos, piece, avail[p], &mut rng);
                    }
                    avail[p] += 1;
                }
                _ if avail[p] > 0 => {
                    if listed {
                        list.lower(&mut pos, piece, avail[p], &mut rng);
                    }
                    avail[p] -= 1;
                }
                _ => {}
            }
            list.check(&pos, &avail);
            let walked: Vec<u32> = list.iter().map(|q| avail[q as usize]).collect();
            assert!(walked.windows(2).all(|w| w[0] <= w[1]), "step {step}");
        }
    }

    #[test]
    fn build_sorts_by_availability_then_tie_break() {
        let mut pos = vec![UNLISTED; 4];
        let list = BucketList::build(vec![(2, 0, 0), (0, 9, 1), (0, 1, 2), (5, 0, 3)], &mut pos);
        assert_eq!(list.iter().collect::<Vec<_>>(), [2, 1, 0, 3]);
        list.check(&pos, &[2, 0, 0, 5]);
        assert_eq!(list.first(), Some(2));
        assert_eq!(list.len(), 4);
    }
}
