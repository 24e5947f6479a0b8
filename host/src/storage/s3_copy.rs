//! S3 server-side copies into the lake's bucket: `CopyObject`, and
//! `UploadPartCopy` above 5 GiB, from any bucket on the same service.
//!
//! Owns: those requests, signed (`object_store`'s SigV4 signer) with the
//! credentials the lake's store resolved, so every credential source works
//! for S3 Direct Sync too; the checksum the server reports for a copy; and
//! whether this server computes one. `object_store` copies only within one
//! bucket, hence this module. It must not decide where a copy goes or what a
//! mismatch means: the lake does.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use bytes::Bytes;
use object_store::aws::{AwsAuthorizer, AwsCredentialProvider};

use super::s3::BuiltS3;
use crate::config::ObjectLake;
use crate::transfer::{backoff, error_chain, retry_after, retryable_status};

/// The largest object one `CopyObject` may copy; larger ones are copied in
/// parts with `UploadPartCopy`.
pub const MAX_SINGLE_COPY: u64 = 5 << 30;
/// Part size of a multipart server-side copy.
const COPY_PART_BYTES: u64 = 1 << 30;
/// Attempts per request for transient failures.
const ATTEMPTS: u32 = 4;

/// A server-side copy request that failed.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The server answered with an error status.
    #[error("S3 {method} {url} answered HTTP {status}: {code} {message}")]
    Status {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// S3 error code, e.g. `AccessDenied`.
        code: String,
        /// S3 error message.
        message: String,
    },
    /// `If-None-Match: *` was refused: the destination exists.
    #[error("S3 {url}: the object already exists")]
    AlreadyExists {
        /// The URL.
        url: String,
    },
    /// Connection failure, after retries.
    #[error("S3 {method} {url}: {message}")]
    Network {
        /// The method.
        method: &'static str,
        /// The URL.
        url: String,
        /// The cause chain.
        message: String,
    },
    /// The credentials could not be had.
    #[error("S3 credentials: {0}")]
    Credentials(String),
    /// A response that is not what S3 sends.
    #[error("S3 {url}: unexpected response: {message}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// A completed server-side copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// SHA-256 of the copy as computed by the server (lowercase hex), when
    /// the server supports checksums (single-part copies only).
    pub sha256: Option<String>,
    /// Requests sent, retries included.
    pub requests: u32,
}

/// What the copier has learnt about the server's checksums.
const CHECKSUMS_UNKNOWN: u8 = 0;
const CHECKSUMS_COMPUTED: u8 = 1;
const CHECKSUMS_ABSENT: u8 = 2;

/// Server-side copies into one bucket.
#[derive(Debug, Clone)]
pub struct S3Copier {
    http: reqwest::Client,
    credentials: AwsCredentialProvider,
    region: String,
    bucket: String,
    bucket_url: url::Url,
    requester_pays: bool,
    /// Headers every copy's destination gets: encryption, storage class.
    destination_headers: Vec<(&'static str, String)>,
    server_checksums: Arc<AtomicU8>,
}

impl S3Copier {
    /// A copier into the bucket `built` was made for.
    pub fn new(http: reqwest::Client, built: &BuiltS3, lake: &ObjectLake) -> Self {
        let mut destination_headers = Vec::new();
        if let Some(sse) = &lake.sse {
            destination_headers.push(("x-amz-server-side-encryption", sse.clone()));
        }
        if let Some(key) = &lake.sse_kms_key_id {
            destination_headers.push(("x-amz-server-side-encryption-aws-kms-key-id", key.clone()));
        }
        if let Some(class) = &lake.storage_class {
            destination_headers.push(("x-amz-storage-class", class.clone()));
        }
        Self {
            http,
            credentials: Arc::clone(built.store.credentials()),
            region: built.region.clone(),
            bucket: lake.bucket.clone(),
            bucket_url: built.bucket_url.clone(),
            requester_pays: lake.requester_pays,
            destination_headers,
            server_checksums: Arc::new(AtomicU8::new(CHECKSUMS_UNKNOWN)),
        }
    }

    /// The bucket's base URL (for deciding whether a source is on the same
    /// service).
    pub fn bucket_url(&self) -> &url::Url {
        &self.bucket_url
    }

    /// The lake's bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Whether copies are known to come back with the server's SHA-256 of
    /// the copy, so one can go straight to its final key and be checked
    /// there. Learnt from the first copy of the process.
    pub fn server_computes_checksums(&self) -> bool {
        self.server_checksums.load(Ordering::Relaxed) == CHECKSUMS_COMPUTED
    }

    /// Copies `source_bucket/source_key` to `key` in the lake's bucket
    /// inside the server: no object bytes pass through the agent. Up to
    /// 5 GiB one `CopyObject` asking for a SHA-256 of the copy; larger,
    /// `UploadPartCopy` in 1 GiB parts (`size` must then be known).
    /// `create_only` sends `If-None-Match: *`.
    pub async fn copy(
        &self,
        source_bucket: &str,
        source_key: &str,
        key: &str,
        size: Option<u64>,
        create_only: bool,
    ) -> Result<Copied, CopyError> {
        let copy_source = format!(
            "/{}/{}",
            uri_encode(source_bucket, true),
            uri_encode(source_key, false)
        );
        if let Some(size) = size.filter(|&s| s > MAX_SINGLE_COPY) {
            return self.copy_in_parts(&copy_source, key, size).await;
        }
        let url = self.object_url(key, "")?;
        let mut headers = vec![
            ("x-amz-copy-source", copy_source),
            ("x-amz-checksum-algorithm", "SHA256".to_owned()),
        ];
        if create_only {
            headers.push(("if-none-match", "*".to_owned()));
        }
        headers.extend(self.destination_headers.iter().cloned());
        let (response, requests) = self
            .send(reqwest::Method::PUT, url.clone(), &headers, Bytes::new())
            .await?;
        let text = body_unless_error(response, "PUT", &url).await?;
        let sha256 = xml_text(&text, "ChecksumSHA256").and_then(|b| base64_to_hex(&b));
        let learnt = if sha256.is_some() {
            CHECKSUMS_COMPUTED
        } else {
            CHECKSUMS_ABSENT
        };
        let _ = self.server_checksums.compare_exchange(
            CHECKSUMS_UNKNOWN,
            learnt,
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        Ok(Copied { sha256, requests })
    }

    async fn copy_in_parts(
        &self,
        copy_source: &str,
        key: &str,
        size: u64,
    ) -> Result<Copied, CopyError> {
        let mut requests = 0;
        let url = self.object_url(key, "uploads=")?;
        let headers: Vec<_> = self.destination_headers.to_vec();
        let (response, sent) = self
            .send(reqwest::Method::POST, url.clone(), &headers, Bytes::new())
            .await?;
        requests += sent;
        let text = body_unless_error(response, "POST", &url).await?;
        let upload_id = xml_text(&text, "UploadId").ok_or_else(|| protocol(&url, "no UploadId"))?;
        let upload = uri_encode(&upload_id, true);
        let mut etags = Vec::new();
        let mut start = 0;
        let parts = async {
            while start < size {
                let end = (start + COPY_PART_BYTES).min(size) - 1;
                let query = format!("partNumber={}&uploadId={upload}", etags.len() + 1);
                let url = self.object_url(key, &query)?;
                let headers = [
                    ("x-amz-copy-source", copy_source.to_owned()),
                    ("x-amz-copy-source-range", format!("bytes={start}-{end}")),
                ];
                let (response, sent) = self
                    .send(reqwest::Method::PUT, url.clone(), &headers, Bytes::new())
                    .await?;
                requests += sent;
                let text = body_unless_error(response, "PUT", &url).await?;
                etags
                    .push(xml_text(&text, "ETag").ok_or_else(|| {
                        protocol(&url, "UploadPartCopy answered without an ETag")
                    })?);
                start = end + 1;
            }
            let parts: String = etags
                .iter()
                .enumerate()
                .map(|(i, etag)| {
                    format!(
                        "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
                        i + 1
                    )
                })
                .collect();
            let body = format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>");
            let url = self.object_url(key, &format!("uploadId={upload}"))?;
            let (response, sent) = self
                .send(
                    reqwest::Method::POST,
                    url.clone(),
                    &[("content-type", "application/xml".to_owned())],
                    Bytes::from(body),
                )
                .await?;
            requests += sent;
            body_unless_error(response, "POST", &url).await.map(|_| ())
        }
        .await;
        if let Err(error) = parts {
            let aborted = match self.object_url(key, &format!("uploadId={upload}")) {
                Ok(url) => self
                    .send(reqwest::Method::DELETE, url, &[], Bytes::new())
                    .await
                    .map(|_| ()),
                Err(error) => Err(error),
            };
            if let Err(abort) = aborted {
                tracing::warn!(key, error = %abort, "Could not abort a failed multipart copy.");
            }
            return Err(error);
        }
        Ok(Copied {
            sha256: None,
            requests,
        })
    }

    /// The SHA-256 the server stored for `key` (lowercase hex), when it
    /// keeps one.
    pub async fn stored_sha256(&self, key: &str) -> Result<Option<String>, CopyError> {
        let url = self.object_url(key, "")?;
        let (response, _) = self
            .send(
                reqwest::Method::HEAD,
                url,
                &[("x-amz-checksum-mode", "ENABLED".to_owned())],
                Bytes::new(),
            )
            .await?;
        Ok(response
            .headers()
            .get("x-amz-checksum-sha256")
            .and_then(|v| v.to_str().ok())
            .and_then(base64_to_hex))
    }

    /// The URL of an object in the lake's bucket.
    fn object_url(&self, key: &str, query: &str) -> Result<url::Url, CopyError> {
        let mut text = format!(
            "{}/{}",
            self.bucket_url.as_str().trim_end_matches('/'),
            uri_encode(key, false)
        );
        if !query.is_empty() {
            text.push('?');
            text.push_str(query);
        }
        url::Url::parse(&text).map_err(|e| CopyError::Protocol {
            url: text.clone(),
            message: e.to_string(),
        })
    }

    /// Sends one signed request, retrying transient failures, with fresh
    /// credentials each time (temporary ones may have been renewed). Returns
    /// a 2xx response and the number of requests sent.
    async fn send(
        &self,
        method: reqwest::Method,
        url: url::Url,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<(reqwest::Response, u32), CopyError> {
        let method_name = static_method(&method);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let credential = self
                .credentials
                .get_credential()
                .await
                .map_err(|e| CopyError::Credentials(error_chain(&e)))?;
            let mut request = http::Request::builder()
                .method(method.clone())
                .uri(url.as_str());
            for (name, value) in headers {
                request = request.header(*name, value.as_str());
            }
            let mut request = request
                .body(object_store::client::HttpRequestBody::from(body.clone()))
                .map_err(|e| protocol(&url, &e.to_string()))?;
            AwsAuthorizer::new(&credential, "s3", &self.region)
                .with_request_payer(self.requester_pays)
                .authorize(&mut request, None);
            let mut outgoing = self
                .http
                .request(method.clone(), url.clone())
                .body(body.clone());
            // reqwest sets the same Host itself.
            for (name, value) in request
                .headers()
                .iter()
                .filter(|(n, _)| *n != http::header::HOST)
            {
                outgoing = outgoing.header(name.as_str(), value.as_bytes());
            }
            let (error, wait) = match outgoing.send().await {
                Ok(response) if response.status().is_success() => return Ok((response, attempt)),
                Ok(response) if response.status().as_u16() == 412 => {
                    return Err(CopyError::AlreadyExists {
                        url: url.to_string(),
                    });
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let wait = retry_after(response.headers());
                    let text = response.text().await.unwrap_or_default();
                    let (code, message) = error_document(&text);
                    let error = CopyError::Status {
                        method: method_name,
                        url: url.to_string(),
                        status,
                        code,
                        message,
                    };
                    if !retryable_status(status) {
                        return Err(error);
                    }
                    (error, wait)
                }
                Err(e) => (
                    CopyError::Network {
                        method: method_name,
                        url: url.to_string(),
                        message: error_chain(&e),
                    },
                    None,
                ),
            };
            if attempt >= ATTEMPTS {
                return Err(error);
            }
            tokio::time::sleep(wait.unwrap_or_else(|| backoff(attempt))).await;
        }
    }
}

fn static_method(method: &reqwest::Method) -> &'static str {
    match *method {
        reqwest::Method::PUT => "PUT",
        reqwest::Method::POST => "POST",
        reqwest::Method::HEAD => "HEAD",
        reqwest::Method::DELETE => "DELETE",
        _ => "GET",
    }
}

/// The body of a 2xx response, or the error it carries: `CopyObject`,
/// `UploadPartCopy` and `CompleteMultipartUpload` can fail after a 200
/// status, with an error document in the body.
async fn body_unless_error(
    response: reqwest::Response,
    method: &'static str,
    url: &url::Url,
) -> Result<String, CopyError> {
    let text = response.text().await.unwrap_or_default();
    if text.contains("<Error>") {
        let (code, message) = error_document(&text);
        return Err(CopyError::Status {
            method,
            url: url.to_string(),
            status: 200,
            code,
            message,
        });
    }
    Ok(text)
}

fn protocol(url: &url::Url, message: &str) -> CopyError {
    CopyError::Protocol {
        url: url.to_string(),
        message: message.to_owned(),
    }
}

/// S3's URI encoding: every byte but the unreserved ones (and `/` in keys)
/// as `%XX`, so the path on the wire is exactly the canonical one signed.
pub fn uri_encode(value: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A base64 SHA-256 (as S3 reports checksums) as lowercase hex.
fn base64_to_hex(text: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()?;
    (bytes.len() == 32).then(|| hex::encode(bytes))
}

/// Code and message of an S3 error document (empty when there is none).
fn error_document(text: &str) -> (String, String) {
    (
        xml_text(text, "Code").unwrap_or_default(),
        xml_text(text, "Message").unwrap_or_default(),
    )
}

/// The text of the first element named `name` in an XML document.
fn xml_text(text: &str, name: &str) -> Option<String> {
    let doc = roxmltree::Document::parse(text).ok()?;
    doc.descendants()
        .find(|n| n.is_element() && n.tag_name().name() == name)
        .and_then(|n| n.text())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_documents_are_read() {
        let text =
            "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>no</Message></Error>";
        assert_eq!(error_document(text), ("AccessDenied".into(), "no".into()));
        assert_eq!(error_document("garbage"), (String::new(), String::new()));
    }

    #[test]
    fn keys_are_encoded_once_keeping_slashes() {
        assert_eq!(uri_encode("raw/a b(1).zip", false), "raw/a%20b%281%29.zip");
        assert_eq!(uri_encode("a/b", true), "a%2Fb");
    }
}
