//! A sans-I/O HTTP/1.1 client codec, just enough for trackers: build a `GET`, then read the
//! response from whatever byte chunks the socket yields.
//!
//! The reader handles `Content-Length`, `Transfer-Encoding: chunked` and close-delimited
//! bodies, bounds the head and the body, and keeps any bytes past the end of one response
//! for the next one on a kept-alive connection.

use url::Url;

use super::TrackerError;

/// Largest response head (status line and headers) we buffer.
pub const HEAD_LEN_MAX: usize = 16 << 10;

/// Most headers in one response.
const HEADERS_MAX: usize = 64;

/// Longest chunk-size line, or trailer line, we buffer while waiting for its end.
const CHUNK_LINE_MAX: usize = 1024;

/// A complete HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub body: Vec<u8>,
    /// Whether the connection may carry another request.
    pub keep_alive: bool,
}

/// The bytes of a `GET` for `url`. The URL crate has already percent-encoded the path and
/// query, so they hold no spaces or line breaks; the user agent is stripped of control
/// characters so it cannot inject headers.
pub fn get_request(url: &Url, user_agent: &str) -> Vec<u8> {
    let mut target = url.path().to_string();
    if let Some(query) = url.query() {
        target.push('?');
        target.push_str(query);
    }
    let mut host = url.host_str().unwrap_or_default().to_string();
    if let Some(port) = url.port() {
        host.push_str(&format!(":{port}"));
    }
    let agent: String = user_agent.chars().filter(|c| !c.is_control()).collect();
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\n\
         Accept-Encoding: identity\r\nConnection: keep-alive\r\n\r\n"
    )
    .into_bytes()
}

/// Accumulates bytes into one [`HttpResponse`] at a time.
///
/// Memory is bounded by the head limit, `max_body`, and the size of the chunk last fed.
/// After [`ResponseReader::feed`] returns a response, the reader is ready for the next one
/// and still holds any bytes that came after it: call `feed(&[])` to check whether they
/// already form another response. After an error, drop the connection and the reader.
#[derive(Debug)]
pub struct ResponseReader {
    max_body: usize,
    /// Received bytes not yet consumed.
    buf: Vec<u8>,
    state: State,
}

#[derive(Debug)]
enum State {
    Head,
    Body {
        status: u16,
        keep_alive: bool,
        framing: Framing,
        body: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    /// `Content-Length`: this many bytes still to come.
    Length(usize),
    Chunked(Chunk),
    /// No length given: the body ends when the server closes.
    UntilClose,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk, this many bytes left.
    Data(usize),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; `usize` counts their bytes.
    Trailer(usize),
}

/// What one step of the decoder achieved.
enum Progress {
    /// Need more bytes.
    Blocked,
    /// Moved on; try again.
    Advanced,
    /// The response in `State::Body` is complete.
    Complete,
}

impl ResponseReader {
    /// A reader accepting bodies of up to `max_body` bytes.
    pub fn new(max_body: usize) -> Self {
        Self {
            max_body,
            buf: Vec::new(),
            state: State::Head,
        }
    }

    /// Takes the next bytes from the connection. Returns the response once it is complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Option<HttpResponse>, TrackerError> {
        self.buf.extend_from_slice(bytes);
        loop {
            let progress = match &mut self.state {
                State::Head => self.head()?,
                State::Body { framing, body, .. } => {
                    body_step(&mut self.buf, framing, body, self.max_body)?
                }
            };
            match progress {
                Progress::Blocked => return Ok(None),
                Progress::Advanced => {}
                Progress::Complete => {
                    if let State::Body {
                        status,
                        keep_alive,
                        body,
                        ..
                    } = std::mem::replace(&mut self.state, State::Head)
                    {
                        return Ok(Some(HttpResponse {
                            status,
                            body,
                            keep_alive,
                        }));
                    }
                }
            }
        }
    }

    /// The server closed the connection: completes a close-delimited body; anything else
    /// half-read is truncated.
    pub fn on_eof(&mut self) -> Result<HttpResponse, TrackerError> {
        match std::mem::replace(&mut self.state, State::Head) {
            State::Body {
                status,
                framing: Framing::UntilClose,
                mut body,
                ..
            } => {
                take(&mut self.buf, &mut body, usize::MAX, self.max_body)?;
                Ok(HttpResponse {
                    status,
                    body,
                    keep_alive: false,
                })
            }
            _ => Err(TrackerError::Truncated),
        }
    }

    /// True when no part of a response has been received: the connection can close, or
    /// carry a new request, without losing anything.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head) && self.buf.is_empty()
    }

    /// Parses the status line and headers once they are all in, and picks the framing.
    fn head(&mut self) -> Result<Progress, TrackerError> {
        if self.buf.is_empty() {
            return Ok(Progress::Blocked);
        }
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) if n <= HEAD_LEN_MAX => n,
            Ok(httparse::Status::Partial) if self.buf.len() <= HEAD_LEN_MAX => {
                return Ok(Progress::Blocked)
            }
            Ok(_) => return Err(TrackerError::HeadersTooLarge { max: HEAD_LEN_MAX }),
            Err(e) => return Err(TrackerError::Http(e.to_string())),
        };
        let status = response.code.unwrap_or_default();
        let version = response.version.unwrap_or_default();
        let head = Head::read(response.headers)?;
        self.buf.drain(..head_len);
        let framing = match status {
            101 => {
                return Err(TrackerError::Http(
                    "unexpected protocol switch (101)".into(),
                ))
            }
            // Interim responses (100 Continue) precede the real one.
            100..=199 => return Ok(Progress::Advanced),
            204 | 304 => Framing::Length(0),
            _ if head.chunked => Framing::Chunked(Chunk::Size),
            _ if head.other_transfer_coding => Framing::UntilClose,
            _ => match head.content_length {
                Some(n) if n > self.max_body => {
                    return Err(TrackerError::BodyTooLarge { max: self.max_body })
                }
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            },
        };
        let keep_alive = !matches!(framing, Framing::UntilClose)
            && !head.connection_close
            && (version == 1 || head.connection_keep_alive);
        self.state = State::Body {
            status,
            keep_alive,
            framing,
            body: Vec::new(),
        };
        Ok(Progress::Advanced)
    }
}

/// What the headers say about framing and the connection.
#[derive(Default)]
struct Head {
    content_length: Option<usize>,
    chunked: bool,
    /// A transfer coding other than a final `chunked`: the body runs until close.
    other_transfer_coding: bool,
    connection_close: bool,
    connection_keep_alive: bool,
}

impl Head {
    fn read(headers: &[httparse::Header<'_>]) -> Result<Self, TrackerError> {
        let mut head = Head::default();
        for h in headers {
            let value = std::str::from_utf8(h.value).unwrap_or_default().trim();
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = Some(value)
                    .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .ok_or_else(|| TrackerError::Http(format!("bad Content-Length `{value}`")))?;
                if head.content_length.is_some_and(|m| m != n) {
                    return Err(TrackerError::Http("conflicting Content-Length".into()));
                }
                head.content_length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                let last = value.rsplit(',').next().unwrap_or_default().trim();
                head.chunked = last.eq_ignore_ascii_case("chunked");
                head.other_transfer_coding = !head.chunked;
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    head.connection_close |= token.eq_ignore_ascii_case("close");
                    head.connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
        }
        Ok(head)
    }
}

/// Moves up to `n` bytes from the front of `buf` to `body`, refusing to grow past
/// `max_body`. Returns how many it moved.
fn take(
    buf: &mut Vec<u8>,
    body: &mut Vec<u8>,
    n: usize,
    max_body: usize,
) -> Result<usize, TrackerError> {
    let n = n.min(buf.len());
    if body.len().saturating_add(n) > max_body {
        return Err(TrackerError::BodyTooLarge { max: max_body });
    }
    body.extend(buf.drain(..n));
    Ok(n)
}

/// Moves body bytes out of `buf` as the framing allows.
fn body_step(
    buf: &mut Vec<u8>,
    framing: &mut Framing,
    body: &mut Vec<u8>,
    max_body: usize,
) -> Result<Progress, TrackerError> {
    match framing {
        Framing::UntilClose => {
            take(buf, body, usize::MAX, max_body)?;
            Ok(Progress::Blocked)
        }
        Framing::Length(remaining) => {
            *remaining -= take(buf, body, *remaining, max_body)?;
            Ok(if *remaining == 0 {
                Progress::Complete
            } else {
                Progress::Blocked
            })
        }
        Framing::Chunked(chunk) => chunked(buf, chunk, body, max_body),
    }
}

/// One step of the chunked decoder.
fn chunked(
    buf: &mut Vec<u8>,
    chunk: &mut Chunk,
    body: &mut Vec<u8>,
    max_body: usize,
) -> Result<Progress, TrackerError> {
    match *chunk {
        Chunk::Size => match httparse::parse_chunk_size(buf) {
            Ok(httparse::Status::Complete((used, size))) => {
                buf.drain(..used);
                let size = usize::try_from(size)
                    .ok()
                    .filter(|s| body.len().saturating_add(*s) <= max_body)
                    .ok_or(TrackerError::BodyTooLarge { max: max_body })?;
                *chunk = if size == 0 {
                    Chunk::Trailer(0)
                } else {
                    Chunk::Data(size)
                };
            }
            Ok(httparse::Status::Partial) if buf.len() <= CHUNK_LINE_MAX => {
                return Ok(Progress::Blocked)
            }
            Ok(httparse::Status::Partial) | Err(_) => {
                return Err(TrackerError::Http("bad chunk size line".into()))
            }
        },
        Chunk::Data(remaining) => {
            let n = take(buf, body, remaining, max_body)?;
            if n < remaining {
                *chunk = Chunk::Data(remaining - n);
                return Ok(Progress::Blocked);
            }
            *chunk = Chunk::DataEnd;
        }
        Chunk::DataEnd => match buf.get(..2) {
            None if buf.first().is_none_or(|&b| b == b'\r') => return Ok(Progress::Blocked),
            Some(b"\r\n") => {
                buf.drain(..2);
                *chunk = Chunk::Size;
            }
            _ => return Err(TrackerError::Http("chunk data not followed by CRLF".into())),
        },
        Chunk::Trailer(seen) => {
            let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
                if buf.len() > CHUNK_LINE_MAX {
                    return Err(TrackerError::HeadersTooLarge { max: HEAD_LEN_MAX });
                }
                return Ok(Progress::Blocked);
            };
            buf.drain(..line_end + 2);
            if line_end == 0 {
                return Ok(Progress::Complete);
            }
            let seen = seen + line_end + 2;
            if seen > HEAD_LEN_MAX {
                return Err(TrackerError::HeadersTooLarge { max: HEAD_LEN_MAX });
            }
            *chunk = Chunk::Trailer(seen);
        }
    }
    Ok(Progress::Advanced)
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
