#!/usr/bin/env bash
# Telemetry overhead benchmark: the same curated `cryptolake sync` (many
# small archives, so spans and logs per second are at their highest) with
# OTLP export off, to a live receiver, to a dead collector (connection
# refused) and to a black hole (accepts, never answers), in one script run,
# alternating modes over ROUNDS rounds, each on a fresh lake. Reports the
# median wall time per mode and its ratio to export off.
#
# usage: bench/telemetry/run.sh [ARCHIVES] [ROUNDS]   (defaults 1000, 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCHIVES=${1:-1000}
ROUNDS=${2:-3}
WORK=$(mktemp -d)
cleanup() { kill "${HTTP_PID:-}" "${SINK_PID:-}" "${HOLE_PID:-}" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
source bench/lib.sh

cargo build --release --quiet
BIN=$PWD/target/release/cryptolake
SYMBOLS=$(( (ARCHIVES + 499) / 500 ))
echo "Generating $ARCHIVES archives (60 rows each)..."
serve_archive "$WORK" "$ARCHIVES" 60

# A live receiver answering 200 to every OTLP/HTTP request.
SINK_PORT=$(free_port)
python3 - "$SINK_PORT" <<'PY' &
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
SINK_PID=$!
# A black hole: accepts connections and never answers.
HOLE_PORT=$(free_port)
python3 - "$HOLE_PORT" <<'PY' &
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1024)
held = []
while True:
    held.append(s.accept()[0])
PY
HOLE_PID=$!
DEAD_PORT=$(free_port)   # nothing listens here
sleep 0.5

{ config_header "$HTTP_PORT"; cat <<TOML
[[pipelines]]
name = "bench"
table = "ohlcv"
concurrency = 4
raw = false
window = { start = "2023-01-01", end = "$(python3 -c "import datetime; print(datetime.date(2023,1,1) + datetime.timedelta(days=min($ARCHIVES, 500) - 1))")" }
source = $(probe_source $SYMBOLS)
transforms = [{ plugin = "ohlcv" }]
TOML
} > "$WORK/agent.toml"
# Warm the compile cache once.
"$BIN" sync --config "$WORK/agent.toml" > /dev/null 2>&1; rm -rf "$WORK/lake"

declare -A ENDPOINT=( [off]="" [live]="http://127.0.0.1:$SINK_PORT" [dead]="http://127.0.0.1:$DEAD_PORT" [blackhole]="http://127.0.0.1:$HOLE_PORT" )
MODES="off live dead blackhole"
for round in $(seq "$ROUNDS"); do
  for mode in $MODES; do
    rm -rf "$WORK/lake"
    start=$(date +%s.%N)
    if [ -n "${ENDPOINT[$mode]}" ]; then
      OTEL_EXPORTER_OTLP_ENDPOINT=${ENDPOINT[$mode]} OTEL_EXPORTER_OTLP_TIMEOUT=2000 "$BIN" sync --config "$WORK/agent.toml" > "$WORK/$mode.out" 2> "$WORK/$mode.err"
    else
      "$BIN" sync --config "$WORK/agent.toml" > "$WORK/$mode.out" 2> "$WORK/$mode.err"
    fi
    end=$(date +%s.%N)
    echo "$mode $(python3 -c "print($end - $start)")" >> "$WORK/times"
  done
done
python3 - "$WORK/times" "$ARCHIVES" <<'PY'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    mode, seconds = line.split()
    times.setdefault(mode, []).append(float(seconds))
base = statistics.median(times["off"])
for mode, values in times.items():
    m = statistics.median(values)
    print(f"{mode:<10} median {m:6.2f} s over {len(values)} runs  ({int(sys.argv[2]) / m:7.1f} archives/s)  {m / base:5.2f}x export off")
PY
grep -h "OTLP export failed" "$WORK/dead.err" "$WORK/blackhole.err" | head -2 || true
