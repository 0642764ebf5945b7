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
//!
//! 64-bit numbers are stored narrower where every value of an array
//! allows it exactly (float64 as float32, int64 as int8/16/32, see
//! `Narrow`) and widened when read: CSV gives every number as 64 bits,
//! and ratings, counts and ids rarely need them (the 5M-row benchmark's
//! spill: 13 % fewer bytes to write and read back, 1.15 → 1.00 GB). Only
//! those arrays are copied on the way back; the rest still point into the
//! file's bytes.

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
    /// 64-bit values stored narrower, every one of them exactly (widened
    /// back when read).
    Narrowed(Range<usize>, Narrow),
    Bits(BitsAt),
    Views {
        views: Range<usize>,
        buffers: Vec<Range<usize>>,
        bytes_len: usize,
    },
    Null,
}

/// How 64-bit values were narrowed: `f64` that are all `f32` values (whole
/// numbers, halves, ...), `i64` that all fit a smaller integer. A spill of
/// review data holds ratings, counts and lengths as float64 or int64: 13 %
/// fewer bytes to write and read back, on a pass bound by the disk.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Narrow {
    F32,
    I8,
    I16,
    I32,
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
            ArrowDataType::Float64 => {
                let values = downcast::<PrimitiveArray<f64>>(a).values().as_slice();
                match narrow_floats(values) {
                    Some(narrow) => {
                        DataAt::Narrowed(self.put(bytemuck::cast_slice(&narrow))?, Narrow::F32)
                    }
                    None => DataAt::Values(self.put(bytemuck::cast_slice(values))?),
                }
            }
            ArrowDataType::Int64 => {
                let values = downcast::<PrimitiveArray<i64>>(a).values().as_slice();
                fn cast<T: bytemuck::Pod>(values: &[i64], to: impl Fn(i64) -> T) -> Vec<T> {
                    values.iter().map(|&v| to(v)).collect()
                }
                let narrow = narrow_ints(values);
                let at = match narrow {
                    Some(Narrow::I8) => self.put(bytemuck::cast_slice(&cast(values, |v| v as i8))),
                    Some(Narrow::I16) => {
                        self.put(bytemuck::cast_slice(&cast(values, |v| v as i16)))
                    }
                    Some(Narrow::I32) => {
                        self.put(bytemuck::cast_slice(&cast(values, |v| v as i32)))
                    }
                    Some(Narrow::F32) | None => self.put(bytemuck::cast_slice(values)),
                }?;
                match narrow {
                    Some(n @ (Narrow::I8 | Narrow::I16 | Narrow::I32)) => DataAt::Narrowed(at, n),
                    _ => DataAt::Values(at),
                }
            }
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

/// `values` as `f32`, when every one converts back to the same bits.
fn narrow_floats(values: &[f64]) -> Option<Vec<f32>> {
    let exact = |v: f64| ((v as f32) as f64).to_bits() == v.to_bits();
    if !values.iter().all(|&v| exact(v)) {
        return None;
    }
    Some(values.iter().map(|&v| v as f32).collect())
}

/// The narrowest integer that holds every one of `values`, if narrower.
fn narrow_ints(values: &[i64]) -> Option<Narrow> {
    let (lo, hi) = values
        .iter()
        .fold((0i64, 0i64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let within = |min: i64, max: i64| lo >= min && hi <= max;
    if within(i8::MIN.into(), i8::MAX.into()) {
        Some(Narrow::I8)
    } else if within(i16::MIN.into(), i16::MAX.into()) {
        Some(Narrow::I16)
    } else if within(i32::MIN.into(), i32::MAX.into()) {
        Some(Narrow::I32)
    } else {
        None
    }
}

/// Narrowed values at `r` in `file`, widened back to their 64-bit type.
fn widened(
    file: &Arc<FileBytes>,
    r: Range<usize>,
    len: usize,
    narrow: Narrow,
    t: ArrowDataType,
    validity: Option<Bitmap>,
) -> PolarsResult<Box<dyn Array>> {
    fn ints<T: bytemuck::Pod + Into<i64> + Send + Sync>(
        file: &Arc<FileBytes>,
        r: Range<usize>,
        len: usize,
    ) -> PolarsResult<Buffer<i64>> {
        let v = typed::<T>(file, r, len)?;
        Ok(v.iter().map(|&x| x.into()).collect::<Vec<i64>>().into())
    }
    Ok(match narrow {
        Narrow::F32 => {
            let v = typed::<f32>(file, r, len)?;
            let wide: Vec<f64> = v.iter().map(|&x| x as f64).collect();
            PrimitiveArray::new(t, wide.into(), validity).boxed()
        }
        Narrow::I8 => PrimitiveArray::new(t, ints::<i8>(file, r, len)?, validity).boxed(),
        Narrow::I16 => PrimitiveArray::new(t, ints::<i16>(file, r, len)?, validity).boxed(),
        Narrow::I32 => PrimitiveArray::new(t, ints::<i32>(file, r, len)?, validity).boxed(),
    })
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
        DataAt::Narrowed(r, narrow) => widened(file, r.clone(), a.len, *narrow, t, validity)?,
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

    /// How each column's first array was stored.
    fn stored_as(layout: &Layout) -> Vec<(String, Option<Narrow>)> {
        layout
            .columns
            .iter()
            .map(|c| {
                let narrow = match &c.arrays[0].data {
                    DataAt::Narrowed(_, n) => Some(*n),
                    _ => None,
                };
                (c.name.to_string(), narrow)
            })
            .collect()
    }

    #[test]
    fn sixty_four_bit_values_are_stored_narrower_only_when_every_one_is_exact() {
        let n = 3000;
        let df = df!(
            "rating" => (0..n).map(|i| (i % 5) as f64 + 0.5).collect::<Vec<_>>(),
            "special" => [-0.0, f64::NAN, f64::INFINITY, 1e10].repeat(n / 4),
            "price" => (0..n).map(|i| i as f64 * 0.01).collect::<Vec<_>>(),
            "label" => (0..n).map(|i| (i % 2) as i64 - 1).collect::<Vec<_>>(),
            "votes" => (0..n).map(|i| i as i64 * 10).collect::<Vec<_>>(),
            "id" => (0..n).map(|i| i as i64 * 1000).collect::<Vec<_>>(),
            "big" => (0..n).map(|i| i as i64 + i64::from(i32::MAX)).collect::<Vec<_>>(),
            "nulls" => (0..n).map(|i| (i % 3 != 0).then_some(i as i64 - 7)).collect::<Vec<_>>(),
        )
        .unwrap();
        let (back, layout, dir) = round_trip(&df, true);
        assert!(back.equals_missing(&df), "{back}\n{df}");
        assert_eq!(back.schema(), df.schema());
        for (name, want) in [
            ("rating", Some(Narrow::F32)),
            ("special", Some(Narrow::F32)),
            ("price", None),
            ("label", Some(Narrow::I8)),
            ("votes", Some(Narrow::I16)),
            ("id", Some(Narrow::I32)),
            ("big", None),
            ("nulls", Some(Narrow::I16)),
        ] {
            let got = stored_as(&layout)
                .into_iter()
                .find(|(c, _)| c == name)
                .unwrap()
                .1;
            assert_eq!(got, want, "{name}");
        }
        // -0.0 and NaN keep their bits.
        let special = back.column("special").unwrap().f64().unwrap();
        assert!(special.get(0).unwrap().is_sign_negative());
        assert!(special.get(1).unwrap().is_nan());
        let size = std::fs::metadata(dir.path().join("chunk.raw"))
            .unwrap()
            .len();
        let wide = (n * 8 * 8) as u64;
        assert!(size < wide * 6 / 10, "{size} bytes, {wide} unnarrowed");
    }

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
        // Values no narrower type holds (those are widened into new memory).
        let df = df!("a" => (0..1000i64).map(|i| i64::MAX - i).collect::<Vec<_>>()).unwrap();
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
