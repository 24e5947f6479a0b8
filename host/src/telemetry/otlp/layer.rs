//! A `tracing` layer that turns spans into OTLP spans and events into OTLP
//! log records carrying the current span's trace context. Inert (one atomic
//! load per span or event) until export starts.

use std::time::SystemTime;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::{Span, Status, span, status};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::export;

/// The layer; install it once, in [`crate::telemetry::init`].
#[derive(Debug, Default)]
pub struct OtlpLayer;

/// What a live span carries until it closes.
struct SpanData {
    trace_id: u128,
    span_id: u64,
    parent_span_id: Option<u64>,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    error: Option<String>,
}

fn nanos(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn string_value(value: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(value)),
    })
}

/// Collects fields as OTLP attributes; `message` separately.
#[derive(Default)]
struct Fields {
    attributes: Vec<KeyValue>,
    message: Option<String>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: any_value::Value) {
        if field.name() == "message" {
            if let any_value::Value::StringValue(text) = value {
                self.message = Some(text);
            }
            return;
        }
        self.attributes.retain(|kv| kv.key != field.name());
        self.attributes.push(KeyValue {
            key: field.name().to_owned(),
            value: Some(AnyValue { value: Some(value) }),
            ..KeyValue::default()
        });
    }
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, any_value::Value::DoubleValue(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, any_value::Value::IntValue(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, any_value::Value::IntValue(value as i64));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, any_value::Value::BoolValue(value));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, any_value::Value::StringValue(value.to_owned()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, any_value::Value::StringValue(format!("{value:?}")));
    }
}

fn severity(level: &Level) -> (i32, &'static str) {
    match *level {
        Level::TRACE => (1, "TRACE"),
        Level::DEBUG => (5, "DEBUG"),
        Level::INFO => (9, "INFO"),
        Level::WARN => (13, "WARN"),
        Level::ERROR => (17, "ERROR"),
    }
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !export::active() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = span.parent().and_then(|p| {
            p.extensions()
                .get::<SpanData>()
                .map(|d| (d.trace_id, d.span_id))
        });
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let data = SpanData {
            trace_id: parent.map(|p| p.0).unwrap_or_else(|| fastrand::u128(1..)),
            span_id: fastrand::u64(1..),
            parent_span_id: parent.map(|p| p.1),
            start: SystemTime::now(),
            attributes: fields.attributes,
            error: None,
        };
        span.extensions_mut().insert(data);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(data) = extensions.get_mut::<SpanData>() {
            let mut fields = Fields {
                attributes: std::mem::take(&mut data.attributes),
                message: None,
            };
            values.record(&mut fields);
            data.attributes = fields.attributes;
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if !export::active() {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let (trace_id, span_id) = match ctx.event_span(event) {
            Some(span) => {
                let mut extensions = span.extensions_mut();
                match extensions.get_mut::<SpanData>() {
                    Some(data) => {
                        if *event.metadata().level() == Level::ERROR {
                            data.error = fields.message.clone();
                        }
                        (
                            data.trace_id.to_be_bytes().to_vec(),
                            data.span_id.to_be_bytes().to_vec(),
                        )
                    }
                    None => (Vec::new(), Vec::new()),
                }
            }
            None => (Vec::new(), Vec::new()),
        };
        let now = nanos(SystemTime::now());
        let (severity_number, severity_text) = severity(event.metadata().level());
        let mut attributes = fields.attributes;
        attributes.push(KeyValue {
            key: "code.namespace".to_owned(),
            value: string_value(event.metadata().target().to_owned()),
            ..KeyValue::default()
        });
        export::send_log(LogRecord {
            time_unix_nano: now,
            observed_time_unix_nano: now,
            severity_number,
            severity_text: severity_text.to_owned(),
            body: fields.message.and_then(string_value),
            attributes,
            trace_id,
            span_id,
            ..LogRecord::default()
        });
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(data) = span.extensions_mut().remove::<SpanData>() else {
            return;
        };
        let status = match data.error {
            Some(message) => Status {
                message,
                code: status::StatusCode::Error as i32,
            },
            None => Status::default(),
        };
        export::send_span(Span {
            trace_id: data.trace_id.to_be_bytes().to_vec(),
            span_id: data.span_id.to_be_bytes().to_vec(),
            parent_span_id: data
                .parent_span_id
                .map(|p| p.to_be_bytes().to_vec())
                .unwrap_or_default(),
            name: span.name().to_owned(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: nanos(data.start),
            end_time_unix_nano: nanos(SystemTime::now()),
            attributes: data.attributes,
            status: Some(status),
            ..Span::default()
        });
    }
}
