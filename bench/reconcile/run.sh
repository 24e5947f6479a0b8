#!/usr/bin/env bash
# Reconcile's memory against the manifest's size, one script run: peak RSS of
# `cryptolake sync --dry-run` for a pipeline whose manifest prefix holds
# COUNT entries (default 1,000,000) besides the 20 archives its source lists,
# and the same with 1,000 entries. The listing is walked as a stream, so the
# two should be within a few MB; before session 14 every key was held in a
# set. Entries are empty files in directories of 1,000 on tmpfs (a local
# lake: an S3 server's listing of a million keys would be what is measured).
#
# usage: bench/reconcile/run.sh [COUNT]   BIN=path to compare another build
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-1000000}
WORK=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
cleanup() { kill "${HTTP_PID:-}" 2>/dev/null || true; rm -rf "$WORK"; }
source bench/lib.sh
trap cleanup EXIT

if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet
  BIN=$PWD/target/release/cryptolake
fi
serve_archive "$WORK" 20 10
PORT=$HTTP_PORT

run_with() { # entries
  local lake=$WORK/lake-$1
  python3 - "$lake/_cryptolake/manifest/probe/data/spot/daily/klines/OLD" "$1" <<'PY'
import os, sys
root, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    d = os.path.join(root, f"{i // 1000:04d}")
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    open(os.path.join(d, f"OLD{i:07d}.zip.json"), "w").close()
PY
  { config_header "$PORT" | sed "s|$WORK/lake|$lake|"; cat <<TOML
[[pipelines]]
name = "probe"
window = { start = "2023-01-01", end = "2023-01-20" }
source = $(probe_source 1)
TOML
  } > "$WORK/$1.toml"
  "$BIN" validate --config "$WORK/$1.toml" > /dev/null
  /usr/bin/time -f "%M %e" -o "$WORK/$1.time" "$BIN" sync --dry-run --output json --config "$WORK/$1.toml" > "$WORK/$1.out"
  read -r rss seconds < "$WORK/$1.time"
  planned=$(python3 -c "import json,sys; print(len(json.load(open(sys.argv[1]))['plans'][0]['planned']))" "$WORK/$1.out")
  printf '%9d manifest entries: peak RSS %6.1f MB, %5.1f s, %d archives planned\n' "$1" "$(echo "$rss / 1024" | bc -l)" "$seconds" "$planned"
}
run_with 1000
run_with "$COUNT"
