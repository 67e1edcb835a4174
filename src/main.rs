//! `ccbt-uring`: the command-line front end of the ccbt-uring BitTorrent engine.

mod cli;
mod commands;
mod failure;
mod format;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Create(args) => commands::create::run(args),
        cli::Command::Info(args) => commands::info::run(args),
        cli::Command::Verify(args) => commands::verify::run(args),
    };
    match result {
        Ok(code) => code.into(),
        Err(failure) => {
            eprintln!("ccbt-uring: error: {:#}", failure.error);
            failure.code.into()
        }
    }
}
