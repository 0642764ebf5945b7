//! Cleaning: drop rows with a null (or NaN) in the checked columns, then
//! apply the non-finite policy (`fail` or `drop`) to the scaled columns.
//!
//! Input: a raw `SourceChunk`. Output: the surviving rows and counts of what
//! was dropped and why, which feed the run report and the "nothing left"
//! error.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::Serialize;

use crate::chunk::SourceChunk;
use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::pipeline::plan::NonFinite;
use crate::storage::InputObject;

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
    pub scaled: Vec<String>,
    pub non_finite: NonFinite,
}

/// Marks missing values (null, or NaN in a float column) of one column.
fn missing_mask(col: &Column) -> Vec<bool> {
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

fn infinite_mask(col: &Column) -> Option<Vec<bool>> {
    let s = col.as_materialized_series();
    match s.dtype() {
        DataType::Float64 => Some(
            s.f64()
                .expect("f64")
                .iter()
                .map(|v| v.is_some_and(f64::is_infinite))
                .collect(),
        ),
        DataType::Float32 => Some(
            s.f32()
                .expect("f32")
                .iter()
                .map(|v| v.is_some_and(f32::is_infinite))
                .collect(),
        ),
        _ => None,
    }
}

impl Cleaner {
    pub fn apply(
        &self,
        chunk: SourceChunk,
        files: &[InputObject],
    ) -> Result<(DataFrame, CleanCounts)> {
        let df = &chunk.df;
        let n = df.height();
        let mut keep = vec![true; n];
        let mut counts = CleanCounts {
            rows_in: n as u64,
            ..Default::default()
        };
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
            }
        }
        counts.dropped_nulls = keep.iter().filter(|k| !**k).count() as u64;

        for name in &self.scaled {
            let col = df
                .column(name)
                .map_err(|e| PrepError::polars(format!("checking column `{name}`"), e))?;
            let Some(inf) = infinite_mask(col) else {
                continue;
            };
            for (i, is_inf) in inf.iter().enumerate() {
                if *is_inf && keep[i] {
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
        }

        if counts.rows_out() == n as u64 {
            return Ok((chunk.df, counts));
        }
        let mask = BooleanChunked::from_slice(PlSmallStr::from_static("keep"), &keep);
        let filtered = df
            .filter(&mask)
            .map_err(|e| PrepError::polars("dropping rows", e))?;
        Ok((filtered, counts))
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
            scaled: vec![],
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
            scaled: vec!["a".into()],
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
            scaled: vec!["a".into()],
            non_finite: NonFinite::Drop,
        };
        let (df, counts) = c.apply(chunk(sample()), &files()).unwrap();
        assert_eq!(df.height(), 2);
        assert_eq!(counts.dropped_non_finite, 1);
        assert_eq!(counts.rows_out(), 2);
    }
}
