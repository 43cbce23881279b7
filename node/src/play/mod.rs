//! The player's side of BitCraps: what `bitcraps play` is built from, kept in
//! the library so tests and other clients (the localnet players) share it.
//!
//! * [`bets`]: bet names as typed (`pass`, `come-odds:6`) to and from
//!   [`crate::app::craps::BetKind`], with errors that list the valid names.
//! * [`wallet`]: one key against one node: sign with the next nonce, submit,
//!   wait (bounded) for the commit, retry game actions after
//!   `betting_closed`.
//! * [`watch`]: follow a table's rolls in order and describe rolls and
//!   settlements in words.
//! * [`explain`]: plain words for every rejection code.
//!
//! Why a library module and not just the CLI: the rules for talking to a
//! node (nonce from `pending_nonce`, retry only what is safe to retry,
//! bounded waits) are the same for every client, and tests exercise them
//! without spawning processes.

pub mod bets;
pub mod explain;
pub mod wallet;
pub mod watch;

pub use bets::{bet_name, parse_bet, BadBet, BET_NAMES};
pub use explain::explain;
pub use wallet::{PlayError, TxOutcome, Wallet, DEFAULT_WAIT_MS};
pub use watch::RollFeed;
