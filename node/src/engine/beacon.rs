//! The dice beacon's network side, run by the engine task.
//!
//! When the executed state says the dice await beacon round `r`
//! ([`AppState::awaiting_round`](crate::app::AppState::awaiting_round)) and we
//! have executed block `r`, we sign our share of round `r` and broadcast it.
//! Never earlier: this is the rule that keeps every roll unknown until the
//! bets on it are committed (the argument is in `bitcraps_crypto::beacon` and
//! `app::game`). Shares from the other validators are collected per round;
//! with `t` of them the group signature is recovered and offered to our next
//! proposal as the payload's beacon entry.
//!
//! BLS signatures are unique, so signing round `r` again after a restart is
//! harmless: it yields the same share, never a conflicting one.
//!
//! ```text
//! share message = 0xB5 || u64be(round) || u32be(share index) || 48-byte partial signature
//! ```
//!
//! A share must carry the sender's own index (validator i holds share i + 1):
//! the QUIC connection authenticates the sender, so a byzantine validator can
//! only ever speak for its own share. The first share per (round, sender) is
//! kept; an invalid one is found at recovery, counted, and ignored.

use crate::app::beacon_entry::BeaconEntry;
use bitcraps_crypto::beacon::{
    round_message, BeaconPublic, PartialSignature, SecretShare, PARTIAL_SIG_BYTES,
};
use std::collections::{BTreeMap, BTreeSet};

/// First byte of a share message (consensus messages start with their wire
/// version, 1).
pub const BEACON_SHARE_TAG: u8 = 0xB5;
/// Encoded size of a share message (bytes).
pub const SHARE_MESSAGE_BYTES: usize = 1 + 8 + 4 + PARTIAL_SIG_BYTES;
/// Rounds we keep shares for at once. A round only opens after the previous
/// one was applied, so more than a couple means someone is sending junk.
const MAX_ROUNDS_BUFFERED: usize = 4;
/// Shares for rounds further than this beyond our executed height are dropped
/// (we would never need them before catching up anyway).
const ROUND_LOOKAHEAD: u64 = 1_024;
/// While a round is unresolved we re-send our share this often (ms), so a
/// share lost to a reconnect cannot stall the dice.
pub const SHARE_RESEND_MS: u64 = 1_000;

/// Why a share message was refused (the sender gets a penalty).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    #[error("share message is {0} bytes, expected {SHARE_MESSAGE_BYTES}")]
    Length(usize),
    #[error("share for index {claimed} sent by validator {from}")]
    WrongIndex { claimed: u32, from: u16 },
    #[error("malformed partial signature")]
    Malformed,
}

/// Counters for `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BeaconStats {
    pub shares_signed: u64,
    pub shares_received: u64,
    pub invalid_shares: u64,
    pub rounds_recovered: u64,
}

/// The engine's beacon state. One per node; `share` is `None` on a node that
/// holds no share (it still recovers and proposes entries from others' shares).
#[derive(Debug)]
pub struct BeaconWorker {
    chain_id: String,
    public: BeaconPublic,
    share: Option<SecretShare>,
    /// Received (and our own) partials by round, then by share index.
    partials: BTreeMap<u64, BTreeMap<u32, PartialSignature>>,
    /// (round, index) pairs whose share turned out invalid: ignored from then on.
    bad: BTreeSet<(u64, u32)>,
    /// Our share of the awaited round and when we last sent it (ms).
    mine: Option<(u64, PartialSignature, u64)>,
    recovered: Option<BeaconEntry>,
    stats: BeaconStats,
}

impl BeaconWorker {
    pub fn new(chain_id: &str, public: BeaconPublic, share: Option<SecretShare>) -> BeaconWorker {
        BeaconWorker {
            chain_id: chain_id.to_owned(),
            public,
            share,
            partials: BTreeMap::new(),
            bad: BTreeSet::new(),
            mine: None,
            recovered: None,
            stats: BeaconStats::default(),
        }
    }

    /// Drops (and so zeroizes) our key share: we sign no round from now on;
    /// the others' shares still recover rounds while t of them are honest.
    pub fn wipe_share(&mut self) {
        self.share = None;
        self.mine = None;
    }

    pub fn stats(&self) -> BeaconStats {
        self.stats
    }

    /// After executing up to `height`, with the dice awaiting `awaiting`:
    /// forgets finished rounds, and signs `awaiting` if its block is executed.
    /// Returns the share message to broadcast, if we just signed.
    pub fn on_executed(
        &mut self,
        awaiting: Option<u64>,
        height: u64,
        now_ms: u64,
    ) -> Option<Vec<u8>> {
        // Rounds below the awaited one (or all, when nothing awaits) are done.
        let keep_from = awaiting.unwrap_or(height.saturating_add(1));
        self.partials = self.partials.split_off(&keep_from);
        self.bad = self.bad.split_off(&(keep_from, 0));
        if self.recovered.is_some_and(|e| Some(e.round) != awaiting) {
            self.recovered = None;
        }
        if self.mine.is_some_and(|(r, _, _)| Some(r) != awaiting) {
            self.mine = None;
        }
        let round = awaiting.filter(|r| *r <= height)?;
        if self.mine.is_some() {
            return None;
        }
        let share = self.share.as_ref()?;
        let partial = share.sign(&round_message(&self.chain_id, round));
        self.stats.shares_signed += 1;
        self.mine = Some((round, partial, now_ms));
        self.partials
            .entry(round)
            .or_default()
            .insert(partial.index, partial);
        self.try_recover(round);
        Some(encode_share(round, &partial))
    }

    /// Our share again, if the round is still unresolved and it is time.
    pub fn resend(&mut self, now_ms: u64) -> Option<Vec<u8>> {
        let (round, partial, sent_ms) = self.mine.as_mut()?;
        if self.recovered.is_some_and(|e| e.round == *round)
            || now_ms < sent_ms.saturating_add(SHARE_RESEND_MS)
        {
            return None;
        }
        *sent_ms = now_ms;
        Some(encode_share(*round, partial))
    }

    /// A share message from validator `from` (0-based). `height` is our
    /// executed height. Returns whether a round was recovered by it.
    pub fn on_share(
        &mut self,
        from: u16,
        bytes: &[u8],
        awaiting: Option<u64>,
        height: u64,
    ) -> Result<bool, ShareError> {
        let (round, partial) = decode_share(bytes)?;
        if partial.index != u32::from(from) + 1 {
            return Err(ShareError::WrongIndex {
                claimed: partial.index,
                from,
            });
        }
        self.stats.shares_received += 1;
        // Old rounds are done; far-future ones are junk or we are far behind.
        let oldest = awaiting.unwrap_or(height.saturating_add(1));
        if round < oldest || round > height.saturating_add(ROUND_LOOKAHEAD) {
            return Ok(false);
        }
        if self.bad.contains(&(round, partial.index)) {
            return Ok(false);
        }
        if !self.partials.contains_key(&round) && self.partials.len() >= MAX_ROUNDS_BUFFERED {
            // Keep the lowest rounds: the awaited one is always among them.
            match self.partials.last_key_value() {
                Some((&last, _)) if last > round => {
                    self.partials.remove(&last);
                }
                _ => return Ok(false),
            }
        }
        self.partials
            .entry(round)
            .or_default()
            .entry(partial.index)
            .or_insert(partial);
        if awaiting == Some(round) && round <= height {
            return Ok(self.try_recover(round));
        }
        Ok(false)
    }

    /// The beacon entry for our next proposal, if we hold the awaited round.
    pub fn entry(&mut self, awaiting: Option<u64>, height: u64) -> Option<BeaconEntry> {
        let round = awaiting?;
        if round <= height && self.recovered.is_none() {
            self.try_recover(round);
        }
        self.recovered.filter(|e| e.round == round)
    }

    /// Recovers `round` if enough shares are in. Returns whether it did now.
    fn try_recover(&mut self, round: u64) -> bool {
        if self.recovered.is_some_and(|e| e.round == round) {
            return false;
        }
        let Some(have) = self.partials.get(&round) else {
            return false;
        };
        if have.len() < self.public.threshold as usize {
            return false;
        }
        let partials: Vec<PartialSignature> = have.values().copied().collect();
        let msg = round_message(&self.chain_id, round);
        match self.public.recover(&msg, &partials) {
            Ok(rec) => {
                self.forget_invalid(round, &rec.invalid);
                self.recovered = Some(BeaconEntry {
                    round,
                    signature: rec.signature,
                });
                self.stats.rounds_recovered += 1;
                true
            }
            Err(_) => {
                // Fewer than t valid shares: find the bad ones so they are not
                // tried again, and wait for more.
                let invalid: Vec<u32> = partials
                    .iter()
                    .filter(|p| self.public.verify_partial(&msg, p).is_err())
                    .map(|p| p.index)
                    .collect();
                self.forget_invalid(round, &invalid);
                false
            }
        }
    }

    fn forget_invalid(&mut self, round: u64, invalid: &[u32]) {
        for index in invalid {
            if self.bad.insert((round, *index)) {
                self.stats.invalid_shares += 1;
                tracing::warn!(round, share_index = index, "invalid beacon share ignored");
            }
            if let Some(p) = self.partials.get_mut(&round) {
                p.remove(index);
            }
        }
    }
}

pub fn encode_share(round: u64, partial: &PartialSignature) -> Vec<u8> {
    let mut out = Vec::with_capacity(SHARE_MESSAGE_BYTES);
    out.push(BEACON_SHARE_TAG);
    out.extend_from_slice(&round.to_be_bytes());
    out.extend_from_slice(&partial.index.to_be_bytes());
    out.extend_from_slice(&partial.sig_bytes());
    out
}

pub fn decode_share(bytes: &[u8]) -> Result<(u64, PartialSignature), ShareError> {
    if bytes.len() != SHARE_MESSAGE_BYTES || bytes[0] != BEACON_SHARE_TAG {
        return Err(ShareError::Length(bytes.len()));
    }
    let mut round = [0u8; 8];
    round.copy_from_slice(&bytes[1..9]);
    let mut index = [0u8; 4];
    index.copy_from_slice(&bytes[9..13]);
    let partial = PartialSignature::from_parts(u32::from_be_bytes(index), &bytes[13..])
        .map_err(|_| ShareError::Malformed)?;
    Ok((u64::from_be_bytes(round), partial))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcraps_crypto::beacon::deal_from_seed;

    const CHAIN: &str = "beacon-worker-test";

    fn workers() -> Vec<BeaconWorker> {
        let (public, shares) = deal_from_seed(4, 3, [3; 32]).unwrap();
        shares
            .into_iter()
            .map(|s| BeaconWorker::new(CHAIN, public.clone(), Some(s)))
            .collect()
    }

    #[test]
    fn signs_only_after_the_round_block_is_executed() {
        let mut w = workers().remove(0);
        // Betting closed at height 10, but we have only executed 9.
        assert_eq!(w.on_executed(Some(10), 9, 0), None);
        assert_eq!(w.stats().shares_signed, 0);
        let msg = w.on_executed(Some(10), 10, 0).expect("signs at 10");
        let (round, partial) = decode_share(&msg).unwrap();
        assert_eq!((round, partial.index), (10, 1));
        // Once per round, however often blocks are executed.
        assert_eq!(w.on_executed(Some(10), 11, 5), None);
        assert_eq!(w.stats().shares_signed, 1);
        // Re-sent only after the interval, while unresolved.
        assert_eq!(w.resend(SHARE_RESEND_MS - 1), None);
        assert_eq!(w.resend(SHARE_RESEND_MS), Some(msg));
    }

    #[test]
    fn recovers_with_threshold_shares_and_ignores_bad_ones() {
        let mut ws = workers();
        let msgs: Vec<Vec<u8>> = ws
            .iter_mut()
            .map(|w| w.on_executed(Some(7), 7, 0).unwrap())
            .collect();
        let (public, _) = deal_from_seed(4, 3, [3; 32]).unwrap();
        let w = &mut ws[0];
        // A share claiming someone else's index is refused.
        assert!(matches!(
            w.on_share(2, &msgs[1], Some(7), 7),
            Err(ShareError::WrongIndex {
                claimed: 2,
                from: 2
            })
        ));
        // Validator 1 sends a share for another round under its own index:
        // well-formed, but invalid for round 7.
        let (_, other) = deal_from_seed(4, 3, [4; 32]).unwrap();
        let forged = encode_share(7, &other[1].sign(&round_message(CHAIN, 7)));
        assert_eq!(w.on_share(1, &forged, Some(7), 7), Ok(false));
        // Garbage and truncation.
        assert!(w.on_share(3, &msgs[3][..20], Some(7), 7).is_err());
        // With ours, the forged one and validator 2's, recovery fails, finds
        // the forgery, and waits; validator 3's share completes it.
        assert_eq!(w.on_share(2, &msgs[2], Some(7), 7), Ok(false));
        assert_eq!(w.stats().invalid_shares, 1);
        assert_eq!(w.on_share(3, &msgs[3], Some(7), 7), Ok(true));
        let entry = w.entry(Some(7), 7).expect("recovered");
        assert_eq!(entry.round, 7);
        assert!(public
            .verify(&round_message(CHAIN, 7), &entry.signature)
            .is_ok());
        // The honest share from validator 1 arriving later is ignored for
        // this round (its slot was marked bad), and nothing breaks.
        assert_eq!(w.on_share(1, &msgs[1], Some(7), 7), Ok(false));
        // Any three honest shares give the same signature (uniqueness).
        let w2 = &mut ws[1];
        for (i, m) in msgs.iter().enumerate().skip(2) {
            let _ = w2.on_share(i as u16, m, Some(7), 7);
        }
        assert_eq!(w2.entry(Some(7), 7), Some(entry));
        // Once the round is applied, its state is dropped.
        assert_eq!(ws[0].on_executed(None, 8, 0), None);
        assert_eq!(ws[0].entry(None, 8), None);
    }

    #[test]
    fn junk_rounds_are_bounded() {
        let mut w = workers().remove(0);
        let (_, shares) = deal_from_seed(4, 3, [3; 32]).unwrap();
        // Far-future rounds are dropped; near ones fill at most the buffer.
        for round in 100..200u64 {
            let m = encode_share(round, &shares[1].sign(&round_message(CHAIN, round)));
            let _ = w.on_share(1, &m, None, 50);
        }
        assert!(w.partials.len() <= MAX_ROUNDS_BUFFERED);
        let far = encode_share(10_000, &shares[1].sign(&round_message(CHAIN, 10_000)));
        assert_eq!(w.on_share(1, &far, None, 50), Ok(false));
        assert!(!w.partials.contains_key(&10_000));
    }
}
