//! Building a new `.torrent` from a file layout and its piece hashes.

use super::path::{check_component, PathError};
use crate::bencode::{encode, Dict, Value};
use crate::hash::Sha1Digest;

/// One file of a torrent being created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    /// Path below the torrent's top directory; empty for a single-file torrent.
    pub path: Vec<Vec<u8>>,
    pub length: u64,
}

/// Everything that goes into a new torrent. [`NewTorrent::encode`] writes the same info
/// dict keys as mktorrent and Transmission (`files`/`length`, `name`, `piece length`,
/// `pieces`, `private` when set), so the same files and piece length give the same info hash.
#[derive(Debug, Clone, Default)]
pub struct NewTorrent {
    pub name: Vec<u8>,
    pub piece_length: u32,
    /// In torrent order. A single-file torrent has exactly one file with an empty path.
    pub files: Vec<NewFile>,
    pub piece_hashes: Vec<Sha1Digest>,
    pub private: bool,
    /// Each tracker becomes its own BEP 12 tier, in order, as mktorrent does.
    pub trackers: Vec<String>,
    pub web_seeds: Vec<String>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    /// Seconds since the Unix epoch; the caller reads the clock.
    pub creation_date: Option<i64>,
}

/// A piece length for `total_length` bytes: the smallest power of two from 16 KiB to 16 MiB
/// that keeps the torrent at 2048 pieces or fewer (a 2 GiB torrent gets 1 MiB pieces).
pub fn auto_piece_length(total_length: u64) -> u32 {
    const MIN: u64 = 16 << 10;
    const MAX: u64 = 16 << 20;
    total_length
        .div_ceil(2048)
        .next_power_of_two()
        .clamp(MIN, MAX) as u32
}

impl NewTorrent {
    pub fn is_single_file(&self) -> bool {
        self.files.len() == 1 && self.files[0].path.is_empty()
    }

    /// The bencoded `.torrent`. Fails if a name or path component could not be read back
    /// safely (the same checks the parser applies).
    pub fn encode(&self) -> Result<Vec<u8>, PathError> {
        check_component(&self.name)?;
        let pieces: Vec<u8> = self.piece_hashes.iter().flat_map(|h| h.0).collect();
        let mut info = Dict::new()
            .with(b"name", Value::Bytes(&self.name))
            .with(b"piece length", Value::Int(i64::from(self.piece_length)))
            .with(b"pieces", Value::Bytes(&pieces));
        if self.private {
            info.insert(b"private", Value::Int(1));
        }
        if self.is_single_file() {
            info.insert(b"length", Value::Int(self.files[0].length as i64));
        } else {
            let mut files = Vec::with_capacity(self.files.len());
            for f in &self.files {
                if f.path.is_empty() {
                    return Err(PathError::NoComponents);
                }
                let mut path = Vec::with_capacity(f.path.len());
                for c in &f.path {
                    check_component(c)?;
                    path.push(Value::Bytes(c));
                }
                files.push(Value::Dict(
                    Dict::new()
                        .with(b"length", Value::Int(f.length as i64))
                        .with(b"path", Value::List(path)),
                ));
            }
            info.insert(b"files", Value::List(files));
        }

        let mut top = Dict::new().with(b"info", Value::Dict(info));
        if let Some(first) = self.trackers.first() {
            top.insert(b"announce", Value::Bytes(first.as_bytes()));
        }
        if self.trackers.len() > 1 {
            let tiers = self
                .trackers
                .iter()
                .map(|t| Value::List(vec![Value::Bytes(t.as_bytes())]))
                .collect();
            top.insert(b"announce-list", Value::List(tiers));
        }
        if !self.web_seeds.is_empty() {
            let seeds = self
                .web_seeds
                .iter()
                .map(|u| Value::Bytes(u.as_bytes()))
                .collect();
            top.insert(b"url-list", Value::List(seeds));
        }
        if let Some(c) = &self.comment {
            top.insert(b"comment", Value::Bytes(c.as_bytes()));
        }
        if let Some(c) = &self.created_by {
            top.insert(b"created by", Value::Bytes(c.as_bytes()));
        }
        if let Some(d) = self.creation_date {
            top.insert(b"creation date", Value::Int(d));
        }
        Ok(encode(&Value::Dict(top)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_piece_length_targets_2048_pieces() {
        assert_eq!(auto_piece_length(1), 16 << 10);
        assert_eq!(auto_piece_length(2 << 30), 1 << 20);
        assert_eq!(auto_piece_length((2 << 30) + 1), 2 << 20);
        assert_eq!(auto_piece_length(1 << 50), 16 << 20);
    }

    #[test]
    fn refuses_to_write_what_it_would_refuse_to_read() {
        let t = NewTorrent {
            name: b"ok".to_vec(),
            piece_length: 16384,
            files: vec![NewFile {
                path: vec![b"..".to_vec()],
                length: 1,
            }],
            piece_hashes: vec![Sha1Digest::default()],
            ..NewTorrent::default()
        };
        assert_eq!(t.encode(), Err(PathError::DotComponent("..")));
    }
}
