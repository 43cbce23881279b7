//! Rotating a validator's QUIC identity key without touching consensus.
//!
//! What: a validator announces a new identity key in an [`IdentityRotation`]
//! signed with its **consensus** key (the key genesis already trusts), under
//! its own signing namespace [`Namespace::IdentityRotation`]. Peers check it
//! against genesis, keep the latest one per validator in
//! `data_dir/identity_rotations.json` ([`RotationBook`]) and from then on let
//! that validator connect with the new key (`crate::net::tls::AllowedKeys`).
//!
//! Why it is safe:
//! * **Not a vote.** The signature is made through the node's `Signer`
//!   directly, not through the signing guard, because it is not a consensus
//!   message. It cannot be turned into a double-sign: every signature covers
//!   `signing_bytes(chain, namespace, payload)`, and the rotation namespace
//!   (`p2p/identity-rotation`) differs from the notarize/nullify/finalize
//!   tags, so no vote verifier accepts it (invariant 4).
//! * **Transport identity is still not consensus identity** (invariant 7):
//!   a rotation only changes which TLS key maps to a validator index; votes
//!   are still checked against the genesis consensus key.
//! * **Replay.** Each rotation carries a `sequence`; peers accept only a
//!   sequence greater than the last one they accepted for that validator, so
//!   an old rotation (to a possibly leaked key) cannot be replayed.
//! * **Bounded transition window.** The rotating node keeps its old key until
//!   it restarts with the new one. Peers therefore accept the new key *and*
//!   the previous key, and retire the previous key as soon as a connection
//!   authenticated with the new key is established. The retirement is kept in
//!   memory only: after a peer restarts it accepts the previous key again
//!   until the rotated validator reconnects with its new key (seconds, when it
//!   runs the new key). Trade-off: if the rotated validator never restarts,
//!   its old key stays accepted; the operator finishes a rotation by
//!   restarting. A second rotation drops the oldest key for good (at most one
//!   previous key is kept).
//!
//! Distribution: the message travels on the existing QUIC connections,
//! multiplexed by its first byte [`IDENTITY_ROTATION_TAG`] (beacon shares use
//! `0xB5`, consensus messages start with the wire version `1`). Every node
//! re-broadcasts every rotation it holds each [`ROTATION_RESEND_MS`], so a peer
//! that was down learns it from anyone (rotations are self-authenticating).

use bitcraps_consensus::Genesis;
use bitcraps_crypto::domain::{signing_bytes, Namespace};
use bitcraps_crypto::signer::Signer;
use bitcraps_crypto::{PublicKey, Signature};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// First byte of an identity rotation frame.
pub const IDENTITY_ROTATION_TAG: u8 = 0xB6;
/// Largest rotation frame accepted (bytes, tag included). A real one is about
/// 32 (key) + 64 (signature) + chain id (at most 64) + a few varints.
pub const MAX_ROTATION_MESSAGE_BYTES: usize = 256;
/// How often every known rotation is re-broadcast (ms).
pub const ROTATION_RESEND_MS: u64 = 5_000;
/// The file, under the data directory, holding the accepted rotations.
pub const ROTATIONS_FILE: &str = "identity_rotations.json";
/// Largest rotations file read at start (bytes): one small entry per validator.
const MAX_ROTATIONS_FILE_BYTES: u64 = 1024 * 1024;
const FILE_VERSION: u32 = 1;

/// "Validator `validator` now uses `new_identity_key` as its QUIC identity."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityRotation {
    pub chain_id: String,
    pub validator: u16,
    pub new_identity_key: PublicKey,
    /// Strictly increasing per validator; the first rotation is 1.
    pub sequence: u64,
}

/// A rotation with the validator's consensus-key signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedRotation {
    pub rotation: IdentityRotation,
    pub signature: Signature,
}

/// Why a rotation was refused (or the book could not be read or written).
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("rotation message of {len} bytes exceeds the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("not an identity rotation message")]
    NotRotation,
    #[error("malformed rotation: {0}")]
    Malformed(String),
    #[error("rotation for chain {got:?}, expected {expected:?}")]
    WrongChain { got: String, expected: String },
    #[error("validator {0} is not in genesis")]
    UnknownValidator(u16),
    #[error("rotation signature does not verify under the validator's consensus key")]
    BadSignature,
    #[error("rotation sequence {got} is not above the accepted {have}")]
    Stale { have: u64, got: u64 },
    #[error("identity key is already used by validator {0}")]
    KeyInUse(u16),
    #[error("signing the rotation: {0}")]
    Signer(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl IdentityRotation {
    /// The exact bytes the consensus key signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        // Serializing a plain struct into a Vec cannot fail.
        let payload = postcard::to_allocvec(self).unwrap_or_default();
        signing_bytes(&self.chain_id, Namespace::IdentityRotation, &payload)
    }

    /// Signs with the consensus key, directly through the signer backend (see
    /// the module docs for why the vote guard is not involved).
    pub async fn sign(self, signer: &dyn Signer) -> Result<SignedRotation, RotationError> {
        let signature = signer
            .sign(&self.signing_bytes())
            .await
            .map_err(|e| RotationError::Signer(e.to_string()))?;
        Ok(SignedRotation {
            rotation: self,
            signature,
        })
    }
}

impl SignedRotation {
    /// The wire form: [`IDENTITY_ROTATION_TAG`] then postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![IDENTITY_ROTATION_TAG];
        out.extend(postcard::to_allocvec(self).unwrap_or_default());
        out
    }

    /// Decodes a wire frame: size checked first, no trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, RotationError> {
        if bytes.len() > MAX_ROTATION_MESSAGE_BYTES {
            return Err(RotationError::TooLarge {
                len: bytes.len(),
                max: MAX_ROTATION_MESSAGE_BYTES,
            });
        }
        let body = bytes
            .strip_prefix(&[IDENTITY_ROTATION_TAG])
            .ok_or(RotationError::NotRotation)?;
        let (signed, rest) = postcard::take_from_bytes::<SignedRotation>(body)
            .map_err(|e| RotationError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(RotationError::Malformed(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        Ok(signed)
    }

    /// Checks chain, validator and signature against genesis (not the
    /// sequence: that is the book's job).
    pub fn verify(&self, genesis: &Genesis) -> Result<(), RotationError> {
        let r = &self.rotation;
        if r.chain_id != genesis.chain_id {
            return Err(RotationError::WrongChain {
                got: r.chain_id.clone(),
                expected: genesis.chain_id.clone(),
            });
        }
        let v = genesis
            .validators
            .get(usize::from(r.validator))
            .ok_or(RotationError::UnknownValidator(r.validator))?;
        v.consensus_key
            .verify(&r.signing_bytes(), &self.signature)
            .map_err(|_| RotationError::BadSignature)
    }
}

/// One accepted rotation and the key it replaced (accepted during the
/// transition window, see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    pub rotation: SignedRotation,
    pub previous_key: PublicKey,
}

#[derive(Serialize, Deserialize)]
struct BookFile {
    version: u32,
    chain_id: String,
    rotations: Vec<Accepted>,
}

/// The latest accepted rotation per validator, persisted in the data directory.
#[derive(Debug)]
pub struct RotationBook {
    path: PathBuf,
    genesis: Genesis,
    entries: BTreeMap<u16, Accepted>,
}

impl RotationBook {
    /// Loads `data_dir/identity_rotations.json` (empty if missing). Every entry
    /// is verified again against genesis: a tampered file is an error, not a
    /// silent key change.
    pub fn load(data_dir: &Path, genesis: &Genesis) -> Result<Self, RotationError> {
        let path = data_dir.join(ROTATIONS_FILE);
        let mut book = RotationBook {
            path: path.clone(),
            genesis: genesis.clone(),
            entries: BTreeMap::new(),
        };
        let io = |source| RotationError::Io {
            path: path.clone(),
            source,
        };
        let corrupt = |reason: String| RotationError::Corrupt {
            path: path.clone(),
            reason,
        };
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(book),
            Err(e) => return Err(io(e)),
        };
        if len > MAX_ROTATIONS_FILE_BYTES {
            return Err(corrupt(format!(
                "{len} bytes exceeds the {MAX_ROTATIONS_FILE_BYTES}-byte limit"
            )));
        }
        let text = std::fs::read(&path).map_err(io)?;
        let file: BookFile = serde_json::from_slice(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.version != FILE_VERSION {
            return Err(corrupt(format!("unsupported version {}", file.version)));
        }
        if file.chain_id != genesis.chain_id {
            return Err(corrupt(format!(
                "written for chain {:?}, this is {:?}",
                file.chain_id, genesis.chain_id
            )));
        }
        for a in file.rotations {
            a.rotation
                .verify(genesis)
                .map_err(|e| corrupt(format!("stored rotation: {e}")))?;
            let v = a.rotation.rotation.validator;
            if book.entries.insert(v, a).is_some() {
                return Err(corrupt(format!("validator {v} listed twice")));
            }
        }
        Ok(book)
    }

    /// The latest accepted rotation of `validator`.
    pub fn latest(&self, validator: u16) -> Option<&Accepted> {
        self.entries.get(&validator)
    }

    /// Every accepted rotation (for re-broadcasting).
    pub fn all(&self) -> impl Iterator<Item = &Accepted> {
        self.entries.values()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The identity key `validator` uses now: its latest rotation's, or the
    /// genesis key.
    pub fn current_key(&self, validator: u16) -> Option<PublicKey> {
        match self.entries.get(&validator) {
            Some(a) => Some(a.rotation.rotation.new_identity_key),
            None => self
                .genesis
                .validators
                .get(usize::from(validator))
                .map(|v| v.identity_key),
        }
    }

    /// The next sequence number for a rotation of `validator`.
    pub fn next_sequence(&self, validator: u16) -> u64 {
        self.entries
            .get(&validator)
            .map_or(1, |a| a.rotation.rotation.sequence.saturating_add(1))
    }

    /// Verifies `signed`, checks it is newer than what we hold and that its key
    /// is nobody else's, persists it (atomically, fsynced) and returns the
    /// accepted entry. Nothing changes if any step fails.
    pub fn accept(&mut self, signed: SignedRotation) -> Result<Accepted, RotationError> {
        signed.verify(&self.genesis)?;
        let r = &signed.rotation;
        if let Some(have) = self.entries.get(&r.validator) {
            let have = have.rotation.rotation.sequence;
            if r.sequence <= have {
                return Err(RotationError::Stale {
                    have,
                    got: r.sequence,
                });
            }
        } else if r.sequence == 0 {
            return Err(RotationError::Stale {
                have: 0,
                got: r.sequence,
            });
        }
        for i in 0..self.genesis.validators.len() {
            let i = u16::try_from(i).unwrap_or(u16::MAX);
            let theirs = [
                self.current_key(i),
                self.entries.get(&i).map(|a| a.previous_key),
            ];
            if i != r.validator && theirs.contains(&Some(r.new_identity_key)) {
                return Err(RotationError::KeyInUse(i));
            }
        }
        let previous_key = self
            .current_key(r.validator)
            .ok_or(RotationError::UnknownValidator(r.validator))?;
        let accepted = Accepted {
            rotation: signed,
            previous_key,
        };
        let v = accepted.rotation.rotation.validator;
        let old = self.entries.insert(v, accepted.clone());
        if let Err(e) = self.save() {
            match old {
                Some(o) => self.entries.insert(v, o),
                None => self.entries.remove(&v),
            };
            return Err(e);
        }
        Ok(accepted)
    }

    /// Writes the book: temporary file, fsync, rename, fsync the directory.
    fn save(&self) -> Result<(), RotationError> {
        let file = BookFile {
            version: FILE_VERSION,
            chain_id: self.genesis.chain_id.clone(),
            rotations: self.entries.values().cloned().collect(),
        };
        let text = serde_json::to_vec_pretty(&file).map_err(|e| RotationError::Corrupt {
            path: self.path.clone(),
            reason: e.to_string(),
        })?;
        let io = |source| RotationError::Io {
            path: self.path.clone(),
            source,
        };
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&text).map_err(io)?;
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcraps_consensus::Validator;
    use bitcraps_crypto::signer::InMemorySigner;
    use bitcraps_crypto::Keypair;

    fn kp(i: u8) -> Keypair {
        Keypair::from_seed(&[i; 32])
    }

    fn genesis() -> Genesis {
        Genesis {
            chain_id: "rot-test".into(),
            genesis_time_ms: 0,
            validators: (0..3u8)
                .map(|i| Validator {
                    name: format!("v{i}"),
                    consensus_key: kp(i).public(),
                    identity_key: kp(100 + i).public(),
                    address: format!("127.0.0.1:{}", 7000 + u16::from(i)),
                })
                .collect(),
            params: Default::default(),
        }
    }

    async fn signed(consensus: u8, validator: u16, new_key: u8, sequence: u64) -> SignedRotation {
        let signer = InMemorySigner::new(kp(consensus));
        IdentityRotation {
            chain_id: "rot-test".into(),
            validator,
            new_identity_key: kp(new_key).public(),
            sequence,
        }
        .sign(&signer)
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn encode_decode_verify() {
        let g = genesis();
        let s = signed(1, 1, 201, 1).await;
        let bytes = s.encode();
        assert!(bytes.len() <= MAX_ROTATION_MESSAGE_BYTES);
        let back = SignedRotation::decode(&bytes).unwrap();
        assert_eq!(back, s);
        back.verify(&g).unwrap();

        // Signed by another validator's consensus key.
        let forged = signed(2, 1, 201, 1).await;
        assert!(matches!(
            forged.verify(&g),
            Err(RotationError::BadSignature)
        ));
        // A tampered key or sequence breaks the signature.
        let mut t = s.clone();
        t.rotation.sequence = 2;
        assert!(matches!(t.verify(&g), Err(RotationError::BadSignature)));
        // Another chain.
        let mut other = g.clone();
        other.chain_id = "other".into();
        assert!(matches!(
            s.verify(&other),
            Err(RotationError::WrongChain { .. })
        ));
        // Unknown validator.
        let ghost = signed(1, 9, 201, 1).await;
        assert!(matches!(
            ghost.verify(&g),
            Err(RotationError::UnknownValidator(9))
        ));
        // A vote signature cannot be a rotation signature: other namespace.
        let as_vote = signing_bytes(
            "rot-test",
            Namespace::Notarize,
            &postcard::to_allocvec(&s.rotation).unwrap(),
        );
        assert_ne!(as_vote, s.rotation.signing_bytes());
    }

    #[tokio::test]
    async fn garbage_and_oversize_are_refused() {
        let s = signed(1, 1, 201, 1).await;
        let mut bytes = s.encode();
        assert!(matches!(
            SignedRotation::decode(&[]),
            Err(RotationError::NotRotation)
        ));
        assert!(matches!(
            SignedRotation::decode(&[0xB5, 1, 2]),
            Err(RotationError::NotRotation)
        ));
        assert!(matches!(
            SignedRotation::decode(&bytes[..bytes.len() - 1]),
            Err(RotationError::Malformed(_))
        ));
        bytes.push(0);
        assert!(matches!(
            SignedRotation::decode(&bytes),
            Err(RotationError::Malformed(_))
        ));
        let mut big = vec![IDENTITY_ROTATION_TAG];
        big.resize(MAX_ROTATION_MESSAGE_BYTES + 1, 0);
        assert!(matches!(
            SignedRotation::decode(&big),
            Err(RotationError::TooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn book_accepts_newer_only_and_persists_the_latest() {
        let g = genesis();
        let dir = tempfile::tempdir().unwrap();
        let mut book = RotationBook::load(dir.path(), &g).unwrap();
        assert!(book.is_empty());
        assert_eq!(book.current_key(1), Some(kp(101).public()));
        assert!(matches!(
            book.accept(signed(1, 1, 201, 0).await),
            Err(RotationError::Stale { .. })
        ));
        let a = book.accept(signed(1, 1, 201, 1).await).unwrap();
        assert_eq!(a.previous_key, kp(101).public());
        assert_eq!(book.current_key(1), Some(kp(201).public()));
        // Replays and older sequences are refused.
        assert!(matches!(
            book.accept(signed(1, 1, 202, 1).await),
            Err(RotationError::Stale { have: 1, got: 1 })
        ));
        // Another validator's key (genesis or rotated) cannot be taken.
        assert!(matches!(
            book.accept(signed(2, 2, 100, 1).await),
            Err(RotationError::KeyInUse(0))
        ));
        assert!(matches!(
            book.accept(signed(2, 2, 201, 1).await),
            Err(RotationError::KeyInUse(1))
        ));
        // Bad signatures never reach the file.
        assert!(matches!(
            book.accept(signed(0, 1, 203, 5).await),
            Err(RotationError::BadSignature)
        ));
        let b = book.accept(signed(1, 1, 203, 3).await).unwrap();
        assert_eq!(b.previous_key, kp(201).public());
        assert_eq!(book.next_sequence(1), 4);
        assert_eq!(book.next_sequence(2), 1);

        let reloaded = RotationBook::load(dir.path(), &g).unwrap();
        assert_eq!(reloaded.latest(1), Some(&b));
        assert_eq!(reloaded.current_key(1), Some(kp(203).public()));
        assert!(reloaded.latest(2).is_none());
        assert!(!dir.path().join("identity_rotations.json.tmp").exists());

        // A stored entry that no longer verifies is an error, not a key change.
        let path = dir.path().join(ROTATIONS_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut file: serde_json::Value = serde_json::from_str(&text).unwrap();
        file["rotations"][0]["rotation"]["rotation"]["sequence"] = 9.into();
        std::fs::write(&path, file.to_string()).unwrap();
        assert!(matches!(
            RotationBook::load(dir.path(), &g),
            Err(RotationError::Corrupt { .. })
        ));
        // So is a file for another chain.
        let mut other = g.clone();
        other.chain_id = "other".into();
        std::fs::write(&path, text).unwrap();
        assert!(matches!(
            RotationBook::load(dir.path(), &other),
            Err(RotationError::Corrupt { .. })
        ));
    }
}
