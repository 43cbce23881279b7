//! Errors of the PKCS#11 backend, and the classification of token return codes.
//!
//! No variant has a place for a PIN: the PIN is only ever handed to `C_Login`, and
//! every message is built from labels, paths, `CKR_*` names and counts.

use cryptoki::error::{Error as CkError, RvError};
use std::path::PathBuf;

/// Why a PKCS#11 token could not be opened or used. Messages name the module,
/// token and key labels and the `CKR_*` code; they never contain the PIN.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    #[error(
        "PKCS#11 module {path} does not exist: install the HSM vendor's module \
         (for SoftHSM2: apt-get install softhsm2) or fix `module` in the configuration"
    )]
    ModuleNotFound { path: PathBuf },
    #[error("PKCS#11 module {path} could not be loaded: {reason}")]
    ModuleLoad { path: PathBuf, reason: String },
    #[error("no token labelled {label:?} in {module} (tokens present: {available:?})")]
    TokenNotFound {
        label: String,
        module: PathBuf,
        available: Vec<String>,
    },
    #[error("{count} tokens are labelled {label:?} in {module}; token labels must be unique")]
    AmbiguousToken {
        label: String,
        module: PathBuf,
        count: usize,
    },
    /// The PIN could not be put into secret memory (empty, too long, or the
    /// system refused the mapping).
    #[error("PKCS#11 PIN: {0}")]
    Pin(crate::secret::SecretError),
    #[error("login to token {token:?} refused: the user PIN is incorrect")]
    PinIncorrect { token: String },
    #[error(
        "login to token {token:?} refused: the user PIN is locked after too many wrong \
         attempts; the security officer must reset it"
    )]
    PinLocked { token: String },
    #[error("login to token {token:?} failed: {reason}")]
    Login { token: String, reason: String },
    #[error("no Ed25519 private key labelled {label:?} on token {token:?}")]
    KeyNotFound { token: String, label: String },
    #[error(
        "{count} private keys are labelled {label:?} on token {token:?}; key labels must be unique"
    )]
    AmbiguousKey {
        token: String,
        label: String,
        count: usize,
    },
    #[error(
        "the private key {label:?} on token {token:?} has no matching Ed25519 public key object"
    )]
    PublicKeyNotFound { token: String, label: String },
    #[error(
        "token {token:?} already holds an object labelled {label:?}: refusing to generate a \
         second key under the same label"
    )]
    KeyExists { token: String, label: String },
    #[error("token {token:?} does not support {mechanism}")]
    MechanismUnsupported {
        token: String,
        mechanism: &'static str,
    },
    #[error("key {label:?} on token {token:?}: {reason}")]
    BadKey {
        token: String,
        label: String,
        reason: String,
    },
    #[error("PKCS#11 {operation} failed: {reason}")]
    Token {
        operation: &'static str,
        reason: String,
    },
}

impl Pkcs11Error {
    /// Whether the token may work again later without a configuration change
    /// (the device or session went away), as opposed to a wrong PIN, label or key.
    pub fn is_transient(&self) -> bool {
        match self {
            Pkcs11Error::Token { reason, .. } | Pkcs11Error::Login { reason, .. } => {
                TRANSIENT_CODES.iter().any(|code| reason.contains(code))
            }
            _ => false,
        }
    }
}

/// The `CKR_*` names [`Pkcs11Error::is_transient`] looks for.
const TRANSIENT_CODES: &[&str] = &[
    "CKR_SESSION_HANDLE_INVALID",
    "CKR_SESSION_CLOSED",
    "CKR_DEVICE_REMOVED",
    "CKR_DEVICE_ERROR",
    "CKR_TOKEN_NOT_PRESENT",
    "CKR_USER_NOT_LOGGED_IN",
    "CKR_CRYPTOKI_NOT_INITIALIZED",
    "CKR_KEY_HANDLE_INVALID",
    "CKR_OBJECT_HANDLE_INVALID",
];

/// Return codes after which the session (or the whole module state) is gone or
/// unusable, so the signer re-opens a session and logs in again.
pub(crate) fn is_session_loss(error: &CkError) -> bool {
    matches!(
        error,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceRemoved
                | RvError::DeviceError
                | RvError::TokenNotPresent
                | RvError::UserNotLoggedIn
                | RvError::CryptokiNotInitialized
                | RvError::KeyHandleInvalid
                | RvError::ObjectHandleInvalid,
            _
        )
    )
}

/// `CKR_PIN_INCORRECT` style name of a return code (cryptoki's Display is a
/// paragraph of the specification; logs want the code).
pub(crate) fn ckr_name(rv: RvError) -> String {
    if let RvError::VendorDefined(code) = rv {
        return format!("CKR_VENDOR_DEFINED({code:#x})");
    }
    let camel = format!("{rv:?}");
    let mut out = String::with_capacity(camel.len() + 8);
    out.push_str("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Short description of a cryptoki error: `C_Sign: CKR_SESSION_HANDLE_INVALID`.
pub(crate) fn describe(error: &CkError) -> String {
    match error {
        CkError::Pkcs11(rv, function) => {
            // cryptoki prints functions as `Function::Sign`.
            let name = format!("{function:?}");
            format!("C_{name}: {}", ckr_name(*rv))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;

    #[test]
    fn return_codes_print_as_ckr_names() {
        assert_eq!(ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(RvError::SessionHandleInvalid),
            "CKR_SESSION_HANDLE_INVALID"
        );
        assert_eq!(
            ckr_name(RvError::VendorDefined(0x8000_0001)),
            "CKR_VENDOR_DEFINED(0x80000001)"
        );
        assert_eq!(
            describe(&CkError::Pkcs11(RvError::DeviceRemoved, Function::Sign)),
            "C_Sign: CKR_DEVICE_REMOVED"
        );
    }

    #[test]
    fn session_loss_codes_are_recognised() {
        for rv in [
            RvError::SessionHandleInvalid,
            RvError::SessionClosed,
            RvError::DeviceRemoved,
            RvError::UserNotLoggedIn,
            RvError::CryptokiNotInitialized,
        ] {
            let e = CkError::Pkcs11(rv, Function::Sign);
            assert!(is_session_loss(&e), "{rv:?}");
            let as_error = Pkcs11Error::Token {
                operation: "sign",
                reason: describe(&e),
            };
            assert!(as_error.is_transient(), "{as_error}");
        }
        for rv in [
            RvError::PinIncorrect,
            RvError::MechanismInvalid,
            RvError::GeneralError,
        ] {
            assert!(!is_session_loss(&CkError::Pkcs11(rv, Function::Sign)));
        }
        assert!(!Pkcs11Error::PinIncorrect { token: "t".into() }.is_transient());
    }
}
