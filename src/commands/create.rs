//! `ccbt-uring create`: make a `.torrent` from files on disk.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Context as _};
use ccbt_engine::metainfo::{
    auto_piece_length, Layout, LayoutFile, NewFile, NewTorrent, TorrentPath,
};
use ccbt_shards::{HashJob, HashProgress, MappedFiles, PieceOutcome};

use crate::cli::CreateArgs;
use crate::failure::{Exit, Failure, OrExit, Outcome};
use crate::{format, progress};

/// A file to put in the torrent.
struct SourceFile {
    /// Path below the shared directory; empty when sharing a single file.
    relative: Vec<Vec<u8>>,
    disk: PathBuf,
    length: u64,
}

pub fn run(args: CreateArgs) -> Outcome {
    if args.output.exists() && !args.force {
        return Err(Failure::new(
            Exit::Io,
            anyhow!(
                "{} exists; pass --force to overwrite it",
                args.output.display()
            ),
        ));
    }
    let root = std::fs::canonicalize(&args.path)
        .with_context(|| format!("cannot read {}", args.path.display()))
        .or_exit(Exit::Io)?;
    let name: Vec<u8> = match &args.name {
        Some(n) => n.as_bytes().to_vec(),
        None => root
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default(),
    };
    let sources = collect(&root)?;
    let total: u64 = sources.iter().map(|f| f.length).sum();
    let piece_length = args
        .piece_size
        .0
        .unwrap_or_else(|| auto_piece_length(total));

    let torrent_name = TorrentPath::new([&name])
        .with_context(|| {
            format!(
                "cannot use {:?} as the torrent name",
                String::from_utf8_lossy(&name)
            )
        })
        .or_exit(Exit::BadInput)?;
    let layout_files = sources
        .iter()
        .map(|f| {
            let path = TorrentPath::new(
                torrent_name
                    .components()
                    .chain(f.relative.iter().map(|c| &c[..])),
            )
            .with_context(|| format!("{} cannot be named in a torrent", f.disk.display()))?;
            Ok(LayoutFile {
                path,
                length: f.length,
                pad: false,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .or_exit(Exit::BadInput)?;
    let layout = Arc::new(
        Layout::new(piece_length, layout_files)
            .with_context(|| format!("cannot make a torrent of {}", root.display()))
            .or_exit(Exit::BadInput)?,
    );

    let started = Instant::now();
    let disk_paths: Vec<PathBuf> = sources.iter().map(|f| f.disk.clone()).collect();
    let data = Arc::new(MappedFiles::open_paths(&disk_paths, &layout));
    if let Some(p) = data.problems().first() {
        return Err(Failure::new(
            Exit::Io,
            anyhow!("cannot read {}: {}", p.path.display(), p.reason),
        ));
    }
    let progress = Arc::new(HashProgress::default());
    let job = HashJob::start(
        &args.shards.config(),
        layout.clone(),
        data,
        progress.clone(),
    )?;
    let hashed = progress::wait(job, &progress, total, started, "hashing")?;
    let piece_hashes = hashed
        .outcomes
        .iter()
        .map(|o| match o {
            PieceOutcome::Hashed(h) => Ok(*h),
            PieceOutcome::Missing => Err(anyhow!(
                "a file shrank or vanished while it was being hashed"
            )),
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .or_exit(Exit::Io)?;

    let torrent = NewTorrent {
        name,
        piece_length,
        files: sources
            .into_iter()
            .map(|f| NewFile {
                path: f.relative,
                length: f.length,
            })
            .collect(),
        piece_hashes,
        private: args.private,
        trackers: args.trackers,
        web_seeds: args.web_seeds,
        comment: args.comment,
        created_by: (!args.no_date)
            .then(|| concat!("ccbt-uring/", env!("CARGO_PKG_VERSION")).to_string()),
        creation_date: (!args.no_date).then(unix_now),
    };
    let bytes = torrent
        .encode()
        .context("cannot encode the torrent")
        .or_exit(Exit::BadInput)?;
    let info_hash = ccbt_engine::metainfo::Metainfo::parse(&bytes)
        .context("the torrent just made does not read back")
        .or_exit(Exit::BadInput)?
        .info_hash;
    write_atomically(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))
        .or_exit(Exit::Io)?;

    crate::output::print(&format!(
        "created {}: {} file{}, {}, {} pieces of {}, {:.2} GB/s\ninfo hash: {info_hash}\n",
        args.output.display(),
        layout.files().len(),
        if layout.files().len() == 1 { "" } else { "s" },
        format::bytes(total),
        layout.piece_count(),
        format::bytes(piece_length.into()),
        hashed.gb_per_s(),
    ));
    Ok(Exit::Ok)
}

/// The files under `root` (or `root` itself), in the order mktorrent uses — byte-wise by
/// path — so the same files and piece size give the same info hash. Symbolic links are
/// followed; hidden and empty files are included; anything that is not a regular file
/// (sockets, FIFOs, devices) is skipped with a warning.
fn collect(root: &Path) -> Result<Vec<SourceFile>, Failure> {
    let meta = std::fs::metadata(root)
        .with_context(|| format!("cannot read {}", root.display()))
        .or_exit(Exit::Io)?;
    if meta.is_file() {
        return Ok(vec![SourceFile {
            relative: Vec::new(),
            disk: root.to_path_buf(),
            length: meta.len(),
        }]);
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root).follow_links(true).min_depth(1) {
        let entry = entry
            .with_context(|| format!("cannot walk {}", root.display()))
            .or_exit(Exit::Io)?;
        let meta = entry
            .metadata()
            .with_context(|| format!("cannot read {}", entry.path().display()))
            .or_exit(Exit::Io)?;
        if meta.is_dir() {
            continue;
        }
        if !meta.is_file() {
            eprintln!(
                "ccbt-uring: skipping {}: not a regular file",
                entry.path().display()
            );
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(root)
            .expect("walkdir stays under its root")
            .components()
            .map(|c| c.as_os_str().as_bytes().to_vec())
            .collect();
        files.push(SourceFile {
            relative,
            disk: entry.path().to_path_buf(),
            length: meta.len(),
        });
    }
    files.sort_by_cached_key(|f| f.relative.join(&b'/'));
    if files.is_empty() {
        return Err(Failure::new(
            Exit::BadInput,
            anyhow!("{} holds no files to share", root.display()),
        ));
    }
    Ok(files)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place, so a
/// reader never sees half a torrent.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
