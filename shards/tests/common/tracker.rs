//! A tiny HTTP tracker on 127.0.0.1 that records when each announce arrived, with which
//! event, and how many were being answered at once. Each request is answered after a
//! delay, so concurrency is visible; `black_hole` stops answering at all.

// Each test binary uses part of this.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
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

impl Arrival {
    pub fn is_scrape(&self) -> bool {
        self.path.ends_with("/scrape")
    }
}

impl Record {
    /// Announces (not scrapes) with this `event` ("" for a regular one).
    pub fn count(&self, event: &str) -> usize {
        self.times(event).len()
    }

    /// Announces only, in arrival order.
    pub fn announces(&self) -> Vec<Arrival> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|a| !a.is_scrape())
            .cloned()
            .collect()
    }

    pub fn times(&self, event: &str) -> Vec<Instant> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.event == event && !a.is_scrape())
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

/// Undoes percent-encoding, byte-exact.
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 && i + 3 <= b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(0));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// A BEP 48 answer for every `info_hash` in `query`: 3 seeders, 5 leechers, 7 completed.
pub fn scrape_every_hash(query: &str) -> Vec<u8> {
    let mut body = b"d5:filesd".to_vec();
    let mut hashes: Vec<Vec<u8>> = query
        .split('&')
        .filter_map(|kv| kv.strip_prefix("info_hash="))
        .map(percent_decode)
        .collect();
    hashes.sort();
    hashes.dedup();
    for h in hashes {
        body.extend(format!("{}:", h.len()).as_bytes());
        body.extend(&h);
        body.extend(b"d8:completei3e10:downloadedi7e10:incompletei5ee");
    }
    body.extend(b"ee");
    body
}

/// A BEP 15 tracker on 127.0.0.1: connects, answers announces with no peers, and scrapes
/// with complete = 11, downloaded = 13, incomplete = 12 for each hash; records the number
/// of hashes in each scrape packet.
pub struct UdpTracker {
    pub port: u16,
    pub scrapes: Arc<Mutex<Vec<usize>>>,
    pub announces: Arc<AtomicUsize>,
}

impl UdpTracker {
    pub fn start() -> UdpTracker {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        let scrapes = Arc::new(Mutex::new(Vec::new()));
        let announces = Arc::new(AtomicUsize::new(0));
        let (s, a) = (scrapes.clone(), announces.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let d = &buf[..n];
                if n < 16 {
                    continue;
                }
                let action = u32::from_be_bytes(d[8..12].try_into().unwrap());
                let tid = &d[12..16];
                let mut out = Vec::new();
                match action {
                    0 => {
                        out.extend(0u32.to_be_bytes());
                        out.extend(tid);
                        out.extend(0x1234_5678_9abc_def0u64.to_be_bytes());
                    }
                    1 => {
                        a.fetch_add(1, Ordering::SeqCst);
                        out.extend(1u32.to_be_bytes());
                        out.extend(tid);
                        for v in [1800u32, 0, 0] {
                            out.extend(v.to_be_bytes());
                        }
                    }
                    2 => {
                        let count = (n - 16) / 20;
                        s.lock().unwrap().push(count);
                        out.extend(2u32.to_be_bytes());
                        out.extend(tid);
                        for _ in 0..count {
                            for v in [11u32, 13, 12] {
                                out.extend(v.to_be_bytes());
                            }
                        }
                    }
                    _ => continue,
                }
                let _ = socket.send_to(&out, from);
            }
        });
        UdpTracker {
            port,
            scrapes,
            announces,
        }
    }
}
