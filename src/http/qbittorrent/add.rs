//! `torrents/add`: `.torrent` files (multipart parts named `torrents`) and URLs (`urls`,
//! one per line), with the options the *arr apps and Prowlarr send.
//!
//! - `savepath` goes through [`Access::save_dir`](crate::http::Access::save_dir): outside
//!   `control.allowed_save_dirs` the whole request is refused (403) before anything is
//!   added. Without one, a category's save path is used, else the download directory.
//! - `category` is created if it does not exist yet (as qBittorrent does); `tags` too.
//! - `stopped` (5.x) and `paused` (4.x, Prowlarr) add it stopped.
//! - `skip_checking` is accepted but the data is checked all the same: trusting files
//!   unchecked would make us claim (and serve) pieces we may not have. A check of data
//!   that is all there costs one read; of data that is not there, nothing.
//! - `sequentialDownload`, `ratioLimit`, `seedingTimeLimit`, `inactiveSeedingTimeLimit`,
//!   `upLimit`, `dlLimit` are applied right after the add; `firstLastPiecePrio`,
//!   `contentLayout` other than `Original`, `rename` and `autoTMM` are not supported and
//!   say so in the log.
//! - Magnet links in `urls` (or a URL that redirects to one) are added at once and listed
//!   as `metaDL` while their metadata is fetched ([`crate::daemon::magnets`]);
//!   `http://` and `https://` URLs are fetched ([`crate::http::fetch`]).
//!
//! The answer is qBittorrent 5.1's: `Ok.` when at least one torrent was added, `Fails.`
//! otherwise; a part that is not a torrent at all gets 415. Every torrent added is in the
//! catalog before the answer leaves, so `torrents/properties` sees it at once.
//!
//! Bounds: at most [`MAX_SOURCES`] torrents and URLs in one request (400 past it); the
//! body itself is capped by `control.max_request_bytes` (413).

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;

use super::params::{list, Params};
use super::{text, Qbt, Refusal, Reply};
use crate::daemon::core::{AddRequest, DaemonError, Override, ShareOverride};
use crate::daemon::magnets::Source;
use crate::http::fetch::fetch;

pub const MAX_SOURCES: usize = 100;

/// What the request asked for.
#[derive(Default)]
struct AddForm {
    params: Params,
    /// (file name, bytes) of each `torrents` part.
    files: Vec<(String, Vec<u8>)>,
}

async fn read_form(req: Request) -> Result<AddForm, Response> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !content_type.starts_with("multipart/form-data") {
        let params = Params::from_request(req, &()).await?;
        return Ok(AddForm {
            params,
            files: Vec::new(),
        });
    }
    let refuse = |status: StatusCode, text: String| -> Response {
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            super::params::body_refusal(status, &text)
        } else {
            crate::http::access::reason(status, &text)
        }
    };
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| refuse(e.status(), format!("bad multipart body: {}", e.body_text())))?;
    let mut form = AddForm::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => {
                return Err(refuse(
                    e.status(),
                    format!("bad multipart body: {}", e.body_text()),
                ))
            }
        };
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(String::from);
        let bytes = field.bytes().await.map_err(|e| {
            refuse(
                e.status(),
                format!("bad multipart part {name:?}: {}", e.body_text()),
            )
        })?;
        if name == "torrents" || file_name.is_some() {
            if form.files.len() >= MAX_SOURCES {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    format!("too many torrents in one add (at most {MAX_SOURCES})"),
                ));
            }
            form.files
                .push((file_name.unwrap_or_else(|| name.clone()), bytes.to_vec()));
        } else {
            if form.params.0.len() >= super::params::MAX_PARAMS {
                return Err(refuse(
                    StatusCode::BAD_REQUEST,
                    "too many parameters".into(),
                ));
            }
            let value = String::from_utf8(bytes.to_vec()).map_err(|_| {
                refuse(
                    StatusCode::BAD_REQUEST,
                    format!("multipart part {name:?} is not UTF-8 text"),
                )
            })?;
            form.params.0.push((name, value));
        }
    }
    Ok(form)
}

/// The options that apply to every torrent of the request.
struct Options {
    save_dir: Option<PathBuf>,
    paused: bool,
    category: Option<String>,
    tags: Vec<String>,
    sequential: bool,
    share: Option<ShareOverride>,
    limits: Option<(u64, u64)>,
}

fn share_value<T>(v: Option<f64>, make: impl Fn(f64) -> T) -> Override<T> {
    match v {
        None => Override::Global,
        Some(x) if x <= -2.0 => Override::Global,
        Some(x) if x < 0.0 => Override::Unlimited,
        Some(x) => Override::Limit(make(x)),
    }
}

fn options(q: &Qbt, p: &Params) -> Result<Options, Refusal> {
    let daemon = &q.api.daemon;
    let category = p
        .get("category")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from);
    if let Some(c) = &category {
        if !crate::daemon::labels::valid_category(c) {
            return Err(Refusal::bad(format!("Incorrect category name: {c:?}")));
        }
    }
    let requested = p
        .get("savepath")
        .filter(|s| !s.trim().is_empty())
        .map(String::from)
        .or_else(|| {
            category
                .as_deref()
                .and_then(|c| daemon.labels.category(c))
                .filter(|s| !s.is_empty())
        });
    let save_dir = match requested {
        Some(path) => Some(
            q.api
                .access
                .save_dir(&path, &daemon.download_dir())
                .map_err(|e| Refusal(StatusCode::FORBIDDEN, format!("savepath: {e}")))?,
        ),
        None => None,
    };
    let paused = p.flag("stopped")?.or(p.flag("paused")?).unwrap_or(false);
    let ratio = p.real("ratioLimit")?;
    let seeding = p.real("seedingTimeLimit")?;
    let idle = p.real("inactiveSeedingTimeLimit")?;
    let share = (ratio.is_some() || seeding.is_some() || idle.is_some()).then(|| ShareOverride {
        ratio: share_value(ratio, |x| x),
        seeding_minutes: share_value(seeding, |x| x as u64),
        idle_minutes: share_value(idle, |x| x as u64),
    });
    let up: Option<i64> = p.number("upLimit")?;
    let down: Option<i64> = p.number("dlLimit")?;
    let limits = (up.is_some() || down.is_some()).then(|| {
        let positive = |v: Option<i64>| v.map_or(0, |v| u64::try_from(v).unwrap_or(0));
        (positive(up), positive(down))
    });
    let unsupported: Vec<&str> = [
        (
            "firstLastPiecePrio",
            p.flag("firstLastPiecePrio")? == Some(true),
        ),
        ("autoTMM", p.flag("autoTMM")? == Some(true)),
        ("rename", p.get("rename").is_some_and(|r| !r.is_empty())),
        (
            "contentLayout",
            p.get("contentLayout").is_some_and(|l| l != "Original"),
        ),
    ]
    .into_iter()
    .filter(|(_, asked)| *asked)
    .map(|(name, _)| name)
    .collect();
    if !unsupported.is_empty() {
        tracing::warn!(options = ?unsupported, "WebAPI torrents/add: options not supported, not applied");
    }
    if p.flag("skip_checking")? == Some(true) {
        tracing::info!("WebAPI torrents/add: skip_checking asked; the data is checked anyway");
    }
    Ok(Options {
        save_dir,
        paused,
        category,
        tags: p.get("tags").map(|t| list(t, ',')).unwrap_or_default(),
        sequential: p.flag("sequentialDownload")?.unwrap_or(false),
        share,
        limits,
    })
}

/// Adds one torrent and applies the per-torrent options.
fn add_one(
    d: &crate::daemon::core::Daemon,
    source: Source,
    o: &Options,
) -> Result<(), DaemonError> {
    let hash = d.add(AddRequest {
        source,
        save_dir: o.save_dir.clone(),
        paused: o.paused,
        category: o.category.clone(),
        tags: o.tags.clone(),
    })?;
    if o.sequential {
        d.set_sequential(hash, true)?;
    }
    if let Some(share) = o.share {
        d.set_share(hash, share)?;
    }
    if let Some((up, down)) = o.limits {
        d.set_limits(hash, up, down)?;
    }
    Ok(())
}

pub async fn add(State(q): State<Arc<Qbt>>, req: Request) -> Reply {
    let form = match read_form(req).await {
        Ok(form) => form,
        Err(refused) => return Ok(refused),
    };
    let p = &form.params;
    let urls = p.get("urls").map(|u| list(u, '\n')).unwrap_or_default();
    if urls.len() + form.files.len() > MAX_SOURCES {
        return Err(Refusal::bad(format!(
            "too many torrents in one add (at most {MAX_SOURCES})"
        )));
    }
    if urls.is_empty() && form.files.is_empty() {
        return Err(Refusal::bad("Missing parameter: urls or torrents"));
    }
    let o = options(&q, p)?;
    if let Some(c) = &o.category {
        q.api.daemon.labels.create_category(c, "", false)?;
    }
    if !o.tags.is_empty() {
        q.api.daemon.labels.create_tags(&o.tags)?;
    }
    // A part that is not a torrent is the caller's mistake: 415, as qBittorrent answers.
    for (name, bytes) in &form.files {
        if let Err(e) = ccbt_engine::metainfo::Metainfo::parse(bytes) {
            return Err(Refusal(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("Error: {name:?} is not a valid torrent file: {e}"),
            ));
        }
    }
    let cap = q.api.access.max_request_bytes;
    let mut sources: Vec<(String, Source)> = form
        .files
        .into_iter()
        .map(|(name, bytes)| (name, Source::Torrent(bytes)))
        .collect();
    let mut failures: Vec<String> = Vec::new();
    for url in urls {
        match fetch(&url, cap).await {
            Ok(source) => sources.push((url, source)),
            Err(e) => failures.push(e.to_string()),
        }
    }
    let o = Arc::new(o);
    let mut added = 0;
    for (name, source) in sources {
        let o = o.clone();
        match q.api.blocking(move |d| add_one(d, source, &o)).await {
            Ok(()) => added += 1,
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    for why in &failures {
        tracing::warn!(reason = %why, "WebAPI torrents/add: not added");
    }
    if added > 0 {
        q.api.refreshed().await;
        text("Ok.")
    } else {
        text("Fails.")
    }
}
