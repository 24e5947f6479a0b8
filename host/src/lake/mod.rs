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
pub mod staging;

/// Fixtures for the lake's unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use crate::wit::PartitionValues;

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

    /// A lake in an in-memory object store (conditional writes honoured).
    pub fn memory_lake() -> super::Lake {
        let storage = crate::storage::ObjectStorage {
            store: std::sync::Arc::new(object_store::memory::InMemory::new()),
            copier: None,
            attributes: Default::default(),
            conditional_writes: true,
            credential_source: "none needed".into(),
        };
        let staging = std::env::temp_dir().join("cryptolake-test-staging");
        super::Lake::open_object(storage, "memory://".into(), "lake", &staging)
    }
}

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};

use crate::config::ParquetConfig;
use crate::storage::ObjectStorage;
use crate::storage::s3_copy::CopyError;

/// Objects up to this size are written with one PUT; larger ones with a
/// multipart upload in parts of this size.
pub const PART_BYTES: usize = 16 << 20;

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

impl From<CopyVerification> for crate::telemetry::metrics::Verification {
    fn from(verification: CopyVerification) -> Self {
        match verification {
            CopyVerification::ServerChecksum => Self::ServerChecksum,
            CopyVerification::StoredChecksum => Self::StoredChecksum,
            CopyVerification::ReadBack => Self::ReadBack,
        }
    }
}

/// How an archive reached the lake; one spelling in manifest entries, run
/// reports and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TransferPath {
    /// A server-side copy: no archive bytes through the agent.
    Direct,
    /// Downloaded through the agent.
    Stream,
    /// Downloaded through the agent after a server-side copy failed
    /// (`transfer = "auto"`).
    StreamFallback,
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
        /// Requests the copy took (copies, checks, clean-up).
        requests: u32,
    },
    /// The copy did not match the expected SHA-256; it was moved to the
    /// quarantine key, and nothing was left under the final key.
    Mismatch {
        /// SHA-256 of the copy.
        actual: String,
    },
}

/// How a write treats an object already at its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteMode {
    /// Replace whatever is there.
    Overwrite,
    /// Write only if nothing is there (`If-None-Match: *`).
    Create,
    /// Write only if what is there is still this version (`If-Match`).
    Replace(Version),
}

/// The version of an object a reader saw, to replace it conditionally.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Version {
    /// ETag.
    pub etag: Option<String>,
    /// Version id, where the store keeps versions.
    pub version: Option<String>,
}

/// An object a listing found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Its key, relative to the lake.
    pub key: String,
    /// Its version, to replace it conditionally.
    pub version: Version,
    /// When the store last wrote it (the store's clock).
    pub last_modified: Option<time::OffsetDateTime>,
}

/// What a conditional write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The object is written.
    Written,
    /// Another writer got there first (the object exists, or changed since
    /// it was read); nothing was written.
    Conflict,
}

/// What publishing a staging file did.
#[derive(Debug)]
pub enum Published {
    /// The file is at its key.
    Written,
    /// Another writer got there first; the staging file is handed back.
    Conflict(tempfile::NamedTempFile),
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
    /// The object store refused or failed a request.
    #[error("lake object `{key}`: {message}")]
    Store {
        /// The key.
        key: String,
        /// The cause chain.
        message: String,
    },
    /// A server-side copy failed.
    #[error("lake object `{key}`: {source}")]
    Copy {
        /// The key.
        key: String,
        /// The cause.
        source: Box<CopyError>,
    },
    /// The operation needs an S3 lake, and this one is not.
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
    Object(Arc<ObjectBackend>),
}

#[derive(Debug)]
struct ObjectBackend {
    storage: ObjectStorage,
    /// The lake's prefix in the bucket, with a trailing `/` unless empty.
    prefix: String,
    url: String,
}

impl ObjectBackend {
    fn path(&self, key: &str) -> object_store::path::Path {
        object_store::path::Path::from(format!("{}{key}", self.prefix))
    }

    /// The lake-relative key of an object the store listed.
    fn key_of(&self, location: &object_store::path::Path) -> String {
        let location = location.as_ref();
        location
            .strip_prefix(self.prefix.as_str())
            .unwrap_or(location)
            .to_owned()
    }

    fn error(&self, key: &str) -> impl FnOnce(object_store::Error) -> LakeError {
        let key = format!("{}{key}", self.prefix);
        move |source| LakeError::Store {
            key,
            message: crate::transfer::error_chain(&source),
        }
    }

    fn copy_error(&self, key: &str) -> impl FnOnce(CopyError) -> LakeError {
        let key = format!("{}{key}", self.prefix);
        move |source| LakeError::Copy {
            key,
            source: Box::new(source),
        }
    }

    fn put_options(&self, mode: &WriteMode) -> PutOptions {
        PutOptions {
            mode: self.put_mode(mode),
            attributes: self.storage.attributes.clone(),
            ..PutOptions::default()
        }
    }

    fn put_mode(&self, mode: &WriteMode) -> PutMode {
        match mode {
            _ if !self.storage.conditional_writes => PutMode::Overwrite,
            WriteMode::Overwrite => PutMode::Overwrite,
            WriteMode::Create => PutMode::Create,
            WriteMode::Replace(version) if version.etag.is_none() && version.version.is_none() => {
                PutMode::Overwrite
            }
            WriteMode::Replace(version) => PutMode::Update(UpdateVersion {
                e_tag: version.etag.clone(),
                version: version.version.clone(),
            }),
        }
    }

    async fn put(&self, key: &str, bytes: Bytes, mode: &WriteMode) -> Result<Written, LakeError> {
        Ok(match self.put_versioned(key, bytes, mode).await? {
            Some(_) => Written::Written,
            None => Written::Conflict,
        })
    }

    /// [`ObjectBackend::put`], giving the version written (`None`: a lost
    /// race).
    async fn put_versioned(
        &self,
        key: &str,
        bytes: Bytes,
        mode: &WriteMode,
    ) -> Result<Option<Version>, LakeError> {
        let written = self
            .storage
            .store
            .put_opts(
                &self.path(key),
                PutPayload::from(bytes),
                self.put_options(mode),
            )
            .await;
        match written {
            Ok(result) => Ok(Some(Version {
                etag: result.e_tag,
                version: result.version,
            })),
            Err(error) => conflict_or(Err(error), self.error(key)).map(|_| None),
        }
    }

    /// Uploads a local file: one PUT when small, else a multipart upload
    /// (aborted on failure, so no parts linger), which the store makes
    /// visible only when complete.
    async fn upload(&self, file: &Path, key: &str, mode: &WriteMode) -> Result<Written, LakeError> {
        let io = |source| LakeError::Io {
            path: file.to_owned(),
            source,
        };
        let size = tokio::fs::metadata(file).await.map_err(io)?.len();
        if size <= PART_BYTES as u64 {
            let bytes = tokio::fs::read(file).await.map_err(io)?;
            return self.put(key, Bytes::from(bytes), mode).await;
        }
        // A multipart upload cannot be conditional in object_store: check
        // first. Two agents uploading the same large file at once both
        // succeed, with the same verified bytes.
        let path = self.path(key);
        match (self.put_mode(mode), self.storage.store.head(&path).await) {
            (PutMode::Create, Ok(_)) => return Ok(Written::Conflict),
            (PutMode::Update(version), Ok(meta)) if meta.e_tag != version.e_tag => {
                return Ok(Written::Conflict);
            }
            (PutMode::Update(_), Err(object_store::Error::NotFound { .. })) => {
                return Ok(Written::Conflict);
            }
            _ => {}
        }
        let options = object_store::PutMultipartOptions {
            attributes: self.storage.attributes.clone(),
            ..Default::default()
        };
        let mut upload = self
            .storage
            .store
            .put_multipart_opts(&path, options)
            .await
            .map_err(self.error(key))?;
        let sent = async {
            use tokio::io::AsyncReadExt;
            let mut reader = tokio::fs::File::open(file).await.map_err(io)?;
            loop {
                let mut part = Vec::with_capacity(PART_BYTES);
                let read = (&mut reader)
                    .take(PART_BYTES as u64)
                    .read_to_end(&mut part)
                    .await
                    .map_err(io)?;
                if read == 0 {
                    break;
                }
                upload
                    .put_part(PutPayload::from(part))
                    .await
                    .map_err(self.error(key))?;
            }
            upload.complete().await.map_err(self.error(key))
        }
        .await;
        match sent {
            Ok(_) => Ok(Written::Written),
            Err(error) => {
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(key, error = %abort, "Could not abort a failed multipart upload.");
                }
                Err(error)
            }
        }
    }
}

/// A conditional write's result: a lost race is [`Written::Conflict`], not an
/// error.
fn conflict_or(
    result: object_store::Result<()>,
    error: impl FnOnce(object_store::Error) -> LakeError,
) -> Result<Written, LakeError> {
    match result {
        Ok(()) => Ok(Written::Written),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(Written::Conflict),
        Err(other) => Err(error(other)),
    }
}

/// Where a lake's staging files go: a directory of this process's under
/// `root`, claimed (and the directories of dead agents swept) on first use.
#[derive(Debug)]
struct Staging {
    root: PathBuf,
    claim: std::sync::Mutex<Option<Arc<staging::StagingClaim>>>,
}

impl Staging {
    fn under(root: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            root,
            claim: std::sync::Mutex::new(None),
        })
    }

    fn claim(&self) -> std::io::Result<Arc<staging::StagingClaim>> {
        let mut claim = self
            .claim
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(claim) = claim.as_ref().filter(|c| c.dir().is_dir()) {
            return Ok(Arc::clone(claim));
        }
        let claimed = staging::StagingClaim::claim(&self.root)?;
        *claim = Some(Arc::clone(&claimed));
        Ok(claimed)
    }
}

/// A lake in a local directory or an object store.
#[derive(Debug, Clone)]
pub struct Lake {
    backend: Backend,
    staging: Arc<Staging>,
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
            staging: Staging::under(root.join(layout::STAGING_DIR)),
            backend: Backend::Local { root },
            parquet: ParquetConfig::default(),
        })
    }

    /// A lake under `prefix` in an opened object store (`url` names it in
    /// messages); files are staged in the local directory `staging`.
    pub fn open_object(storage: ObjectStorage, url: String, prefix: &str, staging: &Path) -> Self {
        let prefix = prefix.trim_matches('/');
        Self {
            backend: Backend::Object(Arc::new(ObjectBackend {
                storage,
                prefix: if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                },
                url,
            })),
            staging: Staging::under(staging.to_owned()),
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
    /// object store lake uploads it instead.
    pub fn publishes_with_fsync(&self) -> bool {
        matches!(self.backend, Backend::Local { .. })
    }

    /// Where the lake is, for messages: a directory or `s3://bucket/prefix`.
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Local { root } => root.display().to_string(),
            Backend::Object(object) => object.url.clone(),
        }
    }

    /// The lake bucket's base URL, when the lake is in S3 (where
    /// server-side copies can go).
    pub fn s3_bucket_url(&self) -> Option<&url::Url> {
        match &self.backend {
            Backend::Object(object) => object.storage.copier.as_ref().map(|c| c.bucket_url()),
            Backend::Local { .. } => None,
        }
    }

    /// Where the lake's credentials come from, for messages (no secrets);
    /// `None` for a local directory.
    pub fn credential_source(&self) -> Option<&str> {
        match &self.backend {
            Backend::Object(object) => Some(&object.storage.credential_source),
            Backend::Local { .. } => None,
        }
    }

    /// Whether the store honours conditional writes; `None` for a local
    /// directory, where creates are atomic links (see [`Lake::publish_as`]).
    pub async fn probe_conditional_writes(
        &self,
    ) -> Result<Option<crate::storage::Preconditions>, LakeError> {
        let Backend::Object(object) = &self.backend else {
            return Ok(None);
        };
        let key = format!("{}/probe-{:016x}", layout::STAGING_DIR, fastrand::u64(..));
        crate::storage::probe_conditional_writes(&object.storage, &object.path(&key))
            .await
            .map(Some)
            .map_err(object.error(&key))
    }

    /// Copies `source_bucket/source_key` into the lake under `key` inside the
    /// S3 service (no archive bytes through the agent), verifying it against
    /// `expected` (SHA-256 hex) when given; a mismatch goes to
    /// `quarantine_key`. When the server is known to return the copy's
    /// SHA-256, and `key` is new, the copy goes straight to `key` with
    /// `If-None-Match: *` (one request); otherwise to a staging key first,
    /// promoted only when verified. Errors when the lake is not in S3 or the
    /// server cannot copy (e.g. the source bucket is not on the same service).
    pub async fn copy_in(
        &self,
        source_bucket: &str,
        source_key: &str,
        size: Option<u64>,
        key: &str,
        expected: Option<&str>,
        quarantine_key: &str,
    ) -> Result<DirectCopy, LakeError> {
        let Backend::Object(object) = &self.backend else {
            return Err(LakeError::NotS3("a server-side copy"));
        };
        let Some(copier) = &object.storage.copier else {
            return Err(LakeError::NotS3("a server-side copy"));
        };
        let full = |key: &str| format!("{}{key}", object.prefix);
        let small = size.is_some_and(|s| s <= crate::storage::s3_copy::MAX_SINGLE_COPY);
        if small && copier.server_computes_checksums() {
            let copied = copier
                .copy(source_bucket, source_key, &full(key), size, true)
                .await;
            match copied {
                Ok(copied) => {
                    let mut requests = copied.requests;
                    let (sha256, verification) = match copied.sha256 {
                        Some(sha) => (sha, CopyVerification::ServerChecksum),
                        None => {
                            requests += 1;
                            match copier
                                .stored_sha256(&full(key))
                                .await
                                .map_err(object.copy_error(key))?
                            {
                                Some(sha) => (sha, CopyVerification::StoredChecksum),
                                None => (String::new(), CopyVerification::ReadBack),
                            }
                        }
                    };
                    let matches = expected.is_none_or(|e| e == sha256);
                    if verification != CopyVerification::ReadBack && matches {
                        return Ok(DirectCopy::Verified {
                            sha256,
                            verification,
                            bytes_read: 0,
                            requests,
                        });
                    }
                    // Not what was published (or unverifiable in place):
                    // it leaves the final key through the staging path.
                    let outcome = self
                        .verify_and_promote(
                            object,
                            copier,
                            key,
                            size,
                            None,
                            key,
                            expected,
                            quarantine_key,
                        )
                        .await;
                    let _ = object.storage.store.delete(&object.path(key)).await;
                    return match outcome? {
                        DirectCopy::Verified { .. } if !matches => {
                            Ok(DirectCopy::Mismatch { actual: sha256 })
                        }
                        other => Ok(other),
                    };
                }
                // The key exists (a republished archive): replace it through
                // a verified staging copy.
                Err(CopyError::AlreadyExists { .. }) => {}
                Err(other) => return Err(object.copy_error(key)(other)),
            }
        }
        let staging = format!("{}/direct-{:016x}", layout::STAGING_DIR, fastrand::u64(..));
        let copied = copier
            .copy(source_bucket, source_key, &full(&staging), size, false)
            .await
            .map_err(object.copy_error(&staging))?;
        let result = self
            .verify_and_promote(
                object,
                copier,
                &staging,
                size,
                copied.sha256,
                key,
                expected,
                quarantine_key,
            )
            .await;
        // The staging object goes whatever happened.
        if let Err(error) = object.storage.store.delete(&object.path(&staging)).await {
            tracing::warn!(key = %staging, error = %error, "Could not delete a staging object.");
        }
        result.map(|copy| match copy {
            DirectCopy::Verified {
                sha256,
                verification,
                bytes_read,
                requests,
            } => DirectCopy::Verified {
                sha256,
                verification,
                bytes_read,
                // The copy into staging and the delete after.
                requests: requests + copied.requests + 1,
            },
            mismatch => mismatch,
        })
    }

    /// Establishes the SHA-256 of the object at `staging` and copies it to
    /// `key` when it matches `expected`, else to `quarantine_key`.
    #[allow(clippy::too_many_arguments)]
    async fn verify_and_promote(
        &self,
        object: &ObjectBackend,
        copier: &crate::storage::s3_copy::S3Copier,
        staging: &str,
        size: Option<u64>,
        server_sha256: Option<String>,
        key: &str,
        expected: Option<&str>,
        quarantine_key: &str,
    ) -> Result<DirectCopy, LakeError> {
        let full = |key: &str| format!("{}{key}", object.prefix);
        let mut requests = 0;
        let (sha256, verification, bytes_read) = match server_sha256 {
            Some(sha) => (sha, CopyVerification::ServerChecksum, 0),
            None => {
                requests += 1;
                match copier
                    .stored_sha256(&full(staging))
                    .await
                    .map_err(object.copy_error(staging))?
                {
                    Some(sha) => (sha, CopyVerification::StoredChecksum, 0),
                    None => {
                        requests += 1;
                        let (sha, bytes) = self.hash_object(object, staging).await?;
                        (sha, CopyVerification::ReadBack, bytes)
                    }
                }
            }
        };
        let target = match expected {
            Some(expected) if expected != sha256 => quarantine_key,
            _ => key,
        };
        let promoted = copier
            .copy(copier.bucket(), &full(staging), &full(target), size, false)
            .await
            .map_err(object.copy_error(target))?;
        if target == quarantine_key {
            return Ok(DirectCopy::Mismatch { actual: sha256 });
        }
        Ok(DirectCopy::Verified {
            sha256,
            verification,
            bytes_read,
            requests: requests + promoted.requests,
        })
    }

    /// SHA-256 and size of an object, streamed through the agent.
    async fn hash_object(
        &self,
        object: &ObjectBackend,
        key: &str,
    ) -> Result<(String, u64), LakeError> {
        use sha2::Digest;
        let got = object
            .storage
            .store
            .get(&object.path(key))
            .await
            .map_err(object.error(key))?;
        let mut stream = got.into_stream();
        let mut hasher = sha2::Sha256::new();
        let mut bytes = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(object.error(key))?;
            bytes += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok((hex::encode(hasher.finalize()), bytes))
    }

    /// A staging file (inside the lake when it is local, so publishing is a
    /// rename). Dropped unpublished, it is deleted.
    pub fn staging_file(&self) -> Result<tempfile::NamedTempFile, LakeError> {
        let io = |source| LakeError::Io {
            path: self.staging.root.clone(),
            source,
        };
        let claim = self.staging.claim().map_err(io)?;
        tempfile::Builder::new()
            .prefix("stage-")
            .tempfile_in(claim.dir())
            .map_err(io)
    }

    /// Removes the staging files of agents no longer running (killed, say),
    /// and claims this process's staging directory.
    pub fn clean_staging(&self) -> Result<(), LakeError> {
        self.staging
            .claim()
            .map(drop)
            .map_err(|source| LakeError::Io {
                path: self.staging.root.clone(),
                source,
            })
    }

    /// Moves a finished staging file to `key`, atomically replacing any
    /// previous object there.
    pub async fn publish(
        &self,
        staged: tempfile::NamedTempFile,
        key: &str,
    ) -> Result<(), LakeError> {
        self.publish_as(staged, key, WriteMode::Overwrite)
            .await
            .map(|_| ())
    }

    /// Moves a finished staging file to `key`, as `mode` allows; on a
    /// conflict the staging file is handed back, untouched. In a local
    /// directory a create is an atomic hard link (which fails if the name
    /// exists), and a replace is checked, then renamed: atomic against other
    /// processes only for creates.
    pub async fn publish_as(
        &self,
        staged: tempfile::NamedTempFile,
        key: &str,
        mode: WriteMode,
    ) -> Result<Published, LakeError> {
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
                match mode {
                    WriteMode::Create => match staged.persist_noclobber(&dest) {
                        Ok(_) => Ok(Published::Written),
                        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                            Ok(Published::Conflict(e.file))
                        }
                        Err(e) => Err(io(e.error)),
                    },
                    WriteMode::Replace(ref version)
                        if local_version(&dest).as_ref() != Some(version) =>
                    {
                        Ok(Published::Conflict(staged))
                    }
                    WriteMode::Overwrite | WriteMode::Replace(_) => {
                        staged.persist(&dest).map_err(|e| io(e.error))?;
                        Ok(Published::Written)
                    }
                }
            }
            Backend::Object(object) => match object.upload(staged.path(), key, &mode).await? {
                Written::Written => Ok(Published::Written),
                Written::Conflict => Ok(Published::Conflict(staged)),
            },
        }
    }

    /// Writes a small object atomically.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        self.put_as(key, bytes, WriteMode::Overwrite)
            .await
            .map(|_| ())
    }

    /// Writes a small object atomically, as `mode` allows.
    pub async fn put_as(
        &self,
        key: &str,
        bytes: Vec<u8>,
        mode: WriteMode,
    ) -> Result<Written, LakeError> {
        match &self.backend {
            Backend::Local { .. } => {
                let mut staged = self.staging_file()?;
                std::io::Write::write_all(&mut staged, &bytes).map_err(|source| LakeError::Io {
                    path: staged.path().to_owned(),
                    source,
                })?;
                Ok(match self.publish_as(staged, key, mode).await? {
                    Published::Written => Written::Written,
                    Published::Conflict(_) => Written::Conflict,
                })
            }
            Backend::Object(object) => object.put(key, Bytes::from(bytes), &mode).await,
        }
    }

    /// Writes a small object atomically, as `mode` allows, and gives the
    /// version written, to replace it conditionally later; `None` when
    /// another writer got there first.
    pub async fn put_versioned(
        &self,
        key: &str,
        bytes: Vec<u8>,
        mode: WriteMode,
    ) -> Result<Option<Version>, LakeError> {
        match &self.backend {
            Backend::Local { root } => match self.put_as(key, bytes, mode).await? {
                Written::Written => Ok(Some(local_version(&root.join(key)).unwrap_or_default())),
                Written::Conflict => Ok(None),
            },
            Backend::Object(object) => object.put_versioned(key, Bytes::from(bytes), &mode).await,
        }
    }

    /// Reads an object, or `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, LakeError> {
        Ok(self.get_versioned(key).await?.map(|(bytes, _)| bytes))
    }

    /// Reads an object and the version read, to replace it conditionally.
    pub async fn get_versioned(&self, key: &str) -> Result<Option<(Bytes, Version)>, LakeError> {
        match &self.backend {
            Backend::Local { root } => {
                let path = root.join(key);
                let version = local_version(&path);
                let read = tokio::fs::read(&path).await;
                Ok(unless_missing(read, path)?
                    .map(|b| (Bytes::from(b), version.unwrap_or_default())))
            }
            Backend::Object(object) => {
                let got = match object.storage.store.get(&object.path(key)).await {
                    Ok(got) => got,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(other) => return Err(object.error(key)(other)),
                };
                let version = Version {
                    etag: got.meta.e_tag.clone(),
                    version: got.meta.version.clone(),
                };
                let bytes = got.bytes().await.map_err(object.error(key))?;
                Ok(Some((bytes, version)))
            }
        }
    }

    /// Every key under `prefix` (relative to the lake), as a stream: memory
    /// stays bounded however many there are. Local keys come in directory
    /// order, object store keys in the store's (lexicographic for S3).
    pub fn list_stream(&self, prefix: &str) -> BoxStream<'static, Result<String, LakeError>> {
        match &self.backend {
            Backend::Local { root } => local_keys(root.clone(), root.join(prefix)),
            Backend::Object(object) => {
                let object = Arc::clone(object);
                let listing = object
                    .storage
                    .store
                    .list(Some(&object.path(prefix.trim_end_matches('/'))));
                let prefix = prefix.to_owned();
                listing
                    .map(move |meta| {
                        let meta = meta.map_err(object.error(&prefix))?;
                        Ok(object.key_of(&meta.location))
                    })
                    .boxed()
            }
        }
    }

    /// Every object under `prefix` (relative to the lake) with its version
    /// and the store's time of its last write, sorted by key. For small
    /// prefixes: one listing, no request per object.
    pub async fn list_versions(&self, prefix: &str) -> Result<Vec<Listed>, LakeError> {
        let mut listed = match &self.backend {
            Backend::Local { root } => {
                let mut listed = Vec::new();
                for key in self.list(prefix).await? {
                    let path = root.join(&key);
                    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                    listed.push(Listed {
                        version: local_version(&path).unwrap_or_default(),
                        last_modified: modified.map(time::OffsetDateTime::from),
                        key,
                    });
                }
                listed
            }
            Backend::Object(object) => {
                let mut listing = object
                    .storage
                    .store
                    .list(Some(&object.path(prefix.trim_end_matches('/'))));
                let mut listed = Vec::new();
                while let Some(meta) = listing.next().await {
                    let meta = meta.map_err(object.error(prefix))?;
                    listed.push(Listed {
                        key: object.key_of(&meta.location),
                        version: Version {
                            etag: meta.e_tag,
                            version: meta.version,
                        },
                        last_modified: time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(
                            meta.last_modified.timestamp_nanos_opt().unwrap_or(0),
                        ))
                        .ok(),
                    });
                }
                listed
            }
        };
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(listed)
    }

    /// Every key under `prefix` (relative to the lake), sorted. For small
    /// prefixes; walk large ones with [`Lake::list_stream`].
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, LakeError> {
        let mut keys: Vec<String> = self
            .list_stream(prefix)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
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
            Backend::Object(object) => match object.storage.store.delete(&object.path(key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(other) => Err(object.error(key)(other)),
            },
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
            Backend::Object(object) => match object.storage.store.head(&object.path(key)).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(other) => Err(object.error(key)(other)),
            },
        }
    }
}

/// A local file's "version" for conditional replaces: its size and
/// modification time.
fn local_version(path: &Path) -> Option<Version> {
    let metadata = std::fs::metadata(path).ok()?;
    let modified = metadata
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    Some(Version {
        etag: Some(format!("{}-{}", metadata.len(), modified.as_nanos())),
        version: None,
    })
}

/// The files under `start`, as keys relative to `root`, walked on a blocking
/// thread a directory at a time.
fn local_keys(root: PathBuf, start: PathBuf) -> BoxStream<'static, Result<String, LakeError>> {
    let stack = vec![start];
    futures::stream::unfold((root, stack), |(root, mut stack)| async move {
        let dir = stack.pop()?;
        let walked = tokio::task::spawn_blocking({
            let root = root.clone();
            move || {
                let mut dirs = Vec::new();
                let mut keys = Vec::new();
                let entries = match std::fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok((dirs, keys));
                    }
                    Err(source) => return Err(LakeError::Io { path: dir, source }),
                };
                for entry in entries.flatten() {
                    let path = entry.path();
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(path);
                    } else if let Ok(relative) = path.strip_prefix(&root) {
                        keys.push(Ok(relative.to_string_lossy().replace('\\', "/")));
                    }
                }
                Ok((dirs, keys))
            }
        })
        .await;
        let items = match walked {
            Ok(Ok((dirs, keys))) => {
                stack.extend(dirs);
                keys
            }
            Ok(Err(error)) => vec![Err(error)],
            Err(join) => vec![Err(LakeError::Io {
                path: root.clone(),
                source: std::io::Error::other(join),
            })],
        };
        Some((futures::stream::iter(items), (root, stack)))
    })
    .flatten()
    .boxed()
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

#[cfg(test)]
mod tests {
    use super::*;

    use super::fixtures::memory_lake;

    #[tokio::test]
    async fn conditional_writes_lose_races_instead_of_overwriting() {
        let local = tempfile::tempdir().expect("tempdir");
        for lake in [memory_lake(), Lake::open_local(local.path()).expect("lake")] {
            let key = "_cryptolake/manifest/p/a.json";
            assert_eq!(
                lake.put_as(key, b"first".to_vec(), WriteMode::Create)
                    .await
                    .unwrap(),
                Written::Written
            );
            assert_eq!(
                lake.put_as(key, b"second".to_vec(), WriteMode::Create)
                    .await
                    .unwrap(),
                Written::Conflict
            );
            let (bytes, version) = lake.get_versioned(key).await.unwrap().unwrap();
            assert_eq!(&bytes[..], b"first");
            // Replacing the version read works once; the second writer,
            // holding the same stale version, loses.
            assert_eq!(
                lake.put_as(key, b"third!".to_vec(), WriteMode::Replace(version.clone()))
                    .await
                    .unwrap(),
                Written::Written,
                "{}",
                lake.location()
            );
            assert_eq!(
                lake.put_as(key, b"fourth".to_vec(), WriteMode::Replace(version))
                    .await
                    .unwrap(),
                Written::Conflict,
                "{}",
                lake.location()
            );
            assert_eq!(&lake.get(key).await.unwrap().unwrap()[..], b"third!");
        }
    }

    #[tokio::test]
    async fn listings_stream_every_key_under_a_prefix() {
        let local = tempfile::tempdir().expect("tempdir");
        for lake in [memory_lake(), Lake::open_local(local.path()).expect("lake")] {
            for key in ["m/p/a/1.json", "m/p/b/2.json", "m/q/3.json", "other/4.json"] {
                lake.put(key, b"{}".to_vec()).await.unwrap();
            }
            assert_eq!(
                lake.list("m/p/").await.unwrap(),
                ["m/p/a/1.json", "m/p/b/2.json"]
            );
            assert_eq!(lake.list("m/").await.unwrap().len(), 3);
            assert!(lake.list("none/").await.unwrap().is_empty());
            assert_eq!(lake.size("other/4.json").await.unwrap(), Some(2));
            lake.delete("other/4.json").await.unwrap();
            lake.delete("other/4.json").await.unwrap();
            assert_eq!(lake.get("other/4.json").await.unwrap(), None);
        }
    }
}
