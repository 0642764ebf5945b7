//! Parquet input, one slice of rows at a time, local or remote.
//!
//! Local files: polars memory-maps the file; a fresh reader per slice unmaps
//! it again, so resident pages stay bounded. Object stores: only the footer
//! and the byte range of the row group being read are fetched (range
//! requests). polars' reader wants the file as one byte slice, so those
//! ranges are placed at their offsets in a lazily zeroed buffer the size of
//! the object: the untouched (zero) pages are never materialized, so memory
//! is the footer plus one row group, not the object.

use std::io::Cursor;

use bytes::Bytes;
use polars::io::mmap::MmapBytesReader;
use polars::prelude::*;

use polars_buffer::Buffer;

use crate::error::{caught, DataError, DataLocation, PrepError, Result};
use crate::read::parquet_decimal::{decimal_columns, decimals_as_float, float_schema};
use crate::read::parquet_types::{
    check_int96_range, check_readable, check_repeated_fields, int96_columns,
};
use crate::read::parquet_validity::{null_stand_in, LevelCache};
use crate::read::recent_cells::RecentCells;
use crate::storage::remote;
use crate::storage::{storage, InputObject, ObjectLocation};

/// A zero-filled buffer of an object's size: a fresh anonymous mapping,
/// whose pages cost nothing until written (whatever the allocator keeps).
/// It reserves no memory up front (`MAP_NORESERVE`), so an object larger
/// than the machine's memory can be read by ranges.
struct SparseBuf {
    ptr: *mut u8,
    len: usize,
}

// The buffer is plain bytes, written once before it is shared read-only.
unsafe impl Send for SparseBuf {}
unsafe impl Sync for SparseBuf {}

impl SparseBuf {
    fn new(len: usize) -> std::io::Result<SparseBuf> {
        let len = len.max(1);
        // SAFETY: a private anonymous mapping: no file, no fixed address.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(SparseBuf {
            ptr: ptr.cast(),
            len,
        })
    }

    /// A buffer for remote object `obj`, or an error naming it.
    fn for_object(obj: &InputObject) -> Result<SparseBuf> {
        SparseBuf::new(obj.size as usize).map_err(|source| PrepError::Io {
            context: format!(
                "cannot map {} bytes of address space to read {} by ranges",
                obj.size, obj.uri
            ),
            source,
        })
    }

    fn place(&mut self, offset: u64, bytes: &[u8]) {
        let start = offset as usize;
        assert!(start + bytes.len() <= self.len, "range inside the object");
        // SAFETY: bounds checked above; we own the buffer exclusively here.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.add(start), bytes.len()) }
    }
}

impl AsRef<[u8]> for SparseBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: ptr is valid for len bytes, zero-filled by the kernel.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for SparseBuf {
    fn drop(&mut self) {
        // SAFETY: mapped in `new` with this length, unmapped once.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Remote row groups kept fetched: those the decoders are on and the ones
/// fetched ahead of them.
const GROUPS_KEPT: usize = 4;

/// Row groups whose null levels are kept per column: those the decoders are
/// on (a row group read as slices by two decoders at once decodes them once).
const LEVELS_KEPT_PER_COLUMN: usize = 4;

pub struct ParquetInput {
    obj: InputObject,
    metadata: FileMetadataRef,
    pub num_rows: usize,
    pub schema: Schema,
    footer: Option<(u64, Bytes)>,
    /// Row groups of a remote object fetched or being fetched, by index,
    /// filled once by whichever thread gets there first (a decoder or the
    /// look-ahead); `None`: the look-ahead failed.
    groups: RecentCells<usize, Option<Bytes>>,
    /// Null-only columns' levels, by column and row group.
    levels: LevelCache,
    /// Columns stored as int96 timestamps (checked for their range).
    int96: Vec<String>,
    /// Decimal columns and their scales, converted to float64 once decoded.
    decimals: Vec<(String, usize)>,
}

/// A file polars cannot read; a logical type newer than its reader knows
/// is told apart from damage.
fn bad_file(uri: &str, e: impl std::fmt::Display) -> PrepError {
    let detail = e.to_string();
    let detail = detail
        .strip_prefix("parquet: ")
        .unwrap_or(&detail)
        .to_string();
    let error = if detail.contains("LogicalType") {
        DataError::UnknownLogicalType { detail }
    } else {
        DataError::BadParquet { detail }
    };
    PrepError::bad_data(DataLocation::file(uri), error)
}

impl ParquetInput {
    pub fn open(obj: &InputObject) -> Result<ParquetInput> {
        let (mut reader, footer) = match &obj.location {
            ObjectLocation::Local(path) => {
                let f = std::fs::File::open(path).map_err(|e| storage("opening", path, e))?;
                let r: ParquetReader<Box<dyn MmapBytesReader>> = ParquetReader::new(Box::new(f));
                (r, None)
            }
            ObjectLocation::Remote(loc) => {
                let size = obj.size;
                if size < 12 {
                    return Err(bad_file(&obj.uri, "too small"));
                }
                let guess = Self::footer_guess(size);
                let tail_len = guess.end - guess.start;
                let mut tail = remote::get_range(loc, &loc.path, guess, obj.etag.as_deref())?;
                let n = tail.len();
                if &tail[n - 4..] != b"PAR1" {
                    return Err(bad_file(&obj.uri, "no PAR1 magic at the end"));
                }
                let meta_len =
                    u32::from_le_bytes(tail[n - 8..n - 4].try_into().expect("4 bytes")) as u64;
                let footer_len = meta_len + 8;
                if footer_len > size {
                    return Err(bad_file(&obj.uri, "footer longer than the object"));
                }
                if footer_len > tail_len {
                    tail = remote::get_range(
                        loc,
                        &loc.path,
                        size - footer_len..size,
                        obj.etag.as_deref(),
                    )?;
                }
                let start = size - tail.len() as u64;
                let mut buf = SparseBuf::for_object(obj)?;
                buf.place(start, &tail);
                let r: ParquetReader<Box<dyn MmapBytesReader>> =
                    ParquetReader::new(Box::new(Cursor::new(buf)));
                (r, Some((start, tail)))
            }
        };
        let uri = &obj.uri;
        let num_rows = reader.num_rows().map_err(|e| bad_file(uri, e))?;
        let metadata = reader.get_metadata().map_err(|e| bad_file(uri, e))?.clone();
        let arrow_schema = caught(|| reader.schema())
            .map_err(|panic| bad_file(uri, panic))?
            .map_err(|e| bad_file(uri, e))?;
        check_repeated_fields(&metadata, uri)?;
        check_readable(&arrow_schema, uri)?;
        let int96 = int96_columns(&metadata);
        let decimals = decimal_columns(&arrow_schema);
        Ok(ParquetInput {
            obj: obj.clone(),
            metadata,
            num_rows,
            schema: float_schema(Schema::from_arrow_schema(arrow_schema.as_ref()), &decimals),
            footer,
            groups: RecentCells::new(GROUPS_KEPT),
            levels: LevelCache::new(LEVELS_KEPT_PER_COLUMN * arrow_schema.len()),
            int96,
            decimals,
        })
    }

    /// The tail first read of a remote object of `size` bytes: its last
    /// 64 KiB, which holds the footer of most files (else it is read again).
    pub fn footer_guess(size: u64) -> std::ops::Range<u64> {
        size - size.min(64 << 10)..size
    }

    /// Number of row groups and their compressed sizes.
    pub fn row_group_sizes(&self) -> Vec<u64> {
        self.metadata
            .row_groups
            .iter()
            .map(|rg| rg.compressed_size() as u64)
            .collect()
    }

    /// (first row, end row) of row groups `groups`.
    /// The row ranges to decode for rows `start..stop`, one at a time: a
    /// whole row group (its part in the range) when it holds at most
    /// `max_rows`, else slices of `max_rows`. A slice that ends inside a row
    /// group makes the next slice decode that group's pages again, so
    /// row-group-sized reads decode each page once.
    pub fn read_ranges(&self, start: usize, stop: usize, max_rows: usize) -> Vec<(usize, usize)> {
        let sizes: Vec<usize> = self
            .metadata
            .row_groups
            .iter()
            .map(|rg| rg.num_rows())
            .collect();
        read_ranges(&sizes, start, stop, max_rows)
    }

    pub fn row_range(&self, groups: std::ops::Range<usize>) -> (usize, usize) {
        let rows: Vec<usize> = self
            .metadata
            .row_groups
            .iter()
            .map(|rg| rg.num_rows())
            .collect();
        let start: usize = rows[..groups.start.min(rows.len())].iter().sum();
        let len: usize = rows[groups.start.min(rows.len())..groups.end.min(rows.len())]
            .iter()
            .sum();
        (start, start + len)
    }

    /// Null count per top-level column from the footer statistics, or
    /// `None` for a column where some row group lacks them.
    pub fn footer_null_counts(&self) -> Vec<Option<u64>> {
        let footer = self.metadata.footer_buf.as_ref();
        self.schema
            .iter_names()
            .map(|name| {
                let mut total = 0u64;
                for rg in &self.metadata.row_groups {
                    let chunks: Vec<_> = rg
                        .parquet_columns()
                        .iter()
                        .filter(|c| {
                            c.descriptor().path_in_schema.first().map(|p| p.as_str())
                                == Some(name.as_str())
                        })
                        .collect();
                    // Nested (a list's or struct's leaves count their
                    // items' nulls, not the rows') or missing: not
                    // answerable from statistics.
                    if chunks.len() != 1 || chunks[0].descriptor().path_in_schema.len() != 1 {
                        return None;
                    }
                    let stats = chunks[0].statistics(footer)?.ok()?;
                    total += u64::try_from(stats.null_count()?).ok()?;
                }
                Some(total)
            })
            .collect()
    }

    /// Starts fetching row group `i` (parallel ranged GETs) so its bytes are
    /// there when a decoder reaches it; when `i` is already under way, the
    /// one after it (two decoders take row groups in turn).
    fn fetch_ahead(&self, loc: &crate::storage::remote::RemoteLocation, i: usize) {
        for g in [i, i + 1] {
            let Some(rg) = self.metadata.row_groups.get(g) else {
                return;
            };
            let (cell, new) = self.groups.cell(g);
            if !new {
                continue;
            }
            let (store, path, range) = (loc.store.clone(), loc.path.clone(), rg.full_byte_range());
            let etag = self.obj.etag.clone();
            let _ = std::thread::Builder::new()
                .name("prep-parquet-ahead".into())
                .spawn(move || {
                    cell.get_or_init(|| {
                        crate::storage::remote_read::get_range_parallel(
                            store,
                            path,
                            range,
                            etag.as_deref(),
                        )
                        .ok()
                    });
                });
            return;
        }
    }

    /// The bytes of row group `i` of a remote object: fetched already or
    /// being fetched (then this waits for them), or fetched now.
    fn group_bytes(&self, loc: &remote::RemoteLocation, i: usize) -> Result<Bytes> {
        let (cell, _) = self.groups.cell(i);
        let range = self.metadata.row_groups[i].full_byte_range();
        let mut failed = None;
        let etag = self.obj.etag.as_deref();
        let got =
            cell.get_or_init(
                || match remote::get_range(loc, &loc.path, range.clone(), etag) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        failed = Some(e);
                        None
                    }
                },
            );
        match (got, failed) {
            (Some(b), _) => Ok(b.clone()),
            (None, Some(e)) => Err(e),
            // A failed look-ahead is retried here, with this read's own
            // error if it fails again.
            (None, None) => remote::get_range(loc, &loc.path, range, etag),
        }
    }

    /// Rows `offset..offset + len` with the columns `values` decoded and,
    /// for each column of `nulls_only`, a Boolean stand-in that is null
    /// exactly where the column is, read from its definition levels
    /// without decoding its values ([`null_stand_in`]); a column whose
    /// levels do not answer that is decoded instead.
    pub fn read_projected(
        &self,
        offset: usize,
        len: usize,
        values: &[String],
        nulls_only: &[String],
    ) -> Result<DataFrame> {
        let mut decoded: Vec<String> = values.to_vec();
        let mut stand_ins = Vec::new();
        for name in nulls_only {
            let mut chunk = |g: usize, range: std::ops::Range<u64>| self.column_chunk(g, range);
            match null_stand_in(
                &self.obj.uri,
                &self.metadata,
                name,
                offset,
                len,
                &mut chunk,
                &self.levels,
            )? {
                Some(col) => stand_ins.push(col),
                None => decoded.push(name.clone()),
            }
        }
        if decoded.is_empty() {
            // Nothing to decode: the height comes from a stand-in.
            let Some(first) = stand_ins.first() else {
                return self.read(offset, len);
            };
            decoded.push(first.name().to_string());
            stand_ins.remove(0);
        }
        let order: Vec<String> = self
            .schema
            .iter_names()
            .filter(|n| decoded.iter().any(|d| d == n.as_str()))
            .map(|n| n.to_string())
            .collect();
        let mut df = self.read_impl(offset, len, Some(order))?;
        for col in stand_ins {
            df.with_column(col)
                .map_err(|e| PrepError::polars("adding a null stand-in column", e))?;
        }
        Ok(df)
    }

    /// The bytes `range` (inside row group `g`) of the file.
    fn column_chunk(&self, g: usize, range: std::ops::Range<u64>) -> Result<Buffer<u8>> {
        match &self.obj.location {
            ObjectLocation::Local(path) => {
                use std::io::{Read, Seek, SeekFrom};
                let mut f = std::fs::File::open(path).map_err(|e| storage("opening", path, e))?;
                let mut buf = vec![0u8; (range.end - range.start) as usize];
                f.seek(SeekFrom::Start(range.start))
                    .and_then(|_| f.read_exact(&mut buf))
                    .map_err(|e| storage("reading", path, e))?;
                Ok(Buffer::from_vec(buf))
            }
            ObjectLocation::Remote(loc) => {
                let group = self.group_bytes(loc, g)?;
                let at = self.metadata.row_groups[g].full_byte_range().start;
                let (a, b) = ((range.start - at) as usize, (range.end - at) as usize);
                if b > group.len() {
                    return Err(bad_file(
                        &self.obj.uri,
                        "a column chunk outside its row group",
                    ));
                }
                Ok(Buffer::from_owner(group.slice(a..b)))
            }
        }
    }

    /// Reads rows `offset..offset + len` of the named columns only.
    pub fn read_columns(&self, offset: usize, len: usize, columns: &[String]) -> Result<DataFrame> {
        self.read_impl(offset, len, Some(columns.to_vec()))
    }

    /// Reads rows `offset..offset + len`.
    pub fn read(&self, offset: usize, len: usize) -> Result<DataFrame> {
        self.read_impl(offset, len, None)
    }

    fn read_impl(
        &self,
        offset: usize,
        len: usize,
        columns: Option<Vec<String>>,
    ) -> Result<DataFrame> {
        // Locally the reader sees the whole file and its own metadata. A
        // remote read holds only the row groups it fetched: the reader is
        // given metadata listing just those (polars may touch the row group
        // before a slice that starts on a boundary, whose bytes are absent).
        let mut metadata = self.metadata.clone();
        let mut slice_offset = offset;
        let reader: Box<dyn MmapBytesReader> = match &self.obj.location {
            ObjectLocation::Local(path) => {
                Box::new(std::fs::File::open(path).map_err(|e| storage("opening", path, e))?)
            }
            ObjectLocation::Remote(loc) => {
                let (footer_start, footer) = self.footer.as_ref().expect("remote footer");
                let mut buf = SparseBuf::for_object(&self.obj)?;
                buf.place(*footer_start, footer);
                let mut first_row = 0usize;
                let mut last = None;
                let mut kept = Vec::new();
                let mut rows_before = None;
                for (i, rg) in self.metadata.row_groups.iter().enumerate() {
                    let rows = rg.num_rows();
                    let overlaps = first_row < offset + len && offset < first_row + rows;
                    first_row += rows;
                    if !overlaps {
                        continue;
                    }
                    rows_before.get_or_insert(first_row - rows);
                    kept.push(rg.clone());
                    let range = rg.full_byte_range();
                    let bytes = self.group_bytes(loc, i)?;
                    buf.place(range.start, &bytes);
                    last = Some(i);
                }
                if let Some(next) = last.map(|i| i + 1) {
                    self.fetch_ahead(loc, next);
                }
                let mut only = self.metadata.as_ref().clone();
                only.num_rows = kept.iter().map(|rg| rg.num_rows()).sum();
                only.row_groups = kept;
                metadata = std::sync::Arc::new(only);
                slice_offset = offset - rows_before.unwrap_or(0);
                Box::new(Cursor::new(buf))
            }
        };
        let mut reader = ParquetReader::new(reader)
            .with_slice(Some((slice_offset, len)))
            .with_columns(columns);
        reader.set_metadata(metadata);
        let rows = format!("rows {}-{}", offset + 1, offset + len);
        // polars asserts on some malformed pages instead of failing.
        let df = caught(|| reader.finish())
            .map_err(|panic| bad_file(&self.obj.uri, format!("{rows}: {panic}")))?
            .map_err(|e| bad_file(&self.obj.uri, format!("{rows}: {e}")))?;
        check_int96_range(&df, &self.int96, &self.obj.uri, offset + 1)?;
        decimals_as_float(df, &self.decimals)
    }
}

/// See [`ParquetInput::read_ranges`]: `(first row, rows)` pieces of
/// `start..stop` that never cross a row group boundary.
fn read_ranges(
    row_groups: &[usize],
    start: usize,
    stop: usize,
    max_rows: usize,
) -> Vec<(usize, usize)> {
    let max_rows = max_rows.max(1);
    let mut out = Vec::new();
    let mut first = 0usize;
    for &rows in row_groups {
        let (a, b) = (first.max(start), (first + rows).min(stop));
        first += rows;
        let mut at = a;
        while at < b {
            let len = if b - a <= max_rows {
                b - a
            } else {
                max_rows.min(b - at)
            };
            out.push((at, len));
            at += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{read_ranges, SparseBuf};
    use proptest::prelude::*;

    /// Pages of `buf` the kernel holds in memory (`mincore`).
    fn resident_pages(buf: &SparseBuf) -> usize {
        let page = 4096;
        let mut flags = vec![0u8; buf.len.div_ceil(page)];
        // SAFETY: the range is the mapping made by `SparseBuf::new`, page-aligned.
        let rc = unsafe { libc::mincore(buf.ptr.cast(), buf.len, flags.as_mut_ptr()) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        flags.iter().filter(|f| **f & 1 == 1).count()
    }

    #[test]
    fn sparse_buffer_holds_only_the_placed_ranges() {
        let mut buf = SparseBuf::new(24 << 20).unwrap();
        assert_eq!(resident_pages(&buf), 0);
        buf.place(8 << 20, &[7u8; 10_000]);
        buf.place((24 << 20) - 100, &[9u8; 100]);
        // 10,000 bytes span 3 pages, the tail 1 (with 4 KiB pages).
        assert!(resident_pages(&buf) <= 4, "{} pages", resident_pages(&buf));
        let bytes = buf.as_ref();
        assert_eq!(bytes.len(), 24 << 20);
        assert!(bytes[(8 << 20)..(8 << 20) + 10_000].iter().all(|b| *b == 7));
        assert!(bytes[(24 << 20) - 100..].iter().all(|b| *b == 9));
        assert!(bytes[..8 << 20].iter().all(|b| *b == 0));
    }

    /// A remote object larger than memory and swap is still read by
    /// ranges: its buffer reserves nothing (unless the kernel is set to
    /// strict accounting, `vm.overcommit_memory = 2`, where mapping it is an
    /// error, not an abort).
    #[test]
    fn sparse_buffer_larger_than_memory_maps() {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kib = |key: &str| -> usize {
            meminfo
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let size = 2 * (kib("MemTotal:") + kib("SwapTotal:")) * 1024;
        let strict = std::fs::read_to_string("/proc/sys/vm/overcommit_memory")
            .is_ok_and(|m| m.trim() == "2");
        match SparseBuf::new(size) {
            Ok(mut buf) => {
                buf.place(size as u64 - 8, &[1u8; 8]);
                assert_eq!(&buf.as_ref()[size - 8..], &[1u8; 8]);
                assert!(resident_pages(&buf) <= 1);
            }
            Err(e) => assert!(strict, "mapping {size} bytes failed: {e}"),
        }
    }

    #[test]
    fn whole_groups_when_small_slices_when_large() {
        assert_eq!(
            read_ranges(&[90, 90, 500], 0, 680, 100),
            vec![
                (0, 90),
                (90, 90),
                (180, 100),
                (280, 100),
                (380, 100),
                (480, 100),
                (580, 100)
            ]
        );
        assert_eq!(
            read_ranges(&[90, 90], 50, 120, 100),
            vec![(50, 40), (90, 30)]
        );
    }

    proptest! {
        #[test]
        fn ranges_tile_the_rows_inside_row_groups(
            groups in proptest::collection::vec(1usize..300, 1..12),
            a in 0usize..4000,
            b in 0usize..4000,
            max_rows in 1usize..200,
        ) {
            let total: usize = groups.iter().sum();
            let (start, stop) = (a.min(b).min(total), a.max(b).min(total));
            let ranges = read_ranges(&groups, start, stop, max_rows);
            let mut at = start;
            let bounds: Vec<usize> = groups.iter().scan(0, |s, g| { *s += g; Some(*s) }).collect();
            for (first, len) in ranges {
                prop_assert_eq!(first, at);
                prop_assert!(len > 0);
                // Never across a row group boundary.
                prop_assert!(!bounds.iter().any(|&e| first < e && e < first + len));
                at += len;
            }
            prop_assert_eq!(at, stop);
        }
    }
}
