//! Targets for readers that take a connection's bytes in pieces: the same input is cut at
//! places the fuzzer chooses (its first byte), since bugs in incremental parsers hide at
//! boundaries, and the whole of it must give the same responses however it is cut.

use ccbt_engine::http::{Part, ResponseStream};
use ccbt_engine::tracker::http::{announce_from_http, parse_announce, parse_scrape_all};
use ccbt_engine::tracker::{ResponseReader, PEERS_MAX};

/// The body limit the targets use: small, so that the over-limit path is reached.
const MAX_BODY: u64 = 4096;

/// Splits `data` into its first byte (the cut size, 1..=256) and the rest.
fn cut(data: &[u8]) -> Option<(usize, &[u8])> {
    let (&first, rest) = data.split_first()?;
    Some((usize::from(first) + 1, rest))
}

/// What a [`ResponseStream`] gave for a whole input: heads, body bytes per response, ends.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Head(u16),
    Body(Vec<u8>),
    End(bool),
    Error,
}

/// Feeds `bytes` in `step`-byte cuts, polling after each, then reports EOF.
fn run_stream(bytes: &[u8], step: usize) -> Vec<Event> {
    let mut stream = ResponseStream::new(MAX_BODY);
    let mut events = Vec::new();
    let mut body_seen = 0u64;
    let mut record = |part: Part<'_>, events: &mut Vec<Event>| match part {
        Part::Head(head) => {
            body_seen = 0;
            events.push(Event::Head(head.status));
        }
        Part::Body(b) => {
            assert!(!b.is_empty(), "empty body part");
            body_seen += b.len() as u64;
            assert!(body_seen <= MAX_BODY, "body past its limit");
            match events.last_mut() {
                Some(Event::Body(acc)) => acc.extend_from_slice(b),
                _ => events.push(Event::Body(b.to_vec())),
            }
        }
        Part::End { keep_alive } => events.push(Event::End(keep_alive)),
    };
    for chunk in bytes.chunks(step) {
        stream.push(chunk);
        loop {
            match stream.poll() {
                Ok(Some(part)) => record(part, &mut events),
                Ok(None) => break,
                Err(_) => {
                    events.push(Event::Error);
                    return events;
                }
            }
        }
    }
    match stream.on_eof() {
        Ok(Some(part)) => record(part, &mut events),
        Ok(None) => {}
        Err(_) => events.push(Event::Error),
    }
    events
}

/// The engine's HTTP/1.1 response stream (web seeds, trackers): cut anywhere, the same
/// parts come out as when the bytes arrive at once.
pub fn http_response(data: &[u8]) {
    let Some((step, bytes)) = cut(data) else {
        return;
    };
    let whole = run_stream(bytes, bytes.len().max(1));
    let pieces = run_stream(bytes, step);
    assert_eq!(whole, pieces, "cut into {step}-byte pieces");
}

/// An HTTP tracker's reply: the bencoded body parsers, and the whole response read from a
/// connection in cuts, as the announcer does.
pub fn http_tracker(data: &[u8]) {
    if let Ok(response) = parse_announce(data) {
        assert!(response.peers.len() <= PEERS_MAX);
    }
    let _ = parse_scrape_all(data);
    let Some((step, bytes)) = cut(data) else {
        return;
    };
    let mut reader = ResponseReader::new(MAX_BODY as usize);
    for chunk in bytes.chunks(step) {
        match reader.feed(chunk) {
            Ok(Some(response)) => {
                assert!(response.body.len() as u64 <= MAX_BODY);
                let _ = announce_from_http(&response);
            }
            Ok(None) => {}
            Err(_) => return,
        }
    }
    if let Ok(response) = reader.on_eof() {
        let _ = announce_from_http(&response);
    }
}
