//! Encrypted keystore: an ed25519 seed sealed under a passphrase, for operators
//! who run a validator without an HSM.
//!
//! Construction (file format version 1):
//!
//! * key = Argon2id(passphrase, salt, m_kib, t, p) → 32 bytes. Argon2id because it
//!   is memory-hard (a GPU farm pays for memory per guess) and resists the
//!   side channels Argon2d is exposed to. The parameters live in the file so they
//!   can be raised later without breaking old files.
//! * sealed = XChaCha20-Poly1305(key, nonce, seed, aad). XChaCha's 24-byte nonce
//!   is safe to draw at random for every file (no counter to keep), and the
//!   Poly1305 tag tells a wrong passphrase from a right one.
//! * aad binds every cleartext field that decides how the key is used or
//!   derived: version, key type, purpose, public key, KDF algorithm, parameters,
//!   salt and the cipher name. Editing any of them (say, relabelling an identity
//!   key as a consensus key, or pointing the public key at another validator)
//!   makes decryption fail instead of silently producing a different story.
//!
//! After decryption the seed's public key must equal the file's `public_key`,
//! so a file cannot claim one key while holding another.
//!
//! A keystore file comes from disk and may be hostile: everything is checked
//! *before* the KDF runs. In particular the Argon2 parameters must be inside
//! [`KdfParams`]' bounds, so a crafted file cannot make us allocate terabytes or
//! spin for hours. Errors never contain the passphrase, the seed or the key, and
//! a wrong passphrase is indistinguishable from a damaged ciphertext on purpose.
//!
//! This module does no file I/O; the node reads and writes the JSON (0600,
//! atomic create) and obtains the passphrase.

use crate::keys::{getrandom_error, Keypair, PublicKey};
use crate::signer::{SignFuture, Signer};
use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The file format version this build writes and reads.
pub const KEYSTORE_VERSION: u32 = 1;
/// `backend` field of a keystore file (a plaintext key file says "plaintext").
pub const BACKEND: &str = "keystore";
/// `type` field: the only key type stored.
pub const KEY_TYPE: &str = "ed25519";
/// `kdf.alg` field.
pub const KDF_ALG: &str = "argon2id";
/// `cipher.alg` field.
pub const CIPHER_ALG: &str = "xchacha20poly1305";

/// Shortest passphrase accepted when *creating* a keystore (bytes). Reading
/// accepts any length up to [`MAX_PASSPHRASE_BYTES`], so a policy change never
/// locks an operator out of an existing file.
pub const MIN_PASSPHRASE_BYTES: usize = 12;
/// Longest passphrase accepted (bytes): bounds what a prompt, file or
/// environment variable can feed into the KDF.
pub const MAX_PASSPHRASE_BYTES: usize = 1024;
/// Salt length written by [`encrypt`] (bytes), the Argon2 recommendation.
pub const SALT_BYTES: usize = 16;
/// Shortest salt accepted in a file (bytes).
pub const MIN_SALT_BYTES: usize = 16;
/// Longest salt accepted in a file (bytes).
pub const MAX_SALT_BYTES: usize = 64;
/// XChaCha20-Poly1305 nonce length (bytes).
pub const NONCE_BYTES: usize = 24;
/// Poly1305 tag length (bytes).
pub const TAG_BYTES: usize = 16;
/// An ed25519 seed (bytes).
const SEED_BYTES: usize = 32;
/// Ciphertext length: the sealed seed plus its tag (bytes).
pub const CIPHERTEXT_BYTES: usize = SEED_BYTES + TAG_BYTES;
/// Longest `purpose` (bytes), the same limit as plaintext key files.
pub const MAX_PURPOSE_BYTES: usize = 64;

/// Prefix of the associated data, so these bytes can never be confused with
/// another protocol's AAD that happens to share a key.
const AAD_DOMAIN: &[u8] = b"bitcraps-keystore\0";

/// Argon2id cost parameters. Stored in the file; bounded in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory (KiB).
    pub m_kib: u32,
    /// Passes over the memory (iterations).
    pub t: u32,
    /// Lanes (parallelism). This build computes lanes one after another, so
    /// p > 1 only adds work; it is accepted for files made elsewhere.
    pub p: u32,
}

impl KdfParams {
    /// 8 MiB: below this an attacker's memory cost per guess is trivial.
    pub const MIN_M_KIB: u32 = 8 * 1024;
    /// 4 GiB: the most a keystore file can make us allocate.
    pub const MAX_M_KIB: u32 = 4 * 1024 * 1024;
    pub const MIN_T: u32 = 1;
    /// With MAX_M_KIB this is already minutes of work; more is an attack, not
    /// a setting.
    pub const MAX_T: u32 = 16;
    pub const MIN_P: u32 = 1;
    pub const MAX_P: u32 = 16;

    /// The cheapest parameters accepted. For tests; production files use
    /// [`KdfParams::default`].
    pub const MIN: KdfParams = KdfParams {
        m_kib: Self::MIN_M_KIB,
        t: Self::MIN_T,
        p: Self::MIN_P,
    };

    /// Refuses parameters outside the bounds. Called before every KDF run,
    /// so a hostile file is rejected without allocating or computing anything.
    pub fn check(&self) -> Result<(), KeystoreError> {
        let range = |name: &str, value: u32, min: u32, max: u32, unit: &str| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(KeystoreError::Params(format!(
                    "{name} = {value}{unit} is outside {min}..={max}{unit}"
                )))
            }
        };
        range(
            "m_kib",
            self.m_kib,
            Self::MIN_M_KIB,
            Self::MAX_M_KIB,
            " KiB",
        )?;
        range("t", self.t, Self::MIN_T, Self::MAX_T, "")?;
        range("p", self.p, Self::MIN_P, Self::MAX_P, "")?;
        Ok(())
    }
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane (RFC 9106's second recommended option, with
    /// one more pass). Measured on the 2-core build machine (load ~1.9):
    /// 0.19-0.31 s per derivation, median 0.21 s (`cargo test -p
    /// bitcraps-crypto --test keystore -- --ignored --nocapture`). A node pays
    /// it once per key at start-up; a guesser pays it per guess.
    fn default() -> Self {
        KdfParams {
            m_kib: 64 * 1024,
            t: 3,
            p: 1,
        }
    }
}

/// The `kdf` object of a keystore file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdfSection {
    /// Always [`KDF_ALG`].
    pub alg: String,
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
    /// Hex, [`MIN_SALT_BYTES`]..=[`MAX_SALT_BYTES`] bytes.
    pub salt: String,
}

impl KdfSection {
    pub fn params(&self) -> KdfParams {
        KdfParams {
            m_kib: self.m_kib,
            t: self.t,
            p: self.p,
        }
    }
}

/// The `cipher` object of a keystore file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CipherSection {
    /// Always [`CIPHER_ALG`].
    pub alg: String,
    /// Hex, [`NONCE_BYTES`] bytes.
    pub nonce: String,
    /// Hex, [`CIPHERTEXT_BYTES`] bytes: the sealed seed and its tag.
    pub ciphertext: String,
}

/// A keystore file as stored (JSON). Every field is public information: the
/// seed exists only inside `cipher.ciphertext`. Fields are public so callers
/// can show them without a passphrase; [`decrypt`] checks all of them.
///
/// ```json
/// {
///   "version": 1,
///   "type": "ed25519",
///   "backend": "keystore",
///   "purpose": "consensus",
///   "public_key": "<64 hex>",
///   "kdf": { "alg": "argon2id", "m_kib": 65536, "t": 3, "p": 1, "salt": "<32 hex>" },
///   "cipher": { "alg": "xchacha20poly1305", "nonce": "<48 hex>", "ciphertext": "<96 hex>" }
/// }
/// ```
///
/// `type` and `backend` have the same names as in plaintext key files, so one
/// reader can tell the two apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeystoreFile {
    pub version: u32,
    #[serde(rename = "type")]
    pub kind: String,
    pub backend: String,
    pub purpose: String,
    /// Hex ed25519 public key.
    pub public_key: String,
    pub kdf: KdfSection,
    pub cipher: CipherSection,
}

impl KeystoreFile {
    /// The public key the file claims, checked to be a valid ed25519 key. Not
    /// proof that the file holds its secret: only [`decrypt`] shows that.
    pub fn public_key(&self) -> Result<PublicKey, KeystoreError> {
        PublicKey::from_hex(&self.public_key)
            .map_err(|_| format_err("public_key is not a hex ed25519 public key"))
    }
}

/// Why a keystore could not be created or opened. Messages never contain the
/// passphrase, the seed or derived keys.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum KeystoreError {
    /// The tag did not verify. A wrong passphrase and an edited file look the
    /// same on purpose: telling them apart would need a second check value
    /// that helps an attacker as much as the operator.
    #[error("wrong passphrase or damaged file")]
    Decrypt,
    #[error("unsupported keystore version {0} (this build reads version {KEYSTORE_VERSION})")]
    Version(u32),
    /// A field is malformed (names the field, never its value).
    #[error("not a valid keystore file: {0}")]
    Format(String),
    #[error("key derivation parameters refused: {0}")]
    Params(String),
    #[error("passphrase {0}")]
    Passphrase(String),
    #[error("purpose must be 1..={MAX_PURPOSE_BYTES} bytes")]
    Purpose,
    #[error("key derivation failed: {0}")]
    Kdf(String),
    #[error("{0}")]
    Random(String),
}

fn format_err(reason: &str) -> KeystoreError {
    KeystoreError::Format(reason.to_owned())
}

/// Seals `keypair`'s seed under `passphrase`. Salt and nonce come from the
/// operating system's CSPRNG, so encrypting the same key twice gives unrelated
/// files. The passphrase must be [`MIN_PASSPHRASE_BYTES`]..=[`MAX_PASSPHRASE_BYTES`].
pub fn encrypt(
    keypair: &Keypair,
    purpose: &str,
    passphrase: &[u8],
    params: KdfParams,
) -> Result<KeystoreFile, KeystoreError> {
    if passphrase.len() < MIN_PASSPHRASE_BYTES {
        return Err(KeystoreError::Passphrase(format!(
            "is too short: a new keystore needs at least {MIN_PASSPHRASE_BYTES} bytes"
        )));
    }
    check_passphrase_max(passphrase)?;
    check_purpose(purpose)?;
    params.check()?;
    let mut salt = [0u8; SALT_BYTES];
    let mut nonce = [0u8; NONCE_BYTES];
    getrandom_error::fill(&mut salt).map_err(|e| KeystoreError::Random(e.to_string()))?;
    getrandom_error::fill(&mut nonce).map_err(|e| KeystoreError::Random(e.to_string()))?;

    let mut file = KeystoreFile {
        version: KEYSTORE_VERSION,
        kind: KEY_TYPE.to_owned(),
        backend: BACKEND.to_owned(),
        purpose: purpose.to_owned(),
        public_key: keypair.public().to_hex(),
        kdf: KdfSection {
            alg: KDF_ALG.to_owned(),
            m_kib: params.m_kib,
            t: params.t,
            p: params.p,
            salt: hex::encode(salt),
        },
        cipher: CipherSection {
            alg: CIPHER_ALG.to_owned(),
            nonce: hex::encode(nonce),
            ciphertext: String::new(),
        },
    };
    let aad = associated_data(&file, &keypair.public(), &salt);
    let key = derive_key(passphrase, &salt, params)?;
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    // Sealed in place in a buffer sized for seed + tag up front, so no
    // reallocation leaves a plaintext copy behind; the buffer is wiped on drop
    // although by then it only holds ciphertext.
    let mut buffer = Zeroizing::new(Vec::with_capacity(CIPHERTEXT_BYTES));
    buffer.extend_from_slice(keypair.seed().as_slice());
    cipher
        .encrypt_in_place(&XNonce::from(nonce), &aad, &mut *buffer)
        .map_err(|_| KeystoreError::Kdf("sealing the key failed".into()))?;
    file.cipher.ciphertext = hex::encode(buffer.as_slice());
    Ok(file)
}

/// Opens a keystore: checks every field and the KDF bounds (before any
/// expensive work), derives the key, authenticates and decrypts the seed, and
/// checks that the seed's public key is the file's `public_key`.
pub fn decrypt(file: &KeystoreFile, passphrase: &[u8]) -> Result<Keypair, KeystoreError> {
    if file.version != KEYSTORE_VERSION {
        return Err(KeystoreError::Version(file.version));
    }
    if file.kind != KEY_TYPE {
        return Err(format_err("type must be \"ed25519\""));
    }
    if file.backend != BACKEND {
        return Err(format_err("backend must be \"keystore\""));
    }
    check_purpose(&file.purpose)?;
    let public = file.public_key()?;
    if file.kdf.alg != KDF_ALG {
        return Err(format_err("kdf.alg must be \"argon2id\""));
    }
    let params = file.kdf.params();
    params.check()?;
    let salt = hex::decode(&file.kdf.salt).map_err(|_| format_err("kdf.salt is not hex"))?;
    if !(MIN_SALT_BYTES..=MAX_SALT_BYTES).contains(&salt.len()) {
        return Err(KeystoreError::Format(format!(
            "kdf.salt must be {MIN_SALT_BYTES}..={MAX_SALT_BYTES} bytes"
        )));
    }
    if file.cipher.alg != CIPHER_ALG {
        return Err(format_err("cipher.alg must be \"xchacha20poly1305\""));
    }
    let mut nonce = [0u8; NONCE_BYTES];
    hex::decode_to_slice(&file.cipher.nonce, &mut nonce)
        .map_err(|_| format_err("cipher.nonce must be 24 bytes of hex"))?;
    let mut buffer = Zeroizing::new(Vec::with_capacity(CIPHERTEXT_BYTES));
    buffer.resize(CIPHERTEXT_BYTES, 0);
    hex::decode_to_slice(&file.cipher.ciphertext, buffer.as_mut_slice())
        .map_err(|_| format_err("cipher.ciphertext must be 48 bytes of hex"))?;
    check_passphrase_max(passphrase)?;

    let aad = associated_data(file, &public, &salt);
    let key = derive_key(passphrase, &salt, params)?;
    let cipher = XChaCha20Poly1305::new(&(*key).into());
    cipher
        .decrypt_in_place(&XNonce::from(nonce), &aad, &mut *buffer)
        .map_err(|_| KeystoreError::Decrypt)?;
    let seed: Zeroizing<[u8; SEED_BYTES]> = Zeroizing::new(
        buffer
            .as_slice()
            .try_into()
            .map_err(|_| KeystoreError::Decrypt)?,
    );
    let keypair = Keypair::from_seed(&seed);
    // The AAD already binds public_key, so this only fails for a file sealed
    // by a buggy or malicious writer that authenticated a mismatched pair.
    if keypair.public() != public {
        return Err(KeystoreError::Decrypt);
    }
    Ok(keypair)
}

fn check_passphrase_max(passphrase: &[u8]) -> Result<(), KeystoreError> {
    if passphrase.len() > MAX_PASSPHRASE_BYTES {
        return Err(KeystoreError::Passphrase(format!(
            "is too long: at most {MAX_PASSPHRASE_BYTES} bytes"
        )));
    }
    Ok(())
}

fn check_purpose(purpose: &str) -> Result<(), KeystoreError> {
    if purpose.is_empty() || purpose.len() > MAX_PURPOSE_BYTES {
        return Err(KeystoreError::Purpose);
    }
    Ok(())
}

/// Argon2id into a zeroizing 32-byte key. `params` must already be checked.
fn derive_key(
    passphrase: &[u8],
    salt: &[u8],
    params: KdfParams,
) -> Result<Zeroizing<[u8; 32]>, KeystoreError> {
    let argon_params = argon2::Params::new(params.m_kib, params.t, params.p, Some(32))
        .map_err(|e| KeystoreError::Params(e.to_string()))?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let mut key = Zeroizing::new([0u8; 32]);
    argon
        .hash_password_into(passphrase, salt, key.as_mut_slice())
        // Argon2's errors name limits (memory, lengths), never inputs.
        .map_err(|e| KeystoreError::Kdf(e.to_string()))?;
    Ok(key)
}

/// The associated data: every cleartext field that matters, each
/// length-prefixed so no two different files encode to the same bytes.
fn associated_data(file: &KeystoreFile, public: &PublicKey, salt: &[u8]) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        // Lengths are bounded (purpose 64, salt 64, names are constants), so
        // u32 cannot truncate.
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let mut aad = Vec::with_capacity(256);
    aad.extend_from_slice(AAD_DOMAIN);
    aad.extend_from_slice(&file.version.to_le_bytes());
    field(&mut aad, file.kind.as_bytes());
    field(&mut aad, file.backend.as_bytes());
    field(&mut aad, file.purpose.as_bytes());
    field(&mut aad, public.as_bytes());
    field(&mut aad, file.kdf.alg.as_bytes());
    aad.extend_from_slice(&file.kdf.m_kib.to_le_bytes());
    aad.extend_from_slice(&file.kdf.t.to_le_bytes());
    aad.extend_from_slice(&file.kdf.p.to_le_bytes());
    field(&mut aad, salt);
    field(&mut aad, file.cipher.alg.as_bytes());
    aad
}

/// A [`Signer`] whose key was unlocked from a keystore file. Once unlocked the
/// key lives in process memory (zeroized on drop by [`Keypair`]), so signing
/// is as fast as the in-memory signer; what the keystore protects is the key
/// at rest, in backups and on a stolen disk.
pub struct KeystoreSigner {
    keypair: Keypair,
}

impl KeystoreSigner {
    /// Wraps a key pair already decrypted with [`decrypt`].
    pub fn new(keypair: Keypair) -> Self {
        KeystoreSigner { keypair }
    }

    /// Decrypts `file` with `passphrase` and holds the key.
    pub fn unlock(file: &KeystoreFile, passphrase: &[u8]) -> Result<Self, KeystoreError> {
        decrypt(file, passphrase).map(Self::new)
    }
}

impl std::fmt::Debug for KeystoreSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the public key: the secret must never reach a log line.
        f.debug_struct("KeystoreSigner")
            .field("public_key", &self.keypair.public())
            .finish_non_exhaustive()
    }
}

impl Signer for KeystoreSigner {
    fn public_key(&self) -> PublicKey {
        self.keypair.public()
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn sign<'a>(&'a self, message: &'a [u8]) -> SignFuture<'a> {
        // In memory once unlocked: never waits, never fails, so the future is
        // ready on its first poll like the in-memory signer's.
        Box::pin(std::future::ready(Ok(self.keypair.sign(message))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aad_is_unambiguous_across_field_boundaries() {
        let kp = Keypair::from_seed(&[1; 32]);
        let file = encrypt(&kp, "ab", b"correct horse battery", KdfParams::MIN).unwrap();
        let salt = hex::decode(&file.kdf.salt).unwrap();
        let base = associated_data(&file, &kp.public(), &salt);
        // Moving a byte from one string field into its neighbour must change
        // the encoding (it would not without the length prefixes).
        let mut moved = file.clone();
        moved.backend = "keystorea".into();
        moved.purpose = "b".into();
        assert_ne!(base, associated_data(&moved, &kp.public(), &salt));
    }

    #[test]
    fn params_bounds() {
        assert!(KdfParams::default().check().is_ok());
        assert!(KdfParams::MIN.check().is_ok());
        for bad in [
            KdfParams {
                m_kib: KdfParams::MIN_M_KIB - 1,
                ..KdfParams::MIN
            },
            KdfParams {
                m_kib: KdfParams::MAX_M_KIB + 1,
                ..KdfParams::MIN
            },
            KdfParams {
                t: 0,
                ..KdfParams::MIN
            },
            KdfParams {
                t: KdfParams::MAX_T + 1,
                ..KdfParams::MIN
            },
            KdfParams {
                p: 0,
                ..KdfParams::MIN
            },
            KdfParams {
                p: KdfParams::MAX_P + 1,
                ..KdfParams::MIN
            },
        ] {
            assert!(
                matches!(bad.check(), Err(KeystoreError::Params(_))),
                "{bad:?}"
            );
        }
    }
}
