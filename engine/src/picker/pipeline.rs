//! How many requests to keep in flight to one peer.
//!
//! A peer can only send as fast as we keep it busy: with fewer than rate × round-trip bytes
//! outstanding (the bandwidth-delay product) it idles between our requests. On top of that
//! product we want slack, because the measured rate lags reality, peers serve from disk with
//! bursty latency, and a request sent now is answered only after everything queued before it.
//! libtorrent handles this by keeping `request_queue_time` (3 s) worth of data queued per peer;
//! we do the same, and switch to the plain bandwidth-delay product when the round trip itself
//! is longer than that window (satellite links, overloaded peers). The result is clamped:
//! never below [`QUEUE_DEPTH_MIN`], so a new peer (rate 0, nothing measured yet) still gets a
//! few requests and can show its speed, after which the depth grows with the measured rate;
//! never above [`QUEUE_DEPTH_MAX`], so one peer cannot hoard the tail of the torrent and most
//! clients' request queues (libtorrent's default `max_allowed_in_request_queue` is 500) do not
//! overflow.

use std::time::Duration;

use crate::BLOCK_LEN;

/// Requests kept in flight to a peer whose rate is not known yet, and the floor for everyone.
pub const QUEUE_DEPTH_MIN: usize = 4;

/// The most requests kept in flight to one peer.
pub const QUEUE_DEPTH_MAX: usize = 500;

/// How much data to keep queued at a peer, unless the round trip is longer.
pub const QUEUE_TIME: Duration = Duration::from_secs(3);

/// How many 16 KiB requests to keep in flight to a peer sending `download_rate` bytes/s over
/// a link with round-trip time `rtt`: `rate × max(rtt, 3 s)` in blocks, within
/// `[QUEUE_DEPTH_MIN, QUEUE_DEPTH_MAX]`.
pub fn request_queue_depth(download_rate: u64, rtt: Duration) -> usize {
    let window = rtt.max(QUEUE_TIME);
    // Saturating: an absurd rtt or rate just hits the cap.
    let bytes = u128::from(download_rate).saturating_mul(window.as_nanos()) / 1_000_000_000;
    let blocks = bytes.div_ceil(u128::from(BLOCK_LEN));
    blocks.clamp(QUEUE_DEPTH_MIN as u128, QUEUE_DEPTH_MAX as u128) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn new_peers_start_small_and_depth_grows_with_rate() {
        assert_eq!(request_queue_depth(0, 50 * MS), QUEUE_DEPTH_MIN);
        assert_eq!(request_queue_depth(0, Duration::ZERO), QUEUE_DEPTH_MIN);
        // 3 s of 16 KiB/s is 3 blocks: still the floor.
        assert_eq!(request_queue_depth(16 * 1024, 50 * MS), QUEUE_DEPTH_MIN);
        // 3 s of 1 MiB/s = 192 blocks.
        assert_eq!(request_queue_depth(1 << 20, 50 * MS), 192);
        let depths: Vec<usize> = (0..40)
            .map(|i| request_queue_depth(i * 50_000, 100 * MS))
            .collect();
        assert!(depths.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn long_round_trips_use_the_bandwidth_delay_product_and_depth_is_capped() {
        // 256 KiB/s over a 6 s round trip: 1.5 MiB in flight = 96 blocks, not 3 s worth (48).
        assert_eq!(request_queue_depth(256 * 1024, 6000 * MS), 96);
        assert_eq!(request_queue_depth(256 * 1024, 100 * MS), 48);
        assert_eq!(
            request_queue_depth(u64::MAX, Duration::MAX),
            QUEUE_DEPTH_MAX
        );
        assert_eq!(request_queue_depth(1 << 30, 10 * MS), QUEUE_DEPTH_MAX);
    }
}
