//! Helpers shared by the integration tests: run a program with a time limit, make test data.
#![allow(dead_code)] // each test binary uses a different subset

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub mod daemon;
pub mod http;
pub mod https;
pub mod swarm;
pub mod venv;
pub mod wire_peer;

pub use ccbt_loadgen::bytes;

/// The ccbt-uring binary cargo built for these tests.
pub fn ccbt() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ccbt-uring"));
    // Nothing a test starts multicasts onto the machine's network (BEP 14); tests/lsd.rs
    // turns it on inside network namespaces of its own.
    cmd.env("CCBT_LSD_ENABLED", "false");
    cmd
}

/// A finished program: exit code and output.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Asserts the program ended with `code` and did not panic.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        assert!(
            !self.stderr.contains("panicked"),
            "panicked:\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        self.expect_code(0)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

/// Runs `cmd` to completion, killing it (and failing the test) after `limit`.
#[track_caller]
pub fn run_for(cmd: &mut Command, limit: Duration) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Ran {
        code: status.code(),
        stdout: std::fs::read_to_string(&out_path).unwrap(),
        stderr: std::fs::read_to_string(&err_path).unwrap(),
    }
}

/// Runs with a one-minute limit.
#[track_caller]
pub fn run(cmd: &mut Command) -> Ran {
    run_for(cmd, Duration::from_secs(60))
}

/// Fails the test with an install hint if `program` is not on PATH. Interop tests need the
/// real programs; `.ci/run` installs them.
#[track_caller]
pub fn require(program: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(program))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("{program} is not installed: `apt-get install {package}` (see .ci/run)")
    })
}

/// Writes `files` under `content` and makes `torrent` of them with `ccbt-uring create`
/// (no tracker; the daemon tests add it directly), within a minute.
#[track_caller]
pub fn own_torrent(content: &Path, files: &[(&str, usize)], torrent: &Path) -> PathBuf {
    write_tree(content, files);
    run_for(
        ccbt().arg("create").arg(content).arg("-o").arg(torrent),
        Duration::from_secs(60),
    )
    .ok();
    torrent.to_path_buf()
}

/// The roots storage tests run under: a disk file system (/var/tmp, where O_DIRECT works)
/// and, where the machine has one, tmpfs (/dev/shm, where storage falls back). Without a
/// tmpfs the test fails under `CCBT_REQUIRE_INTEROP`, else runs the disk half alone.
pub fn storage_roots() -> Vec<PathBuf> {
    let mut roots = vec![PathBuf::from("/var/tmp")];
    let shm = Path::new("/dev/shm");
    match nix::sys::statfs::statfs(shm) {
        Ok(fs) if fs.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC => {
            roots.push(shm.to_path_buf())
        }
        _ if std::env::var_os("CCBT_REQUIRE_INTEROP").is_some() => {
            panic!("/dev/shm is not a tmpfs here: the tmpfs half of this test cannot run")
        }
        _ => eprintln!("/dev/shm is not a tmpfs: only the disk half runs"),
    }
    roots
}

/// Writes `files` (relative path, length) under `root` with deterministic contents.
pub fn write_tree(root: &Path, files: &[(&str, usize)]) {
    for (i, (path, len)) in files.iter().enumerate() {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes(i as u64 + 1, *len)).unwrap();
    }
}

/// The info hash `transmission-show` prints for a torrent.
#[track_caller]
pub fn transmission_info_hash(torrent: &Path) -> String {
    require("transmission-show", "transmission-cli");
    let ran = run(Command::new("transmission-show").arg(torrent)).ok();
    ran.stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("Hash:"))
        .map(|h| h.trim().to_lowercase())
        .unwrap_or_else(|| panic!("no Hash: line in transmission-show output:\n{}", ran.stdout))
}

/// The info hash ccbt-uring prints for a torrent or magnet.
#[track_caller]
pub fn our_info_hash(source: &Path) -> String {
    let ran = run(ccbt().arg("info").arg(source).arg("--json")).ok();
    ran.json()["info_hash"].as_str().unwrap().to_string()
}
