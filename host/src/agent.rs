//! Assembly: from a resolved plan to a lake, a plugin runtime and runnable
//! pipelines.
//!
//! Owns: creating the shared HTTP client and plugin runtime, loading each
//! plugin at most once, and pairing pipelines with their loaded plugins. A
//! plugin that fails to load fails only the pipelines that use it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{LakeLocation, PipelineSpec, Plan, PluginSpec};
use crate::lake::Lake;
use crate::pipeline::{Configured, Leases, PipelineRun, StopSignal};
use crate::plugin::{Plugin, PluginHandle, PluginLoadError, Runtime};
use crate::wit::PluginKind;

/// Opens the lake a plan names. An object store lake is opened with the
/// credentials the platform gives (see `storage`); nothing is requested yet.
pub fn open_lake(location: &LakeLocation, http: &reqwest::Client) -> anyhow::Result<Lake> {
    match location {
        LakeLocation::Local(root) => Ok(Lake::open_local(root)?),
        LakeLocation::Object(object) => {
            let storage = crate::storage::open(object, http)?;
            Ok(Lake::open_object(
                storage,
                object.url(),
                &object.prefix,
                &object.staging,
            ))
        }
    }
}

/// Checks, before any work, that the lake can be written: a probe object is
/// created twice (the second must be refused) and deleted, three requests.
/// An unreachable store, a missing bucket or refused credentials is an error
/// naming `lake.url`; a store that ignores conditional writes is logged as a
/// warning, since agents sharing it could overwrite each other.
pub async fn check_lake(lake: &Lake) -> anyhow::Result<Option<crate::storage::Preconditions>> {
    use crate::storage::Preconditions;
    let probed = lake.probe_conditional_writes().await.map_err(|e| {
        let credentials = lake
            .credential_source()
            .map(|source| format!(" with credentials from {source}"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "lake.url: cannot write to the lake {}{credentials}: {e}",
            lake.location()
        )
    })?;
    match probed {
        Some(Preconditions::Ignored) => tracing::warn!(
            lake = %lake.location(),
            "The lake's store accepts a second create of one object (it ignores If-None-Match): two agents on this lake could overwrite each other's work. Run one agent per lake, or use a store with conditional writes."
        ),
        Some(Preconditions::Disabled) => tracing::warn!(
            lake = %lake.location(),
            "Conditional writes are off (lake.conditional_writes = false): two agents on this lake could overwrite each other's work."
        ),
        Some(Preconditions::Honoured) | None => {}
    }
    Ok(probed)
}

/// [`check_lake`], then the staging files of agents that are no longer
/// running (killed ones leave theirs) are removed: what `sync` and `run`
/// do before any work.
pub async fn prepare_lake(lake: &Lake) -> anyhow::Result<Option<crate::storage::Preconditions>> {
    let probed = check_lake(lake).await?;
    lake.clean_staging()
        .map_err(|e| anyhow::anyhow!("lake.staging_dir: {e}"))?;
    Ok(probed)
}

/// The assembled agent.
pub struct Agent {
    plan: Plan,
    lake: Lake,
    http: reqwest::Client,
    runtime: Runtime,
    loaded: BTreeMap<String, Result<PluginHandle, String>>,
    stop: StopSignal,
    leases: Option<Arc<Leases>>,
}

/// A loaded, checked plugin version ready to replace the running one.
pub struct PreparedSwap {
    handle: PluginHandle,
    new: Arc<Plugin>,
}

impl PreparedSwap {
    /// The version that will serve.
    pub fn identity(&self) -> &crate::wit::PluginIdentity {
        self.new.identity()
    }

    /// Makes the new version serve new work; work already started finishes
    /// on the old one. `changed_at` (the file's modification time) starts
    /// the swap-latency measurement. Returns the replaced identity.
    pub fn apply(self, changed_at: Option<std::time::SystemTime>) -> crate::wit::PluginIdentity {
        if let Some(at) = changed_at {
            self.new.measure_swap_from(at);
        }
        self.handle.replace(self.new).identity().clone()
    }
}

impl Agent {
    /// Opens the lake and creates the plugin runtime. `tokio` drives HTTP.
    pub fn new(plan: Plan, tokio: tokio::runtime::Handle) -> anyhow::Result<Self> {
        let http = crate::transfer::http_client()?;
        let lake = open_lake(&plan.lake, &http)?.with_parquet(plan.parquet);
        let runtime = Runtime::new(plan.cache_dir.clone(), http.clone(), tokio)?;
        Ok(Self {
            plan,
            lake,
            http,
            runtime,
            loaded: BTreeMap::new(),
            stop: StopSignal::default(),
            leases: None,
        })
    }

    /// Makes every pipeline run built from now on share its work with
    /// other replicas through `leases`.
    pub fn share_work(&mut self, leases: Arc<Leases>) {
        self.leases = Some(leases);
    }

    /// The versions of the plugins loaded so far, serving now.
    pub fn plugin_identities(&self) -> Vec<crate::wit::PluginIdentity> {
        self.loaded
            .values()
            .filter_map(|loaded| loaded.as_ref().ok())
            .map(|handle| handle.current().identity().clone())
            .collect()
    }

    /// The signal every pipeline run of this agent obeys when stopping.
    pub fn stop_signal(&self) -> &StopSignal {
        &self.stop
    }

    /// Replaces the plan (after a configuration reload). The lake and the
    /// runtime stay; plugins are swapped by [`Agent::swap_plugin`].
    pub fn set_plan(&mut self, plan: Plan) {
        self.plan = plan;
    }

    /// Loads the plugin `spec` describes (new bytes, or new settings for the
    /// same name) and checks it can replace the running version: it loads,
    /// exports the right world, answers `info()`, and is of the same kind.
    /// Nothing changes until [`PreparedSwap::apply`]; on error the old version
    /// keeps serving. `Ok(None)`: nothing to swap (same bytes and settings,
    /// or the plugin is not in use yet and will load fresh when needed).
    pub fn prepare_swap(&mut self, spec: &PluginSpec) -> Result<Option<PreparedSwap>, String> {
        let Some(Ok(handle)) = self.loaded.get(&spec.name) else {
            self.loaded.remove(&spec.name);
            return Ok(None);
        };
        let handle = handle.clone();
        let new = self
            .runtime
            .load(spec)
            .map_err(|e: PluginLoadError| e.to_string())?;
        let old = handle.current();
        if new.identity().kind != old.identity().kind {
            return Err(format!(
                "plugin `{}`: the new version is a {}, but the running version is a {}",
                spec.name,
                new.identity().kind,
                old.identity().kind
            ));
        }
        if new.identity() == old.identity() && new.spec() == old.spec() {
            return Ok(None);
        }
        Ok(Some(PreparedSwap { handle, new }))
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The lake.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// The plugin runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The plugin named `name`, loading it on first use.
    pub fn plugin(&mut self, name: &str) -> Result<PluginHandle, String> {
        if let Some(loaded) = self.loaded.get(name) {
            return loaded.clone();
        }
        let result = match self.plan.plugins.get(name) {
            Some(spec) => self
                .runtime
                .load(spec)
                .map(PluginHandle::new)
                .map_err(|e: PluginLoadError| e.to_string()),
            None => Err(format!("no plugin named `{name}`")),
        };
        if let Err(error) = &result {
            tracing::error!(plugin = name, error = %error, "Plugin failed to load.");
        }
        self.loaded.insert(name.to_owned(), result.clone());
        result
    }

    /// Assembles every pipeline of `specs`, or names every one that cannot
    /// be (a plugin that does not load, is of the wrong kind, or refuses its
    /// params): all or nothing, as `validate`, `sync` and `run` need.
    pub fn pipelines(&mut self, specs: &[PipelineSpec]) -> Result<Vec<PipelineRun>, Vec<String>> {
        let mut runs = Vec::new();
        let mut problems = Vec::new();
        for spec in specs {
            match self.pipeline(spec) {
                Ok(run) => runs.push(run),
                Err(problem) => problems.push(problem),
            }
        }
        if problems.is_empty() {
            Ok(runs)
        } else {
            Err(problems)
        }
    }

    /// Pairs a pipeline with its loaded plugins, checking their kinds.
    pub fn pipeline(&mut self, spec: &PipelineSpec) -> Result<PipelineRun, String> {
        let source = self.plugin(&spec.source.plugin)?;
        let kind = source.current().identity().kind;
        if kind != PluginKind::Source {
            return Err(format!(
                "pipeline `{}`: plugin `{}` is a {kind}, not a source",
                spec.name, spec.source.plugin,
            ));
        }
        check_params(spec, "source", &spec.source.params_json, &source)?;
        let mut transforms = Vec::new();
        for (i, t) in spec.transforms.iter().enumerate() {
            let plugin = self.plugin(&t.plugin)?;
            let kind = plugin.current().identity().kind;
            if kind != PluginKind::Transform {
                return Err(format!(
                    "pipeline `{}`: plugin `{}` is a {kind}, not a transform",
                    spec.name, t.plugin,
                ));
            }
            check_params(spec, &format!("transforms[{i}]"), &t.params_json, &plugin)?;
            transforms.push(Configured {
                plugin,
                params: t.params_json.clone(),
            });
        }
        Ok(PipelineRun {
            spec: spec.clone(),
            source: Configured {
                plugin: source,
                params: spec.source.params_json.clone(),
            },
            transforms,
            lake: self.lake.clone(),
            http: self.http.clone(),
            rate: spec.rate_limit.map(|limit| {
                Arc::new(crate::transfer::rate::RateLimiter::new(
                    limit.per_second,
                    limit.burst,
                ))
            }),
            stop: self.stop.clone(),
            retry_quarantined: false,
            shard: None,
            leases: self.leases.clone(),
            progress: None,
        })
    }
}

/// Checks params against the JSON Schema the plugin publishes, naming every
/// problem with the pipeline, the plugin and the parameter's path.
fn check_params(
    spec: &PipelineSpec,
    role: &str,
    params_json: &str,
    plugin: &PluginHandle,
) -> Result<(), String> {
    let plugin = plugin.current();
    let identity = plugin.identity();
    let (Ok(schema), Ok(params)) = (
        serde_json::from_str::<serde_json::Value>(&identity.params_schema),
        serde_json::from_str::<serde_json::Value>(params_json),
    ) else {
        return Ok(());
    };
    let problems = crate::plugin::params::check(&schema, &params).map_err(|error| {
        format!(
            "pipeline `{}`: plugin `{}` {}: {error}",
            spec.name, identity.name, identity.version
        )
    })?;
    if problems.is_empty() {
        return Ok(());
    }
    Err(format!(
        "pipeline `{}`: {role}.params for plugin `{}` {}: {}",
        spec.name,
        identity.name,
        identity.version,
        problems.join("; ")
    ))
}
