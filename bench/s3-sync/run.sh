#!/usr/bin/env bash
# S3 Direct Sync benchmark: mirror N archives (~100 KB, with .CHECKSUM) from a
# public-read source bucket into a private bucket on the same local S3 server
# (moto), with `aws s3 sync` and with `cryptolake sync` in direct and stream
# mode, in one run. Reports files/s, ratios, bytes through the agent and
# requests per archive (counted from the server's request log).
#
# usage: bench/s3-sync/run.sh [COUNT]   (default 2000; needs awscli and moto from pip)
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-2000}
WORK=$(mktemp -d)
trap 'kill $MOTO_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

python3 -m pip install --quiet --disable-pip-version-check awscli -r tests/requirements.txt
cargo build --release --quiet
BIN=target/release/cryptolake

export AWS_MAX_ATTEMPTS=3
source bench/lib.sh
start_moto "$WORK/moto.log"
aws() { command aws --endpoint-url "$ENDPOINT" "$@"; }

echo "Generating $COUNT archives..."
python3 bench/s3-sync/generate.py "$WORK/src" "$COUNT"
BYTES=$(du -sb "$WORK/src" | cut -f1)
aws s3 mb s3://data.binance.vision > /dev/null
aws s3 sync --quiet "$WORK/src" s3://data.binance.vision/
aws s3api put-bucket-policy --bucket data.binance.vision --policy '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["s3:GetObject","s3:ListBucket"],"Resource":["arn:aws:s3:::data.binance.vision","arn:aws:s3:::data.binance.vision/*"]}]}'
for b in dest-aws dest-direct dest-stream; do aws s3 mb "s3://$b" > /dev/null; done

requests() { grep -c '" [0-9][0-9][0-9] ' "$WORK/moto.log" || true; }
measure() { # name, command...
  local name=$1; shift
  local before; before=$(requests)
  local start; start=$(date +%s.%N)
  "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  local end; end=$(date +%s.%N)
  local after; after=$(requests)
  python3 - "$name" "$start" "$end" "$before" "$after" "$COUNT" <<'PY'
import sys
name, start, end, before, after, count = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
seconds = end - start
print(f"{name:<18} {seconds:8.1f} s  {count / seconds:8.1f} archives/s  {(after - before) / count:5.2f} requests/archive")
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
