//! The lake: raw zone, curated Parquet tables, and the `_cryptolake/` state.
//!
//! Owns: where things go ([`layout`]), writing Parquet ([`parquet`]), the
//! per-artifact manifest that decides what is done ([`manifest`]), and
//! atomic publication: nothing is ever visible under its final name before
//! it is complete. Objects are written through `object_store`; on a local
//! lake, large files are staged inside the lake and renamed into place. It
//! must not fetch from sources or call plugins.

pub mod layout;
pub mod manifest;
pub mod parquet;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// A lake failure.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The object store failed.
    #[error("lake object `{key}`: {source}")]
    Store {
        /// The key.
        key: String,
        /// The cause.
        source: object_store::Error,
    },
    /// Local I/O failed.
    #[error("lake path {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Writing Parquet failed, or the batches do not fit one schema.
    #[error("writing Parquet for `{key}`: {message}")]
    Parquet {
        /// The destination key.
        key: String,
        /// What went wrong.
        message: String,
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

/// A lake rooted in a local directory.
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
    store: Arc<dyn ObjectStore>,
}

impl Lake {
    /// Opens (creating if needed) a lake in `root`.
    pub fn open_local(root: &Path) -> Result<Self, LakeError> {
        let io = |source| LakeError::Io {
            path: root.to_owned(),
            source,
        };
        std::fs::create_dir_all(root).map_err(io)?;
        let root = root.canonicalize().map_err(io)?;
        let store = LocalFileSystem::new_with_prefix(&root).map_err(|source| LakeError::Store {
            key: String::new(),
            source,
        })?;
        Ok(Self {
            root,
            store: Arc::new(store),
        })
    }

    /// The lake's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A staging file inside the lake (same filesystem, so publishing it is a
    /// rename). Dropped unpublished, it is deleted.
    pub fn staging_file(&self) -> Result<tempfile::NamedTempFile, LakeError> {
        let dir = self.root.join(layout::STAGING_DIR);
        let io = |source| LakeError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        tempfile::Builder::new()
            .prefix("stage-")
            .tempfile_in(&dir)
            .map_err(io)
    }

    /// Moves a finished staging file to `key`, atomically replacing any
    /// previous object there.
    pub fn publish(&self, staged: tempfile::NamedTempFile, key: &str) -> Result<(), LakeError> {
        let dest = self.root.join(key);
        let io = |source| LakeError::Io {
            path: dest.clone(),
            source,
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        staged.as_file().sync_all().map_err(io)?;
        staged.persist(&dest).map_err(|e| LakeError::Io {
            path: dest.clone(),
            source: e.error,
        })?;
        Ok(())
    }

    /// Writes a small object atomically.
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), LakeError> {
        self.store
            .put(&ObjectPath::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|source| LakeError::Store {
                key: key.to_owned(),
                source,
            })
    }

    /// Reads an object, or `None` when it does not exist.
    pub async fn get(&self, key: &str) -> Result<Option<bytes::Bytes>, LakeError> {
        match self.store.get(&ObjectPath::from(key)).await {
            Ok(result) => result
                .bytes()
                .await
                .map(Some)
                .map_err(|source| LakeError::Store {
                    key: key.to_owned(),
                    source,
                }),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(LakeError::Store {
                key: key.to_owned(),
                source,
            }),
        }
    }

    /// The size of an object, or `None` when it does not exist.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, LakeError> {
        match self.store.head(&ObjectPath::from(key)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(LakeError::Store {
                key: key.to_owned(),
                source,
            }),
        }
    }
}
