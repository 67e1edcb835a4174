//! The tracker's view of the shared HTTP/1.1 codec (`crate::http`): a `GET`, and a reader
//! that collects one whole response body (trackers' answers are small) with the errors
//! a tracker failure reports.

use url::Url;

use super::TrackerError;
use crate::http::{HttpError, Part, ResponseStream};

pub use crate::http::HEAD_LEN_MAX;

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
}

/// The bytes of a `GET` for `url` (see [`crate::http::get_request`]).
pub fn get_request(url: &Url, user_agent: &str) -> Vec<u8> {
    crate::http::get_request(url, user_agent, None)
}

impl From<HttpError> for TrackerError {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Malformed(m) => TrackerError::Http(m),
            HttpError::HeadersTooLarge { max } => TrackerError::HeadersTooLarge { max },
            HttpError::BodyTooLarge { max } => TrackerError::BodyTooLarge {
                max: usize::try_from(max).unwrap_or(usize::MAX),
            },
            HttpError::Truncated => TrackerError::Truncated,
        }
    }
}

/// Accumulates bytes into one [`HttpResponse`] at a time.
///
/// Memory is bounded by the head limit, `max_body`, and the size of the chunk last fed.
/// After [`ResponseReader::feed`] returns a response, the reader is ready for the next one
/// and still holds any bytes that came after it: call `feed(&[])` to check whether they
/// already form another response. After an error, drop the connection and the reader.
#[derive(Debug)]
pub struct ResponseReader {
    stream: ResponseStream,
    /// The response under way: its status and the body so far.
    current: Option<(u16, Vec<u8>)>,
}

impl ResponseReader {
    /// A reader accepting bodies of up to `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        ResponseReader {
            stream: ResponseStream::new(max_body as u64),
            current: None,
        }
    }

    /// Takes the next bytes from the connection. Returns the response once it is complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<HttpResponse>, TrackerError> {
        self.stream.push(bytes);
        loop {
            let Some(part) = self.stream.poll()? else {
                return Ok(None);
            };
            if let Some(done) = Self::take(&mut self.current, part) {
                return Ok(Some(done));
            }
        }
    }

    /// The server closed the connection: completes a close-delimited body; anything else
    /// half-read is truncated.
    pub fn on_eof(&mut self) -> Result<HttpResponse, TrackerError> {
        match self.stream.on_eof()? {
            Some(part) => Self::take(&mut self.current, part).ok_or(TrackerError::Truncated),
            None => Err(TrackerError::Truncated),
        }
    }

    /// True when no part of a response has been received: the connection can close, or
    /// carry a new request, without losing anything.
    pub fn is_idle(&self) -> bool {
        self.stream.is_idle()
    }

    fn take(current: &mut Option<(u16, Vec<u8>)>, part: Part<'_>) -> Option<HttpResponse> {
        match part {
            Part::Head(head) => *current = Some((head.status, Vec::new())),
            Part::Body(bytes) => {
                if let Some((_, body)) = current {
                    body.extend_from_slice(bytes);
                }
            }
            Part::End { keep_alive } => {
                let (status, body) = current.take()?;
                return Some(HttpResponse {
                    status,
                    body,
                    keep_alive,
                });
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `bytes` one at a time; returns every response and the reader.
    fn feed_bytewise(bytes: &[u8], max_body: usize) -> (Vec<HttpResponse>, ResponseReader) {
        let mut reader = ResponseReader::new(max_body);
        let mut out = Vec::new();
        for b in bytes {
            if let Some(r) = reader.feed(&[*b]).unwrap() {
                out.push(r);
            }
        }
        (out, reader)
    }

    fn ok(body: &[u8], keep_alive: bool) -> HttpResponse {
        HttpResponse {
            status: 200,
            body: body.to_vec(),
            keep_alive,
        }
    }

    #[test]
    fn request_bytes() {
        let url = Url::parse("http://t.example:8080/announce?info_hash=%00a").unwrap();
        assert_eq!(
            get_request(&url, "ccbt/0.1\r\nX: y"),
            b"GET /announce?info_hash=%00a HTTP/1.1\r\nHost: t.example:8080\r\n\
              User-Agent: ccbt/0.1X: y\r\nAccept-Encoding: identity\r\n\
              Connection: keep-alive\r\n\r\n"
        );
        let url = Url::parse("http://[::1]:80/a").unwrap();
        let request = String::from_utf8(get_request(&url, "x")).unwrap();
        assert!(
            request.starts_with("GET /a HTTP/1.1\r\nHost: [::1]\r\n"),
            "{request}"
        );
    }

    #[test]
    fn content_length_bytewise() {
        let (out, reader) =
            feed_bytewise(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", 100);
        assert_eq!(out, [ok(b"hello", true)]);
        assert!(reader.is_idle());
    }

    #[test]
    fn chunked_bytewise_with_extension_and_trailer() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                     4;ext=1\r\nd8:i\r\nA\r\nntervali60\r\n2\r\nee\r\n0\r\nX-T: 1\r\n\r\n";
        let (out, reader) = feed_bytewise(wire, 100);
        assert_eq!(out, [ok(b"d8:intervali60ee", true)]);
        assert!(reader.is_idle());
    }

    #[test]
    fn close_delimited_bytewise() {
        let (out, mut reader) = feed_bytewise(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nabc", 100);
        assert!(out.is_empty());
        assert_eq!(reader.on_eof(), Ok(ok(b"abc", false)));
    }

    #[test]
    fn http_1_0_keep_alive_and_connection_close() {
        let mut r = ResponseReader::new(100);
        let resp = r
            .feed(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
        assert_eq!(resp, Some(ok(b"", true)));
        let resp = r
            .feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx")
            .unwrap();
        assert_eq!(resp, Some(ok(b"x", false)));
    }

    #[test]
    fn keep_alive_leftover_is_the_next_response() {
        let mut r = ResponseReader::new(100);
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabHTTP/1.1 404 Not Found\r\n\
                    Content-Length: 2\r\n\r\nnoHTT";
        assert_eq!(r.feed(two).unwrap(), Some(ok(b"ab", true)));
        assert!(!r.is_idle());
        let second = r.feed(&[]).unwrap().unwrap();
        assert_eq!((second.status, &second.body[..]), (404, &b"no"[..]));
        assert_eq!(r.feed(&[]).unwrap(), None, "`HTT` starts the next head");
        assert!(!r.is_idle());
        let third = r
            .feed(b"P/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz")
            .unwrap();
        assert_eq!(third, Some(ok(b"z", true)));
        assert!(r.is_idle());
    }

    #[test]
    fn interim_and_bodiless_statuses() {
        let mut r = ResponseReader::new(100);
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        let resp = r.feed(wire).unwrap().unwrap();
        assert_eq!((resp.status, resp.body.len()), (204, 0));
        assert!(r.is_idle());
    }

    #[test]
    fn oversized_heads_and_bodies_are_refused() {
        let mut r = ResponseReader::new(100);
        let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n", "a".repeat(HEAD_LEN_MAX));
        assert_eq!(
            r.feed(long.as_bytes()),
            Err(TrackerError::HeadersTooLarge { max: HEAD_LEN_MAX })
        );
        let too_big = TrackerError::BodyTooLarge { max: 4 };
        let mut r = ResponseReader::new(4);
        assert_eq!(
            r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"),
            Err(too_big.clone())
        );
        let mut r = ResponseReader::new(4);
        assert_eq!(
            r.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\n"),
            Err(too_big.clone())
        );
        let mut r = ResponseReader::new(4);
        r.feed(b"HTTP/1.1 200 OK\r\n\r\nabcd").unwrap();
        assert_eq!(r.feed(b"e"), Err(too_big));
    }

    #[test]
    fn malformed_and_truncated() {
        let mut r = ResponseReader::new(100);
        assert!(matches!(
            r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(TrackerError::Http(_))
        ));
        let mut r = ResponseReader::new(100);
        let plus = r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n");
        assert!(matches!(plus, Err(TrackerError::Http(_))));
        let mut r = ResponseReader::new(100);
        assert!(matches!(
            r.feed(b"SSH-2.0-OpenSSH\r\n"),
            Err(TrackerError::Http(_))
        ));
        let mut r = ResponseReader::new(100);
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\naXY";
        assert!(matches!(r.feed(wire), Err(TrackerError::Http(_))));
        let mut r = ResponseReader::new(100);
        assert_eq!(r.on_eof(), Err(TrackerError::Truncated));
        r.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")
            .unwrap();
        assert_eq!(r.on_eof(), Err(TrackerError::Truncated));
    }

    proptest! {
        #[test]
        fn reader_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            split in 1usize..64,
        ) {
            let mut r = ResponseReader::new(256);
            for chunk in bytes.chunks(split) {
                if r.feed(chunk).is_err() {
                    break;
                }
            }
            let _ = r.on_eof();
        }

        #[test]
        fn reader_never_panics_after_a_valid_head(
            body in proptest::collection::vec(any::<u8>(), 0..400),
            chunked in any::<bool>(),
        ) {
            let mut wire = if chunked {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec()
            };
            wire.extend(&body);
            let mut r = ResponseReader::new(256);
            for b in wire {
                if r.feed(&[b]).is_err() {
                    break;
                }
            }
        }

        #[test]
        fn chunked_bodies_round_trip(
            body in proptest::collection::vec(any::<u8>(), 0..300),
            chunk in 1usize..50,
            split in 1usize..20,
        ) {
            let mut wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for c in body.chunks(chunk) {
                wire.extend(format!("{:x}\r\n", c.len()).as_bytes());
                wire.extend(c);
                wire.extend(b"\r\n");
            }
            wire.extend(b"0\r\n\r\n");
            let mut r = ResponseReader::new(300);
            let mut got = None;
            for piece in wire.chunks(split) {
                if let Some(resp) = r.feed(piece).unwrap() {
                    got = Some(resp);
                }
            }
            prop_assert_eq!(got.map(|r| r.body), Some(body));
            prop_assert!(r.is_idle());
        }
    }
}
