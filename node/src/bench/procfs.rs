//! CPU time and memory of the validator processes, read from Linux procfs.
//!
//! * CPU: `utime + stime` from `/proc/<pid>/stat` (fields 14 and 15, clock
//!   ticks). The difference over the measured window divided by the window
//!   gives the process's CPU% (100% = one core busy).
//! * Memory: `VmRSS` from `/proc/<pid>/status`, sampled every
//!   [`SAMPLE_MS`]; the report keeps the peak and the least-squares slope of
//!   the samples taken after the first [`SLOPE_SKIP_MS`] (start-up growth
//!   is not a leak), so a long run shows whether memory keeps growing.
//!
//! The slope is accumulated as running sums ([`Slope`]), so a day-long run
//! costs a few numbers per node rather than every sample.
//!
//! Parsers are pure functions over the file text, unit-tested on samples.

/// RSS sampling interval.
pub const SAMPLE_MS: u64 = 250;
/// RSS samples before this much time (ms since sampling started) are left
/// out of the slope.
pub const SLOPE_SKIP_MS: u64 = 60_000;
/// Clock ticks per second of the times in `/proc/<pid>/stat`: the kernel
/// reports them in USER_HZ, fixed at 100 on every architecture Linux
/// supports (it does not follow CONFIG_HZ). `sysconf(_SC_CLK_TCK)` would
/// need libc or rustix's `param` feature, which this crate does not enable.
pub const CLOCK_TICKS_PER_S: u64 = 100;

/// `utime + stime` (clock ticks) from the text of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted after the *last* `)`.
pub fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    // After `)`: field 3 (state) is the first; utime is field 14, stime 15.
    let mut fields = rest.split_ascii_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// `VmRSS` in KiB from the text of `/proc/<pid>/status`.
pub fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_ascii_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => Some(value),
        Some(_) => None,
    }
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_ascii_whitespace().map(str::parse::<f64>);
    Some([it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?])
}

/// `/proc/<pid>/stat` CPU ticks of a running process.
pub fn read_cpu_ticks(pid: u32) -> Option<u64> {
    parse_cpu_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU ticks of this process (every thread).
pub fn read_self_cpu_ticks() -> Option<u64> {
    parse_cpu_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// CPU ticks of the calling thread only.
pub fn read_thread_cpu_ticks() -> Option<u64> {
    parse_cpu_ticks(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
}

/// Resident memory of a running process (KiB).
pub fn read_rss_kib(pid: u32) -> Option<u64> {
    parse_rss_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The machine's load averages now (`None` off Linux).
pub fn read_loadavg() -> Option<[f64; 3]> {
    parse_loadavg(&std::fs::read_to_string("/proc/loadavg").ok()?)
}

/// CPU% (100 = one core) of `ticks` clock ticks used over `elapsed_us`.
pub fn cpu_percent(ticks: u64, elapsed_us: u64) -> f64 {
    if elapsed_us == 0 {
        return 0.0;
    }
    let cpu_us = ticks as f64 * 1e6 / CLOCK_TICKS_PER_S as f64;
    cpu_us * 100.0 / elapsed_us as f64
}

/// Running least-squares fit of `y` over `x` (constant memory).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Slope {
    n: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
}

impl Slope {
    pub fn add(&mut self, x: f64, y: f64) {
        self.n += 1.0;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
    }

    pub fn samples(&self) -> u64 {
        self.n as u64
    }

    /// dy/dx of the best-fit line; `None` with fewer than two distinct x.
    pub fn slope(&self) -> Option<f64> {
        let denom = self.n * self.sxx - self.sx * self.sx;
        if self.n < 2.0 || denom.abs() < f64::EPSILON * self.n * self.sxx.max(1.0) {
            return None;
        }
        Some((self.n * self.sxy - self.sx * self.sy) / denom)
    }
}

/// Shortest planned run (ms) that also gets a second-half slope: each half
/// of the fit window then spans at least a minute and a half.
pub const LATE_SLOPE_MIN_RUN_MS: u64 = 4 * 60_000;

/// What the sampler learnt about one process's memory.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RssTrack {
    /// Peak resident memory seen (KiB).
    pub max_kib: u64,
    /// Samples read.
    pub samples: u64,
    /// Fit of MiB over minutes, from [`SLOPE_SKIP_MS`] on.
    pub slope: Slope,
    /// The same fit from `late_from_ms` on: a growth that levels off (caches
    /// filling up, not a leak) shows a much smaller slope here.
    pub late: Slope,
    pub late_from_ms: u64,
}

impl Default for RssTrack {
    fn default() -> Self {
        RssTrack {
            max_kib: 0,
            samples: 0,
            slope: Slope::default(),
            late: Slope::default(),
            late_from_ms: u64::MAX,
        }
    }
}

impl RssTrack {
    /// A track for a run planned to sample for `run_ms`: the late slope fits
    /// the second half of the window after [`SLOPE_SKIP_MS`], for runs of at
    /// least [`LATE_SLOPE_MIN_RUN_MS`].
    pub fn for_run(run_ms: u64) -> Self {
        let late_from_ms = if run_ms >= LATE_SLOPE_MIN_RUN_MS {
            SLOPE_SKIP_MS + (run_ms - SLOPE_SKIP_MS) / 2
        } else {
            u64::MAX
        };
        RssTrack {
            late_from_ms,
            ..RssTrack::default()
        }
    }

    /// Records `rss_kib` read `at_ms` after sampling started.
    pub fn record(&mut self, at_ms: u64, rss_kib: u64) {
        self.max_kib = self.max_kib.max(rss_kib);
        self.samples += 1;
        if at_ms >= SLOPE_SKIP_MS {
            // x in minutes since the skip, y in MiB: the slope is MiB/min and
            // the sums stay small enough for f64 over a day.
            let x = (at_ms - SLOPE_SKIP_MS) as f64 / 60_000.0;
            self.slope.add(x, rss_kib as f64 / 1024.0);
            if at_ms >= self.late_from_ms {
                self.late.add(x, rss_kib as f64 / 1024.0);
            }
        }
    }

    pub fn max_mib(&self) -> f64 {
        self.max_kib as f64 / 1024.0
    }

    /// MiB per minute after the first minute; `None` until there are
    /// samples to fit.
    pub fn slope_mib_per_min(&self) -> Option<f64> {
        self.slope.slope()
    }

    /// MiB per minute over the second half of the run; `None` for runs
    /// shorter than [`LATE_SLOPE_MIN_RUN_MS`] or before that half began.
    pub fn late_slope_mib_per_min(&self) -> Option<f64> {
        self.late.slope()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "12345 (bitcraps) S 1 12345 12345 0 -1 4194560 2961 0 0 0 \
                        1500 275 0 0 20 0 9 0 123456 1034567680 5120 18446744073709551615";

    #[test]
    fn cpu_ticks_from_stat() {
        assert_eq!(parse_cpu_ticks(STAT), Some(1_775));
        // A command name with spaces and parentheses does not shift fields.
        let odd = STAT.replace("(bitcraps)", "(a) b (c))");
        assert_eq!(parse_cpu_ticks(&odd), Some(1_775));
        assert_eq!(parse_cpu_ticks("1 (x) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert_eq!(parse_cpu_ticks(&STAT.replace(" 1500 ", " x ")), None);
        // This process's own stat parses.
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(read_self_cpu_ticks().is_some());
            assert!(read_thread_cpu_ticks().is_some());
        }
    }

    #[test]
    fn rss_from_status() {
        let status = "Name:\tbitcraps\nVmPeak:\t  900000 kB\nVmRSS:\t   52344 kB\nThreads:\t9\n";
        assert_eq!(parse_rss_kib(status), Some(52_344));
        assert_eq!(parse_rss_kib("Name:\tx\n"), None);
        assert_eq!(parse_rss_kib("VmRSS:\t12 MB\n"), None);
        assert_eq!(parse_rss_kib("VmRSS:\tlots kB\n"), None);
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(read_rss_kib(std::process::id()).is_some_and(|k| k > 0));
        }
    }

    #[test]
    fn loadavg_and_cpu_percent() {
        assert_eq!(
            parse_loadavg("2.83 2.69 2.15 3/124 23482\n"),
            Some([2.83, 2.69, 2.15])
        );
        assert_eq!(parse_loadavg("2.83"), None);
        // 150 ticks = 1.5 s of CPU over 3 s = 50%.
        assert!((cpu_percent(150, 3_000_000) - 50.0).abs() < 1e-9);
        assert_eq!(cpu_percent(150, 0), 0.0);
    }

    #[test]
    fn rss_slope_on_synthetic_samples() {
        // Flat at 100 MiB for a minute of start-up growth, then +2 MiB/min.
        let mut t = RssTrack::default();
        let mut at = 0;
        while at <= 11 * 60_000 {
            let mib = if at < SLOPE_SKIP_MS {
                20 + at / 1_000
            } else {
                100 + 2 * (at - SLOPE_SKIP_MS) / 60_000
            };
            // A little noise that averages out.
            let noise = if (at / SAMPLE_MS).is_multiple_of(2) {
                64
            } else {
                0
            };
            t.record(at, mib * 1024 + noise);
            at += SAMPLE_MS;
        }
        let slope = t.slope_mib_per_min().unwrap();
        assert!((slope - 2.0).abs() < 0.05, "slope {slope}");
        assert_eq!(t.max_kib, 120 * 1024 + 64);
        assert_eq!(t.samples, 11 * 60_000 / SAMPLE_MS + 1);
        // A flat memory profile has no slope to speak of.
        let mut flat = RssTrack::default();
        for i in 0..1_000 {
            flat.record(SLOPE_SKIP_MS + i * SAMPLE_MS, 50 * 1024);
        }
        assert!(flat.slope_mib_per_min().unwrap().abs() < 1e-9);
        assert_eq!(
            flat.late_slope_mib_per_min(),
            None,
            "not planned: no late fit"
        );
        // Growth that levels off: +6 MiB/min for 5 minutes, then flat for 5.
        let mut levels = RssTrack::for_run(11 * 60_000);
        assert_eq!(levels.late_from_ms, 6 * 60_000);
        let mut at: u64 = 0;
        while at <= 11 * 60_000 {
            let minutes = at.saturating_sub(SLOPE_SKIP_MS) / 60_000;
            levels.record(at, (100 + 6 * minutes.min(5)) * 1024);
            at += SAMPLE_MS;
        }
        let (all, late) = (
            levels.slope_mib_per_min().unwrap(),
            levels.late_slope_mib_per_min().unwrap(),
        );
        assert!(all > 2.0, "whole-window slope {all}");
        assert!(late.abs() < 0.01, "second-half slope {late}");
        assert_eq!(
            RssTrack::for_run(LATE_SLOPE_MIN_RUN_MS - 1).late_from_ms,
            u64::MAX
        );
        // Too short a run: nothing after the first minute, no slope.
        let mut short = RssTrack::default();
        short.record(0, 1);
        short.record(30_000, 2);
        assert_eq!(short.slope_mib_per_min(), None);
        let mut one = Slope::default();
        one.add(1.0, 1.0);
        assert_eq!(one.slope(), None);
    }
}
