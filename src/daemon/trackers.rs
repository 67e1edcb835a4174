//! Tracker edits (Transmission's trackerAdd/trackerRemove/trackerReplace/trackerList,
//! qBittorrent's addTrackers/editTracker/removeTrackers): the new tiers are checked here,
//! kept in the torrent's settings (its `.torrent` stays as it was added), put in the
//! registry's metainfo so every listing shows them, and given to its shard, which
//! announces to them at once.
//!
//! Bounds: at most [`TRACKERS_MAX`] URLs of at most [`URL_LEN_MAX`] bytes, each `http`,
//! `https` or `udp`; a URL given twice is kept once (its first place), empty tiers go.

use ccbt_engine::metainfo::Metainfo;
use thiserror::Error;

/// Most tracker URLs one torrent may have.
pub const TRACKERS_MAX: usize = 200;
/// Longest tracker URL taken.
pub const URL_LEN_MAX: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TrackerEditError {
    #[error("{0:?} is not an http, https or udp tracker URL")]
    BadUrl(String),
    #[error("more than {TRACKERS_MAX} trackers")]
    TooMany,
}

/// `tiers` cleaned: URLs trimmed and checked, duplicates and empty tiers dropped.
pub fn clean(tiers: Vec<Vec<String>>) -> Result<Vec<Vec<String>>, TrackerEditError> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for tier in tiers {
        let mut kept = Vec::new();
        for url in tier {
            let url = url.trim().to_string();
            if url.is_empty() {
                continue;
            }
            check(&url)?;
            if seen.insert(url.clone()) {
                if seen.len() > TRACKERS_MAX {
                    return Err(TrackerEditError::TooMany);
                }
                kept.push(url);
            }
        }
        if !kept.is_empty() {
            out.push(kept);
        }
    }
    Ok(out)
}

fn check(url: &str) -> Result<(), TrackerEditError> {
    let bad = || TrackerEditError::BadUrl(url.chars().take(200).collect());
    if url.len() > URL_LEN_MAX {
        return Err(bad());
    }
    let parsed = url::Url::parse(url).map_err(|_| bad())?;
    match parsed.scheme() {
        "http" | "https" | "udp" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        _ => Err(bad()),
    }
}

/// `meta` announcing to `tiers` instead of its own trackers (the info dict, and so the
/// info hash, unchanged).
pub fn with_tiers(meta: &Metainfo, tiers: &[Vec<String>]) -> Metainfo {
    let mut edited = meta.clone();
    edited.announce = tiers.first().and_then(|t| t.first()).cloned();
    edited.announce_list = tiers.to_vec();
    edited
}

/// Transmission's `trackerList`: one URL per line, a blank line between tiers.
pub fn parse_list(text: &str) -> Vec<Vec<String>> {
    let mut tiers = vec![Vec::new()];
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if tiers.last().is_some_and(|t| !t.is_empty()) {
                tiers.push(Vec::new());
            }
        } else {
            tiers
                .last_mut()
                .expect("one tier at least")
                .push(line.to_string());
        }
    }
    tiers.retain(|t| !t.is_empty());
    tiers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_reads_as_tiers_separated_by_blank_lines() {
        let tiers = parse_list("http://a/1\nudp://b:80\n\n\n  https://c/x  \n");
        assert_eq!(
            tiers,
            vec![
                vec!["http://a/1".to_string(), "udp://b:80".to_string()],
                vec!["https://c/x".to_string()]
            ]
        );
        assert!(parse_list("").is_empty());
    }

    #[test]
    fn cleaning_drops_duplicates_and_empty_tiers_and_refuses_what_is_not_a_tracker() {
        let tiers = vec![
            vec!["http://a/1".into(), " ".into()],
            vec!["http://a/1".into()],
            vec!["udp://b:6969".into()],
        ];
        assert_eq!(
            clean(tiers).unwrap(),
            vec![
                vec!["http://a/1".to_string()],
                vec!["udp://b:6969".to_string()]
            ]
        );
        for bad in ["ftp://x/y", "not a url", "http://", "javascript:alert(1)"] {
            assert!(
                matches!(
                    clean(vec![vec![bad.into()]]),
                    Err(TrackerEditError::BadUrl(_))
                ),
                "{bad}"
            );
        }
        let long = format!("http://a/{}", "x".repeat(URL_LEN_MAX));
        assert!(clean(vec![vec![long]]).is_err());
        let many: Vec<Vec<String>> = (0..=TRACKERS_MAX)
            .map(|i| vec![format!("http://t{i}/a")])
            .collect();
        assert_eq!(clean(many), Err(TrackerEditError::TooMany));
    }
}
