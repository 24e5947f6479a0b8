//! OTLP export of traces, metrics and logs on the OpenTelemetry SDK, over
//! HTTP/protobuf or gRPC.
//!
//! Owns: the export settings (the configuration file's `[telemetry.otlp]`,
//! overridden by the standard `OTEL_EXPORTER_OTLP_*` variables, general and
//! per signal), the SDK providers built from them ([`providers`]), the
//! bridge from the metric registry to the SDK's instruments ([`bridge`]),
//! and the `tracing` layer that hands spans and events to the SDK
//! ([`layer`]), swapped when the settings change on a reload. What the SDK
//! reads from the environment itself stays with it: the batch processors'
//! `OTEL_BSP_*` and `OTEL_BLRP_*`, `OTEL_TRACES_SAMPLER` and its argument,
//! the span limits, `OTEL_METRIC_EXPORT_TIMEOUT` and the metrics'
//! temporality preference.
//!
//! Export never blocks or fails the pipelines: the SDK's processors queue
//! with a bound (a full queue drops) and export on threads of their own,
//! with retries on 429, 502, 503 and 504 that honour `Retry-After`, within
//! the export timeout. Settings that cannot be used are logged and export
//! stays off (or, on a reload, as it was): telemetry never stops the agent.

mod bridge;
mod layer;
mod providers;

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use layer::install;

use crate::config::OtlpFileSettings;
pub use crate::config::{OtlpCompression as Compression, OtlpProtocol as Protocol};
use crate::telemetry::metrics::Signal;

const SIGNALS: [Signal; 3] = [Signal::Traces, Signal::Metrics, Signal::Logs];

/// The signal as the `OTEL_EXPORTER_OTLP_{SIGNAL}_*` variables name it.
fn env_name(signal: Signal) -> String {
    signal.label().to_ascii_uppercase()
}

/// The HTTP path of the signal's collector service.
fn http_path(signal: Signal) -> String {
    format!("/v1/{}", signal.label())
}

/// TLS files of an exporter.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsFiles {
    /// A certificate authority to trust besides the system's.
    pub certificate: Option<PathBuf>,
    /// The client certificate, for mutual TLS.
    pub client_certificate: Option<PathBuf>,
    /// Its private key.
    pub client_key: Option<PathBuf>,
}

/// One signal's exporter, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalSettings {
    /// Wire protocol.
    pub protocol: Protocol,
    /// For HTTP the full URL (`…/v1/traces`); for gRPC the collector's
    /// address (the service path is gRPC's).
    pub endpoint: url::Url,
    /// Headers (gRPC metadata) on every request, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Deadline of one export, retries included.
    pub timeout: Duration,
    /// Request compression.
    pub compression: Compression,
    /// TLS files.
    pub tls: TlsFiles,
}

/// Resolved export settings: a signal is `None` when it is not exported.
#[derive(Debug, Clone, PartialEq)]
pub struct OtlpSettings {
    /// Spans.
    pub traces: Option<SignalSettings>,
    /// Metrics.
    pub metrics: Option<SignalSettings>,
    /// Log records.
    pub logs: Option<SignalSettings>,
    /// Metric export interval.
    pub metrics_interval: Duration,
    /// Resource attributes (service.name first).
    pub resource: Vec<(String, String)>,
}

impl OtlpSettings {
    fn signal(&self, signal: Signal) -> Option<&SignalSettings> {
        match signal {
            Signal::Traces => self.traces.as_ref(),
            Signal::Metrics => self.metrics.as_ref(),
            Signal::Logs => self.logs.as_ref(),
        }
    }
}

/// Resolves settings from the file's `[telemetry.otlp]` and the environment
/// (`env` looks a variable up). `Ok(None)`: export is off. For each setting
/// of a signal the first of these that is set wins: the signal's variable
/// (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`), the general one
/// (`OTEL_EXPORTER_OTLP_TIMEOUT`), the file, the default.
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
    let mut signals = Vec::new();
    for signal in SIGNALS {
        signals.push(signal_settings(signal, config, &var)?);
    }
    let [traces, metrics, logs]: [Option<SignalSettings>; 3] =
        signals.try_into().map_err(|_| "three signals".to_owned())?;
    if traces.is_none() && metrics.is_none() && logs.is_none() {
        return Ok(None);
    }
    let metrics_interval = var("OTEL_METRIC_EXPORT_INTERVAL")
        .map(|text| millis("OTEL_METRIC_EXPORT_INTERVAL", &text))
        .transpose()?
        .or(config.metrics_interval)
        .unwrap_or(Duration::from_secs(10));
    Ok(Some(OtlpSettings {
        traces,
        metrics,
        logs,
        metrics_interval,
        resource: resource(config, &var),
    }))
}

fn millis(name: &str, text: &str) -> Result<Duration, String> {
    text.parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| format!("{name}=`{text}` is not a number of milliseconds"))
}

fn signal_settings(
    kind: Signal,
    config: &OtlpFileSettings,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<SignalSettings>, String> {
    let selector = format!("OTEL_{}_EXPORTER", env_name(kind));
    match var(&selector).as_deref() {
        None | Some("otlp") => {}
        Some("none") => return Ok(None),
        Some(other) => {
            return Err(format!(
                "{selector}=`{other}` is not supported (use otlp or none)"
            ));
        }
    }
    // The signal's variable, else the general one.
    let lookup = |setting: &str| {
        let signal = format!("OTEL_EXPORTER_OTLP_{}_{setting}", env_name(kind));
        let general = format!("OTEL_EXPORTER_OTLP_{setting}");
        var(&signal)
            .map(|value| (signal, value))
            .or_else(|| var(&general).map(|value| (general, value)))
    };
    let protocol = match lookup("PROTOCOL") {
        Some((name, text)) => Protocol::parse(&text).ok_or_else(|| {
            format!("{name}=`{text}` is not supported (use http/protobuf or grpc)")
        })?,
        None => config.protocol.unwrap_or(Protocol::HttpProtobuf),
    };
    let signal_endpoint = format!("OTEL_EXPORTER_OTLP_{}_ENDPOINT", env_name(kind));
    let text = match var(&signal_endpoint) {
        // A signal's own endpoint is used as it is.
        Some(full) => full,
        None => {
            let base = var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .or_else(|| config.endpoint.as_ref().map(url::Url::to_string));
            let Some(base) = base else {
                return Ok(None);
            };
            match protocol {
                Protocol::HttpProtobuf => {
                    format!("{}{}", base.trim_end_matches('/'), http_path(kind))
                }
                Protocol::Grpc => base,
            }
        }
    };
    let endpoint = url::Url::parse(&text)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| format!("OTLP endpoint `{text}` is not an http(s) URL"))?;

    let mut headers: Vec<(String, String)> = config
        .headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    let general_headers = var("OTEL_EXPORTER_OTLP_HEADERS");
    let signal_headers = var(&format!("OTEL_EXPORTER_OTLP_{}_HEADERS", env_name(kind)));
    for list in [general_headers, signal_headers].into_iter().flatten() {
        for (key, value) in key_values(&list) {
            let key = key.to_ascii_lowercase();
            headers.retain(|(k, _)| *k != key);
            headers.push((key, value));
        }
    }
    let timeout = match lookup("TIMEOUT") {
        Some((name, text)) => millis(&name, &text)?,
        None => config.timeout.unwrap_or(Duration::from_secs(10)),
    };
    let compression = match lookup("COMPRESSION") {
        Some((name, text)) => Compression::parse(&text)
            .ok_or_else(|| format!("{name}=`{text}` is not supported (use gzip or none)"))?,
        None => config.compression.unwrap_or(Compression::None),
    };
    let file = |setting: &str, from_config: &Option<PathBuf>| {
        lookup(setting)
            .map(|(_, path)| PathBuf::from(path))
            .or_else(|| from_config.clone())
    };
    let tls = TlsFiles {
        certificate: file("CERTIFICATE", &config.certificate),
        client_certificate: file("CLIENT_CERTIFICATE", &config.client_certificate),
        client_key: file("CLIENT_KEY", &config.client_key),
    };
    if tls.client_certificate.is_some() != tls.client_key.is_some() {
        return Err(format!(
            "OTLP {}: a client certificate needs its key and a key its certificate",
            kind.label()
        ));
    }
    Ok(Some(SignalSettings {
        protocol,
        endpoint,
        headers,
        timeout,
        compression,
        tls,
    }))
}

/// The resource: the file's attributes, `OTEL_RESOURCE_ATTRIBUTES` over
/// them, `service.name` from `OTEL_SERVICE_NAME`, the attributes or the
/// file, then the agent's own (version, instance, host).
fn resource(
    config: &OtlpFileSettings,
    var: &dyn Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
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
        ("service.instance.id", instance_id().to_owned()),
        (
            "host.name",
            crate::config::kernel_host_name().unwrap_or_default(),
        ),
    ];
    for (key, value) in defaults {
        if !value.is_empty() && !resource.iter().any(|(k, _)| k == key) {
            resource.push((key.to_owned(), value));
        }
    }
    resource
}

/// This process's `service.instance.id`: one per process, so a reload with
/// unchanged settings is recognised as unchanged.
fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("{:032x}", fastrand::u128(..)))
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

/// What exports now, and the settings it was built from.
struct Exporting {
    settings: OtlpSettings,
    providers: providers::Providers,
}

fn exporting() -> &'static Mutex<Option<Exporting>> {
    static EXPORTING: Mutex<Option<Exporting>> = Mutex::new(None);
    &EXPORTING
}

/// Flushes and stops export when dropped, for at most the export timeout,
/// so a `sync` that exits still reports its run.
#[derive(Debug)]
pub struct OtlpGuard {
    _private: (),
}

impl Drop for OtlpGuard {
    fn drop(&mut self) {
        let previous = exporting().lock().ok().and_then(|mut e| e.take());
        if let Some(previous) = previous {
            attach(None);
            previous.providers.shutdown();
        }
    }
}

/// Starts exporting if the settings (file and environment) ask for it.
/// The guard flushes what is queued when dropped. A bad setting is logged
/// and export stays off: telemetry never stops the agent.
pub fn start(config: Option<&OtlpFileSettings>) -> OtlpGuard {
    reconfigure(config);
    OtlpGuard { _private: () }
}

/// What [`reconfigure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconfigured {
    /// The resolved settings are those in use.
    Unchanged,
    /// Export now follows the new settings (or stopped, if they turn it
    /// off); what the old exporters held was flushed.
    Applied,
    /// The new settings cannot be used; export goes on as it was.
    Kept(String),
}

/// Brings export in line with `config` (and the environment): for a reload
/// of `[telemetry]`. New exporters are built before the old ones stop, so a
/// setting that cannot be used keeps the running export.
pub fn reconfigure(config: Option<&OtlpFileSettings>) -> Reconfigured {
    let wanted = match settings(config, &|name| std::env::var(name).ok()) {
        Ok(wanted) => wanted,
        Err(error) => {
            tracing::error!(error = %error, "OTLP export settings are invalid; export goes on as it was.");
            return Reconfigured::Kept(error);
        }
    };
    let Ok(mut current) = exporting().lock() else {
        return Reconfigured::Kept("the export state is poisoned".into());
    };
    if current.as_ref().map(|e| &e.settings) == wanted.as_ref() {
        return Reconfigured::Unchanged;
    }
    let next = match wanted {
        None => None,
        Some(settings) => match providers::Providers::build(&settings) {
            Ok(providers) => Some(Exporting {
                settings,
                providers,
            }),
            Err(error) => {
                tracing::error!(error = %error, "OTLP export could not start; export goes on as it was.");
                return Reconfigured::Kept(error);
            }
        },
    };
    attach(next.as_ref().map(|e| &e.providers));
    match &next {
        Some(e) => tracing::info!(
            traces = %endpoint(&e.settings, Signal::Traces),
            metrics = %endpoint(&e.settings, Signal::Metrics),
            logs = %endpoint(&e.settings, Signal::Logs),
            "OTLP export started."
        ),
        None if current.is_some() => tracing::info!("OTLP export stopped."),
        None => {}
    }
    let previous = std::mem::replace(&mut *current, next);
    drop(current);
    if let Some(previous) = previous {
        previous.providers.shutdown();
    }
    Reconfigured::Applied
}

/// Points spans, events and histogram observations at `providers` (`None`:
/// at nobody).
fn attach(providers: Option<&providers::Providers>) {
    layer::swap(providers);
    bridge::swap_histograms(providers.and_then(providers::Providers::histograms));
}

/// A signal's protocol and endpoint, or `off`, for the log.
fn endpoint(settings: &OtlpSettings, kind: Signal) -> String {
    match settings.signal(kind) {
        Some(signal) => format!("{:?} {}", signal.protocol, signal.endpoint),
        None => "off".to_owned(),
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

    fn signal(settings: &Option<SignalSettings>) -> &SignalSettings {
        settings.as_ref().expect("the signal is exported")
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
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ]),
        )
        .unwrap()
        .unwrap();
        let traces = signal(&s.traces);
        assert_eq!(traces.protocol, Protocol::HttpProtobuf);
        assert_eq!(traces.endpoint.as_str(), "http://collector:4318/v1/traces");
        assert_eq!(
            signal(&s.metrics).endpoint.as_str(),
            "http://collector:4318/v1/metrics"
        );
        assert_eq!(signal(&s.logs).endpoint.as_str(), "http://logs:9000/custom");
        assert_eq!(
            traces.headers,
            vec![
                ("x-api-key".into(), "abc=1".into()),
                ("tenant".into(), "t1".into())
            ]
        );
        assert_eq!(traces.timeout, Duration::from_millis(2500));
        assert_eq!(traces.compression, Compression::Gzip);
        assert_eq!(s.resource[0], ("service.name".into(), "lake-agent".into()));
        assert!(
            s.resource
                .contains(&("deployment.environment".into(), "prod".into()))
        );
    }

    #[test]
    fn a_signals_own_variables_win_over_the_general_ones_and_the_file() {
        let config = OtlpFileSettings {
            endpoint: Some(url::Url::parse("http://127.0.0.1:4318").unwrap()),
            timeout: Some(Duration::from_secs(3)),
            certificate: Some(PathBuf::from("/etc/ca.pem")),
            headers: [("X-Team".to_owned(), "lake".to_owned())].into(),
            ..OtlpFileSettings::default()
        };
        let s = settings(
            Some(&config),
            &env(&[
                ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "500"),
                ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-team=metrics"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://127.0.0.1:4317",
                ),
                ("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE", "/etc/logs-ca.pem"),
                ("OTEL_LOGS_EXPORTER", "otlp"),
            ]),
        )
        .unwrap()
        .unwrap();
        let (traces, metrics, logs) = (signal(&s.traces), signal(&s.metrics), signal(&s.logs));
        assert_eq!(traces.protocol, Protocol::Grpc);
        assert_eq!(traces.endpoint.as_str(), "http://127.0.0.1:4317/");
        assert_eq!(metrics.protocol, Protocol::HttpProtobuf);
        assert_eq!(metrics.timeout, Duration::from_millis(500));
        assert_eq!(traces.timeout, Duration::from_secs(3));
        assert_eq!(metrics.headers, vec![("x-team".into(), "metrics".into())]);
        assert_eq!(logs.headers, vec![("x-team".into(), "lake".into())]);
        assert_eq!(
            logs.tls.certificate.as_deref(),
            Some(std::path::Path::new("/etc/logs-ca.pem"))
        );
        assert_eq!(
            metrics.tls.certificate.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
    }

    #[test]
    fn a_signal_can_be_turned_off_and_bad_values_are_named() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        let s = settings(None, &env(&[base, ("OTEL_METRICS_EXPORTER", "none")]))
            .unwrap()
            .unwrap();
        assert!(s.metrics.is_none() && s.traces.is_some() && s.logs.is_some());
        let off = settings(
            None,
            &env(&[
                base,
                ("OTEL_METRICS_EXPORTER", "none"),
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_LOGS_EXPORTER", "none"),
            ]),
        );
        assert_eq!(off, Ok(None));
        for (name, value) in [
            ("OTEL_TRACES_EXPORTER", "zipkin"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "brotli"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "soon"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/etc/key.pem"),
        ] {
            let error = settings(None, &env(&[base, (name, value)])).unwrap_err();
            assert!(
                error.contains(name) || error.contains("certificate"),
                "{name}: {error}"
            );
        }
    }

    #[test]
    fn grpc_paths_and_file_settings() {
        let config = OtlpFileSettings {
            endpoint: Some(url::Url::parse("http://127.0.0.1:4317").unwrap()),
            protocol: Some(Protocol::Grpc),
            service_name: Some("from-file".into()),
            compression: Some(Compression::Gzip),
            ..OtlpFileSettings::default()
        };
        let s = settings(Some(&config), &env(&[])).unwrap().unwrap();
        assert_eq!(
            signal(&s.traces).endpoint.as_str(),
            "http://127.0.0.1:4317/"
        );
        assert_eq!(signal(&s.logs).compression, Compression::Gzip);
        assert_eq!(s.resource[0].1, "from-file");
        assert_eq!(
            settings(Some(&config), &env(&[("OTEL_SDK_DISABLED", "true")])),
            Ok(None)
        );
        // The same settings twice are the same: a reload can tell.
        assert_eq!(settings(Some(&config), &env(&[])).unwrap(), Some(s));
    }
}
