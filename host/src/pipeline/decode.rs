//! The decode → transform → write stage for one verified archive.
//!
//! Runs on a blocking thread: the host decompresses the archive, streams its
//! bytes through the source plugin's decoder in fixed-size chunks, sends each
//! batch through the transform chain, and writes the results to a Parquet
//! staging file. Memory stays bounded by the chunk and batch sizes.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::lake::parquet::ParquetSink;
use crate::plugin::{
    Artifact, Batch, Compression, Counters, Plugin, PluginCallError, PluginHandle, TransformSession,
};

/// Bytes handed to the decoder per call.
pub const CHUNK_BYTES: usize = 1 << 20;

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
    /// Decompression and the source plugin's decoder.
    pub decode: Duration,
    /// The transform chain.
    pub transform: Duration,
    /// Arrow conversion and Parquet encoding.
    pub write: Duration,
}

/// Decodes `archive` (the bytes of `artifact`) through `source` and
/// `transforms` into `sink`. Returns the counters the plugins recorded for
/// this artifact, named `<plugin>.<counter>`, and the time per stage.
pub fn decode_archive(
    source: &Configured,
    transforms: &[Configured],
    artifact: &Artifact,
    archive: &Path,
    sink: &mut ParquetSink,
) -> Result<(Counters, StageTimes), DecodeError> {
    let mut times = StageTimes::default();
    let counters = with_payload(archive, artifact.compression, |reader| {
        stream(source, transforms, artifact, reader, sink, &mut times)
    })?;
    Ok((counters, times))
}

/// Runs `f`, adding its duration to `total`.
fn timed<T>(total: &mut Duration, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = f();
    *total += started.elapsed();
    result
}

fn stream(
    source: &Configured,
    transforms: &[Configured],
    artifact: &Artifact,
    reader: &mut dyn Read,
    sink: &mut ParquetSink,
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
    let mut buffer = vec![0u8; CHUNK_BYTES];
    loop {
        let read = timed(&mut times.decode, || read_full(reader, &mut buffer))
            .map_err(|e| DecodeError::Archive(e.to_string()))?;
        if read == 0 {
            break;
        }
        let batches = timed(&mut times.decode, || decoder.push(&buffer[..read]))?;
        let batches = timed(&mut times.transform, || push_through(&mut chain, batches))?;
        timed(&mut times.write, || write_all(sink, batches))?;
    }
    let mut counters = Counters::new();
    let mut collect = |plugin: &str, recorded: Counters| {
        for (name, value) in recorded {
            *counters.entry(format!("{plugin}.{name}")).or_insert(0) += value;
        }
    };
    let (batches, recorded) = timed(&mut times.decode, || decoder.finish_with_counters())?;
    collect(source_plugin.name(), recorded);
    let batches = timed(&mut times.transform, || push_through(&mut chain, batches))?;
    timed(&mut times.write, || write_all(sink, batches))?;
    // Finish transforms in order; what one emits at its end still flows
    // through the ones after it.
    let mut names = transform_plugins.iter().map(|p| p.name());
    while !chain.is_empty() {
        let first = chain.remove(0);
        let (tail, recorded) = timed(&mut times.transform, || first.finish_with_counters())?;
        collect(names.next().unwrap_or("transform"), recorded);
        let tail = timed(&mut times.transform, || push_through(&mut chain, tail))?;
        timed(&mut times.write, || write_all(sink, tail))?;
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

fn write_all(sink: &mut ParquetSink, batches: Vec<Batch>) -> Result<(), DecodeError> {
    for batch in &batches {
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

/// Calls `f` with a reader over the decompressed payload of an archive.
fn with_payload<T>(
    archive: &Path,
    compression: Compression,
    f: impl FnOnce(&mut dyn Read) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let file = std::fs::File::open(archive).map_err(|e| DecodeError::Archive(e.to_string()))?;
    match compression {
        Compression::None => f(&mut std::io::BufReader::new(file)),
        Compression::Gzip => f(&mut flate2::read::MultiGzDecoder::new(
            std::io::BufReader::new(file),
        )),
        Compression::Zip => {
            let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
                .map_err(|e| DecodeError::Archive(format!("not a valid zip: {e}")))?;
            let files: Vec<usize> = (0..zip.len())
                .filter(|&i| zip.by_index(i).map(|f| f.is_file()).unwrap_or(false))
                .collect();
            let [index] = files[..] else {
                return Err(DecodeError::Archive(format!(
                    "expected exactly one file in the zip, found {}",
                    files.len()
                )));
            };
            let mut entry = zip
                .by_index(index)
                .map_err(|e| DecodeError::Archive(format!("zip entry unreadable: {e}")))?;
            f(&mut entry)
        }
    }
}
