//! The `bitcraps` binary as an operator uses it: real processes, real files in
//! temp directories. Every failure case checks the exit code and that the
//! message names the problem, and that nothing panicked.
// Test helpers unwrap freely; the deadline below is test-harness wall time,
// not node logic, so it may read the clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use bitcraps_node::chainspec::ChainSpec;
use bitcraps_node::home::{load_setup, Home};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Runs the binary with `args`, killing it after a minute (a command that
/// should fail fast must not hang the suite).
fn bitcraps(args: &[&str]) -> Out {
    bitcraps_env(args, &[])
}

fn bitcraps_env(args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bitcraps"));
    cmd.args(args)
        .env_remove("BITCRAPS_HOME")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn bitcraps");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("bitcraps {args:?} did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("collect output");
    let out = Out {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!out.stderr.contains("panicked"), "{out:?}");
    out
}

fn ok(args: &[&str]) -> Out {
    let out = bitcraps(args);
    assert_eq!(out.code, 0, "bitcraps {args:?}: {out:?}");
    out
}

/// Expects exit 1 with `error: ` and every one of `needles` on stderr.
fn fails(args: &[&str], needles: &[&str]) -> Out {
    let out = bitcraps(args);
    assert_eq!(out.code, 1, "bitcraps {args:?}: {out:?}");
    assert!(out.stderr.starts_with("error: "), "{out:?}");
    for n in needles {
        assert!(out.stderr.contains(n), "expected {n:?} in stderr: {out:?}");
    }
    out
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn init_home(dir: &Path) -> Home {
    let root = dir.join("home");
    ok(&["--home", s(&root), "init"]);
    Home::new(root)
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn secret_seed(path: &Path) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let seed = v["secret_seed"].as_str().unwrap().to_owned();
    assert_eq!(seed.len(), 64);
    seed
}

#[test]
fn init_creates_a_private_home_that_validates() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    for p in [
        home.config_path(),
        home.genesis_path(),
        home.consensus_key_path(),
        home.identity_key_path(),
        home.faucet_key_path(),
        home.guard_state_path(),
    ] {
        assert!(p.is_file(), "{} missing", p.display());
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(&home.keys_dir()), 0o700);
        assert_eq!(mode(&home.data_dir()), 0o700);
        assert_eq!(mode(&home.consensus_key_path()), 0o600);
        assert_eq!(mode(&home.identity_key_path()), 0o600);
        assert_eq!(mode(&home.faucet_key_path()), 0o600);
    }
    let spec = ChainSpec::load(&home.genesis_path()).unwrap();
    assert_eq!(spec.consensus.validators.len(), 1);
    assert_eq!(spec.consensus.chain_id, "bitcraps-localnet");
    assert!(spec.app.faucet.is_some());
    let out = ok(&["--home", s(home.root()), "config", "validate"]);
    assert!(out.stdout.contains("valid"), "{out:?}");
    let setup = load_setup(&home, &home.load_config().unwrap()).unwrap();
    assert_eq!(setup.me, 0);
    // The written config documents itself.
    let text = std::fs::read_to_string(home.config_path()).unwrap();
    assert!(text.contains("# ") && text.contains("[net]") && text.contains("_ms = "));

    let custom = dir.path().join("custom");
    ok(&[
        "--home",
        s(&custom),
        "init",
        "--chain-id",
        "my-chain",
        "--p2p-listen",
        "127.0.0.1:17000",
    ]);
    let spec = ChainSpec::load(&custom.join("genesis.json")).unwrap();
    assert_eq!(spec.consensus.chain_id, "my-chain");
    assert_eq!(spec.consensus.validators[0].address, "127.0.0.1:17000");
}

#[test]
fn init_twice_refuses_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let before = std::fs::read(home.consensus_key_path()).unwrap();
    fails(
        &["--home", s(home.root()), "init"],
        &["not empty", "--force"],
    );
    assert_eq!(std::fs::read(home.consensus_key_path()).unwrap(), before);
    ok(&["--home", s(home.root()), "init", "--force"]);
    assert_ne!(std::fs::read(home.consensus_key_path()).unwrap(), before);
    ok(&["--home", s(home.root()), "config", "validate"]);
}

#[test]
fn config_validate_accepts_generated_and_names_what_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let good = std::fs::read_to_string(home.config_path()).unwrap();
    let cases: [(&str, &str, &[&str]); 5] = [
        (
            "listen = \"127.0.0.1:9400\"",
            "listen = \"not-an-address\"",
            &["p2p.listen", "not-an-address"],
        ),
        (
            "[mempool]\n",
            "[mempool]\nbogus_option = 1\n",
            &["bogus_option"],
        ),
        (
            "capacity = 50000",
            "capacity = 0",
            &["mempool.capacity", "greater than 0"],
        ),
        (
            "max_frame_bytes = 8388608",
            "max_frame_bytes = 0",
            &["net.max_frame_bytes"],
        ),
        ("[http]\n", "[http\n", &["parsing", "[http"]),
    ];
    for (from, to, needles) in cases {
        assert!(good.contains(from), "template changed: {from}");
        let broken = dir.path().join("broken.toml");
        std::fs::write(&broken, good.replacen(from, to, 1)).unwrap();
        fails(&["config", "validate", "--file", s(&broken)], needles);
        std::fs::write(home.config_path(), good.replacen(from, to, 1)).unwrap();
        fails(&["--home", s(home.root()), "config", "validate"], needles);
    }
    std::fs::write(home.config_path(), &good).unwrap();
    ok(&["--home", s(home.root()), "config", "validate"]);

    // show prints the effective config, which parses back.
    let out = ok(&["--home", s(home.root()), "config", "show"]);
    let shown = bitcraps_node::config::Config::parse(&out.stdout).unwrap();
    assert_eq!(shown, home.load_config().unwrap());
    let out = ok(&["config", "default"]);
    assert!(out.stdout.contains("[mempool]"));
}

#[test]
fn default_home_comes_from_bitcraps_home() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let out = bitcraps_env(
        &["config", "validate"],
        &[("BITCRAPS_HOME", s(home.root()))],
    );
    assert_eq!(out.code, 0, "{out:?}");
    // HOME/.bitcraps otherwise; missing there: a clean error pointing at init.
    let out = bitcraps_env(&["config", "validate"], &[("HOME", s(dir.path()))]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains(".bitcraps") && out.stderr.contains("bitcraps init"),
        "{out:?}"
    );
}

#[test]
fn keys_show_prints_public_keys_never_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let seeds = [
        secret_seed(&home.consensus_key_path()),
        secret_seed(&home.identity_key_path()),
    ];
    let setup = load_setup(&home, &home.load_config().unwrap()).unwrap();
    let out = ok(&["--home", s(home.root()), "keys", "show"]);
    assert!(
        out.stdout.contains(&setup.signer.public_key().to_hex()),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&setup.identity.public().to_hex()),
        "{out:?}"
    );
    let json = ok(&["--home", s(home.root()), "keys", "show", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v[0]["purpose"], "consensus");
    let file = ok(&["keys", "show", "--file", s(&home.consensus_key_path())]);
    for seed in &seeds {
        for o in [&out, &json, &file] {
            assert!(!o.all().contains(seed.as_str()), "seed leaked: {o:?}");
        }
    }

    let new = dir.path().join("fresh/id.key");
    let gen = ok(&[
        "keys",
        "generate",
        "--out",
        s(&new),
        "--purpose",
        "identity",
    ]);
    let seed = secret_seed(&new);
    assert!(!gen.all().contains(&seed), "seed leaked: {gen:?}");
    #[cfg(unix)]
    {
        assert_eq!(mode(&new), 0o600);
        assert_eq!(mode(new.parent().unwrap()), 0o700);
    }
    let show = ok(&["keys", "show", "--file", s(&new)]);
    assert!(show.stdout.contains("identity"), "{show:?}");
    assert!(!show.all().contains(&seed));
    // Never overwrites.
    fails(&["keys", "generate", "--out", s(&new)], &["already exists"]);
    assert_eq!(secret_seed(&new), seed);
}

#[cfg(unix)]
#[test]
fn start_refuses_a_key_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    let key = home.consensus_key_path();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = fails(
        &["--home", s(home.root()), "start"],
        &["chmod 600", s(&key), "group or others"],
    );
    assert!(!out.all().contains(&secret_seed(&key)));
    fails(&["--home", s(home.root()), "keys", "show"], &["chmod 600"]);
}

#[test]
fn start_refuses_a_key_without_guard_state() {
    let dir = tempfile::tempdir().unwrap();
    let home = init_home(dir.path());
    std::fs::remove_file(home.guard_state_path()).unwrap();
    fails(
        &["--home", s(home.root()), "start"],
        &["guard state", "missing", "double-sign", "restore"],
    );
}

#[test]
fn start_refuses_broken_homes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    // No home at all.
    let missing = dir.path().join("nothing");
    fails(
        &["--home", s(&missing), "start"],
        &["config.toml", "bitcraps init"],
    );

    let home = init_home(dir.path());
    let root = s(home.root()).to_owned();
    let config = std::fs::read_to_string(home.config_path()).unwrap();
    let genesis = std::fs::read_to_string(home.genesis_path()).unwrap();

    std::fs::write(home.config_path(), "[node\n").unwrap();
    fails(&["--home", &root, "start"], &["config.toml"]);
    std::fs::write(home.config_path(), "[p2p]\nlisten = \"1.2.3.4\"\n").unwrap();
    fails(&["--home", &root, "start"], &["p2p.listen"]);
    std::fs::write(home.config_path(), &config).unwrap();

    std::fs::write(home.genesis_path(), "{ not json").unwrap();
    fails(&["--home", &root, "start"], &["genesis.json"]);
    let no_validators = {
        let mut v: serde_json::Value = serde_json::from_str(&genesis).unwrap();
        v["consensus"]["validators"] = serde_json::json!([]);
        v.to_string()
    };
    std::fs::write(home.genesis_path(), no_validators).unwrap();
    fails(&["--home", &root, "start"], &["genesis.json", "validators"]);
    std::fs::write(home.genesis_path(), &genesis).unwrap();

    std::fs::remove_file(home.identity_key_path()).unwrap();
    fails(
        &["--home", &root, "start"],
        &["identity.key", "does not exist"],
    );
}

#[test]
fn testnet_init_writes_four_working_homes() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("net");
    let out = ok(&["testnet", "init", "--validators", "4", "--out", s(&out_dir)]);
    let spec = ChainSpec::load(&out_dir.join("genesis.json")).unwrap();
    assert_eq!(spec.consensus.validators.len(), 4);
    let mut keys = BTreeSet::new();
    for v in &spec.consensus.validators {
        assert_ne!(v.consensus_key, v.identity_key, "{}", v.name);
        keys.insert(v.consensus_key);
        keys.insert(v.identity_key);
    }
    assert_eq!(keys.len(), 8, "all keys distinct");
    assert!(out_dir.join("faucet.key").is_file());
    assert_eq!(
        spec.app.faucet,
        Some(
            bitcraps_node::home::read_key_file(&out_dir.join("faucet.key"))
                .unwrap()
                .public()
        )
    );

    let mut ports = BTreeSet::new();
    for (i, v) in spec.consensus.validators.iter().enumerate() {
        let name = format!("val{i}");
        assert_eq!(v.name, name);
        let home = Home::new(out_dir.join(&name));
        assert!(
            out.stdout.contains(&name) && out.stdout.contains(s(home.root())),
            "{out:?}"
        );
        ok(&["--home", s(home.root()), "config", "validate"]);
        let config = home.load_config().unwrap();
        let setup = load_setup(&home, &config).unwrap();
        assert_eq!(usize::from(setup.me), i);
        assert_eq!(setup.spec, spec, "each home has the same genesis");
        assert_eq!(v.address, setup.p2p_listen.to_string());
        assert!(
            out.stdout
                .contains(&format!("http://{}", setup.http_listen)),
            "{out:?}"
        );
        assert!(ports.insert(setup.p2p_listen.port()));
        assert!(ports.insert(setup.http_listen.port()));
        assert!(home.guard_state_path().is_file());
    }
    assert_eq!(ports.len(), 8, "non-overlapping ports");

    fails(
        &["testnet", "init", "--validators", "4", "--out", s(&out_dir)],
        &["--force"],
    );
    ok(&[
        "testnet",
        "init",
        "--validators",
        "2",
        "--out",
        s(&out_dir),
        "--force",
        "--base-port",
        "30100",
    ]);
    assert!(!out_dir.join("val3").exists());
    let spec = ChainSpec::load(&out_dir.join("genesis.json")).unwrap();
    assert_eq!(spec.consensus.validators[1].address, "127.0.0.1:30102");
    fails(
        &[
            "testnet",
            "init",
            "--validators",
            "0",
            "--out",
            s(&dir.path().join("x")),
        ],
        &["validators"],
    );
    fails(
        &[
            "testnet",
            "init",
            "--validators",
            "2",
            "--out",
            s(&dir.path().join("y")),
            "--host",
            "0.0.0.0",
        ],
        &["host"],
    );
}

#[test]
fn status_against_a_closed_port_fails_cleanly() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    fails(&["status", "--node", &url], &["cannot reach", &url]);
    fails(&["status", "--node", "not a url"], &["not a url"]);
    // Without --node: the home's HTTP address.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("home");
    let listen = format!("127.0.0.1:{port}");
    ok(&["--home", s(&root), "init", "--http-listen", &listen]);
    fails(&["--home", s(&root), "status"], &["cannot reach", &url]);
}

#[test]
fn version_and_usage() {
    let out = ok(&["version", "--json"]);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(v["name"], "bitcraps");
    assert_eq!(v["version"], bitcraps_node::VERSION);
    assert_eq!(
        ok(&["version"]).stdout.trim(),
        format!("bitcraps {}", bitcraps_node::VERSION)
    );

    for verb in [
        vec!["init"],
        vec!["keys"],
        vec!["keys", "generate"],
        vec!["keys", "show"],
        vec!["config"],
        vec!["config", "show"],
        vec!["config", "validate"],
        vec!["testnet"],
        vec!["testnet", "init"],
        vec!["start"],
        vec!["status"],
        vec!["trace"],
        vec!["version"],
    ] {
        let mut args = verb.clone();
        args.push("--help");
        let out = ok(&args);
        assert!(out.stdout.contains("Usage"), "{verb:?}: {out:?}");
    }
    assert_eq!(bitcraps(&["frobnicate"]).code, 2);
    assert_eq!(bitcraps(&["testnet", "init"]).code, 2, "--out is required");
    assert_eq!(bitcraps(&["--log-format", "xml", "version"]).code, 2);
    assert_eq!(bitcraps(&["--log-level", "info,[", "version"]).code, 2);
    ok(&["--log-format", "json", "--log-level", "debug", "version"]);
}

/// A one-route HTTP server on 127.0.0.1: answers every request with
/// `status` and the JSON `body`, one request per connection. Returns its URL.
/// The thread lives until the test process ends.
fn fake_node(status: &'static str, body: String) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

/// A port nothing listens on.
fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", l.local_addr().unwrap())
}

#[test]
fn trace_merges_the_nodes_that_know_the_id() {
    let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let tx = "ab".repeat(32);
    let t0: u64 = 1_700_000_000_000_000;
    let record = |node: &str, validator: u16, stages: &[(&str, u64)]| {
        serde_json::json!({
            "node": node,
            "validator": validator,
            "correlation_id": id,
            "entries": [{
                "correlation_id": id,
                "tx_hash": tx,
                "height": 9,
                "outcome": "accepted",
                "completed": true,
                "stages": stages.iter().map(|(s, at)| serde_json::json!({
                    "stage": s, "at_unix_us": t0 + at
                })).collect::<Vec<_>>()
            }]
        })
        .to_string()
    };
    let val0 = fake_node(
        "200 OK",
        record(
            "val0",
            0,
            &[("received", 0), ("committed", 4_000), ("executed", 4_500)],
        ),
    );
    let val1 = fake_node(
        "200 OK",
        record("val1", 1, &[("mempool", 800), ("executed", 5_250)]),
    );
    let missing = fake_node(
        "404 Not Found",
        r#"{"error":"not_found","message":"no transaction tracked"}"#.to_owned(),
    );
    let down = closed_port_url();
    let nodes = format!("{val0},{val1},{missing},{down}");

    let out = ok(&["trace", id, "--nodes", &nodes]);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("correlation {id}  tx abababab  height 9  outcome accepted"),
        "{out:?}"
    );
    assert_eq!(
        &lines[1..6],
        &[
            "+    0.000 ms  val0  received",
            "+    0.800 ms  val1  mempool",
            "+    4.000 ms  val0  committed",
            "+    4.500 ms  val0  executed",
            "+    5.250 ms  val1  executed",
        ],
        "{out:?}"
    );
    let last = lines[6];
    assert!(
        last.starts_with("completion: executed on 2 of 4 nodes: val0 executed; val1 executed; "),
        "{out:?}"
    );
    assert!(last.contains(&format!("{missing} no record")), "{out:?}");
    assert!(last.contains(&format!("{down} unreachable")), "{out:?}");

    let out = ok(&["trace", id, "--nodes", &nodes, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["correlation_id"], id);
    assert_eq!(v["nodes"].as_array().unwrap().len(), 4);
    assert_eq!(v["nodes"][2]["status"], "no_record");
    assert_eq!(v["nodes"][3]["status"], "failed");
    let events = v["events"].as_array().unwrap();
    assert_eq!(events.len(), 5);
    assert_eq!(events[4]["node"], "val1");
    assert_eq!(events[4]["stage"], "executed");
    assert_eq!(events[4]["offset_ms"], 5.25);
    assert_eq!(events[4]["tx_hash"], tx.as_str());
}

#[test]
fn trace_fails_cleanly_when_no_node_knows_the_id_or_the_id_is_bad() {
    let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
    let down = closed_port_url();
    let missing = fake_node(
        "404 Not Found",
        r#"{"error":"not_found","message":"no transaction tracked"}"#.to_owned(),
    );
    let out = fails(
        &["trace", id, "--nodes", &format!("{down},{missing}")],
        &[
            "no node has a record of correlation id",
            id,
            &down,
            "unreachable",
        ],
    );
    assert!(out.stdout.is_empty(), "{out:?}");
    // A node without the route (an older version) is not "no record".
    let old = fake_node(
        "404 Not Found",
        r#"{"error":"not_found","message":"no such route"}"#.to_owned(),
    );
    fails(
        &["trace", id, "--nodes", &old],
        &["does not serve /api/v1/correlation"],
    );
    // An error answer is reported with the node's message.
    let refusing = fake_node(
        "403 Forbidden",
        r#"{"error":"forbidden","message":"correlation tracking is not available"}"#.to_owned(),
    );
    fails(
        &["trace", id, "--nodes", &refusing],
        &["403", "correlation tracking is not available"],
    );

    // A bad id is a usage error, and no node is asked.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let watched = format!("http://{}", listener.local_addr().unwrap());
    let out = bitcraps(&["trace", "not-a-uuid", "--nodes", &watched]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("not a UUID"), "{out:?}");
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        std::io::ErrorKind::WouldBlock,
        "a request was sent for an invalid id"
    );
    // --nodes is required.
    assert_eq!(bitcraps(&["trace", id]).code, 2);
}
