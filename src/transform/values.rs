//! Reading a column's values the way every step counts them: missing is a
//! null, or NaN in a float column; the rest are the observed values.

use polars::prelude::*;

use crate::error::{PrepError, Result};

/// Marks missing values (null, or NaN in a float column) of one column.
pub fn missing_mask(col: &Column) -> Vec<bool> {
    let s = col.as_materialized_series();
    match s.dtype() {
        DataType::Float64 => s
            .f64()
            .expect("f64")
            .iter()
            .map(|v| v.is_none_or(f64::is_nan))
            .collect(),
        DataType::Float32 => s
            .f32()
            .expect("f32")
            .iter()
            .map(|v| v.is_none_or(f32::is_nan))
            .collect(),
        _ => {
            if s.null_count() == 0 {
                vec![false; s.len()]
            } else {
                s.is_null().iter().map(|v| v.unwrap_or(false)).collect()
            }
        }
    }
}

pub fn column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Column> {
    df.column(name)
        .map_err(|e| PrepError::polars(format!("reading column `{name}`"), e))
}

/// A numeric column as Float64.
pub fn as_f64(df: &DataFrame, name: &str) -> Result<Float64Chunked> {
    let f = column(df, name)?
        .cast(&DataType::Float64)
        .map_err(|e| PrepError::polars(format!("casting column `{name}` to float64"), e))?;
    f.f64()
        .cloned()
        .map_err(|e| PrepError::polars(format!("reading column `{name}`"), e))
}

/// The observed (non-null, non-NaN) values of a numeric column as f64,
/// and how many were missing.
pub fn observed(df: &DataFrame, name: &str) -> Result<(Vec<f64>, u64)> {
    let ca = as_f64(df, name)?;
    let values: Vec<f64> = if ca.null_count() == 0 {
        ca.into_no_null_iter().filter(|v| !v.is_nan()).collect()
    } else {
        ca.iter().flatten().filter(|v| !v.is_nan()).collect()
    };
    let missing = (ca.len() - values.len()) as u64;
    Ok((values, missing))
}

/// A float column's values, nulls not allowed (for unit tests).
#[cfg(test)]
pub fn f64s(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name)
        .expect("column")
        .f64()
        .expect("f64")
        .into_no_null_iter()
        .collect()
}
