//! Process metrics for `/metrics`: memory, CPU time, threads, file
//! descriptors and start time of this validator process, read from procfs at
//! scrape time (a handful of small reads, no background task).
//!
//! Linux only. On another OS, or when a file cannot be read or parsed, the
//! affected metrics are left out of the exposition rather than reported as
//! zero: a missing series makes a dashboard show "no data", a zero would look
//! like a real (and alarming) value.
//!
//! Sources:
//! * `/proc/self/stat`: CPU time (`utime` + `stime`), threads, start time
//!   (clock ticks after boot) and virtual memory size (bytes);
//! * `/proc/self/statm`: resident set size (pages);
//! * `/proc/self/auxv`: the page size and the clock tick rate the kernel gave
//!   this process (`AT_PAGESZ`, `AT_CLKTCK`), the values libc's `sysconf`
//!   returns, read without libc or `unsafe`;
//! * `/proc/stat`: boot time (`btime`), for the start time;
//! * `/proc/self/fd` and `/proc/self/limits`: open descriptors and their
//!   soft limit.
//!
//! The parse functions are pure so the unit tests run them on fixed samples,
//! including command names with spaces and parentheses.

use crate::http::prom::PromWriter;

/// Clock ticks per second used when the aux vector gives none. The times in
/// `/proc/<pid>/stat` are in USER_HZ, which the kernel fixes at 100 on every
/// architecture it supports today (it does not follow CONFIG_HZ).
/// `sysconf(_SC_CLK_TCK)` would need libc, and rustix's
/// `param::clock_ticks_per_second` needs the rustix `param` feature, which
/// the node's Cargo.toml does not enable.
const DEFAULT_CLOCK_TICKS_PER_SECOND: u64 = 100;

/// Aux vector entry types (`linux/auxvec.h`).
const AT_NULL: u64 = 0;
const AT_PAGESZ: u64 = 6;
const AT_CLKTCK: u64 = 17;

/// What the process metrics report; `None` when unknown (not rendered).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct ProcessStats {
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    /// User plus system CPU time.
    pub cpu_seconds: Option<f64>,
    pub threads: Option<u64>,
    /// Unix time the process started, in seconds (tick resolution).
    pub start_time_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    /// Soft limit on open descriptors (`None` also when unlimited).
    pub max_fds: Option<u64>,
}

/// The fields of `/proc/self/stat` the metrics use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stat {
    /// User-mode CPU time, in clock ticks.
    pub utime_ticks: u64,
    /// Kernel-mode CPU time, in clock ticks.
    pub stime_ticks: u64,
    pub threads: u64,
    /// When the process started, in clock ticks after boot.
    pub start_ticks: u64,
    /// Virtual memory size in bytes.
    pub vsize_bytes: u64,
}

/// The aux vector entries the metrics use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Auxv {
    pub page_size: Option<u64>,
    pub clock_ticks_per_second: Option<u64>,
}

/// The raw procfs contents [`ProcessStats::from_sources`] combines; `None`
/// for whatever could not be read.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sources<'a> {
    pub stat: Option<&'a str>,
    pub statm: Option<&'a str>,
    pub auxv: Option<&'a [u8]>,
    /// `/proc/stat` (system-wide, for `btime`).
    pub proc_stat: Option<&'a str>,
    pub limits: Option<&'a str>,
    pub open_fds: Option<u64>,
}

/// Parses `/proc/self/stat`: `pid (comm) state ppid ...`. The command name
/// may contain spaces and parentheses, so the fields are taken after the
/// *last* `)`. Field numbers below are those of proc(5).
pub(super) fn parse_stat(text: &str) -> Option<Stat> {
    let (_, after_comm) = text.rsplit_once(')')?;
    // Field 3 (`state`) is the first token after the command name.
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let field = |n: usize| -> Option<u64> { fields.get(n.checked_sub(3)?)?.parse().ok() };
    Some(Stat {
        utime_ticks: field(14)?,
        stime_ticks: field(15)?,
        threads: field(20)?,
        start_ticks: field(22)?,
        vsize_bytes: field(23)?,
    })
}

/// Parses `/proc/self/statm` (`size resident shared text lib data dt`, all
/// in pages) into `(size, resident)`.
pub(super) fn parse_statm(text: &str) -> Option<(u64, u64)> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let size = fields.next()?.ok()?;
    let resident = fields.next()?.ok()?;
    Some((size, resident))
}

/// Parses `/proc/self/auxv`: pairs of native-endian words (`type`, `value`)
/// of this process's pointer width, ended by `AT_NULL`. Zero values are
/// treated as absent (neither a page size nor a tick rate can be zero).
pub(super) fn parse_auxv(bytes: &[u8]) -> Auxv {
    const WORD: usize = std::mem::size_of::<usize>();
    let mut auxv = Auxv::default();
    for entry in bytes.chunks_exact(2 * WORD) {
        let (kind, value) = entry.split_at(WORD);
        let (Ok(kind), Ok(value)) = (<[u8; WORD]>::try_from(kind), <[u8; WORD]>::try_from(value))
        else {
            break;
        };
        let kind = usize::from_ne_bytes(kind) as u64;
        let value = usize::from_ne_bytes(value) as u64;
        match kind {
            AT_NULL => break,
            AT_PAGESZ if value > 0 => auxv.page_size = Some(value),
            AT_CLKTCK if value > 0 => auxv.clock_ticks_per_second = Some(value),
            _ => {}
        }
    }
    auxv
}

/// Boot time (Unix seconds) from the `btime` line of `/proc/stat`.
pub(super) fn parse_btime(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|line| line.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of the `Max open files` row of `/proc/self/limits`
/// (`Max open files  <soft>  <hard>  files`); `None` when `unlimited`.
pub(super) fn parse_max_open_files(limits: &str) -> Option<u64> {
    limits
        .lines()
        .find_map(|line| line.strip_prefix("Max open files"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|soft| soft.parse().ok())
}

impl ProcessStats {
    /// Reads this process's statistics from procfs (nothing on other OSes).
    pub(super) fn read() -> Self {
        #[cfg(target_os = "linux")]
        {
            let stat = std::fs::read_to_string("/proc/self/stat").ok();
            let statm = std::fs::read_to_string("/proc/self/statm").ok();
            let auxv = std::fs::read("/proc/self/auxv").ok();
            let proc_stat = std::fs::read_to_string("/proc/stat").ok();
            let limits = std::fs::read_to_string("/proc/self/limits").ok();
            Self::from_sources(&Sources {
                stat: stat.as_deref(),
                statm: statm.as_deref(),
                auxv: auxv.as_deref(),
                proc_stat: proc_stat.as_deref(),
                limits: limits.as_deref(),
                open_fds: count_open_fds(),
            })
        }
        #[cfg(not(target_os = "linux"))]
        {
            Self::default()
        }
    }

    /// Combines what could be read. Each metric needs only its own inputs:
    /// an unreadable aux vector loses the resident size (no page size) but
    /// falls back to [`DEFAULT_CLOCK_TICKS_PER_SECOND`] for times.
    pub(super) fn from_sources(src: &Sources<'_>) -> Self {
        let stat = src.stat.and_then(parse_stat);
        let auxv = src.auxv.map(parse_auxv).unwrap_or_default();
        let ticks = auxv
            .clock_ticks_per_second
            .unwrap_or(DEFAULT_CLOCK_TICKS_PER_SECOND) as f64;
        let resident_pages = src.statm.and_then(parse_statm).map(|(_, rss)| rss);
        let btime = src.proc_stat.and_then(parse_btime);
        ProcessStats {
            resident_memory_bytes: resident_pages
                .zip(auxv.page_size)
                .and_then(|(pages, size)| pages.checked_mul(size)),
            virtual_memory_bytes: stat.map(|s| s.vsize_bytes),
            cpu_seconds: stat.map(|s| s.utime_ticks.saturating_add(s.stime_ticks) as f64 / ticks),
            threads: stat.map(|s| s.threads),
            start_time_seconds: stat
                .zip(btime)
                .map(|(s, boot)| boot as f64 + s.start_ticks as f64 / ticks),
            open_fds: src.open_fds,
            max_fds: src.limits.and_then(parse_max_open_files),
        }
    }

    /// Writes the gauges (the CPU counter: [`Self::write_cpu`]).
    pub(super) fn write_gauges(&self, w: &mut PromWriter) {
        let gauges = [
            (
                "bitcraps_process_resident_memory_bytes",
                "Resident set size of the validator process",
                self.resident_memory_bytes.map(|v| v as f64),
            ),
            (
                "bitcraps_process_virtual_memory_bytes",
                "Virtual memory size of the validator process",
                self.virtual_memory_bytes.map(|v| v as f64),
            ),
            (
                "bitcraps_process_threads",
                "Threads of the validator process",
                self.threads.map(|v| v as f64),
            ),
            (
                "bitcraps_process_open_fds",
                "File descriptors the validator process has open",
                self.open_fds.map(|v| v as f64),
            ),
            (
                "bitcraps_process_max_fds",
                "Soft limit on open file descriptors (absent when unlimited)",
                self.max_fds.map(|v| v as f64),
            ),
            (
                "bitcraps_process_start_time_seconds",
                "Start time of the validator process since the Unix epoch",
                self.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                w.gauge(name, help, &[], value);
            }
        }
    }

    /// `bitcraps_process_cpu_seconds_total` (fractional: ticks of 10 ms).
    pub(super) fn write_cpu(&self, w: &mut PromWriter) {
        if let Some(seconds) = self.cpu_seconds {
            w.counter_f64(
                "bitcraps_process_cpu_seconds_total",
                "User and system CPU time spent by the validator process",
                &[],
                seconds,
            );
        }
    }
}

/// Entries of `/proc/self/fd`, less the descriptor of the directory listing
/// itself (open while it is read).
#[cfg(target_os = "linux")]
fn count_open_fds() -> Option<u64> {
    let entries = std::fs::read_dir("/proc/self/fd").ok()?;
    let mut count: u64 = 0;
    for entry in entries {
        entry.ok()?;
        count += 1;
    }
    Some(count.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real line from a `cat` process, fields 14/15 edited to be non-zero.
    const STAT: &str = "11445 (cat) R 11443 11443 4434 0 -1 4194304 100 0 0 0 \
        250 75 0 0 20 0 3 0 1673972 3133440 413 18446744073709551615 \
        94552894377984 94552894397865 140727076847904 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";

    fn auxv(entries: &[(usize, usize)]) -> Vec<u8> {
        entries
            .iter()
            .flat_map(|&(k, v)| k.to_ne_bytes().into_iter().chain(v.to_ne_bytes()))
            .collect()
    }

    #[test]
    fn stat_fields() {
        assert_eq!(
            parse_stat(STAT),
            Some(Stat {
                utime_ticks: 250,
                stime_ticks: 75,
                threads: 3,
                start_ticks: 1673972,
                vsize_bytes: 3133440,
            })
        );
    }

    #[test]
    fn stat_command_with_spaces_and_parentheses() {
        for comm in [
            "(a b)",
            "((x) ) y)",
            "(tokio-runtime-w)",
            "()",
            "(:) R 1 2 )",
        ] {
            let line = STAT.replacen("(cat)", comm, 1);
            let stat = parse_stat(&line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(stat.utime_ticks, 250, "{line}");
            assert_eq!(stat.vsize_bytes, 3133440, "{line}");
        }
    }

    #[test]
    fn malformed_stat_is_none() {
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("11445 cat R 1 2 3"), None);
        assert_eq!(parse_stat("11445 (cat) R 11443"), None);
        let truncated: String = STAT
            .split_whitespace()
            .take(22)
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(parse_stat(&truncated), None);
        assert_eq!(parse_stat(&STAT.replacen(" 250 ", " x ", 1)), None);
        assert_eq!(parse_stat(&STAT.replacen(" 250 ", " -5 ", 1)), None);
    }

    #[test]
    fn statm_fields() {
        assert_eq!(parse_statm("765 437 410 5 0 123 0\n"), Some((765, 437)));
        assert_eq!(parse_statm("765"), None);
        assert_eq!(parse_statm("765 x 1"), None);
        assert_eq!(parse_statm(""), None);
    }

    #[test]
    fn auxv_entries() {
        let bytes = auxv(&[(33, 1), (6, 16384), (17, 250), (3, 99), (0, 0), (6, 4096)]);
        assert_eq!(
            parse_auxv(&bytes),
            Auxv {
                page_size: Some(16384),
                clock_ticks_per_second: Some(250),
            }
        );
        // Truncated input, zero values and no entries.
        let mut cut = auxv(&[(6, 4096), (17, 100)]);
        cut.truncate(cut.len() - 1);
        assert_eq!(parse_auxv(&cut).clock_ticks_per_second, None);
        assert_eq!(parse_auxv(&cut).page_size, Some(4096));
        assert_eq!(parse_auxv(&auxv(&[(6, 0)])), Auxv::default());
        assert_eq!(parse_auxv(&[]), Auxv::default());
    }

    #[test]
    fn btime_and_fd_limit() {
        let proc_stat = "cpu  1 2 3\ncpu0 1 2 3\nintr 5\nbtime 1795456737\nprocesses 9\n";
        assert_eq!(parse_btime(proc_stat), Some(1795456737));
        assert_eq!(parse_btime("cpu 1\n"), None);
        let limits =
            "Limit                     Soft Limit           Hard Limit           Units     \n\
            Max processes             63704                63704                processes \n\
            Max open files            20000                1048576              files     \n";
        assert_eq!(parse_max_open_files(limits), Some(20000));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), None);
        assert_eq!(parse_max_open_files(""), None);
    }

    #[test]
    fn combined_stats() {
        let bytes = auxv(&[(6, 4096), (17, 100)]);
        let stats = ProcessStats::from_sources(&Sources {
            stat: Some(STAT),
            statm: Some("765 437 410 5 0 123 0"),
            auxv: Some(&bytes),
            proc_stat: Some("btime 1795456737\n"),
            limits: Some("Max open files 1024 4096 files\n"),
            open_fds: Some(12),
        });
        assert_eq!(
            stats,
            ProcessStats {
                resident_memory_bytes: Some(437 * 4096),
                virtual_memory_bytes: Some(3133440),
                cpu_seconds: Some(3.25),
                threads: Some(3),
                start_time_seconds: Some(1795456737.0 + 16739.72),
                open_fds: Some(12),
                max_fds: Some(1024),
            }
        );
    }

    #[test]
    fn missing_sources_leave_metrics_out() {
        assert_eq!(
            ProcessStats::from_sources(&Sources::default()),
            ProcessStats::default()
        );
        // No aux vector: no page size (no resident size), but CPU time still
        // converts at the default 100 ticks per second.
        let stats = ProcessStats::from_sources(&Sources {
            stat: Some(STAT),
            statm: Some("765 437"),
            ..Sources::default()
        });
        assert_eq!(stats.resident_memory_bytes, None);
        assert_eq!(stats.cpu_seconds, Some(3.25));
        assert_eq!(stats.start_time_seconds, None);

        let mut w = PromWriter::new();
        ProcessStats::default().write_gauges(&mut w);
        ProcessStats::default().write_cpu(&mut w);
        assert_eq!(w.finish(), "");
        let odd = ProcessStats {
            cpu_seconds: Some(f64::NAN),
            ..ProcessStats::default()
        };
        let mut w = PromWriter::new();
        odd.write_cpu(&mut w);
        assert_eq!(w.finish(), "");
    }

    #[test]
    fn cpu_counter_text() {
        let cpu = |seconds| {
            let mut w = PromWriter::new();
            ProcessStats {
                cpu_seconds: Some(seconds),
                ..ProcessStats::default()
            }
            .write_cpu(&mut w);
            w.finish()
        };
        assert_eq!(
            cpu(3.25),
            "# HELP bitcraps_process_cpu_seconds_total User and system CPU time spent by the validator process\n\
             # TYPE bitcraps_process_cpu_seconds_total counter\n\
             bitcraps_process_cpu_seconds_total 3.25\n"
        );
        assert!(cpu(0.0).ends_with("_total 0\n"));
    }

    /// The real `/proc/self` of the test process.
    #[cfg(target_os = "linux")]
    #[test]
    // The wall clock bounds the start time; no simulated clock is involved.
    #[allow(clippy::disallowed_methods)]
    fn reads_this_process() {
        let files: Vec<std::fs::File> = (0..8)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        let stats = ProcessStats::read();
        let rss = stats.resident_memory_bytes.expect("resident memory");
        let vsize = stats.virtual_memory_bytes.expect("virtual memory");
        assert!(rss > 1 << 20, "{stats:?}");
        assert!(vsize >= rss, "{stats:?}");
        assert!(stats.threads.expect("threads") >= 1, "{stats:?}");
        assert!(stats.cpu_seconds.expect("cpu") >= 0.0, "{stats:?}");
        assert!(
            stats.open_fds.expect("open fds") >= files.len() as u64,
            "{stats:?}"
        );
        if let Some(max) = stats.max_fds {
            assert!(max >= stats.open_fds.unwrap_or(0), "{stats:?}");
        }
        // Started after 2020, and not in the future.
        let start = stats.start_time_seconds.expect("start time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(start > 1_577_836_800.0, "{stats:?}");
        // Tick resolution plus the rounding of `btime` to whole seconds.
        assert!(start <= now + 1.0, "start {start} after now {now}");
        drop(files);
    }
}
