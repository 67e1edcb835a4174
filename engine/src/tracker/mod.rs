//! Trackers: codecs and state machines for HTTP (BEP 3, 7, 23, 48) and UDP (BEP 15)
//! trackers, BEP 12 tier rotation, and announce scheduling.
//!
//! Everything here is sans-I/O. The I/O layer opens the sockets, writes the bytes these
//! functions build, feeds back the bytes it reads, and passes the current time in as a
//! `Duration` since an origin of its choosing. Nothing here resolves names or reads a clock.

mod announce;
pub mod announcer;
pub mod dispatch;
pub mod http;
pub mod http_response;
pub mod schedule;
pub mod scrape_book;
pub mod tiers;
pub mod udp;

pub use announce::{
    Announce, AnnounceResponse, Event, ScrapeStats, INTERVAL_MAX, INTERVAL_MIN, PEERS_MAX,
};
pub use announcer::Announcer;
pub use dispatch::{DispatchLimits, Dispatcher, QueueFull, StartBurst};
pub use http_response::{HttpResponse, ResponseReader};
pub use schedule::AnnounceSchedule;
pub use scrape_book::ScrapeBook;
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
    #[error("tracker URL scheme `{0}` is not supported here (expected http or https)")]
    UnsupportedScheme(String),
    #[error("the UDP tracker broke the protocol: {0}")]
    UdpProtocol(String),
    #[error("the tracker did not answer after {tries} tries")]
    TimedOut { tries: u32 },
}
