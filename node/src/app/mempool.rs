//! The mempool: verified transactions waiting to be proposed.
//!
//! Pure and single-threaded (the engine task owns it), bounded in every
//! structure by [`MempoolConfig::capacity`], and deterministic: payloads depend
//! only on the sequence of calls. Hash maps serve lookups, and the one kind of
//! walk whose order cannot matter (refreshing a set of distinct accounts:
//! each refresh touches only its own account's entries); every other walk
//! goes through a `BTreeMap`/`BTreeSet`.
//!
//! # Order
//!
//! No fees, so first come, first served across accounts, and nonce order within
//! an account. [`Mempool::take_payload`] behaves exactly like this walk: go
//! through the transactions by arrival; take one if its nonce is its account's
//! *next* nonce; when a take makes an earlier-arrived transaction of the same
//! account takeable, take that one right away. An account's next nonce is the
//! smallest nonce at or above its committed nonce that is not already in
//! flight. It is implemented with a queue of per-account *heads* (the
//! transaction at the next nonce, keyed by arrival), so taking `k`
//! transactions costs O(k log n) whatever the pool holds behind nonce gaps.
//!
//! # In flight
//!
//! Taken transactions stay in the pool, marked in flight with the proposal's
//! view, and are not proposed again while in flight. [`Mempool::on_commit`]
//! (called per committed block, in height order) removes the block's
//! transactions and releases every in-flight transaction proposed at a view at
//! or below the committed view that the block did not include: a block from
//! such a view can no longer be committed, so its transactions are available
//! again. Releasing an account's transaction also releases that account's
//! in-flight transactions with higher nonces (proposed later, on top of it):
//! they cannot execute before it does, so they are re-proposed after it, in
//! nonce order. Such a transaction may then sit in two live proposals;
//! execution rejects the second copy (`bad_nonce`), which is harmless.
//!
//! # Committed nonces
//!
//! The pool learns accounts' committed nonces from the caller (`insert`'s
//! argument, and the `nonce_of` callbacks) and drops transactions whose nonce
//! is below it. `on_commit` refreshes the senders of the committed transactions
//! it holds, `take_payload` refreshes each account before proposing from it,
//! and each `on_commit` also re-checks up to [`GAP_PROBES_PER_COMMIT`] accounts
//! that are stuck behind a nonce gap, round robin (their gap may have been
//! filled by transactions this node never saw).
//!
//! `insert` does not detect a transaction that was already committed: the
//! caller's nonce check (`committed_nonce`) rejects it as stale.

use super::payload::PayloadBuilder;
use super::tx::SignedTx;
use bitcraps_crypto::fastmap::{FastMap, FastSet};
use bitcraps_crypto::{Hash32, PublicKey};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// Accounts stuck behind a nonce gap re-checked per `on_commit`.
pub const GAP_PROBES_PER_COMMIT: usize = 64;

/// Mempool limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MempoolConfig {
    /// Most transactions held (in flight included).
    pub capacity: usize,
    /// Most transactions per account, and the nonce window: a transaction's
    /// nonce must be below `committed nonce + per_account`.
    pub per_account: usize,
    /// Most transactions in one payload.
    pub max_txs_per_payload: usize,
}

impl Default for MempoolConfig {
    fn default() -> Self {
        MempoolConfig {
            capacity: 50_000,
            per_account: 256,
            max_txs_per_payload: 16_384,
        }
    }
}

/// Why a transaction was not admitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("transaction already in the mempool")]
    Duplicate,
    #[error("stale nonce: the account expects {expected}, the transaction has {got}")]
    StaleNonce { expected: u64, got: u64 },
    #[error("nonce {got} too far ahead: the account expects {next}, the window is {window}")]
    NonceTooFarAhead { next: u64, got: u64, window: u64 },
    #[error("another transaction with this nonce is already pending")]
    DuplicateNonce,
    #[error("the account already has {limit} pending transactions")]
    AccountLimit { limit: usize },
    #[error("mempool full ({capacity} transactions)")]
    Full { capacity: usize },
}

impl AdmitError {
    /// Stable machine-readable code (API, metrics).
    pub fn code(&self) -> &'static str {
        match self {
            AdmitError::Duplicate => "duplicate",
            AdmitError::StaleNonce { .. } => "stale_nonce",
            AdmitError::NonceTooFarAhead { .. } => "nonce_too_far_ahead",
            AdmitError::DuplicateNonce => "duplicate_nonce",
            AdmitError::AccountLimit { .. } => "account_limit",
            AdmitError::Full { .. } => "mempool_full",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    from: PublicKey,
    nonce: u64,
    encoded: Vec<u8>,
    /// Arrival sequence number: the FIFO position.
    seq: u64,
    /// View of the proposal carrying it, while in flight.
    view: Option<u64>,
}

#[derive(Debug, Clone, Default)]
struct Queue {
    /// Highest committed nonce learned; every tx here has a nonce >= base.
    base: u64,
    /// Pending transactions by nonce (in flight included).
    txs: BTreeMap<u64, Hash32>,
    /// Next nonce to propose: the smallest nonce >= base not in flight.
    next: u64,
    /// Arrival seq of the head (the tx at `next`), if registered in `heads`.
    head: Option<u64>,
}

/// The pending-transaction pool. See the module doc.
#[derive(Debug, Clone)]
pub struct Mempool {
    config: MempoolConfig,
    entries: FastMap<Hash32, Entry>,
    accounts: FastMap<PublicKey, Queue>,
    /// Takeable transactions, one per account, by arrival.
    heads: BTreeMap<u64, Hash32>,
    /// In-flight transactions by (view, arrival).
    flights: BTreeMap<(u64, u64), Hash32>,
    /// Accounts with available transactions but none at their next nonce.
    gapped: BTreeSet<PublicKey>,
    /// Round-robin position of the gap probe.
    probe_after: Option<PublicKey>,
    next_seq: u64,
}

impl Mempool {
    pub fn new(config: MempoolConfig) -> Self {
        Mempool {
            config,
            entries: FastMap::default(),
            accounts: FastMap::default(),
            heads: BTreeMap::new(),
            flights: BTreeMap::new(),
            gapped: BTreeSet::new(),
            probe_after: None,
            next_seq: 0,
        }
    }

    pub fn config(&self) -> &MempoolConfig {
        &self.config
    }

    /// Admits a transaction whose signature the caller has verified.
    /// `committed_nonce` is the sender's committed nonce; the nonce must lie in
    /// `[committed_nonce, committed_nonce + per_account)`. Stale transactions
    /// of the account are not pruned here (that happens on commit and take).
    pub fn insert(
        &mut self,
        tx: SignedTx,
        encoded: Vec<u8>,
        hash: Hash32,
        committed_nonce: u64,
    ) -> Result<(), AdmitError> {
        if self.entries.contains_key(&hash) {
            return Err(AdmitError::Duplicate);
        }
        let from = tx.tx.from;
        let nonce = tx.tx.nonce;
        let queue = self.accounts.get(&from);
        // We may know a newer committed nonce than the caller did.
        let committed = queue.map_or(committed_nonce, |q| q.base.max(committed_nonce));
        if nonce < committed {
            return Err(AdmitError::StaleNonce {
                expected: committed,
                got: nonce,
            });
        }
        let window = u64::try_from(self.config.per_account).unwrap_or(u64::MAX);
        if nonce - committed >= window {
            return Err(AdmitError::NonceTooFarAhead {
                next: committed,
                got: nonce,
                window,
            });
        }
        if let Some(q) = queue {
            if q.txs.contains_key(&nonce) {
                return Err(AdmitError::DuplicateNonce);
            }
            if q.txs.len() >= self.config.per_account {
                return Err(AdmitError::AccountLimit {
                    limit: self.config.per_account,
                });
            }
        }
        if self.entries.len() >= self.config.capacity {
            return Err(AdmitError::Full {
                capacity: self.config.capacity,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.entries.insert(
            hash,
            Entry {
                from,
                nonce,
                encoded,
                seq,
                view: None,
            },
        );
        let q = self.accounts.entry(from).or_insert_with(|| Queue {
            base: committed_nonce,
            next: committed_nonce,
            ..Queue::default()
        });
        q.txs.insert(nonce, hash);
        let next = q.next;
        self.refresh(&from, None, Some(next));
        Ok(())
    }

    pub fn contains(&self, hash: &Hash32) -> bool {
        self.entries.contains_key(hash)
    }

    /// The encoded transaction, if pending.
    pub fn get(&self, hash: &Hash32) -> Option<&[u8]> {
        self.entries.get(hash).map(|e| e.encoded.as_slice())
    }

    /// The nonce after the contiguous run of pending transactions of `account`
    /// starting at `committed_nonce` (what a client should sign next).
    pub fn pending_nonce(&self, account: &PublicKey, committed_nonce: u64) -> u64 {
        let mut n = committed_nonce;
        if let Some(q) = self.accounts.get(account) {
            for &nonce in q.txs.range(committed_nonce..).map(|(n, _)| n) {
                if nonce != n {
                    break;
                }
                n = n.saturating_add(1);
            }
        }
        n
    }

    /// Builds a payload for a proposal at `view` (at most `max_bytes` and
    /// `max_txs_per_payload`), marking its transactions in flight. Returns the
    /// payload and the ids of its transactions, in order. `nonce_of` gives an
    /// account's committed nonce.
    pub fn take_payload(
        &mut self,
        view: u64,
        max_bytes: usize,
        nonce_of: impl Fn(&PublicKey) -> u64,
    ) -> (Vec<u8>, Vec<Hash32>) {
        let mut builder = PayloadBuilder::new(max_bytes, self.config.max_txs_per_payload);
        let mut taken = Vec::new();
        // Accounts already refreshed during this call (one nonce_of each).
        let mut fresh: FastSet<PublicKey> = FastSet::default();
        while let Some((seq, hash)) = self.heads.pop_first() {
            let Some(entry) = self.entries.get(&hash) else {
                continue; // unreachable: heads only hold pending ids
            };
            let from = entry.from;
            if fresh.insert(from) {
                let committed = nonce_of(&from);
                if self.accounts.get(&from).is_some_and(|q| committed > q.base) {
                    // The head may be stale now; requeue whatever is current.
                    self.heads.insert(seq, hash);
                    self.refresh(&from, Some(committed), None);
                    continue;
                }
            }
            if builder.len() >= self.config.max_txs_per_payload || !builder.try_push(&entry.encoded)
            {
                self.heads.insert(seq, hash);
                break;
            }
            let nonce = entry.nonce;
            if let Some(e) = self.entries.get_mut(&hash) {
                e.view = Some(view);
            }
            self.flights.insert((view, seq), hash);
            if let Some(q) = self.accounts.get_mut(&from) {
                q.head = None; // popped above
            }
            // Everything from base to `nonce` is now in flight.
            self.refresh(&from, None, Some(nonce.saturating_add(1)));
            taken.push(hash);
        }
        (builder.finish(), taken)
    }

    /// Marks the pending transactions among `hashes` (another leader's
    /// proposal at `view`, which we voted for) in flight, as if we had
    /// proposed them: we do not propose them again while that proposal may
    /// commit, and their accounts' later nonces can be proposed on top of
    /// them. Released like our own by [`Mempool::on_commit`]. Transactions
    /// already in flight, or not here, are left alone.
    pub fn mark_in_flight(&mut self, view: u64, hashes: &[Hash32]) {
        // A set without order: refreshes of distinct accounts commute.
        let mut touched: FastSet<PublicKey> = FastSet::default();
        for h in hashes {
            if let Some(e) = self.entries.get_mut(h) {
                if e.view.is_none() {
                    e.view = Some(view);
                    self.flights.insert((view, e.seq), *h);
                    touched.insert(e.from);
                }
            }
        }
        for from in &touched {
            // Walk the in-flight run from the base again (without releasing
            // anything: `Some` start).
            let base = self.accounts.get(from).map(|q| q.base);
            self.refresh(from, None, base);
        }
    }

    /// Processes one committed block (call in height order): removes its
    /// transactions `committed`, releases in-flight transactions proposed at
    /// views `<= view` that it did not include, and drops transactions whose
    /// nonce is below the committed nonce (`nonce_of`) of the accounts checked.
    pub fn on_commit(
        &mut self,
        view: u64,
        committed: &[Hash32],
        nonce_of: impl Fn(&PublicKey) -> u64,
    ) {
        // A set without order: refreshes of distinct accounts commute.
        let mut touched: FastSet<PublicKey> = FastSet::default();
        for h in committed {
            if let Some(e) = self.remove_entry(h) {
                touched.insert(e.from);
            }
        }
        // Everything still in flight from views <= view belongs to a block
        // that can no longer commit.
        while let Some(entry) = self.flights.first_entry() {
            if entry.key().0 > view {
                break;
            }
            let hash = entry.remove();
            if let Some(e) = self.entries.get_mut(&hash) {
                e.view = None;
                touched.insert(e.from);
            }
        }
        for from in &touched {
            self.refresh(from, Some(nonce_of(from)), None);
        }
        self.probe_gaps(&nonce_of);
    }

    /// Pending transactions (in flight included).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Transactions currently in flight.
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// Whether `hash` is pending and in flight.
    pub fn is_in_flight(&self, hash: &Hash32) -> bool {
        self.entries.get(hash).is_some_and(|e| e.view.is_some())
    }

    /// Removes an entry from `entries`, its account queue and the in-flight
    /// index (the caller refreshes the account).
    fn remove_entry(&mut self, hash: &Hash32) -> Option<Entry> {
        let e = self.entries.remove(hash)?;
        if let Some(view) = e.view {
            self.flights.remove(&(view, e.seq));
        }
        if let Some(q) = self.accounts.get_mut(&e.from) {
            q.txs.remove(&e.nonce);
            if q.head == Some(e.seq) {
                self.heads.remove(&e.seq);
                q.head = None;
            }
        }
        Some(e)
    }

    /// Re-establishes an account's invariants after any change: learns
    /// `committed` (dropping stale transactions), recomputes `next` and the
    /// head, and the gap flag; forgets the account when it has no transactions.
    ///
    /// `walk_from`: a nonce below which everything from `base` is known to be
    /// in flight, so the search for `next` can start there (O(1) on the take
    /// and insert paths); `None` walks the in-flight run from `base`.
    fn refresh(&mut self, from: &PublicKey, committed: Option<u64>, walk_from: Option<u64>) {
        let Some(q) = self.accounts.get_mut(from) else {
            return;
        };
        let mut stale = Vec::new();
        let mut start = walk_from;
        if let Some(c) = committed.filter(|c| *c > q.base) {
            q.base = c;
            start = None;
            stale.extend(q.txs.range(..c).map(|(_, h)| *h));
        }
        for h in &stale {
            self.remove_entry(h);
        }
        let Some(q) = self.accounts.get_mut(from) else {
            return;
        };
        // next = smallest nonce >= base not in flight.
        let mut next = start.map_or(q.base, |s| s.max(q.base));
        for (&n, h) in q.txs.range(next..) {
            let in_flight = self.entries.get(h).is_some_and(|e| e.view.is_some());
            if n != next || !in_flight {
                break;
            }
            next = n.saturating_add(1);
        }
        q.next = next;
        if start.is_none() {
            // In-flight transactions above `next` were proposed on top of the
            // one at `next`, which is now available again or gone: they cannot
            // execute before it does, so release them to be proposed again in
            // nonce order.
            let orphans: Vec<Hash32> = q.txs.range(next..).map(|(_, h)| *h).collect();
            for h in orphans {
                if let Some(e) = self.entries.get_mut(&h) {
                    if let Some(view) = e.view.take() {
                        self.flights.remove(&(view, e.seq));
                    }
                }
            }
        }
        let Some(q) = self.accounts.get_mut(from) else {
            return;
        };
        let new_head = q
            .txs
            .get(&next)
            .and_then(|h| self.entries.get(h).map(|e| (e.seq, *h)));
        if let Some(old) = q.head.take() {
            self.heads.remove(&old);
        }
        if let Some((seq, h)) = new_head {
            self.heads.insert(seq, h);
            q.head = Some(seq);
        }
        let has_later = q.txs.range(next..).next().is_some();
        if q.txs.is_empty() {
            self.accounts.remove(from);
            self.gapped.remove(from);
        } else if new_head.is_none() && has_later {
            self.gapped.insert(*from);
        } else {
            self.gapped.remove(from);
        }
    }

    /// Re-checks up to [`GAP_PROBES_PER_COMMIT`] gapped accounts, round robin.
    fn probe_gaps(&mut self, nonce_of: &impl Fn(&PublicKey) -> u64) {
        let start = match self.probe_after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut batch: Vec<PublicKey> = self
            .gapped
            .range((start, Bound::Unbounded))
            .take(GAP_PROBES_PER_COMMIT)
            .copied()
            .collect();
        if batch.len() < GAP_PROBES_PER_COMMIT {
            // Wrap around to the beginning.
            let more = GAP_PROBES_PER_COMMIT - batch.len();
            let wrapped: Vec<PublicKey> = self
                .gapped
                .iter()
                .take_while(|k| Some(**k) != batch.first().copied())
                .take(more)
                .copied()
                .collect();
            batch.extend(wrapped);
        }
        self.probe_after = batch.last().copied();
        for k in &batch {
            self.refresh(k, Some(nonce_of(k)), None);
        }
    }
}

#[cfg(test)]
#[path = "tests/mempool.rs"]
mod tests;
