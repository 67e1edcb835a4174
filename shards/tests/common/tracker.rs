//! A tiny HTTP tracker on 127.0.0.1 that records when each announce arrived, with which
//! event, and how many were being answered at once. Each request is answered after a
//! delay, so concurrency is visible; `black_hole` stops answering at all.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
#[allow(dead_code)] // Not every test reads every field.
pub struct Arrival {
    pub at: Instant,
    pub event: String,
    pub info_hash: String,
    pub path: String,
}

#[derive(Default)]
pub struct Record {
    pub arrivals: Mutex<Vec<Arrival>>,
    pub in_flight: AtomicUsize,
    pub peak: AtomicUsize,
    pub black_hole: AtomicBool,
}

impl Record {
    pub fn count(&self, event: &str) -> usize {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.event == event)
            .count()
    }

    pub fn times(&self, event: &str) -> Vec<Instant> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.event == event)
            .map(|a| a.at)
            .collect()
    }
}

pub struct Tracker {
    pub port: u16,
    pub record: Arc<Record>,
}

impl Tracker {
    /// Starts the tracker; `delay` before each answer, `body` the bencoded answer
    /// (for `/scrape`, `scrape_body` is called with the raw query).
    pub fn start(
        delay: Duration,
        body: &'static [u8],
        scrape_body: fn(&str) -> Vec<u8>,
    ) -> Tracker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let record = Arc::new(Record::default());
        let r = record.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let r = r.clone();
                std::thread::spawn(move || serve(conn, &r, delay, body, scrape_body));
            }
        });
        Tracker { port, record }
    }

    pub fn url(&self, host: &str) -> String {
        format!("http://{host}:{}/announce", self.port)
    }
}

fn serve(
    mut conn: TcpStream,
    r: &Record,
    delay: Duration,
    body: &[u8],
    scrape_body: fn(&str) -> Vec<u8>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        let target = head.split(' ').nth(1).unwrap_or("").to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let param = |name: &str| {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                .unwrap_or("")
                .to_string()
        };
        let now = r.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        r.peak.fetch_max(now, Ordering::SeqCst);
        r.arrivals.lock().unwrap().push(Arrival {
            at: Instant::now(),
            event: param("event"),
            info_hash: param("info_hash"),
            path: path.to_string(),
        });
        std::thread::sleep(delay);
        while r.black_hole.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let answer = if path.ends_with("/scrape") {
            scrape_body(query)
        } else {
            body.to_vec()
        };
        r.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut out = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            answer.len()
        )
        .into_bytes();
        out.extend_from_slice(&answer);
        if conn.write_all(&out).is_err() {
            return;
        }
    }
}

/// Counts per whole second from the first to the last instant (the last, partial
/// second left out).
pub fn per_second(times: &[Instant]) -> Vec<usize> {
    let Some(first) = times.iter().min() else {
        return Vec::new();
    };
    let last = times.iter().max().unwrap();
    let whole = last.duration_since(*first).as_secs() as usize;
    let mut bins = vec![0usize; whole.max(1)];
    for t in times {
        let i = t.duration_since(*first).as_secs() as usize;
        if i < bins.len() {
            bins[i] += 1;
        }
    }
    bins
}
