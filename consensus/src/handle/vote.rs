//! Votes: verify, tally, detect equivocation, and form certificates.
//!
//! Simplex: 2f+1 (here: quorum) notarize votes for a block form its notarization,
//! quorum nullify votes a nullification, quorum finalize votes a finalization.
//! A validator counts once per kind and view; a second, conflicting vote from the
//! same validator is kept as evidence and not counted.

use crate::certificate::{assemble, verify_vote};
use crate::genesis::ValidatorIndex;
use crate::io::{Effect, Evidence};
use crate::message::{Message, Vote};
use crate::params::MAX_VIEWS_AHEAD;
use crate::state::Core;
use bitcraps_crypto::vote::VoteKind;

impl Core {
    pub(super) fn on_vote(&mut self, from: ValidatorIndex, vote: Vote, out: &mut Vec<Effect>) {
        let v = vote.body.view;
        if v < self.committed.view || v > self.view + MAX_VIEWS_AHEAD {
            return;
        }
        // Ignore exact duplicates before paying for a signature check.
        if self
            .views
            .get(&v)
            .and_then(|vs| self.existing_vote(vs, &vote))
            .is_some_and(|existing| existing == vote)
        {
            self.help_lagging_peer(from, &vote, out);
            return;
        }
        if verify_vote(&vote, &self.set, &self.chain_id).is_err() {
            return;
        }
        self.help_lagging_peer(from, &vote, out);
        self.add_vote(vote, out);
    }

    fn existing_vote(&self, vs: &crate::state::ViewState, vote: &Vote) -> Option<Vote> {
        let map = match vote.body.kind {
            VoteKind::Notarize => &vs.notarize,
            VoteKind::Nullify => &vs.nullify,
            VoteKind::Finalize => &vs.finalize,
        };
        map.get(&vote.signer).copied()
    }

    /// A peer still voting in a view we have left is behind: send it the
    /// certificate that ended that view (bounded: peers vote at most once per
    /// retry interval).
    fn help_lagging_peer(&self, from: ValidatorIndex, vote: &Vote, out: &mut Vec<Effect>) {
        let v = vote.body.view;
        if v >= self.view || Some(from) == self.me {
            return;
        }
        if let Some(vs) = self.views.get(&v) {
            let cert = vs
                .finalization
                .as_ref()
                .or(vs.notarization.as_ref())
                .or(vs.nullification.as_ref());
            if let Some(c) = cert {
                out.push(Effect::Send {
                    to: from,
                    message: Message::Certificate(c.clone()),
                });
            }
        }
    }

    /// Tallies a verified vote (ours or a peer's).
    pub(crate) fn add_vote(&mut self, vote: Vote, out: &mut Vec<Effect>) {
        let v = vote.body.view;
        let quorum = self.set.quorum();
        let (prior, cross) = {
            let vs = self.views.entry(v).or_default();
            // Same-kind conflict (two blocks in one view) or finalize-vs-nullify.
            let prior = vs.votes_mut(vote.body.kind).get(&vote.signer).copied();
            let cross = match vote.body.kind {
                VoteKind::Finalize => vs.nullify.get(&vote.signer).copied(),
                VoteKind::Nullify => vs.finalize.get(&vote.signer).copied(),
                VoteKind::Notarize => None,
            };
            (prior, cross)
        };
        if let Some(first) = prior.or(cross) {
            if first != vote && first.body.conflicts_with(&vote.body) {
                let ev = Evidence {
                    first,
                    second: vote,
                };
                if self.record_evidence(ev.clone()) {
                    out.push(Effect::Evidence(ev));
                }
            }
            if prior.is_some() || first.body.conflicts_with(&vote.body) {
                return;
            }
        }
        let vs = self.views.entry(v).or_default();
        vs.votes_mut(vote.body.kind).insert(vote.signer, vote);
        if vs.cert(vote.body.kind).is_some() {
            return;
        }
        let matching = vs
            .votes_mut(vote.body.kind)
            .values()
            .filter(|x| x.body == vote.body);
        if let Some(cert) = assemble(matching, quorum) {
            self.mark_verified(cert.digest());
            self.on_new_certificate(cert, true, out);
        }
    }
}
