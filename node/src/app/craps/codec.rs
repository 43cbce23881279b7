//! The canonical byte form of a table, for the state store and the state root.
//!
//! `0x01 || postcard(table)`. The version byte lets a future layout coexist
//! with stored tables. Decoding is strict because every validator hashes these
//! bytes: a table that decodes must re-encode to exactly the same bytes, and
//! must satisfy every invariant the engine maintains (limits, sorted unique
//! entries, no zero stakes or rails, valid numbers and phase, odds behind
//! their flat bets, no chip overflow, bankroll covering the reservations).
//! The invariant check runs on every deserialization (JSON too), through
//! `RawTable`.

use super::dice::Phase;
use super::table::{BetView, Table, MAX_BETS_PER_TABLE, MAX_RAILS_PER_TABLE};
use super::{BetKind, Roll, TableParams};
use bitcraps_crypto::PublicKey;
use serde::Deserialize;

/// First byte of an encoded table.
pub const TABLE_ENCODING_VERSION: u8 = 0x01;

/// Upper bound on an encoded table: a spot is at most 32 (key) + 2 (kind) +
/// 10 (varint stake) bytes, a rail 32 + 10, plus a small header. Checked
/// before decoding so garbage cannot make postcard allocate much.
pub const MAX_TABLE_BYTES: usize = 256 + 44 * MAX_BETS_PER_TABLE + 42 * MAX_RAILS_PER_TABLE;

/// The serde shape of [`Table`], unchecked. Field order must match `Table`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTable {
    id: u64,
    house: PublicKey,
    params: TableParams,
    bankroll: u64,
    phase: Phase,
    closed: bool,
    rolls: u64,
    last_roll: Option<Roll>,
    bets: Vec<BetView>,
    rails: Vec<(PublicKey, u64)>,
}

impl TryFrom<RawTable> for Table {
    type Error = String;

    fn try_from(r: RawTable) -> Result<Table, String> {
        let t = Table {
            id: r.id,
            house: r.house,
            params: r.params,
            bankroll: r.bankroll,
            phase: r.phase,
            closed: r.closed,
            rolls: r.rolls,
            last_roll: r.last_roll,
            bets: r.bets,
            rails: r.rails,
        };
        t.check_invariants()?;
        Ok(t)
    }
}

impl Table {
    /// Canonical bytes: `0x01 || postcard(self)`.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing these types cannot fail (no maps, no unsized sequences);
        // if it ever did, the lone version byte is refused by `decode`, so the
        // error cannot pass silently into the state.
        postcard::to_extend(self, vec![TABLE_ENCODING_VERSION])
            .unwrap_or_else(|_| vec![TABLE_ENCODING_VERSION])
    }

    /// Parses [`Table::encode`] output, refusing anything else (wrong version,
    /// trailing bytes, non-canonical encodings, broken invariants).
    pub fn decode(bytes: &[u8]) -> Result<Table, String> {
        if bytes.len() > MAX_TABLE_BYTES {
            return Err(format!("table encoding over {MAX_TABLE_BYTES} bytes"));
        }
        let Some((&version, body)) = bytes.split_first() else {
            return Err("empty table encoding".into());
        };
        if version != TABLE_ENCODING_VERSION {
            return Err(format!("unknown table encoding version {version}"));
        }
        let (table, rest) =
            postcard::take_from_bytes::<Table>(body).map_err(|e| format!("table: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("{} trailing bytes after table", rest.len()));
        }
        if table.encode() != bytes {
            return Err("non-canonical table encoding".into());
        }
        Ok(table)
    }

    /// Every invariant the engine maintains; `Err` names the first broken one.
    pub fn check_invariants(&self) -> Result<(), String> {
        if self.params.min_bet == 0 || self.params.min_bet > self.params.max_bet {
            return Err("bad table params".into());
        }
        if !self.phase.is_valid() {
            return Err("invalid point".into());
        }
        match self.last_roll {
            Some(r) if !r.is_valid() => return Err("invalid last roll".into()),
            Some(_) if self.rolls == 0 => return Err("last roll without rolls".into()),
            None if self.rolls != 0 => return Err("rolls without a last roll".into()),
            _ => {}
        }
        if self.bets.len() > MAX_BETS_PER_TABLE {
            return Err("too many bets".into());
        }
        if self.rails.len() > MAX_RAILS_PER_TABLE {
            return Err("too many rails".into());
        }
        for pair in self.bets.windows(2) {
            if let [a, b] = pair {
                if (&a.player, a.kind) >= (&b.player, b.kind) {
                    return Err("bets not sorted or duplicated".into());
                }
            }
        }
        for pair in self.rails.windows(2) {
            if let [a, b] = pair {
                if a.0 >= b.0 {
                    return Err("rails not sorted or duplicated".into());
                }
            }
        }
        for b in &self.bets {
            self.check_bet(b)?;
        }
        if self.rails.iter().any(|(_, r)| *r == 0) {
            return Err("zero rail".into());
        }
        if self.player_count() > MAX_RAILS_PER_TABLE {
            return Err("too many players".into());
        }
        let stakes: u128 = self.bets.iter().map(|b| u128::from(b.stake)).sum();
        let rails: u128 = self.rails.iter().map(|(_, r)| u128::from(*r)).sum();
        if u128::from(self.bankroll) + stakes + rails > u128::from(u64::MAX) {
            return Err("chips overflow".into());
        }
        if self.bankroll < self.reserved() {
            return Err("bankroll below reserved".into());
        }
        Ok(())
    }

    fn check_bet(&self, b: &BetView) -> Result<(), String> {
        if b.stake == 0 {
            return Err("zero stake".into());
        }
        if !b.kind.is_valid() {
            return Err("invalid bet number".into());
        }
        let needs_point = matches!(
            b.kind,
            BetKind::PassOdds | BetKind::DontPassOdds | BetKind::Come | BetKind::DontCome
        );
        if needs_point && self.point().is_none() {
            return Err("bet that needs a point on the come-out".into());
        }
        if let Some(flat) = b.kind.flat() {
            if self.stake(&b.player, flat) == 0 {
                return Err("odds without their flat bet".into());
            }
        }
        Ok(())
    }
}
