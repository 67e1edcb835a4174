//! Stacking the layers: defaults, then the file, then `CCBT_*` variables,
//! then flags, each recording where its values came from.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use toml_edit::{ImDocument, Item, TableLike};

use crate::diagnostics::{did_you_mean, ConfigError, Diagnostic, Lines, Location};
use crate::paths::Home;
use crate::schema::{CategoryKey, Config, KeySpec, CATEGORY_KEYS, KEYS, SECTIONS};
use crate::setting::Raw;

/// Everything a configuration is made from. The environment is passed in
/// (see [`crate::process_env`]) so that tests never touch the process's.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// `--config FILE`: exactly this file, which must exist.
    pub file: Option<PathBuf>,
    /// Where `./ccbt.toml` is looked for, and what a relative `file` is relative to.
    pub cwd: PathBuf,
    pub env: Vec<(String, String)>,
    /// Flags as (dotted key, value), in command-line order: for a list key
    /// (`daemon.watch_dirs`) each is one element, otherwise the last wins.
    pub overrides: Vec<(String, String)>,
}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    /// The config file and the 1-based line of the key.
    File(PathBuf, usize),
    /// An environment variable, by name.
    Env(String),
    /// A flag: the daemon's own flag (`--peer-port`) for the keys it has
    /// one for, else the dotted key that was overridden.
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path, line) => {
                let name = path.file_name().unwrap_or(path.as_os_str());
                write!(f, "{}:{line}", Path::new(name).display())
            }
            Origin::Env(name) => write!(f, "env {name}"),
            Origin::Flag(name) => write!(f, "flag {name}"),
        }
    }
}

/// A loaded configuration and how it came to be.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    /// Every key's origin, by dotted key (`limits.upload_bytes_per_s`,
    /// `share.categories.movies.ratio_limit`).
    pub origins: BTreeMap<String, Origin>,
    /// The config file read, if any.
    pub file: Option<PathBuf>,
    /// Things worth logging that are not errors, such as unknown `CCBT_*`
    /// variables (other tools share the prefix).
    pub warnings: Vec<String>,
}

/// The daemon's dedicated flags; other overridden keys are named by key.
fn flag_name(dotted: &str) -> String {
    match dotted {
        "daemon.state_dir" => "--state-dir",
        "daemon.download_dir" => "--download-dir",
        "daemon.watch_dirs" => "--watch-dir",
        "daemon.peer_port" => "--peer-port",
        "daemon.control" => "--control",
        other => other,
    }
    .to_string()
}

/// The environment variable for a key: `CCBT_<SECTION>_<KEY>`.
pub(crate) fn env_name(dotted: &str) -> String {
    format!("CCBT_{}", dotted.replace('.', "_").to_uppercase())
}

/// `CCBT_LOG` predates the config file and names the log filter; the
/// specific `CCBT_DAEMON_LOG` wins when both are set.
const ENV_ALIASES: &[(&str, &str)] = &[("CCBT_LOG", "daemon.log")];

/// A key a layer wants to set.
enum Target {
    Key(&'static KeySpec),
    Category(String, &'static CategoryKey),
}

fn lookup(dotted: &str) -> Option<Target> {
    if let Some(rest) = dotted.strip_prefix("share.categories.") {
        let (name, key) = rest.rsplit_once('.')?;
        let key = CATEGORY_KEYS.iter().find(|k| k.name == key)?;
        return (!name.is_empty()).then(|| Target::Category(name.to_string(), key));
    }
    KEYS.iter()
        .find(|spec| spec.dotted() == dotted)
        .map(Target::Key)
}

fn env_lookup(name: &str) -> Option<(String, Target)> {
    if let Some(&(_, dotted)) = ENV_ALIASES.iter().find(|(alias, _)| *alias == name) {
        return Some((dotted.to_string(), lookup(dotted)?));
    }
    if let Some(rest) = name.strip_prefix("CCBT_SHARE_CATEGORIES_") {
        for key in CATEGORY_KEYS {
            let suffix = format!("_{}", key.name.to_uppercase());
            if let Some(category) = rest.strip_suffix(&suffix).filter(|c| !c.is_empty()) {
                let dotted = format!("share.categories.{}.{}", category.to_lowercase(), key.name);
                return Some((dotted.clone(), lookup(&dotted)?));
            }
        }
        return None;
    }
    KEYS.iter()
        .find(|spec| env_name(&spec.dotted()) == name)
        .map(|spec| (spec.dotted(), Target::Key(spec)))
}

/// A finished build: the configuration, origins and warnings.
pub(crate) type Built = (Config, BTreeMap<String, Origin>, Vec<String>);

/// A configuration being built, layer by layer.
pub(crate) struct Builder {
    home: Home,
    config: Config,
    origins: BTreeMap<String, Origin>,
    diagnostics: Vec<Diagnostic>,
    warnings: Vec<String>,
}

impl Builder {
    pub fn new(home: Home) -> Builder {
        let origins = KEYS
            .iter()
            .map(|spec| (spec.dotted(), Origin::Default))
            .collect();
        Builder {
            config: Config::defaults(&home),
            home,
            origins,
            diagnostics: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn set(
        &mut self,
        dotted: String,
        target: &Target,
        raw: Raw<'_>,
        origin: Origin,
    ) -> Result<(), String> {
        match target {
            Target::Key(spec) => (spec.set)(&mut self.config, raw, &self.home)?,
            Target::Category(name, key) => {
                let global = self.config.share.global();
                let limits = self
                    .config
                    .share
                    .categories
                    .entry(name.clone())
                    .or_insert(global);
                (key.set)(limits, raw, &self.home)?;
            }
        }
        self.origins.insert(dotted, origin);
        Ok(())
    }

    fn category(&mut self, name: &str) -> &mut crate::ShareLimits {
        let global = self.config.share.global();
        self.config
            .share
            .categories
            .entry(name.to_string())
            .or_insert(global)
    }

    pub fn apply_file(&mut self, text: &str, path: &Path) {
        let lines = Lines::new(text);
        let document = match ImDocument::parse(text) {
            Ok(document) => document,
            Err(error) => {
                let offset = error.span().map(|span| span.start);
                let message = error.message().trim().to_string();
                self.diagnostics.push(Diagnostic {
                    location: lines.at(path, offset),
                    message,
                });
                return;
            }
        };
        let file = FileWalk { lines, path };
        let root = document.as_table();
        for (section, item) in root.iter() {
            let key_at = root.key(section).and_then(|k| k.span()).map(|s| s.start);
            let Some(table) = item.as_table_like() else {
                if SECTIONS.contains(&section) {
                    file.error(
                        self,
                        key_at,
                        format!("`{section}` must be a table: write [{section}]"),
                    );
                } else {
                    let hint = did_you_mean(section, SECTIONS.iter().copied());
                    file.error(
                        self,
                        key_at,
                        format!("unknown key `{section}` outside any section{hint}"),
                    );
                }
                continue;
            };
            if !SECTIONS.contains(&section) {
                let hint = did_you_mean(section, SECTIONS.iter().copied());
                file.error(self, key_at, format!("unknown section [{section}]{hint}"));
                continue;
            }
            self.apply_section(&file, section, table);
        }
    }

    fn apply_section(&mut self, file: &FileWalk<'_>, section: &str, table: &dyn TableLike) {
        for (name, item) in table.iter() {
            let key_at = table
                .get_key_value(name)
                .and_then(|(k, _)| k.span())
                .map(|s| s.start);
            if section == "share" && name == "categories" {
                self.apply_categories(file, item, key_at);
                continue;
            }
            let Some(spec) = KEYS.iter().find(|s| s.section == section && s.name == name) else {
                let names = KEYS.iter().filter(|s| s.section == section).map(|s| s.name);
                let names = names.chain((section == "share").then_some("categories"));
                let hint = did_you_mean(name, names);
                file.error(
                    self,
                    key_at,
                    format!("unknown key `{name}` in [{section}]{hint}"),
                );
                continue;
            };
            file.value(self, spec.dotted(), &Target::Key(spec), item, key_at);
        }
    }

    fn apply_categories(&mut self, file: &FileWalk<'_>, item: &Item, key_at: Option<usize>) {
        let Some(categories) = item.as_table_like() else {
            file.error(
                self,
                key_at,
                "`categories` in [share] must be a table of [share.categories.NAME] tables"
                    .to_string(),
            );
            return;
        };
        for (name, item) in categories.iter() {
            let key_at = categories
                .get_key_value(name)
                .and_then(|(k, _)| k.span())
                .map(|s| s.start);
            let Some(table) = item.as_table_like() else {
                file.error(
                    self,
                    key_at,
                    format!("category `{name}` must be a table: write [share.categories.{name}]"),
                );
                continue;
            };
            self.category(name);
            for (key, item) in table.iter() {
                let key_at = table
                    .get_key_value(key)
                    .and_then(|(k, _)| k.span())
                    .map(|s| s.start);
                let dotted = format!("share.categories.{name}.{key}");
                match lookup(&dotted) {
                    Some(target) => file.value(self, dotted, &target, item, key_at),
                    None => {
                        let hint = did_you_mean(key, CATEGORY_KEYS.iter().map(|k| k.name));
                        file.error(
                            self,
                            key_at,
                            format!("unknown key `{key}` in [share.categories.{name}]{hint}"),
                        );
                    }
                }
            }
        }
    }

    pub fn apply_env(&mut self, env: &[(String, String)]) {
        // Aliases first so the specific names win; then a stable order.
        let mut vars: Vec<&(String, String)> =
            env.iter().filter(|(k, _)| k.starts_with("CCBT_")).collect();
        vars.sort_by_key(|(k, _)| (!ENV_ALIASES.iter().any(|(alias, _)| alias == k), k.clone()));
        for (name, value) in vars {
            let Some((dotted, target)) = env_lookup(name) else {
                let known: Vec<String> = KEYS.iter().map(|spec| env_name(&spec.dotted())).collect();
                let hint = did_you_mean(name, known.iter().map(String::as_str));
                self.warnings.push(format!(
                    "ignoring unknown environment variable {name}{hint}"
                ));
                continue;
            };
            if let Err(message) = self.set(
                dotted.clone(),
                &target,
                Raw::Text(value),
                Origin::Env(name.clone()),
            ) {
                self.diagnostics.push(Diagnostic {
                    location: Location::Env(name.clone()),
                    message: format!("invalid value for `{dotted}`: {message}"),
                });
            }
        }
    }

    pub fn apply_overrides(&mut self, overrides: &[(String, String)]) {
        // Group repeated flags, keeping the first one's place.
        let mut grouped: Vec<(&str, Vec<String>)> = Vec::new();
        for (key, value) in overrides {
            match grouped.iter_mut().find(|(k, _)| k == key) {
                Some((_, values)) => values.push(value.clone()),
                None => grouped.push((key, vec![value.clone()])),
            }
        }
        for (dotted, values) in grouped {
            let flag = flag_name(dotted);
            let Some(target) = lookup(dotted) else {
                let known: Vec<String> = KEYS.iter().map(KeySpec::dotted).collect();
                let hint = did_you_mean(dotted, known.iter().map(String::as_str));
                self.diagnostics.push(Diagnostic {
                    location: Location::Flag(flag),
                    message: format!("unknown setting `{dotted}`{hint}"),
                });
                continue;
            };
            if let Err(message) = self.set(
                dotted.to_string(),
                &target,
                Raw::Texts(&values),
                Origin::Flag(flag.clone()),
            ) {
                self.diagnostics.push(Diagnostic {
                    location: Location::Flag(flag),
                    message: format!("invalid value for `{dotted}`: {message}"),
                });
            }
        }
    }

    /// Fills category keys left out from `[share]`, and hands back the result.
    pub fn finish(mut self) -> Result<Built, Vec<Diagnostic>> {
        if !self.diagnostics.is_empty() {
            return Err(self.diagnostics);
        }
        let share = self.config.share.clone();
        for (name, limits) in &mut self.config.share.categories {
            for key in CATEGORY_KEYS {
                let dotted = format!("share.categories.{name}.{}", key.name);
                if !self.origins.contains_key(&dotted) {
                    (key.inherit)(limits, &share);
                    let origin = self.origins[&format!("share.{}", key.name)].clone();
                    self.origins.insert(dotted, origin);
                }
            }
        }
        Ok((self.config, self.origins, self.warnings))
    }
}

/// One file being applied: turns spans into locations.
struct FileWalk<'a> {
    lines: Lines<'a>,
    path: &'a Path,
}

impl FileWalk<'_> {
    fn error(&self, builder: &mut Builder, offset: Option<usize>, message: String) {
        builder.diagnostics.push(Diagnostic {
            location: self.lines.at(self.path, offset),
            message,
        });
    }

    fn value(
        &self,
        builder: &mut Builder,
        dotted: String,
        target: &Target,
        item: &Item,
        key_at: Option<usize>,
    ) {
        let (section, name) = dotted.rsplit_once('.').expect("dotted keys have a section");
        let Item::Value(value) = item else {
            let message = format!(
                "`{name}` in [{section}] must be a value, not a {}",
                item.type_name()
            );
            return self.error(builder, key_at, message);
        };
        let line = key_at.map_or(0, |offset| self.lines.position(offset).0);
        let origin = Origin::File(self.path.to_path_buf(), line);
        if let Err(message) = builder.set(dotted.clone(), target, Raw::Toml(value), origin) {
            let at = value.span().map(|span| span.start).or(key_at);
            self.error(
                builder,
                at,
                format!("invalid value for `{name}` in [{section}]: {message}"),
            );
        }
    }
}

/// The file `sources` names or the first implicit one that exists.
pub fn find_file(sources: &Sources) -> Result<Option<PathBuf>, ConfigError> {
    if let Some(file) = &sources.file {
        let file = sources.cwd.join(file);
        return match file.exists() {
            true => Ok(Some(file)),
            false => Err(ConfigError::NotFound(file)),
        };
    }
    let home = Home::from_env(&sources.env);
    Ok(home
        .candidates(&sources.cwd)
        .into_iter()
        .find(|path| path.is_file()))
}

/// The files a change to which may change the configuration.
pub(crate) fn watched_files(sources: &Sources) -> Vec<PathBuf> {
    match &sources.file {
        Some(file) => vec![sources.cwd.join(file)],
        None => Home::from_env(&sources.env).candidates(&sources.cwd),
    }
}

/// Builds the configuration from every layer. Problems in the file,
/// variables and flags are all reported together.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    let file = find_file(sources)?;
    let mut builder = Builder::new(Home::from_env(&sources.env));
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        builder.apply_file(&text, path);
    }
    builder.apply_env(&sources.env);
    builder.apply_overrides(&sources.overrides);
    let (config, origins, warnings) = builder.finish().map_err(ConfigError::Invalid)?;
    Ok(Loaded {
        config,
        origins,
        file,
        warnings,
    })
}

/// Checks a config file on its own (defaults plus the file, no variables
/// or flags): every problem, with line and column.
pub fn check_file(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    match std::fs::read_to_string(path) {
        Ok(text) => check_str(&text, path),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }
        .into_diagnostics()),
    }
}

/// [`check_file`] for text already read; `path` only names it in diagnostics.
pub fn check_str(text: &str, path: &Path) -> Result<Config, Vec<Diagnostic>> {
    let mut builder = Builder::new(Home::from_env(&crate::process_env()));
    builder.apply_file(text, path);
    builder.finish().map(|(config, _, _)| config)
}
