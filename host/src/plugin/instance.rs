//! A loaded plugin: its pre-instantiated handle and its pool of instances.
//!
//! Owns: creating stores with the plugin's limits, checking instances out of
//! and back into the pool, and running one call under the deadline while
//! classifying failures (timeout, memory limit, trap) and poisoning the
//! instance on any of them.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::CacheOutcome;
use super::capabilities::{HostState, HttpLender};
use super::engine::ticks_for;
use super::error::{CallErrorKind, GuestError, PluginCallError};
use crate::config::{Limits, PluginSpec};
use crate::telemetry::metrics;
use crate::wit::{PluginIdentity, PluginKind};
use crate::wit::{source, transform};

/// What a raw call into a guest returns: a trap, or the guest's own result.
pub(super) type GuestResult<R> = wasmtime::Result<Result<R, crate::wit::types::PluginError>>;

/// Idle instances kept per plugin; more are dropped when checked in.
const MAX_IDLE: usize = 16;
/// Captured stderr above which an instance is recycled.
const STDERR_RECYCLE_BYTES: usize = 8 << 10;

/// What loading learned about a component before instantiating it.
pub(super) struct Compiled {
    /// File path or `builtin:<name>`, for errors.
    pub origin: String,
    /// Source or transform.
    pub kind: PluginKind,
    /// WIT version from its export names.
    pub wit_version: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// Whether the compile cache served it.
    pub cache_outcome: CacheOutcome,
}

pub(super) enum Pre {
    Source(source::SourcePluginPre<HostState>),
    Transform(transform::TransformPluginPre<HostState>),
}

pub(super) enum Bindings {
    Source(source::SourcePlugin),
    Transform(transform::TransformPlugin),
}

/// One live instance with its store.
pub(super) struct Instance {
    pub(super) store: Store<HostState>,
    pub(super) bindings: Bindings,
    calls: u64,
}

/// A loaded plugin version. Cheap to share; calls may run concurrently, each
/// on its own instance.
pub struct Plugin {
    identity: PluginIdentity,
    pre: Pre,
    http: HttpLender,
    limits: Limits,
    cache_outcome: CacheOutcome,
    idle: Mutex<Vec<Instance>>,
    spec: PluginSpec,
    /// After a hot swap: when the replaced file changed, until the first
    /// call measures the swap latency.
    swapped_since: Mutex<Option<std::time::SystemTime>>,
}

impl Plugin {
    pub(super) fn new(
        spec: &PluginSpec,
        compiled: Compiled,
        pre: InstancePre<HostState>,
        http: HttpLender,
    ) -> Result<Self, String> {
        let Compiled {
            origin,
            kind,
            wit_version,
            sha256,
            cache_outcome,
        } = compiled;
        let exports_error = |e: wasmtime::Error| {
            format!("does not export the {kind} world this host expects: {e:#}")
        };
        let pre = match kind {
            PluginKind::Source => {
                Pre::Source(source::SourcePluginPre::new(pre).map_err(exports_error)?)
            }
            PluginKind::Transform => {
                Pre::Transform(transform::TransformPluginPre::new(pre).map_err(exports_error)?)
            }
        };
        let mut plugin = Self {
            identity: PluginIdentity {
                name: spec.name.clone(),
                plugin_name: String::new(),
                version: String::new(),
                description: String::new(),
                kind,
                wit_version,
                sha256,
                params_schema: String::new(),
            },
            pre,
            http,
            limits: spec.limits.clone(),
            cache_outcome,
            idle: Mutex::new(Vec::new()),
            spec: spec.clone(),
            swapped_since: Mutex::new(None),
        };
        // A plugin that cannot answer `info()` is rejected at load time, not
        // at its first real call.
        let info = plugin
            .with_instance("info", |store, bindings| match bindings {
                Bindings::Source(b) => b.cryptolake_plugin_source().call_info(store).map(Ok),
                Bindings::Transform(b) => b.cryptolake_plugin_transform().call_info(store).map(Ok),
            })
            .map_err(|e| format!("{origin}: {e}"))?;
        if serde_json::from_str::<serde_json::Value>(&info.params_schema).is_err() {
            return Err("its info() params-schema is not valid JSON".to_owned());
        }
        plugin.identity.plugin_name = info.name;
        plugin.identity.version = info.version;
        plugin.identity.description = info.description;
        plugin.identity.params_schema = info.params_schema;
        Ok(plugin)
    }

    /// Who this plugin is.
    pub fn identity(&self) -> &PluginIdentity {
        &self.identity
    }

    /// Marks this version as swapped in for a file changed at `since`; its
    /// first call records the swap latency.
    pub fn measure_swap_from(&self, since: std::time::SystemTime) {
        if let Ok(mut slot) = self.swapped_since.lock() {
            *slot = Some(since);
        }
    }

    fn note_first_call_after_swap(&self) {
        let since = self.swapped_since.lock().ok().and_then(|mut s| s.take());
        if let Some(since) = since {
            let latency = since.elapsed().unwrap_or_default();
            metrics::plugin_swap_latency(&self.identity.name, latency);
            tracing::info!(
                plugin = %self.identity.name,
                version = %self.identity.version,
                sha256 = %self.identity.sha256,
                swap_latency_ms = latency.as_secs_f64() * 1000.0,
                "The new plugin version served its first call."
            );
        }
    }

    /// The configuration it was loaded with.
    pub fn spec(&self) -> &PluginSpec {
        &self.spec
    }

    /// Its configured name.
    pub fn name(&self) -> &str {
        &self.identity.name
    }

    /// Whether its native code came from the compile cache.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache_outcome
    }

    /// Its limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub(super) fn http(&self) -> &HttpLender {
        &self.http
    }

    pub(super) fn error(&self, call: &'static str, kind: CallErrorKind) -> PluginCallError {
        PluginCallError {
            plugin: self.identity.name.clone(),
            call,
            kind,
        }
    }

    /// Takes an idle instance or creates one.
    pub(super) fn checkout(&self, call: &'static str) -> Result<Instance, PluginCallError> {
        if let Some(instance) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(instance);
        }
        let plugin: Arc<str> = Arc::from(self.identity.name.as_str());
        let mut store = Store::new(
            self.pre_engine(),
            HostState::new(plugin, self.http.clone(), self.limits.memory_bytes),
        );
        store.limiter(|state| &mut state.limits);
        self.arm_deadline(&mut store);
        let instantiated = match &self.pre {
            Pre::Source(pre) => pre.instantiate(&mut store).map(Bindings::Source),
            Pre::Transform(pre) => pre.instantiate(&mut store).map(Bindings::Transform),
        };
        metrics::plugin_instantiated(&self.identity.name);
        match instantiated {
            Ok(bindings) => Ok(Instance {
                store,
                bindings,
                calls: 0,
            }),
            Err(error) => Err(self.error(
                call,
                self.classify(&store, &error, CallErrorKind::Instantiate),
            )),
        }
    }

    /// Starts the call's clock: the epoch deadline interrupts guest code, the
    /// stored deadline bounds the host calls (HTTP) it makes.
    fn arm_deadline(&self, store: &mut Store<HostState>) {
        store.set_epoch_deadline(ticks_for(self.limits.call_timeout));
        store.data_mut().deadline = Instant::now() + self.limits.call_timeout;
    }

    fn pre_engine(&self) -> &wasmtime::Engine {
        match &self.pre {
            Pre::Source(pre) => pre.engine(),
            Pre::Transform(pre) => pre.engine(),
        }
    }

    /// Returns a healthy instance to the pool, unless it is due for recycling.
    pub(super) fn checkin(&self, instance: Instance) {
        // A guest that writes to stderr would get write errors (and a panic,
        // from `eprintln!`) once the capture buffer is full: recycle first.
        let stderr_full = instance.store.data().stderr_len() > STDERR_RECYCLE_BYTES;
        if instance.calls >= self.limits.recycle_after_calls || stderr_full {
            metrics::plugin_recycled(&self.identity.name);
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE
        {
            idle.push(instance);
        }
    }

    /// Runs one call on `instance` under the call's limits. On a trap or
    /// timeout the error is returned and the caller must drop the instance.
    pub(super) fn call<R>(
        &self,
        instance: &mut Instance,
        call: &'static str,
        f: impl FnOnce(&mut Store<HostState>, &Bindings) -> GuestResult<R>,
    ) -> Result<R, PluginCallError> {
        instance.calls += 1;
        let _span = tracing::info_span!(
            "plugin.call",
            plugin = %self.identity.name,
            plugin.version = %self.identity.version,
            plugin.sha256 = %self.identity.sha256,
            call,
        )
        .entered();
        self.note_first_call_after_swap();
        self.arm_deadline(&mut instance.store);
        let started = Instant::now();
        let outcome = f(&mut instance.store, &instance.bindings);
        metrics::plugin_memory(
            &self.identity.name,
            instance.store.data().limits.peak_memory,
        );
        let label = match &outcome {
            Ok(Ok(_)) => metrics::CallOutcome::Ok,
            Ok(Err(_)) => metrics::CallOutcome::Error,
            Err(_) => metrics::CallOutcome::Fault,
        };
        metrics::plugin_call(&self.identity.name, call, started.elapsed(), label);
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(guest)) => Err(self.error(call, CallErrorKind::Guest(GuestError::from(guest)))),
            Err(error) => {
                let kind = self.classify(&instance.store, &error, CallErrorKind::Trap);
                tracing::warn!(
                    plugin = %self.identity.name,
                    call,
                    error = %kind,
                    "Plugin instance failed; it is dropped and the next call gets a fresh one."
                );
                Err(self.error(call, kind))
            }
        }
    }

    /// Checks out an instance, runs one call, and checks it back in when
    /// healthy. For stateless calls (`info`, `discover`).
    pub(super) fn with_instance<R>(
        &self,
        call: &'static str,
        f: impl FnOnce(&mut Store<HostState>, &Bindings) -> GuestResult<R>,
    ) -> Result<R, PluginCallError> {
        let mut instance = self.checkout(call)?;
        let result = self.call(&mut instance, call, f);
        if !result
            .as_ref()
            .is_err_and(PluginCallError::poisons_instance)
        {
            self.checkin(instance);
        }
        result
    }

    fn classify(
        &self,
        store: &Store<HostState>,
        error: &wasmtime::Error,
        otherwise: fn(String) -> CallErrorKind,
    ) -> CallErrorKind {
        if let Some(trap) = error.downcast_ref::<wasmtime::Trap>()
            && *trap == wasmtime::Trap::Interrupt
        {
            metrics::plugin_fault(&self.identity.name, metrics::FaultKind::Timeout);
            return CallErrorKind::Timeout(self.limits.call_timeout);
        }
        let chain = format!("{error:#}");
        if chain.contains("forcing trap when growing memory") {
            metrics::plugin_fault(&self.identity.name, metrics::FaultKind::MemoryLimit);
            return CallErrorKind::MemoryLimit(self.limits.memory_bytes);
        }
        metrics::plugin_fault(&self.identity.name, metrics::FaultKind::Trap);
        let stderr = store.data().stderr_text();
        let message = if stderr.is_empty() {
            error.root_cause().to_string()
        } else {
            format!("{} ({})", stderr, error.root_cause())
        };
        otherwise(message)
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("identity", &self.identity)
            .finish()
    }
}
