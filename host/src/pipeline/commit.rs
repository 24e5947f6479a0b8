//! Commit: what makes a delivered artifact part of the lake, or keeps it
//! out.
//!
//! Owns: mirroring the checksum file next to a raw archive, removing the
//! outputs a re-processed archive no longer produces, writing the manifest
//! entry last and conditionally (created, or replacing exactly the version
//! reconcile read), and quarantining a refused archive with its note. A
//! crash between any two of these leaves a lake the next run repairs.
//!
//! It must not download, decode or decide whether to retry: it is handed
//! what was delivered, or what was refused and why.

use serde::Serialize;

use super::deliver::Delivered;
use super::reconcile::Prior;
use super::{Attempt, Outcome};
use crate::config::PipelineSpec;
use crate::lake::manifest::{self, Lineage, ManifestEntry, SourceIdentity};
use crate::lake::{Lake, TransferPath, WriteMode, Written, layout};
use crate::telemetry::metrics;
use crate::transfer;
use crate::wit::Artifact;

/// Mirrors the checksum file and writes the manifest entry, last.
pub(super) async fn commit(
    lake: &Lake,
    spec: &PipelineSpec,
    plugins: Vec<Lineage>,
    artifact: &Artifact,
    prior: &Prior,
    checksum: Option<transfer::ChecksumFile>,
    delivered: Delivered,
) -> Result<Outcome, Attempt> {
    let sidecar = checksum.as_ref().is_some_and(|c| !c.raw.is_empty());
    let requests = delivered
        .copy_requests
        .map(|copy| copy + 2 * u32::from(sidecar) + 1);
    if delivered.raw_key.is_some()
        && let Some(checksum) = checksum.as_ref().filter(|c| !c.raw.is_empty())
    {
        lake.put(
            &layout::raw_checksum_key(&artifact.key),
            checksum.raw.clone(),
        )
        .await
        .map_err(|e| Attempt::Fail(e.to_string()))?;
    }
    let entry = ManifestEntry {
        version: manifest::ENTRY_VERSION,
        pipeline: spec.name.clone(),
        source: SourceIdentity::of(artifact),
        sha256: delivered.sha256,
        checksum_verified: checksum.is_some(),
        raw_key: delivered.raw_key,
        transfer: Some(delivered.transfer),
        copy_verification: delivered.verification,
        counters: delivered.counters,
        table: spec.table.clone(),
        outputs: delivered.outputs,
        rows: delivered.rows,
        plugins,
        completed_at: manifest::now_rfc3339(),
        // A re-publication keeps what it replaced, so a changed
        // checksum stays visible.
        history: prior.history.clone(),
    };
    // Outputs of the earlier entry that this run did not write again go
    // before the new entry is written: a crash in between leaves the
    // old entry, whose identity or missing outputs make the next run
    // redo the artifact.
    for stale in prior
        .outputs
        .iter()
        .filter(|key| !entry.outputs.iter().any(|o| &o.key == *key))
    {
        lake.delete(stale)
            .await
            .map_err(|e| Attempt::Fail(format!("removing the stale output {stale}: {e}")))?;
        tracing::info!(
            pipeline = %spec.name,
            artifact = %artifact.key,
            output = %stale,
            "Removed an output the re-processed archive no longer produces."
        );
    }
    let mode = match &prior.entry_version {
        None => WriteMode::Create,
        Some(version) => WriteMode::Replace(version.clone()),
    };
    let written = manifest::write(lake, &entry, mode)
        .await
        .map_err(|e| Attempt::Fail(e.to_string()))?;
    if written == Written::Conflict {
        tracing::info!(
            pipeline = %spec.name,
            artifact = %artifact.key,
            "Another agent sharing the lake committed this archive first; its manifest entry stands."
        );
        return Ok(Outcome::CommittedElsewhere);
    }
    if let Some(table) = &spec.table {
        metrics::rows_written(table, delivered.rows);
    }
    // A server-side copy moved the archive's bytes without the agent.
    let (mode, bytes) = match delivered.transfer {
        TransferPath::Direct => (metrics::TransferMode::Direct, artifact.size.unwrap_or(0)),
        TransferPath::Stream | TransferPath::StreamFallback => {
            (metrics::TransferMode::Stream, delivered.bytes)
        }
    };
    metrics::artifact_transferred(&spec.name, mode, bytes);
    if checksum.is_some() {
        metrics::artifact_verified(&spec.name);
    }
    super::record_data_until(&spec.name, artifact);
    Ok(Outcome::Completed {
        rows: delivered.rows,
        bytes: delivered.bytes,
        transfer: delivered.transfer,
        requests,
    })
}

/// Moves a refused archive to quarantine with its reason.
pub(super) async fn quarantine(
    lake: &Lake,
    spec: &PipelineSpec,
    artifact: &Artifact,
    staged: tempfile::NamedTempFile,
    reason: String,
) -> Outcome {
    let key = layout::quarantine_key(&spec.name, &artifact.key);
    if let Err(error) = lake.publish(staged, &key).await {
        return Outcome::Failed {
            error: format!("{reason}; and quarantining it failed: {error}"),
            attempts: spec.attempts,
        };
    }
    note_quarantine(lake, spec, artifact, reason).await
}

/// Writes why an archive (already at its quarantine key) was refused.
pub(super) async fn note_quarantine(
    lake: &Lake,
    spec: &PipelineSpec,
    artifact: &Artifact,
    reason: String,
) -> Outcome {
    let note = QuarantineNote {
        pipeline: spec.name.clone(),
        source: SourceIdentity::of(artifact),
        reason: reason.clone(),
        quarantined_at: manifest::now_rfc3339(),
    };
    let written = lake
        .put(
            &layout::quarantine_reason_key(&spec.name, &artifact.key),
            serde_json::to_vec_pretty(&note).unwrap_or_default(),
        )
        .await;
    match written {
        Ok(()) => Outcome::Quarantined { reason },
        Err(error) => Outcome::Failed {
            error: format!("{reason}; and recording the quarantine failed: {error}"),
            attempts: spec.attempts,
        },
    }
}

/// Why an archive was quarantined: `<quarantine key>.reason.json`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct QuarantineNote {
    /// The pipeline that refused it.
    pub pipeline: String,
    /// The source's identity of what was refused: while it stays the same,
    /// later runs skip the archive.
    pub source: SourceIdentity,
    /// Why.
    pub reason: String,
    /// When (RFC 3339).
    pub quarantined_at: String,
}
