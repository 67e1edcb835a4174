//! `ccbt-uring config show|check`.

use anyhow::anyhow;

use crate::cli::{ConfigAction, ConfigArgs};
use crate::daemon::load_config;
use crate::failure::{Exit, Failure, Outcome};

pub fn run(args: ConfigArgs) -> Outcome {
    match args.action {
        ConfigAction::Show { config } => {
            let loaded = load_config(config, Vec::new())?;
            print!("{}", ccbt_config::show(&loaded));
            Ok(Exit::Ok)
        }
        ConfigAction::Check { file } => match ccbt_config::check_file(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                Ok(Exit::Ok)
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                Err(Failure::new(
                    Exit::BadInput,
                    anyhow!("{}: {} problems", file.display(), diagnostics.len()),
                ))
            }
        },
    }
}
