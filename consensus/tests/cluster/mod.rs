//! A tiny in-process cluster of `Core`s for property tests. A schedule (a list
//! of numbers chosen by proptest) decides which pending event happens next, which
//! messages are dropped or duplicated, and when time jumps to the next timer.
//! Honest nodes sign exactly what their core requests (no guard), so any double
//! sign the core asks for is caught here.

// Test support: a panic is the right failure here, and events are few.
#![allow(dead_code, clippy::unwrap_used, clippy::large_enum_variant)]

use bitcraps_consensus::{
    Block, Core, Effect, Genesis, Input, Message, Params, Proposal, TimeoutKind, View, Vote,
    VoteBody,
};
use bitcraps_crypto::{hash, Hash32, Keypair};
use std::collections::BTreeMap;

pub const CHAIN: &str = "prop";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byz {
    Honest,
    Silent,
    Equivocate,
}

#[derive(Debug, Clone)]
enum Event {
    Msg { to: usize, from: u16, msg: Message },
    Sig { node: usize, body: VoteBody },
    Payload { node: usize, view: View },
}

#[derive(Debug)]
pub struct Cluster {
    pub cores: Vec<Core>,
    pub keys: Vec<Keypair>,
    pub byz: Vec<Byz>,
    pending: Vec<Event>,
    timers: Vec<(u64, usize, View, TimeoutKind)>,
    pub now_ms: u64,
    pub committed: Vec<Vec<(u64, Hash32, Hash32)>>,
    /// Each node's committed block store (what a runtime serves sync from).
    store: Vec<BTreeMap<Hash32, Block>>,
    pub signed: BTreeMap<(usize, View), Vec<VoteBody>>,
    pub trace: blake3::Hasher,
    pub double_signs: Vec<String>,
    /// View timers that fired (a view timed out).
    pub view_timeouts: u64,
}

pub fn genesis(n: usize) -> (Genesis, Vec<Keypair>) {
    let keys: Vec<Keypair> = (0..n)
        .map(|i| Keypair::from_seed(&[i as u8 + 11; 32]))
        .collect();
    let g = Genesis::from_keypairs(
        CHAIN,
        1_000,
        &keys,
        Params {
            view_timeout_ms: 100,
            max_view_timeout_ms: 800,
            retry_interval_ms: 50,
            max_payload_bytes: 1024,
            max_clock_drift_ms: 10_000,
        },
    );
    (g, keys)
}

impl Cluster {
    pub fn new(n: usize, byz: Vec<Byz>) -> Cluster {
        let (g, keys) = genesis(n);
        let cores = (0..n)
            .map(|i| Core::new(&g, Some(i as u16)).unwrap())
            .collect();
        let mut c = Cluster {
            cores,
            keys,
            byz,
            pending: Vec::new(),
            timers: Vec::new(),
            now_ms: 1_000,
            committed: vec![Vec::new(); n],
            store: vec![BTreeMap::new(); n],
            signed: BTreeMap::new(),
            trace: blake3::Hasher::new(),
            double_signs: Vec::new(),
            view_timeouts: 0,
        };
        for i in 0..n {
            c.input(i, Input::Start);
        }
        c
    }

    fn n(&self) -> usize {
        self.cores.len()
    }

    /// Feeds one input and applies the effects. Returns the effects too.
    pub fn input(&mut self, node: usize, input: Input) -> Vec<Effect> {
        let effects = self.cores[node].handle(self.now_ms, input);
        self.trace.update(format!("{node}:{effects:?}").as_bytes());
        for e in effects.clone() {
            self.apply(node, e);
        }
        effects
    }

    fn apply(&mut self, node: usize, e: Effect) {
        let me = node as u16;
        match e {
            Effect::Broadcast(m) => self.broadcast(node, m),
            Effect::Send { to, message } => {
                if self.byz[node] != Byz::Silent {
                    self.pending.push(Event::Msg {
                        to: to as usize,
                        from: me,
                        msg: message,
                    });
                }
            }
            Effect::RequestSignature(body) => {
                if self.byz[node] == Byz::Honest {
                    let list = self.signed.entry((node, body.view)).or_default();
                    if let Some(c) = list.iter().find(|b| b.conflicts_with(&body)) {
                        self.double_signs
                            .push(format!("node {node}: {c:?} vs {body:?}"));
                    }
                    list.push(body);
                }
                self.pending.push(Event::Sig { node, body });
            }
            Effect::RequestPayload { view, .. } => self.pending.push(Event::Payload { node, view }),
            Effect::ScheduleTimeout { view, kind, at_ms } => {
                self.timers.push((at_ms, node, view, kind))
            }
            Effect::Commit(cb) => {
                let b = &cb.block;
                let list = &mut self.committed[node];
                if list.last().is_none_or(|(h, _, _)| b.header.height > *h) {
                    list.push((b.header.height, b.id(), b.header.parent));
                }
                self.store[node].insert(b.id(), b.clone());
            }
            Effect::ServeBlocks {
                to,
                id,
                max_ancestors,
            } => {
                let mut chain = Vec::new();
                let mut cur = id;
                while chain.len() <= max_ancestors as usize {
                    match self.store[node].get(&cur) {
                        Some(b) => {
                            cur = b.header.parent;
                            chain.push(b.clone());
                        }
                        None => break,
                    }
                }
                if !chain.is_empty() && self.byz[node] != Byz::Silent {
                    self.pending.push(Event::Msg {
                        to: to as usize,
                        from: me,
                        msg: Message::Blocks(chain),
                    });
                }
            }
            Effect::Persist { .. }
            | Effect::Prune { .. }
            | Effect::Evidence(_)
            | Effect::ViewEntered { .. } => {}
        }
    }

    fn broadcast(&mut self, node: usize, m: Message) {
        let me = node as u16;
        match self.byz[node] {
            Byz::Silent => {}
            Byz::Equivocate => {
                // Proposals: the first half of the peers get the real one, the rest
                // a conflicting block signed with the same key.
                let other = match &m {
                    Message::Proposal(p) => Some(Message::Proposal(self.forge(node, p))),
                    _ => None,
                };
                for to in 0..self.n() {
                    if to == node {
                        continue;
                    }
                    let msg = match (&other, to < self.n() / 2) {
                        (Some(o), false) => o.clone(),
                        _ => m.clone(),
                    };
                    self.pending.push(Event::Msg { to, from: me, msg });
                }
            }
            Byz::Honest => {
                for to in 0..self.n() {
                    if to != node {
                        self.pending.push(Event::Msg {
                            to,
                            from: me,
                            msg: m.clone(),
                        });
                    }
                }
            }
        }
    }

    fn forge(&self, node: usize, p: &Proposal) -> Proposal {
        let mut block = p.block.clone();
        block.payload.push(0xEE);
        block.header.payload_len = block.payload.len() as u32;
        block.header.payload_hash = hash(&block.payload);
        let body = VoteBody::notarize(block.header.view, block.id());
        let vote = Vote {
            body,
            signer: node as u16,
            signature: self.keys[node].sign(&body.signing_bytes(CHAIN)),
        };
        Proposal {
            block,
            vote,
            ..p.clone()
        }
    }

    /// One scheduling step chosen by `choice`. Bits: low 16 pick the event; bit
    /// 16 drops a message instead of delivering it (if `lossy`); bit 17 keeps it
    /// queued after delivery (a duplicate). With nothing pending, time jumps to
    /// the next timer.
    pub fn step(&mut self, choice: u32, lossy: bool) {
        if self.pending.is_empty() {
            self.fire_next_timer();
            return;
        }
        let i = (choice & 0xffff) as usize % self.pending.len();
        let duplicate = choice & (1 << 17) != 0;
        let event = if duplicate {
            self.pending[i].clone()
        } else {
            self.pending.remove(i)
        };
        if lossy && choice & (1 << 16) != 0 && matches!(event, Event::Msg { .. }) {
            return;
        }
        self.deliver(event);
    }

    /// Delivers the oldest event first: a fair, loss-free schedule.
    pub fn step_fifo(&mut self) {
        if self.pending.is_empty() {
            self.fire_next_timer();
        } else {
            let e = self.pending.remove(0);
            self.deliver(e);
        }
    }

    fn deliver(&mut self, event: Event) {
        match event {
            Event::Msg { to, from, msg } => {
                // Every message crosses the real codec.
                let msg = Message::decode(&msg.encode()).unwrap();
                self.input(to, Input::Message { from, message: msg });
            }
            Event::Sig { node, body } => {
                let signature = self.keys[node].sign(&body.signing_bytes(CHAIN));
                self.input(
                    node,
                    Input::SignatureReady {
                        vote: body,
                        signature,
                    },
                );
            }
            Event::Payload { node, view } => {
                let payload = format!("n{node}v{view}").into_bytes();
                self.input(node, Input::PayloadReady { view, payload });
            }
        }
    }

    fn fire_next_timer(&mut self) {
        let Some(pos) = (0..self.timers.len()).min_by_key(|i| (self.timers[*i].0, *i)) else {
            return;
        };
        let (at, node, view, kind) = self.timers.remove(pos);
        self.now_ms = self.now_ms.max(at);
        if kind == TimeoutKind::View && view == self.cores[node].view() {
            self.view_timeouts += 1;
        }
        self.input(node, Input::Timeout { view, kind });
    }

    /// Committed chains of honest nodes: no two differ at any height, and each
    /// links parent to child with heights increasing by one.
    pub fn check_safety(&self) -> Result<(), String> {
        let (g, _) = genesis(self.n());
        let gid = g.block().id();
        let mut by_height: BTreeMap<u64, Hash32> = BTreeMap::new();
        for (node, chain) in self.committed.iter().enumerate() {
            if self.byz[node] != Byz::Honest {
                continue;
            }
            let mut prev = (0u64, gid);
            for &(h, id, parent) in chain {
                if h != prev.0 + 1 || parent != prev.1 {
                    return Err(format!("node {node}: height {h} does not extend {prev:?}"));
                }
                if let Some(other) = by_height.insert(h, id) {
                    if other != id {
                        return Err(format!("conflicting commits at height {h}"));
                    }
                }
                prev = (h, id);
            }
        }
        if let Some(d) = self.double_signs.first() {
            return Err(format!("honest double sign: {d}"));
        }
        Ok(())
    }

    pub fn min_honest_height(&self) -> u64 {
        (0..self.n())
            .filter(|i| self.byz[*i] == Byz::Honest)
            .map(|i| self.committed[i].last().map(|x| x.0).unwrap_or(0))
            .min()
            .unwrap_or(0)
    }
}
