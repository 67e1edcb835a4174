//! The tracker fields of torrent-get: `trackers`, `trackerStats`, `trackerList` and the
//! magnet link, from the torrent's announce list and the tracker counts its shard
//! publishes. When announces and scrapes happened is not kept, so none is claimed.

use ccbt_shards::swarm::TorrentState;
use serde_json::{json, Value};

use crate::daemon::catalog::Row;

/// A tracker's scrape URL, by the usual convention (`.../announce` -> `.../scrape`).
pub fn scrape_url(announce: &str) -> String {
    match announce.rfind('/') {
        Some(i) if announce[i + 1..].starts_with("announce") => {
            format!("{}/scrape{}", &announce[..i], &announce[i + 1 + 8..])
        }
        _ => String::new(),
    }
}

fn host_of(url: &str) -> String {
    let rest = url.split("://").nth(1).unwrap_or(url);
    rest.split('/').next().unwrap_or(rest).to_string()
}

/// Percent-encodes a magnet link parameter.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn magnet_link(row: &Row) -> String {
    let meta = &row.fixed.meta;
    let mut link = format!(
        "magnet:?xt=urn:btih:{}&dn={}",
        row.info_hash.to_hex(),
        encode(&meta.info.name.display())
    );
    for tracker in meta.trackers().iter().flatten() {
        link.push_str("&tr=");
        link.push_str(&encode(tracker));
    }
    link
}

pub fn trackers(row: &Row) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for (tier, urls) in row.fixed.meta.trackers().into_iter().enumerate() {
        for url in urls {
            out.push((out.len(), tier, url));
        }
    }
    out
}

pub fn tracker_stats(row: &Row) -> Value {
    let swarm = row.live.swarm;
    let running = matches!(
        row.live.state,
        TorrentState::Downloading | TorrentState::Seeding
    );
    Value::Array(
        trackers(row)
            .into_iter()
            .map(|(id, tier, url)| {
                json!({
                    "announce": url,
                    "announceState": if running { 1 } else { 0 },
                    "downloadCount": swarm.and_then(|s| s.downloaded).map_or(-1, |d| d as i64),
                    // When the last announce and scrape were is not kept: saying they
                    // happened without a time would print "20,000 days ago".
                    "hasAnnounced": false,
                    "hasScraped": false,
                    "host": host_of(&url),
                    "id": id,
                    "isBackup": false,
                    "lastAnnouncePeerCount": 0,
                    "lastAnnounceResult": if swarm.is_some() { "Success" } else { "" },
                    "lastAnnounceStartTime": 0,
                    "lastAnnounceSucceeded": swarm.is_some(),
                    "lastAnnounceTime": 0,
                    "lastAnnounceTimedOut": false,
                    "lastScrapeResult": "",
                    "lastScrapeStartTime": 0,
                    "lastScrapeSucceeded": swarm.is_some_and(|s| s.downloaded.is_some()),
                    "lastScrapeTime": 0,
                    "lastScrapeTimedOut": false,
                    "leecherCount": swarm.map_or(-1, |s| s.leechers as i64),
                    "nextAnnounceTime": 0,
                    "nextScrapeTime": 0,
                    "scrape": scrape_url(&url),
                    "scrapeState": 0,
                    "seederCount": swarm.map_or(-1, |s| s.seeders as i64),
                    "sitename": site_name(&url),
                    "tier": tier,
                })
            })
            .collect(),
    )
}

/// The tracker's host name without its port (the web UI's "sitename").
pub fn site_name(url: &str) -> String {
    host_of(url).split(':').next().unwrap_or("").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_urls_follow_the_announce_convention() {
        assert_eq!(
            scrape_url("http://t.example:6969/announce"),
            "http://t.example:6969/scrape"
        );
        assert_eq!(
            scrape_url("http://t.example/x/announce.php?k=1"),
            "http://t.example/x/scrape.php?k=1"
        );
        assert_eq!(scrape_url("udp://t.example:1337"), "");
        assert_eq!(host_of("http://t.example:6969/announce"), "t.example:6969");
    }

    #[test]
    fn magnet_parameters_are_percent_encoded() {
        assert_eq!(encode("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }
}
