//! Following transactions through this validator: stage times into the
//! correlation tracker, spans into each transaction's trace, and one span per
//! block that links to the transactions it carried.
//!
//! The engine calls in at each consensus step it already takes (proposal
//! sent or received, vote requested, notarization persisted, commit,
//! execution, roll). Times are wall-clock µs since the Unix epoch so that
//! timelines from different validators can be merged (`bitcraps trace`).
//!
//! Spans are built after the fact, when a block executes, from the recorded
//! stage times: span `S` runs from the previous recorded stage to stage `S`
//! (`vote` = proposal seen -> vote signed, `certify` = vote -> notarization,
//! ...). Building them late keeps span bookkeeping out of the consensus path
//! entirely, and nothing is built unless OTLP export is on and the request
//! was sampled. A transaction's spans all hang off its request span at the
//! origin validator, whose id reaches the others in the trace envelope
//! ([`super::trace_frame`]).
//!
//! Everything here is bounded: block marks and envelopes are kept for the
//! most recent blocks only, open bets for a fixed count.

use super::trace_frame::{TraceEntry, TraceEnvelope};
use crate::app::craps::{BetKind, BetResult};
use crate::app::payload::split_payload;
use crate::app::state::{is_replay, BlockResult};
use crate::app::tx::{tx_hash, Action, SignedTx};
use crate::fifo::FifoMap;
use crate::trace::otel::{exporting, trace_hex, TRACER_NAME};
use crate::trace::tracker::{CorrelationTracker, Origin, Stage, Timeline};
use crate::trace::unix_now_us;
use bitcraps_consensus::{Block, CommittedBlock, View};
use bitcraps_crypto::Hash32;
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// Blocks whose consensus stage times are remembered until they execute.
const MAX_MARKED_BLOCKS: usize = 256;
/// Blocks whose trace envelopes are remembered until they execute.
const MAX_ENVELOPE_BLOCKS: usize = 64;
/// Envelopes kept per block (only the proposer's is used; a few more room
/// for a hostile peer's without displacing it).
const MAX_ENVELOPES_PER_BLOCK: usize = 4;
/// Traced bets waiting for the roll that settles them.
const MAX_OPEN_BETS: usize = 65_536;
/// Links on one block span (the SDK's default span limit).
const MAX_BLOCK_LINKS: usize = 128;

/// When this validator saw each consensus step of one block (µs).
#[derive(Debug, Default, Clone, Copy)]
struct Marks {
    batched: Option<u64>,
    proposed: Option<u64>,
    voted: Option<u64>,
    certified: Option<u64>,
    committed: Option<u64>,
}

/// A map of recent blocks that forgets the oldest past its bound.
#[derive(Debug)]
struct Recent<V>(FifoMap<Hash32, V>);

impl<V: Default> Recent<V> {
    fn new(cap: usize) -> Self {
        Recent(FifoMap::new(cap))
    }

    fn entry(&mut self, block: Hash32) -> &mut V {
        self.0.get_or_insert_with(block, V::default)
    }

    /// Takes `block`'s value out.
    fn take(&mut self, block: &Hash32) -> Option<V> {
        self.0.remove(block)
    }
}

/// A bet spot a traced transaction put chips on.
type BetSpot = (u64, [u8; 32], BetKind);

/// Per-validator transaction tracing (see the module doc).
#[derive(Debug)]
pub(super) struct TxTracer {
    tracker: Arc<CorrelationTracker>,
    me: u16,
    marks: Recent<Marks>,
    envelopes: Recent<Vec<(u16, TraceEnvelope)>>,
    /// When we last took a payload from the mempool, and for which view.
    batched: Option<(View, u64)>,
    open_bets: HashMap<BetSpot, Vec<Hash32>>,
    open_bet_count: usize,
}

impl TxTracer {
    pub(super) fn new(tracker: Arc<CorrelationTracker>, me: u16) -> Self {
        TxTracer {
            tracker,
            me,
            marks: Recent::new(MAX_MARKED_BLOCKS),
            envelopes: Recent::new(MAX_ENVELOPE_BLOCKS),
            batched: None,
            open_bets: HashMap::new(),
            open_bet_count: 0,
        }
    }

    pub(super) fn tracker(&self) -> &Arc<CorrelationTracker> {
        &self.tracker
    }

    /// We took transactions out of the mempool for our proposal in `view`.
    pub(super) fn payload_taken(&mut self, view: View) {
        self.batched = Some((view, unix_now_us()));
    }

    /// We are broadcasting our proposal `block`: its traced transactions are
    /// batched and proposed now. Returns the trace envelope to send after it.
    pub(super) fn own_proposal(&mut self, block: &Block) -> Option<Vec<u8>> {
        let now = unix_now_us();
        let batched = match self.batched {
            Some((view, at)) if view == block.header.view => at,
            _ => now,
        };
        let id = block.id();
        let m = self.marks.entry(id);
        m.batched = Some(batched);
        // The leader's proposal carries its own notarize vote, signed before
        // the broadcast: the block was proposed when that vote was asked for.
        let proposed = m.voted.map_or(now, |voted| voted.min(now));
        m.proposed = Some(proposed);
        let raw = split_payload(&block.payload).ok()?;
        let mut entries = Vec::new();
        for (i, tx) in raw.iter().enumerate() {
            let stages = [(Stage::Batched, batched), (Stage::Proposed, proposed)];
            let Some((correlation_id, origin)) = self.tracker.record_stages(&tx_hash(tx), &stages)
            else {
                continue;
            };
            let Ok(index) = u16::try_from(i) else {
                break;
            };
            entries.push(TraceEntry {
                index,
                correlation_id,
                parent_span_id: origin.parent_span_id,
                sampled: origin.sampled,
            });
        }
        TraceEnvelope { block: id, entries }.encode()
    }

    /// A peer's proposal for `block` arrived.
    pub(super) fn proposal_seen(&mut self, block: Hash32) {
        self.marks
            .entry(block)
            .proposed
            .get_or_insert_with(unix_now_us);
    }

    /// We asked for our notarize vote on `block` to be signed.
    pub(super) fn voted(&mut self, block: Hash32) {
        self.marks
            .entry(block)
            .voted
            .get_or_insert_with(unix_now_us);
    }

    /// A notarization of `block` was verified.
    pub(super) fn certified(&mut self, block: Hash32) {
        self.marks
            .entry(block)
            .certified
            .get_or_insert_with(unix_now_us);
    }

    /// `block` was finalized (before execution). Returns how long after
    /// this validator first saw (or made) its proposal, in µs, when it did.
    pub(super) fn committed(&mut self, block: Hash32) -> Option<u64> {
        let m = self.marks.entry(block);
        let committed = *m.committed.get_or_insert_with(unix_now_us);
        m.proposed.map(|p| committed.saturating_sub(p))
    }

    /// A trace envelope from peer `from`. Kept until its block executes,
    /// where only the proposer's counts.
    pub(super) fn envelope(
        &mut self,
        from: u16,
        bytes: &[u8],
    ) -> Result<(), super::trace_frame::EnvelopeError> {
        let env = TraceEnvelope::decode(bytes)?;
        let held = self.envelopes.entry(env.block);
        if held.len() < MAX_ENVELOPES_PER_BLOCK && !held.iter().any(|(f, _)| *f == from) {
            held.push((from, env));
        }
        Ok(())
    }

    /// `cb` was executed with `result`: records every traced transaction's
    /// stages, builds its spans, starts watching its bets, and settles traced
    /// bets the block's roll resolved. `decoded` gives a transaction the
    /// executor already decoded (decoding a payload entry again, canonical
    /// check included, was ~2% of a validator's CPU at 10k tx/s).
    pub(super) fn executed(
        &mut self,
        cb: &CommittedBlock,
        result: &BlockResult,
        decoded: impl Fn(&Hash32) -> Option<SignedTx>,
    ) {
        let now = unix_now_us();
        let header = &cb.block.header;
        let id = cb.block.id();
        let marks = self.marks.take(&id).unwrap_or_default();
        let from_proposer: HashMap<u16, TraceEntry> = self
            .envelopes
            .take(&id)
            .and_then(|all| {
                all.into_iter()
                    .find(|(from, _)| *from == header.proposer)
                    .map(|(_, env)| env.entries)
            })
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.index, e))
            .collect();
        let raw = split_payload(&cb.block.payload).unwrap_or_default();
        let mut traced: Vec<(Hash32, Uuid, Origin)> = Vec::new();
        // The block's stage times, the same for every transaction in it.
        let stages: Vec<(Stage, u64)> = [
            (Stage::Proposed, marks.proposed),
            (Stage::Voted, marks.voted),
            (Stage::Certified, marks.certified),
            (Stage::Committed, marks.committed),
            (Stage::Executed, Some(now)),
        ]
        .into_iter()
        .filter_map(|(stage, at)| Some((stage, at?)))
        .collect();
        let height = header.height;
        for receipt in &result.receipts {
            let hash = receipt.hash;
            // A replay (two leaders both carried the transaction; the later
            // copy finds its nonce used) says nothing new about it.
            if is_replay(receipt) {
                continue;
            }
            let outcome = match &receipt.result {
                Ok(()) => "accepted",
                Err(r) => r.code(),
            };
            let known = self
                .tracker
                .executed(&hash, &stages, height, outcome)
                .or_else(|| {
                    // Not admitted here: traced if its proposer's envelope
                    // carried its trace context.
                    let e = u16::try_from(receipt.index)
                        .ok()
                        .and_then(|i| from_proposer.get(&i))?;
                    let origin = Origin {
                        parent_span_id: e.parent_span_id,
                        sampled: e.sampled,
                    };
                    let first = marks.proposed.unwrap_or(now);
                    self.tracker
                        .begin(e.correlation_id, hash, origin, Stage::Proposed, first);
                    self.tracker.executed(&hash, &stages, height, outcome)
                });
            let Some((correlation_id, origin)) = known else {
                continue;
            };
            tracing::debug!(
                target: "bitcraps_node::trace::tx",
                correlation_id = %correlation_id,
                trace_id = %trace_hex(&correlation_id),
                tx = %hash.short(),
                height = header.height,
                outcome,
                "tx executed"
            );
            if receipt.result.is_ok() {
                let tx = decoded(&hash).or_else(|| {
                    let raw = raw.get(receipt.index as usize)?;
                    SignedTx::decode(raw).ok()
                });
                if let Some(spot) = tx.as_ref().and_then(bet_spot) {
                    self.watch_bet(spot, hash);
                }
            }
            traced.push((hash, correlation_id, origin));
        }
        if exporting() {
            self.export_block(cb, &marks, now, &traced);
        }
        for roll in &result.rolls {
            for s in &roll.outcome.settlements {
                self.settle(
                    (roll.table, s.player.to_bytes(), s.kind),
                    &s.result,
                    header.height,
                );
            }
        }
    }

    fn watch_bet(&mut self, spot: BetSpot, tx: Hash32) {
        if self.open_bet_count >= MAX_OPEN_BETS {
            // Forget everything rather than track a random subset: traced bets
            // are only missing their `settle` stage then.
            self.open_bets.clear();
            self.open_bet_count = 0;
        }
        self.open_bets.entry(spot).or_default().push(tx);
        self.open_bet_count += 1;
    }

    /// A roll settled `spot`: its traced bets are settled unless the bet only
    /// travelled (a come bet moving to its point), in which case they follow it.
    fn settle(&mut self, spot: BetSpot, result: &BetResult, height: u64) {
        let Some(txs) = self.open_bets.remove(&spot) else {
            return;
        };
        if let BetResult::Moved { to } = result {
            self.open_bets
                .entry((spot.0, spot.1, *to))
                .or_default()
                .extend(txs);
            return;
        }
        self.open_bet_count = self.open_bet_count.saturating_sub(txs.len());
        let now = unix_now_us();
        for tx in txs {
            if !self.tracker.record(&tx, Stage::Settled, now) {
                continue;
            }
            let Some((correlation_id, origin)) = self.tracker.origin_of(&tx) else {
                continue;
            };
            tracing::debug!(
                target: "bitcraps_node::trace::tx",
                correlation_id = %correlation_id,
                trace_id = %trace_hex(&correlation_id),
                tx = %tx.short(),
                height,
                "bet settled"
            );
            if exporting() {
                if let Some(parent) = parent_context(&correlation_id, &origin) {
                    if let Some(t) = timeline(&self.tracker, &correlation_id, &tx) {
                        let attrs = self.attributes(&tx, height);
                        emit_stage_spans(&t, &parent, &[Stage::Settled], &attrs);
                    }
                }
            }
        }
    }

    fn attributes(&self, tx: &Hash32, height: u64) -> Vec<KeyValue> {
        vec![
            KeyValue::new("bitcraps.validator", i64::from(self.me)),
            KeyValue::new("bitcraps.tx", tx.to_hex()),
            KeyValue::new("bitcraps.height", height as i64),
        ]
    }

    /// The block span (linking to its sampled transactions) and every traced
    /// transaction's spans up to execution.
    fn export_block(
        &self,
        cb: &CommittedBlock,
        marks: &Marks,
        now: u64,
        traced: &[(Hash32, Uuid, Origin)],
    ) {
        let header = &cb.block.header;
        let tracer = opentelemetry::global::tracer(TRACER_NAME);
        let mut links = Vec::new();
        for (tx, correlation_id, origin) in traced {
            let Some(parent) = parent_context(correlation_id, origin) else {
                continue;
            };
            if links.len() < MAX_BLOCK_LINKS {
                links.push(Link::with_context(parent.span().span_context().clone()));
            }
            if let Some(t) = timeline(&self.tracker, correlation_id, tx) {
                let attrs = self.attributes(tx, header.height);
                let upto: Vec<Stage> = Stage::ALL
                    .into_iter()
                    .filter(|s| *s != Stage::Settled)
                    .collect();
                emit_stage_spans(&t, &parent, &upto, &attrs);
            }
        }
        let start = marks.proposed.or(marks.batched).unwrap_or(now);
        let mut span = tracer
            .span_builder("block")
            .with_kind(SpanKind::Internal)
            .with_start_time(at(start))
            .with_links(links)
            .with_attributes(vec![
                KeyValue::new("bitcraps.validator", i64::from(self.me)),
                KeyValue::new("bitcraps.height", header.height as i64),
                KeyValue::new("bitcraps.view", header.view as i64),
                KeyValue::new("bitcraps.proposer", i64::from(header.proposer)),
                KeyValue::new("bitcraps.block", cb.block.id().to_hex()),
                KeyValue::new("bitcraps.traced_txs", traced.len() as i64),
            ])
            .start_with_context(&tracer, &Context::new());
        span.end_with_timestamp(at(now));
    }
}

/// The span name for the interval that ends at `stage`.
pub(crate) fn span_name(stage: Stage) -> Option<&'static str> {
    Some(match stage {
        Stage::Received => return None,
        Stage::Admitted => "admit",
        Stage::Verified => "verify",
        Stage::Mempool => "mempool",
        Stage::Batched => "batch",
        Stage::Proposed => "propose",
        Stage::Voted => "vote",
        Stage::Certified => "certify",
        Stage::Committed => "commit",
        Stage::Executed => "execute",
        Stage::Settled => "settle",
    })
}

/// Emits one span per recorded stage in `wanted` that has a recorded stage
/// before it: from that earlier stage's time to this one's.
fn emit_stage_spans(t: &Timeline, parent: &Context, wanted: &[Stage], attrs: &[KeyValue]) {
    let tracer = opentelemetry::global::tracer(TRACER_NAME);
    for pair in t.stages.windows(2) {
        let (from, to) = (pair[0], pair[1]);
        if !wanted.contains(&to.stage) {
            continue;
        }
        let Some(name) = span_name(to.stage) else {
            continue;
        };
        let mut span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(at(from.at_unix_us))
            .with_attributes(attrs.to_vec())
            .start_with_context(&tracer, parent);
        span.end_with_timestamp(at(to.at_unix_us.max(from.at_unix_us)));
    }
}

/// The remote parent every span of a transaction hangs off, if the origin
/// sampled it and exported its request span.
fn parent_context(correlation_id: &Uuid, origin: &Origin) -> Option<Context> {
    let span_id = origin.parent_span_id.filter(|_| origin.sampled)?;
    let sc = SpanContext::new(
        TraceId::from_bytes(*correlation_id.as_bytes()),
        SpanId::from_bytes(span_id),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    sc.is_valid()
        .then(|| Context::new().with_remote_span_context(sc))
}

fn timeline(tracker: &CorrelationTracker, id: &Uuid, tx: &Hash32) -> Option<Timeline> {
    let hex = tx.to_hex();
    tracker.get(id).into_iter().find(|t| t.tx_hash == hex)
}

/// The bet spot a place-bet transaction stakes (None for other actions).
fn bet_spot(tx: &SignedTx) -> Option<BetSpot> {
    match tx.tx.action {
        Action::PlaceBet { table, bet, .. } => Some((table, tx.tx.from.to_bytes(), bet)),
        _ => None,
    }
}

fn at(unix_us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(unix_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_forgets_the_oldest_past_its_cap() {
        let mut r: Recent<u32> = Recent::new(2);
        *r.entry(Hash32([1; 32])) = 1;
        *r.entry(Hash32([2; 32])) = 2;
        *r.entry(Hash32([3; 32])) = 3;
        assert_eq!(r.0.len(), 2);
        assert_eq!(r.take(&Hash32([1; 32])), None);
        assert_eq!(r.take(&Hash32([3; 32])), Some(3));
        // Taking leaves room; a stale order slot does not evict a live entry.
        *r.entry(Hash32([4; 32])) = 4;
        assert_eq!(r.take(&Hash32([2; 32])), Some(2));
        assert_eq!(r.take(&Hash32([4; 32])), Some(4));
        // Inserting and taking forever keeps the queue bounded.
        for i in 0..1_000u32 {
            let mut h = [0; 32];
            h[..4].copy_from_slice(&i.to_be_bytes());
            *r.entry(Hash32(h)) = i;
            if i % 2 == 0 {
                r.take(&Hash32(h));
            }
        }
        assert_eq!(r.0.len(), 2);
        let mut last = [0; 32];
        last[..4].copy_from_slice(&999u32.to_be_bytes());
        assert_eq!(r.take(&Hash32(last)), Some(999));
    }

    #[test]
    fn every_stage_but_the_first_names_a_span() {
        assert_eq!(span_name(Stage::Received), None);
        let names: Vec<_> = Stage::ALL.into_iter().filter_map(span_name).collect();
        assert_eq!(
            names,
            [
                "admit", "verify", "mempool", "batch", "propose", "vote", "certify", "commit",
                "execute", "settle"
            ]
        );
    }

    #[test]
    fn no_parent_without_a_sampled_span() {
        let id = Uuid::now_v7();
        let span = Some([9; 8]);
        assert!(parent_context(
            &id,
            &Origin {
                parent_span_id: span,
                sampled: true
            }
        )
        .is_some());
        assert!(parent_context(
            &id,
            &Origin {
                parent_span_id: span,
                sampled: false
            }
        )
        .is_none());
        assert!(parent_context(
            &id,
            &Origin {
                parent_span_id: None,
                sampled: true
            }
        )
        .is_none());
    }
}
