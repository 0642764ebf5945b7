//! Reading a column's values the way every step counts them: missing is a
//! null, or NaN in a float column; the rest are the observed values.

use polars::prelude::*;
use polars_arrow::array::{Array, PrimitiveArray};
use polars_arrow::bitmap::{Bitmap, BitmapBuilder};
use polars_arrow::types::NativeType;

use crate::error::{PrepError, Result};

/// Marks missing values (null, or NaN in a float column) of one column:
/// [`present_bits`], the one definition of missing, as a flag per row.
pub fn missing_mask(col: &Column) -> Vec<bool> {
    match present_bits(col) {
        Some(present) => present.iter().map(|p| !p).collect(),
        None => vec![false; col.len()],
    }
}

/// One flag per row of a numeric column: `flag(value)`, or `null` where
/// the value is null. Reads each chunk's values and validity directly
/// (every checked column of every chunk passes here twice, so an
/// `Option` per value was a visible share of a run's CPU time).
pub fn row_flags<T: PolarsNumericType>(
    ca: &ChunkedArray<T>,
    null: bool,
    flag: impl Fn(T::Native) -> bool,
) -> Vec<bool> {
    let mut out = Vec::with_capacity(ca.len());
    for arr in ca.downcast_iter() {
        let values = arr.values().as_slice();
        match arr.validity().filter(|v| v.unset_bits() > 0) {
            None => out.extend(values.iter().map(|v| flag(*v))),
            Some(valid) => {
                out.extend(
                    values
                        .iter()
                        .zip(valid.iter())
                        .map(|(v, ok)| if ok { flag(*v) } else { null }),
                )
            }
        }
    }
    out
}

/// Where a column has a value (not null, and not NaN in a float column),
/// one bit per row; `None` when every row has one. Built a word at a time:
/// a column without NaN is its validity bitmaps as they are, and a float
/// column is scanned for NaN before a bitmap of them is built. The cleaner
/// checks every null-checked column of every chunk with it (a `Vec<bool>`
/// per column was the fit pass's longest step on Parquet input).
pub fn present_bits(col: &Column) -> Option<Bitmap> {
    let s = col.as_materialized_series();
    let mut out: Option<BitmapBuilder> = None;
    let mut before = 0;
    for arr in s.chunks() {
        let present = match s.dtype() {
            DataType::Float64 => chunk_present(arr.as_ref(), f64::is_nan),
            DataType::Float32 => chunk_present(arr.as_ref(), f32::is_nan),
            _ => arr.validity().filter(|v| v.unset_bits() > 0).cloned(),
        };
        match (present, out.as_mut()) {
            (None, None) => {}
            (None, Some(b)) => b.extend_constant(arr.len(), true),
            (Some(p), _) => {
                let b = out.get_or_insert_with(|| {
                    let mut b = BitmapBuilder::with_capacity(s.len());
                    b.extend_constant(before, true);
                    b
                });
                b.extend_from_bitmap(&p);
            }
        }
        before += arr.len();
    }
    out.map(BitmapBuilder::freeze)
}

/// A float chunk's present bits (valid and not NaN); `None`: all present.
fn chunk_present<T: NativeType>(arr: &dyn Array, is_nan: fn(T) -> bool) -> Option<Bitmap> {
    let arr = arr
        .as_any()
        .downcast_ref::<PrimitiveArray<T>>()
        .expect("a float column's chunks");
    let validity = arr.validity().filter(|v| v.unset_bits() > 0);
    let values = arr.values().as_slice();
    // Branch-free over the whole chunk, so it vectorizes.
    let any_nan = values.iter().fold(false, |any, v| any | is_nan(*v));
    match (validity, any_nan) {
        (None, false) => None,
        (Some(v), false) => Some(v.clone()),
        (v, true) => {
            let not_nan = Bitmap::from_trusted_len_iter(values.iter().map(|x| !is_nan(*x)));
            Some(match v {
                Some(v) => v & &not_nan,
                None => not_nan,
            })
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
    // Chunk by chunk, values and validity directly (see `row_flags`).
    let mut values = Vec::with_capacity(ca.len());
    for arr in ca.downcast_iter() {
        let all = arr.values().as_slice();
        match arr.validity().filter(|v| v.unset_bits() > 0) {
            None => values.extend(all.iter().copied().filter(|v| !v.is_nan())),
            Some(valid) => values.extend(
                all.iter()
                    .zip(valid.iter())
                    .filter(|(v, ok)| *ok && !v.is_nan())
                    .map(|(v, _)| *v),
            ),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_flags_and_observed_values_follow_nulls_nans_and_chunks() {
        let mut a = Float64Chunked::from_slice_options(
            "x".into(),
            &[Some(1.0), None, Some(f64::NAN), Some(f64::INFINITY)],
        );
        // A second chunk without nulls, and a sliced one (validity offset).
        a.append(&Float64Chunked::from_slice("x".into(), &[2.0, f64::NAN]))
            .unwrap();
        let b = Float64Chunked::from_slice_options("x".into(), &[None, Some(3.0), None, Some(4.0)])
            .slice(1, 3);
        a.append(&b).unwrap();
        let col = a.clone().into_series().into_column();
        assert_eq!(
            missing_mask(&col),
            [false, true, true, false, false, true, false, true, false]
        );
        assert_eq!(
            row_flags(&a, false, f64::is_infinite),
            [false, false, false, true, false, false, false, false, false]
        );
        let f32s =
            Float32Chunked::from_slice_options("y".into(), &[Some(f32::NAN), None, Some(0.5)]);
        assert_eq!(
            missing_mask(&f32s.into_series().into_column()),
            [true, true, false]
        );
        let df = DataFrame::new(9, vec![col]).unwrap();
        let (values, missing) = observed(&df, "x").unwrap();
        assert_eq!(missing, 4);
        assert_eq!(values[..2], [1.0, f64::INFINITY]);
        assert_eq!(values[2..], [2.0, 3.0, 4.0]);
        let ints = Int64Chunked::from_slice_options("i".into(), &[Some(1), None]);
        assert_eq!(
            missing_mask(&ints.into_series().into_column()),
            [false, true]
        );
        // Text, over chunks with and without nulls, one of them sliced.
        let mut text = StringChunked::from_slice_options("t".into(), &[Some("a"), None]);
        text.append(&StringChunked::from_slice("t".into(), &["b", "c"]))
            .unwrap();
        let sliced =
            StringChunked::from_slice_options("t".into(), &[None, Some("d"), None]).slice(1, 2);
        text.append(&sliced).unwrap();
        assert_eq!(
            missing_mask(&text.into_series().into_column()),
            [false, true, false, false, false, true]
        );
        // A column of nulls only (polars' Null type).
        let nulls = Series::full_null("n".into(), 3, &DataType::Null).into_column();
        assert_eq!(missing_mask(&nulls), [true, true, true]);
    }

    /// The cleaner's bitmap agrees with `missing_mask` on every shape of
    /// column: chunks with and without nulls, sliced chunks, NaN under a
    /// null and beside one, text, polars' Null type; and says `None` when
    /// nothing is missing.
    #[test]
    fn present_bits_mark_every_row_with_a_value() {
        let mut a = Float64Chunked::from_slice_options(
            "x".into(),
            &[Some(1.0), None, Some(f64::NAN), Some(f64::INFINITY)],
        );
        a.append(&Float64Chunked::from_slice("x".into(), &[2.0, 5.0]))
            .unwrap();
        let sliced = Float64Chunked::from_slice_options(
            "x".into(),
            &[None, Some(f64::NAN), None, Some(4.0), Some(f64::NAN)],
        )
        .slice(1, 4);
        a.append(&sliced).unwrap();
        let mut f32s = Float32Chunked::from_slice("y".into(), &[1.0, 2.0]);
        f32s.append(&Float32Chunked::from_slice("y".into(), &[f32::NAN]))
            .unwrap();
        let mut text = StringChunked::from_slice("t".into(), &["b", "c"]);
        text.append(&StringChunked::from_slice_options(
            "t".into(),
            &[Some("a"), None],
        ))
        .unwrap();
        let (t, f) = (true, false);
        let columns = [
            (
                a.into_series().into_column(),
                vec![t, f, f, t, t, t, f, f, t, f],
            ),
            (f32s.into_series().into_column(), vec![t, t, f]),
            (text.into_series().into_column(), vec![t, t, t, f]),
            (
                Series::full_null("n".into(), 3, &DataType::Null).into_column(),
                vec![f, f, f],
            ),
        ];
        for (col, want) in &columns {
            let present = present_bits(col).expect("something missing");
            assert_eq!(present.iter().collect::<Vec<_>>(), *want, "{}", col.name());
        }
        let full = [
            Float64Chunked::from_slice("x".into(), &[1.0, f64::INFINITY]).into_series(),
            Int64Chunked::from_slice_options("i".into(), &[Some(1), None])
                .slice(0, 1)
                .into_series(),
            StringChunked::from_slice("t".into(), &["a"]).into_series(),
        ];
        for s in full {
            assert!(present_bits(&s.into_column()).is_none());
        }
    }
}
