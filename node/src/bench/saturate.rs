//! The `--saturate` search: the highest offered rate that still passes
//! (p99 under the bound, at least 95% committed), found with few short
//! steps on one running cluster.
//!
//! Doubling from [`START_RATE`] until a step fails (or the rate cap passes),
//! then [`BISECTIONS`] bisections between the best pass and the first
//! failure. If the very first step fails, the bisection runs between 0 and
//! it. The search is a plain state machine ([`Search`]): the caller asks
//! for the next rate, runs a step at it, and records whether it passed,
//! so it is tested with a fake "run at rate" function.

/// First rate tried (tx/s).
pub const START_RATE: u64 = 250;
/// Bisection steps after the first failure.
pub const BISECTIONS: u32 = 3;
/// Bisection stops early once the bracket is this narrow (tx/s).
pub const MIN_BRACKET: u64 = 10;

/// Where the search is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Doubling; the next rate to try.
    Doubling(u64),
    /// Bisecting between a pass (`lo`, 0 if none yet) and a failure (`hi`).
    Bisect {
        lo: u64,
        hi: u64,
        left: u32,
    },
    Done,
}

/// The search. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    phase: Phase,
    cap: u64,
    best: Option<u64>,
}

impl Search {
    /// Starts at `start` (at least 1) and never asks for more than `cap`.
    pub fn new(start: u64, cap: u64) -> Search {
        let cap = cap.max(1);
        Search {
            phase: Phase::Doubling(start.clamp(1, cap)),
            cap,
            best: None,
        }
    }

    /// The rate to run next; `None` when the search is over.
    pub fn next_rate(&self) -> Option<u64> {
        match self.phase {
            Phase::Doubling(r) => Some(r),
            Phase::Bisect { lo, hi, .. } => Some(lo + (hi - lo) / 2),
            Phase::Done => None,
        }
    }

    /// Records the outcome of a step at `rate` (the last [`Search::next_rate`]).
    pub fn record(&mut self, rate: u64, passed: bool) {
        if passed {
            self.best = Some(self.best.map_or(rate, |b| b.max(rate)));
        }
        self.phase = match self.phase {
            Phase::Doubling(_) if passed => {
                if rate >= self.cap {
                    Phase::Done
                } else {
                    Phase::Doubling(rate.saturating_mul(2).min(self.cap))
                }
            }
            Phase::Doubling(_) => Search::bisect(self.best.unwrap_or(0), rate, BISECTIONS),
            Phase::Bisect { lo, hi, left } => {
                let (lo, hi) = if passed { (rate, hi) } else { (lo, rate) };
                Search::bisect(lo, hi, left.saturating_sub(1))
            }
            Phase::Done => Phase::Done,
        };
    }

    fn bisect(lo: u64, hi: u64, left: u32) -> Phase {
        if left == 0 || hi.saturating_sub(lo) < MIN_BRACKET.max(2) {
            Phase::Done
        } else {
            Phase::Bisect { lo, hi, left }
        }
    }

    /// The highest rate that passed so far.
    pub fn best(&self) -> Option<u64> {
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the search against a fake cluster that passes up to `limit`.
    fn search(start: u64, cap: u64, limit: u64) -> (Vec<u64>, Option<u64>) {
        let mut s = Search::new(start, cap);
        let mut tried = Vec::new();
        while let Some(rate) = s.next_rate() {
            tried.push(rate);
            assert!(tried.len() < 100, "search does not end: {tried:?}");
            s.record(rate, rate <= limit);
        }
        (tried, s.best())
    }

    #[test]
    fn doubles_then_bisects() {
        let (tried, best) = search(250, 1_000_000, 3_000);
        assert_eq!(
            tried,
            vec![250, 500, 1_000, 2_000, 4_000, 3_000, 3_500, 3_250]
        );
        assert_eq!(best, Some(3_000));
        let (tried, best) = search(250, 1_000_000, 2_700);
        assert_eq!(
            tried,
            vec![250, 500, 1_000, 2_000, 4_000, 3_000, 2_500, 2_750]
        );
        assert_eq!(best, Some(2_500));
    }

    #[test]
    fn first_step_failing_bisects_down() {
        let (tried, best) = search(250, 1_000_000, 100);
        assert_eq!(tried, vec![250, 125, 62, 93]);
        assert_eq!(best, Some(93));
        let (tried, best) = search(250, 1_000_000, 0);
        assert_eq!(tried, vec![250, 125, 62, 31]);
        assert_eq!(best, None);
    }

    #[test]
    fn stops_at_the_cap() {
        let (tried, best) = search(250, 1_500, u64::MAX);
        assert_eq!(tried, vec![250, 500, 1_000, 1_500]);
        assert_eq!(best, Some(1_500));
        // A narrow bracket ends bisection early.
        let (tried, best) = search(8, 1_000, 10);
        assert_eq!(tried, vec![8, 16]);
        assert_eq!(best, Some(8));
        assert_eq!(Search::new(0, 0).next_rate(), Some(1));
    }
}
