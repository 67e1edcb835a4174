//! The daemon's local control socket: one JSON request per line, one JSON answer per
//! line, over a Unix socket in the state directory (mode 0600, so only its owner may
//! steer the daemon). `ccbt-uring remote` speaks it; the HTTP APIs will call the same
//! [`Daemon`] methods.
//!
//! Bounds: at most [`CLIENTS_MAX`] connections at once (more are answered with an error
//! and closed), requests of at most [`REQUEST_BYTES_MAX`] bytes, and an idle connection is
//! closed after [`IDLE_TIMEOUT`].

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ccbt_engine::InfoHash;
use serde::{Deserialize, Serialize};

use super::core::{AddRequest, Daemon, DaemonError, TorrentView};
use super::magnets::Source;

pub const SOCKET_NAME: &str = "control.sock";
const CLIENTS_MAX: usize = 16;
const REQUEST_BYTES_MAX: u64 = 1 << 20;
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Events in one answer at most; ask again from the last one's `seq` for more.
const EVENTS_PER_ANSWER: usize = 1000;

/// A request, as a line of JSON: `{"op":"pause","hash":"..."}`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    /// `torrent` is a path the daemon can read, or a magnet link.
    Add {
        torrent: PathBuf,
        #[serde(default)]
        save_dir: Option<PathBuf>,
        #[serde(default)]
        paused: bool,
    },
    List,
    Remove {
        hash: String,
        #[serde(default)]
        delete_data: bool,
    },
    Pause {
        hash: String,
    },
    Resume {
        hash: String,
    },
    Recheck {
        hash: String,
    },
    Reannounce {
        hash: String,
    },
    Move {
        hash: String,
        to: PathBuf,
    },
    /// The torrent's own rate limits, bytes per second (0: none; the global limits still
    /// apply).
    SetLimits {
        hash: String,
        #[serde(default)]
        upload_bytes_per_s: u64,
        #[serde(default)]
        download_bytes_per_s: u64,
    },
    /// How many torrents there are in each state: cheap at any size, for scripts that
    /// wait for all to seed.
    Summary,
    /// Events after sequence number `since` (0: all the log holds).
    Events {
        #[serde(default)]
        since: u64,
    },
    /// Stop the daemon as SIGTERM does.
    Shutdown,
}

/// An answer: `{"ok":true,...}` or `{"ok":false,"error":"...","kind":"..."}`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torrents: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<serde_json::Value>>,
    /// Torrents per state name, and `torrents` in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<std::collections::BTreeMap<String, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Response {
    fn done() -> Response {
        Response {
            ok: true,
            ..Response::default()
        }
    }

    fn failed(error: impl ToString, kind: &str) -> Response {
        Response {
            ok: false,
            error: Some(error.to_string()),
            kind: Some(kind.to_string()),
            ..Response::default()
        }
    }
}

/// Listens on `dir/control.sock` on a thread of its own until `stop` is set.
pub fn serve(
    dir: &Path,
    daemon: Arc<Daemon>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<(PathBuf, std::thread::JoinHandle<()>)> {
    let path = dir.join(SOCKET_NAME);
    // A socket left by a daemon that was killed; a live one would have refused the state
    // directory's lock before we got here.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    listener.set_nonblocking(true)?;
    let clients = Arc::new(AtomicUsize::new(0));
    let handle = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if clients.fetch_add(1, Ordering::AcqRel) >= CLIENTS_MAX {
                            clients.fetch_sub(1, Ordering::AcqRel);
                            let _ = reply(
                                &mut &stream,
                                &Response::failed("too many control connections", "busy"),
                            );
                            continue;
                        }
                        let (daemon, stop, clients) =
                            (daemon.clone(), stop.clone(), clients.clone());
                        let spawned = std::thread::Builder::new()
                            .name("control-client".into())
                            .spawn(move || {
                                client(stream, &daemon, &stop);
                                clients.fetch_sub(1, Ordering::AcqRel);
                            });
                        if spawned.is_err() {
                            tracing::warn!("cannot start a control connection's thread");
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "control socket accept failed");
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        })?;
    Ok((path, handle))
}

fn client(stream: UnixStream, daemon: &Daemon, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut writer = writer;
    let mut lines = BufReader::new(stream);
    loop {
        let mut line = String::new();
        let read = lines.by_ref().take(REQUEST_BYTES_MAX).read_line(&mut line);
        match read {
            Ok(0) | Err(_) => return,
            Ok(_) if !line.ends_with('\n') => {
                let _ = reply(
                    &mut writer,
                    &Response::failed("request too long", "bad-request"),
                );
                return;
            }
            Ok(_) => {}
        }
        let sent = match serde_json::from_str::<Request>(&line) {
            // A listing of 100,000 torrents is tens of MB: written straight from the views,
            // not through a JSON tree.
            Ok(Request::List) => reply_list(&mut writer, &daemon.list()),
            Ok(request) => reply(&mut writer, &answer(daemon, request, stop)),
            Err(e) => reply(
                &mut writer,
                &Response::failed(format!("bad request: {e}"), "bad-request"),
            ),
        };
        if sent.is_err() {
            return;
        }
    }
}

fn reply_list(writer: &mut impl Write, views: &[TorrentView]) -> std::io::Result<()> {
    let mut line = b"{\"ok\":true,\"torrents\":".to_vec();
    serde_json::to_writer(&mut line, views).map_err(std::io::Error::other)?;
    line.extend_from_slice(b"}\n");
    writer.write_all(&line)
}

fn reply(writer: &mut impl Write, response: &Response) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    line.push(b'\n');
    writer.write_all(&line)
}

fn parse_hash(hash: &str) -> Result<InfoHash, String> {
    InfoHash::from_str(hash).map_err(|e| format!("{hash}: {e}"))
}

fn answer(daemon: &Daemon, request: Request, stop: &AtomicBool) -> Response {
    let result = |r: Result<(), DaemonError>| match r {
        Ok(()) => Response::done(),
        Err(e) => Response::failed(&e, e.kind()),
    };
    let with_hash =
        |hash: &str, f: &dyn Fn(InfoHash) -> Result<(), DaemonError>| match parse_hash(hash) {
            Ok(h) => result(f(h)),
            Err(why) => Response::failed(why, "bad-request"),
        };
    match request {
        Request::Add {
            torrent,
            save_dir,
            paused,
        } => {
            let link = torrent.to_string_lossy();
            let source = if crate::commands::magnet::is_magnet(&link) {
                Source::Magnet(link.into_owned())
            } else {
                match read_torrent(&torrent) {
                    Ok(bytes) => Source::Torrent(bytes),
                    Err(e) => return Response::failed(&e, e.kind()),
                }
            };
            match daemon.add(AddRequest {
                source,
                save_dir,
                paused,
                category: None,
                tags: Vec::new(),
            }) {
                Ok(hash) => Response {
                    ok: true,
                    hash: Some(hash.to_hex()),
                    ..Response::default()
                },
                Err(e) => Response::failed(&e, e.kind()),
            }
        }
        Request::List => Response {
            ok: true,
            torrents: Some(
                daemon
                    .list()
                    .iter()
                    .filter_map(|v: &TorrentView| serde_json::to_value(v).ok())
                    .collect(),
            ),
            ..Response::default()
        },
        Request::Remove { hash, delete_data } => {
            with_hash(&hash, &|h| daemon.remove(h, delete_data))
        }
        Request::Pause { hash } => with_hash(&hash, &|h| daemon.pause(h)),
        Request::Resume { hash } => with_hash(&hash, &|h| daemon.resume(h)),
        Request::Recheck { hash } => with_hash(&hash, &|h| daemon.recheck(h)),
        Request::Reannounce { hash } => with_hash(&hash, &|h| daemon.reannounce(h)),
        Request::Move { hash, to } => with_hash(&hash, &|h| daemon.move_storage(h, to.clone())),
        Request::SetLimits {
            hash,
            upload_bytes_per_s,
            download_bytes_per_s,
        } => with_hash(&hash, &|h| {
            daemon.set_limits(h, upload_bytes_per_s, download_bytes_per_s)
        }),
        Request::Summary => Response {
            ok: true,
            summary: Some(daemon.summary()),
            ..Response::default()
        },
        Request::Events { since } => Response {
            ok: true,
            events: Some(
                daemon
                    .events
                    .since(since, EVENTS_PER_ANSWER)
                    .iter()
                    .map(|e| serde_json::to_value(e).unwrap_or_default())
                    .collect(),
            ),
            ..Response::default()
        },
        Request::Shutdown => {
            stop.store(true, Ordering::Release);
            Response::done()
        }
    }
}

/// Reads a `.torrent` file, refusing one larger than a torrent may be.
pub fn read_torrent(path: &Path) -> Result<Vec<u8>, DaemonError> {
    let max = ccbt_engine::bencode::Limits::TORRENT.input_len_max as u64;
    let read = || -> std::io::Result<Vec<u8>> {
        let file = std::fs::File::open(path)?;
        let mut bytes = Vec::new();
        file.take(max + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("larger than a torrent may be ({max} bytes)"),
            ));
        }
        Ok(bytes)
    };
    read().map_err(|source| DaemonError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Sends one request to a daemon's socket and returns its answer.
pub fn call(socket: &Path, request: &Request) -> std::io::Result<Response> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut line = serde_json::to_vec(request).map_err(std::io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    serde_json::from_str(&answer).map_err(std::io::Error::other)
}
