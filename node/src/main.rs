//! The `bitcraps` binary.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "bitcraps", version, about = "BitCraps validator node")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the version.
    Version {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Version { json } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "name": "bitcraps", "version": bitcraps_node::VERSION })
                );
            } else {
                println!("bitcraps {}", bitcraps_node::VERSION);
            }
        }
    }
}
