//! Compiles guest plugin crates to `wasm32-wasip2` components from a build script.
//!
//! Owns: invoking a nested `cargo build` for the guest packages, in a target
//! directory of their own (so it never contends for the outer build's lock),
//! with the outer build's flags and wrappers removed, and reporting where each
//! component landed. It must not embed, load or validate the components: that
//! is the host's job.
//!
//! The approach follows wasmtime's `test-programs` build script.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The target triple guests are compiled for.
pub const GUEST_TARGET: &str = "wasm32-wasip2";

/// The cargo profile used for guests (defined in the workspace `Cargo.toml`).
pub const GUEST_PROFILE: &str = "plugin";

/// A guest package to compile.
#[derive(Debug, Clone, Copy)]
pub struct Guest<'a> {
    /// The cargo package name, e.g. `cryptolake-plugin-binance`.
    pub package: &'a str,
    /// The package directory relative to the workspace root, e.g. `plugins/binance`.
    pub dir: &'a str,
}

/// A compiled guest component.
#[derive(Debug, Clone)]
pub struct Built {
    /// The cargo package name.
    pub package: String,
    /// Absolute path of the `.wasm` component.
    pub wasm: PathBuf,
}

/// Compiles `guests` for `wasm32-wasip2` and returns where each component is.
///
/// Emits `cargo:rerun-if-changed` lines for the guests' sources, the WIT and
/// the lock file. Panics (the build-script way of failing) with an actionable
/// message when the target is missing or the nested build fails.
pub fn build_guests(workspace_root: &Path, guests: &[Guest<'_>]) -> Vec<Built> {
    for dir in [
        "wit",
        "plugins/sdk",
        "Cargo.lock",
        "Cargo.toml",
        ".cargo/config.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace_root.join(dir).display()
        );
    }
    for guest in guests {
        println!(
            "cargo:rerun-if-changed={}",
            workspace_root.join(guest.dir).display()
        );
    }
    ensure_target_installed();

    let target_dir = workspace_root.join("target").join("plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace_root)
        .arg("build")
        .arg("--profile")
        .arg(GUEST_PROFILE)
        .arg("--target")
        .arg(GUEST_TARGET)
        .arg("--target-dir")
        .arg(&target_dir);
    for guest in guests {
        command.arg("--package").arg(guest.package);
    }
    // The outer build's flags, wrappers and target settings are for the host;
    // a guest build that inherited them would fail or be instrumented wrongly.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_LLVM_COV",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(var);
    }
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("could not run cargo to build the guest plugins: {error}"));
    assert!(
        status.success(),
        "building the guest plugins for {GUEST_TARGET} failed ({status}); \
         run `cargo build --profile {GUEST_PROFILE} --target {GUEST_TARGET} -p <plugin>` to see why"
    );

    let out_dir = target_dir.join(GUEST_TARGET).join(GUEST_PROFILE);
    guests
        .iter()
        .map(|guest| {
            let wasm = out_dir.join(format!("{}.wasm", guest.package.replace('-', "_")));
            assert!(
                wasm.is_file(),
                "the guest build succeeded but {} is missing; is `{}` a cdylib?",
                wasm.display(),
                guest.package
            );
            Built {
                package: guest.package.to_owned(),
                wasm,
            }
        })
        .collect()
}

/// Makes sure the target's standard library is installed. rustup does not
/// add `rust-toolchain.toml` targets by itself when `RUSTUP_AUTO_INSTALL=0`,
/// so this adds it (for the toolchain cargo runs under) and fails the build
/// with the command that fixes it when that is impossible.
fn ensure_target_installed() {
    if target_installed() {
        return;
    }
    println!(
        "cargo:warning=adding the {GUEST_TARGET} target with `rustup target add {GUEST_TARGET}`"
    );
    let added = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        added && target_installed(),
        "the Rust standard library for {GUEST_TARGET} is not installed, so the plugins cannot be built.\n\
         Fix: rustup target add {GUEST_TARGET}"
    );
}

fn target_installed() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", GUEST_TARGET])
        .output();
    match output {
        Ok(output) if output.status.success() => {
            let libdir = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            // The directory must hold the standard library, not merely exist.
            std::fs::read_dir(&libdir)
                .map(|entries| {
                    entries
                        .flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
                })
                .unwrap_or(false)
        }
        _ => false,
    }
}
