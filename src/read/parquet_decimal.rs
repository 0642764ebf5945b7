//! Parquet decimal columns, read as float64.
//!
//! In: the Arrow schema of a file's footer, and each decoded frame. Out:
//! the schema with every decimal column (precision ≤ 38) as `Float64`, and
//! the frame with those columns converted, each value the float64 nearest
//! to the decimal (as Python's `float(Decimal(...))` gives, and as
//! scikit-learn sees a decimal column). Every later stage (statistics,
//! encoders, writers, spill) then sees an ordinary float column.
//!
//! A decimal with up to 15 significant digits round-trips through float64
//! exactly as text (`12.50` is written `12.5`); longer ones are rounded to
//! the nearest float64, which the reference documents.

use polars::prelude::*;
use polars_arrow::datatypes::{ArrowDataType, ArrowSchema};

use crate::error::{PrepError, Result};

/// The top-level decimal columns of `schema`, with their scales.
pub fn decimal_columns(schema: &ArrowSchema) -> Vec<(String, usize)> {
    schema
        .iter()
        .filter_map(|(name, field)| match field.dtype {
            ArrowDataType::Decimal(_, s)
            | ArrowDataType::Decimal32(_, s)
            | ArrowDataType::Decimal64(_, s) => Some((name.to_string(), s)),
            _ => None,
        })
        .collect()
}

/// `schema` with the `decimals` typed `Float64`.
pub fn float_schema(mut schema: Schema, decimals: &[(String, usize)]) -> Schema {
    for (name, _) in decimals {
        if let Some(dtype) = schema.get_mut(name.as_str()) {
            *dtype = DataType::Float64;
        }
    }
    schema
}

/// `df` with each of the `decimals` it holds converted to float64.
pub fn decimals_as_float(mut df: DataFrame, decimals: &[(String, usize)]) -> Result<DataFrame> {
    for (name, _) in decimals {
        let Ok(col) = df.column(name) else { continue };
        let DataType::Decimal(_, scale) = col.dtype() else {
            continue;
        };
        let scale = *scale;
        let decimal = col
            .decimal()
            .map_err(|e| PrepError::polars("reading a decimal column", e))?;
        let floats: Float64Chunked = decimal
            .physical()
            .iter()
            .map(|v| v.map(|x| decimal_to_f64(x, scale)))
            .collect();
        let floats = floats.with_name(name.as_str().into()).into_column();
        df.with_column(floats)
            .map_err(|e| PrepError::polars("reading a decimal column", e))?;
    }
    Ok(df)
}

/// The float64 nearest to `unscaled × 10^-scale`.
pub fn decimal_to_f64(unscaled: i128, scale: usize) -> f64 {
    const EXACT: i128 = 1 << 53;
    // Both operands exact: the one division rounds once, to the nearest.
    if unscaled.abs() <= EXACT && scale <= 22 {
        return unscaled as f64 / 10f64.powi(scale as i32);
    }
    // Otherwise through the decimal text, which Rust parses to the nearest.
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    format!("{sign}{digits}e-{scale}")
        .parse()
        .expect("a decimal's digits parse as a float")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_value_is_the_nearest_float() {
        assert_eq!(decimal_to_f64(1250, 2), 12.5);
        assert_eq!(decimal_to_f64(-1, 1), -0.1);
        assert_eq!(decimal_to_f64(0, 5), 0.0);
        assert_eq!(decimal_to_f64(12345678901234567, 0), 12345678901234568.0);
        // 38 digits: 0.1234… needs the text path to round once.
        let big = 12345678901234567890123456789012345678i128;
        assert_eq!(
            decimal_to_f64(big, 38),
            "0.12345678901234567890123456789012345678"
                .parse::<f64>()
                .unwrap()
        );
        assert_eq!(decimal_to_f64(-big, 2), -1.2345678901234568e35);
        assert_eq!(decimal_to_f64(7, 30), 7e-30);
    }

    #[test]
    fn decimal_columns_become_float_columns() {
        let d = Int128Chunked::from_slice("p".into(), &[1250, -5, 0])
            .into_decimal(10, 2)
            .unwrap();
        let df = DataFrame::new(
            3,
            vec![
                d.into_series().into_column(),
                Column::new("n".into(), [1i64, 2, 3]),
            ],
        )
        .unwrap();
        let out = decimals_as_float(df, &[("p".into(), 2)]).unwrap();
        let p = out.column("p").unwrap();
        assert_eq!(p.dtype(), &DataType::Float64);
        let values: Vec<Option<f64>> = p.f64().unwrap().iter().collect();
        assert_eq!(values, vec![Some(12.5), Some(-0.05), Some(0.0)]);
        assert_eq!(out.column("n").unwrap().dtype(), &DataType::Int64);
    }
}
