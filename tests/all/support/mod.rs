//! Test support: real servers and independent readers, started for real.
//!
//! - [`s3::Moto`]: a moto S3 server on loopback, serving a public-read
//!   `data.binance.vision` bucket anonymously, as the real archive does.
//! - [`archive`]: writes kline archives in Binance's exact format.
//! - [`duckdb`]: reads the lake back with DuckDB (an independent reader).
//! - [`runtime`]: one shared plugin runtime per test binary.

pub mod agent;
pub mod archive;
pub mod candles_server;
pub mod credentials;
pub mod duckdb;
pub mod emulators;
pub mod faulty_proxy;
pub mod fixture;
pub mod otlp;
pub mod runtime;
pub mod s3;
pub mod tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The partition of a Binance spot BTCUSDT kline file.
pub fn spot_btcusdt(interval: &str, period: &str) -> cryptolake::wit::PartitionValues {
    cryptolake::wit::PartitionValues {
        exchange: "binance".into(),
        market: "spot".into(),
        data_type: "klines".into(),
        symbol: "BTCUSDT".into(),
        interval: Some(interval.into()),
        period: period.into(),
    }
}

/// The `cryptolake` binary under test.
pub fn cryptolake() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cryptolake"));
    // Compiled plugins are cached across test runs (keyed by wasm hash and
    // engine), so the binary does not recompile them for every test.
    command.env("XDG_CACHE_HOME", compile_cache_dir());
    command.env("RUST_LOG", "info");
    command.env_remove("CRYPTOLAKE_CONFIG");
    isolate_from_cloud(&mut command);
    command
}

/// An address where nothing listens: every cloud metadata and credentials
/// endpoint of a test points here unless the test serves one itself.
pub const NOTHING_LISTENS: &str = "http://127.0.0.1:9";

/// Keeps a process off the real cloud: no credentials, profile, region or
/// endpoint from the machine's environment or home directory, and the
/// instance metadata service moved to loopback. A test adds back what it
/// means to give.
pub fn isolate_from_cloud(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("AWS_") || name.starts_with("AZURE_") || name.starts_with("GOOGLE_") {
            command.env_remove(name.as_ref());
        }
    }
    command
        .env("AWS_METADATA_ENDPOINT", NOTHING_LISTENS)
        .env("AWS_CONFIG_FILE", "/nonexistent/aws/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws/credentials",
        )
        .env("HOME", std::env::temp_dir());
}

/// Runs the binary with `args`, returning its output.
pub fn run_cryptolake(args: &[&str]) -> Output {
    cryptolake()
        .args(args)
        .output()
        .expect("the cryptolake binary runs")
}

/// Runs `cryptolake sync --output json` on `config` with `extra` arguments,
/// asserts the exit code, and returns the parsed report and the output.
pub fn sync_report(
    config: &Path,
    extra: &[&str],
    expected_code: i32,
) -> (serde_json::Value, Output) {
    sync_report_env(config, extra, expected_code, &[])
}

/// [`sync_report`] with extra environment variables.
pub fn sync_report_env(
    config: &Path,
    extra: &[&str],
    expected_code: i32,
    env: &[(&str, &str)],
) -> (serde_json::Value, Output) {
    let mut args = vec![
        "sync",
        "--config",
        config.to_str().expect("UTF-8 path"),
        "--output",
        "json",
    ];
    args.extend_from_slice(extra);
    let output = cryptolake()
        .args(&args)
        .envs(env.iter().copied())
        .output()
        .expect("the cryptolake binary runs");
    assert_eq!(
        output.status.code(),
        Some(expected_code),
        "{}",
        describe(&output)
    );
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("sync printed no JSON report ({e}): {}", describe(&output)));
    (report, output)
}

/// Writes `agent.toml` in `dir`: the lake (an inline TOML table), the shared
/// compile cache, the built-in Binance plugin allowed to reach
/// `allowed_host`, and `pipelines` (TOML `[[pipelines]]` blocks).
pub fn write_agent_config(dir: &Path, lake: &str, allowed_host: &str, pipelines: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    let text = format!(
        "lake = {lake}\nruntime = {{ cache_dir = \"{cache}\" }}\nadmin = {{ listen = \"127.0.0.1:0\" }}\n\n[plugins.binance]\nfile = \"builtin:binance\"\nallowed_hosts = [\"{allowed_host}\"]\n{pipelines}",
        cache = compile_cache_dir().display(),
    );
    std::fs::write(&path, text).expect("write agent.toml");
    path
}

/// A `[[pipelines]]` block named `name` whose source is the Binance plugin
/// listing and downloading from the archive bucket at `archive` (a URL
/// ending in the bucket), with `params` (TOML key/values) and `extra`
/// pipeline lines (table, window, transforms, …).
pub fn binance_pipeline(name: &str, archive: &str, params: &str, extra: &str) -> String {
    format!(
        "\n[[pipelines]]\nname = \"{name}\"\n{extra}\nsource = {{ plugin = \"binance\", params = {{ {params}, listing_url = \"{archive}\", download_url = \"{archive}\" }} }}\n"
    )
}

/// Every file under `dir`, at any depth (none when it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(next) = dirs.pop() {
        for entry in std::fs::read_dir(&next).into_iter().flatten().flatten() {
            if entry.path().is_dir() {
                dirs.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files
}

/// A compile cache shared by the tests of this workspace.
pub fn compile_cache_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("test-compile-cache")
}

/// stdout and stderr of an output, for assertion messages.
pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
