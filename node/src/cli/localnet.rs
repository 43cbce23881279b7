//! `bitcraps localnet`: the main job. Runs a local cluster of validator
//! processes with simulated players (see `bitcraps_node::localnet`).

use super::{CliResult, Context};
use bitcraps_node::localnet::{self, LocalnetArgs};

pub fn run(_ctx: &Context, args: LocalnetArgs) -> CliResult {
    // Several worker threads: the load generator, the block watcher and the
    // progress line run side by side while the validators are child processes.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the tokio runtime: {e}"))?;
    runtime.block_on(localnet::run(args))?;
    Ok(())
}
