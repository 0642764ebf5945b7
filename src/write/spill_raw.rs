//! The raw spill format: a chunk's Arrow buffers written one after another
//! as they lie in memory, with their places kept in memory ([`Layout`]).
//!
//! Enters: a cleaned chunk whose columns are numbers, booleans, dates,
//! text or nulls (everything CSV input produces). Leaves: one file of
//! 64-byte-aligned buffers, and the [`Layout`] that says where each one
//! lies; [`read`] turns the file's bytes and that layout back into the
//! chunk, its columns pointing into those bytes.
//!
//! Why not Arrow IPC: the spill never leaves this process, so it needs no
//! self-describing format, and IPC's writer copies every text column twice
//! before it reaches the file (it compacts the text of filtered rows, then
//! gathers every buffer into one body). Here each buffer is copied once,
//! into the file's write buffer. The cost: text of the rows that cleaning
//! dropped is written too (a few percent; a column holding more than twice
//! the text its rows use is compacted first).

use std::io::{self, Write};
use std::ops::Range;
use std::sync::Arc;

use polars::prelude::*;
use polars_arrow::array::{
    Array, BinaryViewArray, BooleanArray, NullArray, PrimitiveArray, Utf8ViewArray, View,
};
use polars_arrow::bitmap::Bitmap;
use polars_arrow::datatypes::ArrowDataType;
use polars_arrow::types::NativeType;
use polars_buffer::{Buffer, SharedStorage};

use crate::storage::direct_file::FileBytes;

/// Where one chunk's buffers lie in its spill file.
#[derive(Debug)]
pub struct Layout {
    height: usize,
    columns: Vec<ColumnAt>,
}

#[derive(Debug)]
struct ColumnAt {
    name: PlSmallStr,
    dtype: DataType,
    arrays: Vec<ArrayAt>,
}

#[derive(Debug)]
struct ArrayAt {
    arrow: ArrowDataType,
    len: usize,
    validity: Option<BitsAt>,
    data: DataAt,
}

#[derive(Debug)]
enum DataAt {
    /// Fixed-width values (numbers, dates' days, datetimes' ticks).
    Values(Range<usize>),
    Bits(BitsAt),
    Views {
        views: Range<usize>,
        buffers: Vec<Range<usize>>,
        bytes_len: usize,
    },
    Null,
}

#[derive(Debug)]
struct BitsAt {
    bytes: Range<usize>,
    offset: usize,
}

/// Buffers start at multiples of this, so every type reads in place.
const ALIGN: usize = 64;

/// Whether every column of `df` can be spilled raw.
pub fn fits(df: &DataFrame) -> bool {
    df.columns().iter().all(|c| {
        c.as_materialized_series()
            .chunks()
            .iter()
            .all(|a| raw_type(a.dtype()))
    })
}

fn raw_type(t: &ArrowDataType) -> bool {
    use ArrowDataType as A;
    matches!(
        t,
        A::Boolean
            | A::Int8
            | A::Int16
            | A::Int32
            | A::Int64
            | A::UInt8
            | A::UInt16
            | A::UInt32
            | A::UInt64
            | A::Float32
            | A::Float64
            | A::Utf8View
            | A::BinaryView
            | A::Null
    )
}

/// Writes the buffers of `df` (which [`fits`]) to `w`.
pub fn write<W: Write>(w: W, df: &DataFrame) -> io::Result<Layout> {
    let mut out = Placer { w, at: 0 };
    let mut columns = Vec::with_capacity(df.width());
    for c in df.columns() {
        let s = c.as_materialized_series();
        let mut arrays = Vec::with_capacity(s.chunks().len());
        for a in s.chunks() {
            arrays.push(out.array(a.as_ref())?);
        }
        columns.push(ColumnAt {
            name: s.name().clone(),
            dtype: s.dtype().clone(),
            arrays,
        });
    }
    Ok(Layout {
        height: df.height(),
        columns,
    })
}

/// A writer that knows its position and pads each buffer to [`ALIGN`].
struct Placer<W: Write> {
    w: W,
    at: usize,
}

impl<W: Write> Placer<W> {
    fn put(&mut self, bytes: &[u8]) -> io::Result<Range<usize>> {
        let pad = self.at.next_multiple_of(ALIGN) - self.at;
        self.w.write_all(&[0u8; ALIGN][..pad])?;
        self.w.write_all(bytes)?;
        let start = self.at + pad;
        self.at = start + bytes.len();
        Ok(start..self.at)
    }

    fn bits(&mut self, b: &Bitmap) -> io::Result<BitsAt> {
        let (bytes, offset, _) = b.as_slice();
        Ok(BitsAt {
            bytes: self.put(bytes)?,
            offset,
        })
    }

    fn array(&mut self, a: &dyn Array) -> io::Result<ArrayAt> {
        let validity = match a.validity() {
            Some(v) if v.unset_bits() > 0 => Some(self.bits(v)?),
            _ => None,
        };
        let data = match a.dtype() {
            ArrowDataType::Null => DataAt::Null,
            ArrowDataType::Boolean => {
                DataAt::Bits(self.bits(downcast::<BooleanArray>(a).values())?)
            }
            ArrowDataType::Utf8View => self.views(&downcast::<Utf8ViewArray>(a).to_binview())?,
            ArrowDataType::BinaryView => self.views(downcast::<BinaryViewArray>(a))?,
            t => {
                let values = values_of(a, t);
                DataAt::Values(self.put(values)?)
            }
        };
        Ok(ArrayAt {
            arrow: a.dtype().clone(),
            len: a.len(),
            validity,
            data,
        })
    }

    fn views(&mut self, a: &BinaryViewArray) -> io::Result<DataAt> {
        let bytes_len = a.total_bytes_len();
        // A slice of a larger array would drag all of its text along.
        let compacted;
        let a = if a.total_buffer_len() > 2 * bytes_len + (1 << 20) {
            compacted = a.clone().gc();
            &compacted
        } else {
            a
        };
        let views = self.put(bytemuck::cast_slice(a.views().as_slice()))?;
        let buffers = a
            .data_buffers()
            .iter()
            .map(|b| self.put(b.as_slice()))
            .collect::<io::Result<_>>()?;
        Ok(DataAt::Views {
            views,
            buffers,
            bytes_len,
        })
    }
}

fn downcast<A: 'static>(a: &dyn Array) -> &A {
    a.as_any()
        .downcast_ref::<A>()
        .expect("type checked by `fits`")
}

fn values_of<'a>(a: &'a dyn Array, t: &ArrowDataType) -> &'a [u8] {
    fn raw<T: NativeType>(a: &dyn Array) -> &[u8] {
        bytemuck::cast_slice(downcast::<PrimitiveArray<T>>(a).values().as_slice())
    }
    use ArrowDataType as A;
    match t {
        A::Int8 => raw::<i8>(a),
        A::Int16 => raw::<i16>(a),
        A::Int32 => raw::<i32>(a),
        A::Int64 => raw::<i64>(a),
        A::UInt8 => raw::<u8>(a),
        A::UInt16 => raw::<u16>(a),
        A::UInt32 => raw::<u32>(a),
        A::UInt64 => raw::<u64>(a),
        A::Float32 => raw::<f32>(a),
        A::Float64 => raw::<f64>(a),
        t => unreachable!("{t:?} is not a raw spill type (checked by `fits`)"),
    }
}

/// The chunk `layout` describes, its columns pointing into `file`; all
/// columns or `columns` only.
pub fn read(
    file: FileBytes,
    layout: &Layout,
    columns: Option<&[String]>,
) -> PolarsResult<DataFrame> {
    let file = Arc::new(file);
    let mut out = Vec::with_capacity(layout.columns.len());
    for c in &layout.columns {
        if columns.is_some_and(|keep| !keep.iter().any(|k| k.as_str() == c.name.as_str())) {
            continue;
        }
        let arrays = c
            .arrays
            .iter()
            .map(|a| array_at(&file, a))
            .collect::<PolarsResult<Vec<_>>>()?;
        // SAFETY: each array was written from a chunk of this column, so
        // its physical type is the one `dtype` expects.
        let s =
            unsafe { Series::from_chunks_and_dtype_unchecked(c.name.clone(), arrays, &c.dtype) };
        out.push(s.into_column());
    }
    let df = DataFrame::new(layout.height, out)?;
    match columns {
        // In the order asked for.
        Some(c) => df.select(c.iter().map(|c| PlSmallStr::from(c.as_str()))),
        None => Ok(df),
    }
}

fn array_at(file: &Arc<FileBytes>, a: &ArrayAt) -> PolarsResult<Box<dyn Array>> {
    let validity = a
        .validity
        .as_ref()
        .map(|v| bitmap(file, v, a.len))
        .transpose()?;
    use ArrowDataType as A;
    let t = a.arrow.clone();
    Ok(match &a.data {
        DataAt::Null => NullArray::new(t, a.len).boxed(),
        DataAt::Bits(b) => BooleanArray::new(t, bitmap(file, b, a.len)?, validity).boxed(),
        DataAt::Values(r) => {
            let r = r.clone();
            match &a.arrow {
                A::Int8 => PrimitiveArray::new(t, typed::<i8>(file, r, a.len)?, validity).boxed(),
                A::Int16 => PrimitiveArray::new(t, typed::<i16>(file, r, a.len)?, validity).boxed(),
                A::Int32 => PrimitiveArray::new(t, typed::<i32>(file, r, a.len)?, validity).boxed(),
                A::Int64 => PrimitiveArray::new(t, typed::<i64>(file, r, a.len)?, validity).boxed(),
                A::UInt8 => PrimitiveArray::new(t, typed::<u8>(file, r, a.len)?, validity).boxed(),
                A::UInt16 => {
                    PrimitiveArray::new(t, typed::<u16>(file, r, a.len)?, validity).boxed()
                }
                A::UInt32 => {
                    PrimitiveArray::new(t, typed::<u32>(file, r, a.len)?, validity).boxed()
                }
                A::UInt64 => {
                    PrimitiveArray::new(t, typed::<u64>(file, r, a.len)?, validity).boxed()
                }
                A::Float32 => {
                    PrimitiveArray::new(t, typed::<f32>(file, r, a.len)?, validity).boxed()
                }
                A::Float64 => {
                    PrimitiveArray::new(t, typed::<f64>(file, r, a.len)?, validity).boxed()
                }
                t => polars_bail!(ComputeError: "spill layout holds values of type {t:?}"),
            }
        }
        DataAt::Views {
            views,
            buffers,
            bytes_len,
        } => {
            let views = typed::<View>(file, views.clone(), a.len)?;
            let buffers: Vec<Buffer<u8>> = buffers
                .iter()
                .map(|r| typed::<u8>(file, r.clone(), r.len()))
                .collect::<PolarsResult<_>>()?;
            let buffer_len = buffers.iter().map(|b| b.len()).sum();
            if !views_in_bounds(&views, &buffers) {
                return Err(cut_short());
            }
            // SAFETY: every view that points into a buffer points inside it
            // (checked above); the views and buffers were written from one
            // array by this process, in the same order (spill files are
            // private to it, see spill.rs).
            let bin = unsafe {
                BinaryViewArray::new_unchecked(
                    A::BinaryView,
                    views,
                    Buffer::from_vec(buffers),
                    validity,
                    Some(*bytes_len),
                    buffer_len,
                )
            };
            match t {
                // SAFETY: written from a UTF-8 array.
                A::Utf8View => unsafe { bin.to_utf8view_unchecked() }.boxed(),
                _ => bin.boxed(),
            }
        }
    })
}

/// Whether every view longer than the inline size points inside its
/// buffer: what keeps a damaged file from making a read go out of bounds
/// (a single pass over the views, ~16 bytes a row).
fn views_in_bounds(views: &[View], buffers: &[Buffer<u8>]) -> bool {
    views.iter().all(|v| {
        v.length <= View::MAX_INLINE_SIZE
            || buffers.get(v.buffer_idx as usize).is_some_and(|b| {
                (v.offset as usize)
                    .checked_add(v.length as usize)
                    .is_some_and(|end| end <= b.len())
            })
    })
}

/// `len` values of `T` at `r` in `file`, in place (copied only if the
/// bytes are not aligned for `T`, as a buffered read may leave them).
fn typed<T: bytemuck::Pod + Send + Sync>(
    file: &Arc<FileBytes>,
    r: Range<usize>,
    len: usize,
) -> PolarsResult<Buffer<T>> {
    let all: &[u8] = (**file).as_ref();
    let bytes = all.get(r).ok_or_else(cut_short)?;
    if bytes.len() != len * size_of::<T>() {
        return Err(cut_short());
    }
    Ok(match bytemuck::try_cast_slice::<u8, T>(bytes) {
        // SAFETY: the slice lies in `file`, which the storage keeps alive.
        Ok(values) => Buffer::from_storage(unsafe {
            SharedStorage::from_slice_with_owner(values, file.clone())
        }),
        Err(_) => Buffer::from_vec(bytemuck::pod_collect_to_vec(bytes)),
    })
}

fn bitmap(file: &Arc<FileBytes>, b: &BitsAt, len: usize) -> PolarsResult<Bitmap> {
    let n = b.bytes.len();
    if (b.offset + len).div_ceil(8) > n {
        return Err(cut_short());
    }
    let bytes = typed::<u8>(file, b.bytes.clone(), n)?;
    // SAFETY: the length fits the bytes (checked above).
    Ok(unsafe { Bitmap::from_inner_unchecked(bytes.into_storage(), b.offset, len, None) })
}

fn cut_short() -> PolarsError {
    polars_err!(ComputeError: "the spill file does not hold what was written to it (shorter, or damaged)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::direct_file::read_all;

    fn round_trip(df: &DataFrame, direct: bool) -> (DataFrame, Layout, tempfile::TempDir) {
        assert!(fits(df));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.raw");
        let layout = write(std::fs::File::create(&path).unwrap(), df).unwrap();
        let back = read(read_all(&path, direct).unwrap(), &layout, None).unwrap();
        (back, layout, dir)
    }

    #[test]
    fn every_raw_type_round_trips_with_nulls_and_slices() {
        let long = "a text longer than twelve bytes, kept in a data buffer";
        let mut df = df!(
            "f64" => [Some(1.5f64), None, Some(-2.0), Some(f64::NAN)],
            "f32" => [Some(1.5f32), None, Some(3.0), Some(4.0)],
            "i64" => [1i64, -2, 3, i64::MAX],
            "i32" => [Some(1i32), Some(2), None, Some(4)],
            "i8" => [1i8, 2, 3, 4],
            "u64" => [Some(1u64), None, Some(3), Some(u64::MAX)],
            "u32" => [1u32, 2, 3, 4],
            "bool" => [Some(true), None, Some(false), Some(true)],
            "text" => [Some("short"), Some(long), None, Some("é")],
            "bin" => [b"x".as_slice(), long.as_bytes(), b"", b"z"],
        )
        .unwrap();
        let days = Series::new("date".into(), [Some(19000i32), None, Some(1), Some(2)])
            .cast(&DataType::Date)
            .unwrap();
        let ticks = Series::new("ts".into(), [1i64, 2, 3, 4])
            .cast(&DataType::Datetime(TimeUnit::Microseconds, None))
            .unwrap();
        let nulls = Series::full_null("none".into(), 4, &DataType::Null);
        df.with_column(days.into_column()).unwrap();
        df.with_column(ticks.into_column()).unwrap();
        df.with_column(nulls.into_column()).unwrap();
        let (back, _, _) = round_trip(&df, true);
        assert!(back.equals_missing(&df), "{back}\n{df}");
        assert_eq!(back.schema(), df.schema());
        // A slice (bit offsets in the validity), and several chunks per column.
        let sliced = df.slice(1, 3);
        let (back, _, _) = round_trip(&sliced, false);
        assert!(back.equals_missing(&sliced));
        let mut two = df.clone();
        two.vstack_mut(&sliced).unwrap();
        let (back, layout, _) = round_trip(&two, true);
        assert!(back.equals_missing(&two));
        assert_eq!(layout.columns[0].arrays.len(), 2);
    }

    #[test]
    fn an_empty_chunk_round_trips() {
        let df = df!("a" => [1.0f64], "t" => ["x"], "b" => [true])
            .unwrap()
            .head(Some(0));
        let (back, _, _) = round_trip(&df, true);
        assert_eq!(back, df);
        assert_eq!(back.schema(), df.schema());
    }

    #[test]
    fn a_projection_reads_the_asked_columns_in_the_asked_order() {
        let df = df!("a" => [1.0f64, 2.0], "b" => ["x", "y"], "c" => [3i64, 4]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.raw");
        let layout = write(std::fs::File::create(&path).unwrap(), &df).unwrap();
        let cols = ["c".to_string(), "a".to_string()];
        let back = read(read_all(&path, false).unwrap(), &layout, Some(&cols)).unwrap();
        assert_eq!(back, df.select(["c", "a"]).unwrap());
    }

    #[test]
    fn filtered_text_is_written_with_its_buffers_and_a_mostly_unused_buffer_compacted() {
        let words: Vec<String> = (0..100_000)
            .map(|i| format!("review number {i:06} text"))
            .collect();
        let df = df!("t" => &words, "n" => (0..100_000i64).collect::<Vec<_>>()).unwrap();
        // Cleaning drops a few rows: the buffers are written as they are.
        let mask = BooleanChunked::from_iter_values("m".into(), (0..100_000).map(|i| i % 20 != 0));
        let few_dropped = df.filter(&mask).unwrap();
        let (back, _, _) = round_trip(&few_dropped, true);
        assert_eq!(back, few_dropped);
        // A slice of a few rows does not drag the rest (2.5 MB) along.
        let slice = df.slice(100, 200);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.raw");
        write(std::fs::File::create(&path).unwrap(), &slice).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size < 20_000, "{size} bytes for 200 rows");
    }

    #[test]
    fn the_columns_point_into_the_bytes_read() {
        let df = df!("a" => (0..1000i64).collect::<Vec<_>>()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.raw");
        let layout = write(std::fs::File::create(&path).unwrap(), &df).unwrap();
        let bytes = read_all(&path, true).unwrap();
        let start = bytes.as_ref().as_ptr() as usize;
        let end = start + bytes.as_ref().len();
        let back = read(bytes, &layout, None).unwrap();
        let s = back.column("a").unwrap().as_materialized_series().clone();
        let values = s.i64().unwrap().downcast_iter().next().unwrap().values();
        let at = values.as_ptr() as usize;
        assert!(start <= at && at < end, "read in place, not copied");
    }

    #[test]
    fn a_short_file_is_an_error_not_a_crash() {
        let df = df!("a" => [1.0f64, 2.0], "t" => ["a text longer than twelve", "b"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.raw");
        let layout = write(std::fs::File::create(&path).unwrap(), &df).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
        assert!(read(read_all(&path, false).unwrap(), &layout, None).is_err());
    }

    #[test]
    fn a_view_pointing_past_its_buffer_is_an_error_not_a_read_out_of_bounds() {
        let long = "a text longer than twelve bytes";
        let df = df!("t" => [long, "x"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.raw");
        let layout = write(std::fs::File::create(&path).unwrap(), &df).unwrap();
        // Damage the first view's offset (bytes 12..16 of the views buffer).
        let DataAt::Views { views, .. } = &layout.columns[0].arrays[0].data else {
            panic!("text is written as views")
        };
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[views.start + 12..views.start + 16].copy_from_slice(&1000u32.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let err = read(read_all(&path, false).unwrap(), &layout, None).unwrap_err();
        assert!(err.to_string().contains("damaged"), "{err}");
    }

    #[test]
    fn other_types_do_not_fit() {
        let list = Series::new("l".into(), [Series::new("".into(), [1i64, 2])]);
        let df = DataFrame::new(1, vec![list.into()]).unwrap();
        assert!(!fits(&df));
    }
}
