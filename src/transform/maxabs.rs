//! Max-abs scaling = scikit-learn's `MaxAbsScaler` (CONTRACT §9): the fit
//! state (the largest |x| per column), its fitted form with
//! `_handle_zeros_in_scale`, and applying it as `x / scale`.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{PrepError, Result};
use crate::transform::minmax::{handle_zeros, no_values};
use crate::transform::values::{as_f64, observed};

/// Fit state: observed count and max |x| per column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaxAbsAcc {
    pub count: Vec<u64>,
    pub max_abs: Vec<f64>,
}

impl MaxAbsAcc {
    pub fn new(n: usize) -> Self {
        MaxAbsAcc {
            count: vec![0; n],
            max_abs: vec![0.0; n],
        }
    }

    pub fn update(&mut self, df: &DataFrame, columns: &[String]) -> Result<()> {
        for (i, c) in columns.iter().enumerate() {
            let (v, _) = observed(df, c)?;
            self.count[i] += v.len() as u64;
            for x in v {
                self.max_abs[i] = self.max_abs[i].max(x.abs());
            }
        }
        Ok(())
    }

    pub fn merge(&mut self, o: &MaxAbsAcc) {
        for i in 0..self.count.len() {
            self.count[i] += o.count[i];
            self.max_abs[i] = self.max_abs[i].max(o.max_abs[i]);
        }
    }

    pub fn finish(
        &self,
        columns: &[String],
        n_rows: u64,
        fill: &dyn Fn(&str) -> Option<(f64, u64)>,
    ) -> Result<MaxAbsStep> {
        let mut s = MaxAbsStep {
            columns: columns.to_vec(),
            max_abs: vec![],
            scale: vec![],
            n_samples_seen: n_rows,
        };
        for (i, c) in columns.iter().enumerate() {
            let (mut m, mut n) = (self.max_abs[i], self.count[i]);
            if let Some((v, k)) = fill(c).filter(|f| f.1 > 0) {
                m = m.max(v.abs());
                n += k;
            }
            if n == 0 {
                return Err(no_values(c, "maxabs"));
            }
            s.max_abs.push(m);
            s.scale.push(handle_zeros(m));
        }
        Ok(s)
    }
}

/// A fitted max-abs group: `MaxAbsScaler`'s attributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaxAbsStep {
    pub columns: Vec<String>,
    pub max_abs: Vec<f64>,
    pub scale: Vec<f64>,
    pub n_samples_seen: u64,
}

impl MaxAbsStep {
    pub fn apply(&self, mut df: DataFrame) -> Result<DataFrame> {
        for (i, c) in self.columns.iter().enumerate() {
            let s = self.scale[i];
            let out = as_f64(&df, c)?.apply_values(|x| x / s);
            df.with_column(out.with_name(PlSmallStr::from(c.as_str())).into_column())
                .map_err(|e| PrepError::polars(format!("scaling `{c}`"), e))?;
        }
        Ok(df)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_by_the_largest_magnitude() {
        let df = df!("x" => [Some(-8.0f64), Some(2.0), None], "z" => [0.0f64, 0.0, 0.0]).unwrap();
        let cols = vec!["x".to_string(), "z".to_string()];
        let mut a = MaxAbsAcc::new(2);
        a.update(&df, &cols).unwrap();
        let s = a.finish(&cols, 3, &|_| None).unwrap();
        assert_eq!(s.max_abs, vec![8.0, 0.0]);
        assert_eq!(s.scale, vec![8.0, 1.0]);
        let out = s.apply(df).unwrap();
        assert_eq!(out.column("x").unwrap().f64().unwrap().get(0), Some(-1.0));
        assert_eq!(out.column("x").unwrap().f64().unwrap().get(2), None);
    }
}
