//! Chunked readers: CSV (split by `chunker.rs`, parsed by `csv_fast.rs`,
//! polars for what it leaves) and Parquet (a row group or a slice of rows at
//! a time), yielding DataFrames with a fixed schema.
//!
//! The schema is fixed by the first file: CSV types are inferred from its
//! first chunk (then `[input.schema]` overrides apply), Parquet types come
//! from its footer. Every later chunk and file must fit it; a value that does
//! not is bad input naming the file, line and column, with a hint to pin the
//! type in `[input.schema]`.

use std::io::Cursor;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender};
use std::sync::Arc;

use polars::prelude::*;

use crate::chunker::{check_field_counts, CsvChunk, RecordChunker};
use crate::csv_fast::FastCsv;
use crate::csv_types::{column_names, convert_trimmed, detect_trimmed, diagnose_parse_error};
use crate::error::{did_you_mean, DataLocation, PrepError, Result};
use crate::parquet_input::ParquetInput;
use crate::plan::{ColumnType, CsvPlan, InputFormat, InputPlan};
use crate::split::{align_csv, first_record_of};
use crate::store::{open_read, open_read_range, InputObject};
use crate::timings::{timed, Stage};

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

/// Parses one chunk of whole records from memory (borrowed: the chunk is
/// still needed to locate a bad value if parsing fails).
pub(crate) fn parse_csv_bytes(
    bytes: &[u8],
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
    pub(crate) fn parse_schema(&self) -> SchemaRef {
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
        // The fast parser checks every record's shape, so the reader need
        // not count fields; `check_field_counts` names a ragged line.
        let counts_left = fast_parser_enabled();
        let (rx, recycle) = spawn_chunker(
            &obj,
            &self.plan,
            self.bytes_read.clone(),
            range,
            header,
            counts_left,
        )?;
        let csv = &self.plan.csv;
        let check_counts = |chunk: &CsvChunk, expected: usize| -> Result<()> {
            if counts_left {
                check_field_counts(chunk, expected, &obj.uri, csv.delimiter, csv.quote)?;
            }
            Ok(())
        };
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
        // The schema polars parses with, fixed once the first chunk is seen,
        // and the fast parser for it (None: polars parses every chunk).
        let mut parse_schema: Option<SchemaRef> = None;
        let mut fast: Option<Option<FastCsv>> = None;
        for msg in rx {
            self.check_cancel()?;
            let chunk = match msg {
                Msg::Chunk(c) => c,
                Msg::Failed(e) => return Err(e),
                Msg::Header(_) => unreachable!("header comes first"),
            };
            if self.schema.is_none() {
                check_counts(&chunk, names.len())?;
                self.schema = Some(self.infer_schema(&chunk, &names, &obj)?);
            }
            let fixed = self.schema.as_ref().expect("schema set above");
            let parse_schema = parse_schema.get_or_insert_with(|| fixed.parse_schema());
            let fast = fast.get_or_insert_with(|| {
                fast_parser_enabled()
                    .then(|| FastCsv::new(parse_schema, &self.plan.csv))
                    .flatten()
            });
            let rows = chunk.rows() as u64;
            let parsed = timed(Stage::Parse, || -> Result<PolarsResult<DataFrame>> {
                if let Some(df) = fast.as_ref().and_then(|f| f.parse(&chunk)) {
                    return Ok(Ok(df));
                }
                check_counts(&chunk, names.len())?;
                Ok(parse_csv_bytes(
                    &chunk.bytes,
                    Some(parse_schema.clone()),
                    &self.plan.csv,
                ))
            })?;
            let df = match parsed {
                Ok(df) => convert_trimmed(df, fixed, &chunk.record_lines, &obj.uri)?,
                Err(e) => {
                    return Err(diagnose_parse_error(
                        e,
                        &chunk,
                        parse_schema,
                        &self.plan.csv,
                        &obj.uri,
                    ))
                }
            };
            let CsvChunk {
                bytes,
                record_lines: lines,
                ..
            } = chunk;
            // The reader thread stops first on error, so a failed send is fine.
            let _ = recycle.send(bytes);
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
        let inferred = parse_csv_bytes(&chunk.bytes, None, &self.plan.csv).map_err(|e| {
            let named: Schema = names
                .iter()
                .map(|n| Field::new(PlSmallStr::from(n.as_str()), DataType::String))
                .collect();
            diagnose_parse_error(e, chunk, &named, &self.plan.csv, &obj.uri)
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
        let (start, stop) = match part {
            Part::RowGroups(r) => input.row_range(r.clone()),
            _ => (0, num_rows),
        };
        // Whole row groups up to 4 chunks long are decoded at once (each
        // page once), then handed on a chunk at a time.
        for (offset, len) in input.read_ranges(start, stop, 4 * chunk_rows) {
            self.check_cancel()?;
            let df = timed(Stage::Read, || input.read(offset, len))?;
            self.bytes_read.fetch_add(
                (obj.size as f64 * len as f64 / num_rows.max(1) as f64) as u64,
                Ordering::Relaxed,
            );
            for at in (0..len).step_by(chunk_rows) {
                f(
                    SourceChunk {
                        df: df.slice(at as i64, chunk_rows.min(len - at)),
                        file_index: idx,
                        lines: Vec::new(),
                        first_row: (offset + at) as u64 + 1,
                    },
                    self,
                )?;
            }
        }
        Ok(())
    }
}

/// `PREP_CSV_PARSER=polars` parses every chunk with polars (to compare the
/// two paths, or to rule the fast one out when chasing a problem).
fn fast_parser_enabled() -> bool {
    std::env::var("PREP_CSV_PARSER").map_or(true, |v| v != "polars")
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
    leave_field_counts: bool,
) -> Result<(Receiver<Msg>, Sender<Vec<u8>>)> {
    let reader = match &range {
        Some(r) => open_read_range(obj, r.clone(), counter)?,
        None => open_read(obj, counter)?,
    };
    let (tx, rx) = sync_channel(2);
    let (recycle_tx, recycle_rx) = channel::<Vec<u8>>();
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
            if leave_field_counts {
                chunker.leave_field_counts();
            }
            if tx.send(Msg::Header(header)).is_err() {
                return;
            }
            loop {
                while let Ok(buf) = recycle_rx.try_recv() {
                    chunker.recycle(buf);
                }
                match timed(Stage::Read, || chunker.next_chunk(chunk_rows)) {
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
    Ok((rx, recycle_tx))
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
