#!/usr/bin/env bash
# Agent-mode benchmark, one script run:
#  1. Plugin swap latency: a pipeline is kept busy decoding small archives
#     (served by a local HTTP server, discovered in probe mode) through a
#     transform loaded from a .wasm file; the file is replaced SWAPS times
#     (write + rename, as an operator deploys). Latency is from the new
#     file's modification time to the first call the new version serves (the
#     agent logs it). Two series: every swap a new build (compile-cache
#     miss), then two builds alternating (cache hit). Failed artifacts are
#     counted from the log.
#  2. Idle RSS of `cryptolake run` with four plugins loaded, after its runs.
#  3. Start to ready with a warm compile cache (the agent's own
#     measurement, and wall time from spawn to the log line).
#
# usage: bench/agent/run.sh [SWAPS]   (default 100)
set -euo pipefail
cd "$(dirname "$0")/../.."
SWAPS=${1:-100}
WORK=$(mktemp -d)
cleanup() { kill "${HTTP_PID:-}" "${AGENT_PID:-}" 2>/dev/null || true; rm -rf "$WORK"; }
source bench/lib.sh
trap cleanup EXIT

cargo build --release --quiet
BIN=$PWD/target/release/cryptolake
PLUGIN_DIR=target/plugins/wasm32-wasip2/plugin

SYMBOLS=40 DAYS=500
echo "Generating $((SYMBOLS * DAYS)) small archives (60 rows each)..."
serve_archive "$WORK" $((SYMBOLS * DAYS)) 60
PORT=$HTTP_PORT

cp "$PLUGIN_DIR/cryptolake_plugin_ohlcv.wasm" "$WORK/normalise.wasm"
{ config_header "$PORT"; cat <<TOML
[plugins.normalise]
file = "$WORK/normalise.wasm"
[[pipelines]]
name = "busy"
table = "ohlcv"
concurrency = 4
raw = false
# A steady ~80 archives/s (two paced requests each), so the pipeline stays
# busy for the whole series of swaps.
rate_limit = { per_second = 160, burst = 4 }
window = { start = "2023-01-01", end = "2024-05-14" }
source = $(probe_source $SYMBOLS)
transforms = [{ plugin = "normalise" }]
TOML
} > "$WORK/swap.toml"

"$BIN" --log-format json run --config "$WORK/swap.toml" 2> "$WORK/swap.log" &
AGENT_PID=$!
python3 - "$WORK" "$SWAPS" <<'PY'
import json, os, statistics, sys, time
work, swaps = sys.argv[1], int(sys.argv[2])
log = os.path.join(work, "swap.log")
plugin = os.path.join(work, "normalise.wasm")
base = open(plugin, "rb").read()

# The log is read incrementally: re-reading it whole while polling would
# load the machine being measured.
seen, offset, partial = {}, 0, ""
def events(message):
    global offset, partial
    with open(log) as f:
        f.seek(offset)
        chunk = f.read()
        offset = f.tell()
    lines = (partial + chunk).split("\n")
    partial = lines.pop()
    for line in lines:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        seen.setdefault(e.get("message"), []).append(e)
    return seen.get(message, [])

def wait(message, count, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = events(message)
        if len(found) >= count:
            return found
        if events("Pipeline run finished."):
            sys.exit("the pipeline ran out of work before the swaps ended; raise SYMBOLS or DAYS")
        time.sleep(0.005)
    sys.exit(f"timed out waiting for {message!r}")

def build(tag):
    name = b"cryptolake-bench-build"
    payload = bytes([len(name)]) + name + tag.encode()
    size, leb = len(payload), b""
    while True:
        byte = size & 0x7F
        size >>= 7
        leb += bytes([byte | (0x80 if size else 0)])
        if not size:
            break
    return base + b"\x00" + leb + payload

def deploy(data):
    tmp = plugin + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, plugin)

served = "The new plugin version served its first call."
wait("Artifact committed to the lake.", 20)
done = 0
def series(builds, label):
    global done
    latencies = []
    for data in builds:
        deploy(data)
        done += 1
        event = wait(served, done)[-1]
        latencies.append(event["swap_latency_ms"])
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    print(f"swap latency, {label:<22} n={len(latencies):3d}  p50 {q[49]:7.1f} ms  p99 {q[98]:7.1f} ms  max {max(latencies):7.1f} ms")

series([build(f"miss-{i}") for i in range(swaps)], "compile-cache miss")
a, b = build("hit-a"), build("hit-b")
series([a, b], "(warming the cache)")
series([a if i % 2 == 0 else b for i in range(swaps)], "compile-cache hit")
rejected = len(events("Plugin reload rejected; the running version keeps serving."))
committed = len(events("Artifact committed to the lake."))
failed = len(events("Artifact failed; the other artifacts continue."))
quarantined = len(events("Artifact quarantined; it was not written to the lake as good data."))
print(f"artifacts during the swaps: {committed} committed, {failed} failed, {quarantined} quarantined; {rejected} swaps rejected")
PY
kill -TERM "$AGENT_PID"; wait "$AGENT_PID" || true

# Idle RSS and start-to-ready: four plugins (binance, ohlcv, vwap, quality)
# in two pipelines over the already-collected lake, so the runs find
# nothing to do; the compile cache is warm from the first part.
{ config_header "$PORT"; cat <<TOML
[[pipelines]]
name = "idle-a"
table = "ohlcv"
window = { start = "2023-01-01", end = "2023-01-05" }
schedule = { every = "1h" }
source = { plugin = "binance", params = { symbols = ["SYM000USDT"], interval = "1m", discovery = "probe", listing_url = "http://127.0.0.1:$PORT", download_url = "http://127.0.0.1:$PORT" } }
transforms = [{ plugin = "ohlcv" }, { plugin = "vwap" }]
[[pipelines]]
name = "idle-b"
table = "ohlcv_checked"
window = { start = "2023-01-01", end = "2023-01-05" }
schedule = { every = "1h" }
source = { plugin = "binance", params = { symbols = ["SYM001USDT"], interval = "1m", discovery = "probe", listing_url = "http://127.0.0.1:$PORT", download_url = "http://127.0.0.1:$PORT" } }
transforms = [{ plugin = "ohlcv" }, { plugin = "quality" }]
TOML
} > "$WORK/idle.toml"
for attempt in 1 2 3; do
  START=$(date +%s.%N)
  "$BIN" --log-format json run --config "$WORK/idle.toml" 2> "$WORK/idle-$attempt.log" &
  AGENT_PID=$!
  until grep -q '"Agent ready."' "$WORK/idle-$attempt.log" 2>/dev/null; do sleep 0.001; done
  READY=$(date +%s.%N)
  until [ "$(grep -c '"Pipeline run finished."' "$WORK/idle-$attempt.log")" -ge 2 ]; do sleep 0.05; done
  sleep 2
  RSS=$(awk '/VmRSS/ {print $2}' "/proc/$AGENT_PID/status")
  HWM=$(awk '/VmHWM/ {print $2}' "/proc/$AGENT_PID/status")
  kill -TERM "$AGENT_PID"; wait "$AGENT_PID" || true
  python3 - "$WORK/idle-$attempt.log" "$START" "$READY" "$RSS" "$HWM" <<'PY'
import json, sys
log, start, ready, rss, hwm = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
own = next(json.loads(l)["ready_ms"] for l in open(log) if '"Agent ready."' in l)
print(f"start to ready (warm cache): {own:6.1f} ms (agent's clock), {(ready - start) * 1000:6.1f} ms (spawn to log line); idle RSS {rss / 1024:5.1f} MiB (peak {hwm / 1024:5.1f} MiB) with 4 plugins")
PY
done
