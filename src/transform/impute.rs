//! Imputation = scikit-learn's `SimpleImputer` (CONTRACT §9): the fit state
//! of an `[impute]` group ([`ImputeAcc`]), its fitted form and artifact part
//! ([`ImputeStep`]), and applying it to a chunk.
//!
//! `mean` uses the shifted moments of `stats.rs`; `median` an exact rank
//! search (`quantile.rs`, `(a + b) / 2` for an even count, as
//! `numpy.nanmedian`); `most_frequent` exact counts (`counts.rs`, the
//! smallest value on a tie); `constant` the configured value. An imputed
//! numeric column comes out as float64; others keep their type. With
//! `add_indicator`, `<col>_missing` (0/1, 8-bit) follows the column.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::pipeline::plan::{ImputeGroup, ImputeStrategy, Scalar};
use crate::transform::counts::{Category, ValueCounts};
use crate::transform::percentile::{median_of, median_ranks};
use crate::transform::quantile::{Problem, Sketch};
use crate::transform::stats::Moments;
use crate::transform::values::{column, missing_mask, observed};

/// Distinct values a `most_frequent` imputer counts at most (an encoded
/// column uses its group's `max_distinct`).
pub const MOST_FREQUENT_LIMIT: u64 = 1_000_000;

/// Fit state of one imputed column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ColumnImpute {
    pub missing: u64,
    pub observed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moments: Option<Moments>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sketch: Option<Sketch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<ValueCounts>,
}

/// Fit state of one `[impute]` group: one [`ColumnImpute`] per column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImputeAcc {
    pub columns: Vec<String>,
    pub state: Vec<ColumnImpute>,
    /// Distinct-value limit per column (`most_frequent`).
    pub limits: Vec<u64>,
}

fn too_many(col: &str, limit: u64) -> PrepError {
    PrepError::bad_data(
        DataLocation::default().column(col),
        DataError::TooManyDistinct {
            column: col.to_string(),
            limit,
            step: "impute (most_frequent)",
        },
    )
}

impl ImputeAcc {
    pub fn new(group: &ImputeGroup, columns: &[String], limits: Vec<u64>) -> ImputeAcc {
        let fresh = || ColumnImpute {
            moments: matches!(group.strategy, ImputeStrategy::Mean).then(Moments::default),
            sketch: matches!(group.strategy, ImputeStrategy::Median).then(Sketch::default),
            counts: matches!(group.strategy, ImputeStrategy::MostFrequent)
                .then(ValueCounts::default),
            ..Default::default()
        };
        ImputeAcc {
            columns: columns.to_vec(),
            state: columns.iter().map(|_| fresh()).collect(),
            limits,
        }
    }

    /// Folds in one cleaned chunk.
    pub fn update(&mut self, df: &DataFrame) -> Result<()> {
        for ((name, st), limit) in self.columns.iter().zip(&mut self.state).zip(&self.limits) {
            if let Some(c) = &mut st.counts {
                let before = c.missing;
                c.update(column(df, name)?, *limit)
                    .map_err(|_| too_many(name, *limit))?;
                let missing = c.missing - before;
                st.missing += missing;
                st.observed += df.height() as u64 - missing;
                continue;
            }
            if st.moments.is_none() && st.sketch.is_none() {
                let missing = missing_mask(column(df, name)?)
                    .iter()
                    .filter(|m| **m)
                    .count() as u64;
                st.missing += missing;
                st.observed += df.height() as u64 - missing;
                continue;
            }
            let (values, missing) = observed(df, name)?;
            st.missing += missing;
            st.observed += values.len() as u64;
            if let Some(m) = &mut st.moments {
                m.update(&values);
            }
            if let Some(s) = &mut st.sketch {
                s.add(&values);
            }
        }
        Ok(())
    }

    pub fn merge(&mut self, other: &ImputeAcc) -> Result<()> {
        for (i, (a, b)) in self.state.iter_mut().zip(&other.state).enumerate() {
            a.missing += b.missing;
            a.observed += b.observed;
            if let (Some(x), Some(y)) = (&mut a.moments, &b.moments) {
                x.merge(y);
            }
            if let (Some(x), Some(y)) = (&mut a.sketch, &b.sketch) {
                x.merge(y);
            }
            if let (Some(x), Some(y)) = (&mut a.counts, &b.counts) {
                x.merge(y, self.limits[i])
                    .map_err(|_| too_many(&self.columns[i], self.limits[i]))?;
            }
        }
        Ok(())
    }

    /// The median ranks to find (`median` only).
    pub fn problems(&self) -> Vec<Problem> {
        self.columns
            .iter()
            .zip(&self.state)
            .filter_map(|(c, st)| {
                let s = st.sketch.as_ref()?;
                (s.count > 0).then(|| Problem {
                    column: c.clone(),
                    sketch: s.clone(),
                    extra: None,
                    ranks: median_ranks(s.count),
                })
            })
            .collect()
    }

    /// The fitted step; `medians` holds the values found for [`Self::problems`]
    /// in order. `dtype`/`encoded` give each column's input type and role.
    pub fn finish(
        &self,
        group: &ImputeGroup,
        medians: &[std::collections::BTreeMap<u64, f64>],
        dtype: &dyn Fn(&str) -> DataType,
        encoded: &dyn Fn(&str) -> bool,
    ) -> Result<ImputeStep> {
        let mut medians = medians.iter();
        let mut statistics = Vec::new();
        for (c, st) in self.columns.iter().zip(&self.state) {
            if st.observed == 0 && !matches!(group.strategy, ImputeStrategy::Constant(_)) {
                return Err(PrepError::bad_data(
                    DataLocation::default().column(c),
                    DataError::NoValuesToFit {
                        column: c.clone(),
                        step: format!("impute (strategy = \"{}\")", group.strategy.name()),
                    },
                ));
            }
            let stat = match &group.strategy {
                ImputeStrategy::Mean => Scalar::Float(st.moments.expect("mean state").mean()),
                ImputeStrategy::Median => {
                    let at = medians.next().expect("a median per column");
                    Scalar::Float(median_of(st.observed, at))
                }
                ImputeStrategy::MostFrequent => st
                    .counts
                    .as_ref()
                    .and_then(ValueCounts::most_frequent)
                    .expect("observed values")
                    .to_scalar(),
                ImputeStrategy::Constant(v) => v.clone(),
            };
            // A numeric column that is not encoded comes out as float64.
            let stat = match stat {
                Scalar::Int(i) if dtype(c).is_primitive_numeric() && !encoded(c) => {
                    Scalar::Float(i as f64)
                }
                other => other,
            };
            statistics.push(stat);
        }
        let mut step = ImputeStep {
            strategy: group.strategy.name().to_string(),
            columns: self.columns.clone(),
            statistics,
            add_indicator: group.add_indicator,
            missing: self.state.iter().map(|s| s.missing).collect(),
            fills: Vec::new(),
        };
        step.bind(dtype, encoded)?;
        Ok(step)
    }
}

/// What a missing value becomes, typed as the column comes out.
#[derive(Debug, Clone, PartialEq)]
pub enum Fill {
    Float(f64),
    Int(i64),
    Bool(bool),
    Str(String),
}

/// A fitted `[impute]` group: `SimpleImputer`'s `statistics_` per column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImputeStep {
    pub strategy: String,
    pub columns: Vec<String>,
    pub statistics: Vec<Scalar>,
    pub add_indicator: bool,
    /// Missing values per column at fit time (for the later steps' fit).
    #[serde(skip)]
    pub missing: Vec<u64>,
    #[serde(skip)]
    pub fills: Vec<Fill>,
}

/// The name of a column's missing-indicator.
pub fn indicator_name(col: &str) -> String {
    format!("{col}_missing")
}

impl ImputeStep {
    /// Types each statistic for its column: a numeric column that is not
    /// encoded becomes float64, others keep their type. `Err` names a
    /// statistic that does not fit its column.
    pub fn bind(
        &mut self,
        dtype: &dyn Fn(&str) -> DataType,
        encoded: &dyn Fn(&str) -> bool,
    ) -> Result<()> {
        self.fills = Vec::new();
        for (c, s) in self.columns.iter().zip(&self.statistics) {
            let d = dtype(c);
            let fill = match (s, &d) {
                (Scalar::Float(x), d) if d.is_primitive_numeric() && !encoded(c) => {
                    Some(Fill::Float(*x))
                }
                (Scalar::Int(i), d) if d.is_primitive_numeric() && !encoded(c) => {
                    Some(Fill::Float(*i as f64))
                }
                (s, d) if d.is_integer() => match Category::of_scalar(s, d) {
                    Some(Category::Int(i)) => Some(Fill::Int(i)),
                    _ => None,
                },
                (Scalar::Bool(b), DataType::Boolean) => Some(Fill::Bool(*b)),
                (Scalar::Str(v), DataType::String) => Some(Fill::Str(v.clone())),
                _ => None,
            };
            match fill {
                Some(f) => self.fills.push(f),
                None => {
                    return Err(PrepError::bad_data(
                        DataLocation::default().column(c),
                        DataError::FillDoesNotFit {
                            column: c.clone(),
                            value: s.to_string(),
                            dtype: d,
                        },
                    ))
                }
            }
        }
        Ok(())
    }

    /// The fill of a numeric column and how many values it filled at fit
    /// time, for the statistics of a scaler after this imputer.
    pub fn numeric_fill(&self, col: &str) -> Option<(f64, u64)> {
        let i = self.columns.iter().position(|c| c == col)?;
        match self.fills.get(i)? {
            Fill::Float(x) => Some((*x, self.missing.get(i).copied().unwrap_or(0))),
            _ => None,
        }
    }

    /// The fill as a category and its fit-time count (for an encoder).
    pub fn category_fill(&self, col: &str, dtype: &DataType) -> Option<(Category, u64)> {
        let i = self.columns.iter().position(|c| c == col)?;
        let cat = Category::of_scalar(&self.statistics[i], dtype)?;
        Some((cat, self.missing.get(i).copied().unwrap_or(0)))
    }

    /// Fills the missing values of every column (adding `<col>_missing`
    /// columns at the end when asked; the layout orders them later).
    pub fn apply(&self, mut df: DataFrame) -> Result<DataFrame> {
        for (c, fill) in self.columns.iter().zip(&self.fills) {
            let col = column(&df, c)?.clone();
            let mask = missing_mask(&col);
            let any = mask.iter().any(|m| *m);
            if self.add_indicator {
                let ind: Int8Chunked = mask.iter().map(|m| Some(*m as i8)).collect();
                let ind = ind.with_name(PlSmallStr::from(indicator_name(c)));
                df.with_column(ind.into_column())
                    .map_err(|e| PrepError::polars(format!("adding `{}`", indicator_name(c)), e))?;
            }
            let name = PlSmallStr::from(c.as_str());
            let filled: Column = match fill {
                Fill::Float(v) => {
                    let ca = crate::transform::values::as_f64(&df, c)?;
                    let out: Float64Chunked = if any {
                        ca.iter()
                            .map(|x| Some(x.filter(|x| !x.is_nan()).unwrap_or(*v)))
                            .collect()
                    } else {
                        ca
                    };
                    out.with_name(name).into_column()
                }
                _ if !any => continue,
                Fill::Int(v) => {
                    let s = col
                        .cast(&DataType::Int64)
                        .map_err(|e| PrepError::polars(format!("imputing `{c}`"), e))?;
                    let out: Int64Chunked = s
                        .i64()
                        .expect("i64")
                        .iter()
                        .map(|x| Some(x.unwrap_or(*v)))
                        .collect();
                    out.with_name(name).into_column()
                }
                Fill::Bool(v) => {
                    let s = col
                        .cast(&DataType::Boolean)
                        .map_err(|e| PrepError::polars(format!("imputing `{c}`"), e))?;
                    let out: BooleanChunked = s
                        .bool()
                        .expect("bool")
                        .iter()
                        .map(|x| Some(x.unwrap_or(*v)))
                        .collect();
                    out.with_name(name).into_column()
                }
                Fill::Str(v) => {
                    let s = col
                        .cast(&DataType::String)
                        .map_err(|e| PrepError::polars(format!("imputing `{c}`"), e))?;
                    let out: StringChunked = s
                        .str()
                        .expect("string")
                        .iter()
                        .map(|x| Some(x.unwrap_or(v.as_str())))
                        .collect();
                    out.with_name(name).into_column()
                }
            };
            df.with_column(filled)
                .map_err(|e| PrepError::polars(format!("imputing `{c}`"), e))?;
        }
        Ok(df)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::plan::ScaleColumns;
    use crate::transform::values::f64s;

    fn group(strategy: ImputeStrategy, add_indicator: bool) -> ImputeGroup {
        ImputeGroup {
            columns: ScaleColumns::Numeric,
            exclude: vec![],
            strategy,
            add_indicator,
            at: String::new(),
        }
    }

    fn fit(strategy: ImputeStrategy, df: &DataFrame, cols: &[&str]) -> ImputeStep {
        let g = group(strategy, true);
        let cols: Vec<String> = cols.iter().map(|s| s.to_string()).collect();
        let mut acc = ImputeAcc::new(&g, &cols, vec![MOST_FREQUENT_LIMIT; cols.len()]);
        // Two chunks, merged: as two workers would.
        let (a, b) = (df.slice(0, 2), df.slice(2, df.height()));
        acc.update(&a).unwrap();
        let mut other = ImputeAcc::new(&g, &cols, vec![MOST_FREQUENT_LIMIT; cols.len()]);
        other.update(&b).unwrap();
        acc.merge(&other).unwrap();
        let medians: Vec<_> = acc
            .problems()
            .iter()
            .map(|p| {
                let mut v: Vec<f64> = df
                    .column(&p.column)
                    .unwrap()
                    .cast(&DataType::Float64)
                    .unwrap()
                    .f64()
                    .unwrap()
                    .iter()
                    .flatten()
                    .filter(|x| !x.is_nan())
                    .collect();
                v.sort_by(f64::total_cmp);
                p.ranks.iter().map(|r| (*r, v[*r as usize])).collect()
            })
            .collect();
        let d = df.clone();
        acc.finish(
            &g,
            &medians,
            &|c| d.column(c).unwrap().dtype().clone(),
            &|_| false,
        )
        .unwrap()
    }

    fn sample() -> DataFrame {
        df!(
            "x" => [Some(1.0), None, Some(f64::NAN), Some(4.0), Some(10.0)],
            "i" => [Some(3i64), Some(3), None, Some(1), Some(1)],
            "s" => [Some("b"), None, Some("a"), Some("b"), Some("a")]
        )
        .unwrap()
    }

    #[test]
    fn strategies_give_sklearns_statistics() {
        let df = sample();
        assert_eq!(
            fit(ImputeStrategy::Mean, &df, &["x"]).statistics,
            vec![Scalar::Float(5.0)]
        );
        assert_eq!(
            fit(ImputeStrategy::Median, &df, &["x", "i"]).statistics,
            vec![Scalar::Float(4.0), Scalar::Float(2.0)]
        );
        // Ties: the smallest value.
        assert_eq!(
            fit(ImputeStrategy::MostFrequent, &df, &["i", "s"]).statistics,
            vec![Scalar::Float(1.0), Scalar::Str("a".into())]
        );
        let c = fit(ImputeStrategy::Constant(Scalar::Int(0)), &df, &["x"]);
        assert_eq!(c.statistics, vec![Scalar::Float(0.0)]);
        assert_eq!(c.missing, vec![2]);
    }

    #[test]
    fn apply_fills_as_float_and_adds_indicators() {
        let df = sample();
        let step = fit(ImputeStrategy::Median, &df, &["x", "i"]);
        let out = step.apply(df).unwrap();
        let x = f64s(&out, "x");
        assert_eq!(x, vec![1.0, 4.0, 4.0, 4.0, 10.0]);
        assert_eq!(out.column("i").unwrap().dtype(), &DataType::Float64);
        let ind: Vec<i8> = out
            .column("x_missing")
            .unwrap()
            .i8()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(ind, vec![0, 1, 1, 0, 0]);
        let s = fit(ImputeStrategy::MostFrequent, &sample(), &["s"])
            .apply(sample())
            .unwrap();
        assert_eq!(s.column("s").unwrap().str().unwrap().get(1), Some("a"));
    }

    #[test]
    fn an_all_missing_column_fails_except_with_constant() {
        let df = df!("x" => [None::<f64>, None]).unwrap();
        let g = group(ImputeStrategy::Mean, false);
        let mut acc = ImputeAcc::new(&g, &["x".into()], vec![10]);
        acc.update(&df).unwrap();
        let err = acc
            .finish(&g, &[], &|_| DataType::Float64, &|_| false)
            .unwrap_err();
        assert!(err.to_string().contains("`x`"), "{err}");
        let c = fit(ImputeStrategy::Constant(Scalar::Float(7.5)), &df, &["x"]);
        let out = c.apply(df).unwrap();
        assert_eq!(out.column("x").unwrap().f64().unwrap().get(1), Some(7.5));
    }
}
