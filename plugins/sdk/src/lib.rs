//! Guest SDK for cryptolake plugins.
//!
//! Owns: the Rust bindings of the `cryptolake:plugin@0.1.0` WIT package (one
//! place generates them, for both worlds), column builders that produce the
//! WIT's columnar batches, and the CSV helpers every exchange decoder needs
//! (line splitting across chunk boundaries, header and epoch-unit detection,
//! exact decimal epochs), and the helpers plain-HTTP archives need (HTML
//! index links, HTTP-dates and listing dates to RFC 3339).
//! It must not hold exchange knowledge: that belongs to the connectors.
//!
//! A source plugin implements [`source::Guest`] and [`source::GuestDecoder`]
//! and calls [`export_source_plugin!`]; a transform implements
//! [`transform::Guest`] and [`transform::GuestTransformer`] and calls
//! [`export_transform_plugin!`]. See `docs/plugin-authoring.md`.

pub mod columns;
pub mod csv;
pub mod dates;
pub mod host;
pub mod listing;

/// Generated bindings. Prefer the re-exports at the crate root.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    /// Bindings of the `source-plugin` world.
    pub mod source {
        wit_bindgen::generate!({
            path: "wit",
            world: "source-plugin",
            pub_export_macro: true,
            export_macro_name: "__export_source_plugin_bindings",
            default_bindings_module: "cryptolake_plugin_sdk::bindings::source",
        });
    }

    /// Bindings of the `transform-plugin` world; the shared interfaces are
    /// those of the source world, so one set of types serves both.
    pub mod transform {
        wit_bindgen::generate!({
            path: "wit",
            world: "transform-plugin",
            pub_export_macro: true,
            export_macro_name: "__export_transform_plugin_bindings",
            default_bindings_module: "cryptolake_plugin_sdk::bindings::transform",
            with: {
                "cryptolake:plugin/types@0.1.0": crate::bindings::source::cryptolake::plugin::types,
                "cryptolake:plugin/http@0.1.0": crate::bindings::source::cryptolake::plugin::http,
                "cryptolake:plugin/log@0.1.0": crate::bindings::source::cryptolake::plugin::log,
                "cryptolake:plugin/metrics@0.1.0": crate::bindings::source::cryptolake::plugin::metrics,
                "cryptolake:plugin/clock@0.1.0": crate::bindings::source::cryptolake::plugin::clock,
            },
        });
    }
}

/// Exports `$type` (implementing [`source::Guest`]) as the plugin's
/// `source` world. In a build for WebAssembly without SIMD (`simd128`) it
/// warns in the plugin's own crate: the SDK's line splitting, UTF-8 checks
/// and number parsing then take a slower path.
#[macro_export]
macro_rules! export_source_plugin {
    ($($plugin:tt)*) => {
        $crate::__warn_without_simd128!();
        $crate::bindings::source::__export_source_plugin_bindings!($($plugin)*);
    };
}

/// Exports `$type` (implementing [`transform::Guest`]) as the plugin's
/// `transform` world; warns as [`export_source_plugin!`] does.
#[macro_export]
macro_rules! export_transform_plugin {
    ($($plugin:tt)*) => {
        $crate::__warn_without_simd128!();
        $crate::bindings::transform::__export_transform_plugin_bindings!($($plugin)*);
    };
}

/// A deprecation warning in the plugin's crate when it is built for wasm32
/// without `simd128`: a build script's warning would show only for path
/// dependencies, this one whatever the SDK's source.
#[doc(hidden)]
#[macro_export]
macro_rules! __warn_without_simd128 {
    () => {
        #[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
        const _: () = {
            #[deprecated(
                note = "this plugin is built for wasm32 without simd128, so cryptolake-plugin-sdk decodes on a slower path: add `[target.wasm32-wasip2] rustflags = [\"-C\", \"target-feature=+simd128\"]` to the plugin's .cargo/config.toml (see the SDK's README)"
            )]
            const BUILT_WITHOUT_SIMD128: () = ();
            BUILT_WITHOUT_SIMD128
        };
    };
}

/// The WIT version this SDK implements.
pub const WIT_VERSION: &str = "0.1.0";

pub use bindings::source::cryptolake::plugin::types::{
    Artifact, Batch, ChecksumSource, Column, ColumnValues, Compression, DictionaryUtf8, Malformed,
    PartitionValues, PluginError, PluginInfo, S3Location, Window,
};

/// What a source plugin implements.
pub mod source {
    pub use crate::bindings::source::exports::cryptolake::plugin::source::{
        Decoder, DecoderBorrow, Guest, GuestDecoder,
    };
}

/// What a transform plugin implements.
pub mod transform {
    pub use crate::bindings::transform::exports::cryptolake::plugin::transform::{
        Guest, GuestTransformer, Transformer, TransformerBorrow,
    };
}

impl PluginError {
    /// A malformed-input error at a 1-based line.
    pub fn malformed(line: Option<u64>, message: impl Into<String>) -> Self {
        PluginError::MalformedInput(Malformed {
            message: message.into(),
            line,
        })
    }

    /// An invalid-params error from a params parse failure.
    pub fn invalid_params(error: impl std::fmt::Display) -> Self {
        PluginError::InvalidParams(error.to_string())
    }
}

/// Parses plugin params (JSON) into `T`, mapping failures to
/// [`PluginError::InvalidParams`] with the offending field's path.
pub fn parse_params<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, PluginError> {
    serde_json::from_str(json).map_err(PluginError::invalid_params)
}

#[cfg(test)]
mod tests {
    /// The crate is versioned with the WIT package it carries.
    #[test]
    fn the_crate_version_is_the_wit_version_it_carries() {
        assert_eq!(super::WIT_VERSION, env!("CARGO_PKG_VERSION"));
        let wit = include_str!("../wit/plugin.wit");
        assert!(
            wit.contains(&format!(
                "package cryptolake:plugin@{};",
                super::WIT_VERSION
            )),
            "wit/plugin.wit declares another version"
        );
    }
}
