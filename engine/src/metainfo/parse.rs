use thiserror::Error;

use super::sanitize::{clean_components, separate_collisions, Renamed};
use super::{
    Info, Layout, LayoutError, LayoutFile, Metainfo, PathError, TorrentPath, FILES_MAX,
    PIECE_LENGTH_MAX,
};
use crate::bencode::{self, DecodeError, Dict, Limits, Value};
use crate::hash::{Sha1, Sha1Digest};

/// Why a `.torrent` file was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetainfoError {
    #[error("not valid bencode")]
    Bencode(#[from] DecodeError),
    #[error("the torrent is not a bencoded dictionary")]
    NotADict,
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` should be a {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("`piece length` is {0}; it must be between 1 and {PIECE_LENGTH_MAX}")]
    BadPieceLength(i64),
    #[error("`pieces` is {0} bytes long, not a multiple of 20")]
    PiecesNotMultipleOf20(usize),
    #[error(
        "the files add up to {total_length} bytes, which needs {expected} pieces of \
         {piece_length} bytes, but `pieces` lists {actual}"
    )]
    PieceCountMismatch {
        total_length: u64,
        piece_length: u32,
        expected: u64,
        actual: usize,
    },
    #[error("file {file} has length {length}, which is not a valid size")]
    BadFileLength { file: usize, length: i64 },
    #[error("the info dict has both `length` and `files`")]
    BothLengthAndFiles,
    #[error("the torrent lists more than {FILES_MAX} files")]
    TooManyFiles,
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("the torrent name is unsafe: {0}")]
    BadName(PathError),
    #[error("the path of file {file} ({shown}) is unsafe: {reason}")]
    BadPath {
        file: usize,
        shown: String,
        reason: PathError,
    },
    #[error("this is a BitTorrent v2-only torrent; only v1 and hybrid torrents are supported")]
    V2Only,
}

type Result<T> = std::result::Result<T, MetainfoError>;

pub(super) fn parse(bytes: &[u8]) -> Result<Metainfo> {
    // Bytes after the root dictionary (a stray newline, a truncated re-upload) are not
    // part of anything the torrent means: ignored and counted, as libtorrent does.
    let (top, used) = bencode::decode_prefix(bytes, &Limits::TORRENT)?;
    let top = top.as_dict().ok_or(MetainfoError::NotADict)?;
    let info_dict = match top.get(b"info") {
        Some(Value::Dict(d)) => d,
        Some(_) => return Err(wrong("info", "dictionary")),
        None => return Err(MetainfoError::MissingField("info")),
    };
    let info_bytes = info_dict.raw().expect("decoded dicts keep their bytes");
    let info = parse_info(info_dict)?;

    Ok(Metainfo {
        info_hash: Sha1::digest(info_bytes),
        info,
        info_bytes: info_bytes.into(),
        announce: text(top, b"announce").filter(|s| !s.is_empty()),
        announce_list: announce_list(top),
        web_seeds: web_seeds(top),
        comment: text(top, b"comment.utf-8").or_else(|| text(top, b"comment")),
        created_by: text(top, b"created by"),
        creation_date: top.get(b"creation date").and_then(Value::as_int),
        trailing_bytes: bytes.len() - used,
    })
}

fn parse_info(info: &Dict<'_>) -> Result<Info> {
    let name = utf8_preferred(info, "name")?.ok_or(MetainfoError::MissingField("name"))?;
    let raw_name = String::from_utf8_lossy(name).into_owned();
    let (name_parts, name_why) = clean_components(&[name]).map_err(MetainfoError::BadName)?;
    let name = TorrentPath::new(&name_parts).map_err(MetainfoError::BadName)?;
    let mut renamed = Vec::new();

    let piece_length =
        int(info, "piece length")?.ok_or(MetainfoError::MissingField("piece length"))?;
    let piece_length = u32::try_from(piece_length)
        .ok()
        .filter(|&l| l > 0 && l <= PIECE_LENGTH_MAX)
        .ok_or(MetainfoError::BadPieceLength(piece_length))?;

    let pieces = match info.get(b"pieces") {
        Some(Value::Bytes(b)) => *b,
        Some(_) => return Err(wrong("pieces", "byte string")),
        None if is_v2_only(info) => return Err(MetainfoError::V2Only),
        None => return Err(MetainfoError::MissingField("pieces")),
    };
    if pieces.len() % 20 != 0 {
        return Err(MetainfoError::PiecesNotMultipleOf20(pieces.len()));
    }
    let pieces: Box<[Sha1Digest]> = pieces
        .chunks_exact(20)
        .map(|c| Sha1Digest(c.try_into().expect("chunks of 20")))
        .collect();

    let (files, multi_file) = match (info.get(b"length"), info.get(b"files")) {
        (Some(_), Some(_)) => return Err(MetainfoError::BothLengthAndFiles),
        (Some(length), None) => {
            let length = length.as_int().ok_or_else(|| wrong("length", "integer"))?;
            let file = LayoutFile {
                path: name.clone(),
                length: file_length(0, length)?,
                pad: false,
            };
            if let Some(why) = name_why {
                renamed.push(Renamed {
                    file: 0,
                    original: raw_name.clone(),
                    why,
                });
            }
            (vec![file], false)
        }
        (None, Some(Value::List(list))) => {
            let mut files = parse_files(&name, (&raw_name, name_why), list, &mut renamed)?;
            separate_collisions(&mut files, &mut renamed);
            renamed.sort_by_key(|r| r.file);
            (files, true)
        }
        (None, Some(_)) => return Err(wrong("files", "list")),
        (None, None) => return Err(MetainfoError::MissingField("length or files")),
    };
    let layout = Layout::new(piece_length, files)?;
    if layout.piece_count() as usize != pieces.len() {
        return Err(MetainfoError::PieceCountMismatch {
            total_length: layout.total_length(),
            piece_length,
            expected: layout.total_length().div_ceil(u64::from(piece_length)),
            actual: pieces.len(),
        });
    }

    Ok(Info {
        name,
        pieces,
        layout,
        private: int(info, "private")? == Some(1),
        multi_file,
        renamed,
    })
}

/// The files of a multi-file torrent, their paths made safe (see `sanitize`); each path
/// changed is added to `renamed`. `raw_name` is the torrent's name as it spells it, and why
/// it was changed if it was.
fn parse_files(
    name: &TorrentPath,
    (raw_name, name_why): (&str, Option<&'static str>),
    list: &[Value<'_>],
    renamed: &mut Vec<Renamed>,
) -> Result<Vec<LayoutFile>> {
    if list.len() > FILES_MAX {
        return Err(MetainfoError::TooManyFiles);
    }
    let mut files = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let field = |f: &str| format!("files[{i}].{f}");
        let entry = entry
            .as_dict()
            .ok_or_else(|| wrong(&format!("files[{i}]"), "dictionary"))?;
        let attr = match entry.get(b"attr") {
            Some(Value::Bytes(a)) => *a,
            _ => &[][..],
        };
        // BEP 47: a symlink entry holds no data of the torrent, and may come without a
        // length; it is kept as an empty, never stored entry (the link is not made).
        let symlink = attr.contains(&b'l');
        let pad = attr.contains(&b'p') || symlink;
        let length = match entry.get(b"length") {
            Some(Value::Int(l)) => file_length(i, *l)?,
            Some(_) => return Err(wrong(&field("length"), "integer")),
            None if symlink => 0,
            None => return Err(MetainfoError::MissingField("files[].length")),
        };
        let components = match entry.get(b"path.utf-8").or_else(|| entry.get(b"path")) {
            Some(Value::List(parts)) => parts
                .iter()
                .map(|p| {
                    p.as_bytes()
                        .ok_or_else(|| wrong(&field("path"), "list of byte strings"))
                })
                .collect::<Result<Vec<_>>>()?,
            Some(_) => return Err(wrong(&field("path"), "list of byte strings")),
            // A pad file is never stored: it needs no path of its own.
            None if pad => Vec::new(),
            None => return Err(MetainfoError::MissingField("files[].path")),
        };
        let shown = || {
            components
                .iter()
                .map(|c| String::from_utf8_lossy(c))
                .collect::<Vec<_>>()
                .join("/")
        };
        let path = if pad && components.is_empty() {
            let index = i.to_string();
            TorrentPath::new(name.components().chain([&b".pad"[..], index.as_bytes()]))
        } else {
            // The name is prepended below, so an empty list must be caught before that.
            clean_components(&components).and_then(|(parts, why)| {
                if let Some(why) = name_why.or(why).filter(|_| !pad) {
                    renamed.push(Renamed {
                        file: i,
                        original: format!("{raw_name}/{}", shown()),
                        why,
                    });
                }
                TorrentPath::new(name.components().chain(parts.iter().map(|p| &p[..])))
            })
        }
        .map_err(|reason| MetainfoError::BadPath {
            file: i,
            shown: shown(),
            reason,
        })?;
        files.push(LayoutFile { path, length, pad });
    }
    Ok(files)
}

fn file_length(file: usize, length: i64) -> Result<u64> {
    u64::try_from(length).map_err(|_| MetainfoError::BadFileLength { file, length })
}

fn is_v2_only(info: &Dict<'_>) -> bool {
    info.get(b"meta version").and_then(Value::as_int) == Some(2) && info.get(b"file tree").is_some()
}

fn wrong(field: &str, expected: &'static str) -> MetainfoError {
    MetainfoError::WrongType {
        field: field.to_string(),
        expected,
    }
}

fn int(dict: &Dict<'_>, key: &'static str) -> Result<Option<i64>> {
    match dict.get(key.as_bytes()) {
        None => Ok(None),
        Some(Value::Int(i)) => Ok(Some(*i)),
        Some(_) => Err(wrong(key, "integer")),
    }
}

/// `key.utf-8` when present (older clients wrote a legacy encoding in `key`), else `key`.
fn utf8_preferred<'a>(dict: &Dict<'a>, key: &'static str) -> Result<Option<&'a [u8]>> {
    let utf8_key = format!("{key}.utf-8");
    match dict
        .get(utf8_key.as_bytes())
        .or_else(|| dict.get(key.as_bytes()))
    {
        None => Ok(None),
        Some(Value::Bytes(b)) => Ok(Some(b)),
        Some(_) => Err(wrong(key, "byte string")),
    }
}

/// An advisory text field; anything malformed is treated as absent.
fn text(dict: &Dict<'_>, key: &[u8]) -> Option<String> {
    let bytes = dict.get(key)?.as_bytes()?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}

fn url(value: &Value<'_>) -> Option<String> {
    let s = std::str::from_utf8(value.as_bytes()?).ok()?.trim();
    (!s.is_empty()).then(|| s.to_string())
}

fn announce_list(top: &Dict<'_>) -> Vec<Vec<String>> {
    let Some(tiers) = top.get(b"announce-list").and_then(Value::as_list) else {
        return Vec::new();
    };
    tiers
        .iter()
        .filter_map(Value::as_list)
        .map(|tier| tier.iter().filter_map(url).collect::<Vec<_>>())
        .filter(|tier| !tier.is_empty())
        .collect()
}

/// BEP 19 allows `url-list` to be one string or a list of them.
fn web_seeds(top: &Dict<'_>) -> Vec<String> {
    match top.get(b"url-list") {
        Some(Value::List(list)) => list.iter().filter_map(url).collect(),
        Some(v) => url(v).into_iter().collect(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests;
