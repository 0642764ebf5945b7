//! Chunked readers: CSV (split by `chunker.rs`, parsed by `csv_fast.rs`,
//! `csv_reference.rs` for what it leaves) and Parquet (a row group or a slice of rows at
//! a time), yielding DataFrames with a fixed schema.
//!
//! The schema is fixed by the first file: CSV types are inferred from its
//! first chunk (`csv_types.rs`: `[input.schema]` pins, scaled columns are
//! float64, a column without values there is typed by reading ahead),
//! Parquet types come from its footer. Every later chunk and file must fit it; a value that does
//! not is bad input naming the file, line and column, with a hint to pin the
//! type in `[input.schema]`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use polars::prelude::*;

use crate::chunk::{FixedSchema, SourceChunk};
use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::in_turn::{in_turn, threads_for};
use crate::pipeline::plan::{ColumnType, InputFormat, InputPlan};
use crate::read::chunker::{check_field_counts, open_chunker, CsvChunk, SparePool};
use crate::read::csv_fast::FastCsv;
use crate::read::csv_reader::{fast_parser_enabled, spawn_chunker, Chunks, Msg};
use crate::read::csv_reference::parse_reference;
use crate::read::csv_types::{column_names, fix_schema, likely_delimiter};
use crate::read::parquet_input::ParquetInput;
use crate::read::schema_check::{check_same_columns, check_same_schema};
use crate::read::split::{align_csv, first_record_of};
use crate::storage::{Compression, InputObject};
use crate::timings::{timed, Stage};

/// Parquet decoder threads at most (see `Source::read_parquet`).
const PARQUET_DECODERS: usize = 4;

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

/// Starts fetching the objects of `next` (whole ones; CSV: their first
/// bytes, Parquet: their footers) before they are read. A run calls it for
/// its first pieces as soon as it knows them, so their round trips overlap
/// claiming the output; [`Source`] calls it for the objects after the one
/// it reads.
pub fn prefetch_pieces(files: &[InputObject], plan: &InputPlan, next: &[Piece]) {
    let ahead: Vec<(&InputObject, std::ops::Range<u64>)> = next
        .iter()
        .take(crate::storage::read_ahead::AHEAD_REQUESTS_PER_SLOT * crate::env::s3_concurrency())
        .filter(|p| p.part == Part::Whole)
        .map(|p| &files[p.file])
        .filter_map(|o| match format_of(o, plan.format) {
            Ok(InputFormat::Csv) => Some((o, 0..o.size)),
            Ok(InputFormat::Parquet) => Some((o, ParquetInput::footer_guess(o.size))),
            Err(_) => None,
        })
        .collect();
    crate::storage::prefetch(&ahead);
}

/// Format of one object: the configured one, else from its extension.
pub fn format_of(obj: &InputObject, configured: Option<InputFormat>) -> Result<InputFormat> {
    format_of_name(&obj.key, configured).ok_or_else(|| PrepError::Usage {
        message: format!("cannot tell the format of {} from its extension", obj.uri),
        hint: Some("set input.format = \"csv\" or \"parquet\", or narrow input.uri with a glob such as data/*.csv".into()),
    })
}

/// Format of an object named `name`: the configured one, else from its
/// extension (`None` when it tells none).
pub fn format_of_name(name: &str, configured: Option<InputFormat>) -> Option<InputFormat> {
    if configured.is_some() {
        return configured;
    }
    let k = Compression::strip(name);
    if k.ends_with(".csv") || k.ends_with(".tsv") || k.ends_with(".txt") {
        Some(InputFormat::Csv)
    } else if k.ends_with(".parquet") || k.ends_with(".pq") {
        Some(InputFormat::Parquet)
    } else {
        None
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

/// The columns a pass needs of Parquet input (CSV is parsed whole):
/// `values` decoded, `nulls_only` read for their nulls alone (a Boolean
/// stand-in, null where the column is: `read/parquet_validity.rs`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Projection {
    pub values: Vec<String>,
    pub nulls_only: Vec<String>,
}

/// Decides a pass's [`Projection`] once the schema is fixed.
pub type ProjectionRule = Box<dyn Fn(&FixedSchema) -> Result<Projection> + Send>;

/// The largest object whose reader starts while the one before it is
/// parsed (see [`Source::opens_ahead`]).
const OPEN_AHEAD_MAX_BYTES: u64 = 8 << 20;

/// Reads every input object in order, one chunk at a time.
pub struct Source {
    pub files: Vec<InputObject>,
    pieces: Vec<Piece>,
    plan: InputPlan,
    pub schema: Option<FixedSchema>,
    pub bytes_read: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    /// Parquet reads decode only these columns (none: every column).
    projection: Option<Projection>,
    project: Option<ProjectionRule>,
    /// Parsed chunks' buffers, for the CSV readers of every object.
    spares: SparePool,
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
            projection: None,
            project: None,
            spares: SparePool::default(),
        }
    }

    /// Parquet chunks carry only what `rule` asks for once the schema is
    /// fixed (the rows are the same; columns left out are absent).
    pub fn with_projection(mut self, rule: Option<ProjectionRule>) -> Self {
        self.project = rule;
        self
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

    /// The schema a run over `files` would fix: a CSV's header plus the
    /// types of its first chunk (read ahead where a column has no value
    /// yet), or a Parquet footer's. Objects without rows are passed over.
    pub fn schema_of_first(files: &[InputObject], plan: &InputPlan) -> Result<Option<FixedSchema>> {
        for (k, obj) in files.iter().enumerate() {
            match format_of(obj, plan.format)? {
                InputFormat::Parquet => {
                    let input = ParquetInput::open(obj)?;
                    return Ok(Some(FixedSchema::new(
                        Arc::new(input.schema.clone()),
                        obj.uri.clone(),
                    )));
                }
                InputFormat::Csv => {
                    let mut chunker = open_chunker(obj, &plan.csv)?;
                    let Some(header) = chunker.first_record(plan.csv.has_header)? else {
                        continue;
                    };
                    let names = column_names(header, plan.csv.has_header);
                    let Some(chunk) = chunker.next_chunk(plan.chunk_rows.get())? else {
                        continue;
                    };
                    return fix_schema(files, k, &chunk, &names, plan).map(Some);
                }
            }
        }
        Ok(None)
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }

    /// Calls `f` on every chunk of every file, in order.
    pub fn for_each_chunk(
        &mut self,
        f: &mut dyn FnMut(SourceChunk, &Source) -> Result<()>,
    ) -> Result<()> {
        let pieces = self.pieces.clone();
        let mut ahead: Option<(usize, Result<Chunks>)> = None;
        for (k, piece) in pieces.iter().enumerate() {
            self.prefetch_after(&pieces[k + 1..]);
            let opened = ahead.take().filter(|(i, _)| *i == k).map(|(_, c)| c);
            ahead = pieces
                .get(k + 1)
                .filter(|next| self.opens_ahead(next))
                .map(|next| {
                    let obj = &self.files[next.file];
                    tracing::debug!("reading {} while the object before it is parsed", obj.uri);
                    (k + 1, self.open_csv(obj, None, None))
                });
            let idx = piece.file;
            match format_of(&self.files[idx], self.plan.format)? {
                InputFormat::Csv => self.read_csv(idx, &piece.part, opened, f)?,
                InputFormat::Parquet => self.read_parquet(idx, &piece.part, f)?,
            }
        }
        Ok(())
    }

    /// Whether the next piece's reader starts while this one is parsed: a
    /// whole CSV object of at most [`OPEN_AHEAD_MAX_BYTES`] (many small
    /// objects then cost no wait at each boundary; larger ones have few
    /// boundaries and would hold their chunks in memory meanwhile).
    fn opens_ahead(&self, next: &Piece) -> bool {
        let obj = &self.files[next.file];
        next.part == Part::Whole
            && obj.size <= OPEN_AHEAD_MAX_BYTES
            && matches!(format_of(obj, self.plan.format), Ok(InputFormat::Csv))
    }

    /// Starts the reader thread of a CSV object (or of a byte range of it).
    fn open_csv(
        &self,
        obj: &InputObject,
        range: Option<std::ops::Range<u64>>,
        header: Option<(Vec<String>, u8)>,
    ) -> Result<Chunks> {
        // The fast parser checks every record's shape, so the reader need
        // not count fields; `check_field_counts` names a ragged line.
        spawn_chunker(
            obj,
            &self.plan,
            self.bytes_read.clone(),
            range,
            header,
            fast_parser_enabled(),
            self.spares.clone(),
        )
    }

    /// Starts fetching the next whole objects while this one is read (CSV:
    /// their first bytes; Parquet: their footers), so many small remote
    /// objects cost their bytes, not their round trips.
    fn prefetch_after(&self, next: &[Piece]) {
        prefetch_pieces(&self.files, &self.plan, next);
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(PrepError::Interrupted {
                signal: "a termination signal".into(),
            });
        }
        Ok(())
    }

    /// Parses a CSV piece chunk by chunk; `opened`: its reader, started
    /// ahead ([`Source::opens_ahead`]).
    fn read_csv(
        &mut self,
        idx: usize,
        part: &Part,
        opened: Option<Result<Chunks>>,
        f: &mut dyn FnMut(SourceChunk, &Source) -> Result<()>,
    ) -> Result<()> {
        let mut obj = self.files[idx].clone();
        let (range, header) = match part {
            Part::Bytes(r) => {
                let (header, eol) = first_record_of(&obj, &self.plan)?;
                let start = align_csv(&obj, r.start, &self.plan, header.len(), eol)?;
                let end = align_csv(&obj, r.end, &self.plan, header.len(), eol)?;
                if start >= end {
                    return Ok(());
                }
                (Some(start..end), (start > 0).then_some((header, eol)))
            }
            _ => (None, None),
        };
        let mid_object = header.is_some();
        if let (true, Some(r)) = (mid_object, &range) {
            obj.uri = format!("{} (from byte {})", obj.uri, r.start);
        }
        let counts_left = fast_parser_enabled();
        let rx = match opened {
            Some(chunks) => chunks?,
            None => self.open_csv(&obj, range, header)?,
        };
        let header = match rx.recv() {
            Ok(Msg::Header(h)) => h,
            Ok(Msg::Failed(e)) => return Err(e),
            _ => return Ok(()),
        };
        let Some(header) = header else {
            // An object with no header at all: nothing to read when it is
            // one of several; the whole input, it is a mistake.
            if self.files.len() == 1 && !mid_object {
                return Err(PrepError::bad_data(
                    DataLocation::file(&obj.uri),
                    DataError::NoHeader,
                ));
            }
            return Ok(());
        };
        let names = column_names(header, self.plan.csv.has_header);
        if let Some(fixed) = &self.schema {
            check_same_columns(fixed, &names, &obj.uri)?;
        } else if let Some(d) = likely_delimiter(&names, &self.plan.csv) {
            tracing::warn!(
                "{}: the header is one column, `{}`, holding {d:?}; if the file is separated by it, set input.csv.delimiter = {:?}",
                obj.uri,
                names[0],
                d.to_string()
            );
        }
        let mut first_row = 1u64;
        // The fast parser for the fixed schema (None: the reference parser
        // reads every chunk), made once the first chunk is seen.
        let mut fast: Option<Option<FastCsv>> = None;
        for msg in rx {
            self.check_cancel()?;
            let chunk = match msg {
                Msg::Chunk(c) => c,
                Msg::Failed(e) => return Err(e),
                Msg::Header(_) => unreachable!("header comes first"),
            };
            if self.schema.is_none() {
                self.schema = Some(fix_schema(&self.files, idx, &chunk, &names, &self.plan)?);
            }
            let fixed = self.schema.as_ref().expect("schema set above");
            let fast = fast.get_or_insert_with(|| {
                fast_parser_enabled()
                    .then(|| FastCsv::new(&fixed.schema, &self.plan.csv))
                    .flatten()
            });
            let rows = chunk.rows() as u64;
            let df = timed(Stage::Parse, || -> Result<DataFrame> {
                if let Some(df) = fast.as_ref().and_then(|f| f.parse(&chunk)) {
                    return Ok(df);
                }
                if counts_left {
                    let csv = &self.plan.csv;
                    check_field_counts(&chunk, names.len(), &obj.uri, csv.delimiter, csv.quote)?;
                }
                parse_reference(&chunk, &fixed.schema, &self.plan, &obj.uri)
            })?;
            let CsvChunk {
                bytes,
                record_lines: lines,
                ..
            } = chunk;
            self.spares.put(bytes);
            debug_assert_eq!(df.height() as u64, rows);
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
        if let (None, Some(rule), Some(fixed)) = (&self.projection, &self.project, &self.schema) {
            self.projection = Some(rule(fixed)?);
        }
        let chunk_rows = self.plan.chunk_rows.get();
        let (start, stop) = match part {
            Part::RowGroups(r) => input.row_range(r.clone()),
            _ => (0, num_rows),
        };
        // Decoder threads (one per core, at most [`PARQUET_DECODERS`]) take
        // the ranges in turn, so decoding (zstd, pages) runs on every core
        // beside what `f` does with the chunks (clean and fit, or clean and
        // transform); each holds at most the one range it decoded until `f`
        // takes it. Whole row groups up to 4 chunks ÷ decoders long are
        // decoded at once (each page once), larger ones in slices of that
        // many rows, so the rows decoded at once stay about 4 chunks however
        // many decoders there are (1M-row groups on 2 cores: peak RSS
        // 546–558 MiB with 4-chunk slices, 456–476 MiB with 2-chunk ones).
        let most = threads_for(usize::MAX, PARQUET_DECODERS);
        let ranges = input.read_ranges(start, stop, (4 * chunk_rows / most).max(chunk_rows));
        let decoders = most.min(ranges.len().max(1));
        let decode = |(offset, len): (usize, usize)| -> Result<(usize, usize, DataFrame)> {
            let df = timed(Stage::Read, || match &self.projection {
                Some(p) => input.read_projected(offset, len, &p.values, &p.nulls_only),
                None => input.read(offset, len),
            })?;
            self.bytes_read.fetch_add(
                (obj.size as f64 * len as f64 / num_rows.max(1) as f64) as u64,
                Ordering::Relaxed,
            );
            Ok((offset, len, df))
        };
        let this = &*self;
        in_turn(
            "prep-parquet-decoder",
            ranges,
            decoders,
            &decode,
            &|| this.check_cancel(),
            &mut |(offset, len, df)| {
                for at in (0..len).step_by(chunk_rows) {
                    f(
                        SourceChunk {
                            df: df.slice(at as i64, chunk_rows.min(len - at)),
                            file_index: idx,
                            lines: Vec::new(),
                            first_row: (offset + at) as u64 + 1,
                        },
                        this,
                    )?;
                }
                Ok(())
            },
        )
    }
}
