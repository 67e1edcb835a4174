//! Trackers: codecs and state machines for HTTP (BEP 3, 7, 23, 48) and UDP (BEP 15)
//! trackers, BEP 12 tier rotation, and announce scheduling.
//!
//! Everything here is sans-I/O. The I/O layer opens the sockets, writes the bytes these
//! functions build, feeds back the bytes it reads, and passes the current time in as a
//! `Duration` since an origin of its choosing. Nothing here resolves names or reads a clock.

mod announce;
pub mod announcer;
pub mod http;
pub mod http_response;
pub mod schedule;
pub mod tiers;
pub mod udp;

pub use announce::{
    Announce, AnnounceResponse, Event, ScrapeStats, INTERVAL_MAX, INTERVAL_MIN, PEERS_MAX,
};
pub use announcer::Announcer;
pub use http_response::{HttpResponse, ResponseReader};
pub use schedule::AnnounceSchedule;
pub use tiers::TrackerList;
pub use udp::{UdpAnnouncer, UdpResponse, UdpStep};

use thiserror::Error;

use crate::bencode::DecodeError;

/// Why an announce or scrape did not produce an answer. Messages are written for the user.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrackerError {
    /// The tracker answered and refused: its own `failure reason` (or UDP error message).
    #[error("the tracker refused the request: {0}")]
    Failure(String),
    #[error("the tracker's response is not valid bencode: {0}")]
    Bencode(#[from] DecodeError),
    #[error("the tracker's response is malformed: {0}")]
    Malformed(String),
    #[error("the tracker answered with HTTP status {0}")]
    HttpStatus(u16),
    #[error("the tracker's HTTP response is malformed: {0}")]
    Http(String),
    #[error("the tracker's HTTP headers exceed {max} bytes")]
    HeadersTooLarge { max: usize },
    #[error("the tracker's response body exceeds {max} bytes")]
    BodyTooLarge { max: usize },
    #[error("the connection closed before the tracker's response was complete")]
    Truncated,
    #[error("`{url}` is not a valid tracker URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("tracker URL scheme `{0}` is not supported here (expected http)")]
    UnsupportedScheme(String),
    #[error("HTTPS trackers are not supported yet (this build has no TLS); use an http:// or udp:// tracker")]
    HttpsUnsupported,
    #[error("the UDP tracker broke the protocol: {0}")]
    UdpProtocol(String),
    #[error("the tracker did not answer after {tries} tries")]
    TimedOut { tries: u32 },
}

/// SplitMix64: a tiny deterministic PRNG for transaction ids, shuffles and jitter. The
/// caller supplies the seed, so every run can be replayed.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..bound` (`bound > 0`), by rejection so no value is favoured.
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % bound;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % bound;
            }
        }
    }
}
