//! The lake: raw zone, curated Parquet tables, and the `_cryptolake/` state.
//!
//! Owns: where things go ([`layout`]), writing Parquet ([`parquet`]), the
//! per-artifact manifest that decides what is done ([`manifest`]), and
//! atomic publication on either backend: a local directory (staging files
//! inside the lake, renamed into place after `fsync`) or an S3 bucket
//! (staging files on local disk, uploaded with a single PUT or a multipart
//! upload, which S3 makes visible only when complete). Nothing is ever visible
//! under its final name before it is complete. It must not fetch from sources
//! or call plugins.

pub mod inspect;
pub mod layout;
pub mod manifest;
pub mod outputs;
pub mod parquet;

/// Fixtures for the lake's unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::plugin::PartitionValues;

    /// The partition of a Binance spot BTCUSDT kline file.
    pub fn spot_btcusdt(interval: &str, period: &str) -> PartitionValues {
        PartitionValues {
            exchange: "binance".into(),
            market: "spot".into(),
            data_type: "klines".into(),
            symbol: "BTCUSDT".into(),
            interval: Some(interval.into()),
            period: period.into(),
        }
    }
}

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::config::ParquetConfig;
use crate::transfer::s3::{S3Client, S3Error};

/// How a server-side copy was verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CopyVerification {
    /// The server computed the copy's SHA-256 while copying.
    ServerChecksum,
    /// The server reported the SHA-256 it stored for the copy.
    StoredChecksum,
    /// The server keeps no checksum; the agent read the copy back and hashed
    /// it (the only case in which archive bytes pass through the agent).
    ReadBack,
}

/// The result of a server-side copy into the lake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectCopy {
    /// Copied under its final key, with the SHA-256 of the copy.
    Verified {
        /// SHA-256 of the copy.
        sha256: String,
        /// How it was established.
        verification: CopyVerification,
        /// Bytes read back for verification (0 unless `ReadBack`).
        bytes_read: u64,
    },
    /// The copy did not match the expected SHA-256; it was moved to the
    /// quarantine key, and nothing was written under the final key.
    Mismatch {
        /// SHA-256 of the copy.
        actual: String,
    },
}

/// A lake failure.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// Local I/O failed.
    #[error("lake path {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The S3 bucket refused or failed a request.
    #[error("lake object `{key}`: {source}")]
    S3 {
        /// The key.
        key: String,
        /// The cause.
        source: Box<S3Error>,
    },
    /// The operation needs an S3 lake, and this one is a local directory.
    #[error("{0} needs an s3:// lake")]
    NotS3(&'static str),
    /// A manifest could not be read or written.
    #[error("manifest `{key}`: {message}")]
    Manifest {
        /// The key.
        key: String,
        /// What went wrong.
        message: String,
    },
}

#[derive(Debug, Clone)]
enum Backend {
    Local { root: PathBuf },
    S3(Box<S3Backend>),
}

#[derive(Debug, Clone)]
struct S3Backend {
    client: S3Client,
    bucket: String,
    prefix: String,
}

impl S3Backend {
    fn object(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn error(&self, key: &str) -> impl FnOnce(S3Error) -> LakeError {
        let key = self.object(key);
        move |source| LakeError::S3 {
            key,
            source: Box::new(source),
        }
    }
}

/// A lake in a local directory or an S3 bucket.
#[derive(Debug, Clone)]
pub struct Lake {
    backend: Backend,
    staging: PathBuf,
    parquet: ParquetConfig,
}

impl Lake {
    /// Opens (creating if needed) a lake in the local directory `root`.
    pub fn open_local(root: &Path) -> Result<Self, LakeError> {
        let io = |source| LakeError::Io {
            path: root.to_owned(),
            source,
        };
        std::fs::create_dir_all(root).map_err(io)?;
        let root = root.canonicalize().map_err(io)?;
        Ok(Self {
            staging: root.join(layout::STAGING_DIR),
            backend: Backend::Local { root },
            parquet: ParquetConfig::default(),
        })
    }

    /// A lake under `prefix` in an S3 bucket; files are staged in `staging`.
    pub fn open_s3(client: S3Client, bucket: &str, prefix: &str, staging: &Path) -> Self {
        let prefix = prefix.trim_matches('/');
        Self {
            backend: Backend::S3(Box::new(S3Backend {
                client,
                bucket: bucket.to_owned(),
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
            })),
            staging: staging.to_owned(),
            parquet: ParquetConfig::default(),
        }
    }

    /// The same lake, writing Parquet with `settings`.
    pub fn with_parquet(mut self, settings: ParquetConfig) -> Self {
        self.parquet = settings;
        self
    }

    /// How this lake's Parquet files are encoded.
    pub fn parquet(&self) -> ParquetConfig {
        self.parquet
    }

    /// Whether publishing a staging file makes it durable with `fsync` where
    /// it is (a local lake), so syncing it early shortens the publish; an
    /// S3 lake uploads it instead.
    pub fn publishes_with_fsync(&self) -> bool {
        matches!(self.backend, Backend::Local { .. })
    }

    /// Where the lake is, for messages: a directory or `s3://bucket/prefix`.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Local { root } => root.display().to_string(),
            Backend::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        }
    }

    /// The S3 endpoint of the lake, when it is in a bucket.
    pub fn s3_endpoint(&self) -> Option<&url::Url> {
        match &self.backend {
            Backend::S3(s3) => Some(s3.client.endpoint()),
            Backend::Local { .. } => None,
        }
    }

    /// Copies `source_bucket/source_key` into the lake under `key` inside the
    /// S3 service (no archive bytes through the agent), verifying it against
    /// `expected` (SHA-256 hex) when given. The copy lands under a staging key
    /// first and is promoted only when verified; a mismatch goes to
    /// `quarantine_key`. Errors when the lake is not in S3 or the server
    /// cannot copy (e.g. the source bucket is not on the same service).
    pub async fn copy_in(
        &self,
        source_bucket: &str,
        source_key: &str,
        size: Option<u64>,
        key: &str,
        expected: Option<&str>,
        quarantine_key: &str,
    ) -> Result<DirectCopy, LakeError> {
        let Backend::S3(s3) = &self.backend else {
            return Err(LakeError::NotS3("a server-side copy"));
        };
        let staging = format!("{}/direct-{:016x}", layout::STAGING_DIR, fastrand::u64(..));
        let copied = s3
            .client
            .copy(
                source_bucket,
                source_key,
                &s3.bucket,
                &s3.object(&staging),
                size,
            )
            .await
            .map_err(s3.error(&staging))?;
        let result = self
            .verify_and_promote(
                s3,
                &staging,
                size,
                copied.sha256,
                key,
                expected,
                quarantine_key,
            )
            .await;
        // The staging object goes whatever happened.
        if let Err(error) = s3.client.delete(&s3.bucket, &s3.object(&staging)).await {
            tracing::warn!(key = %staging, error = %error, "Could not delete a staging object.");
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn verify_and_promote(
        &self,
        s3: &S3Backend,
        staging: &str,
        size: Option<u64>,
        server_sha256: Option<String>,
        key: &str,
        expected: Option<&str>,
        quarantine_key: &str,
    ) -> Result<DirectCopy, LakeError> {
        let (sha256, verification, bytes_read) = match server_sha256 {
            Some(sha) => (sha, CopyVerification::ServerChecksum, 0),
            None => match s3
                .client
                .stored_sha256(&s3.bucket, &s3.object(staging))
                .await
                .map_err(s3.error(staging))?
            {
                Some(sha) => (sha, CopyVerification::StoredChecksum, 0),
                None => {
                    let bytes = s3
                        .client
                        .get(&s3.bucket, &s3.object(staging))
                        .await
                        .map_err(s3.error(staging))?
                        .unwrap_or_default();
                    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
                    (sha, CopyVerification::ReadBack, bytes.len() as u64)
                }
            },
        };
        let target = match expected {
            Some(expected) if expected != sha256 => quarantine_key,
            _ => key,
        };
        s3.client
            .copy(
                &s3.bucket,
                &s3.object(staging),
                &s3.bucket,
                &s3.object(target),
                size,
            )
            .await
            .map_err(s3.error(target))?;
        if target == quarantine_key {
            return Ok(DirectCopy::Mismatch { actual: sha256 });
        }
        Ok(DirectCopy::Verified {
            sha256,
            verification,
            bytes_read,
        })
    }

    /// A staging file (inside the lake when it is local, so publishing is a
    /// rename). Dropped unpublished, it is deleted.
    pub fn staging_file(&self) -> Result<tempfile::NamedTempFile, LakeError> {
        let io = |source| LakeError::Io {
            path: self.staging.clone(),
            source,
        };
        std::fs::create_dir_all(&self.staging).map_err(io)?;
        tempfile::Builder::new()
            .prefix("stage-")
            .tempfile_in(&self.staging)
            .map_err(io)
    }

    /// Moves a finished staging file to `key`, atomically replacing any
    /// previous object there.
    pub async fn publish(
        &self,
        staged: tempfile::NamedTempFile,
        key: &str,
    ) -> Result<(), LakeError> {
        match &self.backend {
            Backend::Local { root } => {
                let dest = root.join(key);
                let io = |source| LakeError::Io {
                    path: dest.clone(),
                    source,
                };
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                staged.as_file().sync_all().map_err(io)?;
                staged.persist(&dest).map_err(|e| io(e.error))?;
                Ok(())
            }
            Backend::S3(s3) => s3
                .client
                .upload_file(&s3.bucket, &s3.object(key), staged.path())
                .await
                .map_err(s3.error(key)),
        }
    }

    /// Writes a small object atomically.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        match &self.backend {
            Backend::Local { .. } => {
                let mut staged = self.staging_file()?;
                std::io::Write::write_all(&mut staged, &bytes).map_err(|source| LakeError::Io {
                    path: staged.path().to_owned(),
                    source,
                })?;
                self.publish(staged, key).await
            }
            Backend::S3(s3) => s3
                .client
                .put(&s3.bucket, &s3.object(key), Bytes::from(bytes))
                .await
                .map_err(s3.error(key)),
        }
    }

    /// Reads an object, or `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, LakeError> {
        match &self.backend {
            Backend::Local { root } => {
                let path = root.join(key);
                let read = tokio::fs::read(&path).await;
                Ok(unless_missing(read, path)?.map(Bytes::from))
            }
            Backend::S3(s3) => s3
                .client
                .get(&s3.bucket, &s3.object(key))
                .await
                .map_err(s3.error(key)),
        }
    }

    /// Every key under `prefix` (relative to the lake), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        let mut keys = match &self.backend {
            Backend::Local { root } => {
                let start = root.join(prefix);
                let mut keys = Vec::new();
                let mut stack = vec![start];
                while let Some(dir) = stack.pop() {
                    let entries = match std::fs::read_dir(&dir) {
                        Ok(entries) => entries,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(source) => return Err(LakeError::Io { path: dir, source }),
                    };
                    for entry in entries.flatten() {
                        let path = entry.path();
                        if path.is_dir() {
                            stack.push(path);
                        } else if let Ok(relative) = path.strip_prefix(root) {
                            keys.push(relative.to_string_lossy().replace('\\', "/"));
                        }
                    }
                }
                keys
            }
            Backend::S3(s3) => s3
                .client
                .list(&s3.bucket, &s3.object(prefix))
                .await
                .map_err(s3.error(prefix))?
                .into_iter()
                .filter_map(|k| k.strip_prefix(&s3.prefix).map(str::to_owned))
                .collect(),
        };
        keys.sort();
        Ok(keys)
    }

    /// Deletes an object; one that does not exist is not an error.
    pub async fn delete(&self, key: &str) -> Result<(), LakeError> {
        match &self.backend {
            Backend::Local { root } => {
                let path = root.join(key);
                let removed = tokio::fs::remove_file(&path).await;
                unless_missing(removed, path).map(|_| ())
            }
            Backend::S3(s3) => s3
                .client
                .delete(&s3.bucket, &s3.object(key))
                .await
                .map_err(s3.error(key)),
        }
    }

    /// The size of an object, or `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, LakeError> {
        match &self.backend {
            Backend::Local { root } => {
                let path = root.join(key);
                let metadata = tokio::fs::metadata(&path).await;
                Ok(unless_missing(metadata, path)?.map(|m| m.len()))
            }
            Backend::S3(s3) => s3
                .client
                .head(&s3.bucket, &s3.object(key))
                .await
                .map(|info| info.map(|i| i.size))
                .map_err(s3.error(key)),
        }
    }
}

/// A local file operation's result, with a missing file as `None` and any
/// other error naming the path.
fn unless_missing<T>(result: std::io::Result<T>, path: PathBuf) -> Result<Option<T>, LakeError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LakeError::Io { path, source }),
    }
}
