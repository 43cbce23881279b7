//! `[signer]` and `[admin]` of `config.toml`: where the consensus key lives
//! (a key file — plaintext or encrypted keystore — or a PKCS#11 token), where
//! its passphrase or PIN comes from, and the admin token for emergency calls.
//!
//! Secrets themselves never appear in the config: only the file or the
//! environment variable that holds them.

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Default environment variable for the keystore passphrase.
pub const DEFAULT_PASSPHRASE_ENV: &str = "BITCRAPS_KEYSTORE_PASSPHRASE";
/// Default environment variable for the PKCS#11 user PIN.
pub const DEFAULT_PIN_ENV: &str = "BITCRAPS_PKCS11_PIN";
/// Default label of the consensus key object in the token.
pub const DEFAULT_KEY_LABEL: &str = "bitcraps-consensus";
/// Bounds of `signer.probe_interval_ms`.
pub const MIN_PROBE_INTERVAL_MS: u64 = 100;
pub const MAX_PROBE_INTERVAL_MS: u64 = 3_600_000;

/// Which backend holds the consensus key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignerBackend {
    /// The key file at `keys.consensus`: plaintext (localnet/testnet) or an
    /// encrypted keystore (the file says which).
    File,
    /// A PKCS#11 token (HSM, YubiKey, SoftHSM2).
    Pkcs11,
}

impl SignerBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            SignerBackend::File => "file",
            SignerBackend::Pkcs11 => "pkcs11",
        }
    }
}

/// `[signer]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignerSection {
    pub backend: SignerBackend,
    /// Keystore passphrase file (mode 0600); empty: use `passphrase_env`.
    pub passphrase_file: PathBuf,
    /// Environment variable holding the keystore passphrase.
    pub passphrase_env: String,
    /// Path of the PKCS#11 module (`.so`).
    pub pkcs11_module: PathBuf,
    /// Label of the token holding the key.
    pub pkcs11_token: String,
    /// Label of the key object in the token.
    pub pkcs11_key_label: String,
    /// User PIN file (mode 0600); empty: use `pin_env`.
    pub pin_file: PathBuf,
    /// Environment variable holding the user PIN.
    pub pin_env: String,
    /// Time between test signatures that check the backend (ms).
    pub probe_interval_ms: u64,
}

impl Default for SignerSection {
    fn default() -> Self {
        SignerSection {
            backend: SignerBackend::File,
            passphrase_file: PathBuf::new(),
            passphrase_env: DEFAULT_PASSPHRASE_ENV.to_owned(),
            pkcs11_module: PathBuf::new(),
            pkcs11_token: String::new(),
            pkcs11_key_label: DEFAULT_KEY_LABEL.to_owned(),
            pin_file: PathBuf::new(),
            pin_env: DEFAULT_PIN_ENV.to_owned(),
            probe_interval_ms: crate::validator::signer_health::DEFAULT_PROBE_INTERVAL_MS,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// File (mode 0600) holding the bearer token for `/api/v1/admin/*`.
    /// Empty: the admin API is disabled.
    pub token_file: PathBuf,
}

fn invalid(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

fn env_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl SignerSection {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(MIN_PROBE_INTERVAL_MS..=MAX_PROBE_INTERVAL_MS).contains(&self.probe_interval_ms) {
            return Err(invalid(
                "signer.probe_interval_ms",
                format!("must be {MIN_PROBE_INTERVAL_MS}..={MAX_PROBE_INTERVAL_MS}"),
            ));
        }
        if !env_name_ok(&self.passphrase_env) {
            return Err(invalid(
                "signer.passphrase_env",
                "must be a variable name (letters, digits, _)",
            ));
        }
        if !env_name_ok(&self.pin_env) {
            return Err(invalid(
                "signer.pin_env",
                "must be a variable name (letters, digits, _)",
            ));
        }
        if self.backend == SignerBackend::Pkcs11 {
            if self.pkcs11_module.as_os_str().is_empty() {
                return Err(invalid(
                    "signer.pkcs11_module",
                    "required with backend = \"pkcs11\" (e.g. /usr/lib/softhsm/libsofthsm2.so)",
                ));
            }
            if self.pkcs11_token.is_empty() || self.pkcs11_token.len() > 32 {
                return Err(invalid(
                    "signer.pkcs11_token",
                    "required with backend = \"pkcs11\"; 1..=32 characters (a PKCS#11 token label)",
                ));
            }
            if self.pkcs11_key_label.is_empty() || self.pkcs11_key_label.len() > 64 {
                return Err(invalid(
                    "signer.pkcs11_key_label",
                    "must be 1..=64 characters",
                ));
            }
        }
        Ok(())
    }

    /// The documented TOML lines of this section.
    pub fn toml_lines(
        &self,
        kv: impl Fn(&str, &str) -> String,
        s: impl Fn(&str) -> String,
    ) -> Vec<String> {
        let path = |p: &PathBuf| s(&p.to_string_lossy());
        vec![
            "[signer]".into(),
            "# Where the consensus key lives: \"file\" (the key file at keys.consensus,".into(),
            "# plaintext for localnet/testnet or an encrypted keystore) or \"pkcs11\" (an HSM,"
                .into(),
            "# YubiKey or SoftHSM2 token; see docs/hsm.md).".into(),
            kv("backend", &s(self.backend.as_str())),
            "# Keystore passphrase file (mode 0600; one trailing newline is ignored).".into(),
            "# Empty: read the passphrase from passphrase_env.".into(),
            kv("passphrase_file", &path(&self.passphrase_file)),
            "# Environment variable holding the keystore passphrase.".into(),
            kv("passphrase_env", &s(&self.passphrase_env)),
            "# PKCS#11 module (.so) of the token, e.g. /usr/lib/softhsm/libsofthsm2.so.".into(),
            kv("pkcs11_module", &path(&self.pkcs11_module)),
            "# Label of the token holding the consensus key.".into(),
            kv("pkcs11_token", &s(&self.pkcs11_token)),
            "# Label of the key object in the token.".into(),
            kv("pkcs11_key_label", &s(&self.pkcs11_key_label)),
            "# Token user PIN file (mode 0600). Empty: read the PIN from pin_env.".into(),
            kv("pin_file", &path(&self.pin_file)),
            "# Environment variable holding the token user PIN.".into(),
            kv("pin_env", &s(&self.pin_env)),
            "# Time between test signatures that check the backend works (ms). While they".into(),
            "# fail the node stays up and readable but does not vote, and /readyz says why.".into(),
            kv("probe_interval_ms", &self.probe_interval_ms.to_string()),
            String::new(),
            "[admin]".into(),
            "# Bearer token file (mode 0600) for the admin API (POST /api/v1/admin/wipe).".into(),
            "# Empty: the admin API is disabled.".into(),
        ]
    }
}

impl AdminSection {
    pub fn toml_lines(
        &self,
        kv: impl Fn(&str, &str) -> String,
        s: impl Fn(&str) -> String,
    ) -> Vec<String> {
        vec![kv("token_file", &s(&self.token_file.to_string_lossy()))]
    }
}
