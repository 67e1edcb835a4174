//! What a shard counts about itself, for a metrics scrape to read without asking it:
//! payload bytes, peers, hash failures, disk and announce latency, cache hits, refused
//! connections.
//!
//! Every figure is an atomic written with a relaxed add where the event happens (the
//! shard's own thread, except [`ShardStats::inbox_full`], which senders bump) and read by
//! anyone at any time. No locks: a scrape costs the shard nothing, and an event costs it
//! one add (two or three for a latency). Readers may see one figure a moment ahead of
//! another; each is monotonic, which is what Prometheus needs.
//!
//! The one exception is [`ServiceLatency`], an HDR histogram behind a mutex that only the
//! shard ever tries to take without waiting (see there).
//!
//! Bound: the block is a fixed size (no maps, no per-peer or per-torrent entries).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// Upper bounds of the latency buckets, in microseconds (a last, unbounded bucket follows):
/// from a page-cache hit (100 µs) to a tracker at its timeout (30 s).
pub const LATENCY_BOUNDS_US: [u64; 17] = [
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000,
];
const BUCKETS: usize = LATENCY_BOUNDS_US.len() + 1;

/// A fixed-bucket latency histogram of atomics: per-bucket counts (not cumulative, so an
/// observation is one add) and the sum.
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

/// A histogram as read: cumulative counts per upper bound, as Prometheus wants them.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    /// `(upper bound in seconds, observations at or under it)`, ending with `+Inf`.
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl LatencyHistogram {
    pub fn observe(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[bucket].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(us, Relaxed);
    }

    /// The count is the sum of the buckets read, so it always equals the `+Inf` bucket.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut buckets = Vec::with_capacity(BUCKETS);
        let mut below = 0u64;
        for (i, bucket) in self.buckets.iter().enumerate() {
            below += bucket.load(Relaxed);
            let bound = LATENCY_BOUNDS_US
                .get(i)
                .map_or(f64::INFINITY, |&us| us as f64 / 1e6);
            buckets.push((bound, below));
        }
        HistogramSnapshot {
            buckets,
            count: below,
            sum_seconds: self.sum_us.load(Relaxed) as f64 / 1e6,
        }
    }
}

/// Highest service time the histogram tells apart, in microseconds (a minute); longer ones
/// are recorded as this.
const SERVICE_MAX_US: u64 = 60_000_000;

/// Service time of served blocks: from a request's arrival (decoded by the peer's reader)
/// to the end of the `sendmsg` that handed its block's last byte to the socket. An HDR
/// histogram in microseconds, 1 µs to a minute, two significant figures (about 20 KiB per
/// shard, whatever the number of blocks).
///
/// The shard records a whole send batch at once with `try_lock`, so it never waits on a
/// reader: if a scrape holds the lock at that moment, the batch's blocks are counted in
/// [`ServiceLatency::skipped`] instead. Readers take a copy under the lock.
#[derive(Debug)]
pub struct ServiceLatency {
    histogram: Mutex<Histogram<u64>>,
    skipped: AtomicU64,
    /// The same times in fixed buckets of atomics, every one recorded (no lock), for
    /// `/metrics`.
    buckets: LatencyHistogram,
}

impl Default for ServiceLatency {
    fn default() -> Self {
        ServiceLatency {
            histogram: Mutex::new(
                Histogram::new_with_bounds(1, SERVICE_MAX_US, 2).expect("valid bounds"),
            ),
            skipped: AtomicU64::new(0),
            buckets: LatencyHistogram::default(),
        }
    }
}

/// A service-time histogram as read.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSnapshot {
    /// Blocks recorded.
    pub count: u64,
    /// Blocks not recorded because a reader held the histogram.
    pub skipped: u64,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl ServiceLatency {
    /// Records the service times of one send batch's blocks, without ever waiting.
    pub fn record(&self, times: impl ExactSizeIterator<Item = Duration>) {
        let n = times.len() as u64;
        let Ok(mut h) = self.histogram.try_lock() else {
            self.skipped.fetch_add(n, Relaxed);
            for took in times {
                self.buckets.observe(took);
            }
            return;
        };
        for took in times {
            self.buckets.observe(took);
            let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            h.saturating_record(us.clamp(1, SERVICE_MAX_US));
        }
    }

    /// The fixed buckets, as Prometheus wants them.
    pub fn buckets(&self) -> HistogramSnapshot {
        self.buckets.snapshot()
    }

    /// A copy of the histogram, for exporters that want every bucket.
    pub fn histogram(&self) -> Histogram<u64> {
        match self.histogram.lock() {
            Ok(h) => h.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn snapshot(&self) -> ServiceSnapshot {
        let h = self.histogram();
        let at = |q: f64| Duration::from_micros(h.value_at_quantile(q));
        ServiceSnapshot {
            count: h.len(),
            skipped: self.skipped.load(Relaxed),
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_micros(h.max()),
        }
    }
}

/// Why an announce got no answer, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnnounceFailure {
    /// The tracker answered with a `failure reason`.
    Refused,
    /// No answer in time.
    Timeout,
    /// Could not connect, send or receive.
    Network,
    /// The tracker's name did not resolve.
    Resolve,
    /// An answer we could not read (bad bencode, HTTP status, UDP protocol), or a bad URL.
    Protocol,
}

impl AnnounceFailure {
    pub const ALL: [AnnounceFailure; 5] = [
        AnnounceFailure::Refused,
        AnnounceFailure::Timeout,
        AnnounceFailure::Network,
        AnnounceFailure::Resolve,
        AnnounceFailure::Protocol,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AnnounceFailure::Refused => "refused",
            AnnounceFailure::Timeout => "timeout",
            AnnounceFailure::Network => "network",
            AnnounceFailure::Resolve => "resolve",
            AnnounceFailure::Protocol => "protocol",
        }
    }
}

/// Why a peer connection was refused before its handshake, as metrics label it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedConnection {
    /// Its address is on the blocklist (incoming, or an address we would have dialled).
    Blocklist,
    /// Its address holds as many connections with this shard as allowed.
    PerIp,
    /// The shard holds its whole connection budget.
    ShardLimit,
    /// The owner shard's inbox was full when this shard handed it the connection.
    OwnerBusy,
}

impl RefusedConnection {
    pub const ALL: [RefusedConnection; 4] = [
        RefusedConnection::Blocklist,
        RefusedConnection::PerIp,
        RefusedConnection::ShardLimit,
        RefusedConnection::OwnerBusy,
    ];

    pub fn name(self) -> &'static str {
        match self {
            RefusedConnection::Blocklist => "blocklist",
            RefusedConnection::PerIp => "per_ip",
            RefusedConnection::ShardLimit => "shard_limit",
            RefusedConnection::OwnerBusy => "owner_busy",
        }
    }
}

/// One shard's counters.
#[derive(Debug, Default)]
pub struct ShardStats {
    /// Piece payload sent to peers (no protocol overhead).
    uploaded_bytes: AtomicU64,
    /// Piece payload received from peers, wanted or not.
    downloaded_bytes: AtomicU64,
    /// Peer connections established now (past both handshakes).
    peers: AtomicU64,
    /// Downloaded pieces that failed their SHA-1 check.
    hash_failures: AtomicU64,
    pub disk_read: LatencyHistogram,
    pub disk_write: LatencyHistogram,
    /// How long served blocks took, request to socket.
    pub service: ServiceLatency,
    /// Piece reads and writes that failed (the torrent stops with a fault).
    disk_errors: AtomicU64,
    /// Announces that got an answer, from the request to the answer.
    pub announce: LatencyHistogram,
    announce_failures: [AtomicU64; AnnounceFailure::ALL.len()],
    /// Lookups of a piece to serve (one per block not covered by what its send batch holds
    /// already, and one per read-ahead) that the shard's read cache answered, and reads
    /// from disk instead (whole pieces, or the window a batch needs): hits over both is the
    /// cache's hit rate by lookup.
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    refused: [AtomicU64; RefusedConnection::ALL.len()],
    /// Commands and handed-off connections refused because the shard's inbox was full
    /// (bumped by the senders, on any thread).
    inbox_full: AtomicU64,
    /// Messages the shard has taken from its inbox: with the depth, tells a busy shard
    /// (both grow) from a stuck one (depth up, this flat).
    inbox_taken: AtomicU64,
    /// Memory peers hold on the shard now; each returns to zero when its peers are gone.
    held: HeldBytes,
    /// Peers dropped because their writer made no progress for the write deadline.
    write_stalls: AtomicU64,
    /// `accept(2)` calls that failed (EMFILE, ENFILE, ENOMEM...): each is followed by a
    /// back-off, so a process out of descriptors does not spin on its listener.
    accept_errors: AtomicU64,
    /// Incoming connections closed before their handshake because a newcomer took their
    /// slot of a full shard (see `handshakes`).
    handshake_evictions: AtomicU64,
    /// Peer addresses the DHT found for this shard's torrents (see `dht`).
    dht_peers: AtomicU64,
    /// Peers on the local network that announced this shard's torrents (see `lsd`).
    lsd_peers: AtomicU64,
    /// Incoming connections a replica of another shard's hot torrent took here instead of
    /// handing them to the owner (see `replica`).
    replica_accepts: AtomicU64,
}

/// Bytes peers make the shard hold, beyond the cache and the pool's free buffers: gauges,
/// added to when memory is taken and taken from when it is let go.
#[derive(Debug, Default)]
struct HeldBytes {
    /// Pieces pointed into by send batches (each distinct piece's length once per batch)
    /// and the batches' copied headers and control messages.
    send_batches: AtomicU64,
    /// Buffers of pieces being downloaded, not yet complete.
    pieces_in_progress: AtomicU64,
    /// Encoded messages waiting in peers' outboxes for their writers, as of the last
    /// publish of each torrent (about once a second).
    outboxes: AtomicU64,
}

/// Which of [`ShardStats`]' held-bytes gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Held {
    SendBatches,
    PiecesInProgress,
    Outboxes,
}

/// A shard's counters as read, with the gauges only the swarm knows.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardStatsSnapshot {
    pub shard: u16,
    pub uploaded_bytes: u64,
    pub downloaded_bytes: u64,
    pub peers: u64,
    pub hash_failures: u64,
    pub disk_read: HistogramSnapshot,
    pub disk_write: HistogramSnapshot,
    /// See [`ServiceLatency`].
    pub service: ServiceSnapshot,
    /// The same service times in the fixed latency buckets.
    pub service_buckets: HistogramSnapshot,
    pub disk_errors: u64,
    pub announce: HistogramSnapshot,
    /// By [`AnnounceFailure::ALL`] order.
    pub announce_failures: Vec<(AnnounceFailure, u64)>,
    pub cache_hits: u64,
    pub cache_misses: u64,
    pub refused: Vec<(RefusedConnection, u64)>,
    /// Commands and handed-off connections waiting in the shard's inbox now.
    pub inbox_depth: u64,
    /// The inbox's bound ([`super::INBOX_LEN`]).
    pub inbox_capacity: u64,
    pub inbox_full: u64,
    pub inbox_taken: u64,
    /// See [`Held::SendBatches`].
    pub send_batch_bytes: u64,
    /// See [`Held::PiecesInProgress`].
    pub pieces_in_progress_bytes: u64,
    /// See [`Held::Outboxes`].
    pub outbox_bytes: u64,
    pub write_stalls: u64,
    pub accept_errors: u64,
    pub handshake_evictions: u64,
    pub dht_peers: u64,
    pub lsd_peers: u64,
    pub replica_accepts: u64,
}

impl ShardStats {
    pub(crate) fn uploaded(&self, bytes: u64) {
        self.uploaded_bytes.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn downloaded(&self, bytes: u64) {
        self.downloaded_bytes.fetch_add(bytes, Relaxed);
    }

    pub(crate) fn hash_failed(&self) {
        self.hash_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn disk_error(&self) {
        self.disk_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn announce_failed(&self, why: AnnounceFailure) {
        self.announce_failures[why as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Relaxed);
    }

    pub(crate) fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Relaxed);
    }

    pub(crate) fn refused(&self, why: RefusedConnection) {
        self.refused[why as usize].fetch_add(1, Relaxed);
    }

    pub(crate) fn refused_count(&self, why: RefusedConnection) -> u64 {
        self.refused[why as usize].load(Relaxed)
    }

    pub(crate) fn inbox_was_full(&self) {
        self.inbox_full.fetch_add(1, Relaxed);
    }

    pub(crate) fn dht_peers(&self, peers: usize) {
        self.dht_peers.fetch_add(peers as u64, Relaxed);
    }

    pub(crate) fn lsd_peer(&self) {
        self.lsd_peers.fetch_add(1, Relaxed);
    }

    pub(crate) fn served_by_replica(&self) {
        self.replica_accepts.fetch_add(1, Relaxed);
    }

    pub(crate) fn inbox_took(&self, messages: usize) {
        self.inbox_taken.fetch_add(messages as u64, Relaxed);
    }

    fn held_gauge(&self, which: Held) -> &AtomicU64 {
        match which {
            Held::SendBatches => &self.held.send_batches,
            Held::PiecesInProgress => &self.held.pieces_in_progress,
            Held::Outboxes => &self.held.outboxes,
        }
    }

    pub(crate) fn hold(&self, which: Held, bytes: u64) {
        self.held_gauge(which).fetch_add(bytes, Relaxed);
    }

    /// Gives back bytes counted by [`ShardStats::hold`]; the caller gives back no more
    /// than it took.
    pub(crate) fn release(&self, which: Held, bytes: u64) {
        self.held_gauge(which).fetch_sub(bytes, Relaxed);
    }

    pub(crate) fn accept_failed(&self) {
        self.accept_errors.fetch_add(1, Relaxed);
    }

    pub(crate) fn handshake_evicted(&self) {
        self.handshake_evictions.fetch_add(1, Relaxed);
    }

    pub(crate) fn write_stalled(&self) {
        self.write_stalls.fetch_add(1, Relaxed);
    }

    /// Counts a connection as established until the guard is dropped (even if its task is
    /// dropped midway, as at a shard's stop).
    pub(crate) fn peer_connected(self: &std::sync::Arc<Self>) -> PeerCounted {
        self.peers.fetch_add(1, Relaxed);
        PeerCounted(self.clone())
    }

    pub fn snapshot(
        &self,
        shard: u16,
        inbox_depth: u64,
        inbox_capacity: u64,
    ) -> ShardStatsSnapshot {
        ShardStatsSnapshot {
            shard,
            uploaded_bytes: self.uploaded_bytes.load(Relaxed),
            downloaded_bytes: self.downloaded_bytes.load(Relaxed),
            peers: self.peers.load(Relaxed),
            hash_failures: self.hash_failures.load(Relaxed),
            disk_read: self.disk_read.snapshot(),
            disk_write: self.disk_write.snapshot(),
            service: self.service.snapshot(),
            service_buckets: self.service.buckets(),
            disk_errors: self.disk_errors.load(Relaxed),
            announce: self.announce.snapshot(),
            announce_failures: AnnounceFailure::ALL
                .iter()
                .map(|&k| (k, self.announce_failures[k as usize].load(Relaxed)))
                .collect(),
            cache_hits: self.cache_hits.load(Relaxed),
            cache_misses: self.cache_misses.load(Relaxed),
            refused: RefusedConnection::ALL
                .iter()
                .map(|&k| (k, self.refused_count(k)))
                .collect(),
            inbox_depth,
            inbox_capacity,
            inbox_full: self.inbox_full.load(Relaxed),
            inbox_taken: self.inbox_taken.load(Relaxed),
            send_batch_bytes: self.held.send_batches.load(Relaxed),
            pieces_in_progress_bytes: self.held.pieces_in_progress.load(Relaxed),
            outbox_bytes: self.held.outboxes.load(Relaxed),
            write_stalls: self.write_stalls.load(Relaxed),
            accept_errors: self.accept_errors.load(Relaxed),
            handshake_evictions: self.handshake_evictions.load(Relaxed),
            dht_peers: self.dht_peers.load(Relaxed),
            lsd_peers: self.lsd_peers.load(Relaxed),
            replica_accepts: self.replica_accepts.load(Relaxed),
        }
    }
}

/// One established peer connection in [`ShardStats`]' gauge.
pub(crate) struct PeerCounted(std::sync::Arc<ShardStats>);

impl Drop for PeerCounted {
    fn drop(&mut self) {
        self.0.peers.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_histogram_puts_each_latency_under_the_first_bound_that_holds_it() {
        let h = LatencyHistogram::default();
        // 100 µs exactly is in the first bucket (bounds are inclusive, as `le` says).
        h.observe(Duration::from_micros(100));
        h.observe(Duration::from_micros(101));
        h.observe(ms(3));
        h.observe(ms(3));
        h.observe(Duration::from_secs(31));
        let s = h.snapshot();
        assert_eq!(s.count, 5);
        assert_eq!(s.buckets.len(), LATENCY_BOUNDS_US.len() + 1);
        let at = |le: f64| s.buckets.iter().find(|(b, _)| *b == le).unwrap().1;
        assert_eq!(at(0.0001), 1);
        assert_eq!(at(0.00025), 2);
        assert_eq!(at(0.0025), 2);
        assert_eq!(at(0.005), 4);
        assert_eq!(at(30.0), 4);
        assert_eq!(at(f64::INFINITY), 5);
        assert!((s.sum_seconds - (0.000_201 + 0.006 + 31.0)).abs() < 1e-9);
    }

    #[test]
    fn cumulative_counts_never_decrease_and_end_at_the_count() {
        let h = LatencyHistogram::default();
        for i in 0..1000u64 {
            h.observe(Duration::from_micros(i * i * 37));
        }
        let s = h.snapshot();
        assert!(s
            .buckets
            .windows(2)
            .all(|w| w[0].1 <= w[1].1 && w[0].0 < w[1].0));
        assert_eq!(s.buckets.last().unwrap(), &(f64::INFINITY, 1000));
    }

    #[test]
    fn writers_on_other_threads_lose_no_observation() {
        let stats = Arc::new(ShardStats::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        stats.disk_write.observe(Duration::from_micros(i % 2_000));
                        stats.uploaded(16_384);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let s = stats.snapshot(0, 0, 1);
        assert_eq!(s.disk_write.count, 40_000);
        assert_eq!(s.uploaded_bytes, 40_000 * 16_384);
    }

    #[test]
    fn service_times_land_in_their_quantiles_and_a_held_lock_skips_not_waits() {
        let s = ServiceLatency::default();
        // 98 quick blocks, one slow, one very slow (past the histogram's top).
        s.record((0..98).map(|_| Duration::from_micros(800)));
        s.record([ms(40)].into_iter());
        s.record([Duration::from_secs(120)].into_iter());
        let snap = s.snapshot();
        assert_eq!((snap.count, snap.skipped), (100, 0));
        let near =
            |d: Duration, us: u64| d.as_micros().abs_diff(u128::from(us)) * 100 <= u128::from(us);
        assert!(near(snap.p50, 800), "{snap:?}");
        assert!(near(snap.p90, 800), "{snap:?}");
        assert!(near(snap.p99, 40_000), "{snap:?}");
        assert!(
            near(snap.max, SERVICE_MAX_US),
            "clamped to the top: {snap:?}"
        );
        // A zero time counts (as the lowest value), it does not vanish.
        s.record([Duration::ZERO].into_iter());
        assert_eq!(s.snapshot().count, 101);
        let held = s.histogram.lock().unwrap();
        s.record((0..5).map(|_| ms(1)));
        drop(held);
        let snap = s.snapshot();
        assert_eq!((snap.count, snap.skipped), (101, 5));
    }

    #[test]
    fn the_peer_gauge_follows_its_guards() {
        let stats = Arc::new(ShardStats::default());
        let a = stats.peer_connected();
        let b = stats.peer_connected();
        assert_eq!(stats.snapshot(0, 0, 1).peers, 2);
        drop(a);
        drop(b);
        assert_eq!(stats.snapshot(0, 0, 1).peers, 0);
        stats.announce_failed(AnnounceFailure::Timeout);
        stats.refused(RefusedConnection::PerIp);
        let s = stats.snapshot(3, 7, 4096);
        assert_eq!(s.announce_failures[1], (AnnounceFailure::Timeout, 1));
        assert_eq!(s.refused[1], (RefusedConnection::PerIp, 1));
        assert_eq!((s.shard, s.inbox_depth), (3, 7));
    }
}
