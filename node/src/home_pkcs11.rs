//! Testnet homes whose consensus keys live in a PKCS#11 token, and the
//! throwaway SoftHSM2 tokens `bitcraps localnet --signer softhsm` makes for them.
//!
//! With [`TestnetSigner::Pkcs11`], `testnet init` generates validator `i`'s
//! consensus key *inside* the token (label `bitcraps-<chain_id>-val<i>`,
//! sensitive and never extractable: [`Pkcs11Signer::generate`]) instead of
//! writing `keys/consensus.key`. Genesis gets the public key the token
//! returned, and the home gets:
//!
//! ```text
//! <home>/keys/pkcs11.pin      0600, the token's user PIN (read by `bitcraps start`)
//! <home>/config.toml          [signer] backend = "pkcs11", module, token, key label,
//!                             pin_file = "keys/pkcs11.pin"
//! ```
//!
//! Everything else (identity key, beacon share, guard state, genesis) is
//! written exactly as for a plaintext home.
//!
//! **One token per validator.** A `{i}` in the token label stands for the
//! validator's index, so `bitcraps-localnet-val{i}` gives each validator its
//! own token. docs/hsm.md recommends that for real HSMs, and SoftHSM2 needs
//! it when the validators run at the same time: a SoftHSM2 token is a set of
//! files, every login rewrites them, and another process reading them at
//! that moment sees a broken token (no label; "token integrity check
//! failed"). With one token each, only a validator's own process writes its
//! token's files.
//!
//! Secrets: the PIN lives in a [`TokenPin`] (wiped on drop, redacted in
//! `Debug`), goes to the token, into the 0600 PIN files and, for a SoftHSM2
//! token, onto `softhsm2-util`'s command line for the moment it takes to
//! initialise the token (see [`SoftHsmTokens::create`]). It is never printed
//! and never part of an error.
//!
//! **Encrypted keystores.** The third choice, [`TestnetSigner::Keystore`]
//! (`testnet init --signer keystore`, `localnet --signer keystore`), lives
//! here too because it is the same step of `testnet init`: where validator
//! `i`'s consensus key goes. Each home gets
//!
//! ```text
//! <home>/keys/consensus.key         0600, an encrypted keystore (keystore_file.rs)
//! <home>/keys/consensus.passphrase  0600, its passphrase: 32 hex characters
//!                                   from the OS CSPRNG, a fresh one per home
//! <home>/config.toml                [signer] backend = "file",
//!                                   passphrase_file = "keys/consensus.passphrase"
//! ```
//!
//! sealed with [`crate::keystore_file::TESTNET_KDF`] (see there for the
//! Argon2id parameters and why). Identity key and beacon share stay plaintext
//! files, as with `keys generate --backend keystore`, which encrypts only the
//! key it writes. The passphrase lies next to the keystore: this exercises the
//! keystore path end to end (`bitcraps start` unlocks the key exactly as in
//! production) and protects nothing on its own.

use crate::config::Config;
use crate::config_signer::{SignerBackend, SignerSection};
use crate::home::{
    read_private_file, wipe, write_key_file, write_new_file, Home, HomeError, TestnetOptions,
};
use crate::keystore_file::{write_testnet_keystore, TESTNET_PASSPHRASE_FILE};
use bitcraps_crypto::keystore::KdfParams;
use bitcraps_crypto::pkcs11::{Pkcs11Config, Pkcs11Error, Pkcs11Signer};
use bitcraps_crypto::{Keypair, PublicKey};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where each home keeps the token's user PIN (relative to the home).
pub const PIN_FILE: &str = "keys/pkcs11.pin";
/// Debian's SoftHSM2 module.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// In a token label: replaced by the validator's index (one token each).
pub const INDEX_PLACEHOLDER: &str = "{i}";
/// A PKCS#11 token label is at most 32 bytes (`CK_TOKEN_INFO.label`).
pub const MAX_TOKEN_LABEL_BYTES: usize = 32;
/// Longest key label a home's `[signer] pkcs11_key_label` accepts.
pub const MAX_KEY_LABEL_BYTES: usize = 64;
/// SoftHSM2 accepts PINs of 4..=255 bytes; other tokens are stricter, none
/// is looser.
pub const MIN_PIN_BYTES: usize = 4;
pub const MAX_PIN_BYTES: usize = 255;

/// `<dir>/softhsm/` of a localnet.
pub const SOFTHSM_DIR: &str = "softhsm";
/// SoftHSM2's configuration inside [`SOFTHSM_DIR`] (what `SOFTHSM2_CONF` names).
pub const SOFTHSM_CONF_FILE: &str = "softhsm2.conf";
/// The token's user PIN (0600) inside [`SOFTHSM_DIR`].
pub const SOFTHSM_USER_PIN_FILE: &str = "user.pin";
/// The token's security officer PIN (0600) inside [`SOFTHSM_DIR`].
pub const SOFTHSM_SO_PIN_FILE: &str = "so.pin";
/// First line of a `softhsm2.conf` written here: marks the directory as ours,
/// so a fresh localnet may replace it (and nothing else).
const SOFTHSM_CONF_MARKER: &str = "# SoftHSM2 configuration written by bitcraps localnet";
/// Random bytes in each generated PIN (hex-encoded: 32 characters).
const RANDOM_PIN_BYTES: usize = 16;
/// Longest `softhsm2-util --init-token` may take before it is killed.
const SOFTHSM_UTIL_TIMEOUT_MS: u64 = 30_000;
const SOFTHSM_UTIL_POLL_MS: u64 = 20;

fn invalid(field: &str, reason: impl Into<String>) -> HomeError {
    HomeError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------
// The PIN

/// A token PIN while `testnet init` or `localnet` needs it: wiped when
/// dropped (best effort, like every secret buffer in `home`), never shown by
/// `Debug`. The running node holds its PIN in secret memory instead
/// (`signer_setup::read_pin`).
#[derive(Clone, PartialEq, Eq)]
pub struct TokenPin(String);

impl TokenPin {
    /// Checks the length (`MIN_PIN_BYTES..=MAX_PIN_BYTES`) and that it is
    /// one line of printable text (it is stored in a text file and read back
    /// with one trailing newline ignored).
    pub fn new(pin: String) -> Result<TokenPin, HomeError> {
        let pin = TokenPin(pin);
        let problem = if !(MIN_PIN_BYTES..=MAX_PIN_BYTES).contains(&pin.0.len()) {
            Some(format!("must be {MIN_PIN_BYTES}..={MAX_PIN_BYTES} bytes"))
        } else if pin.0.chars().any(char::is_control) {
            Some("must be one line of printable text".to_owned())
        } else {
            None
        };
        match problem {
            // `pin` is dropped (and wiped) here.
            Some(reason) => Err(invalid("PKCS#11 PIN", reason)),
            None => Ok(pin),
        }
    }

    /// Reads a PIN file: mode 0600 (refused otherwise, like a key file), at
    /// most 4 KiB, UTF-8, one trailing newline ignored.
    pub fn from_file(path: &Path) -> Result<TokenPin, HomeError> {
        let mut bytes = read_private_file(path)?;
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.pop();
        }
        match String::from_utf8(bytes) {
            Ok(text) => TokenPin::new(text).map_err(|e| match e {
                HomeError::Invalid { reason, .. } => HomeError::KeyFile {
                    path: path.to_owned(),
                    reason: format!("the PIN {reason}"),
                },
                other => other,
            }),
            Err(e) => {
                let mut bytes = e.into_bytes();
                wipe(&mut bytes);
                Err(HomeError::KeyFile {
                    path: path.to_owned(),
                    reason: "the PIN is not UTF-8 text".into(),
                })
            }
        }
    }

    /// `RANDOM_PIN_BYTES` bytes from the operating system's CSPRNG, hex.
    fn random() -> Result<TokenPin, HomeError> {
        // The node crate has no direct getrandom dependency: the seed of a
        // freshly generated key pair is exactly 32 bytes of OS randomness
        // (`Keypair::generate`), of which we take the first 16.
        let keypair = Keypair::generate().map_err(|e| HomeError::Random(e.to_string()))?;
        let seed = keypair.seed();
        TokenPin::new(hex::encode(&seed[..RANDOM_PIN_BYTES]))
    }

    /// The PIN itself. Callers must not print, log or copy it into errors.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Writes the PIN to a new file at `path` (0600, never overwriting).
    fn write_to(&self, path: &Path) -> Result<(), HomeError> {
        let mut bytes = Vec::with_capacity(self.0.len() + 1);
        bytes.extend_from_slice(self.0.as_bytes());
        bytes.push(b'\n');
        let result = write_new_file(path, &bytes, 0o600);
        wipe(&mut bytes);
        result
    }
}

impl Drop for TokenPin {
    fn drop(&mut self) {
        let mut bytes = std::mem::take(&mut self.0).into_bytes();
        wipe(&mut bytes);
    }
}

impl fmt::Debug for TokenPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenPin(<redacted>)")
    }
}

// ---------------------------------------------------------------------------
// testnet init

/// Where `testnet init` puts the validators' consensus keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TestnetSigner {
    /// `keys/consensus.key` in every home (plaintext; localnet/testnet only).
    #[default]
    Plaintext,
    /// Generated inside one PKCS#11 token, one key per validator.
    Pkcs11 {
        /// The token's module (`.so`). Made absolute before it is written
        /// into the homes (config paths are relative to the home).
        module: PathBuf,
        /// The token's label; a `{i}` in it is replaced by each validator's
        /// index (one token per validator, see the module docs).
        token_label: String,
        /// The token's user PIN, copied into each home's `keys/pkcs11.pin`.
        pin: TokenPin,
    },
    /// `keys/consensus.key` in every home is an encrypted keystore, unlocked
    /// by a random passphrase in `keys/consensus.passphrase` (module docs).
    Keystore {
        /// Argon2id parameters of the keystores (checked before anything is
        /// written); `testnet init` and `localnet` use
        /// [`crate::keystore_file::TESTNET_KDF`].
        kdf: KdfParams,
    },
}

impl TestnetSigner {
    /// The keystore signer with [`crate::keystore_file::TESTNET_KDF`].
    pub fn keystore() -> TestnetSigner {
        TestnetSigner::Keystore {
            kdf: crate::keystore_file::TESTNET_KDF,
        }
    }

    /// `plaintext`, `pkcs11` or `keystore`.
    pub fn name(&self) -> &'static str {
        match self {
            TestnetSigner::Plaintext => "plaintext",
            TestnetSigner::Pkcs11 { .. } => "pkcs11",
            TestnetSigner::Keystore { .. } => "keystore",
        }
    }
}

/// The label of validator `index`'s token: `template` with `{i}` replaced.
pub fn token_label(template: &str, index: usize) -> String {
    template.replace(INDEX_PLACEHOLDER, &index.to_string())
}

/// The label of validator `index`'s consensus key in the token.
pub fn key_label(chain_id: &str, index: usize) -> String {
    format!("bitcraps-{chain_id}-val{index}")
}

/// One validator's consensus key inside the token, as its home refers to it.
#[derive(Debug, Clone)]
pub(crate) struct TokenKey {
    module: PathBuf,
    token_label: String,
    key_label: String,
    pin: TokenPin,
    public: PublicKey,
}

impl TokenKey {
    /// The `[signer]` section that opens this key.
    fn signer_section(&self) -> SignerSection {
        SignerSection {
            backend: SignerBackend::Pkcs11,
            pkcs11_module: self.module.clone(),
            pkcs11_token: self.token_label.clone(),
            pkcs11_key_label: self.key_label.clone(),
            pin_file: PathBuf::from(PIN_FILE),
            ..SignerSection::default()
        }
    }
}

/// Where one home's consensus key lives, for `write_home`.
#[derive(Debug)]
pub(crate) enum HomeConsensus {
    /// A plaintext key file at `keys/consensus.key`.
    File(Keypair),
    /// A key in a PKCS#11 token.
    Token(TokenKey),
    /// A key to seal into an encrypted keystore at `keys/consensus.key`.
    Keystore { key: Keypair, kdf: KdfParams },
}

impl HomeConsensus {
    pub(crate) fn public(&self) -> PublicKey {
        match self {
            HomeConsensus::File(k) => k.public(),
            HomeConsensus::Token(t) => t.public,
            HomeConsensus::Keystore { key, .. } => key.public(),
        }
    }

    /// Writes the home's part of the key: the plaintext key file, the PIN
    /// file (the key itself stays in the token), or the keystore and its
    /// passphrase file. `keys/` exists.
    pub(crate) fn write(&self, home: &Home) -> Result<(), HomeError> {
        match self {
            HomeConsensus::File(k) => write_key_file(&home.consensus_key_path(), k, "consensus"),
            HomeConsensus::Token(t) => t.pin.write_to(&home.resolve(Path::new(PIN_FILE))),
            HomeConsensus::Keystore { key, kdf } => write_testnet_keystore(
                &home.consensus_key_path(),
                &home.resolve(Path::new(TESTNET_PASSPHRASE_FILE)),
                key,
                *kdf,
            ),
        }
    }

    /// Points `config.signer` at the key (a plaintext home keeps the default).
    pub(crate) fn configure(&self, config: &mut Config) {
        match self {
            HomeConsensus::File(_) => {}
            HomeConsensus::Token(t) => config.signer = t.signer_section(),
            HomeConsensus::Keystore { .. } => {
                config.signer = SignerSection {
                    backend: SignerBackend::File,
                    passphrase_file: PathBuf::from(TESTNET_PASSPHRASE_FILE),
                    ..SignerSection::default()
                }
            }
        }
    }
}

/// The consensus keys of a testnet: fresh key pairs (written as plaintext
/// files, or with [`TestnetSigner::Keystore`] sealed into keystores), or
/// (with [`TestnetSigner::Pkcs11`]) keys generated inside the token.
///
/// A keystore's KDF parameters are checked here, before `testnet init`
/// touches the output directory.
///
/// Everything that can be checked without the token is checked first (labels,
/// chain id, module, an occupied `out_dir` without `force`), so a refused run
/// leaves nothing behind in the token. If the token fails part-way, the keys
/// it already generated stay there; the error says which.
pub(crate) fn consensus_keys(opts: &TestnetOptions) -> Result<Vec<HomeConsensus>, HomeError> {
    let (module, token_label, pin) = match &opts.signer {
        TestnetSigner::Plaintext => {
            return (0..opts.validators)
                .map(|_| crate::home::generate_key().map(HomeConsensus::File))
                .collect();
        }
        TestnetSigner::Keystore { kdf } => {
            kdf.check()
                .map_err(|e| invalid("keystore kdf", e.to_string()))?;
            return (0..opts.validators)
                .map(|_| {
                    crate::home::generate_key()
                        .map(|key| HomeConsensus::Keystore { key, kdf: *kdf })
                })
                .collect();
        }
        TestnetSigner::Pkcs11 {
            module,
            token_label,
            pin,
        } => (module, token_label, pin),
    };
    let max_chain_id = bitcraps_crypto::domain::MAX_CHAIN_ID_LEN;
    if opts.chain_id.is_empty() || opts.chain_id.len() > max_chain_id {
        return Err(invalid(
            "chain_id",
            format!("must be 1..={max_chain_id} bytes"),
        ));
    }
    let last_token = self::token_label(token_label, opts.validators.saturating_sub(1));
    if token_label.is_empty() || last_token.len() > MAX_TOKEN_LABEL_BYTES {
        return Err(invalid(
            "pkcs11 token",
            format!(
                "the token label must be 1..={MAX_TOKEN_LABEL_BYTES} bytes (with {{i}} replaced \
                 by the validator index: {last_token:?})"
            ),
        ));
    }
    let last_label = key_label(&opts.chain_id, opts.validators.saturating_sub(1));
    if last_label.len() > MAX_KEY_LABEL_BYTES {
        return Err(invalid(
            "chain_id",
            format!(
                "too long for PKCS#11 key labels: {last_label:?} is longer than \
                 {MAX_KEY_LABEL_BYTES} bytes"
            ),
        ));
    }
    let module = std::path::absolute(module)
        .map_err(|e| invalid("pkcs11 module", format!("{}: {e}", module.display())))?;
    if !module.is_file() {
        return Err(invalid(
            "pkcs11 module",
            format!(
                "{} does not exist: install the token's PKCS#11 module \
                 (SoftHSM2: apt-get install softhsm2) or pass its path",
                module.display()
            ),
        ));
    }
    if !opts.force && !dir_is_empty(&opts.out_dir)? {
        return Err(HomeError::NotEmpty {
            path: opts.out_dir.clone(),
        });
    }
    let mut keys = Vec::with_capacity(opts.validators);
    for i in 0..opts.validators {
        let config = Pkcs11Config {
            module: module.clone(),
            token_label: self::token_label(token_label, i),
            key_label: key_label(&opts.chain_id, i),
        };
        let public = Pkcs11Signer::generate(&config, pin.expose().as_bytes())
            .map_err(|e| generate_error(&config, i, &e))?;
        keys.push(HomeConsensus::Token(TokenKey {
            module: module.clone(),
            token_label: config.token_label,
            key_label: config.key_label,
            pin: pin.clone(),
            public,
        }));
    }
    Ok(keys)
}

fn generate_error(config: &Pkcs11Config, index: usize, e: &Pkcs11Error) -> HomeError {
    let hint = match e {
        Pkcs11Error::KeyExists { .. } => {
            "; an earlier testnet with this chain id used this token: use a fresh token or \
             another --chain-id, or delete its keys (pkcs11-tool --delete-object)"
        }
        _ => "",
    };
    let left = if index == 0 {
        String::new()
    } else {
        format!(
            " (the keys of val0..=val{} were generated and stay in the token)",
            index - 1
        )
    };
    invalid(
        "signer",
        format!(
            "generating consensus key {:?} in PKCS#11 token {:?} ({}): {e}{hint}{left}",
            config.key_label,
            config.token_label,
            config.module.display()
        ),
    )
}

fn dir_is_empty(dir: &Path) -> Result<bool, HomeError> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(source) => Err(HomeError::Io {
            operation: "reading directory",
            path: dir.to_owned(),
            source,
        }),
    }
}

// ---------------------------------------------------------------------------
// SoftHSM2 tokens for a localnet

/// A SoftHSM2 token directory made for one localnet, with one token per
/// validator (labels `label_template` with `{i}` replaced; see the module
/// docs for why one each):
///
/// ```text
/// <dir>/softhsm/               0700
/// <dir>/softhsm/softhsm2.conf  what SOFTHSM2_CONF must name (token dir, file store)
/// <dir>/softhsm/tokens/        SoftHSM2's token files
/// <dir>/softhsm/user.pin       0600, the user PIN of every token (random, 128 bits)
/// <dir>/softhsm/so.pin         0600, the security officer PIN (random, 128 bits)
/// ```
///
/// SoftHSM2 is a software token: it shows the PKCS#11 path works end to end,
/// it protects nothing (docs/hsm.md).
#[derive(Debug)]
pub struct SoftHsmTokens {
    dir: PathBuf,
    label_template: String,
    pin: TokenPin,
}

impl SoftHsmTokens {
    /// Makes `dir` afresh (removing a previous one only if this function
    /// wrote it) and initialises `count` tokens, `label_template` with `{i}`
    /// replaced by 0..count, all with the same random PINs.
    ///
    /// `softhsm2-util` takes the PINs as arguments (it reads them from a
    /// terminal only, not from a pipe), so for the ~50 ms each run takes
    /// they are in its command line, visible to other local users. That is
    /// acceptable for throwaway tokens on a developer's machine, which is all
    /// these are.
    pub fn create(
        dir: &Path,
        label_template: &str,
        count: usize,
    ) -> Result<SoftHsmTokens, HomeError> {
        let last = token_label(label_template, count.saturating_sub(1));
        if count == 0
            || !label_template.contains(INDEX_PLACEHOLDER)
            || last.len() > MAX_TOKEN_LABEL_BYTES
        {
            return Err(invalid(
                "softhsm token",
                format!(
                    "need 1 or more tokens and a label with {INDEX_PLACEHOLDER} of at most \
                     {MAX_TOKEN_LABEL_BYTES} bytes once replaced ({last:?})"
                ),
            ));
        }
        if !Path::new(SOFTHSM_MODULE).is_file() {
            return Err(invalid(
                "softhsm",
                format!(
                    "{SOFTHSM_MODULE} does not exist: install SoftHSM2 \
                     (Debian: apt-get install softhsm2)"
                ),
            ));
        }
        let dir = std::path::absolute(dir).map_err(|source| HomeError::Io {
            operation: "resolving",
            path: dir.to_owned(),
            source,
        })?;
        remove_previous(&dir)?;
        create_private_dir(&dir)?;
        create_private_dir(&dir.join("tokens"))?;
        let conf = format!(
            "{SOFTHSM_CONF_MARKER}\n\
             # The tokens of this localnet's validators; see docs/hsm.md.\n\
             directories.tokendir = {}\n\
             objectstore.backend = file\n\
             log.level = ERROR\n\
             slots.removable = false\n",
            dir.join("tokens").display()
        );
        write_new_file(&dir.join(SOFTHSM_CONF_FILE), conf.as_bytes(), 0o600)?;
        let pin = TokenPin::random()?;
        let so_pin = TokenPin::random()?;
        pin.write_to(&dir.join(SOFTHSM_USER_PIN_FILE))?;
        so_pin.write_to(&dir.join(SOFTHSM_SO_PIN_FILE))?;
        let tokens = SoftHsmTokens {
            dir,
            label_template: label_template.to_owned(),
            pin,
        };
        for i in 0..count {
            tokens.init_token(&token_label(label_template, i), &so_pin)?;
        }
        Ok(tokens)
    }

    /// Opens a token directory [`create`](Self::create) made (for
    /// `localnet --keep`): reads its user PIN.
    pub fn open(dir: &Path, label_template: &str) -> Result<SoftHsmTokens, HomeError> {
        let dir = std::path::absolute(dir).map_err(|source| HomeError::Io {
            operation: "resolving",
            path: dir.to_owned(),
            source,
        })?;
        if !is_ours(&dir)? {
            return Err(invalid(
                "softhsm",
                format!(
                    "{} holds no SoftHSM2 tokens made by bitcraps localnet; drop --keep to start afresh",
                    dir.display()
                ),
            ));
        }
        let pin = TokenPin::from_file(&dir.join(SOFTHSM_USER_PIN_FILE))?;
        Ok(SoftHsmTokens {
            dir,
            label_template: label_template.to_owned(),
            pin,
        })
    }

    /// The token directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file `SOFTHSM2_CONF` must name, in this process (before the
    /// first PKCS#11 call) and in every validator's.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join(SOFTHSM_CONF_FILE)
    }

    /// The token labels, with `{i}` for the validator index.
    pub fn label_template(&self) -> &str {
        &self.label_template
    }

    /// `testnet init`'s signer for these tokens (with SoftHSM2's module).
    pub fn testnet_signer(&self) -> TestnetSigner {
        TestnetSigner::Pkcs11 {
            module: PathBuf::from(SOFTHSM_MODULE),
            token_label: self.label_template.clone(),
            pin: self.pin.clone(),
        }
    }

    /// `softhsm2-util --init-token --free --label LABEL` with this
    /// directory's config, bounded by [`SOFTHSM_UTIL_TIMEOUT_MS`]. Its output
    /// never contains the PINs, and is redacted anyway before it goes into
    /// an error.
    fn init_token(&self, label: &str, so_pin: &TokenPin) -> Result<(), HomeError> {
        let output_path = self.dir.join("softhsm2-util.out");
        let output = std::fs::File::create(&output_path).map_err(|source| HomeError::Io {
            operation: "creating",
            path: output_path.clone(),
            source,
        })?;
        let output_err = output.try_clone().map_err(|source| HomeError::Io {
            operation: "creating",
            path: output_path.clone(),
            source,
        })?;
        let mut child = Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", self.pin.expose(), "--so-pin", so_pin.expose()])
            .env("SOFTHSM2_CONF", self.conf_path())
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(output_err)
            .spawn()
            .map_err(|e| {
                invalid(
                    "softhsm",
                    format!(
                        "cannot run softhsm2-util ({e}): install SoftHSM2 \
                         (Debian: apt-get install softhsm2)"
                    ),
                )
            })?;
        let polls = SOFTHSM_UTIL_TIMEOUT_MS / SOFTHSM_UTIL_POLL_MS;
        let mut status = None;
        for _ in 0..polls {
            match child.try_wait() {
                Ok(Some(s)) => {
                    status = Some(s);
                    break;
                }
                Ok(None) => {
                    std::thread::sleep(std::time::Duration::from_millis(SOFTHSM_UTIL_POLL_MS))
                }
                Err(e) => {
                    return Err(invalid(
                        "softhsm",
                        format!("waiting for softhsm2-util: {e}"),
                    ))
                }
            }
        }
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(invalid(
                "softhsm",
                format!(
                    "softhsm2-util --init-token did not finish within {SOFTHSM_UTIL_TIMEOUT_MS} ms"
                ),
            ));
        };
        let text = std::fs::read_to_string(&output_path).unwrap_or_default();
        let _ = std::fs::remove_file(&output_path);
        if status.success() {
            return Ok(());
        }
        let text = text
            .replace(self.pin.expose(), "<redacted>")
            .replace(so_pin.expose(), "<redacted>");
        Err(invalid(
            "softhsm",
            format!(
                "softhsm2-util --init-token --label {label:?} failed ({status}): {}",
                text.trim()
            ),
        ))
    }
}

/// Removes a token directory [`SoftHsmTokens::create`] made (a fresh memory
/// localnet drops the token of an earlier softhsm one). Anything else is
/// left alone. Returns whether something was removed.
pub fn remove_token_dir(dir: &Path) -> Result<bool, HomeError> {
    if !is_ours(dir)? {
        return Ok(false);
    }
    std::fs::remove_dir_all(dir).map_err(|source| HomeError::Io {
        operation: "removing",
        path: dir.to_owned(),
        source,
    })?;
    Ok(true)
}

/// True if `dir/softhsm2.conf` starts with our marker.
fn is_ours(dir: &Path) -> Result<bool, HomeError> {
    let conf = dir.join(SOFTHSM_CONF_FILE);
    match std::fs::read_to_string(&conf) {
        Ok(text) => Ok(text.lines().next() == Some(SOFTHSM_CONF_MARKER)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(HomeError::Io {
            operation: "reading",
            path: conf,
            source,
        }),
    }
}

/// Removes a token directory a previous [`SoftHsmTokens::create`] made. A
/// directory we did not make is refused, not deleted.
fn remove_previous(dir: &Path) -> Result<(), HomeError> {
    if !dir.exists() {
        return Ok(());
    }
    if !is_ours(dir)? && !dir_is_empty(dir)? {
        return Err(invalid(
            "softhsm",
            format!(
                "{} exists and was not made by bitcraps localnet; move it away",
                dir.display()
            ),
        ));
    }
    std::fs::remove_dir_all(dir).map_err(|source| HomeError::Io {
        operation: "removing",
        path: dir.to_owned(),
        source,
    })
}

fn create_private_dir(dir: &Path) -> Result<(), HomeError> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| HomeError::Io {
            operation: "creating directory",
            path: dir.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_is_checked_redacted_and_read_from_private_files() {
        let pin = TokenPin::new("1234-secret".into()).unwrap();
        assert_eq!(format!("{pin:?}"), "TokenPin(<redacted>)");
        let signer = TestnetSigner::Pkcs11 {
            module: PathBuf::from("/m.so"),
            token_label: "t".into(),
            pin,
        };
        assert!(!format!("{signer:?}").contains("1234-secret"));
        assert_eq!(signer.name(), "pkcs11");
        assert_eq!(TestnetSigner::default().name(), "plaintext");

        for bad in ["", "123", "two\nlines", &"x".repeat(256)] {
            let err = TokenPin::new(bad.to_owned()).unwrap_err();
            assert!(err.to_string().contains("PKCS#11 PIN"), "{err}");
        }

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        TokenPin::new("from-a-file".into())
            .unwrap()
            .write_to(&path)
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "from-a-file\n");
        assert_eq!(TokenPin::from_file(&path).unwrap().expose(), "from-a-file");
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let err = TokenPin::from_file(&path).unwrap_err();
        assert!(err.to_string().contains("chmod 600"), "{err}");
        assert!(!err.to_string().contains("from-a-file"), "{err}");
    }

    #[test]
    fn random_pins_differ_and_fit_softhsm() {
        let a = TokenPin::random().unwrap();
        let b = TokenPin::random().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 2 * RANDOM_PIN_BYTES);
        assert!(a.expose().bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn token_checks_come_before_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("net");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::write(out.join("x"), "occupied").unwrap();
        let base = TestnetOptions {
            validators: 2,
            out_dir: out,
            signer: TestnetSigner::Pkcs11 {
                // Never loaded: every case below is refused before that.
                module: dir.path().join("no-such-module.so"),
                token_label: "t".into(),
                pin: TokenPin::new("1234".into()).unwrap(),
            },
            ..TestnetOptions::default()
        };
        let err = consensus_keys(&base).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");

        let module = dir.path().join("module.so");
        std::fs::write(&module, "not loaded").unwrap();
        let with = |token_label: &str| TestnetOptions {
            signer: TestnetSigner::Pkcs11 {
                module: module.clone(),
                token_label: token_label.into(),
                pin: TokenPin::new("1234".into()).unwrap(),
            },
            ..base.clone()
        };
        // Occupied output directory without --force.
        assert!(matches!(
            consensus_keys(&with("t")),
            Err(HomeError::NotEmpty { .. })
        ));
        let err = consensus_keys(&with(&"t".repeat(33))).unwrap_err();
        assert!(err.to_string().contains("token label"), "{err}");
        let err = consensus_keys(&TestnetOptions {
            chain_id: "c".repeat(60),
            ..with("t")
        })
        .unwrap_err();
        assert!(err.to_string().contains("key labels"), "{err}");
        assert_eq!(
            key_label("bitcraps-localnet", 3),
            "bitcraps-bitcraps-localnet-val3"
        );
        // One token per validator: 31 + 1 digit fits in 32 bytes, 31 + "10" does not.
        assert_eq!(
            token_label("bitcraps-localnet-val{i}", 12),
            "bitcraps-localnet-val12"
        );
        let template = "x".repeat(31) + "{i}";
        assert!(matches!(
            consensus_keys(&with(&template)),
            Err(HomeError::NotEmpty { .. })
        ));
        let err = consensus_keys(&TestnetOptions {
            validators: 11,
            ..with(&template)
        })
        .unwrap_err();
        assert!(err.to_string().contains("token label"), "{err}");
    }

    #[test]
    fn plaintext_keys_are_fresh_pairs() {
        let keys = consensus_keys(&TestnetOptions {
            validators: 3,
            ..TestnetOptions::default()
        })
        .unwrap();
        assert_eq!(keys.len(), 3);
        assert!(keys.iter().all(|k| matches!(k, HomeConsensus::File(_))));
        assert_ne!(keys[0].public(), keys[1].public());
    }

    #[test]
    fn keystore_homes_unlock_with_their_own_passphrase_files() {
        use crate::keystore_file::{inspect_key_file, TESTNET_KDF};
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(TestnetSigner::keystore().name(), "keystore");
        assert_eq!(
            TestnetSigner::keystore(),
            TestnetSigner::Keystore { kdf: TESTNET_KDF }
        );
        let dir = tempfile::tempdir().unwrap();
        let opts = TestnetOptions {
            validators: 2,
            out_dir: dir.path().join("net"),
            // The cheapest accepted parameters: this checks the layout, not
            // the cost (the localnet tests use TESTNET_KDF).
            signer: TestnetSigner::Keystore {
                kdf: KdfParams::MIN,
            },
            ..TestnetOptions::default()
        };
        let net = crate::home::testnet_init(&opts).unwrap();
        let mut passphrases = Vec::new();
        for (i, node) in net.nodes.iter().enumerate() {
            let home = Home::new(&node.home);
            let config = home.load_config().unwrap();
            assert_eq!(config.signer.backend, SignerBackend::File);
            assert_eq!(
                config.signer.passphrase_file,
                PathBuf::from(TESTNET_PASSPHRASE_FILE)
            );
            let info = inspect_key_file(&home.consensus_key_path()).unwrap();
            assert_eq!(info.backend, "keystore");
            // Identity key and beacon share stay plaintext files.
            assert_eq!(
                inspect_key_file(&home.identity_key_path()).unwrap().backend,
                "plaintext"
            );
            assert!(home.beacon_share_path().exists());
            let pass_path = home.resolve(Path::new(TESTNET_PASSPHRASE_FILE));
            let mode = std::fs::metadata(&pass_path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let pass = std::fs::read_to_string(&pass_path).unwrap();
            let pass = pass.strip_suffix('\n').unwrap().to_owned();
            assert_eq!(pass.len(), 32);
            let keystore = std::fs::read_to_string(home.consensus_key_path()).unwrap();
            assert!(!keystore.contains(&pass));
            assert!(!keystore.contains("secret_seed"));
            passphrases.push(pass);

            let setup = crate::home::load_setup(&home, &config).unwrap();
            assert_eq!(usize::from(setup.me), i);
            assert_eq!(setup.signer.backend(), "keystore");
            assert_eq!(setup.signer.public_key(), info.public_key);
        }
        assert_ne!(passphrases[0], passphrases[1], "one passphrase per home");

        // Another home's passphrase does not open this keystore.
        let home0 = Home::new(&net.nodes[0].home);
        let mut config = home0.load_config().unwrap();
        config.signer.passphrase_file = net.nodes[1].home.join(TESTNET_PASSPHRASE_FILE);
        let shown = crate::home::load_setup(&home0, &config)
            .unwrap_err()
            .to_string();
        // Checked first, so a failure below never prints the passphrase.
        assert!(!shown.contains(&passphrases[1]));
        assert!(shown.contains("wrong passphrase"), "{shown}");
    }

    #[test]
    fn keystore_parameters_are_checked_before_the_output_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("net");
        let err = crate::home::testnet_init(&TestnetOptions {
            validators: 2,
            out_dir: out.clone(),
            signer: TestnetSigner::Keystore {
                kdf: KdfParams {
                    t: KdfParams::MAX_T + 1,
                    ..KdfParams::MIN
                },
            },
            ..TestnetOptions::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("keystore kdf"), "{err}");
        assert!(!out.exists());
    }

    #[test]
    fn softhsm_dir_we_did_not_make_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let theirs = dir.path().join("softhsm");
        std::fs::create_dir_all(&theirs).unwrap();
        std::fs::write(theirs.join("softhsm2.conf"), "directories.tokendir = /x\n").unwrap();
        assert!(remove_previous(&theirs).is_err());
        assert!(theirs.join("softhsm2.conf").exists());
        assert!(SoftHsmTokens::open(&theirs, "t").is_err());
        assert!(!remove_token_dir(&theirs).unwrap());
        assert!(theirs.join("softhsm2.conf").exists());

        let ours = dir.path().join("ours");
        std::fs::create_dir_all(&ours).unwrap();
        std::fs::write(
            ours.join("softhsm2.conf"),
            format!("{SOFTHSM_CONF_MARKER}\nlog.level = ERROR\n"),
        )
        .unwrap();
        assert!(remove_token_dir(&ours).unwrap());
        assert!(!ours.exists());
        assert!(!remove_token_dir(&ours).unwrap());
    }
}
