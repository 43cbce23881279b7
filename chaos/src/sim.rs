//! The deterministic simulator: one thread, virtual time, one seed.
//!
//! It runs `n` validators (plus Twins' second copies) made of the real consensus
//! core, the real signing guard over an in-memory signer and a crash-consistent
//! simulated WAL, connected by [`SimNet`]. Events are processed in (time, sequence)
//! order from a priority queue, so a seed determines every step; the trace hash
//! (blake3 over every processed event and every delivered byte) proves it.

use crate::byzantine::{self, Forger, Target};
use crate::checker::Checker;
use crate::net::{Fate, SimNet};
use crate::plan::{Behavior, Plan};
use crate::rng::SimRng;
use crate::storage::SimStorage;
use bitcraps_consensus::{
    Core, Effect, Genesis, Input, Message, Params, TimeoutKind, View, VoteBody,
};
use bitcraps_crypto::{
    guard::{MemoryGuardStore, SigningGuard},
    signer::{block_on_ready, InMemorySigner},
    Hash32, Keypair, Signature,
};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Genesis time of simulated chains (ms since the epoch).
const GENESIS_MS: u64 = 1_700_000_000_000;
/// Junk-sending byzantine validators act this often.
const BYZANTINE_TICK_US: u64 = 100_000;
/// Keep running this long after liveness is shown, to check the healed phase.
const TAIL_US: u64 = 500_000;

/// What one seed produced.
#[derive(Debug, Clone)]
pub struct SeedOutcome {
    pub seed: u64,
    pub plan: String,
    pub safety_violations: Vec<String>,
    pub liveness_failure: Option<String>,
    pub min_committed_height: u64,
    pub recovery_ms: Option<u64>,
    pub trace_hash: Hash32,
    pub events: u64,
    pub messages: u64,
    pub evidence: u64,
    pub decode_errors: u64,
}

#[derive(Debug)]
enum Event {
    Start(usize),
    Deliver {
        to: usize,
        from: u16,
        bytes: std::sync::Arc<Vec<u8>>,
    },
    Timer {
        inst: usize,
        epoch: u64,
        view: View,
        kind: TimeoutKind,
    },
    Signed {
        inst: usize,
        epoch: u64,
        vote: VoteBody,
        result: Result<Signature, String>,
    },
    Payload {
        inst: usize,
        epoch: u64,
        view: View,
    },
    Crash {
        inst: usize,
        down_us: u64,
    },
    Restart(usize),
    Tick(usize),
    Heal,
}

#[derive(Debug)]
struct Scheduled {
    at_us: u64,
    seq: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at_us, self.seq) == (o.at_us, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse for earliest-first.
        (o.at_us, o.seq).cmp(&(self.at_us, self.seq))
    }
}

#[derive(Debug)]
struct Instance {
    index: u16,
    behavior: Option<Behavior>,
    up: bool,
    epoch: u64,
    core: Core,
    storage: SimStorage,
    guard: SigningGuard<InMemorySigner, MemoryGuardStore>,
    guard_store: MemoryGuardStore,
    key: Keypair,
    offset_ms: i64,
    drift_ppm: i64,
    rng: SimRng,
}

impl Instance {
    fn honest(&self) -> bool {
        self.behavior.is_none()
    }

    fn local_ms(&self, now_us: u64) -> u64 {
        let scaled = now_us as i128 * (1_000_000 + self.drift_ppm as i128) / 1_000_000;
        (GENESIS_MS as i128 + self.offset_ms as i128 + scaled / 1_000).max(0) as u64
    }

    fn global_us(&self, local_ms: u64) -> u64 {
        let elapsed_us = (local_ms as i128 - GENESIS_MS as i128 - self.offset_ms as i128) * 1_000;
        (elapsed_us * 1_000_000 / (1_000_000 + self.drift_ppm as i128)).max(0) as u64
    }
}

/// Parameters of simulated chains: short timers, because simulated links are fast.
pub fn sim_params() -> Params {
    Params {
        view_timeout_ms: 400,
        max_view_timeout_ms: 4_000,
        retry_interval_ms: 200,
        max_payload_bytes: 64 * 1024,
        max_clock_drift_ms: 2_000,
    }
}

/// Builds a genesis with deterministic keys derived from the seed.
pub fn sim_genesis(n: usize, seed: u64) -> (Genesis, Vec<Keypair>) {
    let keys: Vec<Keypair> = (0..n)
        .map(|i| {
            let mut material = seed.to_le_bytes().to_vec();
            material.extend_from_slice(&(i as u64).to_le_bytes());
            Keypair::from_seed(bitcraps_crypto::hash(&material).as_bytes())
        })
        .collect();
    let genesis = Genesis::from_keypairs("bitcraps-sim", GENESIS_MS, &keys, sim_params());
    (genesis, keys)
}

/// One simulated run.
#[derive(Debug)]
pub struct Sim {
    plan: Plan,
    genesis: Genesis,
    genesis_id: Hash32,
    instances: Vec<Instance>,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    now_us: u64,
    net: SimNet,
    checker: Checker,
    trace: blake3::Hasher,
    payload_rng: SimRng,
    byz_rng: SimRng,
    heal_height: Option<u64>,
    recovered_at_us: Option<u64>,
    end_us: u64,
    events: u64,
    evidence: u64,
    decode_errors: u64,
}

impl Sim {
    pub fn new(plan: Plan, seed: u64) -> Sim {
        let n = plan.validators;
        let (genesis, keys) = sim_genesis(n, seed);
        let set = genesis.validate().expect("simulated genesis is valid");
        let root = SimRng::new(seed);
        let mut index_of: Vec<usize> = (0..n).collect();
        index_of.extend(plan.twin_instances().iter().map(|(_, idx)| *idx));
        let mut instances = Vec::new();
        for (inst, &idx) in index_of.iter().enumerate() {
            let clock = plan.clocks.iter().find(|c| c.instance == inst);
            let key = Keypair::from_seed(&keys[idx].seed());
            let store = MemoryGuardStore::default();
            let guard = SigningGuard::new(
                &genesis.chain_id,
                InMemorySigner::new(Keypair::from_seed(&keys[idx].seed())),
                store.clone(),
            )
            .expect("fresh guard");
            instances.push(Instance {
                index: idx as u16,
                behavior: plan.behavior(idx),
                up: true,
                epoch: 0,
                core: Core::new(&genesis, Some(idx as u16)).expect("valid core"),
                storage: SimStorage::default(),
                guard,
                guard_store: store,
                key,
                offset_ms: clock.map(|c| c.offset_ms).unwrap_or(0),
                drift_ppm: clock.map(|c| c.drift_ppm).unwrap_or(0),
                rng: root.fork(1_000 + inst as u64),
            });
        }
        let net = SimNet::new(
            root.fork(1),
            plan.net.clone(),
            plan.partitions.clone(),
            plan.heal_at_ms,
            index_of,
        );
        let genesis_id = genesis.block().id();
        let checker = Checker::new(set, genesis.chain_id.clone(), genesis_id);
        let end_us = (plan.heal_at_ms + plan.liveness_bound_ms) * 1_000;
        let mut sim = Sim {
            plan,
            genesis,
            genesis_id,
            instances,
            queue: BinaryHeap::new(),
            seq: 0,
            now_us: 0,
            net,
            checker,
            trace: blake3::Hasher::new(),
            payload_rng: root.fork(2),
            byz_rng: root.fork(3),
            heal_height: None,
            recovered_at_us: None,
            end_us,
            events: 0,
            evidence: 0,
            decode_errors: 0,
        };
        for inst in 0..sim.instances.len() {
            sim.schedule(0, Event::Start(inst));
            if matches!(
                sim.instances[inst].behavior,
                Some(Behavior::Garbage | Behavior::Spam)
            ) {
                sim.schedule(BYZANTINE_TICK_US, Event::Tick(inst));
            }
        }
        for c in sim.plan.crashes.clone() {
            sim.schedule(
                c.at_ms * 1_000,
                Event::Crash {
                    inst: c.instance,
                    down_us: c.down_ms * 1_000,
                },
            );
        }
        sim.schedule(sim.plan.heal_at_ms * 1_000, Event::Heal);
        sim
    }

    fn schedule(&mut self, at_us: u64, event: Event) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at_us,
            seq: self.seq,
            event,
        });
    }

    /// Runs to the end and reports.
    pub fn run(mut self, seed: u64) -> SeedOutcome {
        while let Some(s) = self.queue.pop() {
            if s.at_us > self.end_us {
                break;
            }
            self.now_us = s.at_us;
            self.events += 1;
            self.trace.update(&s.at_us.to_le_bytes());
            self.process(s.event);
        }
        let honest: Vec<usize> = (0..self.instances.len())
            .filter(|i| self.instances[*i].honest())
            .collect();
        let min_h = honest
            .iter()
            .map(|i| self.checker.height(*i))
            .min()
            .unwrap_or(0);
        let heal_us = self.plan.heal_at_ms * 1_000;
        let liveness_failure = match self.recovered_at_us {
            Some(_) => None,
            None => {
                let target = self.heal_height.unwrap_or(0) + 1;
                let stuck: Vec<String> = honest
                    .iter()
                    .filter(|i| self.checker.height(**i) < target)
                    .map(|i| {
                        let x = &self.instances[*i];
                        format!(
                            "val{} at height {} (view {}, fetching {} blocks, up {})",
                            i,
                            self.checker.height(*i),
                            x.core.view(),
                            x.core.wanted_blocks(),
                            x.up
                        )
                    })
                    .collect();
                Some(format!(
                    "not every honest node committed above height {} within {} ms of healing: {}",
                    target - 1,
                    self.plan.liveness_bound_ms,
                    stuck.join(", ")
                ))
            }
        };
        SeedOutcome {
            seed,
            plan: self.plan.summary(),
            safety_violations: self.checker.violations.clone(),
            liveness_failure,
            min_committed_height: min_h,
            recovery_ms: self.recovered_at_us.map(|t| (t - heal_us) / 1_000),
            trace_hash: Hash32(*self.trace.finalize().as_bytes()),
            events: self.events,
            messages: self.net.sent,
            evidence: self.evidence,
            decode_errors: self.decode_errors,
        }
    }

    fn process(&mut self, event: Event) {
        match event {
            Event::Start(inst) => self.input(inst, Input::Start),
            Event::Deliver { to, from, bytes } => {
                self.trace.update(&[1, to as u8]);
                self.trace.update(&bytes);
                if !self.instances[to].up {
                    return;
                }
                match Message::decode(&bytes) {
                    Ok(message) => self.input(to, Input::Message { from, message }),
                    Err(_) => self.decode_errors += 1,
                }
            }
            Event::Timer {
                inst,
                epoch,
                view,
                kind,
            } => {
                if self.live(inst, epoch) {
                    self.input(inst, Input::Timeout { view, kind })
                }
            }
            Event::Signed {
                inst,
                epoch,
                vote,
                result,
            } => {
                if self.live(inst, epoch) {
                    let input = match result {
                        Ok(signature) => Input::SignatureReady { vote, signature },
                        Err(reason) => Input::SignatureRefused { vote, reason },
                    };
                    self.input(inst, input)
                }
            }
            Event::Payload { inst, epoch, view } => {
                if self.live(inst, epoch) {
                    let len = self.payload_rng.range(16, 512) as usize;
                    let payload = self.payload_rng.bytes(len);
                    self.input(inst, Input::PayloadReady { view, payload })
                }
            }
            Event::Crash { inst, down_us } => {
                self.trace.update(&[2, inst as u8]);
                let i = &mut self.instances[inst];
                i.up = false;
                i.epoch += 1;
                i.storage.crash();
                self.schedule(self.now_us + down_us, Event::Restart(inst));
            }
            Event::Restart(inst) => {
                self.trace.update(&[3, inst as u8]);
                let genesis = self.genesis.clone();
                let i = &mut self.instances[inst];
                // A restarted process rebuilds everything from durable state: the
                // WAL and the guard's store (which survived the crash).
                i.core = Core::restore(&genesis, Some(i.index), i.storage.wal())
                    .expect("restore from our own WAL");
                i.guard = SigningGuard::new(
                    &genesis.chain_id,
                    InMemorySigner::new(Keypair::from_seed(&i.key.seed())),
                    i.guard_store.clone(),
                )
                .expect("guard reloads its durable state");
                i.up = true;
                self.input(inst, Input::Start);
            }
            Event::Tick(inst) => {
                self.byzantine_tick(inst);
                self.schedule(self.now_us + BYZANTINE_TICK_US, Event::Tick(inst));
            }
            Event::Heal => {
                let h = (0..self.instances.len())
                    .filter(|i| self.instances[*i].honest())
                    .map(|i| self.checker.height(i))
                    .max()
                    .unwrap_or(0);
                self.heal_height = Some(h);
                self.check_recovery();
            }
        }
    }

    fn live(&self, inst: usize, epoch: u64) -> bool {
        let i = &self.instances[inst];
        i.up && i.epoch == epoch
    }

    fn input(&mut self, inst: usize, input: Input) {
        let now_ms = self.instances[inst].local_ms(self.now_us);
        let dbg = std::env::var_os("BITCRAPS_SIM_TRACE").is_some();
        if dbg {
            eprintln!("[{}us] inst{} <- {:?}", self.now_us, inst, short(&input));
        }
        let effects = self.instances[inst].core.handle(now_ms, input);
        if dbg {
            for e in &effects {
                eprintln!("    -> {}", short(e));
            }
        }
        for e in effects {
            self.apply(inst, e);
        }
    }

    fn apply(&mut self, inst: usize, effect: Effect) {
        match effect {
            Effect::Broadcast(m) => self.send(inst, Target::All, m),
            Effect::Send { to, message } => self.send(inst, Target::One(to), message),
            Effect::Persist { entry, durable } => {
                let s = &mut self.instances[inst].storage;
                s.append(entry);
                if durable {
                    s.sync();
                }
            }
            Effect::RequestSignature(body) => {
                let i = &mut self.instances[inst];
                let result = match block_on_ready(i.guard.sign_vote(&body)) {
                    Some(Ok(sig)) => Ok(sig),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err("in-memory signer was not ready".into()),
                };
                let honest = i.honest();
                let (index, epoch) = (i.index, i.epoch);
                let delay = i.rng.range(50, 1_500);
                if result.is_ok() && honest {
                    self.checker.on_signed(index, body);
                }
                self.schedule(
                    self.now_us + delay,
                    Event::Signed {
                        inst,
                        epoch,
                        vote: body,
                        result,
                    },
                );
            }
            Effect::RequestPayload { view, .. } => {
                let i = &mut self.instances[inst];
                let (epoch, delay) = (i.epoch, i.rng.range(100, 2_000));
                self.schedule(self.now_us + delay, Event::Payload { inst, epoch, view });
            }
            Effect::ScheduleTimeout { view, kind, at_ms } => {
                let i = &self.instances[inst];
                let at_us = i.global_us(at_ms).max(self.now_us + 1);
                let epoch = i.epoch;
                self.schedule(
                    at_us,
                    Event::Timer {
                        inst,
                        epoch,
                        view,
                        kind,
                    },
                );
            }
            Effect::Commit(cb) => {
                let i = &mut self.instances[inst];
                let fresh = i.storage.commit(&cb);
                if fresh {
                    self.trace.update(cb.block.id().as_bytes());
                    if i.honest() {
                        self.checker.on_commit(inst, self.genesis_id, &cb);
                        self.check_recovery();
                    }
                }
            }
            Effect::Prune { below_view } => self.instances[inst].storage.prune(below_view),
            Effect::ServeBlocks {
                to,
                id,
                max_ancestors,
            } => {
                let chain = self.instances[inst].storage.chain_from(&id, max_ancestors);
                if !chain.is_empty() {
                    self.send(inst, Target::One(to), Message::Blocks(chain));
                }
            }
            Effect::Evidence(_) => self.evidence += 1,
            Effect::ViewEntered { .. } => {}
        }
    }

    /// Sends `m` from `inst`, through its byzantine behaviour if it has one.
    fn send(&mut self, inst: usize, target: Target, m: Message) {
        let outgoing = match self.instances[inst].behavior {
            None | Some(Behavior::Twin) => vec![(target, m)],
            Some(b) => {
                let i = &mut self.instances[inst];
                let mut f = Forger {
                    key: &i.key,
                    chain_id: &self.genesis.chain_id,
                    me: i.index,
                    rng: &mut self.byz_rng,
                };
                byzantine::rewrite(b, m, target, &mut f)
            }
        };
        for (target, m) in outgoing {
            let bytes = std::sync::Arc::new(m.encode());
            self.route(inst, &target, bytes);
        }
    }

    fn route(&mut self, inst: usize, target: &Target, bytes: std::sync::Arc<Vec<u8>>) {
        let me = self.instances[inst].index;
        let n = self.plan.validators as u16;
        let leader = self.current_leader();
        let now_ms = self.now_us / 1_000;
        for to in 0..self.instances.len() {
            let idx = self.instances[to].index;
            let wanted = idx != me
                && match target {
                    Target::All => true,
                    Target::Half(first) => (idx < n / 2) == *first,
                    Target::One(i) => idx == *i,
                };
            if !wanted {
                continue;
            }
            if let Fate::Delivered(delays) = self.net.fate(inst, to, now_ms, leader) {
                for d in delays {
                    self.schedule(
                        self.now_us + d,
                        Event::Deliver {
                            to,
                            from: me,
                            bytes: bytes.clone(),
                        },
                    );
                }
            }
        }
    }

    /// Leader of the highest view an honest, running instance is in.
    fn current_leader(&self) -> usize {
        let view = self
            .instances
            .iter()
            .filter(|i| i.honest() && i.up)
            .map(|i| i.core.view())
            .max()
            .unwrap_or(1);
        self.instances[0].core.leader(view) as usize
    }

    fn byzantine_tick(&mut self, inst: usize) {
        let Some(b) = self.instances[inst].behavior else {
            return;
        };
        let i = &self.instances[inst];
        let view = i.core.view();
        let mut f = Forger {
            key: &i.key,
            chain_id: &self.genesis.chain_id,
            me: i.index,
            rng: &mut self.byz_rng,
        };
        let frames = byzantine::junk(b, view, &mut f);
        for frame in frames {
            self.route(inst, &Target::All, std::sync::Arc::new(frame));
        }
    }

    /// Liveness: have all honest instances committed above the heal-time height?
    fn check_recovery(&mut self) {
        let Some(h) = self.heal_height else { return };
        if self.recovered_at_us.is_some() {
            return;
        }
        let all = (0..self.instances.len())
            .filter(|i| self.instances[*i].honest())
            .all(|i| self.checker.height(i) > h);
        if all {
            self.recovered_at_us = Some(self.now_us);
            self.end_us = self.end_us.min(self.now_us + TAIL_US);
        }
    }
}

/// Runs one seed with the plan it selects.
pub fn run_seed(
    n: usize,
    f: usize,
    seed: u64,
    swarm: bool,
    forced: Option<Behavior>,
) -> SeedOutcome {
    let mut rng = SimRng::new(seed).fork(0xF417);
    let plan = if swarm {
        Plan::swarm(&mut rng, n, f, forced)
    } else {
        Plan::standard(&mut rng, n, f, forced)
    };
    Sim::new(plan, seed).run(seed)
}

fn short<T: std::fmt::Debug>(x: &T) -> String {
    let s = format!("{x:?}");
    s.chars().take(220).collect()
}
