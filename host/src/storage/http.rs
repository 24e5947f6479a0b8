//! The agent's own HTTP client under `object_store`, so the lake's requests
//! obey the agent's rules.
//!
//! Owns: adapting `reqwest` 0.13 (the agent's client: rustls on ring, the
//! platform's roots, `HTTPS_PROXY`/`NO_PROXY`, `SSL_CERT_FILE`) to
//! `object_store`'s `HttpService`. The client follows no redirect, so a
//! storage or credentials endpoint that answers 3xx cannot send signed
//! requests or credentials anywhere else: `object_store` reports the 3xx as
//! an error. Plain `http://` is refused where `object_store` asks for HTTPS
//! (STS, say), except on loopback, where tests and local emulators live.

use http_body_util::BodyExt;
use object_store::client::{
    ClientConfigKey, ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind,
    HttpRequest, HttpResponse, HttpResponseBody, HttpService,
};

/// Builds `object_store` clients on the agent's `reqwest` client.
#[derive(Debug, Clone)]
pub struct AgentConnector {
    client: reqwest::Client,
}

impl AgentConnector {
    /// A connector sharing `client` (and its connection pool).
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }
}

impl HttpConnector for AgentConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let allow_http = options
            .get_config_value(&ClientConfigKey::AllowHttp)
            .is_some_and(|v| v == "true");
        let timeout = options
            .get_config_value(&ClientConfigKey::Timeout)
            .and_then(|v| humantime::parse_duration(&v).ok());
        Ok(HttpClient::new(AgentHttp {
            client: self.client.clone(),
            allow_http,
            timeout,
        }))
    }
}

#[derive(Debug)]
struct AgentHttp {
    client: reqwest::Client,
    allow_http: bool,
    timeout: Option<std::time::Duration>,
}

/// Why a request was not sent.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

#[async_trait::async_trait]
impl HttpService for AgentHttp {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = request.into_parts();
        let url = url::Url::parse(&parts.uri.to_string())
            .map_err(|e| HttpError::new(HttpErrorKind::Unknown, e))?;
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        };
        if url.scheme() == "http" && !self.allow_http && !loopback {
            return Err(HttpError::new(
                HttpErrorKind::Unknown,
                Refused(format!(
                    "{} is plain HTTP where HTTPS is required",
                    crate::transfer::without_query(&url)
                )),
            ));
        }
        let mut outgoing = reqwest::Request::new(parts.method, url);
        *outgoing.headers_mut() = parts.headers;
        *outgoing.body_mut() = Some(match body.as_bytes() {
            Some(bytes) => reqwest::Body::from(bytes.clone()),
            None => reqwest::Body::wrap_stream(body.into_data_stream()),
        });
        if let Some(timeout) = self.timeout {
            *outgoing.timeout_mut() = Some(timeout);
        }
        let response = self.client.execute(outgoing).await.map_err(classify)?;
        let response: http::Response<reqwest::Body> = response.into();
        let (parts, body) = response.into_parts();
        Ok(HttpResponse::from_parts(
            parts,
            HttpResponseBody::new(body.map_err(classify)),
        ))
    }
}

/// The kind `object_store` decides retries by.
fn classify(error: reqwest::Error) -> HttpError {
    let kind = if error.is_timeout() {
        HttpErrorKind::Timeout
    } else if error.is_connect() {
        HttpErrorKind::Connect
    } else if error.is_decode() {
        HttpErrorKind::Decode
    } else if error.is_body() || error.is_request() {
        HttpErrorKind::Request
    } else {
        HttpErrorKind::Unknown
    };
    HttpError::new(kind, error)
}
