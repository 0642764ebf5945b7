//! Which rows of a flat Parquet column are null, read from the column's
//! definition levels alone.
//!
//! The fit pass over Parquet input needs a null-checked column that no step
//! reads (a long text column, typically) only to know which rows it drops:
//! decoding its values, most of the file's bytes, is wasted there. The
//! levels are the first part of each data page: stored as they are in a v2
//! page, compressed with the values in a v1 page (then only the levels'
//! bytes are decompressed where the codec allows: `page_prefix.rs`).
//!
//! ```text
//! column chunk bytes ─► pages ─► definition levels ─► valid[row] (level == max)
//! ```

use std::io::Cursor;
use std::ops::Range;
use std::sync::Arc;

use polars::prelude::*;

use polars_buffer::Buffer;
use polars_parquet::parquet::compression::{Compression, DecompressionContext};
use polars_parquet::parquet::encoding::hybrid_rle::HybridRleDecoder;
use polars_parquet::parquet::error::{ParquetError, ParquetResult};
use polars_parquet::parquet::metadata::{ColumnChunkMetadata, FileMetadata};
use polars_parquet::parquet::page::{
    split_buffer, split_buffer_v2, CompressedPage, DataPageHeader, Page,
};
use polars_parquet::parquet::read::{decompress, PageReader};

use crate::error::{DataError, DataLocation, PrepError};
use crate::read::recent_cells::RecentCells;

/// Whether the levels of this column chunk answer "is row i null": a
/// top-level optional column (one level per row, nothing repeated).
pub fn answers_nulls(column: &ColumnChunkMetadata) -> bool {
    let d = &column.descriptor().descriptor;
    d.max_rep_level == 0 && d.max_def_level == 1 && column.descriptor().path_in_schema.len() == 1
}

/// `valid[row]` for every row of the column chunk whose bytes are `chunk`
/// (exactly its byte range). The footer's null count, when it says 0,
/// answers without reading a page.
pub fn column_validity(
    chunk: Buffer<u8>,
    column: &ColumnChunkMetadata,
) -> ParquetResult<Vec<bool>> {
    let rows = usize::try_from(column.num_values()).unwrap_or(0);
    let mut valid = Vec::with_capacity(rows);
    let pages = PageReader::new(Cursor::new(chunk), column, Vec::new(), usize::MAX);
    let mut scratch = Vec::new();
    let mut ctx = DecompressionContext::Unset;
    for page in pages {
        let CompressedPage::Data(mut page) = page? else {
            continue; // the dictionary: values only
        };
        let n = page.num_values();
        let levels: Vec<u32> = match page.header() {
            DataPageHeader::V2(h) => {
                let rep = usize::try_from(h.repetition_levels_byte_length)?;
                let def = usize::try_from(h.definition_levels_byte_length)?;
                let buf: &[u8] = page.slice_mut();
                if buf.len() < rep + def {
                    return Err(ParquetError::OutOfSpec(
                        "levels longer than the page".into(),
                    ));
                }
                let split = split_buffer_v2(buf, rep, def)?;
                HybridRleDecoder::new(split.def, 1, n).collect()?
            }
            DataPageHeader::V1(_) => {
                let prefix =
                    crate::read::page_prefix::v1_def_levels(page.compression(), page.slice_mut());
                if let Some(levels) = prefix {
                    let levels = levels.map_err(|e| ParquetError::OutOfSpec(e.to_string()))?;
                    let levels: Vec<u32> = HybridRleDecoder::new(&levels[4..], 1, n).collect()?;
                    valid.extend(levels.iter().map(|&l| l == 1));
                    continue;
                }
                let compressed = page.compression() != Compression::Uncompressed;
                let Page::Data(mut page) =
                    decompress(CompressedPage::Data(page), &mut scratch, &mut ctx)?
                else {
                    unreachable!("a data page decompresses to a data page")
                };
                let levels = HybridRleDecoder::new(split_buffer(&page)?.def, 1, n).collect()?;
                if compressed {
                    // The next page decompresses into the same allocation.
                    scratch = std::mem::take(page.buffer_mut());
                }
                levels
            }
        };
        valid.extend(levels.iter().map(|&l| l == 1));
    }
    if valid.len() != rows {
        return Err(ParquetError::OutOfSpec(format!(
            "the pages hold {} values, the footer says {rows}",
            valid.len()
        )));
    }
    Ok(valid)
}

/// `valid[row]` per (column, row group), made once however many decoders
/// read slices of that row group; `Err`: making it failed (the error is
/// the thread's that made it; another thread tries again for its own).
pub type LevelCache = RecentCells<(String, usize), Result<Arc<Vec<bool>>, ()>>;

/// The column `name` of rows `offset..offset + len` of a file, as a Boolean
/// stand-in that is null exactly where the column is (true elsewhere), or
/// `None` when its levels do not answer that (nested, or absent). `chunk`
/// gives the bytes of row group `g`'s column chunk over `range`; `uri`
/// names the file in errors. `cache` keeps the levels of the row groups
/// being read, so the slices of a large row group decode them once, also
/// when two decoders read two of them at the same time.
pub fn null_stand_in(
    uri: &str,
    metadata: &FileMetadata,
    name: &str,
    offset: usize,
    len: usize,
    chunk: &mut dyn FnMut(usize, Range<u64>) -> crate::error::Result<Buffer<u8>>,
    cache: &LevelCache,
) -> crate::error::Result<Option<Column>> {
    let footer = metadata.footer_buf.as_ref();
    let mut valid: Vec<bool> = Vec::with_capacity(len);
    let mut first_row = 0usize;
    for (g, rg) in metadata.row_groups.iter().enumerate() {
        let rows = rg.num_rows();
        let (a, b) = (first_row.max(offset), (first_row + rows).min(offset + len));
        let group_start = first_row;
        first_row += rows;
        if a >= b {
            continue;
        }
        let mut leaves = rg
            .parquet_columns()
            .iter()
            .filter(|c| c.descriptor().path_in_schema.first().map(|p| p.as_str()) == Some(name));
        let (Some(column), None) = (leaves.next(), leaves.next()) else {
            return Ok(None);
        };
        if !answers_nulls(column) {
            return Ok(None);
        }
        let no_nulls = column
            .statistics(footer)
            .and_then(|s| s.ok())
            .and_then(|s| s.null_count())
            == Some(0);
        if no_nulls {
            valid.resize(valid.len() + (b - a), true);
            continue;
        }
        let mut levels = || -> crate::error::Result<Arc<Vec<bool>>> {
            let bytes = chunk(g, column.byte_range())?;
            let valid = column_validity(bytes, column).map_err(|e| {
                PrepError::bad_data(
                    DataLocation::file(uri).column(name),
                    DataError::BadParquet {
                        detail: format!(
                            "row group {g} (rows {}-{}): {e}",
                            group_start + 1,
                            group_start + rows
                        ),
                    },
                )
            })?;
            Ok(Arc::new(valid))
        };
        let (cell, _) = cache.cell((name.to_string(), g));
        let mut failed = None;
        let made = cell.get_or_init(|| {
            levels().map_err(|e| {
                failed = Some(e);
            })
        });
        let group = match (made, failed) {
            (Ok(v), _) => v.clone(),
            (Err(()), Some(e)) => return Err(e),
            (Err(()), None) => levels()?,
        };
        valid.extend_from_slice(&group[a - group_start..b - group_start]);
    }
    // `true` where a value is, null where none is: built as two bitmaps,
    // not value by value (a per-value builder was 1.5 % of a Parquet →
    // Parquet run's CPU).
    let len = valid.len();
    let validity = polars_arrow::bitmap::Bitmap::from_iter(valid);
    let validity = (validity.unset_bits() > 0).then_some(validity);
    let values = polars_arrow::bitmap::Bitmap::new_with_value(true, len);
    let array = polars_arrow::array::BooleanArray::new(
        polars_arrow::datatypes::ArrowDataType::Boolean,
        values,
        validity,
    );
    let col = BooleanChunked::with_chunk(PlSmallStr::from(name), array);
    Ok(Some(col.into_series().into_column()))
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;
    use polars_parquet::write::{
        CompressionOptions, FileWriter, RowGroupIterator, StatisticsOptions, Version, WriteOptions,
    };

    use crate::read::parquet_input::ParquetInput;
    use crate::storage::{InputObject, ObjectLocation};

    fn table(rows: usize) -> DataFrame {
        let text: Vec<Option<String>> = (0..rows)
            .map(|i| (i % 7 != 3 && i % 11 != 0).then(|| format!("review {i}, words")))
            .collect();
        let full: Vec<Option<i64>> = (0..rows as i64).map(Some).collect();
        let x: Vec<Option<f64>> = (0..rows).map(|i| Some(i as f64 * 0.5)).collect();
        df!("text" => text, "full" => full, "x" => x).unwrap()
    }

    /// Writes `df` with data pages of `version`, `group` rows a row group.
    fn write(df: &DataFrame, version: Version, group: usize, path: &std::path::Path) {
        write_with(df, version, CompressionOptions::Zstd(None), group, path)
    }

    fn write_with(
        df: &DataFrame,
        version: Version,
        compression: CompressionOptions,
        group: usize,
        path: &std::path::Path,
    ) {
        let options = WriteOptions {
            statistics: StatisticsOptions::full(),
            compression,
            version,
            data_page_size: Some(512), // several pages a column chunk
        };
        let schema = df.schema().to_arrow(CompatLevel::newest());
        let encodings = polars::io::parquet::write::get_encodings(&schema);
        let mut w = FileWriter::try_new(
            std::fs::File::create(path).unwrap(),
            schema.clone(),
            options,
        )
        .unwrap();
        for at in (0..df.height()).step_by(group) {
            let mut part = df.slice(at as i64, group);
            part.rechunk_mut();
            let batches = part.iter_chunks(CompatLevel::newest(), false).map(Ok);
            let groups =
                RowGroupIterator::try_new(batches, &schema, options, encodings.clone()).unwrap();
            for g in groups {
                w.write(part.height() as u64, g.unwrap()).unwrap();
            }
        }
        w.end(None).unwrap();
    }

    fn open(path: &std::path::Path) -> ParquetInput {
        let obj = InputObject {
            uri: path.display().to_string(),
            key: "t.parquet".into(),
            size: std::fs::metadata(path).unwrap().len(),
            etag: None,
            location: ObjectLocation::Local(path.to_path_buf()),
        };
        ParquetInput::open(&obj).unwrap()
    }

    #[test]
    fn stand_ins_are_null_exactly_where_the_column_is_v1_and_v2_pages() {
        let dir = tempfile::tempdir().unwrap();
        let df = table(1000);
        // v1 pages decompress only their levels (zstd, gzip, snappy,
        // none), or the whole page (lz4); v2 pages keep levels apart.
        let cases = [
            (Version::V1, CompressionOptions::Zstd(None), "v1-zstd"),
            (Version::V1, CompressionOptions::Snappy, "v1-snappy"),
            (Version::V1, CompressionOptions::Gzip(None), "v1-gzip"),
            (Version::V1, CompressionOptions::Uncompressed, "v1-none"),
            (Version::V1, CompressionOptions::Lz4Raw, "v1-lz4"),
            (Version::V2, CompressionOptions::Zstd(None), "v2-zstd"),
        ];
        for (version, compression, name) in cases {
            let path = dir.path().join(format!("{name}.parquet"));
            write_with(&df, version, compression, 300, &path);
            let input = open(&path);
            assert_eq!(input.row_group_sizes().len(), 4);
            // Ranges inside one row group and across several.
            for (offset, len) in [
                (0, 1000),
                (0, 300),
                (290, 20),
                (300, 10),
                (310, 20),
                (301, 598),
                (999, 1),
            ] {
                let got = input
                    .read_projected(offset, len, &["x".into()], &["text".into(), "full".into()])
                    .unwrap();
                let want = df.slice(offset as i64, len);
                assert_eq!(got.height(), len);
                for c in ["text", "full"] {
                    let stand_in = got.column(c).unwrap();
                    assert_eq!(stand_in.dtype(), &DataType::Boolean, "{name} {c}");
                    let got_nulls: Vec<bool> =
                        stand_in.is_null().iter().map(|v| v.unwrap()).collect();
                    let want_nulls: Vec<bool> = want
                        .column(c)
                        .unwrap()
                        .is_null()
                        .iter()
                        .map(|v| v.unwrap())
                        .collect();
                    assert_eq!(got_nulls, want_nulls, "{name} {c} rows {offset}+{len}");
                }
                assert!(got.column("x").unwrap().equals(want.column("x").unwrap()));
            }
        }
    }

    #[test]
    fn nothing_to_decode_takes_the_height_from_a_stand_in() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        let df = table(100);
        write(&df, Version::V1, 40, &path);
        let got = open(&path)
            .read_projected(10, 50, &[], &["text".into()])
            .unwrap();
        assert_eq!(got.height(), 50);
        assert_eq!(
            got.column("text").unwrap().null_count(),
            df.slice(10, 50).column("text").unwrap().null_count()
        );
    }
}
