//! File paths inside a torrent, checked so that joining them under a save directory can
//! never land outside it.

use std::fmt;

use thiserror::Error;

/// The longest path component Linux accepts (`NAME_MAX`).
pub const COMPONENT_LEN_MAX: usize = 255;

/// Why a path component from a torrent is refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PathError {
    #[error("the path has no components")]
    NoComponents,
    #[error("a path component is empty (an absolute path or a doubled separator)")]
    EmptyComponent,
    #[error("a path component is `{0}`, which would leave its directory")]
    DotComponent(&'static str),
    #[error("a path component contains a path separator")]
    Separator,
    #[error("a path component contains a NUL byte")]
    Nul,
    #[error("a path component is {0} bytes long; the limit is {COMPONENT_LEN_MAX}")]
    TooLong(usize),
}

/// Checks one component: it must name an entry inside its parent directory and nothing else.
pub fn check_component(c: &[u8]) -> Result<(), PathError> {
    match c {
        [] => Err(PathError::EmptyComponent),
        b"." => Err(PathError::DotComponent(".")),
        b".." => Err(PathError::DotComponent("..")),
        _ if c.contains(&0) => Err(PathError::Nul),
        // A backslash is legal on Linux but is a separator to Windows peers and tools that
        // may later copy the data; refuse it rather than guess.
        _ if c.iter().any(|&b| b == b'/' || b == b'\\') => Err(PathError::Separator),
        _ if c.len() > COMPONENT_LEN_MAX => Err(PathError::TooLong(c.len())),
        _ => Ok(()),
    }
}

/// A checked, non-empty relative path: every component passed [`check_component`].
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TorrentPath(Vec<Box<[u8]>>);

impl TorrentPath {
    pub fn new<I, C>(components: I) -> Result<Self, PathError>
    where
        I: IntoIterator<Item = C>,
        C: AsRef<[u8]>,
    {
        let mut parts = Vec::new();
        for c in components {
            let c = c.as_ref();
            check_component(c)?;
            parts.push(c.into());
        }
        if parts.is_empty() {
            return Err(PathError::NoComponents);
        }
        Ok(Self(parts))
    }

    pub fn components(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.0.iter().map(|c| &c[..])
    }

    /// The path with `/` separators, lossily decoded for display.
    pub fn display(&self) -> String {
        self.to_string()
    }

    /// How many components it has (at least one).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether `prefix` is this path or one of its parent directories, component-wise.
    pub fn starts_with(&self, prefix: &TorrentPath) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The components after `prefix`, if it starts with it (empty when they are equal).
    pub fn strip_prefix(&self, prefix: &TorrentPath) -> Option<&[Box<[u8]>]> {
        self.0.strip_prefix(&prefix.0[..])
    }

    /// This path with `rest` (checked components, from [`Self::strip_prefix`]) appended.
    pub fn joined(&self, rest: &[Box<[u8]>]) -> TorrentPath {
        let mut parts = self.0.clone();
        parts.extend_from_slice(rest);
        TorrentPath(parts)
    }

    /// `rest` beneath this path.
    pub fn join(&self, rest: &TorrentPath) -> TorrentPath {
        self.joined(&rest.0)
    }

    /// The folder it is in, if it is not a top entry.
    pub fn parent(&self) -> Option<TorrentPath> {
        (self.0.len() > 1).then(|| TorrentPath(self.0[..self.0.len() - 1].to_vec()))
    }

    /// Its last component, as a path of its own.
    pub fn last(&self) -> TorrentPath {
        TorrentPath(vec![self.0[self.0.len() - 1].clone()])
    }

    /// Every proper prefix of this path (its parent directories), shortest first.
    pub(crate) fn parents(&self) -> impl Iterator<Item = TorrentPath> + '_ {
        (1..self.0.len()).map(|n| TorrentPath(self.0[..n].to_vec()))
    }
}

impl fmt::Display for TorrentPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(&String::from_utf8_lossy(c))?;
        }
        Ok(())
    }
}

impl fmt::Debug for TorrentPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_every_escape() {
        let bad: &[(&[&str], PathError)] = &[
            (&[], PathError::NoComponents),
            (&["a", ""], PathError::EmptyComponent),
            (&["", "etc", "passwd"], PathError::EmptyComponent),
            (&["..", "x"], PathError::DotComponent("..")),
            (&["a", "."], PathError::DotComponent(".")),
            (&["/etc/passwd"], PathError::Separator),
            (&["a/../../b"], PathError::Separator),
            (&["a\\b"], PathError::Separator),
            (&["a\0b"], PathError::Nul),
        ];
        for (parts, want) in bad {
            assert_eq!(
                TorrentPath::new(parts.iter()).unwrap_err(),
                *want,
                "{parts:?}"
            );
        }
        let long = "x".repeat(256);
        assert_eq!(
            TorrentPath::new([long]).unwrap_err(),
            PathError::TooLong(256)
        );
    }

    #[test]
    fn accepts_ordinary_names() {
        let p = TorrentPath::new(["My Album", "01 - ..intro.flac"]).unwrap();
        assert_eq!(p.display(), "My Album/01 - ..intro.flac");
        assert_eq!(
            p.parents().map(|p| p.display()).collect::<Vec<_>>(),
            ["My Album"]
        );
        assert!(TorrentPath::new(["...", ".hidden", "日本語"]).is_ok());
    }
}
