//! `ccbt-uring download`: fetch a torrent into a save directory.

use anyhow::{anyhow, Context as _};
use ccbt_engine::picker::Priority;
use ccbt_shards::swarm::{TorrentSpec, Verify};

use super::swarm::{self, Ended};
use super::verify::check_data;
use crate::cli::DownloadArgs;
use crate::failure::{Exit, Failure, OrExit, Outcome};

pub fn run(args: DownloadArgs) -> Outcome {
    if let Some(source) = args
        .torrent
        .to_str()
        .filter(|s| super::magnet::is_magnet(s))
    {
        return run_magnet(&args, source);
    }
    let mut torrent = super::load_torrent(&args.torrent)?;
    for url in &args.web_seeds {
        if !torrent.web_seeds.contains(url) {
            torrent.web_seeds.push(url.clone());
        }
    }
    let files = torrent.info.layout.files().len();
    let priorities = if args.only.is_empty() {
        None
    } else {
        if let Some(bad) = args.only.iter().find(|&&i| i >= files) {
            return Err(Failure::new(
                Exit::BadInput,
                anyhow!("--only {bad}: the torrent has files 0 to {}", files - 1),
            ));
        }
        Some(
            (0..files)
                .map(|i| {
                    if args.only.contains(&i) {
                        Priority::Normal
                    } else {
                        Priority::Skip
                    }
                })
                .collect(),
        )
    };
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))
        .or_exit(Exit::Io)?;
    let mut config = swarm::config(&args.swarm);
    config.web_seeds = !args.no_web_seeds;
    let checked = check_data(&torrent, &args.output, &config.shards, "checking")?;
    let have = swarm::have_from(&checked.report);
    let ended = swarm::run(
        torrent,
        |metainfo| TorrentSpec {
            metainfo,
            save_dir: args.output.clone(),
            verify: Verify::Trusted(have),
            paused: false,
            sequential: args.sequential,
            priorities,
            keep_seeding: args.seed,
            peers: args.swarm.peers.clone(),
            upload_bytes_per_s: 0,
            download_bytes_per_s: 0,
        },
        config,
        "downloading",
    )?;
    Ok(match ended {
        Ended::Complete => Exit::Ok,
        Ended::Interrupted => Exit::Incomplete,
    })
}

/// A magnet link: the shards fetch its metadata, check what is already in the save
/// directory and download the rest, as for a `.torrent`.
fn run_magnet(args: &DownloadArgs, source: &str) -> Outcome {
    let magnet = super::magnet::parse(source)?;
    std::fs::create_dir_all(&args.output)
        .with_context(|| format!("cannot create {}", args.output.display()))
        .or_exit(Exit::Io)?;
    let mut spec = super::magnet::spec(
        &magnet,
        &args.magnet,
        &args.swarm,
        args.output.clone(),
        &args.only,
    );
    spec.sequential = args.sequential;
    spec.keep_seeding = args.seed;
    let ended = swarm::run_magnet(
        spec,
        swarm::config(&args.swarm),
        std::time::Duration::from_secs(args.magnet.metadata_timeout),
        args.magnet.save_torrent.as_deref(),
        "downloading",
    )?;
    Ok(match ended {
        Ended::Complete => Exit::Ok,
        Ended::Interrupted => Exit::Incomplete,
    })
}
