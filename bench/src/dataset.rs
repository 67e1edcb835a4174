//! The benchmark's data set: one large file of deterministic pseudo-random bytes and a
//! torrent of it made by ccbt-uring.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub struct DataSet {
    /// The save path (`--data` for verify).
    pub save_dir: PathBuf,
    pub data_file: PathBuf,
    pub torrent: PathBuf,
    pub bytes: u64,
}

/// Makes (or reuses) `dir/data/bench-<size>.bin` and its torrent with 1 MiB pieces.
pub fn prepare(dir: &Path, bytes: u64, ccbt: &Path) -> Result<DataSet> {
    let save_dir = dir.join("data");
    std::fs::create_dir_all(&save_dir)
        .with_context(|| format!("cannot create {}", save_dir.display()))?;
    let name = format!("bench-{bytes}.bin");
    let data_file = save_dir.join(&name);
    if std::fs::metadata(&data_file).map(|m| m.len()).ok() != Some(bytes) {
        eprintln!("writing {} ({bytes} bytes) ...", data_file.display());
        write_pseudo_random(&data_file, bytes)?;
    }
    let torrent = dir.join(format!("{name}.torrent"));
    create_torrent(ccbt, &data_file, &torrent, None)?;
    Ok(DataSet {
        save_dir,
        data_file,
        torrent,
        bytes,
    })
}

impl DataSet {
    /// The file's name inside the torrent (and inside a download's save dir).
    pub fn name(&self) -> &std::ffi::OsStr {
        self.data_file.file_name().expect("a file name")
    }

    /// A second torrent of the same data that announces to `url`. Its info hash is the
    /// same as [`DataSet::torrent`]'s: the announce URL is outside the info dictionary.
    pub fn torrent_with_tracker(&self, ccbt: &Path, url: &str) -> Result<PathBuf> {
        let mut name = self.name().to_owned();
        name.push(".tracker.torrent");
        let torrent = self.torrent.with_file_name(name);
        create_torrent(ccbt, &self.data_file, &torrent, Some(url))?;
        Ok(torrent)
    }
}

/// `ccbt-uring create` with 1 MiB pieces and no date, so the same data gives the same file.
fn create_torrent(ccbt: &Path, data: &Path, torrent: &Path, tracker: Option<&str>) -> Result<()> {
    let mut cmd = Command::new(ccbt);
    cmd.arg("create").arg(data).arg("-o").arg(torrent).args([
        "--piece-size",
        "1M",
        "--no-date",
        "--force",
    ]);
    if let Some(url) = tracker {
        cmd.args(["--tracker", url]);
    }
    // Its report goes to our stderr: stdout carries the scenario's Markdown.
    let status = cmd.stdout(std::io::stderr()).status()?;
    if !status.success() {
        bail!("ccbt-uring create failed: {status}");
    }
    Ok(())
}

fn write_pseudo_random(path: &Path, bytes: u64) -> Result<()> {
    let mut out = BufWriter::with_capacity(8 << 20, File::create(path)?);
    let mut stream = ccbt_loadgen::PseudoRandom::new(1);
    let mut chunk = vec![0u8; 8 << 20];
    let mut left = bytes;
    while left > 0 {
        stream.fill(&mut chunk);
        let n = left.min(chunk.len() as u64) as usize;
        out.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

/// Drops every file under `dir` except `keep` from the page cache, best effort, and says
/// how many it asked about. Data sets other scenarios left cached squeeze the page cache
/// that buffered-I/O downloaders write through: with them cached, libtorrent and aria2
/// downloaded at half their speed and twice their CPU per GiB (ccbt-uring, writing with
/// O_DIRECT, did not notice).
pub fn evict_all_but(dir: &Path, keep: &Path) -> usize {
    let mut asked = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => pending.push(path),
                Ok(t) if t.is_file() && path != keep => {
                    if let Ok(file) = File::open(&path) {
                        // SAFETY: a plain syscall on a descriptor we own; it touches no
                        // memory of ours.
                        unsafe {
                            libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED)
                        };
                        asked += 1;
                    }
                }
                _ => {}
            }
        }
    }
    asked
}

/// The load generator's synthetic content of `bytes` (seed 1, 1 MiB pieces): its
/// torrent, announcing to `tracker_url`, and the same bytes on disk under `dir/synthetic`
/// (written once), to compare downloads with.
pub fn synthetic(
    dir: &Path,
    bytes: u64,
    loadgen: &Path,
    tracker_url: &str,
) -> Result<(DataSet, PathBuf)> {
    let save_dir = dir.join("synthetic");
    std::fs::create_dir_all(&save_dir)
        .with_context(|| format!("cannot create {}", save_dir.display()))?;
    let name = format!("synthetic-1-{bytes}.bin");
    let data_file = save_dir.join(&name);
    let torrent = dir.join(format!("{name}.torrent"));
    let mut cmd = Command::new(loadgen);
    cmd.arg("make-torrent")
        .args(["--size", &bytes.to_string(), "--piece-size", "1048576"])
        .args(["--seed", "1", "--tracker", tracker_url, "-o"])
        .arg(&torrent);
    if std::fs::metadata(&data_file).map(|m| m.len()).ok() != Some(bytes) {
        eprintln!("writing {} ({bytes} bytes) ...", data_file.display());
        cmd.arg("--write-files").arg(&save_dir);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "ccbt-loadgen make-torrent failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let set = DataSet {
        save_dir,
        data_file,
        torrent: torrent.clone(),
        bytes,
    };
    Ok((set, torrent))
}

/// Reads the file twice so every contender finds it in the page cache, and checks that it
/// is all there (a warm figure from a half-cached file would be a cold one).
pub fn warm(path: &Path) -> Result<()> {
    let mut buf = vec![0u8; 8 << 20];
    for _ in 0..2 {
        let mut f = File::open(path)?;
        while f.read(&mut buf)? > 0 {}
    }
    let cached = cached_fraction(&File::open(path)?)?;
    if cached < 0.99 {
        bail!(
            "only {:.0}% of {} stays in the page cache: too little free memory for a warm run",
            cached * 100.0,
            path.display()
        );
    }
    Ok(())
}

/// Drops this one file from the page cache (fsync, then `POSIX_FADV_DONTNEED`) so the
/// next reader goes to the disk, and checks that it is gone. Only this file: the rest of
/// the machine's cache is left alone.
pub fn evict(path: &Path) -> Result<()> {
    let file = File::open(path)?;
    file.sync_all()?;
    // SAFETY: a plain syscall on a descriptor we own; it reads and writes no memory of ours.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        bail!(
            "posix_fadvise(DONTNEED) on {}: {}",
            path.display(),
            std::io::Error::from_raw_os_error(rc)
        );
    }
    let cached = cached_fraction(&file)?;
    if cached > 0.01 {
        bail!(
            "{:.0}% of {} is still in the page cache after POSIX_FADV_DONTNEED \
             (does another process map it?)",
            cached * 100.0,
            path.display()
        );
    }
    Ok(())
}

/// The share of the file's pages that are in the page cache, from `mincore` over a
/// read-only mapping of it (the mapping itself reads nothing).
pub fn cached_fraction(file: &File) -> Result<f64> {
    let len = file.metadata()?.len() as usize;
    if len == 0 {
        return Ok(1.0);
    }
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let mut resident = vec![0u8; len.div_ceil(page)];
    // SAFETY: a fresh private read-only mapping of `len` bytes of an open file, never
    // dereferenced; `resident` holds one byte per page of it, as mincore requires; the
    // mapping is unmapped before returning.
    unsafe {
        let map = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        );
        if map == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mmap for mincore");
        }
        let rc = libc::mincore(map, len, resident.as_mut_ptr());
        let err = std::io::Error::last_os_error();
        libc::munmap(map, len);
        if rc != 0 {
            return Err(err).context("mincore");
        }
    }
    let cached = resident.iter().filter(|&&b| b & 1 == 1).count();
    Ok(cached as f64 / resident.len() as f64)
}

/// Writes `ccbt-loadgen dataset`'s set of `torrents` single-file torrents (each file
/// `file_bytes`, pieces of `piece_length`) under `root`, replacing whatever was there.
/// Its progress goes to stderr, so stdout keeps only the bench's tables.
pub fn write_many(
    loadgen: &Path,
    root: &Path,
    torrents: u32,
    file_bytes: u64,
    piece_length: u32,
) -> Result<()> {
    let _ = std::fs::remove_dir_all(root);
    let status = Command::new(loadgen)
        .arg("dataset")
        .args(["--torrents", &torrents.to_string(), "--files", "1"])
        .args(["--file-bytes", &file_bytes.to_string()])
        .args(["--piece-length", &piece_length.to_string()])
        .arg("--out")
        .arg(root)
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("cannot run {}", loadgen.display()))?;
    if !status.success() {
        bail!("ccbt-loadgen dataset failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_and_evicts_one_file() {
        // On disk, not tmpfs: tmpfs pages cannot leave the page cache.
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let path = dir.path().join("data");
        write_pseudo_random(&path, 4 << 20).unwrap();
        warm(&path).unwrap();
        assert_eq!(cached_fraction(&File::open(&path).unwrap()).unwrap(), 1.0);
        evict(&path).unwrap();
        assert!(cached_fraction(&File::open(&path).unwrap()).unwrap() <= 0.01);
    }

    #[test]
    fn evicts_all_but_the_one_kept() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let (keep, other) = (dir.path().join("keep"), dir.path().join("sub/other"));
        std::fs::create_dir_all(other.parent().unwrap()).unwrap();
        for path in [&keep, &other] {
            write_pseudo_random(path, 1 << 20).unwrap();
            File::open(path).unwrap().sync_all().unwrap();
            warm(path).unwrap();
        }
        assert_eq!(evict_all_but(dir.path(), &keep), 1);
        assert_eq!(cached_fraction(&File::open(&keep).unwrap()).unwrap(), 1.0);
        assert!(cached_fraction(&File::open(&other).unwrap()).unwrap() <= 0.01);
    }
}
