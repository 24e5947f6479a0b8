# Shared by the end-to-end benchmark scripts (source it). Traffic stays on
# loopback; the S3 clients get explicit test credentials, never a cloud
# metadata endpoint.

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
# object_store does not read the variable above; this moves its instance
# metadata client to a loopback port where nothing listens.
export AWS_METADATA_ENDPOINT=http://127.0.0.1:9

# A loopback port nothing listens on.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Serves directory $1 with a static HTTP server on a free loopback port
# (as data.binance.vision serves downloads); sets HTTP_PORT and HTTP_PID.
# The server shares the two cores with what is measured, so it sends bodies
# with sendfile(2) (bench/serve.py): the curate benchmark's 47 MB zip costs
# it 10-20 ms of CPU that way, ~30 ms through Python's copy loop.
serve_dir() {
  HTTP_PORT=$(free_port)
  python3 bench/serve.py "$1" "$HTTP_PORT" > /dev/null 2>&1 &
  HTTP_PID=$!
  until curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/"; do sleep 0.1; done
}

# Starts moto on a free loopback port, logging requests to $1; sets PORT,
# ENDPOINT and MOTO_PID.
start_moto() {
  PORT=$(free_port)
  ENDPOINT=http://127.0.0.1:$PORT
  moto_server -H 127.0.0.1 -p "$PORT" > "$1" 2>&1 &
  MOTO_PID=$!
  until curl -s -o /dev/null "$ENDPOINT"; do sleep 0.2; done
}

# Generates $2 small Binance-format archives ($3 rows each) under $1/archive
# and serves them with a static HTTP server on a free loopback port (for
# probe-mode discovery); sets HTTP_PORT and HTTP_PID.
serve_archive() {
  python3 bench/s3-sync/generate.py "$1/archive" "$2" "$3"
  serve_dir "$1/archive"
}

# The Binance source params for $1 symbols (SYM000USDT…) served by
# serve_archive, in probe mode.
probe_source() {
  local symbols
  symbols=$(python3 -c "print(','.join(f'\"SYM{i:03d}USDT\"' for i in range($1)))")
  echo "{ plugin = \"binance\", params = { symbols = [$symbols], interval = \"1m\", discovery = \"probe\", listing_url = \"http://127.0.0.1:$HTTP_PORT\", download_url = \"http://127.0.0.1:$HTTP_PORT\" } }"
}

# The head of every bench config: a lake and compile cache under $WORK and
# the built-in Binance plugin allowed to reach 127.0.0.1:$1.
config_header() {
  cat <<TOML
lake = { url = "$WORK/lake" }
runtime = { cache_dir = "$WORK/cache" }
[plugins.binance]
file = "builtin:binance"
allowed_hosts = ["127.0.0.1:$1"]
TOML
}

# Starts the bench S3 server (s3s-fs with a public-read data.binance.vision
# bucket, bench/s3-server) on a free loopback port, its objects in memory
# (tmpfs, as moto's are: the disk of this shared machine is not what is
# measured), logging to $1; sets PORT, ENDPOINT, SERVER_PID and S3_ROOT, and
# defines `requests` (requests served so far).
start_bench_s3() {
  CARGO_TARGET_DIR=target/bench-s3-server cargo build --release --quiet --manifest-path bench/s3-server/Cargo.toml
  PORT=$(free_port)
  ENDPOINT=http://127.0.0.1:$PORT
  S3_ROOT=$(mktemp -d -p /dev/shm 2>/dev/null || mktemp -d)
  target/bench-s3-server/release/cryptolake-bench-s3-server "$S3_ROOT" "$PORT" data.binance.vision \
    "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" > "$1" 2>&1 &
  SERVER_PID=$!
  until curl -s -o /dev/null "$ENDPOINT/__bench/requests"; do sleep 0.1; done
  requests() { curl -s "$ENDPOINT/__bench/requests" | cut -d' ' -f1; }
}
