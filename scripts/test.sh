#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine. Installs what the tests
# need (idempotent; apt-get/pip as root), then: format check, clippy, the unsafe
# audit check, all unit/property/integration tests (including real validator
# processes over QUIC), the simulator campaigns of the consensus "Done when"
# with JSON reports, a 20 s `bitcraps localnet` with its JSON summary checked,
# a short `bitcraps bench` (with the tracing-overhead comparison), a quick
# criterion pass with a JSON summary, and the instruction-count gate.
#
# Usage: bash scripts/test.sh        (CI: .ci/run calls exactly this)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# A clean clone gains nothing from incremental artifacts; they doubled the
# debug target's size on disk.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
REPORTS=${REPORTS:-target/reports}
mkdir -p "$REPORTS"
step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
cargo --version
rustfmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
command -v python3 >/dev/null || { apt-get update && apt-get install -y python3; }
# The OTLP trace test decodes spans with the official protobuf messages.
python3 -c "import opentelemetry.proto" 2>/dev/null \
  || python3 -m pip install --quiet opentelemetry-proto \
  || python3 -m pip install --quiet --break-system-packages opentelemetry-proto
# PKCS#11 signer tests need a SoftHSM2 token and OpenSC's pkcs11-tool; the
# secret-memory tests also run under valgrind memcheck.
# promtool (Debian `prometheus`) lints a running node's /metrics.
command -v softhsm2-util >/dev/null && command -v pkcs11-tool >/dev/null && command -v valgrind >/dev/null \
  && command -v promtool >/dev/null \
  || { apt-get update && apt-get install -y softhsm2 opensc valgrind prometheus; }

step "format"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "unsafe audit"
bash scripts/check-unsafe.sh

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi
# Doc tests (nextest does not run them).
cargo test --workspace --doc

step "secret memory under valgrind memcheck"
bash scripts/valgrind-secret.sh

step "simulator campaigns (release)"
cargo build --release -p bitcraps-chaos
SIM=target/release/bitcraps-chaos
$SIM sim --validators 4 --byzantine 1 --seeds 500 --swarm --json "$REPORTS/sim-n4-f1.json" | tail -n 3
$SIM sim --validators 7 --byzantine 2 --seeds 500 --swarm --json "$REPORTS/sim-n7-f2.json" | tail -n 3
# Beyond the threshold the checker must find violations: exit code 1 expected.
set +e
$SIM sim --validators 4 --byzantine 2 --seeds 20 --unsafe-beyond-threshold --behavior twin \
  --json "$REPORTS/sim-beyond-threshold.json" | tail -n 1
rc=$?
set -e
python3 - "$REPORTS" <<'PY'
import json, sys
d = sys.argv[1]
for name in ("sim-n4-f1", "sim-n7-f2"):
    r = json.load(open(f"{d}/{name}.json"))
    for k in ("seeds_run", "safety_violations", "liveness_failures", "determinism_mismatches",
              "min_committed_height", "recovery_ms_p50", "recovery_ms_max"):
        assert k in r, f"{name}: missing {k}"
    assert r["seeds_run"] == 500, r["seeds_run"]
    assert r["safety_violations"] == 0 and r["liveness_failures"] == 0, r["failing_seeds"][:3]
    assert r["determinism_mismatches"] == 0 and r["seeds_without_commit"] == 0
    assert r["min_committed_height"] > 0
    print(f"{name}: ok ({r['seeds_run']} seeds, min height {r['min_committed_height']}, "
          f"recovery p50 {r['recovery_ms_p50']} ms, max {r['recovery_ms_max']} ms)")
b = json.load(open(f"{d}/sim-beyond-threshold.json"))
assert b["safety_violations"] > 0, "beyond-threshold campaign found no violation"
print(f"beyond threshold: {b['safety_violations']}/{b['seeds_run']} seeds violate safety, as they must")
PY

step "localnet (release): 4 validator processes, players betting craps, equal state roots"
cargo build --release -p bitcraps-node --bin bitcraps
target/release/bitcraps localnet --validators 4 --players 16 --duration 20s \
  --dir target/localnet-ci --json "$REPORTS/localnet.json" | tail -n 16
python3 - "$REPORTS/localnet.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("committed_tx", "committed_blocks", "tps", "latency_ms_p50", "latency_ms_p99",
          "state_roots_equal", "validators", "rolls", "bets_placed", "bets_settled",
          "chips_conserved"):
    assert k in r, f"localnet summary: missing {k}"
assert r["state_roots_equal"] is True, r
assert r["committed_tx"] > 0 and r["validators"] == 4, r
assert len({n["state_root"] for n in r["nodes"]}) == 1, r["nodes"]
# The players played craps: dice rolled, bets accepted and decided, chips conserved.
assert r["rolls"] > 0, r
assert r["bets_placed"] > 0, r
assert r["bets_settled"] > 0, r
assert r["chips_conserved"] is True, r
print(f"localnet: ok ({r['committed_tx']} tx in {r['committed_blocks']} blocks, {r['tps']} tx/s, "
      f"p50 {r['latency_ms_p50']} ms, p99 {r['latency_ms_p99']} ms; {r['rolls']} rolls, "
      f"{r['bets_placed']} bets placed, {r['bets_settled']} settled, chips conserved)")
PY

step "cluster bench (release): 4 validators, open loop 500 tx/s for 10 s, with and without trace export"
mkdir -p "$REPORTS"
target/release/bitcraps bench --validators 4 --duration 10s --rate 500 --tracing-overhead \
  --json "$REPORTS/cluster-bench.json" | tail -n 4
python3 - "$REPORTS/cluster-bench.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for k in ("committed_tps", "offered_tps", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
          "latency_ms_max", "consensus_latency_ms_p50", "cpu_percent", "rss_mb_max", "validators",
          "rejected", "timed_out", "duration_s", "tx_size_bytes", "rate", "tracing_overhead"):
    assert k in r, f"cluster bench: missing {k}"
assert r["validators"] == 4 and r["committed_tps"] > 0, r
t = r["tracing_overhead"]
assert t["committed_tps_off"] > 0 and t["export_requests"] > 0, t
# Figures are reported, never gated (shared machine).
print(f"cluster bench: {r['committed_tps']} tx/s committed of {r['offered_tps']} offered, "
      f"p50 {r['latency_ms_p50']} ms, p99 {r['latency_ms_p99']} ms, consensus p50 "
      f"{r['consensus_latency_ms_p50']} ms, CPU {r['cpu_percent']}%, RSS max {r['rss_mb_max']} MiB; "
      f"tracing export throughput ratio {t['throughput_ratio']}")
PY

step "benchmarks (quick criterion pass; numbers are reported, never gated)"
# Name each bench target: a bare `cargo bench -- ARGS` also hands ARGS to the
# lib's libtest harness, which rejects criterion's options.
touch "$REPORTS/bench-start"
for bench in benches/benches/*.rs; do
  name=$(basename "$bench" .rs)
  cargo bench -p bitcraps-benches --bench "$name" -- --warm-up-time 1 --measurement-time 1 \
    > "$REPORTS/bench-$name.txt" 2>&1
done
# One JSON of medians; --newer skips result folders of renamed benches.
python3 scripts/bench-summary.py "$REPORTS/bench-summary.json" --newer "$REPORTS/bench-start"

step "instruction-count gate (callgrind; fails above +3% per hot path)"
bash scripts/bench-gate.sh --self-test
bash scripts/bench-gate.sh --out "$REPORTS/bench-instructions.json"

step "disk used by build artifacts"
du -sh target 2>/dev/null || true

echo
echo "all tests passed"
