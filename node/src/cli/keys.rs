//! `bitcraps keys generate|show`: plaintext ed25519 key files. Only public
//! keys are ever printed.

use super::{emit, CliResult, Context};
use bitcraps_node::home;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(clap::Subcommand, Debug)]
enum KeysCommand {
    /// Write a new key file (mode 0600; never overwrites).
    Generate(GenerateArgs),
    /// Print the public keys of the home's keys, or of one key file.
    Show(ShowArgs),
}

#[derive(clap::Args, Debug)]
struct GenerateArgs {
    /// Where to write the key file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// What the key is for (recorded in the file).
    #[arg(long, value_enum, default_value_t = Purpose::Consensus)]
    purpose: Purpose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Purpose {
    /// Signs votes and proposals (genesis consensus_key).
    Consensus,
    /// Authenticates QUIC connections (genesis identity_key).
    Identity,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Consensus => "consensus",
            Purpose::Identity => "identity",
        }
    }
}

#[derive(clap::Args, Debug)]
struct ShowArgs {
    /// A key file to show instead of the home's consensus and identity keys.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Context, args: Args) -> CliResult {
    match args.command {
        KeysCommand::Generate(a) => generate(a),
        KeysCommand::Show(a) => show(ctx, a),
    }
}

fn generate(args: GenerateArgs) -> CliResult {
    let key = home::generate_key()?;
    home::write_key_file(&args.out, &key, args.purpose.as_str())?;
    emit(&format!(
        "wrote {} key {} to {}\n",
        args.purpose.as_str(),
        key.public(),
        args.out.display()
    ))
}

fn show(ctx: &Context, args: ShowArgs) -> CliResult {
    let files: Vec<PathBuf> = match args.file {
        Some(f) => vec![f],
        None => {
            let home = ctx.home()?;
            // The config may point elsewhere; without one, the default layout.
            match home.load_config() {
                Ok(c) => vec![
                    home.resolve(&c.keys.consensus),
                    home.resolve(&c.keys.identity),
                ],
                Err(home::HomeError::NoConfig { .. }) => {
                    vec![home.consensus_key_path(), home.identity_key_path()]
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let mut rows = Vec::new();
    for path in files {
        let key = home::load_key_file(&path)?;
        rows.push((key.purpose, key.keypair.public().to_hex(), path));
    }
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(purpose, public_key, path)| {
                serde_json::json!({
                    "purpose": purpose,
                    "public_key": public_key,
                    "file": path.display().to_string(),
                })
            })
            .collect();
        return emit(&format!("{}\n", serde_json::Value::Array(list)));
    }
    let mut text = String::new();
    for (purpose, public_key, path) in rows {
        text.push_str(&format!("{purpose:<10} {public_key}  {}\n", path.display()));
    }
    emit(&text)
}
