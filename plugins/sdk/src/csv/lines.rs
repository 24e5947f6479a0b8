//! Lines and fields: a chunked byte stream cut into numbered lines, and an
//! unquoted line cut into fields.
//!
//! Owns: line ends (`\n`, `\r\n`, a last line without one), the line
//! length limit, 1-based line numbers, comma splitting, header detection.
//! It must not parse field values: [`super::numbers`] and [`super::time`] do.

use crate::PluginError;

/// Splits chunks into complete lines, carrying a partial last line over to
/// the next chunk. Empty lines are skipped but counted. A line longer than
/// the reader's limit is malformed input, reported as soon as the limit is
/// passed: a payload without newlines must not grow a plugin's memory until
/// the sandbox kills it.
#[derive(Debug)]
pub struct LineReader {
    pending: Vec<u8>,
    line: u64,
    max_line_bytes: usize,
}

/// The longest line a [`LineReader`] accepts by default: exchange CSV rows
/// are a few hundred bytes; a megabyte is no row.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

impl Default for LineReader {
    fn default() -> Self {
        Self::with_max_line_bytes(DEFAULT_MAX_LINE_BYTES)
    }
}

impl LineReader {
    /// A reader at line 0 that accepts lines of up to
    /// [`DEFAULT_MAX_LINE_BYTES`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader at line 0 that accepts lines of up to `max_line_bytes`
    /// (without their line ending).
    pub fn with_max_line_bytes(max_line_bytes: usize) -> Self {
        Self {
            pending: Vec::new(),
            line: 0,
            max_line_bytes,
        }
    }

    /// The number of the last line handed out (1-based; 0 before the first).
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// Feeds `chunk`, calling `on_line(line_number, line)` for every complete
    /// line, without its line ending.
    pub fn push<E>(
        &mut self,
        chunk: &[u8],
        mut on_line: impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<PluginError>,
    {
        let mut rest = chunk;
        if !self.pending.is_empty() {
            match memchr_newline(rest) {
                Some(end) => {
                    self.pending.extend_from_slice(&rest[..end]);
                    rest = &rest[end + 1..];
                    let pending = std::mem::take(&mut self.pending);
                    self.emit(&pending, &mut on_line)?;
                }
                None => {
                    self.pending.extend_from_slice(rest);
                    return self.check_pending();
                }
            }
        }
        // The complete lines of the chunk are checked for UTF-8 in one pass,
        // not line by line; only invalid input takes the per-line path,
        // which names the offending line.
        if let Some(last) = memchr::memrchr(b'\n', rest) {
            let (complete, tail) = rest.split_at(last + 1);
            match simdutf8::basic::from_utf8(complete) {
                Ok(text) => {
                    let mut start = 0;
                    for end in memchr::memchr_iter(b'\n', complete) {
                        self.emit_text(&text[start..end], &mut on_line)?;
                        start = end + 1;
                    }
                }
                Err(_) => {
                    let mut bytes = complete;
                    while let Some(end) = memchr_newline(bytes) {
                        self.emit(&bytes[..end], &mut on_line)?;
                        bytes = &bytes[end + 1..];
                    }
                }
            }
            rest = tail;
        }
        self.pending.extend_from_slice(rest);
        self.check_pending()
    }

    /// Fails once the unfinished line is already longer than a line may be.
    fn check_pending<E: From<PluginError>>(&self) -> Result<(), E> {
        // One byte more than the limit may be the `\r` of a `\r\n` whose
        // `\n` is in the next chunk.
        if self.pending.len() > self.max_line_bytes + 1 {
            return Err(self.too_long(self.line + 1).into());
        }
        Ok(())
    }

    fn too_long(&self, line: u64) -> PluginError {
        PluginError::malformed(
            Some(line),
            format!(
                "the line is longer than {} bytes (no line ending within them)",
                self.max_line_bytes
            ),
        )
    }

    /// Signals the end of input, emitting a last line that had no newline.
    pub fn finish<E>(
        &mut self,
        mut on_line: impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<PluginError>,
    {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        self.emit(&pending, &mut on_line)
    }

    fn emit<E>(
        &mut self,
        raw: &[u8],
        on_line: &mut impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<PluginError>,
    {
        match std::str::from_utf8(raw) {
            Ok(text) => self.emit_text(text, on_line),
            Err(e) => {
                self.line += 1;
                Err(PluginError::malformed(Some(self.line), format!("not UTF-8: {e}")).into())
            }
        }
    }

    fn emit_text<E>(
        &mut self,
        text: &str,
        on_line: &mut impl FnMut(u64, &str) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<PluginError>,
    {
        self.line += 1;
        let text = text.strip_suffix('\r').unwrap_or(text);
        if text.is_empty() {
            return Ok(());
        }
        if text.len() > self.max_line_bytes {
            return Err(self.too_long(self.line).into());
        }
        on_line(self.line, text)
    }
}

pub(super) fn memchr_newline(bytes: &[u8]) -> Option<usize> {
    // SIMD where the target has it (x86-64 natively; wasm32 with simd128).
    memchr::memchr(b'\n', bytes)
}

/// The fields of an unquoted CSV line, like `line.split(',')` but with a
/// vectorised search for the commas (the decoders' hot loop).
pub fn fields(line: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut commas = memchr::memchr_iter(b',', line.as_bytes());
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        // Commas are ASCII, so every cut is on a character boundary.
        match commas.next() {
            Some(comma) => {
                let field = line.get(start..comma);
                start = comma + 1;
                field
            }
            None => {
                done = true;
                line.get(start..)
            }
        }
    })
}

/// Splits an unquoted CSV line into exactly `N` leading fields, ignoring any
/// extra trailing fields. Returns `None` when there are fewer than `N`.
pub fn split_fields<const N: usize>(line: &str) -> Option<[&str; N]> {
    let mut out = [""; N];
    let mut parts = fields(line);
    for slot in &mut out {
        *slot = parts.next()?;
    }
    Some(out)
}

/// Whether a line is a header row: its first field is not a number.
///
/// Binance archives sometimes carry a header and sometimes not, for the same
/// market, so this must be decided per file from the data itself.
pub fn is_header(line: &str) -> bool {
    let first = line.split(',').next().unwrap_or("").trim();
    first.is_empty() || first.parse::<f64>().is_err()
}
