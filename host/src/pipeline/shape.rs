//! Whether bytes have the shape of the archive they are said to be, read
//! from their ends alone: a mirror publishes archives it never opens, and a
//! checksum only says the bytes are the ones published — an S3 error page
//! stored under a `.zip` key, with a checksum of its own, matches too.
//!
//! Owns: finding and checking a zip's end-of-central-directory record (and
//! its Zip64 form) in the last bytes of a file, and the first bytes of a
//! zip or gzip file. It must not inflate or decode anything (the curated
//! path's payload reader does), nor fetch bytes: callers hand it a file, or
//! a tail read with a ranged GET.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::wit::Compression;

/// The end-of-central-directory record without its comment.
const EOCD_BYTES: usize = 22;
/// The most bytes from a zip's end that hold its end record: the record and
/// the longest comment.
pub const MAX_ZIP_TAIL: u64 = EOCD_BYTES as u64 + u16::MAX as u64;
/// Bytes read from a zip's end first: its end record without a long comment,
/// and a small archive's whole central directory.
pub const ZIP_TAIL: u64 = 4096;

const EOCD_SIGNATURE: &[u8; 4] = b"PK\x05\x06";
const ZIP64_LOCATOR_SIGNATURE: &[u8; 4] = b"PK\x06\x07";
const ZIP64_EOCD_SIGNATURE: &[u8; 4] = b"PK\x06\x06";
const CENTRAL_HEADER_SIGNATURE: &[u8; 4] = b"PK\x01\x02";
const LOCAL_HEADER_SIGNATURE: &[u8; 4] = b"PK\x03\x04";
const GZIP_MAGIC: &[u8; 2] = b"\x1f\x8b";

/// Why bytes are not the archive they are said to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// The tail read holds no end record; a longer tail may (a zip comment
    /// can be up to 64 KiB).
    #[error("no zip end-of-central-directory record in its last {0} bytes")]
    NoEndRecord(u64),
    /// The bytes cannot be the archive.
    #[error("{0}")]
    NotTheArchive(String),
}

/// Checks the last bytes of a zip of `size` bytes, `tail` (at most `size`
/// bytes, ending at the end).
pub fn check_zip_tail(tail: &[u8], size: u64) -> Result<(), ShapeError> {
    let not = |message: String| Err(ShapeError::NotTheArchive(message));
    if size < EOCD_BYTES as u64 {
        return not(format!("{size} bytes is too short for a zip"));
    }
    let tail_start = size - tail.len() as u64;
    // The record is the last signature whose comment ends at the file's end.
    let Some(record) = (0..=tail.len().saturating_sub(EOCD_BYTES))
        .rev()
        .find(|&at| {
            &tail[at..at + 4] == EOCD_SIGNATURE
                && at + EOCD_BYTES + usize::from(u16_at(tail, at + 20)) == tail.len()
        })
    else {
        return if (tail.len() as u64) < size.min(MAX_ZIP_TAIL) {
            Err(ShapeError::NoEndRecord(tail.len() as u64))
        } else {
            not("no zip end-of-central-directory record: not a zip, or cut short".into())
        };
    };
    let mut entries = u64::from(u16_at(tail, record + 10));
    let mut directory_bytes = u64::from(u32_at(tail, record + 12));
    let mut directory_at = u64::from(u32_at(tail, record + 16));
    let mut directory_end_limit = tail_start + record as u64;
    if entries == 0xFFFF || directory_bytes == 0xFFFF_FFFF || directory_at == 0xFFFF_FFFF {
        // Zip64: a locator just before the record points at a larger one.
        let locator = record
            .checked_sub(20)
            .filter(|&at| &tail[at..at + 4] == ZIP64_LOCATOR_SIGNATURE);
        let Some(locator) = locator else {
            return not("a Zip64 end record without its locator".into());
        };
        let zip64_at = u64_at(tail, locator + 8);
        let Some(zip64) = zip64_at
            .checked_sub(tail_start)
            .and_then(|at| usize::try_from(at).ok())
            .filter(|&at| at + 56 <= locator && &tail[at..at + 4] == ZIP64_EOCD_SIGNATURE)
        else {
            return not(format!(
                "the Zip64 end record the locator points at (offset {zip64_at}) is not there"
            ));
        };
        entries = u64_at(tail, zip64 + 32);
        directory_bytes = u64_at(tail, zip64 + 40);
        directory_at = u64_at(tail, zip64 + 48);
        directory_end_limit = zip64_at;
    }
    if entries == 0 {
        return not("the zip holds no file".into());
    }
    if directory_at
        .checked_add(directory_bytes)
        .is_none_or(|end| end > directory_end_limit)
    {
        return not(format!(
            "its central directory ({directory_bytes} bytes at offset {directory_at}) does not fit in its {size} bytes"
        ));
    }
    if let Some(at) = directory_at
        .checked_sub(tail_start)
        .and_then(|at| usize::try_from(at).ok())
        && tail.get(at..at + 4) != Some(CENTRAL_HEADER_SIGNATURE)
    {
        return not(format!(
            "no central directory entry at offset {directory_at}, where its end record points"
        ));
    }
    Ok(())
}

/// Checks a complete file said to hold `compression`: a zip's first local
/// header and its end records, a gzip's magic number. Reads a few KB.
pub fn check_file(path: &Path, compression: Compression) -> Result<(), ShapeError> {
    let io = |e: std::io::Error| ShapeError::NotTheArchive(format!("reading it failed: {e}"));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut head = Vec::with_capacity(4);
    (&mut file).take(4).read_to_end(&mut head).map_err(io)?;
    let head = head.as_slice();
    match compression {
        Compression::None => Ok(()),
        Compression::Gzip if head.starts_with(GZIP_MAGIC) => Ok(()),
        Compression::Gzip => Err(ShapeError::NotTheArchive(format!(
            "not gzip: it starts with {}",
            printable(head)
        ))),
        Compression::Zip => {
            if head != LOCAL_HEADER_SIGNATURE && size >= EOCD_BYTES as u64 {
                return Err(ShapeError::NotTheArchive(format!(
                    "not a zip: it starts with {}",
                    printable(head)
                )));
            }
            let tail_len = size.min(MAX_ZIP_TAIL);
            file.seek(SeekFrom::Start(size - tail_len)).map_err(io)?;
            let mut tail = Vec::with_capacity(tail_len as usize);
            file.take(tail_len).read_to_end(&mut tail).map_err(io)?;
            check_zip_tail(&tail, size)
        }
    }
}

/// A file's first bytes for a message: text as it is (an HTML or XML error
/// page says what it is), anything else in hex.
fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) if text.chars().all(|c| !c.is_control()) => format!("`{text}`"),
        _ => format!("bytes {}", hex::encode(bytes)),
    }
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut le = [0u8; 8];
    le.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(le)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(files: &[(&str, &[u8])], comment: &str) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        for (name, content) in files {
            writer
                .start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            writer.write_all(content).unwrap();
        }
        writer.set_comment(comment).unwrap();
        writer.finish().unwrap().into_inner()
    }

    fn tail(bytes: &[u8], len: u64) -> &[u8] {
        &bytes[bytes.len() - (len as usize).min(bytes.len())..]
    }

    const NO_SUCH_KEY: &[u8] = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>data/spot/daily/klines/BTCUSDT/1m/BTCUSDT-1m-2024-05-03.zip</Key><RequestId>4442587FB7D0A2F9</RequestId><HostId>x</HostId></Error>";

    #[test]
    fn a_zip_has_the_shape_of_one_from_a_short_tail_and_from_its_file() {
        let body = vec![b'7'; 100_000];
        let zip = zip_of(&[("BTCUSDT-1m-2024-05-03.csv", &body)], "");
        let size = zip.len() as u64;
        assert_eq!(check_zip_tail(tail(&zip, ZIP_TAIL), size), Ok(()));
        assert_eq!(check_zip_tail(&zip, size), Ok(()));
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &zip).unwrap();
        assert_eq!(check_file(file.path(), Compression::Zip), Ok(()));
    }

    #[test]
    fn an_error_page_is_not_a_zip_whatever_its_checksum() {
        let size = NO_SUCH_KEY.len() as u64;
        let error = check_zip_tail(NO_SUCH_KEY, size).unwrap_err();
        assert!(matches!(error, ShapeError::NotTheArchive(_)), "{error:?}");
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), NO_SUCH_KEY).unwrap();
        let message = check_file(file.path(), Compression::Zip)
            .unwrap_err()
            .to_string();
        assert!(message.contains("it starts with `<?xm`"), "{message}");
        let message = check_file(file.path(), Compression::Gzip)
            .unwrap_err()
            .to_string();
        assert!(message.contains("not gzip"), "{message}");
        assert_eq!(check_file(file.path(), Compression::None), Ok(()));
    }

    #[test]
    fn a_long_comment_needs_the_longer_tail() {
        let comment = "c".repeat(10_000);
        let zip = zip_of(&[("a.csv", b"1,2\n")], &comment);
        let size = zip.len() as u64;
        assert_eq!(
            check_zip_tail(tail(&zip, ZIP_TAIL), size),
            Err(ShapeError::NoEndRecord(ZIP_TAIL))
        );
        assert_eq!(check_zip_tail(tail(&zip, MAX_ZIP_TAIL), size), Ok(()));
    }

    #[test]
    fn a_cut_short_or_empty_zip_is_not_the_archive() {
        let zip = zip_of(&[("a.csv", &[b'1'; 5000])], "");
        let cut = &zip[..zip.len() - 10];
        let error = check_zip_tail(cut, cut.len() as u64).unwrap_err();
        assert!(matches!(error, ShapeError::NotTheArchive(_)), "{error:?}");
        let empty = zip_of(&[], "");
        let message = check_zip_tail(&empty, empty.len() as u64)
            .unwrap_err()
            .to_string();
        assert!(message.contains("holds no file"), "{message}");
        // The end record of another zip appended to junk: its directory
        // offset points at junk.
        let mut spliced = vec![b'x'; 3000];
        spliced.extend_from_slice(&zip[zip.len() - EOCD_BYTES..]);
        let message = check_zip_tail(&spliced, spliced.len() as u64)
            .unwrap_err()
            .to_string();
        assert!(message.contains("central directory"), "{message}");
    }

    /// `zip` with its end record in Zip64 form: the Zip64 record and its
    /// locator before a classic record whose fields say "see Zip64".
    fn as_zip64(zip: &[u8]) -> Vec<u8> {
        let record = zip.len() - EOCD_BYTES;
        let entries = u64::from(u16_at(zip, record + 10));
        let directory_bytes = u64::from(u32_at(zip, record + 12));
        let directory_at = u64::from(u32_at(zip, record + 16));
        let mut out = zip[..record].to_vec();
        let zip64_at = out.len() as u64;
        out.extend_from_slice(ZIP64_EOCD_SIGNATURE);
        out.extend_from_slice(&44u64.to_le_bytes());
        out.extend_from_slice(&[45, 0, 45, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        for value in [entries, entries, directory_bytes, directory_at] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(ZIP64_LOCATOR_SIGNATURE);
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&zip64_at.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(EOCD_SIGNATURE);
        out.extend_from_slice(&[0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
        out.extend_from_slice(&[0xFF; 8]);
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn a_zip64_archive_is_read_through_its_locator() {
        let zip = as_zip64(&zip_of(&[("big.csv", b"1,2\n")], ""));
        assert_eq!(check_zip_tail(&zip, zip.len() as u64), Ok(()));
        // A locator pointing elsewhere is not the archive.
        let mut broken = zip.clone();
        let locator = broken.len() - EOCD_BYTES - 20;
        broken[locator + 8] ^= 1;
        let message = check_zip_tail(&broken, broken.len() as u64)
            .unwrap_err()
            .to_string();
        assert!(message.contains("Zip64"), "{message}");
    }
}
