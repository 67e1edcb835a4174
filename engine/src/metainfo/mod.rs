//! BitTorrent v1 metainfo (BEP 3, with BEP 12 tiers, BEP 19 web seeds, BEP 27 private and
//! BEP 47 pad files): parsing, piece geometry, and building new torrents.
//!
//! Parsing is strict about everything that decides which bytes go where (the info dict) and
//! lenient about optional, advisory fields outside it, as libtorrent is: a malformed
//! `announce-list` entry is skipped, a malformed `pieces` string rejects the torrent.

mod build;
mod geometry;
mod parse;
mod path;

pub use build::{auto_piece_length, NewFile, NewTorrent};
pub use geometry::{FileSpan, PieceIndex};
pub use parse::MetainfoError;
pub use path::{check_component, PathError, TorrentPath, COMPONENT_LEN_MAX};

use crate::hash::{InfoHash, Sha1Digest};

/// Smallest and largest piece length we accept. libtorrent and Transmission make pieces from
/// 16 KiB up; older tools made smaller ones, so anything from one block-free byte count up is
/// read, but a piece must fit in memory and be hashable in one go.
pub const PIECE_LENGTH_MAX: u32 = 256 << 20;

/// Most files one torrent may list.
pub const FILES_MAX: usize = 1_000_000;

/// A parsed `.torrent` file.
#[derive(Debug, Clone)]
pub struct Metainfo {
    pub info_hash: InfoHash,
    pub info: Info,
    /// The exact bytes of the `info` dict: what the info hash covers and what BEP 9 serves.
    pub info_bytes: Box<[u8]>,
    pub announce: Option<String>,
    /// BEP 12 tiers; empty when the torrent has none.
    pub announce_list: Vec<Vec<String>>,
    /// BEP 19 web seeds (`url-list`).
    pub web_seeds: Vec<String>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    /// Seconds since the Unix epoch, as the file states it.
    pub creation_date: Option<i64>,
}

/// The `info` dict: what the info hash pins down.
#[derive(Debug, Clone)]
pub struct Info {
    /// The suggested name: the file name (single-file) or the top directory (multi-file).
    pub name: TorrentPath,
    pub piece_length: u32,
    pub pieces: Box<[Sha1Digest]>,
    /// Files in torrent order; each path starts with `name` for multi-file torrents.
    pub files: Vec<FileEntry>,
    pub private: bool,
    /// Multi-file torrents put their files in a directory named `name`.
    pub multi_file: bool,
    pub total_length: u64,
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

    /// Trackers as BEP 12 tiers: `announce-list` when present, else `announce` alone.
    pub fn trackers(&self) -> Vec<Vec<String>> {
        if !self.announce_list.is_empty() {
            return self.announce_list.clone();
        }
        self.announce.iter().map(|a| vec![a.clone()]).collect()
    }
}

impl Info {
    pub fn piece_count(&self) -> u32 {
        self.pieces.len() as u32
    }

    /// Validates a piece number from outside (a peer, a CLI argument).
    pub fn piece(&self, index: u32) -> Option<PieceIndex> {
        (index < self.piece_count()).then_some(PieceIndex(index))
    }

    /// All pieces in order.
    pub fn pieces_iter(&self) -> impl Iterator<Item = PieceIndex> {
        (0..self.piece_count()).map(PieceIndex)
    }

    pub fn piece_hash(&self, piece: PieceIndex) -> Sha1Digest {
        self.pieces[piece.0 as usize]
    }
}
