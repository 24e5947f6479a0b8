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
            "pipelines[0].window.start: `2024-02-30` is not a YYYY-MM-DD date",
            "plugins.x.file: no built-in plugin `nope`",
        ],
    );
}

#[test]
fn unknown_plugin_reference_lists_the_known_ones() {
    check(
        &PIPELINE.replace("plugin = \"binance\"", "plugin = \"binanse\""),
        &[
            "pipelines[0].source.plugin: unknown plugin `binanse` (known: binance, coinbase, ohlcv, quality, resample, vwap)",
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
