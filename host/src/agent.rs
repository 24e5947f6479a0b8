//! Assembly: from a resolved plan to a lake, a plugin runtime and runnable
//! pipelines.
//!
//! Owns: creating the shared HTTP client and plugin runtime, loading each
//! plugin at most once, and pairing pipelines with their loaded plugins. A
//! plugin that fails to load fails only the pipelines that use it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::{LakeLocation, PipelineSpec, Plan};
use crate::lake::Lake;
use crate::pipeline::{Configured, PipelineRun};
use crate::plugin::{Plugin, PluginKind, PluginLoadError, Runtime};
use crate::transfer::s3::S3Client;

/// Opens the lake a plan names. An S3 lake is signed with the operator's
/// credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and
/// `AWS_SESSION_TOKEN`); there is no fallback to an instance metadata service.
pub fn open_lake(location: &LakeLocation, http: &reqwest::Client) -> anyhow::Result<Lake> {
    match location {
        LakeLocation::Local(root) => Ok(Lake::open_local(root)?),
        LakeLocation::S3 {
            bucket,
            prefix,
            endpoint,
            region,
            staging,
        } => {
            let credentials = crate::transfer::s3::credentials_from_env().ok_or_else(|| {
                anyhow::anyhow!(
                    "the lake is s3://{bucket}/{prefix}, but AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"
                )
            })?;
            let client = S3Client::new(http.clone(), endpoint.clone(), region.clone(), credentials);
            Ok(Lake::open_s3(client, bucket, prefix, staging))
        }
    }
}

/// The assembled agent.
pub struct Agent {
    plan: Plan,
    lake: Lake,
    http: reqwest::Client,
    runtime: Runtime,
    loaded: BTreeMap<String, Result<Arc<Plugin>, String>>,
}

impl Agent {
    /// Opens the lake and creates the plugin runtime. `tokio` drives HTTP.
    pub fn new(plan: Plan, tokio: tokio::runtime::Handle) -> anyhow::Result<Self> {
        let http = crate::transfer::http_client()?;
        let lake = open_lake(&plan.lake, &http)?;
        let runtime = Runtime::new(plan.cache_dir.clone(), http.clone(), tokio)?;
        Ok(Self {
            plan,
            lake,
            http,
            runtime,
            loaded: BTreeMap::new(),
        })
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
    pub fn plugin(&mut self, name: &str) -> Result<Arc<Plugin>, String> {
        if let Some(loaded) = self.loaded.get(name) {
            return loaded.clone();
        }
        let result = match self.plan.plugins.get(name) {
            Some(spec) => self
                .runtime
                .load(spec)
                .map_err(|e: PluginLoadError| e.to_string()),
            None => Err(format!("no plugin named `{name}`")),
        };
        if let Err(error) = &result {
            tracing::error!(plugin = name, error = %error, "Plugin failed to load.");
        }
        self.loaded.insert(name.to_owned(), result.clone());
        result
    }

    /// Pairs a pipeline with its loaded plugins, checking their kinds.
    pub fn pipeline(&mut self, spec: &PipelineSpec) -> Result<PipelineRun, String> {
        let source = self.plugin(&spec.source.plugin)?;
        if source.identity().kind != PluginKind::Source {
            return Err(format!(
                "pipeline `{}`: plugin `{}` is a {}, not a source",
                spec.name,
                spec.source.plugin,
                source.identity().kind
            ));
        }
        let mut transforms = Vec::new();
        for t in &spec.transforms {
            let plugin = self.plugin(&t.plugin)?;
            if plugin.identity().kind != PluginKind::Transform {
                return Err(format!(
                    "pipeline `{}`: plugin `{}` is a {}, not a transform",
                    spec.name,
                    t.plugin,
                    plugin.identity().kind
                ));
            }
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
        })
    }
}
