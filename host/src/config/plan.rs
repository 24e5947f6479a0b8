//! The plan that drives work: every value of the configuration file
//! resolved and checked ([`super::resolve`] makes it), so nothing after
//! loading parses a size, a duration or a reference again.
//!
//! Owns: the resolved types. It must not read files or the environment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::HostPattern;
use super::lake::LakeLocation;
use super::types::{MissingChecksumPolicy, TransferMode};
use crate::schedule::Schedule;

/// The OTLP wire protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP POST (`/v1/traces`, …).
    HttpProtobuf,
    /// gRPC (unary `Export` calls over HTTP/2).
    Grpc,
}

impl OtlpProtocol {
    /// The protocol an `OTEL_EXPORTER_OTLP_PROTOCOL` value or the file's
    /// `protocol` names; `None` for one not supported.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "http/protobuf" => Some(Self::HttpProtobuf),
            "grpc" => Some(Self::Grpc),
            _ => None,
        }
    }
}

/// Compression of OTLP requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpCompression {
    /// Bodies as they are.
    None,
    /// gzip (`Content-Encoding: gzip`, or gRPC's `grpc-encoding: gzip`).
    Gzip,
}

impl OtlpCompression {
    /// The compression an `OTEL_EXPORTER_OTLP_COMPRESSION` value or the
    /// file's `compression` names; `None` for one not supported.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "none" => Some(Self::None),
            "gzip" => Some(Self::Gzip),
            _ => None,
        }
    }
}

/// `[telemetry.otlp]` resolved: URLs, protocol and durations parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OtlpFileSettings {
    /// Collector base URL (http or https).
    pub endpoint: Option<url::Url>,
    /// Wire protocol.
    pub protocol: Option<OtlpProtocol>,
    /// Headers on every export.
    pub headers: BTreeMap<String, String>,
    /// Timeout of one export request.
    pub timeout: Option<Duration>,
    /// How often metrics are exported.
    pub metrics_interval: Option<Duration>,
    /// `service.name` of the resource.
    pub service_name: Option<String>,
    /// More resource attributes.
    pub resource: BTreeMap<String, String>,
    /// Compression of export requests.
    pub compression: Option<OtlpCompression>,
    /// PEM file of a certificate authority to trust (besides the system's).
    pub certificate: Option<PathBuf>,
    /// PEM file of the client certificate (mutual TLS).
    pub client_certificate: Option<PathBuf>,
    /// PEM file of the client certificate's key.
    pub client_key: Option<PathBuf>,
}

/// Limits applied to a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Maximum linear memory per instance, in bytes.
    pub memory_bytes: usize,
    /// Maximum wall-clock time of one call.
    pub call_timeout: Duration,
    /// Timeout of one HTTP request.
    pub fetch_timeout: Duration,
    /// Largest HTTP response body handed to the plugin.
    pub max_response_bytes: u64,
    /// Calls after which an instance is replaced.
    pub recycle_after_calls: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 256 << 20,
            call_timeout: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(30),
            max_response_bytes: 32 << 20,
            recycle_after_calls: 1000,
        }
    }
}

/// Where a plugin's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginLocation {
    /// Shipped inside the agent binary.
    Builtin(String),
    /// A `.wasm` file.
    File(PathBuf),
}

impl std::fmt::Display for PluginLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginLocation::Builtin(name) => write!(f, "builtin:{name}"),
            PluginLocation::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// A resolved plugin entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginSpec {
    /// The name pipelines refer to.
    pub name: String,
    /// Where its bytes are.
    pub location: PluginLocation,
    /// Required SHA-256 of the bytes, lowercase hex.
    pub sha256: Option<String>,
    /// Hosts it may fetch from.
    pub allowed_hosts: Vec<HostPattern>,
    /// Its limits.
    pub limits: Limits,
}

/// A plugin used by a pipeline, with params as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRef {
    /// Name of the plugin.
    pub plugin: String,
    /// Params, serialised as a JSON object.
    pub params_json: String,
}

/// A resolved pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    /// Unique name.
    pub name: String,
    /// Destination table; `None` for a mirror-only pipeline.
    pub table: Option<String>,
    /// The source.
    pub source: PluginRef,
    /// The transforms, in order.
    pub transforms: Vec<PluginRef>,
    /// First date, inclusive.
    pub start: Option<String>,
    /// Last date, inclusive.
    pub end: Option<String>,
    /// Artifacts processed at once.
    pub concurrency: usize,
    /// Attempts per artifact.
    pub attempts: u32,
    /// Mirror raw archives into the lake.
    pub raw: bool,
    /// Policy for artifacts without checksum.
    pub missing_checksum: MissingChecksumPolicy,
    /// How archives of a mirror-only pipeline are transferred.
    pub transfer: TransferMode,
    /// S3 endpoint of the source bucket, when configured.
    pub source_endpoint: Option<url::Url>,
    /// Pace of the host's requests, when limited.
    pub rate_limit: Option<super::RateLimitConfig>,
    /// When `run` runs it.
    pub schedule: PipelineSchedule,
}

/// A pipeline's resolved schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSchedule {
    /// When runs start.
    pub when: Schedule,
    /// Window of later runs, counted back from today, once a run completed.
    pub lookback: Option<Duration>,
    /// How soon a run with failures is retried.
    pub retry_after: Duration,
}

impl Default for PipelineSchedule {
    fn default() -> Self {
        Self {
            when: Schedule::Every(Duration::from_secs(3600)),
            lookback: None,
            retry_after: Duration::from_secs(300),
        }
    }
}

/// The admin HTTP server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSettings {
    /// Where it listens.
    pub listen: std::net::SocketAddr,
    /// Required bearer token, if any.
    pub token: Option<String>,
}

/// Settings of the `run` daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSettings {
    /// Time in-flight artifacts get to finish after a stop signal.
    pub shutdown_grace: Duration,
    /// Reload on file changes.
    pub watch: bool,
    /// Quiet time before a changed file is reloaded.
    pub reload_debounce: Duration,
}

impl Default for DaemonSettings {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(30),
            watch: true,
            reload_debounce: Duration::from_millis(50),
        }
    }
}

/// `[leases]` resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// How long a lease stays valid without renewal.
    pub duration: Duration,
    /// How often held leases are renewed.
    pub renew_every: Duration,
    /// This replica's name.
    pub replica: String,
}

/// Everything a run needs, resolved and checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The configuration file.
    pub config_file: PathBuf,
    /// Where the lake is.
    pub lake: LakeLocation,
    /// How the lake's Parquet files are encoded.
    pub parquet: super::types::ParquetConfig,
    /// Compiled-plugin cache directory, if enabled.
    pub cache_dir: Option<PathBuf>,
    /// Settings of the `run` daemon.
    pub daemon: DaemonSettings,
    /// OTLP export, as the file gives it, resolved (the `OTEL_*`
    /// environment overrides it when export starts, as the OpenTelemetry
    /// specification has it).
    pub otlp: Option<OtlpFileSettings>,
    /// The admin server, unless turned off.
    pub admin: Option<AdminSettings>,
    /// Work shared with other replicas through leases, when configured.
    pub leases: Option<LeaseSettings>,
    /// Plugins by name (configured ones and the built-ins).
    pub plugins: BTreeMap<String, PluginSpec>,
    /// Pipelines, in file order.
    pub pipelines: Vec<PipelineSpec>,
}

impl Plan {
    /// The pipeline named `name`.
    pub fn pipeline(&self, name: &str) -> Option<&PipelineSpec> {
        self.pipelines.iter().find(|p| p.name == name)
    }
}
