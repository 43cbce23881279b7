//! A real Prometheus server scrapes a real localnet: four `bitcraps start`
//! processes on loopback, one `prometheus` process scraping every node's
//! `/metrics` each second. Checks through Prometheus's HTTP API that every
//! target is up with no scrape error, that every node's height rises, and
//! that the view-change, sync-lag and process families arrive for every
//! validator (including the CPU counter, which is rendered outside the
//! exposition writer).
//!
//! `prometheus` (Debian package `prometheus`, installed by scripts/test.sh)
//! is required: without it the test fails, it never passes silently.
//! Deadlines are failure bounds only; on an idle machine the test takes
//! about ten seconds.

#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitcraps_node::home::{testnet_init, TestnetOptions};
use bitcraps_node::localnet::Cluster;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::time::{sleep, Instant};

const VALIDATORS: usize = 4;
/// Bound on the validators' start-up (all four, concurrently).
const NODES_READY_MS: u64 = 20_000;
/// Bound on each wait for Prometheus (ready, first scrapes, height rising).
const DEADLINE: Duration = Duration::from_secs(15);
const POLL: Duration = Duration::from_millis(250);
/// Start attempts when the picked port is taken before Prometheus binds it.
const START_ATTEMPTS: usize = 3;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bitcraps"))
}

/// A running `prometheus`, killed and reaped on drop (also when the test
/// panics). The validators are the [`Cluster`]'s, which does the same.
#[derive(Debug)]
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Prometheus {
    /// The last lines of its log, for failure messages.
    fn log_tail(&self) -> String {
        bitcraps_node::localnet::cluster::read_tail(&self.log, 30)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago (bound, then released).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Fails the test, clearly, when the `prometheus` binary cannot be run.
fn require_prometheus() {
    match Command::new("prometheus").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`prometheus --version` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "this test needs the Prometheus server: `prometheus` could not be run ({e}); \
             install it with `apt-get install prometheus` (scripts/test.sh does)"
        ),
    }
}

/// `prometheus.yml`: one job scraping every validator each second, each
/// target labelled with the validator's name.
fn config(targets: &[(String, String)]) -> String {
    let mut yml = String::from(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         scrape_configs:\n  - job_name: bitcraps\n    metrics_path: /metrics\n    static_configs:\n",
    );
    for (name, addr) in targets {
        yml.push_str(&format!(
            "      - targets: ['{addr}']\n        labels:\n          validator: '{name}'\n"
        ));
    }
    yml
}

/// Starts Prometheus on a free port and waits for `/-/ready`; picks another
/// port when the first one was taken in between.
async fn start_prometheus(http: &reqwest::Client, dir: &Path, config_path: &Path) -> Prometheus {
    let mut last_failure = String::new();
    for attempt in 0..START_ATTEMPTS {
        let port = free_port();
        let log = dir.join(format!("prometheus-{attempt}.log"));
        let log_file = std::fs::File::create(&log).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join(format!("data-{attempt}")).display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting prometheus: {e}"));
        let mut prom = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        };
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = prom.child.try_wait().unwrap() {
                let tail = prom.log_tail();
                if tail.contains("address already in use") {
                    last_failure = format!("port {port} taken:\n{tail}");
                    break;
                }
                panic!("prometheus exited with {status}:\n{tail}");
            }
            let ready = http.get(format!("{}/-/ready", prom.url)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return prom;
            }
            assert!(
                Instant::now() < end,
                "prometheus not ready within {DEADLINE:?}:\n{}",
                prom.log_tail()
            );
            sleep(POLL).await;
        }
    }
    panic!("prometheus could not start in {START_ATTEMPTS} attempts; last: {last_failure}");
}

/// Percent-encodes a query-string value (everything but RFC 3986
/// unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET path` on Prometheus's API; the `data` of a `"status": "success"`
/// answer.
async fn api(http: &reqwest::Client, prom: &Prometheus, path: &str) -> Result<Value, String> {
    let url = format!("{}{path}", prom.url);
    let resp = http
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let body: Value = resp.json().await.map_err(|e| format!("{url}: {e}"))?;
    if body["status"] != "success" {
        return Err(format!("{url}: {body}"));
    }
    Ok(body["data"].clone())
}

/// One instant-query result series: its labels and value.
#[derive(Debug, Clone)]
struct Series {
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Runs an instant query; the series of its vector result.
async fn query(
    http: &reqwest::Client,
    prom: &Prometheus,
    promql: &str,
) -> Result<Vec<Series>, String> {
    let data = api(
        http,
        prom,
        &format!("/api/v1/query?query={}", encode(promql)),
    )
    .await?;
    if data["resultType"] != "vector" {
        return Err(format!("{promql}: not a vector: {data}"));
    }
    let result = data["result"].as_array().cloned().unwrap_or_default();
    result
        .iter()
        .map(|s| {
            let labels = s["metric"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            // Values come as `[unix_time, "value"]`.
            let value = s["value"][1]
                .as_str()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{promql}: bad sample {s}"))?;
            Ok(Series { labels, value })
        })
        .collect()
}

/// The value per `validator` label of a query that yields one series per
/// validator (an error if a validator has several).
async fn per_validator(
    http: &reqwest::Client,
    prom: &Prometheus,
    promql: &str,
) -> Result<BTreeMap<String, f64>, String> {
    let mut out = BTreeMap::new();
    for s in query(http, prom, promql).await? {
        let name = s.labels.get("validator").cloned().unwrap_or_default();
        if out.insert(name.clone(), s.value).is_some() {
            return Err(format!("{promql}: two series for validator {name:?}"));
        }
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_validator() {
    require_prometheus();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let tn = testnet_init(&TestnetOptions {
        validators: VALIDATORS,
        out_dir: dir.path().join("net"),
        ..TestnetOptions::default()
    })
    .unwrap();
    let cluster = Cluster::start(bin(), &tn, &[]).unwrap();
    if let Err((i, e)) = cluster.wait_all_ready(NODES_READY_MS).await {
        panic!("node {i} not ready: {e}\n{}", cluster.log_tail(i, 30));
    }
    let names: BTreeSet<String> = (0..VALIDATORS)
        .map(|i| cluster.name(i).to_owned())
        .collect();
    assert_eq!(names.len(), VALIDATORS, "validator names must differ");
    let targets: Vec<(String, String)> = (0..VALIDATORS)
        .map(|i| {
            (
                cluster.name(i).to_owned(),
                cluster.node(i).http_addr.to_string(),
            )
        })
        .collect();
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config(&targets)).unwrap();

    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let prom = start_prometheus(&http, dir.path(), &config_path).await;

    // Every target scraped successfully: health "up", no error.
    let end = Instant::now() + DEADLINE;
    let targets = loop {
        let data = api(&http, &prom, "/api/v1/targets?state=active").await;
        let active = data
            .as_ref()
            .ok()
            .and_then(|d| d["activeTargets"].as_array().cloned())
            .unwrap_or_default();
        let all_up = active.len() == VALIDATORS && active.iter().all(|t| t["health"] == "up");
        if all_up {
            break active;
        }
        assert!(
            Instant::now() < end,
            "targets not all up within {DEADLINE:?}: {data:?}\nprometheus log:\n{}",
            prom.log_tail()
        );
        sleep(POLL).await;
    };
    let scraped: BTreeSet<String> = targets
        .iter()
        .map(|t| {
            assert_eq!(t["lastError"], "", "scrape error: {t}");
            assert_eq!(t["scrapePool"], "bitcraps", "{t}");
            t["labels"]["validator"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(scraped, names);
    let up = per_validator(&http, &prom, r#"up{job="bitcraps"}"#)
        .await
        .unwrap();
    assert_eq!(up.keys().cloned().collect::<BTreeSet<_>>(), names, "{up:?}");
    assert!(up.values().all(|&v| v == 1.0), "{up:?}");

    // Every validator reports a height, and every height rises.
    let end = Instant::now() + DEADLINE;
    let first = loop {
        let heights = per_validator(&http, &prom, "bitcraps_height").await;
        match heights {
            Ok(h) if h.len() == VALIDATORS => break h,
            other => assert!(
                Instant::now() < end,
                "no height from every validator within {DEADLINE:?}: {other:?}"
            ),
        }
        sleep(POLL).await;
    };
    assert_eq!(first.keys().cloned().collect::<BTreeSet<_>>(), names);
    let end = Instant::now() + DEADLINE;
    loop {
        let now = per_validator(&http, &prom, "bitcraps_height")
            .await
            .unwrap();
        let stuck: Vec<&String> = first
            .iter()
            .filter(|(name, h)| now.get(*name).is_none_or(|n| n <= *h))
            .map(|(name, _)| name)
            .collect();
        if stuck.is_empty() {
            break;
        }
        assert!(
            Instant::now() < end,
            "height did not rise within {DEADLINE:?} on {stuck:?}: first {first:?}, now {now:?}"
        );
        sleep(POLL).await;
    }

    // The new families, for every validator.
    let rss = per_validator(&http, &prom, "bitcraps_process_resident_memory_bytes")
        .await
        .unwrap();
    assert_eq!(
        rss.keys().cloned().collect::<BTreeSet<_>>(),
        names,
        "{rss:?}"
    );
    assert!(rss.values().all(|&b| b > 1e6), "{rss:?}");
    let cpu = per_validator(&http, &prom, "bitcraps_process_cpu_seconds_total")
        .await
        .unwrap();
    assert_eq!(
        cpu.keys().cloned().collect::<BTreeSet<_>>(),
        names,
        "{cpu:?}"
    );
    assert!(cpu.values().all(|&s| s > 0.0), "{cpu:?}");
    let lag = per_validator(&http, &prom, "bitcraps_sync_lag_views")
        .await
        .unwrap();
    assert_eq!(
        lag.keys().cloned().collect::<BTreeSet<_>>(),
        names,
        "{lag:?}"
    );
    let views = query(&http, &prom, "bitcraps_view_changes_total")
        .await
        .unwrap();
    for name in &names {
        let causes: BTreeSet<&str> = views
            .iter()
            .filter(|s| s.labels.get("validator") == Some(name))
            .map(|s| s.labels["cause"].as_str())
            .collect();
        assert_eq!(
            causes,
            BTreeSet::from(["finalized", "notarized", "nullified"]),
            "{name}: {views:?}"
        );
    }
    // Committed blocks came from notarized views on every node.
    let notarized = per_validator(
        &http,
        &prom,
        r#"bitcraps_view_changes_total{cause="notarized"}"#,
    )
    .await
    .unwrap();
    assert_eq!(notarized.len(), VALIDATORS, "{notarized:?}");
    assert!(notarized.values().all(|&n| n > 0.0), "{notarized:?}");

    eprintln!("prometheus test took {:?}", started.elapsed());
    drop(prom);
    drop(cluster);
}
