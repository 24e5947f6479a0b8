#!/usr/bin/env bash
# Replicas benchmark: N `cryptolake run` replicas with [leases] mirror the
# same COUNT archives (direct mode, server-side copies) into one bucket on a
# local S3 server, for N = 1, 2, 3, against one `sync` without leases, in
# one run. Reports archives/s, the speed-up over one replica, and requests
# per archive (counted by the server), whose difference from `sync` is the
# lease protocol's cost.
#
# usage: bench/replicas/run.sh [COUNT] [DAYS_PER_SERIES]   (default 2000 50:
#        40 series; needs awscli from pip).
#        RATE=N paces each agent's transfer requests to N/s, as each agent's
#        own network bounds it on a real cluster; without it, every agent
#        shares this machine's two cores with the server. The server is s3s-fs
#        (bench/s3-server), whose If-None-Match is checked before the write,
#        not with it: fine for measuring, not for correctness (the tests
#        run replicas on moto).
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${1:-2000}
PER_SYMBOL=${2:-50}
WORK=$(mktemp -d)
SERVER_PID=
S3_ROOT=
AGENTS=()
cleanup() {
  for pid in "${AGENTS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  kill $SERVER_PID 2>/dev/null || true
  [ -n "$S3_ROOT" ] && rm -rf "$S3_ROOT"
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

python3 -m pip install --quiet --disable-pip-version-check awscli -r tests/requirements.txt
cargo build --release --quiet
BIN=target/release/cryptolake
source bench/lib.sh
export AWS_MAX_ATTEMPTS=3

start_bench_s3 "$WORK/s3s.log"
aws() { command aws --endpoint-url "$ENDPOINT" "$@"; }

SERIES=$(( (COUNT + PER_SYMBOL - 1) / PER_SYMBOL ))
RATE_LIMIT=
[ -n "${RATE:-}" ] && RATE_LIMIT="rate_limit = { per_second = $RATE, burst = 8 }"
echo "Generating $COUNT archives in $SERIES series..."
PER_SYMBOL=$PER_SYMBOL python3 bench/s3-sync/generate.py "$WORK/src" "$COUNT"
aws s3 mb s3://data.binance.vision > /dev/null
aws s3 sync --quiet "$WORK/src" s3://data.binance.vision/
SYMBOLS=$(python3 -c "print(','.join(f'\"SYM{i:03d}USDT\"' for i in range($SERIES)))")

config() { # name bucket leases
  cat > "$WORK/$1.toml" <<TOML
lake = { url = "s3://$2", endpoint = "$ENDPOINT" }
runtime = { cache_dir = "$WORK/cache" }
admin = { listen = "" }
$3
[plugins.binance]
file = "builtin:binance"
allowed_hosts = ["127.0.0.1:$PORT"]
[[pipelines]]
name = "mirror"
transfer = "direct"
concurrency = 32
source_endpoint = "$ENDPOINT"
schedule = { every = "24h" }
$RATE_LIMIT
source = { plugin = "binance", params = { symbols = [$SYMBOLS], interval = "1m", listing_url = "$ENDPOINT/data.binance.vision", download_url = "$ENDPOINT/data.binance.vision" } }
TOML
}

report() { # name seconds requests baseline_rate
  python3 - "$@" "$COUNT" "$WORK/rates" <<'PY'
import sys
name, seconds, requests, count = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rates = open(sys.argv[5], "a+")
rates.seek(0)
one = next((float(l.split("\t")[1]) for l in rates if l.startswith("1 replica")), None)
rates.write(f"{name}\t{count / seconds}\n")
ratio = f"  {count / seconds / one:5.2f}x one replica" if one else ""
print(f"{name:<22} {seconds:7.1f} s  {count / seconds:7.1f} archives/s  {requests / count:5.2f} requests/archive{ratio}")
PY
}

config sync dest-sync ""
aws s3 mb s3://dest-sync > /dev/null
# Compile the plugin into the cache first: compiling is not transfer.
$BIN validate --config "$WORK/sync.toml" > /dev/null 2>&1
before=$(requests); start=$(date +%s.%N)
$BIN sync --config "$WORK/sync.toml" --output json --log-level warn > "$WORK/sync.out"
end=$(date +%s.%N); after=$(requests)
report "sync, no leases" "$(echo "$end - $start" | bc)" $((after - before))

for n in 1 2 3; do
  bucket=dest-replicas-$n
  aws s3 mb "s3://$bucket" > /dev/null
  config "replicas-$n" "$bucket" 'leases = { duration = "30s", renew_every = "10s" }'
  AGENTS=()
  before=$(requests); start=$(date +%s.%N)
  for i in $(seq 1 "$n"); do
    HOSTNAME=replica-$i $BIN --log-format json run --config "$WORK/replicas-$n.toml" > /dev/null 2> "$WORK/replicas-$n-$i.log" &
    AGENTS+=($!)
  done
  # Each replica's first run ends when every series is done by someone.
  for i in $(seq 1 "$n"); do
    until grep -q '"Pipeline run finished."' "$WORK/replicas-$n-$i.log"; do
      kill -0 "${AGENTS[$((i - 1))]}" 2>/dev/null || { echo "replica $i exited:"; tail -5 "$WORK/replicas-$n-$i.log"; exit 1; }
      sleep 0.05
    done
  done
  end=$(date +%s.%N); after=$(requests)
  for pid in "${AGENTS[@]}"; do kill -TERM "$pid"; wait "$pid" || true; done
  AGENTS=()
  label="$n replica"; [ "$n" -gt 1 ] && label="$n replicas"
  report "$label" "$(echo "$end - $start" | bc)" $((after - before))
  python3 - "$WORK" "$n" <<'PY'
import glob, json, sys
work, n = sys.argv[1], sys.argv[2]
done = []
for path in sorted(glob.glob(f"{work}/replicas-{n}-*.log")):
    for line in open(path):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("message") == "Pipeline run finished.":
            done.append(f"{event.get('completed')} completed, {event.get('other_replicas')} left to others")
            break
print("    " + "; ".join(done))
PY
  echo "    s3://$bucket/raw: $(aws s3 ls --recursive "s3://$bucket/raw/" | grep -c . || true) objects (expected $((COUNT * 2)))"
done
