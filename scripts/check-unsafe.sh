#!/usr/bin/env bash
# Fails when an `unsafe` block lacks a `// SAFETY:` comment just above it, when a
# source file with `unsafe` has no row in UNSAFE_AUDIT.md, or when a row points
# at a file that no longer contains unsafe code.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
mapfile -t files < <(git ls-files '*.rs' | xargs grep -lE '\bunsafe\s*(\{|fn|impl)' 2>/dev/null || true)
for f in "${files[@]}"; do
  while IFS=: read -r line _; do
    start=$((line > 3 ? line - 3 : 1))
    if ! sed -n "${start},${line}p" "$f" | grep -q 'SAFETY:'; then
      echo "missing // SAFETY: comment: $f:$line"; fail=1
    fi
  done < <(grep -nE '\bunsafe\s*\{' "$f" | grep -vE '^\s*[0-9]+:\s*//')
  grep -q "$f" UNSAFE_AUDIT.md || { echo "no UNSAFE_AUDIT.md row for $f"; fail=1; }
done
# Rows must point at files that still contain unsafe code.
while read -r path; do
  [ -z "$path" ] && continue
  if [ ! -f "$path" ] || ! grep -qE '\bunsafe\s*(\{|fn|impl)' "$path"; then
    echo "UNSAFE_AUDIT.md row points at nothing: $path"; fail=1
  fi
done < <(grep -oE '^\| *`[^`]+\.rs' UNSAFE_AUDIT.md | sed -E 's/^\| *`//' || true)
[ "$fail" = 0 ] && echo "unsafe audit: ${#files[@]} file(s) with unsafe, all documented"
exit "$fail"
