//! Odd but harmless paths in a torrent, mapped to safe ones inside the save directory, as
//! libtorrent (and so qBittorrent and Deluge) does: the info hash and the data stay as they
//! are; only where a file lands on disk changes, and every change is recorded so `info` and
//! the log can say which paths were changed.
//!
//! Mapped: an empty or `.` component (an absolute path, a doubled slash) is dropped; a `/`
//! or `\` inside a component is replaced with `_`; a component over 255 bytes is shortened
//! keeping its extension; two files on one path, or on paths that differ only by case or
//! Unicode normalisation (which would be one file on a case-insensitive or normalising file
//! system), get a ` (N)` suffix, as does a file on a path another file needs as its
//! directory. Still refused: a `..` component (it shows intent to leave the directory), a
//! NUL byte, and a path with nothing left.

use std::collections::{HashMap, HashSet};

use unicode_normalization::UnicodeNormalization;

use super::path::{PathError, TorrentPath, COMPONENT_LEN_MAX};
use super::LayoutFile;

/// One file whose on-disk path differs from the torrent's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renamed {
    /// Index into the layout's files.
    pub file: usize,
    /// The path as the torrent spells it (lossily decoded, `/`-joined).
    pub original: String,
    /// Why it was changed; the new path is the layout's.
    pub why: &'static str,
}

/// Longest extension kept whole when a long component is shortened.
const EXTENSION_MAX: usize = 32;
/// Suffixes tried for one colliding file before giving up (bounds the work per file).
const SUFFIX_MAX: usize = 10_000;

/// Safe components for `raw`, and why they differ (`None` if they do not).
pub fn clean_components(raw: &[&[u8]]) -> Result<(Vec<Vec<u8>>, Option<&'static str>), PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut why = None;
    for &c in raw {
        match c {
            b".." => return Err(PathError::DotComponent("..")),
            _ if c.contains(&0) => return Err(PathError::Nul),
            [] | b"." => why = why.or(Some("empty or `.` component dropped")),
            _ => {
                let mut c = c.to_vec();
                if c.iter().any(|&b| b == b'/' || b == b'\\') {
                    for b in c.iter_mut().filter(|b| **b == b'/' || **b == b'\\') {
                        *b = b'_';
                    }
                    why = why.or(Some("separator inside a name replaced"));
                }
                if c.len() > COMPONENT_LEN_MAX {
                    c = shorten(&c, COMPONENT_LEN_MAX);
                    why = why.or(Some("name over 255 bytes shortened"));
                }
                out.push(c);
            }
        }
    }
    if out.is_empty() {
        return Err(PathError::NoComponents);
    }
    Ok((out, why))
}

/// `c` cut to at most `max` bytes, keeping a short extension and whole UTF-8 characters.
fn shorten(c: &[u8], max: usize) -> Vec<u8> {
    let ext_at = c
        .iter()
        .rposition(|&b| b == b'.')
        .filter(|&at| at > 0 && c.len() - at <= EXTENSION_MAX);
    let (stem, ext) = match ext_at {
        Some(at) => c.split_at(at),
        None => (c, &[][..]),
    };
    let mut keep = max.saturating_sub(ext.len()).min(stem.len());
    // Back up to a character boundary (continuation bytes are 0b10xxxxxx).
    while keep > 0 && keep < stem.len() && stem[keep] & 0xC0 == 0x80 {
        keep -= 1;
    }
    [&stem[..keep], ext].concat()
}

/// What two paths must not share on disk: components compared case-insensitively and in
/// Unicode normalisation form C.
fn fold(c: &[u8]) -> String {
    String::from_utf8_lossy(c)
        .nfc()
        .collect::<String>()
        .to_lowercase()
}

/// Gives every stored file a path no other file shares (by [`fold`]) and that no other
/// file needs as a directory, suffixing the last component; records each change in
/// `renamed`. Pad files are never stored and are left alone.
pub fn separate_collisions(files: &mut [LayoutFile], renamed: &mut Vec<Renamed>) {
    let key = |p: &TorrentPath| -> Vec<String> { p.components().map(fold).collect() };
    let dirs: HashSet<Vec<String>> = files
        .iter()
        .filter(|f| !f.pad)
        .flat_map(|f| {
            let k = key(&f.path);
            (1..k.len()).map(move |n| k[..n].to_vec())
        })
        .collect();
    let mut taken: HashSet<Vec<String>> = HashSet::with_capacity(files.len());
    // The next suffix to try per colliding path, so that a torrent of many files on one
    // path costs one try each, not one per earlier file (both maps hold at most one entry
    // per file of the torrent).
    let mut next: HashMap<Vec<String>, usize> = HashMap::new();
    for (i, f) in files.iter_mut().enumerate().filter(|(_, f)| !f.pad) {
        let k = key(&f.path);
        if !taken.contains(&k) && !dirs.contains(&k) {
            taken.insert(k);
            continue;
        }
        let parts: Vec<&[u8]> = f.path.components().collect();
        let (last, parents) = parts.split_last().expect("paths are not empty");
        let first = next.get(&k).copied().unwrap_or(1);
        let key_before = k;
        for n in first..first + SUFFIX_MAX {
            let name = suffixed(last, n);
            let Ok(path) = TorrentPath::new(parents.iter().copied().chain([&name[..]])) else {
                continue;
            };
            let k = key(&path);
            if taken.contains(&k) || dirs.contains(&k) {
                continue;
            }
            renamed.push(Renamed {
                file: i,
                original: f.path.display(),
                why: "collides with another file's path (same, or by case or Unicode form)",
            });
            taken.insert(k);
            f.path = path;
            next.insert(key_before.clone(), n + 1);
            break;
        }
        // Past SUFFIX_MAX tries the path stays, and the layout refuses it as a collision.
    }
}

/// `name (n).ext`, shortened to fit a component.
fn suffixed(name: &[u8], n: usize) -> Vec<u8> {
    let ext_at = name
        .iter()
        .rposition(|&b| b == b'.')
        .filter(|&at| at > 0 && name.len() - at <= EXTENSION_MAX);
    let (stem, ext) = match ext_at {
        Some(at) => name.split_at(at),
        None => (name, &[][..]),
    };
    let tag = format!(" ({n})");
    let stem = shorten(stem, COMPONENT_LEN_MAX - tag.len() - ext.len());
    [&stem[..], tag.as_bytes(), ext].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(parts: &[&str]) -> Result<(Vec<String>, Option<&'static str>), PathError> {
        let raw: Vec<&[u8]> = parts.iter().map(|p| p.as_bytes()).collect();
        clean_components(&raw).map(|(c, why)| {
            (
                c.into_iter()
                    .map(|c| String::from_utf8(c).unwrap())
                    .collect(),
                why,
            )
        })
    }

    #[test]
    fn harmless_oddities_are_mapped() {
        assert_eq!(clean(&["a", "", "b"]).unwrap().0, ["a", "b"]);
        assert_eq!(clean(&["", "etc", "passwd"]).unwrap().0, ["etc", "passwd"]);
        assert_eq!(clean(&["a\\b", "c/d"]).unwrap().0, ["a_b", "c_d"]);
        assert_eq!(clean(&["a", "."]).unwrap().0, ["a"]);
        let long = format!("{}.flac", "é".repeat(200));
        let (parts, why) = clean(&[&long]).unwrap();
        assert!(
            parts[0].len() <= 255 && parts[0].ends_with(".flac"),
            "{parts:?}"
        );
        assert!(why.is_some());
        assert_eq!(clean(&["plain"]).unwrap().1, None);
    }

    #[test]
    fn escapes_and_nothing_left_stay_refused() {
        assert_eq!(
            clean(&["a", "..", "b"]).unwrap_err(),
            PathError::DotComponent("..")
        );
        assert_eq!(clean(&["a\0"]).unwrap_err(), PathError::Nul);
        assert_eq!(clean(&["", "."]).unwrap_err(), PathError::NoComponents);
    }

    fn file(p: &str) -> LayoutFile {
        LayoutFile {
            path: TorrentPath::new(p.split('/')).unwrap(),
            length: 1,
            pad: false,
        }
    }

    #[test]
    fn collisions_by_case_form_duplicate_or_directory_get_suffixes() {
        // "é" precomposed and as e + combining acute.
        let mut files = vec![
            file("t/A.txt"),
            file("t/a.txt"),
            file("t/caf\u{e9}"),
            file("t/cafe\u{301}"),
            file("t/x"),
            file("t/x"),
            file("t/d"),
            file("t/d/inner"),
        ];
        let mut renamed = Vec::new();
        separate_collisions(&mut files, &mut renamed);
        let paths: Vec<String> = files.iter().map(|f| f.path.display()).collect();
        assert_eq!(
            paths,
            [
                "t/A.txt",
                "t/a (1).txt",
                "t/caf\u{e9}",
                "t/cafe\u{301} (1)",
                "t/x",
                "t/x (1)",
                "t/d (1)",
                "t/d/inner"
            ]
        );
        assert_eq!(
            renamed.iter().map(|r| r.file).collect::<Vec<_>>(),
            [1, 3, 5, 6]
        );
    }
}

#[cfg(test)]
mod many {
    use super::*;

    /// Twenty thousand files on one path: each gets the next suffix at one try (the first
    /// version tried every earlier suffix again, quadratic in the files).
    #[test]
    fn many_files_on_one_path_are_numbered_in_order() {
        let mut files: Vec<LayoutFile> = (0..20_000)
            .map(|_| LayoutFile {
                path: TorrentPath::new(["t", "a.bin"]).unwrap(),
                length: 1,
                pad: false,
            })
            .collect();
        let mut renamed = Vec::new();
        separate_collisions(&mut files, &mut renamed);
        assert_eq!(renamed.len(), 19_999);
        assert_eq!(files[1].path.display(), "t/a (1).bin");
        assert_eq!(files[19_999].path.display(), "t/a (19999).bin");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::metainfo::check_component;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a torrent holds, a mapped path is one the strict checks accept, and a
        /// refusal is one of the three that cannot be made safe.
        #[test]
        fn mapped_paths_are_always_safe(
            raw in prop::collection::vec(
                prop::collection::vec(
                    prop_oneof![Just(b'.'), Just(b'/'), Just(b'\\'), Just(0u8), Just(0xC3), Just(0xA9), any::<u8>()],
                    0..300,
                ),
                0..6,
            )
        ) {
            let parts: Vec<&[u8]> = raw.iter().map(|c| &c[..]).collect();
            match clean_components(&parts) {
                Ok((clean, _)) => {
                    prop_assert!(!clean.is_empty());
                    for c in &clean {
                        prop_assert_eq!(check_component(c), Ok(()));
                    }
                }
                Err(e) => prop_assert!(matches!(
                    e,
                    PathError::DotComponent("..") | PathError::Nul | PathError::NoComponents
                )),
            }
        }
    }
}
