//! A torrent's files on disk: pieces written with O_DIRECT through io_uring where the file
//! system allows it, and read back the same way for seeding.
//!
//! O_DIRECT needs offsets, lengths and memory aligned to the device's block size. A piece
//! rarely lines up with its files on every edge (multi-file torrents put files at arbitrary
//! offsets), so each file span is cut in three: the page-aligned middle goes out as one
//! direct write from an aligned buffer, and the unaligned head and tail (under a page each)
//! go through the page cache. Direct and buffered writes never touch the same page, and a
//! direct read flushes dirty cached pages of its range first, so reads see both.
//!
//! Where O_DIRECT is refused or absent (tmpfs has none, and glommio then opens its "DMA"
//! files without the flag; some file systems refuse it) every span goes through the
//! buffered path, and a line in the log says so once. Files under a page never use it.

use std::ops::Range;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use ccbt_engine::metainfo::{FileSpan, Layout};
use glommio::io::{BufferedFile, DmaBuffer, DmaFile, OpenOptions};

use super::buffers::PieceBytes;
use thiserror::Error;

use crate::beneath::{Access, SaveDir, Symlinks};
use crate::mapped::path_under;

/// Direct writes are aligned to a page: safe for every logical block size up to 4 KiB and
/// keeps buffered edges and direct middles on disjoint pages.
const ALIGN: u64 = 4096;

/// A failure of the disk under a torrent; the torrent stops, others go on.
#[derive(Debug, Error)]
pub enum StorageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How files are sized before the download.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preallocate {
    /// Set each file's length; blocks are allocated as pieces land (sparse).
    #[default]
    Sparse,
    /// Reserve every block up front with fallocate: no fragmentation, no ENOSPC later.
    Full,
}

/// How the blocks a torrent serves are read from disk: the `[storage] serve_reads` key.
///
/// Downloads always write with O_DIRECT where the file system has it; this only chooses how
/// seeding reads. Where O_DIRECT is unavailable (tmpfs) every mode reads buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServeReads {
    /// O_DIRECT reads into the shard's own bounded cache: whole pieces read ahead and
    /// shared by several peers, the blocks a send batch needs otherwise. The page cache is
    /// neither used nor filled, so seeding does not push other data out of it.
    Direct,
    /// Reads through the kernel's page cache, only the blocks a send batch needs, kept by
    /// nothing but that batch: the kernel's cache and read-ahead do the rest, as other
    /// clients rely on. What the page cache holds is copied out with a non-blocking
    /// `preadv2` (`RWF_NOWAIT`) on the shard's thread; what it does not is read with an
    /// io_uring read without O_DIRECT, which fills it. Cheapest when the data set fits in
    /// memory; a cold read costs a page-cache fill and a copy.
    Buffered,
    /// Per read: a non-blocking buffered read (`preadv2` with `RWF_NOWAIT`, which fails
    /// instead of waiting for the device) serves what the page cache holds whole, and a
    /// direct read what it does not, without filling the page cache. No read-ahead of our
    /// own (a miss reads only its batch's blocks).
    #[default]
    Auto,
}

/// How one read goes to the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadVia {
    /// O_DIRECT where the file has it.
    Direct,
    /// Through the page cache: copied out of it at once when it holds the span, else an
    /// io_uring read that fills it.
    Buffered,
    /// From the page cache if it holds the whole span, else O_DIRECT.
    CachedOrDirect,
}

struct StoredFile {
    path: PathBuf,
    buffered: BufferedFile,
    direct: Option<DmaFile>,
}

/// The open files of one torrent.
pub struct Storage {
    layout: Rc<Layout>,
    /// `None` for BEP 47 pad files, which are never stored.
    files: Vec<Option<StoredFile>>,
    direct: bool,
}

fn io_err(path: &Path) -> impl FnOnce(glommio::GlommioError<()>) -> StorageError + '_ {
    move |e| StorageError::Io {
        path: path.to_path_buf(),
        // The system's own error, so its errno (ENOSPC, EACCES...) survives: the path is
        // already ours to report, and glommio's wrapper would hide the errno in a string.
        source: match e {
            glommio::GlommioError::EnhancedIoError { source, .. } => source,
            other => other.into(),
        },
    }
}

impl Storage {
    /// Opens (creating when `create`) every file of the torrent beneath `save_dir` (see
    /// [`crate::beneath`]: a symlink inside the tree is refused unless `symlinks` allows
    /// it). A file is never truncated: a short one is extended to the torrent's length
    /// (sparse), and a longer one is left as it is, with a warning, because its extra bytes
    /// may be the user's and pieces never reach past the torrent's length.
    pub async fn open(
        save_dir: &Path,
        symlinks: Symlinks,
        layout: Rc<Layout>,
        create: bool,
        prealloc: Preallocate,
    ) -> Result<Storage, StorageError> {
        let dir_failed = |source| StorageError::Io {
            path: save_dir.to_path_buf(),
            source,
        };
        if create {
            // The save directory is the operator's own path: made as a path, symlinks and all.
            std::fs::create_dir_all(save_dir).map_err(dir_failed)?;
        }
        let dir = SaveDir::open(save_dir, symlinks).map_err(dir_failed)?;
        let mut files = Vec::with_capacity(layout.files().len());
        let mut direct = true;
        for entry in layout.files() {
            if entry.pad {
                files.push(None);
                continue;
            }
            let path = path_under(save_dir, &entry.path);
            let failed = |source| StorageError::Io {
                path: path.clone(),
                source,
            };
            let access = if create {
                Access::ReadWriteCreate
            } else {
                Access::Read
            };
            let file = dir.open_file(&entry.path, access).map_err(failed)?;
            let mut size = file.metadata().map_err(failed)?.len();
            if create {
                match size.cmp(&entry.length) {
                    std::cmp::Ordering::Less => {
                        file.set_len(entry.length).map_err(failed)?;
                        size = entry.length;
                    }
                    std::cmp::Ordering::Greater => tracing::warn!(
                        path = %path.display(),
                        on_disk = size,
                        torrent = entry.length,
                        "file is longer than the torrent says; its extra bytes are kept"
                    ),
                    std::cmp::Ordering::Equal => {}
                }
            }
            // SAFETY: the descriptor is ours alone from here on; the BufferedFile closes it.
            let buffered = unsafe { BufferedFile::from_raw_fd(file.into_raw_fd()) };
            if create && prealloc == Preallocate::Full && entry.length > 0 {
                buffered
                    .pre_allocate(entry.length, true)
                    .await
                    .map_err(io_err(&path))?;
            }
            // Files under a page are never read or written directly (they have no aligned
            // middle), and must not be opened so: glommio probes each device's poll ring
            // once, with a read at offset 0, and an empty file answers that read at once,
            // which it takes as support; every later direct read on that device then
            // fails with EOPNOTSUPP (seen with a torrent whose first file was empty).
            // The same probe answers wrongly for a file whose first block is a hole (a
            // new download's, sparse): the kernel fills a hole with zeros without asking
            // the device. Such a file is not opened directly until the device has been
            // probed on a file with data there (glommio's answer is kept per thread); a
            // file we may write gets its first block written with the zeros the hole
            // reads as, so the probe asks the device.
            let probe_ok = || {
                let dev = buffered_dev(&buffered);
                dev.is_some_and(|dev| PROBED.with(|p| p.borrow().contains(&dev)))
                    // glommio does not probe tmpfs (it has no O_DIRECT to poll).
                    || on_tmpfs(&buffered)
                    || data_at_start(&buffered)
                    || (create && fill_first_block(&buffered))
            };
            let direct_file = if direct && size >= ALIGN && probe_ok() {
                // The same open file, again with O_DIRECT: through its /proc magic link,
                // which names the inode already opened, not a path to resolve again.
                let same = PathBuf::from(format!("/proc/self/fd/{}", buffered.as_raw_fd()));
                let mut opts = OpenOptions::new();
                opts.read(true).write(create);
                match opts.dma_open(&same).await {
                    Ok(f) if f.alignment() <= ALIGN && has_o_direct(&f) => {
                        if let Some(dev) = buffered_dev(&buffered) {
                            PROBED.with(|p| p.borrow_mut().insert(dev));
                        }
                        Some(f)
                    }
                    Ok(_) | Err(_) => {
                        tracing::info!(
                            path = %path.display(),
                            "O_DIRECT unavailable here; using buffered I/O for this torrent"
                        );
                        direct = false;
                        None
                    }
                }
            } else {
                None
            };
            files.push(Some(StoredFile {
                path,
                buffered,
                direct: direct_file,
            }));
        }
        if !direct {
            for f in files.iter_mut().flatten() {
                f.direct = None;
            }
        }
        Ok(Storage {
            layout,
            files,
            direct,
        })
    }

    /// File descriptors these files hold (a buffered and, where it works, a direct one
    /// per stored file).
    pub fn descriptors(&self) -> usize {
        self.files
            .iter()
            .flatten()
            .map(|f| 1 + usize::from(f.direct.is_some()))
            .sum()
    }

    /// Whether writes and reads bypass the page cache.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes a verified piece: the first `len` bytes of `buf`. A piece that is one aligned
    /// run of one file goes out from `buf` itself, with no copy.
    pub async fn write_piece(
        &self,
        piece: u32,
        buf: &Rc<DmaBuffer>,
        len: usize,
    ) -> Result<(), StorageError> {
        let Some(index) = self.layout.piece(piece) else {
            return Ok(());
        };
        let mut spans = self.layout.piece_spans(index);
        if let (Some(span), None) = (spans.next(), spans.next()) {
            if let Some(StoredFile {
                direct: Some(direct),
                path,
                ..
            }) = &self.files[span.file]
            {
                if span.offset % ALIGN == 0 && buf.len() == len {
                    let n = direct
                        .write_rc_at(buf.clone(), span.offset)
                        .await
                        .map_err(io_err(path))?;
                    let file = self.files[span.file].as_ref().expect("matched above");
                    return finish_short_write(file, span.offset, &buf.as_bytes()[..len], n).await;
                }
            }
        }
        self.write_spans(piece, &buf.as_bytes()[..len]).await
    }

    /// Writes a piece span by span: direct for aligned middles, buffered for the edges.
    async fn write_spans(&self, piece: u32, data: &[u8]) -> Result<(), StorageError> {
        let Some(index) = self.layout.piece(piece) else {
            return Ok(());
        };
        let mut at = 0usize;
        for span in self.layout.piece_spans(index) {
            let bytes = &data[at..at + span.len as usize];
            at += span.len as usize;
            let Some(file) = &self.files[span.file] else {
                continue;
            };
            let start = span.offset;
            let end = start + u64::from(span.len);
            let mid_start = start.next_multiple_of(ALIGN);
            let mid_end = end / ALIGN * ALIGN;
            match &file.direct {
                Some(direct) if mid_end > mid_start => {
                    if mid_start > start {
                        write_buffered(file, start, &bytes[..(mid_start - start) as usize]).await?;
                    }
                    let middle = &bytes[(mid_start - start) as usize..(mid_end - start) as usize];
                    let mut buf = direct.alloc_dma_buffer(middle.len());
                    buf.as_bytes_mut().copy_from_slice(middle);
                    let n = direct
                        .write_at(buf, mid_start)
                        .await
                        .map_err(io_err(&file.path))?;
                    finish_short_write(file, mid_start, middle, n).await?;
                    if end > mid_end {
                        write_buffered(file, mid_end, &bytes[(mid_end - start) as usize..]).await?;
                    }
                }
                _ => write_buffered(file, start, bytes).await?,
            }
        }
        Ok(())
    }

    /// Reads a whole piece (pad files read as zeros). A piece within one file comes back
    /// as the read buffer itself.
    pub async fn read_piece(&self, piece: u32) -> Result<PieceBytes, StorageError> {
        let Some(index) = self.layout.piece(piece) else {
            return Ok(PieceBytes::Heap(Vec::new()));
        };
        let len = self.layout.piece_len(index);
        self.read_range(piece, 0..len, ReadVia::Direct).await
    }

    /// Reads bytes `window` of a piece (pad files read as zeros): only the file spans the
    /// window covers, each read as one request (glommio widens a direct read to the
    /// device's alignment itself and hands back the bytes asked for). A window within one
    /// file comes back as the read buffer itself, not copied. A window past the piece's end
    /// is cut at it.
    pub async fn read_range(
        &self,
        piece: u32,
        window: Range<u32>,
        via: ReadVia,
    ) -> Result<PieceBytes, StorageError> {
        let Some(index) = self.layout.piece(piece) else {
            return Ok(PieceBytes::Heap(Vec::new()));
        };
        let spans = clip_spans(self.layout.piece_spans(index), window);
        if let [span] = spans[..] {
            if let Some(file) = &self.files[span.file] {
                return self.read_span(file, span.offset, span.len, via).await;
            }
        }
        let total: usize = spans.iter().map(|s| s.len as usize).sum();
        let mut out = Vec::with_capacity(total);
        for span in spans {
            let Some(file) = &self.files[span.file] else {
                out.resize(out.len() + span.len as usize, 0);
                continue;
            };
            let got = self.read_span(file, span.offset, span.len, via).await?;
            out.extend_from_slice(&got);
        }
        Ok(PieceBytes::Heap(out))
    }

    async fn read_span(
        &self,
        file: &StoredFile,
        offset: u64,
        len: u32,
        via: ReadVia,
    ) -> Result<PieceBytes, StorageError> {
        // What the page cache holds is copied out at once, on the shard's thread: measured
        // at 500 leechers, an io_uring buffered read of cached data cost a third more CPU
        // per GiB served than this (and held more memory in flight).
        if via != ReadVia::Direct || file.direct.is_none() {
            if let Some(bytes) = read_if_cached(&file.buffered, offset, len as usize) {
                return Ok(PieceBytes::Heap(bytes));
            }
        }
        let direct = match (&file.direct, via) {
            (Some(direct), ReadVia::Direct | ReadVia::CachedOrDirect) => Some(direct),
            (None, _) | (_, ReadVia::Buffered) => None,
        };
        let got = match direct {
            Some(direct) => direct.read_at(offset, len as usize).await,
            None => file.buffered.read_at(offset, len as usize).await,
        }
        .map_err(io_err(&file.path))?;
        if got.len() != len as usize {
            return Err(StorageError::Io {
                path: file.path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "file is shorter than the torrent says",
                ),
            });
        }
        Ok(PieceBytes::Read(got))
    }

    /// Flushes what went through the page cache, so a finished download is on disk.
    pub async fn sync(&self) -> Result<(), StorageError> {
        for file in self.files.iter().flatten() {
            file.buffered
                .fdatasync()
                .await
                .map_err(io_err(&file.path))?;
        }
        Ok(())
    }
}

thread_local! {
    /// Devices this thread has opened a file directly on, so glommio has probed them for
    /// polled I/O (one entry per device: bounded by the machine's block devices).
    static PROBED: std::cell::RefCell<std::collections::HashSet<u64>> =
        std::cell::RefCell::default();
}

/// The device that holds `file`.
fn buffered_dev(file: &BufferedFile) -> Option<u64> {
    nix::sys::stat::fstat(file.as_raw_fd())
        .ok()
        .map(|st| st.st_dev)
}

/// Writes the zeros a hole at the file's start reads as, making it data; false if that
/// failed (the file then stays buffered for this open).
fn fill_first_block(file: &BufferedFile) -> bool {
    let zeros = [0u8; ALIGN as usize];
    matches!(
        nix::sys::uio::pwrite(
            // SAFETY: the descriptor stays open for the call (`file` is borrowed).
            unsafe { std::os::fd::BorrowedFd::borrow_raw(file.as_raw_fd()) },
            &zeros,
            0
        ),
        Ok(n) if n == zeros.len()
    ) && data_at_start(file)
}

fn on_tmpfs(file: &BufferedFile) -> bool {
    // SAFETY: the descriptor stays open for the call (`file` is borrowed).
    let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(file.as_raw_fd()) };
    nix::sys::statfs::fstatfs(fd)
        .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

/// Whether the file's first byte is data, not a hole (`SEEK_DATA` from 0 lands on 0).
fn data_at_start(file: &BufferedFile) -> bool {
    matches!(
        nix::unistd::lseek(file.as_raw_fd(), 0, nix::unistd::Whence::SeekData),
        Ok(0)
    )
}

/// Whether the file really bypasses the page cache: glommio opens a "DMA" file on tmpfs
/// without O_DIRECT (tmpfs has no such thing), and such a file is buffered I/O under
/// another name, so the torrent takes the buffered path and says so.
fn has_o_direct(file: &DmaFile) -> bool {
    // SAFETY: F_GETFL on a descriptor the file holds open.
    let flags = unsafe { nix::libc::fcntl(file.as_raw_fd(), nix::libc::F_GETFL) };
    flags >= 0 && flags & nix::libc::O_DIRECT != 0
}

/// The parts of `spans` (a piece's file spans, in order) that bytes `window` of the piece
/// cover, in order; a window past the piece's end is cut at it.
fn clip_spans(spans: impl Iterator<Item = FileSpan>, window: Range<u32>) -> Vec<FileSpan> {
    let mut out = Vec::new();
    let mut at = 0u32;
    for span in spans {
        let (start, end) = (at, at + span.len);
        at = end;
        let from = start.max(window.start);
        let to = end.min(window.end);
        if from < to {
            out.push(FileSpan {
                file: span.file,
                offset: span.offset + u64::from(from - start),
                len: to - from,
            });
        }
        if end >= window.end {
            break;
        }
    }
    out
}

/// `len` bytes at `offset` if the page cache holds every one of them: a `preadv2` with
/// `RWF_NOWAIT` fails (EAGAIN) or comes back short rather than wait for the device, and
/// either is taken as "not cached", as is any other failure (the direct read that follows
/// reports real errors).
fn read_if_cached(file: &BufferedFile, offset: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf: Vec<u8> = Vec::with_capacity(len);
    let iov = nix::libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: len,
    };
    let offset = nix::libc::off_t::try_from(offset).ok()?;
    // SAFETY: one iovec over `buf`'s spare capacity of `len` bytes, which outlives the call;
    // the descriptor is the file's own and open.
    let got =
        unsafe { nix::libc::preadv2(file.as_raw_fd(), &iov, 1, offset, nix::libc::RWF_NOWAIT) };
    if got < 0 || got as usize != len {
        return None;
    }
    // SAFETY: the kernel wrote all `len` bytes.
    unsafe { buf.set_len(len) };
    Some(buf)
}

/// A direct write may write less than asked (a full disk mid-write): the rest goes
/// through the page cache, which either takes it or says why not (ENOSPC). Ignoring the
/// count would claim a piece whose tail never reached the file.
async fn finish_short_write(
    file: &StoredFile,
    pos: u64,
    bytes: &[u8],
    written: usize,
) -> Result<(), StorageError> {
    if written >= bytes.len() {
        return Ok(());
    }
    write_buffered(file, pos + written as u64, &bytes[written..]).await
}

async fn write_buffered(file: &StoredFile, pos: u64, bytes: &[u8]) -> Result<(), StorageError> {
    let mut written = 0;
    while written < bytes.len() {
        let n = file
            .buffered
            .write_at(bytes[written..].to_vec(), pos + written as u64)
            .await
            .map_err(io_err(&file.path))?;
        if n == 0 {
            return Err(StorageError::Io {
                path: file.path.clone(),
                source: std::io::ErrorKind::WriteZero.into(),
            });
        }
        written += n;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(file: usize, offset: u64, len: u32) -> FileSpan {
        FileSpan { file, offset, len }
    }

    fn tuples(spans: Vec<FileSpan>) -> Vec<(usize, u64, u32)> {
        spans.iter().map(|s| (s.file, s.offset, s.len)).collect()
    }

    /// A daemon whose first torrent is a new download (sparse files) must still read
    /// another torrent's data directly afterwards: glommio's polled-I/O probe of the sparse
    /// file would answer "supported" on a device that is not, and every later direct read
    /// on it failed with EOPNOTSUPP. On disk (/var/tmp), where O_DIRECT works.
    #[test]
    fn a_sparse_download_opened_first_leaves_direct_reads_working() {
        use ccbt_engine::metainfo::{LayoutFile, TorrentPath};
        let root = tempfile::tempdir_in("/var/tmp").unwrap();
        let layout = |name: &str| {
            Rc::new(
                Layout::new(
                    1 << 16,
                    [LayoutFile {
                        path: TorrentPath::new([name]).unwrap(),
                        length: 1 << 20,
                        pad: false,
                    }],
                )
                .unwrap(),
            )
        };
        let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(root.path().join("seeded.bin"), &data).unwrap();
        let dir = root.path().to_path_buf();
        glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .spawn(move || async move {
                let fresh = Storage::open(
                    &dir,
                    Symlinks::Refused,
                    layout("fresh.bin"),
                    true,
                    Preallocate::Sparse,
                )
                .await
                .unwrap();
                let seeded = Storage::open(
                    &dir,
                    Symlinks::Refused,
                    layout("seeded.bin"),
                    false,
                    Preallocate::Sparse,
                )
                .await
                .unwrap();
                for piece in [0, 7, 15] {
                    let got = seeded.read_piece(piece).await.unwrap();
                    let at = piece as usize * (1 << 16);
                    assert_eq!(&got[..], &data[at..at + (1 << 16)], "piece {piece}");
                }
                // The new file's first block was made data (zeros, as the hole read),
                // so the download is written directly too.
                assert!(
                    fresh.descriptors() == 2,
                    "the new file is not open O_DIRECT"
                );
                assert_eq!(
                    std::fs::read(dir.join("fresh.bin")).unwrap(),
                    vec![0; 1 << 20]
                );
                drop(fresh);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn a_window_in_one_file_is_one_span_at_its_offset() {
        let piece = [span(0, 1 << 20, 1 << 20)];
        let got = clip_spans(piece.into_iter(), 16_384..49_152);
        assert_eq!(tuples(got), [(0, (1 << 20) + 16_384, 32_768)]);
    }

    #[test]
    fn a_window_across_file_edges_takes_each_files_part() {
        // A piece of 100 + 5000 + 300 bytes over three files (the middle one a pad file
        // in a torrent would look the same here).
        let piece = [span(0, 900, 100), span(1, 0, 5000), span(2, 0, 300)];
        assert_eq!(
            tuples(clip_spans(piece.into_iter(), 50..5200)),
            [(0, 950, 50), (1, 0, 5000), (2, 0, 100)]
        );
        assert_eq!(
            tuples(clip_spans(piece.into_iter(), 100..5100)),
            [(1, 0, 5000)],
            "edges exactly on file boundaries take nothing of the neighbours"
        );
        assert_eq!(
            tuples(clip_spans(piece.into_iter(), 4097..4099)),
            [(1, 3997, 2)]
        );
    }

    #[test]
    fn a_window_past_the_end_of_a_short_last_piece_is_cut() {
        let piece = [span(0, 3 << 20, 20_000)];
        assert_eq!(
            tuples(clip_spans(piece.into_iter(), 16_384..32_768)),
            [(0, (3 << 20) + 16_384, 3_616)]
        );
        assert!(clip_spans(piece.into_iter(), 20_000..32_768).is_empty());
        assert!(clip_spans(piece.into_iter(), 5..5).is_empty());
    }
}
