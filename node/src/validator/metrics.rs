//! `/metrics`: the validator's state in Prometheus text format. Names carry
//! the `bitcraps_` prefix and base units (`_seconds`, `_bytes`), counters end
//! in `_total`.

use super::service::NodeService;
use crate::http::prom::PromWriter;
use crate::http::NodeApi;

/// A per-peer counter: name, help, and how to read it from a peer's view.
type PeerCounter = (&'static str, &'static str, fn(&crate::api::PeerView) -> u64);

/// Renders every metric of `node`.
pub(super) fn render(node: &NodeService) -> String {
    let s = node.engine().status();
    let mut w = PromWriter::new();
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
        node.engine().mempool_len() as f64,
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
    w.counter(
        "bitcraps_evidence_total",
        "Double-signing evidence observed",
        &[],
        s.evidence,
    );
    let signer = node.signer_health();
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
        "bitcraps_signer_probe_failures_total",
        "Test signatures that failed or did not verify",
        &backend,
        signer.failures,
    );
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
    for (code, n) in node.rejected_by_reason() {
        w.counter(
            "bitcraps_tx_rejected_total",
            "Submitted transactions refused, by reason",
            &[("reason", code)],
            n,
        );
    }
    let peers = node.peers();
    for p in &peers {
        let l = [("peer", p.name.as_str())];
        w.gauge(
            "bitcraps_peer_connected",
            "1 while the connection to the peer is up",
            &l,
            if p.connected { 1.0 } else { 0.0 },
        );
    }
    for p in &peers {
        let l = [("peer", p.name.as_str()), ("state", p.breaker.as_str())];
        w.gauge(
            "bitcraps_peer_breaker",
            "Circuit breaker state of the peer (1 for the current state)",
            &l,
            1.0,
        );
    }
    for p in &peers {
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
    for p in &peers {
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
        for p in &peers {
            w.counter(name, help, &[("peer", p.name.as_str())], get(p));
        }
    }
    w.finish()
}
