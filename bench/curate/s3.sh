#!/usr/bin/env bash
# The curated path into an S3 lake: the curate benchmark's archive (ROWS rows)
# through `cryptolake sync` into a bucket on a local S3 server (s3s-fs from
# bench/s3-server, on tmpfs, checking every signature), with two builds of
# the agent alternating in one run: $BEFORE (e.g. one built from an older
# commit) and this tree's. Reports each round's pipeline time and rows/s, and
# the medians.
#
# usage: BEFORE=/path/to/old/cryptolake bench/curate/s3.sh [ROWS] (default 1000000)
#        ROUNDS=5 (default)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-1000000}
ROUNDS=${ROUNDS:-5}
WORK=$(mktemp -d)
S3_ROOT=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
HTTP_PID= SERVER_PID=
trap 'kill $HTTP_PID $SERVER_PID 2>/dev/null || true; rm -rf "$WORK" "$S3_ROOT"' EXIT

: "${BEFORE:?set BEFORE to the cryptolake binary to compare with}"
python3 -m pip install --quiet --disable-pip-version-check awscli -r tests/requirements.txt
cargo build --release --quiet
AFTER=$PWD/target/release/cryptolake
source bench/lib.sh
source bench/curate/lib.sh
curate_setup "$ROWS"

CARGO_TARGET_DIR=target/bench-s3-server cargo build --release --quiet --manifest-path bench/s3-server/Cargo.toml
PORT=$(free_port)
ENDPOINT=http://127.0.0.1:$PORT
target/bench-s3-server/release/cryptolake-bench-s3-server "$S3_ROOT" "$PORT" none \
  "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$WORK/s3s.log" 2>&1 &
SERVER_PID=$!
until curl -s -o /dev/null "$ENDPOINT/__bench/requests"; do sleep 0.1; done

: > "$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
  for build in before after; do
    bucket="lake-$build-$round"
    command aws --endpoint-url "$ENDPOINT" s3 mb "s3://$bucket" > /dev/null
    sed "s|^lake = .*|lake = { url = \"s3://$bucket\", endpoint = \"$ENDPOINT\", staging_dir = \"$WORK/staging\" }|" \
      "$WORK/agent.toml" > "$WORK/$build.toml"
    binary=$BEFORE; [ "$build" = after ] && binary=$AFTER
    "$binary" validate --config "$WORK/$build.toml" > /dev/null 2>&1
    "$binary" sync --config "$WORK/$build.toml" --output json > "$WORK/$build.out" 2> "$WORK/$build.err"
    seconds=$(pipeline_seconds "$WORK/$build.err")
    echo "$build $seconds" >> "$WORK/results"
    python3 -c "import sys; b, s, r, n = sys.argv[1:]; print(f'round {r}  {b:<6} pipeline {float(s):5.2f} s  {int(n)/float(s)/1e6:5.2f} M rows/s')" "$build" "$seconds" "$round" "$ROWS"
  done
done
python3 - "$WORK/results" "$ROWS" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    build, seconds = line.split()
    runs.setdefault(build, []).append(float(seconds))
rows = int(sys.argv[2])
for build, seconds in runs.items():
    median = statistics.median(seconds)
    print(f"median {build:<6} {median:5.2f} s  {rows / median / 1e6:5.2f} M rows/s")
ratio = statistics.median(runs["before"]) / statistics.median(runs["after"])
print(f"after is {ratio:.2f}x before's speed (median pipeline time)")
PY
