//! SHA-1 of a shard-owned piece buffer on the shard's helper thread, in place.
//!
//! A downloaded piece is gathered straight into the aligned buffer it will be written from
//! with O_DIRECT. glommio's `DmaBuffer` cannot cross threads, so the helper is lent a view
//! of its bytes instead of a copy: that saves a 1 MiB copy (and the page faults of fresh
//! memory to copy into) per piece on the shard's core, which is the downloader's busiest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ccbt_engine::hash::{Sha1, Sha1Digest};
use glommio::io::DmaBuffer;

/// The bytes of a buffer the shard keeps alive and leaves untouched while the helper
/// reads them.
struct Lent {
    ptr: *const u8,
    len: usize,
}

// SAFETY: `Lent` is only built by `digest_on_helper`, whose guard keeps the buffer alive
// (or leaks it) until the helper has stopped reading, and nothing writes to it meanwhile.
unsafe impl Send for Lent {}

impl Lent {
    /// Taking `self` makes the closure capture the whole `Lent` (which is `Send`), not
    /// its raw pointer field alone.
    fn digest(self) -> Sha1Digest {
        // SAFETY: see `unsafe impl Send for Lent`.
        let bytes = unsafe { std::slice::from_raw_parts(self.ptr, self.len) };
        Sha1::digest(bytes)
    }
}

/// Owns the lent buffer while the helper may read it. Dropped before the helper is done
/// (the task was cancelled), it leaks the buffer rather than free memory still being read.
struct Guard {
    buf: Option<DmaBuffer>,
    done: Arc<AtomicBool>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            if !self.done.load(Ordering::Acquire) {
                std::mem::forget(buf);
            }
        }
    }
}

/// SHA-1 of `buf[..len]`, computed on the current shard's blocking helper thread while the
/// shard goes on with other work; gives the buffer back with the digest.
///
/// # Panics
/// If `len` exceeds the buffer (a bug in the caller).
pub async fn digest_on_helper(buf: DmaBuffer, len: usize) -> (DmaBuffer, Sha1Digest) {
    assert!(
        len <= buf.len(),
        "hashing {len} bytes of a {} byte buffer",
        buf.len()
    );
    let done = Arc::new(AtomicBool::new(false));
    let lent = Lent {
        ptr: buf.as_ptr(),
        len,
    };
    let mut guard = Guard {
        buf: Some(buf),
        done: done.clone(),
    };
    let digest = glommio::executor()
        .spawn_blocking(move || {
            let digest = lent.digest();
            done.store(true, Ordering::Release);
            digest
        })
        .await;
    let buf = guard
        .buf
        .take()
        .expect("the guard holds the buffer until here");
    (buf, digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use glommio::LocalExecutorBuilder;

    #[test]
    fn hashes_in_place_and_gives_the_buffer_back() {
        LocalExecutorBuilder::default()
            .spawn(|| async {
                let mut buf = glommio::allocate_dma_buffer(8192);
                for (i, b) in buf.as_bytes_mut().iter_mut().enumerate() {
                    *b = (i % 251) as u8;
                }
                let want = Sha1::digest(&buf.as_bytes()[..5000]);
                let (buf, got) = digest_on_helper(buf, 5000).await;
                assert_eq!(got, want);
                assert_eq!(buf.len(), 8192);
                assert_eq!(buf.as_bytes()[4999], (4999 % 251) as u8);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
