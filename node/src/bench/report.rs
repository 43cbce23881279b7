//! What `bitcraps bench` prints and writes with `--json`.
//!
//! The JSON field names are an interface (CI and BENCHMARKS.md read them):
//! extend, never rename. The headline figures (`committed_tps`,
//! `latency_ms_p99`, `cpu_percent`, ...) are those of the run's step: the
//! only one with `--rate`, the best passing one with `--saturate` (or the
//! slowest step tried when none passed).

use super::stats::{round1, StepResult};
use crate::localnet::report::Table;
use serde::Serialize;
use std::fmt::Write as _;

/// One validator process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeReport {
    pub name: String,
    pub pid: Option<u32>,
    /// CPU% over the headline step's window (100 = one core).
    pub cpu_percent: Option<f64>,
    /// Peak resident memory over the whole run (MiB).
    pub rss_mb_max: f64,
    /// Least-squares RSS growth after the first minute (MiB per minute);
    /// `null` for runs too short to tell.
    pub rss_slope_mb_per_min: Option<f64>,
    /// The same over the second half of the run (runs of 4 min or more):
    /// much smaller than the whole-run slope when growth levels off.
    pub rss_late_slope_mb_per_min: Option<f64>,
    pub rss_samples: u64,
}

/// The signing thread's cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SignerFigures {
    pub signed: u64,
    /// Signed before the load started (outside the measured window).
    pub signed_ahead: u64,
    /// CPU% of one core over the signer's life.
    pub cpu_percent: f64,
    /// CPU per transaction (µs): sign, encode, hash, hex.
    pub us_per_tx: f64,
}

/// A `--saturate` step and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaturateStep {
    pub passed: bool,
    #[serde(flatten)]
    pub result: StepResult,
}

/// Re-sends of refused transactions (see `bench::submit`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Repairs {
    pub started: u64,
    pub done: u64,
    pub abandoned: u64,
    pub dropped: u64,
}

/// The report. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// `rate` or `saturate`.
    pub mode: String,
    pub validators: usize,
    /// The headline step (its `rate`, `duration_s`, latencies, CPU ...).
    #[serde(flatten)]
    pub headline: StepResult,
    /// `--tx-size` as asked; `tx_size_bytes` is what was sent.
    pub tx_size_requested: u64,
    /// Why the two differ, when they do.
    pub tx_size_note: Option<String>,
    pub accounts: u32,
    pub in_flight_per_validator: u32,
    /// `--batch`: most transactions per request (1: `POST /api/v1/tx` each;
    /// more: `POST /api/v1/txs` with what was queued, up to this many).
    pub batch: u32,
    /// Transactions per submit request actually sent (first tries): with
    /// `--batch`, how much was queued each time a request went out.
    pub tx_per_request: f64,
    pub drain_s: f64,
    /// Peak RSS over all validators (MiB).
    pub rss_mb_max: f64,
    /// Largest per-node RSS slope (MiB/min), when the run was long enough.
    pub rss_slope_mb_per_min: Option<f64>,
    /// Largest per-node second-half slope (MiB/min), runs of 4 min or more.
    pub rss_late_slope_mb_per_min: Option<f64>,
    pub nodes: Vec<NodeReport>,
    pub signer: SignerFigures,
    pub signer_cpu_percent: f64,
    pub repairs: Repairs,
    /// The validators ran with the per-client HTTP rate limit raised.
    pub http_rate_limit_raised: bool,
    /// The validators stored a receipt per transaction (`[node]
    /// index_receipts`, the default).
    pub receipt_index: bool,
    /// `/proc/loadavg` (1, 5, 15 min) before and after the load.
    pub loadavg_start: Option<[f64; 3]>,
    pub loadavg_end: Option<[f64; 3]>,
    /// `--saturate` only: the bound, the steps and the best passing rate.
    pub p99_bound_ms: Option<u64>,
    pub best_rate: Option<u64>,
    pub steps: Vec<SaturateStep>,
    /// `--tracing-overhead` only: the same load without and with export.
    pub tracing_overhead: Option<TracingOverhead>,
    /// The run was cut short by Ctrl-C.
    pub interrupted: bool,
    /// Where the testnet was (kept only with `--out-dir` or `--keep`).
    pub dir: String,
    pub dir_kept: bool,
}

/// `--tracing-overhead`: one load, run without then with OTLP export.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TracingOverhead {
    pub committed_tps_off: f64,
    pub committed_tps_on: f64,
    /// `committed_tps_on / committed_tps_off` (1.0 = free).
    pub throughput_ratio: f64,
    pub latency_ms_p50_off: Option<f64>,
    pub latency_ms_p50_on: Option<f64>,
    pub latency_ms_p99_off: Option<f64>,
    pub latency_ms_p99_on: Option<f64>,
    /// Validators' CPU (sum over nodes, %).
    pub cpu_percent_off: f64,
    pub cpu_percent_on: f64,
    /// What the sink received during the run with export.
    pub export_requests: u64,
    pub export_bytes: u64,
}

impl TracingOverhead {
    /// Compares two runs of the same load: `off` without export, `on` with.
    pub fn compare(off: &StepResult, on: &StepResult, requests: u64, bytes: u64) -> Self {
        let ratio = if off.committed_tps > 0.0 {
            on.committed_tps / off.committed_tps
        } else {
            0.0
        };
        TracingOverhead {
            committed_tps_off: off.committed_tps,
            committed_tps_on: on.committed_tps,
            throughput_ratio: (ratio * 1_000.0).round() / 1_000.0,
            latency_ms_p50_off: off.latency_ms_p50,
            latency_ms_p50_on: on.latency_ms_p50,
            latency_ms_p99_off: off.latency_ms_p99,
            latency_ms_p99_on: on.latency_ms_p99,
            cpu_percent_off: off.cpu_percent,
            cpu_percent_on: on.cpu_percent,
            export_requests: requests,
            export_bytes: bytes,
        }
    }

    fn render(&self) -> String {
        format!(
            "tracing overhead: {:.1} tx/s without export, {:.1} with (ratio {:.3}); p50 {} -> {}, p99 {} -> {}; CPU {:.0}% -> {:.0}%; {} export requests, {} bytes\n",
            self.committed_tps_off,
            self.committed_tps_on,
            self.throughput_ratio,
            opt_ms(self.latency_ms_p50_off),
            opt_ms(self.latency_ms_p50_on),
            opt_ms(self.latency_ms_p99_off),
            opt_ms(self.latency_ms_p99_on),
            self.cpu_percent_off,
            self.cpu_percent_on,
            self.export_requests,
            self.export_bytes
        )
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1} ms"))
}

/// `" (second half +x.xx)"`, or nothing for runs too short to have one.
fn late_slope(v: Option<f64>) -> String {
    v.map_or_else(String::new, |s| format!(" (second half {s:+.2})"))
}

fn opt_pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.1}%"))
}

fn loadavg(v: Option<[f64; 3]>) -> String {
    v.map_or_else(
        || "-".to_string(),
        |[a, b, c]| format!("{a:.2} {b:.2} {c:.2}"),
    )
}

/// One line per `--saturate` step, as it finishes.
pub fn step_line(index: usize, step: &SaturateStep, bound_ms: u64) -> String {
    let r = &step.result;
    format!(
        "step {index}: rate {} tx/s -> committed {:.1} tx/s ({:.1}% of {}), p50 {}, p99 {} (bound {bound_ms} ms), rejected {}, timed out {}, nodes CPU {:.0}%: {}",
        r.rate,
        r.committed_tps,
        r.committed_ratio * 100.0,
        r.offered,
        opt_ms(r.latency_ms_p50),
        opt_ms(r.latency_ms_p99),
        r.rejected,
        r.timed_out,
        r.cpu_percent,
        if step.passed { "PASS" } else { "FAIL" }
    )
}

impl BenchReport {
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let h = &self.headline;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "bench: {} validators, {} tx/s offered for {:.1} s ({})",
            self.validators, h.rate, h.duration_s, self.mode
        );
        let mut t = Table::new(["figure", "value"]);
        let mut row = |k: &str, v: String| t.row([k.to_string(), v]);
        row(
            "offered",
            format!("{} tx, {:.1} tx/s", h.offered, h.offered_tps),
        );
        row(
            "committed",
            format!(
                "{} tx ({:.1}%), {:.1} tx/s in the window",
                h.committed,
                h.committed_ratio * 100.0,
                h.committed_tps
            ),
        );
        row(
            "latency",
            format!(
                "p50 {}  p95 {}  p99 {}  max {}  ({} samples, from intended send time)",
                opt_ms(h.latency_ms_p50),
                opt_ms(h.latency_ms_p95),
                opt_ms(h.latency_ms_p99),
                opt_ms(h.latency_ms_max),
                h.latency_samples
            ),
        );
        row(
            "consensus latency",
            format!(
                "p50 {}  p99 {}  ({} blocks, {:.1} tx/block)",
                h.consensus_latency_ms_p50
                    .map_or_else(|| "-".into(), |v| format!("{v} ms")),
                h.consensus_latency_ms_p99
                    .map_or_else(|| "-".into(), |v| format!("{v} ms")),
                h.blocks,
                h.txs_per_block
            ),
        );
        row(
            "rejected",
            format!("{} {}", h.rejected, codes(&h.rejected_by_code)),
        );
        row(
            "errors",
            format!("{} {}", h.errors, codes(&h.errors_by_kind)),
        );
        row("timed out", h.timed_out.to_string());
        row(
            "repairs",
            format!(
                "{} re-sent, {} held, {} abandoned, {} dropped",
                self.repairs.started,
                self.repairs.done,
                self.repairs.abandoned,
                self.repairs.dropped
            ),
        );
        row(
            "generator",
            format!(
                "lag max {:.1} ms, {} sends >= 10 ms late; send lag p99 {} max {:.1} ms",
                h.generator_lag_ms_max,
                h.generator_late,
                opt_ms(h.send_lag_ms_p99),
                h.send_lag_ms_max
            ),
        );
        row(
            "requests",
            if self.batch > 1 {
                format!(
                    "up to {} tx per POST /api/v1/txs ({:.1} on average), {} in flight per validator",
                    self.batch, self.tx_per_request, self.in_flight_per_validator
                )
            } else {
                format!(
                    "1 tx per POST /api/v1/tx, {} in flight per validator",
                    self.in_flight_per_validator
                )
            },
        );
        row(
            "tx size",
            format!(
                "{} bytes (asked {})",
                h.tx_size_bytes, self.tx_size_requested
            ),
        );
        row(
            "signer",
            format!(
                "{:.1}% of a core, {:.1} us/tx, {} signed, {} before the load started",
                self.signer.cpu_percent,
                self.signer.us_per_tx,
                self.signer.signed,
                self.signer.signed_ahead
            ),
        );
        row("bench process CPU", opt_pct(h.client_cpu_percent));
        row(
            "validators CPU",
            format!("{:.1}% (sum; 100% = one core)", h.cpu_percent),
        );
        row(
            "validators RSS",
            format!(
                "max {:.1} MiB, slope {}{}",
                self.rss_mb_max,
                self.rss_slope_mb_per_min
                    .map_or_else(|| "- (run < 2 min)".into(), |s| format!("{s:+.2} MiB/min")),
                late_slope(self.rss_late_slope_mb_per_min)
            ),
        );
        row(
            "load average",
            format!(
                "{} before, {} after",
                loadavg(self.loadavg_start),
                loadavg(self.loadavg_end)
            ),
        );
        out.push_str(&t.render());
        let mut nodes = Table::new(["node", "pid", "CPU", "RSS max", "RSS slope"]);
        for n in &self.nodes {
            nodes.row([
                n.name.clone(),
                n.pid.map_or_else(|| "-".into(), |p| p.to_string()),
                opt_pct(n.cpu_percent),
                format!("{:.1} MiB", n.rss_mb_max),
                format!(
                    "{}{}",
                    n.rss_slope_mb_per_min
                        .map_or_else(|| "-".into(), |s| format!("{s:+.2} MiB/min")),
                    late_slope(n.rss_late_slope_mb_per_min)
                ),
            ]);
        }
        out.push('\n');
        out.push_str(&nodes.render());
        if let Some(note) = &self.tx_size_note {
            let _ = writeln!(out, "\nnote: {note}");
        }
        if !self.http_rate_limit_raised {
            let _ = writeln!(
                out,
                "note: validators ran with the stock per-client HTTP rate limit"
            );
        }
        if !self.receipt_index {
            let _ = writeln!(
                out,
                "note: validators stored no receipts (index_receipts = false, --no-receipt-index)"
            );
        }
        if self.mode == "saturate" {
            let _ = writeln!(
                out,
                "\nsaturate (p99 < {} ms, >= 95% committed):",
                self.p99_bound_ms.unwrap_or(0)
            );
            for (i, s) in self.steps.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "  {}",
                    step_line(i + 1, s, self.p99_bound_ms.unwrap_or(0))
                );
            }
            let _ = writeln!(
                out,
                "best rate: {}",
                self.best_rate
                    .map_or_else(|| "none passed".into(), |r| format!("{r} tx/s"))
            );
        }
        if let Some(t) = &self.tracing_overhead {
            out.push_str(&t.render());
        }
        if self.interrupted {
            let _ = writeln!(out, "(interrupted: figures cover the part that ran)");
        }
        out
    }
}

/// `(rate_limited 3, overloaded 1)`, or nothing.
fn codes(map: &std::collections::BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let v: Vec<String> = map.iter().map(|(k, n)| format!("{k} {n}")).collect();
    format!("({})", v.join(", "))
}

/// MiB from KiB, one decimal.
pub fn kib_to_mib(kib: u64) -> f64 {
    round1(kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::{StepContext, StepStats};

    fn report() -> BenchReport {
        let mut s = StepStats::new(u64::MAX);
        s.record_commit(0, 12_000);
        s.sent = 1;
        s.sent_bytes = 141;
        let headline = StepResult::from_stats(
            &s,
            StepContext {
                rate: 200,
                window_ms: 5_000,
                generator_us: 5_000_000,
                cpu_percent_per_node: vec![Some(10.0), Some(20.0)],
                client_cpu_percent: Some(5.0),
            },
        );
        BenchReport {
            mode: "rate".into(),
            validators: 2,
            headline: headline.clone(),
            tx_size_requested: 256,
            tx_size_note: Some("padding".into()),
            accounts: 8,
            in_flight_per_validator: 128,
            batch: 8,
            tx_per_request: 5.5,
            drain_s: 5.0,
            rss_mb_max: 50.0,
            rss_slope_mb_per_min: None,
            rss_late_slope_mb_per_min: None,
            nodes: vec![NodeReport {
                name: "val0".into(),
                pid: Some(7),
                cpu_percent: Some(10.0),
                rss_mb_max: 50.0,
                rss_slope_mb_per_min: Some(0.25),
                rss_late_slope_mb_per_min: Some(0.05),
                rss_samples: 20,
            }],
            signer: SignerFigures {
                signed: 10,
                signed_ahead: 8,
                cpu_percent: 1.0,
                us_per_tx: 30.0,
            },
            signer_cpu_percent: 1.0,
            repairs: Repairs::default(),
            http_rate_limit_raised: true,
            receipt_index: true,
            loadavg_start: Some([1.0, 2.0, 3.0]),
            loadavg_end: None,
            p99_bound_ms: None,
            best_rate: None,
            steps: vec![SaturateStep {
                passed: true,
                result: headline,
            }],
            tracing_overhead: None,
            interrupted: false,
            dir: "/tmp/x".into(),
            dir_kept: false,
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
        // The spec's field list is checked end to end in tests/bench.rs;
        // here the fields that only a unit test can reach.
        for k in [
            "cpu_percent_per_node",
            "rss_slope_mb_per_min",
            "rejected_by_code",
            "tx_size_requested",
            "repairs",
            "signer",
            "batch",
        ] {
            assert!(v.get(k).is_some(), "missing {k}: {v:#}");
        }
        assert_eq!(v["rate"], 200);
        assert_eq!(v["batch"], 8);
        assert_eq!(v["latency_ms_p50"], 12.0);
        assert_eq!(v["cpu_percent"], 30.0);
        assert_eq!(v["signer"]["signed_ahead"], 8);
        assert_eq!(v["nodes"][0]["rss_slope_mb_per_min"], 0.25);
        assert_eq!(v["steps"][0]["passed"], true);
        assert_eq!(v["steps"][0]["rate"], 200);
    }

    #[test]
    fn text_report_names_everything() {
        let text = report().render();
        for needle in [
            "p50 12.0 ms",
            "val0",
            "+0.25 MiB/min (second half +0.05)",
            "141 bytes (asked 256)",
            "1.00 2.00 3.00 before",
            "note: padding",
            "up to 8 tx per POST /api/v1/txs (5.5 on average), 128 in flight per validator",
        ] {
            assert!(text.contains(needle), "{needle:?} not in:\n{text}");
        }
        assert_eq!(kib_to_mib(1536), 1.5);
    }
}
