//! The admin HTTP server of `cryptolake run`: `/health` (the process is
//! alive), `/ready` (configuration loaded, plugins loaded, lake reachable;
//! without the token only the verdict, for probes),
//! `/metrics` (Prometheus text format) and `/api/v1/status` (JSON).
//!
//! Owns: routing, the optional bearer token, and the readiness checks. It
//! reads the daemon's shared state and never changes it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;

use super::status::StatusBoard;
use crate::lake::Lake;
use crate::wit::PluginIdentity;

/// Longest the lake check of `/ready` may take.
const LAKE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What the daemon shares with the admin server.
#[derive(Clone)]
pub struct AdminState {
    /// Pipelines' status.
    pub board: StatusBoard,
    /// The agent's facts, replaced on reload.
    pub info: Arc<RwLock<AgentInfo>>,
    /// Required bearer token, if any; replaced when a reload changes it.
    pub token: Arc<RwLock<Option<String>>>,
    /// The last verdict given without the token, and when: such callers
    /// get it again for [`UNAUTHENTICATED_READY_REUSE`], so requests
    /// without the token cannot make the agent list the lake at will.
    pub unauthenticated_ready:
        Arc<std::sync::Mutex<Option<(std::time::Instant, StatusCode, bool)>>>,
}

/// How long a readiness verdict given without the token is reused.
const UNAUTHENTICATED_READY_REUSE: Duration = Duration::from_secs(1);

/// Facts about the running agent.
#[derive(Clone, Serialize)]
pub struct AgentInfo {
    /// The configuration file.
    pub config: String,
    /// Agent version.
    pub version: &'static str,
    /// Start time, RFC 3339.
    pub started_at: String,
    /// The last configuration (re)load that took effect, RFC 3339.
    pub config_loaded_at: String,
    /// Every pipeline assembled (plugins loaded and accepting their params).
    pub plugins_loaded: bool,
    /// Plugin versions serving now.
    pub plugins: Vec<PluginIdentity>,
    /// This replica process's name, when replicas share the work.
    pub replica: Option<String>,
    /// The lake, for the readiness check.
    #[serde(skip)]
    pub lake: Option<Lake>,
    /// The lake's location, for people.
    pub lake_location: String,
}

/// Binds `listen` (inside the Tokio runtime); errors are the caller's to
/// report. Synchronous, so a reload can bind the new address before it
/// lets the old one go.
pub fn bind(listen: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(listener)
}

/// Serves until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, state: AdminState) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(error = %error, "Admin server could not accept a connection.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(request, &state).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert("content-type", value);
    }
    response
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    respond(status, "application/json", body)
}

/// Compares in time independent of where the strings differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive (RFC 9110, 11.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

async fn route(
    request: Request<hyper::body::Incoming>,
    state: &AdminState,
) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if request.method() != hyper::Method::GET && request.method() != hyper::Method::HEAD {
        return respond(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "only GET\n");
    }
    if path == "/health" {
        return json(StatusCode::OK, &serde_json::json!({ "status": "alive" }));
    }
    let token = state.token.read().map(|t| t.clone()).unwrap_or_default();
    if let Some(token) = &token {
        let given = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .unwrap_or("");
        if !same_secret(given.as_bytes(), token.as_bytes()) {
            if path == "/ready" {
                // Probes (Kubernetes, load balancers) cannot send a secret:
                // they get the verdict, and only the token shows why.
                let (status, ready) = unauthenticated_ready(state).await;
                return json(status, &serde_json::json!({ "ready": ready }));
            }
            let mut response = respond(
                StatusCode::UNAUTHORIZED,
                "text/plain",
                "bearer token required\n",
            );
            if let Ok(value) = "Bearer".parse() {
                response.headers_mut().insert("www-authenticate", value);
            }
            return response;
        }
    }
    match path {
        "/ready" => {
            let (status, body) = ready(state).await;
            json(status, &body)
        }
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::telemetry::metrics::prometheus_text(),
        ),
        "/api/v1/status" => status(state).await,
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: try /health, /ready, /metrics, /api/v1/status\n",
        ),
    }
}

/// The readiness verdict alone, reused for a second.
async fn unauthenticated_ready(state: &AdminState) -> (StatusCode, bool) {
    let recent = state
        .unauthenticated_ready
        .lock()
        .ok()
        .and_then(|last| *last)
        .filter(|(at, _, _)| at.elapsed() < UNAUTHENTICATED_READY_REUSE);
    if let Some((_, status, ready)) = recent {
        return (status, ready);
    }
    let (status, body) = ready(state).await;
    let verdict = body["ready"].as_bool().unwrap_or(false);
    if let Ok(mut last) = state.unauthenticated_ready.lock() {
        *last = Some((std::time::Instant::now(), status, verdict));
    }
    (status, verdict)
}

/// The readiness verdict and its checks.
async fn ready(state: &AdminState) -> (StatusCode, serde_json::Value) {
    let info = state.info.read().map(|i| i.clone()).ok();
    let Some(info) = info else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "ready": false }),
        );
    };
    let lake = match &info.lake {
        None => Err("no lake yet".to_owned()),
        Some(lake) => {
            match tokio::time::timeout(LAKE_CHECK_TIMEOUT, lake.list("_cryptolake/status/")).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!("no answer within {LAKE_CHECK_TIMEOUT:?}")),
            }
        }
    };
    let ready = info.plugins_loaded && lake.is_ok();
    let body = serde_json::json!({
        "ready": ready,
        "checks": {
            "config": "ok",
            "plugins": if info.plugins_loaded { "ok".to_owned() } else { "not loaded".to_owned() },
            "lake": match &lake { Ok(()) => "ok".to_owned(), Err(e) => format!("unreachable: {e}") },
        },
        "lake": info.lake_location,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

async fn status(state: &AdminState) -> Response<Full<Bytes>> {
    let info = state.info.read().map(|i| i.clone()).ok();
    let pipelines: Vec<_> = state.board.snapshot().into_values().collect();
    // Replicas sharing the work, from their heartbeats in the lake; an
    // unreachable lake leaves the list out rather than failing the page.
    let replicas = match info.as_ref().and_then(|i| i.lake.clone()) {
        Some(lake) if info.as_ref().is_some_and(|i| i.replica.is_some()) => {
            match tokio::time::timeout(LAKE_CHECK_TIMEOUT, crate::pipeline::replicas(&lake)).await {
                Ok(Ok(replicas)) => Some(replicas),
                _ => None,
            }
        }
        _ => None,
    };
    json(
        StatusCode::OK,
        &serde_json::json!({
            "agent": info,
            "pipelines": pipelines,
            "replicas": replicas,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in [
            "Bearer s3cret",
            "bearer s3cret",
            "BEARER  s3cret",
            " Bearer s3cret ",
        ] {
            assert_eq!(bearer_token(value), Some("s3cret"), "{value:?}");
        }
        assert_eq!(bearer_token("Basic czNjcmV0"), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
