//! Which of a shard's torrents to scrape (BEP 48 / BEP 15), when, and in which batches.
//!
//! A scrape asks a tracker for the seeder, leecher and completed counts of many torrents
//! in one request, so a seedbox with 100,000 torrents on one tracker needs ~1,600 HTTP
//! requests (64 hashes each) or ~1,400 UDP ones (74 each) per round instead of 100,000.
//! Each torrent is scraped once when it registers (alongside, not before, its first
//! announce) and then every [`SCRAPE_EVERY`]; a failed batch is retried after
//! [`SCRAPE_RETRY`]. The book holds at most its `max` torrents: past it
//! [`ScrapeBook::want`] refuses, and that torrent simply shows no counts (they are
//! advisory).

use std::collections::HashMap;
use std::time::Duration;

use crate::hash::InfoHash;

/// How often a torrent's counts are refreshed.
pub const SCRAPE_EVERY: Duration = Duration::from_secs(30 * 60);
/// Due times are rounded up to this grid, so torrents registered within the same minute
/// keep sharing batches.
pub const SCRAPE_GRID: Duration = Duration::from_secs(60);
/// How soon a batch that failed is asked again.
pub const SCRAPE_RETRY: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone)]
struct Entry {
    url: String,
    next: Duration,
}

/// The torrents to scrape and when each is next due.
#[derive(Debug)]
pub struct ScrapeBook {
    entries: HashMap<InfoHash, Entry>,
    max: usize,
}

impl ScrapeBook {
    /// A book of at most `max` torrents.
    pub fn new(max: usize) -> Self {
        ScrapeBook {
            entries: HashMap::new(),
            max,
        }
    }

    /// Scrape `hash` at `url` (its current tracker): due at once if new or if its tracker
    /// changed, else its schedule stands. `false` if the book is full.
    pub fn want(&mut self, hash: InfoHash, url: &str, now: Duration) -> bool {
        if let Some(e) = self.entries.get_mut(&hash) {
            if e.url != url {
                e.url = url.to_string();
                e.next = now;
            }
            return true;
        }
        if self.entries.len() >= self.max {
            return false;
        }
        self.entries.insert(
            hash,
            Entry {
                url: url.to_string(),
                next: now,
            },
        );
        true
    }

    /// The torrent stopped: no more scrapes.
    pub fn forget(&mut self, hash: &InfoHash) {
        self.entries.remove(hash);
    }

    /// Batches due now, per tracker URL, each of at most `batch_max(url)` hashes, and at
    /// most `batches_max` batches (the rest stay due for the next call). What is returned
    /// is next due in [`SCRAPE_EVERY`]; report a failed batch with
    /// [`ScrapeBook::failed`].
    pub fn due(
        &mut self,
        now: Duration,
        batch_max: impl Fn(&str) -> usize,
        batches_max: usize,
    ) -> Vec<(String, Vec<InfoHash>)> {
        let mut by_url: HashMap<&str, Vec<InfoHash>> = HashMap::new();
        for (hash, e) in &self.entries {
            if e.next <= now {
                by_url.entry(e.url.as_str()).or_default().push(*hash);
            }
        }
        let mut out: Vec<(String, Vec<InfoHash>)> = Vec::new();
        'urls: for (url, hashes) in by_url {
            for chunk in hashes.chunks(batch_max(url).max(1)) {
                if out.len() >= batches_max {
                    break 'urls;
                }
                out.push((url.to_string(), chunk.to_vec()));
            }
        }
        let next = align_up(now.saturating_add(SCRAPE_EVERY));
        for (_, batch) in &out {
            for h in batch {
                if let Some(e) = self.entries.get_mut(h) {
                    e.next = next;
                }
            }
        }
        out
    }

    /// A batch got no answer: ask again in [`SCRAPE_RETRY`].
    pub fn failed(&mut self, hashes: &[InfoHash], now: Duration) {
        for h in hashes {
            if let Some(e) = self.entries.get_mut(h) {
                e.next = align_up(now.saturating_add(SCRAPE_RETRY));
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// `at` rounded up to the next multiple of [`SCRAPE_GRID`].
fn align_up(at: Duration) -> Duration {
    let grid = SCRAPE_GRID.as_secs();
    let secs = at.as_secs() + u64::from(at.subsec_nanos() > 0);
    Duration::from_secs(secs.div_ceil(grid).saturating_mul(grid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Sha1Digest;
    use proptest::prelude::*;

    fn h(i: u32) -> InfoHash {
        let mut b = [0u8; 20];
        b[..4].copy_from_slice(&i.to_be_bytes());
        Sha1Digest(b)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn batches_group_by_tracker_and_respect_the_size() {
        let mut book = ScrapeBook::new(10_000);
        for i in 0..200 {
            assert!(book.want(h(i), "http://a/announce", secs(0)));
        }
        for i in 200..210 {
            book.want(h(i), "udp://b:1", secs(0));
        }
        let batches = book.due(secs(0), |_| 64, 100);
        let a: usize = batches
            .iter()
            .filter(|(u, _)| u == "http://a/announce")
            .map(|(_, b)| b.len())
            .sum();
        assert_eq!(a, 200);
        assert!(batches.iter().all(|(_, b)| b.len() <= 64));
        assert_eq!(batches.len(), 5, "4 for a (64+64+64+8), 1 for b");
        assert!(book.due(secs(1), |_| 64, 100).is_empty(), "not due again");
        let again = book.due(secs(0) + SCRAPE_EVERY, |_| 64, 100);
        assert_eq!(again.iter().map(|(_, b)| b.len()).sum::<usize>(), 210);
    }

    #[test]
    fn the_batch_count_is_capped_and_the_rest_wait() {
        let mut book = ScrapeBook::new(10_000);
        for i in 0..1000 {
            book.want(h(i), "http://a/announce", secs(0));
        }
        let first = book.due(secs(0), |_| 64, 3);
        assert_eq!(first.len(), 3);
        let rest: usize = book
            .due(secs(0), |_| 64, 1000)
            .iter()
            .map(|(_, b)| b.len())
            .sum();
        assert_eq!(rest, 1000 - 3 * 64, "nothing lost, nothing twice");
    }

    #[test]
    fn failures_retry_a_tracker_change_is_due_at_once_and_the_book_is_bounded() {
        let mut book = ScrapeBook::new(2);
        assert!(book.want(h(1), "http://a/announce", secs(0)));
        assert!(book.want(h(2), "http://a/announce", secs(0)));
        assert!(!book.want(h(3), "http://a/announce", secs(0)), "full");
        let b = book.due(secs(0), |_| 64, 10);
        book.failed(&b[0].1, secs(0));
        assert!(book.due(SCRAPE_RETRY - secs(1), |_| 64, 10).is_empty());
        // Registered 20 s apart, scraped together after the first round.
        let mut apart = ScrapeBook::new(10);
        apart.want(h(7), "t", secs(100));
        assert_eq!(apart.due(secs(100), |_| 64, 10).len(), 1);
        apart.want(h(8), "t", secs(120));
        assert_eq!(apart.due(secs(120), |_| 64, 10).len(), 1);
        let mut round = apart.due(secs(120) + SCRAPE_EVERY + SCRAPE_GRID, |_| 64, 10);
        assert_eq!(round.len(), 1, "one batch for both");
        round[0].1.sort_by_key(|x| *x.as_bytes());
        assert_eq!(round[0].1, vec![h(7), h(8)]);
        assert_eq!(book.due(SCRAPE_RETRY, |_| 64, 10)[0].1.len(), 2);
        book.want(h(1), "udp://c:1", secs(10));
        assert_eq!(
            book.due(secs(10), |_| 64, 10),
            vec![("udp://c:1".to_string(), vec![h(1)])]
        );
        book.forget(&h(1));
        assert_eq!(book.len(), 1);
    }

    proptest! {
        /// Every due torrent comes out exactly once per round, whatever the batch caps.
        #[test]
        fn each_due_torrent_comes_out_once(n in 0u32..500, trackers in 1u32..5, size in 1usize..80, cap in 1usize..20) {
            let mut book = ScrapeBook::new(1000);
            for i in 0..n {
                book.want(h(i), &format!("t{}", i % trackers), secs(0));
            }
            let mut seen = std::collections::HashSet::new();
            loop {
                let batches = book.due(secs(0), |_| size, cap);
                if batches.is_empty() { break; }
                prop_assert!(batches.len() <= cap);
                for (url, b) in batches {
                    prop_assert!(b.len() <= size);
                    for x in b {
                        prop_assert!(seen.insert(x));
                        let i = u32::from_be_bytes(x.as_bytes()[..4].try_into().unwrap());
                        prop_assert_eq!(url.clone(), format!("t{}", i % trackers));
                    }
                }
            }
            prop_assert_eq!(seen.len(), n as usize);
        }
    }
}
