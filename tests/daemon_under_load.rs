//! Runtime changes under load: the daemon serves one torrent to load-generator leechers
//! (which check every piece's SHA-1) while 1,000 other torrents are added, half of them
//! removed, and some paused and resumed through the control socket. Every byte served must
//! be right (no piece fails its hash) and the served torrent's upload must never stall for
//! a whole second while the changes happen.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ccbt_loadgen::{dataset, leecher, report::Progress, torrent};
use ccbt_shards::pool::ShardConfig;
use common::daemon::Daemon;
use common::swarm::free_port;
use serde_json::{json, Value};

const SMALL: usize = 1000;
/// How long the leechers run: the changes must fit well inside.
const LEECH: Duration = Duration::from_secs(40);
/// Before the changes start, so that the upload is under way.
const WARM_UP: Duration = Duration::from_secs(2);
/// The served torrent's `uploaded` is read this often.
const SAMPLE: Duration = Duration::from_millis(250);

/// One control-socket connection, a request and its answer at a time.
struct Control {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Control {
    fn connect(socket: &Path) -> Control {
        let writer = UnixStream::connect(socket).unwrap();
        writer
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let reader = BufReader::new(writer.try_clone().unwrap());
        Control { writer, reader }
    }

    #[track_caller]
    fn call(&mut self, request: Value) -> Value {
        self.writer
            .write_all(format!("{request}\n").as_bytes())
            .unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let answer: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(answer["ok"], true, "{request} -> {answer}");
        answer
    }

    /// Sends every request before reading the answers (a writer thread, so that neither
    /// side's buffer can stall the other); the answers, in order.
    #[track_caller]
    fn pipelined(&mut self, requests: Vec<Value>) -> Vec<Value> {
        let count = requests.len();
        let mut writer = self.writer.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let mut out = std::io::BufWriter::new(&mut writer);
            for r in requests {
                out.write_all(format!("{r}\n").as_bytes()).unwrap();
            }
            out.flush().unwrap();
        });
        let answers: Vec<Value> = (0..count)
            .map(|_| {
                let mut line = String::new();
                self.reader.read_line(&mut line).unwrap();
                let answer: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(answer["ok"], true, "{answer}");
                answer
            })
            .collect();
        sender.join().unwrap();
        answers
    }

    /// `uploaded` and `state` of torrent `hash`.
    fn served(&mut self, hash: &str) -> (u64, String) {
        let list = self.call(json!({"op": "list"}));
        let t = list["torrents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["hash"] == hash)
            .cloned()
            .unwrap_or_else(|| panic!("the served torrent is gone"));
        (
            t["uploaded"].as_u64().unwrap(),
            t["state"].as_str().unwrap().into(),
        )
    }
}

fn write_set(out: &Path, torrents: u32, file_bytes: u64, piece_length: u32, seed: u64) {
    dataset::write(
        &dataset::Spec {
            torrents,
            files: 1,
            file_bytes,
            piece_length,
            seed,
        },
        out,
    )
    .unwrap();
}

fn torrents_in(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
}

#[test]
fn adds_removes_and_pauses_do_not_stall_or_corrupt_a_served_torrent() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    // The served torrent: 32 MiB in 256 KiB pieces, so the leechers keep fetching.
    let served_set = dir.path().join("served");
    write_set(&served_set, 1, 32 << 20, 256 << 10, 11);
    let small_set = dir.path().join("small");
    write_set(&small_set, SMALL as u32, 8 << 10, 16 << 10, 12);
    let served_torrent = served_set.join("torrents/t000000.torrent");

    let port = free_port();
    let mut daemon = Daemon::start(
        &home,
        &[
            "--peer-port",
            &port.to_string(),
            "--no-pin",
            "--shards",
            "2",
        ],
    );
    let served_data = served_set.join("data");
    let hash = daemon.add(
        &served_torrent,
        &["--save-dir", served_data.to_str().unwrap()],
    );
    daemon.wait_state(&hash, "seeding", Duration::from_secs(30));
    let socket = daemon.state_dir.join("control.sock");

    let leech = {
        let torrents = torrent::load_all(std::slice::from_ref(&served_torrent)).unwrap();
        std::thread::spawn(move || {
            leecher::run(leecher::Options {
                torrents,
                targets: vec![SocketAddr::from(([127, 0, 0, 1], port))],
                peers: 4,
                duration: LEECH,
                shards: ShardConfig {
                    pin: false,
                    ..ShardConfig::with_count(1)
                },
                pipeline: 32,
                connect_concurrency: 4,
                progress: Progress::Off,
            })
        })
    };

    // The sampler: the served torrent's upload counter every 250 ms, on its own connection.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (socket, hash, done) = (socket.clone(), hash.clone(), done.clone());
        std::thread::spawn(move || {
            let mut control = Control::connect(&socket);
            let started = Instant::now();
            let mut samples = Vec::new();
            while !done.load(Ordering::Acquire) {
                let (uploaded, state) = control.served(&hash);
                assert_eq!(state, "seeding", "the served torrent left seeding");
                samples.push((started.elapsed(), uploaded));
                std::thread::sleep(SAMPLE);
            }
            (started, samples)
        })
    };

    std::thread::sleep(WARM_UP);
    let changes_started = Instant::now();
    let mut control = Control::connect(&socket);
    let small_data = small_set.join("data");
    // The adds all in flight at once on one connection; the rest one at a time.
    let adds = torrents_in(&small_set.join("torrents"))
        .into_iter()
        .map(|t| json!({"op": "add", "torrent": t, "save_dir": small_data}))
        .collect();
    let hashes: Vec<String> = control
        .pipelined(adds)
        .iter()
        .map(|a| a["hash"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(hashes.len(), SMALL);
    let (removed, kept) = hashes.split_at(SMALL / 2);
    for h in removed {
        control.call(json!({"op": "remove", "hash": h, "delete_data": false}));
    }
    for h in kept.iter().step_by(5) {
        control.call(json!({"op": "pause", "hash": h}));
    }
    for h in kept.iter().step_by(5) {
        control.call(json!({"op": "resume", "hash": h}));
    }
    let changes_took = changes_started.elapsed();
    eprintln!("changes took {changes_took:?}");
    // Watch one more second after the last change.
    std::thread::sleep(Duration::from_secs(1));
    done.store(true, Ordering::Release);
    let (sampled_from, samples) = sampler.join().unwrap();
    let summary = leech.join().unwrap().unwrap();

    // Every piece the leechers took passed its hash.
    assert_eq!(
        summary.errors, 0,
        "leecher errors: {:?}",
        summary.error_messages
    );
    assert!(summary.bytes > 0, "nothing was served: {summary:?}");
    let window_end = changes_started + changes_took + Duration::from_secs(1);
    assert!(
        window_end < sampled_from + WARM_UP + LEECH,
        "the changes ({changes_took:?}) outlasted the leechers' {LEECH:?}: the test proves nothing"
    );

    // Throughput in every 1 s window of the changes: the counter moved.
    let from = changes_started.duration_since(sampled_from);
    let to = window_end.duration_since(sampled_from);
    let during: Vec<&(Duration, u64)> = samples
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .collect();
    assert!(during.len() >= 4, "too few samples: {samples:?}");
    let mut slowest = u64::MAX;
    for (i, &&(t, up)) in during.iter().enumerate() {
        let Some(&&(later, up_later)) = during[i..]
            .iter()
            .find(|(l, _)| *l >= t + Duration::from_secs(1))
        else {
            break;
        };
        assert!(
            up_later > up,
            "no bytes served from {t:?} to {later:?} while the changes ran: {samples:?}"
        );
        slowest = slowest.min(up_later - up);
    }
    eprintln!(
        "served {} MB verified; slowest 1 s window during the changes: {} KB",
        summary.bytes / 1_000_000,
        slowest / 1000
    );

    // The changes took: the served torrent, and half of the small ones, remain.
    let list = control.call(json!({"op": "list"}));
    let torrents = list["torrents"].as_array().unwrap();
    assert_eq!(torrents.len(), 1 + SMALL / 2);
    let resumed: Vec<&Value> = torrents
        .iter()
        .filter(|t| kept.iter().step_by(5).any(|h| t["hash"] == h.as_str()))
        .collect();
    assert!(
        resumed.iter().all(|t| t["state"] != "paused"),
        "{resumed:?}"
    );
    drop(control);
    let status = daemon.stop(Duration::from_secs(20));
    assert!(status.success(), "{status:?}\n{}", daemon.running.log());
}
