//! The process's LSD state, sans-I/O: torrents queue to be announced and go out packed
//! and paced; datagrams come in and leave the peers worth passing on to their torrents.
//!
//! Bounds, and what happens at each:
//! - the announce queue holds [`LsdConfig::queue_max`] torrents (each once); past it a
//!   torrent's announce is dropped and counted, and it asks again at its next turn;
//! - at most [`LsdConfig::datagrams_per_s`] datagrams go out a second, each with up to 25
//!   torrents: 4 a second announce 30,000 torrents in 5 minutes;
//! - at most [`LsdConfig::received_per_s`] datagrams are read a second, the rest dropped
//!   unread and counted: a flood on the LAN costs a counter;
//! - an (address, torrent) pair is passed on at most once per [`LsdConfig::repeat_after`],
//!   remembered in a table of [`LsdConfig::remembered_max`] pairs (oldest forgotten).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use super::announce::{encode, hashes_per_datagram, Announce};
use crate::rate_limit::TokenBucket;
use crate::InfoHash;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LsdConfig {
    pub datagrams_per_s: u64,
    pub queue_max: usize,
    pub received_per_s: u64,
    pub repeat_after: Duration,
    pub remembered_max: usize,
}

impl Default for LsdConfig {
    fn default() -> Self {
        LsdConfig {
            datagrams_per_s: 4,
            queue_max: 8192,
            received_per_s: 100,
            repeat_after: Duration::from_secs(60),
            remembered_max: 4096,
        }
    }
}

/// A peer announced for a torrent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub info_hash: InfoHash,
    pub peer: SocketAddr,
}

/// What the service has done, for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LsdCounters {
    /// Datagrams handed out to send.
    pub datagrams_sent: u64,
    /// Torrents in those datagrams.
    pub torrents_announced: u64,
    /// Announces dropped on a full queue.
    pub queue_full: u64,
    /// Datagrams read (rate limit passed).
    pub datagrams_read: u64,
    /// Datagrams dropped unread by the rate limit.
    pub rate_limited: u64,
    /// Datagrams that were not announces.
    pub malformed: u64,
    /// Our own announces, looped back.
    pub own: u64,
    /// (address, torrent) pairs not passed on again within `repeat_after`.
    pub repeats: u64,
    /// Peers passed on.
    pub found: u64,
}

type Pair = (SocketAddr, InfoHash);

pub struct Lsd {
    port: u16,
    cookie: String,
    config: LsdConfig,
    queue: VecDeque<InfoHash>,
    queued: HashSet<InfoHash>,
    sending: TokenBucket,
    reading: TokenBucket,
    /// When each pair was last passed on; `order` lists them oldest first (an entry whose
    /// time no longer matches the map's is stale and skipped).
    remembered: HashMap<Pair, Duration>,
    order: VecDeque<(Pair, Duration)>,
    counters: LsdCounters,
}

impl Lsd {
    /// The service for a process whose peers connect to `port`; `seed` draws the cookie
    /// its announces carry.
    pub fn new(port: u16, seed: u64, config: LsdConfig) -> Lsd {
        let datagrams = config.datagrams_per_s.max(1);
        let reads = config.received_per_s.max(1);
        Lsd {
            port,
            cookie: format!("{:016x}", crate::rng::scramble(seed)),
            queue: VecDeque::new(),
            queued: HashSet::new(),
            sending: TokenBucket::new(datagrams, datagrams),
            reading: TokenBucket::new(reads, reads),
            remembered: HashMap::new(),
            order: VecDeque::new(),
            counters: LsdCounters::default(),
            config,
        }
    }

    pub fn cookie(&self) -> &str {
        &self.cookie
    }

    pub fn counters(&self) -> LsdCounters {
        self.counters
    }

    /// Torrents waiting to be announced.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Queues `info_hash` to be announced (once, however often it is asked). False if the
    /// queue was full: the announce is dropped and counted.
    pub fn announce(&mut self, info_hash: InfoHash) -> bool {
        if self.queued.contains(&info_hash) {
            return true;
        }
        if self.queue.len() >= self.config.queue_max {
            self.counters.queue_full += 1;
            return false;
        }
        self.queued.insert(info_hash);
        self.queue.push_back(info_hash);
        true
    }

    /// The next datagram to send to the group, if any is waiting and the pace allows.
    pub fn poll_datagram(&mut self, now: Duration) -> Option<Vec<u8>> {
        if self.queue.is_empty() || self.sending.take(now, 1) == 0 {
            return None;
        }
        let take = hashes_per_datagram(self.port, &self.cookie).min(self.queue.len());
        let hashes: Vec<InfoHash> = self.queue.drain(..take).collect();
        for hash in &hashes {
            self.queued.remove(hash);
        }
        self.counters.datagrams_sent += 1;
        self.counters.torrents_announced += hashes.len() as u64;
        encode(self.port, &self.cookie, &hashes).into_iter().next()
    }

    /// When [`poll_datagram`](Self::poll_datagram) next has one, if anything waits.
    pub fn poll_timeout(&self, now: Duration) -> Option<Duration> {
        (!self.queue.is_empty()).then(|| self.sending.ready_at(now, 1))
    }

    /// A datagram that arrived on the group from `from`: the peers to pass on.
    pub fn handle_datagram(&mut self, now: Duration, from: SocketAddr, bytes: &[u8]) -> Vec<Found> {
        if self.reading.take(now, 1) == 0 {
            self.counters.rate_limited += 1;
            return Vec::new();
        }
        self.counters.datagrams_read += 1;
        let announce = match Announce::parse(bytes) {
            Ok(a) => a,
            Err(_) => {
                self.counters.malformed += 1;
                return Vec::new();
            }
        };
        if announce.cookie.as_deref() == Some(self.cookie.as_str()) {
            self.counters.own += 1;
            return Vec::new();
        }
        let peer = SocketAddr::new(from.ip(), announce.port);
        let mut found = Vec::new();
        for info_hash in announce.info_hashes {
            if self.remember(now, (peer, info_hash)) {
                found.push(Found { info_hash, peer });
            } else {
                self.counters.repeats += 1;
            }
        }
        self.counters.found += found.len() as u64;
        found
    }

    /// Notes `pair` as passed on at `now`; false if it was within `repeat_after`.
    fn remember(&mut self, now: Duration, pair: Pair) -> bool {
        if let Some(&at) = self.remembered.get(&pair) {
            if now.saturating_sub(at) < self.config.repeat_after {
                return false;
            }
        }
        self.remembered.insert(pair, now);
        self.order.push_back((pair, now));
        while self.order.len() > self.config.remembered_max.max(1) {
            let Some((old, at)) = self.order.pop_front() else {
                break;
            };
            if self.remembered.get(&old) == Some(&at) {
                self.remembered.remove(&old);
            }
        }
        true
    }

    /// Pairs remembered (for tests of the bound).
    pub fn remembered(&self) -> usize {
        self.remembered.len()
    }
}
