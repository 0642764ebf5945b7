//! `_rejects/` (CONTRACT §10): the rows cleaning dropped, written during the
//! fit pass (the one pass that cleans every row exactly once), in input
//! order, as JSON Lines shards: the values as read (non-finite floats as
//! `"inf"`, `"-inf"`, `"NaN"`) plus `_source` (object key), `_line` (CSV:
//! the physical line the record starts on; Parquet: the 1-based row in the
//! object) and `_reason`.

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::chunk::SourceChunk;
use crate::error::{PrepError, Result};
use crate::pipeline::plan::{OutputCompression, OutputFormat, Plan};
use crate::storage::{InputObject, OutputDir};
use crate::transform::clean::Cleaned;
use crate::write::encode::{encode_row_parts, TextFormat};
use crate::write::sink::{ShardInfo, ShardSink, SinkBatch, SinkOptions};

/// The folder under the output.
pub const DIR: &str = "_rejects";

/// The `rejects` object of the run report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RejectsReport {
    pub rows: u64,
    pub shards: usize,
}

impl RejectsReport {
    pub fn of(shards: &[ShardInfo]) -> RejectsReport {
        RejectsReport {
            rows: shards.iter().map(|s| s.rows).sum(),
            shards: shards.len(),
        }
    }
}

/// Writes the dropped rows of each chunk as it is cleaned.
pub struct RejectWriter {
    sink: ShardSink,
}

impl RejectWriter {
    /// `prefix`: `part-` (single run) or `part-wIIII-` (a worker).
    pub fn new(out: &OutputDir, plan: &Plan, prefix: &str) -> RejectWriter {
        let opts = SinkOptions {
            format: OutputFormat::Jsonl,
            compression: OutputCompression::None,
            csv_header: false,
            max_rows: plan.output.shard_max_rows.get(),
            max_bytes: plan.output.shard_max_bytes,
            prefix: format!("{DIR}/{prefix}"),
        };
        RejectWriter {
            sink: ShardSink::new(out.clone(), opts),
        }
    }

    pub fn write(
        &mut self,
        chunk: &SourceChunk,
        cleaned: &Cleaned,
        files: &[InputObject],
    ) -> Result<()> {
        if cleaned.rejected.is_empty() {
            return Ok(());
        }
        let rows: Vec<IdxSize> = cleaned
            .rejected
            .iter()
            .map(|(i, _)| *i as IdxSize)
            .collect();
        let idx = IdxCa::from_vec(PlSmallStr::from_static("rows"), rows);
        let mut df = chunk
            .df
            .take(&idx)
            .map_err(|e| PrepError::polars("selecting rejected rows", e))?;
        let n = df.height();
        let key = files[chunk.file_index].key.as_str();
        let source = StringChunked::from_iter_values(
            PlSmallStr::from_static("_source"),
            std::iter::repeat_n(key, n),
        );
        let line: Int64Chunked = cleaned
            .rejected
            .iter()
            .map(|(i, _)| {
                Some(match chunk.lines.get(*i as usize) {
                    Some(l) => *l as i64,
                    None => (chunk.first_row + *i as u64) as i64,
                })
            })
            .collect();
        let reason = StringChunked::from_iter_values(
            PlSmallStr::from_static("_reason"),
            cleaned.rejected.iter().map(|(_, r)| r.as_str()),
        );
        for c in [
            source.into_column(),
            line.with_name(PlSmallStr::from_static("_line"))
                .into_column(),
            reason.into_column(),
        ] {
            df.with_column(c)
                .map_err(|e| PrepError::polars("adding reject columns", e))?;
        }
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows = encode_row_parts(&df, TextFormat::JsonlRejects)?;
        self.sink.write_batch(SinkBatch::Text { rows, names })
    }

    /// Commits the last shard; every shard written, in order.
    pub fn finish(self) -> Result<Vec<ShardInfo>> {
        self.sink.finish()
    }
}
