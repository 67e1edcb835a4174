//! One write's worth of a peer's outgoing messages: its control messages and the blocks it
//! serves, sent with `sendmsg` over iovecs that point into the cached pieces. Serving
//! copies no block in user space (the kernel's copy into the socket is the only one), and
//! a peer's writer keeps no send buffer of its own: 500 leechers used to hold 320 KiB each.
//!
//! A batch keeps the pieces it points into alive until it is sent, beyond the piece cache's
//! bound: cached pieces, or the windows of uncached ones read for it alone (the writer
//! bounds those to `WINDOWS_HELD_MAX` in `peer.rs`); [`MAX_PIECES`] bounds that to two
//! pieces per peer, whatever order it asks in,
//! and [`WRITE_STALL_TIMEOUT`] bounds how long: a peer whose socket takes no byte for that
//! long has stopped reading, and its batch (and the peer) is dropped. What batches hold is
//! counted in the shard's stats ([`Held::SendBatches`]), and a piece the cache evicted
//! while a batch held it still counts against the cache's bound (`cache.rs`).

use std::io::{self, IoSlice};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use nix::errno::Errno;
use nix::sys::socket::{sendmsg, MsgFlags};

use super::buffers::PieceBytes;
use super::stats::{Held, ShardStats};

/// Longest a send may wait for the socket to take any byte. A peer that reads nothing for
/// this long (its receive window shut) is dropped, and what its writer held is let go.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(20);

/// Most iovecs one `sendmsg` takes (Linux's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// Most distinct pieces one batch holds: a peer asking for one block from each of many
/// pieces gets several small batches, not one that pins many pieces while its socket is
/// full.
pub const MAX_PIECES: usize = 2;

/// Messages to send in one go, in order. Headers and control messages are copied into
/// `head` (they are small); blocks stay where they are, shared with the piece cache.
pub struct SendBatch {
    head: Vec<u8>,
    parts: Vec<Part>,
    block_bytes: usize,
    /// The distinct pieces the blocks come from.
    pieces: Vec<u32>,
    /// Bytes this batch holds in the shard's [`Held::SendBatches`] gauge.
    held: u64,
    stats: Arc<ShardStats>,
}

enum Part {
    Head(Range<usize>),
    Block(Rc<PieceBytes>, Range<usize>),
}

impl SendBatch {
    /// An empty batch that counts what it holds in `stats`.
    pub fn new(stats: Arc<ShardStats>) -> Self {
        SendBatch {
            head: Vec::new(),
            parts: Vec::new(),
            block_bytes: 0,
            pieces: Vec::new(),
            held: 0,
            stats,
        }
    }

    /// Empties the batch (dropping its hold on the pieces), keeping its allocations.
    pub fn clear(&mut self) {
        self.head.clear();
        self.parts.clear();
        self.block_bytes = 0;
        self.pieces.clear();
        self.stats
            .release(Held::SendBatches, std::mem::take(&mut self.held));
    }

    fn hold(&mut self, bytes: usize) {
        self.held += bytes as u64;
        self.stats.hold(Held::SendBatches, bytes as u64);
    }

    /// Whether a block of `piece` may join: the batch holds it already, or holds fewer
    /// than [`MAX_PIECES`] pieces.
    pub fn takes_piece(&self, piece: u32) -> bool {
        self.pieces.len() < MAX_PIECES || self.pieces.contains(&piece)
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Bytes of block data in the batch.
    pub fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// Appends whatever `write` puts into the head buffer (whole encoded messages).
    pub fn push_head(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.head.len();
        write(&mut self.head);
        let end = self.head.len();
        if end == start {
            return;
        }
        self.hold(end - start);
        match self.parts.last_mut() {
            // Consecutive head bytes are one iovec.
            Some(Part::Head(range)) if range.end == start => range.end = end,
            _ => self.parts.push(Part::Head(start..end)),
        }
    }

    /// Appends `bytes[range]`, block data of piece `index`, as it lies in `bytes` (the
    /// whole piece, or a window of it); `range` must be within it.
    pub fn push_block(&mut self, index: u32, bytes: Rc<PieceBytes>, range: Range<usize>) {
        debug_assert!(range.end <= bytes.len());
        if !self.pieces.contains(&index) {
            self.pieces.push(index);
        }
        // Each buffer counts once, however many blocks point into it (a piece may be held
        // as two windows).
        let held = self.parts.iter().any(|part| match part {
            Part::Block(other, _) => Rc::ptr_eq(other, &bytes),
            Part::Head(_) => false,
        });
        if !held {
            self.hold(bytes.len());
        }
        self.block_bytes += range.len();
        self.parts.push(Part::Block(bytes, range));
    }

    fn slices(&self) -> Vec<&[u8]> {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Head(range) => &self.head[range.clone()],
                Part::Block(piece, range) => &piece[range.clone()],
            })
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Sends the whole batch on `stream`: `sendmsg` without waiting while the socket takes
    /// bytes, and glommio's write (which waits for room) when it does not. Fails with
    /// [`io::ErrorKind::TimedOut`] when one wait for room lasts longer than `stall`.
    pub async fn send(&self, stream: &mut TcpStream, stall: Duration) -> io::Result<()> {
        let slices = self.slices();
        let fd = stream.as_raw_fd();
        let (mut at, mut offset) = (0, 0);
        while at < slices.len() {
            let iov: Vec<IoSlice<'_>> = std::iter::once(&slices[at][offset..])
                .chain(slices[at + 1..].iter().copied())
                .take(IOV_MAX)
                .map(IoSlice::new)
                .collect();
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            let sent = match sendmsg::<()>(fd, &iov, &[], flags, None) {
                Ok(sent) => sent,
                Err(Errno::EINTR) => continue,
                // Full: wait for room, sending part of the current slice.
                Err(Errno::EAGAIN) => {
                    let wait = async { Ok(stream.write(&slices[at][offset..]).await) };
                    match glommio::timer::timeout(stall, wait).await {
                        Ok(written) => written?,
                        Err(_) => return Err(io::ErrorKind::TimedOut.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            if sent == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            (at, offset) = advance(&slices, at, offset, sent);
        }
        Ok(())
    }
}

impl Drop for SendBatch {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The position `sent` bytes past slice `at`, byte `offset`.
fn advance(slices: &[&[u8]], mut at: usize, mut offset: usize, mut sent: usize) -> (usize, usize) {
    while sent > 0 {
        let left = slices[at].len() - offset;
        if sent < left {
            return (at, offset + sent);
        }
        sent -= left;
        (at, offset) = (at + 1, 0);
    }
    (at, offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_lite::AsyncReadExt;
    use glommio::net::TcpListener;
    use glommio::LocalExecutorBuilder;

    #[test]
    fn advance_walks_across_slices() {
        let slices: [&[u8]; 3] = [b"abc", b"de", b"fghij"];
        assert_eq!(advance(&slices, 0, 0, 2), (0, 2));
        assert_eq!(advance(&slices, 0, 2, 1), (1, 0));
        assert_eq!(advance(&slices, 0, 1, 5), (2, 1));
        assert_eq!(advance(&slices, 1, 1, 6), (3, 0));
    }

    #[test]
    fn head_bytes_merge_and_blocks_stay_in_their_pieces() {
        let piece = Rc::new(PieceBytes::Heap((0..=255).collect()));
        let stats = Arc::new(ShardStats::default());
        let mut batch = SendBatch::new(stats.clone());
        batch.push_head(|out| out.extend_from_slice(b"ab"));
        batch.push_head(|out| out.extend_from_slice(b"c"));
        batch.push_head(|_| {});
        assert!(batch.takes_piece(7));
        batch.push_block(7, piece.clone(), 10..13);
        batch.push_head(|out| out.extend_from_slice(b"d"));
        batch.push_block(8, piece.clone(), 0..0);
        assert!(batch.takes_piece(7) && batch.takes_piece(8));
        assert!(
            !batch.takes_piece(9),
            "a third piece waits for the next batch"
        );
        assert_eq!(batch.parts.len(), 4);
        assert_eq!(batch.block_bytes(), 3);
        let slices = batch.slices();
        assert_eq!(slices, [&b"abc"[..], &[10, 11, 12], b"d"]);
        assert_eq!(Rc::strong_count(&piece), 3);
        // "abcd", and the buffer's bytes once: piece 8's block points into the same one.
        assert_eq!(stats.snapshot(0, 0, 1).send_batch_bytes, 4 + 256);
        let other = Rc::new(PieceBytes::Heap(vec![1; 100]));
        batch.push_block(8, other.clone(), 0..10);
        assert_eq!(
            stats.snapshot(0, 0, 1).send_batch_bytes,
            4 + 256 + 100,
            "a second buffer of a piece (another window of it) counts too"
        );
        drop(other);
        batch.clear();
        assert_eq!(stats.snapshot(0, 0, 1).send_batch_bytes, 0);
        assert!(batch.is_empty());
        assert!(batch.takes_piece(9));
        assert_eq!(Rc::strong_count(&piece), 1);
    }

    /// A batch far larger than the socket buffers, to a reader that starts late: the
    /// writer must wait for room and resume mid-slice, and every byte arrives in order.
    #[test]
    fn sends_everything_in_order_through_a_full_socket() {
        LocalExecutorBuilder::default()
            .spawn(|| async move {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let pieces: Vec<Rc<PieceBytes>> = (0..4u8)
                    .map(|i| {
                        let bytes = (0..3 << 20).map(|j: u32| (j as u8) ^ i).collect();
                        Rc::new(PieceBytes::Heap(bytes))
                    })
                    .collect();
                let mut batch = SendBatch::new(Arc::new(ShardStats::default()));
                let mut expected = Vec::new();
                for (i, piece) in pieces.iter().enumerate() {
                    let header = [i as u8; 13];
                    batch.push_head(|out| out.extend_from_slice(&header));
                    expected.extend_from_slice(&header);
                    let range = 1000 * i..piece.len() - 7;
                    expected.extend_from_slice(&piece[range.clone()]);
                    batch.push_block(i as u32, piece.clone(), range);
                }
                let reader = glommio::spawn_local(async move {
                    let mut stream = listener.accept().await.unwrap();
                    glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                    let mut got = Vec::new();
                    stream.read_to_end(&mut got).await.unwrap();
                    got
                });
                let mut stream = TcpStream::connect(addr).await.unwrap();
                batch.send(&mut stream, WRITE_STALL_TIMEOUT).await.unwrap();
                stream.close().await.unwrap();
                let got = reader.await;
                assert_eq!(got.len(), expected.len());
                assert!(got == expected, "bytes differ");
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// A reader that never reads: the send gives up after its stall deadline instead of
    /// waiting for ever, and the batch lets go of what it held.
    #[test]
    fn a_send_to_a_peer_that_never_reads_times_out() {
        LocalExecutorBuilder::default()
            .spawn(|| async move {
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let stats = Arc::new(ShardStats::default());
                let piece = Rc::new(PieceBytes::Heap(vec![7; 32 << 20]));
                let mut batch = SendBatch::new(stats.clone());
                batch.push_block(0, piece.clone(), 0..piece.len());
                let (hold, release) = glommio::channels::local_channel::new_bounded::<()>(1);
                let idle = glommio::spawn_local(async move {
                    let _stream = listener.accept().await.unwrap();
                    release.recv().await;
                });
                let mut stream = TcpStream::connect(addr).await.unwrap();
                let sent = batch
                    .send(&mut stream, std::time::Duration::from_millis(300))
                    .await;
                assert_eq!(sent.unwrap_err().kind(), io::ErrorKind::TimedOut);
                assert!(stats.snapshot(0, 0, 1).send_batch_bytes >= 32 << 20);
                drop(batch);
                assert_eq!(stats.snapshot(0, 0, 1).send_batch_bytes, 0);
                drop(hold);
                idle.await;
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
