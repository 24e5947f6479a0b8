# Shared by the curate benchmark scripts (source it after bench/lib.sh, with
# WORK set): the archive, its server and the agent's configuration.

# Generates the archive of $1 rows under $WORK, serves it on loopback (as
# data.binance.vision serves downloads: plain HTTP from a static server,
# probe-mode discovery, no S3 listing, so little of the machine's two cores
# goes to the server) and writes $WORK/agent.toml. Sets HTTP_PORT and HTTP_PID.
curate_setup() {
  echo "Generating $1 rows..."
  python3 bench/curate/generate.py "$WORK" "$1"
  serve_dir "$WORK/src"
  { config_header "$HTTP_PORT"; cat <<TOML
[[pipelines]]
name = "bench"
table = "ohlcv"
window = { start = "2025-01-01", end = "2025-01-31" }
source = { plugin = "binance", params = { period = "monthly", interval = "1s", symbols = ["BTCUSDT"], discovery = "probe", listing_url = "http://127.0.0.1:$HTTP_PORT", download_url = "http://127.0.0.1:$HTTP_PORT" } }
transforms = [{ plugin = "ohlcv" }]
TOML
  } > "$WORK/agent.toml"
}

# The pipeline run's time in seconds, from a `sync` log ($1) at info level:
# `elapsed_ms` of "Pipeline run finished.".
pipeline_seconds() {
  grep "Pipeline run finished" "$1" | grep -o 'elapsed_ms=[0-9.]*' | cut -d= -f2 \
    | python3 -c "import sys; print(f'{float(sys.stdin.read()) / 1000:.3f}')"
}
