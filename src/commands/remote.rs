//! `ccbt-uring remote`: one request to a running daemon over its control socket, or over
//! HTTP with `--url` ([`super::remote_http`]).

use std::path::PathBuf;

use anyhow::anyhow;

use crate::cli::{RemoteAction, RemoteArgs};
use crate::daemon::control::{self, Request, SOCKET_NAME};
use crate::failure::{Exit, Failure, OrExit, Outcome};
use crate::format;

pub fn run(args: RemoteArgs) -> Outcome {
    if let Some(url) = args.url.clone() {
        return super::remote_http::run(&url, args);
    }
    let socket = match (&args.socket, &args.state_dir) {
        (Some(socket), _) => socket.clone(),
        (None, Some(dir)) => dir.join(SOCKET_NAME),
        (None, None) => {
            let sources = ccbt_config::Sources::from_process(None, Vec::new()).or_exit(Exit::Io)?;
            ccbt_config::Config::default_for_env(&sources.env)
                .daemon
                .state_dir
                .join(SOCKET_NAME)
        }
    };
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let info_hash = match &args.action {
        RemoteAction::Info { hash } => Some(hash.clone()),
        _ => None,
    };
    let request = match args.action {
        RemoteAction::Add {
            torrent,
            save_dir,
            paused,
        } => Request::Add {
            // A magnet link goes as it is.
            torrent: if super::magnet::is_magnet(&torrent.to_string_lossy()) {
                torrent
            } else {
                absolute(torrent)
            },
            save_dir: save_dir.map(absolute),
            paused,
        },
        RemoteAction::List | RemoteAction::Info { .. } => Request::List,
        RemoteAction::Summary | RemoteAction::Stats => Request::Summary,
        RemoteAction::Remove { hash, delete_data } => Request::Remove { hash, delete_data },
        RemoteAction::Pause { hash } => Request::Pause { hash },
        RemoteAction::Resume { hash } => Request::Resume { hash },
        RemoteAction::Recheck { hash } => Request::Recheck { hash },
        RemoteAction::Reannounce { hash } => Request::Reannounce { hash },
        RemoteAction::Move { hash, to } => Request::Move {
            hash,
            to: absolute(to),
        },
        RemoteAction::Events { since } => Request::Events { since },
        RemoteAction::SetLimits { hash, up, down } => Request::SetLimits {
            hash,
            upload_bytes_per_s: up,
            download_bytes_per_s: down,
        },
        RemoteAction::Shutdown => Request::Shutdown,
    };
    let listing = matches!(request, Request::List);
    let mut response = control::call(&socket, &request).map_err(|e| {
        Failure::new(
            Exit::Io,
            anyhow!("cannot reach the daemon at {}: {e}", socket.display()),
        )
    })?;
    // `info` over the socket: its row of the listing.
    if let (Some(hash), Some(torrents)) = (&info_hash, response.torrents.as_mut()) {
        torrents.retain(|t| t["hash"].as_str() == Some(hash.to_ascii_lowercase().as_str()));
        if torrents.is_empty() {
            response.ok = false;
            response.error = Some(format!("no torrent {hash}"));
            response.kind = Some("unknown-torrent".into());
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&response).unwrap_or_default());
    } else if let Some(hash) = &response.hash {
        println!("{hash}");
    } else if let Some(summary) = &response.summary {
        for (state, n) in summary {
            println!("{state}: {n}");
        }
    } else if let Some(events) = &response.events {
        for e in events {
            println!(
                "{} {} {} {}",
                e["seq"],
                e["kind"].as_str().unwrap_or(""),
                e["hash"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or("")
            );
        }
    } else if listing {
        for t in response.torrents.iter().flatten() {
            let s = |k: &str| t[k].as_str().unwrap_or("").to_string();
            let n = |k: &str| t[k].as_u64().unwrap_or(0);
            println!(
                "{}  {:<11} {:>5.1}%  up {}  down {}  {}{}",
                s("hash"),
                s("state"),
                n("have_pieces") as f64 * 100.0 / n("pieces").max(1) as f64,
                format::bytes(n("uploaded")),
                format::bytes(n("downloaded")),
                s("name"),
                t["error"]
                    .as_str()
                    .map(|e| format!("  ({e})"))
                    .unwrap_or_default()
            );
        }
    }
    if response.ok {
        Ok(Exit::Ok)
    } else {
        let kind = response.kind.unwrap_or_default();
        Err(Failure::new(
            if kind == "bad-torrent" || kind == "bad-request" {
                Exit::BadInput
            } else {
                Exit::Runtime
            },
            anyhow!(
                "{}",
                response
                    .error
                    .unwrap_or_else(|| "the daemon refused".into())
            ),
        ))
    }
}
