//! The validated, resolved pipeline: what every stage reads instead of raw
//! config.
//!
//! `Plan::build` checks each value and every cross-field rule, and reports all
//! problems at once (with line and column) rather than stopping at the first.
//! The fitted steps' types live in `steps.rs`. Column names are resolved
//! later against the data's schema, in `transform/columns.rs`, because only
//! the data knows them.

use std::num::NonZeroUsize;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InputFormat {
    Csv,
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OutputFormat {
    Jsonl,
    Parquet,
    Csv,
}

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Parquet => "parquet",
            OutputFormat::Csv => "csv",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "jsonl" => Some(OutputFormat::Jsonl),
            "parquet" => Some(OutputFormat::Parquet),
            "csv" => Some(OutputFormat::Csv),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OutputCompression {
    None,
    Gzip,
    Zstd,
    Snappy,
}

/// Types a user may force with `[input.schema]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ColumnType {
    Int64,
    Float64,
    String,
    Bool,
}

impl ColumnType {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "int64" => Some(ColumnType::Int64),
            "float64" => Some(ColumnType::Float64),
            "string" => Some(ColumnType::String),
            "bool" => Some(ColumnType::Bool),
            _ => None,
        }
    }
}

/// A column type as prep names it to users: `[input.schema]`'s names
/// (`int64`, `float64`, `string`, `bool`), the other widths a Parquet file
/// can hold (`int16`, `uint8`, `float32`, …), lists by their items
/// (`list[int16]`), structs by their fields (`struct{a: int64}`), else
/// polars' own (`date`, `datetime[μs]`).
pub fn type_name(dtype: &polars::prelude::DataType) -> String {
    use polars::prelude::DataType as D;
    match dtype {
        D::Int8 => "int8".into(),
        D::Int16 => "int16".into(),
        D::Int32 => "int32".into(),
        D::Int64 => "int64".into(),
        D::UInt8 => "uint8".into(),
        D::UInt16 => "uint16".into(),
        D::UInt32 => "uint32".into(),
        D::UInt64 => "uint64".into(),
        D::Float32 => "float32".into(),
        D::Float64 => "float64".into(),
        D::String => "string".into(),
        D::Boolean => "bool".into(),
        D::List(inner) => format!("list[{}]", type_name(inner)),
        D::Struct(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), type_name(f.dtype())))
                .collect();
            format!("struct{{{}}}", fields.join(", "))
        }
        d => d.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SecondPass {
    /// Spill for CSV input, re-read for Parquet input (the faster of the two
    /// for each, measured; see README "Two passes").
    Auto,
    /// Spill cleaned chunks to a local temp dir as Arrow IPC and read them back.
    Spill,
    /// Read and parse the input a second time.
    Reread,
}

#[derive(Debug, Clone, Serialize)]
pub struct CsvPlan {
    pub delimiter: u8,
    /// `input.csv.delimiter` was set; when not, objects all named `.tsv`
    /// or `.tab` are read with a tab (`job/listing.rs`).
    pub delimiter_set: bool,
    pub has_header: bool,
    pub quote: Option<u8>,
    pub null_values: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputPlan {
    pub uri: String,
    /// `None`: decided from each file's extension.
    pub format: Option<InputFormat>,
    pub chunk_rows: NonZeroUsize,
    pub second_pass: SecondPass,
    pub csv: CsvPlan,
    pub schema_overrides: Vec<(String, ColumnType)>,
    /// CSV columns read as float64 whatever their first values look like:
    /// the scaled ones. Derived from `[[scale]]` (so not part of the
    /// settings a scale-out job compares).
    #[serde(skip)]
    pub read_as_float: ReadAsFloat,
    /// `[input] memory_budget`: bytes of cleaned chunks kept in memory
    /// between the passes (`None`: `PREP_MEMORY_BUDGET`, else the default).
    /// It changes no result, so it is not among the compared settings.
    #[serde(skip)]
    pub memory_budget: Option<u64>,
}

impl InputPlan {
    /// The memory budget in effect: the pipeline's, else the environment's.
    pub fn memory_budget(&self) -> u64 {
        self.memory_budget.unwrap_or_else(crate::env::memory_budget)
    }
}

/// Which CSV columns are read as float64 from the first chunk on, because a
/// scale step turns them into float64 anyway: then an integer column that
/// meets `2.5` later is simply a float column (CONTRACT §2 typing).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadAsFloat {
    /// Named in a `scale.columns` list.
    pub listed: Vec<String>,
    /// With `columns = "numeric"`: every numeric column except these
    /// (excluded from every numeric group, or encoded).
    pub numeric_except: Option<Vec<String>>,
}

impl ReadAsFloat {
    /// From the scale and encode groups of a pipeline.
    pub fn of(scale: &[ScaleGroup], encode: &[EncodeGroup]) -> ReadAsFloat {
        let mut listed = Vec::new();
        let mut except: Option<Vec<String>> = None;
        for g in scale {
            match &g.columns {
                ScaleColumns::List(l) => listed.extend(l.iter().cloned()),
                ScaleColumns::Numeric => {
                    except = Some(match except {
                        None => g.exclude.clone(),
                        Some(e) => e.into_iter().filter(|c| g.exclude.contains(c)).collect(),
                    })
                }
            }
        }
        let encoded: Vec<String> = encode.iter().flat_map(|g| g.columns.clone()).collect();
        if let Some(e) = except.as_mut() {
            e.extend(encoded.iter().cloned());
        }
        listed.retain(|c| !encoded.contains(c));
        ReadAsFloat {
            listed,
            numeric_except: except,
        }
    }

    /// Whether a column inferred as numeric is read as float64.
    pub fn numeric(&self, column: &str) -> bool {
        self.listed.iter().any(|c| c == column)
            || self
                .numeric_except
                .as_ref()
                .is_some_and(|e| !e.iter().any(|c| c == column))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum DropNulls {
    Any,
    Columns(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum NonFinite {
    Fail,
    Drop,
}

#[derive(Debug, Clone, Serialize)]
pub struct CleanPlan {
    pub drop_nulls: DropNulls,
    pub non_finite: NonFinite,
}

pub use crate::pipeline::steps::{
    EncodeGroup, EncodeMethod, Groups, HandleUnknown, ImputeGroup, ImputeStrategy, MinFrequency,
    Scalar, ScaleColumns, ScaleGroup, ScaleMethod,
};

#[derive(Debug, Clone, Serialize)]
pub struct OutputPlan {
    pub uri: String,
    pub format: OutputFormat,
    pub shard_max_rows: NonZeroUsize,
    pub shard_max_bytes: Option<u64>,
    pub min_shards: NonZeroUsize,
    pub columns: Option<Vec<String>>,
    pub rename: Vec<(String, String)>,
    pub compression: OutputCompression,
    pub csv_header: bool,
    /// Write dropped rows to `_rejects/` (CONTRACT §10).
    pub rejects: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StoragePlan {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    pub virtual_hosted_style: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Where the pipeline file was read from: for messages only, never part
    /// of what workers must agree on.
    #[serde(skip)]
    pub file: String,
    pub name: String,
    pub input: InputPlan,
    pub clean: CleanPlan,
    /// The fitted steps, in stage order (CONTRACT §9).
    pub impute: Groups<ImputeGroup>,
    pub encode: Groups<EncodeGroup>,
    pub scale: Groups<ScaleGroup>,
    pub output: OutputPlan,
    pub scaler_uri: String,
    pub transform_uri: String,
    pub storage: StoragePlan,
}

impl Plan {
    /// `scaler.json` is written (unchanged from before §9) when the only
    /// fitted step is one standard-scaling group.
    pub fn writes_scaler(&self) -> bool {
        self.impute.is_empty()
            && self.encode.is_empty()
            && self.scale.len() == 1
            && matches!(self.scale[0].method, ScaleMethod::Standard { .. })
    }
}

pub const DEFAULT_NULL_VALUES: [&str; 7] = ["", "NA", "N/A", "NULL", "null", "NaN", "nan"];

impl InputPlan {
    /// The contract's input defaults, for commands that take a bare URI
    /// (`inspect`, `apply`).
    pub fn defaults(uri: &str) -> InputPlan {
        InputPlan {
            uri: uri.to_string(),
            format: None,
            chunk_rows: NonZeroUsize::new(50_000).expect("positive"),
            second_pass: SecondPass::Auto,
            csv: CsvPlan {
                delimiter: b',',
                delimiter_set: false,
                has_header: true,
                quote: Some(b'"'),
                null_values: DEFAULT_NULL_VALUES.iter().map(|s| s.to_string()).collect(),
            },
            schema_overrides: Vec::new(),
            read_as_float: ReadAsFloat::default(),
            memory_budget: None,
        }
    }
}
