//! A small S3 client for the operator's buckets, on the host's own HTTP
//! client and SigV4 signer.
//!
//! Owns: object PUT (single and multipart), GET, HEAD and DELETE, with
//! retries of transient failures, and the S3 error document. Requests are
//! always signed with the operator's credentials; they never reach plugins.
//! Why not `object_store`'s S3 backend: it requires aws-lc-rs (a cmake/C
//! build on every machine), and cannot copy across buckets, which server-side
//! sync needs.
//!
//! Addressing is path-style (`{endpoint}/{bucket}/{key}`), which AWS and every
//! S3-compatible server accept.

use bytes::Bytes;

use super::sigv4::{self, Credentials};
use super::{backoff, error_chain, retry_after};

/// Parts of a multipart upload (S3's minimum part size is 5 MiB).
pub const PART_BYTES: usize = 16 << 20;
/// Attempts per request for transient failures.
const ATTEMPTS: u32 = 4;

/// An S3 request that failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The server answered with an error status.
    #[error("S3 {method} {url} answered HTTP {status}: {code} {message}")]
    Status {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The status.
        status: u16,
        /// S3 error code, e.g. `AccessDenied`.
        code: String,
        /// S3 error message.
        message: String,
    },
    /// Connection failure, after retries.
    #[error("S3 {method} {url}: {message}")]
    Network {
        /// The method.
        method: String,
        /// The URL.
        url: String,
        /// The cause chain.
        message: String,
    },
    /// A response that is not what S3 sends.
    #[error("S3 {url}: unexpected response: {message}")]
    Protocol {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
}

/// Where a bucket is served and how to sign for it.
#[derive(Debug, Clone)]
pub struct S3Client {
    http: reqwest::Client,
    endpoint: url::Url,
    region: String,
    credentials: Credentials,
}

/// Metadata of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// ETag, quotes removed.
    pub etag: Option<String>,
}

impl S3Client {
    /// A client for `endpoint` (e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:9000`) in `region`.
    pub fn new(
        http: reqwest::Client,
        endpoint: url::Url,
        region: String,
        credentials: Credentials,
    ) -> Self {
        Self {
            http,
            endpoint,
            region,
            credentials,
        }
    }

    /// The endpoint.
    pub fn endpoint(&self) -> &url::Url {
        &self.endpoint
    }

    /// The URL of an object (or of the bucket when `key` is empty).
    pub fn object_url(&self, bucket: &str, key: &str, query: &str) -> Result<url::Url, S3Error> {
        let base = self.endpoint.as_str().trim_end_matches('/');
        let mut text = format!("{base}/{}", sigv4::uri_encode(bucket, true));
        if !key.is_empty() {
            text.push('/');
            text.push_str(&sigv4::uri_encode(key, false));
        }
        if !query.is_empty() {
            text.push('?');
            text.push_str(query);
        }
        url::Url::parse(&text).map_err(|e| S3Error::Protocol {
            url: text.clone(),
            message: e.to_string(),
        })
    }

    /// Sends one signed request, retrying transient failures. Returns the
    /// response of a 2xx status; a 404 of GET/HEAD comes back as `Ok(None)`.
    async fn send(
        &self,
        method: reqwest::Method,
        url: url::Url,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Option<reqwest::Response>, S3Error> {
        let payload_hash = sigv4::payload_hash(&body);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let signed = sigv4::sign(
                method.as_str(),
                &url,
                headers,
                &payload_hash,
                &self.credentials,
                &self.region,
                "s3",
                &sigv4::amz_date_now(),
            );
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .body(body.clone());
            for (name, value) in headers.iter().copied() {
                request = request.header(name, value);
            }
            for (name, value) in signed {
                request = request.header(name, value);
            }
            let (error, wait) = match request.send().await {
                Ok(response) if response.status().is_success() => return Ok(Some(response)),
                Ok(response)
                    if response.status() == reqwest::StatusCode::NOT_FOUND
                        && matches!(method, reqwest::Method::GET | reqwest::Method::HEAD) =>
                {
                    return Ok(None);
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    let wait = retry_after(response.headers());
                    let text = response.text().await.unwrap_or_default();
                    let (code, message) = error_document(&text);
                    let error = S3Error::Status {
                        method: method.to_string(),
                        url: url.to_string(),
                        status,
                        code,
                        message,
                    };
                    if !(status == 429 || status >= 500) {
                        return Err(error);
                    }
                    (error, wait)
                }
                Err(e) => (
                    S3Error::Network {
                        method: method.to_string(),
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

    /// [`Self::send`] for requests whose success always has a response
    /// (anything but a GET or HEAD of a missing object).
    async fn send_expecting_body(
        &self,
        method: reqwest::Method,
        url: url::Url,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<reqwest::Response, S3Error> {
        let what = url.clone();
        self.send(method, url, headers, body)
            .await?
            .ok_or_else(|| protocol(&what, "no response"))
    }

    /// Creates a bucket (used by tests and first-time setup).
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let url = self.object_url(bucket, "", "")?;
        self.send(reqwest::Method::PUT, url, &[], Bytes::new())
            .await
            .map(|_| ())
    }

    /// Stores an object in one request.
    pub async fn put(&self, bucket: &str, key: &str, body: Bytes) -> Result<(), S3Error> {
        let url = self.object_url(bucket, key, "")?;
        self.send(
            reqwest::Method::PUT,
            url,
            &[("content-type", "application/octet-stream")],
            body,
        )
        .await
        .map(|_| ())
    }

    /// Reads an object, or `None` when it does not exist.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, S3Error> {
        let url = self.object_url(bucket, key, "")?;
        let Some(response) = self
            .send(reqwest::Method::GET, url.clone(), &[], Bytes::new())
            .await?
        else {
            return Ok(None);
        };
        response
            .bytes()
            .await
            .map(Some)
            .map_err(|e| S3Error::Network {
                method: "GET".into(),
                url: url.to_string(),
                message: error_chain(&e),
            })
    }

    /// An object's size and ETag, or `None` when it does not exist.
    pub async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectInfo>, S3Error> {
        let url = self.object_url(bucket, key, "")?;
        let Some(response) = self
            .send(reqwest::Method::HEAD, url, &[], Bytes::new())
            .await?
        else {
            return Ok(None);
        };
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        Ok(Some(ObjectInfo {
            size: header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
            etag: header("etag").map(|e| e.trim_matches('"').to_owned()),
        }))
    }

    /// Uploads a local file: one PUT when small, else a multipart upload in
    /// [`PART_BYTES`] parts (aborted on failure, so no orphan parts linger).
    /// The object appears only when complete, under its final key.
    pub async fn upload_file(
        &self,
        bucket: &str,
        key: &str,
        path: &std::path::Path,
    ) -> Result<(), S3Error> {
        let io = |e: std::io::Error| S3Error::Protocol {
            url: format!("file://{}", path.display()),
            message: e.to_string(),
        };
        let size = tokio::fs::metadata(path).await.map_err(io)?.len();
        if size <= PART_BYTES as u64 {
            let body = tokio::fs::read(path).await.map_err(io)?;
            return self.put(bucket, key, Bytes::from(body)).await;
        }
        let upload_id = self.create_multipart(bucket, key).await?;
        let result = self.upload_parts(bucket, key, &upload_id, path).await;
        match result {
            Ok(etags) => {
                self.complete_multipart(bucket, key, &upload_id, &etags)
                    .await
            }
            Err(error) => {
                self.abort_multipart(bucket, key, &upload_id).await;
                Err(error)
            }
        }
    }

    async fn create_multipart(&self, bucket: &str, key: &str) -> Result<String, S3Error> {
        let url = self.object_url(bucket, key, "uploads=")?;
        let response = self
            .send_expecting_body(reqwest::Method::POST, url.clone(), &[], Bytes::new())
            .await?;
        let text = response.text().await.unwrap_or_default();
        xml_text(&text, "UploadId").ok_or_else(|| S3Error::Protocol {
            url: url.to_string(),
            message: format!("no UploadId in {text}"),
        })
    }

    async fn upload_parts(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        path: &std::path::Path,
    ) -> Result<Vec<String>, S3Error> {
        use tokio::io::AsyncReadExt;
        let io = |e: std::io::Error| S3Error::Protocol {
            url: format!("file://{}", path.display()),
            message: e.to_string(),
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let mut etags = Vec::new();
        loop {
            let mut part = Vec::with_capacity(PART_BYTES);
            let read = (&mut file)
                .take(PART_BYTES as u64)
                .read_to_end(&mut part)
                .await
                .map_err(io)?;
            if read == 0 {
                break;
            }
            let number = etags.len() + 1;
            let query = format!(
                "partNumber={number}&uploadId={}",
                sigv4::uri_encode(upload_id, true)
            );
            let url = self.object_url(bucket, key, &query)?;
            let response = self
                .send_expecting_body(reqwest::Method::PUT, url.clone(), &[], Bytes::from(part))
                .await?;
            let etag = response
                .headers()
                .get("etag")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| S3Error::Protocol {
                    url: url.to_string(),
                    message: "UploadPart answered without an ETag".into(),
                })?;
            etags.push(etag);
        }
        Ok(etags)
    }

    async fn complete_multipart(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        etags: &[String],
    ) -> Result<(), S3Error> {
        let url = self.object_url(
            bucket,
            key,
            &format!("uploadId={}", sigv4::uri_encode(upload_id, true)),
        )?;
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
        let response = self
            .send_expecting_body(
                reqwest::Method::POST,
                url.clone(),
                &[("content-type", "application/xml")],
                Bytes::from(body),
            )
            .await?;
        body_unless_error(response, "POST", &url).await.map(|_| ())
    }
}

/// The largest object one `CopyObject` may copy; larger ones are copied in
/// parts with `UploadPartCopy`.
pub const MAX_SINGLE_COPY: u64 = 5 << 30;
/// Part size of a multipart server-side copy.
const COPY_PART_BYTES: u64 = 1 << 30;

/// A completed server-side copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// SHA-256 of the copy as computed by the server (lowercase hex), when
    /// the server supports checksums (single-part copies only).
    pub sha256: Option<String>,
}

impl S3Client {
    /// Copies `source_bucket/source_key` to `bucket/key` inside the server:
    /// no object bytes pass through the agent. Objects up to 5 GiB are copied
    /// with one `CopyObject` asking for a SHA-256 of the copy; larger ones
    /// with `UploadPartCopy` in 1 GiB parts (`size` must then be known).
    pub async fn copy(
        &self,
        source_bucket: &str,
        source_key: &str,
        bucket: &str,
        key: &str,
        size: Option<u64>,
    ) -> Result<Copied, S3Error> {
        let copy_source = format!(
            "/{}/{}",
            sigv4::uri_encode(source_bucket, true),
            sigv4::uri_encode(source_key, false)
        );
        match size {
            Some(size) if size > MAX_SINGLE_COPY => {
                self.copy_in_parts(&copy_source, bucket, key, size).await?;
                Ok(Copied { sha256: None })
            }
            _ => {
                let url = self.object_url(bucket, key, "")?;
                let response = self
                    .send_expecting_body(
                        reqwest::Method::PUT,
                        url.clone(),
                        &[
                            ("x-amz-copy-source", &copy_source),
                            ("x-amz-checksum-algorithm", "SHA256"),
                        ],
                        Bytes::new(),
                    )
                    .await?;
                let text = body_unless_error(response, "PUT", &url).await?;
                Ok(Copied {
                    sha256: xml_text(&text, "ChecksumSHA256").and_then(|b| base64_to_hex(&b)),
                })
            }
        }
    }

    async fn copy_in_parts(
        &self,
        copy_source: &str,
        bucket: &str,
        key: &str,
        size: u64,
    ) -> Result<(), S3Error> {
        let upload_id = self.create_multipart(bucket, key).await?;
        let mut etags = Vec::new();
        let mut start = 0;
        let mut result = Ok(());
        while start < size {
            let end = (start + COPY_PART_BYTES).min(size) - 1;
            let number = etags.len() + 1;
            let query = format!(
                "partNumber={number}&uploadId={}",
                sigv4::uri_encode(&upload_id, true)
            );
            let range = format!("bytes={start}-{end}");
            let outcome = async {
                let url = self.object_url(bucket, key, &query)?;
                let response = self
                    .send_expecting_body(
                        reqwest::Method::PUT,
                        url.clone(),
                        &[
                            ("x-amz-copy-source", copy_source),
                            ("x-amz-copy-source-range", &range),
                        ],
                        Bytes::new(),
                    )
                    .await?;
                let text = body_unless_error(response, "PUT", &url).await?;
                xml_text(&text, "ETag")
                    .ok_or_else(|| protocol(&url, "UploadPartCopy answered without an ETag"))
            }
            .await;
            match outcome {
                Ok(etag) => etags.push(etag),
                Err(error) => {
                    result = Err(error);
                    break;
                }
            }
            start = end + 1;
        }
        match result {
            Ok(()) => {
                self.complete_multipart(bucket, key, &upload_id, &etags)
                    .await
            }
            Err(error) => {
                self.abort_multipart(bucket, key, &upload_id).await;
                Err(error)
            }
        }
    }

    async fn abort_multipart(&self, bucket: &str, key: &str, upload_id: &str) {
        let query = format!("uploadId={}", sigv4::uri_encode(upload_id, true));
        let aborted = match self.object_url(bucket, key, &query) {
            Ok(url) => self
                .send(reqwest::Method::DELETE, url, &[], Bytes::new())
                .await
                .map(|_| ()),
            Err(error) => Err(error),
        };
        if let Err(error) = aborted {
            tracing::warn!(bucket, key, error = %error, "Could not abort a failed multipart upload.");
        }
    }

    /// The SHA-256 the server stored for an object (lowercase hex), when it
    /// keeps one.
    pub async fn stored_sha256(&self, bucket: &str, key: &str) -> Result<Option<String>, S3Error> {
        let url = self.object_url(bucket, key, "")?;
        let Some(response) = self
            .send(
                reqwest::Method::HEAD,
                url,
                &[("x-amz-checksum-mode", "ENABLED")],
                Bytes::new(),
            )
            .await?
        else {
            return Ok(None);
        };
        Ok(response
            .headers()
            .get("x-amz-checksum-sha256")
            .and_then(|v| v.to_str().ok())
            .and_then(base64_to_hex))
    }

    /// Every key under `prefix` (ListObjectsV2, following continuation
    /// tokens).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, S3Error> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = format!("list-type=2&prefix={}", sigv4::uri_encode(prefix, true));
            if let Some(token) = &token {
                query.push_str(&format!(
                    "&continuation-token={}",
                    sigv4::uri_encode(token, true)
                ));
            }
            let url = self.object_url(bucket, "", &query)?;
            let response = self
                .send(reqwest::Method::GET, url.clone(), &[], Bytes::new())
                .await?
                .ok_or_else(|| protocol(&url, "the bucket does not exist"))?;
            let text = response.text().await.unwrap_or_default();
            let doc =
                roxmltree::Document::parse(&text).map_err(|e| protocol(&url, &e.to_string()))?;
            keys.extend(
                doc.descendants()
                    .filter(|n| n.is_element() && n.tag_name().name() == "Key")
                    .filter_map(|n| n.text().map(str::to_owned)),
            );
            let truncated = xml_text(&text, "IsTruncated").is_some_and(|t| t == "true");
            match xml_text(&text, "NextContinuationToken") {
                Some(next) if truncated => token = Some(next),
                _ => break,
            }
        }
        Ok(keys)
    }

    /// Deletes an object (absent objects are not an error).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        let url = self.object_url(bucket, key, "")?;
        self.send(reqwest::Method::DELETE, url, &[], Bytes::new())
            .await
            .map(|_| ())
    }
}

/// The body of a 2xx response, or the error it carries: `CopyObject`,
/// `UploadPartCopy` and `CompleteMultipartUpload` can fail after a 200
/// status, with an error document in the body.
async fn body_unless_error(
    response: reqwest::Response,
    method: &str,
    url: &url::Url,
) -> Result<String, S3Error> {
    let text = response.text().await.unwrap_or_default();
    if text.contains("<Error>") {
        let (code, message) = error_document(&text);
        return Err(S3Error::Status {
            method: method.to_owned(),
            url: url.to_string(),
            status: 200,
            code,
            message,
        });
    }
    Ok(text)
}

fn protocol(url: &url::Url, message: &str) -> S3Error {
    S3Error::Protocol {
        url: url.to_string(),
        message: message.to_owned(),
    }
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

/// Credentials of the operator from the standard environment variables.
pub fn credentials_from_env() -> Option<Credentials> {
    let access_key_id = std::env::var("AWS_ACCESS_KEY_ID")
        .ok()
        .filter(|v| !v.is_empty())?;
    let secret_access_key = std::env::var("AWS_SECRET_ACCESS_KEY")
        .ok()
        .filter(|v| !v.is_empty())?;
    Some(Credentials {
        access_key_id,
        secret_access_key,
        session_token: std::env::var("AWS_SESSION_TOKEN")
            .ok()
            .filter(|v| !v.is_empty()),
    })
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
    fn object_urls_are_encoded_once_and_path_style() {
        let client = S3Client::new(
            crate::transfer::http_client().unwrap(),
            url::Url::parse("http://127.0.0.1:9000").unwrap(),
            "us-east-1".into(),
            Credentials {
                access_key_id: "a".into(),
                secret_access_key: "b".into(),
                session_token: None,
            },
        );
        let url = client.object_url("lake", "raw/a b(1).zip", "").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9000/lake/raw/a%20b%281%29.zip"
        );
    }
}
