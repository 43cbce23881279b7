//! `bitcraps init`: a ready-to-start single-validator home.

use super::{emit, CliResult, Context};
use bitcraps_node::home::{self, InitOptions, DEFAULT_CHAIN_ID, DEFAULT_FAUCET_BALANCE};
use std::net::SocketAddr;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Replace an existing home. Deletes its config, genesis, keys and
    /// signing-guard state (other files in the directory are kept).
    #[arg(long)]
    force: bool,
    /// Chain id written into genesis (1..=64 bytes).
    #[arg(long, value_name = "ID", default_value = DEFAULT_CHAIN_ID)]
    chain_id: String,
    /// QUIC (UDP) listen address; also this validator's address in genesis.
    #[arg(long, value_name = "IP:PORT", default_value = bitcraps_node::config::DEFAULT_P2P_LISTEN)]
    p2p_listen: SocketAddr,
    /// HTTP API (TCP) listen address.
    #[arg(long, value_name = "IP:PORT", default_value = bitcraps_node::config::DEFAULT_HTTP_LISTEN)]
    http_listen: SocketAddr,
    /// Chips given to the faucet account (keys/faucet.key) at genesis.
    #[arg(long, value_name = "CHIPS", default_value_t = DEFAULT_FAUCET_BALANCE)]
    faucet_balance: u64,
}

pub fn run(ctx: &Context, args: Args) -> CliResult {
    let home = ctx.home()?;
    let opts = InitOptions {
        chain_id: args.chain_id,
        p2p_listen: args.p2p_listen,
        http_listen: args.http_listen,
        faucet_balance: args.faucet_balance,
        force: args.force,
    };
    if opts.force {
        tracing::warn!(home = %home.root().display(), "--force: replacing keys and signing-guard state");
    }
    home::init(&home, &opts)?;
    let consensus = home::read_key_file(&home.consensus_key_path())?.public();
    let identity = home::read_key_file(&home.identity_key_path())?.public();
    let faucet = home::read_key_file(&home.faucet_key_path())?.public();
    let root = home.root().display();
    emit(&format!(
        "initialised node home {root}\n\
         \x20 chain id       {chain}\n\
         \x20 consensus key  {consensus}\n\
         \x20 identity key   {identity}\n\
         \x20 faucet key     {faucet} ({faucet_path})\n\
         \x20 QUIC           {p2p}\n\
         \x20 HTTP           http://{http}\n\
         keys are plaintext files (localnet/testnet only). Start with:\n\
         \x20 bitcraps --home {root} start\n",
        chain = opts.chain_id,
        faucet_path = home.faucet_key_path().display(),
        p2p = opts.p2p_listen,
        http = opts.http_listen,
    ))
}
