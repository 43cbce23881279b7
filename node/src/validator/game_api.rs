//! The game's read API on a running validator: tables, roll history, the roll
//! clock and the chip supply, read from the store (tables, clock, rolls) and
//! the engine's status (supply). Committed state only: what every honest
//! node agrees on.

use super::service::internal;
use crate::api::{GameView, RailView, SupplyView, TableDetailView, TableView};
use crate::app::craps::Table;
use crate::app::game::{
    decode_roll, roll_key, roll_key_end, table_key, RollClock, TableRoll, CLOCK_KEY,
};
use crate::chainspec::ChainSpec;
use crate::engine::EngineClient;
use crate::http::ApiError;

/// Most tables listed by `GET /api/v1/tables` (open ones are capped at
/// `MAX_OPEN_TABLES`; closed ones only add history).
pub const TABLES_MAX_LIST: usize = 2_048;
/// Largest `limit` of `GET /api/v1/tables/{id}/rolls`.
pub const ROLLS_MAX_LIMIT: usize = 100;

pub(super) fn table_view(t: &Table) -> TableView {
    let bets = t.bets();
    TableView {
        id: t.id,
        house: t.house.to_hex(),
        min_bet: t.params.min_bet,
        max_bet: t.params.max_bet,
        bankroll: t.bankroll,
        reserved: t.reserved(),
        phase: t.phase,
        closed: t.closed,
        rolls: t.rolls,
        last_roll: t.last_roll,
        bets_in_play: bets.len(),
        stakes: bets.iter().fold(0u64, |a, b| a.saturating_add(b.stake)),
    }
}

fn read_table(engine: &EngineClient, id: u64) -> Result<Option<Table>, ApiError> {
    engine
        .reader()
        .app_get(&table_key(id))
        .map_err(internal)?
        .map(|v| Table::decode(&v).map_err(|e| ApiError::Internal(format!("table {id}: {e}"))))
        .transpose()
}

pub(super) fn tables(engine: &EngineClient) -> Result<Vec<TableView>, ApiError> {
    let start = table_key(0);
    let prefix = &start[..start.len() - 8];
    let rows = engine
        .reader()
        .app_scan(Some(&start), TABLES_MAX_LIST)
        .map_err(internal)?;
    let mut out = Vec::new();
    for (k, v) in rows.iter().take_while(|(k, _)| k.starts_with(prefix)) {
        let t = Table::decode(v)
            .map_err(|e| ApiError::Internal(format!("table {}: {e}", hex::encode(k))))?;
        out.push(table_view(&t));
    }
    Ok(out)
}

pub(super) fn table(engine: &EngineClient, id: u64) -> Result<Option<TableDetailView>, ApiError> {
    Ok(read_table(engine, id)?.map(|t| TableDetailView {
        table: table_view(&t),
        bets: t.bets(),
        rails: t
            .rails()
            .into_iter()
            .map(|(player, amount)| RailView {
                player: player.to_hex(),
                amount,
            })
            .collect(),
    }))
}

/// Rolls of table `id` from roll number `since` (default: the last `limit`).
pub(super) fn rolls(
    engine: &EngineClient,
    id: u64,
    since: Option<u64>,
    limit: usize,
) -> Result<Option<Vec<TableRoll>>, ApiError> {
    let limit = limit.clamp(1, ROLLS_MAX_LIMIT);
    let Some(table) = read_table(engine, id)? else {
        return Ok(None);
    };
    let from = since
        .unwrap_or_else(|| table.rolls.saturating_sub(limit as u64 - 1))
        .max(1);
    // app_scan starts after the key it is given.
    let after = if from > 1 {
        roll_key(id, from - 1)
    } else {
        roll_key(id, 0)
    };
    let end = roll_key_end(id);
    let rows = engine
        .reader()
        .app_scan(Some(&after), limit)
        .map_err(internal)?;
    let mut out = Vec::new();
    for (k, v) in rows.iter().take_while(|(k, _)| *k < end) {
        out.push(
            decode_roll(v).map_err(|e| ApiError::Internal(format!("{}: {e}", hex::encode(k))))?,
        );
    }
    Ok(Some(out))
}

pub(super) fn game(engine: &EngineClient, spec: &ChainSpec) -> Result<GameView, ApiError> {
    let height = engine.status().height;
    let clock = engine
        .reader()
        .app_get(CLOCK_KEY)
        .map_err(internal)?
        .map(|v| RollClock::decode(&v).map_err(ApiError::Internal))
        .transpose()?
        .unwrap_or_default();
    let beacon = spec.app.beacon.as_ref();
    Ok(GameView {
        height,
        beacon: beacon.is_some(),
        beacon_threshold: beacon.map_or(0, |b| b.threshold),
        beacon_group_key: beacon.map(|b| hex::encode(b.group_key.to_bytes())),
        roll_interval_ms: spec.app.roll_interval_ms,
        betting_open: clock.awaiting_round.is_none(),
        awaiting_round: clock.awaiting_round,
        betting_deadline_ms: clock.betting_deadline_ms,
        rounds: clock.rounds,
        last_round: clock.last_round,
        tables: clock.next_table_id.saturating_sub(1),
    })
}

pub(super) fn supply(engine: &EngineClient) -> SupplyView {
    let status = engine.status();
    let s = status.supply;
    SupplyView {
        height: status.height,
        balances: u64::try_from(s.balances).unwrap_or(u64::MAX),
        escrow: u64::try_from(s.escrow).unwrap_or(u64::MAX),
        genesis: s.genesis,
        conserved: s.conserved(),
    }
}
