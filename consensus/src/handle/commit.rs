//! Committing: a finalization of block b commits b and every ancestor above our
//! tip, in height order, once we hold all of those blocks.

use crate::io::{CommittedBlock, Effect, WalEntry};
use crate::state::{Core, Tip};

impl Core {
    pub(crate) fn try_commit(&mut self, out: &mut Vec<Effect>) {
        let Some(fin) = self.pending_finalization.clone() else {
            return;
        };
        if fin.body.view <= self.committed.view {
            self.pending_finalization = None;
            return;
        }
        // Walk back from the finalized block to our tip.
        let mut chain = Vec::new();
        let mut cur = fin.body.block;
        while cur != self.committed.id {
            let Some(b) = self.blocks.get(&cur) else {
                self.want(cur, out);
                return;
            };
            if b.header.height <= self.committed.height {
                // The finalized block does not extend our tip: a conflicting
                // finalization exists, which needs more than f byzantine
                // validators. Refuse to commit it; the checker reports it.
                self.pending_finalization = None;
                return;
            }
            chain.push(b.clone());
            cur = b.header.parent;
        }
        for block in chain.into_iter().rev() {
            self.committed = Tip {
                view: block.header.view,
                height: block.header.height,
                id: block.id(),
                timestamp_ms: block.header.timestamp_ms,
            };
            out.push(Effect::Commit(CommittedBlock {
                block,
                finalization: fin.clone(),
            }));
        }
        self.pending_finalization = None;
        let t = self.committed;
        out.push(Effect::Persist {
            entry: WalEntry::Committed {
                view: t.view,
                height: t.height,
                id: t.id,
                timestamp_ms: t.timestamp_ms,
            },
            durable: false,
        });
        out.push(Effect::Prune { below_view: t.view });
        self.gc();
        self.view = self.view.max(t.view + 1);
    }
}
