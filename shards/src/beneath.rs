//! Opening a torrent's files beneath its save directory, so that nothing inside the
//! directory (a symlink to a file, a directory swapped for a symlink) can send a read or a
//! write elsewhere.
//!
//! The save directory itself is opened by its path and may be a symlink, as users expect.
//! Everything below it is reached from that directory's descriptor with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: a symlink anywhere on the way fails with
//! `ELOOP`, which is reported as [`SYMLINK_REFUSED`]. Kernels without `openat2` (before 5.6,
//! or a seccomp filter that refuses it) get the same guarantee one component at a time, each
//! opened with `O_NOFOLLOW` from the one before. Missing directories are created the same
//! way, one `mkdirat` per component. Nothing here ever truncates a file.
//!
//! [`Symlinks::Allowed`] (the config's `storage.allow_symlinks_inside`) is for an operator
//! who links parts of a tree to other places in the save directory on purpose: paths then
//! resolve with `RESOLVE_BENEATH` alone, so a symlink is followed while it stays inside the
//! save directory and refused (`EXDEV`) when it leads out. Without `openat2` that cannot
//! be checked, and symlinks are refused as if the setting were off.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

use ccbt_engine::metainfo::TorrentPath;
use nix::libc;

/// What an open through a symlink inside the tree reports.
pub const SYMLINK_REFUSED: &str =
    "a symlink inside the torrent's tree (refused: storage.allow_symlinks_inside is off)";

/// What an open through a symlink that leads out of the save directory reports when
/// symlinks inside are allowed.
pub const SYMLINK_OUT: &str = "a symlink that leads out of the save directory (refused)";

/// Whether symlinks inside a torrent's tree are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Symlinks {
    /// Refused: a read or write never leaves the save directory.
    #[default]
    Refused,
    /// Followed while they stay inside the save directory.
    Allowed,
}

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Read and write, creating the file (mode 0666 less the umask) if it is missing.
    /// Never truncating.
    ReadWriteCreate,
}

/// A save directory, held open so every path is resolved from it.
pub struct SaveDir {
    fd: OwnedFd,
    symlinks: Symlinks,
}

impl SaveDir {
    /// Opens the directory at `path` (following a symlink there).
    pub fn open(path: &Path, symlinks: Symlinks) -> io::Result<SaveDir> {
        let fd = File::open(path)?;
        if !fd.metadata()?.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        Ok(SaveDir {
            fd: fd.into(),
            symlinks,
        })
    }

    /// Opens the regular file at `path` beneath this directory; with
    /// [`Access::ReadWriteCreate`] creates its missing parent directories first. Anything
    /// else at that path (a FIFO, a device, a directory) is refused: it is opened
    /// non-blocking, so a FIFO cannot hang the open, and checked before use.
    pub fn open_file(&self, path: &TorrentPath, access: Access) -> io::Result<File> {
        let file = self.open_any(path, access)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        // Back to blocking I/O, which regular files always do anyway: io_uring would
        // otherwise answer EAGAIN where it should wait.
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(file)
    }

    fn open_any(&self, path: &TorrentPath, access: Access) -> io::Result<File> {
        let parts = components(path)?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(invalid("an empty path"));
        };
        let flags = match access {
            Access::Read => libc::O_RDONLY,
            Access::ReadWriteCreate => libc::O_RDWR | libc::O_CREAT,
        } | libc::O_CLOEXEC
            | libc::O_NONBLOCK;
        // Creating with symlinks refused walks one component at a time, mkdirat and all;
        // everything else is one openat2 call when the kernel has it.
        let one_call = access == Access::Read || self.symlinks == Symlinks::Allowed;
        if one_call && !force_fallback() {
            let made = match access {
                Access::ReadWriteCreate => self.make_dirs_resolving(dirs),
                Access::Read => Ok(()),
            };
            let opened = made.and_then(|()| {
                openat2_beneath(self.fd.as_raw_fd(), &join(&parts), flags, self.resolve())
            });
            match opened {
                Err(e) if openat2_missing(&e) => {}
                other => return other.map(File::from).map_err(explain),
            }
        }
        let parent = self.walk(dirs, access == Access::ReadWriteCreate)?;
        open_one(parent.as_raw_fd(), name, flags).map(File::from)
    }

    fn resolve(&self) -> u64 {
        match self.symlinks {
            Symlinks::Refused => libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS,
            Symlinks::Allowed => libc::RESOLVE_BENEATH,
        }
    }

    /// Creates the missing directories among `dirs`, each prefix resolved beneath this
    /// directory as [`Self::resolve`] says.
    fn make_dirs_resolving(&self, dirs: &[CString]) -> io::Result<()> {
        let save = self.fd.as_raw_fd();
        let dir_flags = libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC;
        for n in 1..=dirs.len() {
            match openat2_beneath(save, &join(&dirs[..n]), dir_flags, self.resolve()) {
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let parent = match n {
                1 => self.fd.try_clone()?,
                _ => openat2_beneath(save, &join(&dirs[..n - 1]), dir_flags, self.resolve())?,
            };
            mkdir_at(parent.as_raw_fd(), &dirs[n - 1])?;
        }
        Ok(())
    }

    /// Removes the file at `path` beneath this directory, then each of its parent
    /// directories left empty, deepest first, up to (not including) this one. Symlinks on
    /// the way are treated as in [`SaveDir::open_file`]; a symlink at the end is removed
    /// itself, never what it points at (unlinkat does not follow). Missing is fine.
    pub fn remove_file(&self, path: &TorrentPath) -> io::Result<()> {
        let parts = components(path)?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(invalid("an empty path"));
        };
        let parent = match self.dir_at(dirs) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        // SAFETY: `parent` is an open directory and `name` a NUL-terminated string.
        if unsafe { libc::unlinkat(parent.as_raw_fd(), name.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::NotFound {
                return Err(e);
            }
        }
        self.remove_empty_dirs(dirs);
        Ok(())
    }

    /// Removes each of `dirs`' directories left empty, deepest first, up to (not
    /// including) this one.
    fn remove_empty_dirs(&self, dirs: &[CString]) {
        // Each parent is opened afresh (one descriptor at a time, however deep the tree).
        for n in (1..=dirs.len()).rev() {
            let Ok(above) = self.dir_at(&dirs[..n - 1]) else {
                break;
            };
            // SAFETY: as above; a directory that still holds something stays (ENOTEMPTY).
            let gone = unsafe {
                libc::unlinkat(above.as_raw_fd(), dirs[n - 1].as_ptr(), libc::AT_REMOVEDIR)
            };
            if gone != 0 {
                break;
            }
        }
    }

    /// Renames the file at `from` to `to`, both beneath this directory, making `to`'s
    /// directories and removing the ones `from` leaves empty. Never replaces what is at
    /// `to` (`AlreadyExists`). Both ends resolve as [`SaveDir::open_file`] does. False if
    /// there was nothing to rename.
    pub fn rename_file(&self, from: &TorrentPath, to: &TorrentPath) -> io::Result<bool> {
        let from_parts = components(from)?;
        let to_parts = components(to)?;
        let (Some((from_name, from_dirs)), Some((to_name, to_dirs))) =
            (from_parts.split_last(), to_parts.split_last())
        else {
            return Err(invalid("an empty path"));
        };
        let Some((from_dir, _)) = self.regular_file(from_dirs, from_name)? else {
            return Ok(false);
        };
        let to_dir = self.made_dir(to_dirs)?;
        rename_no_replace(&from_dir, from_name, &to_dir, to_name)?;
        self.remove_empty_dirs(from_dirs);
        Ok(true)
    }

    /// Moves the file at `path` beneath this directory to the same path beneath `to`
    /// (rename, or copy and delete across file systems), making its directories there.
    /// Both ends resolve as [`SaveDir::open_file`] does, so neither a symlink in this tree
    /// nor one in the target tree can take the file, or bring one, outside. False if there
    /// was nothing to move.
    pub fn move_file(&self, path: &TorrentPath, to: &SaveDir) -> io::Result<bool> {
        let parts = components(path)?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(invalid("an empty path"));
        };
        let Some((from_dir, source)) = self.regular_file(dirs, name)? else {
            return Ok(false);
        };
        let to_dir = to.made_dir(dirs)?;
        // SAFETY: open directories and NUL-terminated names.
        let renamed = unsafe {
            libc::renameat(
                from_dir.as_raw_fd(),
                name.as_ptr(),
                to_dir.as_raw_fd(),
                name.as_ptr(),
            )
        };
        if renamed == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EXDEV) {
            return Err(e);
        }
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC;
        let mut copy = File::from(open_one(to_dir.as_raw_fd(), name, flags)?);
        io::copy(&mut &source, &mut copy)?;
        copy.sync_all()?;
        // SAFETY: as above.
        if unsafe { libc::unlinkat(from_dir.as_raw_fd(), name.as_ptr(), 0) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(true)
    }

    /// The regular file `name` in the directory `dirs` names (resolved as
    /// [`SaveDir::open_file`] does), opened for reading, with that directory: what a move
    /// or a rename starts from. `None` if either is missing; anything else there (a FIFO,
    /// a directory) is refused.
    fn regular_file(
        &self,
        dirs: &[CString],
        name: &CString,
    ) -> io::Result<Option<(OwnedFd, File)>> {
        let dir = match self.dir_at(dirs) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let file = match open_one(
            dir.as_raw_fd(),
            name,
            libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NONBLOCK,
        ) {
            Ok(fd) => File::from(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        if !file.metadata()?.is_file() {
            return Err(invalid("not a regular file"));
        }
        Ok(Some((dir, file)))
    }

    /// The directory `dirs` names beneath this one, made if missing.
    fn made_dir(&self, dirs: &[CString]) -> io::Result<OwnedFd> {
        if dirs.is_empty() {
            return self.fd.try_clone();
        }
        if self.symlinks == Symlinks::Allowed && !force_fallback() {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
            let opened = self.make_dirs_resolving(dirs).and_then(|()| {
                openat2_beneath(self.fd.as_raw_fd(), &join(dirs), flags, self.resolve())
            });
            match opened {
                Err(e) if openat2_missing(&e) => {}
                other => return other.map_err(explain),
            }
        }
        self.walk(dirs, true)
    }

    /// The directory `dirs` names beneath this one (this one if `dirs` is empty).
    fn dir_at(&self, dirs: &[CString]) -> io::Result<OwnedFd> {
        if dirs.is_empty() {
            return self.fd.try_clone();
        }
        if !force_fallback() {
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
            match openat2_beneath(self.fd.as_raw_fd(), &join(dirs), flags, self.resolve()) {
                Err(e) if openat2_missing(&e) => {}
                other => return other.map_err(explain),
            }
        }
        self.walk(dirs, false)
    }

    /// The directory `dirs` names beneath this one, one component at a time with
    /// `O_NOFOLLOW` (creating each missing one when `create`).
    fn walk(&self, dirs: &[CString], create: bool) -> io::Result<OwnedFd> {
        let mut at = self.fd.try_clone()?;
        for dir in dirs {
            if create {
                mkdir_at(at.as_raw_fd(), dir)?;
            }
            at = open_one(
                at.as_raw_fd(),
                dir,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )?;
        }
        Ok(at)
    }
}

/// `renameat2(RENAME_NOREPLACE)`; where the file system cannot (EINVAL), a check for the
/// target and a plain `renameat`, which only a concurrent writer in the same tree could
/// race.
fn rename_no_replace(
    from_dir: &OwnedFd,
    from: &CString,
    to_dir: &OwnedFd,
    to: &CString,
) -> io::Result<()> {
    let (from_fd, to_fd) = (from_dir.as_raw_fd(), to_dir.as_raw_fd());
    // SAFETY: open directories and NUL-terminated names.
    let rc = unsafe {
        libc::renameat2(
            from_fd,
            from.as_ptr(),
            to_fd,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EINVAL) {
        return Err(e);
    }
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: as above; `st` is written by the call.
    let exists = unsafe {
        libc::fstatat(
            to_fd,
            to.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    } == 0;
    if exists {
        return Err(io::Error::from(io::ErrorKind::AlreadyExists));
    }
    // SAFETY: as above.
    if unsafe { libc::renameat(from_fd, from.as_ptr(), to_fd, to.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `mkdirat`, a directory already there being fine.
fn mkdir_at(dir: RawFd, name: &CString) -> io::Result<()> {
    // SAFETY: `dir` is an open directory and `name` a NUL-terminated string.
    if unsafe { libc::mkdirat(dir, name.as_ptr(), 0o777) } != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EEXIST) {
            return Err(e);
        }
    }
    Ok(())
}

fn components(path: &TorrentPath) -> io::Result<Vec<CString>> {
    path.components()
        .map(|c| CString::new(c).map_err(|_| invalid("a NUL byte in a path")))
        .collect()
}

/// One component opened from `dir`, never following a symlink.
fn open_one(dir: RawFd, name: &CString, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: `dir` is an open directory and `name` a NUL-terminated string.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_NOFOLLOW, 0o666) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        // O_NOFOLLOW with O_DIRECTORY on a symlink says ENOTDIR: look to tell the two apart.
        if e.raw_os_error() == Some(libc::ENOTDIR) && is_symlink(dir, name) {
            return Err(explain(io::Error::from_raw_os_error(libc::ELOOP)));
        }
        return Err(explain(e));
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn is_symlink(dir: RawFd, name: &CString) -> bool {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid directory, NUL-terminated name, and room for the answer.
    let r = unsafe {
        libc::fstatat(
            dir,
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    // SAFETY: fstatat filled `st` when it returned 0.
    r == 0 && unsafe { st.assume_init() }.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// `openat2(dir, path, flags, resolve)`.
fn openat2_beneath(dir: RawFd, path: &CString, flags: i32, resolve: u64) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain old data; zero is a valid value for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = 0;
    how.resolve = resolve;
    // SAFETY: the arguments are what openat2(2) takes, `how` outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us this descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// The kernel has no openat2 (ENOSYS), a filter refuses it (EPERM), or the joined path is
/// longer than one call takes (ENAMETOOLONG, a very deep tree): one component at a time
/// then.
fn openat2_missing(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS) | Some(libc::EPERM) | Some(libc::ENAMETOOLONG)
    )
}

/// ELOOP here only ever means a symlink on the way, EXDEV one that leads out: say so.
fn explain(e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(libc::ELOOP) => io::Error::new(io::ErrorKind::PermissionDenied, SYMLINK_REFUSED),
        Some(libc::EXDEV) => io::Error::new(io::ErrorKind::PermissionDenied, SYMLINK_OUT),
        _ => e,
    }
}

fn join(parts: &[CString]) -> CString {
    let mut bytes = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            bytes.push(b'/');
        }
        bytes.extend_from_slice(p.as_bytes());
    }
    CString::new(bytes).expect("components hold no NUL")
}

// Tests take the per-component path on a kernel that has openat2.
#[cfg(test)]
thread_local! {
    static FORCE_FALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn force_fallback() -> bool {
    #[cfg(test)]
    return FORCE_FALLBACK.with(|c| c.get());
    #[cfg(not(test))]
    false
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn path(s: &str) -> TorrentPath {
        TorrentPath::new(s.split('/')).unwrap()
    }

    /// Runs `f` with openat2 and with the per-component fallback.
    fn each_way(f: impl Fn(&SaveDir, &Path)) {
        for with_openat2 in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let save = SaveDir::open(dir.path(), Symlinks::Refused).unwrap();
            FORCE_FALLBACK.with(|c| c.set(!with_openat2));
            f(&save, dir.path());
            FORCE_FALLBACK.with(|c| c.set(false));
        }
    }

    #[test]
    fn creates_missing_directories_and_never_truncates() {
        each_way(|save, root| {
            std::fs::create_dir_all(root.join("a")).unwrap();
            std::fs::write(root.join("a/kept"), b"data").unwrap();
            save.open_file(&path("a/kept"), Access::ReadWriteCreate)
                .unwrap();
            assert_eq!(std::fs::read(root.join("a/kept")).unwrap(), b"data");
            save.open_file(&path("x/y/z.bin"), Access::ReadWriteCreate)
                .unwrap();
            assert!(root.join("x/y/z.bin").is_file());
            save.open_file(&path("x/y/z.bin"), Access::Read).unwrap();
        });
    }

    #[test]
    fn refuses_a_symlinked_file_or_directory_on_the_way() {
        each_way(|save, root| {
            std::fs::create_dir_all(root.join("outside")).unwrap();
            std::fs::create_dir_all(root.join("t")).unwrap();
            std::fs::write(root.join("outside/victim"), b"v").unwrap();
            symlink("../outside/victim", root.join("t/link")).unwrap();
            symlink("outside", root.join("dirlink")).unwrap();
            for p in ["t/link", "dirlink/victim"] {
                for access in [Access::Read, Access::ReadWriteCreate] {
                    let e = save.open_file(&path(p), access).unwrap_err();
                    assert_eq!(e.to_string(), SYMLINK_REFUSED, "{p} {access:?}");
                }
            }
            save.open_file(&path("dirlink/new"), Access::ReadWriteCreate)
                .unwrap_err();
            assert!(!root.join("outside/new").exists());
        });
    }

    #[test]
    fn removal_stays_beneath_and_takes_emptied_directories() {
        each_way(|save, root| {
            std::fs::create_dir_all(root.join("outside")).unwrap();
            std::fs::write(root.join("outside/f"), b"v").unwrap();
            symlink("outside", root.join("t")).unwrap();
            let e = save.remove_file(&path("t/f")).unwrap_err();
            assert_eq!(e.to_string(), SYMLINK_REFUSED);
            assert!(root.join("outside/f").exists());
            save.open_file(&path("a/b/c"), Access::ReadWriteCreate)
                .unwrap();
            save.open_file(&path("a/keep"), Access::ReadWriteCreate)
                .unwrap();
            save.remove_file(&path("a/b/c")).unwrap();
            assert!(!root.join("a/b").exists() && root.join("a/keep").exists());
            save.remove_file(&path("a/b/c")).unwrap();
        });
    }

    #[test]
    fn a_move_takes_nothing_out_through_a_symlink_at_either_end() {
        each_way(|save, root| {
            let other_root = root.join("other");
            std::fs::create_dir_all(&other_root).unwrap();
            let other = SaveDir::open(&other_root, Symlinks::Refused).unwrap();
            std::fs::create_dir_all(root.join("outside")).unwrap();
            save.open_file(&path("t/a"), Access::ReadWriteCreate)
                .unwrap();
            symlink("../outside", other_root.join("t")).unwrap();
            let e = save.move_file(&path("t/a"), &other).unwrap_err();
            assert_eq!(e.to_string(), SYMLINK_REFUSED);
            assert!(root.join("t/a").exists() && !root.join("outside/a").exists());
            std::fs::remove_file(other_root.join("t")).unwrap();
            assert!(save.move_file(&path("t/a"), &other).unwrap());
            assert!(other_root.join("t/a").is_file() && !root.join("t/a").exists());
            assert!(!save.move_file(&path("t/a"), &other).unwrap());
        });
    }

    #[test]
    fn a_rename_stays_beneath_never_replaces_and_tidies_up() {
        each_way(|save, root| {
            std::fs::create_dir_all(root.join("outside")).unwrap();
            std::fs::create_dir_all(root.join("t/sub")).unwrap();
            std::fs::write(root.join("t/sub/a"), b"a").unwrap();
            std::fs::write(root.join("t/b"), b"b").unwrap();
            // Never over another file.
            let e = save
                .rename_file(&path("t/sub/a"), &path("t/b"))
                .unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
            assert_eq!(std::fs::read(root.join("t/b")).unwrap(), b"b");
            // Never out through a symlink.
            symlink("../outside", root.join("t/out")).unwrap();
            let e = save
                .rename_file(&path("t/sub/a"), &path("t/out/a"))
                .unwrap_err();
            assert_eq!(e.to_string(), SYMLINK_REFUSED);
            assert!(!root.join("outside/a").exists());
            // Into new directories; the one it left, empty, goes.
            assert!(save
                .rename_file(&path("t/sub/a"), &path("t/new/dir/a"))
                .unwrap());
            assert_eq!(std::fs::read(root.join("t/new/dir/a")).unwrap(), b"a");
            assert!(!root.join("t/sub").exists());
            // Nothing there: nothing done.
            assert!(!save.rename_file(&path("t/sub/a"), &path("t/c")).unwrap());
        });
    }

    #[test]
    fn follows_symlinks_that_stay_inside_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("save");
        std::fs::create_dir_all(root.join("elsewhere")).unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        symlink("elsewhere", root.join("t")).unwrap();
        symlink("../outside", root.join("out")).unwrap();
        let save = SaveDir::open(&root, Symlinks::Allowed).unwrap();
        save.open_file(&path("t/new/f"), Access::ReadWriteCreate)
            .unwrap();
        assert!(root.join("elsewhere/new/f").is_file());
        save.open_file(&path("t/new/f"), Access::Read).unwrap();
        for access in [Access::Read, Access::ReadWriteCreate] {
            let e = save.open_file(&path("out/f"), access).unwrap_err();
            assert_eq!(e.to_string(), SYMLINK_OUT, "{access:?}");
        }
        assert!(!dir.path().join("outside/f").exists());
        save.remove_file(&path("t/new/f")).unwrap();
        assert!(!root.join("elsewhere/new").exists());
    }
}

#[cfg(test)]
mod deep {
    use super::*;

    #[test]
    fn a_tree_1500_directories_deep_opens_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let parts: Vec<&str> = std::iter::repeat_n("d", 1500).chain(["f"]).collect();
        let path = TorrentPath::new(&parts).unwrap();
        let save = SaveDir::open(dir.path(), Symlinks::Refused).unwrap();
        save.open_file(&path, Access::ReadWriteCreate).unwrap();
        save.open_file(&path, Access::Read).unwrap();
        // Removal takes the file and all 1,500 emptied directories.
        save.remove_file(&path).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
