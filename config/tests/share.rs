//! Per-category share limits and per-torrent overrides.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ccbt_config::{check_str, ByteRate, Preallocate, ShareAction, ShareLimits, TorrentSettings};

const FILE: &str = "\
[limits]
max_peers_per_torrent = 60
upload_slots = 4

[share]
ratio_limit = 2.0
seeding_time_limit = \"1d\"

[share.categories.movies]
ratio_limit = 1.5
action = \"remove\"

[share.categories.linux-isos]
ratio_limit = \"none\"
seeding_time_limit = \"none\"
";

#[test]
fn categories_take_what_they_leave_out_from_share() {
    let config = check_str(FILE, Path::new("ccbt.toml")).unwrap();
    let day = Some(Duration::from_secs(86_400));
    assert_eq!(
        config.share.for_category(Some("movies")),
        ShareLimits {
            ratio_limit: Some(1.5),
            seeding_time_limit: day,
            action: ShareAction::Remove
        }
    );
    assert_eq!(
        config.share.for_category(Some("linux-isos")),
        ShareLimits {
            ratio_limit: None,
            seeding_time_limit: None,
            action: ShareAction::Pause
        }
    );
    let global = ShareLimits {
        ratio_limit: Some(2.0),
        seeding_time_limit: day,
        action: ShareAction::Pause,
    };
    assert_eq!(config.share.for_category(Some("unknown")), global);
    assert_eq!(config.share.for_category(None), global);
}

#[test]
fn torrent_settings_override_category_and_global() {
    let config = check_str(FILE, Path::new("ccbt.toml")).unwrap();
    let plain = TorrentSettings::default().resolve(&config);
    assert_eq!(plain.max_peers, 60);
    assert_eq!(plain.upload_slots, 4);
    assert_eq!(plain.upload_bytes_per_s, ByteRate::UNLIMITED);
    assert_eq!(plain.download_dir, config.daemon.download_dir);
    assert_eq!(plain.share.ratio_limit, Some(2.0));
    assert_eq!(plain.preallocate, Preallocate::Sparse);

    let movie = TorrentSettings {
        category: Some("movies".into()),
        max_peers: Some(10),
        upload_bytes_per_s: Some(ByteRate(500 << 10)),
        seeding_time_limit: Some(None),
        download_dir: Some(PathBuf::from("/srv/movies")),
        preallocate: Some(Preallocate::Full),
        ..TorrentSettings::default()
    }
    .resolve(&config);
    assert_eq!(movie.max_peers, 10);
    assert_eq!(movie.upload_bytes_per_s, ByteRate(512_000));
    assert_eq!(movie.download_dir, PathBuf::from("/srv/movies"));
    assert_eq!(movie.preallocate, Preallocate::Full);
    assert_eq!(
        movie.share,
        ShareLimits {
            ratio_limit: Some(1.5),
            seeding_time_limit: None,
            action: ShareAction::Remove
        }
    );
}

#[test]
fn category_keys_from_env_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ccbt.toml"), FILE).unwrap();
    let sources = ccbt_config::Sources {
        file: None,
        cwd: dir.path().to_path_buf(),
        env: vec![(
            "CCBT_SHARE_CATEGORIES_MOVIES_RATIO_LIMIT".into(),
            "3".into(),
        )],
        overrides: vec![("share.categories.tv.action".into(), "remove".into())],
    };
    let loaded = ccbt_config::load(&sources).unwrap();
    let share = &loaded.config.share;
    assert_eq!(share.categories["movies"].ratio_limit, Some(3.0));
    assert_eq!(share.categories["tv"].action, ShareAction::Remove);
    assert_eq!(
        share.categories["tv"].ratio_limit,
        Some(2.0),
        "inherited from [share]"
    );
    assert_eq!(
        loaded.origins["share.categories.tv.ratio_limit"],
        loaded.origins["share.ratio_limit"]
    );
}
