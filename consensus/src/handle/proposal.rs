//! Proposals: making one as leader, and checking one before voting for it.
//!
//! Simplex: in iteration h, vote for the first proposal from the leader of h whose
//! parent is notarized in some iteration h' < h with every iteration strictly
//! between h' and h nullified. Deviations (each makes a check stricter, none
//! weakens safety): we also require the parent block itself (so heights and
//! timestamps are checked), a strictly increasing timestamp not too far ahead of
//! our clock, and a payload within the size limit that matches its commitment. We
//! do not notarize a view we already voted to nullify.

use crate::block::Block;
use crate::io::{Effect, Evidence, WalEntry};
use crate::message::{Message, Proposal};
use crate::params::{MAX_FUTURE_PROPOSALS, MAX_VIEWS_AHEAD};
use crate::state::Core;
use bitcraps_crypto::vote::{View, VoteBody, VoteKind};

impl Core {
    /// The application's payload for the view we lead.
    pub(super) fn on_payload(&mut self, view: View, payload: Vec<u8>, out: &mut Vec<Effect>) {
        let Some((v, parent, parent_view, height, parent_ts)) = self.payload_request else {
            return;
        };
        if v != view || view != self.view || self.pending_block.is_some() {
            return;
        }
        if payload.len() > self.params.max_payload_bytes as usize {
            // The application broke its contract; propose nothing rather than an
            // invalid block, and let the view time out.
            return;
        }
        let block = Block::new(
            view,
            height + 1,
            parent,
            parent_view,
            self.set.leader(view),
            self.now_ms.max(parent_ts + 1),
            payload,
        );
        let id = block.id();
        self.pending_block = Some(block);
        self.request_vote(VoteBody::notarize(view, id), out);
    }

    /// Our signature on our own block arrived: persist, then broadcast the proposal.
    pub(super) fn complete_proposal(&mut self, vote: crate::Vote, out: &mut Vec<Effect>) -> bool {
        let Some(block) = self.pending_block.take_if(|b| b.id() == vote.body.block) else {
            return false;
        };
        let v = vote.body.view;
        // Justify the parent the block actually extends. Re-running parent
        // selection here could name a newer parent (a skipped view may have been
        // notarized meanwhile) that does not match the block.
        let parent_view = block.header.parent_view;
        let parent_certificate = self
            .views
            .get(&parent_view)
            .and_then(|vs| vs.notarized_block().map(|(_, c)| c.clone()));
        let nullifications = (parent_view + 1..v)
            .filter_map(|w| self.views.get(&w).and_then(|vs| vs.nullification.clone()))
            .collect();
        let proposal = Proposal {
            block: block.clone(),
            vote,
            parent_certificate,
            nullifications,
        };
        self.blocks.insert(block.id(), block);
        self.views.entry(v).or_default().proposal = Some(proposal.clone());
        out.push(Effect::Persist {
            entry: WalEntry::OwnProposal(proposal.clone()),
            durable: true,
        });
        out.push(Effect::Broadcast(Message::Proposal(proposal)));
        true
    }

    pub(super) fn on_proposal(&mut self, p: Proposal, out: &mut Vec<Effect>) {
        let v = p.block.header.view;
        let leader = self.set.leader(v);
        let id = p.block.id();
        // Cheap structural checks first; a hostile peer pays before we verify.
        if v <= self.committed.view
            || v > self.view + MAX_VIEWS_AHEAD
            || p.block.header.proposer != leader
            || p.vote.signer != leader
            || p.vote.body != VoteBody::notarize(v, id)
            || p.block.payload.len() > self.params.max_payload_bytes as usize
            || !p.block.payload_matches()
            || p.block.header.parent_view >= v
        {
            return;
        }
        if let Some(first) = self.views.get(&v).and_then(|vs| vs.proposal.as_ref()) {
            if first.block.id() != id {
                // A second, different proposal signed by the leader is equivocation.
                if crate::verify_vote(&p.vote, &self.set, &self.chain_id).is_ok() {
                    let ev = Evidence {
                        first: first.vote,
                        second: p.vote,
                    };
                    if self.record_evidence(ev.clone()) {
                        out.push(Effect::Evidence(ev));
                    }
                }
            }
            return;
        }
        if crate::verify_vote(&p.vote, &self.set, &self.chain_id).is_err() {
            return;
        }
        // The justification may carry certificates we lack; they can also move us
        // forward (a lagging node catches up through them).
        for c in p.parent_certificate.iter().chain(p.nullifications.iter()) {
            self.on_certificate(c.clone(), out);
        }
        self.add_vote(p.vote, out);
        if v > self.view {
            if self.future_proposals.len() < MAX_FUTURE_PROPOSALS {
                self.future_proposals.entry(v).or_insert(p);
            }
            return;
        }
        if v < self.view {
            // Too late to vote (the leader's vote was counted). Keep the block if
            // a certificate names it: we would otherwise fetch it. It may be
            // the parent we, as the next leader, were waiting for: the votes
            // that certified it can overtake the proposal itself (they come
            // from other peers), so we entered our view without it.
            let certified = self
                .views
                .get(&v)
                .and_then(|vs| vs.notarized_block())
                .is_some_and(|(b, _)| b == id);
            if certified || self.wanted.contains_key(&id) {
                self.wanted.remove(&id);
                if self.blocks.insert(id, p.block.clone()).is_none() {
                    out.push(Effect::Persist {
                        entry: WalEntry::Block(p.block),
                        durable: false,
                    });
                }
                self.try_commit(out);
                self.try_propose(out);
                self.try_vote(out);
            }
            return;
        }
        self.views.entry(v).or_default().proposal = Some(p);
        self.try_vote(out);
    }

    /// Simplex's voting rule for the current view's proposal, if any.
    pub(super) fn try_vote(&mut self, out: &mut Vec<Effect>) {
        let v = self.view;
        let Some(vs) = self.views.get(&v) else { return };
        let Some(p) = vs.proposal.as_ref() else {
            return;
        };
        if !vs.own_notarize.is_none() || !vs.own_nullify.is_none() {
            return;
        }
        let h = &p.block.header;
        let (parent, parent_view) = (h.parent, h.parent_view);
        // The parent must be final (our tip) or notarized, never below our tip.
        if parent_view < self.committed.view {
            return;
        }
        if parent_view == self.committed.view {
            if parent != self.committed.id {
                return;
            }
        } else {
            let notarized = self
                .views
                .get(&parent_view)
                .and_then(|pv| pv.notarized_block())
                .is_some_and(|(b, _)| b == parent);
            if !notarized {
                return;
            }
        }
        // Every view strictly between must be nullified.
        let skipped_ok = (parent_view + 1..v).all(|w| {
            self.views
                .get(&w)
                .is_some_and(|ws| ws.cert(VoteKind::Nullify).is_some())
        });
        if !skipped_ok {
            return;
        }
        let Some((parent_height, parent_ts)) = self.block_info(&parent) else {
            self.want(parent, out);
            return;
        };
        if h.height != parent_height + 1
            || h.timestamp_ms <= parent_ts
            || h.timestamp_ms > self.now_ms + self.params.max_clock_drift_ms
        {
            return;
        }
        let block = p.block.clone();
        let id = block.id();
        if self.blocks.insert(id, block.clone()).is_none() {
            out.push(Effect::Persist {
                entry: WalEntry::Block(block),
                durable: false,
            });
        }
        self.request_vote(VoteBody::notarize(v, id), out);
    }
}
