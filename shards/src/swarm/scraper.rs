//! The shard's scraper: the engine's [`ScrapeBook`] driven by a task, batches sent through
//! the announce gate (so scrapes count against the same per-host cap) and the counts
//! published in each torrent's [`TorrentStatus`].
//!
//! A running torrent registers itself with its current tracker; it is scraped in that
//! tracker's next batch (within [`TICK`], not waiting to be rung, so torrents added
//! together share batches), alongside its first announce rather than before it, then
//! every 30 min. Stopping unregisters it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use ccbt_engine::tracker::http::scrape_url;
use ccbt_engine::tracker::ScrapeBook;
use ccbt_engine::InfoHash;

use super::announce_gate::{host_key, AnnounceGate};
use super::clock::Clock;
use super::status::TorrentStatus;
use super::tracker::{self, TrackerConnections};

/// How often the scraper looks for due batches.
pub const TICK: Duration = Duration::from_secs(1);
/// Torrents a shard scrapes, at most; past it a torrent shows no scrape counts.
pub const TORRENTS_MAX: usize = 200_000;
/// Batches started per tick, at most; the rest go in later ticks.
const BATCHES_PER_TICK: usize = 64;

pub struct Scraper {
    book: RefCell<ScrapeBook>,
    /// Where to publish each registered torrent's counts; as many as the book holds.
    statuses: RefCell<HashMap<InfoHash, Arc<TorrentStatus>>>,
    clock: Clock,
    gate: Rc<AnnounceGate>,
    trackers: Rc<TrackerConnections>,
    seed: u64,
}

impl Scraper {
    pub fn new(
        clock: Clock,
        gate: Rc<AnnounceGate>,
        trackers: Rc<TrackerConnections>,
        seed: u64,
    ) -> Rc<Scraper> {
        Rc::new(Scraper {
            book: RefCell::new(ScrapeBook::new(TORRENTS_MAX)),
            statuses: RefCell::default(),
            clock,
            gate,
            trackers,
            seed,
        })
    }

    /// Scrape `hash` at announce URL `url` from now on (again at once if the URL changed).
    /// An HTTP tracker whose URL does not follow the BEP 48 convention has no scrape URL
    /// we can know: its torrents are not scraped (their announces still give counts).
    pub fn want(&self, hash: InfoHash, url: &str, status: &Arc<TorrentStatus>) {
        if !url.starts_with("udp://") && scrape_url(url, &hash).is_none() {
            self.forget(&hash);
            return;
        }
        let now = self.clock.now();
        if self.book.borrow_mut().want(hash, url, now) {
            self.statuses
                .borrow_mut()
                .entry(hash)
                .or_insert_with(|| status.clone());
        }
    }

    pub fn forget(&self, hash: &InfoHash) {
        self.book.borrow_mut().forget(hash);
        self.statuses.borrow_mut().remove(hash);
    }

    /// The scraper's task, until the shard ends.
    pub async fn run(self: Rc<Self>) {
        loop {
            let now = self.clock.now();
            let batches =
                self.book
                    .borrow_mut()
                    .due(now, tracker::scrape_batch_max, BATCHES_PER_TICK);
            for (url, hashes) in batches {
                glommio::spawn_local(self.clone().scrape(url, hashes)).detach();
            }
            glommio::timer::sleep(TICK).await;
        }
    }

    async fn scrape(self: Rc<Self>, url: String, hashes: Vec<InfoHash>) {
        let Ok(_pass) = self.gate.enter(&host_key(&url), false).await else {
            self.book.borrow_mut().failed(&hashes, self.clock.now());
            return;
        };
        let result = tracker::scrape(&url, &hashes, &self.clock, &self.trackers, self.seed).await;
        match result {
            Ok(counts) => {
                let statuses = self.statuses.borrow();
                for (hash, c) in &counts {
                    if let Some(s) = statuses.get(hash) {
                        s.set_scraped(c.complete, c.incomplete, c.downloaded);
                    }
                }
                tracing::debug!(url, asked = hashes.len(), got = counts.len(), "scraped");
            }
            Err(e) => {
                tracing::debug!(url, error = %e, "scrape failed");
                self.book.borrow_mut().failed(&hashes, self.clock.now());
            }
        }
    }
}
