//! `/events` of a real `ccbt-uring daemon`: a reader sees a torrent's `added`, resumes
//! with `Last-Event-ID` or `?since=` without duplicates, gets a `reset` for an id of
//! another run, and its stream ends when the daemon stops; past the bound on streams the
//! next is refused with a reason.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::http::{addr_of, http, sample, IO};
use common::swarm::free_port;

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq)]
struct Sse {
    id: Option<u64>,
    event: String,
    data: String,
}

/// An `/events` stream read over HTTP/1.0, so the body comes unchunked until closed.
struct EventStream {
    stream: TcpStream,
    buf: String,
    head_done: bool,
}

impl EventStream {
    #[track_caller]
    fn open(base: &str, path: &str, headers: &[(&str, &str)]) -> EventStream {
        let mut stream = TcpStream::connect_timeout(&addr_of(base), IO).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n");
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        EventStream {
            stream,
            buf: String::new(),
            head_done: false,
        }
    }

    /// Reads until `until` holds for an event (failing the test if it does not within
    /// `limit`); every event read.
    #[track_caller]
    fn read_until(&mut self, limit: Duration, until: impl Fn(&Sse) -> bool) -> Vec<Sse> {
        self.read(limit, until, true)
    }

    /// Every event that comes within `limit`.
    #[track_caller]
    fn read_for(&mut self, limit: Duration) -> Vec<Sse> {
        self.read(limit, |_| false, false)
    }

    #[track_caller]
    fn read(&mut self, limit: Duration, until: impl Fn(&Sse) -> bool, must: bool) -> Vec<Sse> {
        let deadline = Instant::now() + limit;
        let mut events = Vec::new();
        loop {
            while let Some(at) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..at + 2).collect();
                if !self.head_done {
                    assert_eq!(frame.split(' ').nth(1), Some("200"), "{frame}");
                    assert!(frame.contains("text/event-stream"), "{frame}");
                    self.head_done = true;
                    continue;
                }
                let mut e = Sse::default();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        e.id = Some(v.parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        e.event = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        e.data = v.to_string();
                    }
                }
                if e.event.is_empty() && e.id.is_none() {
                    continue; // a keep-alive comment
                }
                let done = until(&e);
                events.push(e);
                if done {
                    return events;
                }
            }
            if Instant::now() >= deadline {
                assert!(!must, "no awaited event within {limit:?}; read {events:?}");
                return events;
            }
            let mut chunk = [0u8; 4096];
            let left = deadline.saturating_duration_since(Instant::now());
            self.stream
                .set_read_timeout(Some(left.clamp(Duration::from_millis(1), IO)))
                .unwrap();
            match self.stream.read(&mut chunk) {
                Ok(0) => panic!("the stream closed; read {events:?}"),
                Ok(n) => self
                    .buf
                    .push_str(&String::from_utf8_lossy(&chunk[..n]).replace("\r\n", "\n")),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) => panic!("reading the stream: {e}"),
            }
        }
    }
}

/// A torrent of a few files made with `ccbt-uring create` (no tracker needed).
fn small_torrent(root: &Path, name: &str, seed: usize) -> PathBuf {
    common::own_torrent(
        &root.join(name),
        &[("a.bin", 300_000 + seed), ("b.txt", 999)],
        &root.join(format!("{name}.torrent")),
    )
}

fn is_added(hash: &str) -> impl Fn(&Sse) -> bool + '_ {
    move |e| e.event == "added" && e.data.contains(hash)
}

#[test]
fn the_event_stream_shows_an_add_and_resumes_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&home).unwrap();
    let mut daemon = Daemon::start(&home, &["--peer-port", &free_port().to_string()]);
    let first = small_torrent(&data, "first", 1);
    let second = small_torrent(&data, "second", 2);
    let third = small_torrent(&data, "third", 3);

    // From now on: the add shows up while the stream is open.
    let mut live = EventStream::open(&daemon.api, "/events", &[]);
    let before = live.read_for(Duration::from_millis(300));
    assert!(
        before.is_empty(),
        "events before anything happened: {before:?}"
    );
    let hash = daemon.add(&first, &["--save-dir", data.to_str().unwrap()]);
    let mut seen = live.read_until(IO, is_added(&hash));
    let added = seen.last().unwrap().clone();
    let data_json: serde_json::Value = serde_json::from_str(&added.data).unwrap();
    assert_eq!(data_json["kind"], "added");
    assert_eq!(data_json["hash"], hash);
    assert_eq!(data_json["seq"].as_u64(), added.id);
    // Its check may end just before or just after its add is announced: read on until
    // both are seen, so that nothing of the first torrent comes after `last_id`.
    let is_checked = |e: &Sse| e.event == "checked" && e.data.contains(&hash);
    if !seen.iter().any(is_checked) {
        seen.extend(live.read_until(IO, is_checked));
    }
    let last_id = seen.iter().filter_map(|e| e.id).max().unwrap();
    drop(live);

    // Two more while nobody listens; a reader resuming at the last id it saw gets them,
    // and nothing it had already.
    let hash2 = daemon.add(&second, &["--save-dir", data.to_str().unwrap()]);
    let hash3 = daemon.add(&third, &["--save-dir", data.to_str().unwrap()]);
    let mut resumed = EventStream::open(
        &daemon.api,
        "/events",
        &[("Last-Event-ID", &last_id.to_string())],
    );
    let mut got = resumed.read_until(IO, is_added(&hash3));
    // Events of the second and third torrents come in order, none at or before last_id.
    let ids: Vec<u64> = got.iter().filter_map(|e| e.id).collect();
    assert!(ids.iter().all(|&id| id > last_id), "{got:?}");
    assert!(ids.windows(2).all(|w| w[1] == w[0] + 1), "{ids:?}");
    assert_eq!(ids.first(), Some(&(last_id + 1)), "{got:?}");
    assert!(got.iter().any(is_added(&hash2)));
    assert!(!got.iter().any(|e| e.data.contains(&hash)), "{got:?}");
    // The stream stays open and goes on with what comes next.
    daemon.remote(&["remove", &hash2]).ok();
    got = resumed.read_until(IO, |e| e.event == "removed");
    assert!(got.last().unwrap().data.contains(&hash2));
    assert_eq!(
        got.last().unwrap().id,
        Some(ids.last().unwrap() + got.len() as u64)
    );

    // ?since= resumes the same way; since=0 replays every event kept.
    let mut replay = EventStream::open(&daemon.api, &format!("/events?since={last_id}"), &[]);
    let again = replay.read_until(IO, is_added(&hash3));
    assert_eq!(again.first().and_then(|e| e.id), Some(last_id + 1));
    let mut all = EventStream::open(&daemon.api, "/events?since=0", &[]);
    let everything = all.read_until(IO, |e| e.event == "removed");
    assert_eq!(everything.first().and_then(|e| e.id), Some(1));
    assert!(everything.iter().any(is_added(&hash)));
    // An id from another run (ids start at 1 again after a restart) says so, then replays.
    let mut stale = EventStream::open(&daemon.api, "/events", &[("Last-Event-ID", "999999")]);
    let reset = stale.read_until(IO, is_added(&hash));
    assert_eq!(reset[0].event, "reset", "{reset:?}");
    assert_eq!(reset[1].id, Some(1));

    // The daemon stops: open streams end (the server does not wait for their clients).
    assert!(daemon.stop(Duration::from_secs(10)).success());
    stale.stream.set_read_timeout(Some(IO)).unwrap();
    let mut rest = Vec::new();
    stale
        .stream
        .read_to_end(&mut rest)
        .expect("the stream ends with the daemon");
}

#[test]
fn event_streams_past_the_bound_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path(), &["--peer-port", &free_port().to_string()]);
    // 64 streams open at once (the bound, see `http::sse::STREAMS_MAX`)...
    let mut open: Vec<EventStream> = (0..64)
        .map(|_| EventStream::open(&daemon.api, "/events", &[]))
        .collect();
    for s in &mut open {
        assert!(s.read_for(Duration::from_millis(50)).is_empty());
    }
    // ... wait until the daemon holds them all, then one more is refused.
    let deadline = Instant::now() + IO;
    loop {
        let scrape = http(&daemon.api, "GET", "/metrics", &[]).body;
        if sample(&scrape, "ccbt_event_streams") == Some(64.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{scrape}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = http(&daemon.api, "GET", "/events", &[]);
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.body.contains("event streams are open already"));
    assert!(refused.head.to_ascii_lowercase().contains("retry-after"));
    // One closes: a new one is served.
    drop(open.pop());
    let deadline = Instant::now() + IO;
    loop {
        let reply_streams = sample(
            &http(&daemon.api, "GET", "/metrics", &[]).body,
            "ccbt_event_streams",
        );
        if reply_streams == Some(63.0) {
            break;
        }
        assert!(Instant::now() < deadline, "{reply_streams:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut again = EventStream::open(&daemon.api, "/events", &[]);
    assert!(again.read_for(Duration::from_millis(300)).is_empty());
    assert!(again.head_done, "the new stream was not answered");
}
