//! Certificates: store, forward, and act on them.
//!
//! Simplex: on a notarization for iteration h, if our timer for h has not fired,
//! vote to finalize h; then forward the notarization and enter h+1. On a
//! nullification for h, forward it and enter h+1. On a finalization of block b,
//! commit b and all its ancestors. Deviations: we also finalize notarized views
//! we jumped over without nullifying (the guard still forbids finalize after
//! nullify), and a finalization moves us forward like a notarization does (and
//! is then forwarded like one; a finalization we formed from votes is not).

use crate::certificate::verify_certificate_with;
use crate::io::{Effect, ViewChange, WalEntry};
use crate::message::{Certificate, Message};
use crate::params::MAX_VIEWS_AHEAD;
use crate::state::Core;
use bitcraps_crypto::vote::{VoteBody, VoteKind};

impl Core {
    /// A certificate from the network (or inside a proposal).
    pub(super) fn on_certificate(&mut self, cert: Certificate, out: &mut Vec<Effect>) {
        let v = cert.body.view;
        if v < self.committed.view || v > self.view + MAX_VIEWS_AHEAD {
            return;
        }
        if self
            .views
            .get(&v)
            .is_some_and(|vs| vs.cert(cert.body.kind).is_some())
        {
            return; // already have one of this kind for this view
        }
        let digest = cert.digest();
        if !self.is_verified(&digest) {
            // Signatures byte-identical to votes we counted were checked then.
            let counted = self.views.get(&v).map(|vs| vs.votes(cert.body.kind));
            let checked = |signer, sig: &bitcraps_crypto::Signature| {
                counted
                    .and_then(|votes| votes.get(&signer))
                    .is_some_and(|vote| vote.body == cert.body && vote.signature == *sig)
            };
            if verify_certificate_with(&cert, &self.set, &self.chain_id, checked).is_err() {
                return;
            }
            self.mark_verified(digest);
        }
        self.on_new_certificate(cert, out);
    }

    /// A verified certificate we did not have (received or assembled).
    pub(crate) fn on_new_certificate(&mut self, cert: Certificate, out: &mut Vec<Effect>) {
        let v = cert.body.view;
        let block = cert.body.block;
        {
            let vs = self.views.entry(v).or_default();
            match cert.body.kind {
                VoteKind::Notarize => vs.notarization = Some(cert.clone()),
                VoteKind::Nullify => vs.nullification = Some(cert.clone()),
                VoteKind::Finalize => vs.finalization = Some(cert.clone()),
            }
        }
        out.push(Effect::Persist {
            entry: WalEntry::Certificate(cert.clone()),
            durable: false,
        });
        let ahead = v >= self.view;
        match cert.body.kind {
            VoteKind::Notarize => {
                self.last_notarized_view = self.last_notarized_view.max(v);
                if ahead {
                    self.request_vote(VoteBody::finalize(v, block), out);
                    out.push(Effect::Broadcast(Message::Certificate(cert)));
                    self.enter_view(v + 1, ViewChange::Notarized, out);
                }
                if v > self.committed.view && self.block_info(&block).is_none() {
                    self.want(block, out);
                }
            }
            VoteKind::Nullify => {
                if ahead {
                    out.push(Effect::Broadcast(Message::Certificate(cert)));
                    self.enter_view(v + 1, ViewChange::Nullified, out);
                }
            }
            VoteKind::Finalize => {
                self.last_notarized_view = self.last_notarized_view.max(v);
                // Forwarded only when it moved us forward. One we formed
                // from votes is not: every validator got the same votes, and
                // one that missed a vote commits this block with the next
                // finalization (which covers its ancestors) or gets it from a
                // retry. This saves a certificate per peer per view.
                if ahead {
                    out.push(Effect::Broadcast(Message::Certificate(cert.clone())));
                }
                if v > self.committed.view
                    && self
                        .pending_finalization
                        .as_ref()
                        .is_none_or(|p| p.body.view < v)
                {
                    self.pending_finalization = Some(cert);
                }
                if ahead {
                    self.enter_view(v + 1, ViewChange::Finalized, out);
                }
                self.try_commit(out);
            }
        }
        // A new certificate may complete a proposal's justification.
        self.try_propose(out);
        self.try_vote(out);
    }
}
