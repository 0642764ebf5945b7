//! Robust scaling = scikit-learn's `RobustScaler` (CONTRACT §9): the fit
//! state (a key histogram per column, `quantile.rs`), the exact median
//! (`numpy.nanmedian`) and quantiles (`numpy.nanpercentile`, linear) it
//! needs, its fitted form with `_handle_zeros_in_scale` (and, with
//! `unit_variance`, the division by the normal quantile spread, after the
//! zero rule), and applying it as `(x - center) / scale`.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{PrepError, Result};
use crate::transform::minmax::{handle_zeros, no_values};
use crate::transform::ndtri::ndtri;
use crate::transform::percentile::{median_of, median_ranks, percentile_of, percentile_ranks};
use crate::transform::quantile::{Problem, Sketch};
use crate::transform::values::{as_f64, observed};

/// Fit state: a key histogram per column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustAcc {
    pub sketches: Vec<Sketch>,
}

/// The settings of a robust group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RobustSettings {
    pub quantile_range: [f64; 2],
    pub with_centering: bool,
    pub with_scaling: bool,
    pub unit_variance: bool,
}

impl RobustAcc {
    pub fn new(n: usize) -> Self {
        RobustAcc {
            sketches: vec![Sketch::default(); n],
        }
    }

    pub fn update(&mut self, df: &DataFrame, columns: &[String]) -> Result<()> {
        for (s, c) in self.sketches.iter_mut().zip(columns) {
            s.add(&observed(df, c)?.0);
        }
        Ok(())
    }

    pub fn merge(&mut self, o: &RobustAcc) {
        for (a, b) in self.sketches.iter_mut().zip(&o.sketches) {
            a.merge(b);
        }
    }

    /// The ranks to find per column (with the imputer's fill, `fill`).
    pub fn problems(
        &self,
        columns: &[String],
        set: &RobustSettings,
        fill: &dyn Fn(&str) -> Option<(f64, u64)>,
    ) -> Result<Vec<Problem>> {
        let mut out = Vec::new();
        for (c, s) in columns.iter().zip(&self.sketches) {
            let extra = fill(c).filter(|f| f.1 > 0);
            let n = s.count + extra.map_or(0, |e| e.1);
            if n == 0 {
                return Err(no_values(c, "robust"));
            }
            let mut ranks = Vec::new();
            if set.with_centering {
                ranks.extend(median_ranks(n));
            }
            if set.with_scaling {
                ranks.extend(percentile_ranks(n, set.quantile_range[0]));
                ranks.extend(percentile_ranks(n, set.quantile_range[1]));
            }
            out.push(Problem {
                column: c.clone(),
                sketch: s.clone(),
                extra,
                ranks,
            });
        }
        Ok(out)
    }

    /// The fitted step from the values found for [`Self::problems`].
    pub fn finish(
        &self,
        columns: &[String],
        set: &RobustSettings,
        problems: &[Problem],
        found: &[BTreeMap<u64, f64>],
    ) -> RobustStep {
        let [q_min, q_max] = set.quantile_range;
        let mut center = Vec::new();
        let mut scale = Vec::new();
        for (p, at) in problems.iter().zip(found) {
            let n = p.n();
            if set.with_centering {
                center.push(median_of(n, at));
            }
            if set.with_scaling {
                let s = handle_zeros(percentile_of(n, q_max, at) - percentile_of(n, q_min, at));
                scale.push(if set.unit_variance {
                    s / (ndtri(q_max / 100.0) - ndtri(q_min / 100.0))
                } else {
                    s
                });
            }
        }
        RobustStep {
            columns: columns.to_vec(),
            center: set.with_centering.then_some(center),
            scale: set.with_scaling.then_some(scale),
            quantile_range: set.quantile_range,
            with_centering: set.with_centering,
            with_scaling: set.with_scaling,
            unit_variance: set.unit_variance,
        }
    }
}

/// A fitted robust group: `RobustScaler`'s `center_` and `scale_`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustStep {
    pub columns: Vec<String>,
    pub center: Option<Vec<f64>>,
    pub scale: Option<Vec<f64>>,
    pub quantile_range: [f64; 2],
    pub with_centering: bool,
    pub with_scaling: bool,
    pub unit_variance: bool,
}

impl RobustStep {
    pub fn apply(&self, mut df: DataFrame) -> Result<DataFrame> {
        for (i, c) in self.columns.iter().enumerate() {
            let center = self.center.as_ref().map(|v| v[i]);
            let scale = self.scale.as_ref().map(|v| v[i]);
            let ca = as_f64(&df, c)?;
            let out = match (center, scale) {
                (Some(m), Some(s)) => ca.apply_values(|x| (x - m) / s),
                (Some(m), None) => ca.apply_values(|x| x - m),
                (None, Some(s)) => ca.apply_values(|x| x / s),
                (None, None) => ca,
            };
            df.with_column(out.with_name(PlSmallStr::from(c.as_str())).into_column())
                .map_err(|e| PrepError::polars(format!("scaling `{c}`"), e))?;
        }
        Ok(df)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(values: &[f64], set: RobustSettings, fill: Option<(f64, u64)>) -> RobustStep {
        let df = df!("x" => values).unwrap();
        let cols = vec!["x".to_string()];
        let mut a = RobustAcc::new(1);
        a.update(&df, &cols).unwrap();
        let problems = a.problems(&cols, &set, &|_| fill).unwrap();
        let mut all: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if let Some((v, n)) = fill {
            all.extend(std::iter::repeat_n(v, n as usize));
        }
        all.sort_by(f64::total_cmp);
        let found: Vec<BTreeMap<u64, f64>> = problems
            .iter()
            .map(|p| p.ranks.iter().map(|r| (*r, all[*r as usize])).collect())
            .collect();
        a.finish(&cols, &set, &problems, &found)
    }

    const SET: RobustSettings = RobustSettings {
        quantile_range: [25.0, 75.0],
        with_centering: true,
        with_scaling: true,
        unit_variance: false,
    };

    #[test]
    fn median_and_iqr_like_numpy() {
        // numpy: nanmedian = 2.5, nanpercentile 25/75 = 1.75 / 3.25.
        let s = fit(&[4.0, 1.0, f64::NAN, 3.0, 2.0], SET, None);
        assert_eq!(s.center, Some(vec![2.5]));
        assert_eq!(s.scale, Some(vec![1.5]));
        let out = s.apply(df!("x" => [2.5f64, 4.0]).unwrap()).unwrap();
        assert_eq!(out.column("x").unwrap().f64().unwrap().get(1), Some(1.0));
        let c = fit(&[3.0, 3.0, 3.0], SET, None);
        assert_eq!(c.scale, Some(vec![1.0]), "zero spread becomes 1");
        let u = fit(
            &[3.0, 3.0, 3.0],
            RobustSettings {
                unit_variance: true,
                ..SET
            },
            None,
        );
        assert_eq!(u.scale, Some(vec![1.0 / (ndtri(0.75) - ndtri(0.25))]));
        let f = fit(&[1.0, 2.0], SET, Some((10.0, 2)));
        assert_eq!(f.center, Some(vec![6.0]));
    }
}
