//! Opening the consensus key's backend from `config.toml` `[signer]`.
//!
//! * `backend = "file"`: the key file at `keys.consensus`, plaintext
//!   (localnet/testnet) or an encrypted keystore unlocked with the configured
//!   passphrase source.
//! * `backend = "pkcs11"`: the key inside a PKCS#11 token, found by token and
//!   key label, after logging in with the PIN from `pin_file` or `pin_env`.
//!   The PIN goes straight into secret memory and never into an error.
//!
//! Whatever the backend, the returned signer has already produced one valid
//! signature (the PKCS#11 backend checks at open; the file backends cannot
//! fail after decryption), and its public key is what genesis is matched on.

use crate::config::Config;
use crate::config_signer::{SignerBackend, SignerSection};
use crate::home::{read_private_file, wipe, Home, HomeError};
use crate::keystore_file::{load_signer, PassphraseSource};
use bitcraps_crypto::pkcs11::{Pkcs11Config, Pkcs11Signer};
use bitcraps_crypto::secret::SecretBuf;
use bitcraps_crypto::signer::Signer;
use std::path::PathBuf;
use std::sync::Arc;

/// Longest PIN accepted (bytes); PKCS#11 PINs are short.
pub const MAX_PIN_BYTES: usize = 256;

/// A short description of where the key lives, for messages and logs
/// (a path, or `pkcs11:TOKEN/LABEL`). Never secret.
pub fn key_location(home: &Home, config: &Config) -> PathBuf {
    match config.signer.backend {
        SignerBackend::File => home.resolve(&config.keys.consensus),
        SignerBackend::Pkcs11 => PathBuf::from(format!(
            "pkcs11:{}/{}",
            config.signer.pkcs11_token, config.signer.pkcs11_key_label
        )),
    }
}

/// Opens the configured backend.
pub fn open_consensus_signer(home: &Home, config: &Config) -> Result<Arc<dyn Signer>, HomeError> {
    match config.signer.backend {
        SignerBackend::File => {
            let passphrase = PassphraseSource::from_config(home, &config.signer);
            load_signer(&home.resolve(&config.keys.consensus), Some(&passphrase))
        }
        SignerBackend::Pkcs11 => {
            let s = &config.signer;
            let pkcs11 = Pkcs11Config {
                module: home.resolve(&s.pkcs11_module),
                token_label: s.pkcs11_token.clone(),
                key_label: s.pkcs11_key_label.clone(),
            };
            let pin = read_pin(home, s)?;
            let signer =
                Pkcs11Signer::open_with_pin(&pkcs11, pin).map_err(|e| HomeError::Invalid {
                    field: "signer".into(),
                    reason: format!(
                        "opening key {:?} in PKCS#11 token {:?} ({}): {e}",
                        pkcs11.key_label,
                        pkcs11.token_label,
                        pkcs11.module.display()
                    ),
                })?;
            Ok(Arc::new(signer))
        }
    }
}

/// The token user PIN from `pin_file` (mode 0600, one trailing newline
/// ignored) or, when that is empty, the `pin_env` variable.
pub fn read_pin(home: &Home, s: &SignerSection) -> Result<SecretBuf, HomeError> {
    let (bytes, from) = if s.pin_file.as_os_str().is_empty() {
        let value = std::env::var_os(&s.pin_env).ok_or_else(|| HomeError::Invalid {
            field: "signer.pin_env".into(),
            reason: format!(
                "environment variable {} is not set (or set signer.pin_file)",
                s.pin_env
            ),
        })?;
        // The variable stays in the environment (the operator put it there);
        // our copy lives in secret memory only.
        (
            value.into_encoded_bytes(),
            format!("environment variable {}", s.pin_env),
        )
    } else {
        let path = home.resolve(&s.pin_file);
        (
            read_private_file(&path)?,
            format!("file {}", path.display()),
        )
    };
    into_secret(bytes, 1, MAX_PIN_BYTES).map_err(|problem| HomeError::Invalid {
        field: "signer PIN".into(),
        reason: format!("the PIN from {from} {problem}"),
    })
}

/// A secret read from a file or the environment (a PIN, the admin token):
/// trailing line breaks trimmed, length checked against `min..=max` bytes,
/// then moved into secret memory. On error the bytes are wiped and the reason
/// says nothing about their content.
pub(crate) fn into_secret(mut bytes: Vec<u8>, min: usize, max: usize) -> Result<SecretBuf, String> {
    while matches!(bytes.last(), Some(b'\n' | b'\r')) {
        bytes.pop();
    }
    let problem = if bytes.is_empty() {
        Some("is empty".to_owned())
    } else if bytes.len() < min {
        Some(format!("must be at least {min} bytes"))
    } else if bytes.len() > max {
        Some(format!("is longer than {max} bytes"))
    } else {
        None
    };
    if let Some(problem) = problem {
        wipe(&mut bytes);
        return Err(problem);
    }
    SecretBuf::from_vec(bytes).map_err(|e| format!("cannot be held in secret memory: {e}"))
}
