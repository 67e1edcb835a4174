//! The per-torrent commands: start, stop, verify, reannounce, remove, set-location,
//! rename-path and the queue moves. Each runs for every torrent named, on the blocking pool (a command
//! may wait for its shard or the state database), and the catalog is refreshed after so
//! the next torrent-get shows the change.

use std::sync::Arc;

use ccbt_engine::metainfo::RenameTarget;
use ccbt_engine::InfoHash;

use crate::daemon::core::{Daemon, DaemonError};
use crate::daemon::queue_moves::{reordered, Move};
use crate::daemon::renames::{parse_name, parse_path};

use super::super::Api;
use super::dispatch::{Answer, Args};
use super::ids;

/// Runs `f` for each torrent named; the first failure (by torrent) is the answer.
async fn each(
    api: &Arc<Api>,
    args: &Args,
    f: impl Fn(&Daemon, InfoHash) -> Result<(), DaemonError> + Send + 'static,
) -> Answer {
    let hashes = ids::select(&api.catalog, args)?.hashes();
    let failures = api
        .blocking(move |d| {
            hashes
                .into_iter()
                .filter_map(|h| f(d, h).err().map(|e| format!("{h}: {e}")))
                .collect::<Vec<_>>()
        })
        .await;
    api.refreshed().await;
    match failures.first() {
        None => Ok(Default::default()),
        Some(first) if failures.len() == 1 => Err(first.clone()),
        Some(first) => Err(format!("{first} (and {} more)", failures.len() - 1)),
    }
}

pub async fn start(api: &Arc<Api>, args: &Args) -> Answer {
    each(api, args, |d, h| d.resume(h)).await
}

pub async fn stop(api: &Arc<Api>, args: &Args) -> Answer {
    each(api, args, |d, h| d.pause(h)).await
}

pub async fn verify(api: &Arc<Api>, args: &Args) -> Answer {
    each(api, args, |d, h| d.recheck(h)).await
}

pub async fn reannounce(api: &Arc<Api>, args: &Args) -> Answer {
    each(api, args, |d, h| d.reannounce(h)).await
}

pub async fn remove(api: &Arc<Api>, args: &Args) -> Answer {
    let delete_data = args.bool("delete-local-data")?.unwrap_or(false);
    each(api, args, move |d, h| d.remove(h, delete_data)).await
}

/// torrent-set-location: with `move: true` the data moves there; without (the data is
/// there already, as transmission-remote's `--find` says) it is looked for and checked
/// there.
pub async fn set_location(api: &Arc<Api>, args: &Args) -> Answer {
    let location = args
        .str("location")?
        .ok_or("torrent-set-location needs \"location\"")?;
    let moving = args.bool("move")?.unwrap_or(false);
    let to = api
        .access
        .save_dir(location, &api.blocking(|d| d.download_dir()).await)
        .map_err(|e| format!("location: {e}"))?;
    if moving {
        each(api, args, move |d, h| d.move_storage(h, to.clone())).await
    } else {
        each(api, args, move |d, h| d.set_location(h, to.clone())).await
    }
}

/// torrent-rename-path: the file or folder at `path` (as `files` lists it) takes the name
/// `name` (one component; its folder stays). Exactly one torrent, as Transmission wants;
/// the answer echoes `path` and `name` with the torrent's `id`.
pub async fn rename_path(api: &Arc<Api>, args: &Args) -> Answer {
    let rows = ids::select(&api.catalog, args)?.rows;
    let [row] = &rows[..] else {
        return Err(format!(
            "torrent-rename-path needs exactly one torrent; {} given",
            rows.len()
        ));
    };
    let path = args
        .str("path")?
        .ok_or("torrent-rename-path needs \"path\"")?
        .to_string();
    let name = args
        .str("name")?
        .ok_or("torrent-rename-path needs \"name\"")?
        .to_string();
    let new_name = parse_name(&name).map_err(|e| format!("name: {e}"))?;
    let from = parse_path(&path).map_err(|e| format!("path: {e}"))?;
    let to = match from.parent() {
        Some(parent) => parent.join(&new_name),
        None => new_name,
    };
    let (info_hash, id) = (row.info_hash, row.id);
    let (from, to) = (from.display(), to.display());
    api.blocking(move |d| d.rename_path(info_hash, &from, &to, RenameTarget::Either))
        .await
        .map_err(|e| e.to_string())?;
    api.refreshed().await;
    let mut answer = serde_json::Map::new();
    answer.insert("path".into(), path.into());
    answer.insert("name".into(), name.into());
    answer.insert("id".into(), id.into());
    Ok(answer)
}

/// queue-move-top/up/down/bottom.
pub async fn queue_move(api: &Arc<Api>, method: &str, args: &Args) -> Answer {
    let named = ids::select(&api.catalog, args)?.hashes();
    let snapshot = api.catalog.current();
    let mut queue: Vec<(u32, InfoHash)> = snapshot
        .rows
        .iter()
        .map(|r| (r.fixed.queue_position, r.info_hash))
        .collect();
    queue.sort();
    let order = moved(queue.into_iter().map(|(_, h)| h).collect(), &named, method);
    api.blocking(move |d| d.reorder_queue(&order))
        .await
        .map_err(|e| e.to_string())?;
    api.refreshed().await;
    Ok(Default::default())
}

/// The queue (first to last) after moving `named` as `method` says.
fn moved(queue: Vec<InfoHash>, named: &[InfoHash], method: &str) -> Vec<InfoHash> {
    let how = match method {
        "queue-move-top" => Move::Top,
        "queue-move-bottom" => Move::Bottom,
        "queue-move-up" => Move::Up,
        _ => Move::Down,
    };
    reordered(&queue, &named.iter().copied().collect(), how)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u8) -> InfoHash {
        ccbt_engine::Sha1Digest([n; 20])
    }

    #[test]
    fn queue_moves_keep_the_others_in_order() {
        let q = vec![h(1), h(2), h(3), h(4)];
        assert_eq!(
            moved(q.clone(), &[h(3)], "queue-move-top"),
            vec![h(3), h(1), h(2), h(4)]
        );
        assert_eq!(
            moved(q.clone(), &[h(2)], "queue-move-bottom"),
            vec![h(1), h(3), h(4), h(2)]
        );
        assert_eq!(
            moved(q.clone(), &[h(3), h(4)], "queue-move-up"),
            vec![h(1), h(3), h(4), h(2)]
        );
        assert_eq!(
            moved(q.clone(), &[h(1)], "queue-move-down"),
            vec![h(2), h(1), h(3), h(4)]
        );
        assert_eq!(moved(q.clone(), &[h(1)], "queue-move-up"), q);
    }
}
