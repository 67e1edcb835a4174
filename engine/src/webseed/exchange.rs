//! One range request to a web seed, and what its response head means.
//!
//! - **206** must carry `Content-Range: bytes FIRST-LAST/TOTAL` covering the range asked
//!   for (a wider one is read past its extra bytes, within [`WHOLE_FILE_SKIP_MAX`]), a
//!   `TOTAL` equal to the file's length in the torrent (or `*`), and a `Content-Length`
//!   that agrees. Multipart answers are refused.
//! - **200** means the server ignored `Range` and sends the whole file (Python's
//!   `http.server` does). It is accepted when the range starts within the first
//!   [`WHOLE_FILE_SKIP_MAX`] bytes of the file: the bytes before it are read and dropped,
//!   and the connection is closed after the range, so the rest of the file is not read.
//!   A `Content-Length` other than the file's length is refused (a different file).
//! - **301, 302, 303, 307, 308** are followed to their `Location` (relative ones resolved
//!   against the request's URL), at most [`MAX_REDIRECTS`] times per request, and only to
//!   http or https URLs.
//! - Anything else fails the request; `Retry-After` (seconds) is passed on for back-off.
//!
//! The body is bounded by the caller, which reads exactly `skip + len` bytes of it.

use super::backoff::parse_retry_after;
use super::{Segment, WebSeedError};
use crate::http::Head;

/// Redirects followed per request at most.
pub const MAX_REDIRECTS: u8 = 5;

/// Bytes of a file read and dropped, at most, to reach a range: for servers that ignore
/// `Range` (200) or answer a wider range than asked.
pub const WHOLE_FILE_SKIP_MAX: u64 = 32 << 20;

/// One HTTP request for one segment of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// Where to ask; `None` for a pad file, whose zeros the caller supplies itself.
    pub url: Option<String>,
    pub segment: Segment,
    /// The file's length in the torrent.
    pub file_len: u64,
    /// Redirects followed so far.
    pub redirects: u8,
}

impl Fetch {
    /// The inclusive byte range of the file, as `Range` names it.
    pub fn range(&self) -> (u64, u64) {
        let s = &self.segment;
        (s.file_offset, s.file_offset + s.len.max(1) - 1)
    }
}

/// What to do with a response, from its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Drop the first `skip` body bytes, then take the segment's `len`. `close_after`: the
    /// body goes on past them (a whole file): close the connection once they are in.
    Take {
        skip: u64,
        close_after: bool,
    },
    /// Ask again at this absolute URL (the caller counts it in `redirects`).
    Redirect(String),
    Fail(WebSeedError),
}

/// Judges `head`, the answer to `fetch`.
pub fn check_head(fetch: &Fetch, head: &Head) -> Verdict {
    match check(fetch, head) {
        Ok(v) => v,
        Err(e) => Verdict::Fail(e),
    }
}

fn check(fetch: &Fetch, head: &Head) -> Result<Verdict, WebSeedError> {
    let (first, last) = fetch.range();
    match head.status {
        206 => {
            if head
                .header("content-type")
                .is_some_and(|t| t.to_ascii_lowercase().starts_with("multipart/"))
            {
                return Err(WebSeedError::WrongRange("multipart".into()));
            }
            let value = head.header("content-range").unwrap_or_default();
            let (a, b, total) = parse_content_range(value)
                .ok_or_else(|| WebSeedError::WrongRange(format!("`{value}`")))?;
            if let Some(total) = total {
                if total != fetch.file_len {
                    return Err(WebSeedError::WrongFileSize {
                        got: total,
                        want: fetch.file_len,
                    });
                }
            }
            if a > first || b < last || first - a > WHOLE_FILE_SKIP_MAX {
                return Err(WebSeedError::WrongRange(format!(
                    "{a}-{b}, asked {first}-{last}"
                )));
            }
            if head.content_length.is_some_and(|n| n != b - a + 1) {
                return Err(WebSeedError::WrongRange(format!(
                    "{a}-{b} in a body of {} bytes",
                    head.content_length.unwrap_or_default()
                )));
            }
            Ok(Verdict::Take {
                skip: first - a,
                close_after: b > last,
            })
        }
        200 => {
            if let Some(n) = head.content_length {
                if n != fetch.file_len {
                    return Err(WebSeedError::WrongFileSize {
                        got: n,
                        want: fetch.file_len,
                    });
                }
            }
            if first > WHOLE_FILE_SKIP_MAX {
                return Err(WebSeedError::RangeIgnored(first));
            }
            Ok(Verdict::Take {
                skip: first,
                close_after: last + 1 < fetch.file_len,
            })
        }
        301 | 302 | 303 | 307 | 308 => {
            if fetch.redirects >= MAX_REDIRECTS {
                return Err(WebSeedError::TooManyRedirects);
            }
            let location = head.header("location").unwrap_or_default();
            let base = fetch.url.as_deref().unwrap_or_default();
            let target = ::url::Url::parse(base)
                .and_then(|b| b.join(location))
                .map_err(|_| WebSeedError::BadRedirect(location.to_string()))?;
            if !matches!(target.scheme(), "http" | "https") || target.host_str().is_none() {
                return Err(WebSeedError::BadRedirect(location.to_string()));
            }
            Ok(Verdict::Redirect(target.to_string()))
        }
        status => Err(WebSeedError::Status {
            status,
            retry_after: head.header("retry-after").and_then(parse_retry_after),
        }),
    }
}

/// `bytes FIRST-LAST/TOTAL` (TOTAL may be `*`): `(first, last, total)`.
fn parse_content_range(value: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.trim().split_once('-')?;
    let num = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    let (a, b) = (num(a)?, num(b)?);
    let total = match total.trim() {
        "*" => None,
        t => Some(num(t)?),
    };
    (a <= b && total.is_none_or(|t| b < t)).then_some((a, b, total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Part, ResponseStream};

    fn fetch(file_offset: u64, len: u64, file_len: u64) -> Fetch {
        Fetch {
            url: Some("http://h:1/d/f".into()),
            segment: Segment {
                file: 0,
                file_offset,
                len,
                global: file_offset,
                pad: false,
            },
            file_len,
            redirects: 0,
        }
    }

    #[track_caller]
    fn head(wire: &str) -> Head {
        let mut s = ResponseStream::new(u64::MAX);
        s.push(wire.as_bytes());
        match s.poll().unwrap() {
            Some(Part::Head(h)) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_matching_206_is_taken() {
        let f = fetch(100, 50, 1000);
        let h = head(
            "HTTP/1.1 206 P\r\nContent-Range: bytes 100-149/1000\r\nContent-Length: 50\r\n\r\n",
        );
        assert_eq!(
            check_head(&f, &h),
            Verdict::Take {
                skip: 0,
                close_after: false
            }
        );
        let wider =
            head("HTTP/1.1 206 P\r\nContent-Range: bytes 90-199/*\r\nContent-Length: 110\r\n\r\n");
        assert_eq!(
            check_head(&f, &wider),
            Verdict::Take {
                skip: 10,
                close_after: true
            }
        );
    }

    #[test]
    fn lying_content_ranges_are_refused() {
        let f = fetch(100, 50, 1000);
        for wire in [
            // Another range, a shorter one, a body that disagrees, no header, junk.
            "HTTP/1.1 206 P\r\nContent-Range: bytes 0-49/1000\r\n\r\n",
            "HTTP/1.1 206 P\r\nContent-Range: bytes 100-120/1000\r\n\r\n",
            "HTTP/1.1 206 P\r\nContent-Range: bytes 100-149/1000\r\nContent-Length: 49\r\n\r\n",
            "HTTP/1.1 206 P\r\n\r\n",
            "HTTP/1.1 206 P\r\nContent-Range: bytes 149-100/1000\r\n\r\n",
            "HTTP/1.1 206 P\r\nContent-Range: bytes 100-149/120\r\n\r\n",
            "HTTP/1.1 206 P\r\nContent-Range: items 100-149/1000\r\n\r\n",
            "HTTP/1.1 206 P\r\nContent-Type: multipart/byteranges; boundary=x\r\n\r\n",
        ] {
            assert!(
                matches!(
                    check_head(&f, &head(wire)),
                    Verdict::Fail(WebSeedError::WrongRange(_))
                ),
                "{wire}"
            );
        }
        let other_file = head("HTTP/1.1 206 P\r\nContent-Range: bytes 100-149/999\r\n\r\n");
        assert_eq!(
            check_head(&f, &other_file),
            Verdict::Fail(WebSeedError::WrongFileSize {
                got: 999,
                want: 1000
            })
        );
    }

    #[test]
    fn a_whole_file_200_is_read_up_to_the_range_within_a_bound() {
        let ok = head("HTTP/1.0 200 OK\r\nContent-Length: 1000\r\n\r\n");
        assert_eq!(
            check_head(&fetch(0, 1000, 1000), &ok),
            Verdict::Take {
                skip: 0,
                close_after: false
            }
        );
        assert_eq!(
            check_head(&fetch(100, 50, 1000), &ok),
            Verdict::Take {
                skip: 100,
                close_after: true
            }
        );
        let big = 1 << 40;
        let whole = head(&format!("HTTP/1.0 200 OK\r\nContent-Length: {big}\r\n\r\n"));
        let far = WHOLE_FILE_SKIP_MAX + 1;
        assert_eq!(
            check_head(&fetch(far, 10, big), &whole),
            Verdict::Fail(WebSeedError::RangeIgnored(far))
        );
        assert_eq!(
            check_head(&fetch(0, 10, 999), &ok),
            Verdict::Fail(WebSeedError::WrongFileSize {
                got: 1000,
                want: 999
            })
        );
    }

    #[test]
    fn redirects_resolve_within_a_limit_and_to_http_only() {
        let mut f = fetch(0, 10, 1000);
        let rel = head("HTTP/1.1 302 Found\r\nLocation: ../e/f%20g\r\n\r\n");
        assert_eq!(
            check_head(&f, &rel),
            Verdict::Redirect("http://h:1/e/f%20g".into())
        );
        let abs = head("HTTP/1.1 308 P\r\nLocation: https://m/x\r\n\r\n");
        assert_eq!(
            check_head(&f, &abs),
            Verdict::Redirect("https://m/x".into())
        );
        for bad in ["ftp://m/x", "file:///etc/passwd", "http://"] {
            let h = head(&format!("HTTP/1.1 301 M\r\nLocation: {bad}\r\n\r\n"));
            assert!(
                matches!(
                    check_head(&f, &h),
                    Verdict::Fail(WebSeedError::BadRedirect(_))
                ),
                "{bad}"
            );
        }
        f.redirects = MAX_REDIRECTS;
        assert_eq!(
            check_head(&f, &rel),
            Verdict::Fail(WebSeedError::TooManyRedirects)
        );
    }

    #[test]
    fn errors_carry_their_status_and_retry_after() {
        let f = fetch(0, 10, 1000);
        assert_eq!(
            check_head(&f, &head("HTTP/1.1 503 Busy\r\nRetry-After: 30\r\n\r\n")),
            Verdict::Fail(WebSeedError::Status {
                status: 503,
                retry_after: Some(std::time::Duration::from_secs(30))
            })
        );
        assert_eq!(
            check_head(&f, &head("HTTP/1.1 404 Not Found\r\n\r\n")),
            Verdict::Fail(WebSeedError::Status {
                status: 404,
                retry_after: None
            })
        );
    }
}
