//! Every later file must have the columns (and, for Parquet, the types) of
//! the file that fixed the schema; a mismatch names the file and column.

use polars::prelude::*;

use crate::chunk::FixedSchema;
use crate::error::{DataLocation, PrepError, Result};

pub fn check_same_columns(fixed: &FixedSchema, names: &[String], uri: &str) -> Result<()> {
    let expected: Vec<&str> = fixed.schema.iter_names().map(|s| s.as_str()).collect();
    if expected == names.iter().map(String::as_str).collect::<Vec<_>>() {
        return Ok(());
    }
    let (col, detail) = first_difference(&expected, names);
    Err(PrepError::bad_data(
        DataLocation {
            file: uri.to_string(),
            line: Some(1),
            column: Some(col),
            ..Default::default()
        },
        format!("its header does not match {}: {detail}", fixed.origin),
        Some("all input files must have the same columns in the same order; move other files out of input.uri or narrow it with a glob".into()),
    ))
}

fn first_difference(expected: &[&str], got: &[String]) -> (String, String) {
    for i in 0..expected.len().max(got.len()) {
        match (expected.get(i), got.get(i)) {
            (Some(e), Some(g)) if *e == g.as_str() => continue,
            (Some(e), Some(g)) => {
                return (
                    g.clone(),
                    format!("column {} is `{g}` here but `{e}` there", i + 1),
                )
            }
            (Some(e), None) => return (e.to_string(), format!("column `{e}` is missing here")),
            (None, Some(g)) => return (g.clone(), format!("column `{g}` is extra here")),
            (None, None) => break,
        }
    }
    (String::new(), "columns differ".into())
}

pub fn check_same_schema(fixed: &FixedSchema, schema: &Schema, uri: &str) -> Result<()> {
    let names: Vec<String> = schema.iter_names().map(|s| s.to_string()).collect();
    let expected: Vec<&str> = fixed.schema.iter_names().map(|s| s.as_str()).collect();
    if expected != names.iter().map(String::as_str).collect::<Vec<_>>() {
        let (col, detail) = first_difference(&expected, &names);
        return Err(PrepError::bad_data(
            DataLocation {
                file: uri.to_string(),
                column: Some(col),
                ..Default::default()
            },
            format!("its schema does not match {}: {detail}", fixed.origin),
            Some("all input files must have the same columns in the same order".into()),
        ));
    }
    for ((name, a), b) in fixed.schema.iter().zip(schema.iter_values()) {
        if a != b {
            return Err(PrepError::bad_data(
                DataLocation {
                    file: uri.to_string(),
                    column: Some(name.to_string()),
                    ..Default::default()
                },
                format!("column `{name}` is {b} here but {a} in {}", fixed.origin),
                Some("all input files must agree on column types; rewrite the odd file with the same types".into()),
            ));
        }
    }
    Ok(())
}
