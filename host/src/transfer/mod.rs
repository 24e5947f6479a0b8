//! Moving archive bytes from a source into the agent, verified.
//!
//! Owns: the shared HTTP client, retry timing (exponential backoff with
//! jitter, `Retry-After`), streamed downloads to a spool file that hash while
//! they write (memory stays bounded whatever the size), and reading
//! `sha256sum`-style checksum sidecars. It must not decide what an artifact
//! is or where it goes in the lake.

pub mod egress;
pub mod growing;
pub mod rate;

use std::path::Path;
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::early_sync::EarlySync;
use egress::Egress;

/// A failed transfer.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The source says the object does not exist.
    #[error("{url} answered 404 Not Found")]
    NotFound {
        /// The URL.
        url: String,
    },
    /// Any other non-success status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// Connection, TLS, timeout, reset or truncated body.
    #[error("{url}: {message}")]
    Network {
        /// The URL.
        url: String,
        /// The cause chain.
        message: String,
    },
    /// Writing the spool file failed.
    #[error("{url}: writing the local spool file failed: {source}")]
    Io {
        /// The URL.
        url: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Egress rules refused a hop (a redirect off the allow-list, say).
    #[error("{url}: {reason}")]
    Refused {
        /// The URL asked for.
        url: String,
        /// Which rule, which hop.
        reason: egress::EgressError,
    },
    /// The checksum sidecar is not `<sha256 hex> <name>`.
    #[error("{url}: checksum file is malformed: {reason}")]
    BadChecksumFile {
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
}

impl TransferError {
    /// Whether trying again may succeed. A malformed checksum file counts:
    /// a network can mangle it, and a retry costs one small request.
    pub fn is_transient(&self) -> bool {
        match self {
            TransferError::Network { .. } | TransferError::BadChecksumFile { .. } => true,
            TransferError::Status { status, .. } => retryable_status(*status),
            _ => false,
        }
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            TransferError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Builds the HTTP client shared by transfers, plugin fetches and the lake's
/// store: rustls with the ring provider and the platform's roots,
/// `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` from the environment, explicit
/// timeouts. Idle reads time out, not whole transfers, so large archives on
/// slow links still finish. It follows no redirect by itself: every hop is
/// checked by whoever sends the request ([`egress`]).
pub fn http_client() -> anyhow::Result<reqwest::Client> {
    install_tls_provider();
    Ok(reqwest::Client::builder()
        .user_agent(concat!("cryptolake/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Selects rustls' ring provider for every TLS client in the process (we
/// build reqwest without a default provider to avoid aws-lc's C build).
/// Installing twice is harmless; the first provider wins.
pub fn install_tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Whether an HTTP status is worth another attempt: request timeout, too
/// many requests, and server errors. Every client of the agent (transfers,
/// the lake's copies, plugin fetches) retries on exactly these.
pub fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// Exponential backoff with full jitter: up to 250 ms × 2^(attempt-1),
/// capped at 20 s.
pub fn backoff(attempt: u32) -> Duration {
    let ceiling_ms = 250u64
        .saturating_mul(1 << attempt.saturating_sub(1).min(7))
        .min(20_000);
    Duration::from_millis(fastrand::u64(ceiling_ms / 2..=ceiling_ms))
}

/// Parses a `Retry-After` header, in seconds or as an HTTP date (capped at
/// 120 s; a date in the past means now).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    retry_after_value(value.trim(), time::OffsetDateTime::now_utc())
}

fn retry_after_value(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    const CAP: Duration = Duration::from_secs(120);
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(CAP));
    }
    // IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) is an RFC 2822 date.
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let wait = (at - now).max(time::Duration::ZERO);
    Some(Duration::try_from(wait).unwrap_or(CAP).min(CAP))
}

/// A URL without its query (which can carry a token or a SAS) and without
/// a user name and password, for messages and logs.
pub fn without_query(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    strip_userinfo(&mut url);
    url.to_string()
}

/// Query parameters whose values are secrets: presigned URLs' signatures,
/// credentials and session tokens (S3, GCS), SAS signatures (Azure), and
/// the usual names of tokens and keys. Compared without letter case.
const SECRET_QUERY_PARAMETERS: &[&str] = &[
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
    "sig",
    "signature",
    "token",
    "access_token",
    "api_key",
    "apikey",
    "key",
    "secret",
    "password",
];

/// `url` as it may be printed or stored (errors, logs, the run report, the
/// manifest): a user name and password become `redacted`, and the values of
/// secret query parameters `REDACTED`; the rest stays, so the URL still
/// says where it points.
pub fn redact(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return redact_unparsed(url);
    };
    strip_userinfo(&mut parsed);
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(name, value)| {
                let secret = SECRET_QUERY_PARAMETERS
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&name));
                let value = if secret { "REDACTED".into() } else { value };
                (name.into_owned(), value.into_owned())
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

fn strip_userinfo(url: &mut url::Url) {
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_password(None);
        let _ = url.set_username("redacted");
    }
}

/// [`redact`] for text that is not a URL: whatever precedes an `@` in what
/// looks like its authority goes.
fn redact_unparsed(text: &str) -> String {
    let Some(scheme_end) = text.find("://").map(|i| i + 3) else {
        return text.to_owned();
    };
    let authority_end = text[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |i| scheme_end + i);
    match text[scheme_end..authority_end].rfind('@') {
        Some(at) => format!(
            "{}redacted{}",
            &text[..scheme_end],
            &text[scheme_end + at..]
        ),
        None => text.to_owned(),
    }
}

/// An error and its sources, joined with `: `.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

async fn get(
    client: &reqwest::Client,
    url: &str,
    egress: &Egress,
) -> Result<reqwest::Response, TransferError> {
    let response = send_get(client, url, egress, &[]).await?;
    match status_error(&response, url) {
        Some(error) => Err(error),
        None => Ok(response),
    }
}

/// Sends a GET through `egress`, whatever status comes back.
async fn send_get(
    client: &reqwest::Client,
    url: &str,
    egress: &Egress,
    headers: &[(String, String)],
) -> Result<reqwest::Response, TransferError> {
    let parsed = url::Url::parse(url).map_err(|e| TransferError::Network {
        url: redact(url),
        message: format!("not a URL: {e}"),
    })?;
    egress
        .send(client, reqwest::Method::GET, parsed, headers, None)
        .await
        .map_err(|error| match error {
            egress::SendError::Network(e) => TransferError::Network {
                url: redact(url),
                message: error_chain(&e.without_url()),
            },
            egress::SendError::Egress(refused) => TransferError::Refused {
                url: redact(url),
                reason: refused,
            },
        })
}

/// The error a response's status means, unless it is a success.
fn status_error(response: &reqwest::Response, url: &str) -> Option<TransferError> {
    let status = response.status().as_u16();
    match status {
        200..=299 => None,
        404 => Some(TransferError::NotFound { url: redact(url) }),
        _ => Some(TransferError::Status {
            url: redact(url),
            status,
            retry_after: retry_after(response.headers()),
        }),
    }
}

/// The last bytes of an object, read with a ranged GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// At most the bytes asked for, ending at the object's end.
    pub bytes: Vec<u8>,
    /// The object's whole size.
    pub size: u64,
}

/// Reads the last `len` bytes of `url` (`Range: bytes=-len`). A server
/// that ignores the range sends the whole body, of which only the last
/// `len` bytes are kept.
pub async fn fetch_tail(
    client: &reqwest::Client,
    url: &str,
    egress: &Egress,
    len: u64,
) -> Result<Tail, TransferError> {
    let range = [("range".to_owned(), format!("bytes=-{len}"))];
    let response = send_get(client, url, egress, &range).await?;
    // An empty object has no last bytes to send.
    if response.status().as_u16() == 416 {
        return Ok(Tail {
            bytes: Vec::new(),
            size: 0,
        });
    }
    if let Some(error) = status_error(&response, url) {
        return Err(error);
    }
    // `Content-Range: bytes 900-999/1000`; without one, the whole object.
    let total = response
        .headers()
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.rsplit_once('/'))
        .and_then(|(_, total)| total.trim().parse::<u64>().ok());
    let mut bytes = Vec::new();
    let mut seen = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| TransferError::Network {
            url: redact(url),
            message: error_chain(&e.without_url()),
        })?;
        seen += chunk.len() as u64;
        bytes.extend_from_slice(&chunk);
        let excess = bytes.len().saturating_sub(len as usize);
        if excess > 0 {
            bytes.drain(..excess);
        }
    }
    Ok(Tail {
        bytes,
        size: total.unwrap_or(seen),
    })
}

/// A completed download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Downloaded {
    /// Bytes written.
    pub bytes: u64,
    /// SHA-256 of those bytes, lowercase hex.
    pub sha256: String,
}

/// Streams `url` into `dest`, hashing as it writes. A body shorter than its
/// `Content-Length` is reported as a network error, never accepted.
pub async fn download(
    client: &reqwest::Client,
    url: &str,
    egress: &Egress,
    dest: &Path,
) -> Result<Downloaded, TransferError> {
    download_growing(client, url, egress, dest, None, EarlySync::off()).await
}

/// Write the downloaded bytes to the spool file, and announce them to a
/// reader, at least this often.
const ANNOUNCE_BYTES: usize = 256 * 1024;

/// [`download`], announcing the bytes written to `growth` so that the file
/// can be read while it downloads. `growth` is ended however this returns.
/// `early_sync` syncs the file as it grows, for one published with `fsync`.
pub async fn download_growing(
    client: &reqwest::Client,
    url: &str,
    egress: &Egress,
    dest: &Path,
    growth: Option<std::sync::Arc<growing::Growth>>,
    early_sync: EarlySync,
) -> Result<Downloaded, TransferError> {
    let growth = growth.map(growing::EndOnDrop);
    let response = get(client, url, egress).await?;
    let expected = response.content_length();
    let io = |source| TransferError::Io {
        url: redact(url),
        source,
    };
    let mut spool = Spool::create(dest, early_sync).await.map_err(io)?;
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| TransferError::Network {
            url: redact(url),
            message: error_chain(&e.without_url()),
        })?;
        hasher.update(&chunk);
        bytes += chunk.len() as u64;
        if spool.push(chunk) >= ANNOUNCE_BYTES {
            spool.write_pending().await.map_err(io)?;
            if let Some(growth) = &growth {
                growth.0.written(bytes);
            }
        }
    }
    spool.write_pending().await.map_err(io)?;
    if let Some(growth) = &growth {
        growth.0.written(bytes);
        // A reader follows the file, so it is published only once that is
        // done: sync the rest meanwhile. Without one, publishing follows at
        // once and its own `fsync` covers the rest.
        spool.sync_rest_early();
    }
    if let Some(expected) = expected
        && expected != bytes
    {
        return Err(TransferError::Network {
            url: redact(url),
            message: format!("body ended after {bytes} of {expected} bytes"),
        });
    }
    Ok(Downloaded {
        bytes,
        sha256: hex::encode(hasher.finalize()),
    })
}

/// A spool file that downloaded chunks are appended to on tokio's blocking
/// pool, [`ANNOUNCE_BYTES`] at a time. The chunks move there as they came
/// off the connection: tokio's own `File` copies every write into a buffer
/// of its own first, which cost the downloading thread more than SHA-256.
struct Spool {
    /// `None` only while a write is under way or after one failed.
    file: Option<std::fs::File>,
    pending: Vec<bytes::Bytes>,
    pending_bytes: usize,
    /// Bytes in the file.
    written: u64,
    early_sync: EarlySync,
}

impl Spool {
    async fn create(path: &Path, early_sync: EarlySync) -> std::io::Result<Self> {
        let file = tokio::fs::File::create(path).await?.into_std().await;
        Ok(Self {
            file: Some(file),
            pending: Vec::new(),
            pending_bytes: 0,
            written: 0,
            early_sync,
        })
    }

    /// Queues `chunk`; returns the bytes now waiting to be written.
    fn push(&mut self, chunk: bytes::Bytes) -> usize {
        self.pending_bytes += chunk.len();
        self.pending.push(chunk);
        self.pending_bytes
    }

    /// Writes what is waiting. When this returns, a reader of the file sees
    /// every byte pushed so far.
    async fn write_pending(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        let mut file = self
            .file
            .take()
            .ok_or_else(|| std::io::Error::other("an earlier write to the spool file failed"))?;
        let pending = std::mem::take(&mut self.pending);
        self.written += std::mem::take(&mut self.pending_bytes) as u64;
        let file = tokio::task::spawn_blocking(move || {
            for chunk in &pending {
                file.write_all(chunk)?;
            }
            Ok::<_, std::io::Error>(file)
        })
        .await
        .map_err(std::io::Error::other)??;
        // Starting a sync only spawns its thread: no wait here.
        self.early_sync.advance(&file, self.written);
        self.file = Some(file);
        Ok(())
    }

    /// Every byte is written: starts syncing what the syncs so far left.
    fn sync_rest_early(&mut self) {
        if let Some(file) = &self.file {
            self.early_sync.finish(file, self.written);
        }
    }
}

/// A checksum sidecar, as published and as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumFile {
    /// The file's exact bytes (mirrored into the raw zone).
    pub raw: Vec<u8>,
    /// The digest it states, lowercase hex.
    pub sha256: String,
}

/// Fetches and parses a `sha256sum`-style sidecar (`<hex>  <name>`, often
/// without a trailing newline).
pub async fn fetch_checksum(
    client: &reqwest::Client,
    url: &str,
    egress: &Egress,
) -> Result<ChecksumFile, TransferError> {
    let response = get(client, url, egress).await?;
    let raw = response.bytes().await.map_err(|e| TransferError::Network {
        url: redact(url),
        message: error_chain(&e.without_url()),
    })?;
    if raw.len() > 4096 {
        return Err(TransferError::BadChecksumFile {
            url: redact(url),
            reason: format!("{} bytes is too long for a checksum file", raw.len()),
        });
    }
    let sha256 = parse_checksum(&raw).map_err(|reason| TransferError::BadChecksumFile {
        url: redact(url),
        reason,
    })?;
    Ok(ChecksumFile {
        raw: raw.to_vec(),
        sha256,
    })
}

/// Takes the first whitespace-separated token and checks it is a SHA-256.
pub fn parse_checksum(raw: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "not UTF-8".to_owned())?;
    let token = text
        .split_whitespace()
        .next()
        .ok_or_else(|| "it is empty".to_owned())?;
    if token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(token.to_ascii_lowercase())
    } else {
        Err(format!(
            "`{}` is not a SHA-256 hex digest",
            token.chars().take(80).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn credentials_in_urls_are_redacted() {
        assert_eq!(
            redact("https://user:pass@data.example.com/a/b.zip"),
            "https://redacted@data.example.com/a/b.zip"
        );
        assert_eq!(
            redact("https://h/k.zip?X-Amz-Signature=abc&x-amz-credential=AKIA%2F1&part=2&sig=s"),
            "https://h/k.zip?X-Amz-Signature=REDACTED&x-amz-credential=REDACTED&part=2&sig=REDACTED"
        );
        assert_eq!(redact("https://h/k.zip"), "https://h/k.zip");
        assert_eq!(
            redact("not a url://user:pass@host/x"),
            "not a url://redacted@host/x"
        );
    }

    use super::*;

    #[test]
    fn checksum_without_trailing_newline() {
        let hex = "a".repeat(64);
        assert_eq!(
            parse_checksum(format!("{hex}  BTCUSDT-1m-2024-01-01.zip").as_bytes()),
            Ok(hex.clone())
        );
        assert_eq!(
            parse_checksum(format!("{}  x.zip\n", hex.to_uppercase()).as_bytes()),
            Ok(hex)
        );
        assert!(parse_checksum(b"<Error>NoSuchKey</Error>").is_err());
        assert!(parse_checksum(b"").is_err());
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = time::macros::datetime!(2026-12-02 08:00:00 UTC);
        assert_eq!(retry_after_value("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after_value("9999", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after_value("Wed, 02 Dec 2026 08:00:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after_value("Wed, 02 Dec 2026 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after_value("soon", now), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(1) <= Duration::from_millis(250));
        assert!(backoff(3) >= Duration::from_millis(500));
        assert!(backoff(30) <= Duration::from_secs(20));
    }
}
