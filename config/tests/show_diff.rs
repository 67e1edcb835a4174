//! `config show` output and live-versus-restart diffs.

use std::path::Path;

use ccbt_config::{check_str, diff, load, show, ByteRate, Change, Sources};

fn loaded_with_everything(dir: &Path) -> ccbt_config::Loaded {
    std::fs::write(
        dir.join("ccbt.toml"),
        "[daemon]\nwatch_dirs = [\"/w1\", \"/w \\\"quoted\\\"\"]\n\n[limits]\nupload_bytes_per_s = \"1.5 MB\"\n\n[share]\nratio_limit = 2\nseeding_time_limit = 90\n\n[share.categories.\"tv shows\"]\naction = \"remove\"\n\n[hooks]\non_complete = \"/usr/local/bin/done\"\n",
    )
    .unwrap();
    let sources = Sources {
        file: None,
        cwd: dir.to_path_buf(),
        env: vec![
            ("HOME".into(), "/home/u".into()),
            ("CCBT_LIMITS_DOWNLOAD_BYTES_PER_S".into(), "123457".into()),
        ],
        overrides: vec![("daemon.peer_port".into(), "0".into())],
    };
    load(&sources).unwrap()
}

#[test]
fn show_names_origins_and_parses_back_to_the_same_config() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = loaded_with_everything(dir.path());
    let text = show(&loaded);
    assert!(
        text.contains("peer_port = 0  # flag --peer-port\n"),
        "{text}"
    );
    assert!(
        text.contains("upload_bytes_per_s = \"1500 KB\"  # ccbt.toml:5\n"),
        "{text}"
    );
    assert!(
        text.contains("download_bytes_per_s = 123457  # env CCBT_LIMITS_DOWNLOAD_BYTES_PER_S\n"),
        "{text}"
    );
    assert!(text.contains("cache_mib = 64  # default\n"), "{text}");
    assert!(
        text.contains("seeding_time_limit = \"1h30m\"  # ccbt.toml:9\n"),
        "{text}"
    );
    assert!(text.contains("[share.categories.\"tv shows\"]\n"), "{text}");
    assert!(text.contains("# Restart-only"), "docs are printed: {text}");

    // Valid TOML for any TOML reader, and the same config for ours.
    let parsed: toml::Table = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed["daemon"]["peer_port"].as_integer(), Some(0));
    let again =
        check_str(&text, Path::new("shown.toml")).unwrap_or_else(|d| panic!("{d:?}\n{text}"));
    assert_eq!(again, loaded.config);
    assert_eq!(again.limits.upload_bytes_per_s, ByteRate(1_500_000));
}

#[test]
fn diff_tells_live_from_restart() {
    let dir = tempfile::tempdir().unwrap();
    let old = loaded_with_everything(dir.path()).config;
    let mut new = old.clone();
    assert!(diff(&old, &new).is_empty());

    new.daemon.peer_port = 7000;
    new.limits.upload_bytes_per_s = ByteRate(1 << 20);
    new.limits.cache_mib = 256;
    new.daemon.watch_dirs.push("/w2".into());
    new.share.categories.remove("tv shows");
    let changes = diff(&old, &new);
    let keys: Vec<(&str, bool)> = changes.iter().map(|c| (c.key.as_str(), c.live)).collect();
    assert_eq!(
        keys,
        [
            ("daemon.watch_dirs", true),
            ("daemon.peer_port", false),
            ("limits.upload_bytes_per_s", true),
            ("limits.cache_mib", false),
            ("share.categories.tv shows.ratio_limit", true),
            ("share.categories.tv shows.seeding_time_limit", true),
            ("share.categories.tv shows.action", true),
        ]
    );
    assert_eq!(
        changes[1],
        Change {
            key: "daemon.peer_port".into(),
            live: false,
            old: "0".into(),
            new: "7000".into()
        }
    );
    assert_eq!(changes[6].new, "absent");
    assert_eq!(ccbt_config::is_live("daemon.shards"), Some(false));
    assert_eq!(ccbt_config::is_live("daemon.log"), Some(true));
    assert_eq!(ccbt_config::is_live("daemon.nope"), None);
}
