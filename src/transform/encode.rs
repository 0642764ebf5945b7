//! Encoding = scikit-learn's `OneHotEncoder(sparse_output=False)` and
//! `OrdinalEncoder` (CONTRACT §9): the fit state of an `[encode]` group
//! ([`EncodeAcc`]: exact counts, bounded by `max_distinct`), its fitted form
//! and artifact part ([`EncodeStep`]), and applying it to a chunk.
//!
//! Categories are sorted; infrequent ones (below `min_frequency`, or cut by
//! `max_categories` with scikit-learn's rule: the infrequent group counts
//! as one slot, ties at the cut go by a stable sort of the counts) share
//! one output: the column `c_infrequent_sklearn` after the frequent ones,
//! or the ordinal code after the frequent codes. Unknown values (and nulls,
//! at apply time) follow `handle_unknown`.

use std::collections::HashMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::pipeline::plan::{EncodeGroup, EncodeMethod, HandleUnknown, MinFrequency};
use crate::transform::counts::{Category, ValueCounts};
use crate::transform::values::column;

/// Where row `i` of a chunk is, naming a column (for "unknown category").
pub type Locate<'a> = dyn Fn(usize, &str) -> DataLocation + 'a;

/// Fit state of one `[encode]` group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodeAcc {
    pub columns: Vec<String>,
    pub counts: Vec<ValueCounts>,
    pub max_distinct: u64,
}

fn too_many(col: &str, limit: u64) -> PrepError {
    PrepError::bad_data(
        DataLocation::default().column(col),
        DataError::TooManyDistinct {
            column: col.to_string(),
            limit,
            step: "encode",
        },
    )
}

impl EncodeAcc {
    pub fn new(group: &EncodeGroup, columns: &[String]) -> EncodeAcc {
        EncodeAcc {
            columns: columns.to_vec(),
            counts: columns.iter().map(|_| ValueCounts::default()).collect(),
            max_distinct: group.max_distinct,
        }
    }

    /// Counts one cleaned chunk. A null in a column that is not imputed
    /// (`imputed` says which are) is bad input, located by `locate`.
    pub fn update(
        &mut self,
        df: &DataFrame,
        imputed: &dyn Fn(&str) -> bool,
        locate: &Locate,
    ) -> Result<()> {
        for (name, counts) in self.columns.iter().zip(&mut self.counts) {
            let col = column(df, name)?;
            if col.null_count() > 0 && !imputed(name) {
                let row = col
                    .is_null()
                    .iter()
                    .position(|v| v == Some(true))
                    .unwrap_or(0);
                return Err(PrepError::bad_data(
                    locate(row, name),
                    DataError::EncodedNull {
                        column: name.clone(),
                    },
                ));
            }
            counts
                .update(col, self.max_distinct)
                .map_err(|_| too_many(name, self.max_distinct))?;
        }
        Ok(())
    }

    pub fn merge(&mut self, other: &EncodeAcc) -> Result<()> {
        for (i, (a, b)) in self.counts.iter_mut().zip(&other.counts).enumerate() {
            a.merge(b, self.max_distinct)
                .map_err(|_| too_many(&self.columns[i], self.max_distinct))?;
        }
        Ok(())
    }

    /// The fitted step over `n_samples` rows. `fill` gives an imputed
    /// column's fill and its count, which join the observed counts.
    pub fn finish(
        &self,
        group: &EncodeGroup,
        n_samples: u64,
        fill: &dyn Fn(&str) -> Option<(Category, u64)>,
    ) -> Result<EncodeStep> {
        let mut categories = Vec::new();
        let mut infrequent = Vec::new();
        let mut counts_out = Vec::new();
        for (c, counts) in self.columns.iter().zip(&self.counts) {
            let mut counts = counts.clone();
            if let Some((cat, n)) = fill(c) {
                if n > 0 {
                    *counts.counts.entry(cat).or_default() += n;
                }
            }
            if counts.counts.len() as u64 > self.max_distinct {
                return Err(too_many(c, self.max_distinct));
            }
            let sorted = counts.sorted();
            let n: Vec<u64> = sorted.iter().map(|(_, n)| *n).collect();
            let idx = infrequent_indices(&n, n_samples, group.min_frequency, group.max_categories);
            let cats: Vec<Category> = sorted.into_iter().map(|(k, _)| k).collect();
            infrequent
                .push((!idx.is_empty()).then(|| idx.iter().map(|i| cats[*i].clone()).collect()));
            categories.push(cats);
            counts_out.push(n);
        }
        let mut step = EncodeStep {
            method: match group.method {
                EncodeMethod::OneHot => "onehot".into(),
                EncodeMethod::Ordinal => "ordinal".into(),
            },
            columns: self.columns.clone(),
            categories,
            infrequent_categories: infrequent,
            category_counts: counts_out,
            handle_unknown: group.handle_unknown,
            min_frequency: group.min_frequency,
            max_categories: group.max_categories,
            unknown_value: (group.handle_unknown == HandleUnknown::UseEncodedValue)
                .then_some(group.unknown_value),
            feature_names_out: Vec::new(),
            maps: Vec::new(),
        };
        step.bind();
        Ok(step)
    }
}

/// scikit-learn's `_identify_infrequent`: indices (into the sorted
/// categories) of the infrequent ones.
pub fn infrequent_indices(
    counts: &[u64],
    n_samples: u64,
    min_frequency: MinFrequency,
    max_categories: u64,
) -> Vec<usize> {
    let mut mask: Vec<bool> = match min_frequency {
        MinFrequency::Count(m) => counts.iter().map(|c| *c < m).collect(),
        MinFrequency::Fraction(f) => {
            let abs = n_samples as f64 * f;
            counts.iter().map(|c| (*c as f64) < abs).collect()
        }
    };
    let n_current = counts.len() - mask.iter().filter(|m| **m).count() + 1;
    if max_categories > 0 && (max_categories as usize) < n_current {
        let frequent = max_categories as usize - 1;
        if frequent == 0 {
            mask.iter_mut().for_each(|m| *m = true);
        } else {
            // numpy's stable argsort, then all but the last `frequent`.
            let mut order: Vec<usize> = (0..counts.len()).collect();
            order.sort_by_key(|i| counts[*i]);
            for i in &order[..counts.len().saturating_sub(frequent)] {
                mask[*i] = true;
            }
        }
    }
    mask.iter()
        .enumerate()
        .filter(|(_, m)| **m)
        .map(|(i, _)| i)
        .collect()
}

/// How one column's values find their output.
#[derive(Debug, Clone, PartialEq)]
enum Lookup {
    Str(HashMap<String, u32>),
    Int(HashMap<i64, u32>),
    Bool([Option<u32>; 2]),
}

#[derive(Debug, Clone, PartialEq)]
struct ColumnMap {
    lookup: Lookup,
    /// Output index per category: its frequent position, or the infrequent slot.
    codes: Vec<u32>,
    /// Frequent categories (the infrequent slot's index).
    n_frequent: u32,
    has_infrequent: bool,
}

/// A fitted `[encode]` group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncodeStep {
    pub method: String,
    pub columns: Vec<String>,
    pub categories: Vec<Vec<Category>>,
    pub infrequent_categories: Vec<Option<Vec<Category>>>,
    /// Rows per category at fit time (not a scikit-learn attribute).
    #[serde(default)]
    pub category_counts: Vec<Vec<u64>>,
    pub handle_unknown: HandleUnknown,
    pub min_frequency: MinFrequency,
    pub max_categories: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_value: Option<i64>,
    pub feature_names_out: Vec<String>,
    #[serde(skip)]
    maps: Vec<ColumnMap>,
}

/// The one-hot column of an infrequent group.
pub const INFREQUENT: &str = "infrequent_sklearn";

impl EncodeStep {
    pub fn onehot(&self) -> bool {
        self.method == "onehot"
    }

    /// Builds the lookups and `feature_names_out` from the categories (after
    /// a fit, or after reading the artifact).
    pub fn bind(&mut self) {
        self.maps.clear();
        let mut names = Vec::new();
        for (i, cats) in self.categories.iter().enumerate() {
            let infrequent = self
                .infrequent_categories
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or_default();
            let n_frequent = (cats.len() - infrequent.len()) as u32;
            let mut next = 0;
            let codes: Vec<u32> = cats
                .iter()
                .map(|c| {
                    if infrequent.contains(c) {
                        n_frequent
                    } else {
                        next += 1;
                        next - 1
                    }
                })
                .collect();
            let lookup = match cats.first() {
                Some(Category::Int(_)) => Lookup::Int(
                    cats.iter()
                        .enumerate()
                        .filter_map(|(k, c)| match c {
                            Category::Int(v) => Some((*v, k as u32)),
                            _ => None,
                        })
                        .collect(),
                ),
                Some(Category::Bool(_)) => {
                    let mut b = [None, None];
                    for (k, c) in cats.iter().enumerate() {
                        if let Category::Bool(v) = c {
                            b[*v as usize] = Some(k as u32);
                        }
                    }
                    Lookup::Bool(b)
                }
                _ => Lookup::Str(
                    cats.iter()
                        .enumerate()
                        .map(|(k, c)| (c.label(), k as u32))
                        .collect(),
                ),
            };
            let col = &self.columns[i];
            if self.onehot() {
                for (c, code) in cats.iter().zip(&codes) {
                    if *code < n_frequent {
                        names.push(format!("{col}_{}", c.label()));
                    }
                }
                if !infrequent.is_empty() {
                    names.push(format!("{col}_{INFREQUENT}"));
                }
            } else {
                names.push(col.clone());
            }
            self.maps.push(ColumnMap {
                lookup,
                codes,
                n_frequent,
                has_infrequent: !infrequent.is_empty(),
            });
        }
        self.feature_names_out = names;
    }

    /// The output columns of input column `col` (its one-hot block, or
    /// itself), `None` when this step does not encode it.
    pub fn block(&self, col: &str) -> Option<Vec<String>> {
        let i = self.columns.iter().position(|c| c == col)?;
        if !self.onehot() {
            return Some(vec![col.to_string()]);
        }
        let before: usize = self.maps[..i]
            .iter()
            .map(|m| m.n_frequent as usize + m.has_infrequent as usize)
            .sum();
        let m = &self.maps[i];
        Some(
            self.feature_names_out
                [before..before + m.n_frequent as usize + m.has_infrequent as usize]
                .to_vec(),
        )
    }

    /// Category index of each row (`None`: unknown, or null).
    fn indices(&self, i: usize, col: &Column) -> Result<Vec<Option<u32>>> {
        let name = &self.columns[i];
        let cast = |t: &DataType| {
            col.cast(t)
                .map_err(|e| PrepError::polars(format!("encoding `{name}`"), e))
        };
        Ok(match &self.maps[i].lookup {
            Lookup::Str(m) => {
                let s = if col.dtype() == &DataType::String {
                    col.clone()
                } else {
                    cast(&DataType::String)?
                };
                s.as_materialized_series()
                    .str()
                    .expect("string")
                    .iter()
                    .map(|v| v.and_then(|v| m.get(v).copied()))
                    .collect()
            }
            Lookup::Int(m) => {
                let s = cast(&DataType::Int64)?;
                s.as_materialized_series()
                    .i64()
                    .expect("i64")
                    .iter()
                    .map(|v| v.and_then(|v| m.get(&v).copied()))
                    .collect()
            }
            Lookup::Bool(b) => {
                let s = cast(&DataType::Boolean)?;
                s.as_materialized_series()
                    .bool()
                    .expect("bool")
                    .iter()
                    .map(|v| v.and_then(|v| b[v as usize]))
                    .collect()
            }
        })
    }

    /// Replaces every encoded column by its one-hot block (0/1, 8-bit) or
    /// its ordinal codes (64-bit); the layout orders the columns later.
    pub fn apply(&self, mut df: DataFrame, locate: &Locate) -> Result<DataFrame> {
        for (i, name) in self.columns.iter().enumerate() {
            let col = column(&df, name)?;
            let idx = self.indices(i, col)?;
            let m = &self.maps[i];
            let unknown_slot = match self.handle_unknown {
                HandleUnknown::Error => None,
                HandleUnknown::InfrequentIfExist if m.has_infrequent => Some(Some(m.n_frequent)),
                _ => Some(None),
            };
            let mut out: Vec<Option<u32>> = Vec::with_capacity(idx.len());
            for (row, k) in idx.iter().enumerate() {
                out.push(match k {
                    Some(k) => Some(m.codes[*k as usize]),
                    None => match unknown_slot {
                        Some(slot) => slot,
                        None => {
                            let value = col
                                .get(row)
                                .map(|v| match v {
                                    AnyValue::Null => "null".to_string(),
                                    AnyValue::String(s) => format!("{s:?}"),
                                    AnyValue::StringOwned(s) => format!("{:?}", s.as_str()),
                                    v => v.to_string(),
                                })
                                .unwrap_or_default();
                            return Err(PrepError::bad_data(
                                locate(row, name),
                                DataError::UnknownCategory {
                                    column: name.clone(),
                                    value,
                                },
                            ));
                        }
                    },
                });
            }
            if self.onehot() {
                let block = self.block(name).expect("encoded here");
                df = df
                    .drop(name)
                    .map_err(|e| PrepError::polars(format!("encoding `{name}`"), e))?;
                for (j, out_name) in block.iter().enumerate() {
                    let ca: Int8Chunked = out
                        .iter()
                        .map(|o| Some((*o == Some(j as u32)) as i8))
                        .collect();
                    df.with_column(
                        ca.with_name(PlSmallStr::from(out_name.as_str()))
                            .into_column(),
                    )
                    .map_err(|e| PrepError::polars(format!("adding `{out_name}`"), e))?;
                }
            } else {
                let unknown = self.unknown_value.unwrap_or(-1);
                let ca: Int64Chunked = out
                    .iter()
                    .map(|o| Some(o.map_or(unknown, |c| c as i64)))
                    .collect();
                df.with_column(ca.with_name(PlSmallStr::from(name.as_str())).into_column())
                    .map_err(|e| PrepError::polars(format!("encoding `{name}`"), e))?;
            }
        }
        Ok(df)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(
        method: EncodeMethod,
        min_frequency: u64,
        max_categories: u64,
        handle_unknown: HandleUnknown,
    ) -> EncodeGroup {
        EncodeGroup {
            columns: vec!["c".into()],
            method,
            min_frequency: MinFrequency::Count(min_frequency),
            max_categories,
            handle_unknown,
            unknown_value: -7,
            max_distinct: 100,
            at: String::new(),
        }
    }

    fn fit(g: &EncodeGroup, values: &[&str]) -> EncodeStep {
        let df = df!("c" => values).unwrap();
        let mut acc = EncodeAcc::new(g, &["c".into()]);
        acc.update(&df, &|_| false, &|_, _| DataLocation::default())
            .unwrap();
        acc.finish(g, values.len() as u64, &|_| None).unwrap()
    }

    #[test]
    fn max_categories_follows_sklearns_rule_and_ties() {
        // Counts in sorted order: a=3, b=1, c=1, d=2. max_categories=3 keeps
        // two frequent: stable argsort [b, c, d, a] → b, c infrequent.
        assert_eq!(
            infrequent_indices(&[3, 1, 1, 2], 7, MinFrequency::Count(1), 3),
            vec![1, 2]
        );
        // With 4 categories and max 4 the infrequent slot still counts: one goes.
        assert_eq!(
            infrequent_indices(&[3, 1, 1, 2], 7, MinFrequency::Count(1), 4),
            vec![1]
        );
        assert_eq!(
            infrequent_indices(&[3, 1, 1, 2], 7, MinFrequency::Count(2), 0),
            vec![1, 2]
        );
        assert_eq!(
            infrequent_indices(&[3, 1], 4, MinFrequency::Count(1), 1),
            vec![0, 1]
        );
        assert_eq!(
            infrequent_indices(&[5, 5], 10, MinFrequency::Fraction(0.6), 0),
            vec![0, 1]
        );
        assert!(infrequent_indices(&[3, 1], 4, MinFrequency::Count(1), 0).is_empty());
    }

    #[test]
    fn onehot_names_blocks_and_unknowns() {
        let g = group(EncodeMethod::OneHot, 2, 0, HandleUnknown::InfrequentIfExist);
        let step = fit(&g, &["b", "a", "b", "a", "zé", "y"]);
        assert_eq!(
            step.feature_names_out,
            vec!["c_a", "c_b", "c_infrequent_sklearn"]
        );
        let json = serde_json::to_value(&step).unwrap();
        assert_eq!(
            json["categories"],
            serde_json::json!([["a", "b", "y", "zé"]])
        );
        assert_eq!(
            json["infrequent_categories"],
            serde_json::json!([["y", "zé"]])
        );
        let df = df!("c" => [Some("a"), Some("zé"), Some("new"), None], "id" => [1i64, 2, 3, 4])
            .unwrap();
        let out = step
            .apply(df.clone(), &|_, _| DataLocation::default())
            .unwrap();
        let col = |n: &str| -> Vec<i8> {
            out.column(n)
                .unwrap()
                .i8()
                .unwrap()
                .into_no_null_iter()
                .collect()
        };
        assert_eq!(col("c_a"), vec![1, 0, 0, 0]);
        assert_eq!(col("c_infrequent_sklearn"), vec![0, 1, 1, 1]);
        let mut strict = step.clone();
        strict.handle_unknown = HandleUnknown::Error;
        let err = strict
            .apply(df, &|r, c| {
                DataLocation::file("in.csv")
                    .line(Some(r as u64 + 2))
                    .column(c)
            })
            .unwrap_err();
        assert!(
            err.to_string().contains("in.csv, line 4, column `c`"),
            "{err}"
        );
        assert!(err.to_string().contains("\"new\""), "{err}");
    }

    #[test]
    fn ordinal_shares_the_infrequent_code_and_uses_the_unknown_value() {
        let g = group(EncodeMethod::Ordinal, 2, 0, HandleUnknown::UseEncodedValue);
        let step = fit(&g, &["b", "a", "b", "a", "c"]);
        let df = df!("c" => ["a", "b", "c", "x"]).unwrap();
        let out = step.apply(df, &|_, _| DataLocation::default()).unwrap();
        let codes: Vec<i64> = out
            .column("c")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(codes, vec![0, 1, 2, -7]);
        let back: EncodeStep =
            serde_json::from_value(serde_json::to_value(&step).unwrap()).unwrap();
        let mut back = back;
        back.bind();
        assert_eq!(back, step);
    }

    #[test]
    fn a_null_at_fit_time_names_the_row() {
        let g = group(EncodeMethod::OneHot, 1, 0, HandleUnknown::Error);
        let df = df!("c" => [Some("a"), None]).unwrap();
        let mut acc = EncodeAcc::new(&g, &["c".into()]);
        let err = acc
            .update(&df, &|_| false, &|r, c| {
                DataLocation::file("f").line(Some(r as u64 + 10)).column(c)
            })
            .unwrap_err();
        assert!(err.to_string().contains("line 11"), "{err}");
    }
}
