//! The one place that generates host bindings for the WIT worlds.
//!
//! The transform world reuses the source world's types and imported
//! interfaces, so both worlds share one set of Rust types and one
//! implementation of each host capability.

#![allow(missing_docs, clippy::all)]

/// Bindings of the `source-plugin` world.
pub mod source {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "source-plugin",
    });
}

/// Bindings of the `transform-plugin` world.
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
