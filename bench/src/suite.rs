//! `quick` and `full`: every scenario in one run, each with its quick preset or its
//! defaults, printing each table as it is done; with `--update-md`, each scenario also
//! rewrites its section of BENCHMARKS.md (the prose around the sections stays).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, Parser};

use crate::{daemon, download, many, recheck, seed};

#[derive(Args)]
pub struct SuiteArgs {
    /// The ccbt-uring binary to measure.
    #[arg(long, default_value = "target/release/ccbt-uring")]
    ccbt: PathBuf,
    /// Where to keep the test data (shared by the scenarios, reused between runs).
    #[arg(long, default_value = "/var/tmp/ccbt-bench")]
    dir: PathBuf,
    /// Rewrite the scenarios' sections of this Markdown file.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "BENCHMARKS.md")]
    update_md: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Quick,
    Full,
}

/// A scenario's defaults as its own subcommand would parse them with no options but
/// `--ccbt` and `--dir`, so `full` runs exactly what `ccbt-bench <scenario>` runs.
#[derive(Parser)]
struct Defaults<T: Args> {
    #[command(flatten)]
    args: T,
}

fn defaults<T: Args>(args: &SuiteArgs) -> Result<T> {
    let parsed = Defaults::<T>::try_parse_from([
        "ccbt-bench".into(),
        "--ccbt".into(),
        args.ccbt.clone().into_os_string(),
        "--dir".into(),
        args.dir.clone().into_os_string(),
    ])
    .context("the scenario's defaults")?;
    Ok(parsed.args)
}

pub fn run(size: Size, args: SuiteArgs) -> Result<()> {
    let started = Instant::now();
    let md = args.update_md.clone();

    let mut s1 = preset(size, &args, download::quick)?;
    s1.write = md.clone();
    section("S1: download", download::run(s1)?);

    // The same downloads from a real client's seeders, so that our seeders' tuning is no
    // part of our downloader's figure.
    let mut s1_real = preset(size, &args, download::quick)?;
    s1_real.source = download::Source::Libtorrent;
    s1_real.write = md.clone();
    section(
        "S1: download from libtorrent seeders",
        download::run(s1_real)?,
    );

    let mut s2 = preset(size, &args, seed::quick)?;
    s2.write = md.clone();
    section("S2 and S5: seeding, and core scaling", seed::run(s2)?);

    let mut s3 = preset(size, &args, recheck::quick)?;
    s3.write = md.clone();
    section("S3: recheck", recheck::run(s3)?);

    let mut s4 = preset(size, &args, many::quick)?;
    s4.write = md.clone();
    section("S4: many torrents", many::run(s4)?);

    let mut s6 = preset(size, &args, daemon::quick)?;
    s6.write = md.clone();
    section("S6: the daemon with many torrents", daemon::run(s6)?);

    eprintln!(
        "all scenarios done in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if let Some(path) = md {
        eprintln!("updated {}", path.display());
    }
    Ok(())
}

/// A scenario's options for this size: its quick preset, or its own defaults.
fn preset<T: Args>(size: Size, args: &SuiteArgs, quick: fn(PathBuf, PathBuf) -> T) -> Result<T> {
    match size {
        Size::Quick => Ok(quick(args.ccbt.clone(), args.dir.clone())),
        Size::Full => defaults(args),
    }
}

fn section(title: &str, markdown: String) {
    println!("## {title}\n\n{markdown}\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_runs_each_scenarios_own_defaults() {
        let args = SuiteArgs {
            ccbt: "/x/ccbt-uring".into(),
            dir: "/d".into(),
            update_md: None,
        };
        let s1: download::DownloadArgs = defaults(&args).unwrap();
        assert!(s1.write.is_none());
        assert_eq!(s1.source, download::Source::Synthetic);
        let _: seed::SeedArgs = defaults(&args).unwrap();
        let _: recheck::RecheckArgs = defaults(&args).unwrap();
        let _: many::ManyArgs = defaults(&args).unwrap();
        let _: daemon::DaemonArgs = defaults(&args).unwrap();
    }
}
