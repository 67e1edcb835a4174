//! `/events`: the daemon's event log as Server-Sent Events, for scripts and UIs.
//!
//! Each event goes out as `id: SEQ`, `event: KIND` (added, checked, completed, error,
//! removed, tracker-error, peer-banned) and `data:` its JSON (`seq`, `at`, `kind`,
//! `hash`, `detail`). A client resumes where it stopped with the `Last-Event-ID` header
//! (what browsers' `EventSource` sends on reconnecting) or `?since=SEQ`; without either it
//! gets only what happens from now on, and `?since=0` replays every event still kept.
//!
//! - A reader further behind than the log keeps (`daemon::events::LOG_LEN`) first gets
//!   an `event: gap` whose data says how many it missed.
//! - A `Last-Event-ID` above anything this run gave (ids start again at 1 when the daemon
//!   restarts) gets an `event: reset` and then every event kept.
//! - A comment line every [`KEEP_ALIVE`] keeps proxies from closing an idle stream.
//!
//! The stream waits on the log's wake-up (a tokio watch channel fed by each push), never
//! polls. Bounds: at most [`STREAMS_MAX`] streams at once (the next gets 503 with a
//! `Retry-After`); each holds at most [`BATCH`] events in memory, and hyper pulls the next
//! only as fast as the client reads.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::access::reason;
use super::Api;
use crate::daemon::events::{Batch, Event};

/// Streams open at once, at most.
pub const STREAMS_MAX: usize = 64;
/// Events read from the log at a time per stream.
pub const BATCH: usize = 256;
/// How often an idle stream sends a comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How often an idle stream looks whether the daemon is stopping.
const STOP_CHECK: Duration = Duration::from_secs(1);

static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Streams open now.
pub fn open_streams() -> usize {
    OPEN.load(Ordering::Relaxed)
}

/// One of the [`STREAMS_MAX`] places, given back when the stream ends.
struct StreamSlot;

impl StreamSlot {
    fn take() -> Option<StreamSlot> {
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < STREAMS_MAX).then_some(n + 1)
        })
        .ok()
        .map(|_| StreamSlot)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

pub fn router() -> Router<Arc<Api>> {
    Router::new().route(
        "/events",
        get(events).fallback(|| async {
            reason(
                StatusCode::METHOD_NOT_ALLOWED,
                "/events answers GET only (an EventSource stream)",
            )
        }),
    )
}

/// Where a stream starts: after this sequence number, or from now.
#[derive(Debug, PartialEq, Eq)]
enum Start {
    After(u64),
    Now,
}

fn start_of(query: &[(String, String)], headers: &HeaderMap) -> Result<Start, String> {
    let mut start = Start::Now;
    for (key, value) in query {
        match key.as_str() {
            "since" => {
                start = Start::After(value.trim().parse().map_err(|_| {
                    format!("since={value:?}: expected an event id (a whole number)")
                })?)
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?}: /events takes only since=ID"
                ))
            }
        }
    }
    if let Some(last) = headers.get("last-event-id") {
        let text = last
            .to_str()
            .map_err(|_| "Last-Event-ID is not text".to_string())?;
        // The browser's resume wins over the URL it was first opened with.
        start = Start::After(text.trim().parse().map_err(|_| {
            format!("Last-Event-ID {text:?}: expected an event id (a whole number)")
        })?);
    }
    Ok(start)
}

async fn events(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    if let Some(refused) = api.access.plain_refusal(peer.ip(), &headers) {
        return refused;
    }
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return reason(
                StatusCode::BAD_REQUEST,
                &format!("bad query string: {}", e.body_text()),
            )
        }
    };
    let start = match start_of(&query, &headers) {
        Ok(s) => s,
        Err(why) => return reason(StatusCode::BAD_REQUEST, &why),
    };
    let Some(slot) = StreamSlot::take() else {
        let mut busy = reason(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{STREAMS_MAX} event streams are open already; try again later"),
        );
        busy.headers_mut()
            .insert("retry-after", axum::http::HeaderValue::from_static("30"));
        return busy;
    };
    let woken = api.daemon.events.subscribe();
    let latest = *woken.borrow();
    let (after, reset) = match start {
        Start::Now => (latest, false),
        Start::After(seq) if seq > latest => (0, true),
        Start::After(seq) => (seq, false),
    };
    let log = api.clone();
    let mut reader = Reader {
        read: Box::new(move |after, max| log.daemon.events.after(after, max)),
        stopping: api.stop.clone(),
        after,
        woken,
        ready: VecDeque::new(),
        _slot: slot,
    };
    if reset {
        reader.ready.push_back(Item::Reset { latest });
    }
    stream(reader)
}

fn stream(reader: Reader) -> Response {
    let events = futures_lite::stream::unfold(reader, |mut reader| async move {
        let next = reader.next().await?;
        Some((Ok::<_, std::convert::Infallible>(next.to_sse()), reader))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// What a stream sends.
#[derive(Debug, Clone)]
enum Item {
    Event(Event),
    /// Events `first..=last` are no longer kept.
    Gap {
        first: u64,
        last: u64,
    },
    /// The client's id is not from this run; `latest` is this run's last.
    Reset {
        latest: u64,
    },
}

impl Item {
    fn to_sse(&self) -> SseEvent {
        match self {
            Item::Event(event) => {
                let kind = serde_json::to_value(event.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| "event".into());
                SseEvent::default()
                    .id(event.seq.to_string())
                    .event(kind)
                    .data(serde_json::to_string(event).unwrap_or_else(|_| "{}".into()))
            }
            // Its id is the last one missed, so a client resuming after it does not see
            // the gap again.
            Item::Gap { first, last } => {
                SseEvent::default().event("gap").id(last.to_string()).data(
                    serde_json::json!({
                        "missed": last - first + 1,
                        "first": first,
                        "last": last,
                        "reason": "the reader fell behind the daemon's event log",
                    })
                    .to_string(),
                )
            }
            Item::Reset { latest } => SseEvent::default().event("reset").data(
                serde_json::json!({
                    "reason": "that id is not from this run of the daemon (ids start \
                               again at 1 when it restarts); every event kept follows",
                    "latest": latest,
                })
                .to_string(),
            ),
        }
    }
}

/// Reads the log after a sequence number, at most so many events.
type ReadLog = Box<dyn Fn(u64, usize) -> Batch + Send + Sync>;

/// One stream's place in the log.
struct Reader {
    read: ReadLog,
    /// The daemon is stopping: the stream ends, so the server's shutdown need not wait
    /// for its clients to hang up.
    stopping: Arc<AtomicBool>,
    /// The last sequence number sent (or skipped as missed).
    after: u64,
    woken: tokio::sync::watch::Receiver<u64>,
    /// At most [`BATCH`] events and a gap or reset.
    ready: VecDeque<Item>,
    _slot: StreamSlot,
}

impl Reader {
    /// The next item to send; `None` once the daemon stops.
    async fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                return Some(item);
            }
            // Seen before reading, so a push after the read wakes the wait below.
            self.woken.borrow_and_update();
            let batch = (self.read)(self.after, BATCH);
            if batch.missed > 0 {
                let last = self.after + batch.missed;
                self.ready.push_back(Item::Gap {
                    first: self.after + 1,
                    last,
                });
                self.after = last;
            }
            for event in batch.events {
                self.after = event.seq;
                self.ready.push_back(Item::Event(event));
            }
            if !self.ready.is_empty() {
                continue;
            }
            // Woken by the next push; the stop flag has no wake-up, so it is looked at
            // once every STOP_CHECK while idle (a timer, not a busy loop).
            tokio::select! {
                changed = self.woken.changed() => if changed.is_err() {
                    return None;
                },
                _ = tokio::time::sleep(STOP_CHECK) => {}
            }
            if self.stopping.load(Ordering::Acquire) {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::events::{EventKind, EventLog, LOG_LEN};

    /// The stream slots are one count per process: tests that take them take turns.
    static SLOTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_start_comes_from_last_event_id_or_since() {
        let none = HeaderMap::new();
        assert_eq!(start_of(&q(&[]), &none), Ok(Start::Now));
        assert_eq!(start_of(&q(&[("since", "7")]), &none), Ok(Start::After(7)));
        let mut resumed = HeaderMap::new();
        resumed.insert("last-event-id", "42".parse().unwrap());
        assert_eq!(
            start_of(&q(&[("since", "7")]), &resumed),
            Ok(Start::After(42))
        );
        let bad = start_of(&q(&[("since", "-1")]), &none).unwrap_err();
        assert!(bad.contains("expected an event id"), "{bad}");
        let unknown = start_of(&q(&[("from", "1")]), &none).unwrap_err();
        assert!(unknown.contains("unknown parameter"), "{unknown}");
        resumed.insert("last-event-id", "abc".parse().unwrap());
        assert!(start_of(&q(&[]), &resumed).is_err());
    }

    fn reader_of(log: &Arc<EventLog>, after: u64, slot: StreamSlot) -> Reader {
        let source = log.clone();
        Reader {
            read: Box::new(move |after, max| source.after(after, max)),
            stopping: Arc::new(AtomicBool::new(false)),
            after,
            woken: log.subscribe(),
            ready: VecDeque::new(),
            _slot: slot,
        }
    }

    fn seq(item: &Item) -> u64 {
        match item {
            Item::Event(e) => e.seq,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_reader_behind_the_log_gets_a_gap_then_the_rest_in_order() {
        let log = Arc::new(EventLog::default());
        for i in 0..(LOG_LEN + 10) {
            log.push(EventKind::Added, format!("{i}"), None);
        }
        let _alone = SLOTS.lock().await;
        let slot = StreamSlot::take().expect("a free slot");
        let mut reader = reader_of(&log, 3, slot);
        match reader.next().await.unwrap() {
            Item::Gap { first, last } => assert_eq!((first, last), (4, 10)),
            other => panic!("expected a gap: {other:?}"),
        }
        for expected in 11..=(LOG_LEN as u64 + 10) {
            assert_eq!(seq(&reader.next().await.unwrap()), expected);
        }
        // Caught up: it waits (no busy loop) until the next push wakes it.
        let waiting = tokio::time::timeout(Duration::from_millis(50), reader.next()).await;
        assert!(waiting.is_err(), "nothing new, yet it answered");
        let pusher = {
            let log = log.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                log.push(EventKind::Removed, "x".into(), None);
            })
        };
        let next = tokio::time::timeout(Duration::from_secs(10), reader.next())
            .await
            .expect("woken by the push")
            .unwrap();
        assert_eq!(seq(&next), LOG_LEN as u64 + 11);
        pusher.await.unwrap();
        // The daemon stops: an idle stream ends within a check or two.
        reader.stopping.store(true, Ordering::Release);
        let ended = tokio::time::timeout(STOP_CHECK * 5, reader.next()).await;
        assert!(matches!(ended, Ok(None)), "{ended:?}");
    }

    #[test]
    fn streams_past_the_bound_are_refused_until_one_ends() {
        let _alone = SLOTS.blocking_lock();
        let held: Vec<_> = std::iter::from_fn(StreamSlot::take).take(1000).collect();
        assert_eq!(held.len(), STREAMS_MAX);
        assert!(StreamSlot::take().is_none());
        drop(held);
        assert!(StreamSlot::take().is_some());
    }
}
