#!/usr/bin/env bash
# The unsafe audit (DESIGN.md invariant 6; UNSAFE_AUDIT.md). Fails when
#   * an `unsafe` site (block, `unsafe impl`, `unsafe fn`, any use of the keyword
#     in code) has no `// SAFETY:` comment on its line, within the 3 lines above,
#     or in the comment block directly above it; or shares its SAFETY comment with
#     another site (one comment justifies one site);
#   * a site's (file, line) has no row in UNSAFE_AUDIT.md;
#   * a row's (file, line) does not point at an unsafe site (stale after an edit),
#     a row is duplicated or malformed (6 cells, risk low/medium/high), or the
#     test it names does not exist as a `fn`;
#   * `#[allow(unsafe_code)]` appears anywhere but the one audited module.
# Scans tracked and untracked (not ignored) .rs files, skipping comments and
# string literals, so a doc comment that merely mentions unsafe is not a site.
#
# Usage: bash scripts/check-unsafe.sh          (scripts/test.sh runs it in CI)
set -euo pipefail
cd "$(dirname "$0")/.."
AUDIT=UNSAFE_AUDIT.md
# Where `#[allow(unsafe_code)]` may stand: the declaration of crypto's raw-call module.
ALLOW_UNSAFE_IN="crypto/src/secret/mod.rs"
fail=0
err() { echo "check-unsafe: $*" >&2; fail=1; }

mapfile -t files < <(git ls-files --cached --others --exclude-standard -- '*.rs' | sort -u)
[ -f "$AUDIT" ] || { echo "check-unsafe: $AUDIT missing" >&2; exit 1; }

# 1. Sites: every line whose code (comments and string literals removed) contains
#    the keyword `unsafe`. Output: file<TAB>line.
sites=$(
  [ "${#files[@]}" -eq 0 ] || awk '
    FNR == 1 { inblock = 0 }
    {
      s = $0; out = ""; n = length(s); i = 1
      while (i <= n) {
        c = substr(s, i, 1); c2 = substr(s, i, 2)
        if (inblock) { if (c2 == "*/") { inblock = 0; i += 2 } else i++; continue }
        if (c2 == "/*") { inblock = 1; i += 2; continue }
        if (c2 == "//") break
        if (substr(s, i, 3) ~ /^'"'"'.'"'"'$/) { out = out " "; i += 3; continue }   # a char literal
        if (substr(s, i, 4) ~ /^'"'"'\\.'"'"'$/) { out = out " "; i += 4; continue } # an escaped char
        if (c == "\"") {
          i++
          while (i <= n && substr(s, i, 1) != "\"") { if (substr(s, i, 1) == "\\") i++; i++ }
          i++; out = out " "; continue
        }
        out = out c; i++
      }
      if (out ~ /(^|[^A-Za-z0-9_])unsafe([^A-Za-z0-9_]|$)/) print FILENAME "\t" FNR
    }' "${files[@]}"
)

# 2. Each site needs its own SAFETY comment: on the line itself, within the 3 lines
#    above, or in the contiguous comment/attribute block right above it.
declare -A used_safety=()
while IFS=$'\t' read -r f l; do
  [ -z "$f" ] && continue
  found=""
  if sed -n "${l}p" "$f" | grep -q 'SAFETY:'; then found=$l; fi
  k=$((l - 1)); in_block=1
  while [ -z "$found" ] && [ "$k" -ge 1 ]; do
    text=$(sed -n "${k}p" "$f")
    is_comment=0
    [[ "$text" =~ ^[[:space:]]*(//|#\[) ]] && is_comment=1
    [ "$is_comment" = 0 ] && in_block=0
    if [ $((l - k)) -le 3 ] || [ "$in_block" = 1 ]; then
      [[ "$text" == *"SAFETY:"* ]] && found=$k
    else
      break
    fi
    k=$((k - 1))
  done
  if [ -z "$found" ]; then
    err "missing // SAFETY: comment: $f:$l"
  elif [ -n "${used_safety[$f:$found]:-}" ]; then
    err "$f:$l shares the SAFETY comment at line $found with $f:${used_safety[$f:$found]} (one comment per site)"
  else
    used_safety[$f:$found]=$l
  fi
done <<<"$sites"

# 3. Rows: | `file` | line | what | invariant | risk | test |
rows=$(awk -F'|' '
  /^\|[[:space:]]*`[^`]+\.rs`/ {
    n = NF - 2; path = $2; gsub(/[[:space:]`]/, "", path); line = $3; gsub(/[[:space:]]/, "", line)
    risk = $6; gsub(/[[:space:]]/, "", risk); test = $7
    print path "\t" line "\t" n "\t" risk "\t" test
  }' "$AUDIT")
declare -A row_seen=()
nrows=0
while IFS=$'\t' read -r path line ncells risk tests; do
  [ -z "$path" ] && continue
  nrows=$((nrows + 1))
  where="$AUDIT row $path:$line"
  [ "$ncells" = 6 ] || err "$where: expected 6 cells, found $ncells"
  [[ "$line" =~ ^[0-9]+$ ]] || { err "$where: line is not a number"; continue; }
  [ -n "${row_seen[$path:$line]:-}" ] && err "$where: duplicate row"
  row_seen[$path:$line]=1
  case "$risk" in low | medium | high) ;; *) err "$where: risk must be low, medium or high, not '$risk'" ;; esac
  if ! grep -qP "^\Q$path\E\t$line\$" <<<"$sites"; then
    err "$where points at nothing (no unsafe site there: line moved or block removed)"
  fi
  names=$(grep -oE '`[A-Za-z_][A-Za-z0-9_]*`' <<<"$tests" | tr -d '`' || true)
  [ -n "$names" ] || err "$where: names no test"
  for t in $names; do
    if ! grep -qE "fn ${t}\b" "${files[@]}"; then err "$where: test $t does not exist"; fi
  done
done <<<"$rows"

nsites=0
while IFS=$'\t' read -r f l; do
  [ -z "$f" ] && continue
  nsites=$((nsites + 1))
  [ -n "${row_seen[$f:$l]:-}" ] || err "no $AUDIT row for the unsafe site at $f:$l"
done <<<"$sites"

# 4. Only the audited module may allow unsafe_code (every other crate forbids it).
while IFS= read -r hit; do
  [ -z "$hit" ] && continue
  [ "${hit%%:*}" = "$ALLOW_UNSAFE_IN" ] || err "allow(unsafe_code) outside $ALLOW_UNSAFE_IN: $hit"
done < <(grep -nE '^[^/]*(allow|expect)\([^)]*\bunsafe_code\b' "${files[@]}" /dev/null || true)

if [ "$fail" = 0 ]; then
  nfiles=$(cut -f1 <<<"$sites" | sed '/^$/d' | sort -u | wc -l)
  echo "unsafe audit: $nsites unsafe site(s) in $nfiles file(s), each with a SAFETY comment and one of $nrows $AUDIT rows"
fi
exit "$fail"
