//! The capabilities the host lends to plugins: HTTP, log, metrics, clock.
//!
//! Owns: the per-instance [`HostState`] and the implementation of each
//! imported WIT interface. HTTP is the only way out of the sandbox, so it is
//! deny-by-default with a per-plugin host allow-list, a timeout bounded by the
//! call's deadline, a body-size cap and retries of transient failures; no
//! credentials are ever added. It must not decide what a plugin may call or
//! when: that is the instance pool's job.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::config::HostPattern;
use crate::telemetry::metrics as host_metrics;
use crate::transfer::egress::{Egress, EgressError, SendError};
use crate::wit::source::cryptolake::plugin::{clock, http, log, metrics, types};

/// Largest panic message or stderr output kept from a guest.
const STDERR_CAPACITY: usize = 16 << 10;
/// Attempts of one HTTP request lent to a plugin (first try included).
const FETCH_ATTEMPTS: u32 = 3;

/// The HTTP capability's settings for one plugin.
#[derive(Clone)]
pub struct HttpLender {
    /// Shared client (connection pool).
    pub client: reqwest::Client,
    /// Runtime that drives the client from the plugin's blocking thread.
    pub runtime: tokio::runtime::Handle,
    /// Hosts the plugin may reach.
    pub allowed: Arc<[HostPattern]>,
    /// Timeout of one request.
    pub timeout: Duration,
    /// Largest body handed to the plugin.
    pub max_body: u64,
}

/// The store's memory limits, also remembering the largest linear memory
/// the instance reached (for the high-water-mark metric).
pub struct TrackedLimits {
    inner: StoreLimits,
    /// Largest linear memory granted, bytes.
    pub(super) peak_memory: usize,
}

impl wasmtime::ResourceLimiter for TrackedLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.inner.memory_growing(current, desired, maximum)?;
        if allowed {
            self.peak_memory = self.peak_memory.max(desired);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.memory_grow_failed(error)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.inner.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

impl HttpLender {
    /// The plugin's egress rules.
    pub fn egress(&self, plugin: &str) -> Egress {
        Egress::new(plugin.into(), Arc::clone(&self.allowed))
    }
}

/// Everything one plugin instance's store holds.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limits: TrackedLimits,
    plugin: Arc<str>,
    http: HttpLender,
    pub(super) deadline: Instant,
    stderr: MemoryOutputPipe,
    /// Counters the plugin recorded since the current session began; they
    /// describe one artifact and go into its manifest entry.
    session_counters: std::collections::BTreeMap<String, u64>,
}

impl HostState {
    /// State for a fresh instance of `plugin`, with an empty WASI context: no
    /// preopened directories, no environment, no arguments, no sockets; only
    /// stderr is captured so a panic message can be reported.
    pub fn new(plugin: Arc<str>, http: HttpLender, memory_bytes: usize) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let limits = TrackedLimits {
            inner: StoreLimitsBuilder::new()
                .memory_size(memory_bytes)
                .trap_on_grow_failure(true)
                .build(),
            peak_memory: 0,
        };
        Self {
            wasi,
            table: ResourceTable::new(),
            limits,
            plugin,
            http,
            deadline: Instant::now(),
            stderr,
            session_counters: std::collections::BTreeMap::new(),
        }
    }

    /// Takes the counters recorded since the last call.
    pub fn take_session_counters(&mut self) -> std::collections::BTreeMap<String, u64> {
        std::mem::take(&mut self.session_counters)
    }

    /// Bytes captured from the guest's stderr so far.
    pub fn stderr_len(&self) -> usize {
        self.stderr.contents().len()
    }

    /// What the guest wrote to stderr (a panic message, typically), trimmed.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_owned()
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for HostState {}

impl http::Host for HostState {
    fn fetch(&mut self, request: http::Request) -> Result<http::Response, http::HttpError> {
        let url = url::Url::parse(&request.url)
            .map_err(|e| http::HttpError::InvalidUrl(format!("{}: {e}", request.url)))?;
        // The allow-list is checked on every hop, this one included, by the
        // egress rules the request is sent under.
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let timeout = self.http.timeout.min(remaining);
        if timeout.is_zero() {
            return Err(http::HttpError::Timeout);
        }
        let lender = self.http.clone();
        let plugin = Arc::clone(&self.plugin);
        let started = Instant::now();
        let result = lender.runtime.block_on(fetch_with_retries(
            &lender,
            &plugin,
            request,
            url.clone(),
            timeout,
        ));
        tracing::debug!(
            plugin = %plugin,
            url = %crate::transfer::without_query(&url),
            status = result.as_ref().map(|r| r.status).unwrap_or(0),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Plugin fetch finished."
        );
        result
    }
}

async fn fetch_with_retries(
    lender: &HttpLender,
    plugin: &str,
    request: http::Request,
    url: url::Url,
    timeout: Duration,
) -> Result<http::Response, http::HttpError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(result) =
            tokio::time::timeout(remaining, fetch_once(lender, plugin, &request, url.clone()))
                .await
        else {
            return Err(http::HttpError::Timeout);
        };
        let retry_after = match &result {
            Ok((response, retry_after)) if crate::transfer::retryable_status(response.status) => {
                *retry_after
            }
            Err(http::HttpError::Network(_)) => None,
            _ => return result.map(|(response, _)| response),
        };
        let backoff = retry_after.unwrap_or_else(|| crate::transfer::backoff(attempt));
        let time_left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if attempt >= FETCH_ATTEMPTS || backoff >= time_left {
            return result.map(|(response, _)| response);
        }
        tokio::time::sleep(backoff).await;
    }
}

async fn fetch_once(
    lender: &HttpLender,
    plugin: &str,
    request: &http::Request,
    url: url::Url,
) -> Result<(http::Response, Option<Duration>), http::HttpError> {
    let method = match request.method {
        http::Method::Get => reqwest::Method::GET,
        http::Method::Head => reqwest::Method::HEAD,
    };
    let response = lender
        .egress(plugin)
        .send(&lender.client, method, url, &request.headers, None)
        .await
        .map_err(|error| match error {
            SendError::Network(e) => {
                http::HttpError::Network(crate::transfer::error_chain(&e.without_url()))
            }
            SendError::Egress(refused) => {
                host_metrics::plugin_fetch_denied(plugin);
                tracing::warn!(plugin = %plugin, error = %refused, "Plugin request refused.");
                match refused {
                    EgressError::Denied { host, .. } => http::HttpError::Denied(host),
                    EgressError::ForbiddenHeader { header, .. } => {
                        http::HttpError::Denied(format!("the `{header}` header"))
                    }
                    other => http::HttpError::Network(other.to_string()),
                }
            }
        })?;
    let status = response.status().as_u16();
    let retry_after = crate::transfer::retry_after(response.headers());
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    if let Some(length) = response.content_length()
        && length > lender.max_body
    {
        return Err(http::HttpError::TooLarge(lender.max_body));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            http::HttpError::Network(crate::transfer::error_chain(&e.without_url()))
        })?;
        if body.len() as u64 + chunk.len() as u64 > lender.max_body {
            return Err(http::HttpError::TooLarge(lender.max_body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((
        http::Response {
            status,
            headers,
            body,
        },
        retry_after,
    ))
}

impl log::Host for HostState {
    fn log(&mut self, level: log::Level, message: String, fields: Vec<(String, String)>) {
        let fields = fields
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let plugin = &*self.plugin;
        match level {
            log::Level::Trace => tracing::trace!(plugin, fields, "{message}"),
            log::Level::Debug => tracing::debug!(plugin, fields, "{message}"),
            log::Level::Info => tracing::info!(plugin, fields, "{message}"),
            log::Level::Warn => tracing::warn!(plugin, fields, "{message}"),
            log::Level::Error => tracing::error!(plugin, fields, "{message}"),
        }
    }
}

impl metrics::Host for HostState {
    fn counter_add(&mut self, name: String, value: u64, labels: Vec<(String, String)>) {
        // Only points the registry accepts count for the artifact's entry:
        // its names are then valid and bounded in number.
        if host_metrics::plugin_counter_add(&self.plugin, &name, value, &labels) {
            let total = self.session_counters.entry(name).or_insert(0);
            *total = total.saturating_add(value);
        }
    }

    fn gauge_set(&mut self, name: String, value: f64, labels: Vec<(String, String)>) {
        host_metrics::plugin_gauge_set(&self.plugin, &name, value, &labels);
    }
}

impl clock::Host for HostState {
    fn now_us(&mut self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }
}
