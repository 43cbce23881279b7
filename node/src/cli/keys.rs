//! `bitcraps keys generate|show|import`: ed25519 key files, plaintext
//! (localnet/testnet) or encrypted keystores (production without an HSM).
//! Only public keys are ever printed; passphrases never appear in output or
//! errors (errors name where a passphrase came from, not what it was).

use super::{emit, CliResult, Context};
use bitcraps_crypto::keystore::KdfParams;
use bitcraps_node::home;
use bitcraps_node::keystore_file::{self, PassphraseSource, DEFAULT_PASSPHRASE_ENV};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(clap::Subcommand, Debug)]
enum KeysCommand {
    /// Write a new key file (mode 0600; never overwrites).
    Generate(GenerateArgs),
    /// Print the public keys of the home's keys, or of one key file. Needs no
    /// passphrase, even for a keystore, unless --unlock asks to prove that the
    /// passphrase opens it.
    Show(ShowArgs),
    /// Encrypt an existing plaintext key file into a new keystore file. The
    /// plaintext file is left as it is: delete it once the keystore is backed up.
    Import(ImportArgs),
}

#[derive(clap::Args, Debug)]
struct GenerateArgs {
    /// Where to write the key file (not with --backend pkcs11: the key stays
    /// in the token).
    #[arg(long, value_name = "FILE", required_unless_present = "module")]
    out: Option<PathBuf>,
    /// What the key is for (recorded in the file).
    #[arg(long, value_enum, default_value_t = Purpose::Consensus)]
    purpose: Purpose,
    /// How the key is stored. `plaintext` is for localnet/testnet only.
    #[arg(long, value_enum, default_value_t = Backend::Plaintext)]
    backend: Backend,
    #[command(flatten)]
    passphrase: PassphraseArgs,
    #[command(flatten)]
    kdf: KdfArgs,
    #[command(flatten)]
    pkcs11: Pkcs11Args,
}

/// Where to create a key inside a PKCS#11 token (`--backend pkcs11`).
#[derive(clap::Args, Debug)]
struct Pkcs11Args {
    /// The token's PKCS#11 module, e.g. /usr/lib/softhsm/libsofthsm2.so.
    #[arg(long, value_name = "PATH")]
    module: Option<PathBuf>,
    /// Label of the (initialised) token.
    #[arg(long, value_name = "LABEL")]
    token: Option<String>,
    /// Label for the new key object.
    #[arg(long, value_name = "LABEL", default_value = bitcraps_node::config_signer::DEFAULT_KEY_LABEL)]
    key_label: String,
    /// File (mode 0600) holding the token user PIN.
    #[arg(long, value_name = "FILE", conflicts_with = "pin_env")]
    pin_file: Option<PathBuf>,
    /// Environment variable holding the token user PIN.
    #[arg(long, value_name = "VAR")]
    pin_env: Option<String>,
}

#[derive(clap::Args, Debug)]
struct ImportArgs {
    /// The plaintext key file to encrypt (left unchanged).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Where to write the new keystore file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    passphrase: PassphraseArgs,
    #[command(flatten)]
    kdf: KdfArgs,
}

/// Where a keystore's passphrase comes from. Without either option it is
/// asked for on the terminal (twice for a new keystore), which needs stdin to
/// be a terminal.
#[derive(clap::Args, Debug)]
struct PassphraseArgs {
    /// Read the keystore passphrase from FILE (must not be readable by group or
    /// others; one trailing newline is ignored). A new keystore needs at least
    /// 12 bytes.
    #[arg(long, value_name = "FILE", conflicts_with = "passphrase_env")]
    passphrase_file: Option<PathBuf>,
    /// Read the keystore passphrase from environment variable VAR
    /// (default: BITCRAPS_KEYSTORE_PASSPHRASE). A new keystore needs at least
    /// 12 bytes.
    #[arg(long, value_name = "VAR", num_args = 0..=1, default_missing_value = DEFAULT_PASSPHRASE_ENV)]
    passphrase_env: Option<String>,
}

impl PassphraseArgs {
    fn given(&self) -> bool {
        self.passphrase_file.is_some() || self.passphrase_env.is_some()
    }

    fn source(&self) -> PassphraseSource {
        match (&self.passphrase_file, &self.passphrase_env) {
            (Some(file), _) => PassphraseSource::File(file.clone()),
            (None, Some(var)) => PassphraseSource::Env(var.clone()),
            (None, None) => PassphraseSource::Prompt,
        }
    }
}

/// Argon2id cost of a new keystore. Higher is slower for an attacker guessing
/// passphrases, and for the node unlocking the key once at start-up.
#[derive(clap::Args, Debug)]
struct KdfArgs {
    /// Argon2id memory in KiB (8192..=4194304; default 65536 = 64 MiB).
    #[arg(long, value_name = "KIB")]
    kdf_memory_kib: Option<u32>,
    /// Argon2id passes over that memory (1..=16; default 3).
    #[arg(long, value_name = "N")]
    kdf_iterations: Option<u32>,
}

impl KdfArgs {
    fn given(&self) -> bool {
        self.kdf_memory_kib.is_some() || self.kdf_iterations.is_some()
    }

    fn params(&self) -> KdfParams {
        let default = KdfParams::default();
        KdfParams {
            m_kib: self.kdf_memory_kib.unwrap_or(default.m_kib),
            t: self.kdf_iterations.unwrap_or(default.t),
            p: default.p,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// Seed in clear JSON (marked as such). localnet/testnet only.
    Plaintext,
    /// Seed encrypted under a passphrase (Argon2id + XChaCha20-Poly1305).
    Keystore,
    /// Generated inside a PKCS#11 token (HSM, YubiKey, SoftHSM2), never
    /// extractable; every signature is made there.
    Pkcs11,
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
    #[arg(value_name = "FILE", conflicts_with = "file")]
    path: Option<PathBuf>,
    /// Same as the FILE argument.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Also decrypt keystores, proving the passphrase opens them and that they
    /// hold the key they claim (implied by --passphrase-file/--passphrase-env).
    /// Plaintext files are always checked.
    #[arg(long)]
    unlock: bool,
    #[command(flatten)]
    passphrase: PassphraseArgs,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Context, args: Args) -> CliResult {
    match args.command {
        KeysCommand::Generate(a) => generate(a),
        KeysCommand::Show(a) => show(ctx, a),
        KeysCommand::Import(a) => import(a),
    }
}

fn generate(args: GenerateArgs) -> CliResult {
    let purpose = args.purpose.as_str();
    if args.backend != Backend::Pkcs11 && args.pkcs11.module.is_some() {
        return Err("--module/--token/--pin-* apply to --backend pkcs11 only".into());
    }
    let out = match (&args.out, args.backend) {
        (Some(_), Backend::Pkcs11) => {
            return Err("--backend pkcs11 keeps the key in the token: drop --out".into())
        }
        (Some(out), _) => out.clone(),
        (None, Backend::Pkcs11) => return generate_in_token(&args.pkcs11),
        (None, _) => return Err("--out FILE is required".into()),
    };
    let args = GenerateArgs {
        out: Some(out.clone()),
        ..args
    };
    let out = &out;
    match args.backend {
        Backend::Pkcs11 => generate_in_token(&args.pkcs11),
        Backend::Plaintext => {
            if args.passphrase.given() || args.kdf.given() {
                return Err(
                    "--passphrase-* and --kdf-* apply to --backend keystore only; \
                            a plaintext key file is not encrypted"
                        .into(),
                );
            }
            let key = home::generate_key()?;
            home::write_key_file(out, &key, purpose)?;
            emit(&format!(
                "wrote {purpose} key {} to {} (plaintext: localnet/testnet only; \
                 use --backend keystore or an HSM in production)\n",
                key.public(),
                out.display()
            ))
        }
        Backend::Keystore => {
            let key = home::generate_key()?;
            keystore_file::create_keystore_file(
                out,
                &key,
                purpose,
                &args.passphrase.source(),
                args.kdf.params(),
            )?;
            emit(&format!(
                "wrote {purpose} key {} to encrypted keystore {}\n\
                 keep the passphrase safe: without it the key cannot be recovered\n",
                key.public(),
                out.display()
            ))
        }
    }
}

/// `keys generate --backend pkcs11`: the key pair is created inside the
/// token (sensitive, never extractable); prints the public key and the
/// `[signer]` settings that use it.
fn generate_in_token(p: &Pkcs11Args) -> CliResult {
    let (Some(module), Some(token)) = (&p.module, &p.token) else {
        return Err("--backend pkcs11 needs --module PATH and --token LABEL".into());
    };
    let section = bitcraps_node::config_signer::SignerSection {
        pin_file: p.pin_file.clone().unwrap_or_default(),
        pin_env: p
            .pin_env
            .clone()
            .unwrap_or_else(|| bitcraps_node::config_signer::DEFAULT_PIN_ENV.to_owned()),
        ..Default::default()
    };
    // Paths on the command line are relative to the working directory.
    let here = home::Home::new(".");
    let pin = bitcraps_node::signer_setup::read_pin(&here, &section)?;
    let config = bitcraps_crypto::pkcs11::Pkcs11Config {
        module: module.clone(),
        token_label: token.clone(),
        key_label: p.key_label.clone(),
    };
    let public = bitcraps_crypto::pkcs11::Pkcs11Signer::generate(&config, pin.expose())
        .map_err(|e| format!("generating the key in token {token:?}: {e}"))?;
    emit(&format!(
        "generated consensus key {public} inside PKCS#11 token {token:?} (label {:?}, never extractable)\n\
         use it with, in config.toml:\n\
         [signer]\nbackend = \"pkcs11\"\npkcs11_module = {:?}\npkcs11_token = {token:?}\npkcs11_key_label = {:?}\n\
         pin_file = \"...\"   # or pin_env\n",
        p.key_label,
        module.display().to_string(),
        p.key_label
    ))
}

fn import(args: ImportArgs) -> CliResult {
    let info = keystore_file::inspect_key_file(&args.from)?;
    if info.backend != "plaintext" {
        return Err(format!(
            "{} is already an encrypted {} file; import reads plaintext key files only",
            args.from.display(),
            info.backend
        )
        .into());
    }
    let key = home::load_key_file(&args.from)?;
    keystore_file::create_keystore_file(
        &args.out,
        &key.keypair,
        &key.purpose,
        &args.passphrase.source(),
        args.kdf.params(),
    )?;
    // Opened again with the same passphrase source before anyone deletes the
    // plaintext copy: a keystore that cannot be opened must be found now.
    if !matches!(args.passphrase.source(), PassphraseSource::Prompt) {
        let back = keystore_file::unlock_keystore_file(&args.out, &args.passphrase.source())?;
        if back.keypair.public() != key.keypair.public() {
            return Err(format!("{} does not open to the imported key", args.out.display()).into());
        }
    }
    emit(&format!(
        "imported {} key {} from {} into encrypted keystore {}\n\
         {} was left unchanged: once the keystore and its passphrase are backed up, \
         delete it (for example `shred -u {}`)\n",
        key.purpose,
        key.keypair.public(),
        args.from.display(),
        args.out.display(),
        args.from.display(),
        args.from.display(),
    ))
}

fn show(ctx: &Context, args: ShowArgs) -> CliResult {
    let files: Vec<PathBuf> = match args.path.or(args.file) {
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
    let unlock = args.unlock || args.passphrase.given();
    let source = args.passphrase.source();
    let mut rows = Vec::new();
    for path in files {
        let mut info = keystore_file::inspect_key_file(&path)?;
        if unlock && !info.verified {
            let key = keystore_file::unlock_keystore_file(&path, &source)?;
            if key.keypair.public() != info.public_key {
                // decrypt() checks this; kept as a guard on what we print.
                return Err(
                    format!("{} holds a different key than it claims", path.display()).into(),
                );
            }
            info.verified = true;
        }
        rows.push((info, path));
    }
    if args.json {
        let list: Vec<_> = rows
            .iter()
            .map(|(info, path)| {
                serde_json::json!({
                    "purpose": info.purpose,
                    "backend": info.backend,
                    "verified": info.verified,
                    "public_key": info.public_key.to_hex(),
                    "file": path.display().to_string(),
                })
            })
            .collect();
        return emit(&format!("{}\n", serde_json::Value::Array(list)));
    }
    let mut text = String::new();
    for (info, path) in &rows {
        text.push_str(&row(info, path));
    }
    emit(&text)
}

fn row(info: &keystore_file::KeyFileInfo, path: &Path) -> String {
    let note = if info.backend == "keystore" && info.verified {
        "  (unlocked: passphrase ok)"
    } else {
        ""
    };
    format!(
        "{:<10} {:<9} {}  {}{note}\n",
        info.purpose,
        info.backend,
        info.public_key.to_hex(),
        path.display()
    )
}
