//! Loading plugins: invalid files and wrong worlds give a clear error naming
//! the file and affect nothing else; pins are enforced; the compile cache
//! serves a second engine without recompiling.

use cryptolake::config::{Limits, PluginLocation};
use cryptolake::plugin::{CacheOutcome, Runtime};
use cryptolake::wit::PluginKind;

use crate::support::{describe, run_cryptolake, runtime};

fn load_file(path: &std::path::Path) -> Result<std::sync::Arc<cryptolake::plugin::Plugin>, String> {
    runtime::runtime()
        .load(&runtime::spec(
            "candidate",
            PluginLocation::File(path.to_owned()),
            &[],
            Limits::default(),
        ))
        .map_err(|e| e.to_string())
}

#[test]
fn a_file_that_is_not_a_component_is_refused_with_its_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"definitely not wasm").expect("write");
    let error = load_file(&garbage).expect_err("refused");
    assert!(
        error.contains("garbage.wasm") && error.contains("not a valid WebAssembly component"),
        "{error}"
    );

    // A core module (not a component) is refused too.
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let error = load_file(&core).expect_err("refused");
    assert!(error.contains("core.wasm"), "{error}");

    let missing = load_file(&dir.path().join("missing.wasm")).expect_err("refused");
    assert!(
        missing.contains("missing.wasm") && missing.contains("cannot read"),
        "{missing}"
    );
}

#[test]
fn a_component_of_the_wrong_world_is_refused_where_it_is_used() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        r#"
[[pipelines]]
name = "p"
table = "t"
source = { plugin = "ohlcv" }
"#,
    )
    .expect("config");
    let output = run_cryptolake(&["validate", "--config", config.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("plugin `ohlcv` is a transform, not a source"),
        "{stderr}"
    );
}

#[test]
fn a_pinned_sha256_refuses_other_bytes() {
    let mut spec = runtime::spec(
        "pinned",
        PluginLocation::Builtin("ohlcv".into()),
        &[],
        Limits::default(),
    );
    spec.sha256 = Some("0".repeat(64));
    let error = runtime::runtime()
        .load(&spec)
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("builtin:ohlcv") && error.contains("pins 0000"),
        "{error}"
    );
}

#[test]
fn the_compile_cache_serves_a_new_engine_without_recompiling() {
    let cache = tempfile::tempdir().expect("tempdir");
    let spec = runtime::spec(
        "binance",
        PluginLocation::Builtin("binance".into()),
        &[],
        Limits::default(),
    );
    let new_runtime = || {
        Runtime::new(
            Some(cache.path().to_owned()),
            cryptolake::transfer::http_client().expect("client"),
            runtime::tokio().handle().clone(),
        )
        .expect("runtime")
    };
    let first = new_runtime().load(&spec).expect("load");
    assert_eq!(first.cache_outcome(), CacheOutcome::Miss);
    assert_eq!(first.identity().kind, PluginKind::Source);
    let entries = std::fs::read_dir(cache.path()).expect("cache dir").count();
    assert_eq!(entries, 1);
    let second = new_runtime().load(&spec).expect("load");
    assert_eq!(second.cache_outcome(), CacheOutcome::Hit);
    assert_eq!(second.identity(), first.identity());
}

#[test]
fn plugin_inspect_prints_identity_and_schema() {
    let output = run_cryptolake(&["plugin", "inspect", "builtin:binance", "--output", "json"]);
    assert!(output.status.success(), "{}", describe(&output));
    let info: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(info["plugin_name"], "binance");
    assert_eq!(info["kind"], "source");
    assert_eq!(info["wit_version"], "0.1.0");
    assert_eq!(info["params_schema"]["required"][0], "symbols");

    let hostile = env!("CRYPTOLAKE_TEST_GUEST_HOSTILE");
    let output = run_cryptolake(&["plugin", "inspect", hostile]);
    assert!(output.status.success(), "{}", describe(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("name:        hostile") && text.contains("kind:        source"),
        "{text}"
    );

    let output = run_cryptolake(&["plugin", "inspect", "/nonexistent/x.wasm"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/x.wasm"));
}
