//! Probe: serving 256 KiB batches (16 blocks of 16 KiB, as a peer's send batch) over a
//! loopback TCP connection with `sendmsg` (what the shard does) against io_uring's
//! zero-copy sends, `SEND_ZC` (one contiguous buffer) and `SENDMSG_ZC` (the 16 iovecs).
//! A reader thread drains the socket. Prints throughput and the sender thread's CPU time
//! per GiB for each.
//!
//! `cargo run --release -p ccbt-shards --example send_zc_probe [GIB]`
//!
//! On loopback the kernel may copy zero-copy sends anyway (there is no NIC to DMA from),
//! so a loss here says little about a real network; a win would be worth wiring in.

use std::io::{IoSlice, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Instant;

use io_uring::{cqueue, opcode, types, IoUring};

const BLOCK: usize = 16 << 10;
const BLOCKS: usize = 16;
const BATCH: usize = BLOCK * BLOCKS;

fn thread_cpu() -> f64 {
    let mut ts = nix::libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer for the calling thread's CPU clock.
    unsafe { nix::libc::clock_gettime(nix::libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// A connected pair on 127.0.0.1 and a thread that reads everything the sender writes.
fn pair() -> (TcpStream, std::thread::JoinHandle<(u64, f64)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let began = thread_cpu();
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n as u64,
            }
        }
        (total, thread_cpu() - began)
    });
    let s = TcpStream::connect(addr).unwrap();
    (s, reader)
}

fn report(name: &str, bytes: u64, wall: f64, cpu: f64, reader_cpu: f64) {
    let gib = bytes as f64 / (1u64 << 30) as f64;
    println!(
        "{name:12} {:7.0} MB/s  sender {:.3} CPU s/GiB  reader {:.3} CPU s/GiB",
        bytes as f64 / wall / 1e6,
        cpu / gib,
        reader_cpu / gib
    );
}

fn by_sendmsg(data: &[u8], batches: usize) {
    let (s, reader) = pair();
    let (t, c) = (Instant::now(), thread_cpu());
    for _ in 0..batches {
        let mut at = 0;
        while at < BATCH {
            let iov: Vec<IoSlice<'_>> = data[at..].chunks(BLOCK).map(IoSlice::new).collect();
            let flags = nix::sys::socket::MsgFlags::MSG_NOSIGNAL;
            at += nix::sys::socket::sendmsg::<()>(s.as_raw_fd(), &iov, &[], flags, None).unwrap();
        }
    }
    let (wall, cpu) = (t.elapsed().as_secs_f64(), thread_cpu() - c);
    drop(s);
    let (got, rcpu) = reader.join().unwrap();
    assert_eq!(got, (batches * BATCH) as u64);
    report("sendmsg", got, wall, cpu, rcpu);
}

/// Zero-copy sends, one batch in flight: a batch's buffer may be reused only once its
/// notification (`IORING_CQE_F_NOTIF`) arrives.
fn by_zero_copy(data: &[u8], batches: usize, vectored: bool) {
    let (s, reader) = pair();
    let mut ring = IoUring::new(64).unwrap();
    let fd = types::Fd(s.as_raw_fd());
    let (t, c) = (Instant::now(), thread_cpu());
    for _ in 0..batches {
        let mut at = 0;
        while at < BATCH {
            let iov: Vec<nix::libc::iovec> = data[at..]
                .chunks(BLOCK)
                .map(|b| nix::libc::iovec {
                    iov_base: b.as_ptr() as *mut _,
                    iov_len: b.len(),
                })
                .collect();
            // SAFETY: zeroed is a valid empty msghdr.
            let mut msg: nix::libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_iov = iov.as_ptr() as *mut _;
            msg.msg_iovlen = iov.len();
            let entry = if vectored {
                opcode::SendMsgZc::new(fd, &msg).build()
            } else {
                opcode::SendZc::new(fd, data[at..].as_ptr(), (BATCH - at) as u32).build()
            };
            // SAFETY: the buffers, iovecs and msghdr outlive the operation: this loop waits
            // for its completion and its notification before they are dropped or reused.
            unsafe { ring.submission().push(&entry.user_data(1)).unwrap() };
            let (mut sent, mut notified, mut more) = (None, false, true);
            while sent.is_none() || (more && !notified) {
                ring.submit_and_wait(1).unwrap();
                for cqe in ring.completion() {
                    if cqueue::notif(cqe.flags()) {
                        notified = true;
                    } else {
                        assert!(cqe.result() >= 0, "send failed: {}", cqe.result());
                        sent = Some(cqe.result() as usize);
                        more = cqueue::more(cqe.flags());
                    }
                }
            }
            at += sent.unwrap();
        }
    }
    let (wall, cpu) = (t.elapsed().as_secs_f64(), thread_cpu() - c);
    drop(s);
    let (got, rcpu) = reader.join().unwrap();
    assert_eq!(got, (batches * BATCH) as u64);
    report(
        if vectored { "SENDMSG_ZC" } else { "SEND_ZC" },
        got,
        wall,
        cpu,
        rcpu,
    );
}

fn main() {
    let gib: usize = std::env::args()
        .nth(1)
        .map_or(4, |a| a.parse().expect("GIB"));
    let batches = (gib << 30) / BATCH;
    let data: Vec<u8> = (0..BATCH).map(|i| (i * 7) as u8).collect();
    for round in 0..3 {
        println!("round {round}, {gib} GiB each");
        by_sendmsg(&data, batches);
        by_zero_copy(&data, batches, false);
        by_zero_copy(&data, batches, true);
    }
}
