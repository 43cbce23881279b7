//! The node's home directory: its layout, key files, `bitcraps init`,
//! `bitcraps testnet init`, and [`load_setup`], which turns a home into the
//! [`ValidatorSetup`] that `bitcraps start` runs.
//!
//! ```text
//! <home>/config.toml          local settings (crate::config), documented
//! <home>/genesis.json         the chain spec, identical on every validator
//! <home>/keys/                0700
//! <home>/keys/consensus.key   0600, signs votes (genesis consensus_key)
//! <home>/keys/identity.key    0600, authenticates QUIC (genesis identity_key)
//! <home>/keys/pkcs11.pin      0600, instead of consensus.key when the key is in
//!                             a PKCS#11 token (`testnet init --signer pkcs11`, home_pkcs11.rs)
//! <home>/keys/consensus.passphrase
//!                             0600, the passphrase of consensus.key when that is an
//!                             encrypted keystore (`testnet init --signer keystore`)
//! <home>/data/                0700: redb database and guard_state
//! <home>/data/guard_state     the signing guard's double-sign memory
//! ```
//!
//! Why the checks here are strict:
//!
//! * Key files are plaintext (localnet/testnet only; production keys belong in
//!   an encrypted keystore or an HSM). A key readable by other users is as good
//!   as leaked, so reading one with group/other permission bits fails, the way
//!   ssh refuses a loose private key. Files are created 0600 from the start
//!   (never chmod-ed after the secret is written) and renamed into place, so a
//!   crash never leaves a half-written key, and a key is never overwritten.
//! * The guard state remembers what the consensus key signed. A consensus key
//!   *without* its guard state is the classic double-sign accident (keys
//!   restored onto a new machine, data directory wiped), so `start` refuses it
//!   instead of silently starting from "never signed". `init` and
//!   `testnet init` create the state next to the keys they generate.
//! * Secrets are never printed or logged; buffers that held a seed are wiped
//!   (best effort: serde and the allocator may have made copies).

use crate::app::genesis::DEFAULT_ROLL_INTERVAL_MS;
use crate::app::{Allocation, AppGenesis};
use crate::beacon_key::{read_share_file, write_share_file};
use crate::chainspec::{ChainSpec, ChainSpecError};
use crate::config::{Config, ConfigError};
use crate::home_pkcs11::HomeConsensus;
pub use crate::home_pkcs11::TestnetSigner;
use crate::validator::killswitch::{Killswitch, MIN_ADMIN_TOKEN_BYTES};
use crate::validator::ValidatorSetup;
use bitcraps_consensus::params::Params;
use bitcraps_consensus::{Genesis, Validator};
use bitcraps_crypto::beacon::{self, BeaconPublic, SecretShare};
use bitcraps_crypto::guard::{FileGuardStore, GuardState, GuardStore, GuardStoreError};
use bitcraps_crypto::secret::SecretBuf;
use bitcraps_crypto::{Keypair, PublicKey};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Largest key file accepted (bytes); a real one is about 400.
pub const MAX_KEY_FILE_BYTES: u64 = 4096;
/// Chain id used when none is given.
pub const DEFAULT_CHAIN_ID: &str = "bitcraps-localnet";
/// Chips given to the faucet account at genesis when none is given.
pub const DEFAULT_FAUCET_BALANCE: u64 = 1_000_000_000_000;
/// Most validators `testnet init` creates.
pub const MAX_TESTNET_VALIDATORS: usize = 100;
/// Written into every plaintext key file.
pub const PLAINTEXT_WARNING: &str =
    "plaintext key: for localnet/testnet only; use an encrypted keystore or an HSM in production";

/// The layout of one node's home directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// The default genesis location (`[node] genesis` may point elsewhere).
    pub fn genesis_path(&self) -> PathBuf {
        self.root.join("genesis.json")
    }

    pub fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    /// The default consensus key location (`[keys] consensus`).
    pub fn consensus_key_path(&self) -> PathBuf {
        self.keys_dir().join("consensus.key")
    }

    /// The default identity key location (`[keys] identity`).
    pub fn identity_key_path(&self) -> PathBuf {
        self.keys_dir().join("identity.key")
    }

    /// The faucet key written by `bitcraps init` (single-node homes only).
    pub fn beacon_share_path(&self) -> PathBuf {
        self.keys_dir().join("beacon_share.key")
    }

    pub fn faucet_key_path(&self) -> PathBuf {
        self.keys_dir().join("faucet.key")
    }

    /// The default data directory (`[node] data_dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// `data_dir/guard_state`, where the engine keeps the signing guard's state.
    pub fn guard_state_path(&self) -> PathBuf {
        self.data_dir().join("guard_state")
    }

    /// A config path made absolute: relative paths are relative to the home.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.root.join(path)
        }
    }

    /// Loads `config.toml`.
    pub fn load_config(&self) -> Result<Config, HomeError> {
        let path = self.config_path();
        if !path.exists() {
            return Err(HomeError::NoConfig { path });
        }
        Ok(Config::load(&path)?)
    }
}

/// Why a home, key file or testnet could not be created or used.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("{operation} {path}: {source}")]
    Io {
        operation: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} does not exist; create a node home with `bitcraps init` (or pass --home)")]
    NoConfig { path: PathBuf },
    #[error(
        "{path} already exists and is not empty; pass --force to replace it \
         (this deletes its keys and signing-guard state)"
    )]
    NotEmpty { path: PathBuf },
    #[error("key file {path} already exists; refusing to overwrite a key")]
    KeyExists { path: PathBuf },
    #[error("key file {path} does not exist")]
    KeyMissing { path: PathBuf },
    #[error(
        "key file {path} is accessible by group or others (mode {mode:03o}); \
         a plaintext key must be private: run `chmod 600 {path}`"
    )]
    KeyPermissions { path: PathBuf, mode: u32 },
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    ChainSpec(#[from] ChainSpecError),
    #[error(
        "consensus key {public_key} (from {key_path}) is not a validator in {genesis}; \
         this home's keys do not belong to this chain"
    )]
    NotAValidator {
        public_key: String,
        key_path: PathBuf,
        genesis: PathBuf,
    },
    #[error(
        "identity key {public_key} (from {key_path}) does not match identity_key {expected} \
         of validator {name} in genesis"
    )]
    IdentityMismatch {
        public_key: String,
        key_path: PathBuf,
        expected: String,
        name: String,
    },
    #[error(
        "the signing guard state {guard_path} is missing, but the consensus key {key_path} exists. \
         Starting would let this key sign with no memory of what it already signed, which \
         double-signs (and can get the validator slashed) if the key was used before, for \
         example when keys are restored onto a new machine or the data directory was wiped. \
         To recover: make sure no other copy of this validator is running, then restore \
         guard_state from the same machine or backup as the key. If you are certain this key \
         has never signed on this chain (a fresh localnet or testnet), re-create the home with \
         new keys (`bitcraps init --force` or `bitcraps testnet init --force`)"
    )]
    GuardStateMissing {
        guard_path: PathBuf,
        key_path: PathBuf,
    },
    #[error("signing guard state {path}: {reason}")]
    GuardState { path: PathBuf, reason: String },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("generating a key: {0}")]
    Random(String),
}

fn io_err<'a>(operation: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> HomeError + 'a {
    move |source| HomeError::Io {
        operation,
        path: path.to_owned(),
        source,
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> HomeError {
    HomeError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------
// Key files

/// The JSON stored in a plaintext key file.
#[derive(Serialize, Deserialize)]
struct KeyFileJson<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    backend: &'a str,
    purpose: &'a str,
    public_key: &'a str,
    secret_seed: &'a str,
    warning: &'a str,
}

/// Reading side: owned strings (so the seed string can be wiped after use).
#[derive(Deserialize)]
struct KeyFileOwned {
    #[serde(rename = "type")]
    kind: String,
    backend: String,
    purpose: String,
    public_key: String,
    secret_seed: String,
}

/// A loaded key file.
#[derive(Debug)]
pub struct KeyFile {
    pub keypair: Keypair,
    /// What the key is for (`consensus`, `identity`, `faucet`, ...).
    pub purpose: String,
}

/// Overwrites a buffer that held secret material. `black_box` keeps the writes
/// from being optimised away as dead stores.
pub(crate) fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(&*buf);
}

fn wipe_string(s: String) {
    let mut bytes = s.into_bytes();
    wipe(&mut bytes);
}

/// Writes `key` to a new plaintext key file at `path` (mode 0600, created
/// atomically, never overwriting). Missing parent directories are created with
/// mode 0700; an existing parent is left as it is.
pub fn write_key_file(path: &Path, key: &Keypair, purpose: &str) -> Result<(), HomeError> {
    if purpose.is_empty() || purpose.len() > 64 {
        return Err(invalid("purpose", "must be 1..=64 characters"));
    }
    if path.exists() {
        return Err(HomeError::KeyExists {
            path: path.to_owned(),
        });
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_private_dir(parent)?;
    }
    let seed = key.seed();
    // Encoded from the zeroizing buffer itself, not from a copy of it.
    let seed_hex = hex::encode(seed.as_slice());
    drop(seed);
    let public_hex = key.public().to_hex();
    let json = KeyFileJson {
        kind: "ed25519",
        backend: "plaintext",
        purpose,
        public_key: &public_hex,
        secret_seed: &seed_hex,
        warning: PLAINTEXT_WARNING,
    };
    let encoded = serde_json::to_vec_pretty(&json);
    wipe_string(seed_hex);
    let mut bytes = encoded.map_err(|e| HomeError::KeyFile {
        path: path.to_owned(),
        reason: format!("encoding: {e}"),
    })?;
    bytes.push(b'\n');
    let result = write_new_file(path, &bytes, 0o600);
    wipe(&mut bytes);
    match result {
        Err(HomeError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
            Err(HomeError::KeyExists {
                path: path.to_owned(),
            })
        }
        other => other,
    }
}

/// Reads a plaintext key file written by [`write_key_file`].
pub fn read_key_file(path: &Path) -> Result<Keypair, HomeError> {
    load_key_file(path).map(|k| k.keypair)
}

/// Reads a plaintext key file and its purpose. Refuses files that group or
/// others may access, files larger than [`MAX_KEY_FILE_BYTES`], other backends
/// and a public key that does not match the seed. An encrypted keystore is
/// refused with a hint: it needs a passphrase ([`load_key_file_with`]).
pub fn load_key_file(path: &Path) -> Result<KeyFile, HomeError> {
    load_key_file_with(path, None)
}

/// [`load_key_file`] for either backend: a plaintext file as there, an
/// encrypted keystore (`backend: "keystore"`) decrypted with a passphrase from
/// `passphrase`, which is only consulted for a keystore.
pub fn load_key_file_with(
    path: &Path,
    passphrase: Option<&crate::keystore_file::PassphraseSource>,
) -> Result<KeyFile, HomeError> {
    let bad = |reason: &str| HomeError::KeyFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let mut bytes = read_private_file(path)?;
    if crate::keystore_file::backend_of(&bytes).as_deref()
        == Some(bitcraps_crypto::keystore::BACKEND)
    {
        let parsed = crate::keystore_file::parse_keystore(path, &bytes);
        wipe(&mut bytes);
        let file = parsed?;
        let source = passphrase.ok_or_else(|| {
            bad(
                "this key is in an encrypted keystore; configure a passphrase source \
                 (a passphrase file, an environment variable or a terminal prompt)",
            )
        })?;
        return crate::keystore_file::unlock(path, &file, source);
    }
    let parsed = {
        // The serde error is not shown: it can quote the file's content.
        serde_json::from_slice::<KeyFileOwned>(&bytes)
            .map_err(|_| bad("not a BitCraps key file (expected JSON with type, backend, purpose, public_key, secret_seed)"))
    };
    wipe(&mut bytes);
    let parsed = parsed?;
    let KeyFileOwned {
        kind,
        backend,
        purpose,
        public_key,
        secret_seed,
    } = parsed;
    let keypair = decode_seed(&secret_seed);
    wipe_string(secret_seed);
    if kind != "ed25519" {
        return Err(bad(&format!(
            "unsupported key type {kind:?} (expected \"ed25519\")"
        )));
    }
    if backend != "plaintext" {
        return Err(bad(&format!(
            "backend {backend:?} is not supported by this build (only \"plaintext\" and \"keystore\")"
        )));
    }
    let keypair = keypair.ok_or_else(|| bad("secret_seed is not 64 hex characters"))?;
    let expected = PublicKey::from_hex(&public_key)
        .map_err(|_| bad("public_key is not a valid hex ed25519 public key"))?;
    if expected != keypair.public() {
        return Err(bad(
            "public_key does not match the secret seed (the file is damaged or was edited)",
        ));
    }
    Ok(KeyFile { keypair, purpose })
}

/// Reads a secret file: refuses files that group or others may access, that
/// are not regular files, or that are larger than [`MAX_KEY_FILE_BYTES`]. The
/// caller must [`wipe`] the returned bytes.
pub(crate) fn read_private_file(path: &Path) -> Result<Vec<u8>, HomeError> {
    let bad = |reason: &str| HomeError::KeyFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(HomeError::KeyMissing {
                path: path.to_owned(),
            })
        }
        Err(e) => return Err(io_err("opening", path)(e)),
    };
    // Checked on the open file, so the file read is the file checked.
    let meta = file.metadata().map_err(io_err("inspecting", path))?;
    if !meta.is_file() {
        return Err(bad("not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(HomeError::KeyPermissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(bad(&format!(
            "larger than {MAX_KEY_FILE_BYTES} bytes; not a key file"
        )));
    }
    let mut bytes = Vec::new();
    let read = file
        .take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("reading", path));
    if let Err(e) = read {
        wipe(&mut bytes);
        return Err(e);
    }
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        wipe(&mut bytes);
        return Err(bad(&format!(
            "larger than {MAX_KEY_FILE_BYTES} bytes; not a key file"
        )));
    }
    Ok(bytes)
}

fn decode_seed(seed_hex: &str) -> Option<Keypair> {
    let mut seed = [0u8; 32];
    let ok = hex::decode_to_slice(seed_hex.trim(), &mut seed).is_ok();
    let keypair = ok.then(|| Keypair::from_seed(&seed));
    wipe(&mut seed);
    keypair
}

/// Generates a key pair from the OS CSPRNG.
pub fn generate_key() -> Result<Keypair, HomeError> {
    Keypair::generate().map_err(|e| HomeError::Random(e.to_string()))
}

// ---------------------------------------------------------------------------
// File helpers

/// Creates `dir` (and missing parents) with mode 0700. An existing directory is
/// left untouched: it may be a shared directory the operator chose.
fn create_private_dir(dir: &Path) -> Result<(), HomeError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(io_err("creating directory", dir))
}

/// Writes a new file atomically: a temp file created with `mode` is written and
/// fsynced, then linked to `path` (which fails if `path` exists, so nothing is
/// ever overwritten), and the directory is fsynced.
pub(crate) fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), HomeError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| invalid("path", format!("{} has no file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    // A temp file left by a crash is stale; never trust its mode or content.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("removing stale", &tmp)(e)),
    }
    let result = write_and_link(&tmp, path, bytes, mode);
    // The temp name is gone after a successful link+remove; on failure it is
    // removed here (best effort: it is also replaced on the next attempt).
    let _ = fs::remove_file(&tmp);
    result?;
    sync_dir(&dir)
}

fn write_and_link(tmp: &Path, path: &Path, bytes: &[u8], mode: u32) -> Result<(), HomeError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(tmp).map_err(io_err("creating", tmp))?;
    file.write_all(bytes).map_err(io_err("writing", tmp))?;
    file.sync_all().map_err(io_err("fsyncing", tmp))?;
    drop(file);
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(io_err("creating", path)(e)),
        Err(_) => {
            // Filesystems without hard links: check, then rename. The race
            // window is tiny and only against the operator's own commands.
            if path.exists() {
                return Err(io_err("creating", path)(io::Error::from(
                    io::ErrorKind::AlreadyExists,
                )));
            }
            fs::rename(tmp, path).map_err(io_err("renaming into", path))
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), HomeError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsyncing directory", dir))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn is_empty_dir(dir: &Path) -> Result<bool, HomeError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(io_err("reading directory", dir)(e)),
    }
}

fn remove_if_exists(path: &Path) -> Result<(), HomeError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspecting", path)(e)),
    };
    if meta.is_dir() {
        fs::remove_dir_all(path).map_err(io_err("removing", path))
    } else {
        fs::remove_file(path).map_err(io_err("removing", path))
    }
}

/// Milliseconds since the Unix epoch, for the genesis timestamp.
// The wall clock is read here, outside the runtime's Clock, because this is an
// operator tool stamping a new genesis file, not consensus logic.
#[allow(clippy::disallowed_methods)]
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Creates the guard state file for a fresh consensus key: bound to
/// `chain_id`, nothing signed yet.
fn create_guard_state(path: &Path, chain_id: &str) -> Result<(), HomeError> {
    let guard_err = |e: GuardStoreError| HomeError::GuardState {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let store = FileGuardStore::open(path).map_err(guard_err)?;
    if store.load().map_err(guard_err)?.is_some() {
        return Err(HomeError::GuardState {
            path: path.to_owned(),
            reason: "already exists; refusing to reset a signing guard".into(),
        });
    }
    let state = GuardState {
        chain_id: chain_id.to_owned(),
        ..GuardState::default()
    };
    store.store(&state).map_err(guard_err)
}

// ---------------------------------------------------------------------------
// init / testnet init

/// Options of `bitcraps init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitOptions {
    pub chain_id: String,
    /// QUIC listen address (also this validator's genesis `address`).
    pub p2p_listen: SocketAddr,
    pub http_listen: SocketAddr,
    /// Chips for the faucet account (`keys/faucet.key`).
    pub faucet_balance: u64,
    /// Replace an existing home (deletes its config, genesis, keys and data).
    pub force: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        let addr = |s: &str, port| {
            s.parse()
                .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
        };
        InitOptions {
            chain_id: DEFAULT_CHAIN_ID.to_owned(),
            p2p_listen: addr(crate::config::DEFAULT_P2P_LISTEN, 9400),
            http_listen: addr(crate::config::DEFAULT_HTTP_LISTEN, 9480),
            faucet_balance: DEFAULT_FAUCET_BALANCE,
            force: false,
        }
    }
}

/// What `init` and `testnet init` create inside a validator's home.
const HOME_ENTRIES: [&str; 4] = ["config.toml", "genesis.json", "keys", "data"];

/// Refuses a non-empty `dir` unless `force`; with `force`, removes `entries`
/// (only what we create, so a mistaken `--home` cannot wipe unrelated files).
fn prepare_dir(dir: &Path, force: bool, entries: &[String]) -> Result<(), HomeError> {
    if !is_empty_dir(dir)? {
        if !force {
            return Err(HomeError::NotEmpty {
                path: dir.to_owned(),
            });
        }
        for entry in entries {
            remove_if_exists(&dir.join(entry))?;
        }
    }
    create_private_dir(dir)
}

fn genesis_time_and_params() -> (u64, Params) {
    (now_ms(), Params::default())
}

/// The secrets a validator home holds.
struct HomeKeys<'a> {
    /// A plaintext key pair, or a key in a PKCS#11 token (home_pkcs11.rs).
    consensus: &'a HomeConsensus,
    identity: &'a Keypair,
    share: &'a SecretShare,
}

/// Writes a validator home: keys, guard state, config, genesis copy.
fn write_home(
    home: &Home,
    spec_json: &str,
    chain_id: &str,
    keys: HomeKeys<'_>,
    p2p: SocketAddr,
    http: SocketAddr,
) -> Result<(), HomeError> {
    let HomeKeys {
        consensus,
        identity,
        share,
    } = keys;
    create_private_dir(home.root())?;
    create_private_dir(&home.keys_dir())?;
    create_private_dir(&home.data_dir())?;
    consensus.write(home)?;
    write_key_file(&home.identity_key_path(), identity, "identity")?;
    write_share_file(&home.beacon_share_path(), share)?;
    create_guard_state(&home.guard_state_path(), chain_id)?;
    let mut config = Config::default();
    config.p2p.listen = p2p.to_string();
    config.http.listen = http.to_string();
    consensus.configure(&mut config);
    config.validate()?;
    write_new_file(&home.config_path(), config.to_toml().as_bytes(), 0o644)?;
    write_new_file(&home.genesis_path(), spec_json.as_bytes(), 0o644)
}

fn check_chain_spec(spec: &ChainSpec) -> Result<(), HomeError> {
    spec.validate().map_err(|reason| invalid("genesis", reason))
}

/// `bitcraps init`: a single-validator home (this node is the whole chain),
/// with a funded faucet key in `keys/faucet.key`.
pub fn init(home: &Home, opts: &InitOptions) -> Result<(), HomeError> {
    let consensus = HomeConsensus::File(generate_key()?);
    let identity = generate_key()?;
    let faucet = generate_key()?;
    let (beacon, mut shares) = deal_beacon(1)?;
    let (genesis_time_ms, params) = genesis_time_and_params();
    let spec = ChainSpec {
        consensus: Genesis {
            chain_id: opts.chain_id.clone(),
            genesis_time_ms,
            validators: vec![Validator {
                name: "val0".into(),
                consensus_key: consensus.public(),
                identity_key: identity.public(),
                address: opts.p2p_listen.to_string(),
            }],
            params,
        },
        app: AppGenesis {
            allocations: vec![Allocation {
                account: faucet.public(),
                balance: opts.faucet_balance,
            }],
            faucet: Some(faucet.public()),
            beacon: Some(beacon),
            roll_interval_ms: DEFAULT_ROLL_INTERVAL_MS,
        },
    };
    // Everything is checked before the first file is touched.
    check_chain_spec(&spec)?;
    check_listen("p2p_listen", opts.p2p_listen)?;
    check_listen("http_listen", opts.http_listen)?;
    let entries: Vec<String> = HOME_ENTRIES.iter().map(|s| (*s).to_owned()).collect();
    prepare_dir(home.root(), opts.force, &entries)?;
    write_home(
        home,
        &spec.to_json(),
        &opts.chain_id,
        HomeKeys {
            consensus: &consensus,
            identity: &identity,
            share: &shares.remove(0),
        },
        opts.p2p_listen,
        opts.http_listen,
    )?;
    write_key_file(&home.faucet_key_path(), &faucet, "faucet")
}

/// Deals the dice beacon's threshold key for `validators` validators.
fn deal_beacon(validators: usize) -> Result<(BeaconPublic, Vec<SecretShare>), HomeError> {
    let n = u32::try_from(validators).map_err(|_| invalid("validators", "too many"))?;
    beacon::deal(n, beacon::threshold_for(n))
        .map_err(|e| invalid("beacon", format!("dealing the beacon key: {e}")))
}

fn check_listen(field: &str, addr: SocketAddr) -> Result<(), HomeError> {
    if addr.port() == 0 {
        return Err(invalid(field, "port 0 is not allowed"));
    }
    Ok(())
}

/// Options of `bitcraps testnet init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestnetOptions {
    /// 1..=[`MAX_TESTNET_VALIDATORS`].
    pub validators: usize,
    pub out_dir: PathBuf,
    pub chain_id: String,
    /// Address every node listens on and is dialed at.
    pub host: IpAddr,
    /// Validator `i` gets QUIC port `base_port + 2i` and HTTP port
    /// `base_port + 2i + 1`. 0 picks free ports (bound once, then released).
    pub base_port: u16,
    pub faucet_balance: u64,
    /// Betting window before each roll (genesis `app.roll_interval_ms`).
    pub roll_interval_ms: u64,
    /// Remove a previous testnet in `out_dir` first.
    pub force: bool,
    /// Where the consensus keys live: plaintext key files (default) or keys
    /// generated inside a PKCS#11 token (home_pkcs11.rs).
    pub signer: TestnetSigner,
}

impl Default for TestnetOptions {
    fn default() -> Self {
        TestnetOptions {
            validators: 4,
            out_dir: PathBuf::from("localnet"),
            chain_id: DEFAULT_CHAIN_ID.to_owned(),
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 0,
            faucet_balance: DEFAULT_FAUCET_BALANCE,
            roll_interval_ms: DEFAULT_ROLL_INTERVAL_MS,
            force: false,
            signer: TestnetSigner::Plaintext,
        }
    }
}

/// What `testnet init` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Testnet {
    pub genesis_path: PathBuf,
    pub faucet_key_path: PathBuf,
    pub nodes: Vec<TestnetNode>,
}

/// One validator of a testnet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestnetNode {
    /// `val0`, `val1`, ...
    pub name: String,
    pub home: PathBuf,
    /// QUIC (UDP).
    pub p2p_addr: SocketAddr,
    /// HTTP API (TCP).
    pub http_addr: SocketAddr,
}

/// Picks `validators` (p2p, http) address pairs.
fn testnet_addrs(opts: &TestnetOptions) -> Result<Vec<(SocketAddr, SocketAddr)>, HomeError> {
    let n = opts.validators;
    if opts.base_port != 0 {
        let last = usize::from(opts.base_port) + 2 * n - 1;
        if last > usize::from(u16::MAX) {
            return Err(invalid(
                "base_port",
                format!(
                    "{} validators need ports {}..={last}, beyond 65535",
                    n, opts.base_port
                ),
            ));
        }
        return Ok((0..n)
            .map(|i| {
                let p = opts.base_port + 2 * i as u16;
                (
                    SocketAddr::new(opts.host, p),
                    SocketAddr::new(opts.host, p + 1),
                )
            })
            .collect());
    }
    // Every socket stays bound until all ports are chosen, so the OS cannot
    // hand out the same port twice; UDP and TCP numbers are also kept
    // distinct so a table of ports never shows one number twice.
    let mut udp = Vec::new();
    let mut tcp = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    let bind_err = |e: io::Error| {
        invalid(
            "host",
            format!(
                "cannot bind {} to pick a free port ({e}); pass --base-port to choose ports",
                opts.host
            ),
        )
    };
    let mut pairs = Vec::new();
    // Bounded: collisions between the UDP and TCP spaces are rare.
    let mut attempts = 0;
    while pairs.len() < n {
        attempts += 1;
        if attempts > n * 20 {
            return Err(invalid("base_port", "could not find enough free ports"));
        }
        let u = UdpSocket::bind(SocketAddr::new(opts.host, 0)).map_err(bind_err)?;
        let t = TcpListener::bind(SocketAddr::new(opts.host, 0)).map_err(bind_err)?;
        let (ua, ta) = (
            u.local_addr().map_err(bind_err)?,
            t.local_addr().map_err(bind_err)?,
        );
        let fresh =
            ua.port() != ta.port() && !used.contains(&ua.port()) && !used.contains(&ta.port());
        if fresh {
            used.insert(ua.port());
            used.insert(ta.port());
            pairs.push((ua, ta));
        }
        udp.push(u);
        tcp.push(t);
    }
    Ok(pairs)
}

/// `bitcraps testnet init`: `out_dir/genesis.json`, `out_dir/faucet.key` and one
/// home per validator in `out_dir/valN`.
pub fn testnet_init(opts: &TestnetOptions) -> Result<Testnet, HomeError> {
    if opts.validators == 0 || opts.validators > MAX_TESTNET_VALIDATORS {
        return Err(invalid(
            "validators",
            format!(
                "must be 1..={MAX_TESTNET_VALIDATORS}, got {}",
                opts.validators
            ),
        ));
    }
    if opts.host.is_unspecified() {
        return Err(invalid(
            "host",
            format!(
                "{} cannot be dialed; use the address validators reach each other at (e.g. 127.0.0.1)",
                opts.host
            ),
        ));
    }
    let addrs = testnet_addrs(opts)?;
    // Consensus keys: key pairs (written plaintext or sealed in keystores),
    // or generated inside a PKCS#11 token (home_pkcs11.rs); then the identity
    // keys.
    let mut keys = Vec::with_capacity(opts.validators);
    for consensus in crate::home_pkcs11::consensus_keys(opts)? {
        keys.push((consensus, generate_key()?));
    }
    let faucet = generate_key()?;
    // The trusted dealer (for now; a DKG replaces it later): the shares exist
    // only in this process and in each validator's own key file.
    let (beacon, shares) = deal_beacon(opts.validators)?;
    let (genesis_time_ms, params) = genesis_time_and_params();
    let spec = ChainSpec {
        consensus: Genesis {
            chain_id: opts.chain_id.clone(),
            genesis_time_ms,
            validators: keys
                .iter()
                .zip(&addrs)
                .enumerate()
                .map(|(i, ((consensus, identity), (p2p, _)))| Validator {
                    name: format!("val{i}"),
                    consensus_key: consensus.public(),
                    identity_key: identity.public(),
                    address: p2p.to_string(),
                })
                .collect(),
            params,
        },
        app: AppGenesis {
            allocations: vec![Allocation {
                account: faucet.public(),
                balance: opts.faucet_balance,
            }],
            faucet: Some(faucet.public()),
            beacon: Some(beacon),
            roll_interval_ms: opts.roll_interval_ms,
        },
    };
    check_chain_spec(&spec)?;

    let out = &opts.out_dir;
    let entries = testnet_entries(out)?;
    prepare_dir(out, opts.force, &entries)?;
    let spec_json = spec.to_json();
    let genesis_path = out.join("genesis.json");
    let faucet_key_path = out.join("faucet.key");
    write_new_file(&genesis_path, spec_json.as_bytes(), 0o644)?;
    write_key_file(&faucet_key_path, &faucet, "faucet")?;
    let mut nodes = Vec::with_capacity(opts.validators);
    for (i, (((consensus, identity), (p2p, http)), share)) in
        keys.iter().zip(&addrs).zip(&shares).enumerate()
    {
        let name = format!("val{i}");
        let home = Home::new(out.join(&name));
        write_home(
            &home,
            &spec_json,
            &opts.chain_id,
            HomeKeys {
                consensus,
                identity,
                share,
            },
            *p2p,
            *http,
        )?;
        nodes.push(TestnetNode {
            name,
            home: home.root().to_owned(),
            p2p_addr: *p2p,
            http_addr: *http,
        });
    }
    Ok(Testnet {
        genesis_path,
        faucet_key_path,
        nodes,
    })
}

/// What `testnet init --force` may remove from `out_dir`: the files it writes
/// and every `val<N>` directory. Anything else stays.
fn testnet_entries(out: &Path) -> Result<Vec<String>, HomeError> {
    let mut entries = vec!["genesis.json".to_owned(), "faucet.key".to_owned()];
    let listing = match fs::read_dir(out) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(entries),
        Err(e) => return Err(io_err("reading directory", out)(e)),
    };
    for entry in listing {
        let entry = entry.map_err(io_err("reading directory", out))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_val = name
            .strip_prefix("val")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if is_val {
            entries.push(name);
        }
    }
    Ok(entries)
}

// ---------------------------------------------------------------------------
// start

/// Everything `bitcraps start` needs, from a home and its (loaded) config:
/// validates the config, loads genesis and both keys (with permission checks),
/// finds this validator by its consensus key, checks the identity key against
/// genesis and the guard state (present, readable, same chain, not in use).
pub fn load_setup(home: &Home, config: &Config) -> Result<ValidatorSetup, HomeError> {
    config.validate()?;
    let p2p_listen = config.p2p_listen()?;
    let http_listen = config.http_listen()?;
    let genesis_path = home.resolve(&config.node.genesis);
    let spec = ChainSpec::load(&genesis_path)?;

    let consensus_path = crate::signer_setup::key_location(home, config);
    let identity_path = home.resolve(&config.keys.identity);
    let identity = read_key_file(&identity_path)?;

    let data_dir = home.resolve(&config.node.data_dir);
    let guard_path = data_dir.join("guard_state");
    // Checked before anything else about the chain: a key without its guard
    // state must never start, whatever else is wrong.
    check_guard_state(&guard_path, &consensus_path, &spec.consensus.chain_id)?;
    let signer = crate::signer_setup::open_consensus_signer(home, config)?;
    let consensus_public = signer.public_key();

    let position = spec
        .consensus
        .validators
        .iter()
        .position(|v| v.consensus_key == consensus_public)
        .ok_or_else(|| HomeError::NotAValidator {
            public_key: consensus_public.to_hex(),
            key_path: consensus_path.clone(),
            genesis: genesis_path.clone(),
        })?;
    let me = u16::try_from(position).map_err(|_| invalid("genesis", "too many validators"))?;
    let ours = &spec.consensus.validators[position];
    // A rotated identity (`engine::rotation`) is as good as the genesis one:
    // the engine checks the same rule against the rotations it has accepted.
    let rotations = crate::engine::rotation::RotationBook::load(&data_dir, &spec.consensus)
        .map_err(|e| invalid("identity rotations", e.to_string()))?;
    let rotated = rotations.current_key(me) == Some(identity.public())
        || rotations
            .latest(me)
            .is_some_and(|a| a.previous_key == identity.public());
    if ours.identity_key != identity.public() && !rotated {
        return Err(HomeError::IdentityMismatch {
            public_key: identity.public().to_hex(),
            key_path: identity_path,
            expected: ours.identity_key.to_hex(),
            name: ours.name.clone(),
        });
    }
    let beacon_share = match &spec.app.beacon {
        Some(public) => Some(read_share_file(
            &home.resolve(&config.keys.beacon_share),
            public,
            me,
        )?),
        None => None,
    };
    Ok(ValidatorSetup {
        spec,
        me,
        beacon_share,
        identity,
        signer: Arc::new(Killswitch::from_arc(signer)),
        data_dir,
        p2p_listen,
        http_listen,
        net_limits: config.net.limits(),
        mempool: config.mempool.clone(),
        http: config.http.limits(),
        signer_probe_interval_ms: config.signer.probe_interval_ms,
        admin_token: read_admin_token(home, config)?,
        identity_key_path: identity_path,
        index_receipts: config.node.index_receipts,
    })
}

/// The admin API's bearer token from `admin.token_file` (mode 0600, one
/// trailing newline ignored, at least [`MIN_ADMIN_TOKEN_BYTES`]), straight
/// into secret memory. `None` when no file is configured.
fn read_admin_token(home: &Home, config: &Config) -> Result<Option<SecretBuf>, HomeError> {
    if config.admin.token_file.as_os_str().is_empty() {
        return Ok(None);
    }
    let path = home.resolve(&config.admin.token_file);
    let bytes = read_private_file(&path)?;
    crate::signer_setup::into_secret(bytes, MIN_ADMIN_TOKEN_BYTES, MAX_KEY_FILE_BYTES as usize)
        .map(Some)
        .map_err(|problem| HomeError::KeyFile {
            path,
            reason: format!("the admin token {problem}"),
        })
}

fn check_guard_state(guard_path: &Path, key_path: &Path, chain_id: &str) -> Result<(), HomeError> {
    let missing = || HomeError::GuardStateMissing {
        guard_path: guard_path.to_owned(),
        key_path: key_path.to_owned(),
    };
    if !guard_path.exists() {
        return Err(missing());
    }
    let guard_err = |reason: String| HomeError::GuardState {
        path: guard_path.to_owned(),
        reason,
    };
    // Opening takes the state's lock, so this also catches a second process
    // running this validator; the lock is released when `store` drops.
    let store = FileGuardStore::open(guard_path).map_err(|e| match e {
        GuardStoreError::Locked { .. } => {
            guard_err("locked by another process: is this validator already running?".into())
        }
        other => guard_err(other.to_string()),
    })?;
    match store.load() {
        Ok(Some(state)) if state.chain_id == chain_id => Ok(()),
        Ok(Some(state)) => Err(guard_err(format!(
            "belongs to chain {:?}, but genesis is for {chain_id:?}; this data directory is from another chain",
            state.chain_id
        ))),
        Ok(None) => Err(missing()),
        Err(e) => Err(guard_err(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn key_file_round_trip_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/keys/a.key");
        let key = Keypair::from_seed(&[9; 32]);
        write_key_file(&path, &key, "consensus").unwrap();
        let loaded = load_key_file(&path).unwrap();
        assert_eq!(loaded.keypair.public(), key.public());
        assert_eq!(loaded.purpose, "consensus");
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        let text = fs::read_to_string(&path).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "ed25519");
        assert_eq!(v["backend"], "plaintext");
        assert_eq!(v["public_key"], key.public().to_hex());
        assert_eq!(v["secret_seed"], hex::encode([9u8; 32]));
        assert_eq!(v["warning"], PLAINTEXT_WARNING);
        let other = Keypair::from_seed(&[1; 32]);
        assert!(matches!(
            write_key_file(&path, &other, "consensus"),
            Err(HomeError::KeyExists { .. })
        ));
        assert_eq!(read_key_file(&path).unwrap().public(), key.public());
        // No temp files left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn loose_permissions_are_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        write_key_file(&path, &Keypair::from_seed(&[3; 32]), "identity").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_key_file(&path).unwrap_err();
        assert!(matches!(err, HomeError::KeyPermissions { mode: 0o640, .. }));
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn damaged_key_files_are_refused_without_echoing_content() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, content: &[u8]| {
            let p = dir.path().join(name);
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&p)
                .unwrap();
            f.write_all(content).unwrap();
            p
        };
        let key = Keypair::from_seed(&[5; 32]);
        let other = Keypair::from_seed(&[6; 32]);
        let secret = hex::encode([5u8; 32]);
        let mismatched = format!(
            r#"{{"type":"ed25519","backend":"plaintext","purpose":"x","public_key":"{}","secret_seed":"{secret}"}}"#,
            other.public().to_hex()
        );
        let err = read_key_file(&write("m.key", mismatched.as_bytes())).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(!err.to_string().contains(&secret));

        let broken = format!(r#"{{"secret_seed":"{secret}", oops"#);
        let err = read_key_file(&write("b.key", broken.as_bytes())).unwrap_err();
        assert!(!err.to_string().contains(&secret), "{err}");

        let other_backend = format!(
            r#"{{"type":"ed25519","backend":"pkcs11","purpose":"x","public_key":"{}","secret_seed":"{secret}"}}"#,
            key.public().to_hex()
        );
        let err = read_key_file(&write("p.key", other_backend.as_bytes())).unwrap_err();
        assert!(err.to_string().contains("pkcs11"), "{err}");

        let big = vec![b' '; MAX_KEY_FILE_BYTES as usize + 1];
        let err = read_key_file(&write("big.key", &big)).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");

        assert!(matches!(
            read_key_file(&dir.path().join("absent.key")),
            Err(HomeError::KeyMissing { .. })
        ));
    }

    #[test]
    fn init_then_load_setup_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path().join("home"));
        init(&home, &InitOptions::default()).unwrap();
        let config = home.load_config().unwrap();
        let setup = load_setup(&home, &config).unwrap();
        assert_eq!(setup.me, 0);
        assert_eq!(setup.spec.consensus.chain_id, DEFAULT_CHAIN_ID);
        assert_ne!(setup.identity.public(), setup.signer.public_key());
        assert_eq!(setup.data_dir, home.data_dir());
        let faucet = read_key_file(&home.faucet_key_path()).unwrap();
        assert_eq!(setup.spec.app.faucet, Some(faucet.public()));

        // Twice: refused, and nothing changed.
        let err = init(&home, &InitOptions::default()).unwrap_err();
        assert!(matches!(err, HomeError::NotEmpty { .. }));
        assert_eq!(
            read_key_file(&home.consensus_key_path()).unwrap().public(),
            setup.signer.public_key()
        );

        // Another chain's guard state is refused.
        let other = Home::new(dir.path().join("other"));
        init(
            &other,
            &InitOptions {
                chain_id: "other-chain".into(),
                ..InitOptions::default()
            },
        )
        .unwrap();
        // Keys of another chain are not a validator here.
        let mut foreign = config.clone();
        foreign.keys.consensus = other.consensus_key_path();
        let err = load_setup(&home, &foreign).unwrap_err();
        assert!(matches!(err, HomeError::NotAValidator { .. }), "{err}");
        // Nor is an identity key that does not match genesis.
        let mut swapped = config.clone();
        swapped.keys.identity = other.identity_key_path();
        let err = load_setup(&home, &swapped).unwrap_err();
        assert!(matches!(err, HomeError::IdentityMismatch { .. }), "{err}");

        fs::remove_file(home.guard_state_path()).unwrap();
        fs::copy(other.guard_state_path(), home.guard_state_path()).unwrap();
        let err = load_setup(&home, &config).unwrap_err();
        assert!(err.to_string().contains("another chain"), "{err}");

        // Missing guard state: refused with the explanation.
        fs::remove_file(home.guard_state_path()).unwrap();
        let err = load_setup(&home, &config).unwrap_err();
        assert!(matches!(err, HomeError::GuardStateMissing { .. }));
        assert!(err.to_string().contains("double-sign"), "{err}");

        // Force replaces everything, with new keys.
        init(
            &home,
            &InitOptions {
                force: true,
                ..InitOptions::default()
            },
        )
        .unwrap();
        let fresh = load_setup(&home, &home.load_config().unwrap()).unwrap();
        assert_ne!(fresh.signer.public_key(), setup.signer.public_key());
    }

    #[test]
    fn guard_state_in_use_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        init(&home, &InitOptions::default()).unwrap();
        let _held = FileGuardStore::open(home.guard_state_path()).unwrap();
        let err = load_setup(&home, &home.load_config().unwrap()).unwrap_err();
        assert!(err.to_string().contains("already running"), "{err}");
    }

    #[test]
    fn testnet_ports_keys_and_homes() {
        let dir = tempfile::tempdir().unwrap();
        let opts = TestnetOptions {
            validators: 3,
            out_dir: dir.path().join("net"),
            base_port: 31000,
            ..TestnetOptions::default()
        };
        let net = testnet_init(&opts).unwrap();
        let ports: Vec<u16> = net
            .nodes
            .iter()
            .flat_map(|n| [n.p2p_addr.port(), n.http_addr.port()])
            .collect();
        assert_eq!(ports, vec![31000, 31001, 31002, 31003, 31004, 31005]);
        let spec = ChainSpec::load(&net.genesis_path).unwrap();
        assert_eq!(spec.consensus.validators.len(), 3);
        for (i, node) in net.nodes.iter().enumerate() {
            let home = Home::new(&node.home);
            let setup = load_setup(&home, &home.load_config().unwrap()).unwrap();
            assert_eq!(usize::from(setup.me), i);
            assert_eq!(setup.p2p_listen, node.p2p_addr);
            assert_eq!(setup.spec, spec);
        }
        // Refused without force; with force only our entries are replaced.
        assert!(matches!(
            testnet_init(&opts),
            Err(HomeError::NotEmpty { .. })
        ));
        fs::write(opts.out_dir.join("notes.txt"), "keep me").unwrap();
        let again = testnet_init(&TestnetOptions {
            force: true,
            validators: 2,
            ..opts.clone()
        })
        .unwrap();
        assert_eq!(again.nodes.len(), 2);
        assert!(opts.out_dir.join("notes.txt").exists());
        assert!(!opts.out_dir.join("val2").exists());

        assert!(testnet_init(&TestnetOptions {
            validators: 0,
            ..opts.clone()
        })
        .is_err());
        assert!(testnet_init(&TestnetOptions {
            validators: 101,
            ..opts.clone()
        })
        .is_err());
        assert!(testnet_init(&TestnetOptions {
            base_port: 65534,
            force: true,
            ..opts.clone()
        })
        .is_err());
    }

    #[test]
    fn free_ports_are_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let net = testnet_init(&TestnetOptions {
            validators: 5,
            out_dir: dir.path().join("net"),
            ..TestnetOptions::default()
        })
        .unwrap();
        let mut ports: Vec<u16> = net
            .nodes
            .iter()
            .flat_map(|n| [n.p2p_addr.port(), n.http_addr.port()])
            .collect();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 10);
        assert!(!ports.contains(&0));
    }
}
