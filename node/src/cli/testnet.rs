//! `bitcraps testnet init`: homes for an N-validator network sharing one
//! genesis (used by `localnet` and by operators trying a cluster).

use super::{emit, CliResult, Context};
use bitcraps_node::app::genesis::DEFAULT_ROLL_INTERVAL_MS;
use bitcraps_node::home::{self, TestnetOptions, DEFAULT_CHAIN_ID, DEFAULT_FAUCET_BALANCE};
use bitcraps_node::home_pkcs11::{self, TestnetSigner, TokenPin};
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
    /// Where the validators' consensus keys live: `plaintext` key files
    /// (keys/consensus.key); `keystore`: keys/consensus.key is an encrypted
    /// keystore (Argon2id, 64 MiB, 3 passes) under a random passphrase written
    /// to keys/consensus.passphrase (0600), which each home's [signer]
    /// passphrase_file names; or `pkcs11`: generated inside a PKCS#11 token
    /// (never extractable, label bitcraps-<chain-id>-val<i>), with each home's
    /// [signer] section and keys/pkcs11.pin pointing at it. The module reads
    /// its own environment (SoftHSM2: SOFTHSM2_CONF), here and in every node.
    #[arg(long, value_enum, value_name = "BACKEND", default_value_t = SignerArg::Plaintext)]
    signer: SignerArg,
    /// PKCS#11 module (.so) of the token, with --signer pkcs11, e.g.
    /// /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, value_name = "PATH")]
    pkcs11_module: Option<PathBuf>,
    /// Label of the token that generates and keeps the keys, with --signer
    /// pkcs11. A `{i}` in it is replaced by the validator's index, giving each
    /// validator its own token (e.g. val-{i}: val-0, val-1, ...), which
    /// docs/hsm.md recommends and SoftHSM2 needs for validators that run at
    /// the same time.
    #[arg(long, value_name = "LABEL")]
    pkcs11_token: Option<String>,
    /// File with the token's user PIN (mode 0600; one trailing newline
    /// ignored), with --signer pkcs11. Copied into each home's keys/pkcs11.pin.
    #[arg(long, value_name = "FILE")]
    pin_file: Option<PathBuf>,
}

/// `--signer`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum SignerArg {
    Plaintext,
    Keystore,
    Pkcs11,
}

/// The `--signer` flags as a [`TestnetSigner`], or why they do not fit together.
fn testnet_signer(args: &InitArgs) -> CliResult<TestnetSigner> {
    match args.signer {
        SignerArg::Plaintext | SignerArg::Keystore => {
            let stray = [
                ("--pkcs11-module", args.pkcs11_module.is_some()),
                ("--pkcs11-token", args.pkcs11_token.is_some()),
                ("--pin-file", args.pin_file.is_some()),
            ];
            if let Some((flag, _)) = stray.iter().find(|(_, given)| *given) {
                return Err(format!("{flag} needs --signer pkcs11").into());
            }
            Ok(if args.signer == SignerArg::Keystore {
                TestnetSigner::keystore()
            } else {
                TestnetSigner::Plaintext
            })
        }
        SignerArg::Pkcs11 => {
            let missing = |flag: &str, example: &str| {
                format!("--signer pkcs11 needs {flag} (e.g. {flag} {example})")
            };
            let module = args
                .pkcs11_module
                .clone()
                .ok_or_else(|| missing("--pkcs11-module", home_pkcs11::SOFTHSM_MODULE))?;
            let token_label = args
                .pkcs11_token
                .clone()
                .ok_or_else(|| missing("--pkcs11-token", "validators"))?;
            let pin_file = args
                .pin_file
                .as_deref()
                .ok_or_else(|| missing("--pin-file", "token.pin"))?;
            Ok(TestnetSigner::Pkcs11 {
                module,
                token_label,
                pin: TokenPin::from_file(pin_file)?,
            })
        }
    }
}

pub fn run(_ctx: &Context, args: Args) -> CliResult {
    match args.command {
        TestnetCommand::Init(a) => init(a),
    }
}

fn init(args: InitArgs) -> CliResult {
    let signer = testnet_signer(&args)?;
    let opts = TestnetOptions {
        validators: args.validators,
        out_dir: args.out,
        chain_id: args.chain_id,
        host: args.host,
        base_port: args.base_port,
        faucet_balance: args.faucet_balance,
        roll_interval_ms: args.roll_interval_ms,
        force: args.force,
        signer,
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
        "testnet {} with {} validators\n  genesis     {}\n  faucet key  {}\n",
        opts.chain_id,
        net.nodes.len(),
        net.genesis_path.display(),
        net.faucet_key_path.display()
    );
    if let TestnetSigner::Keystore { kdf } = &opts.signer {
        text.push_str(&format!(
            "  consensus keys in encrypted keystores (keys/consensus.key; Argon2id {} KiB, {} \
             passes), each unlocked by the random passphrase in its home's {} (0600)\n",
            kdf.m_kib,
            kdf.t,
            bitcraps_node::keystore_file::TESTNET_PASSPHRASE_FILE,
        ));
    }
    if let TestnetSigner::Pkcs11 {
        module,
        token_label,
        ..
    } = &opts.signer
    {
        let last = net.nodes.len().saturating_sub(1);
        text.push_str(&format!(
            "  consensus keys in PKCS#11 tokens {:?}..={:?} ({}), labels {}..={}\n  \
             each home's keys/pkcs11.pin holds the token PIN; the nodes need the \
             module's environment (SoftHSM2: SOFTHSM2_CONF)\n",
            home_pkcs11::token_label(token_label, 0),
            home_pkcs11::token_label(token_label, last),
            module.display(),
            home_pkcs11::key_label(&opts.chain_id, 0),
            home_pkcs11::key_label(&opts.chain_id, last),
        ));
    }
    text.push('\n');
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
