//! Storage that a save directory's contents cannot redirect: a symlink inside a torrent's
//! tree (to a file or a directory outside it) is neither written nor read through by
//! `download`, `seed` or the daemon, and a file longer than the torrent says keeps its extra
//! bytes. Each case runs on a disk file system (under /var/tmp, where O_DIRECT works) and
//! on tmpfs (/dev/shm, where storage falls back to buffered I/O).

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::swarm::{self, free_port, wait_listening, Running};
use common::{ccbt, run, write_tree};

const FILES: &[(&str, usize)] = &[("pack/a.bin", 100_000), ("pack/b.bin", 200_000)];
/// Bytes of the file a symlink points at: more than `pack/b.bin`, so a truncation to the
/// torrent's length would show.
const VICTIM: &[u8] = &[0x5a; 300_000];
const LIMIT: Duration = Duration::from_secs(60);

/// A torrent of [`FILES`] in `dir/t.torrent`, its data under `dir/data`.
fn make_torrent(dir: &Path) -> PathBuf {
    write_tree(&dir.join("data"), FILES);
    let torrent = dir.join("t.torrent");
    run(ccbt()
        .args(["create", "--no-date", "--piece-size", "16K", "-o"])
        .arg(&torrent)
        .arg(dir.join("data/pack")))
    .ok();
    torrent
}

/// `dir/outside/victim`, a file no torrent may touch.
fn victim(dir: &Path) -> PathBuf {
    let outside = dir.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let victim = outside.join("victim");
    std::fs::write(&victim, VICTIM).unwrap();
    victim
}

fn assert_untouched(victim: &Path) {
    let now = std::fs::read(victim).unwrap();
    assert!(
        now == VICTIM,
        "{} was changed: {} bytes now, {} before",
        victim.display(),
        now.len(),
        VICTIM.len()
    );
}

/// Waits for `who` to exit; its exit status and log.
fn exited(mut who: Running) -> (std::process::ExitStatus, String) {
    let until = Instant::now() + LIMIT;
    loop {
        if let Some(status) = who.exit_status() {
            return (status, who.log());
        }
        if Instant::now() > until {
            let log = who.log();
            who.stop(Duration::from_secs(5));
            panic!("{} still runs after {LIMIT:?}:\n{log}", who.name());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn seeder(dir: &Path, torrent: &Path) -> (Running, String) {
    let port = free_port();
    let seeder = swarm::ccbt_seed(torrent, &dir.join("data"), port, 1);
    wait_listening(port, &seeder);
    (seeder, format!("127.0.0.1:{port}"))
}

fn download(torrent: &Path, out: &Path, peer: &str) -> Running {
    swarm::ccbt_swarm("download", torrent, out, free_port(), 1, &["--peer", peer])
}

#[test]
fn download_writes_nothing_through_a_symlink_to_a_file_outside() {
    for root in common::storage_roots() {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let torrent = make_torrent(dir.path());
        let victim = victim(dir.path());
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("pack")).unwrap();
        symlink("../../outside/victim", out.join("pack/b.bin")).unwrap();
        let (_seeder, peer) = seeder(dir.path(), &torrent);

        let (status, log) = exited(download(&torrent, &out, &peer));
        assert_untouched(&victim);
        assert!(
            !status.success(),
            "download succeeded through a symlink:\n{log}"
        );
        assert!(log.contains("symlink"), "no word of the symlink:\n{log}");
        assert!(
            std::fs::symlink_metadata(out.join("pack/b.bin"))
                .unwrap()
                .file_type()
                .is_symlink(),
            "the symlink itself stays as the user made it"
        );
    }
}

#[test]
fn download_writes_nothing_through_a_symlinked_directory_inside_the_tree() {
    for root in common::storage_roots() {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let torrent = make_torrent(dir.path());
        let victim = victim(dir.path());
        let out = dir.path().join("out");
        std::fs::create_dir_all(&out).unwrap();
        symlink("../outside", out.join("pack")).unwrap();
        let (_seeder, peer) = seeder(dir.path(), &torrent);

        let (status, log) = exited(download(&torrent, &out, &peer));
        assert_untouched(&victim);
        assert!(
            !status.success(),
            "download succeeded through a symlink:\n{log}"
        );
        let outside: Vec<_> = std::fs::read_dir(dir.path().join("outside"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            outside,
            vec!["victim"],
            "files appeared outside the save dir"
        );
    }
}

#[test]
fn a_symlinked_save_directory_is_followed_as_users_expect() {
    for root in common::storage_roots() {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let torrent = make_torrent(dir.path());
        let real = dir.path().join("real-out");
        std::fs::create_dir_all(&real).unwrap();
        let out = dir.path().join("out");
        symlink(&real, &out).unwrap();
        let (_seeder, peer) = seeder(dir.path(), &torrent);

        download(&torrent, &out, &peer).wait_success(LIMIT);
        swarm::assert_same_tree(&dir.path().join("data/pack"), &real.join("pack"));
    }
}

#[test]
fn seed_serves_nothing_read_through_a_symlink() {
    for root in common::storage_roots() {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let torrent = make_torrent(dir.path());
        // The symlink points at the right bytes: only where they are is wrong.
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::rename(dir.path().join("data/pack/b.bin"), outside.join("b.bin")).unwrap();
        symlink("../../outside/b.bin", dir.path().join("data/pack/b.bin")).unwrap();

        let seed = swarm::ccbt_seed(&torrent, &dir.path().join("data"), free_port(), 1);
        let (status, log) = exited(seed);
        assert!(
            !status.success(),
            "seed served a file through a symlink:\n{log}"
        );
        assert!(log.contains("missing pieces"), "{log}");
    }
}

#[test]
fn daemon_writes_nothing_through_a_symlink_and_says_why() {
    for root in common::storage_roots() {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let torrent = make_torrent(dir.path());
        let victim = victim(dir.path());
        let save = dir.path().join("save");
        std::fs::create_dir_all(save.join("pack")).unwrap();
        symlink(&victim, save.join("pack/b.bin")).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut daemon = Daemon::start(&home, &["--peer-port", &free_port().to_string()]);

        let hash = daemon.add(&torrent, &["--save-dir", save.to_str().unwrap()]);
        let t = daemon.wait_state(&hash, "failed", LIMIT);
        assert!(
            t.to_string().contains("symlink"),
            "the fault does not name the symlink: {t}"
        );
        assert_untouched(&victim);
        daemon.stop(Duration::from_secs(20));
    }
}

#[test]
fn a_file_longer_than_the_torrent_says_keeps_its_extra_bytes() {
    for root in common::storage_roots() {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let torrent = make_torrent(dir.path());
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("pack")).unwrap();
        let mut longer = std::fs::read(dir.path().join("data/pack/a.bin")).unwrap();
        longer.extend_from_slice(b"the user's own bytes past the torrent's end");
        std::fs::write(out.join("pack/a.bin"), &longer).unwrap();
        let (_seeder, peer) = seeder(dir.path(), &torrent);

        let got = {
            let mut d = download(&torrent, &out, &peer);
            d.wait_success(LIMIT);
            d.log()
        };
        assert_eq!(
            std::fs::read(out.join("pack/a.bin")).unwrap(),
            longer,
            "a.bin was cut:\n{got}"
        );
        if root == Path::new("/dev/shm") {
            assert!(
                got.contains("direct_io=false"),
                "tmpfs took the direct path:\n{got}"
            );
        }
        assert_eq!(
            std::fs::read(out.join("pack/b.bin")).unwrap(),
            std::fs::read(dir.path().join("data/pack/b.bin")).unwrap()
        );
    }
}

#[test]
fn removing_with_its_data_deletes_nothing_through_a_symlinked_directory() {
    for root in common::storage_roots() {
        let dir = tempfile::tempdir_in(&root).unwrap();
        let torrent = make_torrent(dir.path());
        // The torrent's whole tree, valid, but outside: the save dir links to it.
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        for (name, _) in FILES {
            let name = name.strip_prefix("pack/").unwrap();
            std::fs::copy(dir.path().join("data/pack").join(name), outside.join(name)).unwrap();
        }
        let save = dir.path().join("save");
        std::fs::create_dir_all(&save).unwrap();
        symlink("../outside", save.join("pack")).unwrap();
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let mut daemon = Daemon::start(&home, &["--peer-port", &free_port().to_string()]);

        let hash = daemon.add(&torrent, &["--save-dir", save.to_str().unwrap()]);
        daemon.wait_state(&hash, "failed", LIMIT);
        let removed = daemon.remote(&["remove", &hash, "--delete-data"]);
        assert!(
            format!("{}{}", removed.stdout, removed.stderr).contains("symlink"),
            "the answer does not say why nothing was deleted: {} {}",
            removed.stdout,
            removed.stderr
        );
        let left: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "files outside were deleted: {left:?}");
        daemon.stop(Duration::from_secs(20));
    }
}

#[test]
fn an_operator_may_allow_symlinks_that_stay_inside_the_save_directory() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let torrent = make_torrent(dir.path());
    let victim = victim(dir.path());
    // `pack` is a link to the real tree elsewhere in the save dir; `pack/b.bin` inside it
    // links on to the real file, also inside. A second torrent's file links outside.
    let save = dir.path().join("save");
    std::fs::create_dir_all(save.join("real")).unwrap();
    std::fs::copy(dir.path().join("data/pack/a.bin"), save.join("real/a.bin")).unwrap();
    std::fs::copy(dir.path().join("data/pack/b.bin"), save.join("b-elsewhere")).unwrap();
    symlink("../b-elsewhere", save.join("real/b.bin")).unwrap();
    symlink("real", save.join("pack")).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let config = home.join("ccbt.toml");
    std::fs::write(&config, "[storage]\nallow_symlinks_inside = true\n").unwrap();
    let mut daemon = Daemon::start(
        &home,
        &[
            "--config",
            config.to_str().unwrap(),
            "--peer-port",
            &free_port().to_string(),
        ],
    );
    let hash = daemon.add(&torrent, &["--save-dir", save.to_str().unwrap()]);
    let t = daemon.wait_state(&hash, "seeding", LIMIT);
    assert_eq!(t["have_pieces"], t["pieces"], "{t}");
    daemon.remote(&["remove", &hash]).ok();

    // Allowed inside is not allowed out.
    let other = dir.path().join("other");
    std::fs::create_dir_all(other.join("pack")).unwrap();
    symlink(&victim, other.join("pack/b.bin")).unwrap();
    let hash = daemon.add(&torrent, &["--save-dir", other.to_str().unwrap()]);
    let t = daemon.wait_state(&hash, "failed", LIMIT);
    assert!(t.to_string().contains("leads out"), "{t}");
    assert_untouched(&victim);
    daemon.stop(Duration::from_secs(20));
}

/// Another process truncating a file while the daemon checks it: the check reads with
/// pread, so the pieces it could not read are missing and the daemon goes on. (Hashed
/// through a mapping, a read past the new end raised SIGBUS and killed the daemon.)
#[test]
fn the_daemon_survives_a_file_truncated_under_its_check() {
    const SIZE: u64 = 48 << 20;
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("big")).unwrap();
    let file = data.join("big/f.bin");
    let block: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7) as u8).collect();
    std::fs::write(&file, block.repeat((SIZE >> 20) as usize)).unwrap();
    let torrent = dir.path().join("big.torrent");
    run(ccbt()
        .args(["create", "--no-date", "--piece-size", "256K", "-o"])
        .arg(&torrent)
        .arg(data.join("big")))
    .ok();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut daemon = Daemon::start(&home, &["--peer-port", &free_port().to_string()]);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cutter = {
        let (stop, file) = (stop.clone(), file.clone());
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
            let until = Instant::now() + LIMIT;
            let mut cuts = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
                f.set_len(SIZE / 3).unwrap();
                std::thread::sleep(Duration::from_millis(1));
                f.set_len(SIZE).unwrap();
                std::thread::sleep(Duration::from_millis(1));
                cuts += 1;
            }
            cuts
        })
    };
    let hash = daemon.add(&torrent, &["--save-dir", data.to_str().unwrap()]);
    let until = Instant::now() + LIMIT;
    let t = loop {
        assert!(
            daemon.running.is_running(),
            "the daemon died during the check:\n{}",
            daemon.running.log()
        );
        let t = daemon.torrent(&hash);
        if t["state"] != "checking" && t["checked_pieces"] == t["pieces"] {
            break t;
        }
        assert!(Instant::now() < until, "the check did not end: {t}");
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let cuts = cutter.join().unwrap();
    assert!(cuts > 0, "the file was never cut");
    assert!(daemon.running.is_running(), "{}", daemon.running.log());
    // What the check found is all the daemon claims: never more than there is.
    assert!(t["have_pieces"].as_u64() <= t["pieces"].as_u64(), "{t}");
    daemon.remote(&["list"]).ok();
    daemon.stop(Duration::from_secs(20));
}

#[test]
fn moving_the_data_puts_nothing_outside_through_a_symlink_in_the_target() {
    let dir = tempfile::tempdir_in("/var/tmp").unwrap();
    let torrent = make_torrent(dir.path());
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    symlink("../outside", target.join("pack")).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut daemon = Daemon::start(&home, &["--peer-port", &free_port().to_string()]);
    let data = dir.path().join("data");
    let hash = daemon.add(&torrent, &["--save-dir", data.to_str().unwrap()]);
    daemon.wait_state(&hash, "seeding", LIMIT);

    let moved = daemon.remote(&["move", &hash, target.to_str().unwrap()]);
    assert!(
        format!("{}{}", moved.stdout, moved.stderr).contains("symlink"),
        "the answer does not name the symlink: {} {}",
        moved.stdout,
        moved.stderr
    );
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "files went outside"
    );
    for (name, _) in FILES {
        assert!(data.join(name).is_file(), "{name} left the old save dir");
    }
    daemon.stop(Duration::from_secs(20));
}
