//! `ccbt-uring`: the command-line front end of the ccbt-uring BitTorrent engine.

mod changed_paths;
mod cli;
mod commands;
mod daemon;
mod failure;
mod format;
mod http;
mod logging;
mod native_api;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // The daemon logs what it does by default; one-shot commands only what goes wrong.
    logging::init(if matches!(cli.command, cli::Command::Daemon(_)) {
        "info"
    } else {
        "warn"
    });
    let result = match cli.command {
        cli::Command::Create(args) => commands::create::run(args),
        cli::Command::Info(args) => commands::info::run(args),
        cli::Command::Verify(args) => commands::verify::run(args),
        cli::Command::Download(args) => commands::download::run(args),
        cli::Command::Seed(args) => commands::seed::run(args),
        cli::Command::Daemon(args) => daemon::run(args),
        cli::Command::Remote(args) => commands::remote::run(args),
        cli::Command::Top(args) => commands::top::run(args),
        cli::Command::Config(args) => commands::config::run(args),
    };
    match result {
        Ok(code) => code.into(),
        Err(failure) => {
            eprintln!("ccbt-uring: error: {:#}", failure.error);
            failure.code.into()
        }
    }
}
