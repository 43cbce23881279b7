//! bitcraps-crypto: the cryptographic vocabulary shared by every BitCraps crate.
//!
//! * [`hash`]: 32-byte blake3 digests ([`Hash32`]) used for block ids, payload
//!   commitments and transaction ids.
//! * [`keys`]: ed25519 public keys, signatures and key pairs (ed25519-dalek);
//!   [`keycache`] remembers decoded keys (bounded).
//! * [`verify`]: the one signature acceptance rule (cofactored, ZIP-215), and
//!   [`batch`]: batch verification under the same rule, with a fallback that
//!   isolates bad signatures.
//! * [`domain`]: mandatory signing namespaces. Every signed byte string starts with
//!   the chain id and a message-kind tag, so a signature made for one purpose can
//!   never be replayed as another (a vote as a transaction, testnet as mainnet).
//! * [`vote`]: the three consensus statements a validator signs. They live here, not
//!   in the consensus crate, because the signing guard must understand them.
//! * [`signer`]: the async, fallible [`Signer`](signer::Signer) trait behind which
//!   key material lives (in memory for tests, keystore or PKCS#11 in production).
//! * [`guard`]: the signing guard that sits in front of every signer and refuses,
//!   durably, anything that could be a double sign.
//! * [`keystore`]: an ed25519 seed sealed under a passphrase (Argon2id +
//!   XChaCha20-Poly1305) and the [`KeystoreSigner`](keystore::KeystoreSigner).
//! * [`secret`]: [`SecretBuf`](secret::SecretBuf), locked, guard-paged,
//!   zeroized-on-drop memory for keys, PINs, passphrases and tokens; the only
//!   module with `unsafe` code.
//!
//! Nothing in this crate reads a clock or OS randomness except key generation from
//! the operating system ([`keys::Keypair::generate`]).
// Not `forbid`: the secret-memory raw calls (`secret::sys`, audited in
// UNSAFE_AUDIT.md) are the one place in the workspace allowed to use unsafe.
#![deny(unsafe_code)]

pub mod batch;
pub mod beacon;
pub mod domain;
pub mod fastmap;
pub mod guard;
pub mod hash;
pub mod keycache;
pub mod keys;
pub mod keystore;
pub mod pkcs11;
pub mod secret;
pub mod signer;
pub mod verify;
pub mod vote;

pub use domain::Namespace;
pub use hash::{hash, Hash32};
pub use keys::{Keypair, PublicKey, Signature};
