//! Precedence of the layers, origins, defaults and file discovery, with real
//! files in a temporary directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ccbt_config::{load, ByteRate, Config, ConfigError, Origin, Preallocate, ShareAction, Sources};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn sources(cwd: &Path, vars: &[(&str, &str)], flags: &[(&str, &str)]) -> Sources {
    Sources {
        file: None,
        cwd: cwd.to_path_buf(),
        env: env(vars),
        overrides: env(flags),
    }
}

#[test]
fn every_default() {
    let c = Config::default_for_env(&env(&[("HOME", "/home/u")]));
    assert_eq!(
        c.daemon.state_dir,
        PathBuf::from("/home/u/.local/share/ccbt-uring")
    );
    assert_eq!(c.daemon.download_dir, PathBuf::from("/home/u/Downloads"));
    assert!(c.daemon.watch_dirs.is_empty());
    assert_eq!(c.daemon.peer_port, 6881);
    assert_eq!(
        c.daemon.control,
        "127.0.0.1:9091".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.daemon.shards, 0);
    assert_eq!(c.daemon.log, "info");
    assert_eq!(c.limits.upload_bytes_per_s, ByteRate::UNLIMITED);
    assert_eq!(c.limits.download_bytes_per_s, ByteRate::UNLIMITED);
    assert_eq!(c.limits.max_connections_per_shard, 2000);
    assert_eq!(c.limits.max_peers_per_torrent, 80);
    assert_eq!(c.limits.max_connections_per_ip, 8);
    assert_eq!(c.limits.upload_slots, 0);
    assert_eq!(c.limits.cache_mib, 64);
    assert_eq!(c.limits.open_files_per_shard, 512);
    assert_eq!(c.queue.max_active_downloads, 5);
    assert_eq!(c.queue.max_active_seeds, 0);
    assert_eq!(c.queue.max_active_checks, 1);
    assert_eq!(c.share.ratio_limit, None);
    assert_eq!(c.share.seeding_time_limit, None);
    assert_eq!(c.share.action, ShareAction::Pause);
    assert!(c.share.categories.is_empty());
    assert_eq!(c.blocklist.path, None);
    assert_eq!(c.hooks.on_complete, None);
    assert_eq!(c.hooks.on_error, None);
    assert_eq!(c.hooks.timeout_s, 60);
    assert_eq!(c.hooks.max_running, 4);
    assert_eq!(c.storage.preallocate, Preallocate::Sparse);
    assert!(!c.storage.allow_symlinks_inside);

    let xdg = Config::default_for_env(&env(&[("HOME", "/home/u"), ("XDG_DATA_HOME", "/data")]));
    assert_eq!(xdg.daemon.state_dir, PathBuf::from("/data/ccbt-uring"));
}

#[test]
fn no_file_gives_defaults_with_default_origins() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&sources(dir.path(), &[("HOME", "/nonexistent-home")], &[])).unwrap();
    assert_eq!(loaded.file, None);
    assert_eq!(
        loaded.config,
        Config::default_for_env(&env(&[("HOME", "/nonexistent-home")]))
    );
    assert!(loaded.origins.values().all(|o| *o == Origin::Default));
    assert!(loaded.origins.contains_key("limits.upload_bytes_per_s"));
}

#[test]
fn each_layer_beats_the_one_below() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ccbt.toml");
    std::fs::write(
        &file,
        "[daemon]\npeer_port = 7000\nlog = \"debug\"\nshards = 2\n\n[limits]\nupload_bytes_per_s = \"1 MiB\"\ncache_mib = 128\n",
    )
    .unwrap();
    let vars = [
        ("HOME", "/nonexistent-home"),
        ("CCBT_DAEMON_PEER_PORT", "7001"),
        ("CCBT_DAEMON_LOG", "warn"),
        ("CCBT_LIMITS_UPLOAD_BYTES_PER_S", "2 MiB"),
        ("PATH", "/usr/bin"),
    ];
    let flags = [
        ("daemon.peer_port", "7002"),
        ("limits.max_peers_per_torrent", "50"),
    ];
    let loaded = load(&sources(dir.path(), &vars, &flags)).unwrap();
    let c = &loaded.config;
    let o = &loaded.origins;
    assert_eq!(loaded.file.as_deref(), Some(file.as_path()));

    // flag > env > file > default
    assert_eq!(c.daemon.peer_port, 7002);
    assert_eq!(o["daemon.peer_port"], Origin::Flag("--peer-port".into()));
    assert_eq!(c.limits.max_peers_per_torrent, 50);
    assert_eq!(
        o["limits.max_peers_per_torrent"],
        Origin::Flag("limits.max_peers_per_torrent".into())
    );
    // env > file
    assert_eq!(c.daemon.log, "warn");
    assert_eq!(o["daemon.log"], Origin::Env("CCBT_DAEMON_LOG".into()));
    assert_eq!(c.limits.upload_bytes_per_s, ByteRate(2 << 20));
    assert_eq!(
        o["limits.upload_bytes_per_s"],
        Origin::Env("CCBT_LIMITS_UPLOAD_BYTES_PER_S".into())
    );
    // file > default, with the key's line
    assert_eq!(c.daemon.shards, 2);
    assert_eq!(o["daemon.shards"], Origin::File(file.clone(), 4));
    assert_eq!(c.limits.cache_mib, 128);
    assert_eq!(o["limits.cache_mib"], Origin::File(file.clone(), 8));
    // untouched
    assert_eq!(c.queue.max_active_downloads, 5);
    assert_eq!(o["queue.max_active_downloads"], Origin::Default);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn lists_from_env_are_comma_separated_and_repeated_flags_accumulate() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("HOME", "/home/u"), ("CCBT_DAEMON_WATCH_DIRS", "/a, ~/b,")];
    let loaded = load(&sources(dir.path(), &vars, &[])).unwrap();
    assert_eq!(
        loaded.config.daemon.watch_dirs,
        [PathBuf::from("/a"), PathBuf::from("/home/u/b")]
    );

    let flags = [("daemon.watch_dirs", "/x,y"), ("daemon.watch_dirs", "/z")];
    let loaded = load(&sources(dir.path(), &vars, &flags)).unwrap();
    assert_eq!(
        loaded.config.daemon.watch_dirs,
        [PathBuf::from("/x,y"), PathBuf::from("/z")]
    );
    assert_eq!(
        loaded.origins["daemon.watch_dirs"],
        Origin::Flag("--watch-dir".into())
    );
}

#[test]
fn ccbt_log_maps_to_daemon_log_and_unknown_variables_warn() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("CCBT_LOG", "trace"),
        ("CCBT_LIMITS_UPLOD_BYTES_PER_S", "1"),
        ("CCBT_SOMETHING_ELSE", "x"),
    ];
    let loaded = load(&sources(dir.path(), &vars, &[])).unwrap();
    assert_eq!(loaded.config.daemon.log, "trace");
    assert_eq!(loaded.origins["daemon.log"], Origin::Env("CCBT_LOG".into()));
    assert_eq!(loaded.warnings.len(), 2, "{:?}", loaded.warnings);
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.contains("did you mean `CCBT_LIMITS_UPLOAD_BYTES_PER_S`")));

    // The specific name wins over the alias.
    let vars = [("CCBT_LOG", "trace"), ("CCBT_DAEMON_LOG", "error")];
    let loaded = load(&sources(dir.path(), &vars, &[])).unwrap();
    assert_eq!(loaded.config.daemon.log, "error");
}

#[test]
fn bad_env_and_flag_values_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let vars = [("CCBT_DAEMON_PEER_PORT", "http")];
    let flags = [("limits.cache_mib", "lots"), ("limits.cache_mb", "1")];
    let ConfigError::Invalid(diags) = load(&sources(dir.path(), &vars, &flags)).unwrap_err() else {
        panic!("expected diagnostics");
    };
    let text: Vec<String> = diags.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(
        text[0].starts_with("environment variable CCBT_DAEMON_PEER_PORT: invalid value"),
        "{text:?}"
    );
    assert!(
        text[1].starts_with("flag limits.cache_mib: invalid value"),
        "{text:?}"
    );
    assert!(
        text[2].contains("did you mean `limits.cache_mib`?"),
        "{text:?}"
    );
}

#[test]
fn discovery_order_and_explicit_file() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let cwd = dir.path().join("work");
    std::fs::create_dir_all(home.join(".config/ccbt")).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let home_s = home.to_str().unwrap();
    let vars = [("HOME", home_s)];
    std::fs::write(home.join(".ccbt.toml"), "[daemon]\npeer_port = 1\n").unwrap();
    assert_eq!(
        load(&sources(&cwd, &vars, &[]))
            .unwrap()
            .config
            .daemon
            .peer_port,
        1
    );
    std::fs::write(
        home.join(".config/ccbt/ccbt.toml"),
        "[daemon]\npeer_port = 2\n",
    )
    .unwrap();
    assert_eq!(
        load(&sources(&cwd, &vars, &[]))
            .unwrap()
            .config
            .daemon
            .peer_port,
        2
    );
    std::fs::write(cwd.join("ccbt.toml"), "[daemon]\npeer_port = 3\n").unwrap();
    assert_eq!(
        load(&sources(&cwd, &vars, &[]))
            .unwrap()
            .config
            .daemon
            .peer_port,
        3
    );

    // XDG_CONFIG_HOME replaces ~/.config.
    std::fs::remove_file(cwd.join("ccbt.toml")).unwrap();
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("ccbt")).unwrap();
    std::fs::write(xdg.join("ccbt/ccbt.toml"), "[daemon]\npeer_port = 4\n").unwrap();
    let vars = [("HOME", home_s), ("XDG_CONFIG_HOME", xdg.to_str().unwrap())];
    assert_eq!(
        load(&sources(&cwd, &vars, &[]))
            .unwrap()
            .config
            .daemon
            .peer_port,
        4
    );

    // --config names exactly one file, relative to cwd, which must exist.
    std::fs::write(cwd.join("other.toml"), "[daemon]\npeer_port = 5\n").unwrap();
    let mut explicit = sources(&cwd, &vars, &[]);
    explicit.file = Some("other.toml".into());
    assert_eq!(load(&explicit).unwrap().config.daemon.peer_port, 5);
    explicit.file = Some("missing.toml".into());
    assert!(
        matches!(load(&explicit), Err(ConfigError::NotFound(p)) if p == cwd.join("missing.toml"))
    );
}

#[test]
fn file_paths_expand_tilde_and_empty_optional_paths_unset() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("ccbt.toml"),
        "[daemon]\ndownload_dir = \"~/dl\"\n[blocklist]\npath = \"/etc/block.p2p\"\n",
    )
    .unwrap();
    let vars = [("HOME", "/home/u")];
    let loaded = load(&sources(dir.path(), &vars, &[])).unwrap();
    assert_eq!(
        loaded.config.daemon.download_dir,
        PathBuf::from("/home/u/dl")
    );
    assert_eq!(
        loaded.config.blocklist.path,
        Some(PathBuf::from("/etc/block.p2p"))
    );
    let loaded = load(&sources(
        dir.path(),
        &[("HOME", "/home/u"), ("CCBT_BLOCKLIST_PATH", "")],
        &[],
    ))
    .unwrap();
    assert_eq!(loaded.config.blocklist.path, None);
}
