//! The decompressed payload of an archive: the one CSV inside a zip, a
//! gzip stream, or the file as it is.
//!
//! Owns: opening the payload from a finished spool file, or from one still
//! being downloaded ([`Growth`]), so decompression starts with the first
//! bytes. A zip is read front to back from its first local header then, and
//! checked afterwards against its central directory (exactly one file, at
//! the start, with the CRC-32 and size that came out); a zip that cannot be
//! read front to back is reported as [`PayloadError::NotStreamable`] before
//! any byte is produced, and is read from the finished file instead. It must
//! not verify checksums (the download does) nor decode rows.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use crate::transfer::growing::Growth;
use crate::wit::Compression;

/// Where an archive's bytes are.
#[derive(Clone)]
pub enum Archive<'a> {
    /// A complete file.
    File(&'a Path),
    /// A file still being downloaded.
    Growing(&'a Path, Arc<Growth>),
}

/// Why a payload could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The archive is unusable (not a zip, not one file, bad deflate data).
    #[error("{0}")]
    Unusable(String),
    /// The zip cannot be read front to back; read it once it is complete.
    #[error("the zip cannot be read while it downloads: {0}")]
    NotStreamable(String),
}

/// Compressed bytes read from the archive per call, and so handed to each
/// inflate call of a gzip payload or a streamed zip. With flate2's own
/// 32 KiB each call's set-up and window update are paid eight times as
/// often: inflating the curate benchmark's 127 MB entry took 194 ms instead
/// of 181. (A zip that cannot be streamed is read through its central
/// directory by the `zip` crate, with that crate's own buffer: a fallback
/// Binance's archives do not take.)
const INPUT_BUFFER_BYTES: usize = 256 << 10;

/// Calls `f` with a reader over the decompressed payload of `archive`.
/// `f`'s own errors pass through; its I/O errors are the payload's.
pub fn with_payload<T, E: From<PayloadError>>(
    archive: Archive<'_>,
    compression: Compression,
    f: impl FnOnce(&mut dyn Read) -> Result<T, E>,
) -> Result<T, E> {
    let unusable = |e: std::io::Error| PayloadError::Unusable(e.to_string());
    match archive {
        Archive::File(path) => {
            let file = std::fs::File::open(path).map_err(unusable)?;
            let mut reader = std::io::BufReader::with_capacity(INPUT_BUFFER_BYTES, file);
            match compression {
                Compression::None => f(&mut reader),
                Compression::Gzip => f(&mut flate2::bufread::MultiGzDecoder::new(reader)),
                Compression::Zip => with_zip_file(reader, f),
            }
        }
        Archive::Growing(path, growth) => {
            let reader = std::io::BufReader::with_capacity(
                INPUT_BUFFER_BYTES,
                growth.reader(path).map_err(unusable)?,
            );
            match compression {
                Compression::None => f(&mut { reader }),
                Compression::Gzip => f(&mut flate2::bufread::MultiGzDecoder::new(reader)),
                Compression::Zip => with_zip_stream(reader, path, &growth, f),
            }
        }
    }
}

/// The one file of a complete zip, through its central directory.
fn with_zip_file<T, E: From<PayloadError>>(
    reader: std::io::BufReader<std::fs::File>,
    f: impl FnOnce(&mut dyn Read) -> Result<T, E>,
) -> Result<T, E> {
    let mut zip = zip::ZipArchive::new(reader)
        .map_err(|e| PayloadError::Unusable(format!("not a valid zip: {e}")))?;
    let index = only_file(&mut zip)?;
    let mut entry = zip
        .by_index(index)
        .map_err(|e| PayloadError::Unusable(format!("zip entry unreadable: {e}")))?;
    f(&mut entry)
}

/// The index of the zip's only file entry.
fn only_file<R: Read + std::io::Seek>(zip: &mut zip::ZipArchive<R>) -> Result<usize, PayloadError> {
    let files: Vec<usize> = (0..zip.len())
        .filter(|&i| zip.by_index_raw(i).map(|f| f.is_file()).unwrap_or(false))
        .collect();
    match files[..] {
        [index] => Ok(index),
        _ => Err(PayloadError::Unusable(format!(
            "expected exactly one file in the zip, found {}",
            files.len()
        ))),
    }
}

const LOCAL_HEADER_SIGNATURE: u32 = 0x0403_4b50;
const FLAG_ENCRYPTED: u16 = 1;
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATED: u16 = 8;

/// The first entry of a zip read front to back, then checked against the
/// central directory of the finished file.
fn with_zip_stream<T, E: From<PayloadError>>(
    mut reader: impl std::io::BufRead,
    path: &Path,
    growth: &Growth,
    f: impl FnOnce(&mut dyn Read) -> Result<T, E>,
) -> Result<T, E> {
    let not_streamable = |reason: &str| PayloadError::NotStreamable(reason.to_owned());
    let mut header = [0u8; 30];
    reader
        .read_exact(&mut header)
        .map_err(|_| not_streamable("shorter than a local file header"))?;
    let u16_at = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
    let u32_at = |at: usize| {
        u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    if u32_at(0) != LOCAL_HEADER_SIGNATURE {
        return Err(not_streamable("it does not start with a local file header").into());
    }
    let (flags, method, stored_size) = (u16_at(6), u16_at(8), u32_at(18));
    let mut name = vec![0u8; usize::from(u16_at(26))];
    let mut extra = vec![0u8; usize::from(u16_at(28))];
    reader
        .read_exact(&mut name)
        .and_then(|()| reader.read_exact(&mut extra))
        .map_err(|_| not_streamable("its first local header is cut short"))?;
    if flags & FLAG_ENCRYPTED != 0 {
        return Err(not_streamable("its first entry is encrypted").into());
    }
    if name.ends_with(b"/") {
        return Err(not_streamable("its first entry is a directory").into());
    }
    let mut body: Box<dyn Read + '_> = match method {
        METHOD_DEFLATED => Box::new(flate2::bufread::DeflateDecoder::new(reader)),
        METHOD_STORED if flags & FLAG_DATA_DESCRIPTOR == 0 && stored_size != u32::MAX => {
            Box::new(reader.take(u64::from(stored_size)))
        }
        _ => return Err(not_streamable("its first entry's length is not in its header").into()),
    };
    let mut checked = Checked {
        inner: &mut body,
        crc: crc32fast::Hasher::new(),
        size: 0,
        reached_end: false,
    };
    let result = f(&mut checked)?;
    // A reader that stopped early (its consumer failed) has its own error
    // to report; only a payload read to its end can be checked.
    if checked.reached_end {
        let (crc, size) = (checked.crc.finalize(), checked.size);
        drop(body);
        growth.wait_for_end();
        check_against_directory(path, crc, size)?;
    }
    Ok(result)
}

/// The finished zip must hold exactly the one file that was read, at its
/// start, with the CRC-32 and size that came out of it.
fn check_against_directory(path: &Path, crc: u32, size: u64) -> Result<(), PayloadError> {
    let file = std::fs::File::open(path).map_err(|e| PayloadError::Unusable(e.to_string()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| PayloadError::Unusable(format!("not a valid zip: {e}")))?;
    let index = only_file(&mut zip)?;
    let entry = zip
        .by_index_raw(index)
        .map_err(|e| PayloadError::Unusable(format!("zip entry unreadable: {e}")))?;
    if entry.header_start() != 0 {
        return Err(PayloadError::Unusable(
            "the zip's file is not its first entry".to_owned(),
        ));
    }
    if entry.crc32() != crc || entry.size() != size {
        return Err(PayloadError::Unusable(format!(
            "the zip's file decompressed to {size} bytes with CRC-32 {crc:08x}, but its directory says {} bytes with {:08x}",
            entry.size(),
            entry.crc32()
        )));
    }
    Ok(())
}

/// Counts and CRCs what passes through.
struct Checked<'a> {
    inner: &'a mut dyn Read,
    crc: crc32fast::Hasher,
    size: u64,
    reached_end: bool,
}

impl Read for Checked<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.crc.update(&buffer[..read]);
        self.size += read as u64;
        self.reached_end |= read == 0 && !buffer.is_empty();
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_of(entries: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
        let mut buffer = std::io::Cursor::new(Vec::new());
        let mut writer = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, content) in entries {
            writer.start_file(*name, options).expect("zip entry");
            writer.write_all(content).expect("zip write");
        }
        writer.finish().expect("zip finish");
        buffer.into_inner()
    }

    /// Reads `archive`'s payload while another thread writes it in pieces.
    fn read_growing(archive: &[u8]) -> Result<Vec<u8>, PayloadError> {
        read_growing_as(archive, Compression::Zip)
    }

    fn read_growing_as(archive: &[u8], compression: Compression) -> Result<Vec<u8>, PayloadError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("archive.zip");
        let mut file = std::fs::File::create(&path).expect("create");
        let growth = Growth::new();
        let reader = {
            let (path, growth) = (path.clone(), Arc::clone(&growth));
            std::thread::spawn(move || {
                with_payload(Archive::Growing(&path, growth), compression, |r| {
                    let mut payload = Vec::new();
                    r.read_to_end(&mut payload)
                        .map_err(|e| PayloadError::Unusable(e.to_string()))?;
                    Ok::<_, PayloadError>(payload)
                })
            })
        };
        let mut written = 0;
        for piece in archive.chunks(4099) {
            file.write_all(piece).expect("write");
            written += piece.len();
            growth.written(written as u64);
        }
        growth.end();
        reader.join().expect("reader thread")
    }

    fn csv(lines: usize) -> Vec<u8> {
        (0..lines)
            .map(|i| format!("{i},93000.{:02},{}\n", i % 100, i * 7))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn a_zip_reads_the_same_while_it_downloads() {
        let payload = csv(20_000);
        for method in [
            zip::CompressionMethod::Deflated,
            zip::CompressionMethod::Stored,
        ] {
            let archive = zip_of(&[("BTCUSDT-1s.csv", &payload)], method);
            assert_eq!(read_growing(&archive).expect("read"), payload, "{method:?}");
        }
    }

    #[test]
    fn gzip_and_plain_payloads_read_the_same_while_they_download() {
        let payload = csv(20_000);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(&payload).expect("gzip");
        let gzip = gzip.finish().expect("gzip finish");
        assert_eq!(
            read_growing_as(&gzip, Compression::Gzip).expect("gzip"),
            payload
        );
        assert_eq!(
            read_growing_as(&payload, Compression::None).expect("plain"),
            payload
        );
    }

    #[test]
    fn a_zip_with_a_second_file_is_unusable_after_streaming() {
        let archive = zip_of(
            &[("a.csv", &csv(100)), ("b.csv", &csv(100))],
            zip::CompressionMethod::Deflated,
        );
        let error = read_growing(&archive).expect_err("two files");
        assert!(
            matches!(&error, PayloadError::Unusable(m) if m.contains("exactly one file")),
            "{error}"
        );
    }

    #[test]
    fn a_corrupted_entry_never_passes() {
        let payload = csv(5_000);
        let mut archive = zip_of(&[("a.csv", &payload)], zip::CompressionMethod::Stored);
        // Flip a byte of the stored CSV: the CRC no longer matches.
        archive[200] ^= 0x01;
        let error = read_growing(&archive).expect_err("corrupted");
        assert!(
            matches!(&error, PayloadError::Unusable(m) if m.contains("CRC-32")),
            "{error}"
        );
    }

    #[test]
    fn what_is_not_a_zip_is_left_to_the_finished_file() {
        let error = read_growing(b"<html>not found</html> and some more bytes").expect_err("html");
        assert!(matches!(error, PayloadError::NotStreamable(_)), "{error}");
    }
}
