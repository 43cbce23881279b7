//! The whole pipeline through real subscribers writing into a buffer: filter,
//! redaction in both formats (event and span fields), JSON context lifting,
//! throttling with summaries, and the extra layer's place in the stack.

use super::*;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use tracing::field::Empty;
use tracing::{info, info_span, warn};

/// A `MakeWriter` appending to a shared buffer.
#[derive(Debug, Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }

    fn json(&self) -> Vec<Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> Self::Writer {
        CaptureWriter(self.0.clone())
    }
}

/// A clock the test advances by hand.
#[derive(Debug, Clone, Default)]
struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    fn millis(&self) -> MillisClock {
        let at = self.0.clone();
        Arc::new(move || at.load(Ordering::SeqCst))
    }
}

fn setup(filter: &str, format: LogFormat) -> LogSetup {
    LogSetup::new(filter, format)
}

/// Runs `f` under the pipeline; returns the output after the guard dropped.
fn run(setup: LogSetup, f: impl FnOnce()) -> Capture {
    let out = Capture::default();
    let (dispatch, guard) = build(setup, out.clone(), false).unwrap();
    tracing::dispatcher::with_default(&dispatch, f);
    drop(guard);
    out
}

const SECRETS: &[&str] = &[
    "hunter2",
    "4321",
    "s33d-bytes",
    "abc123",
    "eyJ0eXAiOiJKV1Qi",
    "MC4CAQAwBQYDK2VwBCIE",
    "correct-horse",
    "sh4re",
];

/// Logs one event with secrets in every place rule 1 and rule 2 cover, inside
/// a span with secret fields set at creation and recorded later.
fn log_secrets() {
    let span = info_span!(
        "unlock",
        user_pin = Empty,
        token_file = "pin.txt",
        peer = "p1"
    );
    span.record("user_pin", 4321);
    let _entered = span.enter();
    let inner = info_span!("keystore", passphrase = "correct-horse");
    let _inner = inner.enter();
    info!(
        password = "hunter2",
        secret_seed = ?"s33d-bytes",
        beacon_share = %"sh4re",
        auth = "Bearer eyJ0eXAiOiJKV1Qi",
        "login with token=abc123 key -----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIE\n-----END PRIVATE KEY-----"
    );
}

fn assert_no_secret(out: &str) {
    for s in SECRETS {
        assert!(!out.contains(s), "{s:?} leaked into:\n{out}");
    }
}

#[test]
fn text_redacts_event_and_span_fields() {
    let out = run(setup("info", LogFormat::Text), log_secrets).text();
    assert_no_secret(&out);
    for want in [
        "unlock{token_file=[redacted] peer=\"p1\" user_pin=[redacted]}",
        "keystore{passphrase=[redacted]}",
        "login with token=[redacted] key [redacted private key]",
        "password=[redacted]",
        "secret_seed=[redacted]",
        "beacon_share=[redacted]",
        "auth=\"Bearer [redacted]\"",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
}

#[test]
fn json_redacts_event_and_span_fields() {
    let out = run(setup("info", LogFormat::Json), log_secrets);
    assert_no_secret(&out.text());
    let lines = out.json();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert_eq!(
        l["message"],
        "login with token=[redacted] key [redacted private key]"
    );
    for key in ["password", "secret_seed", "beacon_share"] {
        assert_eq!(l[key], REDACTED_JSON, "{key}: {l}");
    }
    assert_eq!(l["auth"], "Bearer [redacted]");
    assert_eq!(l["spans"][0]["name"], "unlock");
    assert_eq!(l["spans"][0]["user_pin"], REDACTED_JSON);
    assert_eq!(l["spans"][0]["token_file"], REDACTED_JSON);
    assert_eq!(l["spans"][0]["peer"], "p1");
    assert_eq!(l["spans"][1]["passphrase"], REDACTED_JSON);
}

const REDACTED_JSON: &str = redact::REDACTED;

const PUBLIC_KEY: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const CORRELATION: &str = "0193f3c2-7c1e-7d2a-9a55-3f1f8e9e2b10";

/// Public values under the names the node uses for them.
fn log_public_values() {
    let span = info_span!("http_request", correlation_id = %CORRELATION, path = "/api/v1/tx");
    let _entered = span.enter();
    info!(
        public_key = %PUBLIC_KEY,
        consensus_key = %PUBLIC_KEY,
        new_identity_key = %PUBLIC_KEY,
        pubkey = %PUBLIC_KEY,
        key_id = 7,
        share_index = 2,
        block_hash = %HASH,
        height = 12,
        "validator {PUBLIC_KEY} committed block {HASH}"
    );
}

#[test]
fn public_keys_hashes_and_correlation_ids_are_not_redacted() {
    let text = run(setup("info", LogFormat::Text), log_public_values).text();
    assert!(!text.contains("[redacted]"), "{text}");
    assert!(
        text.contains(&format!("correlation_id={CORRELATION}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("consensus_key={PUBLIC_KEY}")),
        "{text}"
    );
    assert!(text.contains(&format!("block_hash={HASH}")), "{text}");

    let json = run(setup("info", LogFormat::Json), log_public_values).json();
    let l = &json[0];
    assert!(!l.to_string().contains("[redacted]"), "{l}");
    for key in ["public_key", "consensus_key", "new_identity_key", "pubkey"] {
        assert_eq!(l[key], PUBLIC_KEY, "{key}");
    }
    assert_eq!(l["block_hash"], HASH);
    assert_eq!(l["key_id"], 7);
    assert_eq!(l["share_index"], 2);
    assert_eq!(l["correlation_id"], CORRELATION);
    assert_eq!(
        l["message"],
        format!("validator {PUBLIC_KEY} committed block {HASH}")
    );
}

#[test]
fn json_lifts_ids_recorded_after_span_creation() {
    let json = run(setup("info", LogFormat::Json), || {
        let span = info_span!(
            "http_request",
            correlation_id = %CORRELATION,
            trace_id = Empty,
            span_id = Empty
        );
        info!(parent: &span, "before the ids are known");
        span.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
        span.record("span_id", "00f067aa0ba902b7");
        let _entered = span.enter();
        info!(status = 200, "handled");
    })
    .json();
    assert_eq!(json.len(), 2, "{json:?}");
    let early = &json[0];
    assert_eq!(early["correlation_id"], CORRELATION);
    assert!(early.get("trace_id").is_none(), "{early}");

    let l = &json[1];
    assert_eq!(l["correlation_id"], CORRELATION);
    assert_eq!(l["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(l["span_id"], "00f067aa0ba902b7");
    assert_eq!(l["message"], "handled");
    assert_eq!(l["status"], 200);
    assert_eq!(l["level"], "INFO");
    assert_eq!(l["target"], module_path!());
    assert_eq!(l["spans"][0]["name"], "http_request");
    assert_eq!(
        l["spans"][0]["trace_id"],
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    let ts = l["timestamp"].as_str().unwrap();
    assert!(is_rfc3339_utc(ts), "{ts}");
}

fn is_rfc3339_utc(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() == 27
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'.'
        && b[26] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19, 26].contains(&i) || c.is_ascii_digit())
}

#[test]
fn json_takes_the_innermost_span_and_the_event_over_spans() {
    let json = run(setup("info", LogFormat::Json), || {
        let outer = info_span!("outer", correlation_id = "outer-id", trace_id = "t-outer");
        let _o = outer.enter();
        let inner = info_span!("inner", trace_id = Empty);
        let _i = inner.enter();
        info!("no trace id on inner yet");
        inner.record("trace_id", "t-inner");
        info!("inner recorded");
        info!(correlation_id = "event-id", "event overrides");
    })
    .json();
    assert_eq!(json[0]["trace_id"], "t-outer");
    assert_eq!(json[1]["trace_id"], "t-inner");
    assert_eq!(json[1]["correlation_id"], "outer-id");
    assert_eq!(json[2]["correlation_id"], "event-id");
    let names: Vec<_> = json[2]["spans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["outer", "inner"]);
}

#[test]
fn json_renames_fields_that_clash_with_top_level_keys() {
    let json = run(setup("info", LogFormat::Json), || {
        info!(level = "custom", target = 3, "clash");
    })
    .json();
    assert_eq!(json[0]["level"], "INFO");
    assert_eq!(json[0]["field.level"], "custom");
    assert_eq!(json[0]["field.target"], 3);
}

#[test]
fn the_filter_applies_per_module_and_silences_cryptoki() {
    let out = run(
        setup("warn,bitcraps_node::logs::tests=debug", LogFormat::Text),
        || {
            tracing::debug!("debug here");
            tracing::trace!("trace here");
            tracing::info!(target: "elsewhere", "info elsewhere");
            tracing::warn!(target: "elsewhere", "warn elsewhere");
            tracing::error!(target: "cryptoki::mechanism", "unknown mechanism");
        },
    )
    .text();
    assert!(out.contains("debug here"), "{out}");
    assert!(!out.contains("trace here"), "{out}");
    assert!(!out.contains("info elsewhere"), "{out}");
    assert!(out.contains("warn elsewhere"), "{out}");
    assert!(!out.contains("unknown mechanism"), "{out}");

    let named = run(setup("warn,cryptoki=error", LogFormat::Text), || {
        tracing::error!(target: "cryptoki::mechanism", "unknown mechanism");
    })
    .text();
    assert!(named.contains("unknown mechanism"), "{named}");
}

#[test]
fn a_bad_filter_is_an_error() {
    let err = build(setup("info,=[", LogFormat::Text), Capture::default(), false).unwrap_err();
    assert!(err.contains("log level"), "{err}");
}

fn throttled(format: LogFormat, clock: &ManualClock) -> (Capture, Dispatch, LogGuard) {
    let out = Capture::default();
    let mut s = setup("info", format);
    s.throttle = ThrottleConfig {
        burst: 3,
        window_ms: 1_000,
    };
    let (dispatch, guard) = build_with_clock(s, out.clone(), false, clock.millis()).unwrap();
    (out, dispatch, guard)
}

fn count(lines: &[String], needle: &str) -> usize {
    lines.iter().filter(|l| l.contains(needle)).count()
}

#[test]
fn throttle_drops_repeats_and_reports_them() {
    let clock = ManualClock::default();
    let (out, dispatch, guard) = throttled(LogFormat::Text, &clock);
    tracing::dispatcher::with_default(&dispatch, || {
        clock.set(10);
        for i in 0..10 {
            warn!(attempt = i, "peer send failed");
        }
        // Another callsite has its own budget, even mid-flood.
        for _ in 0..3 {
            warn!("another callsite");
        }
        let lines = out.lines();
        assert_eq!(count(&lines, "peer send failed"), 3, "{lines:#?}");
        assert_eq!(count(&lines, "another callsite"), 3, "{lines:#?}");
        assert_eq!(count(&lines, "suppressed"), 0, "{lines:#?}");

        // The flooding callsite goes quiet; any later line reports it.
        clock.set(1_010);
        info!("tick");
        let lines = out.lines();
        let summary = lines
            .iter()
            .position(|l| l.contains("suppressed 7 repeats"))
            .unwrap_or_else(|| panic!("no summary in {lines:#?}"));
        let tick = lines.iter().position(|l| l.contains("tick")).unwrap();
        assert!(summary < tick, "summary after the line that triggered it");
        let line = &lines[summary];
        assert!(line.contains(" WARN "), "{line}");
        assert!(line.contains(module_path!()), "{line}");
        assert!(
            line.contains("repeats of \"peer send failed\" in a 1000 ms window suppressed=7"),
            "{line}"
        );

        // A second flood is held back until shutdown.
        clock.set(5_000);
        for _ in 0..5 {
            warn!("peer send failed again");
        }
    });
    assert_eq!(count(&out.lines(), "suppressed"), 1);
    drop(guard);
    let lines = out.lines();
    assert_eq!(count(&lines, "peer send failed again"), 4, "{lines:#?}");
    assert!(
        lines
            .last()
            .unwrap()
            .contains("suppressed 2 repeats of \"peer send failed again\""),
        "{lines:#?}"
    );
}

#[test]
fn throttle_counts_errors_and_reports_in_json() {
    let clock = ManualClock::default();
    let (out, dispatch, guard) = throttled(LogFormat::Json, &clock);
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..50 {
            tracing::error!(password = "hunter2", "disk full: pin=1234");
        }
        clock.set(2_000);
        info!("after");
    });
    drop(guard);
    let text = out.text();
    assert!(
        !text.contains("hunter2") && !text.contains("1234"),
        "{text}"
    );
    let json = out.json();
    assert_eq!(json.len(), 3 + 1 + 1, "{json:#?}");
    let summary = &json[3];
    assert_eq!(summary["level"], "ERROR");
    assert_eq!(summary["suppressed"], 47);
    assert_eq!(summary["window_ms"], 1_000);
    assert_eq!(summary["suppressed_message"], "disk full: pin=[redacted]");
    assert_eq!(summary["target"], module_path!());
    assert!(is_rfc3339_utc(summary["timestamp"].as_str().unwrap()));
    assert_eq!(json[4]["message"], "after");
}

/// Counts the events an extra layer sees.
#[derive(Debug, Default, Clone)]
struct Counter(Arc<AtomicUsize>);

impl<S: tracing::Subscriber> Layer<S> for Counter {
    fn on_event(&self, _: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_extra_layer_is_filtered_but_not_throttled() {
    let counter = Counter::default();
    let clock = ManualClock::default();
    let out = Capture::default();
    let setup = LogSetup {
        filter: "info".into(),
        format: LogFormat::Json,
        throttle: ThrottleConfig {
            burst: 2,
            window_ms: 1_000,
        },
        extra: Some(Box::new(counter.clone())),
    };
    let (dispatch, guard) = build_with_clock(setup, out.clone(), false, clock.millis()).unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        for _ in 0..10 {
            info!("flood");
            tracing::debug!("filtered out");
        }
    });
    drop(guard);
    assert_eq!(counter.0.load(Ordering::SeqCst), 10);
    // Two lines and the shutdown summary.
    assert_eq!(out.json().len(), 3, "{}", out.text());
}

#[test]
fn text_output_keeps_the_fmt_layout() {
    let out = run(setup("info", LogFormat::Text), || {
        let span = info_span!("http_request", method = "GET");
        let _e = span.enter();
        info!(status = 200, "request");
    })
    .text();
    // `<timestamp>  INFO http_request{method="GET"}: <target>: request status=200`
    let line = out.lines().next().unwrap();
    let (ts, rest) = line.split_once(' ').unwrap();
    assert!(is_rfc3339_utc(ts), "{line}");
    assert_eq!(
        rest,
        format!(
            " INFO http_request{{method=\"GET\"}}: {}: request status=200",
            module_path!()
        )
    );
}
