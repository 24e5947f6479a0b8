//! Installs the external tools the tests need when they are missing, so
//! `cargo test --workspace` works on a fresh machine (`.ci/run` installs the
//! same pinned versions up front).
//!
//! - Python: `tests/requirements.txt` (moto, DuckDB, pyarrow), with pip.
//! - `s3s-fs` (an S3 server that checks every signature), with
//!   `cargo install` into `target/tools`.
//! - Azurite (the Azure Storage emulator), with `npm install` into
//!   `target/tools/node`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The s3s-fs version the tests run.
pub const S3S_FS_VERSION: &str = "0.14.1";
/// The Azurite version the tests run.
pub const AZURITE_VERSION: &str = "3.37.0";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Makes sure `moto_server` and the Python packages the tests use (DuckDB,
/// pyarrow, PyYAML, prometheus_client) are available.
pub fn ensure_python_tools() {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        let present = succeeds(Command::new("moto_server").arg("--help"))
            && succeeds(
                Command::new("python3")
                    .args(["-c", "import duckdb, pyarrow, yaml, prometheus_client"]),
            );
        if !present {
            let requirements = workspace().join("tests").join("requirements.txt");
            let status = Command::new("python3")
                .args(["-m", "pip", "install", "--quiet", "-r"])
                .arg(&requirements)
                .status()
                .expect("python3 runs");
            assert!(
                status.success(),
                "pip install -r {} failed",
                requirements.display()
            );
        }
    });
}

/// The path of an `s3s-fs` binary, installing it into `target/tools` first
/// when missing.
pub fn s3s_fs() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let root = workspace().join("target").join("tools");
        let binary = root.join("bin").join("s3s-fs");
        if !binary.is_file() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["install", "--locked", "--features", "binary", "--root"])
                .arg(&root)
                .arg(format!("s3s-fs@{S3S_FS_VERSION}"))
                .env_remove("CARGO_TARGET_DIR")
                .status()
                .expect("cargo runs");
            assert!(
                status.success(),
                "cargo install s3s-fs@{S3S_FS_VERSION} failed"
            );
        }
        binary
    })
    .clone()
}

/// The path of Azurite's `azurite-blob`, installing Azurite into
/// `target/tools/node` first when missing.
pub fn azurite_blob() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let prefix = workspace().join("target").join("tools").join("node");
        let binary = prefix
            .join("node_modules")
            .join(".bin")
            .join("azurite-blob");
        if !binary.is_file() {
            let status = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg(format!("azurite@{AZURITE_VERSION}"))
                .status()
                .expect("npm runs");
            assert!(
                status.success(),
                "npm install azurite@{AZURITE_VERSION} failed"
            );
        }
        binary
    })
    .clone()
}
