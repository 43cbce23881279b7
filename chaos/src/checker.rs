//! Safety and liveness checkers.
//!
//! Safety, checked on every commit and every signature an honest guard releases:
//! * at each height every honest node committed the same block;
//! * each node's committed chain links parent to child;
//! * every finalization that justified a commit re-verifies with a quorum of
//!   distinct, valid signers;
//! * no honest validator signed two conflicting votes.
//!
//! Liveness: after the plan heals, every honest node commits a block above the
//! highest height any honest node had at heal time, within the plan's bound.

use bitcraps_consensus::{
    verify_certificate, CommittedBlock, Height, ValidatorSet, View, VoteBody,
};
use bitcraps_crypto::Hash32;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug)]
pub struct Checker {
    set: ValidatorSet,
    chain_id: String,
    /// height -> (block id, instance that committed it first)
    by_height: BTreeMap<Height, (Hash32, usize)>,
    last: BTreeMap<usize, (Height, Hash32)>,
    verified: BTreeSet<Hash32>,
    signed: BTreeMap<(u16, View), Vec<VoteBody>>,
    pub violations: Vec<String>,
}

impl Checker {
    pub fn new(set: ValidatorSet, chain_id: String, genesis_id: Hash32) -> Self {
        let _ = genesis_id;
        Checker {
            set,
            chain_id,
            by_height: BTreeMap::new(),
            last: BTreeMap::new(),
            verified: BTreeSet::new(),
            signed: BTreeMap::new(),
            violations: Vec::new(),
        }
    }

    /// An honest instance committed `cb` (first time at that height for it).
    pub fn on_commit(&mut self, instance: usize, genesis_id: Hash32, cb: &CommittedBlock) {
        let b = &cb.block;
        let (h, id) = (b.header.height, b.id());
        let (prev_h, prev_id) = self.last.get(&instance).copied().unwrap_or((0, genesis_id));
        if h != prev_h + 1 || b.header.parent != prev_id {
            self.violations.push(format!(
                "instance {instance}: committed height {h} (parent {}) after height {prev_h} ({})",
                b.header.parent.short(),
                prev_id.short()
            ));
        }
        self.last.insert(instance, (h, id));
        match self.by_height.get(&h) {
            Some((other, who)) if *other != id => self.violations.push(format!(
                "conflicting commits at height {h}: instance {who} has {}, instance {instance} has {}",
                other.short(),
                id.short()
            )),
            Some(_) => {}
            None => {
                self.by_height.insert(h, (id, instance));
            }
        }
        let digest = cb.finalization.digest();
        if !self.verified.contains(&digest) {
            match verify_certificate(&cb.finalization, &self.set, &self.chain_id) {
                Ok(()) if cb.finalization.body.kind == bitcraps_consensus::VoteKind::Finalize => {
                    self.verified.insert(digest);
                }
                Ok(()) => self.violations.push(format!(
                    "height {h} committed on a {:?} certificate",
                    cb.finalization.body.kind
                )),
                Err(e) => self
                    .violations
                    .push(format!("height {h}: finalization does not re-verify: {e}")),
            }
        }
    }

    /// An honest validator's guard released a signature on `body`.
    pub fn on_signed(&mut self, index: u16, body: VoteBody) {
        let list = self.signed.entry((index, body.view)).or_default();
        if let Some(c) = list.iter().find(|x| x.conflicts_with(&body)) {
            self.violations.push(format!(
                "honest validator {index} signed conflicting votes {c:?} and {body:?}"
            ));
        }
        if !list.contains(&body) {
            list.push(body);
        }
    }

    pub fn height(&self, instance: usize) -> Height {
        self.last.get(&instance).map(|x| x.0).unwrap_or(0)
    }
}
