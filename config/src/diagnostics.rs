//! Problems found in a configuration, each with the place it came from, and
//! the "did you mean" suggestions for misspelt keys.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a problem is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A place in a config file; `line` and `column` count from 1 and are 0
    /// when the problem is the file as a whole (missing, unreadable).
    File {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    /// An environment variable, by name.
    Env(String),
    /// A command-line flag, by name (see [`crate::Origin::Flag`]).
    Flag(String),
}

/// One problem, displayed as `ccbt.toml:12:1: unknown key ...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Location,
    pub message: String,
}

impl Diagnostic {
    /// The line in the file, if the problem is at one.
    pub fn line(&self) -> Option<usize> {
        match self.location {
            Location::File { line, .. } if line > 0 => Some(line),
            _ => None,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::File { path, line: 0, .. } => write!(f, "{}: ", path.display())?,
            Location::File { path, line, column } => {
                write!(f, "{}:{line}:{column}: ", path.display())?
            }
            Location::Env(name) => write!(f, "environment variable {name}: ")?,
            Location::Flag(name) => write!(f, "flag {name}: ")?,
        }
        f.write_str(&self.message)
    }
}

/// Why [`crate::load`] gave no configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {} does not exist", .0.display())]
    NotFound(PathBuf),
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render(diagnostics: &[Diagnostic]) -> String {
    let lines: Vec<String> = diagnostics.iter().map(Diagnostic::to_string).collect();
    lines.join("\n")
}

impl ConfigError {
    /// The problems as diagnostics, so callers handle one shape.
    pub fn into_diagnostics(self) -> Vec<Diagnostic> {
        match self {
            ConfigError::Invalid(diagnostics) => diagnostics,
            other => {
                let path = match &other {
                    ConfigError::NotFound(path) | ConfigError::Read { path, .. } => path.clone(),
                    ConfigError::Invalid(_) => unreachable!("handled above"),
                };
                vec![Diagnostic {
                    location: Location::File {
                        path,
                        line: 0,
                        column: 0,
                    },
                    message: other.to_string(),
                }]
            }
        }
    }
}

/// Turns byte offsets in a file into 1-based line and column (in characters).
pub(crate) struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Lines<'a> {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    pub fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&start| start <= offset) - 1;
        let start = self.starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line + 1, column)
    }

    pub fn at(&self, path: &Path, offset: Option<usize>) -> Location {
        let (line, column) = offset.map_or((0, 0), |o| self.position(o));
        Location::File {
            path: path.to_path_buf(),
            line,
            column,
        }
    }
}

/// `"; did you mean `x`?"` for the closest candidate, or nothing when no
/// candidate is close enough to be a typo. A word that starts a candidate
/// (`ratio` for `ratio_limit`) counts as one typo away.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> String {
    let limit = 1 + word.chars().count() / 4;
    candidates
        .into_iter()
        .map(|c| {
            let prefix = word.len() >= 4 && c.starts_with(word);
            let distance = strsim::damerau_levenshtein(word, c);
            (if prefix { distance.min(1) } else { distance }, c)
        })
        .filter(|&(distance, _)| distance <= limit)
        .min()
        .map_or_else(String::new, |(_, c)| format!("; did you mean `{c}`?"))
}
