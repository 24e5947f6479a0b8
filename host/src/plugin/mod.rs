//! The plugin runtime: loading, sandboxing and calling WASM component plugins.
//!
//! Owns: one shared [`wasmtime::Engine`] with epoch interruption, the compile
//! cache, the linker with the host capabilities, each loaded plugin's
//! pre-instantiated handle and its pool of instances, and the limits around
//! every call (memory cap, epoch deadline, wall-clock timeout). A trap or a
//! timeout poisons the instance: it is dropped and the next call gets a fresh
//! one; instances are also recycled after a configured number of calls, since
//! linear memory never shrinks. Every output crossing back is validated.
//!
//! It must not do pipeline work (transfer, Parquet, manifests): callers get
//! typed artifacts and batches and decide what to do with them.

mod cache;
mod capabilities;
mod engine;
mod error;
mod instance;
pub mod params;
mod session;
mod validate;

use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, types::ComponentItem};

pub use cache::{CacheOutcome, CompileCache};
pub use capabilities::{HostState, HttpLender};
pub use error::{CallErrorKind, GuestError, PluginCallError, PluginLoadError};
use instance::Compiled;
pub use instance::Plugin;
pub use session::{Counters, DecoderSession, TransformSession};

use crate::config::PluginSpec;
use crate::wit;
use crate::wit::{PluginKind, WIT_VERSION};
use engine::TickingEngine;

/// The engine, linker, cache and HTTP client shared by all plugins.
pub struct Runtime {
    engine: TickingEngine,
    linker: Linker<HostState>,
    cache: CompileCache,
    http_client: reqwest::Client,
    tokio: tokio::runtime::Handle,
}

impl Runtime {
    /// Creates the runtime. `tokio` drives the HTTP lent to plugins; plugin
    /// calls themselves must run on blocking threads (`spawn_blocking`).
    pub fn new(
        cache_dir: Option<PathBuf>,
        http_client: reqwest::Client,
        tokio: tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        let engine = TickingEngine::new()?;
        let mut linker = Linker::new(engine.engine());
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
        wit::source::SourcePlugin::add_to_linker::<
            HostState,
            wasmtime::component::HasSelf<HostState>,
        >(&mut linker, |state| state)?;
        Ok(Self {
            engine,
            linker,
            cache: CompileCache::new(cache_dir),
            http_client,
            tokio,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &wasmtime::Engine {
        self.engine.engine()
    }

    /// The compile cache.
    pub fn cache(&self) -> &CompileCache {
        &self.cache
    }

    /// Loads the plugin described by `spec` (built-in or file).
    pub fn load(&self, spec: &PluginSpec) -> Result<Arc<Plugin>, PluginLoadError> {
        let origin = spec.location.to_string();
        let bytes = match &spec.location {
            crate::config::PluginLocation::Builtin(name) => crate::builtin::bytes(name)
                .ok_or_else(|| PluginLoadError::new(&origin, "no such built-in plugin"))?
                .to_vec(),
            crate::config::PluginLocation::File(path) => std::fs::read(path)
                .map_err(|e| PluginLoadError::new(&origin, format!("cannot read the file: {e}")))?,
        };
        self.load_bytes(spec, &origin, &bytes)
    }

    /// Loads a plugin from `bytes`; `origin` names it in errors.
    pub fn load_bytes(
        &self,
        spec: &PluginSpec,
        origin: &str,
        bytes: &[u8],
    ) -> Result<Arc<Plugin>, PluginLoadError> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(pinned) = &spec.sha256
            && *pinned != sha256
        {
            return Err(PluginLoadError::new(
                origin,
                format!("its sha256 is {sha256} but the configuration pins {pinned}"),
            ));
        }
        let (component, outcome) = self
            .cache
            .load(self.engine(), bytes, &sha256)
            .map_err(|e| {
                PluginLoadError::new(
                    origin,
                    format!(
                        "not a valid WebAssembly component: {}",
                        error::root_cause(&e)
                    ),
                )
            })?;
        let (kind, wit_version) = self
            .world_of(&component)
            .map_err(|m| PluginLoadError::new(origin, m))?;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| {
            PluginLoadError::new(
                origin,
                format!("imports something this host does not provide: {e:#}"),
            )
        })?;
        let http = HttpLender {
            client: self.http_client.clone(),
            runtime: self.tokio.clone(),
            allowed: spec.allowed_hosts.clone().into(),
            timeout: spec.limits.fetch_timeout,
            max_body: spec.limits.max_response_bytes,
        };
        let compiled = Compiled {
            origin: origin.to_owned(),
            kind,
            wit_version,
            sha256,
            cache_outcome: outcome,
        };
        let plugin =
            Plugin::new(spec, compiled, pre, http).map_err(|e| PluginLoadError::new(origin, e))?;
        tracing::info!(
            plugin = %spec.name,
            origin,
            kind = %kind,
            version = %plugin.identity().version,
            sha256 = %plugin.identity().sha256,
            compile_cache = ?outcome,
            "Loaded plugin."
        );
        Ok(Arc::new(plugin))
    }

    /// Finds which of our worlds a component exports, and its WIT version.
    fn world_of(&self, component: &Component) -> Result<(PluginKind, String), String> {
        let ty = component.component_type();
        let mut found = Vec::new();
        for (name, item) in ty.exports(self.engine()) {
            if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
                continue;
            }
            let Some(rest) = name.strip_prefix("cryptolake:plugin/") else {
                continue;
            };
            let (interface, version) = rest.split_once('@').unwrap_or((rest, ""));
            let kind = match interface {
                "source" => PluginKind::Source,
                "transform" => PluginKind::Transform,
                _ => continue,
            };
            found.push((kind, version.to_owned()));
        }
        match found.as_slice() {
            [(kind, version)] => {
                if !wit_compatible(version) {
                    return Err(format!(
                        "it was built against cryptolake:plugin@{version}, but this host supports {WIT_VERSION}"
                    ));
                }
                Ok((*kind, version.clone()))
            }
            [] => Err(
                "it exports neither cryptolake:plugin/source nor cryptolake:plugin/transform \
                 (is it built against this project's WIT?)"
                    .to_owned(),
            ),
            _ => Err("it exports more than one plugin interface".to_owned()),
        }
    }
}

/// Whether a guest's WIT version can be served by this host (same 0.x minor).
fn wit_compatible(version: &str) -> bool {
    let ours: Vec<&str> = WIT_VERSION.split('.').collect();
    let theirs: Vec<&str> = version.split('.').collect();
    theirs.len() == 3 && theirs[0] == ours[0] && theirs[1] == ours[1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wit_versions() {
        assert!(wit_compatible("0.1.0"));
        assert!(wit_compatible("0.1.7"));
        assert!(!wit_compatible("0.2.0"));
        assert!(!wit_compatible(""));
    }
}

/// A plugin whose version can be replaced while pipelines use it (hot
/// reload). Callers take [`PluginHandle::current`] once per unit of work, so
/// work already started finishes on the version it started with.
#[derive(Clone)]
pub struct PluginHandle(Arc<std::sync::RwLock<Arc<Plugin>>>);

impl PluginHandle {
    /// A handle serving `plugin`.
    pub fn new(plugin: Arc<Plugin>) -> Self {
        Self(Arc::new(std::sync::RwLock::new(plugin)))
    }

    /// The version serving new work now.
    pub fn current(&self) -> Arc<Plugin> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Makes `plugin` serve new work; returns the version it replaces.
    pub fn replace(&self, plugin: Arc<Plugin>) -> Arc<Plugin> {
        let mut guard = match self.0.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::replace(&mut *guard, plugin)
    }

    /// A handle fixed to the current version, unaffected by later swaps.
    pub fn pinned(&self) -> Self {
        Self::new(self.current())
    }
}

impl std::fmt::Debug for PluginHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.current();
        f.debug_struct("PluginHandle")
            .field("name", &current.name())
            .field("sha256", &current.identity().sha256)
            .finish()
    }
}
