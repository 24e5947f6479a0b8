//! The exporter thread: batches spans and log records, snapshots metrics at
//! an interval, and sends them; never blocks the threads that record.

use std::cell::Cell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

use super::convert;
use super::{OtlpSettings, Protocol};
use crate::telemetry::metrics;
use crate::telemetry::metrics::Signal;

/// Items waiting for export, at most; beyond, new ones are dropped.
const QUEUE: usize = 8192;
/// Items per export request.
const BATCH: usize = 512;
/// Longest wait before queued spans and logs are sent.
const BATCH_DELAY: Duration = Duration::from_secs(1);
/// Longest a flush at exit may take.
const FLUSH_LIMIT: Duration = Duration::from_secs(3);

enum Item {
    Span(Span),
    Log(LogRecord),
    Flush(std::sync::mpsc::Sender<()>),
}

static QUEUE_SENDER: OnceLock<SyncSender<Item>> = OnceLock::new();
static ACTIVE: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set on the exporter thread: what it logs itself is not exported
    /// (that would feed back into its own queue).
    static ON_EXPORTER: Cell<bool> = const { Cell::new(false) };
}

/// Whether spans and events should be recorded for export now.
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed) && !ON_EXPORTER.with(Cell::get)
}

fn enqueue(item: Item, signal: Signal) {
    if let Some(sender) = QUEUE_SENDER.get() {
        match sender.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => metrics::telemetry_dropped(signal),
            Err(TrySendError::Disconnected(_)) => ACTIVE.store(false, Ordering::Relaxed),
        }
    }
}

pub(super) fn send_span(span: Span) {
    enqueue(Item::Span(span), Signal::Traces);
}

pub(super) fn send_log(record: LogRecord) {
    enqueue(Item::Log(record), Signal::Logs);
}

/// Flushes queued telemetry (and a last metric snapshot) when dropped, for
/// at most a few seconds, so a `sync` that exits still reports its run.
#[derive(Debug)]
pub struct OtlpGuard {
    _private: (),
}

impl Drop for OtlpGuard {
    fn drop(&mut self) {
        let Some(sender) = QUEUE_SENDER.get() else {
            return;
        };
        let (done, flushed) = std::sync::mpsc::channel();
        if sender.try_send(Item::Flush(done)).is_ok() {
            let _ = flushed.recv_timeout(FLUSH_LIMIT);
        }
    }
}

/// Starts the exporter thread (once per process).
pub(super) fn start(settings: OtlpSettings) -> Option<OtlpGuard> {
    let (sender, receiver) = sync_channel(QUEUE);
    if QUEUE_SENDER.set(sender).is_err() {
        return Some(OtlpGuard { _private: () });
    }
    let endpoints = format!(
        "traces {}, metrics {}, logs {}",
        settings.traces, settings.metrics, settings.logs
    );
    let protocol = settings.protocol;
    let spawned = std::thread::Builder::new()
        .name("otlp-export".to_owned())
        .spawn(move || {
            ON_EXPORTER.with(|flag| flag.set(true));
            match Exporter::new(settings) {
                Ok(exporter) => exporter.run(receiver),
                Err(error) => {
                    ACTIVE.store(false, Ordering::Relaxed);
                    tracing::error!(error = %error, "OTLP export could not start.");
                }
            }
        });
    if let Err(error) = spawned {
        tracing::error!(error = %error, "OTLP export could not start its thread.");
        return None;
    }
    ACTIVE.store(true, Ordering::Relaxed);
    tracing::info!(protocol = ?protocol, endpoints = %endpoints, "OTLP export started.");
    Some(OtlpGuard { _private: () })
}

struct Exporter {
    settings: OtlpSettings,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    spans: Vec<Span>,
    logs: Vec<LogRecord>,
    last_failure_log: Option<Instant>,
}

impl Exporter {
    fn new(settings: OtlpSettings) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        crate::transfer::install_tls_provider();
        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)));
        if settings.protocol == Protocol::Grpc {
            // gRPC is HTTP/2: cleartext endpoints need prior knowledge.
            builder = builder.http2_prior_knowledge();
        }
        let client = builder.build().map_err(|e| e.to_string())?;
        Ok(Self {
            settings,
            client,
            runtime,
            spans: Vec::new(),
            logs: Vec::new(),
            last_failure_log: None,
        })
    }

    fn run(mut self, receiver: Receiver<Item>) {
        let mut next_batch = Instant::now() + BATCH_DELAY;
        let mut next_metrics = Instant::now() + self.settings.metrics_interval;
        loop {
            let deadline = next_batch.min(next_metrics);
            match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Item::Span(span)) => {
                    self.spans.push(span);
                    if self.spans.len() >= BATCH {
                        self.send_spans();
                    }
                }
                Ok(Item::Log(record)) => {
                    self.logs.push(record);
                    if self.logs.len() >= BATCH {
                        self.send_logs();
                    }
                }
                Ok(Item::Flush(done)) => {
                    // Everything queued before the flush request first.
                    while let Ok(item) = receiver.try_recv() {
                        match item {
                            Item::Span(span) => self.spans.push(span),
                            Item::Log(record) => self.logs.push(record),
                            Item::Flush(other) => drop(other.send(())),
                        }
                    }
                    self.send_spans();
                    self.send_logs();
                    self.send_metrics();
                    let _ = done.send(());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now >= next_batch {
                self.send_spans();
                self.send_logs();
                next_batch = now + BATCH_DELAY;
            }
            if now >= next_metrics {
                self.send_metrics();
                next_metrics = now + self.settings.metrics_interval;
            }
        }
    }

    fn send_spans(&mut self) {
        while !self.spans.is_empty() {
            let batch: Vec<Span> = self.spans.drain(..self.spans.len().min(BATCH)).collect();
            let request = ExportTraceServiceRequest {
                resource_spans: vec![convert::resource_spans(&self.settings.resource, batch)],
            };
            let url = self.settings.traces.clone();
            self.post(Signal::Traces, url, request.encode_to_vec());
        }
    }

    fn send_logs(&mut self) {
        while !self.logs.is_empty() {
            let batch: Vec<LogRecord> = self.logs.drain(..self.logs.len().min(BATCH)).collect();
            let request = ExportLogsServiceRequest {
                resource_logs: vec![convert::resource_logs(&self.settings.resource, batch)],
            };
            let url = self.settings.logs.clone();
            self.post(Signal::Logs, url, request.encode_to_vec());
        }
    }

    fn send_metrics(&mut self) {
        let request = ExportMetricsServiceRequest {
            resource_metrics: vec![convert::resource_metrics(
                &self.settings.resource,
                metrics::snapshot(),
            )],
        };
        let url = self.settings.metrics.clone();
        self.post(Signal::Metrics, url, request.encode_to_vec());
    }

    fn post(&mut self, signal: Signal, url: url::Url, body: Vec<u8>) {
        let mut request = self.client.post(url.clone());
        let body = match self.settings.protocol {
            Protocol::HttpProtobuf => {
                request = request.header("content-type", "application/x-protobuf");
                body
            }
            Protocol::Grpc => {
                request = request
                    .header("content-type", "application/grpc")
                    .header("te", "trailers");
                // Length-prefixed message: no compression, 4-byte length.
                let mut framed = Vec::with_capacity(body.len() + 5);
                framed.push(0);
                framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
                framed.extend_from_slice(&body);
                framed
            }
        };
        for (name, value) in &self.settings.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let result = self.runtime.block_on(async {
            let response = request.body(body).send().await.map_err(|e| e.to_string())?;
            let status = response.status();
            let grpc_status = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            if !status.is_success() {
                return Err(format!("HTTP {status}"));
            }
            match grpc_status.as_deref() {
                None | Some("0") => {
                    // Drain the body so the connection can be reused.
                    let _ = response.bytes().await;
                    Ok(())
                }
                Some(code) => Err(format!("gRPC status {code}")),
            }
        });
        if let Err(error) = result {
            metrics::telemetry_export_failed(signal);
            // One line per minute at most: a dead collector must not flood
            // the log the operator reads to find out why.
            let quiet = self
                .last_failure_log
                .is_some_and(|at| at.elapsed() < Duration::from_secs(60));
            if !quiet {
                self.last_failure_log = Some(Instant::now());
                tracing::warn!(
                    signal = signal.label(),
                    endpoint = %url,
                    error = %error,
                    "OTLP export failed; this telemetry is dropped and the pipelines go on."
                );
            }
        }
    }
}
