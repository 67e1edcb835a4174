//! `torrents/addTrackers`, `editTracker` and `removeTrackers` for the torrent `hash`, as
//! qBittorrent 5.1 answers them: each added URL is a tier of its own after the others;
//! 404 for an unknown torrent, 409 when `origUrl` or every URL to remove is not one of its
//! trackers or `newUrl` already is, 400 for a URL that is not a tracker's. The daemon
//! checks, keeps and applies the new tiers ([`crate::daemon::trackers`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;

use super::params::{list, Params};
use super::{done, Qbt, Refusal, Reply};
use crate::daemon::core::DaemonError;

/// The torrent's tiers now, and its hash.
fn current(q: &Qbt, p: &Params) -> Result<(ccbt_engine::InfoHash, Vec<Vec<String>>), Refusal> {
    let hash = p.hash()?;
    let row = q
        .api
        .catalog
        .current()
        .get(&hash)
        .cloned()
        .ok_or_else(Refusal::not_found)?;
    Ok((hash, row.fixed.meta.trackers()))
}

async fn put(q: &Qbt, hash: ccbt_engine::InfoHash, tiers: Vec<Vec<String>>) -> Reply {
    let result = q.api.blocking(move |d| d.set_trackers(hash, tiers)).await;
    q.api.refreshed().await;
    match result {
        Ok(()) => done(),
        Err(DaemonError::Trackers(e)) => Err(Refusal::bad(e.to_string())),
        Err(e) => Err(e.into()),
    }
}

pub async fn add(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let (hash, mut tiers) = current(&q, &p)?;
    let urls = list(p.need("urls")?, '\n');
    tiers.extend(urls.into_iter().map(|u| vec![u]));
    put(&q, hash, tiers).await
}

pub async fn edit(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let (hash, mut tiers) = current(&q, &p)?;
    let from = p
        .get("origUrl")
        .or(p.get("url"))
        .ok_or_else(|| Refusal::bad("Missing parameter: origUrl"))?;
    let to = p.need("newUrl")?.trim().to_string();
    if tiers.iter().flatten().any(|u| *u == to) {
        return Err(Refusal(
            StatusCode::CONFLICT,
            "New tracker URL already exists".into(),
        ));
    }
    let Some(slot) = tiers.iter_mut().flatten().find(|u| u.as_str() == from) else {
        return Err(Refusal(StatusCode::CONFLICT, "Tracker not found".into()));
    };
    *slot = to;
    put(&q, hash, tiers).await
}

pub async fn remove(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let (hash, mut tiers) = current(&q, &p)?;
    let urls = list(p.need("urls")?, '|');
    let before: usize = tiers.iter().map(Vec::len).sum();
    for tier in &mut tiers {
        tier.retain(|u| !urls.contains(u));
    }
    if tiers.iter().map(Vec::len).sum::<usize>() == before {
        return Err(Refusal(
            StatusCode::CONFLICT,
            "No trackers were removed".into(),
        ));
    }
    put(&q, hash, tiers).await
}
