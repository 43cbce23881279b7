//! Samples the validator processes while the bench runs: resident memory
//! every [`SAMPLE_MS`] (peak and growth per node), and CPU tick snapshots
//! at the edges of each measured window.

use super::procfs::{self, RssTrack, SAMPLE_MS};
use crate::engine::Clock;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// CPU ticks of every node at one instant (`None`: not readable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSnapshot {
    pub at_us: u64,
    pub ticks: Vec<Option<u64>>,
}

impl CpuSnapshot {
    /// Reads every pid now.
    pub fn take(pids: &[Option<u32>], clock: &dyn Clock) -> CpuSnapshot {
        CpuSnapshot {
            at_us: clock.now_us(),
            ticks: pids
                .iter()
                .map(|p| p.and_then(procfs::read_cpu_ticks))
                .collect(),
        }
    }

    /// Per node CPU% between `self` (earlier) and `later`.
    pub fn percent_until(&self, later: &CpuSnapshot) -> Vec<Option<f64>> {
        let elapsed = later.at_us.saturating_sub(self.at_us);
        self.ticks
            .iter()
            .zip(&later.ticks)
            .map(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => Some(procfs::cpu_percent(b.saturating_sub(*a), elapsed)),
                _ => None,
            })
            .collect()
    }
}

/// The RSS record of every node, filled by [`run`].
pub type RssTracks = Arc<Mutex<Vec<RssTrack>>>;

/// Samples `pids` every [`SAMPLE_MS`] into `tracks` (ms counted from the
/// first sample) until `stop` fires.
pub async fn run(
    pids: Vec<Option<u32>>,
    tracks: RssTracks,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
) {
    let start_us = clock.now_us();
    loop {
        let at_ms = clock.now_us().saturating_sub(start_us) / 1_000;
        let readings: Vec<Option<u64>> = pids
            .iter()
            .map(|p| p.and_then(procfs::read_rss_kib))
            .collect();
        if let Ok(mut t) = tracks.lock() {
            for (track, rss) in t.iter_mut().zip(readings) {
                if let Some(kib) = rss {
                    track.record(at_ms, kib);
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_millis(SAMPLE_MS)) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_between_snapshots() {
        let a = CpuSnapshot {
            at_us: 1_000_000,
            ticks: vec![Some(100), Some(50), None],
        };
        let b = CpuSnapshot {
            at_us: 3_000_000,
            ticks: vec![Some(300), Some(50), Some(7)],
        };
        let p = a.percent_until(&b);
        assert!((p[0].unwrap() - 100.0).abs() < 1e-9);
        assert_eq!(p[1], Some(0.0));
        assert_eq!(p[2], None);
    }
}
