//! `bitcraps play`: a command-line wallet that plays craps against a node.
//!
//! Every transaction command signs with the key file's key, takes the chain
//! id from `/status` and the nonce from the account's `pending_nonce`,
//! submits, and waits (bounded by `--wait`) until the transaction is
//! committed; it prints `ok` or the rejection code in plain words and exits
//! 1 on anything but `ok`. Bets and removals wait for betting to be open and
//! are sent again after a `betting_closed` rejection (see
//! `bitcraps_node::play::wallet`). `--json` prints one JSON object per
//! result (`watch`: one per line), for scripts.

use super::{emit, CliResult, Context};
use bitcraps_crypto::{Keypair, PublicKey};
use bitcraps_node::api::{TableDetailView, TableRoll};
use bitcraps_node::app::craps::{BetKind, BetResult, TableParams};
use bitcraps_node::app::tx::Action;
use bitcraps_node::home::{self, HomeError};
use bitcraps_node::localnet::client::{http_client, NodeClient};
use bitcraps_node::localnet::parse_duration_ms;
use bitcraps_node::localnet::report::{short_hex, Table};
use bitcraps_node::play::watch::{
    describe_roll, describe_settlement, phase_text, result_name, roll_effect, settlements_of,
};
use bitcraps_node::play::{bet_name, parse_bet, PlayError, RollFeed, TxOutcome, Wallet};
use serde_json::json;
use std::path::{Path, PathBuf};

/// Most tables `balance` reads in detail (one request each) looking for the
/// player's rails and bets. The node lists at most 2048.
const MAX_TABLES_SCANNED: usize = 1_024;
/// How often `watch` asks for new rolls.
const WATCH_POLL_MS: u64 = 250;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Node HTTP URL (any validator of the chain).
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "http://127.0.0.1:9480"
    )]
    node: String,
    /// The player's key file (`play key` creates one).
    #[arg(long, global = true, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Print results as JSON (`watch`: one object per line).
    #[arg(long, global = true)]
    json: bool,
    /// Longest wait for a transaction to commit (and for betting to reopen),
    /// e.g. `30s`.
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = parse_duration_ms)]
    wait: u64,
    #[command(subcommand)]
    command: PlayCommand,
}

#[derive(clap::Subcommand, Debug)]
enum PlayCommand {
    /// Create the key file (mode 0600) if it does not exist; print its public key.
    Key,
    /// Balance, nonce, and your rails and bets at every table.
    Balance,
    /// List the tables: house, phase, limits, free bankroll, rolls.
    Tables,
    /// Open a table as its house: BANKROLL chips move to the table.
    Open {
        /// Chips the house puts on the table; every bet's worst case must fit.
        #[arg(long, value_name = "CHIPS")]
        bankroll: u64,
        /// Smallest stake on a spot.
        #[arg(long, value_name = "CHIPS", default_value_t = 1)]
        min_bet: u64,
        /// Largest stake on a spot (odds are limited by their flat bet instead).
        #[arg(long, value_name = "CHIPS")]
        max_bet: u64,
    },
    /// Put AMOUNT chips on BET at a table (adds to a spot you already have).
    Bet {
        /// The table's id (see `tables`).
        #[arg(long, value_name = "ID")]
        table: u64,
        /// pass, dont-pass, pass-odds, dont-pass-odds, come, dont-come,
        /// come-odds:N, dont-come-odds:N, field, place:N, hard:N, any-seven,
        /// any-craps, yo
        #[arg(value_name = "BET", value_parser = parse_bet_arg)]
        bet: BetKind,
        /// Chips to put on the spot (odds: at most 3-4-5x the flat bet, lay 6x).
        #[arg(value_name = "AMOUNT", value_parser = clap::value_parser!(u64).range(1..))]
        amount: u64,
    },
    /// Take one of your bets down (where the rules allow it).
    Remove {
        /// The table's id (see `tables`).
        #[arg(long, value_name = "ID")]
        table: u64,
        /// The spot to take down, named as for `bet` (also
        /// `dont-come-point:N`).
        #[arg(value_name = "BET", value_parser = parse_bet_arg)]
        bet: BetKind,
    },
    /// Move your rail (settled winnings) at a table to your balance.
    Withdraw {
        /// The table's id (see `tables`).
        #[arg(long, value_name = "ID")]
        table: u64,
    },
    /// House only: close a table to new bets and take back the free bankroll.
    Close {
        /// The table's id (see `tables`).
        #[arg(long, value_name = "ID")]
        table: u64,
    },
    /// Send chips to another key (e.g. from the faucet key to a player).
    Transfer {
        /// The recipient's public key (64 hex characters).
        #[arg(long, value_name = "HEX", value_parser = parse_key_arg)]
        to: PublicKey,
        /// Chips to send.
        #[arg(long, value_name = "CHIPS", value_parser = clap::value_parser!(u64).range(1..))]
        amount: u64,
    },
    /// Follow a table live: every roll, your settlements, balance and rail.
    Watch {
        /// The table's id (see `tables`).
        #[arg(long, value_name = "ID")]
        table: u64,
        /// Stop after this long, e.g. `30s`; 0 watches until Ctrl-C.
        #[arg(long, value_name = "DURATION", default_value = "0", value_parser = parse_duration_ms)]
        duration: u64,
        /// Stop after this many rolls (exit 1 if `--duration` ends first).
        #[arg(long, value_name = "N")]
        rolls: Option<u64>,
        /// Start at roll number N of the table (1 = its first roll), so no
        /// roll is missed between a bet and the watch; default: new rolls only.
        #[arg(long, value_name = "N")]
        since: Option<u64>,
    },
}

fn parse_bet_arg(text: &str) -> Result<BetKind, String> {
    parse_bet(text).map_err(|e| e.to_string())
}

fn parse_key_arg(text: &str) -> Result<PublicKey, String> {
    PublicKey::from_hex(text.trim())
        .map_err(|e| format!("not a public key (64 hex characters): {e}"))
}

pub fn run(_ctx: &Context, args: Args) -> CliResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the tokio runtime: {e}"))?;
    runtime.block_on(play(args))
}

/// What every subcommand needs.
struct Session {
    client: NodeClient,
    key_path: Option<PathBuf>,
    json: bool,
    wait_ms: u64,
}

impl Session {
    fn key_path(&self) -> CliResult<&Path> {
        self.key_path.as_deref().ok_or_else(|| {
            "this command needs the player's key: pass --key FILE (create one with `bitcraps play --key FILE key`)".into()
        })
    }

    fn keypair(&self) -> CliResult<Keypair> {
        let path = self.key_path()?;
        home::read_key_file(path).map_err(|e| match e {
            HomeError::KeyMissing { .. } => format!(
                "key file {} does not exist; create it with `bitcraps play --key {} key`",
                path.display(),
                path.display()
            )
            .into(),
            other => other.into(),
        })
    }

    async fn wallet(&self) -> CliResult<Wallet> {
        let key = self.keypair()?;
        Ok(Wallet::connect(self.client.clone(), key, self.wait_ms).await?)
    }

    /// Prints a committed transaction's result; an error if it was rejected.
    fn report(&self, what: &str, outcome: &TxOutcome, extra: serde_json::Value) -> CliResult {
        let retried = if outcome.attempts > 1 {
            format!(", sent {} times after betting_closed", outcome.attempts)
        } else {
            String::new()
        };
        if self.json {
            let mut v = json!({
                "ok": outcome.is_ok(),
                "result": outcome.result,
                "message": outcome.words(),
                "hash": outcome.hash,
                "height": outcome.height,
                "attempts": outcome.attempts,
                "correlation_id": outcome.correlation_id,
            });
            if let (Some(map), serde_json::Value::Object(more)) = (v.as_object_mut(), extra) {
                map.extend(more);
            }
            emit(&format!("{v}\n"))?;
        } else if outcome.is_ok() {
            emit(&format!(
                "ok: {what} (tx {}, block {}{retried}, correlation {})\n",
                short_hex(&outcome.hash),
                outcome.height,
                outcome.correlation_id
            ))?;
        }
        if outcome.is_ok() {
            return Ok(());
        }
        Err(format!(
            "rejected: {}: {} ({what}; tx {} in block {}{retried}; correlation {})",
            outcome.result,
            outcome.words(),
            short_hex(&outcome.hash),
            outcome.height,
            outcome.correlation_id
        )
        .into())
    }
}

async fn play(args: Args) -> CliResult {
    let http = http_client()?;
    let session = Session {
        client: NodeClient::new(args.node.clone(), http),
        key_path: args.key.clone(),
        json: args.json,
        wait_ms: args.wait,
    };
    match args.command {
        PlayCommand::Key => key(&session),
        PlayCommand::Balance => balance(&session).await,
        PlayCommand::Tables => tables(&session).await,
        PlayCommand::Open {
            bankroll,
            min_bet,
            max_bet,
        } => open(&session, bankroll, TableParams { min_bet, max_bet }).await,
        PlayCommand::Bet { table, bet, amount } => {
            if matches!(
                bet,
                BetKind::ComePoint { .. } | BetKind::DontComePoint { .. }
            ) {
                return Err(format!(
                    "{} cannot be bet directly: a come (or don't come) bet moves there when its number rolls; bet `come` or `dont-come`",
                    bet_name(&bet)
                )
                .into());
            }
            let wallet = session.wallet().await?;
            let outcome = wallet
                .send_game(Action::PlaceBet { table, bet, amount })
                .await?;
            let what = format!("bet {amount} on {} at table {table}", bet_name(&bet));
            session.report(
                &what,
                &outcome,
                json!({"table": table, "bet": bet_name(&bet), "amount": amount}),
            )
        }
        PlayCommand::Remove { table, bet } => {
            let wallet = session.wallet().await?;
            let outcome = wallet.send_game(Action::RemoveBet { table, bet }).await?;
            let what = format!("took {} down at table {table}", bet_name(&bet));
            session.report(
                &what,
                &outcome,
                json!({"table": table, "bet": bet_name(&bet)}),
            )
        }
        PlayCommand::Withdraw { table } => {
            let wallet = session.wallet().await?;
            let before = rail_of(&session.client, table, &wallet.public().to_hex()).await?;
            let outcome = wallet.send(Action::Withdraw { table }).await?;
            let what = format!("withdrew {before} chips from your rail at table {table}");
            session.report(&what, &outcome, json!({"table": table, "amount": before}))
        }
        PlayCommand::Close { table } => {
            let wallet = session.wallet().await?;
            let outcome = wallet.send(Action::CloseTable { table }).await?;
            session.report(
                &format!("closed table {table}"),
                &outcome,
                json!({"table": table}),
            )
        }
        PlayCommand::Transfer { to, amount } => {
            let wallet = session.wallet().await?;
            let outcome = wallet.send(Action::Transfer { to, amount }).await?;
            session.report(
                &format!("sent {amount} chips to {}", to.to_hex()),
                &outcome,
                json!({"to": to.to_hex(), "amount": amount}),
            )
        }
        PlayCommand::Watch {
            table,
            duration,
            rolls,
            since,
        } => watch(&session, table, duration, rolls, since).await,
    }
}

/// `play key`: create the key file if needed, print the public key.
fn key(s: &Session) -> CliResult {
    let path = s.key_path()?;
    let (key, created) = if path.exists() {
        (s.keypair()?, false)
    } else {
        let key = home::generate_key()?;
        home::write_key_file(path, &key, "player")?;
        (key, true)
    };
    let public = key.public().to_hex();
    if s.json {
        return emit(&format!(
            "{}\n",
            json!({"public_key": public, "created": created, "path": path.display().to_string()})
        ));
    }
    let how = if created { "created" } else { "already exists" };
    emit(&format!(
        "key file {} {how}\npublic key {public}\n",
        path.display()
    ))
}

/// The player's rail at `table` (0 if none). An error if there is no table.
async fn rail_of(client: &NodeClient, table: u64, me: &str) -> CliResult<u64> {
    let detail = client
        .table(table)
        .await
        .map_err(PlayError::from)?
        .ok_or_else(|| format!("there is no table {table} (see `bitcraps play tables`)"))?;
    Ok(rail_in(&detail, me))
}

fn rail_in(detail: &TableDetailView, me: &str) -> u64 {
    detail
        .rails
        .iter()
        .find(|r| r.player == me)
        .map_or(0, |r| r.amount)
}

/// `pass 10, place:6 12`
fn bets_in(detail: &TableDetailView, me: &str) -> Vec<(String, u64)> {
    detail
        .bets
        .iter()
        .filter(|b| b.player.to_hex() == me)
        .map(|b| (bet_name(&b.kind), b.stake))
        .collect()
}

fn bets_text(bets: &[(String, u64)]) -> String {
    if bets.is_empty() {
        return "none".into();
    }
    let v: Vec<String> = bets.iter().map(|(b, s)| format!("{b} {s}")).collect();
    v.join(", ")
}

/// `play balance`.
async fn balance(s: &Session) -> CliResult {
    let me = s.keypair()?.public().to_hex();
    let account = s.client.account(&me).await.map_err(PlayError::from)?;
    let tables = s.client.tables().await.map_err(PlayError::from)?;
    let mut rows = Vec::new();
    for t in tables.iter().take(MAX_TABLES_SCANNED) {
        let Some(detail) = s.client.table(t.id).await.map_err(PlayError::from)? else {
            continue;
        };
        let rail = rail_in(&detail, &me);
        let bets = bets_in(&detail, &me);
        if rail > 0 || !bets.is_empty() {
            rows.push((t.id, rail, bets));
        }
    }
    let truncated = tables.len() > MAX_TABLES_SCANNED;
    if s.json {
        let tables: Vec<serde_json::Value> = rows
            .iter()
            .map(|(id, rail, bets)| {
                let bets: Vec<serde_json::Value> = bets
                    .iter()
                    .map(|(b, stake)| json!({"bet": b, "stake": stake}))
                    .collect();
                json!({"table": id, "rail": rail, "bets": bets})
            })
            .collect();
        return emit(&format!(
            "{}\n",
            json!({
                "account": me,
                "balance": account.balance,
                "nonce": account.nonce,
                "pending_nonce": account.pending_nonce,
                "tables": tables,
                "tables_truncated": truncated,
            })
        ));
    }
    let mut out = format!(
        "account {me}\nbalance {} chips  nonce {}",
        account.balance, account.nonce
    );
    if account.pending_nonce > account.nonce {
        out.push_str(&format!(
            " ({} pending)",
            account.pending_nonce - account.nonce
        ));
    }
    out.push('\n');
    if rows.is_empty() {
        out.push_str("no rails or bets at any table\n");
    } else {
        let mut t = Table::new(["table", "rail", "bets in play"]);
        for (id, rail, bets) in &rows {
            t.row([id.to_string(), rail.to_string(), bets_text(bets)]);
        }
        out.push_str(&t.render());
    }
    if truncated {
        out.push_str(&format!(
            "(only the first {MAX_TABLES_SCANNED} of {} tables were checked)\n",
            tables.len()
        ));
    }
    emit(&out)
}

/// `play tables`.
async fn tables(s: &Session) -> CliResult {
    let tables = s.client.tables().await.map_err(PlayError::from)?;
    if s.json {
        let v = serde_json::to_value(&tables).map_err(|e| format!("encoding JSON: {e}"))?;
        return emit(&format!("{v}\n"));
    }
    if tables.is_empty() {
        return emit("no tables yet (open one with `bitcraps play open`)\n");
    }
    let mut t = Table::new([
        "id",
        "house",
        "state",
        "phase",
        "min",
        "max",
        "free bankroll",
        "bets",
        "rolls",
        "last roll",
    ]);
    for v in &tables {
        let last = v.last_roll.map_or_else(
            || "-".into(),
            |r| format!("{}+{}={}", r.d1, r.d2, r.total()),
        );
        t.row([
            v.id.to_string(),
            short_hex(&v.house),
            if v.closed { "closed" } else { "open" }.to_string(),
            phase_text(&v.phase),
            v.min_bet.to_string(),
            v.max_bet.to_string(),
            v.bankroll.saturating_sub(v.reserved).to_string(),
            v.bets_in_play.to_string(),
            v.rolls.to_string(),
            last,
        ]);
    }
    emit(&t.render())
}

/// `play open`: opens a table, then finds its id (the new table whose house
/// is this key: ids are assigned by execution, not known in advance).
async fn open(s: &Session, bankroll: u64, params: TableParams) -> CliResult {
    let wallet = s.wallet().await?;
    let me = wallet.public().to_hex();
    let mine = |tables: &[bitcraps_node::api::TableView]| -> Vec<u64> {
        tables
            .iter()
            .filter(|t| t.house == me)
            .map(|t| t.id)
            .collect()
    };
    let before = mine(&s.client.tables().await.map_err(PlayError::from)?);
    let outcome = wallet.send(Action::OpenTable { bankroll, params }).await?;
    let mut table = None;
    if outcome.is_ok() {
        let after = mine(&s.client.tables().await.map_err(PlayError::from)?);
        table = after.into_iter().filter(|id| !before.contains(id)).max();
    }
    let what = match table {
        Some(id) => format!(
            "opened table {id} (bankroll {bankroll}, bets {}..={})",
            params.min_bet, params.max_bet
        ),
        None => "opened a table (its id was not found in /api/v1/tables)".into(),
    };
    s.report(
        &what,
        &outcome,
        json!({"table": table, "bankroll": bankroll, "min_bet": params.min_bet, "max_bet": params.max_bet}),
    )
}

/// `play watch`.
async fn watch(
    s: &Session,
    table: u64,
    duration_ms: u64,
    want_rolls: Option<u64>,
    since: Option<u64>,
) -> CliResult {
    let me = match &s.key_path {
        Some(_) => Some(s.keypair()?.public().to_hex()),
        None => None,
    };
    let detail = s
        .client
        .table(table)
        .await
        .map_err(PlayError::from)?
        .ok_or_else(|| format!("there is no table {table} (see `bitcraps play tables`)"))?;
    let start_after = since.map_or(detail.table.rolls, |n| n.saturating_sub(1));
    let mut feed = RollFeed::new(table, start_after);
    if s.json {
        emit(&format!(
            "{}\n",
            json!({"event": "watching", "table": table, "phase": phase_text(&detail.table.phase), "rolls": detail.table.rolls})
        ))?;
    } else {
        emit(&format!(
            "watching table {table}: {}, {} rolls so far{}; {}\n",
            phase_text(&detail.table.phase),
            detail.table.rolls,
            me.as_deref()
                .map_or_else(String::new, |m| format!(", as {}", short_hex(m))),
            match (duration_ms, want_rolls) {
                (0, None) => "Ctrl-C to stop".to_string(),
                (0, Some(n)) => format!("until {n} rolls or Ctrl-C"),
                (d, _) => format!(
                    "for {} or Ctrl-C",
                    bitcraps_node::localnet::args::format_duration_ms(d)
                ),
            }
        ))?;
    }
    // Shared by the follow loop and the deadline arm of the select below.
    let seen = std::cell::Cell::new(0u64);
    // The balance line is printed only when it changed.
    let mut last_shown: Option<PlayerView> = None;
    let follow = async {
        // Bounded by the duration, the roll target or Ctrl-C (the select below).
        loop {
            let rolls = feed
                .poll(&s.client)
                .await
                .map_err(PlayError::from)?
                .ok_or_else(|| format!("table {table} disappeared from the node"))?;
            for r in &rolls {
                seen.set(seen.get() + 1);
                show_roll(s, r, me.as_deref())?;
            }
            if let (Some(me), false) = (&me, rolls.is_empty()) {
                let now = player_view(s, table, me).await?;
                if last_shown.as_ref() != Some(&now) {
                    show_balance(s, table, &now)?;
                    last_shown = Some(now);
                }
            }
            if want_rolls.is_some_and(|n| seen.get() >= n) {
                return CliResult::Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(WATCH_POLL_MS)).await;
        }
    };
    let deadline = async {
        if duration_ms == 0 {
            std::future::pending::<()>().await;
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(duration_ms)).await;
        }
    };
    tokio::select! {
        r = follow => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
        () = deadline => match want_rolls {
            Some(n) if seen.get() < n => Err(format!(
                "saw {} of {n} rolls of table {table} within {}",
                seen.get(),
                bitcraps_node::localnet::args::format_duration_ms(duration_ms)
            ).into()),
            _ => Ok(()),
        },
    }
}

fn show_roll(s: &Session, r: &TableRoll, me: Option<&str>) -> CliResult {
    let mine = me.map(|m| settlements_of(r, m)).unwrap_or_default();
    if s.json {
        let roll = r.outcome.roll;
        let mut out = format!(
            "{}\n",
            json!({
                "event": "roll", "table": r.table, "seq": r.seq, "height": r.height,
                "d1": roll.d1, "d2": roll.d2, "total": roll.total(), "effect": roll_effect(r),
                "phase_before": phase_text(&r.outcome.phase_before),
                "phase_after": phase_text(&r.outcome.phase_after),
            })
        );
        for st in mine {
            let winnings = match st.result {
                BetResult::Won { winnings } => winnings,
                _ => 0,
            };
            out.push_str(&format!(
                "{}\n",
                json!({
                    "event": "settlement", "table": r.table, "seq": r.seq,
                    "bet": bet_name(&st.kind), "stake": st.stake,
                    "result": result_name(&st.result), "winnings": winnings,
                    "credited": st.credited,
                })
            ));
        }
        return emit(&out);
    }
    let mut out = format!("{}\n", describe_roll(r));
    for st in mine {
        out.push_str(&format!("  you {}\n", describe_settlement(st)));
    }
    emit(&out)
}

/// What `watch` shows of the player after a roll.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlayerView {
    balance: u64,
    rail: u64,
    bets: Vec<(String, u64)>,
}

async fn player_view(s: &Session, table: u64, me: &str) -> CliResult<PlayerView> {
    let account = s.client.account(me).await.map_err(PlayError::from)?;
    let detail = s.client.table(table).await.map_err(PlayError::from)?;
    let (rail, bets) = detail
        .as_ref()
        .map_or((0, Vec::new()), |d| (rail_in(d, me), bets_in(d, me)));
    Ok(PlayerView {
        balance: account.balance,
        rail,
        bets,
    })
}

fn show_balance(s: &Session, table: u64, v: &PlayerView) -> CliResult {
    if s.json {
        let bets: Vec<serde_json::Value> = v
            .bets
            .iter()
            .map(|(b, stake)| json!({"bet": b, "stake": stake}))
            .collect();
        return emit(&format!(
            "{}\n",
            json!({"event": "balance", "table": table, "balance": v.balance, "rail": v.rail, "bets": bets})
        ));
    }
    emit(&format!(
        "  balance {}  rail {}  bets {}\n",
        v.balance,
        v.rail,
        bets_text(&v.bets)
    ))
}
