//! Configuration errors name the file and the field, and exit with code 2.

use crate::support::{describe, run_cryptolake};

fn check(config: &str, expected: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, config).expect("write");
    for verb in ["sync", "validate"] {
        let output = run_cryptolake(&[verb, "--config", path.to_str().unwrap()]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{verb}: {}",
            describe(&output)
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("broken.toml"), "{verb}: {stderr}");
        for needle in expected {
            assert!(
                stderr.contains(needle),
                "{verb}: expected `{needle}` in:\n{stderr}"
            );
        }
    }
}

const PIPELINE: &str = r#"
[[pipelines]]
name = "p"
table = "ohlcv"
source = { plugin = "binance", params = { symbols = ["BTCUSDT"], interval = "1m" } }
"#;

#[test]
fn syntax_error_names_the_line() {
    check("[lake\nurl = 1\n", &["line 1"]);
}

#[test]
fn unknown_field_names_its_path() {
    check(
        &format!("{PIPELINE}concurrenc = 3\n"),
        &["pipelines[0]", "concurrenc"],
    );
}

#[test]
fn wrong_type_names_its_path() {
    check(
        &format!("{PIPELINE}concurrency = \"four\"\n"),
        &["pipelines[0].concurrency"],
    );
}

#[test]
fn several_semantic_errors_are_listed_together() {
    check(
        &format!(
            "{PIPELINE}window = {{ start = \"2024-02-30\" }}\n\n[plugins.x]\nfile = \"builtin:nope\"\nlimits = {{ memory = \"1 ton\" }}\n"
        ),
        &[
            "pipelines[0].window.start (line 6): `2024-02-30` is not a YYYY-MM-DD date",
            "plugins.x.file (line 9): no built-in plugin `nope`",
        ],
    );
}

#[test]
fn unknown_plugin_reference_lists_the_known_ones() {
    check(
        &PIPELINE.replace("plugin = \"binance\"", "plugin = \"binanse\""),
        &[
            "pipelines[0].source.plugin (line 5): unknown plugin `binanse` (known: binance, coinbase, ohlcv, quality, resample, vwap)",
        ],
    );
}

#[test]
fn a_config_without_pipelines_is_refused() {
    for config in ["", "[lake]\nurl = \"lake\"\n"] {
        check(config, &["pipelines: no pipeline is configured"]);
    }
}

#[test]
fn every_declared_plugin_file_is_checked_used_or_not() {
    check(
        &format!("{PIPELINE}\n[plugins.unused]\nfile = \"plugins/unused.wasm\"\n"),
        &[
            "plugins.unused.file (line 8): no plugin file at",
            "unused.wasm",
        ],
    );
}

#[test]
fn a_missing_file_is_named() {
    let output = run_cryptolake(&["sync", "--config", "/nonexistent/agent.toml"]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/agent.toml"));
}

#[test]
fn an_unknown_pipeline_name_is_a_usage_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, PIPELINE).expect("write");
    let output = run_cryptolake(&[
        "sync",
        "--config",
        path.to_str().unwrap(),
        "--pipeline",
        "q",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no pipeline named `q` (pipelines: p)")
    );
}

/// A valid base: a local lake and [`PIPELINE`].
fn base() -> String {
    format!("\n[lake]\nurl = \"lake\"\n{PIPELINE}")
}

/// Thirty-odd malformed configurations, each with what its error must say
/// (the field path, the line where it can be told, and the reason).
/// `validate`, `sync` and `run` must all refuse each one with exit code 2.
#[test]
fn malformed_configs_each_give_a_precise_error_and_exit_2() {
    let base = base();
    let with_pipeline = |extra: &str| format!("{base}{extra}\n");
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("[lake\nurl = 1".into(), vec!["line 1"]),
        (format!("colour = 1\n{base}"), vec!["colour"]),
        (
            "[lake]\nurl = 5\n".into(),
            vec!["lake.url (line 2)", "string"],
        ),
        (
            "[lake]\nurl = \"ftp://x/y\"\n".into(),
            vec!["lake.url", "use a directory, file://"],
        ),
        (
            format!("[lake]\nurl = \"lake\"\nparquet = {{ zstd_level = 0 }}\n{PIPELINE}"),
            vec!["lake.parquet.zstd_level (line 3)", "1 to 22, or -1 to -7"],
        ),
        (
            format!(
                "[lake]\nurl = \"lake\"\nparquet = {{ float_encoding = \"gorilla\" }}\n{PIPELINE}"
            ),
            vec!["lake.parquet.float_encoding", "byte_stream_split"],
        ),
        (
            "[lake]\nurl = \"s3://Bad_Bucket/x\"\n".into(),
            vec!["not a valid S3 bucket name"],
        ),
        (
            "[lake]\nurl = \"lake\"\nendpoint = \"http://127.0.0.1:1\"\n".into(),
            vec!["lake.endpoint (line 3)", "s3://"],
        ),
        (
            "[lake]\nurl = \"s3://bucket/x\"\nendpoint = \"nope\"\n".into(),
            vec!["lake.endpoint", "not an http(s) URL"],
        ),
        (
            format!("[runtime]\nshutdown_grace = \"soon\"\n{base}"),
            vec!["runtime.shutdown_grace (line 2)", "soon"],
        ),
        (
            format!("[runtime]\nreload_debounce = 5\n{base}"),
            vec!["runtime.reload_debounce (line 2)"],
        ),
        (
            format!("[runtime]\nwatch = \"yes\"\n{base}"),
            vec!["runtime.watch (line 2)", "bool"],
        ),
        (
            format!("{base}[plugins.x]\nfile = \"builtin:nope\"\n"),
            vec!["plugins.x.file", "no built-in plugin `nope`"],
        ),
        (
            format!("{base}[plugins.x]\nallowed_hosts = []\n"),
            vec!["plugins.x", "file"],
        ),
        (
            format!("{base}[plugins.x]\nfile = \"builtin:ohlcv\"\nsha256 = \"abc\"\n"),
            vec!["plugins.x.sha256", "64 hexadecimal"],
        ),
        (
            format!(
                "{base}[plugins.x]\nfile = \"builtin:ohlcv\"\nallowed_hosts = [\"http://x/\"]\n"
            ),
            vec!["plugins.x.allowed_hosts[0]"],
        ),
        (
            format!(
                "{base}[plugins.x]\nfile = \"builtin:ohlcv\"\nlimits = {{ memory = \"lots\" }}\n"
            ),
            vec!["plugins.x.limits.memory", "lots"],
        ),
        (
            format!(
                "{base}[plugins.x]\nfile = \"builtin:ohlcv\"\nlimits = {{ call_timeout = \"forever\" }}\n"
            ),
            vec!["plugins.x.limits.call_timeout", "forever"],
        ),
        (
            format!("{base}[plugins.\"Bad Name\"]\nfile = \"builtin:ohlcv\"\n"),
            vec!["plugins.Bad Name", "a-z"],
        ),
        (
            base.replace("name = \"p\"", "name = \"Bad Name\""),
            vec!["pipelines[0].name (line 6)", "Bad Name"],
        ),
        (
            format!("{base}{}", base.replace("[lake]\nurl = \"lake\"\n", "")),
            vec!["pipelines[1].name", "already named `p`"],
        ),
        (
            "[[pipelines]]\nname = \"p\"\ntable = \"ohlcv\"\n".into(),
            vec!["pipelines[0]", "source"],
        ),
        (
            base.replace("plugin = \"binance\"", "plugin = \"kraken\""),
            vec!["pipelines[0].source.plugin", "unknown plugin `kraken`"],
        ),
        (
            with_pipeline("concurrency = 0"),
            vec!["pipelines[0].concurrency (line 9)", "between 1 and 256"],
        ),
        (
            with_pipeline("attempts = 50"),
            vec!["pipelines[0].attempts (line 9)", "between 1 and 20"],
        ),
        (
            with_pipeline("window = { start = \"2024-13-01\" }"),
            vec!["pipelines[0].window.start (line 9)", "2024-13-01"],
        ),
        (
            with_pipeline("window = { start = \"2024-02-01\", end = \"2024-01-01\" }"),
            vec!["pipelines[0].window", "after"],
        ),
        (
            with_pipeline("transfer = \"teleport\""),
            vec!["pipelines[0].transfer", "teleport"],
        ),
        (
            with_pipeline("transfer = \"direct\""),
            vec!["pipelines[0].transfer (line 9)", "local directory"],
        ),
        (
            with_pipeline("rate_limit = { per_second = 0 }"),
            vec!["pipelines[0].rate_limit.per_second", "positive"],
        ),
        (
            with_pipeline("schedule = { every = \"1h\", cron = \"0 * * * *\" }"),
            vec!["pipelines[0].schedule (line 9)", "not both"],
        ),
        (
            with_pipeline("schedule = { cron = \"61 * * * *\" }"),
            vec!["pipelines[0].schedule.cron", "minute `61`"],
        ),
        (
            with_pipeline("schedule = {}"),
            vec!["pipelines[0].schedule", "`every`"],
        ),
        (
            with_pipeline("schedule = { every = \"0s\" }"),
            vec!["pipelines[0].schedule.every", "longer than zero"],
        ),
        (
            with_pipeline("source_endpoint = \"nope\""),
            vec!["pipelines[0].source_endpoint", "http(s)"],
        ),
        (
            base.replace("table = \"ohlcv\"", "transforms = [{ plugin = \"ohlcv\" }]"),
            vec!["pipelines[0].transforms", "table"],
        ),
        (
            base.replace("table = \"ohlcv\"", "raw = false"),
            vec!["pipelines[0].raw", "mirrors"],
        ),
        (
            base.replace("interval = \"1m\"", "interval = \"2m\""),
            vec![
                "pipeline `p`",
                "source.params",
                "interval: \"2m\" is not one of",
            ],
        ),
        (
            base.replace("interval = \"1m\"", "interval = \"1m\", colour = 1"),
            vec!["source.params", "colour: unknown parameter"],
        ),
        (
            base.replace("plugin = \"binance\"", "plugin = \"ohlcv\""),
            vec!["pipeline `p`", "not a source"],
        ),
        (
            format!("{base}transforms = [{{ plugin = \"resample\" }}]\n"),
            vec!["transforms[0].params", "to: required but missing"],
        ),
        (
            format!(
                "[plugins.x]\nfile = \"missing.wasm\"\n{}",
                base.replace("plugin = \"binance\"", "plugin = \"x\"")
            ),
            vec!["missing.wasm"],
        ),
    ];
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, (config, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("broken-{i}.toml"));
        std::fs::write(&path, config).expect("write");
        for verb in ["validate", "sync", "run"] {
            let output = run_cryptolake(&[verb, "--config", path.to_str().unwrap()]);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(2),
                "case {i}, {verb}:\n{config}\n{}",
                describe(&output)
            );
            assert!(
                stderr.contains(&format!("broken-{i}.toml")),
                "case {i}, {verb}: {stderr}"
            );
            for needle in expected {
                assert!(
                    stderr.contains(needle),
                    "case {i}, {verb}: expected `{needle}` in:\n{stderr}\nfor:\n{config}"
                );
            }
        }
    }
}

#[test]
fn the_example_configurations_are_valid() {
    for name in ["quickstart.toml", "agent.toml"] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/").to_owned() + name;
        let output = run_cryptolake(&["validate", "--config", &path]);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: {}",
            describe(&output)
        );
    }
}

#[test]
fn config_schema_is_generated_from_the_types() {
    let output = run_cryptolake(&["config", "schema"]);
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let schema: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let properties = &schema["properties"];
    for section in [
        "lake",
        "runtime",
        "plugins",
        "pipelines",
        "telemetry",
        "admin",
    ] {
        assert!(
            properties.get(section).is_some(),
            "no `{section}` in {properties}"
        );
    }
    // Field docs become descriptions, with their examples.
    let text = serde_json::to_string(&schema).expect("serialise");
    assert!(
        text.contains("cron = \\\"15 1 * * *\\\""),
        "schedule docs are in the schema"
    );
    // Unknown fields are rejected, and the schema says so.
    assert_eq!(
        schema["$defs"]["PipelineConfig"]["additionalProperties"],
        false
    );
}
