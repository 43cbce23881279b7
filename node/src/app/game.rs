//! The game half of the application state: craps tables, and the roll clock
//! that decides when betting closes and which beacon round rolls the dice.
//!
//! # When the dice roll (and why nobody can know the roll before bets close)
//!
//! One global clock serves every table, so the validators produce at most one
//! beacon output per betting window however many tables are open:
//!
//! 1. The first accepted bet while no roll is scheduled opens a betting window
//!    that ends at `block timestamp + roll_interval_ms`.
//! 2. At the end of the first block whose timestamp reaches that deadline,
//!    betting **closes**: the clock records `awaiting_round = r`, the height of
//!    that block. From the next block on, `PlaceBet` and `RemoveBet` are
//!    rejected with `betting_closed` until the roll is applied. The bets of
//!    every block up to and including `r` are in; they are final once block
//!    `r` is committed.
//! 3. Validators sign beacon round `r` only after they have committed block
//!    `r` (the engine enforces this; see `engine::beacon`). Any `t` of their
//!    partial signatures recover the unique group signature for round `r`
//!    (`bitcraps_crypto::beacon`, which also states the trust argument).
//! 4. A later block (height > `r`) carries that signature as its first payload
//!    entry ([`super::beacon_entry`]). Execution verifies it against the group
//!    key from genesis and, if it is for the awaited round, rolls every table
//!    that has bets: table `id` gets the dice `Roll::from_seed(H(randomness,
//!    id))`. An entry for any other round, or one that does not verify, is
//!    ignored: it cannot change anything, because the one valid signature for
//!    round `r` is fixed by the group key.
//!
//! A leader that withholds the entry only delays the roll (the next honest
//! leader includes it); one that reorders or re-proposes blocks cannot move a
//! bet across the close, because the close height is a function of the
//! committed chain, and the roll of round `r` is a function of `r` alone.
//!
//! # Chips
//!
//! Table escrow (bankroll + stakes + rails, see [`Table::escrow`]) plus all
//! balances equals the genesis supply at every height; [`super::state`] checks
//! it in tests and the node serves it at `/api/v1/supply`.

use super::craps::{BetKind, Roll, RollOutcome, Table, TableParams};
use super::state::Rejection;
use bitcraps_crypto::beacon::{round_message, BeaconPublic, BeaconSignature};
use bitcraps_crypto::{hash::hash_parts, Hash32, PublicKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most tables that may be open (not closed) at once. A table is a single
/// state record that every roll rewrites, so this bounds a roll's work.
pub const MAX_OPEN_TABLES: usize = 1_024;

const DICE_DOMAIN: &[u8] = b"bitcraps/dice/v1";
const CLOCK_FORMAT: u8 = 1;

/// The roll schedule (one per chain). Part of the state root.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollClock {
    /// Id the next opened table gets (table ids start at 1).
    pub next_table_id: u64,
    /// Betting closes at the end of the first block whose timestamp is at or
    /// after this (ms). Set while a betting window is open.
    pub betting_deadline_ms: Option<u64>,
    /// Betting is closed; the dice wait for beacon round `r` (the height of the
    /// block that closed betting).
    pub awaiting_round: Option<u64>,
    /// Beacon rounds applied since genesis.
    pub rounds: u64,
    /// The last beacon round applied.
    pub last_round: Option<u64>,
}

impl RollClock {
    /// Canonical bytes: version byte || postcard.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![CLOCK_FORMAT];
        // A plain struct of integers: postcard cannot fail on it.
        if let Ok(body) = postcard::to_stdvec(self) {
            out.extend_from_slice(&body);
        }
        out
    }

    pub fn decode(v: &[u8]) -> Result<RollClock, String> {
        let (&version, body) = v.split_first().ok_or("empty roll clock")?;
        if version != CLOCK_FORMAT {
            return Err(format!(
                "roll clock format {version}, expected {CLOCK_FORMAT}"
            ));
        }
        let (clock, rest) =
            postcard::take_from_bytes::<RollClock>(body).map_err(|e| format!("roll clock: {e}"))?;
        if !rest.is_empty() || clock.encode() != v {
            return Err("roll clock: non-canonical encoding".into());
        }
        Ok(clock)
    }
}

/// One table's roll, as recorded in the block result and the roll history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRoll {
    pub table: u64,
    /// Beacon round whose output rolled the dice.
    pub round: u64,
    /// Height of the block that applied the roll.
    pub height: u64,
    /// The table's roll count after this roll (1 = its first roll).
    pub seq: u64,
    pub outcome: RollOutcome,
}

/// What happened to a block's beacon entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeaconVerdict {
    /// The entry rolled the dice for this round.
    Applied { round: u64 },
    /// The entry changed nothing (see the reason).
    Ignored { round: u64, reason: &'static str },
}

/// The rules' fixed inputs, from genesis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameConfig {
    pub beacon: Option<BeaconPublic>,
    pub roll_interval_ms: u64,
}

/// Every table plus the roll clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameState {
    pub(super) tables: BTreeMap<u64, Table>,
    pub(super) clock: RollClock,
    pub(super) config: GameConfig,
}

/// Balance changes a game action asks of the account layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Funds {
    /// Take this many chips from the sender (already checked to be there).
    Debit(u64),
    /// Give this many chips to the sender.
    Credit(u64),
}

impl GameState {
    pub(super) fn new(config: GameConfig) -> GameState {
        GameState {
            tables: BTreeMap::new(),
            clock: RollClock {
                next_table_id: 1,
                ..RollClock::default()
            },
            config,
        }
    }

    pub fn clock(&self) -> &RollClock {
        &self.clock
    }

    pub fn config(&self) -> &GameConfig {
        &self.config
    }

    pub fn table(&self, id: u64) -> Option<&Table> {
        self.tables.get(&id)
    }

    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    fn open_tables(&self) -> usize {
        self.tables.values().filter(|t| !t.closed).count()
    }

    fn table_mut(&mut self, id: u64) -> Result<&mut Table, Rejection> {
        self.tables
            .get_mut(&id)
            .ok_or(Rejection::NoSuchTable { table: id })
    }

    fn betting_open(&self) -> Result<(), Rejection> {
        match self.clock.awaiting_round {
            Some(round) => Err(Rejection::BettingClosed { round }),
            None => Ok(()),
        }
    }

    /// Applies a game action by `from` whose nonce is already consumed, given
    /// the sender's `balance`. On `Ok` the caller applies the returned balance
    /// change and marks the returned table changed; on `Err` nothing changed.
    pub(super) fn apply(
        &mut self,
        from: PublicKey,
        balance: u64,
        action: GameAction,
        timestamp_ms: u64,
    ) -> Result<(u64, Funds), Rejection> {
        let afford = |needed: u64| {
            if balance < needed {
                Err(Rejection::InsufficientFunds { balance, needed })
            } else {
                Ok(())
            }
        };
        match action {
            GameAction::Open { bankroll, params } => {
                afford(bankroll)?;
                if self.open_tables() >= MAX_OPEN_TABLES {
                    return Err(Rejection::TooManyTables {
                        max: MAX_OPEN_TABLES as u64,
                    });
                }
                let id = self.clock.next_table_id;
                let table = Table::open(id, from, params, bankroll)?;
                self.tables.insert(id, table);
                self.clock.next_table_id = id.saturating_add(1);
                Ok((id, Funds::Debit(bankroll)))
            }
            GameAction::Close { table } => {
                let released = self.table_mut(table)?.close(from)?;
                Ok((table, Funds::Credit(released)))
            }
            GameAction::Place { table, bet, amount } => {
                if self.config.beacon.is_none() {
                    return Err(Rejection::NoBeacon);
                }
                self.betting_open()?;
                afford(amount)?;
                self.table_mut(table)?.place(from, bet, amount)?;
                if self.clock.betting_deadline_ms.is_none() {
                    self.clock.betting_deadline_ms =
                        Some(timestamp_ms.saturating_add(self.config.roll_interval_ms));
                }
                Ok((table, Funds::Debit(amount)))
            }
            GameAction::Remove { table, bet } => {
                // Frozen while a roll is pending: once block r is committed the
                // beacon output may already be computable, and a bettor who
                // learnt it must not be able to pull a losing bet.
                self.betting_open()?;
                let stake = self.table_mut(table)?.remove(from, bet)?;
                Ok((table, Funds::Credit(stake)))
            }
            GameAction::Withdraw { table } => {
                let amount = self.table_mut(table)?.withdraw(from)?;
                Ok((table, Funds::Credit(amount)))
            }
        }
    }

    /// Applies a block's beacon entry (before its transactions). Returns the
    /// verdict and the rolls it made (tables in id order).
    pub(super) fn apply_beacon(
        &mut self,
        chain_id: &str,
        height: u64,
        timestamp_ms: u64,
        round: u64,
        signature: &BeaconSignature,
    ) -> (BeaconVerdict, Vec<TableRoll>) {
        let ignored = |reason| (BeaconVerdict::Ignored { round, reason }, Vec::new());
        let Some(public) = &self.config.beacon else {
            return ignored("no beacon configured");
        };
        if self.clock.awaiting_round != Some(round) {
            return ignored("not the awaited round");
        }
        // Honest validators cannot have signed round r before committing block
        // r, so this only fails if more than f validators are byzantine.
        if round >= height {
            return ignored("round not before this block");
        }
        if public
            .verify(&round_message(chain_id, round), signature)
            .is_err()
        {
            return ignored("signature does not verify against the group key");
        }
        let randomness = signature.randomness();
        let mut rolls = Vec::new();
        for (id, table) in self.tables.iter_mut().filter(|(_, t)| t.has_bets()) {
            let roll = Roll::from_seed(&dice_seed(&randomness, *id).0);
            let outcome = table.roll(roll);
            rolls.push(TableRoll {
                table: *id,
                round,
                height,
                seq: table.rolls,
                outcome,
            });
        }
        self.clock.awaiting_round = None;
        self.clock.rounds = self.clock.rounds.saturating_add(1);
        self.clock.last_round = Some(round);
        // Bets that stay up (a point, place bets) need the next roll: open the
        // next window straight away.
        self.clock.betting_deadline_ms = self
            .tables
            .values()
            .any(Table::has_bets)
            .then(|| timestamp_ms.saturating_add(self.config.roll_interval_ms));
        (BeaconVerdict::Applied { round }, rolls)
    }

    /// End of block `height`: closes betting if the window is over.
    pub(super) fn end_block(&mut self, height: u64, timestamp_ms: u64) {
        if self.clock.awaiting_round.is_some() {
            return;
        }
        if let Some(deadline) = self.clock.betting_deadline_ms {
            if timestamp_ms >= deadline {
                self.clock.betting_deadline_ms = None;
                // Every bet could have been taken down since the window opened;
                // then there is nothing to roll and no beacon round to spend.
                if self.tables.values().any(Table::has_bets) {
                    self.clock.awaiting_round = Some(height);
                }
            }
        }
    }

    /// Chips held by tables (bankrolls, stakes and rails).
    pub fn escrow(&self) -> u128 {
        self.tables.values().map(|t| u128::from(t.escrow())).sum()
    }
}

/// A game transaction's action, split off [`super::tx::Action`] so this module
/// does not see transfers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum GameAction {
    Open {
        bankroll: u64,
        params: TableParams,
    },
    Close {
        table: u64,
    },
    Place {
        table: u64,
        bet: BetKind,
        amount: u64,
    },
    Remove {
        table: u64,
        bet: BetKind,
    },
    Withdraw {
        table: u64,
    },
}

/// The seed of table `id`'s dice for a beacon output: each table gets
/// independent dice from the same round.
pub fn dice_seed(randomness: &Hash32, table: u64) -> Hash32 {
    hash_parts(&[DICE_DOMAIN, &randomness.0, &table.to_be_bytes()])
}

impl GameAction {
    /// The game part of a transaction's action; `None` for a transfer.
    pub(super) fn of(action: &super::tx::Action) -> Option<GameAction> {
        use super::tx::Action;
        Some(match *action {
            Action::Transfer { .. } => return None,
            Action::OpenTable { bankroll, params } => GameAction::Open { bankroll, params },
            Action::CloseTable { table } => GameAction::Close { table },
            Action::PlaceBet { table, bet, amount } => GameAction::Place { table, bet, amount },
            Action::RemoveBet { table, bet } => GameAction::Remove { table, bet },
            Action::Withdraw { table } => GameAction::Withdraw { table },
        })
    }
}

// --- Store layout and state-root leaves -------------------------------------

const TABLE_PREFIX: &[u8] = b"t/";
const ROLL_PREFIX: &[u8] = b"o/";
/// Store key of the roll clock.
pub const CLOCK_KEY: &[u8] = b"g/clock";
const ROLL_FORMAT: u8 = 1;

/// Store key of table `id`: `t/` + u64be(id).
pub fn table_key(id: u64) -> Vec<u8> {
    [TABLE_PREFIX, &id.to_be_bytes()].concat()
}

/// The table id in a table store key, if `key` is one.
pub fn parse_table_key(key: &[u8]) -> Option<Result<u64, String>> {
    let rest = key.strip_prefix(TABLE_PREFIX)?;
    Some(
        <[u8; 8]>::try_from(rest)
            .map(u64::from_be_bytes)
            .map_err(|_| format!("bad table key {}", hex::encode(key))),
    )
}

/// Store key of a table's `seq`-th roll: `o/` + u64be(table) + u64be(seq), so
/// one table's history is one key range in roll order.
pub fn roll_key(table: u64, seq: u64) -> Vec<u8> {
    [ROLL_PREFIX, &table.to_be_bytes(), &seq.to_be_bytes()].concat()
}

/// The first key after every roll of `table` (a scan bound).
pub fn roll_key_end(table: u64) -> Vec<u8> {
    [ROLL_PREFIX, &table.to_be_bytes(), &[0xff; 9]].concat()
}

/// Whether `key` is shaped like a roll history key.
pub fn is_roll_key(key: &[u8]) -> Option<bool> {
    key.strip_prefix(ROLL_PREFIX).map(|rest| rest.len() == 16)
}

/// The roll history prefix (rolls are history, like receipts: not loaded at
/// start-up and not in the state root).
pub fn roll_prefix() -> &'static [u8] {
    ROLL_PREFIX
}

pub fn encode_roll(r: &TableRoll) -> Vec<u8> {
    let mut v = vec![ROLL_FORMAT];
    // Plain data: postcard cannot fail; an empty body would fail to decode.
    if let Ok(body) = postcard::to_stdvec(r) {
        v.extend_from_slice(&body);
    }
    v
}

pub fn decode_roll(v: &[u8]) -> Result<TableRoll, String> {
    let (&version, body) = v.split_first().ok_or("empty roll record")?;
    if version != ROLL_FORMAT {
        return Err(format!("unknown roll record format {version}"));
    }
    let (r, rest) = postcard::take_from_bytes::<TableRoll>(body)
        .map_err(|e| format!("bad roll record: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after a roll record", rest.len()));
    }
    Ok(r)
}

/// Position of table `id` in the state tree: a hash, so tables spread over
/// the same 256-bit key space as accounts without colliding with them.
pub(super) fn table_tree_key(id: u64) -> [u8; 32] {
    hash_parts(&[b"bitcraps/state/table-key", &id.to_be_bytes()]).0
}

/// Leaf hash of a table: binds its id and canonical encoding.
pub(super) fn table_leaf(id: u64, encoded: &[u8]) -> Hash32 {
    hash_parts(&[b"bitcraps/state/table", &id.to_be_bytes(), encoded])
}

pub(super) fn clock_tree_key() -> [u8; 32] {
    hash_parts(&[b"bitcraps/state/clock-key"]).0
}

pub(super) fn clock_leaf(encoded: &[u8]) -> Hash32 {
    hash_parts(&[b"bitcraps/state/clock", encoded])
}

#[cfg(test)]
#[path = "tests/game.rs"]
mod tests;
