//! Printing the effective configuration (`ccbt-uring config show`) and
//! telling what changed between two of them (hot reload).

use std::fmt::Write;

use crate::layers::{Loaded, Origin};
use crate::schema::{Config, Live, ShareLimits, CATEGORY_KEYS, KEYS, SECTIONS};

/// The effective configuration as TOML that [`crate::check_str`] reads back
/// to the same [`Config`]: every key, its doc as comments, and after each
/// value where it came from (`# default`, `# ccbt.toml:12`,
/// `# env CCBT_LIMITS_UPLOAD_BYTES_PER_S`, `# flag --peer-port`).
pub fn show(loaded: &Loaded) -> String {
    let mut out = String::new();
    let source = loaded.file.as_ref().map_or_else(
        || "no config file".to_string(),
        |path| path.display().to_string(),
    );
    let _ = writeln!(out, "# ccbt-uring effective configuration ({source}).");
    let _ = writeln!(out, "# After each value: where it came from.");
    let origin = |key: &str| loaded.origins.get(key).cloned().unwrap_or(Origin::Default);
    for section in SECTIONS {
        let _ = writeln!(out, "\n[{section}]");
        for spec in KEYS.iter().filter(|spec| spec.section == *section) {
            for line in spec.doc.lines() {
                let _ = writeln!(out, "#{line}");
            }
            let dotted = spec.dotted();
            let value = (spec.get)(&loaded.config);
            // A set secret is not printed: `config show` output gets pasted into reports.
            let value = if SECRETS.contains(&dotted.as_str()) && value != "\"\"" {
                "\"(set, not shown)\"".to_string()
            } else {
                value
            };
            let _ = writeln!(out, "{} = {}  # {}", spec.name, value, origin(&dotted));
        }
    }
    for (name, limits) in &loaded.config.share.categories {
        let _ = writeln!(
            out,
            "\n[share.categories.{}]",
            toml_edit::Key::new(name.as_str())
        );
        for key in CATEGORY_KEYS {
            let dotted = format!("share.categories.{name}.{}", key.name);
            let _ = writeln!(
                out,
                "{} = {}  # {}",
                key.name,
                (key.get)(limits),
                origin(&dotted)
            );
        }
    }
    out
}

/// Keys whose values `show` and `diff` never print.
const SECRETS: &[&str] = &["control.password"];

/// One key whose value differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Dotted key, e.g. `daemon.peer_port`.
    pub key: String,
    /// Whether a running daemon can apply it; otherwise it waits for a restart.
    pub live: bool,
    /// Old and new values as TOML (`"absent"` for a category that is gone or new).
    pub old: String,
    pub new: String,
}

/// One key's value in `config`, as TOML (what [`diff`] shows and a file may hold);
/// `None` for a key that does not exist (category keys included).
pub fn value_of(config: &Config, dotted: &str) -> Option<String> {
    KEYS.iter()
        .find(|spec| spec.dotted() == dotted)
        .map(|spec| (spec.get)(config))
}

/// The keys whose values differ, in file order.
pub fn diff(old: &Config, new: &Config) -> Vec<Change> {
    let mut changes: Vec<Change> = KEYS
        .iter()
        .map(|spec| (spec, (spec.get)(old), (spec.get)(new)))
        .filter(|(_, old, new)| old != new)
        .map(|(spec, old, new)| {
            let key = spec.dotted();
            let secret = SECRETS.contains(&key.as_str());
            let hide = |v: String| {
                if secret {
                    "\"(not shown)\"".to_string()
                } else {
                    v
                }
            };
            Change {
                live: spec.live == Live::Live,
                old: hide(old),
                new: hide(new),
                key,
            }
        })
        .collect();
    let names: std::collections::BTreeSet<&String> = old
        .share
        .categories
        .keys()
        .chain(new.share.categories.keys())
        .collect();
    let absent = |limits: Option<&ShareLimits>, get: fn(&ShareLimits) -> String| {
        limits.map_or_else(|| "absent".to_string(), get)
    };
    for name in names {
        for key in CATEGORY_KEYS {
            let before = absent(old.share.categories.get(name), key.get);
            let after = absent(new.share.categories.get(name), key.get);
            if before != after {
                changes.push(Change {
                    key: format!("share.categories.{name}.{}", key.name),
                    live: true,
                    old: before,
                    new: after,
                });
            }
        }
    }
    changes
}
