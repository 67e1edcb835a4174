//! `ccbt-uring seed`: check torrents' data, then serve them until stopped. One torrent file
//! must be complete to seed; with several, those that cannot seed are reported and skipped
//! (see `seed_many`).

use anyhow::anyhow;
use ccbt_shards::swarm::{TorrentSpec, Verify};

use super::verify::check_data;
use super::{seed_many, swarm};
use crate::cli::SeedArgs;
use crate::failure::{Exit, Failure, Outcome};
use crate::format;

pub fn run(args: SeedArgs) -> Outcome {
    match &args.torrents[..] {
        [one] if !one.is_dir() => seed_one(one, &args),
        _ => seed_many::run(args),
    }
}

fn seed_one(path: &std::path::Path, args: &SeedArgs) -> Outcome {
    let torrent = super::load_torrent(path)?;
    let config = swarm::config(&args.swarm);
    let checked = check_data(&torrent, &args.data, &config.shards, "checking")?;
    if !checked.report.is_complete() {
        let missing = checked.report.pieces_in(ccbt_shards::PieceState::Missing);
        let bad = checked.report.pieces_in(ccbt_shards::PieceState::Bad);
        return Err(Failure::new(
            Exit::Incomplete,
            anyhow!(
                "{} does not hold all of {}: missing pieces {}, bad pieces {}; \
                 use `download -o {0}` to complete it",
                args.data.display(),
                torrent.info.name.display(),
                if missing.is_empty() {
                    "none".into()
                } else {
                    format::ranges(&missing)
                },
                if bad.is_empty() {
                    "none".into()
                } else {
                    format::ranges(&bad)
                },
            ),
        ));
    }
    let have = swarm::have_from(&checked.report);
    swarm::run(
        torrent,
        |metainfo| TorrentSpec {
            metainfo,
            save_dir: args.data.clone(),
            verify: Verify::Trusted(have),
            paused: false,
            sequential: false,
            priorities: None,
            keep_seeding: true,
            peers: args.swarm.peers.clone(),
            upload_bytes_per_s: 0,
            download_bytes_per_s: 0,
        },
        config,
        "seeding",
    )?;
    Ok(Exit::Ok)
}
