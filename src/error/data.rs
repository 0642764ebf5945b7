//! What can be wrong with the input data: one [`DataError`] variant per kind
//! of problem, carrying the values that describe it. Its message (`Display`)
//! and its [`hint`](DataError::hint) are written here and nowhere else; where
//! the problem sits is a [`DataLocation`], rendered in front of the message.

use std::fmt;

use polars::prelude::DataType;

use super::prep::did_you_mean;
use crate::pipeline::plan::type_name;

/// Where in the input a data problem sits. Every part is optional because a
/// schema mismatch has no line and a CSV parse error may have no column.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DataLocation {
    pub file: String,
    pub line: Option<u64>,
    pub row: Option<u64>,
    pub column: Option<String>,
}

impl DataLocation {
    /// The whole file or object.
    pub fn file(file: impl Into<String>) -> Self {
        DataLocation {
            file: file.into(),
            ..Default::default()
        }
    }

    pub fn line(mut self, line: Option<u64>) -> Self {
        self.line = line;
        self
    }

    pub fn column(mut self, column: impl Into<String>) -> Self {
        self.column = Some(column.into());
        self
    }
}

impl fmt::Display for DataLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ", line {line}")?;
        }
        if let Some(row) = self.row {
            write!(f, ", data row {row}")?;
        }
        if let Some(col) = &self.column {
            write!(f, ", column `{col}`")?;
        }
        Ok(())
    }
}

/// How a column got the type a value does not fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeOrigin {
    /// Inferred from the first rows of the file that fixed the schema.
    Inferred,
    /// Given in the pipeline's `[input.schema]`.
    Pinned,
    /// Read as float64 because a `[[scale]]` step scales it.
    Scaled,
}

impl fmt::Display for TypeOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TypeOrigin::Inferred => "inferred from the first rows",
            TypeOrigin::Pinned => "set in [input.schema]",
            TypeOrigin::Scaled => "read as float64 because the column is scaled",
        })
    }
}

/// Where a column that the data lacks was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedIn {
    /// A pipeline setting, e.g. `clean.drop_nulls`.
    Setting(&'static str),
    /// The `feature_names` of the scaler given to `prep apply`.
    ScalerFeatures,
    /// The `input_columns` of the transform.json given to `prep apply`.
    ArtifactColumns,
}

impl fmt::Display for NamedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NamedIn::Setting(s) => f.write_str(s),
            NamedIn::ScalerFeatures => f.write_str("the scaler's feature_names"),
            NamedIn::ArtifactColumns => f.write_str("the artifact's input_columns"),
        }
    }
}

/// The first difference between the columns of a file and those of the
/// file that fixed the schema ("here" is the file, "there" the other).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnDifference {
    /// The 1-based `position` holds another name.
    Renamed {
        position: usize,
        here: String,
        there: String,
    },
    Missing {
        column: String,
    },
    Extra {
        column: String,
    },
}

impl ColumnDifference {
    /// The column to name in the error's location.
    pub fn column(&self) -> &str {
        match self {
            ColumnDifference::Renamed { here, .. } => here,
            ColumnDifference::Missing { column } | ColumnDifference::Extra { column } => column,
        }
    }
}

impl fmt::Display for ColumnDifference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnDifference::Renamed {
                position,
                here,
                there,
            } => write!(f, "column {position} is `{here}` here but `{there}` there"),
            ColumnDifference::Missing { column } => write!(f, "column `{column}` is missing here"),
            ColumnDifference::Extra { column } => write!(f, "column `{column}` is extra here"),
        }
    }
}

/// What is wrong with the input data (exit code 3). The message follows
/// The first byte of `bytes` that is not UTF-8 and its 1-based position,
/// for [`DataError::InvalidUtf8`] and [`DataError::HeaderNotUtf8`].
pub fn bad_utf8(bytes: &[u8], e: std::str::Utf8Error) -> (u8, usize) {
    let i = e.valid_up_to();
    (bytes.get(i).copied().unwrap_or(0), i + 1)
}

/// "bad input data in {location}: "; the hint says what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    /// A CSV value does not parse as its column's type.
    #[error("value {value:?} does not fit the column's type {} ({origin})", type_name(.expected))]
    TypeMismatch {
        column: String,
        value: String,
        expected: DataType,
        origin: TypeOrigin,
    },

    /// A CSV record with another number of fields than the header.
    #[error("expected {expected} fields (as in the header), found {found}")]
    RaggedRow { expected: usize, found: usize },

    /// A quoted CSV field that runs to the end of the file.
    #[error(
        "a quoted field opened on this line is never closed (unterminated quote at end of file)"
    )]
    UnterminatedQuote,

    /// A CSV field that is not UTF-8.
    #[error("the value is not valid UTF-8 (byte 0x{byte:02X} at byte {at} of the field)")]
    InvalidUtf8 { byte: u8, at: usize },

    /// A CSV header field that is not UTF-8.
    #[error(
        "header field {field} is not valid UTF-8 (byte 0x{byte:02X} at byte {at} of the field)"
    )]
    HeaderNotUtf8 { field: usize, byte: u8, at: usize },

    /// A CSV object named as the whole input that holds no header (0 bytes,
    /// or a byte-order mark only).
    #[error("the file is empty: it has no header and no rows")]
    NoHeader,

    /// A record shape that the strict reading used to find a record
    /// boundary mid-file refuses (a quote inside an unquoted field): a
    /// wrong boundary guess, never shown (`read/split.rs` moves on).
    #[error("cannot parse the rows starting here: {detail}")]
    Unparsable { detail: String },

    /// A compressed or plain input stream that cannot be decoded.
    #[error("cannot decompress/read the data: {detail}")]
    Undecodable { detail: String },

    /// An object that is not a readable Parquet file.
    #[error("cannot read it as Parquet: {detail}")]
    BadParquet { detail: String },

    /// A CSV file split between workers has no record start near a split
    /// offset.
    #[error("found no record boundary within {} of byte {offset} to split the file between workers", bytesize::ByteSize(*.window))]
    NoRecordBoundary { offset: u64, window: u64 },

    /// A column named in the pipeline (or the scaler) that the data lacks.
    #[error("column `{column}` named in {named_in} does not exist in the data")]
    MissingColumn {
        column: String,
        named_in: NamedIn,
        /// The closest known name, if one is close.
        suggestion: Option<String>,
        /// Every column the data has.
        known: Vec<String>,
    },

    /// A CSV file whose header differs from the first file's.
    #[error("its header does not match {origin}: {difference}")]
    HeaderMismatch {
        origin: String,
        difference: ColumnDifference,
    },

    /// A Parquet file whose columns differ from the first file's.
    #[error("its schema does not match {origin}: {difference}")]
    SchemaMismatch {
        origin: String,
        difference: ColumnDifference,
    },

    /// A Parquet column whose type differs from the first file's.
    #[error("column `{column}` is {here} here but {there} in {origin}")]
    ColumnTypeDiffers {
        column: String,
        here: DataType,
        there: DataType,
        origin: String,
    },

    /// `prep inspect` over Parquet files with different columns.
    #[error("its columns differ from {first}")]
    InspectColumnsDiffer { first: String },

    /// `prep apply`: a feature of the scaler is not numeric in the data.
    #[error("feature column `{column}` is {}, not numeric", type_name(.dtype))]
    NotNumeric { column: String, dtype: DataType },

    /// An infinite value in a scaled column with `non_finite = "fail"`.
    #[error("non-finite value {value} in a column that is scaled")]
    NonFinite { value: String },

    /// Cleaning dropped every row.
    #[error(
        "no rows left after cleaning: {rows_in} rows read, {dropped_nulls} dropped for nulls (rows with nulls by column: {}), {dropped_non_finite} dropped as non-finite",
        nulls_list(.nulls_by_column)
    )]
    NothingLeft {
        rows_in: u64,
        dropped_nulls: u64,
        /// Rows with a null in each checked column that had any.
        nulls_by_column: Vec<(String, u64)>,
        dropped_non_finite: u64,
    },

    /// Workers of one job resolved different scaled columns.
    #[error("worker {worker} scaled {scaled:?} but worker 0 scaled {first:?}")]
    WorkerColumnsDiffer {
        worker: usize,
        scaled: Vec<String>,
        first: Vec<String>,
    },

    /// A scaler artifact that is not JSON.
    #[error("not valid JSON: {detail}")]
    ScalerNotJson { detail: String },

    /// A JSON file that is not a prep scaler.
    #[error("\"format\" is {found:?}, expected \"{expected}\"")]
    ScalerFormat {
        found: String,
        expected: &'static str,
    },

    /// A scaler of a version this prep does not read.
    #[error("scaler version {found} is not supported by this prep (reads version {supported})")]
    ScalerVersion { found: u64, supported: u32 },

    /// A scaler whose fields do not parse.
    #[error("malformed scaler: {detail}")]
    MalformedScaler { detail: String },

    /// A scaler whose arrays have other lengths than `feature_names`.
    #[error("arrays do not line up with feature_names")]
    ScalerMisaligned,

    /// An artifact given to `prep apply` that is neither kind prep writes.
    #[error("\"format\" is {found:?}, expected \"prep-transform\" or \"prep-scaler\"")]
    ArtifactFormat { found: String },

    /// More distinct values than a step counts.
    #[error(
        "column `{column}` has more than {limit} distinct values ({step} counts at most {limit})"
    )]
    TooManyDistinct {
        column: String,
        limit: u64,
        step: &'static str,
    },

    /// A fitted step saw only missing values in a column.
    #[error("column `{column}` has no non-missing value to fit {step} on")]
    NoValuesToFit { column: String, step: String },

    /// An imputer's statistic that does not fit its column's type.
    #[error("the imputed value {value} does not fit column `{column}`, which is {}", type_name(.dtype))]
    FillDoesNotFit {
        column: String,
        value: String,
        dtype: DataType,
    },

    /// A null in an encoded column that is not imputed, at fit time.
    #[error("null in column `{column}`, which is encoded (an encoder fits on categories, and a null is none)")]
    EncodedNull { column: String },

    /// A category the encoder did not see at fit time, with
    /// `handle_unknown = "error"`.
    #[error(
        "unknown category {value} in column `{column}` (not seen when the encoder was fitted)"
    )]
    UnknownCategory { column: String, value: String },

    /// A generated output column whose name another output column has.
    #[error("two output columns would be named `{name}`: {first} and {second}")]
    NameClash {
        name: String,
        first: String,
        second: String,
    },

    /// A fitted statistic (a mean, a variance, a data range, ...) that
    /// overflows f64.
    #[error("the {statistic} of column `{column}` overflows 64-bit floats (its values come near ±1.8e308)")]
    StatisticOverflow {
        column: String,
        statistic: &'static str,
    },

    /// An int96 timestamp outside what nanoseconds hold.
    #[error("a timestamp in column `{column}` lies outside 1677-09-21 to 2262-04-11, which int96 timestamps are read as nanoseconds within")]
    TimestampOutOfRange { column: String },

    /// A Parquet column of a type prep does not read (decimal, float16,
    /// struct, map, fixed-size list, ...).
    #[error("column `{column}` is of type {dtype}, which prep does not read")]
    UnreadableType { column: String, dtype: String },

    /// A Parquet column holding a repeated field outside a LIST or MAP
    /// group (the old layouts of some writers), which polars' reader reads
    /// wrong without an error.
    #[error("column `{column}` holds `{field}`, a repeated field outside a LIST or MAP group (an older Parquet layout), which prep does not read")]
    LegacyRepeated { column: String, field: String },

    /// A Parquet file using a logical type newer than prep's reader knows
    /// (VARIANT, GEOMETRY, ...).
    #[error("it uses a Parquet logical type prep's reader does not know ({detail})")]
    UnknownLogicalType { detail: String },

    /// A column a text shard (JSON Lines, CSV) has no way to hold; with
    /// `rejects`, a `_rejects/` shard (which holds every input column).
    #[error("column `{column}` is {dtype}, which {format} shards{} cannot hold", if *rejects { " of `_rejects/`" } else { "" })]
    UnwritableType {
        column: String,
        dtype: String,
        format: &'static str,
        rejects: bool,
    },
}

/// A column name as a TOML key: bare when it can be, quoted otherwise.
fn toml_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

fn nulls_list(by_column: &[(String, u64)]) -> String {
    if by_column.is_empty() {
        return "none".into();
    }
    by_column
        .iter()
        .map(|(c, n)| format!("{c}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

const SPLIT_FILES: &str =
    "all input files must have the same columns in the same order; move other files out of input.uri or narrow it with a glob";
const WRITTEN_BY_RUN: &str = "pass the scaler.json written by `prep run`";

impl DataError {
    /// The "what to do" line shown under the error.
    pub fn hint(&self) -> String {
        match self {
            DataError::TypeMismatch {
                column,
                value,
                expected,
                origin,
            } => {
                let wider =
                    if matches!(expected, DataType::Int64) && value.trim().parse::<f64>().is_ok() {
                        "float64"
                    } else {
                        "string"
                    };
                let key = toml_key(column);
                match origin {
                    TypeOrigin::Inferred => format!(
                        "pin the type in the pipeline: [input.schema] {key} = \"{wider}\" (or add the value to input.csv.null_values if it means missing)"
                    ),
                    TypeOrigin::Pinned => format!(
                        "fix the value upstream, or change the pipeline to [input.schema] {key} = \"{wider}\" (or add the value to input.csv.null_values if it means missing)"
                    ),
                    TypeOrigin::Scaled => format!(
                        "fix the value upstream, add it to input.csv.null_values if it means missing, or stop scaling `{column}` (scale.exclude)"
                    ),
                }
            }
            DataError::RaggedRow { .. } => "fix or remove that row; a field containing the delimiter, a quote or a newline must be quoted".into(),
            DataError::UnterminatedQuote => "check the quoting of that field; a literal quote inside a quoted field is written as two quotes (\"\")".into(),
            DataError::InvalidUtf8 { .. } | DataError::HeaderNotUtf8 { .. } => "prep reads UTF-8; convert the file first, e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`".into(),
            DataError::NoHeader => "check that the upload finished; a CSV input starts with its header line (or set input.csv.header = false and give at least one row)".into(),
            DataError::Unparsable { .. } => "check the CSV settings in [input.csv] (delimiter, quote, header)".into(),
            DataError::Undecodable { .. } => "check that the file is not truncated and that its extension (.gz, .zst) matches its content".into(),
            DataError::BadParquet { .. } => "check that the object is a complete Parquet file, or set input.format".into(),
            DataError::NoRecordBoundary { .. } => "split the input into several files, or run with fewer workers".into(),
            DataError::MissingColumn {
                named_in,
                suggestion,
                known,
                ..
            } => {
                let fix = match named_in {
                    NamedIn::Setting(s) => {
                        format!("fix {s} in the pipeline file (the data may have changed upstream)")
                    }
                    NamedIn::ScalerFeatures => {
                        "check that --input holds the kind of data the scaler was fitted on".into()
                    }
                    NamedIn::ArtifactColumns => {
                        "check that --input holds the kind of data the artifact was fitted on".into()
                    }
                };
                match suggestion {
                    Some(s) => format!("did you mean `{s}`? {fix}"),
                    None => format!("the data has: {}; {fix}", known.join(", ")),
                }
            }
            DataError::HeaderMismatch { .. } | DataError::SchemaMismatch { .. } => SPLIT_FILES.into(),
            DataError::ColumnTypeDiffers { .. } => "all input files must agree on column types; rewrite the odd file with the same types".into(),
            DataError::InspectColumnsDiffer { .. } => "inspect one schema at a time (narrow the URI with a glob)".into(),
            DataError::NotNumeric { .. } => "the scaler was fitted on a numeric column; check that this is the right input".into(),
            DataError::NonFinite { .. } => "fix the value upstream, or set [clean] non_finite = \"drop\" to drop such rows (they are counted in the run report)".into(),
            DataError::NothingLeft { rows_in: 0, .. } => "the input holds no rows, only a header (or nothing): check that the upload or the export that made it finished".into(),
            DataError::NothingLeft { dropped_nulls: 0, .. } => "rows were dropped as non-finite: set [clean] non_finite = \"fail\" to see where, or leave those columns out of scaling".into(),
            DataError::NothingLeft { .. } => "restrict [clean] drop_nulls to the columns that must be present, e.g. drop_nulls = [\"text\"], or fix input.csv.null_values".into(),
            DataError::WorkerColumnsDiffer { .. } => "pin column types with [input.schema] so every worker infers the same schema".into(),
            DataError::ScalerNotJson { .. }
            | DataError::ScalerFormat { .. }
            | DataError::MalformedScaler { .. }
            | DataError::ScalerMisaligned => WRITTEN_BY_RUN.into(),
            DataError::ScalerVersion { .. } => "refit with this prep version, or use the prep version that wrote it".into(),
            DataError::ArtifactFormat { .. } => "pass the transform.json or scaler.json written by `prep run`".into(),
            DataError::TooManyDistinct { column, step, .. } if step.starts_with("encode") => format!(
                "`{column}` looks like free text or an id, not categories: remove it from encode.columns, or raise encode.max_distinct if it really has that many"
            ),
            DataError::TooManyDistinct { column, .. } => format!(
                "impute `{column}` with strategy = \"median\" or \"mean\" instead of \"most_frequent\""
            ),
            DataError::NoValuesToFit { column, .. } => format!(
                "check the input (is `{column}` empty upstream?); impute it with strategy = \"constant\", or leave it out of the step"
            ),
            DataError::FillDoesNotFit { .. } => "pass the artifact fitted on data of this shape, or refit".into(),
            DataError::EncodedNull { column } => format!(
                "impute it ([impute] columns = [\"{column}\"], strategy = \"most_frequent\" or \"constant\") or drop those rows (add `{column}` to [clean] drop_nulls)"
            ),
            DataError::UnknownCategory { .. } => "refit on data that has this category, fix the value, or set encode.handle_unknown (\"ignore\" or \"infrequent_if_exist\" for onehot, \"use_encoded_value\" for ordinal) and refit".into(),
            DataError::NameClash { .. } => "rename one of them with output.rename, or leave one out with output.columns".into(),
            DataError::StatisticOverflow { column, .. } => format!(
                "rescale `{column}` where the data is made (e.g. divide it by a power of ten), or leave it out of that step"
            ),
            DataError::TimestampOutOfRange { column } => format!(
                "write `{column}` as a microsecond timestamp (Spark: spark.sql.parquet.outputTimestampType = TIMESTAMP_MICROS), or null the far-off dates (9999-12-31 and the like) where the file is made"
            ),
            DataError::UnreadableType { .. } => "prep reads numbers (decimals of up to 38 digits, as float64), text, booleans, dates, timestamps, times, durations, binary, and lists, structs and maps of these; convert the column where the file is made (e.g. to double) or write the file without it".into(),
            DataError::LegacyRepeated { .. } => "rewrite the file with a current writer (pyarrow, Spark 3, DuckDB), which stores lists as LIST groups, or write it without that column".into(),
            DataError::UnknownLogicalType { .. } => "write the file without those columns, or with their plain types (e.g. pyarrow's write_table of the columns cast to string or double)".into(),
            DataError::UnwritableType { column, rejects: true, .. } => format!(
                "set output.rejects = false, or make the input without `{column}`"
            ),
            DataError::UnwritableType { column, .. } => format!(
                "write Parquet shards (output.format = \"parquet\"; prep apply: --format parquet), or leave `{column}` out with output.columns"
            ),
        }
    }
}

/// "column `x` named in {named_in} does not exist", with "did you mean" when
/// a known name is close.
pub fn missing_column<'a>(
    file: &str,
    col: &str,
    named_in: NamedIn,
    known: impl Iterator<Item = &'a str>,
) -> super::PrepError {
    let known: Vec<String> = known.map(str::to_string).collect();
    let suggestion = did_you_mean(col, known.iter().map(String::as_str));
    super::PrepError::bad_data(
        DataLocation::file(file).column(col),
        DataError::MissingColumn {
            column: col.to_string(),
            named_in,
            suggestion,
            known,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(kind: DataError) -> (String, String) {
        (kind.to_string(), kind.hint())
    }

    #[test]
    fn location_names_every_part() {
        let loc = DataLocation::file("a.csv").line(Some(7)).column("price");
        assert_eq!(loc.to_string(), "a.csv, line 7, column `price`");
    }

    #[test]
    fn type_mismatch_suggests_the_wider_type_in_prep_terms() {
        let mismatch = |value: &str, expected, origin| DataError::TypeMismatch {
            column: "qty".into(),
            value: value.into(),
            expected,
            origin,
        };
        assert_eq!(
            shown(mismatch("2.5", DataType::Int64, TypeOrigin::Inferred)),
            (
                "value \"2.5\" does not fit the column's type int64 (inferred from the first rows)".into(),
                "pin the type in the pipeline: [input.schema] qty = \"float64\" (or add the value to input.csv.null_values if it means missing)".into()
            )
        );
        let (msg, hint) = shown(mismatch("n/a", DataType::Float64, TypeOrigin::Pinned));
        assert_eq!(
            msg,
            "value \"n/a\" does not fit the column's type float64 (set in [input.schema])"
        );
        assert!(hint.contains("[input.schema] qty = \"string\""), "{hint}");
        assert!(!hint.contains("CONTRACT"), "{hint}");
    }

    #[test]
    fn hints_quote_column_names_that_are_not_bare_keys() {
        let hint = DataError::TypeMismatch {
            column: " x".into(),
            value: " oops".into(),
            expected: DataType::Int64,
            origin: TypeOrigin::Inferred,
        }
        .hint();
        assert!(
            hint.contains("[input.schema] \" x\" = \"string\""),
            "{hint}"
        );
    }

    #[test]
    fn missing_column_suggests_or_lists() {
        let err = missing_column(
            "in.csv",
            "prise",
            NamedIn::Setting("scale.columns"),
            ["id", "price"].into_iter(),
        );
        assert_eq!(
            err.to_string(),
            "bad input data in in.csv, column `prise`: column `prise` named in scale.columns does not exist in the data"
        );
        assert_eq!(
            err.hint().as_deref(),
            Some("did you mean `price`? fix scale.columns in the pipeline file (the data may have changed upstream)")
        );
        let err = missing_column(
            "in.csv",
            "zzz",
            NamedIn::ScalerFeatures,
            ["id", "price"].into_iter(),
        );
        assert_eq!(
            err.hint().as_deref(),
            Some("the data has: id, price; check that --input holds the kind of data the scaler was fitted on")
        );
    }

    #[test]
    fn nothing_left_lists_nulls_by_column() {
        let kind = |nulls_by_column| DataError::NothingLeft {
            rows_in: 3,
            dropped_nulls: 3,
            nulls_by_column,
            dropped_non_finite: 0,
        };
        assert_eq!(
            kind(vec![("a".into(), 2), ("b".into(), 1)]).to_string(),
            "no rows left after cleaning: 3 rows read, 3 dropped for nulls (rows with nulls by column: a: 2, b: 1), 0 dropped as non-finite"
        );
        assert!(kind(Vec::new()).to_string().contains("by column: none)"));
        assert!(kind(Vec::new()).hint().contains("drop_nulls"));
        let empty = DataError::NothingLeft {
            rows_in: 0,
            dropped_nulls: 0,
            nulls_by_column: Vec::new(),
            dropped_non_finite: 0,
        };
        assert!(
            empty.hint().contains("no rows, only a header"),
            "{}",
            empty.hint()
        );
    }

    #[test]
    fn column_differences_read_as_sentences() {
        let d = ColumnDifference::Renamed {
            position: 3,
            here: "cost".into(),
            there: "price".into(),
        };
        assert_eq!(d.column(), "cost");
        assert_eq!(
            DataError::HeaderMismatch {
                origin: "a.csv".into(),
                difference: d
            }
            .to_string(),
            "its header does not match a.csv: column 3 is `cost` here but `price` there"
        );
        assert_eq!(
            DataError::NoRecordBoundary {
                offset: 100,
                window: 8 << 20
            }
            .to_string(),
            "found no record boundary within 8.0 MiB of byte 100 to split the file between workers"
        );
    }
}
