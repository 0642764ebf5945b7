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
use crate::transform::values::{missing_mask, row_flags};

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
    /// Index in the chunk of each kept row; `None` when every row was kept.
    pub kept: Option<Vec<u32>>,
    /// Dropped rows (index in the chunk) and why, when asked for.
    pub rejected: Vec<(u32, String)>,
}

impl Cleaned {
    /// The chunk index of kept row `i`.
    pub fn origin(&self, i: usize) -> usize {
        self.kept.as_ref().map_or(i, |k| k[i] as usize)
    }
}

fn infinite_mask(col: &Column) -> Option<Vec<bool>> {
    let s = col.as_materialized_series();
    match s.dtype() {
        DataType::Float64 => Some(row_flags(s.f64().expect("f64"), false, f64::is_infinite)),
        DataType::Float32 => Some(row_flags(s.f32().expect("f32"), false, f32::is_infinite)),
        _ => None,
    }
}

/// A column's mask, its position in the chunk and its name.
type Mask<'a> = (usize, &'a str, Vec<bool>);

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
    pub fn clean(
        &self,
        chunk: &SourceChunk,
        files: &[InputObject],
        reasons: bool,
    ) -> Result<Cleaned> {
        let df = &chunk.df;
        let n = df.height();
        let mut keep = vec![true; n];
        let mut counts = CleanCounts {
            rows_in: n as u64,
            ..Default::default()
        };
        let mut null_masks: Vec<Mask> = Vec::new();
        for name in &self.null_checked {
            let col = df
                .column(name)
                .map_err(|e| PrepError::polars(format!("cleaning column `{name}`"), e))?;
            let mask = missing_mask(col);
            let mut nulls = 0u64;
            for (k, m) in keep.iter_mut().zip(&mask) {
                if *m {
                    nulls += 1;
                    *k = false;
                }
            }
            if nulls > 0 {
                *counts.nulls_by_column.entry(name.clone()).or_default() += nulls;
                if reasons {
                    let pos = df.get_column_index(name).unwrap_or(usize::MAX);
                    null_masks.push((pos, name, mask));
                }
            }
        }
        counts.dropped_nulls = keep.iter().filter(|k| !**k).count() as u64;

        let mut inf_masks: Vec<Mask> = Vec::new();
        for name in &self.finite_checked {
            let col = df
                .column(name)
                .map_err(|e| PrepError::polars(format!("checking column `{name}`"), e))?;
            let Some(inf) = infinite_mask(col) else {
                continue;
            };
            let mut any = false;
            for (i, is_inf) in inf.iter().enumerate() {
                if !*is_inf {
                    continue;
                }
                any = true;
                if keep[i] {
                    match self.non_finite {
                        NonFinite::Fail => {
                            let value = col.get(i).map(|v| v.to_string()).unwrap_or_default();
                            return Err(PrepError::bad_data(
                                chunk.locate(files, i, Some(name)),
                                DataError::NonFinite { value },
                            ));
                        }
                        NonFinite::Drop => {
                            keep[i] = false;
                            counts.dropped_non_finite += 1;
                        }
                    }
                }
            }
            if reasons && any && self.non_finite == NonFinite::Drop {
                let pos = df.get_column_index(name).unwrap_or(usize::MAX);
                inf_masks.push((pos, name, inf));
            }
        }

        if counts.rows_out() == n as u64 {
            return Ok(Cleaned {
                df: chunk.df.clone(),
                counts,
                kept: None,
                rejected: Vec::new(),
            });
        }
        let mut rejected = Vec::new();
        if reasons {
            null_masks.sort_by_key(|m| m.0);
            inf_masks.sort_by_key(|m| m.0);
            for i in (0..n).filter(|i| !keep[*i]) {
                let list = |masks: &[Mask]| -> Vec<String> {
                    masks
                        .iter()
                        .filter(|m| m.2[i])
                        .map(|m| m.1.to_string())
                        .collect()
                };
                let (nulls, infs) = (list(&null_masks), list(&inf_masks));
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
        let kept: Vec<u32> = (0..n as u32).filter(|i| keep[*i as usize]).collect();
        let mask = BooleanChunked::from_slice(PlSmallStr::from_static("keep"), &keep);
        let filtered = df
            .filter(&mask)
            .map_err(|e| PrepError::polars("dropping rows", e))?;
        Ok(Cleaned {
            df: filtered,
            counts,
            kept: Some(kept),
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
