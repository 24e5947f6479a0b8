#!/usr/bin/env bash
# S3 Direct Sync benchmark: mirror N archives (~100 KB, with .CHECKSUM) from a
# public-read source bucket into a private bucket on the same local S3 server,
# with `aws s3 sync` and with `cryptolake sync` in direct and stream mode, in
# one run. Reports files/s, ratios, bytes through the agent and requests per
# archive (counted by the server).
#
# usage: bench/s3-sync/run.sh [COUNT]   (default 2000; needs awscli from pip)
#        SERVER=s3s (default): s3s-fs, a Rust S3 server, built from bench/s3-server
#        SERVER=moto: moto (Python; its ~360 requests/s cap every client)
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-2000}
SERVER=${SERVER:-s3s}
WORK=$(mktemp -d)
SERVER_PID=
S3_ROOT=
trap 'kill $SERVER_PID 2>/dev/null || true; [ -n "$S3_ROOT" ] && rm -rf "$S3_ROOT"; if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi' EXIT

python3 -m pip install --quiet --disable-pip-version-check awscli -r tests/requirements.txt
cargo build --release --quiet
BIN=target/release/cryptolake

export AWS_MAX_ATTEMPTS=3
source bench/lib.sh
case $SERVER in
  moto)
    start_moto "$WORK/moto.log"
    SERVER_PID=$MOTO_PID
    requests() { grep -c '" [0-9][0-9][0-9] ' "$WORK/moto.log" || true; }
    ;;
  s3s) start_bench_s3 "$WORK/s3s.log" ;;
  *) echo "SERVER must be s3s or moto" >&2; exit 2 ;;
esac
echo "Server: $SERVER at $ENDPOINT"
aws() { command aws --endpoint-url "$ENDPOINT" "$@"; }

echo "Generating $COUNT archives..."
python3 bench/s3-sync/generate.py "$WORK/src" "$COUNT"
BYTES=$(du -sb "$WORK/src" | cut -f1)
aws s3 mb s3://data.binance.vision > /dev/null
aws s3 sync --quiet "$WORK/src" s3://data.binance.vision/
[ "$SERVER" = moto ] && aws s3api put-bucket-policy --bucket data.binance.vision --policy '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::data.binance.vision","arn:aws:s3:::data.binance.vision/*"]}]}'
for b in dest-aws dest-direct dest-stream; do aws s3 mb "s3://$b" > /dev/null; done

measure() { # name, command...
  local name=$1; shift
  local before; before=$(requests)
  local start; start=$(date +%s.%N)
  "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  local end; end=$(date +%s.%N)
  local after; after=$(requests)
  [ "$SERVER" = s3s ] && echo "  by method since the start: $(curl -s "$ENDPOINT/__bench/requests")"
  python3 - "$name" "$start" "$end" "$before" "$after" "$COUNT" "$WORK/rates" <<'PY'
import sys
name, start, end, before, after, count = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
seconds = end - start
rates = open(sys.argv[7], "a+")
rates.seek(0)
baseline = next((float(line.split("\t")[1]) for line in rates if line.startswith("aws")), None)
rates.write(f"{name}\t{count / seconds}\n")
ratio = f"  {count / seconds / baseline:5.2f}x aws s3 sync" if baseline else ""
print(f"{name:<18} {seconds:8.1f} s  {count / seconds:8.1f} archives/s  {(after - before) / count:5.2f} requests/archive{ratio}")
PY
}

SYMBOLS=$(python3 -c "print(','.join(f'\"SYM{i:03d}USDT\"' for i in range(($COUNT + 499) // 500)))")
config() { # mode bucket
  cat > "$WORK/$1.toml" <<TOML
lake = { url = "s3://$2", endpoint = "$ENDPOINT" }
runtime = { cache_dir = "$WORK/cache" }
[plugins.binance]
file = "builtin:binance"
allowed_hosts = ["127.0.0.1:$PORT"]
[[pipelines]]
name = "mirror"
transfer = "$1"
concurrency = 32
source_endpoint = "$ENDPOINT"
source = { plugin = "binance", params = { symbols = [$SYMBOLS], interval = "1m", listing_url = "$ENDPOINT/data.binance.vision", download_url = "$ENDPOINT/data.binance.vision" } }
TOML
}
config direct dest-direct
config stream dest-stream
# Compile the plugin into the cache first: compiling once per plugin version is not transfer.
$BIN validate --config "$WORK/direct.toml" > /dev/null

echo "Source: $COUNT archives + checksums, $BYTES bytes"
measure "aws s3 sync" aws s3 sync --quiet s3://data.binance.vision/data s3://dest-aws/data
measure "cryptolake direct" $BIN sync --config "$WORK/direct.toml" --output json --log-level warn
measure "cryptolake stream" $BIN sync --config "$WORK/stream.toml" --output json --log-level warn
for mode in direct stream; do
  python3 - "$WORK/cryptolake $mode.out" "$mode" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))["pipelines"][0]
transfers = {}
for a in report["artifacts"]:
    transfers[a.get("transfer", a["outcome"])] = transfers.get(a.get("transfer", a["outcome"]), 0) + 1
print(f"cryptolake {sys.argv[2]:<7} completed {report['completed']}, failed {report['failed']}, "
      f"archive bytes through the agent {report['bytes']}, transfers {transfers}")
PY
done
# Every destination holds every archive and its checksum.
for dest in dest-aws/data dest-direct/raw dest-stream/raw; do
  echo "s3://$dest: $(aws s3 ls --recursive "s3://$dest/" | grep -c . || true) objects (expected $((COUNT * 2)))"
done
