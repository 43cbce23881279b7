//! The core's state: what it knows about each view, blocks, and its committed tip.

use crate::block::{Block, Height};
use crate::genesis::{Genesis, ValidatorIndex, ValidatorSet};
use crate::io::{Evidence, WalEntry};
use crate::message::{Certificate, Proposal, Vote};
use crate::params::{Params, MAX_EVIDENCE, MAX_VERIFIED_CACHE};
use bitcraps_crypto::{
    vote::{View, VoteKind},
    Hash32,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Where our own vote of one kind stands in a view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Own {
    #[default]
    None,
    /// Asked the signer; waiting (or it refused).
    Requested,
    Sent(Vote),
}

impl Own {
    pub(crate) fn is_none(&self) -> bool {
        matches!(self, Own::None)
    }
    pub(crate) fn sent(&self) -> Option<&Vote> {
        match self {
            Own::Sent(v) => Some(v),
            _ => None,
        }
    }
}

/// Everything known about one view. Votes are keyed by signer so each validator
/// counts once; the first vote of a kind from a signer is kept and a conflicting
/// second one becomes evidence.
#[derive(Debug, Default, Clone)]
pub(crate) struct ViewState {
    pub notarize: BTreeMap<ValidatorIndex, Vote>,
    pub nullify: BTreeMap<ValidatorIndex, Vote>,
    pub finalize: BTreeMap<ValidatorIndex, Vote>,
    pub notarization: Option<Certificate>,
    pub nullification: Option<Certificate>,
    pub finalization: Option<Certificate>,
    /// Votes that arrived, signature unchecked, after this view already had a
    /// certificate for their kind and body: they cannot change a tally, so
    /// their signature is checked only if they are ever needed, as the first
    /// half of equivocation evidence (see `handle/vote.rs`). At most one per
    /// kind and signer.
    pub unchecked: BTreeMap<(VoteKind, ValidatorIndex), Vote>,
    /// The first valid proposal from the view's leader.
    pub proposal: Option<Proposal>,
    pub own_notarize: Own,
    pub own_nullify: Own,
    pub own_finalize: Own,
}

impl ViewState {
    pub(crate) fn votes_mut(&mut self, kind: VoteKind) -> &mut BTreeMap<ValidatorIndex, Vote> {
        match kind {
            VoteKind::Notarize => &mut self.notarize,
            VoteKind::Nullify => &mut self.nullify,
            VoteKind::Finalize => &mut self.finalize,
        }
    }

    pub(crate) fn votes(&self, kind: VoteKind) -> &BTreeMap<ValidatorIndex, Vote> {
        match kind {
            VoteKind::Notarize => &self.notarize,
            VoteKind::Nullify => &self.nullify,
            VoteKind::Finalize => &self.finalize,
        }
    }

    pub(crate) fn cert(&self, kind: VoteKind) -> Option<&Certificate> {
        match kind {
            VoteKind::Notarize => self.notarization.as_ref(),
            VoteKind::Nullify => self.nullification.as_ref(),
            VoteKind::Finalize => self.finalization.as_ref(),
        }
    }

    pub(crate) fn own_mut(&mut self, kind: VoteKind) -> &mut Own {
        match kind {
            VoteKind::Notarize => &mut self.own_notarize,
            VoteKind::Nullify => &mut self.own_nullify,
            VoteKind::Finalize => &mut self.own_finalize,
        }
    }

    /// A certificate proving some block of this view is notarized: the
    /// notarization, or a finalization (which implies one).
    pub(crate) fn notarized_block(&self) -> Option<(Hash32, &Certificate)> {
        self.finalization
            .as_ref()
            .or(self.notarization.as_ref())
            .map(|c| (c.body.block, c))
    }
}

/// The highest committed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    pub view: View,
    pub height: Height,
    pub id: Hash32,
    pub timestamp_ms: u64,
}

/// The Simplex state machine. See the crate docs.
#[derive(Debug)]
pub struct Core {
    pub(crate) chain_id: String,
    pub(crate) params: Params,
    pub(crate) set: ValidatorSet,
    pub(crate) me: Option<ValidatorIndex>,
    pub(crate) now_ms: u64,
    pub(crate) started: bool,
    /// Current view (Simplex iteration).
    pub(crate) view: View,
    pub(crate) views: BTreeMap<View, ViewState>,
    /// Known blocks above the committed tip.
    pub(crate) blocks: BTreeMap<Hash32, Block>,
    pub(crate) committed: Tip,
    /// Highest finalization whose ancestry is not yet all committed.
    pub(crate) pending_finalization: Option<Certificate>,
    /// Blocks we are fetching: id -> (local time of the last request, attempts).
    pub(crate) wanted: BTreeMap<Hash32, (u64, u64)>,
    /// Proposals for future views, processed when we get there.
    pub(crate) future_proposals: BTreeMap<View, Proposal>,
    /// View and parent (id, view, height, timestamp) for which we asked the
    /// application for a payload.
    pub(crate) payload_request: Option<(View, Hash32, View, Height, u64)>,
    /// Our block waiting for its signature.
    pub(crate) pending_block: Option<Block>,
    pub(crate) last_notarized_view: View,
    pub(crate) highest_finalize_requested: View,
    pub(crate) highest_nullify_requested: View,
    pub(crate) evidence: VecDeque<Evidence>,
    pub(crate) verified: BTreeSet<Hash32>,
    pub(crate) verified_order: VecDeque<Hash32>,
}

impl Core {
    /// A fresh core at genesis. `me` is our validator index, or `None` for a node
    /// that follows consensus without voting.
    pub fn new(genesis: &Genesis, me: Option<ValidatorIndex>) -> Result<Core, String> {
        let set = genesis.validate()?;
        if me.is_some_and(|i| i as usize >= set.len()) {
            return Err("our validator index is outside the validator set".into());
        }
        let g = genesis.block();
        Ok(Core {
            chain_id: genesis.chain_id.clone(),
            params: genesis.params.clone(),
            set,
            me,
            now_ms: 0,
            started: false,
            view: 1,
            views: BTreeMap::new(),
            blocks: BTreeMap::new(),
            committed: Tip {
                view: 0,
                height: 0,
                id: g.id(),
                timestamp_ms: g.header.timestamp_ms,
            },
            pending_finalization: None,
            wanted: BTreeMap::new(),
            future_proposals: BTreeMap::new(),
            payload_request: None,
            pending_block: None,
            last_notarized_view: 0,
            highest_finalize_requested: 0,
            highest_nullify_requested: 0,
            evidence: VecDeque::new(),
            verified: BTreeSet::new(),
            verified_order: VecDeque::new(),
        })
    }

    /// Rebuilds a core from its write-ahead log after a restart. Feed it
    /// [`crate::Input::Start`] next. Entries may be a superset of what is needed
    /// (pruning is lazy); unsynced entries may be missing, which only costs
    /// progress, never safety, because the signing guard holds the safety data.
    pub fn restore(
        genesis: &Genesis,
        me: Option<ValidatorIndex>,
        entries: impl IntoIterator<Item = WalEntry>,
    ) -> Result<Core, String> {
        let mut core = Core::new(genesis, me)?;
        for entry in entries {
            core.replay(entry);
        }
        core.gc();
        Ok(core)
    }

    fn replay(&mut self, entry: WalEntry) {
        match entry {
            WalEntry::Committed {
                view,
                height,
                id,
                timestamp_ms,
            } => {
                if height > self.committed.height {
                    self.committed = Tip {
                        view,
                        height,
                        id,
                        timestamp_ms,
                    };
                    self.view = self.view.max(view + 1);
                }
            }
            WalEntry::Certificate(c) => {
                let v = c.body.view;
                self.mark_verified(c.digest());
                let vs = self.views.entry(v).or_default();
                match c.body.kind {
                    VoteKind::Notarize => {
                        vs.notarization = Some(c);
                        self.last_notarized_view = self.last_notarized_view.max(v);
                    }
                    VoteKind::Nullify => vs.nullification = Some(c),
                    VoteKind::Finalize => {
                        if self
                            .pending_finalization
                            .as_ref()
                            .is_none_or(|p| p.body.view < v)
                        {
                            self.pending_finalization = Some(c.clone());
                        }
                        vs.finalization = Some(c);
                        self.last_notarized_view = self.last_notarized_view.max(v);
                    }
                }
                self.view = self.view.max(v + 1);
            }
            WalEntry::Block(b) => {
                self.blocks.insert(b.id(), b);
            }
            WalEntry::OwnVote(vote) => self.replay_own_vote(vote),
            WalEntry::OwnProposal(p) => {
                let v = p.block.header.view;
                self.blocks.insert(p.block.id(), p.block.clone());
                self.replay_own_vote(p.vote);
                self.views.entry(v).or_default().proposal = Some(p);
            }
        }
    }

    fn replay_own_vote(&mut self, vote: Vote) {
        let v = vote.body.view;
        match vote.body.kind {
            VoteKind::Finalize => {
                self.highest_finalize_requested = self.highest_finalize_requested.max(v)
            }
            VoteKind::Nullify => {
                self.highest_nullify_requested = self.highest_nullify_requested.max(v)
            }
            VoteKind::Notarize => {}
        }
        let vs = self.views.entry(v).or_default();
        *vs.own_mut(vote.body.kind) = Own::Sent(vote);
        vs.votes_mut(vote.body.kind).insert(vote.signer, vote);
    }

    // ---- read-only accessors (runtime, metrics, checkers) ----

    pub fn chain_id(&self) -> &str {
        &self.chain_id
    }
    pub fn validators(&self) -> &ValidatorSet {
        &self.set
    }
    pub fn params(&self) -> &Params {
        &self.params
    }
    pub fn me(&self) -> Option<ValidatorIndex> {
        self.me
    }
    /// Current view.
    pub fn view(&self) -> View {
        self.view
    }
    pub fn committed(&self) -> Tip {
        self.committed
    }
    pub fn leader(&self, view: View) -> ValidatorIndex {
        self.set.leader(view)
    }
    /// Equivocation evidence collected so far (bounded; oldest dropped).
    pub fn evidence(&self) -> impl Iterator<Item = &Evidence> {
        self.evidence.iter()
    }
    /// Number of blocks being fetched (sync backlog).
    pub fn wanted_blocks(&self) -> usize {
        self.wanted.len()
    }
    /// Votes held unchecked in `view` (see `handle/vote.rs`).
    pub fn held_unchecked(&self, view: View) -> usize {
        self.views.get(&view).map_or(0, |v| v.unchecked.len())
    }
    /// A certificate of `kind` for `view`, if known.
    pub fn certificate(&self, view: View, kind: VoteKind) -> Option<&Certificate> {
        self.views.get(&view).and_then(|v| v.cert(kind))
    }
    /// Pending (uncommitted) block by id.
    pub fn block(&self, id: &Hash32) -> Option<&Block> {
        self.blocks.get(id)
    }

    // ---- shared helpers ----

    pub(crate) fn is_verified(&self, digest: &Hash32) -> bool {
        self.verified.contains(digest)
    }

    pub(crate) fn mark_verified(&mut self, digest: Hash32) {
        if self.verified.insert(digest) {
            self.verified_order.push_back(digest);
            while self.verified_order.len() > MAX_VERIFIED_CACHE {
                if let Some(old) = self.verified_order.pop_front() {
                    self.verified.remove(&old);
                }
            }
        }
    }

    pub(crate) fn record_evidence(&mut self, ev: Evidence) -> bool {
        let dup = self.evidence.iter().any(|e| {
            e.first.signer == ev.first.signer
                && e.first.body.view == ev.first.body.view
                && e.second.body == ev.second.body
        });
        if dup {
            return false;
        }
        self.evidence.push_back(ev);
        while self.evidence.len() > MAX_EVIDENCE {
            self.evidence.pop_front();
        }
        true
    }

    /// Drops state that can no longer matter: views below the committed view and
    /// blocks at or below the committed height.
    pub(crate) fn gc(&mut self) {
        let floor = self.committed.view;
        self.views = self.views.split_off(&floor);
        let h = self.committed.height;
        self.blocks.retain(|_, b| b.header.height > h);
        self.future_proposals = self.future_proposals.split_off(&self.view);
        while self.views.len() > crate::params::MAX_TRACKED_VIEWS {
            // Keep the committed view's state (it proves the tip); drop the next-oldest.
            let victim = self.views.keys().nth(1).copied();
            match victim {
                Some(v) => {
                    self.views.remove(&v);
                }
                None => break,
            }
        }
        while self.blocks.len() > crate::params::MAX_PENDING_BLOCKS {
            // Highest views are the least likely to be committed soon only when we
            // are far behind; drop the highest and refetch later if needed.
            let last = self
                .blocks
                .iter()
                .max_by_key(|(_, b)| b.header.view)
                .map(|(k, _)| *k);
            match last {
                Some(k) => {
                    self.blocks.remove(&k);
                }
                None => break,
            }
        }
    }
}
