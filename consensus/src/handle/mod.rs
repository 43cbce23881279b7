//! Input handlers, one file per input (malachite style). `handle` is the only
//! entry point; each handler appends effects to `out` in the order the runtime
//! must execute them.

mod certificate;
mod commit;
mod proposal;
mod signature;
mod sync;
mod view;
mod vote;

use crate::io::{Effect, Input};
use crate::message::Message;
use crate::state::Core;

impl Core {
    /// Advances the state machine by one input at local time `now_ms` and returns
    /// the effects to execute, in order. Never panics on any input.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Vec<Effect> {
        // Local time only moves forward, even if the runtime's clock steps back.
        self.now_ms = self.now_ms.max(now_ms);
        let mut out = Vec::new();
        match input {
            Input::Start => self.on_start(&mut out),
            Input::Message { from, message } => {
                if (from as usize) < self.set.len() {
                    self.on_message(from, message, &mut out)
                }
            }
            Input::Timeout { view, kind } => self.on_timeout(view, kind, &mut out),
            Input::PayloadReady { view, payload } => self.on_payload(view, payload, &mut out),
            Input::SignatureReady { vote, signature } => {
                self.on_signature(vote, signature, &mut out)
            }
            Input::SignatureRefused { .. } => {
                // The vote stays marked as requested, so we never ask again for
                // something the guard refused; the view's timer keeps us live.
            }
        }
        out
    }

    fn on_message(&mut self, from: u16, message: Message, out: &mut Vec<Effect>) {
        if !self.started {
            return;
        }
        match message {
            Message::Proposal(p) => self.on_proposal(p, out),
            Message::Vote(v) => self.on_vote(from, v, out),
            Message::Certificate(c) => self.on_certificate(c, out),
            Message::BlockRequest { id, max_ancestors } => {
                self.on_block_request(from, id, max_ancestors, out)
            }
            Message::Blocks(blocks) => self.on_blocks(blocks, out),
        }
    }
}
