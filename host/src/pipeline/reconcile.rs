//! Reconcile: what a discovered window means for the lake.
//!
//! Owns: comparing each discovered artifact with what the lake holds of it
//! (its manifest entry, its outputs, an earlier quarantine's note) and
//! deciding what is to be done: new, re-published, outputs missing, still
//! quarantined, or up to date; the gaps in each series. Listings are walked
//! as streams, so memory follows the window, not the manifest's size.
//!
//! It must not download, decode or write: it only reads the lake.

use futures::StreamExt;
use serde::Serialize;

use super::commit::QuarantineNote;
use super::report::{self, MissingSeries};
use crate::lake::manifest::{self, ReplacedVersion, SourceIdentity};
use crate::lake::{Lake, LakeError, layout};
use crate::wit::Artifact;

/// The outcome of discovery and reconciliation.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Artifacts to process, with the reason and what an earlier entry
    /// leaves behind.
    pub todo: Vec<(Artifact, Reason, Prior)>,
    /// Quarantined by an earlier run and unchanged at the source: skipped,
    /// with the earlier verdict.
    pub still_quarantined: Vec<(Artifact, QuarantineNote)>,
    /// How many the source listed.
    pub discovered: usize,
    /// Gaps in the source's series.
    pub missing: Vec<MissingSeries>,
}

/// What an artifact's earlier manifest entry leaves to its next one.
#[derive(Debug, Clone, Default)]
pub struct Prior {
    /// The history the new entry carries (the replaced publications, for a
    /// re-published artifact).
    pub history: Vec<ReplacedVersion>,
    /// The earlier entry's output files: those the new run does not write
    /// again are deleted, so a re-published archive with other days leaves
    /// no stale rows behind.
    pub outputs: Vec<String>,
    /// The version of the earlier entry that was read, `None` when there is
    /// none: the new entry replaces exactly that version, or is created, so
    /// an agent sharing the lake that committed meanwhile is not overwritten.
    pub entry_version: Option<crate::lake::Version>,
}

/// Why an artifact is (re)processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    /// Never processed.
    New,
    /// The source re-published it under the same key.
    Republished,
    /// Its manifest entry exists but an output is missing.
    OutputsMissing,
}

/// Decides what `discovered` needs in `pipeline`'s part of the lake.
/// `retry_quarantined`: archives quarantined earlier and unchanged at the
/// source are tried again instead of skipped.
pub(super) async fn reconcile(
    lake: &Lake,
    pipeline: &str,
    discovered: Vec<Artifact>,
    retry_quarantined: bool,
) -> Result<Planned, LakeError> {
    let missing = report::missing_periods(&discovered);
    let total = discovered.len();
    // One listing tells which artifacts have an entry at all, so a new
    // artifact costs no request here; existing entries are read to
    // compare identities. The listing is walked as a stream and only
    // the discovered keys are remembered, so memory follows the window,
    // not the manifest's size.
    let has_entry = listed(
        lake,
        &layout::manifest_prefix(pipeline),
        discovered
            .iter()
            .map(|artifact| Some(layout::manifest_key(pipeline, &artifact.key))),
    )
    .await?;
    // Only artifacts without an entry can be quarantined ones, and their
    // notes matter only when they are not to be retried anyway.
    let has_note = listed(
        lake,
        &layout::quarantine_prefix(pipeline),
        discovered
            .iter()
            .zip(&has_entry)
            .map(|(artifact, has_entry)| {
                (!has_entry && !retry_quarantined)
                    .then(|| layout::quarantine_reason_key(pipeline, &artifact.key))
            }),
    )
    .await?;
    let mut todo = Vec::new();
    let mut still_quarantined = Vec::new();
    for ((artifact, has_entry), has_note) in discovered.into_iter().zip(has_entry).zip(has_note) {
        if has_note {
            let note = read_quarantine_note(lake, pipeline, &artifact).await?;
            if let Some(note) =
                note.filter(|n| n.source.same_publication(&SourceIdentity::of(&artifact)))
            {
                still_quarantined.push((artifact, note));
                continue;
            }
        }
        let recorded = if has_entry {
            manifest::read_versioned(lake, pipeline, &artifact.key).await?
        } else {
            None
        };
        let decision = match recorded {
            None => Some((Reason::New, Prior::default())),
            Some((entry, version))
                if !entry
                    .source
                    .same_publication(&SourceIdentity::of(&artifact)) =>
            {
                // The replaced publication joins the history now, so
                // the commit need not read the entry again.
                let outputs = entry.outputs.iter().map(|o| o.key.clone()).collect();
                let mut history = entry.history;
                history.push(ReplacedVersion {
                    source: entry.source,
                    sha256: entry.sha256,
                    completed_at: entry.completed_at,
                });
                let prior = Prior {
                    history,
                    outputs,
                    entry_version: Some(version),
                };
                Some((Reason::Republished, prior))
            }
            Some((entry, version)) => {
                let present = manifest::outputs_present(lake, &entry).await?;
                let outputs = entry.outputs.iter().map(|o| o.key.clone()).collect();
                let prior = Prior {
                    history: entry.history,
                    outputs,
                    entry_version: Some(version),
                };
                (!present).then_some((Reason::OutputsMissing, prior))
            }
        };
        match decision {
            Some((reason, prior)) => todo.push((artifact, reason, prior)),
            None => super::record_data_until(pipeline, &artifact),
        }
    }
    Ok(Planned {
        todo,
        still_quarantined,
        discovered: total,
        missing,
    })
}

/// Which of `keys` (`None`: not asked) exist under `prefix`: one
/// listing, walked as a stream, remembering only the keys asked for, so
/// memory follows the window, not the prefix's size. No listing when no
/// key is asked for.
async fn listed(
    lake: &Lake,
    prefix: &str,
    keys: impl Iterator<Item = Option<String>>,
) -> Result<Vec<bool>, LakeError> {
    let keys: Vec<Option<String>> = keys.collect();
    let mut present = vec![false; keys.len()];
    let wanted: std::collections::HashMap<String, usize> = keys
        .into_iter()
        .enumerate()
        .filter_map(|(i, key)| Some((key?, i)))
        .collect();
    if wanted.is_empty() {
        return Ok(present);
    }
    let mut listing = lake.list_stream(prefix);
    while let Some(key) = listing.next().await {
        let key = key?;
        if let Some(&index) = wanted.get(&key) {
            present[index] = true;
        }
    }
    Ok(present)
}

/// The note an earlier quarantine of `artifact` left; `None` when it is
/// gone or unreadable (the artifact is then tried again).
async fn read_quarantine_note(
    lake: &Lake,
    pipeline: &str,
    artifact: &Artifact,
) -> Result<Option<QuarantineNote>, LakeError> {
    let key = layout::quarantine_reason_key(pipeline, &artifact.key);
    let bytes = lake.get(&key).await?;
    Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
}
