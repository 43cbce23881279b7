//! One bet, followed across a real 4-validator cluster: OTLP spans received
//! by a real OTLP/HTTP receiver (`scripts/otlp-receiver.py`, decoding with
//! the official `opentelemetry-proto` messages), the correlation API of every
//! node, `bitcraps trace`, and the nodes' JSON logs must all tell the story
//! of the same correlation id.
//!
//! What "one trace" means here: every span whose trace id is the bet's
//! correlation id comes from one of the 4 validators, there is exactly one
//! root (the origin's `POST /api/v1/tx` request span), every other span's
//! parent is a span of the same trace, every validator contributes the
//! consensus stages (vote, certify, commit, execute, settle), the origin also
//! the admission stages, the proposer (any validator: transactions are
//! gossiped) batch and propose, and each validator's `block` span links to
//! the request span.
//!
//! Deadlines are failure bounds only (the machine is shared).

#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

#[path = "support/play_cli.rs"]
mod play_cli;

use bitcraps_node::home::{testnet_init, TestnetOptions};
use bitcraps_node::localnet::Cluster;
use play_cli::{ok, BIN};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const VALIDATORS: usize = 4;

/// The Python OTLP receiver, killed on drop.
struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Receiver {
    fn start(dir: &Path) -> Receiver {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/otlp-receiver.py");
        let out = dir.join("spans.jsonl");
        let mut child = Command::new("python3")
            .arg(&script)
            .arg("--port")
            .arg("0")
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "python3 must be installed (scripts/test.sh installs it with opentelemetry-proto)",
            );
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        let Some(port) = first
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "the OTLP receiver did not start (is opentelemetry-proto installed? scripts/test.sh installs it): {first}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        };
        Receiver { child, port, out }
    }

    fn spans(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Polls `check` until it returns Some, at most `limit`.
fn eventually<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match check() {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => panic!("{what}: {last}"),
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

fn get_json(url: &str) -> Result<Value, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = reqwest::get(url).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{url}: {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("{url}: {e}: {body}"))
    })
}

#[test]
fn one_bet_is_one_trace_across_all_validators() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(dir.path());
    let tn = testnet_init(&TestnetOptions {
        validators: VALIDATORS,
        out_dir: dir.path().join("net"),
        roll_interval_ms: 200,
        ..TestnetOptions::default()
    })
    .unwrap();
    let mut cluster = Cluster::create(
        Path::new(BIN),
        &tn,
        &[
            "--log-level".into(),
            "info,bitcraps_node::trace=debug".into(),
        ],
    )
    .unwrap();
    cluster.set_env(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        format!("http://127.0.0.1:{}", receiver.port),
    );
    // Export every 100 ms instead of every 5 s.
    cluster.set_env("OTEL_BSP_SCHEDULE_DELAY", "100");
    cluster.start_all().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Err((i, e)) = rt.block_on(cluster.wait_all_ready(60_000)) {
        panic!("node {i} not ready: {e}\n{}", cluster.log_tail(i, 30));
    }
    let urls: Vec<String> = (0..VALIDATORS).map(|i| cluster.http_url(i)).collect();
    let url = urls[0].as_str();

    // A house with a table and a funded player, all through validator 0.
    let house_key = dir.path().join("house.key");
    let player_key = dir.path().join("player.key");
    let public = |key: &Path| {
        ok(url, Some(key), &["--json", "key"]).json()["public_key"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (house, player) = (public(&house_key), public(&player_key));
    for to in [&house, &player] {
        ok(
            url,
            Some(&tn.faucet_key_path),
            &["transfer", "--to", to, "--amount", "1000000"],
        );
    }
    let opened = ok(
        url,
        Some(&house_key),
        &[
            "--json",
            "open",
            "--bankroll",
            "500000",
            "--min-bet",
            "1",
            "--max-bet",
            "1000",
        ],
    )
    .json();
    let table = opened["table"].as_u64().expect("table id").to_string();

    // The bet: a one-roll field bet, settled by the next roll.
    let bet = ok(
        url,
        Some(&player_key),
        &["--json", "bet", "--table", &table, "field", "5"],
    )
    .json();
    assert_eq!(bet["ok"], true, "{bet}");
    let id = bet["correlation_id"]
        .as_str()
        .expect("correlation id")
        .to_owned();
    let trace_id = id.replace('-', "");
    let tx_hash = bet["hash"].as_str().unwrap().to_owned();

    // Every validator's tracker sees the bet through to its settlement.
    let timelines: Vec<Value> = urls
        .iter()
        .map(|u| {
            eventually(Duration::from_secs(60), "bet settled on every node", || {
                let v = get_json(&format!("{u}/api/v1/correlation/{id}"))?;
                let entry = v["entries"]
                    .as_array()
                    .and_then(|e| e.iter().find(|t| t["tx_hash"] == tx_hash.as_str()))
                    .cloned()
                    .ok_or_else(|| format!("{u}: no entry for the bet: {v}"))?;
                let settled = entry["stages"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["stage"] == "settled"));
                if settled {
                    Ok(entry)
                } else {
                    Err(format!("{u}: not settled yet: {entry}"))
                }
            })
        })
        .collect();
    for (i, t) in timelines.iter().enumerate() {
        assert_eq!(t["outcome"], "accepted", "validator {i}: {t}");
        let stages: BTreeSet<&str> = t["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stage"].as_str().unwrap())
            .collect();
        for s in [
            "proposed",
            "voted",
            "certified",
            "committed",
            "executed",
            "settled",
        ] {
            assert!(stages.contains(s), "validator {i} lacks {s}: {t}");
        }
        if i == 0 {
            for s in ["received", "admitted", "verified", "mempool"] {
                assert!(stages.contains(s), "origin lacks {s}: {t}");
            }
        }
    }

    // The OTLP receiver holds one trace for the bet, spanning all validators.
    let spans = eventually(Duration::from_secs(30), "the bet's spans", || {
        let spans: Vec<Value> = receiver
            .spans()
            .into_iter()
            .filter(|s| s["trace_id"] == trace_id.as_str())
            .collect();
        let settles = spans.iter().filter(|s| s["name"] == "settle").count();
        if settles >= VALIDATORS {
            Ok(spans)
        } else {
            Err(format!("{settles} settle spans so far: {spans:?}"))
        }
    });
    let roots: Vec<&Value> = spans.iter().filter(|s| s["parent_span_id"] == "").collect();
    assert_eq!(roots.len(), 1, "one root span: {roots:?}");
    let root = roots[0];
    assert_eq!(root["name"], "POST /api/v1/tx", "{root}");
    let origin = root["service_instance"].as_str().unwrap().to_owned();
    let ids: BTreeSet<&str> = spans
        .iter()
        .map(|s| s["span_id"].as_str().unwrap())
        .collect();
    for s in &spans {
        let parent = s["parent_span_id"].as_str().unwrap();
        assert!(
            parent.is_empty() || ids.contains(parent),
            "a span whose parent is not in the trace: {s}"
        );
    }
    let mut by_node: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &spans {
        by_node
            .entry(s["service_instance"].as_str().unwrap().to_owned())
            .or_default()
            .insert(s["name"].as_str().unwrap().to_owned());
    }
    assert_eq!(
        by_node.len(),
        VALIDATORS,
        "spans from every validator: {by_node:?}"
    );
    for (node, names) in &by_node {
        for n in ["vote", "certify", "commit", "execute", "settle"] {
            assert!(names.contains(n), "{node} has no {n} span: {names:?}");
        }
    }
    for n in ["admit", "verify", "mempool"] {
        assert!(
            by_node[&origin].contains(n),
            "origin {origin} has no {n} span"
        );
    }
    // Gossip put the bet in every mempool: whichever validator led next
    // batched and proposed it.
    assert!(
        by_node.values().any(|n| n.contains("batch")),
        "no validator batched the bet: {by_node:?}"
    );
    assert!(
        by_node.values().any(|n| n.contains("propose")),
        "{by_node:?}"
    );
    // Each validator's block span for the bet's block links to the request.
    let root_id = root["span_id"].as_str().unwrap();
    let linked: BTreeSet<String> = receiver
        .spans()
        .iter()
        .filter(|s| s["name"] == "block")
        .filter(|s| {
            s["links"].as_array().is_some_and(|l| {
                l.iter()
                    .any(|l| l["trace_id"] == trace_id.as_str() && l["span_id"] == root_id)
            })
        })
        .map(|s| s["service_instance"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        linked.len(),
        VALIDATORS,
        "block spans linking the bet: {linked:?}"
    );

    // `bitcraps trace` merges the four views into one timeline.
    let out = Command::new(BIN)
        .args(["trace", &id, "--nodes", &urls.join(","), "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    let events = merged["events"].as_array().expect("events");
    let settled_on: BTreeSet<u64> = events
        .iter()
        .filter(|e| e["stage"] == "settled")
        .filter_map(|e| e["validator"].as_u64())
        .collect();
    assert_eq!(settled_on.len(), VALIDATORS, "{merged}");
    let offsets: Vec<f64> = events
        .iter()
        .map(|e| e["offset_ms"].as_f64().unwrap())
        .collect();
    assert!(
        offsets.windows(2).all(|w| w[0] <= w[1]),
        "sorted by time: {offsets:?}"
    );

    // The JSON logs of every validator carry the id.
    for i in 0..VALIDATORS {
        let log = std::fs::read_to_string(cluster.log_path(i)).unwrap();
        let line = log
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["correlation_id"] == id.as_str())
            .unwrap_or_else(|| panic!("validator {i}: no JSON log line with the id"));
        assert_eq!(line["trace_id"], trace_id.as_str(), "{line}");
    }
    cluster.stop_all();
}
