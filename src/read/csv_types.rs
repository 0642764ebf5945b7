//! CSV typing details that make prep read a file the way a pandas user
//! expects: unique header names, numbers with surrounding spaces, and the
//! "value does not fit the inferred type" diagnosis with file, line and
//! column. Input: header fields and parsed chunks from `source.rs`.

use polars::prelude::*;

use crate::chunk::FixedSchema;
use crate::error::{DataError, DataLocation, PrepError, Result, TypeOrigin};
use crate::pipeline::plan::InputPlan;
use crate::read::chunker::{records_of, CsvChunk};

/// Column names from a CSV header, made unique the way pandas does it, so
/// names match what a pandas/scikit-learn user sees: an empty name becomes
/// `Unnamed: <index>`, a repeated one gets `.1`, `.2`, … Without a header:
/// `column_1`, `column_2`, …
pub fn column_names(header: Vec<String>, has_header: bool) -> Vec<String> {
    if !has_header {
        return (1..=header.len()).map(|i| format!("column_{i}")).collect();
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(header.len());
    for (i, name) in header.into_iter().enumerate() {
        let base = if name.is_empty() {
            format!("Unnamed: {i}")
        } else {
            name
        };
        let mut candidate = base.clone();
        let mut k = 1;
        while !seen.insert(candidate.clone()) {
            candidate = format!("{base}.{k}");
            k += 1;
        }
        out.push(candidate);
    }
    out
}

/// The number a field holds once surrounding spaces are trimmed, if any.
fn trimmed_number(v: &str, dtype: &DataType) -> Option<AnyValue<'static>> {
    let t = v.trim();
    match dtype {
        DataType::Int64 => t.parse::<i64>().ok().map(AnyValue::Int64),
        _ => t
            .parse::<f64>()
            .ok()
            .or_else(|| is_polars_float(t).then(|| parse_special_float(t)))
            .map(AnyValue::Float64),
    }
}

fn parse_special_float(t: &str) -> f64 {
    match t.to_ascii_lowercase().trim_start_matches('+') {
        "nan" => f64::NAN,
        s if s.starts_with('-') => f64::NEG_INFINITY,
        _ => f64::INFINITY,
    }
}

/// For string columns of the first chunk: the numeric type every non-null
/// value has once trimmed, when at least one value needed trimming.
pub fn detect_trimmed(df: &DataFrame, names: &[String]) -> Vec<(String, DataType)> {
    let mut out = Vec::new();
    for (name, col) in names.iter().zip(df.columns()) {
        let Ok(ca) = col.as_materialized_series().str() else {
            continue;
        };
        let values: Vec<&str> = ca.iter().flatten().collect();
        if values.is_empty() || !values.iter().any(|v| v.trim().len() != v.len()) {
            continue;
        }
        if values.iter().all(|v| v.trim().parse::<i64>().is_ok()) {
            out.push((name.clone(), DataType::Int64));
        } else if values
            .iter()
            .all(|v| trimmed_number(v, &DataType::Float64).is_some())
        {
            out.push((name.clone(), DataType::Float64));
        }
    }
    out
}

/// Converts the trimmed columns of a parsed chunk to their numeric types.
pub fn convert_trimmed(
    mut df: DataFrame,
    fixed: &FixedSchema,
    lines: &[u64],
    uri: &str,
) -> Result<DataFrame> {
    for (name, dtype) in &fixed.trimmed {
        let col = df
            .column(name)
            .map_err(|e| PrepError::polars(format!("reading column `{name}`"), e))?;
        let ca = col
            .as_materialized_series()
            .str()
            .map_err(|e| PrepError::polars(format!("reading column `{name}`"), e))?
            .clone();
        let mut values: Vec<AnyValue> = Vec::with_capacity(ca.len());
        for (i, v) in ca.iter().enumerate() {
            match v {
                None => values.push(AnyValue::Null),
                Some(v) => match trimmed_number(v, dtype) {
                    Some(n) => values.push(n),
                    None => {
                        // `[input.schema]` columns are never trimmed: the type is inferred.
                        return Err(PrepError::bad_data(
                            DataLocation::file(uri)
                                .line(lines.get(i).copied())
                                .column(name),
                            DataError::TypeMismatch {
                                column: name.clone(),
                                value: v.to_string(),
                                expected: dtype.clone(),
                                origin: TypeOrigin::Inferred,
                            },
                        ));
                    }
                },
            }
        }
        let series = Series::from_any_values_and_dtype(
            PlSmallStr::from(name.as_str()),
            &values,
            dtype,
            true,
        )
        .map_err(|e| PrepError::polars(format!("converting column `{name}`"), e))?;
        df.with_column(series.into_column())
            .map_err(|e| PrepError::polars(format!("replacing column `{name}`"), e))?;
    }
    Ok(df)
}

/// Turns a polars parse failure into "file, line, column: value does not fit
/// type" by re-checking the chunk's records (only on the error path).
pub fn diagnose_parse_error(
    e: PolarsError,
    chunk: &CsvChunk,
    schema: &Schema,
    input: &InputPlan,
    uri: &str,
) -> PrepError {
    let csv = &input.csv;
    let nulls: std::collections::HashSet<&str> =
        csv.null_values.iter().map(String::as_str).collect();
    for (line, raw) in records_of(chunk, csv.delimiter, csv.quote) {
        let mut fields = Vec::with_capacity(raw.len());
        for (i, bytes) in raw.iter().enumerate() {
            match std::str::from_utf8(bytes) {
                Ok(v) => fields.push(v.to_string()),
                Err(err) => {
                    let column = schema
                        .get_at_index(i)
                        .map(|(n, _)| n.to_string())
                        .unwrap_or_else(|| format!("column_{}", i + 1));
                    return PrepError::bad_data(
                        DataLocation::file(uri).line(Some(line)).column(column),
                        DataError::InvalidUtf8 { error: err },
                    );
                }
            }
        }
        for ((name, dtype), value) in schema.iter().zip(fields.iter()) {
            if nulls.contains(value.as_str()) {
                continue;
            }
            let v = value.trim();
            let fits = match dtype {
                DataType::Int64 => v.parse::<i64>().is_ok(),
                DataType::Float64 => v.parse::<f64>().is_ok() || is_polars_float(v),
                DataType::Boolean => {
                    v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
                }
                _ => true,
            };
            if !fits {
                let pinned = input
                    .schema_overrides
                    .iter()
                    .any(|(c, _)| c == name.as_str());
                return PrepError::bad_data(
                    DataLocation::file(uri)
                        .line(Some(line))
                        .column(name.as_str()),
                    DataError::TypeMismatch {
                        column: name.to_string(),
                        value: value.clone(),
                        expected: dtype.clone(),
                        origin: if pinned {
                            TypeOrigin::Pinned
                        } else {
                            TypeOrigin::Inferred
                        },
                    },
                );
            }
        }
    }
    PrepError::bad_data(
        DataLocation::file(uri).line(chunk.record_lines.first().copied()),
        DataError::Unparsable {
            detail: e.to_string(),
        },
    )
}

fn is_polars_float(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "inf" | "+inf" | "-inf" | "nan" | "infinity" | "-infinity"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_made_unique_like_pandas() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            column_names(h(&["", "a", "a", "b", "a"]), true),
            h(&["Unnamed: 0", "a", "a.1", "b", "a.2"])
        );
        assert_eq!(
            column_names(h(&["x", "y"]), false),
            h(&["column_1", "column_2"])
        );
    }
}
