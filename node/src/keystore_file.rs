//! Encrypted keystore files on disk, and where their passphrase comes from.
//!
//! The cryptography is in `bitcraps_crypto::keystore`; this module is the node
//! side: reading and writing the JSON with the same care as plaintext key files
//! (0600, created atomically, never overwritten, group/other-readable files
//! refused, size-limited), obtaining the passphrase from a [`PassphraseSource`],
//! and telling the two backends apart without a passphrase
//! ([`inspect_key_file`], for `bitcraps keys show`).
//!
//! Passphrases are held in [`Passphrase`] (a locked, zeroized-on-drop
//! `SecretBuf`) from the moment they are read. Errors name the *source* (a
//! file path, a variable name), never the passphrase. The environment copy of
//! a variable cannot be wiped by us; operators who mind should prefer a file
//! or the prompt.

use crate::config_signer::SignerSection;
use crate::home::{self, Home, HomeError, KeyFile};
use bitcraps_crypto::keystore::{self, KdfParams, KeystoreFile, KeystoreSigner};
use bitcraps_crypto::secret::SecretBuf;
use bitcraps_crypto::signer::{InMemorySigner, Signer};
use bitcraps_crypto::{Keypair, PublicKey};
use std::fmt;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The environment variable `--passphrase-env` and `[signer] passphrase_env`
/// read by default.
pub use crate::config_signer::DEFAULT_PASSPHRASE_ENV;

/// Where a keystore passphrase comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassphraseSource {
    /// A file holding the passphrase; it must not be accessible by group or
    /// others. One trailing newline (`\n` or `\r\n`) is not part of it, so
    /// `echo "..." > file` works.
    File(PathBuf),
    /// An environment variable (see [`DEFAULT_PASSPHRASE_ENV`]).
    Env(String),
    /// Ask on the terminal without echo. Only when stdin is a terminal: a
    /// service started by systemd or Kubernetes fails clearly instead of
    /// hanging on a prompt nobody sees.
    Prompt,
}

/// A passphrase in secret memory. `Debug` never shows it.
pub struct Passphrase(SecretBuf);

impl Passphrase {
    /// Moves `bytes` into secret memory (the vector is wiped). Refuses an
    /// empty passphrase: it is always a mistake (an empty file or variable).
    fn from_vec(bytes: Vec<u8>, source: &PassphraseSource) -> Result<Passphrase, HomeError> {
        if bytes.is_empty() {
            return Err(passphrase_err(source, "is empty"));
        }
        if bytes.len() > keystore::MAX_PASSPHRASE_BYTES {
            let len = bytes.len();
            // Moved in only to be wiped.
            drop(SecretBuf::from_vec(bytes));
            return Err(passphrase_err(
                source,
                &format!(
                    "is {len} bytes; at most {} are accepted",
                    keystore::MAX_PASSPHRASE_BYTES
                ),
            ));
        }
        SecretBuf::from_vec(bytes)
            .map(Passphrase)
            .map_err(|e| passphrase_err(source, &format!("cannot be held in secret memory: {e}")))
    }

    /// The passphrase bytes, for the KDF.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(redacted)")
    }
}

fn passphrase_err(source: &PassphraseSource, reason: &str) -> HomeError {
    HomeError::Invalid {
        field: format!("passphrase from {}", source.describe()),
        reason: reason.to_owned(),
    }
}

impl PassphraseSource {
    /// Where the passphrase comes from, for messages ("file /etc/x",
    /// "environment variable X", "terminal prompt"). Never the passphrase.
    pub fn describe(&self) -> String {
        match self {
            PassphraseSource::File(p) => format!("file {}", p.display()),
            PassphraseSource::Env(name) => format!("environment variable {name}"),
            PassphraseSource::Prompt => "terminal prompt".to_owned(),
        }
    }

    /// The source `[signer]` configures: `passphrase_file` (relative to the
    /// home) when set, else `passphrase_env`.
    pub fn from_config(home: &Home, signer: &SignerSection) -> PassphraseSource {
        if signer.passphrase_file.as_os_str().is_empty() {
            PassphraseSource::Env(signer.passphrase_env.clone())
        } else {
            PassphraseSource::File(home.resolve(&signer.passphrase_file))
        }
    }

    /// Reads the passphrase that unlocks `keystore` (named in the prompt).
    pub fn read(&self, keystore: &Path) -> Result<Passphrase, HomeError> {
        match self {
            PassphraseSource::File(path) => self.read_file(path),
            PassphraseSource::Env(name) => self.read_env(name),
            PassphraseSource::Prompt => {
                self.prompt(&format!("passphrase for keystore {}: ", keystore.display()))
            }
        }
    }

    /// Reads a passphrase for a *new* keystore at `keystore`: a prompt asks
    /// twice (a typo would lock the key away for good), and every source must
    /// give at least [`keystore::MIN_PASSPHRASE_BYTES`].
    pub fn read_new(&self, keystore: &Path) -> Result<Passphrase, HomeError> {
        let pass = match self {
            PassphraseSource::Prompt => {
                let first = self.prompt(&format!(
                    "new passphrase for keystore {} (at least {} bytes): ",
                    keystore.display(),
                    keystore::MIN_PASSPHRASE_BYTES
                ))?;
                check_new_length(&first, self)?;
                let again = self.prompt("repeat the passphrase: ")?;
                if !first.0.ct_eq(again.expose()) {
                    return Err(passphrase_err(self, "the two entries differ"));
                }
                first
            }
            _ => self.read(keystore)?,
        };
        check_new_length(&pass, self)?;
        Ok(pass)
    }

    fn read_file(&self, path: &Path) -> Result<Passphrase, HomeError> {
        let mut bytes = home::read_private_file(path).map_err(|e| match e {
            // read_private_file speaks of key files; say what this file is.
            HomeError::KeyPermissions { mode, .. } => passphrase_err(
                self,
                &format!(
                    "the file is accessible by group or others (mode {mode:03o}); \
                     a passphrase file must be private: run `chmod 600 {}`",
                    path.display()
                ),
            ),
            HomeError::KeyMissing { .. } => passphrase_err(self, "the file does not exist"),
            HomeError::KeyFile { reason, .. } => passphrase_err(self, &reason),
            other => other,
        })?;
        if bytes.ends_with(b"\n") {
            bytes.pop();
            if bytes.ends_with(b"\r") {
                bytes.pop();
            }
        }
        Passphrase::from_vec(bytes, self)
    }

    fn read_env(&self, name: &str) -> Result<Passphrase, HomeError> {
        match std::env::var_os(name) {
            Some(value) => Passphrase::from_vec(value.into_encoded_bytes(), self),
            None => Err(passphrase_err(self, "is not set")),
        }
    }

    fn prompt(&self, prompt: &str) -> Result<Passphrase, HomeError> {
        if !std::io::stdin().is_terminal() {
            return Err(passphrase_err(
                self,
                "is not possible: stdin is not a terminal; give the passphrase in a file \
                 (--passphrase-file) or an environment variable (--passphrase-env)",
            ));
        }
        let entered = rpassword::prompt_password(prompt)
            .map_err(|e| passphrase_err(self, &format!("could not be read: {e}")))?;
        Passphrase::from_vec(entered.into_bytes(), self)
    }
}

fn check_new_length(pass: &Passphrase, source: &PassphraseSource) -> Result<(), HomeError> {
    if pass.expose().len() < keystore::MIN_PASSPHRASE_BYTES {
        return Err(passphrase_err(
            source,
            &format!(
                "is too short: a new keystore needs at least {} bytes",
                keystore::MIN_PASSPHRASE_BYTES
            ),
        ));
    }
    Ok(())
}

fn key_err(path: &Path, reason: impl Into<String>) -> HomeError {
    HomeError::KeyFile {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Encrypts `key` under a passphrase from `source` and writes a new keystore
/// file at `path` (0600, atomic, never overwriting). Returns the file written.
pub fn create_keystore_file(
    path: &Path,
    key: &Keypair,
    purpose: &str,
    source: &PassphraseSource,
    params: KdfParams,
) -> Result<KeystoreFile, HomeError> {
    // Checked before asking for a passphrase, so nobody types one twice for
    // nothing.
    if path.exists() {
        return Err(HomeError::KeyExists {
            path: path.to_owned(),
        });
    }
    params.check().map_err(|e| HomeError::Invalid {
        field: "kdf".into(),
        reason: e.to_string(),
    })?;
    let pass = source.read_new(path)?;
    let file = keystore::encrypt(key, purpose, pass.expose(), params)
        .map_err(|e| key_err(path, e.to_string()))?;
    drop(pass);
    write_keystore_file(path, &file)?;
    Ok(file)
}

/// Writes `file` to a new file at `path`: mode 0600, created atomically,
/// never overwriting; missing parent directories are created 0700.
pub fn write_keystore_file(path: &Path, file: &KeystoreFile) -> Result<(), HomeError> {
    if path.exists() {
        return Err(HomeError::KeyExists {
            path: path.to_owned(),
        });
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            builder.create(parent).map_err(|source| HomeError::Io {
                operation: "creating directory",
                path: parent.to_owned(),
                source,
            })?;
        }
    }
    let mut bytes =
        serde_json::to_vec_pretty(file).map_err(|e| key_err(path, format!("encoding: {e}")))?;
    bytes.push(b'\n');
    match home::write_new_file(path, &bytes, 0o600) {
        Err(HomeError::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(HomeError::KeyExists {
                path: path.to_owned(),
            })
        }
        other => other,
    }
}

/// Reads a keystore file (private, at most `MAX_KEY_FILE_BYTES`). Does not
/// decrypt it.
pub fn read_keystore_file(path: &Path) -> Result<KeystoreFile, HomeError> {
    let mut bytes = home::read_private_file(path)?;
    let parsed = parse_keystore(path, &bytes);
    home::wipe(&mut bytes);
    parsed
}

/// Parses keystore JSON. The serde message is not shown: for a file that is
/// not a keystore it could quote content (a plaintext seed, say).
pub(crate) fn parse_keystore(path: &Path, bytes: &[u8]) -> Result<KeystoreFile, HomeError> {
    serde_json::from_slice::<KeystoreFile>(bytes).map_err(|e| {
        key_err(
            path,
            format!(
                "not a valid keystore file (JSON error at line {}, column {}; expected version, \
                 type, backend, purpose, public_key, kdf and cipher)",
                e.line(),
                e.column()
            ),
        )
    })
}

/// The `backend` field of a key file's JSON, if it has one. Reads nothing
/// else, so no secret is copied.
pub(crate) fn backend_of(bytes: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Header {
        backend: Option<String>,
    }
    serde_json::from_slice::<Header>(bytes).ok()?.backend
}

/// Decrypts an already parsed keystore with a passphrase from `source`.
pub(crate) fn unlock(
    path: &Path,
    file: &KeystoreFile,
    source: &PassphraseSource,
) -> Result<KeyFile, HomeError> {
    // Check the cheap things before asking anyone to type a passphrase.
    file.public_key()
        .map_err(|e| key_err(path, e.to_string()))?;
    let pass = source.read(path)?;
    let keypair = keystore::decrypt(file, pass.expose()).map_err(|e| match e {
        keystore::KeystoreError::Decrypt => {
            key_err(path, format!("{e} (passphrase from {})", source.describe()))
        }
        other => key_err(path, other.to_string()),
    })?;
    Ok(KeyFile {
        keypair,
        purpose: file.purpose.clone(),
    })
}

/// Reads and decrypts a keystore file.
pub fn unlock_keystore_file(path: &Path, source: &PassphraseSource) -> Result<KeyFile, HomeError> {
    let file = read_keystore_file(path)?;
    unlock(path, &file, source)
}

/// What `keys show` prints about a key file. Needs no passphrase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileInfo {
    /// "plaintext" or "keystore".
    pub backend: String,
    pub purpose: String,
    pub public_key: PublicKey,
    /// True when the public key was checked against the secret (plaintext
    /// files); a keystore's public key is proven only when it is unlocked.
    pub verified: bool,
}

/// Describes a key file of either backend without decrypting anything.
pub fn inspect_key_file(path: &Path) -> Result<KeyFileInfo, HomeError> {
    let mut bytes = home::read_private_file(path)?;
    let backend = backend_of(&bytes);
    let parsed =
        (backend.as_deref() == Some(keystore::BACKEND)).then(|| parse_keystore(path, &bytes));
    home::wipe(&mut bytes);
    match parsed {
        Some(file) => {
            let file = file?;
            let public_key = file
                .public_key()
                .map_err(|e| key_err(path, e.to_string()))?;
            Ok(KeyFileInfo {
                backend: keystore::BACKEND.to_owned(),
                purpose: file.purpose,
                public_key,
                verified: false,
            })
        }
        // Plaintext (or something unknown, which load_key_file explains).
        None => {
            let key = home::load_key_file(path)?;
            Ok(KeyFileInfo {
                backend: "plaintext".to_owned(),
                purpose: key.purpose,
                public_key: key.keypair.public(),
                verified: true,
            })
        }
    }
}

// ---------------------------------------------------------------------------
// Keystore homes of `testnet init --signer keystore`

/// Where a home made by `testnet init --signer keystore` keeps the passphrase
/// of its consensus keystore (relative to the home; `[signer]
/// passphrase_file`). The keystore itself is at `keys.consensus` as usual.
pub const TESTNET_PASSPHRASE_FILE: &str = "keys/consensus.passphrase";

/// Argon2id parameters of the keystores `testnet init --signer keystore` (and
/// so `localnet --signer keystore`) writes: the production defaults
/// ([`KdfParams::default`], 64 MiB, 3 passes; a unit test keeps the two
/// equal), the same as `keys generate --backend keystore`, so a keystore
/// localnet unlocks its keys exactly the way a production node does.
///
/// Not reduced, because the cost is small enough: measured on the shared
/// 2-core build machine, about 0.11 s per derivation, paid once per validator
/// by `testnet init` (sequentially: 0.8 s for 4 validators, 3.9 s for 20) and
/// once by each validator at start-up (concurrently, 64 MiB each, freed after
/// the unlock). A 4-validator `localnet --signer keystore` is ready about
/// 1.5 s later than `--signer memory`, a 12-validator one about 4 s later.
/// (The passphrase is 128 random bits, so a cheaper KDF would not weaken
/// these keystores either; the defaults are kept for fidelity, not strength.)
pub const TESTNET_KDF: KdfParams = KdfParams {
    m_kib: 64 * 1024,
    t: 3,
    p: 1,
};

/// Random bytes in a generated passphrase (hex-encoded: 32 characters).
pub const RANDOM_PASSPHRASE_BYTES: usize = 16;

impl Passphrase {
    /// A fresh passphrase: [`RANDOM_PASSPHRASE_BYTES`] bytes of the operating
    /// system's CSPRNG, hex-encoded straight into secret memory.
    pub fn random() -> Result<Passphrase, HomeError> {
        // The node crate has no direct getrandom dependency: the seed of a
        // freshly generated key pair is 32 bytes of OS randomness
        // (`Keypair::generate`, the same source as every key here), of which
        // the first RANDOM_PASSPHRASE_BYTES are used. The key pair is dropped
        // (and wiped) at the end of this function.
        let keypair = Keypair::generate().map_err(|e| HomeError::Random(e.to_string()))?;
        let seed = keypair.seed();
        let mut buf = SecretBuf::new(2 * RANDOM_PASSPHRASE_BYTES).map_err(secret_memory_err)?;
        hex::encode_to_slice(&seed[..RANDOM_PASSPHRASE_BYTES], buf.expose_mut()).map_err(|e| {
            HomeError::Invalid {
                field: "generated passphrase".into(),
                reason: format!("hex encoding: {e}"),
            }
        })?;
        Ok(Passphrase(buf))
    }

    /// Writes the passphrase and one newline to a new file at `path` (mode
    /// 0600, created atomically, never overwriting), the format
    /// [`PassphraseSource::File`] reads. The line is assembled in secret
    /// memory, so no ordinary copy of the passphrase is left behind.
    pub fn write_new_file(&self, path: &Path) -> Result<(), HomeError> {
        let len = self.expose().len();
        let mut line = SecretBuf::new(len + 1).map_err(secret_memory_err)?;
        line.expose_mut()[..len].copy_from_slice(self.expose());
        line.expose_mut()[len] = b'\n';
        home::write_new_file(path, line.expose(), 0o600)
    }
}

fn secret_memory_err(e: bitcraps_crypto::secret::SecretError) -> HomeError {
    HomeError::Invalid {
        field: "generated passphrase".into(),
        reason: format!("cannot be held in secret memory: {e}"),
    }
}

/// Writes a testnet home's consensus key as an encrypted keystore at
/// `keystore`, sealed under a fresh random passphrase ([`Passphrase::random`])
/// that goes into a new 0600 file at `passphrase_file`; both files are
/// created atomically and never overwrite anything. `keys/` must exist.
///
/// For `testnet init --signer keystore` only: the passphrase lies next to the
/// keystore, so this shows the keystore path works end to end (the node
/// unlocks the key at start-up exactly as in production) but protects nothing
/// against someone who can read the home. Production operators keep the
/// passphrase elsewhere (docs/hsm.md).
pub fn write_testnet_keystore(
    keystore: &Path,
    passphrase_file: &Path,
    key: &Keypair,
    params: KdfParams,
) -> Result<(), HomeError> {
    params.check().map_err(|e| HomeError::Invalid {
        field: "kdf".into(),
        reason: e.to_string(),
    })?;
    // Checked before the KDF runs; the writers check again, atomically.
    if let Some(path) = [keystore, passphrase_file].into_iter().find(|p| p.exists()) {
        return Err(HomeError::KeyExists {
            path: path.to_owned(),
        });
    }
    let pass = Passphrase::random()?;
    let file = keystore::encrypt(key, "consensus", pass.expose(), params)
        .map_err(|e| key_err(keystore, e.to_string()))?;
    write_keystore_file(keystore, &file)?;
    pass.write_new_file(passphrase_file)
}

/// Loads a key file of either backend as a [`Signer`]: an
/// [`InMemorySigner`] for a plaintext file, a [`KeystoreSigner`] (backend
/// "keystore" in `/status`) for a keystore unlocked with `passphrase`.
pub fn load_signer(
    path: &Path,
    passphrase: Option<&PassphraseSource>,
) -> Result<Arc<dyn Signer>, HomeError> {
    let mut bytes = home::read_private_file(path)?;
    let backend = backend_of(&bytes);
    home::wipe(&mut bytes);
    let key = home::load_key_file_with(path, passphrase)?;
    Ok(if backend.as_deref() == Some(keystore::BACKEND) {
        Arc::new(KeystoreSigner::new(key.keypair))
    } else {
        Arc::new(InMemorySigner::new(key.keypair))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const PASS: &str = "a long enough passphrase";

    fn write_private(path: &Path, content: &[u8]) {
        use std::io::Write as _;
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options.open(path).unwrap().write_all(content).unwrap();
    }

    /// A unique name per call: several files per test directory.
    fn unique(dir: &Path) -> PathBuf {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        dir.join(format!(
            "pass{}",
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ))
    }

    fn pass_file(dir: &Path, content: &str) -> PassphraseSource {
        let path = unique(dir);
        write_private(&path, content.as_bytes());
        PassphraseSource::File(path)
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn passphrase_file_strips_exactly_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("k");
        let read = |content: &str| {
            let p = unique(dir.path());
            write_private(&p, content.as_bytes());
            PassphraseSource::File(p)
                .read(&k)
                .map(|p| p.expose().to_vec())
        };
        assert_eq!(read("secret\n").unwrap(), b"secret");
        assert_eq!(read("secret\r\n").unwrap(), b"secret");
        assert_eq!(read("secret\n\n").unwrap(), b"secret\n");
        assert_eq!(read(" secret ").unwrap(), b" secret ");
        let err = read("\n").unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn loose_or_missing_passphrase_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let source = pass_file(dir.path(), PASS);
        let PassphraseSource::File(path) = &source else {
            unreachable!()
        };
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = source.read(Path::new("k")).unwrap_err();
        let shown = err.to_string();
        assert!(shown.contains("chmod 600"), "{shown}");
        assert!(shown.contains("passphrase file"), "{shown}");
        assert!(!shown.contains(PASS), "{shown}");
        let missing = PassphraseSource::File(dir.path().join("absent"));
        let err = missing.read(Path::new("k")).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
    }

    #[test]
    fn env_source_reads_the_variable_and_names_it_when_missing() {
        let name = "BITCRAPS_TEST_KEYSTORE_PASSPHRASE_ENV_SOURCE";
        let source = PassphraseSource::Env(name.to_owned());
        std::env::remove_var(name);
        let err = source.read(Path::new("k")).unwrap_err();
        assert!(err.to_string().contains(name), "{err}");
        assert!(err.to_string().contains("is not set"), "{err}");
        std::env::set_var(name, PASS);
        assert_eq!(
            source.read(Path::new("k")).unwrap().expose(),
            PASS.as_bytes()
        );
        std::env::set_var(name, "short");
        let err = source.read_new(Path::new("k")).unwrap_err();
        assert!(err.to_string().contains("at least 12 bytes"), "{err}");
        assert!(!err.to_string().contains("short\""), "{err}");
        std::env::remove_var(name);
        assert_eq!(
            format!(
                "{:?}",
                Passphrase::from_vec(b"x".to_vec(), &source).unwrap()
            ),
            "Passphrase(redacted)"
        );
    }

    #[test]
    fn source_from_config() {
        let home = Home::new("/srv/val0");
        let mut signer = SignerSection::default();
        assert_eq!(
            PassphraseSource::from_config(&home, &signer),
            PassphraseSource::Env(DEFAULT_PASSPHRASE_ENV.into())
        );
        signer.passphrase_file = "keys/pass".into();
        assert_eq!(
            PassphraseSource::from_config(&home, &signer),
            PassphraseSource::File("/srv/val0/keys/pass".into())
        );
        signer.passphrase_file = "/etc/bitcraps/pass".into();
        assert_eq!(
            PassphraseSource::from_config(&home, &signer),
            PassphraseSource::File("/etc/bitcraps/pass".into())
        );
    }

    #[test]
    fn too_long_passphrases_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(keystore::MAX_PASSPHRASE_BYTES + 1);
        let err = pass_file(dir.path(), &long)
            .read(Path::new("k"))
            .unwrap_err();
        assert!(err.to_string().contains("at most 1024"), "{err}");
    }

    #[test]
    fn keystore_file_round_trip_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let source = pass_file(dir.path(), &format!("{PASS}\n"));
        let path = dir.path().join("new/keys/consensus.key");
        let key = Keypair::from_seed(&[21; 32]);
        let written =
            create_keystore_file(&path, &key, "consensus", &source, KdfParams::MIN).unwrap();
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
        assert_eq!(read_keystore_file(&path).unwrap(), written);
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&hex::encode([21u8; 32])));
        assert!(!text.contains(PASS));

        let loaded = unlock_keystore_file(&path, &source).unwrap();
        assert_eq!(loaded.keypair.public(), key.public());
        assert_eq!(loaded.purpose, "consensus");

        // home::load_key_file understands both backends.
        let via_home = home::load_key_file_with(&path, Some(&source)).unwrap();
        assert_eq!(via_home.keypair.public(), key.public());
        let err = home::load_key_file(&path).unwrap_err();
        assert!(
            err.to_string().contains("encrypted keystore")
                && err.to_string().contains("passphrase"),
            "{err}"
        );

        // Never overwritten, by either writer; no temp files left.
        let other = Keypair::from_seed(&[22; 32]);
        assert!(matches!(
            create_keystore_file(&path, &other, "consensus", &source, KdfParams::MIN),
            Err(HomeError::KeyExists { .. })
        ));
        assert!(matches!(
            write_keystore_file(&path, &written),
            Err(HomeError::KeyExists { .. })
        ));
        assert!(matches!(
            home::write_key_file(&path, &other, "consensus"),
            Err(HomeError::KeyExists { .. })
        ));
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
        assert_eq!(read_keystore_file(&path).unwrap(), written);
    }

    #[test]
    fn wrong_passphrase_names_the_source_never_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let good = pass_file(dir.path(), PASS);
        let bad = pass_file(dir.path(), "another long passphrase!");
        let path = dir.path().join("k.key");
        create_keystore_file(
            &path,
            &Keypair::from_seed(&[23; 32]),
            "identity",
            &good,
            KdfParams::MIN,
        )
        .unwrap();
        let err = home::load_key_file_with(&path, Some(&bad)).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains("wrong passphrase or damaged file"),
            "{shown}"
        );
        assert!(shown.contains(&bad.describe()), "{shown}");
        assert!(!shown.contains("another long passphrase"), "{shown}");
        assert!(!shown.contains(&hex::encode([23u8; 32])), "{shown}");
    }

    #[test]
    fn new_passphrases_must_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let short = pass_file(dir.path(), "elevenbytes");
        let path = dir.path().join("k.key");
        let err = create_keystore_file(
            &path,
            &Keypair::from_seed(&[1; 32]),
            "consensus",
            &short,
            KdfParams::MIN,
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least 12 bytes"), "{err}");
        assert!(!err.to_string().contains("elevenbytes"), "{err}");
        assert!(!path.exists());
        // Out-of-bounds KDF parameters are refused before anything is read.
        let err = create_keystore_file(
            &path,
            &Keypair::from_seed(&[1; 32]),
            "consensus",
            &PassphraseSource::Env("BITCRAPS_TEST_UNSET_VARIABLE".into()),
            KdfParams {
                m_kib: 1024,
                t: 1,
                p: 1,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("m_kib"), "{err}");
    }

    #[test]
    fn inspect_and_load_signer_for_both_backends() {
        let dir = tempfile::tempdir().unwrap();
        let source = pass_file(dir.path(), PASS);
        let plain = dir.path().join("plain.key");
        let sealed = dir.path().join("sealed.key");
        let a = Keypair::from_seed(&[31; 32]);
        let b = Keypair::from_seed(&[32; 32]);
        home::write_key_file(&plain, &a, "identity").unwrap();
        create_keystore_file(&sealed, &b, "consensus", &source, KdfParams::MIN).unwrap();

        let info = inspect_key_file(&plain).unwrap();
        assert_eq!(
            info,
            KeyFileInfo {
                backend: "plaintext".into(),
                purpose: "identity".into(),
                public_key: a.public(),
                verified: true
            }
        );
        let info = inspect_key_file(&sealed).unwrap();
        assert_eq!(
            info,
            KeyFileInfo {
                backend: "keystore".into(),
                purpose: "consensus".into(),
                public_key: b.public(),
                verified: false
            }
        );

        let signer = load_signer(&plain, None).unwrap();
        assert_eq!(
            (signer.backend(), signer.public_key()),
            ("memory", a.public())
        );
        let signer = load_signer(&sealed, Some(&source)).unwrap();
        assert_eq!(
            (signer.backend(), signer.public_key()),
            ("keystore", b.public())
        );
        let sig = bitcraps_crypto::signer::block_on_ready(signer.sign(b"m"))
            .unwrap()
            .unwrap();
        assert!(b.public().verify(b"m", &sig).is_ok());
        assert!(load_signer(&sealed, None).is_err());
    }

    #[test]
    fn random_passphrases_are_fresh_hex_and_written_privately() {
        let dir = tempfile::tempdir().unwrap();
        let a = Passphrase::random().unwrap();
        let b = Passphrase::random().unwrap();
        assert_eq!(a.expose().len(), 2 * RANDOM_PASSPHRASE_BYTES);
        assert!(a.expose().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "Passphrase(redacted)");

        let path = dir.path().join("pass");
        a.write_new_file(&path).unwrap();
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        let mut expected = a.expose().to_vec();
        expected.push(b'\n');
        assert_eq!(fs::read(&path).unwrap(), expected);
        let back = PassphraseSource::File(path.clone())
            .read_new(Path::new("k"))
            .unwrap();
        assert!(back.0.ct_eq(a.expose()));
        // Never overwritten.
        assert!(b.write_new_file(&path).is_err());
        assert_eq!(fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn testnet_keystore_opens_with_its_passphrase_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let keystore = dir.path().join("keys/consensus.key");
        let pass_path = dir.path().join("keys/consensus.passphrase");
        let key = Keypair::from_seed(&[41; 32]);
        // Out-of-bounds parameters: refused before anything is written.
        let cheap = KdfParams {
            m_kib: 1024,
            ..KdfParams::MIN
        };
        let err = write_testnet_keystore(&keystore, &pass_path, &key, cheap).unwrap_err();
        assert!(err.to_string().contains("m_kib"), "{err}");
        assert!(!dir.path().join("keys").exists());

        write_testnet_keystore(&keystore, &pass_path, &key, KdfParams::MIN).unwrap();
        #[cfg(unix)]
        {
            assert_eq!(mode(&keystore), 0o600);
            assert_eq!(mode(&pass_path), 0o600);
        }
        let info = inspect_key_file(&keystore).unwrap();
        assert_eq!(
            (
                info.backend.as_str(),
                info.purpose.as_str(),
                info.public_key
            ),
            ("keystore", "consensus", key.public())
        );
        let source = PassphraseSource::File(pass_path.clone());
        let opened = unlock_keystore_file(&keystore, &source).unwrap();
        assert_eq!(opened.keypair.public(), key.public());
        let text = fs::read_to_string(&keystore).unwrap();
        let pass = fs::read_to_string(&pass_path).unwrap();
        assert!(!text.contains(pass.trim_end()));
        assert!(!text.contains(&hex::encode([41u8; 32])));
        // Another passphrase does not open it; nothing is overwritten.
        let other = pass_file(dir.path(), "a different passphrase");
        assert!(unlock_keystore_file(&keystore, &other).is_err());
        assert!(matches!(
            write_testnet_keystore(&keystore, &pass_path, &key, KdfParams::MIN),
            Err(HomeError::KeyExists { .. })
        ));
        assert_eq!(fs::read_to_string(&pass_path).unwrap(), pass);
    }

    #[test]
    fn testnet_kdf_is_the_production_default() {
        // If the default changes, re-measure the start-up cost of a keystore
        // localnet before following it (see TESTNET_KDF).
        assert_eq!(TESTNET_KDF, KdfParams::default());
        assert!(TESTNET_KDF.check().is_ok());
    }

    #[test]
    fn prompt_without_a_terminal_fails_clearly() {
        if std::io::stdin().is_terminal() {
            return; // A developer's terminal would actually prompt.
        }
        let err = PassphraseSource::Prompt.read(Path::new("k")).unwrap_err();
        assert!(err.to_string().contains("not a terminal"), "{err}");
        assert!(err.to_string().contains("--passphrase-file"), "{err}");
    }

    #[test]
    fn damaged_keystore_json_is_refused_without_echo() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let secret = hex::encode([7u8; 32]);
        write_private(
            &path,
            format!(r#"{{"backend":"keystore","version":"{secret}"}}"#).as_bytes(),
        );
        let err = read_keystore_file(&path).unwrap_err();
        assert!(err.to_string().contains("not a valid keystore"), "{err}");
        assert!(!err.to_string().contains(&secret), "{err}");
        let err = home::load_key_file(&path).unwrap_err();
        assert!(!err.to_string().contains(&secret), "{err}");
    }
}
