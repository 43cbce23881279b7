//! `bitcraps bench` end to end: a real 4-validator cluster under a short
//! open-loop load, checked through its `--json` report. Nothing here asserts
//! on speed (the machine is shared and noisy): only that the figures exist,
//! are consistent, and that load was offered and committed.

use std::path::PathBuf;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_bitcraps");

/// Runs `bitcraps` with `args`; kills it (by its own pid) if it is still
/// running after `timeout`. Returns its exit status and output.
fn run_bounded(args: &[String], timeout: Duration) -> (std::process::ExitStatus, String, String) {
    let child = std::process::Command::new(BIN)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn bitcraps bench");
    let pid = child.id().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let out = match rx.recv_timeout(timeout) {
        Ok(out) => out.expect("collect output"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid])
                .status();
            let out = rx
                .recv()
                .expect("output after kill")
                .expect("collect output");
            panic!(
                "bitcraps {args:?} did not finish in {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    };
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn f64_of(v: &serde_json::Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is not a number: {v:#}"))
}

#[test]
fn bench_reports_a_consistent_json() {
    let dir = tempfile::tempdir().unwrap();
    let json: PathBuf = dir.path().join("bench.json");
    let args: Vec<String> = [
        "bench",
        "--validators",
        "4",
        "--duration",
        "5s",
        "--rate",
        "200",
        "--accounts",
        "64",
        "--drain",
        "5s",
        // Every request a POST /api/v1/txs (of what was queued, up to 8).
        "--batch",
        "8",
        "--json",
    ]
    .iter()
    .map(|s| (*s).to_string())
    .chain([json.display().to_string()])
    .chain([
        "--out-dir".to_string(),
        dir.path().join("net").display().to_string(),
    ])
    .collect();
    // 5 s of load, start-up, funding, a 5 s drain at most and shutdown.
    let (status, stdout, stderr) = run_bounded(&args, Duration::from_secs(120));
    assert!(
        status.success(),
        "bitcraps bench exited with {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("report file")).expect("report JSON");
    for key in [
        "committed_tps",
        "offered_tps",
        "latency_ms_p50",
        "latency_ms_p95",
        "latency_ms_p99",
        "latency_ms_max",
        "consensus_latency_ms_p50",
        "cpu_percent",
        "rss_mb_max",
        "validators",
        "rejected",
        "timed_out",
        "duration_s",
        "tx_size_bytes",
        "rate",
        "generator_lag_ms_max",
        "signer_cpu_percent",
        "batch",
    ] {
        assert!(r.get(key).is_some(), "missing {key}: {r:#}");
    }
    assert_eq!(r["validators"], 4, "{r:#}");
    assert_eq!(r["rate"], 200, "{r:#}");
    assert_eq!(r["mode"], "rate", "{r:#}");
    assert_eq!(r["batch"], 8, "{r:#}");
    // Batches carry what queued up: at least one, at most --batch.
    let per_request = f64_of(&r, "tx_per_request");
    assert!((1.0..=8.0).contains(&per_request), "{r:#}");
    assert!(f64_of(&r, "committed_tps") > 0.0, "{r:#}");
    // The schedule offers 200/s; the band only catches a broken generator.
    let offered = f64_of(&r, "offered_tps");
    assert!(
        (100.0..=220.0).contains(&offered),
        "offered {offered}: {r:#}"
    );
    assert_eq!(r["offered"], 1_000, "{r:#}");
    let p: Vec<f64> = [
        "latency_ms_p50",
        "latency_ms_p95",
        "latency_ms_p99",
        "latency_ms_max",
    ]
    .iter()
    .map(|k| f64_of(&r, k))
    .collect();
    assert!(p.windows(2).all(|w| w[0] <= w[1]), "percentiles {p:?}");
    assert!(p[0] > 0.0, "{p:?}");
    assert!(f64_of(&r, "cpu_percent") > 0.0, "{r:#}");
    assert!(f64_of(&r, "rss_mb_max") > 0.0, "{r:#}");
    assert!(r["consensus_latency_ms_p50"].as_u64().is_some(), "{r:#}");
    let nodes = r["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 4);
    for n in nodes {
        assert!(n["rss_mb_max"].as_f64().unwrap() > 0.0, "{n:#}");
        assert!(n["pid"].as_u64().is_some(), "{n:#}");
    }
    assert_eq!(r["cpu_percent_per_node"].as_array().unwrap().len(), 4);
    // Every offered transaction is accounted for.
    let committed = r["committed"].as_u64().unwrap();
    let rejected = r["rejected"].as_u64().unwrap();
    let timed_out = r["timed_out"].as_u64().unwrap();
    assert!(
        committed > 0 && committed + rejected + timed_out >= 1_000,
        "{r:#}"
    );
    let tx_size = r["tx_size_bytes"].as_u64().unwrap();
    assert!((100..=512).contains(&tx_size), "{r:#}");
    assert!(stdout.contains("latency"), "{stdout}");
    assert!(
        stdout.contains("up to 8 tx per POST /api/v1/txs"),
        "{stdout}"
    );
    // No validator left behind.
    assert!(stdout.contains("stopping 4 validators"), "{stdout}");
}

#[test]
fn bad_arguments_fail_cleanly() {
    let to_args = |a: &[&str]| -> Vec<String> { a.iter().map(|s| (*s).to_string()).collect() };
    // Neither --rate nor --saturate, and both: usage errors.
    for bad in [
        to_args(&["bench"]),
        to_args(&["bench", "--rate", "10", "--saturate"]),
        to_args(&["bench", "--rate", "10", "--duration", "48h"]),
        to_args(&["bench", "--rate", "10", "--tx-size", "100000"]),
        to_args(&["bench", "--rate", "10", "--batch", "257"]),
    ] {
        let (status, _, stderr) = run_bounded(&bad, Duration::from_secs(30));
        assert_eq!(status.code(), Some(2), "{bad:?}: {stderr}");
        assert!(stderr.contains("error"), "{bad:?}: {stderr}");
    }
}

/// `--tracing-overhead` runs the load twice, the second time exporting every
/// span to the bench's own OTLP sink, and reports both and their ratio.
#[test]
fn tracing_overhead_compares_export_off_and_on() {
    let dir = tempfile::tempdir().unwrap();
    let json: PathBuf = dir.path().join("overhead.json");
    let args: Vec<String> = [
        "bench",
        "--validators",
        "4",
        "--duration",
        "4s",
        "--rate",
        "100",
        "--tracing-overhead",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([json.display().to_string()])
    .collect();
    let (status, stdout, stderr) = run_bounded(&args, Duration::from_secs(120));
    assert!(status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).expect("report is JSON");
    assert_eq!(v["mode"], "tracing_overhead", "{v:#}");
    let t = &v["tracing_overhead"];
    let off = f64_of(t, "committed_tps_off");
    let on = f64_of(t, "committed_tps_on");
    assert!(off > 0.0 && on > 0.0, "{t:#}");
    let ratio = f64_of(t, "throughput_ratio");
    assert!((ratio - on / off).abs() < 0.01, "{t:#}");
    // The validators really exported: the sink received span batches.
    assert!(f64_of(t, "export_requests") >= 1.0, "{t:#}");
    assert!(f64_of(t, "export_bytes") > 0.0, "{t:#}");
    assert!(stdout.contains("tracing overhead:"), "{stdout}");
}
