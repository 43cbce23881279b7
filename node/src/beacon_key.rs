//! The beacon share key file: one validator's share of the dice beacon's
//! threshold key, written by `testnet init` (the dealer) next to the
//! validator's other keys.
//!
//! ```json
//! { "type": "bls12-381-threshold-share", "backend": "plaintext", "index": 2,
//!   "secret_share": "<72 hex chars: u32be index || scalar>", "warning": "..." }
//! ```
//!
//! Same rules as the ed25519 key files ([`crate::home`]): mode 0600, written
//! atomically and never overwritten, refused when others may read it, never
//! echoed in errors.

use crate::home::{read_private_file, wipe, write_new_file, HomeError, PLAINTEXT_WARNING};
use bitcraps_crypto::beacon::{round_message, BeaconPublic, SecretShare};
use serde::{Deserialize, Serialize};
use std::path::Path;

const SHARE_KIND: &str = "bls12-381-threshold-share";

#[derive(Serialize)]
struct ShareFileJson<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    backend: &'a str,
    index: u32,
    secret_share: &'a str,
    warning: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShareFileOwned {
    #[serde(rename = "type")]
    kind: String,
    backend: String,
    index: u32,
    secret_share: String,
    #[allow(dead_code)]
    warning: Option<String>,
}

fn bad(path: &Path, reason: &str) -> HomeError {
    HomeError::KeyFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Writes `share` to a new file at `path` (mode 0600, never overwriting).
pub fn write_share_file(path: &Path, share: &SecretShare) -> Result<(), HomeError> {
    let raw = share.to_bytes();
    let hex_share = hex::encode(raw.as_slice());
    drop(raw);
    let encoded = serde_json::to_vec_pretty(&ShareFileJson {
        kind: SHARE_KIND,
        backend: "plaintext",
        index: share.index(),
        secret_share: &hex_share,
        warning: PLAINTEXT_WARNING,
    });
    let mut hex_bytes = hex_share.into_bytes();
    wipe(&mut hex_bytes);
    let mut bytes = encoded.map_err(|e| bad(path, &format!("encoding: {e}")))?;
    bytes.push(b'\n');
    let result = write_new_file(path, &bytes, 0o600);
    wipe(&mut bytes);
    result
}

/// Reads a share file and checks it against the genesis beacon: the share
/// must be validator `me`'s (index `me + 1`) and its signatures must verify
/// under that index's public share key.
pub fn read_share_file(
    path: &Path,
    public: &BeaconPublic,
    me: u16,
) -> Result<SecretShare, HomeError> {
    let mut bytes = read_private_file(path)?;
    // The serde error is not shown: it can quote the file's content.
    let parsed = serde_json::from_slice::<ShareFileOwned>(&bytes)
        .map_err(|_| bad(path, "not a BitCraps beacon share file"));
    wipe(&mut bytes);
    let ShareFileOwned {
        kind,
        backend,
        index,
        secret_share,
        ..
    } = parsed?;
    let mut raw = hex::decode(&secret_share).unwrap_or_default();
    let mut secret_share = secret_share.into_bytes();
    wipe(&mut secret_share);
    let share = SecretShare::from_bytes(&raw);
    wipe(&mut raw);
    if kind != SHARE_KIND {
        return Err(bad(
            path,
            &format!("type {kind:?}, expected {SHARE_KIND:?}"),
        ));
    }
    if backend != "plaintext" {
        return Err(bad(
            path,
            &format!("backend {backend:?} is not supported (only \"plaintext\")"),
        ));
    }
    let share = share.map_err(|_| bad(path, "secret_share is not a valid share"))?;
    if share.index() != index {
        return Err(bad(path, "index does not match the secret share"));
    }
    let expected = u32::from(me) + 1;
    if index != expected {
        return Err(bad(
            path,
            &format!(
                "share {index} belongs to another validator (this one holds share {expected})"
            ),
        ));
    }
    // Signing a probe proves the secret matches genesis without exposing it.
    let probe = round_message("bitcraps/share-check", 0);
    public
        .verify_partial(&probe, &share.sign(&probe))
        .map_err(|_| {
            bad(
                path,
                "the share does not match genesis app.beacon (wrong chain?)",
            )
        })?;
    Ok(share)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcraps_crypto::beacon::deal_from_seed;

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let (public, shares) = deal_from_seed(4, 3, [7; 32]).unwrap();
        let path = dir.path().join("share.key");
        write_share_file(&path, &shares[1]).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(SHARE_KIND), "{text}");
        let back = read_share_file(&path, &public, 1).unwrap();
        assert_eq!(back.index(), 2);
        let msg = round_message("c", 9);
        assert_eq!(back.sign(&msg), shares[1].sign(&msg));
        // Never overwritten.
        assert!(write_share_file(&path, &shares[0]).is_err());
        // Another validator's share, or another chain's key: refused.
        let e = read_share_file(&path, &public, 0).unwrap_err().to_string();
        assert!(e.contains("another validator"), "{e}");
        let (other, _) = deal_from_seed(4, 3, [8; 32]).unwrap();
        let e = read_share_file(&path, &other, 1).unwrap_err().to_string();
        assert!(e.contains("does not match genesis"), "{e}");
        // Readable by others: refused.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_share_file(&path, &public, 1).is_err());
        // Garbage: refused without echoing it.
        let junk = dir.path().join("junk.key");
        write_new_file(&junk, b"{\"secret\": \"deadbeefcafe\"}", 0o600).unwrap();
        let e = read_share_file(&junk, &public, 1).unwrap_err().to_string();
        assert!(!e.contains("deadbeefcafe"), "{e}");
    }
}
