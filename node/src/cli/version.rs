//! `bitcraps version [--json]`.

use super::{emit, CliResult, Context};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Machine-readable output: {"name": "bitcraps", "version": "..."}.
    #[arg(long)]
    json: bool,
}

pub fn run(_ctx: &Context, args: Args) -> CliResult {
    if args.json {
        let v = serde_json::json!({ "name": "bitcraps", "version": bitcraps_node::VERSION });
        emit(&format!("{v}\n"))
    } else {
        emit(&format!("bitcraps {}\n", bitcraps_node::VERSION))
    }
}
