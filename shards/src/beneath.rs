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
//! who links parts of a tree elsewhere on purpose: paths then resolve as plain `openat`
//! from the save directory, following any symlink.

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

/// Whether symlinks inside a torrent's tree are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Symlinks {
    /// Refused: a read or write never leaves the save directory.
    #[default]
    Refused,
    /// Followed wherever they lead.
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
        let parts: Vec<CString> = path
            .components()
            .map(|c| CString::new(c).map_err(|_| invalid("a NUL byte in a path")))
            .collect::<io::Result<_>>()?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(invalid("an empty path"));
        };
        let flags = match access {
            Access::Read => libc::O_RDONLY,
            Access::ReadWriteCreate => libc::O_RDWR | libc::O_CREAT,
        } | libc::O_CLOEXEC
            | libc::O_NONBLOCK;
        if access == Access::ReadWriteCreate {
            let parent = self.walk(dirs, true)?;
            return open_one(parent.as_raw_fd(), name, flags, self.symlinks).map(File::from);
        }
        if self.symlinks == Symlinks::Refused && !force_fallback() {
            let joined = join(&parts);
            match openat2_beneath(self.fd.as_raw_fd(), &joined, flags) {
                Err(e) if openat2_missing(&e) => {}
                other => return other.map(File::from).map_err(explain),
            }
        }
        let parent = self.walk(dirs, false)?;
        open_one(parent.as_raw_fd(), name, flags, self.symlinks).map(File::from)
    }

    /// Removes the file at `path` beneath this directory, then each of its parent
    /// directories left empty, deepest first, up to (not including) this one. A symlink on
    /// the way is refused as in [`SaveDir::open_file`]; a symlink at the end is removed
    /// itself, never what it points at (unlinkat does not follow). Missing is fine.
    pub fn remove_file(&self, path: &TorrentPath) -> io::Result<()> {
        let parts: Vec<CString> = path
            .components()
            .map(|c| CString::new(c).map_err(|_| invalid("a NUL byte in a path")))
            .collect::<io::Result<_>>()?;
        let Some((name, dirs)) = parts.split_last() else {
            return Err(invalid("an empty path"));
        };
        let mut levels = vec![self.fd.try_clone()?];
        for dir in dirs {
            let at = levels.last().expect("the save directory").as_raw_fd();
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC;
            match open_one(at, dir, flags, self.symlinks) {
                Ok(fd) => levels.push(fd),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let parent = levels.last().expect("the save directory").as_raw_fd();
        // SAFETY: `parent` is an open directory and `name` a NUL-terminated string.
        if unsafe { libc::unlinkat(parent, name.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::NotFound {
                return Err(e);
            }
        }
        for (dir, at) in dirs.iter().zip(&levels).rev() {
            // SAFETY: as above; a directory that still holds something stays (ENOTEMPTY).
            if unsafe { libc::unlinkat(at.as_raw_fd(), dir.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
                break;
            }
        }
        Ok(())
    }

    /// The directory `dirs` names beneath this one, one component at a time (creating each
    /// missing one when `create`).
    fn walk(&self, dirs: &[CString], create: bool) -> io::Result<OwnedFd> {
        let mut at = self.fd.try_clone()?;
        for dir in dirs {
            if create {
                // SAFETY: `at` is an open directory and `dir` a NUL-terminated string.
                let made = unsafe { libc::mkdirat(at.as_raw_fd(), dir.as_ptr(), 0o777) };
                if made != 0 {
                    let e = io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
            }
            at = open_one(
                at.as_raw_fd(),
                dir,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                self.symlinks,
            )?;
        }
        Ok(at)
    }
}

/// One component opened from `dir`: with `O_NOFOLLOW` unless symlinks are allowed.
fn open_one(dir: RawFd, name: &CString, flags: i32, symlinks: Symlinks) -> io::Result<OwnedFd> {
    let nofollow = match symlinks {
        Symlinks::Refused => libc::O_NOFOLLOW,
        Symlinks::Allowed => 0,
    };
    // SAFETY: `dir` is an open directory and `name` a NUL-terminated string.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | nofollow, 0o666) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        // O_NOFOLLOW with O_DIRECTORY on a symlink says ENOTDIR: look to tell the two apart.
        if symlinks == Symlinks::Refused
            && e.raw_os_error() == Some(libc::ENOTDIR)
            && is_symlink(dir, name)
        {
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

/// `openat2(dir, path, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`.
fn openat2_beneath(dir: RawFd, path: &CString, flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: open_how is plain old data; zero is a valid value for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = 0;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
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

/// ELOOP here only ever means a symlink on the way: say so.
fn explain(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        io::Error::new(io::ErrorKind::PermissionDenied, SYMLINK_REFUSED)
    } else {
        e
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
    fn follows_symlinks_when_allowed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        symlink("elsewhere", dir.path().join("t")).unwrap();
        let save = SaveDir::open(dir.path(), Symlinks::Allowed).unwrap();
        save.open_file(&path("t/f"), Access::ReadWriteCreate)
            .unwrap();
        assert!(dir.path().join("elsewhere/f").is_file());
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
    }
}
