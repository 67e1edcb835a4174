//! Web seeds (BEP 19, `url-list`): HTTP servers that hold a torrent's files.
//!
//! A web seed is treated as a peer that has every piece. The torrent's state machine
//! (`session::web`) asks the picker for runs of whole consecutive pieces for it
//! ([`crate::picker::Picker::pick_run`]), so peers and web seeds never fetch the same
//! blocks except in endgame, and frees them back on any failure. This module holds the
//! parts that know HTTP and files, none of them I/O:
//!
//! - [`url`]: which URL holds a file (BEP 19's mapping, percent-encoded);
//! - [`segments`]: a torrent byte range cut into per-file ranges (pad files are zeros we
//!   fill ourselves);
//! - [`exchange`]: one range request and what its response head means (206 with a
//!   matching `Content-Range`, 200 from servers that ignore `Range`, redirects, errors);
//! - [`backoff`]: when a failing web seed may be asked again;
//! - [`seed`]: what the torrent remembers per web seed.
//!
//! What it does not do: sockets, TLS, name resolution, the clock (time comes in).

pub mod backoff;
pub mod exchange;
pub mod seed;
pub mod segments;
pub mod url;

use std::time::Duration;

use thiserror::Error;

pub use self::url::file_url;
pub use backoff::Backoff;
pub use exchange::{check_head, Fetch, Verdict, MAX_REDIRECTS, WHOLE_FILE_SKIP_MAX};
pub use seed::{WebSeed, WebSeedState};
pub use segments::{segments, Segment};

/// Why a web seed request failed. Each is a line a user may read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WebSeedError {
    #[error("`{0}` is not an http:// or https:// URL")]
    BadUrl(String),
    #[error("the server answered HTTP {status}")]
    Status {
        status: u16,
        /// From `Retry-After`, when the server gave one.
        retry_after: Option<Duration>,
    },
    #[error("redirected more than {MAX_REDIRECTS} times")]
    TooManyRedirects,
    #[error("redirected to `{0}`, which is not an http(s) URL")]
    BadRedirect(String),
    #[error("the range in the response ({0}) is not the one asked for")]
    WrongRange(String),
    #[error("the server's file is {got} bytes; the torrent says {want}")]
    WrongFileSize { got: u64, want: u64 },
    #[error("the server ignores Range and the bytes wanted start {0} bytes into the file")]
    RangeIgnored(u64),
    #[error("the response ended {missing} bytes short of the range asked for")]
    ShortBody { missing: u64 },
    #[error("HTTP: {0}")]
    Http(#[from] crate::http::HttpError),
    #[error("connection: {0}")]
    Io(String),
    #[error("sent data that failed the hash check {0} times; dropped")]
    HashFailures(u32),
    #[error("too many web seeds on this torrent (at most {0})")]
    TooMany(usize),
    #[error("already a web seed of this torrent")]
    Duplicate,
}
