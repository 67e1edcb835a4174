//! A sans-I/O HTTP/1.1 client codec shared by trackers and web seeds: build a `GET`, then
//! read responses from whatever byte chunks the socket yields, as a stream of parts (head,
//! body slices, end), so a caller can write a multi-megabyte body where it belongs instead
//! of buffering it.
//!
//! What it does not do: sockets, TLS, redirects, caching. A caller that follows redirects
//! or checks ranges does so over [`Head`] (see `webseed::exchange`).

mod request;
mod response;

pub use request::get_request;
pub use response::{Head, Part, ResponseStream, HEADERS_MAX, HEAD_LEN_MAX};

use thiserror::Error;

/// Why a response could not be read. The connection should be dropped after any of them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HttpError {
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    #[error("HTTP headers exceed {max} bytes")]
    HeadersTooLarge { max: usize },
    #[error("HTTP body exceeds {max} bytes")]
    BodyTooLarge { max: u64 },
    #[error("the connection closed before the HTTP response was complete")]
    Truncated,
}
