//! The seeders compared, each set up as a seedbox would be for hundreds of leechers (every
//! interested peer unchoked where the client lets us, no peer cap below the load), all
//! bound to 127.0.0.1 with DHT, LSD, PeX and uTP off. Transmission is left out: it
//! accepts one connection per IP, and every load-generator leecher comes from 127.0.0.1.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};

use super::procfs;
use crate::harness::bins;
use crate::harness::process::{wait_listening, Process, POLL};
use ccbt_testkit::clients::{self, Client, DEBIAN_PYTHON};

/// Time a seeder gets to check its data and start listening.
const START_LIMIT: Duration = Duration::from_secs(180);

/// What lt_client.py prints each second once libtorrent has checked the data.
const LT_SEEDING: &str = "state=seeding";

/// What rqbit logs (at `info`) once it has checked the data.
const RQBIT_CHECKED: &str = "Initial check results";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seeder {
    /// `ccbt-uring seed`, one shard per core.
    CcbtAllShards,
    /// `ccbt-uring seed --shards 1`, for the scaling figure (S5).
    CcbtOneShard,
    /// `ccbt-uring seed --cache-mib 1024`: a seedbox that gives the read cache memory.
    CcbtLargeCache,
    /// libtorrent 2.0 through `tests/scripts/lt_client.py seed` with `LT_SEEDBOX=1`.
    Libtorrent,
    /// aria2c 1.36 seeding the data without a recheck.
    Aria2,
    /// `rqbit download` over the complete data, without `--exit-on-finish`, when
    /// `cargo install rqbit` has put it here.
    Rqbit,
}

impl Seeder {
    pub const ALL: [Seeder; 6] = [
        Seeder::CcbtAllShards,
        Seeder::CcbtOneShard,
        Seeder::CcbtLargeCache,
        Seeder::Libtorrent,
        Seeder::Aria2,
        Seeder::Rqbit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Seeder::CcbtAllShards => "ccbt-uring, all shards",
            Seeder::CcbtOneShard => "ccbt-uring --shards 1",
            Seeder::CcbtLargeCache => "ccbt-uring, --cache-mib 1024",
            Seeder::Libtorrent => "python3-libtorrent 2.0",
            Seeder::Aria2 => "aria2c 1.36",
            Seeder::Rqbit => "rqbit",
        }
    }

    pub fn is_ours(self) -> bool {
        matches!(
            self,
            Seeder::CcbtAllShards | Seeder::CcbtOneShard | Seeder::CcbtLargeCache
        )
    }

    /// How it is configured, for the Markdown.
    pub fn configuration(self) -> &'static str {
        match self {
            Seeder::CcbtAllShards | Seeder::CcbtOneShard => {
                "`ccbt-uring seed T --data DIR --listen 127.0.0.1 --port P --upload-slots 0 --max-peers 1000` \
                 (every interested peer unchoked, up to 1000 peers per torrent; \
                 `--max-connections` 2000 per shard, the default), with `--shards 1` or one \
                 shard per core; the read cache is the default 64 MiB per shard."
            }
            Seeder::CcbtLargeCache => {
                "the same with `--cache-mib 1024`: a 1 GiB read cache per shard, as a \
                 seedbox with memory to spare would run it. With the default `serve_reads = \
                 \"auto\"` a read takes what the kernel's page cache holds (the whole \
                 data set here, as for the others) and only the rest with O_DIRECT \
                 into the cache, so the larger cache matters only for data not cached."
            }
            Seeder::Libtorrent => {
                "`LT_SEEDBOX=1 lt_client.py seed`: libtorrent's own `high_performance_seed()` \
                 preset (`connections_limit` 8000, `unchoke_slots_limit` -1 = every \
                 interested peer unchoked, `listen_queue_size` 3000, 3 MiB send buffers) plus \
                 `allow_multiple_connections_per_ip`; it checks the data before seeding."
            }
            Seeder::Aria2 => {
                "`aria2c --bt-seed-unverified --check-integrity=false --seed-ratio=0.0 \
                 --bt-max-peers=0` (no peer cap) and the interop tests' loopback flags. aria2 \
                 has no setting for upload slots: its seeding choker unchokes 3 (every third \
                 round 4) peers plus 1 optimistic and refuses requests from the others; it also takes in new \
                 peers at a few per second."
            }
            Seeder::Rqbit => {
                "`rqbit --peer-limit 1000 download --overwrite -o DIR T` over the complete data \
                 (it checks the data, then seeds; it has no choker, so every peer is served), \
                 with DHT, LSD, UPnP and IPv6 off."
            }
        }
    }

    /// Why it cannot run here and how to install it, if so.
    pub fn missing(self) -> Option<String> {
        match self {
            Seeder::CcbtAllShards | Seeder::CcbtOneShard | Seeder::CcbtLargeCache => None,
            Seeder::Libtorrent => Client::Libtorrent.missing().map(str::to_string),
            Seeder::Aria2 => Client::Aria2.missing().map(str::to_string),
            Seeder::Rqbit => Client::Rqbit.missing().map(str::to_string),
        }
    }

    /// The program the seeder process runs, as exec sees it.
    fn program(self, ccbt: &Path) -> PathBuf {
        match self {
            Seeder::CcbtAllShards | Seeder::CcbtOneShard | Seeder::CcbtLargeCache => {
                ccbt.to_path_buf()
            }
            Seeder::Libtorrent => PathBuf::from(DEBIAN_PYTHON),
            Seeder::Aria2 => PathBuf::from("aria2c"),
            Seeder::Rqbit => clients::rqbit_program(),
        }
    }

    fn command(self, ccbt: &Path, torrent: &Path, save_dir: &Path, port: u16) -> Command {
        let mut cmd = Command::new(self.program(ccbt));
        match self {
            Seeder::CcbtAllShards | Seeder::CcbtOneShard | Seeder::CcbtLargeCache => {
                cmd.arg("seed")
                    .arg(torrent)
                    .arg("--data")
                    .arg(save_dir)
                    .args(["--listen", "127.0.0.1", "--port", &port.to_string()])
                    .args(["--upload-slots", "0", "--max-peers", "1000"])
                    .env("CCBT_LOG", "warn");
                if self == Seeder::CcbtOneShard {
                    cmd.args(["--shards", "1"]);
                }
                if self == Seeder::CcbtLargeCache {
                    cmd.args(["--cache-mib", "1024"]);
                }
            }
            Seeder::Libtorrent => {
                cmd.arg("-u")
                    .arg(bins::client_scripts().join("lt_client.py"))
                    .arg("seed")
                    .arg(torrent)
                    .arg(save_dir)
                    .arg(port.to_string())
                    .env("LT_SEEDBOX", "1");
            }
            Seeder::Aria2 => {
                cmd.args([
                    "--no-conf",
                    "--enable-color=false",
                    "--console-log-level=warn",
                    "--summary-interval=0",
                    "--interface=127.0.0.1",
                    "--disable-ipv6=true",
                    "--bt-enable-lpd=false",
                    "--enable-peer-exchange=false",
                    "--enable-dht=false",
                    "--enable-dht6=false",
                    "--check-integrity=false",
                    "--bt-seed-unverified=true",
                    "--seed-ratio=0.0",
                    "--bt-max-peers=0",
                ])
                .arg(format!("--listen-port={port}"))
                .arg(format!("--dir={}", save_dir.display()))
                .arg(torrent);
            }
            Seeder::Rqbit => {
                cmd.args(clients::rqbit_loopback(port))
                    .args(["--peer-limit", "1000", "download", "--disable-http-api"])
                    .args(["--overwrite", "-o"])
                    .arg(save_dir)
                    .arg(torrent);
            }
        }
        cmd
    }

    /// The line it prints once it has checked the data and serves, for those that check.
    fn checked_line(self) -> Option<&'static str> {
        match self {
            Seeder::Libtorrent => Some(LT_SEEDING),
            Seeder::Rqbit => Some(RQBIT_CHECKED),
            _ => None,
        }
    }

    /// Starts the seeder on 127.0.0.1:`port` and returns once it serves: listening, and
    /// for libtorrent done checking the data.
    pub fn start(self, ccbt: &Path, torrent: &Path, save_dir: &Path, port: u16) -> Result<Running> {
        let program = self.program(ccbt);
        let before = procfs::children_running(&program)?;
        let mut process = Process::start(
            &format!("{} :{port}", self.name()),
            self.command(ccbt, torrent, save_dir, port),
        )?;
        let pid = procfs::new_child(&program, &before)?;
        if let Some(checked) = self.checked_line() {
            let deadline = Instant::now() + START_LIMIT;
            while !process.done(Some(checked))? {
                if Instant::now() > deadline {
                    bail!(
                        "{} did not finish checking\n{}",
                        self.name(),
                        process.log_tail()
                    );
                }
                std::thread::sleep(POLL);
            }
            if process.exit_status()?.is_some() {
                bail!("{} exited\n{}", self.name(), process.log_tail());
            }
        }
        wait_listening(port, &mut process, START_LIMIT)?;
        Ok(Running { process, pid })
    }
}

/// A seeder that serves; stopped when dropped.
pub struct Running {
    pub process: Process,
    /// Its PID, which is also its process group.
    pub pid: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ccbt_is_ours_and_always_present() {
        let ours: Vec<_> = Seeder::ALL.into_iter().filter(|s| s.is_ours()).collect();
        assert_eq!(
            ours,
            [
                Seeder::CcbtAllShards,
                Seeder::CcbtOneShard,
                Seeder::CcbtLargeCache
            ]
        );
        assert!(ours.iter().all(|s| s.missing().is_none()));
        assert!(bins::client_scripts().join("lt_client.py").is_file());
    }

    #[test]
    fn every_seeder_unchokes_all_it_can() {
        let cmd = Seeder::CcbtOneShard.command(
            Path::new("/x/ccbt-uring"),
            Path::new("t"),
            Path::new("d"),
            7000,
        );
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert!(args.windows(2).any(|w| w == ["--upload-slots", "0"]));
        assert!(args.windows(2).any(|w| w == ["--shards", "1"]));
        let lt = Seeder::Libtorrent.command(Path::new("c"), Path::new("t"), Path::new("d"), 1);
        assert!(lt
            .get_envs()
            .any(|(k, v)| k == "LT_SEEDBOX" && v == Some("1".as_ref())));
        let aria = Seeder::Aria2.command(Path::new("c"), Path::new("t"), Path::new("d"), 1);
        assert!(aria.get_args().any(|a| a == "--bt-max-peers=0"));
    }
}
