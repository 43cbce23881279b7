#!/usr/bin/env bash
# Creates (or reuses) a SoftHSM2 token directory with its own softhsm2.conf and
# initialises a token in it, for the PKCS#11 signer (docs/hsm.md) and its tests.
# Idempotent: a token that already carries LABEL is left alone.
#
# Usage:
#   eval "$(bash scripts/softhsm-init.sh [--dir DIR] [--label LABEL] [--pin PIN] [--so-pin PIN] [--install])"
#
#   --dir DIR      token directory (created, mode 700). Default: a new temp dir.
#   --label LABEL  token label (default: bitcraps)
#   --pin PIN      user PIN (default: $SOFTHSM_PIN, else 1234)
#   --so-pin PIN   security officer PIN (default: $SOFTHSM_SO_PIN, else 12345678)
#   --install      apt-get install softhsm2 (and opensc for pkcs11-tool) if missing
#
# Prints exactly one line on stdout, `export SOFTHSM2_CONF=DIR/softhsm2.conf`;
# everything else goes to stderr. PINs given as arguments are visible to other
# local users in the process list while softhsm2-util runs: for anything but a
# throwaway test token, pass them through SOFTHSM_PIN / SOFTHSM_SO_PIN.
set -euo pipefail

dir=""
label="bitcraps"
pin="${SOFTHSM_PIN:-1234}"
so_pin="${SOFTHSM_SO_PIN:-12345678}"
install=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --label) label="$2"; shift 2 ;;
    --pin) pin="$2"; shift 2 ;;
    --so-pin) so_pin="$2"; shift 2 ;;
    --install) install=1; shift ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "softhsm-init: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! command -v softhsm2-util >/dev/null 2>&1 || ! command -v pkcs11-tool >/dev/null 2>&1; then
  if [ "$install" = 1 ]; then
    echo "softhsm-init: installing softhsm2 and opensc" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 opensc) >&2
  elif ! command -v softhsm2-util >/dev/null 2>&1; then
    echo "softhsm-init: softhsm2-util not found: apt-get install softhsm2 opensc (or pass --install)" >&2
    exit 1
  fi
fi

if [ -z "$dir" ]; then
  dir=$(mktemp -d "${TMPDIR:-/tmp}/bitcraps-softhsm.XXXXXX")
fi
mkdir -p "$dir/tokens"
chmod 700 "$dir"
dir=$(cd "$dir" && pwd)
conf="$dir/softhsm2.conf"
if [ ! -f "$conf" ]; then
  cat >"$conf" <<CONF
# SoftHSM2 configuration written by scripts/softhsm-init.sh
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
fi
export SOFTHSM2_CONF="$conf"

# Token labels are padded with spaces to 32 bytes in --show-slots.
if softhsm2-util --show-slots 2>/dev/null \
    | sed -n 's/^[[:space:]]*Label:[[:space:]]*//p' | sed 's/[[:space:]]*$//' \
    | grep -Fxq -- "$label"; then
  echo "softhsm-init: token \"$label\" already initialised in $dir" >&2
else
  softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >&2
fi
echo "export SOFTHSM2_CONF=$conf"
