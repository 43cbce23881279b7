//! `bitcraps play` as a player uses it: a real one-validator chain (a
//! `bitcraps start` process with a 200 ms betting window) and the CLI run as
//! separate processes. Key creation, funding from the faucet key, a table,
//! bets, watching rolls settle, withdrawing the rail, chips conserved; and the
//! error cases a newcomer hits (bad bet name, unreachable node, missing key,
//! no funds, not the house, no such table or bet).
//!
//! Deadlines are failure bounds only (the machine is shared).

#![cfg(feature = "server")]
// Test helpers unwrap freely; the per-command deadline is test-harness wall
// time, not node logic, so it may read the clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use bitcraps_node::home::{testnet_init, TestnetOptions};
use bitcraps_node::localnet::{Cluster, NodeClient};
use std::path::{Path, PathBuf};

#[path = "support/play_cli.rs"]
mod play_cli;

use play_cli::{ok, play, Out, BIN};

/// Fails with `code` and a message containing every one of `needles`.
fn fails(url: &str, key: Option<&Path>, args: &[&str], code: i32, needles: &[&str]) -> Out {
    let out = play(url, key, args);
    assert_eq!(out.code, code, "bitcraps play {args:?}: {out:?}");
    for n in needles {
        assert!(
            out.stderr.contains(n),
            "bitcraps play {args:?}: stderr lacks {n:?}: {out:?}"
        );
    }
    out
}

fn public_key(url: &str, key: &Path) -> String {
    let out = ok(url, Some(key), &["--json", "key"]);
    out.json()["public_key"].as_str().unwrap().to_string()
}

/// Watches `table` (JSON) roll by roll from roll `since` until the first
/// roll applied after the block that committed the `bet` (its JSON result),
/// and checks that this roll settled the player's field bet: a bet accepted
/// at height H is in the first roll at a height above H (betting closes
/// before the roll's round; a bet after the close is rejected).
fn watch_settles_field(url: &str, key: &Path, table: &str, since: u64, bet: &serde_json::Value) {
    let bet_height = bet["height"].as_u64().expect("bet height");
    for since in since..since + 20 {
        let from = since.to_string();
        let w = ok(
            url,
            Some(key),
            &[
                "--json",
                "watch",
                "--table",
                table,
                "--since",
                &from,
                "--rolls",
                "1",
                "--duration",
                "30s",
            ],
        );
        let events: Vec<serde_json::Value> = w
            .stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let roll = events
            .iter()
            .find(|e| e["event"] == "roll")
            .unwrap_or_else(|| panic!("no roll: {w:?}"));
        assert_eq!(roll["seq"].as_u64(), Some(since), "{w:?}");
        if roll["height"].as_u64().unwrap() > bet_height {
            assert!(
                events
                    .iter()
                    .any(|e| e["event"] == "settlement" && e["bet"] == "field"),
                "the roll after the bet did not settle it: {w:?}"
            );
            return;
        }
    }
    panic!("no roll after height {bet_height} within 20 rolls");
}

struct Chain {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    faucet: PathBuf,
    cluster: Cluster,
    rt: tokio::runtime::Runtime,
}

impl Chain {
    fn start() -> Chain {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let tn = testnet_init(&TestnetOptions {
            validators: 1,
            out_dir: path.join("net"),
            roll_interval_ms: 200,
            ..TestnetOptions::default()
        })
        .unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let cluster = Cluster::start(Path::new(BIN), &tn, &[]).unwrap();
        if let Err((i, e)) = rt.block_on(cluster.wait_all_ready(60_000)) {
            panic!("node {i} not ready: {e}\n{}", cluster.log_tail(i, 30));
        }
        Chain {
            faucet: tn.faucet_key_path.clone(),
            _dir: dir,
            dir: path,
            cluster,
            rt,
        }
    }

    fn url(&self) -> String {
        self.cluster.http_url(0)
    }

    fn client(&self) -> NodeClient {
        self.cluster.client(0)
    }

    fn rail(&self, table: u64, player: &str) -> u64 {
        let detail = self
            .rt
            .block_on(self.client().table(table))
            .unwrap()
            .unwrap();
        detail
            .rails
            .iter()
            .find(|r| r.player == player)
            .map_or(0, |r| r.amount)
    }

    fn balance(&self, player: &str) -> u64 {
        self.rt
            .block_on(self.client().account(player))
            .unwrap()
            .balance
    }

    fn rolls(&self, table: u64) -> u64 {
        self.rt
            .block_on(self.client().table(table))
            .unwrap()
            .unwrap()
            .table
            .rolls
    }
}

#[test]
fn a_player_funds_bets_watches_and_withdraws() {
    let chain = Chain::start();
    let url = chain.url();
    let url = url.as_str();
    let player_key = chain.dir.join("player.key");
    let house_key = chain.dir.join("house.key");

    // Keys: created once, then reused; private file.
    let out = ok(url, Some(&player_key), &["key"]);
    assert!(out.stdout.contains("created"), "{out:?}");
    let player = public_key(url, &player_key);
    assert_eq!(player.len(), 64);
    let again = ok(url, Some(&player_key), &["--json", "key"]).json();
    assert_eq!(again["created"], false);
    assert_eq!(again["public_key"], player.as_str());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&player_key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    ok(url, Some(&house_key), &["key"]);
    let house = public_key(url, &house_key);

    // Funding from the faucet key.
    let out = ok(
        url,
        Some(&chain.faucet),
        &["transfer", "--to", &player, "--amount", "100000"],
    );
    assert!(out.stdout.starts_with("ok: sent 100000 chips"), "{out:?}");
    ok(
        url,
        Some(&chain.faucet),
        &["transfer", "--to", &house, "--amount", "10000000"],
    );
    assert_eq!(chain.balance(&player), 100_000);

    // The house opens a table; its id comes back.
    let opened = ok(
        url,
        Some(&house_key),
        &[
            "--json",
            "open",
            "--bankroll",
            "1000000",
            "--min-bet",
            "1",
            "--max-bet",
            "1000",
        ],
    )
    .json();
    assert_eq!(opened["ok"], true, "{opened}");
    let table = opened["table"].as_u64().expect("table id");
    let table_arg = table.to_string();
    let t = table_arg.as_str();
    let listed = ok(url, None, &["tables"]);
    assert!(listed.stdout.contains(&house[..16]), "{listed:?}");
    assert!(listed.stdout.contains("come-out"), "{listed:?}");

    // Bets: pass on the come-out, and a one-roll field bet.
    let before_rolls = chain.rolls(table);
    let out = ok(url, Some(&player_key), &["bet", "--table", t, "pass", "10"]);
    assert!(out.stdout.starts_with("ok: bet 10 on pass"), "{out:?}");
    let field = ok(
        url,
        Some(&player_key),
        &["--json", "bet", "--table", t, "field", "5"],
    )
    .json();
    assert_eq!(field["ok"], true, "{field}");

    // Watch the next roll, as text.
    let since = (before_rolls + 1).to_string();
    let watched = ok(
        url,
        Some(&player_key),
        &[
            "watch",
            "--table",
            t,
            "--since",
            &since,
            "--rolls",
            "1",
            "--duration",
            "30s",
        ],
    );
    assert!(watched.stdout.contains(" roll #"), "{watched:?}");
    assert!(watched.stdout.contains("  balance "), "{watched:?}");
    // The first roll after the bet's block settles the field bet, whatever
    // the dice.
    watch_settles_field(url, &player_key, t, before_rolls + 1, &field);

    // Keep betting the field until something lands on the rail (a field bet
    // wins 20 times in 36; 15 tries all losing has odds below 1 in 10^5).
    let mut rail = chain.rail(table, &player);
    for _ in 0..15 {
        if rail > 0 {
            break;
        }
        let since = chain.rolls(table) + 1;
        let field = ok(
            url,
            Some(&player_key),
            &["--json", "bet", "--table", t, "field", "5"],
        )
        .json();
        watch_settles_field(url, &player_key, t, since, &field);
        rail = chain.rail(table, &player);
    }
    assert!(rail > 0, "no field bet won in 16 rolls");

    // Withdraw the rail to the balance.
    let balance_before = chain.balance(&player);
    let out = ok(
        url,
        Some(&player_key),
        &["--json", "withdraw", "--table", t],
    )
    .json();
    assert_eq!(out["ok"], true, "{out}");
    assert!(out["amount"].as_u64().unwrap() > 0, "{out}");
    assert!(chain.balance(&player) > balance_before);

    let shown = ok(url, Some(&player_key), &["balance"]);
    assert!(shown.stdout.contains("balance "), "{shown:?}");
    assert!(shown.stdout.contains(&player), "{shown:?}");
    let shown = ok(url, Some(&player_key), &["--json", "balance"]).json();
    assert_eq!(shown["balance"].as_u64(), Some(chain.balance(&player)));

    // --- What goes wrong, said clearly, with a non-zero exit. ---
    // A bad bet name lists the valid ones (clap usage error: exit 2).
    fails(
        url,
        Some(&player_key),
        &["bet", "--table", t, "passs", "10"],
        2,
        &[
            "unknown bet \"passs\"",
            "dont-pass",
            "come-odds:N",
            "hard:N",
        ],
    );
    fails(
        url,
        Some(&player_key),
        &["bet", "--table", t, "place:7", "10"],
        2,
        &["4, 5, 6, 8, 9, 10"],
    );
    // Nobody listening.
    fails(
        "http://127.0.0.1:1",
        Some(&player_key),
        &["balance"],
        1,
        &["cannot reach the node at http://127.0.0.1:1"],
    );
    // No key file.
    let missing = chain.dir.join("nobody.key");
    fails(
        url,
        Some(&missing),
        &["bet", "--table", t, "field", "5"],
        1,
        &["does not exist", "play --key"],
    );
    fails(url, None, &["balance"], 1, &["--key FILE"]);
    // A key with no chips: the chain's rejection, in words.
    let poor = chain.dir.join("poor.key");
    ok(url, Some(&poor), &["key"]);
    fails(
        url,
        Some(&poor),
        &["bet", "--table", t, "field", "5"],
        1,
        &["rejected: insufficient_funds", "balance is too low"],
    );
    // Not the house; no such table; no such bet; nothing on the rail.
    fails(
        url,
        Some(&player_key),
        &["close", "--table", t],
        1,
        &["rejected: not_house"],
    );
    fails(
        url,
        Some(&player_key),
        &["bet", "--table", "999", "field", "5"],
        1,
        &["rejected: no_such_table"],
    );
    fails(
        url,
        Some(&player_key),
        &["remove", "--table", t, "hard:8"],
        1,
        &["rejected: no_such_bet"],
    );
    fails(
        url,
        Some(&player_key),
        &["withdraw", "--table", "999"],
        1,
        &["there is no table 999"],
    );
    fails(
        url,
        Some(&player_key),
        &["bet", "--table", t, "come-point:6", "5"],
        1,
        &["cannot be bet directly"],
    );

    // The house closes the table; chips were conserved throughout.
    ok(url, Some(&house_key), &["close", "--table", t]);
    let listed = ok(url, None, &["--json", "tables"]).json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"].as_u64() == Some(table))
        .cloned()
        .unwrap();
    assert_eq!(row["closed"], true, "{row}");
    let supply = chain.rt.block_on(chain.client().supply()).unwrap();
    assert!(supply.conserved, "{supply:?}");
}
