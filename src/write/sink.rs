//! Shard writers (JSON Lines, CSV, Parquet), the manifest and `_SUCCESS`.
//!
//! Rows arrive as scaled, projected and renamed chunks. A shard closes at
//! whichever limit comes first, `shard_max_rows` or `shard_max_bytes`; a
//! shard only exceeds the byte limit when a single row is larger. Every shard
//! is a standalone file (CSV shards repeat the header when asked), written
//! under a hidden name and renamed into place when complete.
//!
//! Byte limits are exact for uncompressed JSONL/CSV. With gzip they apply to
//! the uncompressed bytes (the file is smaller). For Parquet they apply to
//! the rows' in-memory Arrow size, which bounds the compressed file for all
//! but tiny shards.

use std::io::Write;
use std::sync::OnceLock;

use polars::prelude::*;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{PrepError, Result};
use crate::pipeline::plan::{OutputCompression, OutputFormat};
use crate::storage::{storage_uri, OutputDir, PendingFile};
use crate::timings::{timed, Stage};
use crate::write::encode::{csv_header, encode_row_parts, EncodedRows, TextFormat};

#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ShardInfo {
    pub name: String,
    pub rows: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone)]
pub struct SinkOptions {
    pub format: OutputFormat,
    pub compression: OutputCompression,
    pub csv_header: bool,
    pub max_rows: usize,
    pub max_bytes: Option<u64>,
    /// "part-" or "part-w0003-".
    pub prefix: String,
}

/// A chunk ready for the writer: encoded rows (JSONL/CSV) or a frame (Parquet).
pub enum SinkBatch {
    Text {
        /// Consecutive runs of rows, in order.
        rows: Vec<EncodedRows>,
        names: Vec<String>,
    },
    Frame(DataFrame),
}

enum TextOut {
    Plain(PendingFile),
    Gzip(Box<flate2::write::GzEncoder<PendingFile>>),
}

impl TextOut {
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            TextOut::Plain(f) => f.write_all(b),
            TextOut::Gzip(g) => g.write_all(b),
        }
    }
    fn commit(self) -> Result<u64> {
        match self {
            TextOut::Plain(f) => f.commit(),
            TextOut::Gzip(g) => {
                let f = g
                    .finish()
                    .map_err(|e| PrepError::io("finishing a gzip shard", e))?;
                f.commit()
            }
        }
    }
}

enum OpenShard {
    Text {
        out: Box<TextOut>,
    },
    Parquet {
        writer: Box<polars::io::parquet::write::BatchedWriter<PendingFile>>,
        file: PendingFile,
    },
}

/// Encodes and compresses a row group's pages on every core.
///
/// polars' `BatchedWriter::write_batch` compresses pages lazily, on the
/// thread that writes the file: one core zstd-compressed the whole output
/// (a text column dominates, so per-column parallelism does not help). Here
/// columns are encoded in parallel, then every page is compressed in
/// parallel, and the writer only appends finished bytes.
///
/// For each column polars asks for dictionary encoding it first estimates
/// the column's cardinality over every value (hashing each string of a long
/// text column) and writes plain pages when most values differ. That choice
/// is made once, on the run's first row group ([`Self::settled`]): a column
/// that got plain pages there is written plain from then on, with no
/// estimate (4 % of a Parquet → Parquet run's CPU time).
struct RowGroupEncoder {
    fields: Vec<polars_parquet::write::ParquetType>,
    encodings: Vec<Vec<polars_parquet::write::Encoding>>,
    /// The encodings after the first row group (see above).
    settled: OnceLock<Vec<Vec<polars_parquet::write::Encoding>>>,
    options: polars_parquet::write::WriteOptions,
}

impl RowGroupEncoder {
    fn new(
        writer: &mut polars::io::parquet::write::BatchedWriter<PendingFile>,
        schema: &Schema,
        compression: ParquetCompression,
    ) -> Self {
        let arrow = schema.to_arrow(CompatLevel::newest());
        RowGroupEncoder {
            fields: writer.parquet_schema().fields().to_vec(),
            encodings: polars::io::parquet::write::get_encodings(&arrow).to_vec(),
            settled: OnceLock::new(),
            options: polars_parquet::write::WriteOptions {
                statistics: polars::io::parquet::write::StatisticsOptions::default(),
                compression: compression.into(),
                version: polars_parquet::write::Version::V1,
                data_page_size: None,
            },
        }
    }

    /// `df`'s row groups (one per chunk of its columns), each as its
    /// row count and compressed pages.
    fn encode_frame(&self, df: &DataFrame) -> PolarsResult<Vec<EncodedGroup>> {
        let mut df = df.clone();
        df.rechunk_mut();
        df.iter_chunks(CompatLevel::newest(), false)
            .filter(|batch| !batch.is_empty())
            .map(|batch| {
                let pages = timed(Stage::Encode, || self.encode(&batch))?;
                Ok((batch.len() as u64, pages))
            })
            .collect()
    }

    /// One row group's pages, encoded and compressed on every core.
    fn encode(
        &self,
        batch: &polars_arrow::record_batch::RecordBatch,
    ) -> PolarsResult<Vec<Vec<polars_parquet::write::CompressedPage>>> {
        use polars_parquet::write::{array_to_columns, compress, CompressedPage, Encoding, Page};
        {
            let encodings = self.settled.get().unwrap_or(&self.encodings);
            let encoded: Vec<Vec<Vec<Page>>> = batch
                .columns()
                .par_iter()
                .zip(self.fields.par_iter())
                .zip(encodings.par_iter())
                .map(|((array, ty), enc)| {
                    array_to_columns(array, ty.clone(), self.options, enc)?
                        .into_iter()
                        .map(|pages| pages.collect::<PolarsResult<Vec<Page>>>())
                        .collect()
                })
                .collect::<PolarsResult<_>>()?;
            if self.settled.get().is_none() {
                let settled = encodings
                    .iter()
                    .zip(&encoded)
                    .map(|(wanted, leaves)| {
                        wanted
                            .iter()
                            .zip(leaves)
                            .map(|(&e, pages)| {
                                let dict = pages.iter().any(|p| matches!(p, Page::Dict(_)));
                                match e {
                                    Encoding::RleDictionary if !dict => Encoding::Plain,
                                    e => e,
                                }
                            })
                            .collect()
                    })
                    .collect();
                let _ = self.settled.set(settled);
            }
            // One list per leaf column, in schema order.
            let leaves: Vec<Vec<Page>> = encoded.into_iter().flatten().collect();
            let compression = self.options.compression;
            let compressed: Vec<Vec<CompressedPage>> = leaves
                .into_par_iter()
                .map(|pages| {
                    pages
                        .into_par_iter()
                        .map(|p| compress(p, Vec::new(), compression).map_err(PolarsError::from))
                        .collect::<PolarsResult<Vec<_>>>()
                })
                .collect::<PolarsResult<_>>()?;
            Ok(compressed)
        }
    }
}

/// A row group ready to append: its rows and compressed pages per column.
type EncodedGroup = (u64, Vec<Vec<polars_parquet::write::CompressedPage>>);

/// What writing frames to Parquet shards does, in order: append these rows
/// (and count these bytes against `shard_max_bytes`), or close the shard.
enum ParquetStep {
    Rows(DataFrame, u64),
    Close,
}

/// How full a shard is.
#[derive(Debug, Clone, Copy, Default)]
struct Fill {
    rows: usize,
    bytes: u64,
}

struct Current {
    name: String,
    shard: OpenShard,
    rows: usize,
    /// Bytes counted against `max_bytes`.
    bytes: u64,
}

impl Current {
    fn fill(&self) -> Fill {
        Fill {
            rows: self.rows,
            bytes: self.bytes,
        }
    }
}

pub struct ShardSink {
    out: OutputDir,
    opts: SinkOptions,
    current: Option<Current>,
    pub shards: Vec<ShardInfo>,
    header: Vec<u8>,
    /// Parquet: one encoder for every shard of the run (same schema).
    encoder: Option<RowGroupEncoder>,
}

impl ShardSink {
    pub fn new(out: OutputDir, opts: SinkOptions) -> Self {
        ShardSink {
            out,
            opts,
            current: None,
            shards: Vec::new(),
            header: Vec::new(),
            encoder: None,
        }
    }

    fn extension(&self) -> String {
        let ext = self.opts.format.extension();
        match self.opts.compression {
            OutputCompression::Gzip => format!("{ext}.gz"),
            _ => ext.to_string(),
        }
    }

    fn open(&mut self, schema: Option<&Schema>) -> Result<()> {
        let name = format!(
            "{}{:05}.{}",
            self.opts.prefix,
            self.shards.len(),
            self.extension()
        );
        let (shard, bytes) = match self.opts.format {
            OutputFormat::Parquet => {
                let file = self.out.create(&name)?;
                let compression = match self.opts.compression {
                    OutputCompression::Snappy => ParquetCompression::Snappy,
                    OutputCompression::None => ParquetCompression::Uncompressed,
                    _ => ParquetCompression::Zstd(
                        polars_parquet::write::ZstdLevel::try_new(zstd_level()).ok(),
                    ),
                };
                let schema = schema.expect("parquet shards are opened with a schema");
                let mut writer = ParquetWriter::new(file.clone())
                    .with_compression(compression)
                    .batched(schema)
                    .map_err(|e| {
                        PrepError::polars(
                            format!("starting Parquet shard {}", self.out.display(&name)),
                            e,
                        )
                    })?;
                if self.encoder.is_none() {
                    self.encoder = Some(RowGroupEncoder::new(&mut writer, schema, compression));
                }
                (
                    OpenShard::Parquet {
                        writer: Box::new(writer),
                        file,
                    },
                    0,
                )
            }
            OutputFormat::Jsonl | OutputFormat::Csv => {
                let file = self.out.create(&name)?;
                let mut out = match self.opts.compression {
                    OutputCompression::Gzip => TextOut::Gzip(Box::new(
                        flate2::write::GzEncoder::new(file, flate2::Compression::default()),
                    )),
                    _ => TextOut::Plain(file),
                };
                let mut bytes = 0;
                if self.opts.format == OutputFormat::Csv && self.opts.csv_header {
                    out.write_all(&self.header)
                        .map_err(|e| storage_uri("writing", &self.out.display(&name), e))?;
                    bytes = self.header.len() as u64;
                }
                (OpenShard::Text { out: Box::new(out) }, bytes)
            }
        };
        self.current = Some(Current {
            name,
            shard,
            rows: 0,
            bytes,
        });
        Ok(())
    }

    fn close(&mut self) -> Result<()> {
        let Some(cur) = self.current.take() else {
            return Ok(());
        };
        let size = match cur.shard {
            OpenShard::Text { out } => out.commit()?,
            OpenShard::Parquet { writer, file, .. } => {
                writer.finish().map_err(|e| {
                    PrepError::polars(
                        format!("finishing Parquet shard {}", self.out.display(&cur.name)),
                        e,
                    )
                })?;
                drop(writer);
                file.commit()?
            }
        };
        tracing::debug!(shard = %cur.name, rows = cur.rows, bytes = size, "shard written");
        self.shards.push(ShardInfo {
            name: cur.name,
            rows: cur.rows as u64,
            bytes: size,
        });
        Ok(())
    }

    /// How many of the next rows fit in the open shard, given each row's
    /// size; at least one when the shard is empty.
    fn fitting(&self, fill: Fill, sizes: &dyn Fn(usize) -> u64, available: usize) -> usize {
        let row_room = self.opts.max_rows - fill.rows;
        let mut k = available.min(row_room);
        if let Some(max) = self.opts.max_bytes {
            let room = max.saturating_sub(fill.bytes);
            // sizes(k) is the byte size of the first k rows; find the largest k that fits.
            let (mut lo, mut hi) = (0usize, k);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                if sizes(mid) <= room {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            k = lo;
            if k == 0 && fill.rows == 0 {
                k = 1;
            }
        }
        k
    }

    /// Encodes a chunk for this sink's format. Separate from writing so the
    /// (parallel) encoding can run on one thread while another writes.
    pub fn prepare(format: OutputFormat, df: &DataFrame) -> Result<SinkBatch> {
        let names = || -> Vec<String> {
            df.get_column_names()
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        Ok(match format {
            OutputFormat::Parquet => SinkBatch::Frame(df.clone()),
            OutputFormat::Jsonl => SinkBatch::Text {
                rows: encode_row_parts(df, TextFormat::Jsonl)?,
                names: names(),
            },
            OutputFormat::Csv => SinkBatch::Text {
                rows: encode_row_parts(df, TextFormat::Csv)?,
                names: names(),
            },
        })
    }

    /// Appends a chunk of output rows.
    pub fn write(&mut self, df: &DataFrame) -> Result<()> {
        let batch = Self::prepare(self.opts.format, df)?;
        self.write_batch(batch)
    }

    /// Appends a prepared chunk.
    pub fn write_batch(&mut self, batch: SinkBatch) -> Result<()> {
        match batch {
            SinkBatch::Frame(df) => self.write_frames(&[df]),
            SinkBatch::Text { rows, names } => {
                if self.header.is_empty() {
                    self.header = csv_header(&names);
                }
                rows.iter().try_for_each(|part| self.write_text(part))
            }
        }
    }

    fn write_text(&mut self, rows: &EncodedRows) -> Result<()> {
        let mut next = 0usize;
        while next < rows.rows() {
            if self.current.is_none() {
                self.open(None)?;
            }
            let cur = self.current.as_ref().expect("opened");
            let base = rows.start(next);
            let sizes = |k: usize| {
                if k == 0 {
                    0
                } else {
                    (rows.ends[next + k - 1] - base) as u64
                }
            };
            let k = self.fitting(cur.fill(), &sizes, rows.rows() - next);
            if k == 0 {
                self.close()?;
                continue;
            }
            let end = rows.ends[next + k - 1];
            let cur = self.current.as_mut().expect("opened");
            let OpenShard::Text { out } = &mut cur.shard else {
                unreachable!("text shard")
            };
            timed(Stage::Write, || out.write_all(&rows.bytes[base..end]))
                .map_err(|e| storage_uri("writing", &self.out.display(&cur.name), e))?;
            cur.rows += k;
            cur.bytes += (end - base) as u64;
            next += k;
            if cur.rows >= self.opts.max_rows {
                self.close()?;
            }
        }
        Ok(())
    }

    /// Appends consecutive frames. Their row groups are cut as writing them
    /// one at a time would cut them, encoded together on every core (one
    /// frame's long text column no longer leaves a core idle), then written
    /// in order.
    pub fn write_frames(&mut self, frames: &[DataFrame]) -> Result<()> {
        let frames: Vec<&DataFrame> = frames.iter().filter(|df| df.height() > 0).collect();
        let Some(first) = frames.first() else {
            return Ok(());
        };
        if self.current.is_none() {
            self.open(Some(first.schema().as_ref()))?;
        }
        // 1. Where the row groups and shard ends fall.
        let mut fill = self.current.as_ref().expect("opened").fill();
        let mut open = true;
        let mut steps = Vec::new();
        for df in &frames {
            let per_row = (df.estimated_size() as f64 / df.height() as f64)
                .ceil()
                .max(1.0) as u64;
            let mut next = 0usize;
            while next < df.height() {
                if !open {
                    (open, fill) = (true, Fill::default());
                }
                let sizes = |k: usize| k as u64 * per_row;
                let k = self.fitting(fill, &sizes, df.height() - next);
                if k == 0 {
                    steps.push(ParquetStep::Close);
                    open = false;
                    continue;
                }
                steps.push(ParquetStep::Rows(
                    df.slice(next as i64, k),
                    k as u64 * per_row,
                ));
                fill.rows += k;
                fill.bytes += k as u64 * per_row;
                next += k;
                if fill.rows >= self.opts.max_rows {
                    steps.push(ParquetStep::Close);
                    open = false;
                }
            }
        }
        // 2. Every row group's pages, encoded and compressed together; the
        // run's first row group alone first, so the encodings it settles
        // are the same however the frames were batched.
        let encoder = self.encoder.as_ref().expect("made with the first shard");
        let encode = |step: &ParquetStep| match step {
            ParquetStep::Rows(df, _) => encoder.encode_frame(df),
            ParquetStep::Close => Ok(Vec::new()),
        };
        let alone = usize::from(encoder.settled.get().is_none());
        let mut encoded: Vec<PolarsResult<Vec<EncodedGroup>>> =
            steps[..alone].iter().map(encode).collect();
        encoded.extend(steps[alone..].par_iter().map(encode).collect::<Vec<_>>());
        // 3. Written in order, shards opened and closed where planned.
        for (step, groups) in steps.iter().zip(encoded) {
            let ParquetStep::Rows(df, bytes) = step else {
                self.close()?;
                continue;
            };
            if self.current.is_none() {
                self.open(Some(df.schema().as_ref()))?;
            }
            let cur = self.current.as_mut().expect("opened");
            let OpenShard::Parquet { writer, .. } = &mut cur.shard else {
                unreachable!("parquet shard")
            };
            groups
                .and_then(|groups| {
                    groups.iter().try_for_each(|(rows, pages)| {
                        timed(Stage::Write, || writer.write_row_group(*rows, pages))
                    })
                })
                .map_err(|e| {
                    PrepError::polars(
                        format!("writing Parquet shard {}", self.out.display(&cur.name)),
                        e,
                    )
                })?;
            cur.rows += df.height();
            cur.bytes += bytes;
        }
        Ok(())
    }

    /// Closes the last shard; returns every shard written, in order.
    pub fn finish(mut self) -> Result<Vec<ShardInfo>> {
        self.close()?;
        Ok(self.shards)
    }
}

/// zstd level for Parquet shards: zstd's default 3, or `PREP_ZSTD_LEVEL`.
/// Measured on 5M rows: level 1 is ~8 % faster end to end and its files
/// 11 % larger, so the default stays.
fn zstd_level() -> i32 {
    crate::env::zstd_level()
}

/// SageMaker's ManifestFile shape: `[{"prefix": ...}, "part-00000.jsonl", ...]`.
pub fn manifest_json(prefix: &str, shards: &[String]) -> Vec<u8> {
    let mut items = vec![serde_json::json!({ "prefix": prefix })];
    items.extend(shards.iter().map(|s| serde_json::Value::String(s.clone())));
    let mut v =
        serde_json::to_vec_pretty(&serde_json::Value::Array(items)).expect("manifest serializes");
    v.push(b'\n');
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(
        dir: &std::path::Path,
        format: OutputFormat,
        max_rows: usize,
        max_bytes: Option<u64>,
    ) -> ShardSink {
        ShardSink::new(
            OutputDir::local(dir),
            SinkOptions {
                format,
                compression: OutputCompression::None,
                csv_header: true,
                max_rows,
                max_bytes,
                prefix: "part-".into(),
            },
        )
    }

    fn frame(n: i64) -> DataFrame {
        df!("id" => (0..n).collect::<Vec<_>>(), "t" => (0..n).map(|i| format!("row{i}")).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn rows_limit_fills_shards_across_chunks() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), OutputFormat::Jsonl, 4, None);
        s.write(&frame(3)).unwrap();
        s.write(&frame(7)).unwrap();
        let shards = s.finish().unwrap();
        let rows: Vec<u64> = shards.iter().map(|s| s.rows).collect();
        assert_eq!(rows, vec![4, 4, 2]);
        assert_eq!(shards[0].name, "part-00000.jsonl");
    }

    #[test]
    fn byte_limit_is_never_exceeded_and_csv_repeats_header() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), OutputFormat::Csv, 1000, Some(40));
        s.write(&frame(20)).unwrap();
        let shards = s.finish().unwrap();
        assert!(shards.len() > 2);
        for sh in &shards {
            let text = std::fs::read_to_string(d.path().join(&sh.name)).unwrap();
            assert!(text.len() <= 40, "{} is {} bytes", sh.name, text.len());
            assert!(text.starts_with("id,t\n"));
        }
        let total: u64 = shards.iter().map(|s| s.rows).sum();
        assert_eq!(total, 20);
    }

    #[test]
    fn a_row_larger_than_the_limit_gets_its_own_shard() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), OutputFormat::Jsonl, 1000, Some(5));
        s.write(&frame(3)).unwrap();
        let shards = s.finish().unwrap();
        assert_eq!(
            shards.iter().map(|s| s.rows).collect::<Vec<_>>(),
            vec![1, 1, 1]
        );
    }

    #[test]
    fn parquet_shards_read_back() {
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), OutputFormat::Parquet, 6, None);
        s.write(&frame(10)).unwrap();
        let shards = s.finish().unwrap();
        assert_eq!(shards.len(), 2);
        let f = std::fs::File::open(d.path().join("part-00001.parquet")).unwrap();
        let back = ParquetReader::new(f).finish().unwrap();
        assert_eq!(back.height(), 4);
        assert_eq!(back.column("id").unwrap().i64().unwrap().get(0), Some(6));
    }

    /// Every shard's file bytes, in order.
    fn shard_bytes(dir: &std::path::Path, shards: &[ShardInfo]) -> Vec<Vec<u8>> {
        shards
            .iter()
            .map(|s| std::fs::read(dir.join(&s.name)).unwrap())
            .collect()
    }

    #[test]
    fn frames_encoded_together_cut_and_write_as_one_at_a_time() {
        // Frames of 7, 5, 0 and 9 rows (ids 0..21 overall), against a row
        // limit that cuts inside frames, and against a byte limit.
        let frames: Vec<DataFrame> = [(0, 7), (7, 5), (12, 0), (12, 9)]
            .iter()
            .map(|&(from, n)| {
                let mut df = frame(from + n).slice(from, n as usize);
                df.rechunk_mut();
                df
            })
            .collect();
        let per_row = frames[0].estimated_size() as u64 / 7 + 1;
        for (max_rows, max_bytes) in [(4, None), (100, Some(per_row * 3)), (6, Some(per_row * 5))] {
            let (one, together) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let mut s = sink(one.path(), OutputFormat::Parquet, max_rows, max_bytes);
            frames.iter().for_each(|f| s.write(f).unwrap());
            let one_shards = s.finish().unwrap();
            let mut s = sink(together.path(), OutputFormat::Parquet, max_rows, max_bytes);
            s.write(&frames[0]).unwrap(); // a shard already open and part full
            s.write_frames(&frames[1..]).unwrap();
            let together_shards = s.finish().unwrap();
            assert_eq!(together_shards, one_shards, "{max_rows} {max_bytes:?}");
            assert!(one_shards.len() >= 3, "{one_shards:?}");
            assert_eq!(
                shard_bytes(together.path(), &together_shards),
                shard_bytes(one.path(), &one_shards)
            );
            let ids: Vec<i64> = together_shards
                .iter()
                .flat_map(|sh| {
                    let f = std::fs::File::open(together.path().join(&sh.name)).unwrap();
                    let back = ParquetReader::new(f).finish().unwrap();
                    assert_eq!(back.height() as u64, sh.rows);
                    let ids = back.column("id").unwrap().i64().unwrap().clone();
                    ids.into_no_null_iter().collect::<Vec<_>>()
                })
                .collect();
            assert_eq!(ids, (0..21).collect::<Vec<_>>());
        }
    }

    /// Whether column `c` has a dictionary page, per row group of a shard.
    fn dictionaries(path: &std::path::Path, c: &str) -> Vec<bool> {
        let mut f = std::fs::File::open(path).unwrap();
        let meta = polars_parquet::read::read_metadata(&mut f).unwrap();
        meta.row_groups
            .iter()
            .map(|rg| {
                rg.parquet_columns()
                    .iter()
                    .find(|col| col.descriptor().path_in_schema[0].as_str() == c)
                    .unwrap()
                    .dictionary_page_offset()
                    .is_some()
            })
            .collect()
    }

    #[test]
    fn a_column_written_plain_in_the_first_row_group_stays_plain() {
        // `t` is all distinct in the first frame (plain pages), then one
        // value repeated (a dictionary, were each row group judged alone);
        // `k` repeats from the start and keeps its dictionary.
        let frame = |from: i64, distinct: bool| {
            let t: Vec<String> = (from..from + 500)
                .map(|i| match distinct {
                    true => format!("review number {i}"),
                    false => "same".to_string(),
                })
                .collect();
            let k: Vec<String> = (from..from + 500).map(|i| format!("k{}", i % 3)).collect();
            df!("t" => t, "k" => k).unwrap()
        };
        // The distinct frame, then two repetitive ones (together).
        let write = |d: &std::path::Path, max_rows: usize| {
            let mut s = sink(d, OutputFormat::Parquet, max_rows, None);
            s.write(&frame(0, true)).unwrap();
            s.write_frames(&[frame(500, false), frame(1000, false)])
                .unwrap();
            s.finish().unwrap()
        };
        let d = tempfile::tempdir().unwrap();
        let shards = write(d.path(), 10_000);
        let path = d.path().join(&shards[0].name);
        assert_eq!(dictionaries(&path, "t"), [false, false, false]);
        assert_eq!(dictionaries(&path, "k"), [true, true, true]);
        // The same across shards: one decision for the run.
        let d = tempfile::tempdir().unwrap();
        let shards = write(d.path(), 500);
        assert_eq!(shards.len(), 3);
        for sh in &shards {
            assert_eq!(
                dictionaries(&d.path().join(&sh.name), "t"),
                [false],
                "{}",
                sh.name
            );
        }
        // Judged alone, the later row groups of `t` would be dictionaries.
        let alone = tempfile::tempdir().unwrap();
        let mut s = sink(alone.path(), OutputFormat::Parquet, 10_000, None);
        s.write(&frame(500, false)).unwrap();
        let shards = s.finish().unwrap();
        assert_eq!(
            dictionaries(&alone.path().join(&shards[0].name), "t"),
            [true]
        );
    }

    #[test]
    fn manifest_has_prefix_then_shards() {
        let m: serde_json::Value =
            serde_json::from_slice(&manifest_json("/o/", &["part-00000.jsonl".into()])).unwrap();
        assert_eq!(
            m,
            serde_json::json!([{"prefix": "/o/"}, "part-00000.jsonl"])
        );
    }
}
