//! One peer connection: the handshake, then a reader task feeding the torrent's state
//! machine and a writer task draining what it wants sent.
//!
//! glommio streams cannot be split, so the writer gets its own stream over a duplicate of
//! the socket's fd. Closing is a `shutdown(2)` on the socket: both tasks see it at once.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::time::Duration;

use ccbt_engine::session::{Incoming, PeerCaps, PeerKey};
use ccbt_engine::wire::{self, decode_message, Handshake, Message, Reserved, HANDSHAKE_LEN};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::channels::local_channel::{self, LocalReceiver};
use glommio::net::TcpStream;
use glommio::timer::timeout;

use super::peer_table::PeerHandle;
use super::piece_io::{read_window, Served};
use super::send_batch::{self, SendBatch, WRITE_STALL_TIMEOUT};
use super::throttle::Direction;
use super::torrent::TorrentRt;

/// How long a peer has to send its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most bytes read from the socket at a time.
const READ_CHUNK: usize = 256 * 1024;
/// Bytes a peer's first reads take. The read size doubles, up to [`READ_CHUNK`], each time
/// a read fills all the room it had, so a peer that only sends requests (a leecher of
/// ours) keeps a buffer of tens of KiB, and one that sends blocks soon reads 256 KiB.
const FIRST_READ: usize = 16 * 1024;
/// Pieces a peer has mostly asked for that are read ahead while its current one is sent.
const READ_AHEAD_PIECES: usize = 2;
/// Serve blocks in batches of about this many bytes per `sendmsg`.
const WRITE_BATCH: usize = 256 * 1024;
/// Most bytes of windows (pieces read in part, for this batch alone) one send batch
/// holds: a window is read no larger than the room left under this, but always holds the
/// block it was read for. With [`WRITE_BATCH`] it bounds what a busy peer costs the shard's
/// memory when its pieces are not cached: under 512 KiB and a block, plus 4 KiB of page
/// rounding per window; a shard's peers hold at most that many times this (500 busy
/// peers: about 260 MiB at worst, 130 MiB when each batch's window is its blocks, where a
/// whole piece per batch cost 500 MiB), counted in the shard's send-batch gauge. A window
/// is let go when its batch is sent or its peer dropped.
const WINDOWS_HELD_MAX: usize = 2 * WRITE_BATCH;
/// The least a download-limited reader reads at a time: one block and its header.
const THROTTLED_READ_MIN: usize = 16 * 1024 + 13;

/// The handshake we send: the extension protocol (BEP 10, for `reqq`) and the Fast
/// extension (BEP 6); with `dht`, BEP 5's DHT bit (we then send `port` to peers that set
/// it too).
pub fn our_reserved(dht: bool) -> Reserved {
    if dht {
        Reserved::ours().with_dht()
    } else {
        Reserved::ours()
    }
}

/// Reads until a whole handshake is in `buf`; returns it and leaves any further bytes.
pub async fn read_handshake(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Handshake, String> {
    let read = async {
        let mut chunk = [0u8; 1024];
        while buf.len() < HANDSHAKE_LEN {
            if buf.len() >= 48 {
                Handshake::peek_info_hash(buf).map_err(|e| e.to_string())?;
            }
            let n = stream.read(&mut chunk).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("closed during the handshake".to_string());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        Handshake::parse(buf).map_err(|e| e.to_string())
    };
    match timeout(HANDSHAKE_TIMEOUT, async { Ok(read.await) }).await {
        Ok(result) => result,
        Err(_) => Err("no handshake in time".to_string()),
    }
}

/// Runs a connection whose handshakes are done, until either side ends it.
/// `pending`: bytes that arrived after the peer's handshake. `outgoing`: we dialled it.
pub async fn run(
    rt: Rc<TorrentRt>,
    stream: TcpStream,
    addr: SocketAddr,
    theirs: Handshake,
    pending: Vec<u8>,
    outgoing: bool,
) {
    let caps = PeerCaps {
        fast: theirs.reserved.supports_fast(),
        extensions: theirs.reserved.supports_extensions(),
        outgoing,
        dht_port: (theirs.reserved.supports_dht() && rt.uses_dht())
            .then_some(rt.shard().config.port),
    };
    let key = match rt.add_peer(addr, caps, theirs.peer_id.0) {
        Ok(key) => key,
        Err(reason) => {
            tracing::debug!(%addr, %reason, "peer refused");
            return;
        }
    };
    let fd = stream.as_raw_fd();
    let writer_stream = match nix::unistd::dup(fd) {
        // SAFETY: `dup` returned a fresh descriptor that nothing else owns.
        Ok(dup) => unsafe { TcpStream::from_raw_fd(dup) },
        Err(e) => {
            tracing::warn!(%addr, error = %e, "could not duplicate a socket");
            rt.forget_peer(key);
            return;
        }
    };
    let (doorbell, rings) = local_channel::new_bounded(1);
    rt.register(key, PeerHandle::new(doorbell, fd, addr), theirs.peer_id.0);
    let _counted = rt.shard().stats.peer_connected();
    rt.count_origin(key, addr, outgoing);
    let writer = glommio::spawn_local(write_loop(rt.clone(), key, addr, writer_stream, rings));
    rt.drive();
    let mut stream = stream;
    let why = read_loop(&rt, key, addr, &mut stream, pending).await;
    tracing::debug!(%addr, why, "peer disconnected");
    // Shut the socket while `stream` still holds its fd: once closed, the number could
    // belong to another socket of this process.
    rt.forget_peer(key);
    writer.await;
    drop(stream);
}

async fn read_loop(
    rt: &Rc<TorrentRt>,
    key: PeerKey,
    addr: SocketAddr,
    stream: &mut TcpStream,
    pending: Vec<u8>,
) -> String {
    let max = wire::max_message_len(rt.piece_count());
    // Bytes live in buf[start..filled]; the buffer is zeroed once and reused, and grows with
    // the read size and for a message longer than it (a big bitfield), up to the limit.
    let mut chunk = FIRST_READ;
    let mut filled = pending.len();
    let mut buf = pending;
    buf.resize(filled.max(chunk * 2), 0);
    let mut start = 0usize;
    let mut complete = Vec::new();
    let mut meter = rt.meter(Direction::Download);
    // Piece payload read since the download buckets were last paid.
    let mut owed = 0u64;
    // BEP 5: the first `port` message of a connection is passed on; later ones are not,
    // so a peer cannot make us ping at its command.
    let mut port_heard = false;
    loop {
        let mut dropped = None;
        {
            let now = rt.now();
            let mut engine = rt.engine().borrow_mut();
            loop {
                match decode_message(&buf[start..filled], max) {
                    Ok(Some((msg, used))) => {
                        start += used;
                        tracing::trace!(key, message = ?msg.id(), "received");
                        if let Message::Piece { data, .. } = &msg {
                            owed += data.len() as u64;
                        }
                        if let Message::Port(port) = msg {
                            if !port_heard && rt.uses_dht() {
                                port_heard = true;
                                rt.shard().dht_port(addr, port);
                            }
                        }
                        match engine.on_message(now, key, &msg) {
                            Ok(Incoming::Block { piece_complete }) => {
                                if let Message::Piece {
                                    piece,
                                    offset,
                                    data,
                                } = msg
                                {
                                    rt.pieces().store_block(piece, offset, data);
                                    if piece_complete {
                                        complete.push(piece);
                                    }
                                }
                            }
                            Ok(Incoming::Nothing) => {}
                            Err(reason) => {
                                dropped = Some(reason.to_string());
                                break;
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        engine.remove_peer(key);
                        dropped = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        for piece in complete.drain(..) {
            rt.finish_piece(piece);
        }
        rt.drive();
        if let Some(why) = dropped {
            return why;
        }
        // Move the unparsed tail to the front when the space after it runs short.
        if buf.len() - filled < chunk {
            buf.copy_within(start..filled, 0);
            filled -= start;
            start = 0;
            let wanted = next_message_len(&buf[..filled]).min(max as usize + 4);
            if wanted + chunk > buf.len() {
                buf.resize(wanted + chunk, 0);
            }
        }
        rt.pieces().backlog_room().await;
        let mut room = buf.len() - filled;
        if owed > 0 {
            rt.shard().stats.downloaded(owed);
            // Over the download limit: the socket is not read until the buckets have paid
            // for what came, and TCP's window slows the peer down.
            if !meter.spend(owed, || rt.has_peer(key)).await {
                return "closed while over the download limit".to_string();
            }
            owed = 0;
        }
        if let Some(rate) = meter.rate() {
            // Read about a quarter second's worth at a time, so one read cannot run far
            // past a lowered limit.
            room = room.min((rate as usize / 4).max(THROTTLED_READ_MIN));
        }
        match stream.read(&mut buf[filled..filled + room]).await {
            Ok(0) => return "closed by peer".to_string(),
            Ok(n) => {
                if n == room && chunk < READ_CHUNK {
                    // The socket had more than there was room for: read more at a time.
                    chunk *= 2;
                }
                filled += n;
            }
            Err(e) => return e.to_string(),
        }
    }
}

/// The whole length of the message starting at `bytes` (prefix included), once its length
/// prefix is in; 0 before.
fn next_message_len(bytes: &[u8]) -> usize {
    match bytes.first_chunk::<4>() {
        Some(prefix) => 4 + u32::from_be_bytes(*prefix) as usize,
        None => 0,
    }
}

async fn write_loop(
    rt: Rc<TorrentRt>,
    key: PeerKey,
    addr: SocketAddr,
    mut stream: TcpStream,
    rings: LocalReceiver<()>,
) {
    let mut batch = SendBatch::new(rt.shard().stats.clone());
    // What the batch's blocks are served from: cached pieces and windows read for it. Each
    // is also held by the batch's parts, so this holds nothing more, and empties with it.
    let mut windows: Vec<Served> = Vec::with_capacity(send_batch::MAX_PIECES * 2);
    // When each of the batch's blocks was asked for (one per block, emptied with it).
    let mut arrivals: Vec<std::time::Duration> = Vec::new();
    let mut meter = rt.meter(Direction::Upload);
    while rings.recv().await.is_some() {
        loop {
            batch.clear();
            windows.clear();
            arrivals.clear();
            batch.push_head(|out| rt.engine().borrow_mut().take_outbox(key, out));
            // Set when the upload buckets could not pay for the next block: the bytes it
            // needs.
            let mut throttled = None;
            while batch.block_bytes() < WRITE_BATCH {
                let next = rt.engine().borrow().peek_serve(key);
                match next {
                    Some(block) if batch.takes_piece(block.piece) => {
                        if !meter.try_spend(u64::from(block.len)) {
                            throttled = Some(u64::from(block.len));
                            break;
                        }
                    }
                    _ => break,
                }
                let Some((block, asked_at)) = rt.engine().borrow_mut().next_serve_timed(key) else {
                    break;
                };
                let upcoming = rt.engine().borrow().upcoming_pieces(key, READ_AHEAD_PIECES);
                rt.pieces().read_ahead(upcoming);
                let held = windows
                    .iter()
                    .find_map(|w: &Served| Some((w.clone(), w.range_of(block)?)));
                let (served, range) = match held {
                    Some(found) => found,
                    None => {
                        let Some(piece_len) = rt.pieces().piece_len(block.piece) else {
                            continue;
                        };
                        let read: usize = windows
                            .iter()
                            .filter(|w| w.base > 0 || w.bytes.len() < piece_len as usize)
                            .map(|w| w.bytes.len())
                            .sum();
                        let budget = (WRITE_BATCH - batch.block_bytes())
                            .min(WINDOWS_HELD_MAX.saturating_sub(read))
                            as u32;
                        let window = read_window(
                            block,
                            rt.engine().borrow().queued_requests(key),
                            budget,
                            piece_len,
                        );
                        let served = match rt.pieces().serve_data(block.piece, window, key).await {
                            Ok(served) => served,
                            Err(e) => {
                                tracing::error!(error = %e, "cannot read a piece to serve");
                                rt.fail(super::status::TorrentFault::from(&e));
                                return;
                            }
                        };
                        let Some(range) = served.range_of(block) else {
                            continue;
                        };
                        windows.push(served.clone());
                        (served, range)
                    }
                };
                batch.push_head(|out| {
                    out.extend_from_slice(&wire::encode_piece_header(
                        block.piece,
                        block.offset,
                        block.len,
                    ))
                });
                batch.push_block(block.piece, served.bytes, range);
                arrivals.push(asked_at);
            }
            if batch.is_empty() && throttled.is_none() {
                break;
            }
            if !batch.is_empty() {
                match batch.send(&mut stream, WRITE_STALL_TIMEOUT).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                        // Its receive window stayed shut: it holds a slot and our memory
                        // and reads nothing. Shutting the socket ends its reader too.
                        tracing::info!(
                            peer = %addr,
                            after = ?WRITE_STALL_TIMEOUT,
                            "dropping a peer: it stopped reading"
                        );
                        rt.shard().stats.write_stalled();
                        rt.forget_peer(key);
                        return;
                    }
                    Err(_) => return,
                }
                let now = rt.now();
                rt.shard()
                    .stats
                    .service
                    .record(arrivals.iter().map(|at| now.saturating_sub(*at)));
                let served = batch.block_bytes() as u32;
                if served > 0 {
                    rt.shard().stats.uploaded(u64::from(served));
                    rt.engine()
                        .borrow_mut()
                        .on_block_sent(rt.now(), key, served);
                }
            }
            if let Some(want) = throttled {
                // What was ready went out; wait (on a timer) until the next block is paid
                // for, then look again at what the peer wants.
                batch.clear();
                windows.clear();
                arrivals.clear();
                if !meter.fill(want, || rt.has_peer(key)).await {
                    return;
                }
            }
        }
    }
}

/// Sends our handshake.
pub async fn send_handshake(stream: &mut TcpStream, hs: &Handshake) -> std::io::Result<()> {
    stream.write_all(&hs.encode()).await
}
