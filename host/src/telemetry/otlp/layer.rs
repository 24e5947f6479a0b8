//! The `tracing` side of export: `tracing-opentelemetry` turns spans into
//! OTLP spans (fields as attributes, `otel.kind` as the span kind, an error
//! logged in a span as its `ERROR` status), and the OpenTelemetry appender
//! turns events into log records carrying the trace and span id of the span
//! they happened in.
//!
//! Owns the reloadable slot they sit in: empty (and costing nothing but a
//! check per span) until export starts, swapped when the settings change.
//! It must not filter by level: the subscriber's filter does, for every
//! output alike.

use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use tracing::Subscriber;
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::Context;
use tracing_subscriber::{Layer, Registry, reload};

use super::providers::{Providers, SCOPE};

type Slot = Option<Box<dyn Layer<Registry> + Send + Sync>>;

static HANDLE: OnceLock<reload::Handle<Slot, Registry>> = OnceLock::new();

/// The layer to put first on the registry, in
/// [`crate::telemetry::init`]; empty until export starts.
pub fn install() -> reload::Layer<Slot, Registry> {
    let (layer, handle) = reload::Layer::new(None);
    let _ = HANDLE.set(handle);
    layer
}

/// Hands spans and events to `providers` from now on (`None`: to nobody).
pub(super) fn swap(providers: Option<&Providers>) {
    let Some(handle) = HANDLE.get() else {
        return;
    };
    let layer: Slot = providers.map(|providers| {
        let traces = providers.tracer.as_ref().map(|provider| {
            let tracer = provider.tracer_with_scope(
                opentelemetry::InstrumentationScope::builder(SCOPE)
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build(),
            );
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_location(false)
                .with_threads(false)
        });
        let logs = providers
            .logger
            .as_ref()
            .map(|provider| NotTheExporters(OpenTelemetryTracingBridge::new(provider)));
        Layer::and_then(traces, logs).boxed()
    });
    if let Err(error) = handle.reload(layer) {
        tracing::warn!(error = %error, "OTLP export could not be attached to the log and span output.");
    }
}

/// Targets whose events come from exporting itself (the SDK, the HTTP and
/// gRPC stacks): exported as logs, they would feed the queue they report on.
const EXPORTER_TARGETS: [&str; 7] = [
    "opentelemetry",
    "hyper",
    "h2",
    "reqwest",
    "tonic",
    "tower",
    "rustls",
];

fn from_exporters(target: &str) -> bool {
    EXPORTER_TARGETS.iter().any(|prefix| {
        target
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '_', '-']))
    })
}

/// The log bridge without the exporters' own events.
struct NotTheExporters<L>(L);

impl<S: Subscriber, L: Layer<S>> Layer<S> for NotTheExporters<L> {
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if !from_exporters(event.metadata().target()) {
            self.0.on_event(event, ctx);
        }
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        self.0.on_record(span, values, ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exporters_own_events_are_recognised_by_target() {
        for target in [
            "opentelemetry_sdk",
            "opentelemetry-otlp",
            "hyper::proto::h1",
            "h2::codec",
            "reqwest::connect",
            "tonic::transport",
        ] {
            assert!(from_exporters(target), "{target}");
        }
        for target in ["cryptolake::pipeline", "h2o", "hyperloop", "cryptolake"] {
            assert!(!from_exporters(target), "{target}");
        }
    }
}
