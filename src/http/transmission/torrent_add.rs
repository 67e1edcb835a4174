//! torrent-add: a `.torrent` given as `metainfo` (base64) or `filename` (a local path or
//! an `http://` or `https://` URL, fetched by [`crate::http::fetch`]), saved to `download-dir` (confined by `control.allowed_save_dirs`),
//! paused or not, with labels and file choices. Answers `torrent-added` or
//! `torrent-duplicate` with the torrent's id, name and hash.
//!
//! A magnet link (as `filename`, or where a URL redirects) is added at once and listed as
//! fetching its metadata (see [`crate::daemon::magnets`]); file choices given with it are
//! refused, since its files are not known yet.

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{json, Map};

use crate::daemon::core::{AddRequest, DaemonError};
use crate::daemon::magnets::Source;

use super::super::Api;
use super::dispatch::{Answer, Args};
use super::torrent_set;
use crate::http::fetch;

pub async fn add(api: &Arc<Api>, args: &Args) -> Answer {
    let limit = api.access.max_request_bytes;
    let source = match (args.str("metainfo")?, args.str("filename")?) {
        (Some(b64), _) => Source::Torrent(decode_base64(b64)?),
        (None, Some(name)) => source(name.trim(), limit).await?,
        (None, None) => {
            return Err("torrent-add needs \"filename\" or \"metainfo\"".into());
        }
    };
    let save_dir = match args.str("download-dir")? {
        Some(dir) if !dir.trim().is_empty() => Some(
            api.access
                .save_dir(dir, &api.blocking(|d| d.download_dir()).await)
                .map_err(|e| format!("download-dir: {e}"))?,
        ),
        _ => None,
    };
    let tags = args.strings("labels")?.unwrap_or_default();
    let changes = torrent_set::Changes::read(args)?;
    let paused = args.bool("paused")?.unwrap_or(false);
    let request = AddRequest {
        source,
        save_dir,
        paused,
        category: None,
        tags,
    };
    let (key, hash) = match api.blocking(move |d| d.add(request)).await {
        Ok(hash) => ("torrent-added", hash),
        Err(DaemonError::Duplicate(hash)) => ("torrent-duplicate", hash),
        Err(e) => return Err(e.to_string()),
    };
    api.refreshed().await;
    let snapshot = api.catalog.current();
    let row = snapshot
        .get(&hash)
        .ok_or("the torrent was removed while it was being added")?;
    if key == "torrent-added" {
        torrent_set::apply(api, row, &changes).await?;
        api.refreshed().await;
    }
    let mut out = Map::new();
    out.insert(
        key.into(),
        json!({
            "id": row.id,
            "name": row.fixed.meta.info.name.display(),
            "hashString": hash.to_hex(),
        }),
    );
    Ok(out)
}

fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(clean.as_bytes())
        .map_err(|e| format!("\"metainfo\" is not base64: {e}"))
}

/// What `filename` names: a local `.torrent`, a URL, or a magnet link.
async fn source(name: &str, limit: usize) -> Result<Source, String> {
    let scheme = name.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    if matches!(scheme.as_deref(), Some("http" | "https" | "magnet")) {
        return fetch::fetch(name, limit).await.map_err(|e| e.to_string());
    }
    let path = std::path::PathBuf::from(name);
    let read = tokio::task::spawn_blocking(move || {
        use std::io::Read;
        let file = std::fs::File::open(&path)?;
        let mut bytes = Vec::new();
        file.take(limit as u64 + 1).read_to_end(&mut bytes)?;
        Ok::<_, std::io::Error>(bytes)
    })
    .await
    .map_err(|_| "reading the file failed".to_string())?
    .map_err(|e| format!("{name}: {e}"))?;
    if read.len() > limit {
        return Err(format!(
            "{name}: over control.max_request_bytes ({limit} bytes)"
        ));
    }
    Ok(Source::from_bytes(read))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metainfo_may_be_wrapped_base64() {
        assert_eq!(
            decode_base64("ZDQ6\naW5mb2Rl\nZQ==").unwrap(),
            b"d4:infodee"
        );
        assert!(decode_base64("not base64!")
            .unwrap_err()
            .contains("not base64"));
    }

    #[tokio::test]
    async fn magnets_are_links_and_urls_go_to_the_shared_fetcher() {
        let link = "MAGNET:?xt=urn:btih:0123";
        assert!(matches!(source(link, 100).await, Ok(Source::Magnet(l)) if l == link));
        // Nothing listens on port 1: the fetcher tried to connect (over TLS, had it
        // answered), rather than reading a local file named "https:/...".
        let https = source("https://127.0.0.1:1/a.torrent", 100)
            .await
            .unwrap_err();
        assert!(https.contains("cannot connect"), "{https}");
        let missing = source("/nonexistent/x.torrent", 100).await.unwrap_err();
        assert!(missing.starts_with("/nonexistent/x.torrent: "), "{missing}");
    }
}
