//! The simulated players of `bitcraps localnet`, and how their transactions
//! are followed to commit.
//!
//! * [`fund`]: the faucet sends every fresh player (and house) key its
//!   chips, in batches below the mempool's per-account nonce window, and
//!   waits for each batch to commit.
//! * [`drive_load`]: every [`TICK_MS`] the open-loop [`Schedule`] says how
//!   many transactions are due; they go to ready players round-robin. Each
//!   player sits at one table (`player % tables`) and talks to one validator
//!   (`player % validators`, so the players are spread over every validator
//!   and each player's nonces reach one mempool in order: there is no
//!   mempool gossip yet). What a player sends is [`strategy::choose`] over
//!   the shared [`GameSnapshot`]: a bet, a removal or a withdrawal while
//!   betting is open; a withdrawal or a small transfer to another player
//!   while the dice are being rolled, so the schedule stays open-loop. Each
//!   submission is its own task.
//! * [`Watcher`]: pages through `GET /api/v1/blocks?from=` on one node,
//!   matches committed transaction hashes to their submit times (latency),
//!   frees the players' window slots, hands committed game transactions to
//!   the [`super::receipts`] checker, and expires transactions that never
//!   commit.
//!
//! A rejected game transaction still used its nonce, so the nonce windows
//! need no special case for it; a bet refused with `betting_closed` is sent
//! again once betting reopens (see [`LoadCtx::set_retry`]).

use super::client::{ClientError, NodeClient, SubmitOutcome, MAX_BLOCKS_PER_PAGE};
use super::error::LocalnetError;
use super::load::{PlayerState, RoundRobin, Schedule, DEFAULT_WINDOW, TICK_MS};
use super::observer::{GameSnapshot, SharedGame};
use super::receipts::{ReceiptCheck, ReceiptQueue};
use super::stats::{LatencySamples, SplitMix64, DEFAULT_SAMPLE_CAPACITY};
use super::strategy::{self, Move, Style};
use super::RunClock;
use crate::api::StatusView;
use crate::app::craps::BetKind;
use crate::app::tx::{Action, Transaction};
use bitcraps_crypto::{Keypair, PublicKey};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use tokio::sync::watch;

/// Chips the faucet gives each player: far more than a run of small bets
/// (10-50 chips, odds a few times that) can spend, and 1024 players take
/// ~0.1% of the default faucet.
pub const PLAYER_FUNDS: u64 = 1_000_000;
/// Largest transfer between players (chips).
pub const MAX_TRANSFER: u64 = 100;
/// Faucet transfers submitted before waiting for them to commit: below the
/// mempool's per-account nonce window (256).
pub const FUND_BATCH: usize = 128;
/// How long one funding batch may take to commit.
pub const FUND_BATCH_TIMEOUT_MS: u64 = 30_000;
/// Attempts to submit one funding transfer through 429/503 answers.
const FUND_SUBMIT_ATTEMPTS: u32 = 50;
/// Pause between retries and polls.
const RETRY_MS: u64 = 100;
/// Pause of the watcher after an empty page or an error.
pub const WATCH_POLL_MS: u64 = 5;
/// How long the node may hold the watcher's poll open until the next block
/// commits (`GET /api/v1/blocks?wait_ms=`): the watcher learns of a commit at
/// once instead of up to a poll interval late, and sends nothing while the
/// chain is idle.
pub const WATCH_LONG_POLL_MS: u64 = 1_000;
/// An accepted transaction not seen committed after this long is counted
/// lost and its player's window slot freed (a node restart can drop a
/// mempool; a healthy cluster commits in well under a second).
pub const PENDING_TIMEOUT_MS: u64 = 30_000;
/// How long stopping the load waits for submissions on the wire.
pub const DRAIN_TIMEOUT_MS: u64 = 5_000;
/// Seed of the players' choices (recipients, amounts): fixed, so two runs
/// make the same choices; the keys are fresh anyway.
const LOAD_SEED: u64 = 0xB17C_4A95_D1CE_0001;
/// Distinct rejection codes remembered (bounds a misbehaving node's effect).
const MAX_REJECT_CODES: usize = 32;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a player's transaction does (for counting and receipts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxKind {
    Transfer,
    Bet { kind: BetKind, amount: u64 },
    Remove,
    Withdraw,
}

impl TxKind {
    /// Game transactions get their execution result checked.
    pub fn is_game(&self) -> bool {
        !matches!(self, TxKind::Transfer)
    }
}

/// An accepted (or being submitted) transaction waiting to be seen committed.
#[derive(Debug, Clone, Copy)]
struct PendingTx {
    player: usize,
    submit_ms: u64,
    kind: TxKind,
}

/// Running totals of a localnet run.
#[derive(Debug, Default)]
pub struct Counters {
    /// Transactions submitted by players.
    pub offered: AtomicU64,
    /// Submissions refused or failed.
    pub rejected: AtomicU64,
    /// Schedule slots skipped: every player busy or its window full.
    pub throttled: AtomicU64,
    /// Accepted transactions never seen committed.
    pub lost: AtomicU64,
    /// Transactions in blocks the watcher has seen.
    pub committed_tx: AtomicU64,
    /// Blocks the watcher has seen.
    pub committed_blocks: AtomicU64,
    /// Highest height the watcher has seen.
    pub height: AtomicU64,
    /// Bets, removals, withdrawals and transfers the players submitted.
    pub bets_offered: AtomicU64,
    pub removes_offered: AtomicU64,
    pub withdraws_offered: AtomicU64,
    pub transfers_offered: AtomicU64,
    /// Committed game transactions whose execution result was read.
    pub game_checked: AtomicU64,
    /// Bets execution accepted (result `ok`).
    pub bets_placed: AtomicU64,
    /// Withdrawals execution accepted.
    pub withdraws_done: AtomicU64,
    /// Committed game transactions execution rejected (see `exec_rejections`).
    pub exec_rejected: AtomicU64,
    /// Committed game transactions whose result could not be read in time.
    pub game_unchecked: AtomicU64,
}

impl Counters {
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub(super) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// Everything the load tasks share.
#[derive(Debug)]
pub struct LoadCtx {
    pub clock: RunClock,
    chain_id: String,
    keys: Vec<Keypair>,
    publics: Vec<PublicKey>,
    publics_hex: Vec<String>,
    /// The localnet's tables (set once they are open); player `p` sits at
    /// `tables[p % len]`.
    tables: OnceLock<Vec<u64>>,
    /// What the players see of the game (published by the observer).
    pub game: Arc<SharedGame>,
    /// Per player: a bet refused with `betting_closed`, to send again.
    retry: Mutex<Vec<Option<(BetKind, u64)>>>,
    /// Committed game transactions waiting for their result to be read.
    pub receipts: ReceiptQueue,
    /// Execution rejections of game transactions, by code.
    pub exec_rejections: Mutex<BTreeMap<String, u64>>,
    /// One client per validator.
    clients: Vec<NodeClient>,
    /// Where transfers go when there is a single player.
    sink: PublicKey,
    players: Mutex<Vec<PlayerState>>,
    pending: Mutex<HashMap<String, PendingTx>>,
    /// Every latency sample of the run (bounded reservoir).
    pub latency: Mutex<LatencySamples>,
    /// Samples since the progress line last read them.
    pub window_latency: Mutex<LatencySamples>,
    pub counters: Counters,
    /// Rejections by code (`stale_nonce`, `rate_limited`, `transport`...).
    pub reject_codes: Mutex<BTreeMap<String, u64>>,
    /// The latest `/status` of each node (`None` if it did not answer).
    pub statuses: Mutex<Vec<Option<StatusView>>>,
}

impl LoadCtx {
    /// `keys` are the players' fresh keys; `sink` receives transfers when
    /// there is only one player (the faucet).
    pub fn new(
        clock: RunClock,
        chain_id: String,
        keys: Vec<Keypair>,
        clients: Vec<NodeClient>,
        sink: PublicKey,
    ) -> LoadCtx {
        let publics: Vec<PublicKey> = keys.iter().map(Keypair::public).collect();
        let publics_hex = publics.iter().map(PublicKey::to_hex).collect();
        let players = vec![PlayerState::new(0, DEFAULT_WINDOW); keys.len()];
        let nodes = clients.len();
        LoadCtx {
            clock,
            chain_id,
            retry: Mutex::new(vec![None; keys.len()]),
            keys,
            publics,
            publics_hex,
            tables: OnceLock::new(),
            game: Arc::new(SharedGame::default()),
            receipts: ReceiptQueue::default(),
            exec_rejections: Mutex::new(BTreeMap::new()),
            clients,
            sink,
            players: Mutex::new(players),
            pending: Mutex::new(HashMap::new()),
            latency: Mutex::new(LatencySamples::new(DEFAULT_SAMPLE_CAPACITY)),
            window_latency: Mutex::new(LatencySamples::new(100_000)),
            counters: Counters::default(),
            reject_codes: Mutex::new(BTreeMap::new()),
            statuses: Mutex::new(vec![None; nodes]),
        }
    }

    pub fn player_count(&self) -> usize {
        self.keys.len()
    }

    pub fn clients(&self) -> &[NodeClient] {
        &self.clients
    }

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }

    /// The players' public keys, in player order.
    pub fn publics(&self) -> &[PublicKey] {
        &self.publics
    }

    /// Seats the players at `tables` (once; later calls are ignored).
    pub fn set_tables(&self, tables: Vec<u64>) {
        let _ = self.tables.set(tables);
    }

    /// The localnet's tables (empty before they are open).
    pub fn tables(&self) -> &[u64] {
        self.tables.get().map_or(&[], Vec::as_slice)
    }

    /// The table player `p` plays at.
    pub fn table_of(&self, p: usize) -> Option<u64> {
        let tables = self.tables();
        if tables.is_empty() {
            return None;
        }
        tables.get(p % tables.len()).copied()
    }

    /// Remembers a bet of player `p` that execution refused with
    /// `betting_closed`, to send again once betting reopens.
    pub fn set_retry(&self, p: usize, bet: (BetKind, u64)) {
        if let Some(slot) = lock(&self.retry).get_mut(p) {
            *slot = Some(bet);
        }
    }

    /// Takes player `p`'s bet waiting to be sent again, if any.
    pub fn take_retry(&self, p: usize) -> Option<(BetKind, u64)> {
        lock(&self.retry).get_mut(p).and_then(Option::take)
    }

    /// Counts an execution rejection of a game transaction.
    pub fn note_exec_rejection(&self, code: &str) {
        Counters::add(&self.counters.exec_rejected, 1);
        let mut codes = lock(&self.exec_rejections);
        if codes.len() < MAX_REJECT_CODES || codes.contains_key(code) {
            *codes.entry(code.to_string()).or_insert(0) += 1;
        }
    }

    /// The validator player `p` talks to.
    fn client_of(&self, p: usize) -> Option<&NodeClient> {
        if self.clients.is_empty() {
            return None;
        }
        self.clients.get(p % self.clients.len())
    }

    fn note_rejection(&self, code: &str) {
        Counters::add(&self.counters.rejected, 1);
        let mut codes = lock(&self.reject_codes);
        if codes.len() < MAX_REJECT_CODES || codes.contains_key(code) {
            *codes.entry(code.to_string()).or_insert(0) += 1;
        }
    }

    /// Transactions submitted and not yet seen committed or given up.
    pub fn pending_len(&self) -> usize {
        lock(&self.pending).len()
    }
}

/// Sends each `(key, chips)` of `recipients` its chips from the faucet
/// through `client` and waits until the transfers are committed (the
/// faucet's committed nonce covers them). Stops early with
/// [`LocalnetError::Interrupted`] if `stop` fires.
pub async fn fund(
    chain_id: &str,
    faucet: &Keypair,
    recipients: &[(PublicKey, u64)],
    client: &NodeClient,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), LocalnetError> {
    let faucet_hex = faucet.public().to_hex();
    let mut nonce = client.account(&faucet_hex).await?.pending_nonce;
    for batch in recipients.chunks(FUND_BATCH) {
        for (to, amount) in batch {
            let tx = Transaction {
                from: faucet.public(),
                nonce,
                action: Action::Transfer {
                    to: *to,
                    amount: *amount,
                },
            }
            .sign(chain_id, faucet);
            submit_retrying(client, hex::encode(tx.encode()), "a faucet transfer", stop).await?;
            nonce += 1;
        }
        wait_committed_nonce(client, &faucet_hex, nonce, "faucet transfers", stop).await?;
    }
    Ok(())
}

/// Submits one setup transaction (funding, opening a table), retrying while
/// the node says "not now". `what` names it in errors.
pub(super) async fn submit_retrying(
    client: &NodeClient,
    tx_hex: String,
    what: &str,
    stop: &mut watch::Receiver<bool>,
) -> Result<String, LocalnetError> {
    let mut last = String::new();
    for _ in 0..FUND_SUBMIT_ATTEMPTS {
        if *stop.borrow() {
            return Err(LocalnetError::Interrupted);
        }
        match client.submit(tx_hex.clone()).await {
            Ok(SubmitOutcome::Accepted { hash, .. }) => return Ok(hash),
            Ok(SubmitOutcome::Refused {
                status,
                code,
                message,
            }) => {
                if status != 429 && status != 503 {
                    return Err(LocalnetError::Funding(format!(
                        "{} refused {what}: HTTP {status} {code}: {message}",
                        client.base_url()
                    )));
                }
                last = format!("HTTP {status} {code}: {message}");
            }
            Err(e) => last = e.to_string(),
        }
        sleep_or_stop(RETRY_MS, stop).await;
    }
    Err(LocalnetError::Funding(format!(
        "{} kept refusing {what}: {last}",
        client.base_url()
    )))
}

/// Waits until `account`'s committed nonce reaches `target`. `what` names
/// the transactions in errors.
pub(super) async fn wait_committed_nonce(
    client: &NodeClient,
    account: &str,
    target: u64,
    what: &str,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), LocalnetError> {
    let mut seen = None;
    let polls = FUND_BATCH_TIMEOUT_MS.div_ceil(RETRY_MS);
    for _ in 0..polls {
        if *stop.borrow() {
            return Err(LocalnetError::Interrupted);
        }
        if let Ok(a) = client.account(account).await {
            if a.nonce >= target {
                return Ok(());
            }
            seen = Some(a.nonce);
        }
        sleep_or_stop(RETRY_MS, stop).await;
    }
    Err(LocalnetError::Funding(format!(
        "{what} not committed within {FUND_BATCH_TIMEOUT_MS} ms (nonce {} of {target}); is the cluster making blocks?",
        seen.map_or_else(|| "unknown".to_string(), |n| n.to_string())
    )))
}

/// Sleeps `ms`, returning early when `stop` changes.
pub(super) async fn sleep_or_stop(ms: u64, stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        () = tokio::time::sleep(std::time::Duration::from_millis(ms)) => {}
        _ = stop.changed() => {}
    }
}

/// Drives the players until `duration_ms` of load passed (0 = until `stop`)
/// or `stop` fires, then waits (bounded) for submissions still on the wire.
pub async fn drive_load(
    ctx: Arc<LoadCtx>,
    schedule: Schedule,
    duration_ms: u64,
    mut stop: watch::Receiver<bool>,
) {
    let players = ctx.player_count();
    if players == 0 {
        return;
    }
    let mut rng = SplitMix64::new(LOAD_SEED);
    let mut rr = RoundRobin::default();
    let mut issued: u64 = 0;
    let mut tasks = tokio::task::JoinSet::new();
    let start_ms = ctx.clock.elapsed_ms();
    // Bounded by `duration_ms` or by `stop` (Ctrl-C): each turn sleeps a tick.
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(TICK_MS)) => {}
            changed = stop.changed() => {
                // A dropped sender also means stop.
                if changed.is_err() || *stop.borrow() {
                    break;
                }
            }
        }
        // Reap finished submissions so the set stays as small as the number
        // of busy players.
        while tasks.try_join_next().is_some() {}
        let elapsed_ms = ctx.clock.elapsed_ms().saturating_sub(start_ms);
        if duration_ms > 0 && elapsed_ms >= duration_ms {
            break;
        }
        let due = if schedule.unpaced() {
            u64::try_from(players).unwrap_or(u64::MAX)
        } else {
            schedule.due_now(elapsed_ms, issued)
        };
        // One snapshot per tick: what every player decides from this turn.
        let snapshot = ctx.game.snapshot();
        let mut sent: u64 = 0;
        while sent < due {
            let claimed = rr.claim_next(&mut lock(&ctx.players));
            let Some(p) = claimed else { break };
            let (action, kind) = next_action(&ctx, p, &snapshot, &mut rng);
            let task_ctx = Arc::clone(&ctx);
            tasks.spawn(async move { submit_action(&task_ctx, p, action, kind).await });
            sent += 1;
        }
        if !schedule.unpaced() {
            let skipped = due - sent;
            Counters::add(&ctx.counters.throttled, skipped);
            issued = issued.saturating_add(due);
        }
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(std::time::Duration::from_millis(DRAIN_TIMEOUT_MS), drain).await;
    // Dropping the set aborts anything still running.
    tasks.abort_all();
}

/// A random other player (or the sink when alone) and a small amount.
fn pick_transfer(ctx: &LoadCtx, p: usize, rng: &mut SplitMix64) -> (PublicKey, u64) {
    let n = ctx.publics.len();
    let amount = 1 + rng.below(MAX_TRANSFER);
    if n < 2 {
        return (ctx.sink, amount);
    }
    let r = usize::try_from(rng.below(u64::try_from(n - 1).unwrap_or(u64::MAX))).unwrap_or(0);
    let to = if r >= p { r + 1 } else { r };
    (ctx.publics.get(to).copied().unwrap_or(ctx.sink), amount)
}

/// Player `p`'s next transaction, from what it sees at its table. Before the
/// tables are open (or observed), and while the strategy says so, a small
/// transfer to another player.
fn next_action(
    ctx: &LoadCtx,
    p: usize,
    snapshot: &GameSnapshot,
    rng: &mut SplitMix64,
) -> (Action, TxKind) {
    let table = ctx.table_of(p);
    let seat = match (table, ctx.publics.get(p), ctx.publics_hex.get(p)) {
        (Some(t), Some(me), Some(me_hex)) => snapshot.seat(t, me, me_hex),
        _ => None,
    };
    let chosen = match (&seat, table) {
        (Some(seat), Some(table)) => {
            // Taken only when betting is open; otherwise it stays for later.
            let retry = if seat.betting_open && !seat.closed {
                ctx.take_retry(p)
            } else {
                None
            };
            Some((
                table,
                strategy::choose(seat, Style::of_player(p), retry, rng),
            ))
        }
        _ => None,
    };
    match chosen {
        Some((table, Move::Bet { kind, amount })) => (
            Action::PlaceBet {
                table,
                bet: kind,
                amount,
            },
            TxKind::Bet { kind, amount },
        ),
        Some((table, Move::Remove { kind })) => {
            (Action::RemoveBet { table, bet: kind }, TxKind::Remove)
        }
        Some((table, Move::Withdraw)) => (Action::Withdraw { table }, TxKind::Withdraw),
        Some((_, Move::Transfer)) | None => {
            let (to, amount) = pick_transfer(ctx, p, rng);
            (Action::Transfer { to, amount }, TxKind::Transfer)
        }
    }
}

/// One player's submission: refresh the nonce if it is suspect, sign, submit,
/// and record the outcome. The player was claimed (busy) by the caller.
async fn submit_action(ctx: &LoadCtx, p: usize, action: Action, kind: TxKind) {
    let (Some(client), Some(key)) = (ctx.client_of(p), ctx.keys.get(p)) else {
        return;
    };
    let needs_resync = lock(&ctx.players).get(p).is_some_and(|s| s.needs_resync);
    if needs_resync {
        match client.account(&key.public().to_hex()).await {
            Ok(a) => {
                if let Some(s) = lock(&ctx.players).get_mut(p) {
                    s.resynced(a.pending_nonce);
                }
            }
            Err(_) => {
                if let Some(s) = lock(&ctx.players).get_mut(p) {
                    s.resync_failed();
                }
                ctx.note_rejection("transport");
                return;
            }
        }
    }
    let Some(nonce) = lock(&ctx.players).get_mut(p).map(PlayerState::take_nonce) else {
        return;
    };
    let signed = Transaction {
        from: key.public(),
        nonce,
        action,
    }
    .sign(&ctx.chain_id, key);
    let hash = signed.hash().to_hex();
    let submit_ms = ctx.clock.elapsed_ms();
    // Registered before sending: the commit can be observed before the HTTP
    // answer is processed.
    lock(&ctx.pending).insert(
        hash.clone(),
        PendingTx {
            player: p,
            submit_ms,
            kind,
        },
    );
    Counters::add(&ctx.counters.offered, 1);
    Counters::add(
        match kind {
            TxKind::Transfer => &ctx.counters.transfers_offered,
            TxKind::Bet { .. } => &ctx.counters.bets_offered,
            TxKind::Remove => &ctx.counters.removes_offered,
            TxKind::Withdraw => &ctx.counters.withdraws_offered,
        },
        1,
    );
    let outcome = client.submit(hex::encode(signed.encode())).await;
    if let Ok(SubmitOutcome::Accepted { .. }) = outcome {
        if let Some(s) = lock(&ctx.players).get_mut(p) {
            s.accepted();
        }
        return;
    }
    // Not admitted (or unknown): stop waiting for it. If the watcher already
    // saw it committed (an answer lost after admission), it freed the slot.
    let was_pending = lock(&ctx.pending).remove(&hash).is_some();
    let code = match outcome {
        Ok(SubmitOutcome::Refused { status, code, .. }) => {
            if let Some(s) = lock(&ctx.players).get_mut(p) {
                if !was_pending {
                    s.settled_elsewhere();
                } else if status == 422 {
                    // The transaction itself was refused (nonce, duplicate,
                    // ...): the local nonce is suspect.
                    s.refused();
                } else {
                    // Not now (429 rate limited, 503 mempool full): nothing
                    // after this nonce was sent, so reuse it.
                    s.failed(nonce);
                }
            }
            code
        }
        Ok(SubmitOutcome::Accepted { .. }) => return,
        Err(e) => {
            // Unknown whether the node admitted it: let the resync ask the
            // node for the right nonce.
            if let Some(s) = lock(&ctx.players).get_mut(p) {
                if was_pending {
                    s.refused();
                } else {
                    s.settled_elsewhere();
                }
            }
            match e {
                ClientError::Decode { .. } => "bad_response".to_string(),
                _ => "transport".to_string(),
            }
        }
    };
    ctx.note_rejection(&code);
}

/// Follows committed blocks on one node (switching to the next node when it
/// does not answer) and matches them to the players' transactions.
#[derive(Debug)]
pub struct Watcher {
    ctx: Arc<LoadCtx>,
    /// Next height to fetch.
    next: u64,
    /// Index of the node being watched.
    node: usize,
    /// `elapsed_ms` of the last expiry sweep.
    last_sweep_ms: u64,
}

impl Watcher {
    /// Starts watching at height `from` (the first block of the run).
    pub fn new(ctx: Arc<LoadCtx>, from: u64) -> Watcher {
        Watcher {
            ctx,
            next: from,
            node: 0,
            last_sweep_ms: 0,
        }
    }

    /// Next height the watcher will fetch (everything below is counted).
    pub fn next_height(&self) -> u64 {
        self.next
    }

    /// Fetches and processes one page of blocks. Returns how many blocks it
    /// processed. Cancel-safe: blocks are processed only after the fetch.
    pub async fn poll_once(&mut self) -> Result<usize, ClientError> {
        self.poll_up_to(u64::MAX).await
    }

    /// Like [`Watcher::poll_once`], but processes no block above `limit`.
    pub async fn poll_up_to(&mut self, limit: u64) -> Result<usize, ClientError> {
        let clients = self.ctx.clients();
        let Some(client) = clients.get(self.node % clients.len().max(1)) else {
            return Ok(0);
        };
        let blocks = match client
            .blocks_wait(self.next, MAX_BLOCKS_PER_PAGE, WATCH_LONG_POLL_MS)
            .await
        {
            Ok(b) => b,
            Err(e) => {
                self.node = (self.node + 1) % clients.len().max(1);
                return Err(e);
            }
        };
        let now_ms = self.ctx.clock.elapsed_ms();
        let mut processed = 0;
        for block in blocks {
            // Only contiguous heights: a gap means the page is not what we
            // asked for; ask again from `next`.
            if block.height != self.next || block.height > limit {
                break;
            }
            self.observe(&block.txs, now_ms);
            self.ctx
                .counters
                .height
                .fetch_max(block.height, Ordering::Relaxed);
            self.next += 1;
            processed += 1;
        }
        if now_ms.saturating_sub(self.last_sweep_ms) >= 1_000 {
            self.last_sweep_ms = now_ms;
            self.expire(now_ms);
        }
        Ok(processed)
    }

    fn observe(&self, txs: &[String], now_ms: u64) {
        let ctx = &self.ctx;
        Counters::add(&ctx.counters.committed_blocks, 1);
        Counters::add(
            &ctx.counters.committed_tx,
            u64::try_from(txs.len()).unwrap_or(u64::MAX),
        );
        let mut matched = Vec::new();
        {
            let mut pending = lock(&ctx.pending);
            for h in txs {
                if let Some(p) = pending.remove(h) {
                    matched.push((h.clone(), p));
                }
            }
        }
        if matched.is_empty() {
            return;
        }
        {
            let mut players = lock(&ctx.players);
            for (_, m) in &matched {
                if let Some(s) = players.get_mut(m.player) {
                    s.committed();
                }
            }
        }
        for (hash, m) in &matched {
            if m.kind.is_game() {
                let queued = ctx.receipts.push(ReceiptCheck {
                    hash: hash.clone(),
                    player: m.player,
                    kind: m.kind,
                    attempts: 0,
                });
                if !queued {
                    Counters::add(&ctx.counters.game_unchecked, 1);
                }
            }
        }
        let mut all = lock(&ctx.latency);
        let mut window = lock(&ctx.window_latency);
        for (_, m) in &matched {
            let latency_ms = now_ms.saturating_sub(m.submit_ms);
            all.record(latency_ms);
            window.record(latency_ms);
        }
    }

    /// Gives up on transactions pending longer than [`PENDING_TIMEOUT_MS`].
    fn expire(&self, now_ms: u64) {
        let ctx = &self.ctx;
        let expired: Vec<PendingTx> = {
            let mut pending = lock(&ctx.pending);
            let mut out = Vec::new();
            pending.retain(|_, p| {
                let keep = now_ms.saturating_sub(p.submit_ms) < PENDING_TIMEOUT_MS;
                if !keep {
                    out.push(*p);
                }
                keep
            });
            out
        };
        if expired.is_empty() {
            return;
        }
        Counters::add(
            &ctx.counters.lost,
            u64::try_from(expired.len()).unwrap_or(u64::MAX),
        );
        let mut players = lock(&ctx.players);
        for p in expired {
            if let Some(s) = players.get_mut(p.player) {
                s.expired();
            }
        }
    }

    /// Polls until `stop` fires, then returns itself so the caller can catch
    /// up to a final height.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Watcher {
        loop {
            if *stop.borrow() {
                return self;
            }
            let fetched = tokio::select! {
                r = self.poll_once() => Some(r),
                _ = stop.changed() => None,
            };
            let Some(fetched) = fetched else {
                return self;
            };
            // The next request waits on the node for the next block; pause
            // only after an empty page or an error.
            if !matches!(fetched, Ok(n) if n > 0) {
                sleep_or_stop(WATCH_POLL_MS, &mut stop).await;
            }
        }
    }

    /// Polls until every block up to `height` is processed (and none above
    /// it, so the totals describe exactly the compared chain) or
    /// `timeout_ms` passes. Returns whether it got there.
    pub async fn catch_up(&mut self, height: u64, timeout_ms: u64) -> bool {
        let work = async {
            while self.next <= height {
                match self.poll_up_to(height).await {
                    Ok(n) if n > 0 => {}
                    _ => tokio::time::sleep(std::time::Duration::from_millis(WATCH_POLL_MS)).await,
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_millis(timeout_ms), work)
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(players: usize) -> Arc<LoadCtx> {
        let keys: Vec<Keypair> = (0..players)
            .map(|i| Keypair::from_seed(&[u8::try_from(i + 1).unwrap(); 32]))
            .collect();
        let sink = Keypair::from_seed(&[200; 32]).public();
        Arc::new(LoadCtx::new(
            RunClock::new(Arc::new(crate::engine::SystemClock::new())),
            "test".into(),
            keys,
            Vec::new(),
            sink,
        ))
    }

    #[test]
    fn recipients_are_other_players() {
        let c = ctx(4);
        let mut rng = SplitMix64::new(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..400 {
            let (to, amount) = pick_transfer(&c, 2, &mut rng);
            assert_ne!(to, c.publics[2]);
            assert!((1..=MAX_TRANSFER).contains(&amount));
            seen.insert(to);
        }
        assert_eq!(seen.len(), 3);
        let alone = ctx(1);
        assert_eq!(pick_transfer(&alone, 0, &mut rng).0, alone.sink);
    }

    #[test]
    fn watcher_matches_commits_and_expires() {
        let c = ctx(2);
        {
            let mut players = lock(&c.players);
            for p in players.iter_mut() {
                assert!(p.claim());
                p.take_nonce();
                p.accepted();
                assert!(p.claim());
                p.take_nonce();
                p.accepted();
            }
        }
        {
            let mut pending = lock(&c.pending);
            pending.insert(
                "a".into(),
                PendingTx {
                    player: 0,
                    submit_ms: 100,
                    kind: TxKind::Transfer,
                },
            );
            pending.insert(
                "b".into(),
                PendingTx {
                    player: 1,
                    submit_ms: 150,
                    kind: TxKind::Transfer,
                },
            );
            pending.insert(
                "c".into(),
                PendingTx {
                    player: 1,
                    submit_ms: 200,
                    kind: TxKind::Transfer,
                },
            );
            pending.insert(
                "d".into(),
                PendingTx {
                    player: 0,
                    submit_ms: 300,
                    kind: TxKind::Transfer,
                },
            );
        }
        let w = Watcher::new(Arc::clone(&c), 1);
        w.observe(&["a".into(), "zz".into(), "b".into()], 400);
        assert_eq!(Counters::get(&c.counters.committed_tx), 3);
        assert_eq!(Counters::get(&c.counters.committed_blocks), 1);
        assert_eq!(
            lock(&c.latency).percentiles(&[0.0, 100.0]),
            vec![Some(250), Some(300)]
        );
        assert_eq!(lock(&c.players)[0].in_flight, 1);
        assert_eq!(lock(&c.players)[1].in_flight, 1);
        // Nothing old enough yet.
        w.expire(200 + PENDING_TIMEOUT_MS - 1);
        assert_eq!(c.pending_len(), 2);
        w.expire(200 + PENDING_TIMEOUT_MS);
        assert_eq!(c.pending_len(), 1);
        assert_eq!(Counters::get(&c.counters.lost), 1);
        assert_eq!(lock(&c.players)[1].in_flight, 0);
        assert!(lock(&c.players)[1].needs_resync);
    }

    #[test]
    fn rejection_codes_are_bounded() {
        let c = ctx(1);
        for i in 0..100 {
            c.note_rejection(&format!("code{i}"));
        }
        c.note_rejection("code0");
        assert_eq!(Counters::get(&c.counters.rejected), 101);
        let codes = lock(&c.reject_codes);
        assert_eq!(codes.len(), MAX_REJECT_CODES);
        assert_eq!(codes["code0"], 2);
    }
}
