//! Resume data: what the state database says of each torrent's pieces, turned back into
//! what its shard may trust at start-up; and the shards' durable-pieces reports turned into
//! database writes.
//!
//! A torrent whose files all have the size and mtime its resume data recorded seeds at
//! once. A file whose stamp changed (written after the last record, touched, truncated)
//! has its pieces hashed again in the background while the rest are served, as
//! Transmission does per file.

use std::path::Path;

use ccbt_engine::metainfo::Metainfo;
use ccbt_engine::Bitfield;
use ccbt_shards::mapped::path_under;
use ccbt_shards::swarm::{FileStamp, SwarmEvent, Verify};
use ccbt_state::{ResumeRecord, Write};

use super::core::{unix_now, Daemon};
use super::events::EventKind;

/// The stamp the database keeps for a file that was not there.
const ABSENT: ccbt_state::FileStamp = ccbt_state::FileStamp {
    size: 0,
    mtime_ns: i64::MIN,
};

fn to_stored(stamp: Option<FileStamp>) -> ccbt_state::FileStamp {
    match stamp {
        Some(s) => ccbt_state::FileStamp {
            size: s.size,
            mtime_ns: s.mtime_ns,
        },
        None => ABSENT,
    }
}

/// How a torrent came back: for the log, and for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Every file matched its resume data.
    Trusted { pieces: u32 },
    /// Files changed; their pieces are checked while the rest seed.
    Partly { changed_files: usize, check: usize },
    /// No usable resume data: everything is checked.
    Full { why: &'static str },
}

/// What the shard may trust of `meta`'s data under `save_dir`, given its resume record.
pub fn verify_from(
    meta: &Metainfo,
    save_dir: &Path,
    resume: Option<&ResumeRecord>,
) -> (Verify, Restored) {
    let layout = &meta.info.layout;
    let Some(resume) = resume else {
        return (
            Verify::Full,
            Restored::Full {
                why: "no resume data",
            },
        );
    };
    if resume.piece_count != layout.piece_count() || resume.files.len() != layout.files().len() {
        return (
            Verify::Full,
            Restored::Full {
                why: "resume data is for another layout",
            },
        );
    }
    let Ok(mut have) = Bitfield::from_wire(&resume.have, resume.piece_count) else {
        return (
            Verify::Full,
            Restored::Full {
                why: "resume bitfield is malformed",
            },
        );
    };
    let mut check = Bitfield::empty(layout.piece_count());
    let mut changed_files = 0;
    for (i, file) in layout.files().iter().enumerate() {
        if file.pad {
            continue;
        }
        let now = to_stored(FileStamp::of(&path_under(save_dir, &file.path)));
        if now == resume.files[i] {
            continue;
        }
        changed_files += 1;
        for piece in layout.file_pieces(i) {
            check.set(piece);
            have.clear(piece);
        }
    }
    if changed_files == 0 {
        let pieces = have.count();
        return (Verify::Trusted(have), Restored::Trusted { pieces });
    }
    let check: Vec<u32> = check.iter_ones().collect();
    let restored = Restored::Partly {
        changed_files,
        check: check.len(),
    };
    (Verify::Partly { have, check }, restored)
}

/// How long the recorder waits for room in the state writer's queue. It is a thread of
/// its own, so waiting holds up no shard: their events queue in the sink meanwhile.
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Turns a shard's report into state writes. The shard counts a report as delivered once
/// it is in the sink, so the recorder waits for the writer rather than drop one: a
/// dropped snapshot would stay unrecorded until the torrent's next piece.
pub fn record_event(daemon: &Daemon, event: SwarmEvent) {
    let writer = daemon.state();
    let state = Blocking(writer);
    match event {
        SwarmEvent::Durable {
            info_hash,
            have,
            files,
            uploaded,
            downloaded,
        } => {
            let record = ResumeRecord {
                info_hash: info_hash.0,
                piece_count: have.len(),
                have: have.as_bytes().to_vec(),
                files: files.into_iter().map(to_stored).collect(),
                updated_at: unix_now(),
            };
            if let Err(e) = state.write(Write::Resume(record)) {
                tracing::warn!(torrent = %info_hash, error = %e, "resume data not recorded");
            }
            let (uploaded, downloaded) = daemon.totals(&info_hash, uploaded, downloaded);
            let _ = state.write(Write::SetTotals {
                info_hash: info_hash.0,
                uploaded,
                downloaded,
            });
        }
        SwarmEvent::Completed { info_hash } => {
            tracing::info!(torrent = %info_hash, "download complete");
            let at = unix_now();
            daemon.set_completed(&info_hash, Some(at));
            let _ = state.write(Write::Completed {
                info_hash: info_hash.0,
                at: Some(at),
            });
            daemon.event(EventKind::Completed, &info_hash, None);
        }
        SwarmEvent::Checked { info_hash, have } => {
            tracing::info!(torrent = %info_hash, have, "check finished");
            daemon.event(
                EventKind::Checked,
                &info_hash,
                Some(format!("{have} pieces good")),
            );
        }
        SwarmEvent::Fault { info_hash, fault } => {
            let _ = state.write(Write::SetError {
                info_hash: info_hash.0,
                error: Some(fault.to_string()),
            });
            daemon.event(EventKind::Error, &info_hash, Some(fault.to_string()));
        }
        SwarmEvent::TrackerError {
            info_hash,
            url,
            message,
        } => daemon.event(
            EventKind::TrackerError,
            &info_hash,
            Some(format!("{url}: {message}")),
        ),
        SwarmEvent::PeerBanned {
            info_hash,
            addr,
            reason,
        } => daemon.event(
            EventKind::PeerBanned,
            &info_hash,
            Some(format!("{addr}: {reason}")),
        ),
    }
}

/// The state writer, waiting up to [`WRITE_WAIT`] for room.
struct Blocking<'a>(&'a ccbt_state::StateWriter);

impl Blocking<'_> {
    fn write(&self, write: Write) -> Result<(), ccbt_state::WriteError> {
        self.0.write_blocking(write, WRITE_WAIT)
    }
}
