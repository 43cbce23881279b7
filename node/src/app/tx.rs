//! Signed transactions: what a player submits and a block carries.
//!
//! # Wire format (version 1)
//!
//! ```text
//! SignedTx bytes = 0x01 || postcard(SignedTx)
//! postcard(SignedTx) = from (32 raw bytes) || nonce (varint)
//!                   || action variant (varint) || action fields (postcard)
//!                   || signature (varint 64 || 64 raw bytes)
//! ```
//!
//! Action variants: 0 transfer, 1 open table, 2 close table, 3 place bet,
//! 4 remove bet, 5 withdraw (see [`Action`]). A transfer is 132 to 151 bytes;
//! every game action is smaller than that. Keys and signatures serialize as raw bytes
//! in binary formats (postcard) and as hex strings in JSON, so the same types
//! serve the wire and the HTTP API.
//!
//! The encoding is canonical: [`SignedTx::decode`] accepts a byte string only if
//! encoding the decoded value gives back exactly those bytes. That makes the
//! transaction hash ([`tx_hash`] of the encoding) a function of the transaction,
//! so a relayer cannot change a transaction's id (for example with an overlong
//! varint) and confuse receipts, the mempool or the verified-signature cache.
//!
//! # What is signed
//!
//! `domain::signing_bytes(chain_id, Namespace::Transaction, 0x01 || postcard(Transaction))`:
//! the chain id and the transaction namespace are bound into every signature
//! (ARCHITECTURE.md, invariant 4), and so is the format version, so a future
//! format can never reinterpret an old signature.

use super::craps::{BetKind, TableParams};
use bitcraps_crypto::domain::{signing_bytes, Namespace};
use bitcraps_crypto::{hash::hash_parts, Hash32, Keypair, PublicKey, Signature};
use serde::{Deserialize, Serialize};

/// Largest encoded [`SignedTx`] (bytes). Checked before decoding, so an
/// oversized input costs nothing but a length comparison.
pub const MAX_TX_BYTES: usize = 512;

/// Format version: the first byte of every encoded transaction.
pub const TX_FORMAT_VERSION: u8 = 1;

/// Domain prefix of [`tx_hash`], so a transaction id can never equal any other
/// kind of hash in the system (block ids, state roots) over the same bytes.
const TX_HASH_DOMAIN: &[u8] = b"bitcraps/tx/v1";

/// What a transaction does. The game adds variants; postcard encodes the
/// variant index, so existing variants must never be reordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Move `amount` chips from the sender to `to`.
    Transfer { to: PublicKey, amount: u64 },
    /// Open a craps table with the sender as the house: `bankroll` chips move
    /// from the sender's balance into the table's escrow. The table gets the
    /// next table id (see the receipt's state or `/api/v1/tables`).
    OpenTable { bankroll: u64, params: TableParams },
    /// House only: stop taking bets and return the bankroll no bet in play
    /// could still need. Callable again later to release the rest.
    CloseTable { table: u64 },
    /// Put `amount` chips on `bet` at `table` (added to an existing spot).
    PlaceBet {
        table: u64,
        bet: BetKind,
        amount: u64,
    },
    /// Take the sender's `bet` spot down, where the rules allow it; the stake
    /// returns to the balance.
    RemoveBet { table: u64, bet: BetKind },
    /// Move the sender's settled winnings at `table` (its rail) to the balance.
    Withdraw { table: u64 },
}

/// The signed content of a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transaction {
    /// The sender; also the key that must sign.
    pub from: PublicKey,
    /// Must equal the sender account's nonce when the transaction executes.
    pub nonce: u64,
    pub action: Action,
}

/// A transaction with the sender's signature over
/// [`Transaction::signing_bytes`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedTx {
    pub tx: Transaction,
    pub signature: Signature,
}

/// Why a transaction was refused by the decoder or signature check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    #[error("transaction is {len} bytes, more than the {max} byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("empty transaction")]
    Empty,
    #[error("unsupported transaction format version {0} (expected {TX_FORMAT_VERSION})")]
    UnknownVersion(u8),
    #[error("malformed transaction: {0}")]
    Malformed(String),
    #[error("{0} trailing bytes after the transaction")]
    TrailingBytes(usize),
    #[error("non-canonical transaction encoding")]
    NonCanonical,
    #[error("signature does not verify for this sender and chain")]
    BadSignature,
}

/// Encodes `value` behind the version byte. postcard only fails for types it
/// cannot represent (sequences of unknown length, and the like), which these
/// plain structs never contain; an empty body would then simply be
/// non-canonical and fail to decode, rather than panic here.
fn versioned<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.push(TX_FORMAT_VERSION);
    if let Ok(body) = postcard::to_stdvec(value) {
        out.extend_from_slice(&body);
    }
    out
}

impl Transaction {
    /// The exact bytes the sender signs for `chain_id`.
    pub fn signing_bytes(&self, chain_id: &str) -> Vec<u8> {
        signing_bytes(chain_id, Namespace::Transaction, &versioned(self))
    }

    /// Signs with `key`. The caller is responsible for `key.public() == self.from`;
    /// a mismatch produces a transaction that fails verification.
    pub fn sign(self, chain_id: &str, key: &Keypair) -> SignedTx {
        let signature = key.sign(&self.signing_bytes(chain_id));
        SignedTx {
            tx: self,
            signature,
        }
    }
}

impl SignedTx {
    /// The canonical, versioned encoding.
    pub fn encode(&self) -> Vec<u8> {
        versioned(self)
    }

    /// Strict decoding: size limit first, then version, postcard, no trailing
    /// bytes, and the input must be the canonical encoding of the result.
    /// Never panics.
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, TxError> {
        if bytes.len() > MAX_TX_BYTES {
            return Err(TxError::TooLarge {
                len: bytes.len(),
                max: MAX_TX_BYTES,
            });
        }
        let (&version, body) = bytes.split_first().ok_or(TxError::Empty)?;
        if version != TX_FORMAT_VERSION {
            return Err(TxError::UnknownVersion(version));
        }
        let (tx, rest) = postcard::take_from_bytes::<SignedTx>(body)
            .map_err(|e| TxError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(TxError::TrailingBytes(rest.len()));
        }
        if tx.encode() != bytes {
            return Err(TxError::NonCanonical);
        }
        Ok(tx)
    }

    /// The transaction id: [`tx_hash`] of [`SignedTx::encode`].
    pub fn hash(&self) -> Hash32 {
        tx_hash(&self.encode())
    }

    /// Strict RFC 8032 check of the signature by `tx.from` for `chain_id`.
    pub fn verify(&self, chain_id: &str) -> Result<(), TxError> {
        self.tx
            .from
            .verify(&self.tx.signing_bytes(chain_id), &self.signature)
            .map_err(|_| TxError::BadSignature)
    }
}

/// Transaction id of encoded bytes: `blake3(u64le(14) || "bitcraps/tx/v1" ||
/// u64le(len) || encoded)` (crypto's `hash_parts` framing). Also used for
/// payload entries that do not decode, so every entry has an id.
pub fn tx_hash(encoded: &[u8]) -> Hash32 {
    hash_parts(&[TX_HASH_DOMAIN, encoded])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CHAIN: &str = "bitcraps-test";

    fn kp(i: u8) -> Keypair {
        Keypair::from_seed(&[i; 32])
    }

    fn transfer(from: &Keypair, nonce: u64, to: PublicKey, amount: u64) -> SignedTx {
        Transaction {
            from: from.public(),
            nonce,
            action: Action::Transfer { to, amount },
        }
        .sign(CHAIN, from)
    }

    #[test]
    fn round_trip_and_hash() {
        let (a, b) = (kp(1), kp(2));
        for (nonce, amount) in [(0, 1), (u64::MAX, u64::MAX), (300, 70_000)] {
            let tx = transfer(&a, nonce, b.public(), amount);
            let bytes = tx.encode();
            assert_eq!(bytes[0], TX_FORMAT_VERSION);
            assert!((132..=151).contains(&bytes.len()), "{} bytes", bytes.len());
            let back = SignedTx::decode(&bytes).unwrap();
            assert_eq!(back, tx);
            assert_eq!(back.hash(), tx_hash(&bytes));
            assert!(back.verify(CHAIN).is_ok());
        }
        // Different transactions, different ids.
        assert_ne!(
            transfer(&a, 0, b.public(), 1).hash(),
            transfer(&a, 1, b.public(), 1).hash()
        );
    }

    #[test]
    fn json_uses_hex_keys() {
        let tx = transfer(&kp(1), 3, kp(2).public(), 9);
        let j = serde_json::to_string(&tx).unwrap();
        assert!(j.contains(&kp(2).public().to_hex()), "{j}");
        assert!(j.contains("\"transfer\""), "{j}");
        assert_eq!(serde_json::from_str::<SignedTx>(&j).unwrap(), tx);
    }

    #[test]
    fn every_tampered_byte_is_caught() {
        let tx = transfer(&kp(1), 7, kp(2).public(), 1000);
        let bytes = tx.encode();
        for i in 0..bytes.len() {
            let mut t = bytes.clone();
            t[i] ^= 0x01;
            let ok = SignedTx::decode(&t).map(|d| d.verify(CHAIN));
            assert!(
                !matches!(ok, Ok(Ok(()))),
                "flipping byte {i} still gave a valid transaction"
            );
        }
    }

    #[test]
    fn wrong_chain_or_signer_is_bad_signature() {
        let (a, b) = (kp(1), kp(2));
        let tx = transfer(&a, 0, b.public(), 5);
        assert_eq!(tx.verify("other-chain"), Err(TxError::BadSignature));
        // Signed by b but claims to be from a.
        let forged = Transaction {
            from: a.public(),
            nonce: 0,
            action: Action::Transfer {
                to: b.public(),
                amount: 5,
            },
        }
        .sign(CHAIN, &b);
        assert_eq!(forged.verify(CHAIN), Err(TxError::BadSignature));
    }

    #[test]
    fn decoder_refusals() {
        let bytes = transfer(&kp(1), 0, kp(2).public(), 5).encode();
        assert_eq!(SignedTx::decode(&[]), Err(TxError::Empty));
        let mut v = bytes.clone();
        v[0] = 2;
        assert_eq!(SignedTx::decode(&v), Err(TxError::UnknownVersion(2)));
        let mut v = bytes.clone();
        v.push(0);
        assert_eq!(SignedTx::decode(&v), Err(TxError::TrailingBytes(1)));
        let big = vec![TX_FORMAT_VERSION; MAX_TX_BYTES + 1];
        assert_eq!(
            SignedTx::decode(&big),
            Err(TxError::TooLarge {
                len: MAX_TX_BYTES + 1,
                max: MAX_TX_BYTES
            })
        );
        assert!(matches!(
            SignedTx::decode(&bytes[..bytes.len() - 1]),
            Err(TxError::Malformed(_))
        ));
        // Nonce 0 written as the overlong varint 0x80 0x00 decodes (postcard
        // tolerates it, or not) but must never be accepted as canonical.
        let mut v = bytes[..33].to_vec();
        assert_eq!(bytes[33], 0x00, "nonce byte");
        v.extend_from_slice(&[0x80, 0x00]);
        v.extend_from_slice(&bytes[34..]);
        assert!(SignedTx::decode(&v).is_err());
        // An invalid public key (small order) is refused by the decoder.
        let mut v = bytes.clone();
        v[1..33].copy_from_slice(&{
            let mut k = [0u8; 32];
            k[0] = 1;
            k
        });
        assert!(matches!(SignedTx::decode(&v), Err(TxError::Malformed(_))));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(tx) = SignedTx::decode(&bytes) {
                prop_assert_eq!(tx.encode(), bytes);
            }
        }

        #[test]
        fn mutated_valid_tx_never_panics_and_stays_canonical(
            nonce in any::<u64>(), amount in any::<u64>(),
            pos in 0usize..150, val in any::<u8>(), cut in 0usize..4,
        ) {
            let mut bytes = transfer(&kp(1), nonce, kp(2).public(), amount).encode();
            let pos = pos % bytes.len();
            bytes[pos] = val;
            bytes.truncate(bytes.len() - cut);
            if let Ok(tx) = SignedTx::decode(&bytes) {
                prop_assert_eq!(tx.encode(), bytes);
            }
        }
    }
}
