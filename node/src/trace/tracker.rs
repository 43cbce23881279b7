//! The correlation tracker: when did this validator see each stage of a
//! transaction's life?
//!
//! # What
//!
//! One [`CorrelationTracker`] per validator. The origin node calls
//! [`begin`](CorrelationTracker::begin) when an HTTP request submits a
//! transaction, under the request's correlation id; other validators call it
//! when they first see the transaction (from gossip or in a proposal), under
//! the id the origin propagated ([`origin_of`](CorrelationTracker::origin_of)).
//! The engine then calls [`record`](CorrelationTracker::record) (or
//! [`record_many`](CorrelationTracker::record_many) for a block's worth) at
//! every [`Stage`]. `GET /api/v1/correlation/{id}` reads
//! [`get`](CorrelationTracker::get), and `/api/v1/correlation/stats` reads
//! [`stats`](CorrelationTracker::stats).
//!
//! # Why it looks like this
//!
//! * **Pure.** No clock, no runtime: every call takes the time (µs since the
//!   Unix epoch, see [`super::unix_now_us`]) as an argument, so the tests use
//!   made-up times and the engine decides which clock stamps a stage.
//! * **Cheap on the hot path.** `record` is one mutex and one hash lookup, and
//!   returns `false` for transactions nobody began (most of them, if a caller
//!   only begins sampled ones). A stage already recorded keeps its first time,
//!   so repeated hooks (a vote re-sent, a block re-executed on replay) never
//!   move a timeline.
//! * **Bounded.** At most [`TrackerConfig::max_entries`] transactions (the
//!   oldest by insertion is evicted first), each at most
//!   [`TrackerConfig::max_age_ms`] old after a [`cleanup`](CorrelationTracker::cleanup),
//!   at most [`MAX_TXS_PER_ID`] transactions per correlation id, outcomes of at
//!   most [`MAX_OUTCOME_BYTES`], and [`LATENCY_SAMPLES_PER_STAGE`] latency
//!   samples per stage. An entry costs about 230 bytes in a hash table
//!   that, once full, has room for twice the bound (so churn never grows
//!   it, see `crate::fifo`), plus its `order` and `by_id` slots: the default
//!   65 536 entries take about 60 MB at the bound, reached when the tracker
//!   first fills and flat from then on.
//!
//! # Indexes
//!
//! Three structures, kept consistent by one removal path (`Inner::remove`):
//! * `entries`: tx hash → entry (the record).
//! * `order`: insertion sequence number → tx hash, a `BTreeMap` rather than a
//!   queue so that removing an entry for any reason (age, per-id bound,
//!   capacity) removes its position too, and no stale position is ever left
//!   to skip.
//! * `by_id`: correlation id → the id's tx hashes in insertion order.
//!
//! # Latency samples
//!
//! When an entry completes (reaches [`Stage::Executed`]) each of its recorded
//! stages contributes one sample: that stage's time minus the entry's earliest
//! recorded time (so the earliest stage contributes 0). A stage recorded after
//! completion (typically [`Stage::Settled`]) contributes when it arrives.
//! Samples go into a ring of the last [`LATENCY_SAMPLES_PER_STAGE`] per stage,
//! which [`stats`](CorrelationTracker::stats) copies and sorts: exact
//! percentiles over recent traffic, a fixed memory cost, and no sorting on the
//! hot path.

use crate::fifo::reserve_for_churn;
use bitcraps_crypto::fastmap::FastMap;
use bitcraps_crypto::Hash32;
use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use uuid::Uuid;

/// Default bound on tracked transactions (entries).
pub const DEFAULT_MAX_ENTRIES: usize = 65_536;
/// Default age (milliseconds since first seen) after which cleanup evicts an entry.
pub const DEFAULT_MAX_AGE_MS: u64 = 600_000;
/// Default period (milliseconds) of the cleanup task.
pub const DEFAULT_CLEANUP_INTERVAL_MS: u64 = 5_000;
/// Largest accepted `max_entries` (entries; ~9 GB at the per-entry cost above).
pub const MAX_ENTRIES_LIMIT: usize = 10_000_000;
/// Smallest accepted `max_age_ms` (milliseconds): a transaction needs a few
/// round trips to commit, and a shorter age would evict it mid-flight.
pub const MIN_MAX_AGE_MS: u64 = 1_000;
/// Smallest accepted `cleanup_interval_ms` (milliseconds): cleanup scans every
/// entry, so running it more often than this is wasted work.
pub const MIN_CLEANUP_INTERVAL_MS: u64 = 100;
/// Most transactions tracked under one correlation id (transactions): one
/// full `POST /api/v1/txs` batch, whose items all carry the request's id. A
/// client may reuse an id; beyond this the id's oldest transaction is evicted.
pub const MAX_TXS_PER_ID: usize = crate::api::MAX_SUBMIT_BATCH;
/// Longest stored outcome (bytes, cut at a UTF-8 character boundary).
pub const MAX_OUTCOME_BYTES: usize = 64;
/// Latency samples kept per stage (samples, most recent wins).
pub const LATENCY_SAMPLES_PER_STAGE: usize = 4_096;

/// Number of stages.
const STAGE_COUNT: usize = 11;

/// A point in a transaction's life, in the order it normally happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The HTTP request carrying it arrived (origin node only).
    Received,
    /// It passed the admission checks (size, format, rate).
    Admitted,
    /// Its signature verified.
    Verified,
    /// It entered the mempool.
    Mempool,
    /// A leader put it in a block it is building.
    Batched,
    /// The block carrying it was proposed (sent or received).
    Proposed,
    /// This validator voted for that block.
    Voted,
    /// The block was certified (notarized).
    Certified,
    /// The block was committed (finalized).
    Committed,
    /// This validator executed it. An entry is *completed* from here on.
    Executed,
    /// A dice roll resolved it (bets only; may come much later).
    Settled,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; STAGE_COUNT] = [
        Stage::Received,
        Stage::Admitted,
        Stage::Verified,
        Stage::Mempool,
        Stage::Batched,
        Stage::Proposed,
        Stage::Voted,
        Stage::Certified,
        Stage::Committed,
        Stage::Executed,
        Stage::Settled,
    ];

    /// The snake_case name, the same as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Admitted => "admitted",
            Stage::Verified => "verified",
            Stage::Mempool => "mempool",
            Stage::Batched => "batched",
            Stage::Proposed => "proposed",
            Stage::Voted => "voted",
            Stage::Certified => "certified",
            Stage::Committed => "committed",
            Stage::Executed => "executed",
            Stage::Settled => "settled",
        }
    }

    /// Position in [`Stage::ALL`].
    fn index(self) -> usize {
        self as usize
    }
}

/// What the origin node knows of the trace a tx belongs to (the trace id is
/// the correlation id's 16 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Origin {
    /// The span that submitted the transaction, if the origin traced it.
    pub parent_span_id: Option<[u8; 8]>,
    /// Whether the origin's trace is sampled (exported).
    pub sampled: bool,
}

/// Bounds of a [`CorrelationTracker`] (the `[correlation]` config section).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Most transactions tracked at once; the oldest is evicted beyond this.
    pub max_entries: usize,
    /// Cleanup evicts entries first seen longer ago than this (milliseconds).
    pub max_age_ms: u64,
    /// How often the cleanup task runs (milliseconds).
    pub cleanup_interval_ms: u64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_age_ms: DEFAULT_MAX_AGE_MS,
            cleanup_interval_ms: DEFAULT_CLEANUP_INTERVAL_MS,
        }
    }
}

impl TrackerConfig {
    /// Checks every bound; the message names the field and the accepted range.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_ENTRIES_LIMIT).contains(&self.max_entries) {
            return Err(format!(
                "max_entries must be between 1 and {MAX_ENTRIES_LIMIT}, got {}",
                self.max_entries
            ));
        }
        if self.max_age_ms < MIN_MAX_AGE_MS {
            return Err(format!(
                "max_age_ms must be at least {MIN_MAX_AGE_MS}, got {}",
                self.max_age_ms
            ));
        }
        if !(MIN_CLEANUP_INTERVAL_MS..=self.max_age_ms).contains(&self.cleanup_interval_ms) {
            return Err(format!(
                "cleanup_interval_ms must be between {MIN_CLEANUP_INTERVAL_MS} and max_age_ms ({}), got {}",
                self.max_age_ms, self.cleanup_interval_ms
            ));
        }
        Ok(())
    }
}

/// One transaction's stages as this validator saw them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Timeline {
    /// The correlation id it is tracked under.
    pub correlation_id: Uuid,
    /// The transaction hash, 64 lowercase hex characters.
    pub tx_hash: String,
    /// Height of the block that carried it, once known.
    pub height: Option<u64>,
    /// `"accepted"` or a rejection code, once executed.
    pub outcome: Option<String>,
    /// Whether it reached [`Stage::Executed`].
    pub completed: bool,
    /// Recorded stages, in [`Stage`] order (not necessarily time order).
    pub stages: Vec<StageAt>,
}

/// A stage and when it was first recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StageAt {
    /// The stage.
    pub stage: Stage,
    /// Microseconds since the Unix epoch.
    pub at_unix_us: u64,
}

/// Counters and latency percentiles of a tracker.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrackerStats {
    /// Tracked, not yet executed.
    pub active: u64,
    /// Tracked and executed (still retained).
    pub completed: u64,
    /// Ever begun.
    pub tracked_total: u64,
    /// Ever reached Executed.
    pub completed_total: u64,
    /// Evicted because the tracker (or one correlation id) was full.
    pub evicted_capacity_total: u64,
    /// Evicted by cleanup because they were older than `max_age_ms`.
    pub evicted_age_total: u64,
    /// The configured entry bound.
    pub max_entries: u64,
    /// The configured age bound (milliseconds).
    pub max_age_ms: u64,
    /// Per stage: latency from the entry's first recorded stage to this stage,
    /// over recent completed entries. Stages without samples are absent.
    pub stage_latency_us: BTreeMap<&'static str, LatencySummary>,
}

/// Nearest-rank percentiles of a set of latency samples (microseconds).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest sample.
    pub max: u64,
}

impl LatencySummary {
    /// Summarises `sorted` (ascending); `None` if it is empty.
    fn of_sorted(sorted: &[u64]) -> Option<Self> {
        let max = *sorted.last()?;
        Some(LatencySummary {
            count: sorted.len() as u64,
            p50: nearest_rank(sorted, 50),
            p95: nearest_rank(sorted, 95),
            p99: nearest_rank(sorted, 99),
            max,
        })
    }
}

/// The nearest-rank `pct`th percentile of a non-empty ascending slice: the
/// smallest sample with at least `pct`% of the samples at or below it.
fn nearest_rank(sorted: &[u64], pct: usize) -> u64 {
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

/// Cuts `s` to at most [`MAX_OUTCOME_BYTES`], at a character boundary.
fn truncate_outcome(s: &str) -> Box<str> {
    let mut end = s.len().min(MAX_OUTCOME_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].into()
}

/// A static outcome code is stored without a copy (one per executed tx).
fn static_outcome(s: &'static str) -> Cow<'static, str> {
    if s.len() <= MAX_OUTCOME_BYTES {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(truncate_outcome(s).into())
    }
}

/// One tracked transaction.
#[derive(Debug)]
struct Entry {
    id: Uuid,
    origin: Origin,
    /// Insertion sequence number: this entry's key in `Inner::order`.
    seq: u64,
    /// The time passed to `begin`; age eviction counts from here.
    first_seen_us: u64,
    /// Bit `i` set = `times[i]` holds stage `i`'s time.
    recorded: u16,
    times: [u64; STAGE_COUNT],
    height: Option<u64>,
    outcome: Option<Cow<'static, str>>,
}

impl Entry {
    fn stage_time(&self, stage: Stage) -> Option<u64> {
        (self.recorded & (1 << stage.index()) != 0).then(|| self.times[stage.index()])
    }

    /// Records `stage` at `at` unless it is already recorded (first time
    /// wins); true if it was new.
    fn set_stage(&mut self, stage: Stage, at: u64) -> bool {
        if self.stage_time(stage).is_some() {
            return false;
        }
        self.recorded |= 1 << stage.index();
        self.times[stage.index()] = at;
        true
    }

    fn completed(&self) -> bool {
        self.stage_time(Stage::Executed).is_some()
    }

    /// Recorded stages in [`Stage`] order.
    fn stages(&self) -> impl Iterator<Item = StageAt> + '_ {
        Stage::ALL.into_iter().filter_map(|stage| {
            self.stage_time(stage)
                .map(|at_unix_us| StageAt { stage, at_unix_us })
        })
    }

    /// The earliest recorded time (the latency baseline).
    fn earliest(&self) -> Option<u64> {
        self.stages().map(|s| s.at_unix_us).min()
    }
}

/// The last [`LATENCY_SAMPLES_PER_STAGE`] samples of one stage.
#[derive(Debug, Default)]
struct LatencyRing {
    samples: Vec<u64>,
    /// Where the next sample goes once the ring is full.
    next: usize,
}

impl LatencyRing {
    fn push(&mut self, sample: u64) {
        if self.samples.len() < LATENCY_SAMPLES_PER_STAGE {
            self.samples.push(sample);
        } else {
            self.samples[self.next] = sample;
        }
        self.next = (self.next + 1) % LATENCY_SAMPLES_PER_STAGE;
    }
}

/// Everything behind the tracker's mutex.
#[derive(Debug, Default)]
struct Inner {
    entries: FastMap<Hash32, Entry>,
    /// Insertion sequence number → tx; the first key is the oldest entry.
    order: BTreeMap<u64, Hash32>,
    /// Correlation id → its txs, oldest first, at most [`MAX_TXS_PER_ID`].
    by_id: FastMap<Uuid, VecDeque<Hash32>>,
    next_seq: u64,
    /// Retained entries that reached Executed.
    completed: u64,
    tracked_total: u64,
    completed_total: u64,
    evicted_capacity_total: u64,
    evicted_age_total: u64,
    latency: [LatencyRing; STAGE_COUNT],
}

impl Inner {
    /// Removes `tx` from all three indexes. The only removal path, so they
    /// stay consistent.
    fn remove(&mut self, tx: &Hash32) -> Option<Entry> {
        let entry = self.entries.remove(tx)?;
        self.order.remove(&entry.seq);
        if let Some(list) = self.by_id.get_mut(&entry.id) {
            // Eviction is oldest first, so the tx is nearly always the
            // front: O(1) instead of a scan of up to MAX_TXS_PER_ID.
            if list.front() == Some(tx) {
                list.pop_front();
            } else {
                list.retain(|t| t != tx);
            }
            if list.is_empty() {
                self.by_id.remove(&entry.id);
            }
        }
        if entry.completed() {
            self.completed -= 1;
        }
        Some(entry)
    }

    /// Removes the oldest entry by insertion; false if there is none.
    fn evict_oldest(&mut self) -> bool {
        let Some((_, tx)) = self.order.pop_first() else {
            return false;
        };
        // `remove` finds the sequence number already gone; that is fine.
        self.remove(&tx).is_some()
    }

    /// Records `stage` for a tracked `tx`, updating completion counters and
    /// latency samples; false if `tx` is not tracked.
    fn record(&mut self, tx: &Hash32, stage: Stage, at: u64) -> bool {
        let Some(entry) = self.entries.get_mut(tx) else {
            return false;
        };
        let mut done = Completion {
            latency: &mut self.latency,
            completed: &mut self.completed,
            completed_total: &mut self.completed_total,
        };
        done.record(entry, stage, at);
        true
    }
}

/// The counters a stage that completes an entry updates (borrowed apart
/// from `Inner::entries`, so one lookup serves several stages).
struct Completion<'a> {
    latency: &'a mut [LatencyRing; STAGE_COUNT],
    completed: &'a mut u64,
    completed_total: &'a mut u64,
}

impl Completion<'_> {
    fn record(&mut self, entry: &mut Entry, stage: Stage, at: u64) {
        let was_completed = entry.completed();
        if !entry.set_stage(stage, at) || !entry.completed() {
            return;
        }
        let base = entry.earliest().unwrap_or(at);
        if was_completed {
            // A stage arriving after completion (Settled, or a late hook).
            self.latency[stage.index()].push(at.saturating_sub(base));
        } else {
            *self.completed += 1;
            *self.completed_total += 1;
            for s in entry.stages() {
                self.latency[s.stage.index()].push(s.at_unix_us.saturating_sub(base));
            }
        }
    }
}

/// Per-validator record of when each tracked transaction reached each
/// [`Stage`]. See the module docs.
pub struct CorrelationTracker {
    config: TrackerConfig,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for CorrelationTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CorrelationTracker")
            .field("config", &self.config)
            .field("entries", &self.lock().entries.len())
            .finish()
    }
}

impl CorrelationTracker {
    /// A tracker with `config`'s bounds. The config is not validated here
    /// (callers run [`TrackerConfig::validate`] at load); `max_entries == 0`
    /// tracks nothing.
    pub fn new(config: TrackerConfig) -> Self {
        CorrelationTracker {
            config,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The bounds this tracker was built with.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// The state. A poisoned lock is recovered: nothing under it panics
    /// between two updates that must go together, short of an allocation
    /// failure, and losing tracing for the rest of the process would be worse.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts tracking tx `tx` under correlation id `id` at `stage` (no-op if
    /// `tx` is already tracked: it then only records the stage).
    ///
    /// Makes room first: the oldest tx under `id` if `id` already has
    /// [`MAX_TXS_PER_ID`], then the oldest tx overall if the tracker is full.
    /// Both count as capacity evictions.
    pub fn begin(&self, id: Uuid, tx: Hash32, origin: Origin, stage: Stage, at_unix_us: u64) {
        let mut inner = self.lock();
        if inner.entries.contains_key(&tx) {
            inner.record(&tx, stage, at_unix_us);
            return;
        }
        if self.config.max_entries == 0 {
            return;
        }
        let oldest_of_id = inner
            .by_id
            .get(&id)
            .filter(|list| list.len() >= MAX_TXS_PER_ID)
            .and_then(|list| list.front().copied());
        if let Some(oldest) = oldest_of_id {
            inner.remove(&oldest);
            inner.evicted_capacity_total += 1;
        }
        // Both maps churn at the bound from here on: give them their final
        // table now, or they double minutes later (see `crate::fifo`).
        reserve_for_churn(&mut inner.entries, self.config.max_entries);
        reserve_for_churn(&mut inner.by_id, self.config.max_entries);
        while inner.entries.len() >= self.config.max_entries && inner.evict_oldest() {
            inner.evicted_capacity_total += 1;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.entries.insert(
            tx,
            Entry {
                id,
                origin,
                seq,
                first_seen_us: at_unix_us,
                recorded: 0,
                times: [0; STAGE_COUNT],
                height: None,
                outcome: None,
            },
        );
        inner.order.insert(seq, tx);
        inner.by_id.entry(id).or_default().push_back(tx);
        inner.tracked_total += 1;
        inner.record(&tx, stage, at_unix_us);
    }

    /// Records a stage for a tracked tx; false if `tx` is not tracked (cheap:
    /// one hash lookup). A stage already recorded keeps its FIRST time.
    pub fn record(&self, tx: &Hash32, stage: Stage, at_unix_us: u64) -> bool {
        self.lock().record(tx, stage, at_unix_us)
    }

    /// Records one stage for many txs under one lock (a block's worth);
    /// returns how many of them were tracked.
    pub fn record_many<'a>(
        &self,
        txs: impl IntoIterator<Item = &'a Hash32>,
        stage: Stage,
        at_unix_us: u64,
    ) -> usize {
        let mut inner = self.lock();
        txs.into_iter()
            .filter(|tx| inner.record(tx, stage, at_unix_us))
            .count()
    }

    /// Height of the block that carried the tx (no-op if it is not tracked).
    pub fn set_block(&self, tx: &Hash32, height: u64) {
        if let Some(entry) = self.lock().entries.get_mut(tx) {
            entry.height = Some(height);
        }
    }

    /// Its outcome at execution: `"accepted"` or a rejection code like
    /// `"bad_nonce"`, cut to [`MAX_OUTCOME_BYTES`] (no-op if not tracked).
    pub fn set_outcome(&self, tx: &Hash32, outcome: &str) {
        if let Some(entry) = self.lock().entries.get_mut(tx) {
            entry.outcome = Some(Cow::Owned(truncate_outcome(outcome).into()));
        }
    }

    /// What execution learns about a tracked tx, under one lock and one
    /// lookup (a block's worth of these was a tenth of a validator's
    /// tracing cost): each of `stages` as [`Self::record`] would, then the
    /// block height and the outcome code. Returns its correlation id and
    /// origin; `None` (and no change) if `tx` is not tracked.
    pub fn executed(
        &self,
        tx: &Hash32,
        stages: &[(Stage, u64)],
        height: u64,
        outcome: &'static str,
    ) -> Option<(Uuid, Origin)> {
        self.with_stages(tx, stages, |entry| {
            entry.height = Some(height);
            entry.outcome = Some(static_outcome(outcome));
        })
    }

    /// Records each of `stages` as [`Self::record`] would, under one lock and
    /// one lookup, and returns the tx's correlation id and origin; `None`
    /// (and no change) if `tx` is not tracked. What a leader does for each
    /// transaction of its proposal (batched, proposed).
    pub fn record_stages(&self, tx: &Hash32, stages: &[(Stage, u64)]) -> Option<(Uuid, Origin)> {
        self.with_stages(tx, stages, |_| {})
    }

    fn with_stages(
        &self,
        tx: &Hash32,
        stages: &[(Stage, u64)],
        then: impl FnOnce(&mut Entry),
    ) -> Option<(Uuid, Origin)> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let entry = inner.entries.get_mut(tx)?;
        let mut done = Completion {
            latency: &mut inner.latency,
            completed: &mut inner.completed,
            completed_total: &mut inner.completed_total,
        };
        for &(stage, at) in stages {
            done.record(entry, stage, at);
        }
        then(entry);
        Some((entry.id, entry.origin))
    }

    /// The correlation id and origin of a tracked tx (for propagating trace
    /// context to peers).
    pub fn origin_of(&self, tx: &Hash32) -> Option<(Uuid, Origin)> {
        self.lock().entries.get(tx).map(|e| (e.id, e.origin))
    }

    /// Every tracked tx under `id` (a client may reuse one id for several
    /// requests), at most [`MAX_TXS_PER_ID`], oldest first.
    pub fn get(&self, id: &Uuid) -> Vec<Timeline> {
        let inner = self.lock();
        let Some(list) = inner.by_id.get(id) else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|tx| {
                let entry = inner.entries.get(tx)?;
                Some(Timeline {
                    correlation_id: entry.id,
                    tx_hash: tx.to_hex(),
                    height: entry.height,
                    outcome: entry.outcome.as_deref().map(str::to_owned),
                    completed: entry.completed(),
                    stages: entry.stages().collect(),
                })
            })
            .collect()
    }

    /// Counters and per-stage latency percentiles. Copies and sorts the
    /// sample rings (at most 11 × [`LATENCY_SAMPLES_PER_STAGE`] values), so
    /// it is meant for the stats endpoint, not a hot path.
    pub fn stats(&self) -> TrackerStats {
        let (mut samples, mut stats) = {
            let inner = self.lock();
            let samples: Vec<(Stage, Vec<u64>)> = Stage::ALL
                .into_iter()
                .map(|s| (s, inner.latency[s.index()].samples.clone()))
                .collect();
            let retained = inner.entries.len() as u64;
            let stats = TrackerStats {
                active: retained - inner.completed,
                completed: inner.completed,
                tracked_total: inner.tracked_total,
                completed_total: inner.completed_total,
                evicted_capacity_total: inner.evicted_capacity_total,
                evicted_age_total: inner.evicted_age_total,
                max_entries: self.config.max_entries as u64,
                max_age_ms: self.config.max_age_ms,
                stage_latency_us: BTreeMap::new(),
            };
            (samples, stats)
        };
        // Sort outside the lock so the engine's hooks never wait for it.
        for (stage, values) in &mut samples {
            values.sort_unstable();
            if let Some(summary) = LatencySummary::of_sorted(values) {
                stats.stage_latency_us.insert(stage.as_str(), summary);
            }
        }
        stats
    }

    /// Evicts entries first seen more than `max_age_ms` before `now_unix_us`;
    /// returns how many.
    ///
    /// Scans every entry (O(entries); about a millisecond at the default
    /// bound, every few seconds). Insertion order is not first-seen order,
    /// because the stage hooks stamp times from different call sites and
    /// clocks may step, so the scan cannot stop at the first young entry.
    pub fn cleanup(&self, now_unix_us: u64) -> usize {
        let max_age_us = self.config.max_age_ms.saturating_mul(1_000);
        let mut inner = self.lock();
        let expired: Vec<Hash32> = inner
            .entries
            .iter()
            .filter(|(_, e)| now_unix_us.saturating_sub(e.first_seen_us) > max_age_us)
            .map(|(tx, _)| *tx)
            .collect();
        for tx in &expired {
            inner.remove(tx);
        }
        inner.evicted_age_total += expired.len() as u64;
        expired.len()
    }

    /// Checks that the three indexes and the completion counter agree, and
    /// that every bound holds. Test-only.
    #[cfg(test)]
    fn check_invariants(&self) -> Result<(), String> {
        let inner = self.lock();
        let n = inner.entries.len();
        if n > self.config.max_entries {
            return Err(format!("{n} entries > max {}", self.config.max_entries));
        }
        if inner.order.len() != n {
            return Err(format!("order has {}, entries {n}", inner.order.len()));
        }
        for (seq, tx) in &inner.order {
            match inner.entries.get(tx) {
                Some(e) if e.seq == *seq => {}
                _ => return Err(format!("order {seq} -> {tx:?} has no matching entry")),
            }
        }
        let mut listed = 0;
        for (id, list) in &inner.by_id {
            if list.is_empty() || list.len() > MAX_TXS_PER_ID {
                return Err(format!("id {id} lists {} txs", list.len()));
            }
            let mut last_seq = None;
            for tx in list {
                let e = inner
                    .entries
                    .get(tx)
                    .ok_or_else(|| format!("id {id} lists untracked {tx:?}"))?;
                if e.id != *id {
                    return Err(format!(
                        "{tx:?} listed under {id} but tracked under {}",
                        e.id
                    ));
                }
                if last_seq.is_some_and(|s| s >= e.seq) {
                    return Err(format!("id {id} list is not oldest first"));
                }
                last_seq = Some(e.seq);
            }
            listed += list.len();
        }
        if listed != n {
            return Err(format!("ids list {listed} txs, entries {n}"));
        }
        let completed = inner.entries.values().filter(|e| e.completed()).count() as u64;
        if completed != inner.completed {
            return Err(format!(
                "completed {completed} != counter {}",
                inner.completed
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tx(n: u8) -> Hash32 {
        Hash32([n; 32])
    }

    fn id(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn tracker(max_entries: usize) -> CorrelationTracker {
        CorrelationTracker::new(TrackerConfig {
            max_entries,
            ..TrackerConfig::default()
        })
    }

    fn stages_of(t: &Timeline) -> Vec<(Stage, u64)> {
        t.stages.iter().map(|s| (s.stage, s.at_unix_us)).collect()
    }

    /// `executed` under one lock equals the separate calls it replaces:
    /// same timelines, counters and latency samples, for a tracked tx, an
    /// already completed one (a late stage) and an untracked one.
    #[test]
    fn executed_matches_separate_calls() {
        let (one, many) = (tracker(100), tracker(100));
        let origin = Origin::default();
        for t in [&one, &many] {
            t.begin(id(1), tx(1), origin, Stage::Mempool, 10);
            t.begin(id(1), tx(2), origin, Stage::Mempool, 20);
            t.record(&tx(2), Stage::Executed, 25);
        }
        let stages = [
            (Stage::Proposed, 30),
            (Stage::Committed, 40),
            (Stage::Executed, 50),
        ];
        for x in [tx(1), tx(2), tx(3)] {
            let got = one.executed(&x, &stages, 7, "bad_nonce");
            assert_eq!(got.is_some(), x != tx(3));
            if many.origin_of(&x).is_some() {
                for (stage, at) in stages {
                    many.record(&x, stage, at);
                }
                many.set_block(&x, 7);
                many.set_outcome(&x, "bad_nonce");
            }
        }
        assert_eq!(one.get(&id(1)), many.get(&id(1)));
        assert_eq!(one.stats(), many.stats());
        let got = one.get(&id(1));
        assert_eq!(got[0].height, Some(7));
        assert_eq!(got[0].outcome.as_deref(), Some("bad_nonce"));
        assert_eq!(
            stages_of(&got[1]).last(),
            Some(&(Stage::Executed, 25)),
            "first time wins"
        );
        assert_eq!(one.stats().completed, 2);
    }

    /// `record_stages` equals `origin_of` plus one `record` per stage, and
    /// leaves an untracked tx untracked.
    #[test]
    fn record_stages_matches_separate_calls() {
        let (one, many) = (tracker(100), tracker(100));
        let origin = Origin {
            parent_span_id: Some([3; 8]),
            sampled: true,
        };
        for t in [&one, &many] {
            t.begin(id(4), tx(1), origin, Stage::Mempool, 10);
            t.record(&tx(1), Stage::Batched, 12);
        }
        let stages = [(Stage::Batched, 15), (Stage::Proposed, 20)];
        for x in [tx(1), tx(2)] {
            let got = one.record_stages(&x, &stages);
            let want = many.origin_of(&x);
            assert_eq!(got, want);
            if want.is_some() {
                for (stage, at) in stages {
                    many.record(&x, stage, at);
                }
            }
        }
        assert_eq!(one.record_stages(&tx(1), &[]), Some((id(4), origin)));
        assert_eq!(one.get(&id(4)), many.get(&id(4)));
        assert_eq!(one.stats(), many.stats());
        assert_eq!(
            stages_of(&one.get(&id(4))[0]),
            vec![
                (Stage::Mempool, 10),
                (Stage::Batched, 12),
                (Stage::Proposed, 20)
            ],
            "first time wins"
        );
        assert!(one.get(&id(5)).is_empty());
    }

    #[test]
    fn stage_order_names_and_serde() {
        let mut sorted = Stage::ALL;
        sorted.sort();
        assert_eq!(sorted, Stage::ALL);
        for (i, s) in Stage::ALL.into_iter().enumerate() {
            assert_eq!(s.index(), i);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(Stage::Certified.as_str(), "certified");
        assert!(Stage::Received < Stage::Settled);
    }

    #[test]
    fn stages_come_out_in_stage_order_and_first_time_wins() {
        let t = tracker(8);
        t.begin(id(1), tx(1), Origin::default(), Stage::Received, 100);
        // Recorded out of order, and Mempool twice.
        assert!(t.record(&tx(1), Stage::Mempool, 300));
        assert!(t.record(&tx(1), Stage::Admitted, 200));
        assert!(t.record(&tx(1), Stage::Mempool, 999));
        // begin on a tracked tx only records the stage, under the first id.
        t.begin(id(2), tx(1), Origin::default(), Stage::Received, 5);
        t.begin(id(2), tx(1), Origin::default(), Stage::Verified, 250);
        let got = t.get(&id(1));
        assert_eq!(got.len(), 1);
        assert_eq!(
            stages_of(&got[0]),
            vec![
                (Stage::Received, 100),
                (Stage::Admitted, 200),
                (Stage::Verified, 250),
                (Stage::Mempool, 300),
            ]
        );
        assert!(!got[0].completed);
        assert!(t.get(&id(2)).is_empty());
        t.check_invariants().unwrap();
    }

    #[test]
    fn record_on_unknown_tx_returns_false_and_tracks_nothing() {
        let t = tracker(8);
        assert!(!t.record(&tx(9), Stage::Executed, 1));
        t.set_block(&tx(9), 3);
        t.set_outcome(&tx(9), "accepted");
        assert_eq!(t.origin_of(&tx(9)), None);
        let s = t.stats();
        assert_eq!((s.active, s.completed, s.tracked_total), (0, 0, 0));
        assert!(s.stage_latency_us.is_empty());
    }

    #[test]
    fn record_many_counts_tracked_txs_only() {
        let t = tracker(8);
        t.begin(id(1), tx(1), Origin::default(), Stage::Mempool, 10);
        t.begin(id(1), tx(2), Origin::default(), Stage::Mempool, 10);
        let block = [tx(1), tx(2), tx(3)];
        assert_eq!(t.record_many(&block, Stage::Committed, 50), 2);
        assert_eq!(t.record_many(&block, Stage::Executed, 60), 2);
        let got = t.get(&id(1));
        assert!(got.iter().all(|tl| tl.completed));
        assert_eq!(t.stats().completed, 2);
    }

    #[test]
    fn capacity_eviction_drops_the_oldest_from_every_index() {
        let t = tracker(3);
        t.begin(id(1), tx(1), Origin::default(), Stage::Received, 1);
        t.begin(id(1), tx(2), Origin::default(), Stage::Received, 2);
        t.begin(id(2), tx(3), Origin::default(), Stage::Received, 3);
        // tx1 is touched later, but eviction is by insertion order.
        t.record(&tx(1), Stage::Executed, 10);
        t.begin(id(3), tx(4), Origin::default(), Stage::Received, 4);
        assert_eq!(t.origin_of(&tx(1)), None);
        assert!(!t.record(&tx(1), Stage::Settled, 11));
        let under_1: Vec<String> = t.get(&id(1)).into_iter().map(|x| x.tx_hash).collect();
        assert_eq!(under_1, vec![tx(2).to_hex()]);
        let s = t.stats();
        assert_eq!(s.evicted_capacity_total, 1);
        assert_eq!((s.active, s.completed), (3, 0));
        assert_eq!((s.tracked_total, s.completed_total), (4, 1));
        t.check_invariants().unwrap();
        // The next eviction takes tx2, and id 1 disappears from the id index.
        t.begin(id(3), tx(5), Origin::default(), Stage::Received, 5);
        assert!(t.get(&id(1)).is_empty());
        t.check_invariants().unwrap();
    }

    #[test]
    fn an_id_keeps_its_newest_batch_of_txs() {
        let extra = 4;
        let t = tracker(MAX_TXS_PER_ID + 100);
        let total = MAX_TXS_PER_ID + extra;
        for n in 0..total {
            t.begin(id(7), tx_n(n), Origin::default(), Stage::Received, n as u64);
        }
        let got = t.get(&id(7));
        assert_eq!(got.len(), MAX_TXS_PER_ID);
        let hashes: Vec<String> = got.into_iter().map(|x| x.tx_hash).collect();
        let want: Vec<String> = (extra..total).map(|n| tx_n(n).to_hex()).collect();
        assert_eq!(hashes, want);
        assert_eq!(t.stats().evicted_capacity_total, extra as u64);
        assert_eq!(t.origin_of(&tx_n(extra - 1)), None);
        t.check_invariants().unwrap();
    }

    /// A distinct tx hash for each `n` (wider than [`tx`]'s byte).
    fn tx_n(n: usize) -> Hash32 {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&(n as u64).to_le_bytes());
        h[31] = 0xAB;
        Hash32(h)
    }

    #[test]
    fn age_eviction_by_first_seen() {
        let t = CorrelationTracker::new(TrackerConfig {
            max_entries: 10,
            max_age_ms: 1_000,
            cleanup_interval_ms: 100,
        });
        t.begin(id(1), tx(1), Origin::default(), Stage::Received, 1_000_000);
        t.begin(id(1), tx(2), Origin::default(), Stage::Received, 1_500_000);
        // Later stages do not refresh the age.
        t.record(&tx(1), Stage::Executed, 1_900_000);
        // Exactly max_age old is kept; older goes.
        assert_eq!(t.cleanup(2_000_000), 0);
        assert_eq!(t.cleanup(2_000_001), 1);
        assert_eq!(t.origin_of(&tx(1)), None);
        assert_eq!(t.get(&id(1)).len(), 1);
        let s = t.stats();
        assert_eq!((s.evicted_age_total, s.active, s.completed), (1, 1, 0));
        // The completed sample survives eviction.
        assert_eq!(s.stage_latency_us["executed"].count, 1);
        t.check_invariants().unwrap();
        assert_eq!(t.cleanup(u64::MAX), 1);
        assert!(t.get(&id(1)).is_empty());
        t.check_invariants().unwrap();
        // A clock before the entries never evicts (no underflow).
        t.begin(id(1), tx(3), Origin::default(), Stage::Received, 5_000_000);
        assert_eq!(t.cleanup(0), 0);
    }

    #[test]
    fn get_by_id_returns_every_tx_oldest_first_with_block_and_outcome() {
        let t = tracker(10);
        t.begin(id(1), tx(5), Origin::default(), Stage::Received, 10);
        t.begin(id(2), tx(6), Origin::default(), Stage::Received, 11);
        t.begin(id(1), tx(4), Origin::default(), Stage::Received, 12);
        t.set_block(&tx(4), 42);
        t.record(&tx(4), Stage::Executed, 20);
        let long = "x".repeat(100) + "é";
        t.set_outcome(&tx(4), &long);
        t.set_outcome(&tx(5), "bad_nonce");
        let got = t.get(&id(1));
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].tx_hash, tx(5).to_hex());
        assert_eq!(got[0].correlation_id, id(1));
        assert_eq!(got[0].outcome.as_deref(), Some("bad_nonce"));
        assert_eq!(got[0].height, None);
        assert!(!got[0].completed);
        assert_eq!(got[1].tx_hash, tx(4).to_hex());
        assert_eq!(got[1].height, Some(42));
        assert_eq!(got[1].outcome.as_deref(), Some("x".repeat(64).as_str()));
        assert!(got[1].completed);
        assert!(t.get(&id(3)).is_empty());
    }

    #[test]
    fn outcome_truncates_at_a_char_boundary() {
        // 63 ASCII bytes then a 2-byte character straddling byte 64.
        let s = "a".repeat(63) + "é";
        assert_eq!(&*truncate_outcome(&s), "a".repeat(63).as_str());
        assert_eq!(&*truncate_outcome("accepted"), "accepted");
    }

    #[test]
    fn origin_of_returns_id_and_origin() {
        let t = tracker(4);
        let origin = Origin {
            parent_span_id: Some([1, 2, 3, 4, 5, 6, 7, 8]),
            sampled: true,
        };
        t.begin(id(3), tx(1), origin, Stage::Received, 1);
        // A second begin under another origin does not overwrite it.
        t.begin(id(4), tx(1), Origin::default(), Stage::Mempool, 2);
        assert_eq!(t.origin_of(&tx(1)), Some((id(3), origin)));
        assert_eq!(t.origin_of(&tx(2)), None);
    }

    #[test]
    fn stats_counts_and_percentiles_on_known_inputs() {
        let t = tracker(1_000);
        // 100 txs; tx n is received at 1000, executed n µs later, and the
        // first 10 also settle 1000 µs after executing.
        for n in 1..=100u8 {
            t.begin(id(n), tx(n), Origin::default(), Stage::Received, 1_000);
            t.record(&tx(n), Stage::Executed, 1_000 + u64::from(n));
        }
        for n in 1..=10u8 {
            t.record(&tx(n), Stage::Settled, 2_000 + u64::from(n));
        }
        // Two more that never complete.
        t.begin(id(200), tx(200), Origin::default(), Stage::Received, 1_000);
        t.begin(id(201), tx(201), Origin::default(), Stage::Received, 1_000);
        t.record(&tx(201), Stage::Committed, 5_000);

        let s = t.stats();
        assert_eq!(s.active, 2);
        assert_eq!(s.completed, 100);
        assert_eq!(s.tracked_total, 102);
        assert_eq!(s.completed_total, 100);
        assert_eq!(s.max_entries, 1_000);
        assert_eq!(s.max_age_ms, DEFAULT_MAX_AGE_MS);
        let exec = s.stage_latency_us["executed"];
        assert_eq!(
            exec,
            LatencySummary {
                count: 100,
                p50: 50,
                p95: 95,
                p99: 99,
                max: 100
            }
        );
        let recv = s.stage_latency_us["received"];
        assert_eq!((recv.count, recv.max), (100, 0));
        let settled = s.stage_latency_us["settled"];
        // 1001+n for n in 1..=10: nearest rank 50% of 10 = 5th.
        assert_eq!(
            (settled.count, settled.p50, settled.max),
            (10, 1_005, 1_010)
        );
        // Committed only happened on an incomplete entry: no sample.
        assert!(!s.stage_latency_us.contains_key("committed"));
        assert_eq!(s.stage_latency_us.len(), 3);
    }

    #[test]
    fn latency_baseline_is_the_earliest_recorded_stage() {
        let t = tracker(4);
        // A follower first sees the tx in a proposal, then its mempool copy
        // arrives stamped earlier.
        t.begin(id(1), tx(1), Origin::default(), Stage::Proposed, 500);
        t.record(&tx(1), Stage::Mempool, 400);
        t.record(&tx(1), Stage::Executed, 900);
        let s = t.stats();
        assert_eq!(s.stage_latency_us["mempool"].max, 0);
        assert_eq!(s.stage_latency_us["proposed"].max, 100);
        assert_eq!(s.stage_latency_us["executed"].max, 500);
    }

    #[test]
    fn latency_ring_keeps_the_most_recent_samples() {
        let mut ring = LatencyRing::default();
        for v in 0..(LATENCY_SAMPLES_PER_STAGE as u64 + 10) {
            ring.push(v);
        }
        assert_eq!(ring.samples.len(), LATENCY_SAMPLES_PER_STAGE);
        let mut sorted = ring.samples.clone();
        sorted.sort_unstable();
        assert_eq!(sorted[0], 10);
        assert_eq!(
            *sorted.last().unwrap(),
            LATENCY_SAMPLES_PER_STAGE as u64 + 9
        );
    }

    #[test]
    fn nearest_rank_edges() {
        assert_eq!(nearest_rank(&[7], 50), 7);
        assert_eq!(nearest_rank(&[7], 99), 7);
        assert_eq!(nearest_rank(&[1, 2], 50), 1);
        assert_eq!(nearest_rank(&[1, 2], 51), 2);
        assert_eq!(LatencySummary::of_sorted(&[]), None);
    }

    #[test]
    fn zero_capacity_tracks_nothing() {
        let t = tracker(0);
        t.begin(id(1), tx(1), Origin::default(), Stage::Received, 1);
        assert!(t.get(&id(1)).is_empty());
        assert_eq!(t.stats().tracked_total, 0);
        t.check_invariants().unwrap();
    }

    #[test]
    fn config_validation() {
        assert_eq!(TrackerConfig::default().validate(), Ok(()));
        let ok = TrackerConfig {
            max_entries: 1,
            max_age_ms: 1_000,
            cleanup_interval_ms: 100,
        };
        assert_eq!(ok.validate(), Ok(()));
        let bad = [
            TrackerConfig {
                max_entries: 0,
                ..ok.clone()
            },
            TrackerConfig {
                max_entries: MAX_ENTRIES_LIMIT + 1,
                ..ok.clone()
            },
            TrackerConfig {
                max_age_ms: 999,
                ..ok.clone()
            },
            TrackerConfig {
                cleanup_interval_ms: 99,
                ..ok.clone()
            },
            TrackerConfig {
                cleanup_interval_ms: 1_001,
                ..ok.clone()
            },
        ];
        for (c, field) in bad.iter().zip([
            "max_entries",
            "max_entries",
            "max_age_ms",
            "cleanup_interval_ms",
            "cleanup_interval_ms",
        ]) {
            let err = c.validate().unwrap_err();
            assert!(err.starts_with(field), "{c:?}: {err}");
        }
    }

    #[test]
    fn tracker_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<CorrelationTracker>();
    }

    #[derive(Debug, Clone)]
    enum Op {
        Begin {
            id: u8,
            tx: u8,
            stage: usize,
            at: u64,
        },
        Record {
            tx: u8,
            stage: usize,
            at: u64,
        },
        RecordMany {
            txs: Vec<u8>,
            stage: usize,
            at: u64,
        },
        Cleanup {
            now: u64,
        },
        Outcome {
            tx: u8,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        // Few ids and txs so that collisions, re-begins and per-id overflow
        // (more than 16 txs under one id) all happen.
        let stage = 0..STAGE_COUNT;
        let at = 0..20_000_000u64;
        prop_oneof![
            4 => (0..3u8, 0..40u8, stage.clone(), at.clone())
                .prop_map(|(id, tx, stage, at)| Op::Begin { id, tx, stage, at }),
            3 => (0..40u8, stage.clone(), at.clone())
                .prop_map(|(tx, stage, at)| Op::Record { tx, stage, at }),
            1 => (prop::collection::vec(0..40u8, 0..8), stage, at.clone())
                .prop_map(|(txs, stage, at)| Op::RecordMany { txs, stage, at }),
            1 => at.prop_map(|now| Op::Cleanup { now }),
            1 => (0..40u8).prop_map(|tx| Op::Outcome { tx }),
        ]
    }

    proptest! {
        #[test]
        fn bounds_and_indexes_hold_after_any_operations(
            max_entries in 1..24usize,
            ops in prop::collection::vec(op(), 0..200),
        ) {
            let t = CorrelationTracker::new(TrackerConfig {
                max_entries,
                max_age_ms: 5_000,
                cleanup_interval_ms: 100,
            });
            for op in ops {
                match op {
                    Op::Begin { id: i, tx: x, stage, at } => {
                        t.begin(id(i), tx(x), Origin::default(), Stage::ALL[stage], at)
                    }
                    Op::Record { tx: x, stage, at } => {
                        t.record(&tx(x), Stage::ALL[stage], at);
                    }
                    Op::RecordMany { txs, stage, at } => {
                        let hashes: Vec<Hash32> = txs.into_iter().map(tx).collect();
                        t.record_many(&hashes, Stage::ALL[stage], at);
                    }
                    Op::Cleanup { now } => {
                        t.cleanup(now);
                    }
                    Op::Outcome { tx: x } => t.set_outcome(&tx(x), "accepted"),
                }
                prop_assert_eq!(t.check_invariants(), Ok(()));
                let s = t.stats();
                prop_assert!(s.active + s.completed <= max_entries as u64);
                prop_assert!(s.completed_total <= s.tracked_total);
                prop_assert_eq!(
                    s.tracked_total - (s.active + s.completed),
                    s.evicted_capacity_total + s.evicted_age_total
                );
                for i in 0..3 {
                    let got = t.get(&id(i));
                    prop_assert!(got.len() <= MAX_TXS_PER_ID);
                    for tl in got {
                        prop_assert_eq!(tl.correlation_id, id(i));
                        let sorted = tl.stages.windows(2).all(|w| w[0].stage < w[1].stage);
                        prop_assert!(sorted);
                    }
                }
            }
        }
    }
}
