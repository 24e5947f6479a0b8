//! Where a plugin's HTTP may go, checked on every hop.
//!
//! Owns: [`Egress`], a plugin's allow-list with its name, following
//! redirects by hand (the shared client follows none) so that every
//! `Location` is checked against the list before it is requested, and the
//! request headers a plugin may not set. Used for the requests a plugin makes
//! itself (`http.fetch`) and for the downloads of its artifacts. It must not
//! retry: callers decide that.

use std::sync::Arc;

use tracing::Instrument;

use crate::config::HostPattern;

/// Redirects followed per request, as browsers and curl allow.
pub const MAX_REDIRECTS: usize = 10;

/// Headers a plugin may not set: credentials and cookies (the host adds
/// none, and a plugin must not forge them), proxy control, and `Host`
/// (which would send the request to a host other than the URL's).
pub fn is_forbidden_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    matches!(name.as_str(), "authorization" | "cookie" | "host") || name.starts_with("proxy-")
}

/// A request that egress rules refused or could not follow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressError {
    /// A hop's host is not on the allow-list.
    #[error("plugin `{plugin}` may not reach {host} (hop {hop}: {url}); allowed: {allowed}")]
    Denied {
        /// The plugin.
        plugin: String,
        /// 0 for the URL asked for, 1 for the first redirect, …
        hop: usize,
        /// The refused host.
        host: String,
        /// The refused URL, without its query.
        url: String,
        /// The allow-list, for the message.
        allowed: String,
    },
    /// More than [`MAX_REDIRECTS`] redirects.
    #[error("{url}: more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects {
        /// The URL asked for.
        url: String,
    },
    /// A redirect without a usable `Location`.
    #[error("{url} redirected to `{location}`, which is not an http(s) URL")]
    BadRedirect {
        /// The redirecting URL.
        url: String,
        /// Its `Location`.
        location: String,
    },
    /// A header a plugin may not set.
    #[error("plugin `{plugin}` may not set the `{header}` header")]
    ForbiddenHeader {
        /// The plugin.
        plugin: String,
        /// The header.
        header: String,
    },
}

/// A failed request: refused by egress rules, or a network error.
#[derive(Debug)]
pub enum SendError {
    /// Refused before it was sent (or before a hop was followed).
    Egress(EgressError),
    /// The network failed.
    Network(reqwest::Error),
}

/// One plugin's allow-list.
#[derive(Debug, Clone)]
pub struct Egress {
    plugin: Arc<str>,
    allowed: Arc<[HostPattern]>,
}

impl Egress {
    /// The allow-list `allowed` of `plugin`.
    pub fn new(plugin: Arc<str>, allowed: Arc<[HostPattern]>) -> Self {
        Self { plugin, allowed }
    }

    /// Whether `url` may be requested (hop `hop` of a request).
    pub fn check(&self, url: &url::Url, hop: usize) -> Result<(), EgressError> {
        let host = url.host_str().unwrap_or("").to_ascii_lowercase();
        let allowed = matches!(url.scheme(), "http" | "https")
            && self
                .allowed
                .iter()
                .any(|p| p.matches(&host, url.port_or_known_default()));
        if allowed {
            return Ok(());
        }
        Err(EgressError::Denied {
            plugin: self.plugin.to_string(),
            hop,
            host: match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            },
            url: super::without_query(url),
            allowed: self
                .allowed
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// Refuses headers a plugin may not set.
    pub fn check_headers<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), EgressError> {
        match headers.into_iter().find(|name| is_forbidden_header(name)) {
            Some(header) => Err(EgressError::ForbiddenHeader {
                plugin: self.plugin.to_string(),
                header: header.to_owned(),
            }),
            None => Ok(()),
        }
    }

    /// Sends `method url` with `headers`, following redirects whose every
    /// hop is on the allow-list. A redirect to another host drops the
    /// plugin's headers, as curl does; 301/302/303 turn a GET's body-less
    /// request into a GET (HEAD stays HEAD). `timeout` bounds each hop.
    pub async fn send(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        url: url::Url,
        headers: &[(String, String)],
        timeout: Option<std::time::Duration>,
    ) -> Result<reqwest::Response, SendError> {
        self.check_headers(headers.iter().map(|(name, _)| name.as_str()))
            .map_err(SendError::Egress)?;
        let first_host = url.host_str().map(str::to_owned);
        let mut current = url.clone();
        for hop in 0..=MAX_REDIRECTS {
            self.check(&current, hop).map_err(SendError::Egress)?;
            let mut request = client.request(method.clone(), current.clone());
            if current.host_str().map(str::to_owned) == first_host {
                for (name, value) in headers {
                    request = request.header(name.as_str(), value.as_str());
                }
            }
            if let Some(timeout) = timeout {
                request = request.timeout(timeout);
            }
            let span = client_span(&self.plugin, &method, &current, hop);
            let response = request
                .send()
                .instrument(span.clone())
                .await
                .map_err(SendError::Network)?;
            span.record("http.response.status_code", response.status().as_u16());
            if !response.status().is_redirection() || response.status().as_u16() == 304 {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let next = current
                .join(&location)
                .ok()
                .filter(|next| matches!(next.scheme(), "http" | "https"));
            let Some(next) = next else {
                return Err(SendError::Egress(EgressError::BadRedirect {
                    url: current.to_string(),
                    location,
                }));
            };
            tracing::debug!(plugin = %self.plugin, from = %current, to = %next, "Following a redirect.");
            current = next;
        }
        Err(SendError::Egress(EgressError::TooManyRedirects {
            url: url.to_string(),
        }))
    }
}

/// An HTTP client span per request (and per redirect hop), named and
/// attributed as OpenTelemetry's HTTP conventions say. The URL goes without
/// its query and credentials: those may carry secrets.
fn client_span(
    plugin: &str,
    method: &reqwest::Method,
    url: &url::Url,
    hop: usize,
) -> tracing::Span {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    tracing::info_span!(
        "http.request",
        otel.name = %method,
        otel.kind = "client",
        http.request.method = %method,
        url.full = %shown,
        server.address = url.host_str().unwrap_or_default(),
        server.port = url.port_or_known_default().unwrap_or_default(),
        http.request.resend_count = hop,
        http.response.status_code = tracing::field::Empty,
        plugin,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_proxy_control_and_host_are_forbidden() {
        for name in [
            "Authorization",
            "cookie",
            "Proxy-Authorization",
            "proxy-connection",
            "HOST",
        ] {
            assert!(is_forbidden_header(name), "{name}");
        }
        for name in ["accept", "range", "if-none-match", "user-agent"] {
            assert!(!is_forbidden_header(name), "{name}");
        }
    }

    #[test]
    fn every_hop_is_checked_against_the_list() {
        let egress = Egress::new(
            "binance".into(),
            vec![HostPattern::parse("data.binance.vision").unwrap()].into(),
        );
        let ok = url::Url::parse("https://data.binance.vision/a.zip").unwrap();
        assert!(egress.check(&ok, 0).is_ok());
        let metadata = url::Url::parse("http://169.254.169.254/latest/meta-data/?x=1").unwrap();
        let denied = egress.check(&metadata, 1).unwrap_err();
        let text = denied.to_string();
        assert!(
            text.contains("binance") && text.contains("hop 1") && text.contains("169.254.169.254"),
            "{text}"
        );
        assert!(!text.contains("x=1"), "{text}");
    }
}
