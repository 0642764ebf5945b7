//! CSV typing the way a pandas user expects: unique header names, and the
//! schema fixed from the data. Each column's type comes from the values of
//! the first chunk that has any (int64 ⊂ float64 ⊂ string, bool ⊂ string;
//! spaces around numbers allowed); `[input.schema]` pins a type; a scaled
//! column is float64 from the start. Enters: header fields and the first
//! chunk (from `source.rs`); leaves: the [`FixedSchema`] every chunk of
//! the run is parsed with.

use std::sync::Arc;

use polars::prelude::*;

use crate::chunk::FixedSchema;
use crate::error::{bad_utf8, missing_column, DataError, DataLocation, NamedIn, PrepError, Result};
use crate::pipeline::plan::{CsvPlan, InputFormat, InputPlan};
use crate::read::chunker::{open_chunker, CsvChunk};
use crate::read::csv_fields::{fields, Inferred, NullTokens};
use crate::read::csv_reference::records;
use crate::read::source::{dtype_for, format_of};
use crate::storage::InputObject;

/// Column names from a CSV header, made unique the way pandas does it, so
/// names match what a pandas/scikit-learn user sees: an empty name becomes
/// `Unnamed: <index>`, a repeated one gets `.1`, `.2`, … Without a header:
/// `column_1`, `column_2`, …
pub fn column_names(header: Vec<String>, has_header: bool) -> Vec<String> {
    if !has_header {
        return (1..=header.len()).map(|i| format!("column_{i}")).collect();
    }
    // pandas' C parser: a repeat of `a` takes the first `a.N` (N counting
    // on from that name's earlier repeats) that is not already a name in
    // the header as renamed so far, so `a,a,a.1` reads `a, a.2, a.1`.
    let mut names: Vec<String> = header
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            if n.is_empty() {
                format!("Unnamed: {i}")
            } else {
                n
            }
        })
        .collect();
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for i in 0..names.len() {
        let original = names[i].clone();
        let mut col = original.clone();
        let mut count = counts.get(&col).copied().unwrap_or(0);
        while count > 0 {
            counts.insert(original.clone(), count + 1);
            col = format!("{original}.{count}");
            if names.contains(&col) {
                count += 1;
            } else {
                count = counts.get(&col).copied().unwrap_or(0);
            }
        }
        counts.insert(col.clone(), count + 1);
        names[i] = col;
    }
    names
}

/// The delimiter a header read as one column most likely has: `;`, tab or
/// `|` when the one name holds it and `input.csv.delimiter` was not set
/// (a one-column file may hold any name, so this is a warning only).
pub fn likely_delimiter(names: &[String], csv: &CsvPlan) -> Option<char> {
    if names.len() != 1 || csv.delimiter_set {
        return None;
    }
    [';', '\t', '|'].into_iter().find(|c| names[0].contains(*c))
}

/// Per column, the type of its non-null values in this chunk (`None`: all
/// null so far). A field that is not UTF-8 is bad data naming it.
pub fn infer_chunk(
    chunk: &CsvChunk,
    names: &[String],
    only: Option<&[usize]>,
    csv: &CsvPlan,
    file: &str,
) -> Result<Vec<Option<Inferred>>> {
    let nulls = NullTokens::new(&csv.null_values);
    let mut types: Vec<Option<Inferred>> = vec![None; names.len()];
    let wanted = |i: usize| only.is_none_or(|o| o.contains(&i));
    for (line, rec) in records(chunk) {
        for (i, f) in fields(rec, csv.delimiter, csv.quote).enumerate() {
            if i >= names.len() || !wanted(i) || nulls.is_null(&f.value, f.quoted) {
                continue;
            }
            if let Err(e) = std::str::from_utf8(&f.value) {
                let (byte, at) = bad_utf8(&f.value, e);
                return Err(PrepError::bad_data(
                    DataLocation::file(file).line(Some(line)).column(&names[i]),
                    DataError::InvalidUtf8 { byte, at },
                ));
            }
            types[i] = Inferred::add(types[i], &f.value);
        }
    }
    Ok(types)
}

/// The type a column is read with, given what its first values look like
/// (`None`: no value yet): `[input.schema]` first, then float64 for the
/// scaled columns whose values are numbers, else the inferred type.
pub fn column_type(input: &InputPlan, name: &str, inferred: Option<Inferred>) -> Option<DataType> {
    if let Some((_, t)) = input.schema_overrides.iter().find(|(c, _)| c == name) {
        return Some(dtype_for(*t));
    }
    match inferred? {
        Inferred::Int | Inferred::Float if input.read_as_float.numeric(name) => {
            Some(DataType::Float64)
        }
        t => Some(t.dtype()),
    }
}

/// Fixes the schema from the first chunk of `files[first]`. A column with
/// no value there takes the type of the first later chunk (of this or a
/// later file) where it has values, found by reading ahead, so the result
/// equals reading the whole input at once; a column with no value anywhere
/// is a string column.
pub fn fix_schema(
    files: &[InputObject],
    first: usize,
    chunk: &CsvChunk,
    names: &[String],
    input: &InputPlan,
) -> Result<FixedSchema> {
    let obj = &files[first];
    for (col, _) in &input.schema_overrides {
        if !names.contains(col) {
            return Err(missing_column(
                &obj.uri,
                col,
                NamedIn::Setting("[input.schema]"),
                names.iter().map(String::as_str),
            ));
        }
    }
    let inferred = infer_chunk(chunk, names, None, &input.csv, &obj.uri)?;
    let mut types: Vec<Option<DataType>> = names
        .iter()
        .zip(&inferred)
        .map(|(n, t)| column_type(input, n, *t))
        .collect();
    let pending: Vec<usize> = (0..names.len()).filter(|&i| types[i].is_none()).collect();
    if !pending.is_empty() {
        look_ahead(files, first, names, &pending, input, &mut types)?;
    }
    let schema: Schema = names
        .iter()
        .zip(types)
        .map(|(n, t)| Field::new(PlSmallStr::from(n.as_str()), t.unwrap_or(DataType::String)))
        .collect();
    Ok(FixedSchema::new(Arc::new(schema), obj.uri.clone()))
}

/// Reads on from the start of `files[first]` until every pending column has
/// a value (or the input ends), typing each from the chunk it first has
/// values in. Chunks are cut as the run cuts them, so the answer is the
/// run's; nothing is kept but the types.
fn look_ahead(
    files: &[InputObject],
    first: usize,
    names: &[String],
    pending: &[usize],
    input: &InputPlan,
    types: &mut [Option<DataType>],
) -> Result<()> {
    let mut left: Vec<usize> = pending.to_vec();
    let listed: Vec<&str> = left.iter().map(|&i| names[i].as_str()).collect();
    tracing::info!(
        "column(s) {} have no value in the first {} rows of {}; reading ahead for their type (pin them in [input.schema] to skip this)",
        listed.join(", "),
        input.chunk_rows,
        files[first].uri
    );
    for obj in &files[first..] {
        if !matches!(format_of(obj, input.format), Ok(InputFormat::Csv)) {
            break;
        }
        let mut chunker = open_chunker(obj, &input.csv)?;
        match chunker.first_record(input.csv.has_header)? {
            Some(h) if h.len() == names.len() => {}
            Some(_) => break, // the pass reports the different header
            None => continue,
        }
        while let Some(chunk) = chunker.next_chunk(input.chunk_rows.get())? {
            let found = infer_chunk(&chunk, names, Some(&left), &input.csv, &obj.uri)?;
            left.retain(|&i| {
                let Some(t) = found[i] else { return true };
                types[i] = column_type(input, &names[i], Some(t));
                tracing::info!(
                    "column `{}` is {} (its first values are on lines {}–{} of {})",
                    names[i],
                    types[i].as_ref().map_or(String::new(), |d| d.to_string()),
                    chunk.record_lines.first().copied().unwrap_or(0),
                    chunk.record_lines.last().copied().unwrap_or(0),
                    obj.uri
                );
                false
            });
            if left.is_empty() {
                return Ok(());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_one_column_header_holding_a_separator_names_it() {
        let csv = crate::pipeline::plan::InputPlan::defaults("t.csv").csv;
        let one = |n: &str| vec![n.to_string()];
        assert_eq!(likely_delimiter(&one("a;b;c"), &csv), Some(';'));
        assert_eq!(likely_delimiter(&one("a|b"), &csv), Some('|'));
        assert_eq!(likely_delimiter(&one("price"), &csv), None);
        let two = vec!["a;b".to_string(), "c".to_string()];
        assert_eq!(likely_delimiter(&two, &csv), None);
        let mut set = csv.clone();
        set.delimiter_set = true;
        assert_eq!(likely_delimiter(&one("a;b"), &set), None);
    }

    #[test]
    fn header_names_are_made_unique_like_pandas() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            column_names(h(&["", "a", "a", "b", "a"]), true),
            h(&["Unnamed: 0", "a", "a.1", "b", "a.2"])
        );
        // pandas 3.1: later names are not taken (`a.1` is in the header).
        assert_eq!(
            column_names(h(&["a", "a", "a.1", "a"]), true),
            h(&["a", "a.2", "a.1", "a.3"])
        );
        assert_eq!(
            column_names(h(&["a.1", "a", "a"]), true),
            h(&["a.1", "a", "a.2"])
        );
        assert_eq!(
            column_names(h(&["x", "x", "x.1", "x.1", "x.2"]), true),
            h(&["x", "x.3", "x.1", "x.1.1", "x.2"])
        );
        assert_eq!(
            column_names(h(&["x", "y"]), false),
            h(&["column_1", "column_2"])
        );
    }
}
