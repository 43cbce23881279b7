//! `bitcraps trace ID --nodes URL[,URL...]`: one transaction's journey
//! through the cluster, merged from every node's correlation tracker.
//!
//! Each node answers `GET /api/v1/correlation/{id}` with the stages *it* saw
//! (the origin node: received through executed; the others: from the mempool
//! or the proposal on). This command asks every listed node at once, each
//! with its own deadline, and merges the answers into one timeline sorted by
//! time, relative to the earliest stage any node recorded. The times are the
//! nodes' wall clocks, so offsets across nodes are only as good as their
//! clock sync (NTP keeps it to about a millisecond on a LAN).
//!
//! A node that is down, answers an error or has no record is listed as such;
//! the command fails (exit 1) only when no node knows the id. An id that is
//! not a UUID is a usage error (exit 2) and sends no request.
//!
//! Fetching is async (reqwest); merging and printing are pure functions
//! ([`merge`], [`render_text`], [`render_json`]) so they are tested without a
//! network.

use super::{emit, error_chain, CliResult, Context};
use bitcraps_node::api::CorrelationView;
use bitcraps_node::trace::tracker::Stage;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;
use uuid::Uuid;

/// Deadline of each node's request, connect included.
const NODE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read from one node (bytes). A full answer (16
/// transactions × 11 stages) is a few KiB.
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Most nodes asked in one command (a cluster's worth; each is one request).
const MAX_NODES: usize = 256;
/// Longest error text kept from a node's answer (characters).
const MAX_ERROR_CHARS: usize = 200;
/// The message of the server's 404 for a path no route matches
/// (`http::handlers::not_found`).
const NO_SUCH_ROUTE: &str = "no such route";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The correlation id: the `x-correlation-id` the transaction was
    /// submitted with (a UUID).
    #[arg(value_name = "ID", value_parser = parse_id)]
    id: Uuid,
    /// Node HTTP URLs, comma-separated or repeated, e.g.
    /// `http://127.0.0.1:9480,http://127.0.0.1:9481` (`http://` may be left out).
    #[arg(long, value_name = "URL", value_delimiter = ',', required = true)]
    nodes: Vec<String>,
    /// Print one JSON object: {correlation_id, nodes, events}.
    #[arg(long)]
    json: bool,
}

/// clap value parser: any textual UUID form `uuid` accepts.
fn parse_id(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text.trim()).map_err(|e| {
        format!("not a UUID ({e}); expected e.g. 67e55044-10b1-426f-9247-bb680e5fe0c8")
    })
}

/// `host:port` or a URL, without a trailing slash; `http://` is assumed.
fn base_url(text: &str) -> Option<String> {
    let t = text.trim().trim_end_matches('/');
    if t.is_empty() {
        return None;
    }
    Some(if t.contains("://") {
        t.to_owned()
    } else {
        format!("http://{t}")
    })
}

pub fn run(_ctx: &Context, args: Args) -> CliResult {
    let nodes: Vec<String> = args.nodes.iter().filter_map(|n| base_url(n)).collect();
    if nodes.is_empty() {
        return Err("--nodes lists no URL".into());
    }
    if nodes.len() > MAX_NODES {
        return Err(format!("--nodes lists {} URLs; at most {MAX_NODES}", nodes.len()).into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting the tokio runtime: {e}"))?;
    let reports = runtime.block_on(fetch_all(args.id, nodes))?;
    let merged = merge(args.id, &reports);
    if merged.events.is_empty() {
        return Err(no_record_message(args.id, &reports).into());
    }
    if args.json {
        let value = render_json(&merged);
        let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
        emit(&format!("{text}\n"))
    } else {
        emit(&render_text(&merged))
    }
}

/// What one node answered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// 200: its record of the id.
    Found(CorrelationView),
    /// 404: it has no record (never saw the tx, or already forgot it).
    NoRecord,
    /// No answer in time, or one that is not a record.
    Failed(String),
}

/// One node's URL and answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NodeReport {
    pub url: String,
    pub answer: Answer,
}

/// Asks every node at once; the reports come back in `nodes` order.
async fn fetch_all(id: Uuid, nodes: Vec<String>) -> CliResult<Vec<NodeReport>> {
    let client = reqwest::Client::builder()
        .timeout(NODE_TIMEOUT)
        .build()
        .map_err(|e| format!("building the HTTP client: {e}"))?;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, url) in nodes.iter().enumerate() {
        let client = client.clone();
        let url = url.clone();
        tasks.spawn(async move { (i, fetch_one(&client, &url, id).await) });
    }
    let mut answers: Vec<Option<Answer>> = vec![None; nodes.len()];
    while let Some(joined) = tasks.join_next().await {
        let (i, answer) = joined.map_err(|e| format!("a request task failed: {e}"))?;
        answers[i] = Some(answer);
    }
    Ok(nodes
        .into_iter()
        .zip(answers)
        .map(|(url, answer)| NodeReport {
            url,
            answer: answer.unwrap_or_else(|| Answer::Failed("no answer".into())),
        })
        .collect())
}

async fn fetch_one(client: &reqwest::Client, base: &str, id: Uuid) -> Answer {
    let url = format!("{base}/api/v1/correlation/{}", id.hyphenated());
    let mut response = match client.get(&url).send().await {
        Ok(r) => r,
        Err(e) => return Answer::Failed(format!("unreachable: {}", error_chain(&e))),
    };
    let code = response.status();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY_BYTES {
                    return Answer::Failed(format!("answer larger than {MAX_BODY_BYTES} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) => return Answer::Failed(format!("reading the answer: {}", error_chain(&e))),
        }
    }
    // The API's error body is {"error", "message"}; show the message.
    let message = || {
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned())
    };
    if code == reqwest::StatusCode::NOT_FOUND {
        // The router's fallback, not the route: a node without it.
        if message() == NO_SUCH_ROUTE {
            return Answer::Failed("does not serve /api/v1/correlation (an older version?)".into());
        }
        return Answer::NoRecord;
    }
    if !code.is_success() {
        let message = message();
        let message: String = message.chars().take(MAX_ERROR_CHARS).collect();
        return Answer::Failed(format!("answered {code}: {message}"));
    }
    match serde_json::from_slice::<CorrelationView>(&body) {
        Ok(view) if view.correlation_id == id => Answer::Found(view),
        Ok(view) => Answer::Failed(format!(
            "answered for correlation id {} instead",
            view.correlation_id
        )),
        Err(e) => Answer::Failed(format!("not a correlation record: {e}")),
    }
}

/// Exit-1 message when no node knows the id: what each node said.
fn no_record_message(id: Uuid, reports: &[NodeReport]) -> String {
    let each: Vec<String> = reports
        .iter()
        .map(|r| match &r.answer {
            Answer::Found(_) | Answer::NoRecord => format!("{} has no record", r.url),
            Answer::Failed(e) => format!("{}: {e}", r.url),
        })
        .collect();
    format!(
        "no node has a record of correlation id {id} ({}); it may be mistyped, or older than the nodes' [correlation] max_age_ms",
        each.join("; ")
    )
}

/// One stage one node saw.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub node: String,
    pub validator: u16,
    pub tx_hash: String,
    pub stage: String,
    pub at_unix_us: u64,
    /// Milliseconds after the earliest stage of the same transaction on any node.
    pub offset_ms: f64,
}

/// One transaction under the id, as the nodes together saw it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TxSummary {
    pub tx_hash: String,
    /// Every distinct height/outcome the nodes reported (more than one means
    /// they disagree, which is worth seeing).
    pub heights: Vec<u64>,
    pub outcomes: Vec<String>,
    /// Per node that saw it: (node name, executed, its latest stage).
    pub nodes: Vec<(String, bool, Option<String>)>,
}

/// Everything the command prints.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Merged {
    pub correlation_id: Uuid,
    pub reports: Vec<NodeReport>,
    /// Transactions in order of their first event.
    pub txs: Vec<TxSummary>,
    /// Sorted by transaction (as `txs`), then time, then stage order, then node.
    pub events: Vec<Event>,
}

/// Position of a stage name in the pipeline; names this build does not know
/// (a newer node) sort after the known ones.
fn stage_rank(name: &str) -> usize {
    Stage::ALL
        .iter()
        .position(|s| s.as_str() == name)
        .unwrap_or(Stage::ALL.len())
}

/// Merges the nodes' records of `id` into per-transaction timelines.
pub(crate) fn merge(id: Uuid, reports: &[NodeReport]) -> Merged {
    // tx hash -> (events, summary), built in one pass over every record.
    let mut by_tx: BTreeMap<&str, (Vec<Event>, TxSummary)> = BTreeMap::new();
    for report in reports {
        let Answer::Found(view) = &report.answer else {
            continue;
        };
        for entry in &view.entries {
            let (events, summary) = by_tx.entry(&entry.tx_hash).or_insert_with(|| {
                (
                    Vec::new(),
                    TxSummary {
                        tx_hash: entry.tx_hash.clone(),
                        heights: Vec::new(),
                        outcomes: Vec::new(),
                        nodes: Vec::new(),
                    },
                )
            });
            if let Some(h) = entry.height.filter(|h| !summary.heights.contains(h)) {
                summary.heights.push(h);
            }
            if let Some(o) = entry
                .outcome
                .as_ref()
                .filter(|o| !summary.outcomes.contains(o))
            {
                summary.outcomes.push(o.clone());
            }
            let latest = entry
                .stages
                .iter()
                .max_by_key(|s| (s.at_unix_us, stage_rank(&s.stage)))
                .map(|s| s.stage.clone());
            summary
                .nodes
                .push((view.node.clone(), entry.completed, latest));
            events.extend(entry.stages.iter().map(|s| Event {
                node: view.node.clone(),
                validator: view.validator,
                tx_hash: entry.tx_hash.clone(),
                stage: s.stage.clone(),
                at_unix_us: s.at_unix_us,
                offset_ms: 0.0,
            }));
        }
    }
    let mut groups: Vec<(Vec<Event>, TxSummary)> = by_tx.into_values().collect();
    for (events, _) in &mut groups {
        events.sort_by(|a, b| {
            (a.at_unix_us, stage_rank(&a.stage), a.validator, &a.node).cmp(&(
                b.at_unix_us,
                stage_rank(&b.stage),
                b.validator,
                &b.node,
            ))
        });
        let start = events.first().map_or(0, |e| e.at_unix_us);
        for e in events.iter_mut() {
            e.offset_ms = e.at_unix_us.saturating_sub(start) as f64 / 1_000.0;
        }
    }
    groups.sort_by_key(|(events, s)| (events.first().map(|e| e.at_unix_us), s.tx_hash.clone()));
    let mut txs = Vec::with_capacity(groups.len());
    let mut events = Vec::new();
    for (e, s) in groups {
        events.extend(e);
        txs.push(s);
    }
    Merged {
        correlation_id: id,
        reports: reports.to_vec(),
        txs,
        events,
    }
}

/// `a, b` or `-`.
fn list_or_dash<T: ToString>(values: &[T]) -> String {
    if values.is_empty() {
        "-".to_owned()
    } else {
        values
            .iter()
            .map(T::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// First 8 hex characters of a transaction hash.
fn short(hash: &str) -> &str {
    hash.get(..8).unwrap_or(hash)
}

/// The human-readable timeline: per transaction a header line, one row per
/// (node, stage) and a completion line naming every node asked.
pub(crate) fn render_text(m: &Merged) -> String {
    let width = m.events.iter().map(|e| e.node.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (i, tx) in m.txs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "correlation {}  tx {}  height {}  outcome {}",
            m.correlation_id,
            short(&tx.tx_hash),
            list_or_dash(&tx.heights),
            list_or_dash(&tx.outcomes),
        );
        for e in m.events.iter().filter(|e| e.tx_hash == tx.tx_hash) {
            let _ = writeln!(
                out,
                "+{:>9.3} ms  {:<width$}  {}",
                e.offset_ms, e.node, e.stage
            );
        }
        let _ = writeln!(out, "{}", completion_line(m, tx));
    }
    out
}

/// `completion: val0 executed; val2 not executed (last: certified); URL no record; ...`
fn completion_line(m: &Merged, tx: &TxSummary) -> String {
    let mut parts = Vec::new();
    for report in &m.reports {
        match &report.answer {
            Answer::Found(view) => {
                // A node may have several txs under the id; this one's status.
                match tx.nodes.iter().find(|(n, _, _)| *n == view.node) {
                    Some((n, true, _)) => parts.push(format!("{n} executed")),
                    Some((n, false, latest)) => parts.push(format!(
                        "{n} not executed (last: {})",
                        latest.as_deref().unwrap_or("-")
                    )),
                    None => parts.push(format!("{} no record of this tx", view.node)),
                }
            }
            Answer::NoRecord => parts.push(format!("{} no record", report.url)),
            Answer::Failed(e) => parts.push(format!("{} {e}", report.url)),
        }
    }
    let done = tx.nodes.iter().filter(|(_, executed, _)| *executed).count();
    format!(
        "completion: executed on {done} of {} nodes: {}",
        m.reports.len(),
        parts.join("; ")
    )
}

/// The `--json` object: `{correlation_id, nodes: [...], events: [...]}`.
pub(crate) fn render_json(m: &Merged) -> Value {
    let nodes: Vec<Value> = m
        .reports
        .iter()
        .map(|r| match &r.answer {
            Answer::Found(view) => json!({
                "url": r.url,
                "status": "found",
                "node": view.node,
                "validator": view.validator,
                "entries": view.entries.iter().map(|e| json!({
                    "tx_hash": e.tx_hash,
                    "height": e.height,
                    "outcome": e.outcome,
                    "completed": e.completed,
                })).collect::<Vec<_>>(),
            }),
            Answer::NoRecord => json!({ "url": r.url, "status": "no_record" }),
            Answer::Failed(e) => json!({ "url": r.url, "status": "failed", "error": e }),
        })
        .collect();
    let events: Vec<Value> = m
        .events
        .iter()
        .map(|e| {
            json!({
                "node": e.node,
                "validator": e.validator,
                "stage": e.stage,
                "at_unix_us": e.at_unix_us,
                "offset_ms": e.offset_ms,
                "tx_hash": e.tx_hash,
            })
        })
        .collect();
    json!({
        "correlation_id": m.correlation_id,
        "nodes": nodes,
        "events": events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcraps_node::api::{StageTimeView, TxTimelineView};

    const T0: u64 = 1_700_000_000_000_000;

    fn id() -> Uuid {
        Uuid::parse_str("67e55044-10b1-426f-9247-bb680e5fe0c8").unwrap()
    }

    fn tx(n: u8) -> String {
        hex::encode([n; 32])
    }

    fn entry(tx_hash: String, completed: bool, stages: &[(&str, u64)]) -> TxTimelineView {
        TxTimelineView {
            correlation_id: id(),
            tx_hash,
            height: completed.then_some(42),
            outcome: completed.then(|| "accepted".to_owned()),
            completed,
            stages: stages
                .iter()
                .map(|(s, at)| StageTimeView {
                    stage: (*s).to_owned(),
                    at_unix_us: T0 + at,
                })
                .collect(),
        }
    }

    fn found(url: &str, node: &str, validator: u16, entries: Vec<TxTimelineView>) -> NodeReport {
        NodeReport {
            url: url.into(),
            answer: Answer::Found(CorrelationView {
                node: node.into(),
                validator,
                correlation_id: id(),
                entries,
            }),
        }
    }

    /// The origin (val0) saw everything; val1 executed; val2 is behind;
    /// one node has no record and one is down.
    fn cluster() -> Vec<NodeReport> {
        vec![
            found(
                "http://a",
                "val0",
                0,
                vec![entry(
                    tx(1),
                    true,
                    &[
                        ("received", 0),
                        ("admitted", 120),
                        ("mempool", 900),
                        ("proposed", 2_000),
                        ("committed", 12_345),
                        ("executed", 13_000),
                    ],
                )],
            ),
            found(
                "http://b",
                "val1",
                1,
                vec![entry(
                    tx(1),
                    true,
                    // Same time as val0's proposed: stage order, then
                    // validator, break the tie.
                    &[
                        ("mempool", 1_500),
                        ("proposed", 2_000),
                        ("executed", 14_000),
                    ],
                )],
            ),
            found(
                "http://c",
                "val2",
                2,
                vec![entry(
                    tx(1),
                    false,
                    &[("proposed", 2_500), ("certified", 9_000)],
                )],
            ),
            NodeReport {
                url: "http://d".into(),
                answer: Answer::NoRecord,
            },
            NodeReport {
                url: "http://e".into(),
                answer: Answer::Failed("unreachable: connection refused".into()),
            },
        ]
    }

    #[test]
    fn merges_every_node_into_one_sorted_timeline() {
        let m = merge(id(), &cluster());
        let rows: Vec<(&str, &str, f64)> = m
            .events
            .iter()
            .map(|e| (e.node.as_str(), e.stage.as_str(), e.offset_ms))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("val0", "received", 0.0),
                ("val0", "admitted", 0.12),
                ("val0", "mempool", 0.9),
                ("val1", "mempool", 1.5),
                ("val0", "proposed", 2.0),
                ("val1", "proposed", 2.0),
                ("val2", "proposed", 2.5),
                ("val2", "certified", 9.0),
                ("val0", "committed", 12.345),
                ("val0", "executed", 13.0),
                ("val1", "executed", 14.0),
            ]
        );
        assert_eq!(m.txs.len(), 1);
        assert_eq!(m.txs[0].heights, vec![42]);
        assert_eq!(m.txs[0].outcomes, vec!["accepted".to_owned()]);
    }

    #[test]
    fn text_output_exact() {
        let text = render_text(&merge(id(), &cluster()));
        let want = "\
correlation 67e55044-10b1-426f-9247-bb680e5fe0c8  tx 01010101  height 42  outcome accepted
+    0.000 ms  val0  received
+    0.120 ms  val0  admitted
+    0.900 ms  val0  mempool
+    1.500 ms  val1  mempool
+    2.000 ms  val0  proposed
+    2.000 ms  val1  proposed
+    2.500 ms  val2  proposed
+    9.000 ms  val2  certified
+   12.345 ms  val0  committed
+   13.000 ms  val0  executed
+   14.000 ms  val1  executed
completion: executed on 2 of 5 nodes: val0 executed; val1 executed; val2 not executed (last: certified); http://d no record; http://e unreachable: connection refused
";
        assert_eq!(text, want);
    }

    #[test]
    fn json_output_shape() {
        let v = render_json(&merge(id(), &cluster()));
        assert_eq!(v["correlation_id"], "67e55044-10b1-426f-9247-bb680e5fe0c8");
        let nodes = v["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 5);
        assert_eq!(nodes[0]["status"], "found");
        assert_eq!(nodes[0]["node"], "val0");
        assert_eq!(nodes[0]["entries"][0]["completed"], true);
        assert_eq!(
            nodes[3],
            json!({ "url": "http://d", "status": "no_record" })
        );
        assert_eq!(nodes[4]["status"], "failed");
        let events = v["events"].as_array().unwrap();
        assert_eq!(events.len(), 11);
        assert_eq!(
            events[8],
            json!({
                "node": "val0",
                "validator": 0,
                "stage": "committed",
                "at_unix_us": T0 + 12_345,
                "offset_ms": 12.345,
                "tx_hash": tx(1),
            })
        );
    }

    #[test]
    fn several_txs_under_one_id_get_their_own_sections_and_offsets() {
        let reports = vec![
            found(
                "http://a",
                "val0",
                0,
                vec![
                    entry(tx(2), false, &[("received", 5_000), ("mempool", 5_100)]),
                    entry(tx(1), true, &[("received", 0), ("executed", 3_000)]),
                ],
            ),
            found(
                "http://b",
                "val1",
                1,
                vec![entry(tx(1), true, &[("executed", 3_200)])],
            ),
        ];
        let m = merge(id(), &reports);
        // tx1 first (earliest event), each relative to its own start.
        assert_eq!(m.txs[0].tx_hash, tx(1));
        assert_eq!(m.txs[1].tx_hash, tx(2));
        let tx2: Vec<f64> = m
            .events
            .iter()
            .filter(|e| e.tx_hash == tx(2))
            .map(|e| e.offset_ms)
            .collect();
        assert_eq!(tx2, vec![0.0, 0.1]);
        let text = render_text(&m);
        let headers: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("correlation"))
            .collect();
        assert_eq!(headers.len(), 2, "{text}");
        assert!(
            headers[1].contains("tx 02020202  height -  outcome -"),
            "{text}"
        );
        assert!(
            text.contains("executed on 0 of 2 nodes: val0 not executed (last: mempool); val1 no record of this tx"),
            "{text}"
        );
    }

    #[test]
    fn disagreeing_heights_are_all_shown() {
        let mut other = entry(tx(1), true, &[("executed", 10)]);
        other.height = Some(43);
        let reports = vec![
            found(
                "http://a",
                "val0",
                0,
                vec![entry(tx(1), true, &[("executed", 0)])],
            ),
            found("http://b", "val1", 1, vec![other]),
        ];
        let text = render_text(&merge(id(), &reports));
        assert!(
            text.starts_with(&format!("correlation {}  tx 01010101  height 42,43", id())),
            "{text}"
        );
    }

    #[test]
    fn nothing_found_merges_to_no_events_and_a_message_naming_every_node() {
        let reports: Vec<NodeReport> = cluster().into_iter().skip(3).collect();
        let m = merge(id(), &reports);
        assert!(m.events.is_empty());
        let msg = no_record_message(id(), &reports);
        assert!(
            msg.contains("no node has a record of correlation id 67e55044"),
            "{msg}"
        );
        assert!(msg.contains("http://d has no record"), "{msg}");
        assert!(
            msg.contains("http://e: unreachable: connection refused"),
            "{msg}"
        );
    }

    #[test]
    fn unknown_stage_names_sort_after_known_ones() {
        assert!(stage_rank("settled") < stage_rank("from_the_future"));
        assert_eq!(stage_rank("received"), 0);
    }

    #[test]
    fn ids_and_urls_are_checked() {
        assert_eq!(parse_id(" 67E55044-10B1-426F-9247-BB680E5FE0C8 "), Ok(id()));
        assert!(parse_id("67e55044").unwrap_err().starts_with("not a UUID"));
        assert_eq!(
            base_url("127.0.0.1:9480/").as_deref(),
            Some("http://127.0.0.1:9480")
        );
        assert_eq!(base_url("http://h:1").as_deref(), Some("http://h:1"));
        assert_eq!(base_url(" "), None);
    }
}
