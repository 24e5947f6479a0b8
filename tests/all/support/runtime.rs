//! One plugin runtime (one wasmtime engine) shared by the in-process tests of
//! this binary, with a Tokio runtime to drive the HTTP lent to plugins.

use std::sync::{Arc, OnceLock};

use cryptolake::config::HostPattern;
use cryptolake::config::{Limits, PluginLocation, PluginSpec};
use cryptolake::plugin::{Plugin, Runtime};

struct Shared {
    tokio: tokio::runtime::Runtime,
    runtime: Runtime,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio");
        let http = cryptolake::transfer::http_client().expect("http client");
        let runtime = Runtime::new(
            Some(super::compile_cache_dir()),
            http,
            tokio.handle().clone(),
        )
        .expect("plugin runtime");
        Shared { tokio, runtime }
    })
}

/// The shared plugin runtime.
pub fn runtime() -> &'static Runtime {
    &shared().runtime
}

/// The shared Tokio runtime.
pub fn tokio() -> &'static tokio::runtime::Runtime {
    &shared().tokio
}

/// A plugin spec for `location` with `allowed_hosts` and `limits`.
pub fn spec(
    name: &str,
    location: PluginLocation,
    allowed_hosts: &[&str],
    limits: Limits,
) -> PluginSpec {
    PluginSpec {
        name: name.to_owned(),
        location,
        sha256: None,
        allowed_hosts: allowed_hosts
            .iter()
            .map(|h| HostPattern::parse(h).expect("host pattern"))
            .collect(),
        limits,
    }
}

/// Loads the built-in plugin `name` with `allowed_hosts`.
pub fn builtin(name: &str, allowed_hosts: &[&str]) -> Arc<Plugin> {
    runtime()
        .load(&spec(
            name,
            PluginLocation::Builtin(name.to_owned()),
            allowed_hosts,
            Limits::default(),
        ))
        .expect("built-in plugin loads")
}
