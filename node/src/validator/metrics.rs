//! `/metrics`: the validator's state in Prometheus text format. Names carry
//! the `bitcraps_` prefix and base units (`_seconds`, `_bytes`), counters end
//! in `_total`.
//!
//! [`render`] gathers the inputs from the node; the `write_*` functions turn
//! plain values into samples, so the unit tests below check every family's
//! type and labels (and `promtool check metrics`) without a running engine.

use super::process::ProcessStats;
use super::service::NodeService;
use super::signer_health::SignerHealth;
use crate::api::PeerView;
use crate::engine::EngineStatus;
use crate::http::prom::PromWriter;
use crate::http::NodeApi;
use crate::trace::tracker::TrackerStats;
use std::collections::BTreeMap;

/// A per-peer counter: name, help, and how to read it from a peer's view.
type PeerCounter = (&'static str, &'static str, fn(&crate::api::PeerView) -> u64);

/// Circuit breaker states, as `PeerView::breaker` spells them. Every state
/// gets a sample per peer (1 for the current one, 0 for the others) so a
/// state change shows as a value change rather than a series vanishing.
const BREAKER_STATES: [&str; 3] = ["closed", "open", "half_open"];

/// Everything `/metrics` reports, read from the node at scrape time (memory
/// protection is process-wide and read by [`write_memory_protection`]).
#[derive(Debug)]
struct Inputs {
    status: EngineStatus,
    mempool_len: usize,
    signer: SignerHealth,
    rejected: BTreeMap<&'static str, u64>,
    peers: Vec<PeerView>,
    process: ProcessStats,
    correlation: TrackerStats,
}

/// Renders every metric of `node`.
pub(super) fn render(node: &NodeService) -> String {
    render_inputs(&Inputs {
        status: node.engine().status(),
        mempool_len: node.engine().mempool_len(),
        signer: node.signer_health(),
        rejected: node.rejected_by_reason(),
        peers: node.peers(),
        process: ProcessStats::read(),
        correlation: node.tracker().stats(),
    })
}

/// The exposition for `inputs`.
fn render_inputs(inputs: &Inputs) -> String {
    let mut w = PromWriter::new();
    write_status(&mut w, &inputs.status, inputs.mempool_len);
    write_signer(&mut w, &inputs.signer);
    write_memory_protection(&mut w);
    write_rejections(&mut w, &inputs.rejected);
    write_peers(&mut w, &inputs.peers);
    inputs.process.write_gauges(&mut w);
    inputs.process.write_cpu(&mut w);
    write_correlation(&mut w, &inputs.correlation);
    write_commit_latency(&mut w, &inputs.status);
    w.finish()
}

/// Commit latency of blocks on this validator.
fn write_commit_latency(w: &mut PromWriter, s: &EngineStatus) {
    w.counter(
        "bitcraps_blocks_committed_total",
        "Blocks this process executed and stored since it started",
        &[],
        s.blocks_committed,
    );
    let h = &s.commit_latency;
    w.histogram(
        "bitcraps_commit_latency_seconds",
        "From seeing (or making) a block's proposal to committing it, on this validator",
        &[],
        &h.cumulative(),
        h.sum_us as f64 / 1e6,
        h.count,
    );
}

/// The correlation tracker's counters and stage latencies.
fn write_correlation(w: &mut PromWriter, s: &TrackerStats) {
    w.gauge(
        "bitcraps_correlation_active",
        "Traced transactions not yet executed on this validator",
        &[],
        s.active as f64,
    );
    w.gauge(
        "bitcraps_correlation_completed",
        "Traced transactions executed and still retained by the tracker",
        &[],
        s.completed as f64,
    );
    w.counter(
        "bitcraps_correlation_tracked_total",
        "Transactions the correlation tracker started following",
        &[],
        s.tracked_total,
    );
    w.counter(
        "bitcraps_correlation_completed_total",
        "Traced transactions that reached execution",
        &[],
        s.completed_total,
    );
    for (reason, n) in [
        ("capacity", s.evicted_capacity_total),
        ("age", s.evicted_age_total),
    ] {
        w.counter(
            "bitcraps_correlation_evicted_total",
            "Tracker entries dropped, by bound",
            &[("reason", reason)],
            n,
        );
    }
    for (stage, l) in &s.stage_latency_us {
        // `percentile`, not `quantile`: that label belongs to summaries,
        // and these percentiles come from a bounded ring, not a summary.
        for (percentile, us) in [("50", l.p50), ("95", l.p95), ("99", l.p99)] {
            w.gauge(
                "bitcraps_correlation_stage_latency_seconds",
                "Time from a traced transaction's first stage on this validator to this stage, over recent executed transactions",
                &[("stage", stage), ("percentile", percentile)],
                us as f64 / 1e6,
            );
        }
    }
}

/// Consensus, application and beacon state from the engine's status.
fn write_status(w: &mut PromWriter, s: &EngineStatus, mempool_len: usize) {
    w.gauge(
        "bitcraps_up",
        "1 while the engine runs, 0 after a fatal error",
        &[],
        if s.fatal.is_none() { 1.0 } else { 0.0 },
    );
    w.gauge(
        "bitcraps_height",
        "Highest committed block height",
        &[],
        s.height as f64,
    );
    w.gauge(
        "bitcraps_view",
        "Consensus view the validator is in",
        &[],
        s.view as f64,
    );
    w.counter(
        "bitcraps_tx_committed_total",
        "Transactions executed in committed blocks (accepted and rejected)",
        &[],
        s.committed_tx,
    );
    w.gauge(
        "bitcraps_mempool_transactions",
        "Verified transactions waiting for a block",
        &[],
        mempool_len as f64,
    );
    w.gauge(
        "bitcraps_catching_up",
        "1 while far behind the views heard from peers",
        &[],
        if s.catching_up { 1.0 } else { 0.0 },
    );
    w.gauge(
        "bitcraps_commit_rate_blocks_per_second",
        "Blocks committed per second over the last 5 s",
        &[],
        s.commit_rate_milli as f64 / 1_000.0,
    );
    let views = s.view_changes;
    for (cause, n) in [
        ("notarized", views.notarized),
        ("nullified", views.nullified),
        ("finalized", views.finalized),
    ] {
        w.counter(
            "bitcraps_view_changes_total",
            "Views entered since the process started, by how the previous view ended \
             (notarized: normal progress, nullified: timed out, finalized: caught up)",
            &[("cause", cause)],
            n,
        );
    }
    w.gauge(
        "bitcraps_sync_lag_views",
        "Views between the current view and the last committed block's (large while syncing)",
        &[],
        s.sync_lag_views as f64,
    );
    w.counter(
        "bitcraps_evidence_total",
        "Double-signing evidence observed",
        &[],
        s.evidence,
    );
    let b = s.beacon;
    let beacon_counters = [
        (
            "bitcraps_beacon_shares_signed_total",
            "Dice beacon rounds this validator signed its share of",
            b.shares_signed,
        ),
        (
            "bitcraps_beacon_shares_received_total",
            "Dice beacon shares received from other validators",
            b.shares_received,
        ),
        (
            "bitcraps_beacon_invalid_shares_total",
            "Dice beacon shares that failed verification and were ignored",
            b.invalid_shares,
        ),
        (
            "bitcraps_beacon_rounds_recovered_total",
            "Dice beacon rounds whose group signature this node recovered",
            b.rounds_recovered,
        ),
    ];
    for (name, help, value) in beacon_counters {
        w.counter(name, help, &[], value);
    }
    w.gauge(
        "bitcraps_chips_conserved",
        "1 while balances plus table escrow equal the genesis supply",
        &[],
        if s.supply.conserved() { 1.0 } else { 0.0 },
    );
    w.gauge(
        "bitcraps_chips_escrowed",
        "Chips held by craps tables (bankrolls, bets in play, rails)",
        &[],
        s.supply.escrow as f64,
    );
    w.gauge(
        "bitcraps_peers_connected",
        "Peers with a live QUIC connection",
        &[],
        s.peers_connected as f64,
    );
}

/// Health of the consensus key's backend, from the periodic test signatures.
fn write_signer(w: &mut PromWriter, signer: &SignerHealth) {
    let backend = [("backend", signer.backend)];
    w.gauge(
        "bitcraps_signer_healthy",
        "1 while the consensus key's backend produces valid test signatures",
        &backend,
        if signer.healthy { 1.0 } else { 0.0 },
    );
    if let Some(us) = signer.sign_latency_us {
        w.gauge(
            "bitcraps_signer_sign_latency_seconds",
            "Duration of the last successful test signature",
            &backend,
            us as f64 / 1e6,
        );
    }
    w.counter(
        "bitcraps_signer_probes_total",
        "Test signatures attempted",
        &backend,
        signer.probes,
    );
    w.counter(
        "bitcraps_signer_probe_failures_total",
        "Test signatures that failed or did not verify",
        &backend,
        signer.failures,
    );
}

/// Secret memory: whether secrets could be locked in RAM, and how many there are.
fn write_memory_protection(w: &mut PromWriter) {
    let mem = bitcraps_crypto::secret::protection_status();
    w.gauge(
        "bitcraps_memory_lock_available",
        "1 while every secret buffer could be locked in RAM (mlock)",
        &[],
        if mem.mlock_available { 1.0 } else { 0.0 },
    );
    w.gauge(
        "bitcraps_secret_buffers",
        "Secret buffers alive (keys, PINs, passphrases, tokens)",
        &[],
        mem.live_buffers as f64,
    );
    w.gauge(
        "bitcraps_secret_locked_bytes",
        "Bytes of secret memory locked in RAM",
        &[],
        mem.locked_bytes as f64,
    );
    w.counter(
        "bitcraps_mlock_failures_total",
        "Secret buffers that could not be locked in RAM",
        &[],
        mem.lock_failures,
    );
}

/// Submissions refused at the API, by reason code (a reason appears once it
/// has happened).
fn write_rejections(w: &mut PromWriter, rejected: &BTreeMap<&'static str, u64>) {
    for (&code, &n) in rejected {
        w.counter(
            "bitcraps_tx_rejected_total",
            "Submitted transactions refused, by reason",
            &[("reason", code)],
            n,
        );
    }
}

/// Per-peer connection state and transport counters.
fn write_peers(w: &mut PromWriter, peers: &[PeerView]) {
    for p in peers {
        let l = [("peer", p.name.as_str())];
        w.gauge(
            "bitcraps_peer_connected",
            "1 while the connection to the peer is up",
            &l,
            if p.connected { 1.0 } else { 0.0 },
        );
    }
    for p in peers {
        let mut states = BREAKER_STATES.to_vec();
        if !states.contains(&p.breaker.as_str()) {
            // A state this list does not know yet still shows up.
            states.push(p.breaker.as_str());
        }
        for state in states {
            let l = [("peer", p.name.as_str()), ("state", state)];
            w.gauge(
                "bitcraps_peer_breaker",
                "Circuit breaker state of the peer (1 for the current state, 0 for the others)",
                &l,
                if state == p.breaker { 1.0 } else { 0.0 },
            );
        }
    }
    for p in peers {
        if let Some(rtt) = p.rtt_us {
            let l = [("peer", p.name.as_str())];
            w.gauge(
                "bitcraps_peer_rtt_seconds",
                "Smoothed QUIC round-trip time",
                &l,
                rtt as f64 / 1e6,
            );
        }
    }
    for p in peers {
        if let Some(p95) = p.send_latency_p95_us {
            let l = [("peer", p.name.as_str())];
            w.gauge(
                "bitcraps_peer_send_latency_p95_seconds",
                "95th percentile of recent send latencies (queueing until handed to QUIC)",
                &l,
                p95 as f64 / 1e6,
            );
        }
    }
    let counters: [PeerCounter; 7] = [
        (
            "bitcraps_peer_received_bytes_total",
            "Bytes received from the peer",
            |p| p.bytes_in,
        ),
        (
            "bitcraps_peer_sent_bytes_total",
            "Bytes sent to the peer",
            |p| p.bytes_out,
        ),
        (
            "bitcraps_peer_received_messages_total",
            "Messages received from the peer",
            |p| p.messages_in,
        ),
        (
            "bitcraps_peer_sent_messages_total",
            "Messages sent to the peer",
            |p| p.messages_out,
        ),
        (
            "bitcraps_peer_reconnects_total",
            "Connections re-established",
            |p| p.reconnects,
        ),
        (
            "bitcraps_peer_errors_total",
            "Dial failures, connection losses and protocol violations",
            |p| p.errors,
        ),
        (
            "bitcraps_peer_penalty_disconnects_total",
            "Disconnects for misbehaviour",
            |p| p.penalty_disconnects,
        ),
    ];
    for (name, help, get) in counters {
        for p in peers {
            w.counter(name, help, &[("peer", p.name.as_str())], get(p));
        }
    }
    for p in peers {
        for (reason, n) in [
            ("queue_full", p.dropped_queue_full),
            ("rate_limited", p.dropped_rate_limited),
        ] {
            w.counter(
                "bitcraps_peer_dropped_messages_total",
                "Messages dropped, by reason (queue_full: outbound, the peer's send queue \
                 was full; rate_limited: inbound, over the peer's rate limit)",
                &[("peer", p.name.as_str()), ("reason", reason)],
                n,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ViewChanges;
    use std::collections::HashMap;

    fn peer(name: &str, breaker: &str) -> PeerView {
        PeerView {
            index: 1,
            name: name.to_owned(),
            address: "127.0.0.1:9000".to_owned(),
            connected: breaker == "closed",
            breaker: breaker.to_owned(),
            rtt_us: Some(1_500),
            send_latency_p95_us: Some(250),
            bytes_in: 10,
            bytes_out: 20,
            messages_in: 1,
            messages_out: 2,
            reconnects: 3,
            errors: 4,
            dropped_queue_full: 5,
            dropped_rate_limited: 6,
            penalty_disconnects: 0,
            last_error: None,
        }
    }

    fn inputs() -> Inputs {
        Inputs {
            status: EngineStatus {
                height: 42,
                view: 50,
                committed_view: 47,
                view_changes: ViewChanges {
                    notarized: 40,
                    nullified: 3,
                    finalized: 7,
                },
                sync_lag_views: 3,
                blocks_committed: 17,
                commit_latency: {
                    let mut h = crate::engine::LatencyHistogram::default();
                    for us in [3_000, 7_000, 40_000, 40_000_000] {
                        h.observe(us);
                    }
                    h
                },
                ..EngineStatus::default()
            },
            mempool_len: 9,
            signer: SignerHealth {
                backend: "memory",
                healthy: true,
                last_error: None,
                sign_latency_us: Some(80),
                probes: 12,
                failures: 1,
            },
            rejected: BTreeMap::from([("bad_signature", 2), ("stale_nonce", 1)]),
            peers: vec![peer("val1", "closed"), peer("val2", "open")],
            process: ProcessStats {
                resident_memory_bytes: Some(30 << 20),
                virtual_memory_bytes: Some(900 << 20),
                cpu_seconds: Some(12.34),
                threads: Some(9),
                start_time_seconds: Some(1_795_456_737.5),
                open_fds: Some(40),
                max_fds: Some(20_000),
            },
            correlation: TrackerStats {
                active: 5,
                completed: 90,
                tracked_total: 100,
                completed_total: 95,
                evicted_capacity_total: 2,
                evicted_age_total: 3,
                max_entries: 65_536,
                max_age_ms: 600_000,
                stage_latency_us: BTreeMap::from([(
                    "executed",
                    crate::trace::tracker::LatencySummary {
                        count: 90,
                        p50: 12_000,
                        p95: 40_000,
                        p99: 80_000,
                        max: 90_000,
                    },
                )]),
            },
        }
    }

    /// Family name -> type, checking each TYPE line has its HELP line just
    /// before it and no family is declared twice.
    fn types(text: &str) -> HashMap<String, String> {
        let mut types = HashMap::new();
        let mut previous = "";
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                let help = previous.strip_prefix("# HELP ").expect("HELP before TYPE");
                let (help_name, help_text) = help.split_once(' ').unwrap();
                assert_eq!(help_name, name);
                assert!(!help_text.trim().is_empty(), "{name} has no help");
                let old = types.insert(name.to_owned(), kind.to_owned());
                assert!(old.is_none(), "{name} declared twice");
            }
            previous = line;
        }
        types
    }

    /// The value of the sample written exactly as `series` (name and labels).
    fn value(text: &str, series: &str) -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
            .parse()
            .unwrap()
    }

    #[test]
    fn every_family_has_its_type() {
        let text = render_inputs(&inputs());
        let types = types(&text);
        let expected = [
            ("bitcraps_up", "gauge"),
            ("bitcraps_height", "gauge"),
            ("bitcraps_view", "gauge"),
            ("bitcraps_tx_committed_total", "counter"),
            ("bitcraps_view_changes_total", "counter"),
            ("bitcraps_sync_lag_views", "gauge"),
            ("bitcraps_evidence_total", "counter"),
            ("bitcraps_signer_healthy", "gauge"),
            ("bitcraps_signer_sign_latency_seconds", "gauge"),
            ("bitcraps_signer_probes_total", "counter"),
            ("bitcraps_signer_probe_failures_total", "counter"),
            ("bitcraps_memory_lock_available", "gauge"),
            ("bitcraps_mlock_failures_total", "counter"),
            ("bitcraps_tx_rejected_total", "counter"),
            ("bitcraps_peer_connected", "gauge"),
            ("bitcraps_peer_breaker", "gauge"),
            ("bitcraps_peer_dropped_messages_total", "counter"),
            ("bitcraps_process_resident_memory_bytes", "gauge"),
            ("bitcraps_process_virtual_memory_bytes", "gauge"),
            ("bitcraps_process_cpu_seconds_total", "counter"),
            ("bitcraps_process_threads", "gauge"),
            ("bitcraps_commit_latency_seconds", "histogram"),
            ("bitcraps_blocks_committed_total", "counter"),
            ("bitcraps_correlation_active", "gauge"),
            ("bitcraps_correlation_completed", "gauge"),
            ("bitcraps_correlation_tracked_total", "counter"),
            ("bitcraps_correlation_completed_total", "counter"),
            ("bitcraps_correlation_evicted_total", "counter"),
            ("bitcraps_correlation_stage_latency_seconds", "gauge"),
            ("bitcraps_process_open_fds", "gauge"),
            ("bitcraps_process_max_fds", "gauge"),
            ("bitcraps_process_start_time_seconds", "gauge"),
        ];
        for (name, kind) in expected {
            assert_eq!(
                types.get(name).map(String::as_str),
                Some(kind),
                "{name}:\n{text}"
            );
        }
        for (name, kind) in &types {
            assert!(name.starts_with("bitcraps_"), "{name}");
            if kind == "counter" {
                assert!(name.ends_with("_total"), "{name}");
            }
        }
    }

    #[test]
    fn new_samples_carry_their_values_and_labels() {
        let text = render_inputs(&inputs());
        let v = |series: &str| value(&text, series);
        assert_eq!(v(r#"bitcraps_view_changes_total{cause="notarized"}"#), 40.0);
        assert_eq!(v(r#"bitcraps_view_changes_total{cause="nullified"}"#), 3.0);
        assert_eq!(v(r#"bitcraps_view_changes_total{cause="finalized"}"#), 7.0);
        assert_eq!(v("bitcraps_sync_lag_views"), 3.0);
        assert_eq!(v(r#"bitcraps_signer_probes_total{backend="memory"}"#), 12.0);
        assert_eq!(
            v(r#"bitcraps_tx_rejected_total{reason="bad_signature"}"#),
            2.0
        );
        assert_eq!(
            v(r#"bitcraps_peer_dropped_messages_total{peer="val2",reason="rate_limited"}"#),
            6.0
        );
        assert_eq!(v("bitcraps_process_resident_memory_bytes"), 31457280.0);
        assert_eq!(v("bitcraps_process_cpu_seconds_total"), 12.34);
        assert_eq!(v("bitcraps_process_start_time_seconds"), 1_795_456_737.5);
        assert_eq!(v("bitcraps_process_open_fds"), 40.0);
        assert_eq!(v("bitcraps_correlation_active"), 5.0);
        // 3 ms and 7 ms are within 10 ms; 40 ms within 50 ms; 40 s above all.
        assert_eq!(
            v(r#"bitcraps_commit_latency_seconds_bucket{le="0.005"}"#),
            1.0
        );
        assert_eq!(
            v(r#"bitcraps_commit_latency_seconds_bucket{le="0.01"}"#),
            2.0
        );
        assert_eq!(
            v(r#"bitcraps_commit_latency_seconds_bucket{le="0.05"}"#),
            3.0
        );
        assert_eq!(v(r#"bitcraps_commit_latency_seconds_bucket{le="30"}"#), 3.0);
        assert_eq!(
            v(r#"bitcraps_commit_latency_seconds_bucket{le="+Inf"}"#),
            4.0
        );
        assert_eq!(v("bitcraps_commit_latency_seconds_count"), 4.0);
        assert_eq!(v("bitcraps_blocks_committed_total"), 17.0);
        assert_eq!(v("bitcraps_commit_latency_seconds_sum"), 40.05);
        assert_eq!(v("bitcraps_correlation_tracked_total"), 100.0);
        assert_eq!(
            v(r#"bitcraps_correlation_evicted_total{reason="age"}"#),
            3.0
        );
        assert_eq!(
            v(r#"bitcraps_correlation_stage_latency_seconds{stage="executed",percentile="99"}"#),
            0.08
        );
    }

    #[test]
    fn every_breaker_state_is_reported() {
        let mut inputs = inputs();
        inputs.peers.push(peer("val3", "some_new_state"));
        let text = render_inputs(&inputs);
        let v = |peer: &str, state: &str| {
            value(
                &text,
                &format!(r#"bitcraps_peer_breaker{{peer="{peer}",state="{state}"}}"#),
            )
        };
        assert_eq!(v("val1", "closed"), 1.0);
        assert_eq!(v("val1", "open"), 0.0);
        assert_eq!(v("val1", "half_open"), 0.0);
        assert_eq!(v("val2", "closed"), 0.0);
        assert_eq!(v("val2", "open"), 1.0);
        assert_eq!(v("val3", "some_new_state"), 1.0);
        assert_eq!(v("val3", "closed"), 0.0);
        // One current state per peer.
        let current = text
            .lines()
            .filter(|l| l.starts_with("bitcraps_peer_breaker{") && l.ends_with(" 1"))
            .count();
        assert_eq!(current, 3, "{text}");
    }

    #[test]
    fn unknown_process_stats_are_omitted() {
        let mut inputs = inputs();
        inputs.process = ProcessStats::default();
        let text = render_inputs(&inputs);
        assert!(!text.contains("bitcraps_process_"), "{text}");
    }

    /// `promtool check metrics` (lint included) on the full exposition,
    /// including the real process metrics of this test process; skipped
    /// when promtool is not installed (the cluster test requires it).
    #[test]
    fn promtool_accepts_the_output() {
        let mut inputs = inputs();
        inputs.process = ProcessStats::read();
        crate::http::prom::assert_promtool_accepts(&render_inputs(&inputs));
    }
}
