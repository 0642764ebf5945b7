//! The scaler artifact (CONTRACT §4): the fit result, its JSON form, and
//! applying it (through the standard step, `standard.rs`).
//!
//! The JSON mirrors scikit-learn's `StandardScaler` attributes so a Python
//! user can rebuild the scaler in five lines. Floats are written by serde_json
//! (shortest round-trip form), so they parse back to the same f64.

use serde::{Deserialize, Serialize};

use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::transform::stats::{scale_of, Moments};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceObject {
    pub key: String,
    pub size: u64,
    pub etag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalerSource {
    pub uri: String,
    pub objects: Vec<SourceObject>,
}

/// `n_samples_seen`: one number, or one per feature when a scaled column
/// kept nulls (as scikit-learn does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SamplesSeen {
    All(u64),
    PerFeature(Vec<u64>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scaler {
    pub format: String,
    pub version: u32,
    pub method: String,
    pub with_mean: bool,
    pub with_std: bool,
    pub ddof: u32,
    pub feature_names: Vec<String>,
    pub mean: Vec<f64>,
    pub var: Option<Vec<f64>>,
    pub scale: Option<Vec<f64>>,
    pub n_samples_seen: SamplesSeen,
    pub source: ScalerSource,
    pub created_by: String,
}

pub const FORMAT: &str = "prep-scaler";
pub const VERSION: u32 = 1;

impl Scaler {
    pub fn fit(
        names: &[String],
        moments: &[Moments],
        with_mean: bool,
        with_std: bool,
        source: ScalerSource,
    ) -> Scaler {
        let counts: Vec<u64> = moments.iter().map(|m| m.count).collect();
        let n_samples_seen = match counts.first() {
            Some(first) if counts.iter().any(|c| c != first) => SamplesSeen::PerFeature(counts),
            Some(first) => SamplesSeen::All(*first),
            None => SamplesSeen::All(0),
        };
        Scaler {
            format: FORMAT.into(),
            version: VERSION,
            method: "standard".into(),
            with_mean,
            with_std,
            ddof: 0,
            feature_names: names.to_vec(),
            mean: moments.iter().map(Moments::mean).collect(),
            var: with_std.then(|| moments.iter().map(Moments::var).collect()),
            scale: with_std.then(|| moments.iter().map(scale_of).collect()),
            n_samples_seen,
            source,
            created_by: format!("prep {}", env!("CARGO_PKG_VERSION")),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("scaler serializes");
        v.push(b'\n');
        v
    }

    /// Parses and checks an artifact written by `prep run`.
    pub fn from_json(bytes: &[u8], uri: &str) -> Result<Scaler> {
        let bad = |kind| PrepError::bad_data(DataLocation::file(uri), kind);
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
            bad(DataError::ScalerNotJson {
                detail: e.to_string(),
            })
        })?;
        let format = value.get("format").and_then(|v| v.as_str()).unwrap_or("");
        if format != FORMAT {
            return Err(bad(DataError::ScalerFormat {
                found: format.to_string(),
                expected: FORMAT,
            }));
        }
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version != u64::from(VERSION) {
            return Err(bad(DataError::ScalerVersion {
                found: version,
                supported: VERSION,
            }));
        }
        let s: Scaler = serde_json::from_value(value).map_err(|e| {
            bad(DataError::MalformedScaler {
                detail: e.to_string(),
            })
        })?;
        let n = s.feature_names.len();
        let lens_ok = s.mean.len() == n
            && s.var.as_ref().is_none_or(|v| v.len() == n)
            && s.scale.as_ref().is_none_or(|v| v.len() == n)
            && (s.scale.is_some() || !s.with_std);
        if !lens_ok {
            return Err(bad(DataError::ScalerMisaligned));
        }
        Ok(s)
    }

    /// Replaces every feature column with `(x - mean) / scale` as Float64
    /// (the standard step's transform).
    pub fn apply(&self, df: polars::prelude::DataFrame) -> Result<polars::prelude::DataFrame> {
        crate::transform::standard::StandardStep::from_scaler(self).apply(df)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fitted(with_mean: bool, with_std: bool) -> Scaler {
        let mut m = Moments::default();
        m.update(&[1.0, 2.0, 3.0, 4.0]);
        Scaler::fit(
            &["x".to_string()],
            &[m],
            with_mean,
            with_std,
            ScalerSource {
                uri: "in.csv".into(),
                objects: vec![],
            },
        )
    }

    #[test]
    fn json_round_trips_exactly() {
        let s = fitted(true, true);
        let back = Scaler::from_json(&s.to_json(), "s.json").unwrap();
        assert_eq!(s, back);
    }

    #[test]
    fn without_std_var_and_scale_are_null() {
        let s = fitted(true, false);
        let v: serde_json::Value = serde_json::from_slice(&s.to_json()).unwrap();
        assert!(v["var"].is_null() && v["scale"].is_null());
        assert_eq!(v["mean"][0], 2.5);
    }

    #[test]
    fn rejects_foreign_artifacts() {
        let err = Scaler::from_json(br#"{"format":"other","version":1}"#, "s.json").unwrap_err();
        assert!(err.to_string().contains("expected \"prep-scaler\""));
        let err =
            Scaler::from_json(br#"{"format":"prep-scaler","version":9}"#, "s.json").unwrap_err();
        assert!(err.to_string().contains("version 9"));
    }
}
