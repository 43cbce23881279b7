//! Is this validator catching up, and how fast?
//!
//! A validator that was down, or joins with an empty database, learns of later
//! views from the certificates its peers send, enters them, and fetches the
//! blocks it misses (the core's block sync). While it does, the view it is in
//! runs far ahead of the view of its last committed block. That gap is the
//! signal: a healthy validator commits within a few views of the current one,
//! even with one leader down.

use std::collections::VecDeque;

/// Views between the current view and the last committed block's view above
/// which the validator reports that it is catching up.
pub const CATCH_UP_GAP_VIEWS: u64 = 16;
/// Window over which the commit rate is measured.
pub const RATE_WINDOW_MS: u64 = 5_000;
/// Most samples kept in the window (one per commit; older ones are dropped).
const MAX_SAMPLES: usize = 4_096;

/// Tracks commits to report catch-up state and rate.
#[derive(Debug, Default)]
pub struct Progress {
    /// (time ms, committed height) at each commit, oldest first.
    samples: VecDeque<(u64, u64)>,
}

impl Progress {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `height` was committed at `now_ms`.
    pub fn committed(&mut self, now_ms: u64, height: u64) {
        if self.samples.len() >= MAX_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((now_ms, height));
        self.trim(now_ms);
    }

    /// Blocks committed per second over the last [`RATE_WINDOW_MS`].
    pub fn rate_blocks_per_s(&mut self, now_ms: u64) -> f64 {
        self.trim(now_ms);
        let (Some(&(t0, h0)), Some(&(_, h1))) = (self.samples.front(), self.samples.back()) else {
            return 0.0;
        };
        // Blocks after the first sample, over the time since it (at least 1 s,
        // so a burst right after start does not read as a huge rate).
        let blocks = h1.saturating_sub(h0) as f64;
        let elapsed_ms = now_ms.saturating_sub(t0).max(1_000) as f64;
        blocks * 1_000.0 / elapsed_ms
    }

    fn trim(&mut self, now_ms: u64) {
        while let Some(&(t, _)) = self.samples.front() {
            if now_ms.saturating_sub(t) > RATE_WINDOW_MS {
                self.samples.pop_front();
            } else {
                break;
            }
        }
    }
}

/// True when the validator is far behind the views it has heard about.
pub fn catching_up(current_view: u64, committed_view: u64) -> bool {
    current_view.saturating_sub(committed_view) > CATCH_UP_GAP_VIEWS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_window() {
        let mut p = Progress::new();
        assert_eq!(p.rate_blocks_per_s(0), 0.0);
        for i in 0..=20u64 {
            p.committed(10_000 + i * 100, 100 + i);
        }
        // 20 blocks in 2 s.
        let r = p.rate_blocks_per_s(12_000);
        assert!((r - 10.0).abs() < 1e-9, "{r}");
        // Long after: the window is empty.
        assert_eq!(p.rate_blocks_per_s(30_000), 0.0);
    }

    #[test]
    fn gap_threshold() {
        assert!(!catching_up(10, 9));
        assert!(!catching_up(5, 10));
        assert!(!catching_up(16, 0));
        assert!(catching_up(17, 0));
    }
}
