//! Token-level steps shared by `generate`, `open` and session recovery: find the
//! token by label, open a session, log in, find the key pair by label, sign.
//!
//! Every function here blocks on the module. Callers run them on a blocking
//! thread (see `Pkcs11Signer::sign`).

use super::der;
use super::error::{ckr_name, describe, Pkcs11Error};
use super::module::ModuleHandle;
use super::Pkcs11Config;
use crate::keys::PublicKey;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::RawAuthPin;

/// An open, logged-in session and the handle of the signing key in it.
#[derive(Debug)]
pub(crate) struct Live {
    pub(crate) session: Session,
    pub(crate) key: ObjectHandle,
}

/// Pure EdDSA: Ed25519 as RFC 8032 defines it (no context, no pre-hash), the
/// same signatures ed25519-dalek makes and verifies.
pub(crate) fn eddsa() -> Mechanism<'static> {
    Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure))
}

fn token_error(operation: &'static str) -> impl FnOnce(CkError) -> Pkcs11Error {
    move |e| Pkcs11Error::Token {
        operation,
        reason: describe(&e),
    }
}

/// The slot whose token carries `config.token_label` (padding ignored).
pub(crate) fn find_slot(module: &ModuleHandle, config: &Pkcs11Config) -> Result<Slot, Pkcs11Error> {
    let ctx = module.ctx();
    let slots = match ctx.get_slots_with_token() {
        Err(CkError::Pkcs11(RvError::CryptokiNotInitialized, _)) => {
            // Someone finalised the module behind our back: initialise it again.
            module.reinitialize().map_err(token_error("C_Initialize"))?;
            ctx.get_slots_with_token()
        }
        other => other,
    }
    .map_err(token_error("slot listing"))?;
    let mut matches = Vec::new();
    let mut available = Vec::new();
    for slot in slots {
        // A slot whose token cannot be read (being removed, uninitialised) is
        // not ours; keep looking.
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        let label = info.label().trim_end().to_owned();
        if label == config.token_label {
            matches.push(slot);
        }
        available.push(label);
    }
    match matches.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(Pkcs11Error::TokenNotFound {
            label: config.token_label.clone(),
            module: config.module.clone(),
            available,
        }),
        several => Err(Pkcs11Error::AmbiguousToken {
            label: config.token_label.clone(),
            module: config.module.clone(),
            count: several.len(),
        }),
    }
}

/// Logs the user in. Login state is per application in PKCS#11, so "already
/// logged in" (another session of ours did it) is success.
pub(crate) fn login(session: &Session, pin: &[u8], token: &str) -> Result<(), Pkcs11Error> {
    // cryptoki wants the PIN in its own zeroize-on-drop box: this copy lives
    // until the end of this function and is wiped when dropped.
    let raw = RawAuthPin::new(Box::new(pin.to_vec()));
    match session.login_with_raw(UserType::User, &raw) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
        Err(CkError::Pkcs11(RvError::PinIncorrect | RvError::PinLenRange, _)) => {
            Err(Pkcs11Error::PinIncorrect {
                token: token.to_owned(),
            })
        }
        Err(CkError::Pkcs11(RvError::PinLocked, _)) => Err(Pkcs11Error::PinLocked {
            token: token.to_owned(),
        }),
        Err(e) => Err(Pkcs11Error::Login {
            token: token.to_owned(),
            reason: describe(&e),
        }),
    }
}

/// Opens a session on the configured token and logs in. Returns the slot too.
pub(crate) fn open_session(
    module: &ModuleHandle,
    config: &Pkcs11Config,
    pin: &[u8],
    read_write: bool,
) -> Result<(Session, Slot), Pkcs11Error> {
    let slot = find_slot(module, config)?;
    let ctx = module.ctx();
    let session = if read_write {
        ctx.open_rw_session(slot)
    } else {
        ctx.open_ro_session(slot)
    }
    .map_err(token_error("C_OpenSession"))?;
    login(&session, pin, &config.token_label)?;
    Ok((session, slot))
}

/// Handles of the objects of `class` labelled `label`.
pub(crate) fn find_by_label(
    session: &Session,
    class: Option<ObjectClass>,
    label: &str,
    id: Option<&[u8]>,
) -> Result<Vec<ObjectHandle>, Pkcs11Error> {
    let mut template = vec![Attribute::Label(label.as_bytes().to_vec())];
    if let Some(class) = class {
        template.push(Attribute::Class(class));
    }
    if let Some(id) = id {
        template.push(Attribute::Id(id.to_vec()));
    }
    session
        .find_objects(&template)
        .map_err(token_error("C_FindObjects"))
}

/// The private key labelled `config.key_label`, which must be unique.
pub(crate) fn find_private_key(
    session: &Session,
    config: &Pkcs11Config,
) -> Result<ObjectHandle, Pkcs11Error> {
    let keys = find_by_label(
        session,
        Some(ObjectClass::PRIVATE_KEY),
        &config.key_label,
        None,
    )?;
    match keys.as_slice() {
        [key] => Ok(*key),
        [] => Err(Pkcs11Error::KeyNotFound {
            token: config.token_label.clone(),
            label: config.key_label.clone(),
        }),
        several => Err(Pkcs11Error::AmbiguousKey {
            token: config.token_label.clone(),
            label: config.key_label.clone(),
            count: several.len(),
        }),
    }
}

fn bad_key(config: &Pkcs11Config, reason: impl Into<String>) -> Pkcs11Error {
    Pkcs11Error::BadKey {
        token: config.token_label.clone(),
        label: config.key_label.clone(),
        reason: reason.into(),
    }
}

/// Reads `CKA_EC_POINT` of a public key object as an Ed25519 public key, after
/// checking it is an Edwards key on Ed25519.
pub(crate) fn read_public_key(
    session: &Session,
    public: ObjectHandle,
    config: &Pkcs11Config,
) -> Result<PublicKey, Pkcs11Error> {
    let attrs = session
        .get_attributes(
            public,
            &[
                AttributeType::KeyType,
                AttributeType::EcParams,
                AttributeType::EcPoint,
            ],
        )
        .map_err(token_error("C_GetAttributeValue"))?;
    let mut point = None;
    for attr in attrs {
        match attr {
            Attribute::KeyType(kt) if kt != KeyType::EC_EDWARDS => {
                return Err(bad_key(
                    config,
                    format!("is a {kt} key, not an Ed25519 (CKK_EC_EDWARDS) key"),
                ))
            }
            Attribute::EcParams(params) if !der::is_ed25519_params(&params) => {
                return Err(bad_key(
                    config,
                    "is on an Edwards curve other than Ed25519 (CKA_EC_PARAMS)",
                ))
            }
            Attribute::EcPoint(value) => point = Some(value),
            _ => {}
        }
    }
    let point = point.ok_or_else(|| bad_key(config, "public key has no CKA_EC_POINT"))?;
    let bytes = der::decode_ec_point(&point).map_err(|reason| bad_key(config, reason))?;
    PublicKey::from_bytes(&bytes).map_err(|e| bad_key(config, format!("public key: {e}")))
}

/// The public key that belongs to `private`: the public key object with the same
/// label and, when the private key has one, the same `CKA_ID`.
pub(crate) fn find_public_key(
    session: &Session,
    private: ObjectHandle,
    config: &Pkcs11Config,
) -> Result<PublicKey, Pkcs11Error> {
    let id = session
        .get_attributes(private, &[AttributeType::Id])
        .map_err(token_error("C_GetAttributeValue"))?
        .into_iter()
        .find_map(|a| match a {
            Attribute::Id(id) if !id.is_empty() => Some(id),
            _ => None,
        });
    let publics = find_by_label(
        session,
        Some(ObjectClass::PUBLIC_KEY),
        &config.key_label,
        id.as_deref(),
    )?;
    match publics.as_slice() {
        [public] => read_public_key(session, *public, config),
        [] => Err(Pkcs11Error::PublicKeyNotFound {
            token: config.token_label.clone(),
            label: config.key_label.clone(),
        }),
        several => Err(bad_key(
            config,
            format!(
                "{} public key objects match it; labels and ids must be unique",
                several.len()
            ),
        )),
    }
}

/// One CKM_EDDSA signature: the raw bytes the token returned (the caller checks
/// length and validity against the public key it trusts).
pub(crate) fn sign_raw(live: &Live, message: &[u8]) -> Result<Vec<u8>, CkError> {
    live.session.sign(&eddsa(), live.key, message)
}

/// Name of a return code for messages.
pub(crate) fn rv_name(error: &CkError) -> String {
    match error {
        CkError::Pkcs11(rv, _) => ckr_name(*rv),
        other => other.to_string(),
    }
}
