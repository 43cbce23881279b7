//! The pure bookkeeping of the localnet load: the open-loop send schedule and
//! each player's nonce and in-flight window. No I/O here, so the rules are
//! unit-tested directly; [`super::players`] drives them over HTTP.
//!
//! Why open loop: a closed loop ("send when the last one finished") slows down
//! exactly when the cluster slows down and hides latency (coordinated
//! omission). The schedule fixes how many transactions should have been
//! offered by each instant; what the players cannot send (window full) is
//! counted as throttled rather than silently postponed.

/// Transactions one player may have accepted but not yet seen committed.
/// Below the node's per-account mempool limit (256) so a healthy player is
/// never refused for having too many pending.
pub const DEFAULT_WINDOW: u32 = 32;

/// How often the load loop wakes up to send what the schedule says is due.
pub const TICK_MS: u64 = 10;

/// The fixed offered-load schedule: by `elapsed_ms` into the run,
/// `floor(elapsed_ms * rate / 1000)` transactions are due in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    /// Total transactions per second; 0 = unpaced (fill every window).
    pub rate_per_s: u64,
}

impl Schedule {
    pub fn new(rate_per_s: u64) -> Self {
        Schedule { rate_per_s }
    }

    /// True when sending is limited only by the players' windows.
    pub fn unpaced(&self) -> bool {
        self.rate_per_s == 0
    }

    /// Transactions due in total by `elapsed_ms` (saturating; 0 when unpaced).
    pub fn due_by(&self, elapsed_ms: u64) -> u64 {
        let due = u128::from(elapsed_ms) * u128::from(self.rate_per_s) / 1000;
        u64::try_from(due).unwrap_or(u64::MAX)
    }

    /// Transactions to issue now, given `issued` so far (sent or throttled).
    pub fn due_now(&self, elapsed_ms: u64, issued: u64) -> u64 {
        self.due_by(elapsed_ms).saturating_sub(issued)
    }
}

/// What the load loop may do with a player right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Free to send the next transaction.
    Ready,
    /// A submission (or nonce refresh) for this player is on the wire.
    Busy,
    /// `window` transactions are accepted but not yet committed.
    WindowFull,
}

/// One player's sending state.
///
/// Submissions of one player are serialized (one HTTP request at a time, to
/// one node), so nonces reach the node's mempool in order; up to `window`
/// accepted transactions may wait for commit at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerState {
    /// Nonce the next transaction will use.
    pub next_nonce: u64,
    /// Accepted by a node, not yet seen in a committed block.
    pub in_flight: u32,
    /// Most accepted-uncommitted transactions allowed.
    pub window: u32,
    /// A request for this player is outstanding.
    pub busy: bool,
    /// The local nonce may be wrong: ask the node for the account's
    /// `pending_nonce` before sending again.
    pub needs_resync: bool,
}

impl PlayerState {
    pub fn new(first_nonce: u64, window: u32) -> Self {
        PlayerState {
            next_nonce: first_nonce,
            in_flight: 0,
            window: window.max(1),
            busy: false,
            needs_resync: false,
        }
    }

    pub fn availability(&self) -> Availability {
        if self.busy {
            Availability::Busy
        } else if self.in_flight >= self.window {
            Availability::WindowFull
        } else {
            Availability::Ready
        }
    }

    /// Claims the player for one submission. `false` if not [`Availability::Ready`].
    pub fn claim(&mut self) -> bool {
        if self.availability() != Availability::Ready {
            return false;
        }
        self.busy = true;
        true
    }

    /// Takes the next nonce for a transaction about to be submitted and
    /// counts it in flight (so a commit seen before the HTTP answer still
    /// balances).
    pub fn take_nonce(&mut self) -> u64 {
        let n = self.next_nonce;
        self.next_nonce = self.next_nonce.saturating_add(1);
        self.in_flight = self.in_flight.saturating_add(1);
        n
    }

    /// The node accepted the transaction: it stays in flight until committed.
    pub fn accepted(&mut self) {
        self.busy = false;
    }

    /// The node refused the transaction as invalid (422: for example a stale
    /// or future nonce after a node restart dropped its mempool). The nonce
    /// we hold is suspect: refetch it before the next send.
    pub fn refused(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.needs_resync = true;
        self.busy = false;
    }

    /// The submission of `nonce` failed without the node taking it (rate
    /// limited, mempool full, connection error). Because a player's
    /// submissions are serialized, nothing after `nonce` was sent: reuse it.
    pub fn failed(&mut self, nonce: u64) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if nonce < self.next_nonce {
            self.next_nonce = nonce;
        }
        self.busy = false;
    }

    /// The submission ended without an answer we can trust, but the
    /// transaction was already seen committed (its slot is freed): only
    /// release the player, and resync to be safe.
    pub fn settled_elsewhere(&mut self) {
        self.needs_resync = true;
        self.busy = false;
    }

    /// One of our transactions was seen in a committed block.
    pub fn committed(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// An accepted transaction was never seen committed within the deadline
    /// (dropped from a mempool): free its window slot and resync the nonce.
    pub fn expired(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
        self.needs_resync = true;
    }

    /// The node told us the account's next nonce counting its pending
    /// transactions.
    pub fn resynced(&mut self, pending_nonce: u64) {
        self.next_nonce = pending_nonce;
        self.needs_resync = false;
    }

    /// A nonce refresh failed: give up this turn, try again next time.
    pub fn resync_failed(&mut self) {
        self.busy = false;
    }
}

/// Picks players round-robin, skipping those that cannot send now.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    cursor: usize,
}

impl RoundRobin {
    /// Claims the next ready player after the cursor, scanning each player at
    /// most once. `None` when nobody can send.
    pub fn claim_next(&mut self, players: &mut [PlayerState]) -> Option<usize> {
        let n = players.len();
        for step in 0..n {
            let i = (self.cursor + step) % n;
            if let Some(p) = players.get_mut(i) {
                if p.claim() {
                    self.cursor = (i + 1) % n;
                    return Some(i);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_math() {
        let s = Schedule::new(200);
        assert_eq!(s.due_by(0), 0);
        assert_eq!(s.due_by(4), 0);
        assert_eq!(s.due_by(5), 1);
        assert_eq!(s.due_by(1_000), 200);
        assert_eq!(s.due_by(60_000), 12_000);
        assert_eq!(s.due_now(1_000, 150), 50);
        assert_eq!(s.due_now(1_000, 250), 0);
        // Rates below one per tick accumulate instead of rounding to zero.
        let slow = Schedule::new(3);
        let mut issued = 0;
        let mut t = 0;
        while t <= 10_000 {
            issued += slow.due_now(t, issued);
            t += TICK_MS;
        }
        assert_eq!(issued, 30);
        assert!(Schedule::new(0).unpaced());
        assert_eq!(Schedule::new(0).due_by(10_000), 0);
        assert_eq!(Schedule::new(u64::MAX).due_by(u64::MAX), u64::MAX);
    }

    #[test]
    fn schedule_offers_the_rate_over_ticks() {
        // Summing per-tick dues over a run gives exactly rate * seconds.
        for rate in [1, 7, 200, 999, 10_000] {
            let s = Schedule::new(rate);
            let mut issued = 0;
            for tick in 1..=(60_000 / TICK_MS) {
                issued += s.due_now(tick * TICK_MS, issued);
            }
            assert_eq!(issued, rate * 60, "rate {rate}");
        }
    }

    #[test]
    fn nonce_tracking_happy_path() {
        let mut p = PlayerState::new(0, 2);
        assert!(p.claim());
        assert_eq!(p.availability(), Availability::Busy);
        assert!(!p.claim());
        assert_eq!(p.take_nonce(), 0);
        p.accepted();
        assert!(p.claim());
        assert_eq!(p.take_nonce(), 1);
        p.accepted();
        assert_eq!(p.in_flight, 2);
        assert_eq!(p.availability(), Availability::WindowFull);
        assert!(!p.claim());
        p.committed();
        assert!(p.claim());
        assert_eq!(p.take_nonce(), 2);
    }

    #[test]
    fn failure_reuses_the_nonce_and_refusal_resyncs() {
        let mut p = PlayerState::new(5, 32);
        assert!(p.claim());
        let n = p.take_nonce();
        p.failed(n);
        assert_eq!(p.next_nonce, 5);
        assert_eq!(p.in_flight, 0);
        assert!(!p.busy);

        assert!(p.claim());
        assert_eq!(p.take_nonce(), 5);
        p.refused();
        assert!(p.needs_resync);
        assert_eq!(p.in_flight, 0);
        assert!(p.claim());
        p.resynced(9);
        assert!(!p.needs_resync);
        assert_eq!(p.take_nonce(), 9);
        p.accepted();
        p.expired();
        assert!(p.needs_resync);
        assert_eq!(p.in_flight, 0);
        // A commit racing an expiry never underflows.
        p.committed();
        assert_eq!(p.in_flight, 0);
        assert!(p.claim());
        p.take_nonce();
        p.committed(); // seen committed before the HTTP answer came back
        p.settled_elsewhere();
        assert_eq!(p.in_flight, 0);
        assert!(!p.busy && p.needs_resync);
    }

    #[test]
    fn round_robin_skips_unavailable_players() {
        let mut players = vec![PlayerState::new(0, 1); 3];
        let mut rr = RoundRobin::default();
        assert_eq!(rr.claim_next(&mut players), Some(0));
        assert_eq!(rr.claim_next(&mut players), Some(1));
        players[1].take_nonce();
        players[1].accepted(); // window of 1 now full
        assert_eq!(rr.claim_next(&mut players), Some(2));
        assert_eq!(rr.claim_next(&mut players), None); // 0 and 2 busy, 1 full
        players[0].accepted();
        assert_eq!(rr.claim_next(&mut players), Some(0));
        assert_eq!(RoundRobin::default().claim_next(&mut []), None);
    }
}
