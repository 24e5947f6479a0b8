//! The decoders' fast path: one pass over a line's bytes that finds each
//! field's end while it parses the field's number.
//!
//! Owns: [`FieldCursor`]'s walk and its contract (a field not in the plain
//! form spends the cursor; the caller reads the line again the general
//! way). It must not define number forms: [`super::numbers`] does.

#[allow(unused_imports)]
use super::lines::fields;
use super::numbers::*;

/// Reads an unquoted CSV line field by field in one pass over its bytes,
/// parsing numbers while it looks for their ends: the decoders' fast path
/// (splitting first and parsing after reads every byte twice or more).
///
/// Each method consumes the next field and returns `None` when it is not in
/// the plain form the method reads (surrounding spaces, an exponent, an
/// empty field, no field left, …). The cursor is then spent: the caller
/// reads the line again the general way ([`fields`] and the `parse_*`
/// functions), which accepts every form they do and names what is wrong.
#[derive(Debug, Clone)]
pub struct FieldCursor<'a> {
    line: &'a str,
    /// Where the next field starts; past the line's end once the last one
    /// was read (a plain index rather than an `Option`: one value less to
    /// keep in a register in the decoders' loops).
    next: usize,
}

impl<'a> FieldCursor<'a> {
    /// A cursor before the first field of `line`.
    pub fn new(line: &'a str) -> Self {
        Self { line, next: 0 }
    }

    /// Where the next field starts, unless the last one was read.
    #[inline(always)]
    fn start(&self) -> Option<usize> {
        (self.next <= self.line.len()).then_some(self.next)
    }

    /// Moves past the field that ended at `end` (a comma or the line's end).
    #[inline(always)]
    fn advance(&mut self, end: usize) {
        self.next = end + 1;
    }

    /// A plain decimal (see [`parse_float`]'s fast path).
    #[inline(always)]
    pub fn decimal(&mut self) -> Option<f64> {
        let (value, end) = plain_decimal(self.line.as_bytes(), self.start()?)?;
        self.advance(end);
        Some(value)
    }

    /// An integer of at most 18 digits with an optional sign.
    #[inline(always)]
    pub fn integer(&mut self) -> Option<i64> {
        let (value, end) = plain_int(self.line.as_bytes(), self.start()?)?;
        self.advance(end);
        Some(value)
    }

    /// Where the field starting at `start` ends: its comma or the line's end.
    #[inline(always)]
    fn field_end(&self, start: usize) -> Option<usize> {
        let bytes = self.line.as_bytes();
        let rest = bytes.get(start..)?;
        // The fields read as text or skipped are mostly short (a side, a
        // flag, an unused `0`): one word often holds their end, without the
        // call and set-up of a vectorised search.
        if let Some(offset) = first_comma(word_at(bytes, start)) {
            return Some(start + offset);
        }
        if rest.len() <= 8 {
            return Some(bytes.len());
        }
        Some(start + 8 + memchr::memchr(b',', &rest[8..]).unwrap_or(rest.len() - 8))
    }

    /// A non-empty field without surrounding spaces, as it is.
    #[inline(always)]
    pub fn text(&mut self) -> Option<&'a str> {
        let start = self.start()?;
        let end = self.field_end(start)?;
        // Commas are ASCII, so the cut is on a character boundary.
        let field = self.line.get(start..end)?;
        let bytes = field.as_bytes();
        if bytes.first()?.is_ascii_whitespace() || bytes.last()?.is_ascii_whitespace() {
            return None;
        }
        self.advance(end);
        Some(field)
    }

    /// `true` or `false` in any letter case.
    #[inline(always)]
    pub fn boolean(&mut self) -> Option<bool> {
        let field = self.text()?;
        if field.eq_ignore_ascii_case("true") {
            Some(true)
        } else if field.eq_ignore_ascii_case("false") {
            Some(false)
        } else {
            None
        }
    }

    /// How many fields the line has after those read: 0 once the last one
    /// was read.
    #[inline(always)]
    pub fn fields_left(&self) -> usize {
        match self.line.as_bytes().get(self.next..) {
            Some(rest) => 1 + memchr::memchr_iter(b',', rest).count(),
            None => 0,
        }
    }

    /// Skips a field, whatever it holds.
    #[inline(always)]
    pub fn skip(&mut self) -> Option<()> {
        let end = self.field_end(self.start()?)?;
        self.advance(end);
        Some(())
    }
}
