//! `bitcraps config show|validate`.

use super::{emit, CliResult, Context};
use bitcraps_node::config::Config;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ConfigCommand {
    /// Print the effective config (file values over defaults) as documented TOML.
    Show(FileArg),
    /// Check the config; exit 0 if it is valid, 1 with the reason if not.
    Validate(FileArg),
    /// Print the default config, every option documented.
    Default,
}

#[derive(clap::Args, Debug)]
struct FileArg {
    /// A config file other than <home>/config.toml.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: Args) -> CliResult {
    match args.command {
        ConfigCommand::Show(f) => {
            let (_, config) = load(ctx, f)?;
            emit(&config.to_toml())
        }
        ConfigCommand::Validate(f) => {
            let (path, _) = load(ctx, f)?;
            emit(&format!("{} is valid\n", path.display()))
        }
        ConfigCommand::Default => emit(&Config::default_toml()),
    }
}

fn load(ctx: &Context, f: FileArg) -> CliResult<(PathBuf, Config)> {
    match f.file {
        Some(path) => {
            let config = Config::load(&path)?;
            Ok((path, config))
        }
        None => {
            let home = ctx.home()?;
            let config = home.load_config()?;
            Ok((home.config_path(), config))
        }
    }
}
