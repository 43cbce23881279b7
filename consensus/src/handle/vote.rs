//! Votes: verify, tally, detect equivocation, and form certificates.
//!
//! Simplex: 2f+1 (here: quorum) notarize votes for a block form its notarization,
//! quorum nullify votes a nullification, quorum finalize votes a finalization.
//! A validator counts once per kind and view; a second, conflicting vote from the
//! same validator is kept as evidence and not counted.
//!
//! Signature checks are the main per-view cost of a lightly loaded validator,
//! so votes that cannot change anything are not checked at once. With `n`
//! validators and a quorum `q < n`, the last `n - q` votes of each round arrive
//! after the certificate: a vote whose body matches the view's certificate of
//! its kind is either one of the certificate's own signatures (byte-identical,
//! so already checked) or redundant. A redundant vote is held unchecked; it is
//! checked only when a later vote from the same signer could conflict with it
//! (it is then the first half of the evidence), or when the peer sends it again
//! (a peer retrying is stuck, and gets the certificate once its vote checks
//! out). Deviation from the paper: none in what is counted or proven; only
//! when a signature is checked.

use crate::certificate::{assemble, verify_vote};
use crate::genesis::ValidatorIndex;
use crate::io::{Effect, Evidence};
use crate::message::{Message, Vote};
use crate::params::MAX_VIEWS_AHEAD;
use crate::state::{Core, ViewState};
use bitcraps_crypto::vote::{View, VoteKind};

impl Core {
    pub(super) fn on_vote(&mut self, from: ValidatorIndex, vote: Vote, out: &mut Vec<Effect>) {
        let v = vote.body.view;
        if v < self.committed.view || v > self.view + MAX_VIEWS_AHEAD {
            return;
        }
        // Only validators' votes are ever held, so what is held stays within
        // one vote per kind and validator per view.
        if self.set.key(vote.signer).is_none() {
            return;
        }
        match self.views.get(&v).map(|vs| standing(vs, &vote)) {
            // Ignore exact duplicates before paying for a signature check.
            Some(Standing::Counted) => {
                self.help_lagging_peer(from, &vote, out);
                return;
            }
            Some(Standing::InCertificate) => {}
            Some(Standing::Redundant) => {
                if let Some(vs) = self.views.get_mut(&v) {
                    vs.unchecked.insert((vote.body.kind, vote.signer), vote);
                }
                return;
            }
            Some(Standing::HeldUnchecked) => {
                // Sent again: check it now, and help the sender if it is behind.
                if let Some(vs) = self.views.get_mut(&v) {
                    vs.unchecked.remove(&(vote.body.kind, vote.signer));
                }
                if verify_vote(&vote, &self.set, &self.chain_id).is_err() {
                    return;
                }
            }
            Some(Standing::New) | None => {
                if verify_vote(&vote, &self.set, &self.chain_id).is_err() {
                    return;
                }
            }
        }
        self.help_lagging_peer(from, &vote, out);
        self.add_vote(vote, out);
    }

    /// Checks the signature of a vote held unchecked from `signer` of `kind`
    /// in view `v`, if there is one, and keeps it as counted (without
    /// tallying: its view has that kind's certificate already) if it is valid.
    fn check_held(&mut self, v: View, kind: VoteKind, signer: ValidatorIndex) {
        let Some(vs) = self.views.get_mut(&v) else {
            return;
        };
        let Some(held) = vs.unchecked.remove(&(kind, signer)) else {
            return;
        };
        if verify_vote(&held, &self.set, &self.chain_id).is_ok() {
            vs.votes_mut(kind).entry(signer).or_insert(held);
        }
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
        // A vote held unchecked may be the first half of evidence against
        // this one: it counts as first only if its signature holds.
        self.check_held(v, vote.body.kind, vote.signer);
        if let Some(cross) = cross_kind(vote.body.kind) {
            self.check_held(v, cross, vote.signer);
        }
        let (prior, cross) = {
            let vs = self.views.entry(v).or_default();
            // Same-kind conflict (two blocks in one view) or finalize-vs-nullify.
            let prior = vs.votes_mut(vote.body.kind).get(&vote.signer).copied();
            let cross =
                cross_kind(vote.body.kind).and_then(|k| vs.votes(k).get(&vote.signer).copied());
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
            self.on_new_certificate(cert, out);
        }
    }
}

/// Where a vote from the network stands against what its view already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Byte-identical to a vote we counted.
    Counted,
    /// Byte-identical to a vote we hold unchecked.
    HeldUnchecked,
    /// One of the signatures of the view's certificate of its kind, which was
    /// checked with the certificate.
    InCertificate,
    /// Matches the certificate of its kind, from a signer we hold no vote of
    /// this kind (or a conflicting kind) from: it cannot change anything.
    Redundant,
    /// Anything else: check it and count it.
    New,
}

fn standing(vs: &ViewState, vote: &Vote) -> Standing {
    let kind = vote.body.kind;
    let signer = vote.signer;
    if vs.votes(kind).get(&signer) == Some(vote) {
        return Standing::Counted;
    }
    if vs.unchecked.get(&(kind, signer)) == Some(vote) {
        return Standing::HeldUnchecked;
    }
    let Some(cert) = vs.cert(kind).filter(|c| c.body == vote.body) else {
        return Standing::New;
    };
    if cert
        .signatures
        .iter()
        .any(|(i, sig)| *i == signer && *sig == vote.signature)
    {
        return Standing::InCertificate;
    }
    let holds_any =
        |k: VoteKind| vs.votes(k).contains_key(&signer) || vs.unchecked.contains_key(&(k, signer));
    if holds_any(kind) || cross_kind(kind).is_some_and(holds_any) {
        return Standing::New;
    }
    Standing::Redundant
}

/// The other kind a vote can conflict with in the same view: finalize and
/// nullify exclude each other.
fn cross_kind(kind: VoteKind) -> Option<VoteKind> {
    match kind {
        VoteKind::Finalize => Some(VoteKind::Nullify),
        VoteKind::Nullify => Some(VoteKind::Finalize),
        VoteKind::Notarize => None,
    }
}
