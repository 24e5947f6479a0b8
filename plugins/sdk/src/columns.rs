//! Column builders and readers for the WIT's columnar batches.
//!
//! Owns: building [`Column`]s value by value with an optional null mask, and
//! typed, by-name access to the columns of an incoming [`Batch`]. It must not
//! know any exchange's schema.

use crate::{Batch, Column, ColumnValues, DictionaryUtf8};

/// Accumulates the values of one column, with nulls.
#[derive(Debug, Clone)]
pub struct ColumnBuilder<T> {
    values: Vec<T>,
    nulls: Option<Vec<bool>>,
}

impl<T> Default for ColumnBuilder<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            nulls: None,
        }
    }
}

impl<T: Default> ColumnBuilder<T> {
    /// An empty builder with room for `capacity` values.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            values: Vec::with_capacity(capacity),
            nulls: None,
        }
    }

    /// Appends a value.
    pub fn push(&mut self, value: T) {
        if let Some(nulls) = &mut self.nulls {
            nulls.push(false);
        }
        self.values.push(value);
    }

    /// Appends a null.
    pub fn push_null(&mut self) {
        let len = self.values.len();
        self.nulls
            .get_or_insert_with(|| vec![false; len])
            .push(true);
        self.values.push(T::default());
    }

    /// Appends a value or a null.
    pub fn push_option(&mut self, value: Option<T>) {
        match value {
            Some(value) => self.push(value),
            None => self.push_null(),
        }
    }

    /// Number of values (nulls included).
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// The last value pushed, unless it was a null (or nothing was pushed).
    #[inline(always)]
    pub fn last(&self) -> Option<&T> {
        if let Some(nulls) = &self.nulls
            && nulls.last() == Some(&true)
        {
            return None;
        }
        self.values.last()
    }

    /// Drops the values after the first `len` (a row given up half-way).
    pub fn truncate(&mut self, len: usize) {
        self.values.truncate(len);
        if let Some(nulls) = &mut self.nulls {
            nulls.truncate(len);
        }
    }

    /// Whether no value was pushed.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Takes the values and null mask out, leaving the builder empty.
    fn take(&mut self) -> (Vec<T>, Option<Vec<bool>>) {
        let capacity = self.values.capacity();
        (
            std::mem::replace(&mut self.values, Vec::with_capacity(capacity)),
            self.nulls.take(),
        )
    }
}

macro_rules! finishers {
    ($($method:ident: $ty:ty => $variant:ident),* $(,)?) => {$(
        impl ColumnBuilder<$ty> {
            #[doc = concat!("Finishes a `", stringify!($variant), "` column named `name` and empties the builder.")]
            pub fn $method(&mut self, name: &str) -> Column {
                let (values, nulls) = self.take();
                Column { name: name.to_owned(), values: ColumnValues::$variant(values), nulls }
            }
        }
    )*};
}

finishers! {
    finish_int64: i64 => Int64,
    finish_float64: f64 => Float64,
    finish_boolean: bool => Boolean,
    finish_utf8: String => Utf8,
}

impl ColumnBuilder<i64> {
    /// Finishes a `timestamp-us` column (values in microseconds since the epoch).
    pub fn finish_timestamp_us(&mut self, name: &str) -> Column {
        let (values, nulls) = self.take();
        Column {
            name: name.to_owned(),
            values: ColumnValues::TimestampUs(values),
            nulls,
        }
    }
}

/// Accumulates a low-cardinality string column, dictionary-encoded.
#[derive(Debug, Default, Clone)]
pub struct DictionaryBuilder {
    index: std::collections::HashMap<String, u32>,
    dictionary: Vec<String>,
    keys: Vec<u32>,
    nulls: Option<Vec<bool>>,
}

impl DictionaryBuilder {
    /// Appends a value.
    pub fn push(&mut self, value: &str) {
        let key = match self.index.get(value) {
            Some(key) => *key,
            None => {
                let key = u32::try_from(self.dictionary.len()).unwrap_or(u32::MAX);
                self.index.insert(value.to_owned(), key);
                self.dictionary.push(value.to_owned());
                key
            }
        };
        if let Some(nulls) = &mut self.nulls {
            nulls.push(false);
        }
        self.keys.push(key);
    }

    /// Appends a null.
    pub fn push_null(&mut self) {
        let len = self.keys.len();
        self.nulls
            .get_or_insert_with(|| vec![false; len])
            .push(true);
        // Key 0 of an empty dictionary would be out of range: keep one entry.
        if self.dictionary.is_empty() {
            self.push_dictionary_entry("");
        }
        self.keys.push(0);
    }

    fn push_dictionary_entry(&mut self, value: &str) {
        self.index.insert(value.to_owned(), 0);
        self.dictionary.push(value.to_owned());
    }

    /// Number of values (nulls included).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Drops the values after the first `len` (a row given up half-way);
    /// the dictionary keeps its entries.
    pub fn truncate(&mut self, len: usize) {
        self.keys.truncate(len);
        if let Some(nulls) = &mut self.nulls {
            nulls.truncate(len);
        }
    }

    /// Whether no value was pushed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Finishes the column and empties the builder (the dictionary restarts
    /// too, so each batch carries only the values it uses).
    pub fn finish(&mut self, name: &str) -> Column {
        let taken = std::mem::take(self);
        Column {
            name: name.to_owned(),
            values: ColumnValues::Utf8Dict(DictionaryUtf8 {
                dictionary: taken.dictionary,
                keys: taken.keys,
            }),
            nulls: taken.nulls,
        }
    }
}

/// Makes a batch from columns, taking the row count from the first column.
pub fn batch(columns: Vec<Column>) -> Batch {
    let rows = columns.first().map_or(0, |c| values_len(&c.values));
    Batch {
        rows: u32::try_from(rows).unwrap_or(u32::MAX),
        columns,
    }
}

/// A column whose every row holds `value` (dictionary-encoded, so it costs
/// four bytes a row, not a string a row).
pub fn constant_utf8(name: &str, value: &str, rows: usize) -> Column {
    Column {
        name: name.to_owned(),
        values: ColumnValues::Utf8Dict(DictionaryUtf8 {
            dictionary: vec![value.to_owned()],
            keys: vec![0; rows],
        }),
        nulls: None,
    }
}

/// A column of `rows` nulls of type float64.
pub fn null_float64(name: &str, rows: usize) -> Column {
    Column {
        name: name.to_owned(),
        values: ColumnValues::Float64(vec![0.0; rows]),
        nulls: Some(vec![true; rows]),
    }
}

/// A column of `rows` nulls of type int64.
pub fn null_int64(name: &str, rows: usize) -> Column {
    Column {
        name: name.to_owned(),
        values: ColumnValues::Int64(vec![0; rows]),
        nulls: Some(vec![true; rows]),
    }
}

/// Keeps the rows of `batch` whose `keep` flag is true, in every column
/// (null masks included).
pub fn filter(batch: Batch, keep: &[bool]) -> Batch {
    fn pick<T>(values: Vec<T>, keep: &[bool]) -> Vec<T> {
        values
            .into_iter()
            .zip(keep)
            .filter_map(|(v, k)| k.then_some(v))
            .collect()
    }
    let rows = keep.iter().filter(|k| **k).count();
    let columns = batch
        .columns
        .into_iter()
        .map(|c| Column {
            name: c.name,
            values: match c.values {
                ColumnValues::Int64(v) => ColumnValues::Int64(pick(v, keep)),
                ColumnValues::Float64(v) => ColumnValues::Float64(pick(v, keep)),
                ColumnValues::Boolean(v) => ColumnValues::Boolean(pick(v, keep)),
                ColumnValues::Utf8(v) => ColumnValues::Utf8(pick(v, keep)),
                ColumnValues::Utf8Dict(d) => ColumnValues::Utf8Dict(DictionaryUtf8 {
                    dictionary: d.dictionary,
                    keys: pick(d.keys, keep),
                }),
                ColumnValues::TimestampUs(v) => ColumnValues::TimestampUs(pick(v, keep)),
            },
            nulls: c.nulls.map(|n| pick(n, keep)),
        })
        .collect();
    Batch {
        rows: u32::try_from(rows).unwrap_or(u32::MAX),
        columns,
    }
}

/// Number of entries in a column's value list.
pub fn values_len(values: &ColumnValues) -> usize {
    match values {
        ColumnValues::Int64(v) | ColumnValues::TimestampUs(v) => v.len(),
        ColumnValues::Float64(v) => v.len(),
        ColumnValues::Boolean(v) => v.len(),
        ColumnValues::Utf8(v) => v.len(),
        ColumnValues::Utf8Dict(d) => d.keys.len(),
    }
}

impl Batch {
    /// The column named `name`, if any.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Takes the column named `name` out of the batch, if any.
    pub fn take_column(&mut self, name: &str) -> Option<Column> {
        let index = self.columns.iter().position(|c| c.name == name)?;
        Some(self.columns.remove(index))
    }
}

impl Column {
    /// The values if this is a float64 column.
    pub fn as_float64(&self) -> Option<&[f64]> {
        match &self.values {
            ColumnValues::Float64(v) => Some(v),
            _ => None,
        }
    }

    /// The values if this is an int64 column.
    pub fn as_int64(&self) -> Option<&[i64]> {
        match &self.values {
            ColumnValues::Int64(v) => Some(v),
            _ => None,
        }
    }

    /// The values if this is a timestamp-us column.
    pub fn as_timestamp_us(&self) -> Option<&[i64]> {
        match &self.values {
            ColumnValues::TimestampUs(v) => Some(v),
            _ => None,
        }
    }

    /// Renames the column.
    pub fn renamed(mut self, name: &str) -> Column {
        self.name = name.to_owned();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_mask_appears_only_when_a_null_is_pushed() {
        let mut b = ColumnBuilder::<f64>::default();
        b.push(1.0);
        b.push(2.0);
        let c = b.finish_float64("x");
        assert_eq!(c.nulls, None);

        b.push(1.0);
        b.push_null();
        b.push(3.0);
        let c = b.finish_float64("x");
        assert_eq!(c.nulls, Some(vec![false, true, false]));
        assert_eq!(c.as_float64(), Some(&[1.0, 0.0, 3.0][..]));
        assert!(b.is_empty());
    }

    #[test]
    fn dictionary_builder_stores_each_value_once() {
        let mut b = DictionaryBuilder::default();
        for v in ["BUY", "SELL", "BUY", "BUY"] {
            b.push(v);
        }
        b.push_null();
        let c = b.finish("side");
        match c.values {
            ColumnValues::Utf8Dict(d) => {
                assert_eq!(d.dictionary, vec!["BUY", "SELL"]);
                assert_eq!(d.keys, vec![0, 1, 0, 0, 0]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.nulls, Some(vec![false, false, false, false, true]));
        assert!(b.is_empty());
    }

    #[test]
    fn filter_keeps_flagged_rows_and_their_nulls() {
        let mut b = ColumnBuilder::<f64>::default();
        b.push(1.0);
        b.push_null();
        b.push(3.0);
        let filtered = filter(batch(vec![b.finish_float64("x")]), &[false, true, true]);
        assert_eq!(filtered.rows, 2);
        assert_eq!(filtered.columns[0].nulls, Some(vec![true, false]));
        assert_eq!(filtered.columns[0].as_float64(), Some(&[0.0, 3.0][..]));
    }

    #[test]
    fn batch_counts_rows_from_first_column() {
        let mut b = ColumnBuilder::<i64>::default();
        b.push(5);
        b.push(6);
        let batch = batch(vec![b.finish_timestamp_us("t"), constant_utf8("s", "X", 2)]);
        assert_eq!(batch.rows, 2);
        assert!(batch.column("s").is_some());
    }
}
