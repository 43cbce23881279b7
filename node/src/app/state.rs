//! Account state, craps tables, deterministic block execution and the state root.
//!
//! # Execution rules
//!
//! [`AppState::execute_block`] runs a committed block's payload. Every honest
//! node applies exactly these rules, in this order, so the same blocks give
//! the same accounts, tables, receipts and root everywhere:
//!
//! 1. `height` must be `height() + 1`; anything else is a caller bug and is
//!    refused ([`ExecError`]) without touching the state.
//! 2. If the payload framing is invalid ([`split_payload`]) the block executes
//!    no transactions; it still advances the height and writes its root.
//! 3. If the first entry is a beacon entry ([`super::beacon_entry`]) it is
//!    applied first ([`super::game`]): verified against the genesis group key
//!    and, if it is the awaited round, it rolls the dice of every table with
//!    bets. Anything wrong with it makes it a no-op ([`BlockResult::beacon`]
//!    says why). It gets no receipt.
//! 4. Signatures: every other entry that decodes and whose id is not in the
//!    [`VerifiedCache`] is verified up front, all in one exact batch
//!    ([`verify_txs`]); good verdicts are added to the cache (with the decoded
//!    transaction, which a cached id also saves decoding). The verdict never
//!    depends on the cache's contents, only its cost does.
//! 5. Then each entry, in payload order, gets one [`Receipt`]:
//!    * does not decode: `malformed`, id = [`tx_hash`] of the raw entry;
//!    * signature invalid: `bad_signature`;
//!    * `nonce != account nonce`: `bad_nonce`, nothing changes;
//!    * otherwise the nonce is consumed (so the signed bytes can never be
//!      replayed) and the action runs: a transfer moves chips (amount 0:
//!      `zero_amount`; balance short: `insufficient_funds`); a game action
//!      goes to [`super::game`] and the craps rules ([`super::craps`]). A
//!      refused action changes nothing but the consumed nonce; its receipt
//!      carries the reason ([`Rejection::code`]).
//!
//!    Consuming a nonce creates the sender's account if it did not exist
//!    (balance 0); a transfer creates the recipient's. Accounts and tables are
//!    never deleted.
//! 6. The roll clock closes betting if its window is over (see `game`).
//! 7. Chips are conserved: balances plus table escrow always equal the genesis
//!    supply ([`AppState::supply`]). All arithmetic is checked; an overflow is
//!    unreachable from a genesis whose total fits in u64.
//!
//! # State root
//!
//! A binary Merkle tree over every account, every table and the roll clock: a
//! crit-bit (compressed binary radix) tree on 256-bit keys, most significant
//! bit of byte 0 first, so leaves sit in key order from left to right. Its
//! shape depends only on the set of keys:
//!
//! ```text
//! root(no leaves)    = 32 zero bytes
//! root({one leaf})   = leaf
//! account leaf       = blake3(0x00 || key[32] || u64le(balance) || u64le(nonce)), at the account key
//! table leaf         = H("bitcraps/state/table", u64be(id), table bytes), at H("bitcraps/state/table-key", u64be(id))
//! clock leaf         = H("bitcraps/state/clock", clock bytes), at H("bitcraps/state/clock-key")
//! node(S), |S| >= 2  = blake3(0x01 || u8(b) || root(S0) || root(S1))
//!     where b is the first bit position at which the keys of S differ and
//!     S0/S1 are the keys with bit b = 0/1; H is crypto's length-framed hash_parts
//! ```
//!
//! The tags, the fixed input lengths and the framed hashes keep leaves and
//! nodes apart; putting `b` in the node binds the tree shape, so an inclusion
//! proof (the sibling hashes and bit positions along a path) is unambiguous.
//! Table positions are hashes, so they cannot be steered onto account keys.
//! The tree (`tree.rs`) is kept in memory with cached hashes; a block
//! rehashes the changed leaves and the nodes on their paths only.
//!
//! # Persistence
//!
//! Everything the node must store comes back as [`StateWrite`]s, meant to be
//! committed atomically with the block:
//!
//! | key | value |
//! | --- | --- |
//! | `a/` + 32-byte account key | `u64le(balance) \|\| u64le(nonce)` |
//! | `t/` + `u64be(table id)` | the table's canonical bytes (`craps::Table::encode`) |
//! | `g/clock` | the roll clock (`game::RollClock::encode`) |
//! | `R/` + `u64be(height)` + `u16be(chunk)` | `0x01 \|\| postcard(Vec<Receipt>)`: the block's receipts, [`RECEIPTS_PER_CHUNK`] per value |
//! | `r/` + 32-byte tx id | `0x01 \|\| postcard(Receipt)`: written by earlier versions, read as a fallback, never written now |
//! | `o/` + `u64be(table)` + `u64be(roll number)` | `0x01 \|\| postcard(TableRoll)`: roll history, not in the root |
//! | `h/` + `u64be(height)` | 32-byte state root after that height (big-endian so heights sort) |
//! | `m/format` | `0x01` |
//! | `m/supply` | `u64le` chips created at genesis |
//! | `m/height` | `u64le` last executed height |
//! | `m/committed_tx` | `u64le` transactions executed since genesis |
//!
//! Receipts are stored per block under a key that only grows with the
//! height, so a block's receipts are appended at the right edge of the B-tree:
//! a few pages per block instead of one random leaf per transaction (which was
//! the largest cost on the commit path; see BENCHMARKS.md). Finding a receipt
//! by transaction id goes through a separate index (`engine::indexer`) built
//! off the commit path from these entries.
//!
//! A receipt is **not** persisted when its transaction's nonce was already
//! used (`bad_nonce` with `got < expected`), nor twice within one block: the
//! same bytes may have been committed earlier, and a replay (a block that
//! repeats a transaction, which happens honestly when two leaders both had it)
//! must not overwrite the receipt that says what it did ([`persisted_receipts`]).
//! Those receipts are still in [`BlockResult::receipts`], one per transaction
//! entry.

use super::beacon_entry::BeaconEntry;
use super::craps::{GameError, Table};
use super::game::{
    self, clock_leaf, clock_tree_key, table_leaf, table_tree_key, BeaconVerdict, GameAction,
    GameConfig, GameState, RollClock, TableRoll,
};
use super::genesis::AppGenesis;
use super::payload::{split_payload, PayloadError, MAX_TXS_PER_BLOCK};
use super::tree::Tree;
use super::tx::{tx_hash, Action, SignedTx, Transaction};
use super::verify::{verify_txs, VerifiedCache};
use bitcraps_crypto::fastmap::{map_with_capacity, set_with_capacity, FastMap, FastSet};
use bitcraps_crypto::{hash, Hash32, PublicKey};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// One key-value write (`None` deletes), identical to the storage layer's
/// `AppWrite`, defined here so the application does not need the server feature.
pub type StateWrite = (Vec<u8>, Option<Vec<u8>>);

/// Most writes one block can produce: two accounts per entry, its receipt
/// chunks, the tables, the root and the meta keys. The store's per-commit
/// write limit must be at least this, or a block full of tiny distinct
/// entries could never be stored.
pub const MAX_STATE_WRITES_PER_BLOCK: usize =
    2 * MAX_TXS_PER_BLOCK + MAX_RECEIPT_CHUNKS + 2 * game::MAX_OPEN_TABLES + 8;

/// Receipts stored per value. A chunk of the largest receipts (~70 bytes
/// each) stays far below the store's 1 MiB value limit.
pub const RECEIPTS_PER_CHUNK: usize = 4_096;

/// Most receipt chunks one block can have.
pub const MAX_RECEIPT_CHUNKS: usize = MAX_TXS_PER_BLOCK.div_ceil(RECEIPTS_PER_CHUNK);

const ACCOUNT_PREFIX: &[u8] = b"a/";
const RECEIPT_PREFIX: &[u8] = b"r/";
const BLOCK_RECEIPTS_PREFIX: &[u8] = b"R/";
const ROOT_PREFIX: &[u8] = b"h/";
const META_FORMAT: &[u8] = b"m/format";
const META_HEIGHT: &[u8] = b"m/height";
const META_COMMITTED_TX: &[u8] = b"m/committed_tx";
const META_SUPPLY: &[u8] = b"m/supply";
const STATE_FORMAT: u8 = 1;
const RECEIPT_FORMAT: u8 = 1;
const ACCOUNT_VALUE_BYTES: usize = 16;

/// A player's chips and the nonce their next transaction must carry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance: u64,
    pub nonce: u64,
}

/// Why an executed transaction had no effect (or only consumed its nonce).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Rejection {
    #[error("the payload entry is not a valid transaction")]
    Malformed,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("bad nonce: the account expects {expected}, the transaction has {got}")]
    BadNonce { expected: u64, got: u64 },
    #[error("insufficient funds: balance {balance}, needed {needed}")]
    InsufficientFunds { balance: u64, needed: u64 },
    #[error("a transfer must move at least one chip")]
    ZeroAmount,
    /// The craps rules refused the action (see [`GameError`]).
    #[error("{0}")]
    Game(GameError),
    #[error("there is no table {table}")]
    NoSuchTable { table: u64 },
    #[error("betting is closed until the dice for beacon round {round} are rolled")]
    BettingClosed { round: u64 },
    #[error("this chain has no dice beacon, so it takes no bets")]
    NoBeacon,
    #[error("at most {max} tables may be open at once")]
    TooManyTables { max: u64 },
}

impl From<GameError> for Rejection {
    fn from(e: GameError) -> Self {
        Rejection::Game(e)
    }
}

impl Rejection {
    /// Stable machine-readable code (API, metrics).
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::BadSignature => "bad_signature",
            Rejection::BadNonce { .. } => "bad_nonce",
            Rejection::InsufficientFunds { .. } => "insufficient_funds",
            Rejection::ZeroAmount => "zero_amount",
            Rejection::Game(e) => e.code(),
            Rejection::NoSuchTable { .. } => "no_such_table",
            Rejection::BettingClosed { .. } => "betting_closed",
            Rejection::NoBeacon => "no_beacon",
            Rejection::TooManyTables { .. } => "too_many_tables",
        }
    }
}

/// What happened to one payload entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Transaction id ([`tx_hash`] of the entry's bytes).
    pub hash: Hash32,
    pub height: u64,
    /// Position in the block's payload.
    pub index: u32,
    pub result: Result<(), Rejection>,
}

/// The outcome of executing one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockResult {
    /// One per payload entry, in order.
    pub receipts: Vec<Receipt>,
    /// To persist atomically with the block (see the module doc for the keys).
    pub writes: Vec<StateWrite>,
    pub state_root: Hash32,
    pub accepted: u32,
    pub rejected: u32,
    /// Set when the payload framing was invalid (the block executed nothing).
    pub payload_error: Option<PayloadError>,
    /// What the block's beacon entry did, if it had one.
    pub beacon: Option<BeaconVerdict>,
    /// The tables the beacon entry rolled, in table order.
    pub rolls: Vec<TableRoll>,
}

/// Refusal to execute a block at all (a caller bug, not a property of the block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    #[error("block height {got} does not follow the executed height (expected {expected})")]
    WrongHeight { expected: u64, got: u64 },
}

/// The application state: every account, plus the Merkle tree over them.
#[derive(Clone)]
pub struct AppState {
    accounts: BTreeMap<PublicKey, Account>,
    tree: Tree,
    /// `tree.root()`, kept current after every change so reads need no `&mut`.
    root: Hash32,
    height: u64,
    committed_tx: u64,
    /// Craps tables and the roll clock.
    game: GameState,
    /// Chips created at genesis: balances plus table escrow always add up to it.
    supply: u64,
}

/// Where the chips are. `balances + escrow == genesis` at every height.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Supply {
    /// Sum of all account balances.
    pub balances: u128,
    /// Chips held by tables: bankrolls, bets in play and players' rails.
    pub escrow: u128,
    /// Chips created at genesis.
    pub genesis: u64,
}

impl Supply {
    /// The conservation check: no chip was created or destroyed.
    pub fn conserved(&self) -> bool {
        self.balances + self.escrow == u128::from(self.genesis)
    }
}

/// The block fields execution depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockContext<'a> {
    pub chain_id: &'a str,
    pub height: u64,
    /// The block's agreed timestamp: the only time the game sees.
    pub timestamp_ms: u64,
    /// Return the block's receipt chunks in [`BlockResult::writes`]. Off
    /// for a node that keeps no receipts (`[node] index_receipts = false`);
    /// receipts are not state, so the root is the same either way.
    pub store_receipts: bool,
}

impl fmt::Debug for AppState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never dump 100k accounts into a log line.
        f.debug_struct("AppState")
            .field("height", &self.height)
            .field("accounts", &self.accounts.len())
            .field("committed_tx", &self.committed_tx)
            .field("tables", &self.game.tables.len())
            .finish()
    }
}

impl AppState {
    /// The state at height 0.
    ///
    /// `g` should have passed [`AppGenesis::validate`]. For an invalid one the
    /// result is still deterministic: duplicate accounts are merged, and
    /// balances are clamped so the total supply fits in u64 (which is what makes
    /// overflow during execution impossible).
    pub fn genesis(g: &AppGenesis) -> AppState {
        let mut accounts: BTreeMap<PublicKey, Account> = BTreeMap::new();
        let mut total: u64 = 0;
        for a in &g.allocations {
            let grant = a.balance.min(u64::MAX - total);
            total += grant;
            accounts.entry(a.account).or_default().balance += grant;
        }
        AppState::build(accounts, GameState::new(game_config(g)), 0, 0, total)
    }

    /// Everything to persist for the genesis state.
    pub fn genesis_writes(&self) -> Vec<StateWrite> {
        let mut w: Vec<StateWrite> = self
            .accounts
            .iter()
            .map(|(k, a)| (account_key(k), Some(encode_account(a))))
            .collect();
        w.push((META_FORMAT.to_vec(), Some(vec![STATE_FORMAT])));
        w.push((
            META_SUPPLY.to_vec(),
            Some(self.supply.to_le_bytes().to_vec()),
        ));
        w.push((game::CLOCK_KEY.to_vec(), Some(self.game.clock.encode())));
        self.push_height_writes(&mut w);
        w
    }

    /// Rebuilds the state from persisted entries (any order).
    ///
    /// Needs every account entry, the meta keys and the root of the current
    /// height, which it checks against the rebuilt tree. Receipts and older
    /// roots may be included or left out; their keys are checked for shape but
    /// their values are not decoded (there may be millions). Unknown keys,
    /// malformed values and a root mismatch are errors.
    pub fn load(
        g: &AppGenesis,
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<AppState, String> {
        let mut accounts = BTreeMap::new();
        let mut game = GameState::new(game_config(g));
        let (mut clock, mut supply) = (None, None);
        let mut roots: BTreeMap<u64, Hash32> = BTreeMap::new();
        let (mut format, mut height, mut committed_tx) = (None, None, None);
        for (k, v) in entries {
            if let Some(rest) = k.strip_prefix(ACCOUNT_PREFIX) {
                let key = <[u8; 32]>::try_from(rest)
                    .ok()
                    .and_then(|b| PublicKey::from_bytes(&b).ok())
                    .ok_or_else(|| format!("bad account key {}", hex::encode(&k)))?;
                let acct = decode_account(&v)?;
                if accounts.insert(key, acct).is_some() {
                    return Err(format!("account {key} appears twice"));
                }
            } else if let Some(id) = game::parse_table_key(&k) {
                let id = id?;
                let table = Table::decode(&v).map_err(|e| format!("table {id}: {e}"))?;
                if table.id != id {
                    return Err(format!("table stored under {id} has id {}", table.id));
                }
                game.tables.insert(id, table);
            } else if k == game::CLOCK_KEY {
                clock = Some(RollClock::decode(&v)?);
            } else if k == META_SUPPLY {
                supply = Some(decode_u64(&v).ok_or("m/supply is not a u64")?);
            } else if let Some(ok) = game::is_roll_key(&k) {
                if !ok {
                    return Err(format!("bad roll key {}", hex::encode(&k)));
                }
            } else if let Some(rest) = k.strip_prefix(RECEIPT_PREFIX) {
                if rest.len() != 32 {
                    return Err(format!("bad receipt key {}", hex::encode(&k)));
                }
            } else if k.starts_with(BLOCK_RECEIPTS_PREFIX) {
                if parse_block_receipts_key(&k).is_none() {
                    return Err(format!("bad block receipts key {}", hex::encode(&k)));
                }
            } else if let Some(rest) = k.strip_prefix(ROOT_PREFIX) {
                let h = <[u8; 8]>::try_from(rest)
                    .map(u64::from_be_bytes)
                    .map_err(|_| format!("bad root key {}", hex::encode(&k)))?;
                let r = <[u8; 32]>::try_from(v.as_slice())
                    .map_err(|_| format!("root at height {h} is not 32 bytes"))?;
                roots.insert(h, Hash32(r));
            } else if k == META_FORMAT {
                format = Some(v);
            } else if k == META_HEIGHT {
                height = Some(decode_u64(&v).ok_or("m/height is not a u64")?);
            } else if k == META_COMMITTED_TX {
                committed_tx = Some(decode_u64(&v).ok_or("m/committed_tx is not a u64")?);
            } else {
                return Err(format!("unexpected state key {}", hex::encode(&k)));
            }
        }
        if format.as_deref() != Some(&[STATE_FORMAT][..]) {
            return Err(format!(
                "state format is {format:?}, expected [{STATE_FORMAT}]"
            ));
        }
        let height = height.ok_or("m/height missing")?;
        let committed_tx = committed_tx.ok_or("m/committed_tx missing")?;
        game.clock = clock.ok_or("g/clock missing")?;
        let supply = supply.ok_or("m/supply missing")?;
        if let Some((h, _)) = roots.range(height.saturating_add(1)..).next() {
            return Err(format!(
                "root stored for height {h}, beyond the executed height {height}"
            ));
        }
        let stored_root = *roots
            .get(&height)
            .ok_or_else(|| format!("no state root stored for height {height}"))?;
        let state = AppState::build(accounts, game, height, committed_tx, supply);
        let root = state.state_root();
        if root != stored_root {
            return Err(format!(
                "rebuilt state root {root} differs from the stored root {stored_root} at height {height}"
            ));
        }
        Ok(state)
    }

    fn build(
        accounts: BTreeMap<PublicKey, Account>,
        game: GameState,
        height: u64,
        committed_tx: u64,
        supply: u64,
    ) -> AppState {
        let mut tree = Tree::default();
        for (k, a) in &accounts {
            tree.upsert(k.as_bytes(), leaf_hash(k, a));
        }
        for (id, t) in &game.tables {
            tree.upsert(&table_tree_key(*id), table_leaf(*id, &t.encode()));
        }
        tree.upsert(&clock_tree_key(), clock_leaf(&game.clock.encode()));
        let root = tree.root();
        AppState {
            accounts,
            tree,
            root,
            height,
            committed_tx,
            game,
            supply,
        }
    }

    /// The craps tables and the roll clock.
    pub fn game(&self) -> &GameState {
        &self.game
    }

    /// The beacon round whose output the dice are waiting for, if betting is
    /// closed. Validators sign this round once they have executed its block.
    pub fn awaiting_round(&self) -> Option<u64> {
        self.game.clock.awaiting_round
    }

    /// Where every chip is (the conservation check).
    pub fn supply(&self) -> Supply {
        Supply {
            balances: self.accounts.values().map(|a| u128::from(a.balance)).sum(),
            escrow: self.game.escrow(),
            genesis: self.supply,
        }
    }

    /// Last executed height (0 = genesis).
    pub fn height(&self) -> u64 {
        self.height
    }

    pub fn state_root(&self) -> Hash32 {
        self.root
    }

    /// Payload entries executed since genesis (accepted and rejected).
    pub fn committed_tx(&self) -> u64 {
        self.committed_tx
    }

    /// The account, or the default (empty) account if it does not exist.
    pub fn account(&self, key: &PublicKey) -> Account {
        self.accounts.get(key).copied().unwrap_or_default()
    }

    /// Number of accounts that exist.
    pub fn account_count(&self) -> usize {
        self.accounts.len()
    }

    /// Executes the block at `height` (must be `height() + 1`); see the module
    /// doc for the rules. On error nothing changed.
    pub fn execute_block(
        &mut self,
        block: BlockContext<'_>,
        payload: &[u8],
        cache: &mut VerifiedCache,
    ) -> Result<BlockResult, ExecError> {
        let BlockContext {
            chain_id,
            height,
            timestamp_ms,
            store_receipts,
        } = block;
        let expected = self.height.saturating_add(1);
        if height != expected || self.height == u64::MAX {
            return Err(ExecError::WrongHeight {
                expected,
                got: height,
            });
        }
        let (mut entries, payload_error) = match split_payload(payload) {
            Ok(e) => (e, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let clock_before = self.game.clock;
        let mut tables: BTreeSet<u64> = BTreeSet::new();

        // The beacon entry, if any, rolls the dice before any transaction of
        // this block: these transactions were not in when betting closed.
        let (mut beacon, mut rolls) = (None, Vec::new());
        let mut first_index = 0u32;
        if let Some(decoded) = entries.first().and_then(|e| BeaconEntry::decode(e)) {
            entries.remove(0);
            first_index = 1;
            match decoded {
                Ok(entry) => {
                    let (verdict, r) = self.game.apply_beacon(
                        chain_id,
                        height,
                        timestamp_ms,
                        entry.round,
                        &entry.signature,
                    );
                    beacon = Some(verdict);
                    tables.extend(r.iter().map(|r| r.table));
                    rolls = r;
                }
                Err(_) => {
                    beacon = Some(BeaconVerdict::Ignored {
                        round: 0,
                        reason: "malformed beacon entry",
                    })
                }
            }
        }

        // A cached decoded transaction stands for the same bytes (same id)
        // and has a good signature: reuse it instead of decoding again.
        let decoded: Vec<(Hash32, Option<SignedTx>)> = entries
            .iter()
            .map(|raw| {
                let id = tx_hash(raw);
                let tx = match cache.get(&id) {
                    Some(tx) => Some(*tx),
                    None => SignedTx::decode(raw).ok(),
                };
                (id, tx)
            })
            .collect();
        let verdicts = self.check_signatures(chain_id, &decoded, cache);

        let mut changed: BTreeSet<PublicKey> = BTreeSet::new();
        let mut receipts = Vec::with_capacity(decoded.len());
        let (mut accepted, mut rejected) = (0u32, 0u32);
        for (index, (id, tx)) in decoded.iter().enumerate() {
            let result = match tx {
                None => Err(Rejection::Malformed),
                Some(_) if !verdicts.get(id).copied().unwrap_or(false) => {
                    Err(Rejection::BadSignature)
                }
                Some(t) => self.apply(&t.tx, timestamp_ms, &mut changed, &mut tables),
            };
            if result.is_ok() {
                accepted += 1;
            } else {
                rejected += 1;
            }
            receipts.push(Receipt {
                hash: *id,
                height,
                // index < MAX_TXS_PER_BLOCK, which fits in u32.
                index: u32::try_from(index)
                    .unwrap_or(u32::MAX)
                    .saturating_add(first_index),
                result,
            });
        }
        self.game.end_block(height, timestamp_ms);

        for key in &changed {
            let acct = self.account(key);
            self.tree.upsert(key.as_bytes(), leaf_hash(key, &acct));
        }
        let mut writes: Vec<StateWrite> =
            Vec::with_capacity(changed.len() + receipts.len() + tables.len() + rolls.len() + 4);
        for id in &tables {
            if let Some(t) = self.game.tables.get(id) {
                let encoded = t.encode();
                self.tree
                    .upsert(&table_tree_key(*id), table_leaf(*id, &encoded));
                writes.push((game::table_key(*id), Some(encoded)));
            }
        }
        if self.game.clock != clock_before {
            let encoded = self.game.clock.encode();
            self.tree.upsert(&clock_tree_key(), clock_leaf(&encoded));
            writes.push((game::CLOCK_KEY.to_vec(), Some(encoded)));
        }
        for r in &rolls {
            writes.push((game::roll_key(r.table, r.seq), Some(game::encode_roll(r))));
        }
        self.root = self.tree.root();
        self.height = height;
        self.committed_tx = self.committed_tx.saturating_add(decoded.len() as u64);
        let state_root = self.root;

        for key in &changed {
            writes.push((account_key(key), Some(encode_account(&self.account(key)))));
        }
        if store_receipts {
            let stored: Vec<Receipt> = persisted_receipts(&receipts).copied().collect();
            for (chunk, part) in stored.chunks(RECEIPTS_PER_CHUNK).enumerate() {
                // chunk < MAX_RECEIPT_CHUNKS (16): fits in u16.
                let key = block_receipts_key(height, chunk as u16);
                writes.push((key, Some(encode_receipts(part))));
            }
        }
        self.push_height_writes(&mut writes);
        Ok(BlockResult {
            receipts,
            writes,
            state_root,
            accepted,
            rejected,
            payload_error,
            beacon,
            rolls,
        })
    }

    /// Signature verdict per distinct id: cached ids are good, the rest are
    /// batch-verified once each (a block may repeat an entry).
    fn check_signatures(
        &self,
        chain_id: &str,
        decoded: &[(Hash32, Option<SignedTx>)],
        cache: &mut VerifiedCache,
    ) -> FastMap<Hash32, bool> {
        let mut verdicts: FastMap<Hash32, bool> = map_with_capacity(decoded.len());
        let mut pending: Vec<(Hash32, &SignedTx)> = Vec::new();
        for (id, tx) in decoded {
            let Some(tx) = tx else { continue };
            if verdicts.contains_key(id) {
                continue;
            }
            if cache.contains(id) {
                verdicts.insert(*id, true);
            } else {
                verdicts.insert(*id, false);
                pending.push((*id, tx));
            }
        }
        let refs: Vec<&SignedTx> = pending.iter().map(|(_, t)| *t).collect();
        for ((id, tx), ok) in pending.iter().zip(verify_txs(chain_id, &refs)) {
            if ok {
                verdicts.insert(*id, true);
                cache.insert_tx(*id, **tx);
            }
        }
        verdicts
    }

    /// Applies one transaction whose signature is valid.
    fn apply(
        &mut self,
        tx: &Transaction,
        timestamp_ms: u64,
        changed: &mut BTreeSet<PublicKey>,
        tables: &mut BTreeSet<u64>,
    ) -> Result<(), Rejection> {
        let mut sender = self.account(&tx.from);
        if tx.nonce != sender.nonce {
            return Err(Rejection::BadNonce {
                expected: sender.nonce,
                got: tx.nonce,
            });
        }
        // 2^64 transactions from one account cannot happen; saturating keeps
        // this total rather than panicking.
        sender.nonce = sender.nonce.saturating_add(1);
        self.accounts.insert(tx.from, sender);
        changed.insert(tx.from);
        let Some(action) = GameAction::of(&tx.action) else {
            let Action::Transfer { to, amount } = tx.action else {
                return Ok(());
            };
            if amount == 0 {
                return Err(Rejection::ZeroAmount);
            }
            self.debit(&tx.from, amount)?;
            self.credit(&to, amount);
            changed.insert(to);
            return Ok(());
        };
        // The game checks the balance it is given before it changes anything,
        // so the debit below cannot fail after the table changed.
        let (table, funds) = self
            .game
            .apply(tx.from, sender.balance, action, timestamp_ms)?;
        match funds {
            game::Funds::Debit(amount) => self.debit(&tx.from, amount)?,
            game::Funds::Credit(amount) => self.credit(&tx.from, amount),
        }
        tables.insert(table);
        Ok(())
    }

    fn debit(&mut self, key: &PublicKey, amount: u64) -> Result<(), Rejection> {
        let acct = self.accounts.entry(*key).or_default();
        if acct.balance < amount {
            return Err(Rejection::InsufficientFunds {
                balance: acct.balance,
                needed: amount,
            });
        }
        acct.balance -= amount;
        Ok(())
    }

    /// Cannot saturate: every balance is part of the supply, which fits in u64.
    fn credit(&mut self, key: &PublicKey, amount: u64) {
        let acct = self.accounts.entry(*key).or_default();
        acct.balance = acct.balance.saturating_add(amount);
    }

    fn push_height_writes(&self, w: &mut Vec<StateWrite>) {
        w.push((root_key(self.height), Some(self.state_root().0.to_vec())));
        w.push((
            META_HEIGHT.to_vec(),
            Some(self.height.to_le_bytes().to_vec()),
        ));
        w.push((
            META_COMMITTED_TX.to_vec(),
            Some(self.committed_tx.to_le_bytes().to_vec()),
        ));
    }

    /// Number of tree hashes computed since this state was built (tests and
    /// benchmarks check that roots are incremental).
    pub fn tree_hashes_computed(&self) -> u64 {
        self.tree.hashes
    }
}

fn game_config(g: &AppGenesis) -> GameConfig {
    GameConfig {
        beacon: g.beacon.clone(),
        roll_interval_ms: g.roll_interval_ms,
    }
}

/// Store key of an account.
pub fn account_key(k: &PublicKey) -> Vec<u8> {
    [ACCOUNT_PREFIX, k.as_bytes()].concat()
}

fn encode_account(a: &Account) -> Vec<u8> {
    let mut v = Vec::with_capacity(ACCOUNT_VALUE_BYTES);
    v.extend_from_slice(&a.balance.to_le_bytes());
    v.extend_from_slice(&a.nonce.to_le_bytes());
    v
}

/// Decodes an account value (exactly 16 bytes).
pub fn decode_account(v: &[u8]) -> Result<Account, String> {
    if v.len() != ACCOUNT_VALUE_BYTES {
        return Err(format!(
            "account value is {} bytes, expected {ACCOUNT_VALUE_BYTES}",
            v.len()
        ));
    }
    let (b, n) = v.split_at(8);
    Ok(Account {
        balance: decode_u64(b).ok_or("bad balance")?,
        nonce: decode_u64(n).ok_or("bad nonce")?,
    })
}

/// The receipts of `receipts` (one block's, in payload order) that are
/// stored: not a replay of an already used nonce, and each id once (the
/// first). Everything that stores or indexes receipts uses this one rule.
pub fn persisted_receipts(receipts: &[Receipt]) -> impl Iterator<Item = &Receipt> {
    let mut seen: FastSet<Hash32> = set_with_capacity(receipts.len());
    receipts
        .iter()
        .filter(move |r| !is_replay(r) && seen.insert(r.hash))
}

/// The receipt of a transaction whose nonce was already used: the same
/// signed bytes committed again. Never stored, so it cannot hide the receipt
/// of what the transaction did.
pub fn is_replay(r: &Receipt) -> bool {
    matches!(r.result, Err(Rejection::BadNonce { expected, got }) if got < expected)
}

/// Key prefix of every receipt chunk of the block at `height`.
pub fn block_receipts_prefix(height: u64) -> Vec<u8> {
    [BLOCK_RECEIPTS_PREFIX, &height.to_be_bytes()].concat()
}

/// Store key of chunk `chunk` of the receipts of the block at `height`.
pub fn block_receipts_key(height: u64, chunk: u16) -> Vec<u8> {
    [
        BLOCK_RECEIPTS_PREFIX,
        &height.to_be_bytes(),
        &chunk.to_be_bytes(),
    ]
    .concat()
}

/// `(height, chunk)` of a [`block_receipts_key`], `None` for any other key.
pub fn parse_block_receipts_key(key: &[u8]) -> Option<(u64, u16)> {
    let rest = key.strip_prefix(BLOCK_RECEIPTS_PREFIX)?;
    let (h, c) = (rest.len() == 10).then(|| rest.split_at(8))?;
    Some((
        u64::from_be_bytes(h.try_into().ok()?),
        u16::from_be_bytes(c.try_into().ok()?),
    ))
}

/// Encodes a receipt chunk value ([`decode_receipts`] reads it).
pub fn encode_receipts(rs: &[Receipt]) -> Vec<u8> {
    let mut v = vec![RECEIPT_FORMAT];
    // Cannot fail for plain structs; an empty body would fail to decode.
    if let Ok(body) = postcard::to_stdvec(rs) {
        v.extend_from_slice(&body);
    }
    v
}

/// Decodes a receipt chunk value (strict: version byte, no trailing bytes,
/// at most [`RECEIPTS_PER_CHUNK`] receipts).
pub fn decode_receipts(v: &[u8]) -> Result<Vec<Receipt>, String> {
    let rs: Vec<Receipt> = decode_versioned(v, "receipt chunk")?;
    if rs.len() > RECEIPTS_PER_CHUNK {
        return Err(format!(
            "receipt chunk holds {} receipts, at most {RECEIPTS_PER_CHUNK} allowed",
            rs.len()
        ));
    }
    Ok(rs)
}

/// Store key of a receipt in the per-transaction layout of earlier versions
/// (read as a fallback, never written).
pub fn receipt_key(h: &Hash32) -> Vec<u8> {
    [RECEIPT_PREFIX, h.as_bytes()].concat()
}

/// Decodes a [`receipt_key`] value (strict: version byte, no trailing bytes).
pub fn decode_receipt(v: &[u8]) -> Result<Receipt, String> {
    decode_versioned(v, "receipt")
}

fn decode_versioned<T: serde::de::DeserializeOwned>(v: &[u8], what: &str) -> Result<T, String> {
    let (&version, body) = v.split_first().ok_or_else(|| format!("empty {what}"))?;
    if version != RECEIPT_FORMAT {
        return Err(format!("unknown {what} format {version}"));
    }
    let (r, rest) = postcard::take_from_bytes::<T>(body).map_err(|e| format!("bad {what}: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after a {what}", rest.len()));
    }
    Ok(r)
}

/// Store key of the state root after executing `height`.
pub fn root_key(height: u64) -> Vec<u8> {
    [ROOT_PREFIX, &height.to_be_bytes()].concat()
}

fn decode_u64(v: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(v).ok().map(u64::from_le_bytes)
}

/// Leaf hash of an account (see the module doc).
pub fn leaf_hash(key: &PublicKey, a: &Account) -> Hash32 {
    let mut buf = [0u8; 49];
    buf[1..33].copy_from_slice(key.as_bytes());
    buf[33..41].copy_from_slice(&a.balance.to_le_bytes());
    buf[41..49].copy_from_slice(&a.nonce.to_le_bytes());
    hash(&buf)
}

#[cfg(test)]
#[path = "tests/state.rs"]
mod tests;
