//! Log lines to stderr, with a filter that can change while the process runs.
//!
//! A command starts with `CCBT_LOG` (tracing's `EnvFilter` syntax) or its default. The
//! daemon then applies `daemon.log` once its config is read (the config's layers put
//! `CCBT_LOG` over the file, so a set variable still wins), and again whenever a reload
//! changes it.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// The installed filter's handle.
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the stderr logger; `default` is the filter when `CCBT_LOG` is not set.
pub fn init(default: &str) {
    let from_env = std::env::var("CCBT_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let filter = match from_env.map(EnvFilter::try_new) {
        Some(Ok(filter)) => filter,
        Some(Err(e)) => {
            eprintln!("ccbt-uring: CCBT_LOG is not a log filter ({e}); using {default}");
            EnvFilter::new(default)
        }
        None => EnvFilter::new(default),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    tracing_subscriber::registry().with(filter).with(fmt).init();
    let _ = FILTER.set(handle);
}

/// Why a filter was not applied.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("not a log filter: {0}")]
    Invalid(#[from] tracing_subscriber::filter::ParseError),
    #[error("no logger is installed")]
    NoLogger,
    #[error("the logger cannot change its filter: {0}")]
    Reload(#[from] reload::Error),
}

/// Parses `spec` (e.g. `info`, `ccbt_shards=debug,warn`) and makes it the filter.
pub fn set_filter(spec: &str) -> Result<(), FilterError> {
    let filter = EnvFilter::try_new(spec)?;
    let handle = FILTER.get().ok_or(FilterError::NoLogger)?;
    handle.reload(filter)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_filter_is_refused_before_anything_changes() {
        assert!(matches!(
            set_filter("ccbt=loud"),
            Err(FilterError::Invalid(_))
        ));
    }
}
