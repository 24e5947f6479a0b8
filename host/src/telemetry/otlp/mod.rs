//! OTLP export of traces, metrics and logs, over HTTP/protobuf or gRPC.
//!
//! Owns: the export settings (the configuration file, overridden by the
//! standard `OTEL_*` environment variables), the [`layer`] that turns
//! `tracing` spans and events into OTLP spans and log records, and the
//! [`export`] thread that batches and sends them, plus the metric registry's
//! snapshot at an interval.
//!
//! Export never blocks or fails the pipelines: items go into a bounded queue
//! with `try_send` (a full queue drops and counts), and the exporter runs on
//! its own thread with its own small async runtime and HTTP client, so it
//! works the same under `sync` and `run`. Why not the opentelemetry SDK
//! crates: they would add a second HTTP stack (tonic, or reqwest 0.12) to
//! the build, and their HTTP exporter panics outside a Tokio context with
//! the async client; the wire format here is the official protobuf types
//! from `opentelemetry-proto`, so collectors see standard OTLP.

mod convert;
mod export;
mod layer;

use std::time::Duration;

pub use export::OtlpGuard;
pub use layer::OtlpLayer;

use crate::config::OtlpFileSettings;
pub use crate::config::OtlpProtocol as Protocol;

/// Wire protocol.
/// Resolved export settings.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// Wire protocol.
    pub protocol: Protocol,
    /// Where spans go.
    pub traces: url::Url,
    /// Where metrics go.
    pub metrics: url::Url,
    /// Where log records go.
    pub logs: url::Url,
    /// Headers on every request.
    pub headers: Vec<(String, String)>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Metric export interval.
    pub metrics_interval: Duration,
    /// Resource attributes (service.name first).
    pub resource: Vec<(String, String)>,
}

/// Resolves settings from the file's `[telemetry.otlp]` and the environment
/// (`env` looks a variable up). `Ok(None)`: export is off.
pub fn settings(
    config: Option<&OtlpFileSettings>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<OtlpSettings>, String> {
    let var = |name: &str| {
        env(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    let default = OtlpFileSettings::default();
    let config = config.unwrap_or(&default);
    let protocol = match var("OTEL_EXPORTER_OTLP_PROTOCOL") {
        Some(text) => Protocol::parse(&text).ok_or_else(|| {
            format!("OTLP protocol `{text}` is not supported (use http/protobuf or grpc)")
        })?,
        None => config.protocol.unwrap_or(Protocol::HttpProtobuf),
    };
    let base = var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .or_else(|| config.endpoint.as_ref().map(url::Url::to_string));
    let signal =
        |name: &str, http_path: &str, grpc_service: &str| -> Result<Option<url::Url>, String> {
            let text = match var(&format!("OTEL_EXPORTER_OTLP_{name}_ENDPOINT")) {
                Some(full) => full,
                None => match &base {
                    None => return Ok(None),
                    Some(base) => {
                        let base = base.trim_end_matches('/');
                        match protocol {
                            Protocol::HttpProtobuf => format!("{base}{http_path}"),
                            Protocol::Grpc => format!("{base}/{grpc_service}/Export"),
                        }
                    }
                },
            };
            url::Url::parse(&text)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .map(Some)
                .ok_or_else(|| format!("OTLP endpoint `{text}` is not an http(s) URL"))
        };
    let traces = signal(
        "TRACES",
        "/v1/traces",
        "opentelemetry.proto.collector.trace.v1.TraceService",
    )?;
    let metrics = signal(
        "METRICS",
        "/v1/metrics",
        "opentelemetry.proto.collector.metrics.v1.MetricsService",
    )?;
    let logs = signal(
        "LOGS",
        "/v1/logs",
        "opentelemetry.proto.collector.logs.v1.LogsService",
    )?;
    let (Some(traces), Some(metrics), Some(logs)) = (traces, metrics, logs) else {
        return Ok(None);
    };
    let mut headers: Vec<(String, String)> = config
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    if let Some(list) = var("OTEL_EXPORTER_OTLP_HEADERS") {
        for (key, value) in key_values(&list) {
            headers.retain(|(k, _)| *k != key.to_ascii_lowercase());
            headers.push((key.to_ascii_lowercase(), value));
        }
    }
    let millis = |name: &str| {
        var(name)
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
    };
    let timeout = millis("OTEL_EXPORTER_OTLP_TIMEOUT")
        .or(config.timeout)
        .unwrap_or(Duration::from_secs(10));
    let metrics_interval = millis("OTEL_METRIC_EXPORT_INTERVAL")
        .or(config.metrics_interval)
        .unwrap_or(Duration::from_secs(10));

    let mut resource: Vec<(String, String)> = config
        .resource
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(list) = var("OTEL_RESOURCE_ATTRIBUTES") {
        for (key, value) in key_values(&list) {
            resource.retain(|(k, _)| *k != key);
            resource.push((key, value));
        }
    }
    let service_name = var("OTEL_SERVICE_NAME")
        .or_else(|| {
            resource
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.clone())
        })
        .or_else(|| config.service_name.clone())
        .unwrap_or_else(|| "cryptolake".to_owned());
    resource.retain(|(k, _)| k != "service.name");
    resource.insert(0, ("service.name".to_owned(), service_name));
    let defaults = [
        ("service.version", env!("CARGO_PKG_VERSION").to_owned()),
        (
            "service.instance.id",
            format!("{:032x}", fastrand::u128(..)),
        ),
        ("telemetry.sdk.name", "cryptolake".to_owned()),
        ("telemetry.sdk.language", "rust".to_owned()),
    ];
    for (key, value) in defaults {
        if !resource.iter().any(|(k, _)| k == key) {
            resource.push((key.to_owned(), value));
        }
    }
    if let Some(host) = host_name()
        && !resource.iter().any(|(k, _)| k == "host.name")
    {
        resource.push(("host.name".to_owned(), host));
    }
    Ok(Some(OtlpSettings {
        protocol,
        traces,
        metrics,
        logs,
        headers,
        timeout,
        metrics_interval,
        resource,
    }))
}

/// `k=v,k2=v2` with percent-encoded values, as the OTel spec writes them.
fn key_values(list: &str) -> Vec<(String, String)> {
    list.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let value = url::form_urlencoded::parse(
                format!("v={}", v.trim().replace('+', "%2B")).as_bytes(),
            )
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| v.trim().to_owned());
            (k.trim().to_owned(), value)
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn host_name() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// Starts exporting if the settings (file and environment) ask for it.
/// Returns a guard that flushes what is queued when dropped. A bad setting
/// is logged and export stays off: telemetry never stops the agent.
pub fn start(config: Option<&OtlpFileSettings>) -> Option<OtlpGuard> {
    match settings(config, &|name| std::env::var(name).ok()) {
        Ok(Some(settings)) => export::start(settings),
        Ok(None) => None,
        Err(error) => {
            tracing::error!(error = %error, "OTLP export is off: its settings are invalid.");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn nothing_configured_means_no_export() {
        assert_eq!(settings(None, &env(&[])), Ok(None));
    }

    #[test]
    fn the_standard_environment_configures_export() {
        let s = settings(
            None,
            &env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "x-api-key=abc%3D1,tenant = t1",
                ),
                ("OTEL_SERVICE_NAME", "lake-agent"),
                (
                    "OTEL_RESOURCE_ATTRIBUTES",
                    "deployment.environment=prod,service.name=ignored",
                ),
                (
                    "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                    "http://logs:9000/custom",
                ),
                ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
            ]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.protocol, Protocol::HttpProtobuf);
        assert_eq!(s.traces.as_str(), "http://collector:4318/v1/traces");
        assert_eq!(s.metrics.as_str(), "http://collector:4318/v1/metrics");
        assert_eq!(s.logs.as_str(), "http://logs:9000/custom");
        assert_eq!(
            s.headers,
            vec![
                ("x-api-key".into(), "abc=1".into()),
                ("tenant".into(), "t1".into())
            ]
        );
        assert_eq!(s.timeout, Duration::from_millis(2500));
        assert_eq!(s.resource[0], ("service.name".into(), "lake-agent".into()));
        assert!(
            s.resource
                .contains(&("deployment.environment".into(), "prod".into()))
        );
    }

    #[test]
    fn grpc_paths_and_file_settings() {
        let config = OtlpFileSettings {
            endpoint: Some(url::Url::parse("http://127.0.0.1:4317").unwrap()),
            protocol: Some(Protocol::Grpc),
            service_name: Some("from-file".into()),
            ..OtlpFileSettings::default()
        };
        let s = settings(Some(&config), &env(&[])).unwrap().unwrap();
        assert_eq!(
            s.traces.as_str(),
            "http://127.0.0.1:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
        assert_eq!(s.resource[0].1, "from-file");
        assert_eq!(
            settings(Some(&config), &env(&[("OTEL_SDK_DISABLED", "true")])),
            Ok(None)
        );
        assert!(
            settings(
                Some(&config),
                &env(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")])
            )
            .is_err()
        );
    }
}
