//! BitTorrent v1 metainfo (BEP 3, with BEP 12 tiers, BEP 19 web seeds, BEP 27 private and
//! BEP 47 pad files): parsing, piece geometry, and building new torrents.
//!
//! Parsing is strict about everything that decides which bytes go where (the info dict) and
//! lenient about optional, advisory fields outside it, as libtorrent is: a malformed
//! `announce-list` entry is skipped, a malformed `pieces` string rejects the torrent.

mod build;
mod layout;
mod parse;
mod path;
mod rename;
mod sanitize;

pub use build::{auto_piece_length, NewFile, NewTorrent};
pub use layout::{FileSpan, Layout, LayoutError, LayoutFile, PieceIndex};
pub use parse::MetainfoError;
pub use path::{check_component, PathError, TorrentPath, COMPONENT_LEN_MAX};
pub use rename::{RenameError, RenameTarget, Renaming};
pub use sanitize::Renamed;

use crate::hash::{InfoHash, Sha1Digest};

/// Largest piece length we accept: a piece must fit in memory and be hashed in one go.
/// (Smaller than 16 KiB is unusual but legal in v1, so it is read.)
pub const PIECE_LENGTH_MAX: u32 = 256 << 20;

/// Most files one torrent may list.
pub const FILES_MAX: usize = 1_000_000;

/// A parsed `.torrent` file.
#[derive(Debug, Clone)]
pub struct Metainfo {
    pub info_hash: InfoHash,
    pub info: Info,
    /// The exact bytes of the `info` dict: what the info hash covers and what BEP 9 serves.
    pub info_bytes: std::sync::Arc<[u8]>,
    pub announce: Option<String>,
    /// BEP 12 tiers; empty when the torrent has none.
    pub announce_list: Vec<Vec<String>>,
    /// BEP 19 web seeds (`url-list`).
    pub web_seeds: Vec<String>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    /// Seconds since the Unix epoch, as the file states it.
    pub creation_date: Option<i64>,
    /// Bytes after the root dictionary, ignored.
    pub trailing_bytes: usize,
}

/// The `info` dict: what the info hash pins down.
#[derive(Debug, Clone)]
pub struct Info {
    /// The suggested name: the file name (single-file) or the top directory (multi-file).
    pub name: TorrentPath,
    /// One hash per piece of `layout`.
    pub pieces: Box<[Sha1Digest]>,
    /// Files and pieces; file paths start with `name` for multi-file torrents.
    pub layout: Layout,
    pub private: bool,
    /// Multi-file torrents put their files in a directory named `name`.
    pub multi_file: bool,
    /// Files whose on-disk path was made safe (see `sanitize`), by file index.
    pub renamed: Vec<Renamed>,
}

/// One file of the torrent's byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Path relative to the save directory.
    pub path: TorrentPath,
    pub length: u64,
    /// Where the file starts in the torrent's byte stream.
    pub offset: u64,
    /// A BEP 47 pad file: zeros that are hashed but never stored.
    pub pad: bool,
}

impl Metainfo {
    /// Parses a `.torrent` file.
    pub fn parse(bytes: &[u8]) -> Result<Self, MetainfoError> {
        parse::parse(bytes)
    }

    /// What is known of a torrent before its info dict: its info hash, a name to show and
    /// its trackers (one tier each), with no files and no pieces ([`Layout::unknown`]).
    /// For front ends listing a magnet link's torrent while its metadata is fetched; the
    /// fetched info dict replaces it.
    pub fn awaiting_metadata(info_hash: InfoHash, name: &str, trackers: Vec<String>) -> Self {
        let name = TorrentPath::new([name.as_bytes()])
            .or_else(|_| TorrentPath::new([info_hash.to_hex().as_bytes()]))
            .expect("a hex info hash is a valid path component");
        Metainfo {
            info_hash,
            info: Info {
                name,
                pieces: Box::new([]),
                layout: Layout::unknown(),
                private: false,
                multi_file: false,
                renamed: Vec::new(),
            },
            info_bytes: std::sync::Arc::from(&[][..]),
            announce: trackers.first().cloned(),
            announce_list: trackers.into_iter().map(|t| vec![t]).collect(),
            web_seeds: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
            trailing_bytes: 0,
        }
    }

    /// Trackers as BEP 12 tiers: `announce-list` when present, else `announce` alone.
    pub fn trackers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            return self.announce_list.clone();
        }
        self.announce.iter().map(|a| vec![a.clone()]).collect()
    }
}

impl Info {
    pub fn piece_hash(&self, piece: PieceIndex) -> Sha1Digest {
        self.pieces[piece.0 as usize]
    }
}

#[cfg(test)]
mod awaiting_metadata_tests {
    use super::*;

    #[test]
    fn a_magnet_torrent_has_its_name_and_trackers_and_nothing_else() {
        let hash = crate::Sha1Digest([7; 20]);
        let m = Metainfo::awaiting_metadata(hash, "Some Show", vec!["http://t/a".into()]);
        assert_eq!(m.info_hash, hash);
        assert_eq!(m.info.name.display(), "Some Show");
        assert_eq!(m.trackers(), vec![vec!["http://t/a".to_string()]]);
        assert_eq!(m.info.layout.total_length(), 0);
        assert_eq!(m.info.layout.piece_count(), 0);
        assert!(m.info.layout.files().is_empty());
        assert_eq!(m.info.layout.piece(0), None);
    }

    #[test]
    fn a_name_that_is_no_path_component_shows_as_the_hash() {
        let hash = crate::Sha1Digest([0xab; 20]);
        for bad in ["", "a/b", ".."] {
            let m = Metainfo::awaiting_metadata(hash, bad, Vec::new());
            assert_eq!(m.info.name.display(), hash.to_hex(), "{bad:?}");
        }
    }
}
