//! The beacon entry: how a recovered beacon signature rides in a block.
//!
//! A block payload is a list of framed entries ([`super::payload`]). The
//! proposer may put one beacon entry first:
//!
//! ```text
//! beacon entry = 0xB1 || u64be(round) || 48-byte group signature (G1, compressed)
//! ```
//!
//! Transactions start with their format version (`0x01`), so the first byte
//! tells the two apart. A beacon entry anywhere but first is treated as a
//! transaction (and rejected as malformed), so there is one place to look.
//! The entry carries no signature of its own: its validity is the BLS
//! signature itself, checked against the genesis group key at execution.

use bitcraps_crypto::beacon::{BeaconSignature, PARTIAL_SIG_BYTES};

/// First byte of a beacon entry.
pub const BEACON_ENTRY_TAG: u8 = 0xB1;
/// Encoded size (bytes).
pub const BEACON_ENTRY_BYTES: usize = 1 + 8 + PARTIAL_SIG_BYTES;

/// A recovered beacon output for `round`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeaconEntry {
    pub round: u64,
    pub signature: BeaconSignature,
}

impl BeaconEntry {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BEACON_ENTRY_BYTES);
        out.push(BEACON_ENTRY_TAG);
        out.extend_from_slice(&self.round.to_be_bytes());
        out.extend_from_slice(&self.signature.to_bytes());
        out
    }

    /// `None` if `entry` is not tagged as a beacon entry; `Some(Err)` if it is
    /// tagged but malformed (wrong length, not a curve point).
    pub fn decode(entry: &[u8]) -> Option<Result<BeaconEntry, String>> {
        if entry.first() != Some(&BEACON_ENTRY_TAG) {
            return None;
        }
        Some(Self::decode_tagged(entry))
    }

    fn decode_tagged(entry: &[u8]) -> Result<BeaconEntry, String> {
        if entry.len() != BEACON_ENTRY_BYTES {
            return Err(format!(
                "beacon entry is {} bytes, expected {BEACON_ENTRY_BYTES}",
                entry.len()
            ));
        }
        let mut round = [0u8; 8];
        round.copy_from_slice(&entry[1..9]);
        let signature = BeaconSignature::from_bytes(&entry[9..])
            .map_err(|e| format!("beacon entry signature: {e}"))?;
        Ok(BeaconEntry {
            round: u64::from_be_bytes(round),
            signature,
        })
    }
}
