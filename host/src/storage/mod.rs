//! The object stores a lake can live in, opened with the credentials the
//! platform gives.
//!
//! Owns: building an `object_store` for an [`ObjectLake`] (S3 and
//! S3-compatible stores in [`s3`], with the shared-profile credentials of
//! [`aws_profile`]; GCS in [`gcs`]; Azure in [`azure`]; memory), the S3
//! server-side copy that `object_store` does not do across buckets
//! ([`s3_copy`]), and finding out whether the store honours conditional
//! writes. Credentials stay inside the stores built here: nothing returned
//! carries them, and no message shows them. It must not know the lake's
//! layout or what an artifact is.

pub mod aws_profile;
mod azure;
mod gcs;
pub mod http;
pub mod s3;
pub mod s3_copy;

use std::sync::Arc;

use object_store::{Attribute, Attributes, ObjectStore};

use crate::config::{ObjectLake, ObjectService};

/// A store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The store's builder refused the settings (e.g. no account name).
    #[error("the lake {url}: {message}")]
    Settings {
        /// The lake URL.
        url: String,
        /// What the builder said.
        message: String,
    },
    /// A shared AWS config or credentials file could not be used.
    #[error("AWS profile `{profile}`: {message}")]
    Profile {
        /// The profile's name.
        profile: String,
        /// What is wrong.
        message: String,
    },
}

/// An opened object store and what the lake needs to know about it.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    /// The store, rooted at the bucket (the lake's prefix is not applied).
    pub store: Arc<dyn ObjectStore>,
    /// Server-side copies into the bucket, for an S3 lake.
    pub copier: Option<s3_copy::S3Copier>,
    /// Attributes every written object gets (the storage class).
    pub attributes: Attributes,
    /// Whether writes are made conditional (the config allows it; whether the
    /// store honours them is checked by [`probe_conditional_writes`]).
    pub conditional_writes: bool,
    /// Where the store's credentials come from, for messages (no secrets).
    pub credential_source: String,
}

/// Opens the store `lake` names, on the agent's own HTTP client `http`
/// (see [`http`]).
pub fn open(lake: &ObjectLake, http: &reqwest::Client) -> Result<ObjectStorage, StorageError> {
    let settings = |error: object_store::Error| StorageError::Settings {
        url: lake.url(),
        message: crate::transfer::error_chain(&error),
    };
    let mut attributes = Attributes::new();
    if let Some(class) = &lake.storage_class {
        attributes.insert(Attribute::StorageClass, class.clone().into());
    }
    let default_chain = || "object_store's default credential chain".to_owned();
    let (store, copier, credential_source): (Arc<dyn ObjectStore>, _, _) = match lake.service {
        ObjectService::S3 => {
            let built = s3::build(lake, http)?;
            let copier = s3_copy::S3Copier::new(http.clone(), &built, lake);
            let source = built.credential_source.clone();
            (Arc::new(built.store), Some(copier), source)
        }
        ObjectService::Gcs => (
            Arc::new(gcs::build(lake, http).map_err(settings)?),
            None,
            default_chain(),
        ),
        ObjectService::Azure => (
            Arc::new(azure::build(lake, http).map_err(settings)?),
            None,
            default_chain(),
        ),
        ObjectService::Memory => (
            Arc::new(object_store::memory::InMemory::new()),
            None,
            "none needed".to_owned(),
        ),
    };
    tracing::debug!(lake = %lake.url(), credentials = %credential_source, "Opened the lake's store.");
    Ok(ObjectStorage {
        store,
        copier,
        attributes,
        conditional_writes: lake.conditional_writes,
        credential_source,
    })
}

/// What a store did with conditional writes when asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preconditions {
    /// A second create of one key was refused: agents sharing the lake are safe.
    Honoured,
    /// The store accepted the second create: it ignores `If-None-Match`, so
    /// two agents on this lake could overwrite each other.
    Ignored,
    /// The config turned conditional writes off.
    Disabled,
}

/// Creates one probe object twice under `probe_key` (the second must be
/// refused), then deletes it. Three requests; run by `validate` and at start.
pub async fn probe_conditional_writes(
    storage: &ObjectStorage,
    probe_key: &object_store::path::Path,
) -> Result<Preconditions, object_store::Error> {
    use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
    if !storage.conditional_writes {
        return Ok(Preconditions::Disabled);
    }
    let create = || PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    let store = &storage.store;
    store
        .put_opts(probe_key, PutPayload::from_static(b"probe"), create())
        .await?;
    let second = store
        .put_opts(probe_key, PutPayload::from_static(b"probe"), create())
        .await;
    let _ = store.delete(probe_key).await;
    match second {
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => Ok(Preconditions::Honoured),
        Ok(_) => Ok(Preconditions::Ignored),
        Err(other) => Err(other),
    }
}
