//! A small, self-contained, deterministic in-process harness for the consensus
//! core, shared by `properties.rs` and `core_rules.rs`.
//!
//! It runs `n` real [`Core`]s with in-memory keys, a pool of pending events
//! (messages in flight, signatures and payloads the runtime owes a core) and a
//! list of armed timers. A *schedule* (a list of [`Action`]s, chosen by proptest)
//! decides which pending event happens next, which message is dropped or
//! delivered twice, when a timer fires and when a node crashes. Under a schedule
//! virtual time only moves when a timer fires (to its deadline); in the fair
//! phase ([`Cluster::run_fair`], "after GST") each delivery takes 1 ms and timers
//! fire when due. Every run is a pure function of (cluster config, schedule).
//!
//! Honest nodes sign exactly what their core asks for (with the raw key, plus an
//! emulation of the signing guard that only matters across crashes). Byzantine
//! nodes are either silent (never started) or equivocating (an honest core whose
//! outgoing proposals and votes are rewritten into two conflicting versions, one
//! for each half of the cluster).
//!
//! While it runs, the harness checks on **every** step (panicking with a precise
//! message on violation, which proptest turns into a failing, shrunk case):
//!
//! * views and committed heights of every honest core never decrease, and
//!   `ViewEntered` views strictly increase;
//! * an honest core never asks to sign two conflicting votes, and a restored core
//!   never asks to sign a vote conflicting with one already in its WAL;
//! * an honest node's own vote or proposal is broadcast only after a durable
//!   persist of it ("persist before you speak");
//! * fork choice: an honest leader asks for a payload on exactly the parent
//!   `select_parent` must pick (the highest view below with a notarized block
//!   such that every view in between is nullified and none of them notarized,
//!   or its committed tip), and its proposal extends that parent with height =
//!   parent + 1 and an increasing timestamp; the proposal's justification (a
//!   verified notarization/finalization of the parent, verified nullifications
//!   of exactly the views in between) is checked too, but a mismatch only
//!   counts in [`Stats::stale_justifications`] unless `strict_justification`
//!   is set (known core bug, see `core_rules.rs`);
//! * every commit extends the node's previous commit (parent link, height + 1,
//!   increasing view and timestamp), carries a verified finalization of the block
//!   or a descendant committed in the same step, and agrees with every other
//!   honest node's commit at that height;
//! * honest nodes only ever report evidence against byzantine validators;
//! * a stale timer produces no effect.

// Each test crate uses a different subset of the harness.
#![allow(dead_code)]

use bitcraps_consensus::{
    verify_certificate, Block, BlockHeader, Certificate, Core, Effect, Genesis, Height, Input,
    Message, Params, Proposal, TimeoutKind, ValidatorSet, View, Vote, VoteBody, VoteKind, WalEntry,
};
use bitcraps_crypto::{hash, Hash32, Keypair, Signature};
use std::collections::{BTreeMap, BTreeSet};

/// Genesis time of test chains (ms since the epoch).
pub const GENESIS_MS: u64 = 1_700_000_000_000;
/// Chain id of test chains.
pub const CHAIN_ID: &str = "bitcraps-test";

/// Short timers: simulated links are instantaneous.
pub fn params() -> Params {
    Params {
        view_timeout_ms: 400,
        max_view_timeout_ms: 3_200,
        retry_interval_ms: 200,
        max_payload_bytes: 64 * 1024,
        max_clock_drift_ms: 2_000,
    }
}

/// A genesis for `n` validators with deterministic keys derived from `seed`.
pub fn genesis(n: usize, seed: u64) -> (Genesis, Vec<Keypair>) {
    let keys: Vec<Keypair> = (0..n)
        .map(|i| {
            let mut material = seed.to_le_bytes().to_vec();
            material.extend_from_slice(&(i as u64).to_le_bytes());
            Keypair::from_seed(hash(&material).as_bytes())
        })
        .collect();
    let genesis = Genesis::from_keypairs(CHAIN_ID, GENESIS_MS, &keys, params());
    (genesis, keys)
}

/// A vote signed with a raw key.
pub fn sign_vote(key: &Keypair, signer: u16, body: VoteBody) -> Vote {
    Vote {
        body,
        signer,
        signature: key.sign(&body.signing_bytes(CHAIN_ID)),
    }
}

/// A certificate over `body` from the given signers.
pub fn certificate(keys: &[Keypair], signers: &[u16], body: VoteBody) -> Certificate {
    let mut signers = signers.to_vec();
    signers.sort_unstable();
    Certificate {
        body,
        signatures: signers
            .iter()
            .map(|&i| (i, sign_vote(&keys[i as usize], i, body).signature))
            .collect(),
    }
}

/// A block proposed by `proposer` in `view` on top of `parent`.
pub fn block(parent: &BlockHeader, parent_id: Hash32, view: View, proposer: u16) -> Block {
    let payload = format!("block v{view} by {proposer}").into_bytes();
    Block::new(
        view,
        parent.height + 1,
        parent_id,
        parent.view,
        proposer,
        parent.timestamp_ms + 1,
        payload,
    )
}

/// A proposal for `block` signed by `signer`, with a justification.
pub fn proposal(
    keys: &[Keypair],
    block: Block,
    signer: u16,
    parent_certificate: Option<Certificate>,
    nullifications: Vec<Certificate>,
) -> Proposal {
    let vote = sign_vote(
        &keys[signer as usize],
        signer,
        VoteBody::notarize(block.header.view, block.id()),
    );
    Proposal {
        block,
        vote,
        parent_certificate,
        nullifications,
    }
}

/// How a validator behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Honest,
    /// Never started: sends nothing, receives nothing.
    Silent,
    /// Runs an honest core but splits every proposal into two conflicting ones
    /// (one per half of the cluster), sends each half the *other* half's leader
    /// vote too, and sends conflicting votes to the two halves.
    Equivocate,
}

/// One step of a schedule. Indices are taken modulo the relevant list's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Deliver the pending event at this index (message, signature or payload).
    Deliver(u16),
    /// Drop the message at this index (local events cannot be dropped: they are
    /// delivered instead).
    Drop(u16),
    /// Deliver the message at this index and leave a copy in flight.
    Duplicate(u16),
    /// Fire the armed timer at this index (time jumps to its deadline).
    Timer(u16),
    /// Crash honest node (index modulo the number of honest nodes) and restart it
    /// at once from its durable WAL: un-synced WAL entries, timers, pending
    /// signatures and payloads are lost.
    Crash(u16),
}

#[derive(Debug, Clone)]
// Messages carry blocks; events are moved a few times each (as in the core).
#[allow(clippy::large_enum_variant)]
enum Event {
    Msg {
        to: usize,
        from: u16,
        msg: Message,
    },
    Sig {
        node: usize,
        epoch: u64,
        body: VoteBody,
        result: Result<Signature, String>,
    },
    Payload {
        node: usize,
        epoch: u64,
        view: View,
    },
}

#[derive(Debug, Clone)]
struct Timer {
    node: usize,
    epoch: u64,
    view: View,
    kind: TimeoutKind,
    at_ms: u64,
    seq: u64,
}

/// One validator: its core plus the runtime's durable state.
#[derive(Debug)]
pub struct Node {
    pub index: u16,
    pub behavior: Behavior,
    pub core: Core,
    /// The write-ahead log; `wal[..synced]` is durable.
    pub wal: Vec<WalEntry>,
    pub synced: usize,
    /// Own votes (bodies) durably in the WAL.
    pub durable_own: BTreeSet<VoteBody>,
    /// Committed blocks, `chain[h - 1]` at height `h` (the runtime's block store).
    pub chain: Vec<Block>,
    /// Signatures requested by the current core (its "life").
    pub requested: Vec<VoteBody>,
    /// Every signature ever produced for this key (the guard's memory).
    pub signed: Vec<(VoteBody, Signature)>,
    pub epoch: u64,
    pub crashed: bool,
    pub last_view: View,
    pub last_height: Height,
    pub last_entered: View,
    pub evidence: usize,
    pub refused: usize,
    /// Parent named by each payload request (view -> parent id).
    pub payload_parents: BTreeMap<View, Hash32>,
}

impl Node {
    pub fn honest(&self) -> bool {
        self.behavior == Behavior::Honest
    }
    pub fn height(&self) -> Height {
        self.chain.len() as Height
    }
    pub fn chain_ids(&self) -> Vec<Hash32> {
        self.chain.iter().map(Block::id).collect()
    }
}

/// Counters for "did the checks actually run" assertions.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub steps: u64,
    pub delivered: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub timers: u64,
    pub crashes: u64,
    pub proposals_checked: u64,
    pub commits_checked: u64,
    pub duplicates_checked: u64,
    pub payload_requests_checked: u64,
    /// Proposals whose justification does not match their header (known bug).
    pub stale_justifications: u64,
}

/// The cluster under test.
#[derive(Debug)]
pub struct Cluster {
    pub genesis: Genesis,
    pub genesis_block: Block,
    pub set: ValidatorSet,
    pub keys: Vec<Keypair>,
    pub nodes: Vec<Node>,
    pub now_ms: u64,
    pool: Vec<Event>,
    timers: Vec<Timer>,
    seq: u64,
    /// Every effect list an honest or equivocating core returned, in order.
    pub trace: Vec<(usize, Vec<Effect>)>,
    /// The block every honest node committed at each height.
    pub agreed: BTreeMap<Height, Hash32>,
    /// Every block header seen anywhere (proposals, block responses, commits).
    pub headers: BTreeMap<Hash32, BlockHeader>,
    /// Equivocators' twin blocks: original id -> twin id.
    twins: BTreeMap<Hash32, Hash32>,
    /// Deliver every message a second time right after the first, check that the
    /// second delivery is harmless, and discard its effects.
    pub dup_all: bool,
    /// Bit `j` set: node `j` is in the equivocators' second half.
    pub split: u8,
    /// Fail on proposals whose justification does not match their parent
    /// (off by default until the core bug is fixed; see core_rules.rs).
    pub strict_justification: bool,
    /// Print every input and effect (debugging; `BITCRAPS_TEST_TRACE=1`).
    pub verbose: bool,
    pub stats: Stats,
}

impl Cluster {
    /// Builds and starts a cluster. `behaviors` has one entry per validator.
    pub fn new(behaviors: &[Behavior], split: u8) -> Cluster {
        let n = behaviors.len();
        let (genesis, keys) = genesis(n, 7);
        let set = genesis.validate().expect("valid genesis");
        let genesis_block = genesis.block();
        let nodes = behaviors
            .iter()
            .enumerate()
            .map(|(i, &behavior)| Node {
                index: i as u16,
                behavior,
                core: Core::new(&genesis, Some(i as u16)).expect("core"),
                wal: Vec::new(),
                synced: 0,
                durable_own: BTreeSet::new(),
                chain: Vec::new(),
                requested: Vec::new(),
                signed: Vec::new(),
                epoch: 0,
                crashed: false,
                last_view: 0,
                last_height: 0,
                last_entered: 0,
                evidence: 0,
                refused: 0,
                payload_parents: BTreeMap::new(),
            })
            .collect();
        let mut headers = BTreeMap::new();
        headers.insert(genesis_block.id(), genesis_block.header.clone());
        let mut c = Cluster {
            genesis,
            genesis_block,
            set,
            keys,
            nodes,
            now_ms: GENESIS_MS,
            pool: Vec::new(),
            timers: Vec::new(),
            seq: 0,
            trace: Vec::new(),
            agreed: BTreeMap::new(),
            headers,
            twins: BTreeMap::new(),
            dup_all: false,
            split,
            strict_justification: true,
            verbose: std::env::var_os("BITCRAPS_TEST_TRACE").is_some(),
            stats: Stats::default(),
        };
        for i in 0..n {
            if c.nodes[i].behavior != Behavior::Silent {
                c.input(i, Input::Start);
            }
        }
        c
    }

    /// A cluster of `n` honest validators.
    pub fn honest(n: usize) -> Cluster {
        Cluster::new(&vec![Behavior::Honest; n], 0)
    }

    pub fn n(&self) -> usize {
        self.nodes.len()
    }

    pub fn honest_nodes(&self) -> Vec<usize> {
        (0..self.n()).filter(|&i| self.nodes[i].honest()).collect()
    }

    pub fn heights(&self) -> Vec<Height> {
        self.honest_nodes()
            .into_iter()
            .map(|i| self.nodes[i].height())
            .collect()
    }

    pub fn min_height(&self) -> Height {
        self.heights().into_iter().min().unwrap_or(0)
    }

    pub fn max_height(&self) -> Height {
        self.heights().into_iter().max().unwrap_or(0)
    }

    pub fn pending(&self) -> usize {
        self.pool.len()
    }

    /// Committed chains of honest nodes, as block ids.
    pub fn chains(&self) -> Vec<Vec<Hash32>> {
        self.honest_nodes()
            .into_iter()
            .map(|i| self.nodes[i].chain_ids())
            .collect()
    }

    /// Panics unless every honest chain is a prefix of every longer one.
    pub fn assert_prefix_consistent(&self) {
        let chains = self.chains();
        for a in &chains {
            for b in &chains {
                let k = a.len().min(b.len());
                assert_eq!(a[..k], b[..k], "conflicting committed chains");
            }
        }
    }

    /// Runs a schedule.
    pub fn run(&mut self, schedule: &[Action]) {
        for &a in schedule {
            self.step(a);
        }
    }

    /// One scheduled action.
    pub fn step(&mut self, action: Action) {
        self.stats.steps += 1;
        match action {
            Action::Deliver(k) => match self.pick(k) {
                Some(idx) => {
                    let ev = self.pool.remove(idx);
                    self.deliver(ev);
                }
                None => {
                    self.fire_timer(None);
                }
            },
            Action::Drop(k) => match self.pick(k) {
                Some(idx) => {
                    let ev = self.pool.remove(idx);
                    if matches!(ev, Event::Msg { .. }) {
                        self.stats.dropped += 1;
                    } else {
                        self.deliver(ev);
                    }
                }
                None => {
                    self.fire_timer(None);
                }
            },
            Action::Duplicate(k) => match self.pick(k) {
                Some(idx) => {
                    let ev = if matches!(self.pool[idx], Event::Msg { .. }) {
                        self.stats.duplicated += 1;
                        self.pool[idx].clone()
                    } else {
                        self.pool.remove(idx)
                    };
                    self.deliver(ev);
                }
                None => {
                    self.fire_timer(None);
                }
            },
            Action::Timer(k) => {
                if !self.fire_timer(Some(k)) && !self.pool.is_empty() {
                    let ev = self.pool.remove(0);
                    self.deliver(ev);
                }
            }
            Action::Crash(k) => {
                let honest = self.honest_nodes();
                if !honest.is_empty() {
                    let i = honest[k as usize % honest.len()];
                    self.crash(i);
                }
            }
        }
    }

    /// Fair scheduling ("after GST"): time advances by 1 ms per delivered event
    /// (a bounded message delay); a timer fires as soon as it is due, otherwise
    /// pending events are delivered in FIFO order, and when none is left the
    /// earliest timer fires. Stops when `done` holds, nothing is left to do, or
    /// after `max_events`. Returns the events processed.
    pub fn run_fair(&mut self, max_events: u64, done: impl Fn(&Cluster) -> bool) -> u64 {
        let mut events = 0;
        while events < max_events && !done(self) {
            events += 1;
            self.sweep_stale_timers();
            let due = self.timers.iter().any(|t| t.at_ms <= self.now_ms);
            if !due && !self.pool.is_empty() {
                self.now_ms += 1;
                let ev = self.pool.remove(0);
                self.deliver(ev);
            } else if !self.fire_timer(None) {
                break;
            }
        }
        events
    }

    fn pick(&self, k: u16) -> Option<usize> {
        (!self.pool.is_empty()).then(|| k as usize % self.pool.len())
    }

    /// Delivers every stale timer (for a view its node has left), each of which
    /// must produce no effect, and disarms it.
    fn sweep_stale_timers(&mut self) {
        let (stale, live): (Vec<Timer>, Vec<Timer>) = std::mem::take(&mut self.timers)
            .into_iter()
            .partition(|t| t.view < self.nodes[t.node].core.view());
        self.timers = live;
        for t in stale {
            if t.epoch != self.nodes[t.node].epoch {
                continue;
            }
            let effects = self.nodes[t.node].core.handle(
                self.now_ms,
                Input::Timeout {
                    view: t.view,
                    kind: t.kind,
                },
            );
            assert!(
                effects.is_empty(),
                "node {}: stale {:?} timer for view {} produced {effects:?}",
                t.node,
                t.kind,
                t.view
            );
        }
    }

    /// Fires timer `k` among the live ones (or the earliest one for `None`) after
    /// delivering every stale timer (which must produce no effect). Returns false
    /// when no live timer is armed.
    fn fire_timer(&mut self, k: Option<u16>) -> bool {
        self.sweep_stale_timers();
        if self.timers.is_empty() {
            return false;
        }
        let idx = match k {
            Some(k) => k as usize % self.timers.len(),
            None => {
                let mut best = 0;
                for (i, t) in self.timers.iter().enumerate() {
                    let b = &self.timers[best];
                    if (t.at_ms, t.seq) < (b.at_ms, b.seq) {
                        best = i;
                    }
                }
                best
            }
        };
        let t = self.timers.remove(idx);
        self.stats.timers += 1;
        self.now_ms = self.now_ms.max(t.at_ms);
        if t.epoch == self.nodes[t.node].epoch {
            self.input(
                t.node,
                Input::Timeout {
                    view: t.view,
                    kind: t.kind,
                },
            );
        }
        true
    }

    fn deliver(&mut self, ev: Event) {
        self.stats.delivered += 1;
        match ev {
            Event::Msg { to, from, msg } => {
                let input = Input::Message { from, message: msg };
                let first = self.input(to, input.clone());
                if self.dup_all {
                    self.check_duplicate(to, input, &first);
                }
            }
            Event::Sig {
                node,
                epoch,
                body,
                result,
            } => {
                if epoch == self.nodes[node].epoch {
                    let input = match result {
                        Ok(signature) => Input::SignatureReady {
                            vote: body,
                            signature,
                        },
                        Err(reason) => Input::SignatureRefused { vote: body, reason },
                    };
                    self.input(node, input);
                }
            }
            Event::Payload { node, epoch, view } => {
                if epoch == self.nodes[node].epoch {
                    let payload = format!("payload of val{node} for view {view}").into_bytes();
                    self.input(node, Input::PayloadReady { view, payload });
                }
            }
        }
    }

    /// Delivers the same message again, right after the first delivery: it must
    /// change nothing (view, tip) and produce nothing but a certificate for a
    /// lagging voter (votes) or the same answer (block requests). Its effects are
    /// not executed, so a run with `dup_all` must equal the run without it.
    fn check_duplicate(&mut self, to: usize, input: Input, first: &[Effect]) {
        self.stats.duplicates_checked += 1;
        let node = &mut self.nodes[to];
        let (view, tip) = (node.core.view(), node.core.committed());
        let Input::Message { from, message } = &input else {
            return;
        };
        let again = node.core.handle(self.now_ms, input.clone());
        assert_eq!(
            node.core.view(),
            view,
            "duplicate {message:?} moved the view"
        );
        assert_eq!(node.core.committed(), tip, "duplicate moved the tip");
        match message {
            Message::Vote(_) => {
                for e in &again {
                    assert!(
                        matches!(e, Effect::Send { to, message: Message::Certificate(_) } if to == from),
                        "node {to}: duplicate vote {message:?} produced {e:?}"
                    );
                }
            }
            Message::BlockRequest { .. } => assert_eq!(again, first),
            _ => assert!(
                again.is_empty(),
                "node {to}: duplicate {message:?} produced {again:?}"
            ),
        }
    }

    /// Crashes node `i` and restarts it from its durable WAL.
    pub fn crash(&mut self, i: usize) {
        self.stats.crashes += 1;
        let node = &mut self.nodes[i];
        node.wal.truncate(node.synced);
        node.epoch += 1;
        node.crashed = true;
        node.requested.clear();
        node.core = Core::restore(&self.genesis, Some(node.index), node.wal.clone())
            .expect("restore from our own WAL");
        node.last_view = node.core.view();
        node.last_height = node.core.committed().height;
        node.last_entered = 0;
        assert!(
            node.last_height <= node.height(),
            "restored tip above anything ever committed"
        );
        self.pool.retain(|e| match e {
            Event::Sig { node, .. } | Event::Payload { node, .. } => *node != i,
            Event::Msg { .. } => true,
        });
        self.timers.retain(|t| t.node != i);
        self.input(i, Input::Start);
    }

    /// Feeds one input to node `i`, checks the per-step invariants and executes
    /// the effects. Returns the effects.
    pub fn input(&mut self, i: usize, input: Input) -> Vec<Effect> {
        if self.nodes[i].behavior == Behavior::Silent {
            return Vec::new();
        }
        let shown = self.verbose.then(|| short(&input));
        let effects = self.nodes[i].core.handle(self.now_ms, input);
        if let Some(shown) = shown {
            eprintln!("[{}] node {i} <- {shown}", self.now_ms - GENESIS_MS);
            for e in &effects {
                eprintln!("      -> {}", short(e));
            }
        }
        self.trace.push((i, effects.clone()));
        let honest = self.nodes[i].honest();
        if honest {
            let node = &mut self.nodes[i];
            let (view, h) = (node.core.view(), node.core.committed().height);
            assert!(
                view >= node.last_view,
                "node {i}: view went back from {} to {view}",
                node.last_view
            );
            assert!(
                h >= node.last_height,
                "node {i}: committed height went back from {} to {h}",
                node.last_height
            );
            node.last_view = view;
            node.last_height = h;
        }
        let mut finalized = Vec::new();
        for e in &effects {
            if let Effect::Commit(cb) = e {
                finalized.push(cb.finalization.body.block);
            }
            self.apply(i, e.clone(), &effects);
        }
        if honest {
            let node = &self.nodes[i];
            let ids = node.chain_ids();
            for b in finalized {
                assert!(
                    ids.contains(&b),
                    "node {i}: commit justified by a finalization of a block it did not commit"
                );
            }
            if !node.crashed {
                assert_eq!(
                    node.core.committed().height,
                    node.height(),
                    "node {i}: core tip and delivered commits disagree"
                );
            }
            assert!(node.core.committed().height <= node.height());
        }
        effects
    }

    fn apply(&mut self, i: usize, effect: Effect, all: &[Effect]) {
        let honest = self.nodes[i].honest();
        match effect {
            Effect::Broadcast(m) => {
                if honest {
                    self.check_own_message_durable(i, &m);
                    if let Message::Proposal(p) = &m {
                        let fresh = all.iter().any(|e| {
                            matches!(e, Effect::Persist { entry: WalEntry::OwnProposal(q), .. } if q == p)
                        });
                        self.check_proposal(i, p, fresh);
                    }
                }
                if self.nodes[i].behavior == Behavior::Equivocate {
                    self.equivocate(i, m);
                } else {
                    for j in 0..self.n() {
                        if j != i {
                            self.send(i, j, m.clone());
                        }
                    }
                }
            }
            Effect::Send { to, message } => {
                if honest {
                    self.check_own_message_durable(i, &message);
                }
                if (to as usize) < self.n() && to as usize != i {
                    self.send(i, to as usize, message);
                }
            }
            Effect::Persist { entry, durable } => {
                let node = &mut self.nodes[i];
                node.wal.push(entry);
                if durable {
                    for e in &node.wal[node.synced..] {
                        match e {
                            WalEntry::OwnVote(v) => {
                                node.durable_own.insert(v.body);
                            }
                            WalEntry::OwnProposal(p) => {
                                node.durable_own.insert(p.vote.body);
                            }
                            _ => {}
                        }
                    }
                    node.synced = node.wal.len();
                }
            }
            Effect::RequestSignature(body) => self.sign(i, body),
            Effect::RequestPayload {
                view,
                parent,
                height,
            } => {
                if honest {
                    self.check_payload_request(i, view, parent, height);
                }
                let epoch = self.nodes[i].epoch;
                self.pool.push(Event::Payload {
                    node: i,
                    epoch,
                    view,
                });
            }
            Effect::ScheduleTimeout { view, kind, at_ms } => {
                self.seq += 1;
                let epoch = self.nodes[i].epoch;
                self.timers.push(Timer {
                    node: i,
                    epoch,
                    view,
                    kind,
                    at_ms,
                    seq: self.seq,
                });
            }
            Effect::Commit(cb) => {
                self.headers.insert(cb.block.id(), cb.block.header.clone());
                if honest {
                    self.check_commit(i, cb.block, &cb.finalization);
                } else {
                    let node = &mut self.nodes[i];
                    if cb.block.header.height > node.height() {
                        node.chain.push(cb.block);
                    }
                }
            }
            Effect::Prune { .. } => {}
            Effect::ServeBlocks {
                to,
                id,
                max_ancestors,
            } => {
                let chain = &self.nodes[i].chain;
                if let Some(p) = chain.iter().position(|b| b.id() == id) {
                    let lo = p.saturating_sub(max_ancestors as usize);
                    let blocks: Vec<Block> = chain[lo..=p].iter().rev().cloned().collect();
                    if (to as usize) < self.n() && to as usize != i {
                        self.send(i, to as usize, Message::Blocks(blocks));
                    }
                }
            }
            Effect::Evidence(ev) => {
                if honest {
                    let culprit = ev.first.signer as usize;
                    assert_eq!(ev.first.signer, ev.second.signer);
                    assert!(ev.first.body.conflicts_with(&ev.second.body));
                    assert!(
                        culprit < self.n() && !self.nodes[culprit].honest(),
                        "node {i} reported evidence against honest node {culprit}: {ev:?}"
                    );
                }
                self.nodes[i].evidence += 1;
            }
            Effect::ViewEntered { view, .. } => {
                if honest {
                    let node = &mut self.nodes[i];
                    assert!(
                        view > node.last_entered,
                        "node {i}: entered view {view} after {}",
                        node.last_entered
                    );
                    node.last_entered = view;
                }
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, msg: Message) {
        match &msg {
            Message::Proposal(p) => {
                self.headers.insert(p.block.id(), p.block.header.clone());
            }
            Message::Blocks(bs) => {
                for b in bs {
                    self.headers.insert(b.id(), b.header.clone());
                }
            }
            _ => {}
        }
        if self.nodes[to].behavior == Behavior::Silent {
            return;
        }
        self.pool.push(Event::Msg {
            to,
            from: from as u16,
            msg,
        });
    }

    /// The signer: honest nodes sign what their core asks (checked against the
    /// core's own history); the guard emulation refuses across crashes.
    fn sign(&mut self, i: usize, body: VoteBody) {
        let key = &self.keys[i];
        let node = &mut self.nodes[i];
        let result = if node.honest() {
            if let Some(prev) = node.requested.iter().find(|b| b.conflicts_with(&body)) {
                panic!("node {i}: core asked to sign {body:?} after {prev:?}");
            }
            if let Some(own) = node.durable_own.iter().find(|b| b.conflicts_with(&body)) {
                panic!("node {i}: core asked to sign {body:?} conflicting with its WAL's {own:?}");
            }
            node.requested.push(body);
            if let Some((_, s)) = node.signed.iter().find(|(b, _)| *b == body) {
                Ok(*s)
            } else if node.signed.iter().any(|(b, _)| b.conflicts_with(&body)) {
                // Signed before a crash but never made durable: the guard says no.
                node.refused += 1;
                Err("guard: conflicts with an earlier signature".to_string())
            } else {
                let s = sign_vote(key, i as u16, body).signature;
                node.signed.push((body, s));
                Ok(s)
            }
        } else {
            Ok(sign_vote(key, i as u16, body).signature)
        };
        let epoch = node.epoch;
        self.pool.push(Event::Sig {
            node: i,
            epoch,
            body,
            result,
        });
    }

    /// Persist before you speak: our own vote or proposal leaves only once a
    /// durable WAL entry holds it.
    fn check_own_message_durable(&self, i: usize, m: &Message) {
        let node = &self.nodes[i];
        let own = match m {
            Message::Vote(v) if v.signer == node.index => Some(v.body),
            Message::Proposal(p) if p.vote.signer == node.index => Some(p.vote.body),
            _ => None,
        };
        if let Some(body) = own {
            assert!(
                node.durable_own.contains(&body),
                "node {i}: sent its own {body:?} before a durable persist"
            );
        }
    }

    /// Fork choice (`select_parent`): the leader of `view` asks for a payload on
    /// the highest view below it with a notarized block such that every view in
    /// between is nullified (or on its committed tip).
    fn check_payload_request(&mut self, i: usize, view: View, parent: Hash32, height: Height) {
        self.stats.payload_requests_checked += 1;
        let node = &mut self.nodes[i];
        assert_eq!(node.core.leader(view) as usize, i);
        node.payload_parents.insert(view, parent);
        let header = self
            .headers
            .get(&parent)
            .unwrap_or_else(|| panic!("node {i}: payload request on an unknown parent"));
        assert_eq!(height, header.height + 1);
        let core = &node.core;
        let w = header.view;
        assert!(w < view);
        let tip = core.committed();
        if w == tip.view {
            assert_eq!(
                parent, tip.id,
                "node {i}: parent at the tip's view is not the tip"
            );
        } else {
            assert!(w > tip.view, "node {i}: parent below the committed tip");
            let cert = core
                .certificate(w, VoteKind::Notarize)
                .or(core.certificate(w, VoteKind::Finalize));
            assert_eq!(
                cert.map(|c| c.body.block),
                Some(parent),
                "node {i}: parent of view {view} is not notarized"
            );
        }
        for u in w + 1..view {
            assert!(
                core.certificate(u, VoteKind::Nullify).is_some(),
                "node {i}: view {view} extends view {w} but view {u} is not nullified"
            );
            assert!(
                core.certificate(u, VoteKind::Notarize).is_none()
                    && core.certificate(u, VoteKind::Finalize).is_none(),
                "node {i}: view {view} extends view {w} but skips notarized view {u}"
            );
        }
    }

    /// Fork choice: an honest leader's proposal extends a justified parent, and
    /// (when freshly made) the highest one it knows.
    fn check_proposal(&mut self, i: usize, p: &Proposal, fresh: bool) {
        self.stats.proposals_checked += 1;
        let node = &self.nodes[i];
        let h = &p.block.header;
        let (v, id) = (h.view, p.block.id());
        assert_eq!(h.proposer as usize, i, "proposer field");
        assert_eq!(
            node.core.leader(v) as usize,
            i,
            "node {i} proposed in view {v} it does not lead"
        );
        assert_eq!(p.vote.body, VoteBody::notarize(v, id));
        assert!(p.block.payload_matches());
        assert!(
            h.parent_view < v,
            "parent view {} >= view {v}",
            h.parent_view
        );
        let consistent = match &p.parent_certificate {
            Some(c) => c.body.block == h.parent && c.body.view == h.parent_view,
            None => true,
        } && p.nullifications.len() as u64 == v - h.parent_view - 1;
        if !consistent {
            let msg = format!(
                "node {i}: proposal for view {v} on parent (view {}, {:?}) carries the justification {:?} and nullifications of views {:?}",
                h.parent_view,
                h.parent,
                p.parent_certificate.as_ref().map(|c| (c.body.view, c.body.block)),
                p.nullifications.iter().map(|n| n.body.view).collect::<Vec<_>>()
            );
            // Known core bug (see `core_rules::bug_proposal_justification_*`):
            // recorded, and asserted only in strict mode.
            assert!(!self.strict_justification, "{msg}");
            self.stats.stale_justifications += 1;
        } else {
            match &p.parent_certificate {
                Some(c) => {
                    assert_ne!(c.body.kind, VoteKind::Nullify);
                    assert!(verify_certificate(c, &self.set, CHAIN_ID).is_ok());
                }
                None => {
                    let committed = h.parent == self.genesis_block.id()
                        || node.chain.iter().any(|b| b.id() == h.parent);
                    assert!(
                        committed,
                        "node {i}: unjustified parent {:?} in {:?}",
                        h.parent, p.block
                    );
                }
            }
            for (k, c) in p.nullifications.iter().enumerate() {
                assert_eq!(c.body, VoteBody::nullify(h.parent_view + 1 + k as u64));
                assert!(verify_certificate(c, &self.set, CHAIN_ID).is_ok());
            }
        }
        let parent = self
            .headers
            .get(&h.parent)
            .unwrap_or_else(|| panic!("node {i}: proposal on a parent nobody has seen"));
        assert_eq!(h.height, parent.height + 1, "height is parent + 1");
        assert_eq!(
            h.parent_view, parent.view,
            "parent_view is the parent's view"
        );
        assert!(h.timestamp_ms > parent.timestamp_ms);
        if fresh {
            let requested = self.nodes[i].payload_parents.get(&v).copied();
            assert_eq!(
                requested,
                Some(h.parent),
                "node {i}: proposal for view {v} does not extend the parent it selected"
            );
        }
    }

    /// Runs the commit checks on a (forged) commit, for the harness self-tests.
    pub fn check_commit_for_test(&mut self, i: usize, cb: bitcraps_consensus::CommittedBlock) {
        self.check_commit(i, cb.block, &cb.finalization);
    }

    fn check_commit(&mut self, i: usize, block: Block, fin: &Certificate) {
        self.stats.commits_checked += 1;
        let id = block.id();
        let h = block.header.height;
        assert_eq!(
            fin.body.kind,
            VoteKind::Finalize,
            "commit without a finalization"
        );
        assert!(
            verify_certificate(fin, &self.set, CHAIN_ID).is_ok(),
            "commit with an invalid finalization"
        );
        let node = &mut self.nodes[i];
        if h <= node.height() && h > 0 {
            // Re-delivered after a restart: the runtime ignores it, but it must be
            // the same block.
            assert_eq!(
                node.chain[h as usize - 1].id(),
                id,
                "node {i}: re-commit differs at height {h}"
            );
            return;
        }
        let prev = node
            .chain
            .last()
            .map(|b| b.header.clone())
            .unwrap_or_else(|| self.genesis_block.header.clone());
        let prev_id = node
            .chain
            .last()
            .map(Block::id)
            .unwrap_or(self.genesis_block.id());
        assert_eq!(
            h,
            prev.height + 1,
            "node {i}: committed height {h} after {}",
            prev.height
        );
        assert_eq!(
            block.header.parent, prev_id,
            "node {i}: commit at height {h} does not extend its tip"
        );
        assert!(
            block.header.view > prev.view,
            "node {i}: views along the chain must increase"
        );
        assert_eq!(block.header.parent_view, prev.view);
        assert!(block.header.timestamp_ms > prev.timestamp_ms);
        assert!(block.payload_matches());
        let agreed = *self.agreed.entry(h).or_insert(id);
        assert_eq!(
            agreed,
            id,
            "SAFETY: node {i} committed {:?} at height {h}, another honest node committed {:?}",
            block.id(),
            agreed
        );
        node.chain.push(block);
    }

    /// An equivocating validator's network layer.
    fn equivocate(&mut self, i: usize, m: Message) {
        let key = &self.keys[i];
        let me = i as u16;
        let (a, b) = match m {
            Message::Proposal(p) => {
                let mut block = p.block.clone();
                block.payload.extend_from_slice(b" (evil twin)");
                block.header.payload_len = block.payload.len() as u32;
                block.header.payload_hash = hash(&block.payload);
                let vote = sign_vote(key, me, VoteBody::notarize(block.header.view, block.id()));
                self.twins.insert(p.block.id(), block.id());
                let twin = Proposal {
                    block,
                    vote,
                    ..p.clone()
                };
                // Each half also learns the other half's leader vote.
                let (va, vb) = (Message::Vote(twin.vote), Message::Vote(p.vote));
                for j in 0..self.n() {
                    if j != i {
                        let v = if self.in_second_half(j) {
                            vb.clone()
                        } else {
                            va.clone()
                        };
                        self.send(i, j, v);
                    }
                }
                (Message::Proposal(p), Message::Proposal(twin))
            }
            Message::Vote(v) if v.signer == me => {
                let body = v.body;
                let other = match body.kind {
                    VoteKind::Notarize => {
                        let twin = self.twins.get(&body.block).copied().unwrap_or_else(|| {
                            bitcraps_crypto::hash::hash_parts(&[
                                body.block.as_bytes().as_slice(),
                                b"fake".as_slice(),
                            ])
                        });
                        VoteBody::notarize(body.view, twin)
                    }
                    VoteKind::Finalize => VoteBody::nullify(body.view),
                    VoteKind::Nullify => VoteBody::finalize(
                        body.view,
                        bitcraps_crypto::hash::hash_parts(&[
                            body.view.to_le_bytes().as_slice(),
                            b"fake".as_slice(),
                        ]),
                    ),
                };
                (Message::Vote(v), Message::Vote(sign_vote(key, me, other)))
            }
            m => (m.clone(), m),
        };
        for j in 0..self.n() {
            if j != i {
                let m = if self.in_second_half(j) {
                    b.clone()
                } else {
                    a.clone()
                };
                self.send(i, j, m);
            }
        }
    }

    fn in_second_half(&self, j: usize) -> bool {
        (self.split >> (j % 8)) & 1 == 1
    }
}

fn short<T: std::fmt::Debug>(x: &T) -> String {
    let s = format!("{x:?}");
    s.chars().take(240).collect()
}
