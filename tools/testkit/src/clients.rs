//! The real clients the tests trade with and the benchmarks compare against: how to tell
//! whether each can run here and what to install when it cannot, and the flags that keep
//! them on loopback.

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// Debian's python3-libtorrent imports only under Debian's own interpreter (the `python3`
/// first on PATH may be another one).
pub const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// aria2c flags for a run on 127.0.0.1 alone: no config file, plain progress lines every
/// second, no IPv6, LPD or PeX, no preallocation or renaming. DHT is left to the caller
/// (aria2 reaches UDP trackers only through its DHT socket).
pub const ARIA2_LOOPBACK: [&str; 11] = [
    "--no-conf",
    "--enable-color=false",
    "--console-log-level=notice",
    "--summary-interval=1",
    "--interface=127.0.0.1",
    "--disable-ipv6=true",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--enable-dht6=false",
    "--file-allocation=none",
    "--auto-file-renaming=false",
];

/// rqbit's global flags for a run on 127.0.0.1:`port` alone: no DHT (nor its state file),
/// LSD, UPnP or IPv6, and `info` logging, which has its check and completion lines.
pub fn rqbit_loopback(port: u16) -> Vec<String> {
    [
        "-v",
        "info",
        "--disable-dht",
        "--disable-dht-persistence",
        "--disable-lsd",
        "--disable-upnp-port-forward",
        "--ipv4-only",
        "--listen-ip",
        "127.0.0.1",
        "--listen-port",
    ]
    .into_iter()
    .map(String::from)
    .chain([port.to_string()])
    .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    Libtorrent,
    Aria2,
    Transmission,
    Rqbit,
}

impl Client {
    /// Why it cannot run here and how to install it, if it cannot.
    pub fn missing(self) -> Option<&'static str> {
        let (works, install) = match self {
            Client::Libtorrent => (
                runs(DEBIAN_PYTHON.into(), &["-c", "import libtorrent"]),
                "python3-libtorrent not importable by /usr/bin/python3 \
                 (`apt-get install python3-libtorrent`)",
            ),
            Client::Aria2 => (
                runs("aria2c".into(), &["--version"]),
                "aria2c not found (`apt-get install aria2`)",
            ),
            Client::Transmission => (
                runs("transmission-cli".into(), &["--version"]),
                "transmission-cli not found (`apt-get install transmission-cli`)",
            ),
            Client::Rqbit => (
                rqbit().is_some_and(|p| runs(p, &["--version"])),
                "rqbit not found on PATH or in ~/.cargo/bin (`cargo install rqbit`)",
            ),
        };
        (!works).then_some(install)
    }
}

/// rqbit: on PATH, or where `cargo install rqbit` puts it (`$CARGO_HOME/bin`, by default
/// `~/.cargo/bin`, which need not be on PATH).
pub fn rqbit() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    on_path
        .chain(cargo_home.map(|home| home.join("bin")))
        .map(|dir| dir.join("rqbit"))
        .find(|path| path.is_file())
}

/// The program to run rqbit as: where [`rqbit`] found it, else plain `rqbit` (whose
/// start then fails with "not found", after [`Client::missing`] said so).
pub fn rqbit_program() -> PathBuf {
    rqbit().unwrap_or_else(|| "rqbit".into())
}

/// Whether `program args` runs and exits 0.
fn runs(program: PathBuf, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_is_not_there_says_what_to_install() {
        assert!(!runs("/nonexistent/client".into(), &["--version"]));
        assert!(runs("true".into(), &[]));
        for client in [
            Client::Libtorrent,
            Client::Aria2,
            Client::Transmission,
            Client::Rqbit,
        ] {
            if let Some(why) = client.missing() {
                assert!(why.contains("install"), "{why}");
            }
        }
    }
}
