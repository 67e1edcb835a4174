//! A torrent's web seeds (BEP 19): the planner that decides what each asks its server
//! for, and the bookkeeping of what comes back.
//!
//! Call [`Torrent::web_seed_next`] when a web seed's connection has room for more
//! requests; it returns HTTP fetches covering whole pieces the picker handed to that web
//! seed (a run of consecutive pieces of about [`RUN_BYTES`], cut into per-file requests).
//! Feed each fetch's body bytes to [`Torrent::web_seed_data`], which says which slices to
//! copy into which piece buffers and which pieces are complete (hash them and call
//! [`Torrent::piece_checked`] as for peers). On any failure call
//! [`Torrent::web_seed_failed`]: every block outstanding to that web seed goes back to the
//! picker and it backs off. A web seed whose pieces fail the hash
//! `hash_failures_to_ban` times is dropped.
//!
//! Bounds: [`WEB_SEEDS_MAX`] web seeds per torrent (more are refused); each has at most
//! two runs outstanding (a new run is planned only while at most one is; a run is about
//! [`RUN_BYTES`], or its first piece if pieces are larger), and a run holds at most
//! [`RUN_SEGMENTS_MAX`] file requests past its first piece.

use std::time::Duration;

use super::{Action, Torrent};
use crate::block::block;
use crate::picker::PeerKey;
use crate::webseed::{file_url, segments, Fetch, WebSeed, WebSeedError};
use crate::wire::Message;
use crate::BLOCK_LEN;

/// Web seeds one torrent keeps at most.
pub const WEB_SEEDS_MAX: usize = 16;
/// Picker keys of web seeds: the top of the key space, which peers never get.
pub(super) const WEB_KEY_MIN: PeerKey = PeerKey::MAX - WEB_SEEDS_MAX as PeerKey + 1;
/// Bytes of whole pieces asked of a web seed at a time.
pub const RUN_BYTES: u64 = 4 << 20;
/// The same for a server that ignores `Range` (each request costs the file up to it, so
/// fewer, longer ones).
pub const RUN_BYTES_WHOLE_FILE: u64 = 32 << 20;
/// File requests one run may add after its first piece.
pub const RUN_SEGMENTS_MAX: usize = 256;

/// Which web seed of a torrent.
pub type WebSeedId = usize;

/// Copy `bytes[at..at + len]` to offset `offset` of piece `piece`'s buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebStore {
    pub piece: u32,
    pub offset: u32,
    pub at: usize,
    pub len: usize,
}

/// What [`Torrent::web_seed_data`] makes of some body bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebData {
    pub stores: Vec<WebStore>,
    /// Pieces now complete: hash them.
    pub complete: Vec<u32>,
}

impl Torrent {
    /// Adds a web seed (an http:// or https:// URL). Refused past [`WEB_SEEDS_MAX`] or if
    /// it is already there.
    pub fn add_web_seed(&mut self, url: &str) -> Result<WebSeedId, WebSeedError> {
        // Checks the URL's form once, here, against the first file.
        file_url(url, &self.layout, 0)?;
        if self.web.iter().any(|w| w.url == url) {
            return Err(WebSeedError::Duplicate);
        }
        if self.web.len() >= WEB_SEEDS_MAX {
            return Err(WebSeedError::TooMany(WEB_SEEDS_MAX));
        }
        let id = self.web.len();
        self.web
            .push(WebSeed::new(url.to_string(), PeerKey::MAX - id as PeerKey));
        Ok(id)
    }

    pub fn web_seeds(&self) -> &[WebSeed] {
        &self.web
    }

    /// When web seed `id` may next be asked for work: `now` or later, or `None` once it is
    /// dropped (or unknown).
    pub fn web_seed_ready_at(&self, now: Duration, id: WebSeedId) -> Option<Duration> {
        let seed = self.web.get(id)?;
        if seed.dropped.is_some() {
            return None;
        }
        Some(seed.backoff.waiting(now).unwrap_or(now))
    }

    /// Web seeds not dropped, and how many of them are backing off: for status lines.
    pub fn web_seed_counts(&self, now: Duration) -> (u64, u64) {
        let usable = self.web.iter().filter(|w| w.dropped.is_none());
        let failing = usable
            .clone()
            .filter(|w| w.backoff.waiting(now).is_some())
            .count();
        (usable.count() as u64, failing as u64)
    }

    /// Plans requests for web seed `id`: empty when it is backing off or dropped, has more
    /// than one run's worth outstanding already, or nothing is left to fetch.
    pub fn web_seed_next(&mut self, now: Duration, id: WebSeedId) -> Vec<Fetch> {
        let Some(seed) = self.web.get(id) else {
            return Vec::new();
        };
        if seed.dropped.is_some() || seed.backoff.waiting(now).is_some() || self.is_done() {
            return Vec::new();
        }
        let run_bytes = if seed.ranges_ignored {
            RUN_BYTES_WHOLE_FILE
        } else {
            RUN_BYTES
        };
        let key = seed.key;
        // Two runs in flight keep a pipelining connection busy between them: a new one is
        // planned while at most one is outstanding.
        if self.picker.outstanding(key) as u64 * u64::from(BLOCK_LEN) > run_bytes {
            return Vec::new();
        }
        self.scratch.clear();
        let layout = &self.layout;
        let mut segments_taken = 0usize;
        self.picker.pick_run(
            key,
            (run_bytes / u64::from(BLOCK_LEN)) as usize,
            &mut self.scratch,
            |piece| {
                segments_taken += layout
                    .piece(piece)
                    .map_or(0, |p| layout.piece_spans(p).count());
                segments_taken <= RUN_SEGMENTS_MAX
            },
        );
        self.steps += self.scratch.len() as u64;
        // Blocks to torrent byte ranges, adjacent ones joined.
        let mut ranges: Vec<(u64, u64)> = self
            .scratch
            .iter()
            .filter_map(|b| {
                let start =
                    self.layout.piece_offset(self.layout.piece(b.piece)?) + u64::from(b.offset);
                Some((start, start + u64::from(b.len)))
            })
            .collect();
        ranges.sort_unstable();
        let mut joined: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for (start, end) in ranges {
            match joined.last_mut() {
                Some(last) if last.1 == start => last.1 = end,
                _ => joined.push((start, end)),
            }
        }
        let base = self.web[id].url.clone();
        let mut fetches = Vec::new();
        for (start, end) in joined {
            for segment in segments(&self.layout, start, end) {
                let url = if segment.pad {
                    None
                } else {
                    match file_url(&base, &self.layout, segment.file) {
                        Ok(url) => Some(url),
                        Err(e) => {
                            self.web_seed_failed(now, id, e);
                            return Vec::new();
                        }
                    }
                };
                fetches.push(Fetch {
                    url,
                    file_len: self.layout.files()[segment.file].length,
                    segment,
                    redirects: 0,
                });
            }
        }
        fetches
    }

    /// Body bytes from web seed `id` for the torrent's bytes starting at `global`. Bytes of
    /// blocks no longer outstanding to it (taken by a peer in endgame, or already failed)
    /// are counted as wasted and not stored.
    pub fn web_seed_data(
        &mut self,
        now: Duration,
        id: WebSeedId,
        global: u64,
        bytes: &[u8],
    ) -> WebData {
        let mut out = WebData::default();
        let Some(key) = self.web.get(id).map(|w| w.key) else {
            return out;
        };
        self.download.record(now, bytes.len() as u64);
        let piece_length = u64::from(self.layout.piece_length());
        let mut pos = 0usize;
        while pos < bytes.len() {
            let g = global + pos as u64;
            let Some(index) = u32::try_from(g / piece_length)
                .ok()
                .and_then(|p| self.layout.piece(p))
            else {
                self.wasted += (bytes.len() - pos) as u64;
                break;
            };
            let piece = index.get();
            let in_piece = (g - self.layout.piece_offset(index)) as u32;
            let i = in_piece / BLOCK_LEN;
            let blk = block(piece, i, self.layout.piece_len(index));
            let n = ((blk.offset + blk.len - in_piece) as usize).min(bytes.len() - pos);
            pos += n;
            if !self.picker.is_requested(key, blk) {
                self.wasted += n as u64;
                continue;
            }
            out.stores.push(WebStore {
                piece,
                offset: in_piece,
                at: pos - n,
                len: n,
            });
            let seed = &mut self.web[id];
            let got = seed.partial.entry((piece, i)).or_insert(0);
            *got += n as u32;
            if *got < blk.len {
                continue;
            }
            seed.partial.remove(&(piece, i));
            let outcome = self.picker.on_block(key, blk);
            if !outcome.accepted {
                continue;
            }
            self.web[id].downloaded += u64::from(blk.len);
            for other in outcome.cancel {
                if let Some(w) = self.web.iter_mut().find(|w| w.key == other) {
                    w.partial.remove(&(piece, i));
                } else if let Some(p) = self.peers.get_mut(&other) {
                    if let Some(at) = p.sent_requests.iter().position(|(b, _)| *b == blk) {
                        p.sent_requests.remove(at);
                    }
                    Message::Cancel(blk).encode(&mut p.outbox);
                    p.last_sent = now;
                    self.actions.push_back(Action::Wake(other));
                }
            }
            if outcome.piece_complete {
                out.complete.push(piece);
            }
        }
        out
    }

    /// A response from web seed `id` was good: its back-off starts over. `whole_file`: the
    /// server ignored `Range` and sent the whole file, so it gets longer runs.
    pub fn web_seed_succeeded(&mut self, id: WebSeedId, whole_file: bool) {
        if let Some(seed) = self.web.get_mut(id) {
            seed.backoff.succeeded();
            seed.last_error = None;
            seed.ranges_ignored |= whole_file;
        }
    }

    /// A request of web seed `id` failed (HTTP error, bad response, connection): every
    /// block outstanding to it goes back to the picker, which offers them to peers at
    /// once, and it backs off. Returns when it may be asked again.
    pub fn web_seed_failed(
        &mut self,
        now: Duration,
        id: WebSeedId,
        error: WebSeedError,
    ) -> Option<Duration> {
        let seed = self.web.get_mut(id)?;
        let retry_after = match error {
            WebSeedError::Status { retry_after, .. } => retry_after,
            _ => None,
        };
        seed.partial.clear();
        let wait = seed.backoff.fail(now, retry_after);
        seed.last_error = Some(error);
        let key = seed.key;
        self.picker.on_peer_gone(key);
        self.refill_all(now);
        Some(now + wait)
    }

    /// The pieces `contributors` delivered failed their hash: web seeds among them get a
    /// strike, and are dropped at `hash_failures_to_ban`.
    pub(super) fn web_seed_strikes(&mut self, contributors: &[PeerKey]) {
        for &key in contributors.iter().filter(|&&k| k >= WEB_KEY_MIN) {
            let limit = self.config.hash_failures_to_ban;
            let Some(seed) = self.web.iter_mut().find(|w| w.key == key) else {
                continue;
            };
            seed.hash_failures += 1;
            if seed.hash_failures >= limit && seed.dropped.is_none() {
                seed.dropped = Some(WebSeedError::HashFailures(seed.hash_failures));
                seed.partial.clear();
                self.picker.on_peer_gone(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::hash::Sha1;
    use crate::metainfo::{Layout, LayoutFile, TorrentPath};
    use crate::session::{PeerCaps, SessionConfig};
    use crate::webseed::WebSeedState;
    use crate::wire::decode_message;
    use crate::Bitfield;

    const PIECE: u32 = 4 * BLOCK_LEN;
    const NOW: Duration = Duration::from_secs(100);

    fn content(total: u64) -> Vec<u8> {
        (0..total).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn torrent(files: &[(&[&str], u64, bool)]) -> Torrent {
        let layout = Layout::new(
            PIECE,
            files.iter().map(|(p, length, pad)| LayoutFile {
                path: TorrentPath::new(p.iter()).unwrap(),
                length: *length,
                pad: *pad,
            }),
        )
        .unwrap();
        let have = Bitfield::empty(layout.piece_count());
        Torrent::new(layout, &have, SessionConfig::default(), 7)
    }

    /// Serves every fetch from `data` (as a web seed would), hashing complete pieces
    /// against `data`'s own pieces; `corrupt` flips the first byte of every piece. Returns the
    /// pieces that passed.
    fn serve(
        t: &mut Torrent,
        id: WebSeedId,
        data: &[u8],
        fetches: &[Fetch],
        corrupt: bool,
    ) -> Vec<u32> {
        let mut buffers: std::collections::HashMap<u32, Vec<u8>> = Default::default();
        let mut passed = Vec::new();
        for f in fetches {
            let s = f.segment;
            let mut bytes = if s.pad {
                vec![0; s.len as usize]
            } else {
                data[s.global as usize..(s.global + s.len) as usize].to_vec()
            };
            if corrupt {
                for (k, b) in bytes.iter_mut().enumerate() {
                    if (s.global + k as u64) % u64::from(PIECE) == 0 {
                        *b ^= 1;
                    }
                }
            }
            // In two parts, to cross blocks mid-way.
            let cut = bytes.len() / 3;
            for (at, part) in [(0, &bytes[..cut]), (cut, &bytes[cut..])] {
                let got = t.web_seed_data(NOW, id, s.global + at as u64, part);
                for st in got.stores {
                    let buf = buffers
                        .entry(st.piece)
                        .or_insert_with(|| vec![0; PIECE as usize]);
                    buf[st.offset as usize..st.offset as usize + st.len]
                        .copy_from_slice(&part[st.at..st.at + st.len]);
                }
                for piece in got.complete {
                    let index = t.layout().piece(piece).unwrap();
                    let len = t.layout().piece_len(index) as usize;
                    let start = t.layout().piece_offset(index) as usize;
                    let ok = Sha1::digest(&buffers[&piece][..len])
                        == Sha1::digest(&data[start..start + len]);
                    t.piece_checked(NOW, piece, ok, &[]);
                    if ok {
                        passed.push(piece);
                    }
                }
            }
        }
        passed
    }

    #[test]
    fn a_web_seed_alone_downloads_a_single_file_torrent_in_runs() {
        let total = 3 * u64::from(PIECE) + 100;
        let mut t = torrent(&[(&["big file.bin"], total, false)]);
        let id = t.add_web_seed("http://h/seed/").unwrap();
        let data = content(total);
        let mut rounds = 0;
        while !t.is_done() {
            rounds += 1;
            assert!(rounds < 10);
            let fetches = t.web_seed_next(NOW, id);
            assert!(!fetches.is_empty());
            for f in &fetches {
                assert_eq!(f.url.as_deref(), Some("http://h/seed/big%20file.bin"));
                assert_eq!(f.segment.global % u64::from(PIECE), 0, "whole pieces");
            }
            serve(&mut t, id, &data, &fetches, false);
        }
        // All 4 pieces fit one run: one request.
        assert_eq!(rounds, 1);
        assert_eq!(t.web_seeds()[0].downloaded(), total);
        assert_eq!(t.stats(NOW).downloaded, total);
        assert!(t.web_seed_next(NOW, id).is_empty());
    }

    #[test]
    fn multi_file_runs_split_at_files_and_fill_pad_files_locally() {
        let mut t = torrent(&[
            (&["Album", "a b.flac"], u64::from(PIECE) + 10, false),
            (&["Album", ".pad", "0"], u64::from(PIECE) - 10, true),
            (&["Album", "c"], 5, false),
        ]);
        let id = t.add_web_seed("http://h:8/w").unwrap();
        let data = {
            let mut d = content(3 * u64::from(PIECE));
            d.truncate(2 * PIECE as usize + 5);
            d[PIECE as usize + 10..2 * PIECE as usize].fill(0);
            d
        };
        let fetches = t.web_seed_next(NOW, id);
        let urls: Vec<Option<&str>> = fetches.iter().map(|f| f.url.as_deref()).collect();
        assert_eq!(
            urls,
            [
                Some("http://h:8/w/Album/a%20b.flac"),
                None,
                Some("http://h:8/w/Album/c")
            ]
        );
        assert_eq!(fetches[0].range(), (0, u64::from(PIECE) + 9));
        assert_eq!(fetches[2].range(), (0, 4));
        assert_eq!(serve(&mut t, id, &data, &fetches, false).len(), 3);
        assert!(t.is_done());
    }

    #[test]
    fn a_failure_frees_the_pieces_and_backs_off() {
        let total = 8 * u64::from(PIECE);
        let mut t = torrent(&[(&["f"], total, false)]);
        let id = t.add_web_seed("http://h/f").unwrap();
        let fetches = t.web_seed_next(NOW, id);
        assert_eq!(fetches.len(), 1);
        assert_eq!(fetches[0].segment.len, total, "one run of every piece");
        // Half a block in, the connection breaks.
        let data = content(total);
        let got = t.web_seed_data(NOW, id, 0, &data[..100]);
        assert_eq!(got.stores.len(), 1);
        let until = t
            .web_seed_failed(NOW, id, WebSeedError::Io("reset".into()))
            .unwrap();
        assert_eq!(until, NOW + Duration::from_secs(2));
        assert!(matches!(
            t.web_seeds()[0].state(NOW),
            WebSeedState::BackingOff { .. }
        ));
        assert!(t.web_seed_next(NOW, id).is_empty(), "backing off");
        // Late bytes of the failed request are not stored.
        assert!(t
            .web_seed_data(NOW, id, 100, &data[100..200])
            .stores
            .is_empty());
        // Every block is free again, and a peer asks for some at once.
        assert_eq!(t.picker.outstanding(t.web_seeds()[0].key), 0);
        let peer = requests_of_a_seeding_peer(&mut t);
        assert!(!peer.is_empty());
        // After the wait, the web seed gets a run again, around the peer's piece.
        assert_eq!(t.web_seed_ready_at(until, id), Some(until));
        let later = t.web_seed_next(until, id);
        assert!(!later.is_empty());
        assert!(later
            .iter()
            .all(|f| f.segment.global > 0 || peer[0].piece != 0));
    }

    /// Connects a peer with every piece, unchokes us, and returns the blocks we asked of it.
    fn requests_of_a_seeding_peer(t: &mut Torrent) -> Vec<crate::BlockRef> {
        let addr: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let caps = PeerCaps {
            dht_port: None,
            fast: true,
            extensions: false,
            outgoing: false,
        };
        let key = t.add_peer(NOW, addr, caps).unwrap();
        assert!(key < WEB_KEY_MIN);
        t.on_message(NOW, key, &Message::HaveAll).unwrap();
        t.on_message(NOW, key, &Message::Unchoke).unwrap();
        let mut out = Vec::new();
        t.take_outbox(key, &mut out);
        let mut blocks = Vec::new();
        let mut rest = &out[..];
        while let Ok(Some((msg, used))) = decode_message(rest, 1 << 20) {
            if let Message::Request(b) = msg {
                blocks.push(b);
            }
            rest = &rest[used..];
        }
        blocks
    }

    #[test]
    fn peers_and_a_web_seed_fetch_different_pieces() {
        let total = 2 * RUN_BYTES;
        let mut t = torrent(&[(&["f"], total, false)]);
        let id = t.add_web_seed("http://h/f").unwrap();
        let fetches = t.web_seed_next(NOW, id);
        let (start, len) = (fetches[0].segment.global, fetches[0].segment.len);
        assert_eq!(len, RUN_BYTES);
        for b in requests_of_a_seeding_peer(&mut t) {
            let at = u64::from(b.piece) * u64::from(PIECE) + u64::from(b.offset);
            assert!(at + u64::from(b.len) <= start || at >= start + len, "{b:?}");
        }
        // More runs are planned only while at most one run is outstanding.
        let mut plans = 0;
        while !t.web_seed_next(NOW, id).is_empty() {
            plans += 1;
            assert!(plans < 10);
        }
        assert!(plans >= 1);
        let key = t.web_seeds()[0].key;
        assert!(t.picker.outstanding(key) as u64 * u64::from(BLOCK_LEN) <= 2 * RUN_BYTES);
    }

    #[test]
    fn a_web_seed_serving_bad_data_is_dropped_and_its_pieces_freed() {
        let total = 2 * u64::from(PIECE);
        let mut t = torrent(&[(&["f"], total, false)]);
        let id = t.add_web_seed("http://h/f").unwrap();
        let data = content(total);
        assert!(matches!(t.web_seeds()[0].state(NOW), WebSeedState::Active));
        let fetches = t.web_seed_next(NOW, id);
        // Both pieces fail: two strikes, and `hash_failures_to_ban` is 2.
        assert_eq!(serve(&mut t, id, &data, &fetches, true), Vec::<u32>::new());
        assert!(matches!(
            t.web_seeds()[0].state(NOW),
            WebSeedState::Dropped { .. }
        ));
        assert_eq!(t.web_seed_ready_at(NOW, id), None);
        assert!(t.web_seed_next(NOW, id).is_empty());
        assert_eq!(t.picker.outstanding(t.web_seeds()[0].key), 0);
        assert!(
            !requests_of_a_seeding_peer(&mut t).is_empty(),
            "a peer takes over"
        );
    }

    #[test]
    fn web_seeds_are_bounded_and_checked() {
        let mut t = torrent(&[(&["f"], 10, false)]);
        assert!(matches!(
            t.add_web_seed("ftp://h/f"),
            Err(WebSeedError::BadUrl(_))
        ));
        for i in 0..WEB_SEEDS_MAX {
            t.add_web_seed(&format!("http://h{i}/f")).unwrap();
        }
        assert_eq!(t.add_web_seed("http://h0/f"), Err(WebSeedError::Duplicate));
        assert_eq!(
            t.add_web_seed("http://x/f"),
            Err(WebSeedError::TooMany(WEB_SEEDS_MAX))
        );
        assert!(t.web_seeds().iter().all(|w| w.key >= WEB_KEY_MIN));
    }
}
