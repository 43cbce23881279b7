#!/usr/bin/env bash
# Runs the secret-memory tests (crypto/src/secret, crypto/tests/secret.rs) under
# valgrind memcheck; any memcheck error fails the run (exit 1).
#
# * Builds the two test binaries that hold them (crypto's unit tests and the
#   `secret` integration test) and runs each under memcheck, the unit tests
#   filtered to `secret::tests::`.
# * Child processes (the counter and mlock-failure children re-run the binary)
#   are traced too (--trace-children=yes), so they are checked as well, and an
#   error in a child fails its parent test.
# * The guard-page children are NOT traced (--trace-children-skip-by-arg): they
#   write into a guard page on purpose and must die with SIGSEGV, natively. Their
#   parent tests still run under memcheck and check the signal.
# * Leak checking is off: test harness threads and statics are not leaks.
#
# Usage: bash scripts/valgrind-secret.sh   (scripts/test.sh calls it in CI)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v valgrind >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
  else
    echo "valgrind-secret: valgrind not installed (apt-get install valgrind)" >&2
    exit 1
  fi
fi
command -v python3 >/dev/null || { echo "valgrind-secret: python3 needed" >&2; exit 1; }

started=$(date +%s)
# Build (not run) the test binaries; cargo prints their paths as JSON.
mapfile -t exes < <(
  cargo test -p bitcraps-crypto --lib --test secret --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        kind = m["target"]["kind"][0]
        print(("lib" if kind == "lib" else m["target"]["name"]) + "\t" + m["executable"])
'
)
# A build error is shown by running the build again, this time with its output.
if [ "${#exes[@]}" -ne 2 ]; then
  cargo test -p bitcraps-crypto --lib --test secret --no-run
  echo "valgrind-secret: expected 2 test binaries, found ${#exes[@]}" >&2
  exit 1
fi

VALGRIND=(valgrind --tool=memcheck --error-exitcode=1 --leak-check=no --track-origins=yes
  --trace-children=yes --trace-children-skip-by-arg='*guard_page_child*' -q)
valgrind --version
status=0
for entry in "${exes[@]}"; do
  name=${entry%%$'\t'*}
  exe=${entry#*$'\t'}
  filter=()
  [ "$name" = lib ] && filter=(secret::tests::)
  cmd=("${VALGRIND[@]}" "$exe" "${filter[@]}" --test-threads=2)
  printf '+'; printf ' %q' "${cmd[@]}"; echo
  t0=$(date +%s)
  if "${cmd[@]}"; then
    echo "valgrind-secret: $name: clean ($(($(date +%s) - t0)) s)"
  else
    echo "valgrind-secret: $name: FAILED (memcheck error or test failure)" >&2
    status=1
  fi
done
echo "valgrind-secret: total $(($(date +%s) - started)) s"
exit "$status"
