//! Every later file must have the columns (and, for Parquet, the types) of
//! the file that fixed the schema; a mismatch names the file and column.

use polars::prelude::*;

use crate::chunk::FixedSchema;
use crate::error::{ColumnDifference, DataError, DataLocation, PrepError, Result};

pub fn check_same_columns(fixed: &FixedSchema, names: &[String], uri: &str) -> Result<()> {
    let expected: Vec<&str> = fixed.schema.iter_names().map(|s| s.as_str()).collect();
    let Some(difference) = first_difference(&expected, names) else {
        return Ok(());
    };
    Err(PrepError::bad_data(
        DataLocation::file(uri)
            .line(Some(1))
            .column(difference.column()),
        DataError::HeaderMismatch {
            origin: fixed.origin.clone(),
            difference,
        },
    ))
}

/// The first place where `got` (this file) differs from `expected`.
fn first_difference(expected: &[&str], got: &[String]) -> Option<ColumnDifference> {
    for i in 0..expected.len().max(got.len()) {
        match (expected.get(i), got.get(i)) {
            (Some(e), Some(g)) if *e == g.as_str() => continue,
            (Some(e), Some(g)) => {
                return Some(ColumnDifference::Renamed {
                    position: i + 1,
                    here: g.clone(),
                    there: e.to_string(),
                })
            }
            (Some(e), None) => {
                return Some(ColumnDifference::Missing {
                    column: e.to_string(),
                })
            }
            (None, Some(g)) => return Some(ColumnDifference::Extra { column: g.clone() }),
            (None, None) => break,
        }
    }
    None
}

pub fn check_same_schema(fixed: &FixedSchema, schema: &Schema, uri: &str) -> Result<()> {
    let names: Vec<String> = schema.iter_names().map(|s| s.to_string()).collect();
    let expected: Vec<&str> = fixed.schema.iter_names().map(|s| s.as_str()).collect();
    if let Some(difference) = first_difference(&expected, &names) {
        return Err(PrepError::bad_data(
            DataLocation::file(uri).column(difference.column()),
            DataError::SchemaMismatch {
                origin: fixed.origin.clone(),
                difference,
            },
        ));
    }
    for ((name, there), here) in fixed.schema.iter().zip(schema.iter_values()) {
        if there != here {
            return Err(PrepError::bad_data(
                DataLocation::file(uri).column(name.as_str()),
                DataError::ColumnTypeDiffers {
                    column: name.to_string(),
                    here: here.clone(),
                    there: there.clone(),
                    origin: fixed.origin.clone(),
                },
            ));
        }
    }
    Ok(())
}
