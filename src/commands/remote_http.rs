//! `ccbt-uring remote --url http://HOST:PORT ...`: the same verbs over the daemon's native
//! HTTP API, for a daemon on another machine (or without access to its state directory).

use std::io::Read as _;
use std::path::Path;

use anyhow::anyhow;

use crate::cli::{RemoteAction, RemoteArgs};
use crate::failure::{Exit, Failure, OrExit, Outcome};
use crate::format;
use crate::native_api::client::{AddOptions, Client, ClientError, TIMEOUT};
use crate::native_api::wire::{self, Action};
use crate::output::{print, print_json};

pub fn run(url: &str, args: RemoteArgs) -> Outcome {
    let client = Client::new(url, args.credentials.resolve(), TIMEOUT)
        .map_err(|e| failure(&e, args.json))?;
    let json = args.json;
    let done = |r: Result<wire::Done, ClientError>| match r {
        Ok(d) => {
            if json {
                print_json(&d);
            }
            Ok(Exit::Ok)
        }
        Err(e) => Err(failure(&e, json)),
    };
    match args.action {
        RemoteAction::Add {
            torrent,
            save_dir,
            paused,
        } => {
            // A magnet link is sent as the body, as the native API takes it.
            let link = torrent.to_string_lossy();
            let bytes = if super::magnet::is_magnet(&link) {
                link.as_bytes().to_vec()
            } else {
                read_torrent(&torrent)?
            };
            let options = AddOptions {
                // As given: the daemon resolves a relative one under its download
                // directory (it may be on another machine) and checks it against
                // control.allowed_save_dirs.
                save_dir: save_dir.map(|d| d.display().to_string()),
                paused,
                ..AddOptions::default()
            };
            let added = client
                .add(&bytes, &options)
                .map_err(|e| failure(&e, json))?;
            if json {
                print_json(&added);
            } else {
                print(&format!("{}\n", added.hash));
            }
            Ok(Exit::Ok)
        }
        RemoteAction::List => {
            let list = client.list().map_err(|e| failure(&e, json))?;
            if json {
                print_json(&list);
            } else {
                print(&list_text(&list.torrents));
            }
            Ok(Exit::Ok)
        }
        RemoteAction::Info { hash } => {
            let details = client.details(&hash).map_err(|e| failure(&e, json))?;
            if json {
                print_json(&details);
            } else {
                print(&details_text(&details));
            }
            Ok(Exit::Ok)
        }
        RemoteAction::Stats => {
            let stats = client.stats().map_err(|e| failure(&e, json))?;
            let shards = client.shards().map_err(|e| failure(&e, json))?;
            if json {
                print_json(&serde_json::json!({ "stats": stats, "shards": shards }));
            } else {
                print(&stats_text(&stats, &shards));
            }
            Ok(Exit::Ok)
        }
        RemoteAction::Summary => {
            let stats = client.stats().map_err(|e| failure(&e, json))?;
            let mut summary = stats.states.clone();
            summary.insert("torrents".into(), stats.torrents);
            if json {
                print_json(&serde_json::json!({ "ok": true, "summary": summary }));
            } else {
                print(
                    &summary
                        .iter()
                        .map(|(state, n)| format!("{state}: {n}\n"))
                        .collect::<String>(),
                );
            }
            Ok(Exit::Ok)
        }
        RemoteAction::Pause { hash } => done(client.act(&hash, Action::Pause)),
        RemoteAction::Resume { hash } => done(client.act(&hash, Action::Resume)),
        RemoteAction::Recheck { hash } => done(client.act(&hash, Action::Recheck)),
        RemoteAction::Reannounce { hash } => done(client.act(&hash, Action::Reannounce)),
        RemoteAction::Remove { hash, delete_data } => done(client.remove(&hash, delete_data)),
        RemoteAction::Move { .. }
        | RemoteAction::SetLimits { .. }
        | RemoteAction::Events { .. }
        | RemoteAction::Shutdown => Err(Failure::new(
            Exit::BadInput,
            anyhow!(
                "this verb is not offered over HTTP; use the control socket (--state-dir) on \
                 the daemon's machine"
            ),
        )),
    }
}

/// What a refusal or failure exits with; with `--json`, it is also printed as
/// `{"ok":false,"error":...,"kind":...}` for scripts.
fn failure(e: &ClientError, json: bool) -> Failure {
    if json {
        print_json(&serde_json::json!({ "ok": false, "error": e.to_string(), "kind": e.kind() }));
    }
    let code = match e {
        ClientError::Unreachable { .. } => Exit::Io,
        ClientError::BadUrl(_) | ClientError::Unauthorized(_) => Exit::BadInput,
        ClientError::Refused { kind, .. }
            if matches!(
                kind.as_str(),
                "bad-torrent" | "bad-request" | "bad-hash" | "path-not-allowed"
            ) =>
        {
            Exit::BadInput
        }
        ClientError::Refused { .. } | ClientError::BadAnswer { .. } => Exit::Runtime,
    };
    Failure::new(code, anyhow!("{e}"))
}

/// The .torrent's bytes, unparsed: the daemon judges them (and says why it refuses).
fn read_torrent(path: &Path) -> Result<Vec<u8>, Failure> {
    let limit = super::TORRENT_FILE_BYTES_MAX;
    let file = std::fs::File::open(path)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))
        .or_exit(Exit::Io)?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| anyhow!("cannot read {}: {e}", path.display()))
        .or_exit(Exit::Io)?;
    if bytes.len() as u64 > limit {
        return Err(Failure::new(
            Exit::BadInput,
            anyhow!(
                "{} is larger than a .torrent may be ({limit} bytes)",
                path.display()
            ),
        ));
    }
    Ok(bytes)
}

pub fn list_text(torrents: &[wire::Torrent]) -> String {
    let mut out = String::new();
    for t in torrents {
        out.push_str(&format!(
            "{}  {:<11} {:>5.1}%  down {}/s  up {}/s  peers {}  ratio {:.2}  {}{}\n",
            t.hash,
            t.state,
            t.progress * 100.0,
            format::bytes(t.download_rate),
            format::bytes(t.upload_rate),
            t.peers,
            t.ratio,
            t.name,
            t.error
                .as_ref()
                .map(|e| format!("  ({e})"))
                .unwrap_or_default()
        ));
    }
    out
}

fn details_text(d: &wire::Details) -> String {
    let t = &d.torrent;
    let mut out = format!(
        "name:      {}\nhash:      {}\nid:        {}\nstate:     {}{}\nprogress:  {:.1}% of {} ({} pieces of {})\n\
         rates:     down {}/s, up {}/s, {} peers\ntotals:    downloaded {}, uploaded {}, ratio {:.2}\n\
         save dir:  {}\nshard:     {}\n",
        t.name,
        t.hash,
        t.id,
        t.state,
        t.error
            .as_ref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default(),
        t.progress * 100.0,
        format::bytes(t.size),
        d.piece_count,
        format::bytes(u64::from(d.piece_length)),
        format::bytes(t.download_rate),
        format::bytes(t.upload_rate),
        t.peers,
        format::bytes(t.downloaded),
        format::bytes(t.uploaded),
        t.ratio,
        t.save_dir,
        t.shard,
    );
    if let Some(c) = &t.category {
        out.push_str(&format!("category:  {c}\n"));
    }
    if !t.tags.is_empty() {
        out.push_str(&format!("tags:      {}\n", t.tags.join(", ")));
    }
    for tier in &d.trackers {
        out.push_str(&format!("tracker:   {}\n", tier.join(" ")));
    }
    out.push_str("files:\n");
    for f in &d.files {
        let done = f
            .done
            .map(|b| format!("{:>5.1}%", b as f64 * 100.0 / f.length.max(1) as f64))
            .unwrap_or_else(|| "    ?".into());
        out.push_str(&format!(
            "  {:>4}  {done}  {:>11}  prio {:>2}  {}\n",
            f.index,
            format::bytes(f.length),
            f.priority,
            f.path
        ));
    }
    out
}

fn stats_text(s: &wire::Stats, shards: &[wire::Shard]) -> String {
    let mut out = format!(
        "version:   {}\nuptime:    {} s\ntorrents:  {}\n",
        s.version, s.uptime_s, s.torrents
    );
    for (state, n) in &s.states {
        out.push_str(&format!("  {state}: {n}\n"));
    }
    out.push_str(&format!(
        "peers:     {}\nrates:     down {}/s, up {}/s\ntotals:    downloaded {}, uploaded {}\n",
        s.peers,
        format::bytes(s.download_rate),
        format::bytes(s.upload_rate),
        format::bytes(s.downloaded),
        format::bytes(s.uploaded)
    ));
    for sh in shards {
        out.push_str(&format!(
            "shard {:>3}: {} torrents, {} peers, down {}/s, up {}/s\n",
            sh.shard,
            sh.torrents,
            sh.peers,
            format::bytes(sh.download_rate),
            format::bytes(sh.upload_rate)
        ));
    }
    out
}
