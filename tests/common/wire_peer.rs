//! A small scripted BitTorrent peer for tests, on blocking std sockets: it speaks just
//! enough of BEP 3 to poke at ccbt-uring, well or badly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const REQUEST: u8 = 6;
pub const PIECE: u8 = 7;

/// Our handshake for `info_hash` (20 raw bytes), with the peer id `id`.
pub fn handshake(info_hash: &[u8; 20], id: u8) -> Vec<u8> {
    let mut hs = vec![19];
    hs.extend_from_slice(b"BitTorrent protocol");
    hs.extend_from_slice(&[0; 8]);
    hs.extend_from_slice(info_hash);
    hs.extend_from_slice(b"-TS0001-");
    hs.extend_from_slice(&[id; 12]);
    hs
}

/// A length-prefixed message.
pub fn message(id: u8, payload: &[u8]) -> Vec<u8> {
    let mut m = ((payload.len() + 1) as u32).to_be_bytes().to_vec();
    m.push(id);
    m.extend_from_slice(payload);
    m
}

pub fn request(piece: u32, offset: u32, len: u32) -> Vec<u8> {
    let mut p = piece.to_be_bytes().to_vec();
    p.extend_from_slice(&offset.to_be_bytes());
    p.extend_from_slice(&len.to_be_bytes());
    message(REQUEST, &p)
}

/// Connects and trades handshakes; returns the stream, ready for messages.
pub fn connect(addr: SocketAddr, info_hash: &[u8; 20], id: u8) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&handshake(info_hash, id)).unwrap();
    let mut theirs = [0u8; 68];
    s.read_exact(&mut theirs).expect("their handshake");
    assert_eq!(&theirs[28..48], info_hash, "answered for another torrent");
    s
}

/// Reads one message; `None` on a keep-alive.
pub fn read_message(s: &mut TcpStream) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len == 0 {
        return Ok(None);
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok(Some((body[0], body[1..].to_vec())))
}

/// Reads messages until one with `id`, within `limit`.
pub fn wait_for(s: &mut TcpStream, id: u8, limit: Duration) -> Option<Vec<u8>> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        match read_message(s) {
            Ok(Some((got, payload))) if got == id => return Some(payload),
            Ok(_) => {}
            Err(_) => return None,
        }
    }
    None
}

/// Whether the other side closed the connection within `limit` (reading and discarding).
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let until = Instant::now() + limit;
    let mut buf = [0u8; 64 * 1024];
    while Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

/// A scripted seeder of `content` (the torrent's byte stream). A corrupt one flips the
/// first byte of every block it sends; a honest one can wait before it unchokes, so that a
/// test can let another peer go first.
pub struct ScriptedSeeder {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    pub blocks_sent: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScriptedSeeder {
    pub fn corrupt(info_hash: [u8; 20], content: Vec<u8>, piece_len: u32) -> ScriptedSeeder {
        Self::start(info_hash, content, piece_len, true, Duration::ZERO)
    }

    pub fn honest_after(
        delay: Duration,
        info_hash: [u8; 20],
        content: Vec<u8>,
        piece_len: u32,
    ) -> ScriptedSeeder {
        Self::start(info_hash, content, piece_len, false, delay)
    }

    fn start(
        info_hash: [u8; 20],
        content: Vec<u8>,
        piece_len: u32,
        corrupt: bool,
        unchoke_after: Duration,
    ) -> ScriptedSeeder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let blocks_sent = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, b, st) = (connections.clone(), blocks_sent.clone(), stop.clone());
        let content = Arc::new(content);
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        c.fetch_add(1, Ordering::Relaxed);
                        let (content, b, st) = (content.clone(), b.clone(), st.clone());
                        std::thread::spawn(move || {
                            let script = Script {
                                info_hash,
                                piece_len,
                                corrupt,
                                unchoke_after,
                            };
                            let _ = serve(stream, &script, &content, &b, &st);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        ScriptedSeeder {
            addr,
            connections,
            blocks_sent,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for ScriptedSeeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Script {
    info_hash: [u8; 20],
    piece_len: u32,
    corrupt: bool,
    unchoke_after: Duration,
}

fn serve(
    mut s: TcpStream,
    script: &Script,
    content: &[u8],
    blocks: &AtomicUsize,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let (info_hash, piece_len) = (script.info_hash, script.piece_len);
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut theirs = [0u8; 68];
    s.read_exact(&mut theirs)?;
    // Each script has its own peer id: two peers with one id are one peer, twice.
    s.write_all(&handshake(
        &info_hash,
        if script.corrupt { 0xee } else { 0xdd },
    ))?;
    let pieces = content.len().div_ceil(piece_len as usize);
    let mut bits = vec![0u8; pieces.div_ceil(8)];
    for p in 0..pieces {
        bits[p / 8] |= 0x80 >> (p % 8);
    }
    s.write_all(&message(5, &bits))?;
    std::thread::sleep(script.unchoke_after);
    s.write_all(&message(1, &[]))?;
    while !stop.load(Ordering::Relaxed) {
        let msg = match read_message(&mut s) {
            Ok(m) => m,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(e) => return Err(e),
        };
        if let Some((REQUEST, p)) = msg {
            let piece = u32::from_be_bytes(p[0..4].try_into().unwrap());
            let offset = u32::from_be_bytes(p[4..8].try_into().unwrap());
            let len = u32::from_be_bytes(p[8..12].try_into().unwrap());
            let start = piece as usize * piece_len as usize + offset as usize;
            let mut data = content[start..start + len as usize].to_vec();
            if script.corrupt {
                data[0] ^= 0xff;
            }
            let mut payload = p[0..8].to_vec();
            payload.extend_from_slice(&data);
            s.write_all(&message(PIECE, &payload))?;
            blocks.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(())
}
