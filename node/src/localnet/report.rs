//! What `bitcraps localnet` shows: the validator table, the live progress line
//! and the final summary (table and `--json`).
//!
//! The JSON field names are a public interface (CI and the issue's "done
//! when" read them): extend, never rename.

use crate::api::Roll;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A plain-text table with left-aligned columns sized to their widest cell.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Self {
        Table {
            headers: headers.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The table as lines joined by `\n` (with a trailing newline): header,
    /// a dashed rule, then the rows. Columns are separated by two spaces;
    /// trailing spaces are trimmed.
    pub fn render(&self) -> String {
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.headers.len()])
            .max()
            .unwrap_or(0);
        let mut widths = vec![0usize; columns];
        for line in std::iter::once(&self.headers).chain(&self.rows) {
            for (w, cell) in widths.iter_mut().zip(line) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        for line in std::iter::once(&self.headers)
            .chain(std::iter::once(&rule))
            .chain(&self.rows)
        {
            let mut text = String::new();
            for (i, w) in widths.iter().enumerate() {
                let cell = line.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    text.push_str("  ");
                }
                let _ = write!(text, "{cell:<w$}");
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// One node in the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub name: String,
    /// Committed height the node reported at the end (0 if unreachable).
    pub height: u64,
    /// Hex state root at the compared height, if the node served it.
    pub state_root: Option<String>,
    /// Live QUIC connections at the end.
    pub peers_connected: usize,
    /// Transactions committed since genesis, as the node counts them.
    pub committed_tx: u64,
    /// Why this node could not be compared, if it could not.
    pub error: Option<String>,
    /// `/api/v1/supply` `conserved` of this node, read right after the state
    /// roots (at its then-latest height, at or above `compared_height`);
    /// `None` if it did not answer.
    #[serde(default)]
    pub supply_conserved: Option<bool>,
}

/// The result of a localnet run (`--json FILE` writes this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalnetSummary {
    /// Transactions in the blocks committed during the run, up to
    /// `compared_height` (the players' funding transfers included).
    pub committed_tx: u64,
    /// Blocks committed during the run.
    pub committed_blocks: u64,
    /// `committed_tx` per second of run time.
    pub tps: f64,
    /// Submit-to-commit-observed latency of the players' transfers (ms).
    pub latency_ms_p50: Option<u64>,
    pub latency_ms_p99: Option<u64>,
    /// Every node served the same state root at `compared_height`.
    pub state_roots_equal: bool,
    pub validators: usize,
    pub players: usize,
    /// Wall time from the first funding transfer to the end of the load.
    pub duration_s: f64,
    /// Transactions the players submitted.
    pub offered_tx: u64,
    /// Submissions a node refused or that failed (422, 429, 503, errors).
    pub rejected_tx: u64,
    /// Schedule slots skipped because every player's window was full.
    pub throttled_tx: u64,
    /// Accepted transactions never seen committed within the deadline.
    pub lost_tx: u64,
    /// Latency samples behind the percentiles.
    pub latency_samples: u64,
    /// The height whose state roots were compared.
    pub compared_height: u64,
    /// Tables the houses opened for the run.
    #[serde(default)]
    pub tables: usize,
    /// Table rolls applied up to `compared_height`: one per table per beacon
    /// round in which that table had bets (so with two busy tables, about
    /// twice the beacon rounds). Counted from the tables' roll history.
    #[serde(default)]
    pub rolls: u64,
    /// Bets the players submitted.
    #[serde(default)]
    pub bets_offered: u64,
    /// Committed bets that execution accepted (result `ok`).
    #[serde(default)]
    pub bets_placed: u64,
    /// Settlements that decided a bet (won, lost or push; not come bets
    /// moving to their number, nor returned odds) in the roll history up to
    /// `compared_height`.
    #[serde(default)]
    pub bets_settled: u64,
    #[serde(default)]
    pub bets_won: u64,
    #[serde(default)]
    pub bets_lost: u64,
    #[serde(default)]
    pub bets_pushed: u64,
    /// Winnings paid to players in those settlements (chips, stakes excluded).
    #[serde(default)]
    pub chips_won: u64,
    /// Withdrawals of a rail that execution accepted.
    #[serde(default)]
    pub withdrawals: u64,
    /// Committed game transactions (bets, removals, withdrawals) that
    /// execution rejected; by code in `execution_rejections`. A normal part
    /// of play: players act on a view that may be a roll old.
    #[serde(default)]
    pub game_tx_rejected: u64,
    #[serde(default)]
    pub execution_rejections: BTreeMap<String, u64>,
    /// Committed game transactions whose result could not be read.
    #[serde(default)]
    pub game_tx_unchecked: u64,
    /// Every node's `/api/v1/supply` says balances + table escrow equal the
    /// genesis supply.
    #[serde(default)]
    pub chips_conserved: bool,
    pub nodes: Vec<NodeSummary>,
}

impl LocalnetSummary {
    /// Pretty JSON for `--json`.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serialization cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Why the run does not count as a success, or `None` if it does
    /// (exit 0 only when the roots agree and something was committed).
    pub fn failure_reason(&self) -> Option<String> {
        if !self.state_roots_equal {
            let detail: Vec<String> = self
                .nodes
                .iter()
                .map(|n| match (&n.state_root, &n.error) {
                    (_, Some(e)) => format!("{}: {e}", n.name),
                    (Some(r), None) => format!("{}: {}", n.name, short_hex(r)),
                    (None, None) => format!("{}: no state root", n.name),
                })
                .collect();
            return Some(format!(
                "state roots differ or are missing at height {} ({})",
                self.compared_height,
                detail.join(", ")
            ));
        }
        if self.committed_tx == 0 {
            return Some("no transaction was committed".into());
        }
        if !self.chips_conserved {
            let detail: Vec<String> = self
                .nodes
                .iter()
                .map(|n| match n.supply_conserved {
                    Some(true) => format!("{}: conserved", n.name),
                    Some(false) => format!("{}: NOT conserved", n.name),
                    None => format!("{}: no answer", n.name),
                })
                .collect();
            return Some(format!(
                "chip supply not conserved on every node ({})",
                detail.join(", ")
            ));
        }
        None
    }

    /// The human-readable end-of-run report.
    pub fn render(&self) -> String {
        let mut t = Table::new(["node", "height", "state root", "peers", "committed tx"]);
        for n in &self.nodes {
            let root = match (&n.state_root, &n.error) {
                (Some(r), _) => short_hex(r),
                (None, Some(e)) => format!("({e})"),
                (None, None) => "-".into(),
            };
            t.row([
                n.name.clone(),
                n.height.to_string(),
                root,
                n.peers_connected.to_string(),
                n.committed_tx.to_string(),
            ]);
        }
        let mut out = t.render();
        let _ = writeln!(
            out,
            "\ncommitted   {} tx in {} blocks over {:.1} s ({:.1} tx/s)",
            self.committed_tx, self.committed_blocks, self.duration_s, self.tps
        );
        let _ = writeln!(
            out,
            "latency     p50 {}  p99 {}  ({} samples, submit to commit observed)",
            fmt_ms(self.latency_ms_p50),
            fmt_ms(self.latency_ms_p99),
            self.latency_samples
        );
        let _ = writeln!(
            out,
            "load        {} validator(s), {} player(s): {} offered, {} rejected, {} throttled, {} lost",
            self.validators,
            self.players,
            self.offered_tx,
            self.rejected_tx,
            self.throttled_tx,
            self.lost_tx
        );
        let _ = writeln!(
            out,
            "game        {} tables, {} rolls: {} bets offered, {} placed, {} settled ({} won, {} lost, {} pushed), {} chips won by players, {} withdrawals",
            self.tables,
            self.rolls,
            self.bets_offered,
            self.bets_placed,
            self.bets_settled,
            self.bets_won,
            self.bets_lost,
            self.bets_pushed,
            self.chips_won,
            self.withdrawals
        );
        if !self.execution_rejections.is_empty() || self.game_tx_unchecked > 0 {
            let mut list: Vec<String> = self
                .execution_rejections
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            if self.game_tx_unchecked > 0 {
                list.push(format!("unchecked {}", self.game_tx_unchecked));
            }
            let _ = writeln!(out, "game tx rejected by execution  {}", list.join(", "));
        }
        let _ = writeln!(
            out,
            "chips       {}",
            if self.chips_conserved {
                format!("conserved on all {} nodes", self.nodes.len())
            } else {
                "NOT conserved on every node".to_string()
            }
        );
        let verdict = if self.state_roots_equal {
            format!(
                "EQUAL on all {} nodes at height {}",
                self.nodes.len(),
                self.compared_height
            )
        } else {
            format!("NOT EQUAL at height {}", self.compared_height)
        };
        let _ = writeln!(out, "state roots {verdict}");
        out
    }
}

/// The first 16 hex digits of a hash, enough to tell roots apart by eye.
pub fn short_hex(hex: &str) -> String {
    hex.chars().take(16).collect()
}

/// `123 ms`, or `-` without a value.
pub fn fmt_ms(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".into(), |v| format!("{v} ms"))
}

/// One refresh of the live progress line.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub elapsed_ms: u64,
    /// Highest committed height seen on any node.
    pub height: u64,
    /// Transactions committed since the run started.
    pub committed_tx: u64,
    /// Committed tx/s over the last refresh window.
    pub tps: f64,
    /// Median latency of the last window (or the whole run if the window had
    /// no commits).
    pub latency_p50_ms: Option<u64>,
    /// Fewest live peers on any node, out of `peers_total`; `None` if no node
    /// answered.
    pub peers_min: Option<usize>,
    pub peers_total: usize,
    /// Transactions waiting in all nodes' mempools.
    pub mempool: usize,
    pub rejected_tx: u64,
    /// Table rolls seen since the run started.
    pub rolls: u64,
    /// The most recent roll.
    pub last_roll: Option<Roll>,
    /// Chips won by players since the previous line.
    pub won_chips: u64,
}

impl Progress {
    pub fn render(&self) -> String {
        let peers = match self.peers_min {
            Some(p) => format!("{p}/{}", self.peers_total),
            None => "?".into(),
        };
        let last = self.last_roll.map_or_else(
            || "-".to_string(),
            |r| format!("{}+{}={}", r.d1, r.d2, r.total()),
        );
        format!(
            "[{:>6.1}s] height {}  committed {} tx  {:.0} tx/s  p50 {}  peers {}  mempool {}  rejected {}  rolls {}  last {}  won {}",
            ms_to_s(self.elapsed_ms),
            self.height,
            self.committed_tx,
            self.tps,
            fmt_ms(self.latency_p50_ms),
            peers,
            self.mempool,
            self.rejected_tx,
            self.rolls,
            last,
            self.won_chips
        )
    }
}

/// Milliseconds as fractional seconds, for display.
pub fn ms_to_s(ms: u64) -> f64 {
    // Display only: precision loss above 2^53 ms is irrelevant.
    ms as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> LocalnetSummary {
        LocalnetSummary {
            committed_tx: 1200,
            committed_blocks: 40,
            tps: 80.0,
            latency_ms_p50: Some(120),
            latency_ms_p99: Some(480),
            state_roots_equal: true,
            validators: 2,
            players: 8,
            duration_s: 15.0,
            offered_tx: 1250,
            rejected_tx: 3,
            throttled_tx: 0,
            lost_tx: 0,
            latency_samples: 1150,
            compared_height: 57,
            tables: 2,
            rolls: 30,
            bets_offered: 1000,
            bets_placed: 900,
            bets_settled: 700,
            bets_won: 300,
            bets_lost: 380,
            bets_pushed: 20,
            chips_won: 4_000,
            withdrawals: 12,
            game_tx_rejected: 100,
            execution_rejections: BTreeMap::from([("betting_closed".to_string(), 100)]),
            game_tx_unchecked: 0,
            chips_conserved: true,
            nodes: vec![
                NodeSummary {
                    name: "val0".into(),
                    height: 57,
                    state_root: Some("ab".repeat(32)),
                    peers_connected: 1,
                    committed_tx: 1200,
                    error: None,
                    supply_conserved: Some(true),
                },
                NodeSummary {
                    name: "val1".into(),
                    height: 58,
                    state_root: Some("ab".repeat(32)),
                    peers_connected: 1,
                    committed_tx: 1200,
                    error: None,
                    supply_conserved: Some(true),
                },
            ],
        }
    }

    #[test]
    fn summary_json_field_names() {
        let v: serde_json::Value = serde_json::from_str(&summary().to_json()).unwrap();
        for field in [
            "committed_tx",
            "committed_blocks",
            "tps",
            "latency_ms_p50",
            "latency_ms_p99",
            "state_roots_equal",
            "validators",
            "players",
            "duration_s",
            "offered_tx",
            "rejected_tx",
            "nodes",
            "rolls",
            "bets_placed",
            "bets_settled",
            "chips_conserved",
        ] {
            assert!(v.get(field).is_some(), "missing {field}");
        }
        assert_eq!(v["state_roots_equal"], serde_json::Value::Bool(true));
        assert_eq!(v["committed_tx"], 1200);
        assert_eq!(v["validators"], 2);
        assert_eq!(v["chips_conserved"], true);
        assert_eq!(v["execution_rejections"]["betting_closed"], 100);
        let node = &v["nodes"][0];
        for field in ["name", "height", "state_root"] {
            assert!(node.get(field).is_some(), "node missing {field}");
        }
        assert_eq!(node["name"], "val0");
        // Round trip.
        let back: LocalnetSummary = serde_json::from_value(v).unwrap();
        assert_eq!(back, summary());
    }

    #[test]
    fn success_needs_equal_roots_and_commits() {
        assert_eq!(summary().failure_reason(), None);
        let mut s = summary();
        s.committed_tx = 0;
        assert!(s.failure_reason().unwrap().contains("no transaction"));
        let mut s = summary();
        s.state_roots_equal = false;
        s.nodes[1].state_root = Some("cd".repeat(32));
        s.nodes[0].error = Some("unreachable".into());
        let why = s.failure_reason().unwrap();
        assert!(why.contains("height 57"), "{why}");
        assert!(why.contains("val0: unreachable"), "{why}");
        assert!(why.contains("val1: cdcdcdcdcdcdcdcd"), "{why}");
        let mut s = summary();
        s.chips_conserved = false;
        s.nodes[1].supply_conserved = Some(false);
        s.nodes[0].supply_conserved = None;
        let why = s.failure_reason().unwrap();
        assert!(why.contains("val1: NOT conserved"), "{why}");
        assert!(why.contains("val0: no answer"), "{why}");
    }

    #[test]
    fn table_aligns_columns() {
        let mut t = Table::new(["name", "http"]);
        t.row(["val0", "http://127.0.0.1:9480"]);
        t.row(["validator-10", "x"]);
        t.row(["short"]);
        let text = t.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            vec![
                "name          http",
                "------------  ---------------------",
                "val0          http://127.0.0.1:9480",
                "validator-10  x",
                "short",
            ]
        );
        assert_eq!(Table::new(Vec::<String>::new()).render(), "\n\n");
    }

    #[test]
    fn summary_renders_table_and_verdict() {
        let text = summary().render();
        assert!(text.contains("val1  58"), "{text}");
        assert!(text.contains("abababababababab  1"), "{text}");
        assert!(
            !text.contains(&"ab".repeat(9)),
            "root not shortened: {text}"
        );
        assert!(text.contains("1200 tx in 40 blocks"), "{text}");
        assert!(text.contains("p50 120 ms  p99 480 ms"), "{text}");
        assert!(text.contains("EQUAL on all 2 nodes at height 57"), "{text}");
        assert!(text.contains("2 tables, 30 rolls"), "{text}");
        assert!(text.contains("900 placed, 700 settled"), "{text}");
        assert!(text.contains("betting_closed 100"), "{text}");
        assert!(
            text.contains("chips       conserved on all 2 nodes"),
            "{text}"
        );
        let mut s = summary();
        s.state_roots_equal = false;
        assert!(s.render().contains("NOT EQUAL"));
    }

    #[test]
    fn progress_line() {
        let p = Progress {
            elapsed_ms: 12_345,
            height: 42,
            committed_tx: 2_400,
            tps: 199.6,
            latency_p50_ms: Some(85),
            peers_min: Some(3),
            peers_total: 3,
            mempool: 17,
            rejected_tx: 0,
            rolls: 9,
            last_roll: Some(Roll { d1: 3, d2: 4 }),
            won_chips: 120,
        };
        assert_eq!(
            p.render(),
            "[  12.3s] height 42  committed 2400 tx  200 tx/s  p50 85 ms  peers 3/3  mempool 17  rejected 0  rolls 9  last 3+4=7  won 120"
        );
        let q = Progress {
            latency_p50_ms: None,
            peers_min: None,
            last_roll: None,
            ..p
        };
        assert!(q.render().contains("p50 -  peers ?"));
        assert!(q.render().contains("last -  won"));
    }
}
