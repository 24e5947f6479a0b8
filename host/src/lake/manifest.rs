//! The manifest: one JSON entry per completed artifact, the source of truth
//! for "done".
//!
//! An entry is written last, after the raw copy and every output file are
//! published, so a crash at any point leaves either a complete artifact with
//! its entry or no entry (and the next run redoes it, replacing its files).
//! Because the manifest is in the lake, a fresh machine pointed at the same
//! lake resumes where the last one stopped.

use serde::{Deserialize, Serialize};

use super::{Lake, LakeError, Version, WriteMode, Written, layout};
use crate::wit::{Artifact, PluginIdentity};

/// Format version of entries written by this agent.
pub const ENTRY_VERSION: u32 = 1;

/// What identifies a version of a source artifact: a re-publication under the
/// same key changes at least one of these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIdentity {
    /// Source key.
    pub key: String,
    /// Download URL.
    pub url: String,
    /// Size, when the source listed it.
    pub size: Option<u64>,
    /// ETag, when the source listed it.
    pub etag: Option<String>,
    /// Last-modified, when the source listed it.
    pub last_modified: Option<String>,
    /// The digest the source published with the artifact itself (probe-mode
    /// discovery), when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_sha256: Option<String>,
}

impl SourceIdentity {
    /// The identity of an artifact as discovered.
    pub fn of(artifact: &Artifact) -> Self {
        Self {
            key: artifact.key.clone(),
            url: crate::transfer::redact(&artifact.url),
            size: artifact.size,
            etag: artifact.etag.clone(),
            last_modified: artifact.last_modified.clone(),
            published_sha256: match &artifact.checksum {
                crate::wit::ChecksumSource::Sha256(hex) => Some(hex.to_ascii_lowercase()),
                _ => None,
            },
        }
    }

    /// Whether `self` (recorded) and `other` (listed now) are the same
    /// publication. Fields the source did not list now are not compared.
    pub fn same_publication(&self, other: &SourceIdentity) -> bool {
        fn same<T: PartialEq>(recorded: &Option<T>, now: &Option<T>) -> bool {
            now.is_none() || recorded == now
        }
        self.key == other.key
            && same(&self.size, &other.size)
            && same(&self.etag, &other.etag)
            && same(&self.last_modified, &other.last_modified)
            && same(&self.published_sha256, &other.published_sha256)
    }
}

/// One output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputFile {
    /// Lake key of the file.
    pub key: String,
    /// Rows in it.
    pub rows: u64,
}

/// A plugin that touched the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lineage {
    /// Configured name.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// SHA-256 of its `.wasm`.
    pub sha256: String,
}

impl From<&PluginIdentity> for Lineage {
    fn from(identity: &PluginIdentity) -> Self {
        Self {
            name: identity.name.clone(),
            version: identity.version.clone(),
            sha256: identity.sha256.clone(),
        }
    }
}

/// A publication of the artifact that a re-publication replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacedVersion {
    /// Its identity at the source.
    pub source: SourceIdentity,
    /// Its SHA-256.
    pub sha256: String,
    /// When it was processed.
    pub completed_at: String,
}

/// A completed artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Entry format version.
    pub version: u32,
    /// The pipeline that produced it.
    pub pipeline: String,
    /// The source artifact.
    pub source: SourceIdentity,
    /// SHA-256 of the archive bytes.
    pub sha256: String,
    /// Whether the SHA-256 matched a published checksum (false only under
    /// the `accept` missing-checksum policy).
    pub checksum_verified: bool,
    /// Raw-zone key of the archive, when mirrored.
    pub raw_key: Option<String>,
    /// How the archive reached the lake: `direct`, `stream`, `stream-fallback`.
    #[serde(default)]
    pub transfer: Option<super::TransferPath>,
    /// How a server-side copy was verified (direct transfers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copy_verification: Option<super::CopyVerification>,
    /// Curated table written; `None` for mirror-only pipelines.
    pub table: Option<String>,
    /// Output files.
    pub outputs: Vec<OutputFile>,
    /// Total rows.
    pub rows: u64,
    /// Plugins in order: the source, then each transform.
    pub plugins: Vec<Lineage>,
    /// Completion time, RFC 3339 UTC.
    pub completed_at: String,
    /// Counters the plugins recorded for this artifact, `<plugin>.<name>`
    /// (e.g. the quality transform's findings).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub counters: std::collections::BTreeMap<String, u64>,
    /// Earlier publications under the same key, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<ReplacedVersion>,
}

/// Reads the entry for an artifact, if any.
pub async fn read(
    lake: &Lake,
    pipeline: &str,
    key: &str,
) -> Result<Option<ManifestEntry>, LakeError> {
    Ok(read_versioned(lake, pipeline, key)
        .await?
        .map(|(entry, _)| entry))
}

/// Reads the entry for an artifact and the version read, so that writing
/// its successor can be made conditional on it.
pub async fn read_versioned(
    lake: &Lake,
    pipeline: &str,
    key: &str,
) -> Result<Option<(ManifestEntry, Version)>, LakeError> {
    let manifest_key = layout::manifest_key(pipeline, key);
    let Some((bytes, version)) = lake.get_versioned(&manifest_key).await? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(|entry| Some((entry, version)))
        .map_err(|e| LakeError::Manifest {
            key: manifest_key,
            message: e.to_string(),
        })
}

/// Writes the entry for an artifact: created when `mode` is
/// [`WriteMode::Create`], replacing the version read for
/// [`WriteMode::Replace`]. [`Written::Conflict`] means another agent wrote
/// it first, and its entry stands.
pub async fn write(
    lake: &Lake,
    entry: &ManifestEntry,
    mode: WriteMode,
) -> Result<Written, LakeError> {
    let key = layout::manifest_key(&entry.pipeline, &entry.source.key);
    let bytes = serde_json::to_vec_pretty(entry).map_err(|e| LakeError::Manifest {
        key: key.clone(),
        message: e.to_string(),
    })?;
    lake.put_as(&key, bytes, mode).await
}

/// Whether every output of an entry still exists in the lake.
pub async fn outputs_present(lake: &Lake, entry: &ManifestEntry) -> Result<bool, LakeError> {
    for output in &entry.outputs {
        if lake.size(&output.key).await?.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Now, as RFC 3339 UTC.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
