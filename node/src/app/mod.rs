//! The application the validators agree on: accounts, signed chip transfers
//! and the craps game (tables, bets, dice from the validators' threshold
//! beacon). Pure and deterministic: no clock,
//! no I/O, no hash-map iteration order; the same blocks give the same state
//! root on every machine. It does not depend on the `server` feature, so the
//! simulator and the benches can use it.
//!
//! * [`tx`]: signed transactions, their canonical encoding and ids.
//! * [`payload`]: the framing of transactions in a block payload.
//! * [`verify`]: exact batch signature verification and the verdict cache.
//! * [`state`]: accounts, block execution rules, receipts, the state root and
//!   the key-value layout the node persists.
//! * [`craps`]: the casino rules engine: bets, payouts, a table's chips.
//! * [`game`]: tables in the state, and the roll clock that decides when the
//!   dice roll and which beacon round rolls them (the fairness argument).
//! * [`beacon_entry`]: how a recovered beacon signature rides in a block.
//! * [`mempool`]: pending transactions, FIFO with per-account nonce order.
//! * [`genesis`]: who holds chips at height 0.

pub mod beacon_entry;
pub mod craps;
pub mod game;
pub mod genesis;
pub mod mempool;
pub mod payload;
pub mod state;
pub(crate) mod tree;
pub mod tx;
pub mod verify;

pub use genesis::{Allocation, AppGenesis};
pub use mempool::{AdmitError, Mempool, MempoolConfig};
pub use payload::{split_payload, PayloadBuilder, PayloadError, MAX_TXS_PER_BLOCK};
pub use state::{
    account_key, decode_account, decode_receipt, receipt_key, root_key, Account, AppState,
    BlockContext, BlockResult, ExecError, Receipt, Rejection, StateWrite, Supply,
    MAX_STATE_WRITES_PER_BLOCK,
};
pub use tx::{tx_hash, Action, SignedTx, Transaction, TxError, MAX_TX_BYTES};
pub use verify::{verify_txs, VerifiedCache};
