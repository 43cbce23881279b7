//! Signatures from the signing guard: persist the vote durably, then send it.

use crate::io::{Effect, WalEntry};
use crate::message::{Message, Vote};
use crate::state::{Core, Own};
use bitcraps_crypto::{
    vote::{VoteBody, VoteKind},
    Signature,
};

impl Core {
    pub(super) fn on_signature(
        &mut self,
        body: VoteBody,
        signature: Signature,
        out: &mut Vec<Effect>,
    ) {
        let Some(me) = self.me else { return };
        let Some(vs) = self.views.get_mut(&body.view) else {
            return; // the view was garbage-collected; the vote no longer matters
        };
        if *vs.own_mut(body.kind) != Own::Requested {
            return; // not ours to complete (duplicate or unrequested)
        }
        let vote = Vote {
            body,
            signer: me,
            signature,
        };
        *vs.own_mut(body.kind) = Own::Sent(vote);
        let proposed = body.kind == VoteKind::Notarize && self.complete_proposal(vote, out);
        if !proposed {
            out.push(Effect::Persist {
                entry: WalEntry::OwnVote(vote),
                durable: true,
            });
            out.push(Effect::Broadcast(Message::Vote(vote)));
        }
        self.add_vote(vote, out);
    }
}
