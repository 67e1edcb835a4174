//! Read-only access to a torrent's files, for hashing: through `memmap2` mappings (hashing
//! in place, for the one-shot CLI commands) or through `pread` (for the daemon, which must
//! outlive a file another process truncates mid-check: a mapping would die of SIGBUS).
//!
//! Files are opened `O_RDONLY` and mapped `PROT_READ`: nothing here can create, extend or
//! write a file. Files of a torrent are opened beneath its save directory (see
//! [`crate::beneath`]), so a symlink inside the tree is not read through. A file that is
//! missing, unreadable or shorter than the torrent says leaves the bytes it lacks
//! unavailable, and the pieces that need them count as missing.

use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ccbt_engine::metainfo::{FileSpan, Layout, TorrentPath};
use memmap2::{Advice, Mmap};

use crate::beneath::{Access, SaveDir, Symlinks};

/// What one file of the layout can provide.
enum FileData {
    /// The first `mapping.len()` bytes are readable (all of them unless the file is short).
    Mapped(Mmap),
    /// Read with `pread` when asked for: the first `len` bytes may be there.
    Read { file: File, len: u64 },
    /// Not there, not readable or empty: every byte is unavailable.
    Unavailable,
    /// A BEP 47 pad file: zeros, never stored.
    Pad,
}

/// A file that is missing, unreadable, or not the size the torrent says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// Index into the layout's files.
    pub file: usize,
    pub path: PathBuf,
    pub reason: String,
}

/// The bytes of a piece span, as [`MappedFiles::span`] finds them.
pub enum SpanData<'a> {
    Bytes(&'a [u8]),
    /// That many zero bytes (pad files).
    Zeros(u32),
    /// The span's bytes, read into memory.
    Read(Vec<u8>),
    /// Some of the span's bytes are not on disk.
    Missing,
}

/// How the bytes of the files are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Mapped, hashed in place; a file truncated meanwhile raises SIGBUS.
    Mapped,
    /// Read with `pread`; a file truncated meanwhile makes its pieces missing.
    Pread,
}

/// The files of one layout, mapped for reading.
pub struct MappedFiles {
    files: Vec<FileData>,
    problems: Vec<FileProblem>,
}

impl MappedFiles {
    /// Maps each file of `layout` from its torrent path under `save_dir` (the directory that
    /// holds the torrent's name, as libtorrent's save path).
    /// Symlinks inside the tree are refused.
    pub fn open_under(save_dir: &Path, layout: &Layout) -> Self {
        Self::open_beneath(save_dir, layout, Symlinks::Refused, Reading::Mapped)
    }

    /// Opens each file of `layout` beneath `save_dir`, following symlinks inside the tree
    /// only as `symlinks` says, to be read as `reading` says.
    pub fn open_beneath(
        save_dir: &Path,
        layout: &Layout,
        symlinks: Symlinks,
        reading: Reading,
    ) -> Self {
        let dir = SaveDir::open(save_dir, symlinks);
        Self::open_with(layout, reading, |i| {
            let path = path_under(save_dir, &layout.files()[i].path);
            let file = match &dir {
                Ok(dir) => dir.open_file(&layout.files()[i].path, Access::Read),
                Err(e) => Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", save_dir.display()),
                )),
            };
            (path, file)
        })
    }

    /// Maps each file of `layout` from the given paths, in layout order (for `create`, where
    /// the source files need not sit under their torrent paths).
    pub fn open_paths(paths: &[PathBuf], layout: &Layout) -> Self {
        assert_eq!(
            paths.len(),
            layout.files().len(),
            "one path per layout file"
        );
        Self::open_with(layout, Reading::Mapped, |i| {
            (paths[i].clone(), File::open(&paths[i]))
        })
    }

    fn open_with(
        layout: &Layout,
        reading: Reading,
        open: impl Fn(usize) -> (PathBuf, std::io::Result<File>),
    ) -> Self {
        let mut problems = Vec::new();
        let files = layout
            .files()
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                if entry.pad {
                    return FileData::Pad;
                }
                let (path, file) = open(i);
                let (data, problem) = map(file, entry.length, reading);
                if let Some(reason) = problem {
                    problems.push(FileProblem {
                        file: i,
                        path,
                        reason,
                    });
                }
                data
            })
            .collect();
        Self { files, problems }
    }

    /// Files that are missing, unreadable, or of the wrong size.
    pub fn problems(&self) -> &[FileProblem] {
        &self.problems
    }

    /// The bytes of one span of a piece. Also asks the kernel to map the span's pages in one
    /// go, which is much cheaper than taking a page fault every few pages.
    pub fn span(&self, span: &FileSpan) -> SpanData<'_> {
        match &self.files[span.file] {
            FileData::Pad => SpanData::Zeros(span.len),
            FileData::Unavailable => SpanData::Missing,
            FileData::Read { file, len } => {
                let (start, n) = (span.offset, u64::from(span.len));
                if start + n > *len {
                    return SpanData::Missing;
                }
                let mut buf = vec![0; n as usize];
                // Short (truncated meanwhile) or failed: the bytes are not there.
                match file.read_exact_at(&mut buf, start) {
                    Ok(()) => SpanData::Read(buf),
                    Err(_) => SpanData::Missing,
                }
            }
            FileData::Mapped(map) => {
                let (start, len) = (span.offset as usize, span.len as usize);
                if start + len > map.len() {
                    return SpanData::Missing;
                }
                // Best effort: older kernels lack MADV_POPULATE_READ and fault pages instead.
                let _ = map.advise_range(Advice::PopulateRead, start, len);
                SpanData::Bytes(&map[start..start + len])
            }
        }
    }

    /// Asks the kernel to start reading a span's pages into the page cache (`MADV_WILLNEED`)
    /// without waiting for them, so a cold recheck keeps the disk busy while it hashes.
    /// Pages already cached cost a lookup each.
    pub fn will_need(&self, span: &FileSpan) {
        if let FileData::Mapped(map) = &self.files[span.file] {
            let (start, len) = (span.offset as usize, span.len as usize);
            if start + len <= map.len() {
                let _ = map.advise_range(Advice::WillNeed, start, len);
            }
        }
    }
}

/// The on-disk path of a torrent path under `save_dir`. Components were checked by the
/// engine (no `..`, no separators), so the result stays inside `save_dir`.
pub fn path_under(save_dir: &Path, path: &TorrentPath) -> PathBuf {
    let mut out = save_dir.to_path_buf();
    for c in path.components() {
        out.push(std::ffi::OsStr::from_bytes(c));
    }
    out
}

/// Maps (or prepares to read) the first `expected` bytes of `opened`. A file of the wrong
/// size still gives what it has, and comes back with a note saying how it differs.
fn map(
    opened: std::io::Result<File>,
    expected: u64,
    reading: Reading,
) -> (FileData, Option<String>) {
    let opened = opened.and_then(|f| {
        let meta = f.metadata()?;
        Ok((f, meta))
    });
    let (file, meta) = match opened {
        Ok(ok) => ok,
        Err(e) => return (FileData::Unavailable, Some(e.to_string())),
    };
    if !meta.is_file() {
        return (FileData::Unavailable, Some("not a regular file".into()));
    }
    let actual = meta.len();
    let short = match actual.cmp(&expected) {
        std::cmp::Ordering::Less => Some(format!("{actual} bytes on disk, {expected} expected")),
        std::cmp::Ordering::Greater => Some(format!(
            "{actual} bytes on disk, {expected} expected; the extra bytes are not checked"
        )),
        std::cmp::Ordering::Equal => None,
    };
    let len = actual.min(expected);
    if len == 0 {
        return (FileData::Unavailable, short);
    }
    if reading == Reading::Pread {
        let _ = nix::fcntl::posix_fadvise(
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
            len as i64,
            nix::fcntl::PosixFadviseAdvice::POSIX_FADV_SEQUENTIAL,
        );
        return (FileData::Read { file, len }, short);
    }
    // SAFETY: the mapping is read-only and private to this process. If another process
    // truncates the file while we hash, reads past the new end raise SIGBUS; the one-shot
    // CLI commands accept that cost of hashing in place without copying (DESIGN.md, rule
    // 6); the daemon reads with [`Reading::Pread`] instead.
    match unsafe { memmap2::MmapOptions::new().len(len as usize).map(&file) } {
        Ok(map) => {
            let _ = map.advise(Advice::Sequential);
            (FileData::Mapped(map), short)
        }
        Err(e) => (FileData::Unavailable, Some(format!("cannot map: {e}"))),
    }
}
