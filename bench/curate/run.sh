#!/usr/bin/env bash
# Curated-lake benchmark: one Binance spot 1s kline archive of ROWS rows (µs
# timestamps), served over HTTP on loopback → Parquet (zstd) through cryptolake's full path (download,
# checksum, unzip, WASM decode, ohlcv transform, write), against DuckDB and
# Polars converting the same CSV (already unzipped), in one run. Reports
# rows/s, CPU seconds (user + system) and peak RSS.
#
# usage: bench/curate/run.sh [ROWS]   (default 1000000; needs duckdb and polars from pip)
#        ROUNDS=5 (default): each round runs the three tools in turn; medians and per-round ratios at the end
#        ONLY=cryptolake bench/curate/run.sh 8000000   (a ~1 GB CSV: cryptolake's peak RSS alone)
#        STORED=1: the zip stores the CSV uncompressed, so cryptolake does no inflate (the work the
#        others skip by reading the CSV unzipped) but downloads, hashes and copies 2.7x the bytes
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-1000000}
WORK=$(mktemp -d)
# KEEP=1 leaves the work directory (CSV, lake, logs) for a closer look.
HTTP_PID=
trap 'kill $HTTP_PID 2>/dev/null || true; if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi' EXIT

python3 -m pip install --quiet --disable-pip-version-check polars -r tests/requirements.txt
cargo build --release --quiet
BIN=$PWD/target/release/cryptolake

source bench/lib.sh
source bench/curate/lib.sh
curate_setup "$ROWS"
# Compile the plugins into the cache first: compilation is not conversion.
$BIN validate --config "$WORK/agent.toml" > /dev/null 2>&1

ROUNDS=${ROUNDS:-5}
: > "$WORK/results"
# Each tool reports two times: its whole process (wall, from /usr/bin/time,
# with CPU and peak RSS), and its conversion alone. DuckDB's and Polars'
# conversion is timed inside Python around the one call, so neither the
# interpreter's start nor `import polars` (~0.3 s here) is counted;
# cryptolake's is its pipeline run as it logs it (discovery, download,
# checksum, unzip, decode, transform, Parquet, manifest), without the
# process start and plugin loading. Conversion CPU: DuckDB's and Polars'
# from getrusage around the same call (every thread of theirs counted);
# cryptolake's is its whole process's (its start adds ~25 ms).
run() { # name, command...
  local name=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$WORK/$name.time" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  read -r secs kb user sys < "$WORK/$name.time"
  local cpu work work_cpu
  cpu=$(python3 -c "print(f'{$user + $sys:.2f}')")  # user + system CPU seconds
  if [ "$name" = cryptolake ]; then
    work=$(pipeline_seconds "$WORK/$name.err")
    work_cpu=$cpu
    if [ -n "${LOG_LEVEL:-}" ]; then grep -h "Archive decoded" "$WORK/$name.err" >&2 || true; fi
  else
    read -r work work_cpu < <(tail -1 "$WORK/$name.out")
  fi
  echo "$ROUND $name $secs $kb $cpu $work $work_cpu" >> "$WORK/results"
  python3 -c "import sys; n, s, kb, rows, r, cpu, w, wc = sys.argv[1:]; s, w, wc, rows = float(s), float(w), float(wc), int(rows); print(f'round {r}  {n:<12} conversion {w:5.2f} s ({rows/w/1e6:5.2f} M rows/s, CPU {wc:4.2f} s)  process {s:5.2f} s  CPU {cpu} s  peak RSS {int(kb)//1024} MiB')" "$name" "$secs" "$kb" "$ROWS" "$ROUND" "$cpu" "$work" "$work_cpu"
}
# A Python tool's conversion: runs $2 (imports, set-up), then times $3 and
# prints its wall time and CPU (getrusage: every thread of the process).
convert() { # name, set-up, conversion
  run "$1" python3 -c "
import resource, time
cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
$2
started, used = time.perf_counter(), cpu()
$3
print(time.perf_counter() - started, cpu() - used)"
}
CSV=$WORK/BTCUSDT-1s-2025-01.csv
# The tools take turns within each round, so a burst of load from elsewhere
# on this shared machine hits one round of all three, not one tool.
for ROUND in $(seq 1 "$ROUNDS"); do
  rm -rf "$WORK/lake"
  run cryptolake $BIN sync --config "$WORK/agent.toml" --log-level "${LOG_LEVEL:-info}"
  if [ "$ROUND" = 1 ]; then
    python3 -c "import duckdb; print('cryptolake rows written:', duckdb.sql(\"SELECT count(*) FROM read_parquet('$WORK/lake/ohlcv/**/*.parquet')\").fetchall()[0][0])"
  fi
  [ "${ONLY:-}" = cryptolake ] && continue
  convert duckdb "import duckdb; c = duckdb.connect(); c.execute('SET threads=2')" \
    "c.execute(\"COPY (SELECT * FROM read_csv('$CSV', header=false)) TO '$WORK/duckdb.parquet' (FORMAT parquet, COMPRESSION zstd)\")"
  convert polars "import polars as pl" \
    "pl.read_csv('$CSV', has_header=False).write_parquet('$WORK/polars.parquet', compression='zstd')"
done
python3 - "$WORK/results" "$ROWS" <<'PY'
import collections, statistics, sys
rows = int(sys.argv[2])
by_tool, by_round = collections.defaultdict(list), collections.defaultdict(dict)
for line in open(sys.argv[1]):
    round_, tool, secs, kb, cpu, work, work_cpu = line.split()
    by_tool[tool].append((float(secs), int(kb), float(cpu), float(work), float(work_cpu)))
    by_round[round_][tool] = (float(secs), float(work))
print(f"\nmedians over {len(by_round)} rounds")
for tool, runs in by_tool.items():
    secs = statistics.median(r[0] for r in runs)
    work = statistics.median(r[3] for r in runs)
    cpu = statistics.median(r[2] for r in runs)
    work_cpu = statistics.median(r[4] for r in runs)
    print(f"  {tool:<12} conversion {work:5.2f} s ({rows / work / 1e6:5.2f} M rows/s, CPU {work_cpu:4.2f} s)"
          f"  process {secs:5.2f} s  CPU {cpu:5.2f} s  peak RSS {max(r[1] for r in runs) // 1024} MiB")
def ratios(title, pick):
    values = sorted(pick(r) for r in by_round.values() if "polars" in r)
    if values:
        print(f"  {title}: {' '.join(f'{x:.2f}' for x in values)}  (median {statistics.median(values):.2f})")
print("cryptolake rows/s ÷ Polars rows/s, per round:")
ratios("conversions (cryptolake's pipeline run vs Polars' read+write)", lambda r: r["polars"][1] / r["cryptolake"][1])
ratios("cryptolake's whole process vs Polars' conversion", lambda r: r["polars"][1] / r["cryptolake"][0])
ratios("whole processes (Polars' interpreter start and import counted)", lambda r: r["polars"][0] / r["cryptolake"][0])
PY
