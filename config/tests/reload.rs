//! The reloader against a real file, edited the way editors do it.

use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ccbt_config::{Diagnostic, Loaded, Reloader, Sources};

/// Writes beside the file and renames over it, as editors do.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

type Report = Result<Loaded, Vec<Diagnostic>>;

fn start(dir: &Path) -> (Reloader, mpsc::Receiver<Report>) {
    let (tx, rx) = mpsc::channel();
    let sources = Sources {
        cwd: dir.to_path_buf(),
        ..Sources::default()
    };
    let reloader = Reloader::spawn(sources, move |report| {
        let _ = tx.send(report);
    });
    (reloader, rx)
}

#[test]
fn sees_a_rename_within_a_second_and_reports_bad_edits() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ccbt.toml");
    std::fs::write(&file, "[limits]\ncache_mib = 64\n").unwrap();
    let (reloader, reports) = start(dir.path());
    // Let the reloader take its first look.
    std::thread::sleep(Duration::from_millis(300));

    let edited = Instant::now();
    replace(&file, "[limits]\ncache_mib = 128\n");
    let report = reports
        .recv_timeout(Duration::from_secs(1))
        .expect("a reload within 1 s");
    assert!(edited.elapsed() < Duration::from_secs(1));
    assert_eq!(report.unwrap().config.limits.cache_mib, 128);

    replace(&file, "[limits]\ncache_mib = \"big\"\n");
    let report = reports
        .recv_timeout(Duration::from_secs(1))
        .expect("a reload within 1 s");
    let diags = report.unwrap_err();
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].line(), Some(2));

    // Nothing changes: nothing reported.
    assert!(reports.recv_timeout(Duration::from_millis(700)).is_err());

    // SIGHUP reloads regardless.
    reloader.reload_now();
    let report = reports
        .recv_timeout(Duration::from_secs(1))
        .expect("reload_now reports");
    assert!(report.is_err());
    drop(reloader);
    assert!(
        reports.recv().is_err(),
        "the thread is gone and has dropped the callback"
    );
}

#[test]
fn notices_a_file_that_appears() {
    let dir = tempfile::tempdir().unwrap();
    let (_reloader, reports) = start(dir.path());
    std::thread::sleep(Duration::from_millis(300));
    replace(
        &dir.path().join("ccbt.toml"),
        "[daemon]\npeer_port = 7777\n",
    );
    let loaded = reports
        .recv_timeout(Duration::from_secs(1))
        .unwrap()
        .unwrap();
    assert_eq!(loaded.config.daemon.peer_port, 7777);
    assert_eq!(loaded.file, Some(dir.path().join("ccbt.toml")));
}
