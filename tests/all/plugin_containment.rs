//! Hostile plugins are contained: the host survives each misbehaviour, the
//! error names the plugin and what happened, and the next call gets a fresh,
//! working instance.

use std::sync::Arc;
use std::time::Duration;

use cryptolake::config::{Limits, PluginLocation};
use cryptolake::plugin::{CallErrorKind, GuestError, Plugin};
use cryptolake::telemetry::metrics::{self, Metric};
use cryptolake::wit::{Artifact, ChecksumSource, Compression, PartitionValues, Window};

use crate::support::runtime;

fn hostile() -> Arc<Plugin> {
    hostile_as("hostile", Duration::from_millis(500))
}

/// The hostile plugin under the name `name` (its metrics' `plugin` label),
/// with `call_timeout`.
fn hostile_as(name: &str, call_timeout: Duration) -> Arc<Plugin> {
    let limits = Limits {
        memory_bytes: 64 << 20,
        call_timeout,
        ..Limits::default()
    };
    let path = env!("CRYPTOLAKE_TEST_GUEST_HOSTILE");
    runtime::runtime()
        .load(&runtime::spec(
            name,
            PluginLocation::File(path.into()),
            &["127.0.0.1:1"],
            limits,
        ))
        .expect("the hostile plugin loads (it only misbehaves when asked)")
}

/// `/metrics` as the Prometheus project's own Python parser reads it
/// (`prometheus_client`): every sample as `[name, labels, value]`. Panics
/// with the parser's error when the text does not parse.
fn parsed_by_prometheus_client() -> Vec<(String, std::collections::BTreeMap<String, String>, f64)> {
    crate::support::tools::ensure_python_tools();
    let text = metrics::prometheus_text();
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys\nfrom prometheus_client.parser import text_string_to_metric_families\nprint(json.dumps([[s.name, s.labels, s.value] for f in text_string_to_metric_families(sys.stdin.read()) for s in f.samples]))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), text.as_bytes())
        .expect("write /metrics");
    let output = child.wait_with_output().expect("the parser ends");
    assert!(
        output.status.success(),
        "/metrics does not parse: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

fn dropped(plugin: &str, reason: &str) -> f64 {
    metrics::value(
        Metric::PluginMetricsDropped,
        &[("plugin", plugin), ("reason", reason)],
    )
}

#[test]
fn a_flood_of_label_values_is_capped_per_plugin() {
    let plugin = hostile_as("hostile-flood", Duration::from_secs(120));
    discover(&plugin, "metrics-flood").expect("recording metrics is not an error");
    let samples = parsed_by_prometheus_client();
    let flood = samples
        .iter()
        .filter(|(_, labels, _)| labels.get("plugin").map(String::as_str) == Some("hostile-flood"))
        .filter(|(_, labels, _)| labels.get("name").map(String::as_str) == Some("flood"))
        .count();
    assert_eq!(flood, metrics::MAX_SERIES_PER_PLUGIN);
    assert_eq!(
        dropped("hostile-flood", "series_limit"),
        (100_000 - metrics::MAX_SERIES_PER_PLUGIN) as f64
    );
    assert_recovers(&plugin);
}

#[test]
fn malformed_metric_points_are_refused_and_metrics_still_parse() {
    let plugin = hostile_as("hostile-malformed", Duration::from_secs(60));
    let host_rows = metrics::sum(Metric::RowsWritten, &[]);
    discover(&plugin, "metrics-malformed").expect("recording metrics is not an error");
    let samples = parsed_by_prometheus_client();
    let mine: Vec<_> = samples
        .iter()
        .filter(|(_, labels, _)| {
            labels.get("plugin").map(String::as_str) == Some("hostile-malformed")
        })
        .collect();
    // Quotes and newlines in keys, reserved and repeated keys, a huge value.
    assert_eq!(dropped("hostile-malformed", "label"), 6.0);
    assert_eq!(dropped("hostile-malformed", "value"), 2.0);
    assert_eq!(dropped("hostile-malformed", "name"), 1.0);
    assert!(
        mine.iter()
            .all(|(_, labels, _)| labels.get("name").map(String::as_str) != Some("malformed")),
        "{mine:?}"
    );
    // A host metric's name is the plugin's own counter, under its label.
    let impostor = mine
        .iter()
        .find(|(_, labels, _)| {
            labels.get("name").map(String::as_str) == Some("cryptolake_rows_written_total")
        })
        .expect("the plugin's counter");
    assert_eq!(impostor.0, "cryptolake_plugin_custom_total");
    assert_eq!(metrics::sum(Metric::RowsWritten, &[]), host_rows);
    // A value that needs escaping reads back exactly.
    let escaped = mine
        .iter()
        .find(|(_, labels, _)| labels.get("name").map(String::as_str) == Some("escaped"))
        .expect("the escaped gauge");
    assert_eq!(escaped.1["text"], "a\"b\\c\nd");
    assert_recovers(&plugin);
}

fn discover(
    plugin: &Plugin,
    mode: &str,
) -> Result<Vec<Artifact>, cryptolake::plugin::PluginCallError> {
    let params = serde_json::json!({ "mode": mode }).to_string();
    plugin.discover(
        &params,
        &Window {
            start: None,
            end: None,
        },
    )
}

fn assert_recovers(plugin: &Plugin) {
    let artifacts = discover(plugin, "ok").expect("a fresh instance serves the next call");
    assert_eq!(artifacts.len(), 1);
}

#[test]
fn a_panic_is_a_trap_that_names_the_plugin_and_its_message() {
    let plugin = hostile();
    let error = discover(&plugin, "panic").expect_err("panics");
    assert_eq!(error.plugin, "hostile");
    assert!(
        matches!(&error.kind, CallErrorKind::Trap(m) if m.contains("panics on purpose")),
        "{error}"
    );
    assert_recovers(&plugin);
}

#[test]
fn an_infinite_loop_is_interrupted_at_the_deadline() {
    let plugin = hostile();
    let before = metrics::value(
        Metric::PluginFaults,
        &[("plugin", "hostile"), ("kind", "timeout")],
    );
    let error = discover(&plugin, "loop").expect_err("times out");
    assert!(
        matches!(error.kind, CallErrorKind::Timeout(d) if d == Duration::from_millis(500)),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("plugin `hostile` failed in discover: timed out"),
        "{error}"
    );
    let after = metrics::value(
        Metric::PluginFaults,
        &[("plugin", "hostile"), ("kind", "timeout")],
    );
    assert_eq!(after, before + 1.0);
    assert_recovers(&plugin);
}

#[test]
fn a_memory_bomb_hits_the_memory_cap() {
    let plugin = hostile();
    let error = discover(&plugin, "memory").expect_err("hits the cap");
    assert!(
        matches!(error.kind, CallErrorKind::MemoryLimit(l) if l == 64 << 20),
        "{error}"
    );
    assert_recovers(&plugin);
}

#[test]
fn a_request_to_a_host_not_allowed_is_denied() {
    let plugin = hostile();
    let denied_before = metrics::value(Metric::PluginFetchDenied, &[("plugin", "hostile")]);
    let error = discover(&plugin, "forbidden-host").expect_err("denied");
    assert!(
        matches!(&error.kind, CallErrorKind::Guest(GuestError::InvalidParams(m)) if m.contains("forbidden.example")),
        "{error}"
    );
    assert_eq!(
        metrics::value(Metric::PluginFetchDenied, &[("plugin", "hostile")]),
        denied_before + 1.0
    );
    assert_recovers(&plugin);
}

#[test]
fn an_artifact_key_that_escapes_the_lake_is_rejected() {
    let plugin = hostile();
    let error = discover(&plugin, "escape-key").expect_err("rejected");
    assert!(
        matches!(&error.kind, CallErrorKind::InvalidOutput(m) if m.contains("../../etc/passwd")),
        "{error}"
    );
    assert_recovers(&plugin);
}

fn artifact() -> Artifact {
    Artifact {
        key: "data/x.csv".into(),
        url: "http://127.0.0.1:1/data/x.csv".into(),
        s3: None,
        size: None,
        last_modified: None,
        etag: None,
        checksum: ChecksumSource::None,
        compression: Compression::None,
        partition: PartitionValues {
            exchange: "hostile".into(),
            market: "spot".into(),
            data_type: "klines".into(),
            symbol: "EVIL".into(),
            interval: Some("1m".into()),
            period: "2024-01-01".into(),
        },
    }
}

#[test]
fn a_ragged_batch_from_a_decoder_is_rejected() {
    let plugin = hostile();
    let params = serde_json::json!({ "mode": "decode-ragged" }).to_string();
    let mut decoder = plugin.open_decoder(&params, &artifact()).expect("open");
    let error = decoder.push(b"anything").expect_err("ragged");
    assert!(
        matches!(&error.kind, CallErrorKind::InvalidOutput(m) if m.contains("column `b` has 1 values but the batch has 2 rows")),
        "{error}"
    );
    assert_eq!(error.call, "decoder.push");
    assert_recovers(&plugin);
}

#[test]
fn a_panic_inside_a_decoder_ends_only_that_session() {
    let plugin = hostile();
    let params = serde_json::json!({ "mode": "decode-panic" }).to_string();
    let mut decoder = plugin.open_decoder(&params, &artifact()).expect("open");
    let error = decoder.push(b"x").expect_err("panics");
    assert!(matches!(error.kind, CallErrorKind::Trap(_)), "{error}");
    let again = decoder.push(b"x").expect_err("session is over");
    assert!(
        again.to_string().contains("session already ended"),
        "{again}"
    );
    drop(decoder);
    let ok = serde_json::json!({ "mode": "ok" }).to_string();
    let mut fresh = plugin
        .open_decoder(&ok, &artifact())
        .expect("open on a fresh instance");
    assert!(fresh.push(b"x").expect("push").is_empty());
    assert!(fresh.finish().expect("finish").is_empty());
}

#[test]
fn instances_are_recycled_after_their_call_budget() {
    let limits = Limits {
        recycle_after_calls: 2,
        ..Limits::default()
    };
    let plugin = runtime::runtime()
        .load(&runtime::spec(
            "hostile-recycled",
            PluginLocation::File(env!("CRYPTOLAKE_TEST_GUEST_HOSTILE").into()),
            &["127.0.0.1:1"],
            limits,
        ))
        .expect("loads");
    let created = || {
        metrics::value(
            Metric::PluginInstantiations,
            &[("plugin", "hostile-recycled")],
        )
    };
    let start = created();
    for _ in 0..6 {
        assert_recovers(&plugin);
    }
    // Load's info() call plus six discovers is seven calls; at two calls per
    // instance that takes at least three new instances.
    assert!(created() - start >= 3.0, "{} instances", created() - start);
}

/// A loopback HTTP server answering every request with `response`; counts
/// the requests it got.
fn serve(response: String) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (port, hits)
}

#[test]
fn a_redirect_to_a_host_not_allowed_is_refused_at_that_hop() {
    // The disallowed target, standing in for a cloud metadata endpoint.
    let (target, target_hits) =
        serve("HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\nsecret".into());
    let (allowed, allowed_hits) = serve(format!(
        "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{target}/latest/meta-data/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ));
    let plugin = runtime::runtime()
        .load(&runtime::spec(
            "hostile",
            PluginLocation::File(env!("CRYPTOLAKE_TEST_GUEST_HOSTILE").into()),
            &[&format!("127.0.0.1:{allowed}")],
            Limits::default(),
        ))
        .expect("loads");
    let denied_before = metrics::value(Metric::PluginFetchDenied, &[("plugin", "hostile")]);
    let params = serde_json::json!({
        "mode": "forbidden-host",
        "url": format!("http://127.0.0.1:{allowed}/data/"),
    })
    .to_string();
    let error = plugin
        .discover(
            &params,
            &Window {
                start: None,
                end: None,
            },
        )
        .expect_err("the redirect is refused");
    let text = error.to_string();
    assert!(
        text.contains("hostile") && text.contains(&format!("127.0.0.1:{target}")),
        "{text}"
    );
    assert_eq!(allowed_hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        target_hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the disallowed host was reached"
    );
    assert_eq!(
        metrics::value(Metric::PluginFetchDenied, &[("plugin", "hostile")]),
        denied_before + 1.0
    );
}
