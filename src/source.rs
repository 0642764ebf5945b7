//! Chunked readers: CSV (through `chunker.rs`, parsed by polars) and Parquet
//! (one slice of rows at a time), yielding DataFrames with a fixed schema.
//!
//! The schema is fixed by the first file: CSV types are inferred from its
//! first chunk (then `[input.schema]` overrides apply), Parquet types come
//! from its footer. Every later chunk and file must fit it; a value that does
//! not is bad input naming the file, line and column, with a hint to pin the
//! type in `[input.schema]`.

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use polars::prelude::*;

use crate::chunker::{records_of, CsvChunk, RecordChunker};
use crate::error::{did_you_mean, DataLocation, PrepError, Result};
use crate::parquet_input::ParquetInput;
use crate::plan::{ColumnType, CsvPlan, InputFormat, InputPlan};
use crate::store::{open_read, open_read_range, read_range, InputObject};

/// Which part of an object a reader covers. Scale-out splits a large object
/// between workers: Parquet by row groups, uncompressed CSV by byte ranges
/// whose ends are moved to record boundaries (see [`align_csv`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Whole,
    RowGroups(std::ops::Range<usize>),
    Bytes(std::ops::Range<u64>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub file: usize,
    pub part: Part,
}

/// One chunk of input rows and where they came from.
pub struct SourceChunk {
    pub df: DataFrame,
    pub file_index: usize,
    /// CSV: the line each row starts on; Parquet: empty.
    pub lines: Vec<u64>,
    /// 1-based data-row number (within its file) of the first row.
    pub first_row: u64,
}

impl SourceChunk {
    /// Where row `i` of this chunk is, for error messages.
    pub fn locate(&self, files: &[InputObject], i: usize, column: Option<&str>) -> DataLocation {
        DataLocation {
            file: files[self.file_index].uri.clone(),
            line: self.lines.get(i).copied(),
            row: if self.lines.is_empty() {
                Some(self.first_row + i as u64)
            } else {
                None
            },
            column: column.map(str::to_string),
        }
    }
}

/// Column names from a CSV header, made unique the way pandas does it, so
/// names match what a pandas/scikit-learn user sees: an empty name becomes
/// `Unnamed: <index>`, a repeated one gets `.1`, `.2`, … Without a header:
/// `column_1`, `column_2`, …
pub fn column_names(header: Vec<String>, has_header: bool) -> Vec<String> {
    if !has_header {
        return (1..=header.len()).map(|i| format!("column_{i}")).collect();
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(header.len());
    for (i, name) in header.into_iter().enumerate() {
        let base = if name.is_empty() {
            format!("Unnamed: {i}")
        } else {
            name
        };
        let mut candidate = base.clone();
        let mut k = 1;
        while !seen.insert(candidate.clone()) {
            candidate = format!("{base}.{k}");
            k += 1;
        }
        out.push(candidate);
    }
    out
}

/// Format of one object: the configured one, else from its extension.
pub fn format_of(obj: &InputObject, configured: Option<InputFormat>) -> Result<InputFormat> {
    if let Some(f) = configured {
        return Ok(f);
    }
    let k = obj.key.to_ascii_lowercase();
    let k = k
        .trim_end_matches(".gz")
        .trim_end_matches(".zst")
        .trim_end_matches(".zstd");
    if k.ends_with(".csv") || k.ends_with(".tsv") || k.ends_with(".txt") {
        Ok(InputFormat::Csv)
    } else if k.ends_with(".parquet") || k.ends_with(".pq") {
        Ok(InputFormat::Parquet)
    } else {
        Err(PrepError::Usage {
            message: format!("cannot tell the format of {} from its extension", obj.uri),
            hint: Some("set input.format = \"csv\" or \"parquet\", or narrow input.uri with a glob such as data/*.csv".into()),
        })
    }
}

pub fn dtype_for(t: ColumnType) -> DataType {
    match t {
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::String => DataType::String,
        ColumnType::Bool => DataType::Boolean,
    }
}

fn parse_csv_bytes(
    bytes: Vec<u8>,
    schema: Option<SchemaRef>,
    csv: &CsvPlan,
) -> PolarsResult<DataFrame> {
    let nulls: Vec<PlSmallStr> = csv
        .null_values
        .iter()
        .map(|s| PlSmallStr::from(s.as_str()))
        .collect();
    let delimiter = csv.delimiter;
    let quote = csv.quote;
    CsvReadOptions::default()
        .with_has_header(false)
        .with_infer_schema_length(None)
        .with_schema(schema)
        .map_parse_options(|o| {
            o.with_separator(delimiter)
                .with_quote_char(quote)
                .with_null_values(Some(NullValues::AllColumns(nulls.clone())))
        })
        .into_reader_with_file_handle(Cursor::new(bytes))
        .finish()
}

/// The shared, fixed schema and the file that set it.
#[derive(Clone)]
pub struct FixedSchema {
    /// The column types every chunk ends up with.
    pub schema: SchemaRef,
    pub origin: String,
    /// Numeric columns whose values carry surrounding spaces (`a, 2, 3`):
    /// polars reads them as strings, prep trims and converts them, as
    /// pandas does. Empty for most inputs.
    pub trimmed: Vec<(String, DataType)>,
}

impl FixedSchema {
    pub fn new(schema: SchemaRef, origin: String) -> Self {
        FixedSchema {
            schema,
            origin,
            trimmed: Vec::new(),
        }
    }

    /// The schema polars parses CSV with (trimmed columns as strings).
    fn parse_schema(&self) -> SchemaRef {
        if self.trimmed.is_empty() {
            return self.schema.clone();
        }
        let mut s = self.schema.as_ref().clone();
        for (name, _) in &self.trimmed {
            s.with_column(PlSmallStr::from(name.as_str()), DataType::String);
        }
        Arc::new(s)
    }
}

/// The number a field holds once surrounding spaces are trimmed, if any.
fn trimmed_number(v: &str, dtype: &DataType) -> Option<AnyValue<'static>> {
    let t = v.trim();
    match dtype {
        DataType::Int64 => t.parse::<i64>().ok().map(AnyValue::Int64),
        _ => t
            .parse::<f64>()
            .ok()
            .or_else(|| is_polars_float(t).then(|| parse_special_float(t)))
            .map(AnyValue::Float64),
    }
}

fn parse_special_float(t: &str) -> f64 {
    match t.to_ascii_lowercase().trim_start_matches('+') {
        "nan" => f64::NAN,
        s if s.starts_with('-') => f64::NEG_INFINITY,
        _ => f64::INFINITY,
    }
}

/// For string columns of the first chunk: the numeric type every non-null
/// value has once trimmed, when at least one value needed trimming.
fn detect_trimmed(df: &DataFrame, names: &[String]) -> Vec<(String, DataType)> {
    let mut out = Vec::new();
    for (name, col) in names.iter().zip(df.columns()) {
        let Ok(ca) = col.as_materialized_series().str() else {
            continue;
        };
        let values: Vec<&str> = ca.iter().flatten().collect();
        if values.is_empty() || !values.iter().any(|v| v.trim().len() != v.len()) {
            continue;
        }
        if values.iter().all(|v| v.trim().parse::<i64>().is_ok()) {
            out.push((name.clone(), DataType::Int64));
        } else if values
            .iter()
            .all(|v| trimmed_number(v, &DataType::Float64).is_some())
        {
            out.push((name.clone(), DataType::Float64));
        }
    }
    out
}

/// Converts the trimmed columns of a parsed chunk to their numeric types.
fn convert_trimmed(
    mut df: DataFrame,
    fixed: &FixedSchema,
    lines: &[u64],
    uri: &str,
) -> Result<DataFrame> {
    for (name, dtype) in &fixed.trimmed {
        let col = df
            .column(name)
            .map_err(|e| PrepError::polars(format!("reading column `{name}`"), e))?;
        let ca = col
            .as_materialized_series()
            .str()
            .map_err(|e| PrepError::polars(format!("reading column `{name}`"), e))?
            .clone();
        let mut values: Vec<AnyValue> = Vec::with_capacity(ca.len());
        for (i, v) in ca.iter().enumerate() {
            match v {
                None => values.push(AnyValue::Null),
                Some(v) => match trimmed_number(v, dtype) {
                    Some(n) => values.push(n),
                    None => {
                        return Err(PrepError::bad_data(
                            DataLocation {
                                file: uri.to_string(),
                                line: lines.get(i).copied(),
                                column: Some(name.clone()),
                                ..Default::default()
                            },
                            format!("value {v:?} does not fit the column's type {dtype} (inferred from the first rows)"),
                            Some(format!("pin the type in the pipeline: [input.schema] {name} = \"string\" (or \"float64\")")),
                        ))
                    }
                },
            }
        }
        let series = Series::from_any_values_and_dtype(
            PlSmallStr::from(name.as_str()),
            &values,
            dtype,
            true,
        )
        .map_err(|e| PrepError::polars(format!("converting column `{name}`"), e))?;
        df.with_column(series.into_column())
            .map_err(|e| PrepError::polars(format!("replacing column `{name}`"), e))?;
    }
    Ok(df)
}

/// Reads every input object in order, one chunk at a time.
pub struct Source {
    pub files: Vec<InputObject>,
    pieces: Vec<Piece>,
    plan: InputPlan,
    pub schema: Option<FixedSchema>,
    pub bytes_read: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
}

impl Source {
    pub fn new(files: Vec<InputObject>, plan: &InputPlan, cancel: Arc<AtomicBool>) -> Self {
        let pieces = (0..files.len())
            .map(|file| Piece {
                file,
                part: Part::Whole,
            })
            .collect();
        Source {
            files,
            pieces,
            plan: plan.clone(),
            schema: None,
            bytes_read: Arc::new(AtomicU64::new(0)),
            cancel,
        }
    }

    /// Reads only these pieces (indexes into `files`), in order.
    pub fn with_pieces(mut self, pieces: Vec<Piece>) -> Self {
        self.pieces = pieces;
        self
    }

    /// Fixes the schema up front (scale-out: every worker uses the schema of
    /// the first object of the whole input, as a single run would).
    pub fn with_schema(mut self, schema: Option<FixedSchema>) -> Self {
        if schema.is_some() {
            self.schema = schema;
        }
        self
    }

    /// The schema a run over `obj` (first) would fix: a CSV's header plus the
    /// types inferred from its first chunk, or a Parquet footer's.
    pub fn schema_of_first(obj: &InputObject, plan: &InputPlan) -> Result<Option<FixedSchema>> {
        match format_of(obj, plan.format)? {
            InputFormat::Parquet => {
                let input = ParquetInput::open(obj)?;
                Ok(Some(FixedSchema::new(
                    Arc::new(input.schema.clone()),
                    obj.uri.clone(),
                )))
            }
            InputFormat::Csv => {
                let reader = open_read(obj, Arc::new(AtomicU64::new(0)))?;
                let mut chunker =
                    RecordChunker::new(reader, obj.uri.clone(), plan.csv.delimiter, plan.csv.quote);
                let Some(header) = chunker.first_record(plan.csv.has_header)? else {
                    return Ok(None);
                };
                let names = column_names(header, plan.csv.has_header);
                let Some(chunk) = chunker.next_chunk(plan.chunk_rows.get())? else {
                    return Ok(None);
                };
                let source = Source::new(vec![obj.clone()], plan, Arc::new(AtomicBool::new(false)));
                source.infer_schema(&chunk, &names, obj).map(Some)
            }
        }
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Calls `f` on every chunk of every file, in order.
    pub fn for_each_chunk(
        &mut self,
        f: &mut dyn FnMut(SourceChunk, &Source) -> Result<()>,
    ) -> Result<()> {
        for piece in self.pieces.clone() {
            let idx = piece.file;
            match format_of(&self.files[idx], self.plan.format)? {
                InputFormat::Csv => self.read_csv(idx, &piece.part, f)?,
                InputFormat::Parquet => self.read_parquet(idx, &piece.part, f)?,
            }
        }
        Ok(())
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(PrepError::Interrupted {
                signal: "a termination signal".into(),
            });
        }
        Ok(())
    }

    fn read_csv(
        &mut self,
        idx: usize,
        part: &Part,
        f: &mut dyn FnMut(SourceChunk, &Source) -> Result<()>,
    ) -> Result<()> {
        let mut obj = self.files[idx].clone();
        let (range, header) = match part {
            Part::Bytes(r) => {
                let header = first_record_of(&obj, &self.plan)?;
                let start = align_csv(&obj, r.start, &self.plan, header.len())?;
                let end = align_csv(&obj, r.end, &self.plan, header.len())?;
                if start >= end {
                    return Ok(());
                }
                (Some(start..end), (start > 0).then_some(header))
            }
            _ => (None, None),
        };
        let mid_object = header.is_some();
        if let (true, Some(r)) = (mid_object, &range) {
            obj.uri = format!("{} (from byte {})", obj.uri, r.start);
        }
        let rx = spawn_chunker(&obj, &self.plan, self.bytes_read.clone(), range, header)?;
        let header = match rx.recv() {
            Ok(Msg::Header(h)) => h,
            Ok(Msg::Failed(e)) => return Err(e),
            _ => return Ok(()),
        };
        let Some(header) = header else { return Ok(()) };
        let names = column_names(header, self.plan.csv.has_header);
        if let Some(fixed) = &self.schema {
            check_same_columns(fixed, &names, &obj.uri)?;
        }
        let mut first_row = 1u64;
        let _ = mid_object;
        for msg in rx {
            self.check_cancel()?;
            let chunk = match msg {
                Msg::Chunk(c) => c,
                Msg::Failed(e) => return Err(e),
                Msg::Header(_) => unreachable!("header comes first"),
            };
            if self.schema.is_none() {
                self.schema = Some(self.infer_schema(&chunk, &names, &obj)?);
            }
            let fixed = self.schema.as_ref().expect("schema set above");
            let lines = chunk.record_lines.clone();
            let rows = chunk.rows() as u64;
            let df = match parse_csv_bytes(
                chunk.bytes.clone(),
                Some(fixed.parse_schema()),
                &self.plan.csv,
            ) {
                Ok(df) => convert_trimmed(df, fixed, &lines, &obj.uri)?,
                Err(e) => {
                    return Err(diagnose_parse_error(
                        e,
                        &chunk,
                        &fixed.parse_schema(),
                        &self.plan.csv,
                        &obj.uri,
                    ))
                }
            };
            if df.height() as u64 != rows {
                return Err(PrepError::bad_data(
                    DataLocation {
                        file: obj.uri.clone(),
                        line: lines.first().copied(),
                        ..Default::default()
                    },
                    format!(
                        "the parser found {} rows where {} records were expected",
                        df.height(),
                        rows
                    ),
                    Some("check the quoting in this part of the file".into()),
                ));
            }
            f(
                SourceChunk {
                    df,
                    file_index: idx,
                    lines,
                    first_row,
                },
                self,
            )?;
            first_row += rows;
        }
        Ok(())
    }

    /// Infers types from the first chunk, applies `[input.schema]`, and fixes the schema.
    fn infer_schema(
        &self,
        chunk: &CsvChunk,
        names: &[String],
        obj: &InputObject,
    ) -> Result<FixedSchema> {
        let inferred = parse_csv_bytes(chunk.bytes.clone(), None, &self.plan.csv).map_err(|e| {
            diagnose_parse_error(e, chunk, &Schema::default(), &self.plan.csv, &obj.uri)
        })?;
        let mut schema = Schema::with_capacity(names.len());
        for (name, col) in names.iter().zip(inferred.columns()) {
            let dtype = match col.dtype() {
                DataType::Null => DataType::String,
                DataType::Int32 | DataType::UInt32 | DataType::UInt64 => DataType::Int64,
                DataType::Float32 => DataType::Float64,
                d => d.clone(),
            };
            schema.with_column(PlSmallStr::from(name.as_str()), dtype);
        }
        let mut trimmed = detect_trimmed(&inferred, names);
        for (col, ty) in &self.plan.schema_overrides {
            trimmed.retain(|(c, _)| c != col);
            if schema.get(col.as_str()).is_none() {
                return Err(missing_column(
                    &obj.uri,
                    col,
                    "[input.schema]",
                    schema.iter_names().map(|s| s.as_str()),
                ));
            }
            schema.with_column(PlSmallStr::from(col.as_str()), dtype_for(*ty));
        }
        for (col, dtype) in &trimmed {
            schema.with_column(PlSmallStr::from(col.as_str()), dtype.clone());
        }
        Ok(FixedSchema {
            schema: Arc::new(schema),
            origin: obj.uri.clone(),
            trimmed,
        })
    }

    fn read_parquet(
        &mut self,
        idx: usize,
        part: &Part,
        f: &mut dyn FnMut(SourceChunk, &Source) -> Result<()>,
    ) -> Result<()> {
        let obj = self.files[idx].clone();
        let input = ParquetInput::open(&obj)?;
        let num_rows = input.num_rows;
        let file_schema = input.schema.clone();
        match &self.schema {
            Some(fixed) => check_same_schema(fixed, &file_schema, &obj.uri)?,
            None => {
                self.schema = Some(FixedSchema::new(
                    Arc::new(file_schema.clone()),
                    obj.uri.clone(),
                ))
            }
        }
        let chunk_rows = self.plan.chunk_rows.get();
        let (mut offset, stop) = match part {
            Part::RowGroups(r) => input.row_range(r.clone()),
            _ => (0, num_rows),
        };
        while offset < stop {
            self.check_cancel()?;
            let len = chunk_rows.min(stop - offset);
            let df = input.read(offset, len)?;
            self.bytes_read.fetch_add(
                (obj.size as f64 * len as f64 / num_rows.max(1) as f64) as u64,
                Ordering::Relaxed,
            );
            f(
                SourceChunk {
                    df,
                    file_index: idx,
                    lines: Vec::new(),
                    first_row: offset as u64 + 1,
                },
                self,
            )?;
            offset += len;
        }
        Ok(())
    }
}

enum Msg {
    Header(Option<Vec<String>>),
    Chunk(CsvChunk),
    Failed(PrepError),
}

/// Reads, decompresses and splits a CSV object on a background thread, so
/// I/O and record scanning overlap with parsing. The channel holds at most
/// two chunks, which bounds memory.
fn spawn_chunker(
    obj: &InputObject,
    plan: &InputPlan,
    counter: Arc<AtomicU64>,
    range: Option<std::ops::Range<u64>>,
    known_header: Option<Vec<String>>,
) -> Result<Receiver<Msg>> {
    let reader = match &range {
        Some(r) => open_read_range(obj, r.clone(), counter)?,
        None => open_read(obj, counter)?,
    };
    let (tx, rx) = sync_channel(2);
    let uri = obj.uri.clone();
    let csv = plan.csv.clone();
    let chunk_rows = plan.chunk_rows.get();
    std::thread::Builder::new()
        .name("prep-csv-reader".into())
        .spawn(move || {
            let mut chunker = RecordChunker::new(reader, uri, csv.delimiter, csv.quote);
            let header = match known_header {
                // A piece from the middle of an object: the header was read
                // from the object's start; this stream holds records only.
                Some(h) => {
                    chunker.set_expected_fields(h.len());
                    Ok(Some(h))
                }
                None => chunker.first_record(csv.has_header),
            };
            let header = match header {
                Ok(h) => h,
                Err(e) => {
                    let _ = tx.send(Msg::Failed(e));
                    return;
                }
            };
            if tx.send(Msg::Header(header)).is_err() {
                return;
            }
            loop {
                match chunker.next_chunk(chunk_rows) {
                    Ok(Some(c)) => {
                        if tx.send(Msg::Chunk(c)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Msg::Failed(e));
                        return;
                    }
                }
            }
        })
        .map_err(|e| PrepError::io("starting the CSV reader thread", e))?;
    Ok(rx)
}

/// The first record of an object (its header).
pub fn first_record_of(obj: &InputObject, plan: &InputPlan) -> Result<Vec<String>> {
    let reader = open_read(obj, Arc::new(AtomicU64::new(0)))?;
    let mut chunker =
        RecordChunker::new(reader, obj.uri.clone(), plan.csv.delimiter, plan.csv.quote);
    Ok(chunker.first_record(false)?.unwrap_or_default())
}

/// How many consecutive well-formed records confirm a record boundary.
const ALIGN_CONFIRM: usize = 16;
/// How far past a nominal split point a record boundary is searched.
const ALIGN_WINDOW: u64 = 8 << 20;

/// Moves a nominal byte offset to the start of the next record. Without the
/// state from the start of the file a newline may sit inside a quoted field,
/// so a candidate is accepted only when the records that follow it all have
/// the header's field count (ALIGN_CONFIRM of them, or all up to the end of
/// the object). Every worker computes the same boundary for the same offset,
/// so adjacent pieces meet exactly.
pub fn align_csv(obj: &InputObject, nominal: u64, plan: &InputPlan, fields: usize) -> Result<u64> {
    if nominal == 0 || nominal >= obj.size {
        return Ok(nominal.min(obj.size));
    }
    // The window starts one byte early so that a record starting exactly at
    // `nominal` (preceded by a newline) is found too.
    let base = nominal - 1;
    let end = (nominal + ALIGN_WINDOW).min(obj.size);
    let window = read_range(obj, base..end)?;
    let at_eof = end == obj.size;
    let mut pos = 0usize;
    while let Some(i) = memchr::memchr(b'\n', &window[pos..]) {
        let start = pos + i + 1;
        pos = start;
        if start == window.len() {
            if at_eof {
                return Ok(obj.size);
            }
            break;
        }
        let mut c = RecordChunker::new(&window[start..], "", plan.csv.delimiter, plan.csv.quote);
        c.set_expected_fields(fields);
        match c.next_chunk(ALIGN_CONFIRM) {
            Ok(Some(chunk)) if chunk.rows() == ALIGN_CONFIRM || at_eof => {
                return Ok(base + start as u64);
            }
            _ => continue,
        }
    }
    Err(PrepError::bad_data(
        DataLocation {
            file: obj.uri.clone(),
            ..Default::default()
        },
        format!("found no record boundary within {} of byte {nominal} to split the file between workers", bytesize::ByteSize(ALIGN_WINDOW)),
        Some("split the input into several files, or run with fewer workers".into()),
    ))
}

/// What to do about a column the data lacks, by where it was named.
fn fix_hint(setting: &str) -> String {
    if setting.starts_with("the scaler") {
        "check that --input holds the kind of data the scaler was fitted on".to_string()
    } else {
        format!("fix {setting} in the pipeline file (the data may have changed upstream)")
    }
}

pub fn missing_column<'a>(
    file: &str,
    col: &str,
    setting: &str,
    known: impl Iterator<Item = &'a str>,
) -> PrepError {
    let known: Vec<&str> = known.collect();
    let hint = match did_you_mean(col, known.iter().copied()) {
        Some(s) => format!("did you mean `{s}`? {}", fix_hint(setting)),
        None => format!("the data has: {}; {}", known.join(", "), fix_hint(setting)),
    };
    PrepError::bad_data(
        DataLocation {
            file: file.to_string(),
            column: Some(col.to_string()),
            ..Default::default()
        },
        format!("column `{col}` named in {setting} does not exist in the data"),
        Some(hint),
    )
}

fn check_same_columns(fixed: &FixedSchema, names: &[String], uri: &str) -> Result<()> {
    let expected: Vec<&str> = fixed.schema.iter_names().map(|s| s.as_str()).collect();
    if expected == names.iter().map(String::as_str).collect::<Vec<_>>() {
        return Ok(());
    }
    let (col, detail) = first_difference(&expected, names);
    Err(PrepError::bad_data(
        DataLocation {
            file: uri.to_string(),
            line: Some(1),
            column: Some(col),
            ..Default::default()
        },
        format!("its header does not match {}: {detail}", fixed.origin),
        Some("all input files must have the same columns in the same order; move other files out of input.uri or narrow it with a glob".into()),
    ))
}

fn first_difference(expected: &[&str], got: &[String]) -> (String, String) {
    for i in 0..expected.len().max(got.len()) {
        match (expected.get(i), got.get(i)) {
            (Some(e), Some(g)) if *e == g.as_str() => continue,
            (Some(e), Some(g)) => {
                return (
                    g.clone(),
                    format!("column {} is `{g}` here but `{e}` there", i + 1),
                )
            }
            (Some(e), None) => return (e.to_string(), format!("column `{e}` is missing here")),
            (None, Some(g)) => return (g.clone(), format!("column `{g}` is extra here")),
            (None, None) => break,
        }
    }
    (String::new(), "columns differ".into())
}

fn check_same_schema(fixed: &FixedSchema, schema: &Schema, uri: &str) -> Result<()> {
    let names: Vec<String> = schema.iter_names().map(|s| s.to_string()).collect();
    let expected: Vec<&str> = fixed.schema.iter_names().map(|s| s.as_str()).collect();
    if expected != names.iter().map(String::as_str).collect::<Vec<_>>() {
        let (col, detail) = first_difference(&expected, &names);
        return Err(PrepError::bad_data(
            DataLocation {
                file: uri.to_string(),
                column: Some(col),
                ..Default::default()
            },
            format!("its schema does not match {}: {detail}", fixed.origin),
            Some("all input files must have the same columns in the same order".into()),
        ));
    }
    for ((name, a), b) in fixed.schema.iter().zip(schema.iter_values()) {
        if a != b {
            return Err(PrepError::bad_data(
                DataLocation {
                    file: uri.to_string(),
                    column: Some(name.to_string()),
                    ..Default::default()
                },
                format!("column `{name}` is {b} here but {a} in {}", fixed.origin),
                Some("all input files must agree on column types; rewrite the odd file with the same types".into()),
            ));
        }
    }
    Ok(())
}

/// Turns a polars parse failure into "file, line, column: value does not fit
/// type" by re-checking the chunk's records (only on the error path).
fn diagnose_parse_error(
    e: PolarsError,
    chunk: &CsvChunk,
    schema: &Schema,
    csv: &CsvPlan,
    uri: &str,
) -> PrepError {
    let nulls: std::collections::HashSet<&str> =
        csv.null_values.iter().map(String::as_str).collect();
    for (line, fields) in records_of(chunk, csv.delimiter, csv.quote) {
        for ((name, dtype), value) in schema.iter().zip(fields.iter()) {
            if nulls.contains(value.as_str()) {
                continue;
            }
            let v = value.trim();
            let fits = match dtype {
                DataType::Int64 => v.parse::<i64>().is_ok(),
                DataType::Float64 => v.parse::<f64>().is_ok() || is_polars_float(v),
                DataType::Boolean => {
                    v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
                }
                _ => true,
            };
            if !fits {
                let ty = match dtype {
                    DataType::Int64 => "int64",
                    DataType::Float64 => "float64",
                    DataType::Boolean => "bool",
                    _ => "its type",
                };
                let wider = if matches!(dtype, DataType::Int64) && v.parse::<f64>().is_ok() {
                    "float64"
                } else {
                    "string"
                };
                return PrepError::bad_data(
                    DataLocation {
                        file: uri.to_string(),
                        line: Some(line),
                        column: Some(name.to_string()),
                        ..Default::default()
                    },
                    format!("value {value:?} does not fit the column's type {ty} (inferred from the first rows)"),
                    Some(format!(
                        "pin the type in the pipeline: [input.schema] {name} = \"{wider}\" (or add the value to input.csv.null_values if it means missing)"
                    )),
                );
            }
        }
    }
    PrepError::bad_data(
        DataLocation {
            file: uri.to_string(),
            line: chunk.record_lines.first().copied(),
            ..Default::default()
        },
        format!("cannot parse the rows starting here: {e}"),
        Some("check the CSV settings in [input.csv] (delimiter, quote, header)".into()),
    )
}

fn is_polars_float(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "inf" | "+inf" | "-inf" | "nan" | "infinity" | "-infinity"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_made_unique_like_pandas() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            column_names(h(&["", "a", "a", "b", "a"]), true),
            h(&["Unnamed: 0", "a", "a.1", "b", "a.2"])
        );
        assert_eq!(
            column_names(h(&["x", "y"]), false),
            h(&["column_1", "column_2"])
        );
    }

    /// Every nominal split offset must land on a true record start, even
    /// when quoted fields contain newlines and text that looks like records.
    #[test]
    fn aligned_splits_land_on_record_starts() {
        let mut data = String::from("id,text,x\n");
        let mut starts = Vec::new();
        for i in 0..400 {
            starts.push(data.len() as u64);
            let text = match i % 4 {
                0 => "plain".to_string(),
                1 => format!("\"tricky\n{},looks,like\n{},a row\"", i + 1, i + 2),
                2 => "\"has \"\"quotes\"\", and, commas\"".to_string(),
                _ => "\"\n\n\"".to_string(),
            };
            data.push_str(&format!("{i},{text},{i}.5\n"));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, &data).unwrap();
        let obj = InputObject::local(path, "t.csv".into(), data.len() as u64);
        let plan = InputPlan::defaults("t.csv");
        for nominal in (1..data.len() as u64).step_by(37) {
            let got = align_csv(&obj, nominal, &plan, 3).unwrap();
            assert!(got >= nominal);
            assert!(
                got == data.len() as u64 || starts.contains(&got),
                "offset {nominal} aligned to {got}, not a record start"
            );
            let next = starts
                .iter()
                .copied()
                .find(|s| *s >= nominal)
                .unwrap_or(data.len() as u64);
            assert_eq!(got, next, "the first record start at or after {nominal}");
        }
    }
}
