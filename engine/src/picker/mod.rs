//! The piece picker: which blocks to request from which peer.
//!
//! Order of preference for a peer, as in libtorrent:
//! 1. blocks of pieces already partially requested or received (oldest first), so pieces
//!    finish, get verified and can be shared, and few pieces sit half-done;
//! 2. new pieces, highest priority class first, rarest first within a class, ties broken at
//!    random (seeded), so the swarm keeps every piece alive and clients do not all start at
//!    the same piece; in sequential mode instead the lowest-numbered missing piece;
//! 3. endgame: once every wanted block the peer could give us is already requested or
//!    received, blocks requested from other peers (at most two extra requesters per block,
//!    never twice to one peer), so the last pieces do not wait on one slow peer.
//!
//! Cost: not-started pieces sit in lists bucketed by availability (`availability.rs`), so a
//! HAVE is O(1), a seed joining or leaving is O(1) (seeds are a counter, not per-piece
//! counts), and picking from a peer that has most pieces stops at the first hit. For a peer with few pieces the picker
//! walks that peer's pieces instead. Changing priorities rebuilds the lists: O(n log n).
//!
//! Sans-I/O and deterministic: the same seed and the same calls give the same picks.

mod availability;
mod partial;
pub mod pipeline;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use crate::block::{block, block_count};
use crate::metainfo::Layout;
use crate::{Bitfield, BlockRef};

use crate::rng::SplitMix64;
use availability::{BucketList, UNLISTED};
use partial::{BlockState, Partial, Requesters, MAX_REQUESTERS};
pub use pipeline::request_queue_depth;

/// A slot number the caller assigns to each connected peer.
pub type PeerKey = u32;

/// A file's download priority; a piece takes the highest priority of the files it touches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// Do not download.
    Skip,
    Low,
    Normal,
    High,
}

impl Priority {
    /// Index into [`Picker::classes`]; `None` for Skip, which is in no list.
    fn class(self) -> Option<usize> {
        match self {
            Priority::Skip => None,
            Priority::Low => Some(0),
            Priority::Normal => Some(1),
            Priority::High => Some(2),
        }
    }
}

/// What a received block means, from [`Picker::on_block`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// False if the block was not requested from this peer or was already received: drop
    /// the data.
    pub accepted: bool,
    /// Every block of the piece is now received: hash it.
    pub piece_complete: bool,
    /// Other peers that still have this block requested: send them CANCEL.
    pub cancel: Vec<PeerKey>,
}

impl BlockOutcome {
    fn rejected() -> Self {
        BlockOutcome {
            accepted: false,
            piece_complete: false,
            cancel: Vec::new(),
        }
    }
}

/// `partial_slot` value for a piece that is not being downloaded.
const NOT_PARTIAL: u32 = u32::MAX;

/// Chooses blocks to request; see the module docs.
#[derive(Debug, Clone)]
pub struct Picker {
    piece_count: u32,
    piece_length: u32,
    last_piece_len: u32,
    /// Verified pieces.
    have: Bitfield,
    priority: Vec<Priority>,
    /// Per piece: how many connected non-seed peers have it.
    avail: Vec<u32>,
    /// Connected peers known to have every piece; they add to every piece's availability.
    seeds: u32,
    /// Not-started wanted pieces we lack, one list per priority class (Low, Normal, High).
    classes: [BucketList; 3],
    /// Per piece: its slot in its class list, or [`UNLISTED`].
    pos: Vec<u32>,
    /// Pieces with blocks requested or received, oldest first.
    partials: Vec<Partial>,
    /// Per piece: its index in `partials`, or [`NOT_PARTIAL`].
    partial_slot: Vec<u32>,
    /// Per peer: the blocks (piece, block index) requested from it and not yet received.
    requests: BTreeMap<PeerKey, BTreeSet<(u32, u32)>>,
    /// Wanted pieces not verified yet.
    wanted_left: u32,
    sequential: bool,
    /// In sequential mode: no wanted missing piece lies below this index.
    cursor: u32,
    rng: SplitMix64,
}

impl Picker {
    /// A picker for the torrent of `layout`, every file at Normal priority; `have` holds
    /// the pieces already verified on disk.
    pub fn new(layout: &Layout, have: &Bitfield, seed: u64) -> Picker {
        let n = layout.piece_count();
        let last_piece_len = layout
            .piece(n - 1)
            .map_or(layout.piece_length(), |p| layout.piece_len(p));
        let mut own = Bitfield::empty(n);
        for p in have.iter_ones().take_while(|&p| p < n) {
            own.set(p);
        }
        let mut picker = Picker {
            piece_count: n,
            piece_length: layout.piece_length(),
            last_piece_len,
            have: own,
            priority: vec![Priority::Skip; n as usize],
            avail: vec![0; n as usize],
            seeds: 0,
            classes: Default::default(),
            pos: vec![UNLISTED; n as usize],
            partials: Vec::new(),
            partial_slot: vec![NOT_PARTIAL; n as usize],
            requests: BTreeMap::new(),
            wanted_left: 0,
            sequential: false,
            cursor: 0,
            rng: SplitMix64::new(seed),
        };
        picker.set_file_priorities(layout, &[]);
        picker
    }

    // ---- availability -------------------------------------------------------------------

    /// A peer connected with bitfield `has`. O(1) for a seed, else O(pieces it has).
    pub fn peer_joined(&mut self, has: &Bitfield) {
        if self.is_full(has) {
            self.seeds += 1;
        } else {
            let n = self.piece_count;
            for piece in has.iter_ones().take_while(|&p| p < n) {
                self.raise(piece);
            }
        }
    }

    /// A peer whose bitfield is now `has` disconnected. O(1) for a seed.
    ///
    /// A peer that became a seed through HAVEs was counted per piece, yet leaving with a
    /// full bitfield takes a seed off the counter: every piece's total availability is the
    /// same either way. Only when no seed is counted are the per-piece counts lowered.
    pub fn peer_left(&mut self, has: &Bitfield) {
        if self.is_full(has) && self.seeds > 0 {
            self.seeds -= 1;
        } else {
            let n = self.piece_count;
            for piece in has.iter_ones().take_while(|&p| p < n) {
                self.lower(piece);
            }
        }
    }

    /// A peer announced `piece` (HAVE). Call once per newly set bit; out-of-range pieces
    /// are ignored.
    pub fn peer_has(&mut self, piece: u32) {
        if piece < self.piece_count {
            self.raise(piece);
        }
    }

    /// How many connected peers have `piece`.
    pub fn availability(&self, piece: u32) -> u32 {
        self.avail
            .get(piece as usize)
            .map_or(0, |&a| a.saturating_add(self.seeds))
    }

    fn is_full(&self, has: &Bitfield) -> bool {
        has.len() == self.piece_count && has.is_full()
    }

    fn raise(&mut self, piece: u32) {
        let p = piece as usize;
        let Some(next) = self.avail[p].checked_add(1) else {
            return;
        };
        if let Some(class) = self.listed_class(piece) {
            let avail = self.avail[p];
            self.classes[class].raise(&mut self.pos, piece, avail, &mut self.rng);
        }
        self.avail[p] = next;
    }

    fn lower(&mut self, piece: u32) {
        let p = piece as usize;
        if self.avail[p] == 0 {
            return;
        }
        if let Some(class) = self.listed_class(piece) {
            let avail = self.avail[p];
            self.classes[class].lower(&mut self.pos, piece, avail, &mut self.rng);
        }
        self.avail[p] -= 1;
    }

    // ---- modes --------------------------------------------------------------------------

    /// Strict in-order download: the lowest wanted missing piece the peer has comes first
    /// (partial or not). File priorities then only decide what is wanted, not the order.
    pub fn set_sequential(&mut self, on: bool) {
        self.sequential = on;
        self.cursor = 0;
    }

    /// Sets file priorities (indexed like `layout.files()`; missing entries are Normal).
    /// A piece gets the highest priority among the files it touches; pad files (BEP 47) do
    /// not count, as they are never stored. O(files + pieces log pieces).
    pub fn set_file_priorities(&mut self, layout: &Layout, priorities: &[Priority]) {
        let mut piece_priority = vec![Priority::Skip; self.piece_count as usize];
        for (i, file) in layout.files().iter().enumerate() {
            if file.pad {
                continue;
            }
            let prio = priorities.get(i).copied().unwrap_or(Priority::Normal);
            let range = layout.file_pieces(i);
            let end = range.end.min(self.piece_count);
            for p in range.start.min(end)..end {
                let slot = &mut piece_priority[p as usize];
                *slot = (*slot).max(prio);
            }
        }
        self.priority = piece_priority;
        self.rebuild();
    }

    /// Recomputes the lists and counters from `priority`, `have` and `partials`.
    fn rebuild(&mut self) {
        let mut entries: [Vec<(u32, u64, u32)>; 3] = Default::default();
        self.wanted_left = 0;
        self.pos.fill(UNLISTED);
        for piece in 0..self.piece_count {
            let p = piece as usize;
            let Some(class) = self.priority[p].class() else {
                continue;
            };
            if self.have.get(piece) {
                continue;
            }
            self.wanted_left += 1;
            if self.partial_slot[p] == NOT_PARTIAL {
                entries[class].push((self.avail[p], self.rng.next_u64(), piece));
            }
        }
        for (list, entries) in self.classes.iter_mut().zip(entries) {
            *list = BucketList::build(entries, &mut self.pos);
        }
        self.cursor = 0;
    }

    // ---- picking ------------------------------------------------------------------------

    /// Appends up to `max_blocks` blocks to request from `peer` (which has `peer_has`) to
    /// `out`, and records them as requested by it.
    pub fn pick(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        max_blocks: usize,
        out: &mut Vec<BlockRef>,
    ) {
        let mut need = max_blocks;
        if self.sequential {
            self.pick_in_order(peer, peer_has, &mut need, out);
        } else {
            self.pick_partials(peer, peer_has, &mut need, out);
            while need > 0 {
                let Some(piece) = self.best_new_piece(peer_has) else {
                    break;
                };
                let slot = self.start_piece(piece);
                self.take_open(slot, peer, &mut need, out);
            }
        }
        if need > 0 {
            self.pick_endgame(peer, peer_has, &mut need, out);
        }
    }

    /// For a source that has every piece and serves long contiguous reads best (a web
    /// seed): whole not-started pieces in a run of consecutive pieces, starting at the
    /// lowest-numbered wanted piece nobody has started (so runs are long, and a server
    /// that ignores ranges sends few bytes before them; peers pick rarest first, so the two
    /// rarely meet), about `max_blocks` blocks in all (the first piece is taken whole even
    /// if larger). O(pieces) to find the start.
    /// `more(piece)` is asked before each piece after the first and may end the run. With
    /// no untouched piece left it falls back to [`Picker::pick`] with every piece: open
    /// blocks of pieces under way, then endgame duplicates.
    pub fn pick_run(
        &mut self,
        peer: PeerKey,
        max_blocks: usize,
        out: &mut Vec<BlockRef>,
        mut more: impl FnMut(u32) -> bool,
    ) {
        let first = (0..self.piece_count).find(|&p| self.listed_class(p).is_some());
        let Some(first) = first else {
            let all = Bitfield::full(self.piece_count);
            self.pick(peer, &all, max_blocks, out);
            return;
        };
        let mut need = max_blocks.max(block_count(self.piece_len(first)) as usize);
        let mut piece = first;
        loop {
            let slot = self.start_piece(piece);
            self.take_open(slot, peer, &mut need, out);
            piece += 1;
            let fits = piece < self.piece_count
                && self.listed_class(piece).is_some()
                && need >= block_count(self.piece_len(piece)) as usize;
            if !fits || !more(piece) {
                return;
            }
        }
    }

    /// Open blocks of pieces already under way.
    fn pick_partials(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        need: &mut usize,
        out: &mut Vec<BlockRef>,
    ) {
        for slot in 0..self.partials.len() {
            if *need == 0 {
                return;
            }
            let partial = &self.partials[slot];
            if partial.open > 0 && self.wants_missing(partial.piece) && peer_has.get(partial.piece)
            {
                self.take_open(slot, peer, need, out);
            }
        }
    }

    /// The lowest-numbered wanted missing pieces the peer has, started or not.
    fn pick_in_order(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        need: &mut usize,
        out: &mut Vec<BlockRef>,
    ) {
        while self.cursor < self.piece_count && !self.wants_missing(self.cursor) {
            self.cursor += 1;
        }
        for piece in self.cursor..self.piece_count {
            if *need == 0 {
                return;
            }
            if !self.wants_missing(piece) || !peer_has.get(piece) {
                continue;
            }
            let slot = match self.partial_slot[piece as usize] {
                NOT_PARTIAL => self.start_piece(piece),
                slot => slot as usize,
            };
            self.take_open(slot, peer, need, out);
        }
    }

    /// The best not-started piece the peer has: highest class, then rarest (list order).
    fn best_new_piece(&self, peer_has: &Bitfield) -> Option<u32> {
        if self.is_full(peer_has) {
            return self.classes.iter().rev().find_map(BucketList::first);
        }
        let listed: usize = self.classes.iter().map(BucketList::len).sum();
        if (peer_has.count() as usize) < listed / 8 {
            // A sparse peer: walking its pieces beats walking the lists.
            return peer_has
                .iter_ones()
                .take_while(|&p| p < self.piece_count)
                .filter_map(|p| {
                    let class = self.listed_class(p)?;
                    Some((std::cmp::Reverse(class), self.pos[p as usize], p))
                })
                .min()
                .map(|(_, _, p)| p);
        }
        self.classes
            .iter()
            .rev()
            .flat_map(BucketList::iter)
            .find(|&p| peer_has.get(p))
    }

    /// Blocks already requested from other peers, fewest requesters first.
    fn pick_endgame(
        &mut self,
        peer: PeerKey,
        peer_has: &Bitfield,
        need: &mut usize,
        out: &mut Vec<BlockRef>,
    ) {
        for requesters in 1..MAX_REQUESTERS {
            for slot in 0..self.partials.len() {
                let piece = self.partials[slot].piece;
                if !self.wants_missing(piece) || !peer_has.get(piece) {
                    continue;
                }
                let len = self.piece_len(piece);
                let partial = &mut self.partials[slot];
                for (i, state) in partial.blocks.iter_mut().enumerate() {
                    if *need == 0 {
                        return;
                    }
                    let BlockState::Requested(rs) = state else {
                        continue;
                    };
                    if rs.len() == requesters && !rs.contains(peer) && rs.push(peer) {
                        let i = i as u32;
                        self.requests.entry(peer).or_default().insert((piece, i));
                        out.push(block(piece, i, len));
                        *need -= 1;
                    }
                }
            }
        }
    }

    /// Moves `piece` from its class list to `partials`; returns its slot there.
    fn start_piece(&mut self, piece: u32) -> usize {
        if let Some(class) = self.listed_class(piece) {
            self.classes[class].remove(&mut self.pos, piece, self.avail[piece as usize]);
        }
        let slot = self.partials.len();
        self.partial_slot[piece as usize] = slot as u32;
        let blocks = block_count(self.piece_len(piece));
        self.partials.push(Partial::new(piece, blocks));
        slot
    }

    /// Requests the open blocks of `partials[slot]` from `peer`, lowest offset first.
    fn take_open(&mut self, slot: usize, peer: PeerKey, need: &mut usize, out: &mut Vec<BlockRef>) {
        let piece = self.partials[slot].piece;
        let len = self.piece_len(piece);
        let partial = &mut self.partials[slot];
        for (i, state) in partial.blocks.iter_mut().enumerate() {
            if *need == 0 || partial.open == 0 {
                break;
            }
            if *state == BlockState::Open {
                *state = BlockState::Requested(Requesters::one(peer));
                partial.open -= 1;
                self.requests
                    .entry(peer)
                    .or_default()
                    .insert((piece, i as u32));
                out.push(block(piece, i as u32, len));
                *need -= 1;
            }
        }
    }

    // ---- events -------------------------------------------------------------------------

    /// `peer` sent `block`. Accepted only if it was requested from that peer and not
    /// received yet; records the peer as the block's source.
    pub fn on_block(&mut self, peer: PeerKey, block: BlockRef) -> BlockOutcome {
        let Some(i) = self.requested_index(peer, block) else {
            return BlockOutcome::rejected();
        };
        let slot = self.partial_slot[block.piece as usize] as usize;
        let BlockState::Requested(rs) = self.partials[slot].blocks[i as usize] else {
            return BlockOutcome::rejected();
        };
        let mut cancel = Vec::new();
        for &r in rs.as_slice() {
            self.forget_request(r, block.piece, i);
            if r != peer {
                cancel.push(r);
            }
        }
        let partial = &mut self.partials[slot];
        partial.blocks[i as usize] = BlockState::Received(peer);
        partial.received += 1;
        BlockOutcome {
            accepted: true,
            piece_complete: partial.is_complete(),
            cancel,
        }
    }

    /// The request of `block` from `peer` is void (rejected, timed out, choked). The block
    /// becomes pickable again unless another peer has it requested or it was received.
    pub fn on_request_dropped(&mut self, peer: PeerKey, block: BlockRef) {
        if let Some(i) = self.requested_index(peer, block) {
            self.forget_request(peer, block.piece, i);
            self.release(peer, block.piece, i);
        }
    }

    /// `peer` disconnected: all its outstanding requests are void. (Its availability goes
    /// through [`Picker::peer_left`].)
    pub fn on_peer_gone(&mut self, peer: PeerKey) {
        for (piece, i) in self.requests.remove(&peer).unwrap_or_default() {
            self.release(peer, piece, i);
        }
    }

    /// `piece` passed its hash check (or was found on disk).
    pub fn on_piece_verified(&mut self, piece: u32) {
        if piece >= self.piece_count || !self.have.set(piece) {
            return;
        }
        if self.priority[piece as usize] != Priority::Skip {
            self.wanted_left -= 1;
        }
        if let Some(class) = self.listed_class(piece) {
            self.classes[class].remove(&mut self.pos, piece, self.avail[piece as usize]);
        }
        self.discard_partial(piece);
    }

    /// `piece` failed its hash check: every block of it is forgotten so it is fetched again.
    /// Returns the distinct peers that delivered blocks of it, ascending.
    pub fn on_piece_failed(&mut self, piece: u32) -> Vec<PeerKey> {
        if piece >= self.piece_count {
            return Vec::new();
        }
        let contributors = self.discard_partial(piece);
        if self.have.clear(piece) && self.priority[piece as usize] != Priority::Skip {
            self.wanted_left += 1;
        }
        self.relist(piece);
        self.cursor = self.cursor.min(piece);
        contributors
    }

    /// The block index `block` names if it is outstanding to `peer`; anything else a peer
    /// may send (odd offsets, wrong lengths, unknown pieces) gives `None`.
    fn requested_index(&self, peer: PeerKey, block: BlockRef) -> Option<u32> {
        let i = block.index()?;
        if block.piece >= self.piece_count
            || i >= block_count(self.piece_len(block.piece))
            || crate::block::block(block.piece, i, self.piece_len(block.piece)).len != block.len
        {
            return None;
        }
        self.requests
            .get(&peer)?
            .contains(&(block.piece, i))
            .then_some(i)
    }

    /// Removes `(piece, i)` from `peer`'s outstanding set.
    fn forget_request(&mut self, peer: PeerKey, piece: u32, i: u32) {
        if let Some(mine) = self.requests.get_mut(&peer) {
            mine.remove(&(piece, i));
            if mine.is_empty() {
                self.requests.remove(&peer);
            }
        }
    }

    /// Takes `peer` off block `i` of `piece`; the block reopens if nobody else has it, and
    /// a piece with nothing requested or received goes back to the rarity lists.
    fn release(&mut self, peer: PeerKey, piece: u32, i: u32) {
        let slot = self.partial_slot[piece as usize];
        let Some(partial) = self.partials.get_mut(slot as usize) else {
            return;
        };
        let state = &mut partial.blocks[i as usize];
        if let BlockState::Requested(rs) = state {
            if rs.remove(peer) && rs.len() == 0 {
                *state = BlockState::Open;
                partial.open += 1;
            }
        }
        if partial.is_untouched() {
            self.discard_partial(piece);
            self.relist(piece);
        }
    }

    /// Drops `piece`'s download state and every outstanding request for it; returns the
    /// peers that had delivered blocks of it.
    fn discard_partial(&mut self, piece: u32) -> Vec<PeerKey> {
        let slot = self.partial_slot[piece as usize];
        if slot == NOT_PARTIAL {
            return Vec::new();
        }
        let partial = self.partials.remove(slot as usize);
        self.partial_slot[piece as usize] = NOT_PARTIAL;
        for later in &self.partials[slot as usize..] {
            self.partial_slot[later.piece as usize] -= 1;
        }
        for (i, state) in partial.blocks.iter().enumerate() {
            if let BlockState::Requested(rs) = state {
                for &r in rs.as_slice() {
                    self.forget_request(r, piece, i as u32);
                }
            }
        }
        partial.contributors()
    }

    /// Puts a wanted, missing, not-started piece back in its class list.
    fn relist(&mut self, piece: u32) {
        let p = piece as usize;
        let Some(class) = self.priority[p].class() else {
            return;
        };
        if self.have.get(piece) || self.partial_slot[p] != NOT_PARTIAL || self.pos[p] != UNLISTED {
            return;
        }
        self.classes[class].insert(&mut self.pos, piece, self.avail[p], &mut self.rng);
    }

    // ---- queries ------------------------------------------------------------------------

    /// Verified pieces.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    /// Whether `piece`'s priority is above Skip (whether or not we have it).
    pub fn is_wanted(&self, piece: u32) -> bool {
        self.priority
            .get(piece as usize)
            .is_some_and(|&p| p != Priority::Skip)
    }

    /// `piece`'s priority (Skip for out-of-range pieces).
    pub fn piece_priority(&self, piece: u32) -> Priority {
        self.priority
            .get(piece as usize)
            .copied()
            .unwrap_or(Priority::Skip)
    }

    /// Wanted pieces not verified yet.
    pub fn wanted_left(&self) -> u32 {
        self.wanted_left
    }

    /// Every wanted piece is verified.
    pub fn is_done(&self) -> bool {
        self.wanted_left == 0
    }

    /// Whether a peer with `peer_has` has a wanted piece we lack. O(1) for a seed; else
    /// stops at the first such piece.
    pub fn peer_is_interesting(&self, peer_has: &Bitfield) -> bool {
        if self.wanted_left == 0 {
            return false;
        }
        self.is_full(peer_has)
            || peer_has
                .iter_ones()
                .take_while(|&p| p < self.piece_count)
                .any(|p| self.wants_missing(p))
    }

    /// Every block of every wanted missing piece is requested or received: from here on
    /// peers get duplicate requests. O(pieces under way).
    pub fn in_endgame(&self) -> bool {
        self.wanted_left > 0
            && self.classes.iter().all(|l| l.len() == 0)
            && self
                .partials
                .iter()
                .all(|p| p.open == 0 || !self.wants_missing(p.piece))
    }

    /// Whether `block` (a whole block on its boundary) is outstanding to `peer`.
    pub fn is_requested(&self, peer: PeerKey, block: BlockRef) -> bool {
        self.requested_index(peer, block).is_some()
    }

    /// Blocks currently requested from `peer`.
    pub fn outstanding(&self, peer: PeerKey) -> usize {
        self.requests.get(&peer).map_or(0, BTreeSet::len)
    }

    pub fn is_sequential(&self) -> bool {
        self.sequential
    }

    fn wants_missing(&self, piece: u32) -> bool {
        self.priority[piece as usize] != Priority::Skip && !self.have.get(piece)
    }

    fn listed_class(&self, piece: u32) -> Option<usize> {
        if self.pos[piece as usize] == UNLISTED {
            return None;
        }
        self.priority[piece as usize].class()
    }

    /// The blocks (piece, block index) the picker has on record as requested from `peer`.
    #[cfg(any(test, feature = "invariants"))]
    pub(crate) fn requested_from(&self, peer: PeerKey) -> BTreeSet<(u32, u32)> {
        self.requests.get(&peer).cloned().unwrap_or_default()
    }

    fn piece_len(&self, piece: u32) -> u32 {
        if piece + 1 == self.piece_count {
            self.last_piece_len
        } else {
            self.piece_length
        }
    }

    /// Panics unless every index and counter agrees with the state it summarises.
    #[cfg(any(test, feature = "invariants"))]
    pub(crate) fn check_invariants(&self) {
        let mut listed = 0;
        for list in &self.classes {
            list.check(&self.pos, &self.avail);
            listed += list.len();
        }
        let mut wanted_left = 0;
        for piece in 0..self.piece_count {
            let p = piece as usize;
            let open = self.wants_missing(piece) && self.partial_slot[p] == NOT_PARTIAL;
            assert_eq!(self.pos[p] != UNLISTED, open, "piece {piece} listing");
            if open {
                let class = self.priority[p].class().unwrap();
                let list = &self.classes[class];
                assert_eq!(list.iter().nth(self.pos[p] as usize), Some(piece));
            }
            wanted_left += u32::from(self.wants_missing(piece));
        }
        assert_eq!(listed, self.pos.iter().filter(|&&s| s != UNLISTED).count());
        assert_eq!(wanted_left, self.wanted_left);
        let mut outstanding = BTreeMap::<PeerKey, BTreeSet<(u32, u32)>>::new();
        for (slot, partial) in self.partials.iter().enumerate() {
            assert_eq!(self.partial_slot[partial.piece as usize] as usize, slot);
            assert!(!partial.is_untouched(), "empty partial {}", partial.piece);
            let mut open = 0;
            let mut received = 0;
            for (i, state) in partial.blocks.iter().enumerate() {
                match state {
                    BlockState::Open => open += 1,
                    BlockState::Received(_) => received += 1,
                    BlockState::Requested(rs) => {
                        assert!(rs.len() > 0);
                        for &r in rs.as_slice() {
                            let fresh = outstanding
                                .entry(r)
                                .or_default()
                                .insert((partial.piece, i as u32));
                            assert!(fresh);
                        }
                    }
                }
            }
            assert_eq!((open, received), (partial.open, partial.received));
        }
        assert_eq!(outstanding, self.requests);
        let partial_count = self
            .partial_slot
            .iter()
            .filter(|&&s| s != NOT_PARTIAL)
            .count();
        assert_eq!(partial_count, self.partials.len());
    }
}
