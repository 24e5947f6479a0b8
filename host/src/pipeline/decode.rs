//! The decode → transform → write stage for one archive.
//!
//! Runs on a blocking thread: the host decompresses the archive, streams its
//! bytes through the source plugin's decoder in fixed-size chunks, sends each
//! batch through the transform chain, and writes the results to a Parquet
//! staging file, the three overlapping on their own threads. Memory stays
//! bounded by the chunk and batch sizes and the queues between the stages.

use std::io::Read;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use super::payload::{Archive, PayloadError, with_payload};
use crate::lake::outputs::Outputs;
use crate::plugin::{Counters, Plugin, PluginCallError, PluginHandle, TransformSession};
use crate::wit::{Artifact, Batch, Compression};

/// Bytes handed to the decoder per call.
pub const CHUNK_BYTES: usize = 1 << 20;

/// Decompressed chunks queued for the decoder.
const QUEUED_CHUNKS: usize = 2;

/// Chunk buffers the decoder hands back for the reader to fill again: the
/// queued ones and the one being decoded.
const SPARE_CHUNKS: usize = QUEUED_CHUNKS + 1;

/// Why an archive could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The archive itself is unusable (not a zip, not one file, bad gzip).
    #[error("the archive is unusable: {0}")]
    Archive(String),
    /// A plugin failed or judged the data malformed.
    #[error(transparent)]
    Plugin(#[from] PluginCallError),
    /// Writing Parquet failed.
    #[error("writing Parquet failed: {0}")]
    Write(String),
    /// The archive must be complete before it can be read.
    #[error("{0}")]
    NotStreamable(String),
}

impl From<PayloadError> for DecodeError {
    fn from(error: PayloadError) -> Self {
        match error {
            PayloadError::Unusable(message) => Self::Archive(message),
            PayloadError::NotStreamable(_) => Self::NotStreamable(error.to_string()),
        }
    }
}

/// A plugin with the params a pipeline gives it.
#[derive(Clone)]
pub struct Configured {
    /// The plugin; swapped on hot reload.
    pub plugin: PluginHandle,
    /// Its params, JSON.
    pub params: String,
}

impl Configured {
    /// The same, fixed to the plugin's current version.
    pub fn pinned(&self) -> Self {
        Self {
            plugin: self.plugin.pinned(),
            params: self.params.clone(),
        }
    }
}

/// Time spent in each interleaved stage of one artifact's decode.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    /// Decompression and the source plugin's decoder (not the time spent
    /// waiting for a download to bring more bytes).
    pub decode: Duration,
    /// The transform chain.
    pub transform: Duration,
    /// Arrow conversion and Parquet encoding.
    pub write: Duration,
}

/// Decodes `archive` (the bytes of `artifact`) through `source` and
/// `transforms` into `sink`. Returns the counters the plugins recorded for
/// this artifact, named `<plugin>.<counter>`, and the time per stage.
///
/// Three stages overlap on three threads, joined by small bounded queues:
/// decompression (a reader thread), decoding and transforms (this thread,
/// which makes the plugin calls), and Parquet encoding (a writer thread).
/// Memory stays bounded by the queues: two chunks and two batch lists.
pub fn decode_archive(
    source: &Configured,
    transforms: &[Configured],
    artifact: &Artifact,
    archive: Archive<'_>,
    sink: &mut Outputs,
) -> Result<(Counters, StageTimes), DecodeError> {
    let mut times = StageTimes::default();
    let compression = artifact.compression;
    let (read_result, decoded, write_result) = std::thread::scope(|scope| {
        let (chunks, chunks_in) = sync_channel::<Vec<u8>>(QUEUED_CHUNKS);
        let (return_chunk, returned_chunks) = sync_channel::<Vec<u8>>(SPARE_CHUNKS);
        let reader = std::thread::Builder::new()
            .name("decompress".to_owned())
            .spawn_scoped(scope, move || {
                read_chunks(archive, compression, chunks, &returned_chunks)
            });
        let (batches, batches_in) = sync_channel::<Vec<Batch>>(2);
        let writer = std::thread::Builder::new()
            .name("parquet".to_owned())
            .spawn_scoped(scope, move || {
                let mut spent = Duration::ZERO;
                for list in batches_in {
                    timed(&mut spent, || write_all(sink, list))?;
                }
                Ok::<_, DecodeError>(spent)
            });
        let (reader, writer) = match (reader, writer) {
            (Ok(reader), Ok(writer)) => (reader, writer),
            (Err(e), _) | (_, Err(e)) => {
                let error = DecodeError::Archive(format!("cannot start a decode thread: {e}"));
                return (
                    Err(error),
                    Err(DecodeError::Write(String::new())),
                    Ok(Duration::ZERO),
                );
            }
        };
        let decoded = decode_stream(
            source,
            transforms,
            artifact,
            chunks_in,
            &return_chunk,
            &batches,
            &mut times,
        );
        drop(batches);
        let joined = |what: &str| DecodeError::Write(format!("the {what} thread panicked"));
        let read_result = reader
            .join()
            .unwrap_or_else(|_| Err(joined("decompression")));
        let write_result = writer.join().unwrap_or_else(|_| Err(joined("Parquet")));
        (read_result, decoded, write_result)
    });
    // A broken archive explains whatever the decoder then saw (truncated
    // input); a failed writer explains a decoder that could not hand over.
    times.decode += read_result?;
    let write_time = write_result?;
    let counters = decoded?;
    times.write += write_time;
    Ok((counters, times))
}

/// The reader thread: decompressed payload in chunks of [`CHUNK_BYTES`],
/// until the end or until the decoder stops listening. Fills the buffers
/// the decoder gave back (`returned`) before it allocates: a fresh megabyte
/// is zeroed on every chunk otherwise. Returns the time it spent
/// decompressing (not waiting for the decoder).
fn read_chunks(
    archive: Archive<'_>,
    compression: Compression,
    chunks: SyncSender<Vec<u8>>,
    returned: &Receiver<Vec<u8>>,
) -> Result<Duration, DecodeError> {
    let mut spent = Duration::ZERO;
    let growth = match &archive {
        Archive::Growing(_, growth) => Some(Arc::clone(growth)),
        Archive::File(_) => None,
    };
    with_payload::<_, DecodeError>(archive, compression, |reader| {
        loop {
            let mut buffer = returned.try_recv().unwrap_or_default();
            // Only a short last chunk leaves a tail to zero again.
            buffer.resize(CHUNK_BYTES, 0);
            let read = timed(&mut spent, || read_full(reader, &mut buffer))
                .map_err(|e| DecodeError::Archive(e.to_string()))?;
            if read == 0 {
                return Ok(());
            }
            buffer.truncate(read);
            if chunks.send(buffer).is_err() {
                // The decoder stopped (it failed); its error is the one to report.
                return Ok(());
            }
        }
    })?;
    Ok(spent.saturating_sub(growth.map_or(Duration::ZERO, |g| g.waited())))
}

/// Runs `f`, adding its duration to `total`.
fn timed<T>(total: &mut Duration, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = f();
    *total += started.elapsed();
    result
}

/// Hands batches to the writer thread; a closed queue means it failed.
fn hand_over(batches: &SyncSender<Vec<Batch>>, list: Vec<Batch>) -> Result<(), DecodeError> {
    if list.is_empty() {
        return Ok(());
    }
    batches
        .send(list)
        .map_err(|_| DecodeError::Write("the Parquet writer stopped".to_owned()))
}

/// The decoding thread: chunks through the decoder and the transform chain.
fn decode_stream(
    source: &Configured,
    transforms: &[Configured],
    artifact: &Artifact,
    chunks: Receiver<Vec<u8>>,
    return_chunk: &SyncSender<Vec<u8>>,
    batches: &SyncSender<Vec<Batch>>,
    times: &mut StageTimes,
) -> Result<Counters, DecodeError> {
    let source_plugin: Arc<Plugin> = source.plugin.current();
    let transform_plugins: Vec<Arc<Plugin>> =
        transforms.iter().map(|t| t.plugin.current()).collect();
    let mut decoder = source_plugin.open_decoder(&source.params, artifact)?;
    let mut chain = transforms
        .iter()
        .zip(&transform_plugins)
        .map(|(t, plugin)| plugin.open_transformer(&t.params, &artifact.partition))
        .collect::<Result<Vec<_>, _>>()?;
    for chunk in chunks {
        let decoded = timed(&mut times.decode, || decoder.push(&chunk))?;
        // A full queue or a finished reader: the buffer is simply freed.
        let _ = return_chunk.try_send(chunk);
        let transformed = timed(&mut times.transform, || push_through(&mut chain, decoded))?;
        hand_over(batches, transformed)?;
    }
    let mut counters = Counters::new();
    let mut collect = |plugin: &str, recorded: Counters| {
        for (name, value) in recorded {
            *counters.entry(format!("{plugin}.{name}")).or_insert(0) += value;
        }
    };
    let (decoded, recorded) = timed(&mut times.decode, || decoder.finish_with_counters())?;
    collect(source_plugin.name(), recorded);
    let transformed = timed(&mut times.transform, || push_through(&mut chain, decoded))?;
    hand_over(batches, transformed)?;
    // Finish transforms in order; what one emits at its end still flows
    // through the ones after it.
    let mut names = transform_plugins.iter().map(|p| p.name());
    while !chain.is_empty() {
        let first = chain.remove(0);
        let (tail, recorded) = timed(&mut times.transform, || first.finish_with_counters())?;
        collect(names.next().unwrap_or("transform"), recorded);
        let tail = timed(&mut times.transform, || push_through(&mut chain, tail))?;
        hand_over(batches, tail)?;
    }
    Ok(counters)
}

fn push_through(
    chain: &mut [TransformSession],
    mut batches: Vec<Batch>,
) -> Result<Vec<Batch>, PluginCallError> {
    for session in chain.iter_mut() {
        let mut next = Vec::with_capacity(batches.len());
        for batch in &batches {
            next.extend(session.push(batch)?);
        }
        batches = next;
    }
    Ok(batches)
}

fn write_all(sink: &mut Outputs, batches: Vec<Batch>) -> Result<(), DecodeError> {
    for batch in batches {
        sink.write(batch).map_err(DecodeError::Write)?;
    }
    Ok(())
}

/// Fills `buffer` as far as the reader allows (decompressors return short reads).
fn read_full(reader: &mut dyn Read, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match reader.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
