//! The validated fitted steps of a plan (CONTRACT §9): impute, encode and
//! scale groups, each a column selection plus its settings, in the fixed
//! stage order clean → impute → encode → scale → project.
//!
//! Built from the raw tables in `build_steps.rs`. Column names are resolved
//! against the data later (`transform/columns.rs`); each group keeps the
//! position of its table so that a problem only the data can reveal (a
//! `"numeric"` selection that meets `drop_nulls`, a string column given to
//! `mean`) still names the line in the pipeline file.

use serde::{Serialize, Serializer};

/// Which columns a group covers: every numeric column not excluded (and not
/// claimed by a list of another group of the same kind), or a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ScaleColumns {
    Numeric,
    List(Vec<String>),
}

/// A typed constant: `fill_value`, an imputed statistic, a category.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl std::fmt::Display for Scalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{}", serde_json::json!(x)),
            Scalar::Str(s) => write!(f, "{s:?}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ImputeStrategy {
    Mean,
    Median,
    MostFrequent,
    Constant(Scalar),
}

impl ImputeStrategy {
    pub fn name(&self) -> &'static str {
        match self {
            ImputeStrategy::Mean => "mean",
            ImputeStrategy::Median => "median",
            ImputeStrategy::MostFrequent => "most_frequent",
            ImputeStrategy::Constant(_) => "constant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImputeGroup {
    pub columns: ScaleColumns,
    pub exclude: Vec<String>,
    pub strategy: ImputeStrategy,
    pub add_indicator: bool,
    /// "line L, column C" of the group's table, for messages.
    #[serde(skip)]
    pub at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EncodeMethod {
    OneHot,
    Ordinal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HandleUnknown {
    Error,
    Ignore,
    InfrequentIfExist,
    UseEncodedValue,
}

impl HandleUnknown {
    pub fn name(self) -> &'static str {
        match self {
            HandleUnknown::Error => "error",
            HandleUnknown::Ignore => "ignore",
            HandleUnknown::InfrequentIfExist => "infrequent_if_exist",
            HandleUnknown::UseEncodedValue => "use_encoded_value",
        }
    }
}

/// scikit-learn's `min_frequency`: a count, or a fraction of the rows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum MinFrequency {
    Count(u64),
    Fraction(f64),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncodeGroup {
    pub columns: Vec<String>,
    pub method: EncodeMethod,
    pub min_frequency: MinFrequency,
    /// 0: no limit.
    pub max_categories: u64,
    pub handle_unknown: HandleUnknown,
    pub unknown_value: i64,
    pub max_distinct: u64,
    #[serde(skip)]
    pub at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum ScaleMethod {
    Standard {
        with_mean: bool,
        with_std: bool,
    },
    MinMax {
        feature_range: [f64; 2],
        clip: bool,
    },
    MaxAbs,
    Robust {
        quantile_range: [f64; 2],
        with_centering: bool,
        with_scaling: bool,
        unit_variance: bool,
    },
}

impl ScaleMethod {
    pub fn name(&self) -> &'static str {
        match self {
            ScaleMethod::Standard { .. } => "standard",
            ScaleMethod::MinMax { .. } => "minmax",
            ScaleMethod::MaxAbs => "maxabs",
            ScaleMethod::Robust { .. } => "robust",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleGroup {
    pub columns: ScaleColumns,
    pub exclude: Vec<String>,
    pub method: ScaleMethod,
    #[serde(skip)]
    pub at: String,
}

impl ScaleGroup {
    /// The group of a pipeline without `[scale]`: standard over "numeric".
    pub fn default_group() -> ScaleGroup {
        ScaleGroup {
            columns: ScaleColumns::Numeric,
            exclude: Vec::new(),
            method: ScaleMethod::Standard {
                with_mean: true,
                with_std: true,
            },
            at: String::new(),
        }
    }
}

/// Groups of one kind. One group serializes as that group itself, so the
/// settings workers compare keep the flat keys of a single table
/// (`scale.exclude`), as before `[[scale]]` existed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Groups<T>(pub Vec<T>);

impl<T: Serialize> Serialize for Groups<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }
}

impl<T> std::ops::Deref for Groups<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}
