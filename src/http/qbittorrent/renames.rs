//! `torrents/renameFile` and `torrents/renameFolder` for the torrent `hash`, as
//! qBittorrent 5.1 answers them: `oldPath` and `newPath` are paths as `torrents/files`
//! lists them (the torrent's folder first); 400 for a missing parameter, 404 for an
//! unknown torrent, 409 when `oldPath` is not one of its files (or folders), `newPath` is
//! not a safe relative path or is taken (by another of its files, or on disk by something
//! else). The daemon renames on disk and keeps the new
//! paths across restarts ([`crate::daemon::renames`]).

use std::sync::Arc;

use axum::extract::State;
use ccbt_engine::metainfo::RenameTarget;
use ccbt_shards::swarm::CommandError;

use super::params::Params;
use super::{done, Qbt, Refusal, Reply};
use crate::daemon::core::DaemonError;

async fn rename(q: &Qbt, p: &Params, target: RenameTarget) -> Reply {
    let hash = p.hash()?;
    let from = p.need("oldPath")?.to_string();
    let to = p.need("newPath")?.to_string();
    if q.api.catalog.current().get(&hash).is_none() {
        return Err(Refusal::not_found());
    }
    let result = q
        .api
        .blocking(move |d| d.rename_path(hash, &from, &to, target))
        .await;
    q.api.refreshed().await;
    match result {
        Ok(_) => done(),
        // A refused path, or one the disk refused (something else is there).
        Err(e @ (DaemonError::Rename(_) | DaemonError::Command(CommandError::Fault(_)))) => {
            Err(Refusal::conflict(e.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn rename_file(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    rename(&q, &p, RenameTarget::File).await
}

pub async fn rename_folder(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    rename(&q, &p, RenameTarget::Folder).await
}
