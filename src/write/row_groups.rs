//! Parquet frames → row groups of compressed pages, cut where the shard
//! writer will place them.
//!
//! ```text
//! frames ─► plan (row groups, shard ends) ─► pages encoded + compressed on every core ─► [GroupStep]
//! ```
//! The planner keeps its own count of how full the open shard is, so it can
//! run on one thread while the shard writer ([`crate::write::sink`]) writes
//! the previous batch's steps on another: encoding the next frames no longer
//! waits for the file writes and the shard closes.

use std::sync::OnceLock;

use polars::prelude::*;
use rayon::prelude::*;

use crate::error::{PrepError, Result};
use crate::timings::{timed, Stage};
use crate::write::page_compress::compress_page;

/// How full a shard is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fill {
    pub rows: usize,
    pub bytes: u64,
}

/// Where a shard closes: whichever limit comes first.
#[derive(Debug, Clone, Copy)]
pub struct ShardLimits {
    pub max_rows: usize,
    pub max_bytes: Option<u64>,
}

impl ShardLimits {
    /// How many of the next rows fit in a shard this full, given the byte
    /// size of the first `k` of them (`sizes(k)`); at least one when the
    /// shard is empty.
    pub fn fitting(&self, fill: Fill, sizes: &dyn Fn(usize) -> u64, available: usize) -> usize {
        let row_room = self.max_rows - fill.rows;
        let mut k = available.min(row_room);
        if let Some(max) = self.max_bytes {
            let room = max.saturating_sub(fill.bytes);
            // The largest k whose rows fit.
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
}

/// A row group ready to append: its rows and compressed pages per column.
pub type EncodedGroup = (u64, Vec<Vec<polars_parquet::write::CompressedPage>>);

/// What the shard writer does, in order.
pub enum GroupStep {
    /// Append these row groups (`rows` in all, `bytes` counted against
    /// `shard_max_bytes`) to the open shard, opening one (of `schema`) if
    /// none is open.
    Rows {
        schema: SchemaRef,
        rows: usize,
        bytes: u64,
        groups: Vec<EncodedGroup>,
    },
    /// Close the open shard.
    Close,
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
///
/// Free text (a top-level string or binary column whose values average
/// more than [`FREE_TEXT_BYTES`] in the run's first row group) gets null
/// counts but no min/max statistics: the min and max of review text prune
/// no row group, and computing them compared every string twice (4 % of a
/// Parquet → Parquet run's CPU time). Every other column keeps polars'
/// statistics (strings truncated to 64 bytes).
struct RowGroupEncoder {
    fields: Vec<polars_parquet::write::ParquetType>,
    encodings: Vec<Vec<polars_parquet::write::Encoding>>,
    /// The encodings after the first row group (see above).
    settled: OnceLock<Vec<Vec<polars_parquet::write::Encoding>>>,
    /// Per column: free text (see above), judged on the first row group.
    free_text: OnceLock<Vec<bool>>,
    options: polars_parquet::write::WriteOptions,
}

/// Mean bytes per value above which a string column is free text.
const FREE_TEXT_BYTES: usize = 64;

/// Whether `array` is a string or binary column of free text.
fn is_free_text(array: &dyn polars_arrow::array::Array) -> bool {
    use polars_arrow::array::{BinaryViewArray, Utf8ViewArray};
    let any = array.as_any();
    let bytes = if let Some(a) = any.downcast_ref::<Utf8ViewArray>() {
        a.total_bytes_len()
    } else if let Some(a) = any.downcast_ref::<BinaryViewArray>() {
        a.total_bytes_len()
    } else {
        return false;
    };
    let values = array.len() - array.null_count();
    values > 0 && bytes / values > FREE_TEXT_BYTES
}

impl RowGroupEncoder {
    /// The encoder for frames of `schema`: the Parquet schema is the one
    /// polars' writer derives (taken from a writer that writes nowhere).
    fn new(schema: &Schema, compression: ParquetCompression) -> PolarsResult<Self> {
        let mut probe = ParquetWriter::new(std::io::sink())
            .with_compression(compression)
            .batched(schema)?;
        let arrow = schema.to_arrow(CompatLevel::newest());
        Ok(RowGroupEncoder {
            fields: probe.parquet_schema().fields().to_vec(),
            encodings: polars::io::parquet::write::get_encodings(&arrow).to_vec(),
            settled: OnceLock::new(),
            free_text: OnceLock::new(),
            options: polars_parquet::write::WriteOptions {
                statistics: polars::io::parquet::write::StatisticsOptions::default(),
                compression: compression.into(),
                version: polars_parquet::write::Version::V1,
                data_page_size: None,
            },
        })
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
        use polars_parquet::write::{array_to_columns, Encoding, Page};
        let encodings = self.settled.get().unwrap_or(&self.encodings);
        let free_text = self.free_text.get_or_init(|| {
            batch
                .columns()
                .iter()
                .map(|a| is_free_text(a.as_ref()))
                .collect()
        });
        let mut counts_only = self.options;
        counts_only.statistics.min_value = false;
        counts_only.statistics.max_value = false;
        let encoded: Vec<Vec<Vec<Page>>> = batch
            .columns()
            .par_iter()
            .zip(self.fields.par_iter())
            .zip(encodings.par_iter())
            .zip(free_text.par_iter())
            .map(|(((array, ty), enc), &free)| {
                let options = if free { counts_only } else { self.options };
                array_to_columns(array, ty.clone(), options, enc)?
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
        leaves
            .into_par_iter()
            .map(|pages| {
                pages
                    .into_par_iter()
                    .map(|p| compress_page(p, compression))
                    .collect::<PolarsResult<Vec<_>>>()
            })
            .collect()
    }
}

/// Cuts frames into row groups and shard ends, and encodes the groups.
pub struct GroupPlanner {
    limits: ShardLimits,
    compression: ParquetCompression,
    /// The open shard as planned so far (the writer may be behind).
    fill: Fill,
    /// One encoder for every shard of the run (same schema).
    encoder: Option<RowGroupEncoder>,
}

impl GroupPlanner {
    pub fn new(limits: ShardLimits, compression: ParquetCompression) -> Self {
        GroupPlanner {
            limits,
            compression,
            fill: Fill::default(),
            encoder: None,
        }
    }

    /// The steps that write these consecutive frames. Row groups are cut as
    /// planning the frames one at a time would cut them, and encoded
    /// together on every core (one frame's long text column no longer
    /// leaves a core idle).
    pub fn plan(&mut self, frames: &[DataFrame]) -> Result<Vec<GroupStep>> {
        let frames: Vec<&DataFrame> = frames.iter().filter(|df| df.height() > 0).collect();
        let Some(first) = frames.first() else {
            return Ok(Vec::new());
        };
        if self.encoder.is_none() {
            let encoder = RowGroupEncoder::new(first.schema().as_ref(), self.compression)
                .map_err(|e| PrepError::polars("preparing the Parquet shard writer", e))?;
            self.encoder = Some(encoder);
        }
        // 1. Where the row groups and shard ends fall.
        let mut cuts: Vec<Option<(DataFrame, u64)>> = Vec::new();
        for df in &frames {
            let per_row = (df.estimated_size() as f64 / df.height() as f64)
                .ceil()
                .max(1.0) as u64;
            let mut next = 0usize;
            while next < df.height() {
                let sizes = |k: usize| k as u64 * per_row;
                let k = self.limits.fitting(self.fill, &sizes, df.height() - next);
                if k == 0 {
                    cuts.push(None);
                    self.fill = Fill::default();
                    continue;
                }
                cuts.push(Some((df.slice(next as i64, k), k as u64 * per_row)));
                self.fill.rows += k;
                self.fill.bytes += k as u64 * per_row;
                next += k;
                if self.fill.rows >= self.limits.max_rows {
                    cuts.push(None);
                    self.fill = Fill::default();
                }
            }
        }
        // 2. Every row group's pages, encoded and compressed together; the
        // run's first row group alone first, so the encodings it settles
        // are the same however the frames were batched.
        let encoder = self.encoder.as_ref().expect("made above");
        let encode = |cut: &Option<(DataFrame, u64)>| -> PolarsResult<GroupStep> {
            Ok(match cut {
                Some((df, bytes)) => GroupStep::Rows {
                    schema: df.schema().clone(),
                    rows: df.height(),
                    bytes: *bytes,
                    groups: encoder.encode_frame(df)?,
                },
                None => GroupStep::Close,
            })
        };
        let alone = usize::from(encoder.settled.get().is_none());
        let mut steps: Vec<PolarsResult<GroupStep>> = cuts[..alone].iter().map(encode).collect();
        steps.extend(cuts[alone..].par_iter().map(encode).collect::<Vec<_>>());
        steps
            .into_iter()
            .collect::<PolarsResult<Vec<_>>>()
            .map_err(|e| PrepError::polars("encoding Parquet pages", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_limit_fits_the_most_rows_and_an_empty_shard_takes_one() {
        let limits = ShardLimits {
            max_rows: 100,
            max_bytes: Some(25),
        };
        let tens = |k: usize| 10 * k as u64;
        assert_eq!(limits.fitting(Fill::default(), &tens, 7), 2);
        let half = Fill { rows: 1, bytes: 10 };
        assert_eq!(limits.fitting(half, &tens, 7), 1);
        let full = Fill { rows: 2, bytes: 20 };
        assert_eq!(limits.fitting(full, &tens, 7), 0);
        let huge = |k: usize| 100 * k as u64;
        assert_eq!(limits.fitting(Fill::default(), &huge, 7), 1);
        let rows_only = ShardLimits {
            max_rows: 4,
            max_bytes: None,
        };
        assert_eq!(rows_only.fitting(Fill { rows: 3, bytes: 0 }, &tens, 7), 1);
    }
}
