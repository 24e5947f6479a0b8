# Shared by the end-to-end benchmark scripts (source it). Traffic stays on
# loopback; the S3 clients get explicit test credentials, never a cloud
# metadata endpoint.

export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true

# Starts moto on a free loopback port, logging requests to $1; sets PORT,
# ENDPOINT and MOTO_PID.
start_moto() {
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ENDPOINT=http://127.0.0.1:$PORT
  moto_server -H 127.0.0.1 -p "$PORT" > "$1" 2>&1 &
  MOTO_PID=$!
  until curl -s -o /dev/null "$ENDPOINT"; do sleep 0.2; done
}
