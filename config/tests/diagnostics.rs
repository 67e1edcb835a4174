//! Line-numbered problems in a config file, all of them at once.

use std::path::Path;

use ccbt_config::{check_file, check_str, Diagnostic, Location};

fn problems(text: &str) -> Vec<Diagnostic> {
    check_str(text, Path::new("ccbt.toml")).expect_err("the file has problems")
}

fn lines(diags: &[Diagnostic]) -> Vec<usize> {
    diags.iter().map(|d| d.line().unwrap()).collect()
}

#[test]
fn syntax_error_has_its_line() {
    let diags = problems("[daemon]\npeer_port = 6881\n\n[limits\ncache_mib = 1\n");
    assert_eq!(lines(&diags), [4], "{diags:?}");
    assert!(
        diags[0].to_string().starts_with("ccbt.toml:4:"),
        "{}",
        diags[0]
    );
}

#[test]
fn wrong_type_points_at_the_value() {
    let diags = problems("[daemon]\n\n\npeer_port = \"high\"\n");
    assert_eq!(diags.len(), 1);
    assert_eq!(
        diags[0].location,
        Location::File {
            path: "ccbt.toml".into(),
            line: 4,
            column: 13
        }
    );
    assert_eq!(
        diags[0].to_string(),
        "ccbt.toml:4:13: invalid value for `peer_port` in [daemon]: expected an integer from 0 to 65535, found string \"high\""
    );
}

#[test]
fn out_of_range_values() {
    let diags = problems(
        "[daemon]\npeer_port = 70000\nshards = 5000\n[limits]\nmax_peers_per_torrent = 0\n",
    );
    assert_eq!(lines(&diags), [2, 3, 5], "{diags:?}");
    assert!(diags[0].message.contains("from 0 to 65535"));
    assert!(diags[1].message.contains("to 1024"));
    assert!(diags[2].message.contains("at least 1"));
}

#[test]
fn unknown_key_suggests_the_close_one() {
    let text = "# comment\n\n[limits]\ncache_mib = 64\n\n\n\n\n\n\n\nuplod_bytes_per_s = 1\n";
    let diags = problems(text);
    assert_eq!(diags.len(), 1);
    assert_eq!(
        diags[0].to_string(),
        "ccbt.toml:12:1: unknown key `uplod_bytes_per_s` in [limits]; did you mean `upload_bytes_per_s`?"
    );
    // Nothing close: no suggestion.
    let diags = problems("[limits]\nfrobnicate = 1\n");
    assert_eq!(
        diags[0].to_string(),
        "ccbt.toml:2:1: unknown key `frobnicate` in [limits]"
    );
    // Sections too.
    let diags = problems("[limit]\ncache_mib = 1\n");
    assert_eq!(
        diags[0].to_string(),
        "ccbt.toml:1:2: unknown section [limit]; did you mean `limits`?"
    );
}

#[test]
fn bad_units_are_errors() {
    let diags = problems("[limits]\nupload_bytes_per_s = \"10 MiBs\"\ndownload_bytes_per_s = \"1.5 B\"\n[share]\nseeding_time_limit = \"2 fortnights\"\n");
    assert_eq!(lines(&diags), [2, 3, 5], "{diags:?}");
    assert!(
        diags[0].message.contains("unknown unit `MiBs`"),
        "{}",
        diags[0]
    );
    assert!(
        diags[1].message.contains("not a whole number of bytes"),
        "{}",
        diags[1]
    );
    assert!(diags[2].message.contains("not a duration"), "{}", diags[2]);
}

#[test]
fn every_problem_in_one_file_is_reported() {
    let text = "\
[daemon]
peer_port = -1
contrl = \"127.0.0.1:1\"
control = \"localhost\"

[queue]
max_active_downloads = true

[share]
ratio_limit = -2
action = \"delete\"

[share.categories.movies]
ratio = 1

[storage]
preallocate = \"full\"
allow_symlinks_inside = \"yes\"

[nonsense]
";
    let diags = problems(text);
    assert_eq!(
        lines(&diags),
        [2, 3, 4, 7, 10, 11, 14, 18, 20],
        "{diags:#?}"
    );
    assert!(diags[1].message.ends_with("did you mean `control`?"));
    assert_eq!(
        diags[6].message,
        "unknown key `ratio` in [share.categories.movies]; did you mean `ratio_limit`?"
    );
    assert_eq!(
        diags[0].message,
        "invalid value for `peer_port` in [daemon]: expected an integer from 0 to 65535, found -1"
    );
}

#[test]
fn a_value_where_a_table_belongs_and_the_reverse() {
    let diags = problems("limits = 3\n[daemon.peer_port]\nx = 1\n");
    assert_eq!(lines(&diags), [1, 2], "{diags:?}");
    assert!(diags[0].message.contains("must be a table"));
    assert!(diags[1].message.contains("must be a value"));
}

#[test]
fn missing_file_is_one_diagnostic() {
    let diags = check_file(Path::new("/nonexistent/ccbt.toml")).unwrap_err();
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].line(), None);
}

#[test]
fn example_file_checks_clean_and_holds_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("ccbt.example.toml");
    let config = check_file(&path).unwrap_or_else(|diags| {
        panic!(
            "{}",
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let mut defaults = ccbt_config::Config::default();
    // The example spells state_dir as the XDG fallback; the process may set XDG_DATA_HOME.
    defaults.daemon.state_dir = config.daemon.state_dir.clone();
    assert_eq!(config, defaults);
}
