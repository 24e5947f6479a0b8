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

pub mod layout;
pub mod manifest;
pub mod parquet;

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::transfer::s3::{S3Client, S3Error};

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
        }
    }

    /// Where the lake is, for messages: a directory or `s3://bucket/prefix`.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Local { root } => root.display().to_string(),
            Backend::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        }
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
                match tokio::fs::read(&path).await {
                    Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(LakeError::Io { path, source }),
                }
            }
            Backend::S3(s3) => s3
                .client
                .get(&s3.bucket, &s3.object(key))
                .await
                .map_err(s3.error(key)),
        }
    }

    /// The size of an object, or `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, LakeError> {
        match &self.backend {
            Backend::Local { root } => {
                let path = root.join(key);
                match tokio::fs::metadata(&path).await {
                    Ok(meta) => Ok(Some(meta.len())),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(LakeError::Io { path, source }),
                }
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
