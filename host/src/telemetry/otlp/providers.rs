//! The SDK's providers for one set of settings: exporters (HTTP/protobuf on
//! a blocking reqwest client, or gRPC on tonic), the batch processors and
//! the periodic metric reader, the resource, and their shutdown.
//!
//! Owns building and stopping them. It must not decide what is recorded:
//! [`super::layer`] hands spans and events over, [`super::bridge`] the
//! registry's metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter, SdkLoggerProvider};
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider, Temporality};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};

use super::bridge::{self, Histograms};
use super::{Compression, OtlpSettings, Protocol, SignalSettings};
use crate::telemetry::metrics::{self, Signal};

/// The instrumentation scope of everything the agent exports.
pub(super) const SCOPE: &str = "cryptolake";

/// The providers of the exported signals.
pub(super) struct Providers {
    pub(super) tracer: Option<SdkTracerProvider>,
    pub(super) logger: Option<SdkLoggerProvider>,
    meter: Option<(SdkMeterProvider, Histograms)>,
    /// The longest export timeout: how long a shutdown may wait.
    timeout: Duration,
    /// Whether the last export of any signal succeeded: if not, the flush
    /// at exit is not worth waiting for.
    reachable: Arc<AtomicBool>,
}

/// How long the flush at exit waits when the collector failed the last
/// export: long enough for one quick attempt, no more.
const UNREACHABLE_FLUSH: Duration = Duration::from_millis(250);

impl Providers {
    /// Builds exporters and providers for `settings`. On a thread of its
    /// own: a blocking HTTP client must not be built (or dropped, on an
    /// error) on a thread that drives async tasks.
    pub(super) fn build(settings: &OtlpSettings) -> Result<Self, String> {
        let settings = settings.clone();
        std::thread::Builder::new()
            .name("otlp-build".into())
            .spawn(move || Self::build_here(&settings))
            .map_err(|e| format!("cannot start a thread: {e}"))?
            .join()
            .map_err(|_| "building the exporters panicked".to_owned())?
    }

    fn build_here(settings: &OtlpSettings) -> Result<Self, String> {
        crate::transfer::install_tls_provider();
        let resource = resource(&settings.resource);
        let reachable = Arc::new(AtomicBool::new(true));
        let tracer = match &settings.traces {
            Some(signal) => {
                let exporter = Counted::new(span_exporter(signal)?, Signal::Traces, &reachable);
                Some(
                    SdkTracerProvider::builder()
                        .with_resource(resource.clone())
                        .with_batch_exporter(exporter)
                        .build(),
                )
            }
            None => None,
        };
        let logger = match &settings.logs {
            Some(signal) => {
                let exporter = Counted::new(log_exporter(signal)?, Signal::Logs, &reachable);
                Some(
                    SdkLoggerProvider::builder()
                        .with_resource(resource.clone())
                        .with_batch_exporter(exporter)
                        .build(),
                )
            }
            None => None,
        };
        let meter = match &settings.metrics {
            Some(signal) => {
                let exporter = Counted::new(metric_exporter(signal)?, Signal::Metrics, &reachable);
                let reader = PeriodicReader::builder(exporter)
                    .with_interval(settings.metrics_interval)
                    .build();
                let provider = SdkMeterProvider::builder()
                    .with_resource(resource)
                    .with_reader(reader)
                    .build();
                let histograms = bridge::register(&provider);
                Some((provider, histograms))
            }
            None => None,
        };
        let timeout = [&settings.traces, &settings.metrics, &settings.logs]
            .into_iter()
            .flatten()
            .map(|s| s.timeout)
            .max()
            .unwrap_or(Duration::from_secs(10));
        Ok(Self {
            tracer,
            logger,
            meter,
            timeout,
            reachable,
        })
    }

    /// The histograms that registry observations are mirrored to.
    pub(super) fn histograms(&self) -> Option<Histograms> {
        self.meter
            .as_ref()
            .map(|(_, histograms)| histograms.clone())
    }

    /// Flushes and stops every provider, all at once: a collector that
    /// never answers costs one export timeout, not one per signal.
    pub(super) fn shutdown(self) {
        let started = Instant::now();
        // Within the export timeout (one export, retries included), or
        // hardly at all for a collector that is not answering.
        let limit = if self.reachable.load(Ordering::Relaxed) {
            self.timeout
        } else {
            UNREACHABLE_FLUSH
        };
        let mut stopping = Vec::new();
        let mut spawn = |name: &str, stop: Box<dyn FnOnce() -> OTelSdkResult + Send>| {
            let signal = name.to_owned();
            match std::thread::Builder::new()
                .name(format!("otlp-stop-{name}"))
                .spawn(stop)
            {
                Ok(handle) => stopping.push((signal, handle)),
                Err(error) => {
                    tracing::warn!(signal = %signal, error = %error, "OTLP export could not flush.")
                }
            }
        };
        if let Some(tracer) = self.tracer {
            spawn(
                "traces",
                Box::new(move || tracer.shutdown_with_timeout(limit)),
            );
        }
        if let Some(logger) = self.logger {
            spawn(
                "logs",
                Box::new(move || logger.shutdown_with_timeout(limit)),
            );
        }
        if let Some((meter, _)) = self.meter {
            spawn(
                "metrics",
                Box::new(move || meter.shutdown_with_timeout(limit)),
            );
        }
        for (signal, handle) in stopping {
            // A thread still waiting past the limit is left to finish alone.
            while !handle.is_finished() && started.elapsed() < limit {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !handle.is_finished() {
                tracing::warn!(signal = %signal, "OTLP export did not flush in time; what was queued is dropped.");
                continue;
            }
            if let Ok(Err(error)) = handle.join() {
                tracing::debug!(signal = %signal, error = %error, "OTLP export stopped with an error.");
            }
        }
    }
}

fn resource(attributes: &[(String, String)]) -> Resource {
    Resource::builder_empty()
        .with_detector(Box::new(
            opentelemetry_sdk::resource::TelemetryResourceDetector,
        ))
        .with_attributes(
            attributes
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .build()
}

/// Builds one signal's OTLP exporter (`$exporter`: `SpanExporter`,
/// `LogExporter` or `MetricExporter`) on HTTP or gRPC; the three builders
/// share the configuration traits but not a type.
macro_rules! exporter {
    ($exporter:ident, $signal:expr, $what:literal) => {{
        let signal: &SignalSettings = $signal;
        let builder = opentelemetry_otlp::$exporter::builder();
        match signal.protocol {
            Protocol::HttpProtobuf => http(builder.with_http(), signal)?.build(),
            Protocol::Grpc => {
                let _runtime = grpc_runtime()?.enter();
                grpc(builder.with_tonic(), signal)?.build()
            }
        }
        .map_err(|e| format!("{} exporter: {e}", $what))
    }};
}

fn span_exporter(signal: &SignalSettings) -> Result<opentelemetry_otlp::SpanExporter, String> {
    exporter!(SpanExporter, signal, "traces")
}

fn log_exporter(signal: &SignalSettings) -> Result<opentelemetry_otlp::LogExporter, String> {
    exporter!(LogExporter, signal, "logs")
}

fn metric_exporter(signal: &SignalSettings) -> Result<opentelemetry_otlp::MetricExporter, String> {
    exporter!(MetricExporter, signal, "metrics")
}

fn compression(signal: &SignalSettings) -> Option<opentelemetry_otlp::Compression> {
    match signal.compression {
        Compression::Gzip => Some(opentelemetry_otlp::Compression::Gzip),
        Compression::None => None,
    }
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("OTLP {what} {}: {e}", path.display()))
}

/// HTTP/protobuf on the agent's HTTP stack, with the signal's TLS files.
fn http<B: WithExportConfig + WithHttpConfig>(
    builder: B,
    signal: &SignalSettings,
) -> Result<B, String> {
    let mut client = reqwest::blocking::Client::builder()
        .timeout(signal.timeout)
        .connect_timeout(signal.timeout.min(Duration::from_secs(5)));
    if let Some(path) = &signal.tls.certificate {
        let pem = read(path, "certificate")?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .map_err(|e| format!("OTLP certificate {}: {e}", path.display()))?;
        client = client.add_root_certificate(certificate);
    }
    if let (Some(cert), Some(key)) = (&signal.tls.client_certificate, &signal.tls.client_key) {
        let mut pem = read(cert, "client certificate")?;
        pem.extend(read(key, "client key")?);
        let identity = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("OTLP client certificate {}: {e}", cert.display()))?;
        client = client.identity(identity);
    }
    let client = client
        .build()
        .map_err(|e| format!("OTLP HTTP client: {e}"))?;
    let mut builder = builder
        .with_endpoint(signal.endpoint.as_str())
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_timeout(signal.timeout)
        .with_http_client(client)
        .with_headers(signal.headers.iter().cloned().collect::<HashMap<_, _>>());
    if let Some(compression) = compression(signal) {
        builder = builder.with_compression(compression);
    }
    Ok(builder)
}

/// gRPC on tonic, with the signal's TLS files for `https` endpoints.
fn grpc<B: WithExportConfig + WithTonicConfig>(
    builder: B,
    signal: &SignalSettings,
) -> Result<B, String> {
    use opentelemetry_otlp::tonic_types::metadata::MetadataMap;
    use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
    let mut headers = http::HeaderMap::new();
    for (name, value) in &signal.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("OTLP header name `{name}` is not valid in gRPC metadata"))?;
        let value = http::HeaderValue::from_str(value)
            .map_err(|_| format!("OTLP header `{name}` has a value gRPC cannot carry"))?;
        headers.insert(name, value);
    }
    let metadata = MetadataMap::from_headers(headers);
    let mut builder = builder
        .with_endpoint(signal.endpoint.as_str())
        .with_protocol(opentelemetry_otlp::Protocol::Grpc)
        .with_timeout(signal.timeout)
        .with_metadata(metadata);
    if let Some(compression) = compression(signal) {
        builder = builder.with_compression(compression);
    }
    if signal.endpoint.scheme() == "https" {
        let mut tls = ClientTlsConfig::new().with_native_roots();
        if let Some(path) = &signal.tls.certificate {
            tls = tls.ca_certificate(Certificate::from_pem(read(path, "certificate")?));
        }
        if let (Some(cert), Some(key)) = (&signal.tls.client_certificate, &signal.tls.client_key) {
            tls = tls.identity(Identity::from_pem(
                read(cert, "client certificate")?,
                read(key, "client key")?,
            ));
        }
        builder = builder.with_tls_config(tls);
    }
    Ok(builder)
}

/// The runtime that tonic's connections live on: its own, so export goes on
/// while the pipelines' runtime shuts down, and `sync` and `run` export
/// alike.
fn grpc_runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RUNTIME: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otlp-grpc")
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the gRPC runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// An exporter whose failed exports are counted
/// (`cryptolake_telemetry_export_failures_total`) and logged at most once a
/// minute per signal.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    signal: Signal,
    last_warning: std::sync::Mutex<Option<Instant>>,
    reachable: Arc<AtomicBool>,
}

impl<E> Counted<E> {
    fn new(inner: E, signal: Signal, reachable: &Arc<AtomicBool>) -> Self {
        Self {
            inner,
            signal,
            last_warning: std::sync::Mutex::new(None),
            reachable: Arc::clone(reachable),
        }
    }

    fn note(&self, result: OTelSdkResult) -> OTelSdkResult {
        self.reachable.store(result.is_ok(), Ordering::Relaxed);
        if let Err(error) = &result {
            metrics::telemetry_export_failed(self.signal);
            let due = self.last_warning.lock().is_ok_and(|mut last| {
                let due = last.is_none_or(|at| at.elapsed() >= Duration::from_secs(60));
                if due {
                    *last = Some(Instant::now());
                }
                due
            });
            if due {
                tracing::warn!(signal = self.signal.label(), error = %error, "OTLP export failed; the pipelines go on, this telemetry is dropped.");
            }
        }
        result
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.note(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for Counted<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.note(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Counted<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.note(result)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
