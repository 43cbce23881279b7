//! `bitcraps testnet init`: homes for an N-validator network sharing one
//! genesis (used by `localnet` and by operators trying a cluster).

use super::{emit, CliResult, Context};
use bitcraps_node::app::genesis::DEFAULT_ROLL_INTERVAL_MS;
use bitcraps_node::home::{self, TestnetOptions, DEFAULT_CHAIN_ID, DEFAULT_FAUCET_BALANCE};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: TestnetCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TestnetCommand {
    /// Write genesis.json, faucet.key and one home per validator (valN/).
    Init(InitArgs),
}

#[derive(clap::Args, Debug)]
struct InitArgs {
    /// Number of validators (1..=100).
    #[arg(long, value_name = "N", default_value_t = 4)]
    validators: usize,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Chain id written into genesis.
    #[arg(long, value_name = "ID", default_value = DEFAULT_CHAIN_ID)]
    chain_id: String,
    /// Validator i listens on QUIC port BASE+2i and HTTP port BASE+2i+1;
    /// 0 picks free ports on this machine.
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    base_port: u16,
    /// Address the validators listen on and dial each other at.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Chips given to the faucet account at genesis.
    #[arg(long, value_name = "CHIPS", default_value_t = DEFAULT_FAUCET_BALANCE)]
    faucet_balance: u64,
    /// Betting window before each roll of the dice (ms of block time).
    #[arg(long, value_name = "MS", default_value_t = DEFAULT_ROLL_INTERVAL_MS)]
    roll_interval_ms: u64,
    /// Replace a previous testnet in DIR (its genesis, faucet key and valN homes).
    #[arg(long)]
    force: bool,
}

pub fn run(_ctx: &Context, args: Args) -> CliResult {
    match args.command {
        TestnetCommand::Init(a) => init(a),
    }
}

fn init(args: InitArgs) -> CliResult {
    let opts = TestnetOptions {
        validators: args.validators,
        out_dir: args.out,
        chain_id: args.chain_id,
        host: args.host,
        base_port: args.base_port,
        faucet_balance: args.faucet_balance,
        roll_interval_ms: args.roll_interval_ms,
        force: args.force,
    };
    let net = home::testnet_init(&opts)?;
    let mut rows = vec![[
        "NAME".to_owned(),
        "QUIC".to_owned(),
        "HTTP".to_owned(),
        "HOME".to_owned(),
    ]];
    for n in &net.nodes {
        rows.push([
            n.name.clone(),
            n.p2p_addr.to_string(),
            format!("http://{}", n.http_addr),
            n.home.display().to_string(),
        ]);
    }
    let mut widths = [0usize; 4];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut text = format!(
        "testnet {} with {} validators\n  genesis     {}\n  faucet key  {}\n\n",
        opts.chain_id,
        net.nodes.len(),
        net.genesis_path.display(),
        net.faucet_key_path.display()
    );
    for row in &rows {
        let line = format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text.push_str("\nstart each validator with: bitcraps --home <HOME> start\n");
    emit(&text)
}
