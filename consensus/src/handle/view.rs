//! Entering views, leading them, and their timers.
//!
//! Simplex, iteration h: on entering, start the timer; the leader proposes a block
//! extending a notarized parent whose following views are all nullified. When the
//! timer fires before the iteration ends, vote to nullify it. Deviation: the timer
//! backs off exponentially with the number of consecutive views without a
//! notarization (the paper uses a fixed 3Δ; backoff restores liveness when Δ is
//! unknown), and a retry timer rebroadcasts our votes and the certificate that
//! got us into the view while we are stuck (recovers from message loss).

use crate::io::{Effect, TimeoutKind, ViewChange};
use crate::params::MAX_VIEW_GAP;
use crate::state::{Core, Own};
use bitcraps_crypto::{
    vote::{View, VoteBody, VoteKind},
    Hash32,
};

impl Core {
    pub(super) fn on_start(&mut self, out: &mut Vec<Effect>) {
        if self.started {
            return;
        }
        self.started = true;
        let v = self.view;
        self.view = 0; // let enter_view accept the resumed view
        self.enter_view(v.max(1), ViewChange::Start, out);
        // After a restart, peers may have missed what we sent before the crash.
        self.rebroadcast(out);
        self.try_commit(out);
    }

    /// Moves to view `v` if it is ahead of ours.
    pub(super) fn enter_view(&mut self, v: View, via: ViewChange, out: &mut Vec<Effect>) {
        if v <= self.view {
            return;
        }
        self.view = v;
        self.payload_request = None;
        self.pending_block = None;
        out.push(Effect::ViewEntered { view: v, via });
        let skipped = v.saturating_sub(1).saturating_sub(self.last_notarized_view);
        out.push(Effect::ScheduleTimeout {
            view: v,
            kind: TimeoutKind::View,
            at_ms: self.now_ms + self.params.timeout_for(skipped),
        });
        self.gc();
        if let Some(p) = self.future_proposals.remove(&v) {
            self.on_proposal(p, out);
        }
        self.refresh_wanted(out);
        self.try_propose(out);
        self.try_vote(out);
    }

    /// The parent a leader of `view` must extend: the highest view below it with a
    /// notarized block such that every view in between is nullified. Returns
    /// (block id, view) or None when a certificate we need is missing.
    pub(crate) fn select_parent(&self, view: View) -> Option<(Hash32, View)> {
        let mut w = view.checked_sub(1)?;
        loop {
            if w <= self.committed.view {
                return (w == self.committed.view).then_some((self.committed.id, w));
            }
            if view - w > MAX_VIEW_GAP + 1 {
                return None;
            }
            let vs = self.views.get(&w)?;
            if let Some((id, _)) = vs.notarized_block() {
                return Some((id, w));
            }
            vs.nullification.as_ref()?;
            w -= 1;
        }
    }

    /// Leader: ask the application for a payload once we know our parent.
    pub(super) fn try_propose(&mut self, out: &mut Vec<Effect>) {
        let v = self.view;
        if self.me != Some(self.set.leader(v)) || self.payload_request.is_some() {
            return;
        }
        let vs = self.views.get(&v);
        if vs.is_some_and(|vs| !vs.own_notarize.is_none() || !vs.own_nullify.is_none()) {
            return;
        }
        let Some((parent, parent_view)) = self.select_parent(v) else {
            return;
        };
        let Some((height, ts)) = self.block_info(&parent) else {
            self.want(parent, out);
            return;
        };
        self.payload_request = Some((v, parent, parent_view, height, ts));
        out.push(Effect::RequestPayload {
            view: v,
            parent,
            height: height + 1,
        });
    }

    /// (height, timestamp) of a block we know: pending or the committed tip.
    pub(crate) fn block_info(&self, id: &Hash32) -> Option<(u64, u64)> {
        if *id == self.committed.id {
            return Some((self.committed.height, self.committed.timestamp_ms));
        }
        self.blocks
            .get(id)
            .map(|b| (b.header.height, b.header.timestamp_ms))
    }

    pub(super) fn on_timeout(&mut self, view: View, kind: TimeoutKind, out: &mut Vec<Effect>) {
        if !self.started || view != self.view {
            return; // stale timer
        }
        match kind {
            TimeoutKind::View => {
                self.request_vote(VoteBody::nullify(view), out);
            }
            TimeoutKind::Retry => {
                self.rebroadcast(out);
                // Re-derive what we are missing, in case a fetch gave up.
                self.try_commit(out);
                self.try_propose(out);
                self.try_vote(out);
            }
        }
        out.push(Effect::ScheduleTimeout {
            view,
            kind: TimeoutKind::Retry,
            at_ms: self.now_ms + self.params.retry_interval_ms,
        });
    }

    /// Resends our votes in the current view, the certificate that brought us
    /// here, and requests for blocks we still miss.
    pub(super) fn rebroadcast(&mut self, out: &mut Vec<Effect>) {
        let v = self.view;
        if let Some(prev) = self.views.get(&(v - 1)) {
            let entry = prev
                .finalization
                .as_ref()
                .or(prev.notarization.as_ref())
                .or(prev.nullification.as_ref());
            if let Some(c) = entry {
                out.push(Effect::Broadcast(crate::Message::Certificate(c.clone())));
            }
        }
        if let Some(vs) = self.views.get(&v) {
            if let (Some(p), Some(_)) = (&vs.proposal, vs.own_notarize.sent()) {
                if p.vote.signer == self.me.unwrap_or(u16::MAX) {
                    out.push(Effect::Broadcast(crate::Message::Proposal(p.clone())));
                }
            }
            for own in [&vs.own_notarize, &vs.own_nullify, &vs.own_finalize] {
                if let Some(vote) = own.sent() {
                    out.push(Effect::Broadcast(crate::Message::Vote(*vote)));
                }
            }
        }
        self.refresh_wanted(out);
    }

    /// Asks the signer for one of our votes, at most once per (view, kind), and
    /// never anything our own rules forbid (the guard checks again, durably).
    pub(crate) fn request_vote(&mut self, body: VoteBody, out: &mut Vec<Effect>) {
        if self.me.is_none() {
            return;
        }
        let v = body.view;
        match body.kind {
            // Simplex: finalize only views we did not vote to nullify.
            VoteKind::Finalize => {
                if v <= self.highest_finalize_requested || v <= self.highest_nullify_requested {
                    return;
                }
            }
            VoteKind::Nullify => {
                if v <= self.highest_finalize_requested || v < self.highest_nullify_requested {
                    return;
                }
            }
            VoteKind::Notarize => {}
        }
        let vs = self.views.entry(v).or_default();
        let own = vs.own_mut(body.kind);
        if *own != Own::None {
            return;
        }
        *own = Own::Requested;
        match body.kind {
            VoteKind::Finalize => self.highest_finalize_requested = v,
            VoteKind::Nullify => self.highest_nullify_requested = v,
            VoteKind::Notarize => {}
        }
        out.push(Effect::RequestSignature(body));
    }
}
