//! The houses of `bitcraps localnet`: a couple of funded accounts that open
//! the tables the simulated players play at.
//!
//! Why more than one house and more than one table: bets at different
//! tables touch different state records and every table rolls its own dice
//! from the same beacon round, which is what a real deployment looks like;
//! and a table holds at most 256 betting spots, so the table count grows
//! with the players ([`table_count`]).
//!
//! Table ids are assigned by execution. After the `OpenTable` transactions
//! commit, the houses' tables are found in `GET /api/v1/tables` by their
//! house key (fresh keys every run, so `--keep` never picks up old tables).

use super::client::NodeClient;
use super::error::LocalnetError;
use super::players::{submit_retrying, wait_committed_nonce};
use crate::app::craps::TableParams;
use crate::app::tx::{Action, Transaction};
use bitcraps_crypto::Keypair;
use tokio::sync::watch;

/// House accounts per run.
pub const HOUSES: usize = 2;
/// Chips each table starts with: far above the worst case of every bet the
/// players can have on it (spots are capped at [`TABLE_MAX_BET`], at most
/// 256 of them, the largest payout is 15:1), so `insufficient_bankroll`
/// never happens in a healthy run.
pub const TABLE_BANKROLL: u64 = 1_000_000_000;
/// Table limits (chips per spot).
pub const TABLE_MIN_BET: u64 = 1;
pub const TABLE_MAX_BET: u64 = 10_000;
/// Players seated at one table: with at most 12 spots each (see
/// `strategy::MAX_SPOTS_PER_PLAYER`) they stay below the 256-spot limit.
pub const PLAYERS_PER_TABLE: usize = 16;
/// Fewest and most tables a run opens.
pub const MIN_TABLES: usize = 2;
pub const MAX_TABLES: usize = 64;

/// Tables for `players` players.
pub fn table_count(players: usize) -> usize {
    players
        .div_ceil(PLAYERS_PER_TABLE)
        .clamp(MIN_TABLES, MAX_TABLES)
}

/// Chips house `h` (of [`HOUSES`]) needs to open its share of `tables`.
pub fn house_funds(h: usize, tables: usize) -> u64 {
    let mine = (0..tables).filter(|t| t % HOUSES == h).count();
    TABLE_BANKROLL.saturating_mul(u64::try_from(mine).unwrap_or(u64::MAX))
}

/// Opens `count` tables, table `i` by house `i % houses.len()`, through
/// `client`; waits for the commits and returns the new table ids in order.
pub async fn open_tables(
    chain_id: &str,
    houses: &[Keypair],
    count: usize,
    client: &NodeClient,
    stop: &mut watch::Receiver<bool>,
) -> Result<Vec<u64>, LocalnetError> {
    if houses.is_empty() || count == 0 {
        return Ok(Vec::new());
    }
    let mut nonces = Vec::with_capacity(houses.len());
    for h in houses {
        nonces.push(client.account(&h.public().to_hex()).await?.pending_nonce);
    }
    let params = TableParams {
        min_bet: TABLE_MIN_BET,
        max_bet: TABLE_MAX_BET,
    };
    let mut hashes = Vec::with_capacity(count);
    for i in 0..count {
        let h = i % houses.len();
        let (Some(house), Some(nonce)) = (houses.get(h), nonces.get_mut(h)) else {
            continue;
        };
        let tx = Transaction {
            from: house.public(),
            nonce: *nonce,
            action: Action::OpenTable {
                bankroll: TABLE_BANKROLL,
                params,
            },
        }
        .sign(chain_id, house);
        hashes.push(
            submit_retrying(client, hex::encode(tx.encode()), "opening a table", stop).await?,
        );
        *nonce += 1;
    }
    for (house, nonce) in houses.iter().zip(&nonces) {
        wait_committed_nonce(
            client,
            &house.public().to_hex(),
            *nonce,
            "opening tables",
            stop,
        )
        .await?;
    }
    let keys: Vec<String> = houses.iter().map(|h| h.public().to_hex()).collect();
    let mut ids: Vec<u64> = client
        .tables()
        .await?
        .into_iter()
        .filter(|t| keys.contains(&t.house))
        .map(|t| t.id)
        .collect();
    ids.sort_unstable();
    if ids.len() < count {
        // Say why the first refused one was refused.
        let mut why = String::from("unknown reason");
        for hash in &hashes {
            if let Ok(Some(v)) = client.tx(hash).await {
                if let Some(r) = v.result.filter(|r| r != "ok") {
                    why = r;
                    break;
                }
            }
        }
        return Err(LocalnetError::Funding(format!(
            "only {} of {count} tables opened ({why}); is the faucet rich enough for {} chips per table?",
            ids.len(),
            TABLE_BANKROLL
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_grow_with_players_within_bounds() {
        assert_eq!(table_count(1), MIN_TABLES);
        assert_eq!(table_count(16), 2);
        assert_eq!(table_count(33), 3);
        assert_eq!(table_count(1024), MAX_TABLES);
        assert!(1024usize.div_ceil(MAX_TABLES) <= PLAYERS_PER_TABLE);
    }

    #[test]
    fn houses_get_bankroll_for_their_share() {
        assert_eq!(house_funds(0, 2), TABLE_BANKROLL);
        assert_eq!(house_funds(1, 2), TABLE_BANKROLL);
        assert_eq!(house_funds(0, 3), 2 * TABLE_BANKROLL);
        assert_eq!(house_funds(1, 3), TABLE_BANKROLL);
        // The default faucet covers the most tables a run opens.
        let all: u64 = (0..HOUSES).map(|h| house_funds(h, MAX_TABLES)).sum();
        assert!(all < crate::home::DEFAULT_FAUCET_BALANCE / 10);
    }
}
