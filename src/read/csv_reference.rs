//! The reference CSV parser: a chunk of whole records into a typed frame,
//! one field at a time with the rules of `csv_fields.rs`. It parses the
//! chunks the fast parser (`csv_fast.rs`) leaves (odd quoting, spaces
//! around numbers, a value that does not fit), and is what the fast parser
//! is property-tested against. Every error names the file, the record's
//! physical line and the column by its header name.
//!
//! Enters: a [`CsvChunk`] and the fixed schema. Leaves: a frame with one
//! row per record, or bad-data errors in prep's own words.

use polars::prelude::*;

use crate::error::{bad_utf8, DataError, DataLocation, PrepError, Result, TypeOrigin};
use crate::pipeline::plan::InputPlan;
use crate::read::chunker::{trim_eol, CsvChunk};
use crate::read::csv_fields::{fields, parse_bool, parse_float, parse_int, NullTokens};

enum Values {
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Bool(Vec<Option<bool>>),
    Str(Vec<Option<String>>),
}

/// Why a column has its type, for the "does not fit" hint.
pub fn type_origin(input: &InputPlan, column: &str, dtype: &DataType) -> TypeOrigin {
    if input.schema_overrides.iter().any(|(c, _)| c == column) {
        TypeOrigin::Pinned
    } else if dtype == &DataType::Float64 && input.read_as_float.numeric(column) {
        TypeOrigin::Scaled
    } else {
        TypeOrigin::Inferred
    }
}

/// The byte ranges of a chunk's records, line ends removed.
pub fn records(chunk: &CsvChunk) -> impl Iterator<Item = (u64, &[u8])> {
    let n = chunk.record_starts.len();
    (0..n).map(move |k| {
        let start = chunk.record_starts[k];
        let end = chunk
            .record_starts
            .get(k + 1)
            .copied()
            .unwrap_or(chunk.bytes.len());
        (chunk.record_lines[k], trim_eol(&chunk.bytes[start..end]))
    })
}

/// Parses a chunk field by field into `schema`'s types.
pub fn parse_reference(
    chunk: &CsvChunk,
    schema: &Schema,
    input: &InputPlan,
    file: &str,
) -> Result<DataFrame> {
    let csv = &input.csv;
    let nulls = NullTokens::new(&csv.null_values);
    let rows = chunk.rows();
    let names: Vec<&str> = schema.iter_names().map(|s| s.as_str()).collect();
    let mut cols: Vec<Values> = schema
        .iter_values()
        .map(|d| match d {
            DataType::Int64 => Values::Int(Vec::with_capacity(rows)),
            DataType::Float64 => Values::Float(Vec::with_capacity(rows)),
            DataType::Boolean => Values::Bool(Vec::with_capacity(rows)),
            _ => Values::Str(Vec::with_capacity(rows)),
        })
        .collect();
    for (line, rec) in records(chunk) {
        let mut found = 0;
        for (i, f) in fields(rec, csv.delimiter, csv.quote).enumerate() {
            found += 1;
            let Some(col) = cols.get_mut(i) else { continue };
            let at = || DataLocation::file(file).line(Some(line)).column(names[i]);
            let text = std::str::from_utf8(&f.value).map_err(|e| {
                let (byte, at_byte) = bad_utf8(&f.value, e);
                PrepError::bad_data(at(), DataError::InvalidUtf8 { byte, at: at_byte })
            })?;
            let null = nulls.is_null(&f.value, f.quoted);
            let mismatch = |expected: DataType| {
                PrepError::bad_data(
                    at(),
                    DataError::TypeMismatch {
                        column: names[i].to_string(),
                        value: text.to_string(),
                        origin: type_origin(input, names[i], &expected),
                        expected,
                    },
                )
            };
            match col {
                Values::Int(v) => v.push(match null {
                    true => None,
                    false => Some(parse_int(&f.value).ok_or_else(|| mismatch(DataType::Int64))?),
                }),
                Values::Float(v) => v.push(match null {
                    true => None,
                    false => {
                        Some(parse_float(&f.value).ok_or_else(|| mismatch(DataType::Float64))?)
                    }
                }),
                Values::Bool(v) => v.push(match null {
                    true => None,
                    false => Some(parse_bool(&f.value).ok_or_else(|| mismatch(DataType::Boolean))?),
                }),
                Values::Str(v) => v.push((!null).then(|| text.to_string())),
            }
        }
        if found != names.len() {
            return Err(PrepError::bad_data(
                DataLocation::file(file).line(Some(line)),
                DataError::RaggedRow {
                    expected: names.len(),
                    found,
                },
            ));
        }
    }
    let columns: Vec<Column> = cols
        .into_iter()
        .zip(&names)
        .map(|(v, name)| {
            let name = PlSmallStr::from(*name);
            match v {
                Values::Int(v) => Series::new(name, v),
                Values::Float(v) => Series::new(name, v),
                Values::Bool(v) => Series::new(name, v),
                Values::Str(v) => Series::new(name, v),
            }
            .into_column()
        })
        .collect();
    DataFrame::new(rows, columns).map_err(|e| PrepError::polars("building a CSV chunk", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read::chunker::RecordChunker;
    use crate::read::csv_fast::FastCsv;
    use crate::read::csv_types::{column_names, infer_chunk};
    use proptest::prelude::*;

    fn byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            4 => prop::sample::select(b",\"\r\n ab1.-".to_vec()),
            1 => any::<u8>(),
        ]
    }

    proptest! {
        /// Whatever the bytes, reading them is a value or a located error,
        /// never a panic: splitter, inference, fast and reference parser.
        #[test]
        fn any_bytes_are_read_or_refused_without_panicking(
            data in prop::collection::vec(byte(), 0..400),
            chunk_rows in 1usize..6,
            no_nulls in any::<bool>(),
        ) {
            let mut input = InputPlan::defaults("t.csv");
            if no_nulls {
                input.csv.null_values = Vec::new();
            }
            let mut c = RecordChunker::new(&data[..], "t.csv", b',', Some(b'"'));
            let Ok(Some(header)) = c.first_record(true) else { return Ok(()) };
            let names = column_names(header, true);
            while let Ok(Some(chunk)) = c.next_chunk(chunk_rows) {
                let Ok(types) = infer_chunk(&chunk, &names, None, &input.csv, "t.csv") else { continue };
                let schema: Schema = names
                    .iter()
                    .zip(types)
                    .map(|(n, t)| Field::new(n.as_str().into(), t.map_or(DataType::String, |t| t.dtype())))
                    .collect();
                let slow = parse_reference(&chunk, &schema, &input, "t.csv");
                if let Some(fast) = FastCsv::new(&schema, &input.csv).and_then(|f| f.parse(&chunk)) {
                    prop_assert!(slow.is_ok(), "the reference parser refuses what the fast one read");
                    prop_assert!(fast.equals_missing(&slow.unwrap()));
                }
            }
        }
    }
}
