//! Reading HTTP/1.1 responses as a stream of parts.
//!
//! Handles `Content-Length`, `Transfer-Encoding: chunked` and close-delimited bodies,
//! bounds the head and the body, and keeps any bytes past the end of one response for the
//! next one on a kept-alive (or pipelined) connection.

use super::HttpError;

/// Largest response head (status line and headers) we buffer.
pub const HEAD_LEN_MAX: usize = 16 << 10;

/// Most headers in one response.
pub const HEADERS_MAX: usize = 64;

/// Longest chunk-size line, or trailer line, we buffer while waiting for its end.
const CHUNK_LINE_MAX: usize = 1024;

/// A response's status line and headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Header names lower-cased, values trimmed (lossily decoded), in arrival order.
    pub headers: Vec<(String, String)>,
    /// `Content-Length`, when the body is framed by it.
    pub content_length: Option<u64>,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
}

impl Head {
    /// The first header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One step of a response.
#[derive(Debug, PartialEq, Eq)]
pub enum Part<'a> {
    Head(Head),
    /// The next bytes of the body (already de-chunked).
    Body(&'a [u8]),
    /// The response is complete. `keep_alive`: the connection may carry another.
    End {
        keep_alive: bool,
    },
}

/// Turns the bytes of a connection into [`Part`]s, one response after another.
///
/// Memory is bounded by the head limit plus the size of the chunk last pushed: body bytes
/// are handed out, not kept. Bodies over `max_body` are refused. After an error, drop the
/// connection and the stream.
#[derive(Debug)]
pub struct ResponseStream {
    max_body: u64,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed out or parsed.
    start: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    Head,
    Body {
        keep_alive: bool,
        framing: Framing,
        seen: u64,
    },
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    /// `Content-Length`: this many bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// No length given: the body ends when the server closes.
    UntilClose,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    /// After the last chunk: trailer lines until an empty one; counts their bytes.
    Trailer(usize),
}

/// What [`ResponseStream::head`] found.
enum HeadStep {
    Incomplete,
    /// An interim (1xx) response, consumed; the real one follows.
    Interim,
    Done(Head),
}

impl ResponseStream {
    pub fn new(max_body: u64) -> Self {
        ResponseStream {
            max_body,
            buf: Vec::new(),
            start: 0,
            state: State::Head,
        }
    }

    /// The body limit for responses whose head has not been read yet.
    pub fn set_max_body(&mut self, max_body: u64) {
        self.max_body = max_body;
    }

    /// Adds bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// True when no part of a response has been received.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head) && self.start == self.buf.len()
    }

    /// The next part the bytes pushed so far make, if any.
    pub fn poll(&mut self) -> Result<Option<Part<'_>>, HttpError> {
        loop {
            let avail = self.buf.len() - self.start;
            match &mut self.state {
                State::Head => {
                    if avail == 0 {
                        return Ok(None);
                    }
                    match self.head()? {
                        HeadStep::Done(head) => return Ok(Some(Part::Head(head))),
                        HeadStep::Incomplete => return Ok(None),
                        HeadStep::Interim => continue,
                    }
                }
                State::Body {
                    keep_alive,
                    framing,
                    seen,
                } => {
                    let keep_alive = *keep_alive;
                    match framing {
                        Framing::Length(0) => {
                            self.state = State::Head;
                            return Ok(Some(Part::End { keep_alive }));
                        }
                        Framing::Length(left) => {
                            if avail == 0 {
                                return Ok(None);
                            }
                            let n = (*left).min(avail as u64);
                            *left -= n;
                            return Ok(Some(self.body(n)));
                        }
                        Framing::UntilClose => {
                            if avail == 0 {
                                return Ok(None);
                            }
                            let n = avail as u64;
                            if seen.saturating_add(n) > self.max_body {
                                return Err(HttpError::BodyTooLarge { max: self.max_body });
                            }
                            return Ok(Some(self.body(n)));
                        }
                        Framing::Chunked(chunk) => match *chunk {
                            Chunk::Data(left) => {
                                if avail == 0 {
                                    return Ok(None);
                                }
                                let n = left.min(avail as u64);
                                *chunk = if n == left {
                                    Chunk::DataEnd
                                } else {
                                    Chunk::Data(left - n)
                                };
                                return Ok(Some(self.body(n)));
                            }
                            _ => {
                                if !self.chunk_step()? {
                                    return Ok(None);
                                }
                                if let State::Body {
                                    framing: Framing::Chunked(Chunk::Trailer(usize::MAX)),
                                    keep_alive,
                                    ..
                                } = self.state
                                {
                                    self.state = State::Head;
                                    return Ok(Some(Part::End { keep_alive }));
                                }
                            }
                        },
                    }
                }
            }
        }
    }

    /// The server closed the connection: ends a close-delimited body; anything else
    /// half-read is truncated. `Ok(None)` when nothing was under way.
    pub fn on_eof(&mut self) -> Result<Option<Part<'_>>, HttpError> {
        match self.state {
            State::Body {
                framing: Framing::UntilClose,
                ..
            } if self.start == self.buf.len() => {
                self.state = State::Head;
                Ok(Some(Part::End { keep_alive: false }))
            }
            State::Head if self.start == self.buf.len() => Ok(None),
            _ => Err(HttpError::Truncated),
        }
    }

    /// Hands out the next `n` body bytes.
    fn body(&mut self, n: u64) -> Part<'_> {
        if let State::Body { seen, .. } = &mut self.state {
            *seen += n;
        }
        let from = self.start;
        self.start += n as usize;
        Part::Body(&self.buf[from..self.start])
    }

    /// Parses a head once it is all in.
    fn head(&mut self) -> Result<HeadStep, HttpError> {
        let bytes = &self.buf[self.start..];
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(bytes) {
            Ok(httparse::Status::Complete(n)) if n <= HEAD_LEN_MAX => n,
            Ok(httparse::Status::Partial) if bytes.len() <= HEAD_LEN_MAX => {
                return Ok(HeadStep::Incomplete)
            }
            Ok(_) => return Err(HttpError::HeadersTooLarge { max: HEAD_LEN_MAX }),
            Err(e) => return Err(HttpError::Malformed(e.to_string())),
        };
        let status = response.code.unwrap_or_default();
        let version = response.version.unwrap_or_default();
        let mut head = Head {
            status,
            headers: Vec::with_capacity(response.headers.len()),
            content_length: None,
            keep_alive: false,
        };
        let mut chunked = false;
        let mut other_coding = false;
        let mut close = false;
        let mut keep = false;
        for h in response.headers.iter() {
            let name = h.name.to_ascii_lowercase();
            let value = String::from_utf8_lossy(h.value).trim().to_string();
            match name.as_str() {
                "content-length" => {
                    let n = Some(value.as_str())
                        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                        .and_then(|v| v.parse::<u64>().ok())
                        .ok_or_else(|| {
                            HttpError::Malformed(format!("bad Content-Length `{value}`"))
                        })?;
                    if head.content_length.is_some_and(|m| m != n) {
                        return Err(HttpError::Malformed("conflicting Content-Length".into()));
                    }
                    head.content_length = Some(n);
                }
                "transfer-encoding" => {
                    let last = value.rsplit(',').next().unwrap_or_default().trim();
                    chunked = last.eq_ignore_ascii_case("chunked");
                    other_coding = !chunked;
                }
                "connection" => {
                    for token in value.split(',').map(str::trim) {
                        close |= token.eq_ignore_ascii_case("close");
                        keep |= token.eq_ignore_ascii_case("keep-alive");
                    }
                }
                _ => {}
            }
            head.headers.push((name, value));
        }
        self.start += head_len;
        let framing = match status {
            101 => {
                return Err(HttpError::Malformed(
                    "unexpected protocol switch (101)".into(),
                ))
            }
            // Interim responses (100 Continue) precede the real one.
            100..=199 => return Ok(HeadStep::Interim),
            204 | 304 => Framing::Length(0),
            _ if chunked => Framing::Chunked(Chunk::Size),
            _ if other_coding => Framing::UntilClose,
            _ => match head.content_length {
                Some(n) if n > self.max_body => {
                    return Err(HttpError::BodyTooLarge { max: self.max_body })
                }
                Some(n) => Framing::Length(n),
                None => Framing::UntilClose,
            },
        };
        if !matches!(framing, Framing::Length(_)) {
            head.content_length = None;
        }
        head.keep_alive =
            !matches!(framing, Framing::UntilClose) && !close && (version == 1 || keep);
        self.state = State::Body {
            keep_alive: head.keep_alive,
            framing,
            seen: 0,
        };
        Ok(HeadStep::Done(head))
    }

    /// One step of the chunked decoder outside chunk data. False: needs more bytes.
    /// Marks the end of the body as `Trailer(usize::MAX)`.
    fn chunk_step(&mut self) -> Result<bool, HttpError> {
        let max_body = self.max_body;
        let State::Body {
            framing: Framing::Chunked(chunk),
            seen,
            ..
        } = &mut self.state
        else {
            return Ok(false);
        };
        let bytes = &self.buf[self.start..];
        match *chunk {
            Chunk::Size => match httparse::parse_chunk_size(bytes) {
                // The same limit however the line arrives: on its content, not counting
                // the CRLF (or a CR still waiting for its LF).
                Ok(httparse::Status::Complete((used, _))) if used - 2 > CHUNK_LINE_MAX => {
                    return Err(HttpError::Malformed("bad chunk size line".into()))
                }
                Ok(httparse::Status::Complete((used, size))) => {
                    if seen.saturating_add(size) > max_body {
                        return Err(HttpError::BodyTooLarge { max: max_body });
                    }
                    self.start += used;
                    *chunk = if size == 0 {
                        Chunk::Trailer(0)
                    } else {
                        Chunk::Data(size)
                    };
                }
                Ok(httparse::Status::Partial) if line_so_far(bytes) <= CHUNK_LINE_MAX => {
                    return Ok(false)
                }
                Ok(httparse::Status::Partial) | Err(_) => {
                    return Err(HttpError::Malformed("bad chunk size line".into()))
                }
            },
            Chunk::Data(_) => {}
            Chunk::DataEnd => match bytes.get(..2) {
                None if bytes.first().is_none_or(|&b| b == b'\r') => return Ok(false),
                Some(b"\r\n") => {
                    self.start += 2;
                    *chunk = Chunk::Size;
                }
                _ => {
                    return Err(HttpError::Malformed(
                        "chunk data not followed by CRLF".into(),
                    ))
                }
            },
            Chunk::Trailer(seen_trailer) => {
                let Some(line_end) = bytes.windows(2).position(|w| w == b"\r\n") else {
                    if line_so_far(bytes) > CHUNK_LINE_MAX {
                        return Err(HttpError::HeadersTooLarge { max: HEAD_LEN_MAX });
                    }
                    return Ok(false);
                };
                if line_end > CHUNK_LINE_MAX {
                    return Err(HttpError::HeadersTooLarge { max: HEAD_LEN_MAX });
                }
                self.start += line_end + 2;
                if line_end == 0 {
                    *chunk = Chunk::Trailer(usize::MAX);
                    return Ok(true);
                }
                let total = seen_trailer + line_end + 2;
                if total > HEAD_LEN_MAX {
                    return Err(HttpError::HeadersTooLarge { max: HEAD_LEN_MAX });
                }
                *chunk = Chunk::Trailer(total);
            }
        }
        Ok(true)
    }
}

/// How much of a line has come, not counting a last CR (which may start its CRLF): what
/// the line limits apply to, so they hold the same however the line is cut.
fn line_so_far(bytes: &[u8]) -> usize {
    bytes.len() - usize::from(bytes.last() == Some(&b'\r'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A fuzz finding: a chunk-size line over the limit was taken when it came whole and
    /// refused when it came in pieces, so the whole response handed out more body first.
    /// Lines at the limit and just past it, every way they can be cut.
    #[test]
    fn chunk_lines_meet_their_limit_the_same_way_however_they_are_cut() {
        for (extension, trailer) in [(0, 0), (1, 0), (0, 1)] {
            for len in [CHUNK_LINE_MAX - 1, CHUNK_LINE_MAX, CHUNK_LINE_MAX + 1] {
                let mut wire =
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n".to_vec();
                let mut line = if extension == 1 {
                    b"2;".to_vec()
                } else {
                    b"2".to_vec()
                };
                if extension == 1 {
                    line.resize(len, b'x');
                }
                wire.extend_from_slice(&line);
                wire.extend_from_slice(b"\r\nde\r\n0\r\n");
                if trailer == 1 {
                    wire.extend_from_slice(&vec![b't'; len]);
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b"\r\n");
                let whole = collect(&wire, wire.len(), 1000).map(joined);
                for split in 1..40 {
                    assert_eq!(
                        collect(&wire, split, 1000).map(joined),
                        whole,
                        "line of {len}, extension {extension}, trailer {trailer}, split {split}"
                    );
                }
            }
        }
    }

    /// Everything one feed of `bytes` (in `split`-byte chunks) yields: heads' statuses,
    /// body bytes, ends.
    fn collect(bytes: &[u8], split: usize, max: u64) -> Result<Vec<String>, HttpError> {
        let mut s = ResponseStream::new(max);
        let mut out = Vec::new();
        for chunk in bytes.chunks(split.max(1)) {
            s.push(chunk);
            while let Some(part) = s.poll()? {
                out.push(match part {
                    Part::Head(h) => format!("head {}", h.status),
                    Part::Body(b) => format!("body {}", String::from_utf8_lossy(b)),
                    Part::End { keep_alive } => format!("end {keep_alive}"),
                });
            }
        }
        Ok(out)
    }

    /// Joins consecutive body parts, so splits do not matter.
    fn joined(parts: Vec<String>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in parts {
            match (out.last_mut(), p.strip_prefix("body ")) {
                (Some(last), Some(rest)) if last.starts_with("body ") => last.push_str(rest),
                _ => out.push(p),
            }
        }
        out
    }

    #[test]
    fn pipelined_responses_stream_in_order_at_any_split() {
        let wire = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\n\r\nabc\
                     HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n0\r\n\r\n";
        for split in 1..wire.len() {
            assert_eq!(
                joined(collect(wire, split, 100).unwrap()),
                ["head 206", "body abc", "end true", "head 200", "body de", "end true"],
                "split {split}"
            );
        }
    }

    #[test]
    fn headers_are_kept_lower_cased() {
        let mut s = ResponseStream::new(10);
        s.push(b"HTTP/1.1 302 Found\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n");
        let Some(Part::Head(head)) = s.poll().unwrap() else {
            panic!()
        };
        assert_eq!(head.header("location"), Some("/x"));
        assert_eq!(head.content_length, Some(0));
        assert_eq!(s.poll().unwrap(), Some(Part::End { keep_alive: true }));
        assert!(s.is_idle());
    }

    #[test]
    fn eof_ends_only_close_delimited_bodies() {
        let mut s = ResponseStream::new(10);
        s.push(b"HTTP/1.0 200 OK\r\n\r\nab");
        assert!(matches!(s.poll().unwrap(), Some(Part::Head(_))));
        assert_eq!(s.poll().unwrap(), Some(Part::Body(b"ab")));
        assert_eq!(s.on_eof().unwrap(), Some(Part::End { keep_alive: false }));
        let mut s = ResponseStream::new(10);
        s.push(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab");
        while s.poll().unwrap().is_some() {}
        assert_eq!(s.on_eof(), Err(HttpError::Truncated));
    }

    #[test]
    fn oversized_heads_lying_lengths_and_long_chunks_are_refused() {
        let long = format!("HTTP/1.1 206 P\r\nX: {}\r\n", "a".repeat(HEAD_LEN_MAX));
        assert_eq!(
            collect(long.as_bytes(), 1000, 100),
            Err(HttpError::HeadersTooLarge { max: HEAD_LEN_MAX })
        );
        assert_eq!(
            collect(b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n", 7, 100),
            Err(HttpError::BodyTooLarge { max: 100 })
        );
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        assert!(matches!(collect(two, 9, 100), Err(HttpError::Malformed(_))));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n65\r\n";
        assert_eq!(
            collect(chunked, 3, 100),
            Err(HttpError::BodyTooLarge { max: 100 })
        );
        let junk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
        assert!(matches!(
            collect(junk, 3, 100),
            Err(HttpError::Malformed(_))
        ));
    }

    proptest! {
        #[test]
        fn stream_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            split in 1usize..64,
        ) {
            let _ = collect(&bytes, split, 256);
        }
    }
}
