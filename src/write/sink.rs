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

use polars::prelude::*;
use serde::Serialize;

use crate::error::{PrepError, Result};
use crate::pipeline::plan::{OutputCompression, OutputFormat};
use crate::storage::{storage_uri, OutputDir, PendingFile};
use crate::timings::{timed, Stage};
use crate::write::encode::{csv_header, encode_row_parts, EncodedRows, TextFormat};
use crate::write::row_groups::{Fill, GroupPlanner, GroupStep, ShardLimits};

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
    /// Parquet frames written here ([`Self::write_frames`]) are planned
    /// here; the transform pass plans on a thread of its own.
    planner: Option<GroupPlanner>,
}

impl ShardSink {
    pub fn new(out: OutputDir, opts: SinkOptions) -> Self {
        ShardSink {
            out,
            opts,
            current: None,
            shards: Vec::new(),
            header: Vec::new(),
            planner: None,
        }
    }

    /// Where shards of this sink close.
    pub fn limits(&self) -> ShardLimits {
        ShardLimits {
            max_rows: self.opts.max_rows,
            max_bytes: self.opts.max_bytes,
        }
    }

    /// The Parquet codec of this sink's shards.
    pub fn parquet_compression(&self) -> ParquetCompression {
        match self.opts.compression {
            OutputCompression::Snappy => ParquetCompression::Snappy,
            OutputCompression::None => ParquetCompression::Uncompressed,
            _ => ParquetCompression::Zstd(
                polars_parquet::write::ZstdLevel::try_new(zstd_level()).ok(),
            ),
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
                let compression = self.parquet_compression();
                let schema = schema.expect("parquet shards are opened with a schema");
                let writer = ParquetWriter::new(file.clone())
                    .with_compression(compression)
                    .batched(schema)
                    .map_err(|e| shard_error("starting", &file, e))?;
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
                writer
                    .finish()
                    .map_err(|e| shard_error("finishing", &file, e))?;
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
            let k = self
                .limits()
                .fitting(cur.fill(), &sizes, rows.rows() - next);
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

    /// Appends consecutive frames: planned and encoded here, then written
    /// (the transform pass plans on a thread of its own and hands the steps
    /// to [`Self::write_groups`]).
    pub fn write_frames(&mut self, frames: &[DataFrame]) -> Result<()> {
        let (limits, compression) = (self.limits(), self.parquet_compression());
        let planner = self
            .planner
            .get_or_insert_with(|| GroupPlanner::new(limits, compression));
        let steps = planner.plan(frames)?;
        self.write_groups(steps)
    }

    /// Writes planned row groups in order, opening and closing shards
    /// where the plan says.
    pub fn write_groups(&mut self, steps: Vec<GroupStep>) -> Result<()> {
        for step in steps {
            let GroupStep::Rows {
                schema,
                rows,
                bytes,
                groups,
            } = step
            else {
                self.close()?;
                continue;
            };
            if self.current.is_none() {
                self.open(Some(schema.as_ref()))?;
            }
            let cur = self.current.as_mut().expect("opened");
            let OpenShard::Parquet { writer, file } = &mut cur.shard else {
                unreachable!("parquet shard")
            };
            groups
                .iter()
                .try_for_each(|(rows, pages)| {
                    timed(Stage::Write, || writer.write_row_group(*rows, pages))
                })
                .map_err(|e| shard_error("writing", file, e))?;
            cur.rows += rows;
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

/// A Parquet shard's failure: when a write to its file failed (a full
/// disk, a refused upload: polars' writer reports it as a malformed file,
/// without its kind), a storage error naming the shard, exit 4; else
/// polars' own.
fn shard_error(action: &str, file: &PendingFile, e: PolarsError) -> PrepError {
    match file.write_error() {
        Some(io) => storage_uri(action, file.display(), io),
        None => PrepError::polars(format!("{action} Parquet shard {}", file.display()), e),
    }
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

    /// Per column of a shard's first row group: (null count, has min, has max).
    fn column_stats(path: &std::path::Path) -> Vec<(String, Option<i64>, bool, bool)> {
        use polars_parquet::parquet::statistics::Statistics;
        let mut f = std::fs::File::open(path).unwrap();
        let meta = polars_parquet::read::read_metadata(&mut f).unwrap();
        let footer = meta.footer_buf.as_ref();
        meta.row_groups[0]
            .parquet_columns()
            .iter()
            .map(|c| {
                let name = c.descriptor().path_in_schema[0].to_string();
                let (nulls, min, max) = match c.statistics(footer).unwrap().unwrap() {
                    Statistics::Binary(s) => {
                        (s.null_count, s.min_value.is_some(), s.max_value.is_some())
                    }
                    Statistics::Int64(s) => {
                        (s.null_count, s.min_value.is_some(), s.max_value.is_some())
                    }
                    other => panic!("unexpected statistics {other:?}"),
                };
                (name, nulls, min, max)
            })
            .collect()
    }

    #[test]
    fn free_text_gets_null_counts_without_min_max() {
        // `text` averages well over 64 bytes in the first frame, `code` is
        // short; a later frame of short text is still free text (judged once).
        let frame = |from: i64, long: bool| {
            let text: Vec<Option<String>> = (from..from + 200)
                .map(|i| match (i % 50, long) {
                    (0, _) => None,
                    (_, true) => Some(format!("review {i}: {}", "words ".repeat(20))),
                    (_, false) => Some(format!("r{i}")),
                })
                .collect();
            let code: Vec<String> = (from..from + 200).map(|i| format!("c{}", i % 7)).collect();
            let id: Vec<i64> = (from..from + 200).collect();
            df!("id" => id, "text" => text, "code" => code).unwrap()
        };
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), OutputFormat::Parquet, 200, None);
        s.write(&frame(0, true)).unwrap();
        s.write(&frame(200, false)).unwrap();
        let shards = s.finish().unwrap();
        for sh in &shards {
            let stats = column_stats(&d.path().join(&sh.name));
            assert_eq!(
                stats,
                vec![
                    ("id".to_string(), Some(0), true, true),
                    ("text".to_string(), Some(4), false, false),
                    ("code".to_string(), Some(0), true, true),
                ],
                "{}",
                sh.name
            );
        }
        // Short text from the start keeps its min and max.
        let d = tempfile::tempdir().unwrap();
        let mut s = sink(d.path(), OutputFormat::Parquet, 200, None);
        s.write(&frame(0, false)).unwrap();
        let shards = s.finish().unwrap();
        let stats = column_stats(&d.path().join(&shards[0].name));
        assert_eq!(stats[1], ("text".to_string(), Some(4), true, true));
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
