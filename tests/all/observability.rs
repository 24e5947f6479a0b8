//! Observability from the operator's side: OTLP export received by a real
//! receiver and decoded with the official protobuf types, the Prometheus
//! endpoint scraped and parsed, and the admin API's health, readiness and
//! status.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use time::macros::date;

use crate::support::agent::RunningAgent;
use crate::support::archive::KlineFile;
use crate::support::fixture::{Fixture, PATIENCE};
use crate::support::otlp::{Behaviour, Received, Receiver, attribute, scalar};
use crate::support::s3::{ARCHIVE_BUCKET, Moto};
use crate::support::{binance_pipeline, sync_report_env, write_agent_config};

const DAYS: i64 = 3;

fn curated_fixture() -> (Fixture, std::path::PathBuf) {
    let fixture = Fixture::new(&["ETHUSDT"], DAYS);
    let config = fixture.write_config(
        "",
        &fixture.pipeline(
            "spot",
            "ETHUSDT",
            "schedule = { every = \"1h\" }\ntransforms = [{ plugin = \"ohlcv\" }]",
        ),
    );
    (fixture, config)
}

fn metric_point(
    metrics: &[opentelemetry_proto::tonic::metrics::v1::Metric],
    name: &str,
    label: (&str, &str),
) -> Option<f64> {
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
    let metric = metrics.iter().find(|m| m.name == name)?;
    let points = match metric.data.as_ref()? {
        Data::Sum(sum) => &sum.data_points,
        Data::Gauge(gauge) => &gauge.data_points,
        _ => return None,
    };
    points
        .iter()
        .find(|p| attribute(&p.attributes, label.0).as_deref() == Some(label.1))
        .and_then(|p| match p.value? {
            Value::AsDouble(d) => Some(d),
            Value::AsInt(i) => Some(i as f64),
        })
}

/// `cryptolake.rows.written{table="ohlcv"}` in the last metrics export.
fn rows_written(received: &Received) -> Option<f64> {
    metric_point(
        &received.last_metrics(),
        "cryptolake.rows.written",
        ("table", "ohlcv"),
    )
}

fn artifact_spans(received: &Received) -> usize {
    received
        .spans()
        .iter()
        .filter(|s| s.name == "artifact")
        .count()
}

fn every_request_has(received: &Received, (name, value): (&str, &str)) -> bool {
    received
        .headers
        .iter()
        .all(|h| h.contains(&(name.to_owned(), value.to_owned())))
}

#[test]
fn a_sync_exports_spans_metrics_and_logs_over_otlp_http() {
    let (_fixture, config) = curated_fixture();
    let receiver = Receiver::http();
    let endpoint = receiver.endpoint();
    sync_report_env(
        &config,
        &[],
        0,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SERVICE_NAME", "cryptolake-under-test"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cret"),
        ],
    );
    // `sync` flushes before it exits: everything is there already.
    let received = receiver.received.lock().expect("lock");
    assert_eq!(
        received.service_name().as_deref(),
        Some("cryptolake-under-test")
    );
    assert!(
        received
            .headers
            .iter()
            .all(|h| h.contains(&("x-api-key".to_owned(), "s3cret".to_owned())))
    );

    let spans = received.spans();
    let named = |name: &str| spans.iter().filter(|s| s.name == name).collect::<Vec<_>>();
    let runs = named("pipeline.run");
    assert_eq!(
        runs.len(),
        1,
        "{:?}",
        spans.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let run = runs[0];
    assert_eq!(
        attribute(&run.attributes, "pipeline").as_deref(),
        Some("spot")
    );
    let artifacts = named("artifact");
    assert_eq!(artifacts.len(), DAYS as usize);
    for artifact in &artifacts {
        assert_eq!(artifact.trace_id, run.trace_id, "one trace per run");
        assert_eq!(artifact.parent_span_id, run.span_id);
        let key = attribute(&artifact.attributes, "artifact").expect("artifact key");
        assert!(
            key.starts_with("data/spot/daily/klines/ETHUSDT/1m/"),
            "{key}"
        );
        assert!(artifact.end_time_unix_nano > artifact.start_time_unix_nano);
    }
    for stage in ["discover", "transfer", "decode", "commit"] {
        assert!(!named(stage).is_empty(), "no `{stage}` span");
    }
    let decode = named("decode");
    assert!(
        decode
            .iter()
            .all(|s| attribute(&s.attributes, "decode_ms").is_some())
    );
    let calls = named("plugin.call");
    let plugins: std::collections::BTreeSet<String> = calls
        .iter()
        .filter_map(|s| attribute(&s.attributes, "plugin"))
        .collect();
    assert!(
        plugins.contains("binance") && plugins.contains("ohlcv"),
        "{plugins:?}"
    );
    // (`info`, at load time, runs before the version is known.)
    assert!(
        calls
            .iter()
            .filter(|s| attribute(&s.attributes, "call").as_deref() != Some("info"))
            .all(|s| attribute(&s.attributes, "plugin.version").is_some_and(|v| !v.is_empty()))
    );
    // Plugin calls made while decoding an artifact belong to its trace.
    assert!(calls.iter().any(|s| s.trace_id == run.trace_id));

    let logs = received.log_records();
    let committed: Vec<_> = logs
        .iter()
        .filter(|l| {
            l.body.as_ref().and_then(scalar).as_deref() == Some("Artifact committed to the lake.")
        })
        .collect();
    assert_eq!(committed.len(), DAYS as usize);
    for log in &committed {
        assert_eq!(log.severity_text, "INFO");
        assert_eq!(log.trace_id, run.trace_id, "logs carry the trace context");
        assert_eq!(attribute(&log.attributes, "rows").as_deref(), Some("1440"));
    }

    let metrics = received.last_metrics();
    assert_eq!(
        metric_point(&metrics, "cryptolake.rows.written", ("table", "ohlcv")),
        Some((DAYS * 1440) as f64)
    );
    assert_eq!(
        metric_point(
            &metrics,
            "cryptolake.artifacts.discovered",
            ("pipeline", "spot")
        ),
        Some(DAYS as f64)
    );
    assert_eq!(
        metric_point(
            &metrics,
            "cryptolake.artifacts.verified",
            ("pipeline", "spot")
        ),
        Some(DAYS as f64)
    );
    assert!(
        metric_point(&metrics, "cryptolake.data.lag", ("pipeline", "spot"))
            .is_some_and(|lag| lag > 0.0)
    );
    let stage = metrics
        .iter()
        .find(|m| m.name == "cryptolake.stage.duration")
        .expect("stage histogram");
    let Some(opentelemetry_proto::tonic::metrics::v1::metric::Data::Histogram(histogram)) =
        &stage.data
    else {
        panic!("stage durations are a histogram");
    };
    let decode_points: Vec<_> = histogram
        .data_points
        .iter()
        .filter(|p| attribute(&p.attributes, "stage").as_deref() == Some("decode"))
        .collect();
    assert_eq!(decode_points.len(), 1);
    assert_eq!(decode_points[0].count, DAYS as u64);
    assert_eq!(
        decode_points[0].bucket_counts.iter().sum::<u64>(),
        DAYS as u64
    );
    // OpenTelemetry's conventions: units apart from the names.
    assert_eq!(stage.unit, "s");
    let unit_of = |name: &str| {
        metrics
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.unit.clone())
    };
    assert_eq!(unit_of("cryptolake.rows.written").as_deref(), Some("{row}"));
    assert_eq!(unit_of("cryptolake.downloaded").as_deref(), Some("By"));

    // Every download is an HTTP client span under its artifact's transfer.
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    let requests: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == SpanKind::Client as i32)
        .collect();
    assert!(
        requests.len() >= DAYS as usize,
        "{} client spans",
        requests.len()
    );
    for request in &requests {
        assert_eq!(request.name, "GET");
        assert_eq!(
            attribute(&request.attributes, "http.request.method").as_deref(),
            Some("GET")
        );
        assert_eq!(
            attribute(&request.attributes, "http.response.status_code").as_deref(),
            Some("200")
        );
        let url = attribute(&request.attributes, "url.full").expect("url.full");
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert_eq!(request.trace_id, run.trace_id);
    }
    assert!(
        spans
            .iter()
            .filter(|s| s.name == "artifact")
            .all(|s| s.kind == SpanKind::Internal as i32)
    );
}

#[test]
fn export_survives_a_collector_that_refuses_twice_and_compresses_with_gzip() {
    let (_fixture, config) = curated_fixture();
    let receiver = Receiver::http_behaving(Behaviour {
        refuse_first: 2,
        ..Behaviour::default()
    });
    let endpoint = receiver.endpoint();
    let (_, output) = sync_report_env(
        &config,
        &[],
        0,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ],
    );
    let received = receiver.received.lock().expect("lock");
    assert_eq!(received.refused, 2);
    // The refused exports were retried: nothing is missing.
    assert_eq!(
        artifact_spans(&received),
        DAYS as usize,
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let committed = received
        .log_records()
        .iter()
        .filter(|l| {
            l.body.as_ref().and_then(scalar).as_deref() == Some("Artifact committed to the lake.")
        })
        .count();
    assert_eq!(committed, DAYS as usize);
    assert_eq!(rows_written(&received), Some((DAYS * 1440) as f64));
    assert!(every_request_has(&received, ("content-encoding", "gzip")));
}

#[test]
fn a_collector_that_never_answers_costs_a_sync_at_most_the_export_timeout() {
    // The same work twice, into two lakes: without export, then with it.
    let (_baseline, baseline_config) = curated_fixture();
    let started = Instant::now();
    sync_report_env(&baseline_config, &[], 0, &[]);
    let without_export = started.elapsed();

    let (_fixture, config) = curated_fixture();
    let receiver = Receiver::http_behaving(Behaviour {
        never_answer: true,
        ..Behaviour::default()
    });
    let endpoint = receiver.endpoint();
    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let (report, _) = sync_report_env(
        &config,
        &[],
        0,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "500"),
        ],
    );
    let with_export = started.elapsed();
    assert_eq!(report["pipelines"][0]["completed"], DAYS, "{report:#}");
    // At most one timeout for the flush at exit (signals flush side by
    // side), and room for this machine's noise.
    let bound = without_export + timeout + Duration::from_secs(3);
    assert!(
        with_export <= bound,
        "sync took {with_export:?} with a silent collector, {without_export:?} without export"
    );
}

#[test]
fn otlp_over_grpc_reaches_the_collector() {
    let (_fixture, config) = curated_fixture();
    let receiver = Receiver::grpc();
    let endpoint = receiver.endpoint();
    let (_, output) = sync_report_env(
        &config,
        &[],
        0,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("OTLP export failed"), "{stderr}");
    let received = receiver.received.lock().expect("lock");
    assert_eq!(artifact_spans(&received), DAYS as usize);
    assert!(!received.log_records().is_empty());
    assert_eq!(rows_written(&received), Some((DAYS * 1440) as f64));
    assert!(every_request_has(
        &received,
        ("content-type", "application/grpc")
    ));
}

/// The admin server's address, from its log line.
fn admin_address(agent: &mut RunningAgent) -> String {
    let events = agent.wait_for_message("Admin server listening.", 1, PATIENCE);
    format!("http://{}", events[0]["address"].as_str().expect("address"))
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().expect("the admin server answers");
    let status = response.status().as_u16();
    (status, response.text().unwrap_or_default())
}

/// One Prometheus sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// Parses the Prometheus text format: `name{labels} value` per sample, and
/// the `# TYPE` of each metric.
fn parse_prometheus(text: &str) -> (BTreeMap<String, String>, Vec<Sample>) {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line has a kind");
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample has a value");
        let value: f64 = if value == "+Inf" {
            f64::INFINITY
        } else {
            value.parse().expect("numeric value")
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let labels = body
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once("=\"").expect("label pair");
                        (k.to_owned(), v.trim_end_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        samples.push((name, labels, value));
    }
    (types, samples)
}

#[test]
fn the_admin_server_reports_health_readiness_metrics_and_status() {
    let (_fixture, config) = curated_fixture();
    let token = "admin-token-for-tests";
    let mut agent = RunningAgent::start_env(&config, &[("CRYPTOLAKE_ADMIN__TOKEN", token)]);
    let base = admin_address(&mut agent);
    agent.wait_for_message("Pipeline run finished.", 1, PATIENCE);

    assert_eq!(
        get(&format!("{base}/health"), None).0,
        200,
        "health needs no token"
    );
    assert_eq!(get(&format!("{base}/metrics"), None).0, 401);
    assert_eq!(get(&format!("{base}/metrics"), Some("wrong")).0, 401);
    assert_eq!(get(&format!("{base}/nope"), Some(token)).0, 404);
    // The scheme is case-insensitive (RFC 9110).
    let lower_case = reqwest::blocking::Client::new()
        .get(format!("{base}/nope"))
        .header("authorization", format!("bearer {token}"))
        .send()
        .expect("the admin server answers");
    assert_eq!(lower_case.status().as_u16(), 404);

    // Probes cannot send the token: they get the verdict, not the checks.
    let (status, body) = get(&format!("{base}/ready"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON"),
        serde_json::json!({ "ready": true })
    );
    let (status, body) = get(&format!("{base}/ready"), Some(token));
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["checks"]["lake"], "ok");

    let (status, text) = get(&format!("{base}/metrics"), Some(token));
    assert_eq!(status, 200);
    let (types, samples) = parse_prometheus(&text);
    assert_eq!(
        types
            .get("cryptolake_rows_written_total")
            .map(String::as_str),
        Some("counter")
    );
    assert_eq!(
        types
            .get("cryptolake_stage_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        types.get("cryptolake_data_lag_seconds").map(String::as_str),
        Some("gauge")
    );
    let sample = |name: &str, label: (&str, &str)| {
        samples
            .iter()
            .find(|(n, l, _)| n == name && l.get(label.0).map(String::as_str) == Some(label.1))
            .map(|(_, _, v)| *v)
    };
    assert_eq!(
        sample("cryptolake_rows_written_total", ("table", "ohlcv")),
        Some((DAYS * 1440) as f64)
    );
    assert_eq!(
        sample("cryptolake_pipeline_runs_total", ("pipeline", "spot")),
        Some(1.0)
    );
    assert_eq!(
        sample(
            "cryptolake_stage_duration_seconds_count",
            ("stage", "commit")
        ),
        Some(DAYS as f64)
    );
    assert_eq!(
        sample("cryptolake_stage_duration_seconds_bucket", ("le", "+Inf")).map(|v| v > 0.0),
        Some(true)
    );
    assert!(
        sample(
            "cryptolake_plugin_memory_high_water_bytes",
            ("plugin", "binance")
        )
        .is_some_and(|v| v > 0.0)
    );

    let (status, body) = get(&format!("{base}/api/v1/status"), Some(token));
    assert_eq!(status, 200);
    let status: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let pipeline = &status["pipelines"][0];
    assert_eq!(pipeline["pipeline"], "spot");
    assert_eq!(pipeline["last_run"]["completed"], DAYS);
    assert_eq!(pipeline["last_run"]["outcome"], "succeeded");
    assert!(pipeline["next_run"].is_string(), "{pipeline}");
    let plugins = status["agent"]["plugins"].as_array().expect("plugins");
    let binance = plugins
        .iter()
        .find(|p| p["name"] == "binance")
        .expect("binance listed");
    assert_eq!(binance["sha256"].as_str().map(str::len), Some(64));
    assert!(binance["version"].is_string());
    agent.signal("TERM");
    assert!(agent.wait_exit(PATIENCE).success());
}

#[test]
fn ready_flips_when_the_lake_is_unreachable() {
    let archive = Moto::start();
    archive.create_public_bucket(ARCHIVE_BUCKET);
    KlineFile::spot("ETHUSDT", date!(2024 - 08 - 01), 60).upload(&archive);
    let lake = Moto::start();
    lake.create_bucket("lake");
    let dir = tempfile::tempdir().expect("tempdir");
    let archive_url = format!("{}/{ARCHIVE_BUCKET}", archive.endpoint());
    let config = write_agent_config(
        dir.path(),
        &format!(
            "{{ url = \"s3://lake/crypto\", endpoint = \"{}\" }}",
            lake.endpoint()
        ),
        &archive.host_port(),
        &binance_pipeline(
            "spot",
            &archive_url,
            r#"interval = "1m", symbols = ["ETHUSDT"]"#,
            "table = \"ohlcv\"\nwindow = { start = \"2024-08-01\" }\nschedule = { every = \"1h\" }\ntransforms = [{ plugin = \"ohlcv\" }]",
        ),
    );
    let mut agent = RunningAgent::start_env(
        &config,
        &[
            ("AWS_ACCESS_KEY_ID", "cryptolake-test"),
            ("AWS_SECRET_ACCESS_KEY", "cryptolake-test-secret"),
        ],
    );
    let base = admin_address(&mut agent);
    agent.wait_for_message("Pipeline run finished.", 1, PATIENCE);
    let (status, body) = get(&format!("{base}/ready"), None);
    assert_eq!(status, 200, "{body}");

    drop(lake);
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut status, mut body) = (200, String::new());
    while status == 200 && Instant::now() < deadline {
        (status, body) = get(&format!("{base}/ready"), None);
    }
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["ready"], false);
    assert!(
        ready["checks"]["lake"]
            .as_str()
            .unwrap_or_default()
            .starts_with("unreachable"),
        "{ready}"
    );
    // Alive all the same.
    assert_eq!(get(&format!("{base}/health"), None).0, 200);
}

#[test]
fn every_metric_is_documented() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/telemetry.md"))
            .expect("docs/telemetry.md");
    for metric in cryptolake::telemetry::metrics::Metric::ALL {
        assert!(
            docs.contains(&format!("`{}`", metric.name())),
            "docs/telemetry.md does not list {}",
            metric.name()
        );
    }
}

#[test]
fn admin_changes_apply_on_reload() {
    let (_fixture, config) = curated_fixture();
    let original = std::fs::read_to_string(&config).expect("config");
    let with_admin = |admin: &str| {
        let text = original.replace("admin = { listen = \"127.0.0.1:0\" }", admin);
        assert_ne!(text, original, "the fixture's admin line moved");
        std::fs::write(&config, text).expect("rewrite the config");
    };
    let (first, second) = (
        crate::support::s3::free_port(),
        crate::support::s3::free_port(),
    );
    with_admin(&format!(
        "admin = {{ listen = \"127.0.0.1:{first}\", token = \"one\" }}"
    ));
    let mut agent = RunningAgent::start(&config);
    let base = admin_address(&mut agent);
    agent.wait_for_message("Pipeline run finished.", 1, PATIENCE);
    assert_eq!(get(&format!("{base}/metrics"), Some("one")).0, 200);

    // A new token applies to the next request, on the same socket.
    with_admin(&format!(
        "admin = {{ listen = \"127.0.0.1:{first}\", token = \"two\" }}"
    ));
    agent.wait_for_message("The admin server's token changed.", 1, PATIENCE);
    assert_eq!(get(&format!("{base}/metrics"), Some("one")).0, 401);
    assert_eq!(get(&format!("{base}/metrics"), Some("two")).0, 200);

    // A new address is served, and the old one let go.
    with_admin(&format!(
        "admin = {{ listen = \"127.0.0.1:{second}\", token = \"two\" }}"
    ));
    let events = agent.wait_for_message("Admin server listening.", 2, PATIENCE);
    let moved = format!("http://{}", events[1]["address"].as_str().expect("address"));
    assert!(moved.ends_with(&format!(":{second}")), "{moved}");
    assert_eq!(get(&format!("{moved}/metrics"), Some("two")).0, 200);
    let refused = |url: &str| {
        let deadline = Instant::now() + PATIENCE;
        while reqwest::blocking::get(url).is_ok() {
            assert!(Instant::now() < deadline, "{url} still answers");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    refused(&format!("{base}/health"));

    // `listen = ""` turns it off; the agent runs on.
    with_admin("admin = { listen = \"\" }");
    agent.wait_for_message(
        "The admin server stopped (admin.listen is empty).",
        1,
        PATIENCE,
    );
    refused(&format!("{moved}/health"));
    agent.signal("TERM");
    assert!(agent.wait_exit(PATIENCE).success());
}

#[test]
fn telemetry_changes_apply_on_reload() {
    let (_fixture, config) = curated_fixture();
    let original = std::fs::read_to_string(&config).expect("config");
    let with_telemetry = |otlp: &str| {
        std::fs::write(&config, format!("{original}\n{otlp}")).expect("rewrite the config");
    };
    let otlp_to = |receiver: &Receiver| {
        format!(
            "[telemetry.otlp]\nendpoint = \"{}\"\nmetrics_interval = \"200ms\"\n",
            receiver.endpoint()
        )
    };
    let exports = |receiver: &Receiver| receiver.received.lock().expect("lock").metrics.len();
    let wait_for_exports = |receiver: &Receiver| {
        let deadline = Instant::now() + PATIENCE;
        while exports(receiver) == 0 {
            assert!(Instant::now() < deadline, "no metrics arrived");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let (first, second) = (Receiver::http(), Receiver::http());
    with_telemetry(&otlp_to(&first));
    let mut agent = RunningAgent::start(&config);
    agent.wait_for_message("Pipeline run finished.", 1, PATIENCE);
    wait_for_exports(&first);

    // A new endpoint: the new exporters start, the old ones flush and stop.
    with_telemetry(&otlp_to(&second));
    let events = agent.wait_for_message(
        "Configuration reloaded; unchanged pipelines kept running.",
        1,
        PATIENCE,
    );
    assert_eq!(events[0]["telemetry_changed"], true, "{events:?}");
    wait_for_exports(&second);
    let settled = exports(&first);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(exports(&first), settled, "the old exporter goes on");

    // No [telemetry.otlp] (and no OTEL_* variables): export stops.
    with_telemetry("");
    agent.wait_for_message("OTLP export stopped.", 1, PATIENCE);
    let settled = exports(&second);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(exports(&second), settled, "export goes on without settings");
    agent.signal("TERM");
    assert!(agent.wait_exit(PATIENCE).success());
}

#[test]
fn export_over_mutual_tls_trusts_the_configured_ca_and_sends_the_client_certificate() {
    let certificates = tempfile::tempdir().expect("temp dir");
    let (ca, server, client) = crate::support::otlp::make_certificates(certificates.path());
    let receiver = Receiver::https(&server, Some(&ca));
    let endpoint = format!("https://127.0.0.1:{}", receiver.port);
    // The fixture's config with `[telemetry.otlp]` to the receiver and `keys`.
    let with_otlp = |config: &std::path::Path, original: &str, keys: &str| {
        std::fs::write(
            config,
            format!("{original}\n[telemetry.otlp]\nendpoint = \"{endpoint}\"\n{keys}"),
        )
        .expect("rewrite the config");
    };

    // Without the CA the collector's certificate is not trusted; with the CA
    // but no client certificate the collector refuses us. Either way nothing
    // arrives, the sync succeeds, and the failure is said. (The lake is up to
    // date after the first: the second run still exports its run.)
    let (fixture_dir, config) = curated_fixture();
    let original = std::fs::read_to_string(&config).expect("config");
    for keys in [
        "timeout = \"2s\"\n".to_owned(),
        format!("timeout = \"2s\"\ncertificate = \"{}\"\n", ca.display()),
    ] {
        with_otlp(&config, &original, &keys);
        let (_, output) = sync_report_env(&config, &[], 0, &[]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("OTLP export failed"), "{keys}: {stderr}");
        assert!(receiver.received.lock().expect("lock").traces.is_empty());
    }
    drop(fixture_dir);

    let (_fixture, config) = curated_fixture();
    let original = std::fs::read_to_string(&config).expect("config");
    with_otlp(
        &config,
        &original,
        &format!(
            "certificate = \"{}\"\nclient_certificate = \"{}\"\nclient_key = \"{}\"\n",
            ca.display(),
            client.certificate.display(),
            client.key.display()
        ),
    );
    let (_, output) = sync_report_env(&config, &[], 0, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("OTLP export failed"), "{stderr}");
    let received = receiver.received.lock().expect("lock");
    assert_eq!(artifact_spans(&received), DAYS as usize);
    assert_eq!(rows_written(&received), Some((DAYS * 1440) as f64));
}
