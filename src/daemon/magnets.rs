//! Torrents added to the daemon from magnet links, until their metadata is known.
//!
//! Such a torrent is in the registry at once, with what the link says (its info hash, `dn`
//! and trackers) standing in for its metainfo ([`Metainfo::awaiting_metadata`]: no files,
//! no pieces), so every API lists it as fetching metadata. Its shard fetches the info dict
//! (`ccbt_shards::swarm::MagnetSpec`) and, once it is verified, runs the torrent; the
//! daemon then *adopts* it: the registry takes the real metainfo and the state database the
//! `.torrent` (the info dict with the link's trackers), so a restart never fetches it again.
//!
//! Until adoption the state database's `metainfo` column holds the magnet link itself
//! (a `.torrent` starts with `d`, a link with `magnet:`, so the two cannot be confused);
//! a restart then fetches the metadata again. A paused link fetches nothing; resuming
//! starts a new fetch (the shard keeps nothing of a stopped one). Commands that need the
//! files (priorities, recheck, move) answer "still fetching its metadata".

use std::path::PathBuf;
use std::sync::Arc;

use ccbt_engine::magnet::{Magnet, MagnetError};
use ccbt_engine::metadata::METADATA_SIZE_MAX_DEFAULT;
use ccbt_engine::metainfo::Metainfo;
use ccbt_shards::swarm::MagnetSpec;

/// What an add is given: a `.torrent`'s bytes or a magnet link.
#[derive(Debug, Clone)]
pub enum Source {
    Torrent(Vec<u8>),
    Magnet(String),
}

impl Source {
    /// A magnet link when the bytes are one (leading whitespace allowed, as in a
    /// `.magnet` file), else a `.torrent`'s bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Source {
        let start = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(bytes.len());
        let rest = &bytes[start..];
        if rest.len() >= 7 && rest[..7].eq_ignore_ascii_case(b"magnet:") {
            if let Ok(text) = std::str::from_utf8(rest) {
                return Source::Magnet(text.trim().to_string());
            }
        }
        Source::Torrent(bytes)
    }
}

/// A magnet link whose metadata the daemon is waiting for.
#[derive(Debug)]
pub struct PendingMagnet {
    /// The link as given: what the state database keeps until adoption.
    pub link: String,
    pub magnet: Magnet,
}

impl PendingMagnet {
    pub fn parse(link: String) -> Result<PendingMagnet, MagnetError> {
        let magnet = Magnet::parse(&link)?;
        Ok(PendingMagnet { link, magnet })
    }

    /// What the registry shows until the metadata is known.
    pub fn placeholder(&self) -> Metainfo {
        let name = self
            .magnet
            .display_name
            .clone()
            .unwrap_or_else(|| self.magnet.info_hash.to_hex());
        Metainfo::awaiting_metadata(self.magnet.info_hash, &name, self.magnet.trackers.clone())
    }

    /// What the shard is given to fetch the metadata and then run the torrent (host
    /// names in `x.pe` are resolved here: call it off any async runtime).
    pub fn spec(&self, save_dir: PathBuf, limits: (u64, u64)) -> MagnetSpec {
        MagnetSpec {
            info_hash: self.magnet.info_hash,
            display_name: self.magnet.display_name.clone(),
            trackers: self.magnet.trackers.clone(),
            web_seeds: self.magnet.web_seeds.clone(),
            peers: crate::commands::magnet::magnet_peers(&self.magnet),
            metadata_size_max: METADATA_SIZE_MAX_DEFAULT,
            metadata_only: false,
            select_only: crate::commands::magnet::selected_files(&self.magnet),
            save_dir,
            sequential: false,
            keep_seeding: true,
            paused: false,
            upload_bytes_per_s: limits.0,
            download_bytes_per_s: limits.1,
        }
    }

    /// The `.torrent` to keep once `meta` is fetched: its info dict, byte for byte, with
    /// the link's trackers and web seeds.
    pub fn torrent_file(&self, meta: &Metainfo) -> Vec<u8> {
        ccbt_engine::metadata::torrent_file(
            &meta.info_bytes,
            &self.magnet.trackers,
            &self.magnet.web_seeds,
        )
    }
}

/// A shared handle, as the registry keeps it.
pub type Pending = Arc<PendingMagnet>;

#[cfg(test)]
mod tests {
    use super::*;

    const LINK: &str = "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567&dn=Show&tr=http%3A%2F%2Ft%2Fa";

    #[test]
    fn a_link_is_told_from_a_torrent_by_its_scheme() {
        assert!(matches!(
            Source::from_bytes(format!("  {LINK}\n").into_bytes()),
            Source::Magnet(l) if l == LINK
        ));
        assert!(matches!(
            Source::from_bytes(b"MAGNET:?xt=x".to_vec()),
            Source::Magnet(_)
        ));
        assert!(matches!(
            Source::from_bytes(b"d8:announce".to_vec()),
            Source::Torrent(_)
        ));
        assert!(matches!(Source::from_bytes(Vec::new()), Source::Torrent(_)));
    }

    #[test]
    fn the_placeholder_shows_the_links_name_hash_and_trackers() {
        let p = PendingMagnet::parse(LINK.into()).unwrap();
        let meta = p.placeholder();
        assert_eq!(
            meta.info_hash.to_hex(),
            "0123456789abcdef0123456789abcdef01234567"
        );
        assert_eq!(meta.info.name.display(), "Show");
        assert_eq!(meta.trackers(), vec![vec!["http://t/a".to_string()]]);
        let unnamed = PendingMagnet::parse(
            "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567".into(),
        )
        .unwrap();
        assert_eq!(
            unnamed.placeholder().info.name.display(),
            "0123456789abcdef0123456789abcdef01234567"
        );
    }

    #[test]
    fn a_bad_link_is_refused() {
        assert!(PendingMagnet::parse("magnet:?dn=no-hash".into()).is_err());
    }
}
