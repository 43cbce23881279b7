//! Measurement helpers for the localnet load: a small seeded RNG, a bounded
//! latency sample store with percentiles, and a throughput window.
//!
//! Why our own RNG: the players only need cheap, reproducible choices
//! (recipient, amount, reservoir slot); the workspace forbids OS-seeded
//! randomness outside runtime code, and a fixed algorithm keeps a run's choices
//! stable across dependency upgrades (same reasoning as the simulator's RNG).

/// SplitMix64 (Steele, Lea, Flood 2014): one 64-bit word of state, passes
/// BigCrush, and is trivially seedable. Not for anything secret.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0), without modulo bias (Lemire's
    /// multiply-shift with rejection).
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound <= 1 {
            return 0;
        }
        let threshold = bound.wrapping_neg() % bound;
        // Bounded: each draw is rejected with probability < bound / 2^64 < 1/2,
        // so 128 draws all failing has probability < 2^-128; fall back to
        // modulo rather than loop forever on a broken generator.
        for _ in 0..128 {
            let m = u128::from(self.next_u64()) * u128::from(bound);
            // Truncation keeps the low 64 bits on purpose.
            let low = m as u64;
            if low >= threshold {
                return u64::try_from(m >> 64).unwrap_or(0);
            }
        }
        self.next_u64() % bound
    }
}

/// Default capacity of [`LatencySamples`]: every sample of a long run at
/// hundreds of tx/s (8 MiB of `u64`).
pub const DEFAULT_SAMPLE_CAPACITY: usize = 1_000_000;

/// Latency samples in milliseconds. Keeps every sample up to `capacity`,
/// then switches to reservoir sampling (Vitter's algorithm R) so memory stays
/// bounded while every sample keeps an equal chance of being represented.
#[derive(Debug, Clone)]
pub struct LatencySamples {
    samples: Vec<u64>,
    capacity: usize,
    seen: u64,
    rng: SplitMix64,
}

impl LatencySamples {
    pub fn new(capacity: usize) -> Self {
        LatencySamples {
            samples: Vec::new(),
            capacity: capacity.max(1),
            seen: 0,
            rng: SplitMix64::new(0x5EED_1A7E),
        }
    }

    pub fn record(&mut self, latency_ms: u64) {
        self.seen += 1;
        if self.samples.len() < self.capacity {
            self.samples.push(latency_ms);
            return;
        }
        let slot = self.rng.below(self.seen);
        if let Ok(slot) = usize::try_from(slot) {
            if let Some(s) = self.samples.get_mut(slot) {
                *s = latency_ms;
            }
        }
    }

    /// Samples recorded (including those the reservoir dropped).
    pub fn count(&self) -> u64 {
        self.seen
    }

    pub fn clear(&mut self) {
        self.samples.clear();
        self.seen = 0;
    }

    /// Nearest-rank percentile (`p` in 0..=100); `None` without samples.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        percentile_of_sorted(&sorted, p)
    }

    /// Several percentiles with one sort.
    pub fn percentiles(&self, ps: &[f64]) -> Vec<Option<u64>> {
        let mut sorted = self.samples.clone();
        sorted.sort_unstable();
        ps.iter()
            .map(|p| percentile_of_sorted(&sorted, *p))
            .collect()
    }
}

/// Nearest-rank percentile of sorted data: the smallest value such that at
/// least `p`% of the samples are at or below it. `p` is clamped to 0..=100.
pub fn percentile_of_sorted(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let p = if p.is_nan() {
        100.0
    } else {
        p.clamp(0.0, 100.0)
    };
    let n = sorted.len();
    // rank = ceil(p/100 * n), at least 1. n <= usize::MAX fits f64 closely
    // enough for any sample count we keep (<= a few million).
    let rank_f = (p / 100.0 * n as f64).ceil();
    let rank = (rank_f as usize).clamp(1, n);
    sorted.get(rank - 1).copied()
}

/// Turns a running total into a rate over the last window, for the progress
/// line (committed tx/s since the previous refresh).
#[derive(Debug, Clone, Default)]
pub struct RateWindow {
    last_total: u64,
    last_ms: Option<u64>,
}

impl RateWindow {
    /// Rate per second of `total` since the previous call; the first call
    /// measures from `start_ms`.
    pub fn rate(&mut self, total: u64, now_ms: u64, start_ms: u64) -> f64 {
        let since = self.last_ms.unwrap_or(start_ms);
        let delta = total.saturating_sub(self.last_total);
        self.last_total = total;
        self.last_ms = Some(now_ms);
        per_second(delta, now_ms.saturating_sub(since))
    }
}

/// `count` events over `elapsed_ms`, per second; 0 for an empty interval.
pub fn per_second(count: u64, elapsed_ms: u64) -> f64 {
    if elapsed_ms == 0 {
        return 0.0;
    }
    count as f64 * 1000.0 / elapsed_ms as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_reproducible_and_bounded() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        // Reference value of SplitMix64 seeded with 0.
        assert_eq!(SplitMix64::new(0).next_u64(), 0xE220_A839_7B1D_CDAF);
        let mut r = SplitMix64::new(7);
        let mut hits = [0u32; 10];
        for _ in 0..10_000 {
            let v = r.below(10);
            assert!(v < 10);
            hits[usize::try_from(v).unwrap()] += 1;
        }
        assert!(hits.iter().all(|h| *h > 800 && *h < 1200), "{hits:?}");
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let data: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile_of_sorted(&data, 50.0), Some(50));
        assert_eq!(percentile_of_sorted(&data, 99.0), Some(99));
        assert_eq!(percentile_of_sorted(&data, 100.0), Some(100));
        assert_eq!(percentile_of_sorted(&data, 0.0), Some(1));
        assert_eq!(percentile_of_sorted(&data, 0.5), Some(1));
        assert_eq!(percentile_of_sorted(&data, 150.0), Some(100));
        assert_eq!(percentile_of_sorted(&[], 50.0), None);
        assert_eq!(percentile_of_sorted(&[7], 50.0), Some(7));
        assert_eq!(percentile_of_sorted(&[7], 99.0), Some(7));
        // Four samples: p50 is the 2nd, p99 the 4th.
        assert_eq!(percentile_of_sorted(&[10, 20, 30, 40], 50.0), Some(20));
        assert_eq!(percentile_of_sorted(&[10, 20, 30, 40], 99.0), Some(40));
    }

    #[test]
    fn samples_sort_before_percentile() {
        let mut s = LatencySamples::new(100);
        for v in [30, 10, 20, 50, 40] {
            s.record(v);
        }
        assert_eq!(s.percentile(50.0), Some(30));
        assert_eq!(s.percentiles(&[50.0, 99.0]), vec![Some(30), Some(50)]);
        assert_eq!(s.count(), 5);
        s.clear();
        assert_eq!(s.percentile(50.0), None);
    }

    #[test]
    fn reservoir_stays_bounded_and_representative() {
        let mut s = LatencySamples::new(1_000);
        for v in 0..100_000u64 {
            s.record(v % 1000);
        }
        assert_eq!(s.count(), 100_000);
        assert_eq!(s.samples.len(), 1_000);
        // Uniform 0..1000: the median of a 1000-sample reservoir is close to 500.
        let p50 = s.percentile(50.0).unwrap();
        assert!((400..=600).contains(&p50), "p50 {p50}");
    }

    #[test]
    fn rate_window() {
        let mut w = RateWindow::default();
        assert_eq!(w.rate(100, 1_000, 0), 100.0);
        assert_eq!(w.rate(300, 3_000, 0), 100.0);
        assert_eq!(w.rate(300, 3_000, 0), 0.0);
        assert_eq!(per_second(5, 0), 0.0);
        assert_eq!(per_second(5, 500), 10.0);
    }
}
