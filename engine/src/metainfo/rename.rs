//! Renaming a torrent's files and folders (Transmission's `torrent-rename-path`,
//! qBittorrent's `renameFile` and `renameFolder`).
//!
//! Only where each file lives under the save directory changes: the info dict, its bytes
//! and its hash stay as they were, so peers and trackers see the same torrent. A rename
//! is checked like a new layout is: every new component must be a safe one, and no two
//! files may end up on one path (or a file where another needs a directory).

use thiserror::Error;

use super::{Layout, LayoutError, LayoutFile, Metainfo, PathError, TorrentPath};

/// What a rename may name: Transmission renames either, qBittorrent has a call for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameTarget {
    File,
    Folder,
    Either,
}

/// Why a rename was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RenameError {
    #[error("the torrent has no file or folder {0}")]
    NotFound(String),
    #[error("{0} is a folder, not a file")]
    NotAFile(String),
    #[error("{0} is a file, not a folder")]
    NotAFolder(String),
    #[error("the new name is not a safe path: {0}")]
    BadPath(#[from] PathError),
    #[error("{0} is taken by another of the torrent's files")]
    Taken(String),
    #[error("the torrent's files are not known yet")]
    NoFiles,
    #[error("{paths} paths for {files} files")]
    WrongCount { paths: usize, files: usize },
    #[error(transparent)]
    Layout(LayoutError),
}

/// A rename carried out on the metainfo: the new metainfo, and each stored file that
/// moved as (index, old path, new path), for the storage to follow.
#[derive(Debug, Clone)]
pub struct Renaming {
    pub metainfo: Metainfo,
    pub moves: Vec<(usize, TorrentPath, TorrentPath)>,
}

impl Metainfo {
    /// A copy with the file or folder at `from` (a path as the torrent lists its files,
    /// starting with the torrent's name for a multi-file torrent) at `to` instead: a file
    /// moves itself, a folder every file beneath it. Renaming the torrent's top entry
    /// (its single file, or the folder that holds its files) renames the torrent too,
    /// as Transmission does.
    pub fn renamed(
        &self,
        from: &TorrentPath,
        to: &TorrentPath,
        target: RenameTarget,
    ) -> Result<Renaming, RenameError> {
        let files = self.info.layout.files();
        if files.is_empty() {
            return Err(RenameError::NoFiles);
        }
        let is_file = files.iter().any(|f| !f.pad && f.path == *from);
        let is_folder = !is_file && files.iter().any(|f| f.path.starts_with(from));
        match (is_file, is_folder, target) {
            (false, false, _) => return Err(RenameError::NotFound(from.display())),
            (true, _, RenameTarget::Folder) => return Err(RenameError::NotAFolder(from.display())),
            (false, true, RenameTarget::File) => return Err(RenameError::NotAFile(from.display())),
            _ => {}
        }
        let mut moves = Vec::new();
        let mut paths: Vec<TorrentPath> = Vec::with_capacity(files.len());
        for (index, f) in files.iter().enumerate() {
            let Some(rest) = f.path.strip_prefix(from) else {
                paths.push(f.path.clone());
                continue;
            };
            let new = to.joined(rest);
            if !f.pad && new != f.path {
                moves.push((index, f.path.clone(), new.clone()));
            }
            paths.push(new);
        }
        let mut metainfo = self.with_paths(paths)?;
        if from.len() == 1 && *from == self.info.name {
            metainfo.info.name = to.last();
        }
        Ok(Renaming { metainfo, moves })
    }

    /// A copy whose files are at `paths` (one per file, in torrent order), checked as a
    /// new layout is.
    pub fn with_paths(&self, paths: Vec<TorrentPath>) -> Result<Metainfo, RenameError> {
        let layout = &self.info.layout;
        if paths.len() != layout.files().len() || paths.is_empty() {
            return Err(RenameError::WrongCount {
                paths: paths.len(),
                files: layout.files().len(),
            });
        }
        let files = layout
            .files()
            .iter()
            .zip(paths)
            .map(|(f, path)| LayoutFile {
                path,
                length: f.length,
                pad: f.pad,
            });
        let layout = Layout::new(layout.piece_length(), files).map_err(|e| match e {
            LayoutError::PathCollision(path) => RenameError::Taken(path),
            // Not reached: the lengths and piece length are the torrent's own, valid ones.
            other => RenameError::Layout(other),
        })?;
        let mut renamed = self.clone();
        renamed.info.layout = layout;
        Ok(renamed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::{NewFile, NewTorrent};

    fn path(s: &str) -> TorrentPath {
        TorrentPath::new(s.split('/')).unwrap()
    }

    /// A torrent named "show" with `files` (none: a single-file torrent), 1000 bytes each.
    fn torrent(files: &[&str]) -> Metainfo {
        let files: Vec<NewFile> = if files.is_empty() {
            vec![NewFile {
                path: Vec::new(),
                length: 1000,
            }]
        } else {
            files
                .iter()
                .map(|f| NewFile {
                    path: f.split('/').map(|c| c.as_bytes().to_vec()).collect(),
                    length: 1000,
                })
                .collect()
        };
        let total: u64 = files.iter().map(|f| f.length).sum();
        let new = NewTorrent {
            name: b"show".to_vec(),
            piece_length: 16 << 10,
            piece_hashes: vec![crate::hash::Sha1Digest([0; 20]); total.div_ceil(16 << 10) as usize],
            files,
            ..NewTorrent::default()
        };
        Metainfo::parse(&new.encode().unwrap()).unwrap()
    }

    fn listed(meta: &Metainfo) -> Vec<String> {
        meta.info
            .layout
            .files()
            .iter()
            .map(|f| f.path.display())
            .collect()
    }

    #[test]
    fn a_file_moves_alone_and_the_hash_stays() {
        let meta = torrent(&["a.mkv", "sub/b.srt"]);
        let r = meta
            .renamed(&path("show/a.mkv"), &path("show/A.mkv"), RenameTarget::File)
            .unwrap();
        assert_eq!(listed(&r.metainfo), ["show/A.mkv", "show/sub/b.srt"]);
        assert_eq!(r.moves, [(0, path("show/a.mkv"), path("show/A.mkv"))]);
        assert_eq!(r.metainfo.info_hash, meta.info_hash);
        assert_eq!(r.metainfo.info.name, meta.info.name);
    }

    #[test]
    fn a_folder_takes_its_files_and_the_top_folder_renames_the_torrent() {
        let meta = torrent(&["a.mkv", "sub/b.srt", "sub/c.srt"]);
        let r = meta
            .renamed(&path("show/sub"), &path("show/subs"), RenameTarget::Folder)
            .unwrap();
        assert_eq!(
            listed(&r.metainfo),
            ["show/a.mkv", "show/subs/b.srt", "show/subs/c.srt"]
        );
        assert_eq!(r.moves.len(), 2);
        let r = meta
            .renamed(&path("show"), &path("Show (2026)"), RenameTarget::Either)
            .unwrap();
        assert_eq!(r.metainfo.info.name.display(), "Show (2026)");
        assert_eq!(r.moves.len(), 3);
        assert_eq!(listed(&r.metainfo)[0], "Show (2026)/a.mkv");
    }

    #[test]
    fn refusals_name_the_reason() {
        let meta = torrent(&["a.mkv", "sub/b.srt"]);
        let rename = |from: &str, to: &str, target| meta.renamed(&path(from), &path(to), target);
        assert_eq!(
            rename("show/nope", "show/x", RenameTarget::Either).unwrap_err(),
            RenameError::NotFound("show/nope".into())
        );
        // A prefix of a name is not a folder.
        assert!(matches!(
            rename("show/su", "show/x", RenameTarget::Either),
            Err(RenameError::NotFound(_))
        ));
        assert!(matches!(
            rename("show/sub", "show/x", RenameTarget::File),
            Err(RenameError::NotAFile(_))
        ));
        assert!(matches!(
            rename("show/a.mkv", "show/x", RenameTarget::Folder),
            Err(RenameError::NotAFolder(_))
        ));
        assert_eq!(
            rename("show/a.mkv", "show/sub/b.srt", RenameTarget::File).unwrap_err(),
            RenameError::Taken("show/sub/b.srt".into())
        );
        // A file where the folder needs to be.
        assert!(matches!(
            rename("show/a.mkv", "show/sub", RenameTarget::File),
            Err(RenameError::Taken(_))
        ));
        // Unchanged: no moves, same files.
        let same = rename("show/a.mkv", "show/a.mkv", RenameTarget::File).unwrap();
        assert!(same.moves.is_empty());
        assert_eq!(listed(&same.metainfo), listed(&meta));
    }

    #[test]
    fn a_single_file_torrent_renames_its_file_and_its_name() {
        let meta = torrent(&[]);
        let r = meta
            .renamed(&path("show"), &path("show.mkv"), RenameTarget::File)
            .unwrap();
        assert_eq!(listed(&r.metainfo), ["show.mkv"]);
        assert_eq!(r.metainfo.info.name.display(), "show.mkv");
    }

    #[test]
    fn stored_paths_come_back() {
        let meta = torrent(&["a.mkv", "b.mkv"]);
        let again = meta
            .with_paths(vec![path("show/x/a.mkv"), path("show/b.mkv")])
            .unwrap();
        assert_eq!(listed(&again), ["show/x/a.mkv", "show/b.mkv"]);
        // Too few paths: refused rather than dropping files.
        assert_eq!(
            meta.with_paths(vec![path("show/a.mkv")]).unwrap_err(),
            RenameError::WrongCount { paths: 1, files: 2 }
        );
    }
}
