//! The systemd unit in `deploy/systemd/` is valid for the systemd on this machine
//! (`systemd-analyze verify`, with only ExecStart pointed at the binary cargo built, since
//! `/usr/local/bin/ccbt-uring` is where an operator installs it), is hardened
//! (`systemd-analyze security --offline`), has the limits the engine needs, and its
//! environment puts the daemon's state where its comments say. Its sysusers file creates
//! the user (`systemd-sysusers --dry-run` into a temp root). No service is started.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{ccbt, run_for, Ran};

const INSTALLED_BINARY: &str = "/usr/local/bin/ccbt-uring";
/// `systemd-analyze security` scores 0 (locked down) to 10 (exposed); systemd's own
/// hardened services sit between 1 and 4.
const EXPOSURE_MAX: f64 = 3.0;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/ccbt-uring.service")
}

/// Whether systemd's tools are here; without them the test fails under
/// CCBT_REQUIRE_INTEROP (CI) and skips otherwise.
fn systemd_tools() -> bool {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let why = "systemd-analyze is not installed: `apt-get install systemd` (see tools/install-deps.sh)";
        assert!(std::env::var_os("CCBT_REQUIRE_INTEROP").is_none(), "{why}");
        eprintln!("skipping: {why}");
    }
    found
}

fn analyze(args: &[&str], unit: &Path) -> Ran {
    run_for(
        Command::new("systemd-analyze").args(args).arg(unit),
        Duration::from_secs(60),
    )
}

/// The unit as installed, but starting the binary cargo built.
fn testable_copy(dir: &Path, text: &str) -> PathBuf {
    let exec = format!("ExecStart={INSTALLED_BINARY}");
    assert!(text.contains(&exec), "the unit starts {INSTALLED_BINARY}");
    let copy = dir.join("ccbt-uring.service");
    let built = format!("ExecStart={}", env!("CARGO_BIN_EXE_ccbt-uring"));
    std::fs::write(&copy, text.replace(&exec, &built)).unwrap();
    copy
}

/// Every value of `key` in the unit.
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn the_unit_verifies_is_hardened_and_sets_the_limits() {
    if !systemd_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(unit_path()).unwrap();
    let copy = testable_copy(dir.path(), &text);

    let verified = analyze(&["verify"], &copy);
    assert_eq!(verified.code, Some(0), "{verified:?}");
    assert_eq!(verified.stderr.trim(), "", "systemd-analyze has complaints");

    assert_eq!(values(&text, "LimitMEMLOCK"), ["infinity"]);
    assert_eq!(values(&text, "LimitNOFILE"), ["1048576"]);
    assert_eq!(values(&text, "User"), ["ccbt-uring"]);
    assert_eq!(values(&text, "ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    assert_eq!(values(&text, "StateDirectory"), ["ccbt-uring"]);

    let security = analyze(&["security", "--offline=yes"], &copy);
    let score: f64 = security
        .stdout
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for ccbt-uring.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level: {security:?}"));
    assert!(
        score <= EXPOSURE_MAX,
        "exposure {score}:\n{}",
        security.stdout
    );

    // A broken value is caught, so the clean verify above means something.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    let bad = testable_copy(
        &broken,
        &text.replace("LimitNOFILE=1048576", "LimitNOFILE=lots"),
    );
    let complaint = analyze(&["verify"], &bad);
    assert!(
        complaint.stderr.contains("Failed to parse resource value"),
        "{complaint:?}"
    );
}

#[test]
fn the_units_environment_puts_state_and_config_where_it_says() {
    let text = std::fs::read_to_string(unit_path()).unwrap();
    let mut cmd = ccbt();
    cmd.args(["config", "show"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    for assignment in values(&text, "Environment") {
        let (key, value) = assignment.split_once('=').unwrap();
        cmd.env(key, value);
    }
    let cwd = values(&text, "WorkingDirectory");
    assert_eq!(
        cwd,
        ["/etc/ccbt"],
        "the config directory, where ./ccbt.toml is looked for"
    );
    let shown = run_for(&mut cmd, Duration::from_secs(30)).ok().stdout;
    for line in [
        "state_dir = \"/var/lib/ccbt-uring\"",
        "download_dir = \"/var/lib/ccbt-uring/Downloads\"",
        "control = \"127.0.0.1:9091\"",
    ] {
        assert!(shown.contains(line), "no {line} in:\n{shown}");
    }
    // The config file it reads: $XDG_CONFIG_HOME/ccbt/ccbt.toml = ConfigurationDirectory.
    assert_eq!(values(&text, "ConfigurationDirectory"), ["ccbt"]);
    assert!(values(&text, "Environment").contains(&"XDG_CONFIG_HOME=/etc"));
}

#[test]
fn the_sysusers_file_creates_the_services_user() {
    if !systemd_tools() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/systemd/ccbt-uring.sysusers");
    let ran = run_for(
        Command::new("systemd-sysusers")
            .arg(format!("--root={}", root.path().display()))
            .arg("--dry-run")
            .arg(&file),
        Duration::from_secs(30),
    );
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let said = format!("{}{}", ran.stdout, ran.stderr);
    assert!(said.contains("Creating user 'ccbt-uring'"), "{said}");
}
