//! Getting one verified archive into the lake: the checksum the source
//! publishes, then either a mirror into the raw zone (server-side copy, or
//! download and upload, with a per-file fallback) or the curated path
//! (download, verify, decode → transform → Parquet, publish).
//!
//! Owns: the transfer modes and their verification, and publishing outputs.
//! It must not decide between retry, quarantine and failure, nor write
//! manifest entries: it reports an [`Attempt`] (classified in `attempt`) and [`PipelineRun`] acts on it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use super::decode::{self, DecodeError};
use super::payload::Archive;
use super::shape::{self, ShapeError};
use super::{Attempt, PipelineRun};
use crate::config::{MissingChecksumPolicy, TransferMode};
use crate::early_sync::EarlySync;
use crate::lake::manifest::OutputFile;
use crate::lake::outputs::Outputs;
use crate::lake::{CopyVerification, DirectCopy, Published, TransferPath, WriteMode, layout};
use crate::telemetry::metrics;
use crate::transfer;
use crate::transfer::growing::{EndOnDrop, Growth};
use crate::wit::{Artifact, ChecksumSource, Compression, types::S3Location};

/// What decoding one archive produced, staged.
struct Decoded {
    rows: u64,
    staged_outputs: Vec<crate::lake::outputs::StagedOutput>,
    counters: crate::plugin::Counters,
    times: decode::StageTimes,
}

impl PipelineRun {
    /// Whether the pipeline's `missing_checksum = "reject"` fails
    /// `artifact`: its source publishes no checksum for it.
    pub(super) fn rejects_for_no_checksum(&self, artifact: &Artifact) -> bool {
        matches!(artifact.checksum, ChecksumSource::None)
            && self.spec.missing_checksum == MissingChecksumPolicy::Reject
    }

    /// The SHA-256 the source publishes for an artifact, if any (and the
    /// sidecar's bytes, to mirror them).
    pub(super) async fn expected_checksum(
        &self,
        artifact: &Artifact,
    ) -> Result<Option<transfer::ChecksumFile>, Attempt> {
        match &artifact.checksum {
            ChecksumSource::SidecarUrl(url) => {
                self.pace().await;
                transfer::fetch_checksum(&self.http, url, &self.egress()).await
            }
            .map(Some)
            .map_err(|e| Attempt::from_transfer(e, "checksum")),
            ChecksumSource::Sha256(hex) => Ok(Some(transfer::ChecksumFile {
                raw: Vec::new(),
                sha256: hex.to_ascii_lowercase(),
            })),
            ChecksumSource::None if self.rejects_for_no_checksum(artifact) => Err(Attempt::Fail(
                "the source publishes no checksum and missing_checksum = \"reject\"".into(),
            )),
            ChecksumSource::None => Ok(None),
        }
    }

    /// Mirror-only pipelines: the archive goes to the raw zone, server-side
    /// when possible. Returns the published checksum with what was delivered.
    pub(super) async fn mirror(
        &self,
        artifact: &Artifact,
        fresh: bool,
    ) -> Result<(Option<transfer::ChecksumFile>, Delivered), Attempt> {
        let Some(source) = self.direct_source(artifact)? else {
            let checksum = self.expected_checksum(artifact).await?;
            let delivered = self.stream_raw(artifact, checksum.as_ref(), fresh).await?;
            return Ok((checksum, delivered));
        };
        // The sidecar and the archive's last bytes are independent GETs of
        // the source, both needed before the copy: one round trip for both.
        let (checksum, shape) = tokio::join!(
            self.expected_checksum(artifact),
            self.check_source_shape(artifact)
        );
        let checksum = checksum?;
        let copied = match shape {
            Ok(None) => self.direct(artifact, source, checksum.as_ref()).await,
            Ok(Some((error, tail))) => {
                Err(self.quarantine_non_archive(artifact, &error, tail).await)
            }
            Err(error) => Err(error),
        };
        match copied {
            Ok(delivered) => Ok((checksum, delivered)),
            Err(Attempt::Retry { error, .. } | Attempt::Fail(error))
                if self.spec.transfer == TransferMode::Auto =>
            {
                metrics::direct_fallback(&self.spec.name);
                tracing::warn!(
                    pipeline = %self.spec.name,
                    artifact = %artifact.key,
                    error = %error,
                    "Server-side copy failed; streaming this archive instead."
                );
                let mut delivered = self.stream_raw(artifact, checksum.as_ref(), fresh).await?;
                delivered.transfer = TransferPath::StreamFallback;
                Ok((checksum, delivered))
            }
            Err(other) => Err(other),
        }
    }

    /// Where to copy from server-side, or `None` to stream.
    fn direct_source<'a>(&self, artifact: &'a Artifact) -> Result<Option<&'a S3Location>, Attempt> {
        let (Some(source), Some(lake)) = (artifact.s3.as_ref(), self.lake.s3_bucket_url()) else {
            return match self.spec.transfer {
                TransferMode::Direct => Err(Attempt::Fail(
                    "transfer = \"direct\" needs an s3:// lake and an artifact that is an S3 object".into(),
                )),
                _ => Ok(None),
            };
        };
        Ok(match self.spec.transfer {
            TransferMode::Stream => None,
            TransferMode::Direct => Some(source),
            TransferMode::Auto => {
                let source_endpoint = match &self.spec.source_endpoint {
                    Some(endpoint) => Some(endpoint.clone()),
                    None => {
                        url::Url::parse(&format!("https://s3.{}.amazonaws.com", source.region)).ok()
                    }
                };
                source_endpoint
                    .filter(|endpoint| same_s3_service(lake, endpoint))
                    .map(|_| source)
            }
        })
    }

    /// The server-side copy of an archive whose shape was checked.
    async fn direct(
        &self,
        artifact: &Artifact,
        source: &S3Location,
        checksum: Option<&transfer::ChecksumFile>,
    ) -> Result<Delivered, Attempt> {
        let raw_key = layout::raw_key(&artifact.key);
        let copied = self
            .lake
            .copy_in(
                &source.bucket,
                &source.key,
                artifact.size,
                &raw_key,
                checksum.map(|c| c.sha256.as_str()),
                &layout::quarantine_key(&self.spec.name, &artifact.key),
            )
            .await
            .map_err(|e| Attempt::Retry {
                error: format!("server-side copy: {e}"),
                wait: None,
            })?;
        match copied {
            DirectCopy::Verified {
                sha256,
                verification,
                bytes_read,
                requests,
            } => {
                metrics::direct_copy(&self.spec.name, verification.into(), bytes_read);
                Ok(Delivered {
                    copy_requests: Some(requests),
                    counters: Default::default(),
                    sha256,
                    verification: Some(verification),
                    bytes: 0,
                    transfer: TransferPath::Direct,
                    raw_key: Some(raw_key),
                    outputs: Vec::new(),
                    rows: 0,
                })
            }
            DirectCopy::Mismatch { actual } => Err(Attempt::MismatchInLake {
                expected: checksum.map(|c| c.sha256.clone()).unwrap_or_default(),
                actual,
            }),
        }
    }

    /// Checks that a zip to be copied server-side is one, from its last
    /// bytes (a ranged GET of a few KB): the copy is verified against the
    /// published checksum, which an error page stored under the archive's
    /// key, with a checksum of its own, matches too. `Some` when it is not
    /// an archive, with the bytes read.
    async fn check_source_shape(
        &self,
        artifact: &Artifact,
    ) -> Result<Option<(ShapeError, transfer::Tail)>, Attempt> {
        if artifact.compression != Compression::Zip {
            return Ok(None);
        }
        let mut len = shape::ZIP_TAIL;
        loop {
            self.pace().await;
            let tail = transfer::fetch_tail(&self.http, &artifact.url, &self.egress(), len)
                .await
                .map_err(|e| Attempt::from_transfer(e, "the archive's last bytes"))?;
            match shape::check_zip_tail(&tail.bytes, tail.size) {
                Ok(()) => return Ok(None),
                Err(ShapeError::NoEndRecord(_)) if len < shape::MAX_ZIP_TAIL => {
                    len = shape::MAX_ZIP_TAIL;
                }
                Err(error) => return Ok(Some((error, tail))),
            }
        }
    }

    /// Quarantines a source that is not a zip, its bytes kept when the
    /// tail held all of them.
    async fn quarantine_non_archive(
        &self,
        artifact: &Artifact,
        error: &ShapeError,
        tail: transfer::Tail,
    ) -> Attempt {
        let mut reason = not_the_archive(error);
        if tail.bytes.len() as u64 == tail.size {
            let key = layout::quarantine_key(&self.spec.name, &artifact.key);
            if let Err(e) = self.lake.put(&key, tail.bytes).await {
                reason.push_str(&format!(" (keeping its bytes failed: {e})"));
            }
        } else {
            reason.push_str(" (not copied: its bytes stay at the source)");
        }
        Attempt::QuarantinedInLake { reason }
    }

    /// Download, verify, upload to the raw zone.
    async fn stream_raw(
        &self,
        artifact: &Artifact,
        checksum: Option<&transfer::ChecksumFile>,
        fresh: bool,
    ) -> Result<Delivered, Attempt> {
        let staged = self.staging_file()?;
        let early_sync = EarlySync::when(self.lake.publishes_with_fsync());
        let (staged, downloaded) = self
            .download_verified(artifact, checksum, staged, None, early_sync)
            .await?;
        let path = staged.path().to_owned();
        let compression = artifact.compression;
        let shape = tokio::task::spawn_blocking(move || shape::check_file(&path, compression))
            .await
            .map_err(|e| Attempt::Fail(format!("archive check task failed: {e}")))?;
        if let Err(error) = shape {
            return Err(Attempt::Quarantine {
                staged,
                reason: not_the_archive(&error),
            });
        }
        let raw_key = layout::raw_key(&artifact.key);
        self.publish_raw(staged, &raw_key, fresh).await?;
        Ok(Delivered {
            copy_requests: None,
            counters: Default::default(),
            sha256: downloaded.sha256,
            verification: None,
            bytes: downloaded.bytes,
            transfer: TransferPath::Stream,
            raw_key: Some(raw_key),
            outputs: Vec::new(),
            rows: 0,
        })
    }

    /// Downloads an artifact into a new staging file, verified against
    /// `checksum`; the bytes written are announced to `growth`, if given,
    /// and synced as `early_sync` says.
    async fn download_verified(
        &self,
        artifact: &Artifact,
        checksum: Option<&transfer::ChecksumFile>,
        staged: tempfile::NamedTempFile,
        growth: Option<Arc<Growth>>,
        early_sync: EarlySync,
    ) -> Result<(tempfile::NamedTempFile, transfer::Downloaded), Attempt> {
        self.pace().await;
        let downloaded = transfer::download_growing(
            &self.http,
            &artifact.url,
            &self.egress(),
            staged.path(),
            growth,
            early_sync,
        )
        .await
        .map_err(|e| Attempt::from_transfer(e, "archive"))?;
        metrics::bytes_downloaded(&self.spec.name, downloaded.bytes);
        if let Some(checksum) = checksum
            && checksum.sha256 != downloaded.sha256
        {
            return Err(Attempt::Mismatch {
                staged,
                expected: checksum.sha256.clone(),
                actual: downloaded.sha256,
            });
        }
        Ok((staged, downloaded))
    }

    /// Publishes a verified archive under `raw_key`. A `fresh` artifact's
    /// (one without a manifest entry) is created, not overwritten: when an
    /// agent sharing the lake published it first, its copy of the same size,
    /// verified against the same published checksum, stays; one of another
    /// size is a leftover of an older publication and is replaced.
    async fn publish_raw(
        &self,
        staged: tempfile::NamedTempFile,
        raw_key: &str,
        fresh: bool,
    ) -> Result<(), Attempt> {
        let fail = |e: crate::lake::LakeError| Attempt::Fail(e.to_string());
        if !fresh {
            return self.lake.publish(staged, raw_key).await.map_err(fail);
        }
        let size = staged.as_file().metadata().map(|m| m.len()).ok();
        let staged = match self
            .lake
            .publish_as(staged, raw_key, WriteMode::Create)
            .await
            .map_err(fail)?
        {
            Published::Written => return Ok(()),
            Published::Conflict(staged) => staged,
        };
        let existing = self.lake.size(raw_key).await.map_err(fail)?;
        if existing.is_some() && existing == size {
            tracing::info!(
                pipeline = %self.spec.name,
                key = %raw_key,
                "Another agent sharing the lake published this archive first; its copy stays."
            );
            return Ok(());
        }
        self.lake.publish(staged, raw_key).await.map_err(fail)
    }

    /// The source plugin's allow-list: the host downloads its artifacts only
    /// from where the plugin could fetch itself, on every redirect hop.
    fn egress(&self) -> transfer::egress::Egress {
        let spec = self.source.plugin.current().spec().clone();
        transfer::egress::Egress::new(spec.name.as_str().into(), spec.allowed_hosts.into())
    }

    fn staging_file(&self) -> Result<tempfile::NamedTempFile, Attempt> {
        self.lake
            .staging_file()
            .map_err(|e| Attempt::Fail(e.to_string()))
    }

    /// Starts decoding `archive` (its path, and its growth while it is
    /// still downloading) on blocking threads.
    fn start_decode(
        &self,
        artifact: &Artifact,
        archive: PathBuf,
        growth: Option<Arc<Growth>>,
    ) -> tokio::task::JoinHandle<Result<Decoded, DecodeError>> {
        let (source, transforms) = (self.source.clone(), self.transforms.clone());
        let artifact = artifact.clone();
        let lake = self.lake.clone();
        let parquet = lake.parquet();
        let sync_early = lake.publishes_with_fsync();
        let new_file: crate::lake::outputs::NewFile =
            Box::new(move || lake.staging_file().map_err(|e| e.to_string()));
        // Decode, transform and write interleave batch by batch: one span
        // covers them, with the time of each recorded on it.
        let span = tracing::info_span!(
            "decode",
            decode_ms = tracing::field::Empty,
            transform_ms = tracing::field::Empty,
            write_ms = tracing::field::Empty,
        );
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let archive = match growth {
                Some(growth) => Archive::Growing(&archive, growth),
                None => Archive::File(&archive),
            };
            let mut outputs =
                Outputs::new(artifact.partition.clone(), parquet, new_file, sync_early);
            let (counters, mut times) =
                decode::decode_archive(&source, &transforms, &artifact, archive, &mut outputs)?;
            let rows = outputs.rows();
            let finishing = Instant::now();
            let staged_outputs = outputs.finish().map_err(DecodeError::Write)?;
            times.write += finishing.elapsed();
            span.record("decode_ms", times.decode.as_secs_f64() * 1000.0);
            span.record("transform_ms", times.transform.as_secs_f64() * 1000.0);
            span.record("write_ms", times.write.as_secs_f64() * 1000.0);
            Ok(Decoded {
                rows,
                staged_outputs,
                counters,
                times,
            })
        })
    }

    /// Curated pipelines: download and verify, decode → transform → Parquet,
    /// publish the outputs and (optionally) the raw copy. Decoding follows
    /// the download as it writes; nothing is published unless the download
    /// completes and matches its checksum.
    pub(super) async fn curate(
        &self,
        artifact: &Artifact,
        table: &str,
        checksum: Option<&transfer::ChecksumFile>,
        fresh: bool,
    ) -> Result<Delivered, Attempt> {
        let started = Instant::now();
        let staged = self.staging_file()?;
        let growth = Growth::new();
        let decoding = self.start_decode(
            artifact,
            staged.path().to_owned(),
            Some(Arc::clone(&growth)),
        );
        // Ends the growth however the download goes, even if this future is
        // dropped, so the decoder never waits forever.
        let download_ended = EndOnDrop(Arc::clone(&growth));
        // The archive is synced as it downloads only if it will be kept.
        let early_sync = EarlySync::when(self.spec.raw && self.lake.publishes_with_fsync());
        let downloaded = self
            .download_verified(artifact, checksum, staged, Some(growth), early_sync)
            .instrument(tracing::info_span!("transfer"))
            .await;
        drop(download_ended);
        let transfer_time = started.elapsed();
        if let Ok((_, downloaded)) = &downloaded {
            metrics::stage(&self.spec.name, metrics::Stage::Transfer, transfer_time);
            tracing::debug!(
                artifact = %artifact.key,
                bytes = downloaded.bytes,
                elapsed_ms = transfer_time.as_secs_f64() * 1000.0,
                "Archive downloaded and verified; decoding follows it."
            );
        }
        let decoded = decoding
            .await
            .map_err(|e| Attempt::Fail(format!("decode task failed: {e}")));
        // A failed or mismatched download explains whatever the decoder saw.
        let (staged, downloaded) = downloaded?;
        let decoded = match decoded? {
            Err(DecodeError::NotStreamable(reason)) => {
                tracing::debug!(artifact = %artifact.key, reason, "Archive decoded from the finished download.");
                self.start_decode(artifact, staged.path().to_owned(), None)
                    .await
                    .map_err(|e| Attempt::Fail(format!("decode task failed: {e}")))?
            }
            decoded => decoded,
        };
        if let Ok(Decoded { rows, times, .. }) = &decoded {
            tracing::debug!(
                artifact = %artifact.key,
                rows,
                decode_ms = times.decode.as_secs_f64() * 1000.0,
                transform_ms = times.transform.as_secs_f64() * 1000.0,
                write_ms = times.write.as_secs_f64() * 1000.0,
                "Archive decoded; the stages overlap, so their times add up to more than the wall time."
            );
            metrics::stage(&self.spec.name, metrics::Stage::Decode, times.decode);
            metrics::stage(&self.spec.name, metrics::Stage::Transform, times.transform);
            metrics::stage(&self.spec.name, metrics::Stage::Write, times.write);
        }
        let Decoded {
            rows,
            staged_outputs,
            counters,
            ..
        } = match decoded {
            Ok(done) => done,
            Err(error) => return Err(Attempt::from_decode(error, staged)),
        };
        // One file per artifact, or per day for a monthly archive; named
        // after the artifact, so re-processing replaces them.
        let mut outputs = Vec::new();
        for staged_output in staged_outputs {
            let key = layout::output_key(table, &staged_output.partition, &artifact.key);
            self.lake
                .publish(staged_output.file, &key)
                .await
                .map_err(|e| Attempt::Fail(e.to_string()))?;
            outputs.push(OutputFile {
                key,
                rows: staged_output.rows,
            });
        }
        let raw_key = if self.spec.raw {
            let raw_key = layout::raw_key(&artifact.key);
            self.publish_raw(staged, &raw_key, fresh).await?;
            Some(raw_key)
        } else {
            None
        };
        Ok(Delivered {
            copy_requests: None,
            counters,
            sha256: downloaded.sha256,
            verification: None,
            bytes: downloaded.bytes,
            transfer: TransferPath::Stream,
            raw_key,
            outputs,
            rows,
        })
    }
}

/// What an attempt put into the lake, before the commit.
pub(super) struct Delivered {
    pub(super) sha256: String,
    pub(super) counters: crate::plugin::Counters,
    pub(super) verification: Option<CopyVerification>,
    pub(super) bytes: u64,
    pub(super) transfer: TransferPath,
    pub(super) raw_key: Option<String>,
    pub(super) outputs: Vec<OutputFile>,
    pub(super) rows: u64,
    /// Requests a server-side copy took in the lake's store.
    pub(super) copy_requests: Option<u32>,
}

/// Why a verified archive is quarantined by a mirror.
fn not_the_archive(error: &ShapeError) -> String {
    format!("the bytes match the published checksum but are not the archive: {error}")
}

/// Whether two S3 endpoints are one service, so a server-side copy between
/// them can work: the same host, or both AWS.
fn same_s3_service(a: &url::Url, b: &url::Url) -> bool {
    let aws = |u: &url::Url| u.host_str().is_some_and(|h| h.ends_with(".amazonaws.com"));
    (a.host_str() == b.host_str() && a.port_or_known_default() == b.port_or_known_default())
        || (aws(a) && aws(b))
}
