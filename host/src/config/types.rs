//! The configuration file's format, as serde types.
//!
//! Owns: the shape of `agent.toml` and its documentation; every struct
//! rejects unknown fields. It must not resolve paths, read plugins or check
//! cross-references: that is [`super::plan`]'s job.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

/// The whole configuration file.
///
/// ```toml
/// [lake]
/// url = "./lake"
///
/// [plugins.binance]
/// file = "builtin:binance"
/// allowed_hosts = ["data.binance.vision", "s3-ap-northeast-1.amazonaws.com"]
///
/// [[pipelines]]
/// name = "binance-spot-klines-1m"
/// table = "ohlcv"
/// source = { plugin = "binance", params = { symbols = ["BTCUSDT"], interval = "1m" } }
/// transforms = [{ plugin = "ohlcv" }]
/// ```
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Where the lake is.
    #[serde(default)]
    pub lake: LakeConfig,
    /// Agent-wide runtime settings.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Plugins by name. The built-in plugins (`binance`, `ohlcv`) are
    /// available without an entry here, with default limits and no network.
    #[serde(default)]
    pub plugins: BTreeMap<String, PluginConfig>,
    /// The pipelines to run.
    #[serde(default)]
    pub pipelines: Vec<PipelineConfig>,
    /// Export of traces, metrics and logs.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// The admin HTTP server of `cryptolake run` (`/health`, `/ready`,
    /// `/metrics`, `/api/v1/status`).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Replicas of `cryptolake run` sharing this config and lake: each
    /// series' work is claimed through a lease object in the lake. Absent:
    /// this agent assumes it is the only one.
    pub leases: Option<LeasesConfig>,
}

/// Leases that let several `run` replicas share the work of one config.
/// Needs an object store lake with conditional writes.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeasesConfig {
    /// How long a lease stays valid without renewal: a replica that died is
    /// replaced on its series after this. Example: `duration = "1m"`.
    /// Default: `1m`.
    pub duration: Option<String>,
    /// How often held leases are renewed, at most half of `duration`.
    /// Example: `renew_every = "20s"`. Default: a third of `duration`.
    pub renew_every: Option<String>,
    /// This replica's name in leases and `status`; a random suffix tells
    /// its processes apart. Example: `replica = "agent-0"`. Default: the
    /// host name (`HOSTNAME`, the pod name on Kubernetes).
    pub replica: Option<String>,
}

/// Export of traces, metrics and logs.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP export. Absent: no export, unless `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// is set. Example: `otlp = { endpoint = "http://127.0.0.1:4318" }`.
    pub otlp: Option<OtlpConfig>,
}

/// OTLP export settings. The standard `OTEL_EXPORTER_OTLP_*` environment
/// variables (general and per signal) and `OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SDK_DISABLED` override these.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OtlpConfig {
    /// Collector base URL; `/v1/traces`, `/v1/metrics` and `/v1/logs` are
    /// appended for HTTP. Example: `endpoint = "http://127.0.0.1:4318"`
    /// (HTTP) or `"http://127.0.0.1:4317"` (gRPC).
    pub endpoint: Option<String>,
    /// `"http/protobuf"` or `"grpc"`. Default: `"http/protobuf"`.
    pub protocol: Option<String>,
    /// Headers sent with every export, e.g. an API key. Example:
    /// `headers = { "x-api-key" = "…" }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Timeout of one export request. Example: `timeout = "10s"`. Default:
    /// `10s`.
    pub timeout: Option<String>,
    /// How often metrics are exported. Example: `metrics_interval = "10s"`.
    /// Default: `10s`.
    pub metrics_interval: Option<String>,
    /// `service.name` of the resource. Default: `cryptolake`.
    pub service_name: Option<String>,
    /// More resource attributes. Example:
    /// `resource = { "deployment.environment" = "prod" }`.
    #[serde(default)]
    pub resource: BTreeMap<String, String>,
    /// `"gzip"` or `"none"`: compression of export requests. Default:
    /// `"none"`.
    pub compression: Option<String>,
    /// PEM file of the certificate authority that signed the collector's
    /// certificate (a private CA); the system's roots are trusted as well.
    pub certificate: Option<String>,
    /// PEM file of the agent's client certificate, for collectors that
    /// require mutual TLS; needs `client_key`.
    pub client_certificate: Option<String>,
    /// PEM file of the client certificate's private key.
    pub client_key: Option<String>,
}

/// The admin HTTP server.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Address to listen on; `""` turns the server off. Example:
    /// `listen = "127.0.0.1:9464"`. Default: `127.0.0.1:9464` (loopback
    /// only).
    pub listen: Option<String>,
    /// Bearer token required on every endpoint but `/health`. Set it when
    /// listening beyond loopback (`CRYPTOLAKE_ADMIN__TOKEN` keeps it out of
    /// the file). Example: `token = "s3cret"`. Default: none.
    pub token: Option<String>,
}

/// The lake's location.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// A directory path (relative to the config file), a `file://` URL,
    /// `s3://bucket/prefix` (AWS or any S3-compatible store), `gs://bucket/prefix`
    /// (Google Cloud Storage), `az://container/prefix` (Azure Blob Storage and
    /// ADLS Gen2; also `abfss://container@account.dfs.core.windows.net/prefix`),
    /// or `memory://` (in-process, gone at exit: for trying a config). Example:
    /// `url = "s3://my-lake/crypto"`. Default: `./lake`.
    #[serde(default = "default_lake_url")]
    pub url: String,
    /// Endpoint of an S3-compatible store (MinIO, R2, Ceph), or of a GCS or
    /// Azure emulator. Example: `endpoint = "http://127.0.0.1:9000"`.
    /// Default: the cloud's own (for S3, from `AWS_ENDPOINT_URL` when set).
    pub endpoint: Option<String>,
    /// S3 region. Example: `region = "eu-west-1"`. Default: `AWS_REGION`,
    /// `AWS_DEFAULT_REGION`, the profile's `region`, then `us-east-1`.
    pub region: Option<String>,
    /// S3 path-style addressing (`endpoint/bucket/key`) instead of
    /// virtual-hosted (`bucket.endpoint/key`). Example: `path_style = false`.
    /// Default: true with a custom `endpoint`, false on AWS.
    pub path_style: Option<bool>,
    /// S3 server-side encryption: `"AES256"`, `"aws:kms"` or `"aws:kms:dsse"`.
    /// Example: `sse = "aws:kms"`. Default: the bucket's default encryption.
    pub sse: Option<String>,
    /// KMS key for `sse = "aws:kms"`. Example: `sse_kms_key_id =
    /// "arn:aws:kms:eu-west-1:111122223333:key/…"`. Default: the AWS-managed key.
    pub sse_kms_key_id: Option<String>,
    /// Storage class of every object written (S3 `STANDARD_IA`,
    /// `INTELLIGENT_TIERING`, …; GCS `NEARLINE`, …; Azure access tier `Cool`, …).
    /// Example: `storage_class = "INTELLIGENT_TIERING"`. Default: the bucket's.
    pub storage_class: Option<String>,
    /// Send `x-amz-request-payer: requester` (S3 requester-pays buckets).
    /// Example: `requester_pays = true`. Default: false.
    #[serde(default)]
    pub requester_pays: bool,
    /// Write raw objects, manifest entries and status records only if no one
    /// else wrote them first (`If-None-Match` / `If-Match`), so agents sharing
    /// a lake never overwrite each other's work. Set to false only for an
    /// S3-compatible store that rejects conditional requests. Example:
    /// `conditional_writes = false`. Default: true.
    #[serde(default = "default_true")]
    pub conditional_writes: bool,
    /// Further `object_store` settings, by their documented key (for example
    /// `azure_storage_account_name`, `google_service_account`,
    /// `aws_imdsv1_fallback`). Credentials belong in the environment, not here.
    /// Example: `options = { azure_storage_account_name = "mylake" }`. Default: none.
    #[serde(default)]
    pub options: std::collections::BTreeMap<String, String>,
    /// Where files are staged before upload to an object store. Example:
    /// `staging_dir = "/var/tmp/cryptolake"`. Default: the system temp dir.
    pub staging_dir: Option<String>,
    /// How the curated tables' Parquet files are encoded. Example:
    /// `parquet = { zstd_level = 3 }`.
    #[serde(default)]
    pub parquet: ParquetConfig,
}

/// Encoding of the curated tables' Parquet files. Every setting is read by
/// DuckDB, Polars, pyarrow and Spark unless its documentation says otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParquetConfig {
    /// zstd level: 1 to 22 (higher: smaller files, slower), or -1 to -7
    /// (zstd's fast mode: faster, larger files). Example: `zstd_level = 3`.
    /// Default: 1, as pyarrow writes.
    #[serde(default = "default_zstd_level")]
    pub zstd_level: i32,
    /// Encoding of float columns. Example: `float_encoding =
    /// "byte_stream_split"`. Default: `"plain"`.
    #[serde(default)]
    pub float_encoding: FloatEncoding,
    /// Encoding of integer and timestamp columns. Example:
    /// `integer_encoding = "plain"`. Default: `"delta_binary_packed"`.
    #[serde(default)]
    pub integer_encoding: IntegerEncoding,
}

impl Default for ParquetConfig {
    fn default() -> Self {
        Self {
            zstd_level: default_zstd_level(),
            float_encoding: FloatEncoding::default(),
            integer_encoding: IntegerEncoding::default(),
        }
    }
}

fn default_zstd_level() -> i32 {
    1
}

/// How integer and timestamp columns are laid out before compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntegerEncoding {
    /// Differences between consecutive values, bit-packed: timestamps and
    /// ids that rise steadily take a few bits each. Read by DuckDB, Polars,
    /// pyarrow, and Spark from 3.3.
    #[default]
    DeltaBinaryPacked,
    /// Values as they are, for readers older than Spark 3.3.
    Plain,
}

/// How float columns are laid out before compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FloatEncoding {
    /// Values as they are: every Parquet reader reads it.
    #[default]
    Plain,
    /// Bytes of equal significance stored together: smaller and faster to
    /// compress; DuckDB, Polars and pyarrow read it, Spark's vectorized
    /// Parquet reader did not (as of 2026).
    ByteStreamSplit,
}

impl Default for LakeConfig {
    fn default() -> Self {
        Self {
            url: default_lake_url(),
            endpoint: None,
            region: None,
            path_style: None,
            sse: None,
            sse_kms_key_id: None,
            storage_class: None,
            requester_pays: false,
            conditional_writes: true,
            options: Default::default(),
            staging_dir: None,
            parquet: ParquetConfig::default(),
        }
    }
}

fn default_lake_url() -> String {
    "./lake".to_owned()
}

/// Agent-wide runtime settings.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Directory of the compiled-plugin cache. Example:
    /// `cache_dir = "/var/cache/cryptolake"`. Default: `$XDG_CACHE_HOME/cryptolake`
    /// or `~/.cache/cryptolake`; set to `""` to disable the cache.
    pub cache_dir: Option<String>,
    /// How long `run` lets in-flight artifacts finish after SIGTERM/SIGINT
    /// before it stops them (a second signal stops at once). Example:
    /// `shutdown_grace = "30s"`. Default: `30s`.
    pub shutdown_grace: Option<String>,
    /// Watch the configuration file and the plugin files while `run` is
    /// running, and reload what changed. Example: `watch = false`.
    /// Default: true (SIGHUP reloads either way).
    pub watch: Option<bool>,
    /// Quiet time after a file change before it is reloaded, so a file that
    /// is still being written is not loaded half-way. Example:
    /// `reload_debounce = "50ms"`. Default: `50ms`.
    pub reload_debounce: Option<String>,
}

/// One plugin.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// `builtin:<name>` for a plugin shipped inside the agent, or a path to a
    /// `.wasm` component (relative to the config file).
    /// Example: `file = "plugins/kraken.wasm"`.
    pub file: String,
    /// Refuse the plugin unless its bytes have this SHA-256 (hex).
    /// Example: `sha256 = "9f86d081…"`.
    pub sha256: Option<String>,
    /// Hosts the plugin may fetch from: `host`, `host:port` or `*.domain`.
    /// Deny by default. Example: `allowed_hosts = ["data.binance.vision"]`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Resource limits for each call into the plugin.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// Limits applied to each plugin instance and call.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Maximum linear memory of one instance. Example: `memory = "256MiB"`.
    /// Default: `256MiB`.
    pub memory: Option<String>,
    /// Maximum wall-clock time of one call, host calls included.
    /// Example: `call_timeout = "60s"`. Default: `60s`.
    pub call_timeout: Option<String>,
    /// Timeout of one HTTP request made for the plugin. Example:
    /// `fetch_timeout = "30s"`. Default: `30s`.
    pub fetch_timeout: Option<String>,
    /// Largest HTTP response body handed to the plugin. Example:
    /// `max_response_size = "32MiB"`. Default: `32MiB`.
    pub max_response_size: Option<String>,
    /// Replace an instance after this many calls (linear memory never
    /// shrinks). Example: `recycle_after_calls = 1000`. Default: 1000.
    pub recycle_after_calls: Option<u64>,
}

/// One pipeline: a source, transforms, and a destination table.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Unique name, `[a-z0-9_-]`. Example: `name = "binance-spot-klines-1m"`.
    pub name: String,
    /// The curated table the rows are written to. Example: `table = "ohlcv"`.
    /// Absent: the pipeline only mirrors the archives into the raw zone.
    pub table: Option<String>,
    /// The source plugin and its params.
    pub source: PluginUse,
    /// Transform plugins applied in order.
    #[serde(default)]
    pub transforms: Vec<PluginUse>,
    /// The date window to collect.
    #[serde(default)]
    pub window: WindowConfig,
    /// Artifacts processed at once. Example: `concurrency = 4`. Default: 4.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Attempts per artifact for transient failures and checksum mismatches.
    /// Example: `attempts = 3`. Default: 3.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Keep a byte-exact copy of each archive (and its checksum file) under
    /// `raw/` in the lake. Default: true.
    #[serde(default = "default_true")]
    pub raw: bool,
    /// How archives reach the raw zone of a mirror-only pipeline: `"direct"`
    /// (server-side S3 copy, no bytes through the agent), `"stream"`
    /// (download, verify, upload) or `"auto"` (direct when the source and
    /// the lake are the same S3 service, stream otherwise, and stream for a
    /// file whose direct copy fails). Default: `"auto"`.
    #[serde(default)]
    pub transfer: TransferMode,
    /// S3 endpoint serving the source's bucket, for direct copies. Example:
    /// `source_endpoint = "http://127.0.0.1:9000"`. Default: AWS in the
    /// source's region.
    pub source_endpoint: Option<String>,
    /// Pace the host's requests for this pipeline's artifacts (downloads and
    /// checksum files). Example: `rate_limit = { per_second = 10, burst = 15 }`
    /// (Coinbase's public limit). Default: unlimited.
    pub rate_limit: Option<RateLimitConfig>,
    /// What to do with an artifact whose source publishes no checksum:
    /// `"accept"` (record it as unverified) or `"reject"`. Default: `"reject"`.
    #[serde(default)]
    pub missing_checksum: MissingChecksumPolicy,
    /// When `cryptolake run` runs this pipeline. Example:
    /// `schedule = { cron = "15 1 * * *" }` (01:15 UTC daily, after Binance
    /// publishes the previous day) or `schedule = { every = "1h" }`.
    /// Default: `{ every = "1h" }`. `sync` ignores it.
    pub schedule: Option<ScheduleConfig>,
}

/// A pipeline's schedule: exactly one of `every` and `cron`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Run at this interval, measured from the start of the previous run.
    /// Example: `every = "6h"`.
    pub every: Option<String>,
    /// Run when this five-field cron expression matches, in UTC. Example:
    /// `cron = "15 1 * * *"`.
    pub cron: Option<String>,
    /// After the first complete run, later runs look only this far back
    /// from today instead of the whole window (the backfill), which keeps
    /// discovery cheap on long histories. Example: `lookback = "7d"`.
    /// Default: the whole window every run.
    pub lookback: Option<String>,
    /// After a run with failures, try again this soon instead of waiting for
    /// the next scheduled time. Example: `retry_after = "5m"`. Default: `5m`.
    pub retry_after: Option<String>,
}

fn default_concurrency() -> usize {
    4
}
fn default_attempts() -> u32 {
    3
}
fn default_true() -> bool {
    true
}

/// A reference to a plugin, with its params.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PluginUse {
    /// Name of a plugin under `[plugins]`, or of a built-in.
    pub plugin: String,
    /// Params handed to the plugin as JSON; checked by the plugin.
    #[serde(default = "empty_table")]
    #[schemars(with = "serde_json::Map<String, serde_json::Value>")]
    pub params: toml::Table,
}

fn empty_table() -> toml::Table {
    toml::Table::new()
}

/// Inclusive date window, `YYYY-MM-DD`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// First date. Absent: from the first available file.
    pub start: Option<String>,
    /// Last date. Absent: up to the newest file.
    pub end: Option<String>,
}

/// A request rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Average requests per second.
    pub per_second: f64,
    /// Requests allowed at once after a quiet period. Default: 1.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    1
}

/// How archives are transferred.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TransferMode {
    /// Direct when possible, else stream; per-file fallback to stream.
    #[default]
    Auto,
    /// Server-side copy only.
    Direct,
    /// Through the agent only.
    Stream,
}

/// Policy for artifacts without a published checksum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum MissingChecksumPolicy {
    /// Refuse the artifact and report it.
    #[default]
    Reject,
    /// Accept it, recording that it is unverified.
    Accept,
}
