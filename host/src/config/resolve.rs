//! Resolution of a parsed configuration file into the [`Plan`] that drives
//! work.
//!
//! Two phases, as in ripgrep: raw values are parsed purely (see
//! [`super::types`]), then resolved here: relative paths against the config
//! file's directory, sizes and durations parsed, references between sections
//! checked, defaults applied. Every problem is collected, not just the first.
//!
//! Owns: the checks and defaults. It must not load plugins or open the lake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::HostPattern;
use super::lake::{LakeLocation, ObjectService, resolve_lake};
use super::types::{
    ConfigFile, LimitsConfig, PluginConfig, PluginUse, ScheduleConfig, TransferMode,
};
use super::units::{parse_duration, parse_size};
use super::{ConfigError, Problem};
use crate::schedule::{Cron, Schedule};

use super::plan::{
    AdminSettings, DaemonSettings, LeaseSettings, Limits, OtlpCompression, OtlpFileSettings,
    OtlpProtocol, PipelineSchedule, PipelineSpec, Plan, PluginLocation, PluginRef, PluginSpec,
};

/// zstd's levels: higher compresses more and costs more CPU.
const ZSTD_LEVELS: std::ops::RangeInclusive<i32> = 1..=22;

/// zstd's fast mode (`zstd --fast=N` is level -N): less compression for
/// less CPU. Lower levels exist but compress little more than none.
const ZSTD_FAST_LEVELS: std::ops::RangeInclusive<i32> = -7..=-1;

/// Resolves a parsed file; `path` anchors relative paths and names errors.
pub fn resolve(path: &Path, file: ConfigFile) -> Result<Plan, ConfigError> {
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut problems = Vec::new();
    let mut problem = |field: String, message: String| {
        problems.push(Problem {
            field,
            message,
            line: None,
        })
    };

    let lake = resolve_lake(base, &file.lake, &mut problem);
    let zstd_level = file.lake.parquet.zstd_level;
    if !(ZSTD_LEVELS.contains(&zstd_level) || ZSTD_FAST_LEVELS.contains(&zstd_level)) {
        problem(
            "lake.parquet.zstd_level".into(),
            format!(
                "{zstd_level} is not a zstd level ({} to {}, or {} to {} for zstd's fast mode)",
                ZSTD_LEVELS.start(),
                ZSTD_LEVELS.end(),
                ZSTD_FAST_LEVELS.end(),
                ZSTD_FAST_LEVELS.start()
            ),
        );
    }

    let cache_dir = match file.runtime.cache_dir.as_deref() {
        Some("") => None,
        Some(dir) => Some(base.join(dir)),
        None => default_cache_dir(),
    };
    let daemon = resolve_daemon(&file.runtime, &mut problem);
    let admin = resolve_admin(&file.admin, &mut problem);
    let leases = file
        .leases
        .as_ref()
        .map(|leases| resolve_leases(leases, lake.as_ref(), &file.lake, &mut problem));
    let otlp = file
        .telemetry
        .otlp
        .as_ref()
        .map(|otlp| resolve_otlp(base, otlp, &mut problem));

    let mut plugins = BTreeMap::new();
    for name in crate::builtin::NAMES {
        plugins.insert(
            (*name).to_owned(),
            PluginSpec {
                name: (*name).to_owned(),
                location: PluginLocation::Builtin((*name).to_owned()),
                sha256: None,
                allowed_hosts: Vec::new(),
                limits: Limits::default(),
            },
        );
    }
    for (name, config) in &file.plugins {
        let field = format!("plugins.{name}");
        if !is_identifier(name) {
            problem(
                field.clone(),
                "plugin names use only a-z, 0-9, `_` and `-`".into(),
            );
        }
        if let Some(spec) = resolve_plugin(base, name, config, &field, &mut problem) {
            plugins.insert(name.clone(), spec);
        }
    }

    if file.pipelines.is_empty() {
        // An empty file (or one that lost its pipelines in an edit) would
        // otherwise be applied on reload and stop every pipeline.
        problem(
            "pipelines".into(),
            "no pipeline is configured: add at least one [[pipelines]] table".into(),
        );
    }
    let mut pipelines = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (index, config) in file.pipelines.iter().enumerate() {
        let field = format!("pipelines[{index}]");
        if !is_identifier(&config.name) {
            problem(
                format!("{field}.name"),
                format!("`{}`: use only a-z, 0-9, `_` and `-`", config.name),
            );
        }
        if !seen.insert(config.name.clone()) {
            problem(
                format!("{field}.name"),
                format!("another pipeline is already named `{}`", config.name),
            );
        }
        match &config.table {
            Some(table) if !is_identifier(table) => problem(
                format!("{field}.table"),
                format!("`{table}`: use only a-z, 0-9, `_` and `-`"),
            ),
            Some(_) => {}
            None if !config.raw => problem(
                format!("{field}.raw"),
                "a pipeline without `table` only mirrors archives, so `raw` cannot be false".into(),
            ),
            None if !config.transforms.is_empty() => problem(
                format!("{field}.transforms"),
                "transforms need a `table` to write to".into(),
            ),
            None => {}
        }
        if config.transfer == TransferMode::Direct
            && !matches!(&lake, Some(LakeLocation::Object(object)) if object.service == ObjectService::S3)
        {
            problem(
                format!("{field}.transfer"),
                match &lake {
                    Some(LakeLocation::Local(_)) => "\"direct\" copies server-side into an S3 bucket, but the lake is a local directory".into(),
                    _ => "\"direct\" copies server-side into an S3 bucket, but the lake is not an s3:// lake".into(),
                },
            );
        }
        if let Some(limit) = &config.rate_limit
            && !(limit.per_second > 0.0 && limit.per_second.is_finite())
        {
            problem(
                format!("{field}.rate_limit.per_second"),
                "must be a positive number".into(),
            );
        }
        let source_endpoint = match &config.source_endpoint {
            None => None,
            Some(text) => match url::Url::parse(text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                _ => {
                    problem(
                        format!("{field}.source_endpoint"),
                        format!("`{text}` is not an http(s) URL"),
                    );
                    None
                }
            },
        };
        if config.concurrency == 0 || config.concurrency > 256 {
            problem(
                format!("{field}.concurrency"),
                "must be between 1 and 256".into(),
            );
        }
        if config.attempts == 0 || config.attempts > 20 {
            problem(
                format!("{field}.attempts"),
                "must be between 1 and 20".into(),
            );
        }
        for (name, value) in [("start", &config.window.start), ("end", &config.window.end)] {
            if let Some(value) = value
                && crate::period::parse_day(value).is_none()
            {
                problem(
                    format!("{field}.window.{name}"),
                    format!("`{value}` is not a YYYY-MM-DD date"),
                );
            }
        }
        if let (Some(start), Some(end)) = (&config.window.start, &config.window.end)
            && start > end
        {
            problem(
                format!("{field}.window"),
                format!("start {start} is after end {end}"),
            );
        }
        let mut plugin_ref = |use_: &PluginUse, field: String| {
            if !plugins.contains_key(&use_.plugin) {
                let known: Vec<&str> = plugins.keys().map(String::as_str).collect();
                problem(
                    format!("{field}.plugin"),
                    format!(
                        "unknown plugin `{}` (known: {})",
                        use_.plugin,
                        known.join(", ")
                    ),
                );
            }
            PluginRef {
                plugin: use_.plugin.clone(),
                params_json: serde_json::to_string(&use_.params).unwrap_or_else(|_| "{}".into()),
            }
        };
        let source = plugin_ref(&config.source, format!("{field}.source"));
        let transforms = config
            .transforms
            .iter()
            .enumerate()
            .map(|(i, t)| plugin_ref(t, format!("{field}.transforms[{i}]")))
            .collect();
        pipelines.push(PipelineSpec {
            name: config.name.clone(),
            table: config.table.clone(),
            source,
            transforms,
            start: config.window.start.clone(),
            end: config.window.end.clone(),
            concurrency: config.concurrency,
            attempts: config.attempts,
            raw: config.raw,
            missing_checksum: config.missing_checksum,
            transfer: config.transfer,
            source_endpoint,
            rate_limit: config.rate_limit,
            schedule: config
                .schedule
                .as_ref()
                .map(|s| resolve_schedule(s, &format!("{field}.schedule"), &mut problem))
                .unwrap_or_default(),
        });
    }

    match lake {
        Some(lake) if problems.is_empty() => Ok(Plan {
            config_file: path.to_owned(),
            lake,
            parquet: file.lake.parquet,
            cache_dir,
            daemon,
            otlp,
            admin,
            leases,
            plugins,
            pipelines,
        }),
        _ => Err(ConfigError {
            file: path.to_owned(),
            problems,
        }),
    }
}

fn resolve_leases(
    config: &super::types::LeasesConfig,
    lake: Option<&LakeLocation>,
    lake_config: &super::types::LakeConfig,
    problem: &mut impl FnMut(String, String),
) -> LeaseSettings {
    if matches!(lake, Some(LakeLocation::Local(_))) {
        problem(
            "leases".into(),
            "leases need an object store lake (s3://, gs://, az://): a local directory cannot replace a lease conditionally across processes".into(),
        );
    }
    if !lake_config.conditional_writes {
        problem(
            "leases".into(),
            "leases need conditional writes, and lake.conditional_writes is false".into(),
        );
    }
    let mut duration = |value: &Option<String>, name: &str| {
        positive_duration(value, &format!("leases.{name}"), problem)
    };
    let lease = duration(&config.duration, "duration").unwrap_or(Duration::from_secs(60));
    let renew_every = duration(&config.renew_every, "renew_every").unwrap_or(lease / 3);
    if renew_every * 2 > lease {
        problem(
            "leases.renew_every".into(),
            format!(
                "{renew_every:?} is more than half of leases.duration ({lease:?}): one late renewal would lose the lease"
            ),
        );
    }
    let replica = config
        .replica
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(default_replica_name);
    if !replica
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        problem(
            "leases.replica".into(),
            format!("`{replica}`: use only letters, digits, `-`, `_` and `.`"),
        );
    }
    LeaseSettings {
        duration: lease,
        renew_every,
        replica,
    }
}

/// A duration longer than zero, when given; anything else is a problem
/// with `field`.
fn positive_duration(
    value: &Option<String>,
    field: &str,
    problem: &mut impl FnMut(String, String),
) -> Option<Duration> {
    value.as_ref().and_then(|text| match parse_duration(text) {
        Ok(d) if d.is_zero() => {
            problem(field.to_owned(), "must be longer than zero".into());
            None
        }
        Ok(d) => Some(d),
        Err(message) => {
            problem(field.to_owned(), message);
            None
        }
    })
}

/// The host name: `HOSTNAME` (a pod's name on Kubernetes), else the
/// kernel's, else `agent`.
fn default_replica_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .or_else(kernel_host_name)
        .unwrap_or_else(|| "agent".into())
}

/// The kernel's host name, when it has one.
pub fn kernel_host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
}

fn resolve_admin(
    config: &super::types::AdminConfig,
    problem: &mut impl FnMut(String, String),
) -> Option<AdminSettings> {
    let listen = config.listen.as_deref().unwrap_or("127.0.0.1:9464");
    if listen.is_empty() {
        return None;
    }
    match listen.parse::<std::net::SocketAddr>() {
        Ok(listen) => Some(AdminSettings {
            listen,
            token: config.token.clone().filter(|t| !t.is_empty()),
        }),
        Err(_) => {
            problem(
                "admin.listen".into(),
                format!("`{listen}` is not an address like `127.0.0.1:9464`"),
            );
            None
        }
    }
}

fn resolve_otlp(
    base: &Path,
    config: &super::types::OtlpConfig,
    problem: &mut impl FnMut(String, String),
) -> OtlpFileSettings {
    let endpoint = config.endpoint.as_ref().and_then(|endpoint| {
        let url = url::Url::parse(endpoint)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"));
        if url.is_none() {
            problem(
                "telemetry.otlp.endpoint".into(),
                format!("`{endpoint}` is not an http(s) URL"),
            );
        }
        url
    });
    let protocol = config.protocol.as_ref().and_then(|protocol| {
        let parsed = OtlpProtocol::parse(protocol);
        if parsed.is_none() {
            problem(
                "telemetry.otlp.protocol".into(),
                format!("`{protocol}`: use \"http/protobuf\" or \"grpc\""),
            );
        }
        parsed
    });
    let mut duration = |name: &str, value: &Option<String>| {
        value.as_ref().and_then(|text| match parse_duration(text) {
            Ok(duration) => Some(duration),
            Err(message) => {
                problem(format!("telemetry.otlp.{name}"), message);
                None
            }
        })
    };
    let timeout = duration("timeout", &config.timeout);
    let metrics_interval = duration("metrics_interval", &config.metrics_interval);
    let compression = config.compression.as_ref().and_then(|text| {
        let parsed = OtlpCompression::parse(text);
        if parsed.is_none() {
            problem(
                "telemetry.otlp.compression".into(),
                format!("`{text}`: use \"gzip\" or \"none\""),
            );
        }
        parsed
    });
    if config.client_certificate.is_some() != config.client_key.is_some() {
        problem(
            "telemetry.otlp.client_certificate".into(),
            "client_certificate and client_key go together (mutual TLS needs both)".into(),
        );
    }
    let file = |path: &Option<String>| path.as_ref().map(|p| base.join(p));
    OtlpFileSettings {
        endpoint,
        protocol,
        headers: config.headers.clone(),
        timeout,
        metrics_interval,
        service_name: config.service_name.clone(),
        resource: config.resource.clone(),
        compression,
        certificate: file(&config.certificate),
        client_certificate: file(&config.client_certificate),
        client_key: file(&config.client_key),
    }
}

fn resolve_daemon(
    config: &super::types::RuntimeConfig,
    problem: &mut impl FnMut(String, String),
) -> DaemonSettings {
    let defaults = DaemonSettings::default();
    let mut duration = |value: &Option<String>, name: &str, default: Duration| match value {
        None => default,
        Some(text) => parse_duration(text).unwrap_or_else(|message| {
            problem(format!("runtime.{name}"), message);
            default
        }),
    };
    DaemonSettings {
        shutdown_grace: duration(
            &config.shutdown_grace,
            "shutdown_grace",
            defaults.shutdown_grace,
        ),
        reload_debounce: duration(
            &config.reload_debounce,
            "reload_debounce",
            defaults.reload_debounce,
        ),
        watch: config.watch.unwrap_or(defaults.watch),
    }
}

fn resolve_schedule(
    config: &ScheduleConfig,
    field: &str,
    problem: &mut impl FnMut(String, String),
) -> PipelineSchedule {
    let defaults = PipelineSchedule::default();
    let mut duration = |value: &Option<String>, name: &str| {
        positive_duration(value, &format!("{field}.{name}"), problem)
    };
    let every = duration(&config.every, "every");
    let lookback = duration(&config.lookback, "lookback");
    let retry_after = duration(&config.retry_after, "retry_after").unwrap_or(defaults.retry_after);
    let when = match (&config.every, &config.cron) {
        (Some(_), Some(_)) => {
            problem(
                field.to_owned(),
                "give either `every` or `cron`, not both".into(),
            );
            defaults.when
        }
        (None, None) => {
            problem(
                field.to_owned(),
                "give `every` (e.g. \"1h\") or `cron` (e.g. \"15 1 * * *\")".into(),
            );
            defaults.when
        }
        (Some(_), None) => every.map(Schedule::Every).unwrap_or(defaults.when),
        (None, Some(text)) => match Cron::parse(text) {
            Ok(cron) => Schedule::Cron(cron),
            Err(message) => {
                problem(format!("{field}.cron"), message);
                defaults.when
            }
        },
    };
    PipelineSchedule {
        when,
        lookback,
        retry_after,
    }
}

fn resolve_plugin(
    base: &Path,
    name: &str,
    config: &PluginConfig,
    field: &str,
    problem: &mut impl FnMut(String, String),
) -> Option<PluginSpec> {
    let location = match config.file.strip_prefix("builtin:") {
        Some(builtin) if crate::builtin::NAMES.contains(&builtin) => {
            PluginLocation::Builtin(builtin.to_owned())
        }
        Some(builtin) => {
            problem(
                format!("{field}.file"),
                format!(
                    "no built-in plugin `{builtin}` (built-ins: {})",
                    crate::builtin::NAMES.join(", ")
                ),
            );
            return None;
        }
        None => {
            let path = base.join(&config.file);
            // Every declared plugin, used or not: a typo in one nobody uses
            // yet would otherwise surface only when a pipeline starts to.
            if !path.is_file() {
                problem(
                    format!("{field}.file"),
                    format!("no plugin file at {}", path.display()),
                );
            }
            PluginLocation::File(path)
        }
    };
    let sha256 = config.sha256.as_ref().map(|s| s.to_ascii_lowercase());
    if let Some(sha) = &sha256
        && (sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        problem(
            format!("{field}.sha256"),
            "must be 64 hexadecimal characters".into(),
        );
    }
    let mut allowed_hosts = Vec::new();
    for (i, host) in config.allowed_hosts.iter().enumerate() {
        match HostPattern::parse(host) {
            Ok(pattern) => allowed_hosts.push(pattern),
            Err(message) => problem(format!("{field}.allowed_hosts[{i}]"), message),
        }
    }
    let limits = resolve_limits(&config.limits, &format!("{field}.limits"), problem);
    Some(PluginSpec {
        name: name.to_owned(),
        location,
        sha256,
        allowed_hosts,
        limits,
    })
}

fn resolve_limits(
    config: &LimitsConfig,
    field: &str,
    problem: &mut impl FnMut(String, String),
) -> Limits {
    let defaults = Limits::default();
    let mut size = |value: &Option<String>, name: &str, default: u64| match value {
        None => default,
        Some(text) => parse_size(text).unwrap_or_else(|message| {
            problem(format!("{field}.{name}"), message);
            default
        }),
    };
    let memory = size(&config.memory, "memory", defaults.memory_bytes as u64);
    let max_response_bytes = size(
        &config.max_response_size,
        "max_response_size",
        defaults.max_response_bytes,
    );
    let mut duration = |value: &Option<String>, name: &str, default: Duration| match value {
        None => default,
        Some(text) => match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                problem(format!("{field}.{name}"), "must be longer than zero".into());
                default
            }
            Ok(d) => d,
            Err(message) => {
                problem(format!("{field}.{name}"), message);
                default
            }
        },
    };
    let call_timeout = duration(&config.call_timeout, "call_timeout", defaults.call_timeout);
    let fetch_timeout = duration(
        &config.fetch_timeout,
        "fetch_timeout",
        defaults.fetch_timeout,
    );
    if memory < (1 << 20) {
        problem(format!("{field}.memory"), "must be at least 1MiB".into());
    }
    Limits {
        memory_bytes: usize::try_from(memory).unwrap_or(usize::MAX),
        call_timeout,
        fetch_timeout,
        max_response_bytes,
        recycle_after_calls: config
            .recycle_after_calls
            .unwrap_or(defaults.recycle_after_calls)
            .max(1),
    }
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("cryptolake"));
    }
    std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .map(|home| PathBuf::from(home).join(".cache").join("cryptolake"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Plan, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, text).unwrap();
        crate::config::load(&path)
    }

    const MINIMAL: &str = r#"
[[pipelines]]
name = "p"
table = "ohlcv"
source = { plugin = "binance", params = { symbols = ["BTCUSDT"], interval = "1m" } }
transforms = [{ plugin = "ohlcv" }]
"#;

    #[test]
    fn minimal_config_resolves_with_defaults() {
        let plan = load_str(MINIMAL).unwrap();
        assert_eq!(plan.pipelines[0].concurrency, 4);
        assert!(matches!(&plan.lake, LakeLocation::Local(p) if p.ends_with("lake")));
        assert!(plan.plugins.contains_key("binance"));
        assert_eq!(
            plan.pipelines[0].source.params_json,
            r#"{"interval":"1m","symbols":["BTCUSDT"]}"#
        );
    }

    #[test]
    fn unknown_field_names_its_path() {
        let e = load_str(&format!("{MINIMAL}colour = 1\n")).unwrap_err();
        assert_eq!(e.problems[0].field, "pipelines[0].colour");
        assert!(e.problems[0].message.contains("colour"), "{e}");
        assert!(e.to_string().contains("agent.toml"), "{e}");
    }

    #[test]
    fn several_problems_are_reported_at_once() {
        let text = r#"
[plugins.x]
file = "x.wasm"
allowed_hosts = ["http://bad/"]
limits = { memory = "lots", call_timeout = "0s" }

[[pipelines]]
name = "P"
table = "t"
source = { plugin = "nope" }
window = { start = "2024-13-01" }
"#;
        let e = load_str(text).unwrap_err();
        let fields: Vec<&str> = e.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "plugins.x.file",
                "plugins.x.allowed_hosts[0]",
                "plugins.x.limits.memory",
                "plugins.x.limits.call_timeout",
                "pipelines[0].name",
                "pipelines[0].window.start",
                "pipelines[0].source.plugin",
            ],
            "{e}"
        );
    }

    #[test]
    fn s3_lakes_resolve_with_endpoint_and_prefix() {
        let plan = load_str(&format!(
            "lake = {{ url = \"s3://my-lake/crypto/\", endpoint = \"http://127.0.0.1:9000\" }}\n{MINIMAL}"
        ))
        .unwrap();
        match plan.lake {
            LakeLocation::Object(object) => {
                assert_eq!(
                    (
                        object.bucket.as_str(),
                        object.prefix.as_str(),
                        object.region.as_deref()
                    ),
                    ("my-lake", "crypto", None)
                );
                assert_eq!(
                    object.endpoint.as_ref().map(url::Url::as_str),
                    Some("http://127.0.0.1:9000/")
                );
                assert!(object.uses_path_style());
            }
            other => panic!("{other:?}"),
        }
        let e = load_str(&format!(
            "lake = {{ url = \"s3://Bad_Bucket\" }}\n{MINIMAL}"
        ))
        .unwrap_err();
        assert_eq!(e.problems[0].field, "lake.url");
        let e = load_str(&format!(
            "lake = {{ url = \"./lake\", region = \"x\" }}\n{MINIMAL}"
        ))
        .unwrap_err();
        assert_eq!(e.problems[0].field, "lake.region");
    }

    #[test]
    fn leases_need_an_object_store_and_a_renewal_within_half_the_duration() {
        let s3 = "lake = { url = \"s3://lake/crypto\", endpoint = \"http://127.0.0.1:9000\" }";
        let plan = load_str(&format!(
            "{s3}\nleases = {{ duration = \"30s\", replica = \"agent-0\" }}\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(
            plan.leases,
            Some(LeaseSettings {
                duration: Duration::from_secs(30),
                renew_every: Duration::from_secs(10),
                replica: "agent-0".into(),
            })
        );
        let fields = |text: &str| -> Vec<String> {
            load_str(&format!("{text}\n{MINIMAL}"))
                .unwrap_err()
                .problems
                .into_iter()
                .map(|p| p.field)
                .collect()
        };
        assert_eq!(
            fields("lake = { url = \"./lake\" }\nleases = {}"),
            ["leases"]
        );
        assert_eq!(
            fields(&format!(
                "{s3}\nleases = {{ duration = \"10s\", renew_every = \"6s\" }}"
            )),
            ["leases.renew_every"]
        );
        assert_eq!(
            fields(&format!("{s3}\nleases = {{ duration = \"0s\" }}")),
            ["leases.duration"]
        );
        assert_eq!(
            fields(&format!("{s3}\nleases = {{ replica = \"a b\" }}")),
            ["leases.replica"]
        );
    }

    #[test]
    fn syntax_error_names_the_line() {
        let e = load_str("[lake\nurl = 1").unwrap_err();
        assert!(e.to_string().contains("line 1"), "{e}");
    }
}
