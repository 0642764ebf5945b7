//! `transform.json` (CONTRACT §9): every fitted step of a run with
//! scikit-learn's attribute names, the input columns the steps read, and
//! the output columns; written by every run and read back by `prep apply`.
//!
//! Beyond the contract's fields it carries `output_sources` (the column
//! each output column is made from, before `output.rename`) and, per
//! encoder, `category_counts`, `min_frequency` and `max_categories`, so
//! that `apply` and `python/prep_sklearn.py` rebuild the same layout.

use serde::{Deserialize, Serialize};

use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::transform::encode::EncodeStep;
use crate::transform::impute::ImputeStep;
use crate::transform::scale::ScaleStep;
use crate::transform::scaler::ScalerSource;
use crate::transform::steps::FittedSteps;

pub const FORMAT: &str = "prep-transform";
pub const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputColumn {
    pub name: String,
    pub dtype: String,
}

/// One step, tagged by `"step"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "lowercase")]
pub enum StepArtifact {
    Impute(ImputeStep),
    Encode(EncodeStep),
    Scale(ScaleStep),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransformArtifact {
    pub format: String,
    pub version: u32,
    pub created_by: String,
    pub source: ScalerSource,
    pub n_rows_fitted: u64,
    pub input_columns: Vec<InputColumn>,
    pub steps: Vec<StepArtifact>,
    pub output_columns: Vec<String>,
    /// The produced column each output column is (before renames).
    pub output_sources: Vec<String>,
}

/// A polars type as `[input.schema]` names it.
pub fn dtype_name(d: &polars::prelude::DataType) -> String {
    use polars::prelude::DataType;
    match d {
        DataType::Int64 => "int64".into(),
        DataType::Float64 => "float64".into(),
        DataType::String => "string".into(),
        DataType::Boolean => "bool".into(),
        d if d.is_integer() => "int64".into(),
        d if d.is_float() => "float64".into(),
        d => d.to_string(),
    }
}

impl TransformArtifact {
    pub fn new(
        steps: &FittedSteps,
        source: ScalerSource,
        n_rows: u64,
        inputs: &[(String, polars::prelude::DataType)],
        layout: &[(String, String)],
    ) -> TransformArtifact {
        let mut all = Vec::new();
        all.extend(steps.impute.iter().cloned().map(StepArtifact::Impute));
        all.extend(steps.encode.iter().cloned().map(StepArtifact::Encode));
        all.extend(steps.scale.iter().cloned().map(StepArtifact::Scale));
        TransformArtifact {
            format: FORMAT.into(),
            version: VERSION,
            created_by: format!("prep {}", env!("CARGO_PKG_VERSION")),
            source,
            n_rows_fitted: n_rows,
            input_columns: inputs
                .iter()
                .map(|(n, d)| InputColumn {
                    name: n.clone(),
                    dtype: dtype_name(d),
                })
                .collect(),
            steps: all,
            output_columns: layout.iter().map(|(_, o)| o.clone()).collect(),
            output_sources: layout.iter().map(|(p, _)| p.clone()).collect(),
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("artifact serializes");
        v.push(b'\n');
        v
    }

    /// Parses and checks an artifact (its `format` already read).
    pub fn from_value(value: serde_json::Value, uri: &str) -> Result<TransformArtifact> {
        let bad = |kind| PrepError::bad_data(DataLocation::file(uri), kind);
        let version = value.get("version").and_then(|v| v.as_u64()).unwrap_or(0);
        if version != u64::from(VERSION) {
            return Err(bad(DataError::ScalerVersion {
                found: version,
                supported: VERSION,
            }));
        }
        let a: TransformArtifact = serde_json::from_value(value).map_err(|e| {
            bad(DataError::MalformedScaler {
                detail: e.to_string(),
            })
        })?;
        if a.output_columns.len() != a.output_sources.len() {
            return Err(bad(DataError::ScalerMisaligned));
        }
        Ok(a)
    }

    /// The fitted steps, bound to the input types (`apply`).
    pub fn steps(&self, uri: &str) -> Result<FittedSteps> {
        let mut s = FittedSteps {
            impute: Vec::new(),
            encode: Vec::new(),
            scale: Vec::new(),
        };
        for st in &self.steps {
            match st {
                StepArtifact::Impute(i) => s.impute.push(i.clone()),
                StepArtifact::Encode(e) => {
                    let mut e = e.clone();
                    if e.categories.len() != e.columns.len()
                        || e.infrequent_categories.len() != e.columns.len()
                    {
                        return Err(PrepError::bad_data(
                            DataLocation::file(uri),
                            DataError::ScalerMisaligned,
                        ));
                    }
                    e.bind();
                    s.encode.push(e);
                }
                StepArtifact::Scale(c) => s.scale.push(c.clone()),
            }
        }
        let dtype = |c: &str| -> polars::prelude::DataType {
            let name = self
                .input_columns
                .iter()
                .find(|i| i.name == c)
                .map(|i| i.dtype.as_str())
                .unwrap_or("");
            match name {
                "int64" => polars::prelude::DataType::Int64,
                "float64" => polars::prelude::DataType::Float64,
                "bool" => polars::prelude::DataType::Boolean,
                _ => polars::prelude::DataType::String,
            }
        };
        let encoded: Vec<String> = s.encode.iter().flat_map(|e| e.columns.clone()).collect();
        for i in &mut s.impute {
            if i.statistics.len() != i.columns.len() {
                return Err(PrepError::bad_data(
                    DataLocation::file(uri),
                    DataError::ScalerMisaligned,
                ));
            }
            i.bind(&dtype, &|c| encoded.iter().any(|e| e == c))?;
        }
        Ok(s)
    }
}
