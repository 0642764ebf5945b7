//! Cleaning: drop rows with a null (or NaN) in the checked columns, then
//! apply the non-finite policy (`fail` or `drop`) to the scaled and
//! imputed numeric columns.
//!
//! Input: a raw `SourceChunk`. Output: the surviving rows and counts of what
//! was dropped and why, which feed the run report and the "nothing left"
//! error, and on request each dropped row's causes (for `_rejects/`).

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::Serialize;

use crate::chunk::SourceChunk;
use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::pipeline::plan::NonFinite;
use crate::storage::InputObject;
use crate::transform::values::{present_bits, row_flags};
use polars_arrow::array::BooleanArray;
use polars_arrow::bitmap::Bitmap;

/// What cleaning did, summed over chunks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct CleanCounts {
    pub rows_in: u64,
    pub dropped_nulls: u64,
    pub dropped_non_finite: u64,
    /// Rows with a null/NaN in each checked column (a row can count in several).
    pub nulls_by_column: BTreeMap<String, u64>,
}

impl CleanCounts {
    pub fn add(&mut self, other: &CleanCounts) {
        self.rows_in += other.rows_in;
        self.dropped_nulls += other.dropped_nulls;
        self.dropped_non_finite += other.dropped_non_finite;
        for (k, v) in &other.nulls_by_column {
            *self.nulls_by_column.entry(k.clone()).or_default() += v;
        }
    }

    pub fn rows_out(&self) -> u64 {
        self.rows_in - self.dropped_nulls - self.dropped_non_finite
    }
}

pub struct Cleaner {
    pub null_checked: Vec<String>,
    /// Columns where ±inf fails or drops the row (scaled, imputed numeric).
    pub finite_checked: Vec<String>,
    pub non_finite: NonFinite,
}

/// A cleaned chunk, with what was dropped.
pub struct Cleaned {
    pub df: DataFrame,
    pub counts: CleanCounts,
    /// The chunk's rows kept (set bits); `None` when every row was kept.
    pub kept: Option<Bitmap>,
    /// Dropped rows (index in the chunk) and why, when asked for.
    pub rejected: Vec<(u32, String)>,
}

impl Cleaned {
    /// The chunk index of kept row `i` (for an error's location: it
    /// counts the kept rows up to it).
    pub fn origin(&self, i: usize) -> usize {
        self.kept
            .as_ref()
            .map_or(i, |k| k.true_idx_iter().nth(i).unwrap_or(i))
    }
}

/// A float column's infinite values, `None` when it has none (or is not
/// a float column).
fn infinite_mask(col: &Column) -> Option<Vec<bool>> {
    let s = col.as_materialized_series();
    match s.dtype() {
        DataType::Float64 => infinite_flags(s.f64().expect("f64"), f64::is_infinite),
        DataType::Float32 => infinite_flags(s.f32().expect("f32"), f32::is_infinite),
        _ => None,
    }
}

/// `is_inf` per row, built only when some value is (a branch-free scan
/// first, so a column without one costs a pass over its values).
fn infinite_flags<T: PolarsNumericType>(
    ca: &ChunkedArray<T>,
    is_inf: fn(T::Native) -> bool,
) -> Option<Vec<bool>> {
    let any = ca
        .downcast_iter()
        .any(|a| a.values().iter().fold(false, |any, v| any | is_inf(*v)));
    any.then(|| row_flags(ca, false, is_inf))
}

impl Cleaner {
    pub fn apply(
        &self,
        chunk: SourceChunk,
        files: &[InputObject],
    ) -> Result<(DataFrame, CleanCounts)> {
        let c = self.clean(&chunk, files, false)?;
        Ok((c.df, c.counts))
    }

    /// Drops rows with a null in a checked column, then applies the
    /// non-finite policy. With `reasons`, each dropped row comes back with
    /// its causes in input column order (`"null in price, rating"`).
    ///
    /// The rows kept are one bitmap, ANDed a word at a time with each
    /// column's present bits ([`present_bits`]); a column with nothing
    /// missing costs a scan of its validity (and of its values for NaN).
    pub fn clean(
        &self,
        chunk: &SourceChunk,
        files: &[InputObject],
        reasons: bool,
    ) -> Result<Cleaned> {
        let df = &chunk.df;
        let n = df.height();
        // `None`: every row kept so far.
        let mut keep: Option<Bitmap> = None;
        let mut counts = CleanCounts {
            rows_in: n as u64,
            ..Default::default()
        };
        // Per column with a null: its position, name and present bits.
        let mut null_masks: Vec<(usize, &str, Bitmap)> = Vec::new();
        for name in &self.null_checked {
            let col = df
                .column(name)
                .map_err(|e| PrepError::polars(format!("cleaning column `{name}`"), e))?;
            let Some(present) = present_bits(col) else {
                continue;
            };
            *counts.nulls_by_column.entry(name.clone()).or_default() += present.unset_bits() as u64;
            keep = Some(match keep.take() {
                None => present.clone(),
                Some(k) => &k & &present,
            });
            if reasons {
                let pos = df.get_column_index(name).unwrap_or(usize::MAX);
                null_masks.push((pos, name, present));
            }
        }
        counts.dropped_nulls = keep.as_ref().map_or(0, |k| k.unset_bits()) as u64;

        // Per column with an infinite value (dropped): position, name, mask.
        let mut inf_masks: Vec<(usize, &str, Vec<bool>)> = Vec::new();
        for name in &self.finite_checked {
            let col = df
                .column(name)
                .map_err(|e| PrepError::polars(format!("checking column `{name}`"), e))?;
            let Some(inf) = infinite_mask(col) else {
                continue;
            };
            match self.non_finite {
                NonFinite::Fail => {
                    let kept = |i: usize| keep.as_ref().is_none_or(|k| k.get_bit(i));
                    if let Some(i) = (0..n).find(|&i| inf[i] && kept(i)) {
                        let value = col.get(i).map(|v| v.to_string()).unwrap_or_default();
                        return Err(PrepError::bad_data(
                            chunk.locate(files, i, Some(name)),
                            DataError::NonFinite { value },
                        ));
                    }
                }
                NonFinite::Drop => {
                    let finite = Bitmap::from_trusted_len_iter(inf.iter().map(|x| !*x));
                    let before = keep.as_ref().map_or(n, |k| k.set_bits());
                    let after = match keep.take() {
                        None => finite,
                        Some(k) => &k & &finite,
                    };
                    counts.dropped_non_finite += (before - after.set_bits()) as u64;
                    keep = Some(after);
                    if reasons {
                        let pos = df.get_column_index(name).unwrap_or(usize::MAX);
                        inf_masks.push((pos, name, inf));
                    }
                }
            }
        }

        let Some(keep) = keep.filter(|k| k.unset_bits() > 0) else {
            return Ok(Cleaned {
                df: chunk.df.clone(),
                counts,
                kept: None,
                rejected: Vec::new(),
            });
        };
        let mut rejected = Vec::new();
        if reasons {
            null_masks.sort_by_key(|m| m.0);
            inf_masks.sort_by_key(|m| m.0);
            for i in (0..n).filter(|&i| !keep.get_bit(i)) {
                let nulls: Vec<&str> = null_masks
                    .iter()
                    .filter(|m| !m.2.get_bit(i))
                    .map(|m| m.1)
                    .collect();
                let infs: Vec<&str> = inf_masks.iter().filter(|m| m.2[i]).map(|m| m.1).collect();
                let mut why = Vec::new();
                if !nulls.is_empty() {
                    why.push(format!("null in {}", nulls.join(", ")));
                }
                if !infs.is_empty() {
                    why.push(format!("non-finite in {}", infs.join(", ")));
                }
                rejected.push((i as u32, why.join("; ")));
            }
        }
        let mask = BooleanChunked::from_chunk_iter(
            PlSmallStr::from_static("keep"),
            [BooleanArray::new(
                ArrowDataType::Boolean,
                keep.clone(),
                None,
            )],
        );
        let filtered = df
            .filter(&mask)
            .map_err(|e| PrepError::polars("dropping rows", e))?;
        Ok(Cleaned {
            df: filtered,
            counts,
            kept: Some(keep),
            rejected,
        })
    }
}

/// "nothing left after cleaning" with the per-column null counts.
pub fn nothing_left(uri: &str, counts: &CleanCounts) -> PrepError {
    PrepError::bad_data(
        DataLocation::file(uri),
        DataError::NothingLeft {
            rows_in: counts.rows_in,
            dropped_nulls: counts.dropped_nulls,
            nulls_by_column: counts
                .nulls_by_column
                .iter()
                .map(|(c, n)| (c.clone(), *n))
                .collect(),
            dropped_non_finite: counts.dropped_non_finite,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(df: DataFrame) -> SourceChunk {
        SourceChunk {
            df,
            file_index: 0,
            lines: vec![2, 3, 4, 5],
            first_row: 1,
        }
    }

    fn files() -> Vec<InputObject> {
        vec![InputObject::local("in.csv".into(), "in.csv".into(), 1)]
    }

    fn sample() -> DataFrame {
        df!(
            "a" => [Some(1.0), Some(f64::NAN), Some(f64::INFINITY), Some(4.0)],
            "b" => [Some("x"), Some("y"), Some("z"), None]
        )
        .unwrap()
    }

    #[test]
    fn drops_nulls_and_nan_and_counts_by_column() {
        let c = Cleaner {
            null_checked: vec!["a".into(), "b".into()],
            finite_checked: vec![],
            non_finite: NonFinite::Fail,
        };
        let (df, counts) = c.apply(chunk(sample()), &files()).unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(counts.dropped_nulls, 2);
        assert_eq!(counts.nulls_by_column["a"], 1);
        assert_eq!(counts.nulls_by_column["b"], 1);
    }

    #[test]
    fn kept_rows_lead_back_to_their_place_in_the_chunk() {
        let c = Cleaner {
            null_checked: vec!["a".into(), "b".into()],
            finite_checked: vec![],
            non_finite: NonFinite::Fail,
        };
        let cleaned = c.clean(&chunk(sample()), &files(), false).unwrap();
        // Rows 1 (NaN) and 3 (null) dropped: kept rows 0 and 2.
        assert_eq!(cleaned.df.height(), 2);
        assert_eq!((cleaned.origin(0), cleaned.origin(1)), (0, 2));
        let all = Cleaner {
            null_checked: vec![],
            ..c
        };
        let cleaned = all.clean(&chunk(sample()), &files(), false).unwrap();
        assert!(cleaned.kept.is_none());
        assert_eq!(cleaned.origin(3), 3);
    }

    #[test]
    fn infinity_fails_with_line_and_column() {
        let c = Cleaner {
            null_checked: vec!["a".into()],
            finite_checked: vec!["a".into()],
            non_finite: NonFinite::Fail,
        };
        let err = c.apply(chunk(sample()), &files()).unwrap_err();
        assert!(
            err.to_string().contains("in.csv, line 4, column `a`"),
            "{err}"
        );
    }

    #[test]
    fn infinity_dropped_when_asked() {
        let c = Cleaner {
            null_checked: vec!["a".into()],
            finite_checked: vec!["a".into()],
            non_finite: NonFinite::Drop,
        };
        let (df, counts) = c.apply(chunk(sample()), &files()).unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(counts.dropped_non_finite, 1);
        assert_eq!(counts.rows_out(), 2);
    }
}
