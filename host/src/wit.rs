//! The WIT contract's vocabulary, for every layer of the host.
//!
//! Owns: the one generation of host bindings for the WIT worlds (the
//! transform world reuses the source world's types and imported interfaces,
//! so both share one set of Rust types and one implementation of each host
//! capability), the nouns plugins and the host exchange ([`Artifact`],
//! [`Batch`], [`PartitionValues`], [`Window`], ...), and what a plugin is
//! ([`PluginKind`], [`PluginIdentity`]). The lake, the pipeline and telemetry
//! import their vocabulary from here rather than from the sandbox.
//!
//! It must not load, link or call plugins: that is [`crate::plugin`]'s.

/// Bindings of the `source-plugin` world.
#[allow(missing_docs, clippy::all)]
pub mod source {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "source-plugin",
    });
}

/// Bindings of the `transform-plugin` world.
#[allow(missing_docs, clippy::all)]
pub mod transform {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transform-plugin",
        with: {
            "cryptolake:plugin/types": super::source::cryptolake::plugin::types,
            "cryptolake:plugin/http": super::source::cryptolake::plugin::http,
            "cryptolake:plugin/log": super::source::cryptolake::plugin::log,
            "cryptolake:plugin/metrics": super::source::cryptolake::plugin::metrics,
            "cryptolake:plugin/clock": super::source::cryptolake::plugin::clock,
        },
    });
}

pub use source::cryptolake::plugin::types;
pub use types::{
    Artifact, Batch, ChecksumSource, Column, ColumnValues, Compression, DictionaryUtf8,
    PartitionValues, Window,
};

/// The WIT package version this host implements.
pub const WIT_VERSION: &str = "0.1.0";

/// What a plugin is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// Exports `cryptolake:plugin/source`.
    Source,
    /// Exports `cryptolake:plugin/transform`.
    Transform,
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PluginKind::Source => "source",
            PluginKind::Transform => "transform",
        })
    }
}

/// A loaded plugin's identity, for lineage and `plugin inspect`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginIdentity {
    /// The name the configuration gives it.
    pub name: String,
    /// The name the plugin gives itself.
    pub plugin_name: String,
    /// The plugin's version.
    pub version: String,
    /// One-sentence description.
    pub description: String,
    /// Source or transform.
    #[serde(serialize_with = "serialize_display")]
    pub kind: PluginKind,
    /// WIT package version it was built against, from its export names.
    pub wit_version: String,
    /// SHA-256 of the `.wasm` bytes.
    pub sha256: String,
    /// JSON Schema of its params.
    pub params_schema: String,
}

fn serialize_display<S: serde::Serializer>(
    value: &PluginKind,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}
