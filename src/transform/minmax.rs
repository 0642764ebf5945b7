//! Min-max scaling = scikit-learn's `MinMaxScaler` (CONTRACT §9): the fit
//! state (exact min and max per column), its fitted form with
//! `_handle_zeros_in_scale`, and applying it as `x * scale + min` in f64
//! (then clipped to `feature_range` with `clip`), as its `transform` does.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::transform::values::{as_f64, observed};

/// scikit-learn's `_handle_zeros_in_scale`: a scale below 10·eps is 1.
pub fn handle_zeros(scale: f64) -> f64 {
    if scale < 10.0 * f64::EPSILON {
        1.0
    } else {
        scale
    }
}

/// "no value to fit" for a column a scaler saw only missing values in.
pub fn no_values(column: &str, method: &str) -> PrepError {
    PrepError::bad_data(
        DataLocation::default().column(column),
        DataError::NoValuesToFit {
            column: column.to_string(),
            step: format!("scale (method = \"{method}\")"),
        },
    )
}

/// Fit state: observed count, min and max per column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinMaxAcc {
    pub count: Vec<u64>,
    pub min: Vec<f64>,
    pub max: Vec<f64>,
}

impl MinMaxAcc {
    pub fn new(n: usize) -> Self {
        MinMaxAcc {
            count: vec![0; n],
            min: vec![f64::INFINITY; n],
            max: vec![f64::NEG_INFINITY; n],
        }
    }

    pub fn update(&mut self, df: &DataFrame, columns: &[String]) -> Result<()> {
        for (i, c) in columns.iter().enumerate() {
            let (v, _) = observed(df, c)?;
            self.count[i] += v.len() as u64;
            for x in v {
                self.min[i] = self.min[i].min(x);
                self.max[i] = self.max[i].max(x);
            }
        }
        Ok(())
    }

    pub fn merge(&mut self, o: &MinMaxAcc) {
        for i in 0..self.count.len() {
            self.count[i] += o.count[i];
            self.min[i] = self.min[i].min(o.min[i]);
            self.max[i] = self.max[i].max(o.max[i]);
        }
    }

    pub fn finish(
        &self,
        columns: &[String],
        feature_range: [f64; 2],
        clip: bool,
        n_rows: u64,
        fill: &dyn Fn(&str) -> Option<(f64, u64)>,
    ) -> Result<MinMaxStep> {
        let mut s = MinMaxStep {
            columns: columns.to_vec(),
            feature_range,
            clip,
            data_min: vec![],
            data_max: vec![],
            data_range: vec![],
            scale: vec![],
            min: vec![],
            n_samples_seen: n_rows,
        };
        for (i, c) in columns.iter().enumerate() {
            let (mut lo, mut hi, mut n) = (self.min[i], self.max[i], self.count[i]);
            if let Some((v, k)) = fill(c).filter(|f| f.1 > 0) {
                lo = lo.min(v);
                hi = hi.max(v);
                n += k;
            }
            if n == 0 {
                return Err(no_values(c, "minmax"));
            }
            let range = hi - lo;
            let scale = (feature_range[1] - feature_range[0]) / handle_zeros(range);
            s.data_min.push(lo);
            s.data_max.push(hi);
            s.data_range.push(range);
            s.scale.push(scale);
            s.min.push(feature_range[0] - lo * scale);
        }
        Ok(s)
    }
}

/// A fitted min-max group: `MinMaxScaler`'s attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MinMaxStep {
    pub columns: Vec<String>,
    pub feature_range: [f64; 2],
    pub clip: bool,
    pub data_min: Vec<f64>,
    pub data_max: Vec<f64>,
    pub data_range: Vec<f64>,
    pub scale: Vec<f64>,
    pub min: Vec<f64>,
    pub n_samples_seen: u64,
}

impl MinMaxStep {
    pub fn apply(&self, mut df: DataFrame) -> Result<DataFrame> {
        let [lo, hi] = self.feature_range;
        for (i, c) in self.columns.iter().enumerate() {
            let (s, m) = (self.scale[i], self.min[i]);
            let ca = as_f64(&df, c)?;
            let out: Float64Chunked = if self.clip {
                // numpy.clip: NaN stays NaN.
                ca.apply_values(|x| {
                    let v = x * s + m;
                    if v < lo {
                        lo
                    } else if v > hi {
                        hi
                    } else {
                        v
                    }
                })
            } else {
                ca.apply_values(|x| x * s + m)
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
    use crate::transform::values::f64s;

    fn fit(values: &[f64], range: [f64; 2], clip: bool, fill: Option<(f64, u64)>) -> MinMaxStep {
        let df = df!("x" => values).unwrap();
        let mut a = MinMaxAcc::new(1);
        a.update(&df.slice(0, 1), &["x".into()]).unwrap();
        let mut b = MinMaxAcc::new(1);
        b.update(&df.slice(1, values.len()), &["x".into()]).unwrap();
        a.merge(&b);
        a.finish(&["x".into()], range, clip, values.len() as u64, &|_| fill)
            .unwrap()
    }

    #[test]
    fn fits_and_applies_like_sklearn() {
        let s = fit(&[2.0, 4.0, f64::NAN, 10.0], [-1.0, 1.0], false, None);
        assert_eq!(
            (s.data_min[0], s.data_max[0], s.data_range[0]),
            (2.0, 10.0, 8.0)
        );
        assert_eq!(s.scale[0], 0.25);
        assert_eq!(s.min[0], -1.0 - 2.0 * 0.25);
        let out = s.apply(df!("x" => [2.0f64, 10.0, 14.0]).unwrap()).unwrap();
        let v = f64s(&out, "x");
        assert_eq!(v, vec![-1.0, 1.0, 2.0]);
        let c = fit(&[2.0, 4.0, 10.0], [-1.0, 1.0], true, None);
        let out = c.apply(df!("x" => [14.0f64, -3.0]).unwrap()).unwrap();
        assert_eq!(out.column("x").unwrap().f64().unwrap().get(0), Some(1.0));
        assert_eq!(out.column("x").unwrap().f64().unwrap().get(1), Some(-1.0));
    }

    #[test]
    fn a_constant_column_gets_scale_one_and_the_fill_counts() {
        let s = fit(&[5.0, 5.0], [0.0, 1.0], false, None);
        assert_eq!(s.scale[0], 1.0);
        assert_eq!(s.min[0], -5.0);
        let s = fit(&[5.0, 5.0], [0.0, 1.0], false, Some((7.0, 3)));
        assert_eq!(s.data_max[0], 7.0);
    }
}
