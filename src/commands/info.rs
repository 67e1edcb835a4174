//! `ccbt-uring info`: what a torrent or magnet link holds.

use std::path::Path;

use anyhow::Context as _;
use ccbt_engine::magnet::{Magnet, PeerAddr};
use ccbt_engine::metainfo::Metainfo;
use serde::Serialize;

use crate::cli::InfoArgs;
use crate::failure::{Exit, OrExit, Outcome};
use crate::format;

pub fn run(args: InfoArgs) -> Outcome {
    let is_magnet = args
        .source
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"));
    let report = if is_magnet && args.fetch {
        let magnet = super::magnet::parse(&args.source)?;
        let meta = fetch(&args, &magnet)?;
        Report::from_torrent(&meta)
    } else if is_magnet {
        let magnet = Magnet::parse(&args.source)
            .context("not a valid magnet link")
            .or_exit(Exit::BadInput)?;
        Report::from_magnet(&magnet)
    } else {
        Report::from_torrent(&super::load_torrent(Path::new(&args.source))?)
    };
    if args.json {
        crate::output::print_json(&report);
    } else {
        crate::output::print(&report.text());
    }
    Ok(Exit::Ok)
}

/// Fetches a magnet link's metadata through a swarm of our own, and stops there.
fn fetch(args: &InfoArgs, magnet: &Magnet) -> Result<Metainfo, crate::failure::Failure> {
    let stop_signal = super::swarm::stop_on_signals()?;
    let mut spec =
        super::magnet::spec(magnet, &args.magnet, &args.swarm, std::env::temp_dir(), &[]);
    spec.metadata_only = true;
    let name = magnet
        .display_name
        .clone()
        .unwrap_or_else(|| magnet.info_hash.to_hex());
    let swarm = ccbt_shards::swarm::Swarm::start(super::swarm::config(&args.swarm), None)?;
    let status = swarm.add_magnet(spec).wait()?;
    let fetched = super::magnet::wait_for_metadata(
        &status,
        &name,
        std::time::Duration::from_secs(args.magnet.metadata_timeout),
        &stop_signal,
    );
    swarm.shutdown()?;
    let meta = fetched?;
    if let Some(path) = &args.magnet.save_torrent {
        super::magnet::save_torrent(path, &meta, &magnet.trackers, &magnet.web_seeds)?;
    }
    // The report shows the trackers and web seeds the saved file has: the magnet's.
    let file =
        ccbt_engine::metadata::torrent_file(&meta.info_bytes, &magnet.trackers, &magnet.web_seeds);
    Metainfo::parse(&file)
        .context("the fetched metadata is not a valid torrent")
        .or_exit(Exit::BadInput)
}

/// Everything `info` shows; the JSON form is this struct as is.
#[derive(Debug, Serialize)]
struct Report {
    source: &'static str,
    name: Option<String>,
    info_hash: String,
    /// Unknown for a magnet link until its metadata is fetched.
    total_size: Option<u64>,
    piece_size: Option<u32>,
    piece_count: Option<u32>,
    last_piece_size: Option<u32>,
    private: Option<bool>,
    /// BEP 12 tiers.
    trackers: Vec<Vec<String>>,
    web_seeds: Vec<String>,
    files: Vec<FileReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    creation_date: Option<i64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    peers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    select_only: Vec<String>,
    /// Paths made safe: where each such file is stored, and why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    changed_paths: Vec<ChangedPath>,
    /// Bytes after the torrent's end, ignored.
    #[serde(skip_serializing_if = "is_zero")]
    trailing_bytes_ignored: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

#[derive(Debug, Serialize)]
struct ChangedPath {
    file: usize,
    original: String,
    path: String,
    why: &'static str,
}

#[derive(Debug, Serialize)]
struct FileReport {
    path: String,
    size: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pad: bool,
}

impl Report {
    fn from_torrent(m: &Metainfo) -> Self {
        let layout = &m.info.layout;
        let last = layout
            .piece(layout.piece_count() - 1)
            .expect("a torrent has a piece");
        Report {
            source: "torrent",
            name: Some(m.info.name.display()),
            info_hash: m.info_hash.to_hex(),
            total_size: Some(layout.total_length()),
            piece_size: Some(layout.piece_length()),
            piece_count: Some(layout.piece_count()),
            last_piece_size: Some(layout.piece_len(last)),
            private: Some(m.info.private),
            trackers: m.trackers(),
            web_seeds: m.web_seeds.clone(),
            files: layout
                .files()
                .iter()
                .map(|f| FileReport {
                    path: f.path.display(),
                    size: f.length,
                    pad: f.pad,
                })
                .collect(),
            comment: m.comment.clone(),
            created_by: m.created_by.clone(),
            creation_date: m.creation_date,
            peers: Vec::new(),
            select_only: Vec::new(),
            changed_paths: m
                .info
                .renamed
                .iter()
                .map(|r| ChangedPath {
                    file: r.file,
                    original: r.original.clone(),
                    path: layout.files()[r.file].path.display(),
                    why: r.why,
                })
                .collect(),
            trailing_bytes_ignored: m.trailing_bytes,
        }
    }

    fn from_magnet(m: &Magnet) -> Self {
        Report {
            source: "magnet",
            name: m.display_name.clone(),
            info_hash: m.info_hash.to_hex(),
            total_size: m.exact_length,
            piece_size: None,
            piece_count: None,
            last_piece_size: None,
            private: None,
            trackers: m.trackers.iter().map(|t| vec![t.clone()]).collect(),
            web_seeds: m.web_seeds.clone(),
            files: Vec::new(),
            comment: None,
            created_by: None,
            creation_date: None,
            peers: m
                .peers
                .iter()
                .map(|p| match p {
                    PeerAddr::Ip(a) => a.to_string(),
                    PeerAddr::Host(h, port) => format!("{h}:{port}"),
                })
                .collect(),
            select_only: m
                .select_only
                .iter()
                .map(|r| {
                    if r.start() == r.end() {
                        r.start().to_string()
                    } else {
                        format!("{}-{}", r.start(), r.end())
                    }
                })
                .collect(),
            changed_paths: Vec::new(),
            trailing_bytes_ignored: 0,
        }
    }

    fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let unknown = || "unknown (magnet link: metadata not fetched)".to_string();
        let line = |out: &mut String, k: &str, v: &str| {
            let _ = writeln!(out, "{}", format!("{k:<12}{v}").trim_end());
        };
        line(&mut out, "name:", self.name.as_deref().unwrap_or("(none)"));
        line(&mut out, "info hash:", &self.info_hash);
        line(
            &mut out,
            "size:",
            &self
                .total_size
                .map_or_else(unknown, |s| format!("{} ({s} bytes)", format::bytes(s))),
        );
        if let (Some(size), Some(count), Some(last)) =
            (self.piece_size, self.piece_count, self.last_piece_size)
        {
            line(
                &mut out,
                "pieces:",
                &format!(
                    "{count} x {} (last piece {})",
                    format::bytes(size.into()),
                    format::bytes(last.into())
                ),
            );
        }
        if let Some(private) = self.private {
            line(&mut out, "private:", if private { "yes" } else { "no" });
        }
        if let Some(c) = &self.comment {
            line(&mut out, "comment:", c);
        }
        if let Some(c) = &self.created_by {
            line(&mut out, "created by:", c);
        }
        if let Some(d) = self.creation_date {
            line(&mut out, "created:", &format!("{d} (Unix time)"));
        }
        line(
            &mut out,
            "trackers:",
            if self.trackers.is_empty() {
                "(none)"
            } else {
                ""
            },
        );
        for (tier, urls) in self.trackers.iter().enumerate() {
            for url in urls {
                let _ = writeln!(out, "  tier {tier}: {url}");
            }
        }
        line(
            &mut out,
            "web seeds:",
            if self.web_seeds.is_empty() {
                "(none)"
            } else {
                ""
            },
        );
        for url in &self.web_seeds {
            let _ = writeln!(out, "  {url}");
        }
        for peer in &self.peers {
            line(&mut out, "peer:", peer);
        }
        if !self.select_only.is_empty() {
            line(
                &mut out,
                "select:",
                &format!("files {}", self.select_only.join(", ")),
            );
        }
        if self.source == "torrent" {
            let _ = writeln!(out, "files:      {}", self.files.len());
            for f in &self.files {
                let pad = if f.pad { "  (padding)" } else { "" };
                let _ = writeln!(out, "  {:>14}  {}{pad}", f.size, f.path);
            }
        }
        if !self.changed_paths.is_empty() {
            let _ = writeln!(
                out,
                "changed:    {} paths made safe (the data and info hash are as they were)",
                self.changed_paths.len()
            );
            for c in &self.changed_paths {
                let _ = writeln!(out, "  {} -> {}  ({})", c.original, c.path, c.why);
            }
        }
        if self.trailing_bytes_ignored > 0 {
            line(
                &mut out,
                "ignored:",
                &format!(
                    "{} bytes after the torrent's end",
                    self.trailing_bytes_ignored
                ),
            );
        }
        out
    }
}
