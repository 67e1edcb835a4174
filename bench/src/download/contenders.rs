//! The downloaders, each as the interop tests run it (tests/common/swarm.rs and the scripts
//! in tests/scripts, called by path): everything bound to 127.0.0.1, no DHT, LSD, PeX,
//! uTP or port mapping, so the tracker is the only way peers meet.

use std::path::Path;
use std::process::Command;

use crate::harness::bins;
use ccbt_testkit::clients::{self, Client, DEBIAN_PYTHON};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Contender {
    /// `ccbt-uring download --no-pin`, default shards (one per core), unpinned because
    /// the seeders run on the same cores.
    Ccbt,
    /// libtorrent 2.0 through `tests/scripts/lt_client.py download`.
    Libtorrent,
    /// aria2c 1.36 with the interop tests' flags and `--seed-time=0`.
    Aria2,
    /// transmission-cli 3.00 through `tests/scripts/transmission_client.sh download`.
    Transmission,
    /// `rqbit download --exit-on-finish`, when `cargo install rqbit` has put it on this
    /// machine (it is not a Debian package, and building it takes minutes, so the set-up
    /// does not install it).
    Rqbit,
}

impl Contender {
    pub const ALL: [Contender; 5] = [
        Contender::Ccbt,
        Contender::Libtorrent,
        Contender::Aria2,
        Contender::Transmission,
        Contender::Rqbit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Contender::Ccbt => "ccbt-uring download",
            Contender::Libtorrent => "python3-libtorrent 2.0",
            Contender::Aria2 => "aria2c 1.36",
            Contender::Transmission => "transmission-cli 3.00",
            Contender::Rqbit => "rqbit",
        }
    }

    /// A short name for directories.
    pub fn slug(self) -> &'static str {
        match self {
            Contender::Ccbt => "ccbt",
            Contender::Libtorrent => "libtorrent",
            Contender::Aria2 => "aria2",
            Contender::Transmission => "transmission",
            Contender::Rqbit => "rqbit",
        }
    }

    pub fn is_ours(self) -> bool {
        self == Contender::Ccbt
    }

    /// Why it cannot run here and what to install, if it cannot.
    pub fn missing(self) -> Option<&'static str> {
        match self {
            Contender::Ccbt => None,
            Contender::Libtorrent => Client::Libtorrent.missing(),
            Contender::Aria2 => Client::Aria2.missing(),
            Contender::Transmission => Client::Transmission.missing(),
            Contender::Rqbit => Client::Rqbit.missing(),
        }
    }

    /// Whether it connects to 127.0.0.1 peers the tracker names. transmission 3.00 does
    /// not (its `isMartianAddr` filter has no setting); it only takes peers that dial it,
    /// so it must announce before the seeders do.
    pub fn dials_loopback_peers(self) -> bool {
        self != Contender::Transmission
    }

    /// The line the process prints once the download is complete and verified, before it
    /// shuts down (announcing `stopped`, tearing down): every downloader is timed to its
    /// line, none to its exit, so no one's shutdown counts.
    pub fn done_line(self) -> &'static str {
        match self {
            Contender::Ccbt => "downloading: complete",
            // At notice level, once its last piece is checked (then, with
            // `--seed-time=0`, "Seeding is over." and the shutdown).
            Contender::Aria2 => "Download complete: ",
            Contender::Rqbit => "All downloads completed",
            Contender::Libtorrent => "lt_client: download complete",
            Contender::Transmission => "transmission_client: download complete",
        }
    }

    /// How far along the download is, in percent, from the last progress line in its log,
    /// for a downloader whose file on disk does not show it: transmission allocates the
    /// whole file up front.
    pub fn percent_in_log(self, log: &str) -> Option<f64> {
        if self != Contender::Transmission {
            return None;
        }
        // `Progress: 2.6%, dl from 1 of 1 peers (...)`
        log.lines().rev().find_map(|line| {
            let rest = line.trim().strip_prefix("Progress: ")?;
            rest.split('%').next()?.parse().ok()
        })
    }

    /// The command that downloads `torrent` into `out_dir`, listening on 127.0.0.1:`port`,
    /// and exits 0 once the download is complete and verified.
    pub fn command(self, ccbt: &Path, torrent: &Path, out_dir: &Path, port: u16) -> Command {
        match self {
            Contender::Ccbt => {
                let mut cmd = Command::new(ccbt);
                cmd.arg("download")
                    .arg(torrent)
                    .arg("-o")
                    .arg(out_dir)
                    .args(["--listen", "127.0.0.1", "--port"])
                    .arg(port.to_string())
                    // The seeders share the two cores: let the kernel place the shards.
                    .arg("--no-pin")
                    .env("CCBT_LOG", "warn");
                cmd
            }
            Contender::Libtorrent => {
                let mut cmd = Command::new(DEBIAN_PYTHON);
                cmd.arg("-u")
                    .arg(bins::client_scripts().join("lt_client.py"))
                    .arg("download")
                    .arg(torrent)
                    .arg(out_dir)
                    .arg(port.to_string());
                cmd
            }
            Contender::Aria2 => {
                let mut cmd = Command::new("aria2c");
                cmd.args(clients::ARIA2_LOOPBACK)
                    .args(["--enable-dht=false", "--seed-time=0"])
                    .arg(format!("--listen-port={port}"))
                    .arg(format!("--dir={}", out_dir.display()))
                    .arg(torrent);
                cmd
            }
            Contender::Transmission => {
                let mut cmd = Command::new("bash");
                cmd.arg(bins::client_scripts().join("transmission_client.sh"))
                    .arg("download")
                    .arg(torrent)
                    .arg(out_dir)
                    .arg(port.to_string());
                cmd
            }
            Contender::Rqbit => {
                let mut cmd = Command::new(clients::rqbit_program());
                cmd.args(clients::rqbit_loopback(port))
                    .args([
                        "download",
                        "--exit-on-finish",
                        "--disable-http-api",
                        "--overwrite",
                        "-o",
                    ])
                    .arg(out_dir)
                    .arg(torrent);
                cmd
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scripts_are_where_the_tests_keep_them() {
        assert!(bins::client_scripts().join("lt_client.py").is_file());
        assert!(bins::client_scripts()
            .join("transmission_client.sh")
            .is_file());
    }

    #[test]
    fn reads_transmission_progress() {
        let log = "Progress: 0.0%, dl from 0 of 0 peers\nProgress: 2.6%, dl from 1 of 1 peers (32 kB/s)\n";
        assert_eq!(Contender::Transmission.percent_in_log(log), Some(2.6));
        assert_eq!(Contender::Transmission.percent_in_log("started\n"), None);
        assert_eq!(Contender::Aria2.percent_in_log(log), None);
    }

    #[test]
    fn only_transmission_needs_to_be_dialled() {
        let waiting: Vec<_> = Contender::ALL
            .into_iter()
            .filter(|c| !c.dials_loopback_peers())
            .collect();
        assert_eq!(waiting, [Contender::Transmission]);
    }
}
