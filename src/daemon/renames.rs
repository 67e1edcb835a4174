//! Renamed files and folders (Transmission's `torrent-rename-path`, qBittorrent's
//! `renameFile`/`renameFolder`): the paths the APIs name, and how a torrent's renames are
//! kept in its settings so a restart finds its files where they were put.
//!
//! The `.torrent` stays as it was added; the settings hold each renamed file's path (by
//! file index, `/`-separated) and the torrent's new name. Pad files are never stored and
//! never recorded. A path component that is not UTF-8 is kept as its lossy display (the
//! APIs cannot name such a component exactly anyway).

use std::collections::BTreeMap;

use ccbt_engine::metainfo::{Metainfo, PathError, RenameError, Renaming, TorrentPath};

/// Most bytes of a path an API may name: PATH_MAX.
const PATH_LEN_MAX: usize = 4096;

/// A path as the APIs write it (`show/sub/file.mkv`): `/`-separated, leading and trailing
/// separators ignored; `.`, `..`, empty or over-long components refused.
pub fn parse_path(text: &str) -> Result<TorrentPath, RenameError> {
    if text.len() > PATH_LEN_MAX {
        return Err(RenameError::BadPath(PathError::TooLong(text.len())));
    }
    Ok(TorrentPath::new(text.trim_matches('/').split('/'))?)
}

/// Transmission's `name`: one component, never a path.
pub fn parse_name(text: &str) -> Result<TorrentPath, RenameError> {
    Ok(TorrentPath::new([text])?)
}

/// What a torrent's settings keep of its renames.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Renames {
    /// The torrent's name, when renamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// File index to its path now.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<usize, String>,
}

impl Renames {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.files.is_empty()
    }

    /// Takes note of a rename carried out.
    pub fn record(&mut self, renaming: &Renaming) {
        for (index, _, to) in &renaming.moves {
            self.files.insert(*index, to.display());
        }
        self.name = Some(renaming.metainfo.info.name.display());
    }

    /// `meta` (as parsed from its `.torrent`) with these renames applied.
    pub fn apply(&self, meta: &Metainfo) -> Result<Metainfo, RenameError> {
        if self.is_empty() {
            return Ok(meta.clone());
        }
        let files = meta.info.layout.files();
        if let Some((&index, _)) = self.files.range(files.len()..).next() {
            return Err(RenameError::WrongCount {
                paths: index + 1,
                files: files.len(),
            });
        }
        let mut paths: Vec<TorrentPath> = files.iter().map(|f| f.path.clone()).collect();
        for (&index, path) in &self.files {
            paths[index] = parse_path(path)?;
        }
        let mut renamed = meta.with_paths(paths)?;
        if let Some(name) = &self.name {
            renamed.info.name = parse_name(name)?;
        }
        Ok(renamed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ccbt_engine::metainfo::{NewFile, NewTorrent, RenameTarget};
    use ccbt_engine::Sha1Digest;

    #[test]
    fn api_paths_are_checked() {
        assert_eq!(parse_path("/show/a.mkv/").unwrap().display(), "show/a.mkv");
        for bad in ["", "show/../x", "show//x", "show/./x"] {
            assert!(parse_path(bad).is_err(), "{bad:?}");
        }
        assert!(parse_path(&"a/".repeat(3000)).is_err());
        assert!(parse_name("a/b").is_err());
        assert!(parse_name("..").is_err());
        assert_eq!(parse_name("New name").unwrap().display(), "New name");
    }

    #[test]
    fn recorded_renames_come_back_after_a_restart() {
        let bytes = NewTorrent {
            name: b"show".to_vec(),
            piece_length: 16_384,
            files: vec![
                NewFile {
                    path: vec![b"a.mkv".to_vec()],
                    length: 3000,
                },
                NewFile {
                    path: vec![b"sub".to_vec(), b"b.srt".to_vec()],
                    length: 10,
                },
            ],
            piece_hashes: vec![Sha1Digest::default()],
            ..NewTorrent::default()
        }
        .encode()
        .unwrap();
        let meta = Metainfo::parse(&bytes).unwrap();
        let step = meta
            .renamed(
                &parse_path("show/sub").unwrap(),
                &parse_path("show/Subs").unwrap(),
                RenameTarget::Folder,
            )
            .unwrap();
        let step2 = step
            .metainfo
            .renamed(
                &parse_path("show").unwrap(),
                &parse_path("Show (2026)").unwrap(),
                RenameTarget::Either,
            )
            .unwrap();
        let mut kept = Renames::default();
        kept.record(&step);
        kept.record(&step2);
        let json = serde_json::to_string(&kept).unwrap();
        let back: Renames = serde_json::from_str(&json).unwrap();
        let again = back.apply(&Metainfo::parse(&bytes).unwrap()).unwrap();
        let paths: Vec<String> = again
            .info
            .layout
            .files()
            .iter()
            .map(|f| f.path.display())
            .collect();
        assert_eq!(paths, ["Show (2026)/a.mkv", "Show (2026)/Subs/b.srt"]);
        assert_eq!(again.info.name.display(), "Show (2026)");
        // Renames for another layout are refused, not half applied.
        let mut wrong = back.clone();
        wrong.files.insert(9, "x".into());
        assert!(wrong.apply(&meta).is_err());
    }
}
