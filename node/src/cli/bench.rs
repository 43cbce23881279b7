//! `bitcraps bench`: the cluster benchmark. Starts a local cluster of
//! validator processes, offers open-loop signed load through all of them and
//! reports throughput, latency, CPU and memory (see `bitcraps_node::bench`).

use super::{CliResult, Context};
pub use bitcraps_node::bench::BenchArgs as Args;

pub fn run(_ctx: &Context, args: Args) -> CliResult {
    // Worker threads for the senders, the commit follower and the sampler;
    // signing has a thread of its own and the validators are processes.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the tokio runtime: {e}"))?;
    runtime.block_on(bitcraps_node::bench::run(args))?;
    Ok(())
}
