#!/usr/bin/env bash
# Two cryptolake builds on the curate benchmark's archive, taking turns, so
# that load from elsewhere on this shared machine hits both alike: the
# before/after of a change. Reports each build's medians (pipeline run time,
# CPU, peak RSS) and the per-round ratio of their pipeline run times (sorted,
# median, and mean with its 95% interval).
#
# usage: bench/curate/ab.sh BIN_A BIN_B [ROUNDS] [ROWS]   (defaults 10 rounds, 1000000 rows)
#        A_PARAMS / B_PARAMS: extra Binance source params for one side, e.g. one build, two settings:
#        A_PARAMS="batch_rows = 65536" bench/curate/ab.sh target/release/cryptolake target/release/cryptolake 40
# e.g.   git worktree add /tmp/before HEAD~3 && (cd /tmp/before && cargo build --release)
#        cargo build --release
#        bench/curate/ab.sh /tmp/before/target/release/cryptolake target/release/cryptolake
set -euo pipefail
cd "$(dirname "$0")/../.."
A=$(realpath "$1"); B=$(realpath "$2")
ROUNDS=${3:-10}
ROWS=${4:-1000000}
WORK=$(mktemp -d)
HTTP_PID=
trap 'kill $HTTP_PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

source bench/lib.sh
source bench/curate/lib.sh
curate_setup "$ROWS"
for build in A B; do
  params_var=${build}_PARAMS
  sed "s/params = { /params = { ${!params_var:+${!params_var}, }/" "$WORK/agent.toml" > "$WORK/agent_$build.toml"
done
# Each build embeds its own plugins: compile both into the cache first.
"$A" validate --config "$WORK/agent_A.toml" > /dev/null 2>&1
"$B" validate --config "$WORK/agent_B.toml" > /dev/null 2>&1

: > "$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
  for build in A B; do
    bin=$A; [ "$build" = B ] && bin=$B
    rm -rf "$WORK/lake"
    /usr/bin/time -f "%U %S %M" -o "$WORK/time" "$bin" sync --config "$WORK/agent_$build.toml" --log-level info \
      > /dev/null 2> "$WORK/log"
    read -r user sys kb < "$WORK/time"
    echo "$round $build $(pipeline_seconds "$WORK/log") $user $sys $kb" >> "$WORK/results"
  done
done
python3 - "$WORK/results" "$A" "$B" <<'PY'
import collections, statistics, sys
runs, rounds = collections.defaultdict(list), collections.defaultdict(dict)
for line in open(sys.argv[1]):
    round_, build, secs, user, sys_, kb = line.split()
    runs[build].append((float(secs), float(user) + float(sys_), int(kb)))
    rounds[round_][build] = float(secs)
for build, path in (("A", sys.argv[2]), ("B", sys.argv[3])):
    r = runs[build]
    print(f"{build} {path}\n  pipeline run median {statistics.median(x[0] for x in r) * 1000:.0f} ms"
          f" (best {min(x[0] for x in r) * 1000:.0f})  CPU median {statistics.median(x[1] for x in r):.2f} s"
          f"  peak RSS {max(x[2] for x in r) // 1024} MiB")
ratios = sorted(r["B"] / r["A"] for r in rounds.values())
interval = 1.96 * statistics.stdev(ratios) / len(ratios) ** 0.5 if len(ratios) > 1 else float("nan")
print(f"B / A per round: {' '.join(f'{x:.2f}' for x in ratios)}  (median {statistics.median(ratios):.2f},"
      f" mean {statistics.mean(ratios):.3f} ± {interval:.3f})")
PY
