//! Telling a usable `state.db` from a damaged or foreign one, moving a bad one aside
//! with its `-wal`/`-shm`, and salvaging the rows that still read.
//!
//! A bad file is never repaired in place nor deleted: it is renamed so the operator can
//! look at it, and the daemon starts from a fresh file holding what could be salvaged.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::schema::{connect, APPLICATION_ID, SCHEMA_VERSION};
use crate::store::{self, Loaded};
use crate::StateError;

/// What was wrong with the file that was moved aside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryKind {
    /// Not a SQLite file, truncated, or failing `PRAGMA quick_check`.
    Damaged,
    /// A SQLite file that is not ours (another `application_id`).
    Foreign,
    /// Ours, but written by a newer schema than this build knows.
    Newer,
}

impl RecoveryKind {
    /// The word in the moved-aside name: `state.db.<word>-<unix seconds>`.
    pub fn suffix(self) -> &'static str {
        match self {
            RecoveryKind::Damaged => "damaged",
            RecoveryKind::Foreign => "foreign",
            RecoveryKind::Newer => "newer",
        }
    }
}

impl fmt::Display for RecoveryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.suffix())
    }
}

/// A bad `state.db` the open moved aside, for the daemon to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The file that was bad (`<dir>/state.db`).
    pub path: PathBuf,
    /// Where it is now; its `-wal` and `-shm`, if any, sit beside it with those suffixes
    /// (only those, when the trouble was a `-wal` left without its database).
    pub moved_to: PathBuf,
    pub kind: RecoveryKind,
    /// What was wrong, in words (SQLite's message or ours).
    pub reason: String,
    /// Torrents copied from it into the fresh file.
    pub salvaged: usize,
    /// Rows that were there but did not read or decode, and so were not copied.
    pub skipped: usize,
}

/// The verdict on an existing path.
pub(crate) enum Verdict {
    /// No file, or an empty one: start fresh, nothing to report.
    Absent,
    /// Ours and sound; the connection is open on it.
    Healthy(Connection),
    /// Move it aside. `salvage` says whether its rows are worth reading.
    Bad {
        kind: RecoveryKind,
        reason: String,
        salvage: bool,
    },
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Errors that say the environment is wrong (permissions, a lock, memory), not the file:
/// those fail the open rather than move a possibly good file aside.
fn is_environmental(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::PermissionDenied
                | ErrorCode::ReadOnly
                | ErrorCode::OutOfMemory
                | ErrorCode::SystemIoFailure
        )
    )
}

/// Looks at `path` without changing it (beyond what SQLite does to open a WAL file).
pub(crate) fn inspect(path: &Path, busy_timeout: Duration) -> Result<Verdict, StateError> {
    let io = |op: &'static str| {
        move |source: std::io::Error| StateError::Io {
            path: path.to_owned(),
            op,
            source,
        }
    };
    let len = match std::fs::metadata(path) {
        Ok(m) => m.len(),
        // A WAL without its database would be replayed onto the fresh file: move it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && sibling(path, "-wal").exists() => {
            return Ok(bad_unreadable(
                "state.db is missing but its -wal file is present".into(),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Verdict::Absent),
        Err(e) => return Err(io("stat")(e)),
    };
    if len == 0 && !sibling(path, "-wal").exists() {
        return Ok(Verdict::Absent);
    }
    if len > 0 {
        let mut header = Vec::with_capacity(100);
        std::fs::File::open(path)
            .map_err(io("open"))?
            .take(100)
            .read_to_end(&mut header)
            .map_err(io("read header of"))?;
        if header.len() < 100 {
            return Ok(bad_unreadable(format!(
                "file is {len} bytes, shorter than a SQLite header"
            )));
        }
        if &header[..16] != SQLITE_MAGIC {
            return Ok(bad_unreadable(
                "not a SQLite database (no 'SQLite format 3' header)".into(),
            ));
        }
    }
    let damaged = |e: rusqlite::Error| -> Result<Verdict, StateError> {
        if is_environmental(&e) {
            return Err(StateError::Sql {
                path: path.to_owned(),
                op: "check",
                source: e,
            });
        }
        Ok(Verdict::Bad {
            kind: RecoveryKind::Damaged,
            reason: e.to_string(),
            salvage: true,
        })
    };
    let conn = match connect(path, false, busy_timeout) {
        Ok(c) => c,
        Err(StateError::Sql { source, .. }) => return damaged(source),
        Err(e) => return Err(e),
    };
    let problems = match quick_check(&conn) {
        Ok(p) => p,
        Err(e) => return damaged(e),
    };
    if !problems.is_empty() {
        return Ok(Verdict::Bad {
            kind: RecoveryKind::Damaged,
            reason: format!("quick_check: {}", problems.join("; ")),
            salvage: true,
        });
    }
    let ids = conn.query_row(
        "SELECT (SELECT application_id FROM pragma_application_id),
                (SELECT user_version FROM pragma_user_version),
                (SELECT count(*) FROM sqlite_schema)",
        [],
        |r| {
            Ok((
                r.get::<_, i32>(0)?,
                r.get::<_, i32>(1)?,
                r.get::<_, i64>(2)?,
            ))
        },
    );
    let (app_id, version, objects) = match ids {
        Ok(v) => v,
        Err(e) => return damaged(e),
    };
    if app_id == 0 && version == 0 && objects == 0 {
        // An empty SQLite file (e.g. `sqlite3 state.db` run before us): just use it.
        return Ok(Verdict::Healthy(conn));
    }
    if app_id != APPLICATION_ID {
        // An unset id may be our data restored through `sqlite3 .dump`, which drops it:
        // worth salvaging. Another program's id means its rows are not our torrents.
        return Ok(Verdict::Bad {
            kind: RecoveryKind::Foreign,
            reason: format!(
                "application_id is {app_id:#010x}, not ccbt-state's {APPLICATION_ID:#010x}"
            ),
            salvage: app_id == 0,
        });
    }
    if version > SCHEMA_VERSION {
        return Ok(Verdict::Bad {
            kind: RecoveryKind::Newer,
            reason: format!("schema version {version} is newer than this build's {SCHEMA_VERSION}"),
            salvage: true,
        });
    }
    Ok(Verdict::Healthy(conn))
}

fn bad_unreadable(reason: String) -> Verdict {
    Verdict::Bad {
        kind: RecoveryKind::Damaged,
        reason,
        salvage: false,
    }
}

/// `PRAGMA quick_check`'s complaints (at most 10); empty when it says "ok".
fn quick_check(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA quick_check(10)")?;
    let lines: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(if lines.len() == 1 && lines[0] == "ok" {
        Vec::new()
    } else {
        lines
    })
}

/// `path` with `suffix` appended to its file name (`state.db` → `state.db-wal`).
pub(crate) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Renames `path` to `<path>.<kind>-<unix seconds>` (plus `.N` if that is taken), with
/// its `-wal` and `-shm` renamed to match so SQLite still opens the pair. The WAL goes
/// first: a crash half-way must not leave an old WAL beside a new `state.db`.
pub(crate) fn move_aside(path: &Path, kind: RecoveryKind) -> Result<PathBuf, StateError> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let base = sibling(path, &format!(".{kind}-{secs}"));
    let mut target = base.clone();
    let mut n = 0;
    while target.exists() || sibling(&target, "-wal").exists() {
        n += 1;
        target = sibling(&base, &format!(".{n}"));
    }
    for suffix in ["-wal", "-shm", ""] {
        let from = sibling(path, suffix);
        if from.exists() {
            std::fs::rename(&from, sibling(&target, suffix)).map_err(|source| StateError::Io {
                path: from.clone(),
                op: "move aside",
                source,
            })?;
        }
    }
    tracing::warn!(path = %path.display(), moved_to = %target.display(), %kind, "state database moved aside");
    Ok(target)
}

/// Reads what still reads from a moved-aside file, read-only so the evidence stays as
/// it was. `writable_schema` makes SQLite read a file shorter than its header claims
/// (truncated) instead of refusing it whole. Never fails: nothing readable is empty.
pub(crate) fn salvage(moved: &Path) -> Loaded {
    let attempt = || -> rusqlite::Result<Loaded> {
        let conn = Connection::open_with_flags(
            moved,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Best effort: without it a truncated file may read nothing at all.
        let _ = conn.pragma_update(None, "writable_schema", true);
        store::load(&conn, true)
    };
    match attempt() {
        Ok(loaded) => {
            if let Some(why) = &loaded.stopped_by {
                tracing::warn!(path = %moved.display(), %why, "salvage stopped early");
            }
            loaded
        }
        Err(e) => {
            tracing::warn!(path = %moved.display(), error = %e, "nothing salvaged");
            Loaded {
                stopped_by: Some(e.to_string()),
                ..Loaded::default()
            }
        }
    }
}
