//! Row encoders for the text shard formats: JSON Lines and CSV.
//!
//! A chunk is encoded into one byte buffer plus the end offset of each row,
//! in parallel over row ranges, so the shard writer can cut shards at exact
//! row and byte limits without re-encoding. Integers stay integers, floats
//! use the shortest form that parses back to the same f64 (ryu), strings are
//! copied once from the Arrow buffers.

use polars::prelude::*;
use polars_arrow::array::{
    Array, BooleanArray, ListArray, PrimitiveArray, StructArray, Utf8ViewArray,
};
use rayon::prelude::*;

use crate::error::{PrepError, Result};

/// Encoded rows: `bytes[ends[i-1]..ends[i]]` is row `i`, newline included.
#[derive(Debug, Default)]
pub struct EncodedRows {
    pub bytes: Vec<u8>,
    pub ends: Vec<usize>,
}

impl EncodedRows {
    pub fn rows(&self) -> usize {
        self.ends.len()
    }
    pub fn start(&self, row: usize) -> usize {
        if row == 0 {
            0
        } else {
            self.ends[row - 1]
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    Jsonl,
    Csv,
    /// JSON Lines for `_rejects/`: non-finite floats as the strings
    /// `"inf"`, `"-inf"`, `"NaN"` (the values as read), not `null`.
    JsonlRejects,
}

/// A column viewed as one Arrow array (the frame is rechunked first).
enum ColView<'a> {
    I64(&'a PrimitiveArray<i64>),
    U64(&'a PrimitiveArray<u64>),
    F64(&'a PrimitiveArray<f64>),
    F32(&'a PrimitiveArray<f32>),
    Bool(&'a BooleanArray),
    Str(&'a Utf8ViewArray),
    /// A list (JSON Lines only): a JSON array of its values' view.
    List(&'a ListArray<i64>, Box<ColView<'a>>),
    /// A struct (JSON Lines only): a JSON object of its fields, each with
    /// its key (`"name":`) and view.
    Struct(&'a StructArray, Vec<(Vec<u8>, ColView<'a>)>),
}

impl ColView<'_> {
    fn is_null(&self, i: usize) -> bool {
        match self {
            ColView::I64(a) => a.is_null(i),
            ColView::U64(a) => a.is_null(i),
            ColView::F64(a) => a.is_null(i),
            ColView::F32(a) => a.is_null(i),
            ColView::Bool(a) => a.is_null(i),
            ColView::Str(a) => a.is_null(i),
            ColView::List(a, _) => a.is_null(i),
            ColView::Struct(a, _) => a.is_null(i),
        }
    }
}

/// Converts columns to the few physical types the encoders know: other
/// integer widths to Int64 (UInt64 stays, its values may not fit), dates
/// and the rest to their string form. A timestamp with a time zone is
/// written as its UTC time with a `Z`; a time of day keeps its fraction of
/// a second.
fn normalize(df: &DataFrame) -> Result<DataFrame> {
    let cols = df
        .columns()
        .iter()
        .map(|c| {
            let failed =
                |e| PrepError::polars(format!("converting column `{}` for output", c.name()), e);
            let target = match c.dtype() {
                DataType::Int64
                | DataType::UInt64
                | DataType::Float64
                | DataType::Float32
                | DataType::Boolean
                | DataType::String => None,
                DataType::List(_) | DataType::Struct(_) => Some(normal_nested(c.dtype())),
                DataType::Datetime(unit, Some(_)) => {
                    return utc_text(c, *unit).map_err(failed);
                }
                DataType::Time => return time_text(c).map_err(failed),
                d if d.is_integer() => Some(DataType::Int64),
                _ => Some(DataType::String),
            };
            match target {
                None => Ok(c.clone()),
                Some(t) => c.cast(&t).map_err(failed),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = DataFrame::new(df.height(), cols)
        .map_err(|e| PrepError::polars("assembling output columns", e))?;
    out.rechunk_mut_par();
    Ok(out)
}

/// A list or struct type with its items or fields converted as
/// [`normalize`] converts columns (other integer widths to Int64, the rest
/// that is not a number, bool or string to String), so the encoder meets
/// only the types it knows.
fn normal_nested(dtype: &DataType) -> DataType {
    match dtype {
        DataType::List(inner) => DataType::List(Box::new(normal_nested(inner))),
        DataType::Struct(fields) => DataType::Struct(
            fields
                .iter()
                .map(|f| Field::new(f.name().clone(), normal_nested(f.dtype())))
                .collect(),
        ),
        DataType::Int64
        | DataType::UInt64
        | DataType::Float64
        | DataType::Float32
        | DataType::Boolean
        | DataType::String => dtype.clone(),
        d if d.is_integer() => DataType::Int64,
        _ => DataType::String,
    }
}

/// A time-zone-aware timestamp column as text: the UTC time, then `Z`.
fn utc_text(c: &Column, unit: TimeUnit) -> PolarsResult<Column> {
    let naive = c
        .to_physical_repr()
        .cast(&DataType::Datetime(unit, None))?
        .cast(&DataType::String)?;
    let text: StringChunked = naive
        .str()?
        .iter()
        .map(|v| v.map(|v| format!("{v}Z")))
        .collect();
    Ok(text.with_name(c.name().clone()).into_column())
}

/// A time-of-day column as `HH:MM:SS`, with the fraction of a second when
/// there is one (3, 6 or 9 digits, as needed).
fn time_text(c: &Column) -> PolarsResult<Column> {
    let nanos = c.to_physical_repr();
    let text: StringChunked = nanos.i64()?.iter().map(|v| v.map(time_of_day)).collect();
    Ok(text.with_name(c.name().clone()).into_column())
}

fn time_of_day(ns: i64) -> String {
    let (secs, frac) = (ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = format!("{h:02}:{m:02}:{s:02}");
    if frac != 0 {
        let digits = if frac % 1_000_000 == 0 {
            format!(".{:03}", frac / 1_000_000)
        } else if frac % 1_000 == 0 {
            format!(".{:06}", frac / 1_000)
        } else {
            format!(".{frac:09}")
        };
        out.push_str(&digits);
    }
    out
}

fn views(df: &DataFrame) -> Vec<ColView<'_>> {
    df.columns()
        .iter()
        .map(|c| {
            let s = c.as_materialized_series();
            match s.dtype() {
                DataType::Int64 => ColView::I64(s.i64().expect("i64").downcast_as_array()),
                DataType::UInt64 => ColView::U64(s.u64().expect("u64").downcast_as_array()),
                DataType::Float64 => ColView::F64(s.f64().expect("f64").downcast_as_array()),
                DataType::Float32 => ColView::F32(s.f32().expect("f32").downcast_as_array()),
                DataType::Boolean => ColView::Bool(s.bool().expect("bool").downcast_as_array()),
                DataType::List(_) => {
                    let list = s.list().expect("list").downcast_as_array();
                    ColView::List(list, Box::new(array_view(list.values().as_ref())))
                }
                DataType::Struct(_) => {
                    let chunks = s.chunks();
                    debug_assert_eq!(chunks.len(), 1, "rechunked");
                    array_view(chunks[0].as_ref())
                }
                _ => ColView::Str(s.str().expect("normalized to string").downcast_as_array()),
            }
        })
        .collect()
}

/// The view of a list's items (an Arrow array of a normalized type).
fn array_view(a: &dyn Array) -> ColView<'_> {
    let any = a.as_any();
    if let Some(a) = any.downcast_ref::<PrimitiveArray<i64>>() {
        ColView::I64(a)
    } else if let Some(a) = any.downcast_ref::<PrimitiveArray<u64>>() {
        ColView::U64(a)
    } else if let Some(a) = any.downcast_ref::<PrimitiveArray<f64>>() {
        ColView::F64(a)
    } else if let Some(a) = any.downcast_ref::<PrimitiveArray<f32>>() {
        ColView::F32(a)
    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
        ColView::Bool(a)
    } else if let Some(a) = any.downcast_ref::<ListArray<i64>>() {
        ColView::List(a, Box::new(array_view(a.values().as_ref())))
    } else if let Some(a) = any.downcast_ref::<StructArray>() {
        let fields = a
            .fields()
            .iter()
            .zip(a.values())
            .enumerate()
            .map(|(k, (f, values))| {
                let mut key = vec![if k == 0 { b'{' } else { b',' }];
                json_escape_into(&mut key, f.name.as_str());
                key.push(b':');
                (key, array_view(values.as_ref()))
            })
            .collect();
        ColView::Struct(a, fields)
    } else {
        ColView::Str(
            any.downcast_ref::<Utf8ViewArray>()
                .expect("list items normalized to string"),
        )
    }
}

/// True when any byte of the word needs escaping in JSON: a control
/// character (< 0x20), `"` or `\\` (SWAR: eight bytes per step).
#[inline]
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space | has_zero(w ^ (ONES * b'"' as u64)) | has_zero(w ^ (ONES * b'\\' as u64))) != 0
}

/// Length of the prefix of `bytes` that needs no escaping.
fn clean_prefix(bytes: &[u8]) -> usize {
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let w = u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        if word_needs_escape(w) {
            break;
        }
        i += 8;
    }
    while i < bytes.len() && !matches!(bytes[i], 0x00..=0x1f | b'"' | b'\\') {
        i += 1;
    }
    i
}

pub fn json_escape_into(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut bytes = s.as_bytes();
    loop {
        let n = clean_prefix(bytes);
        out.extend_from_slice(&bytes[..n]);
        if n == bytes.len() {
            break;
        }
        let b = bytes[n];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.extend_from_slice(format!("\\u{:04x}", b).as_bytes()),
        }
        bytes = &bytes[n + 1..];
    }
    out.push(b'"');
}

fn csv_field_into(out: &mut Vec<u8>, s: &str, delimiter: u8) {
    let needs = s.is_empty()
        || s.bytes()
            .any(|b| b == delimiter || b == b'"' || b == b'\n' || b == b'\r');
    if !needs {
        out.extend_from_slice(s.as_bytes());
        return;
    }
    out.push(b'"');
    for b in s.bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

fn write_f64(out: &mut Vec<u8>, v: f64, fmt: TextFormat, ryu: &mut ryu::Buffer) {
    let json = fmt == TextFormat::Jsonl;
    if v.is_finite() {
        out.extend_from_slice(ryu.format_finite(v).as_bytes());
    } else if json {
        out.extend_from_slice(b"null");
    } else if fmt == TextFormat::JsonlRejects {
        out.extend_from_slice(match v {
            v if v.is_nan() => b"\"NaN\"".as_slice(),
            v if v > 0.0 => b"\"inf\"",
            _ => b"\"-inf\"",
        });
    } else if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v > 0.0 {
        out.extend_from_slice(b"inf");
    } else {
        out.extend_from_slice(b"-inf");
    }
}

fn write_value(
    out: &mut Vec<u8>,
    col: &ColView,
    i: usize,
    fmt: TextFormat,
    ryu: &mut ryu::Buffer,
    ito: &mut itoa::Buffer,
) {
    let json = fmt != TextFormat::Csv;
    if col.is_null(i) {
        if json {
            out.extend_from_slice(b"null");
        }
        return;
    }
    match col {
        ColView::I64(a) => out.extend_from_slice(ito.format(a.value(i)).as_bytes()),
        ColView::U64(a) => out.extend_from_slice(ito.format(a.value(i)).as_bytes()),
        ColView::F64(a) => write_f64(out, a.value(i), fmt, ryu),
        ColView::F32(a) => {
            let v = a.value(i);
            if v.is_finite() {
                out.extend_from_slice(ryu.format_finite(v).as_bytes());
            } else {
                write_f64(out, v as f64, fmt, ryu);
            }
        }
        ColView::Bool(a) => out.extend_from_slice(if a.value(i) { b"true" } else { b"false" }),
        ColView::Str(a) => {
            if json {
                json_escape_into(out, a.value(i));
            } else {
                csv_field_into(out, a.value(i), b',');
            }
        }
        ColView::List(a, items) => {
            let (start, end) = a.offsets().start_end(i);
            out.push(b'[');
            for j in start..end {
                if j > start {
                    out.push(b',');
                }
                // A null item is `null` in any JSON format.
                let fmt = if fmt == TextFormat::Csv {
                    TextFormat::Jsonl
                } else {
                    fmt
                };
                write_value(out, items, j, fmt, ryu, ito);
            }
            out.push(b']');
        }
        ColView::Struct(_, fields) => {
            let fmt = if fmt == TextFormat::Csv {
                TextFormat::Jsonl
            } else {
                fmt
            };
            for (key, values) in fields {
                out.extend_from_slice(key);
                write_value(out, values, i, fmt, ryu, ito);
            }
            out.extend_from_slice(if fields.is_empty() {
                b"{}".as_slice()
            } else {
                b"}"
            });
        }
    }
}

/// The CSV header line for `names`.
pub fn csv_header(names: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field_into(&mut out, n, b',');
    }
    out.push(b'\n');
    out
}

/// Encodes every row of `df` (column names as JSON keys for JSONL), as one buffer.
pub fn encode_rows(df: &DataFrame, fmt: TextFormat) -> Result<EncodedRows> {
    let parts = encode_row_parts(df, fmt)?;
    let total: usize = parts.iter().map(|p| p.bytes.len()).sum();
    let mut all = EncodedRows {
        bytes: Vec::with_capacity(total),
        ends: Vec::with_capacity(df.height()),
    };
    for p in parts {
        let base = all.bytes.len();
        all.bytes.extend_from_slice(&p.bytes);
        all.ends.extend(p.ends.iter().map(|e| e + base));
    }
    Ok(all)
}

/// Encodes every row of `df` in parallel, as consecutive runs of rows. The
/// sink writes the runs one after another: joining them into one buffer
/// would copy the whole output once more on a single thread.
pub fn encode_row_parts(df: &DataFrame, fmt: TextFormat) -> Result<Vec<EncodedRows>> {
    let df = normalize(df)?;
    let cols = views(&df);
    let keys: Vec<Vec<u8>> = df
        .get_column_names()
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let mut k = Vec::new();
            k.push(if i == 0 { b'{' } else { b',' });
            json_escape_into(&mut k, n.as_str());
            k.push(b':');
            k
        })
        .collect();
    let n = df.height();
    let piece = 16_384usize;
    // Reserve from the frame's in-memory size, which is close to the encoded
    // size, so buffers are not regrown (and copied) row after row.
    let bytes_per_row =
        (df.estimated_size() / n.max(1)).max(16) * 5 / 4 + keys.iter().map(Vec::len).sum::<usize>();
    let parts: Vec<EncodedRows> = (0..n.div_ceil(piece))
        .into_par_iter()
        .map(|p| {
            let (lo, hi) = (p * piece, ((p + 1) * piece).min(n));
            let mut out = EncodedRows {
                bytes: Vec::with_capacity((hi - lo) * bytes_per_row),
                ends: Vec::with_capacity(hi - lo),
            };
            let mut ryu = ryu::Buffer::new();
            let mut ito = itoa::Buffer::new();
            for i in lo..hi {
                for (c, col) in cols.iter().enumerate() {
                    match fmt {
                        TextFormat::Jsonl | TextFormat::JsonlRejects => {
                            out.bytes.extend_from_slice(&keys[c])
                        }
                        TextFormat::Csv if c > 0 => out.bytes.push(b','),
                        TextFormat::Csv => {}
                    }
                    write_value(&mut out.bytes, col, i, fmt, &mut ryu, &mut ito);
                }
                if fmt != TextFormat::Csv {
                    out.bytes.push(if cols.is_empty() { b'{' } else { b'}' });
                    if cols.is_empty() {
                        out.bytes.push(b'}');
                    }
                }
                out.bytes.push(b'\n');
                out.ends.push(out.bytes.len());
            }
            out
        })
        .collect();
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DataFrame {
        df!(
            "id" => [1i64, 2],
            "text" => [Some("a \"q\", b\nc"), None],
            "x" => [0.1f64, -1e-7],
            "ok" => [true, false],
            "small" => [3i32, 4]
        )
        .unwrap()
    }

    #[test]
    fn jsonl_keeps_types_and_escapes() {
        let e = encode_rows(&sample(), TextFormat::Jsonl).unwrap();
        let text = String::from_utf8(e.bytes.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"id":1,"text":"a \"q\", b\nc","x":0.1,"ok":true,"small":3}"#
        );
        assert_eq!(
            lines[1],
            r#"{"id":2,"text":null,"x":-1e-7,"ok":false,"small":4}"#
        );
        assert_eq!(e.ends, vec![lines[0].len() + 1, text.len()]);
        for l in lines {
            serde_json::from_str::<serde_json::Value>(l).unwrap();
        }
    }

    #[test]
    fn lists_are_json_arrays_of_their_items() {
        let ints = Series::new("i".into(), [1i32, 2, 3]);
        let strs = Series::new("s".into(), ["a\"b", "c"]);
        let floats = Series::new("f".into(), [Some(0.5f64), None, Some(f64::INFINITY)]);
        let empty = Series::new_empty("e".into(), &DataType::Int32);
        let col = |name: &str, items: Vec<Option<Series>>| {
            let ca: ListChunked = items.into_iter().collect();
            ca.with_name(name.into()).into_column()
        };
        let nested: ListChunked = [Some(ints.clone()), None].into_iter().collect();
        let df = DataFrame::new(
            2,
            vec![
                col("i", vec![Some(ints), Some(empty)]),
                col("s", vec![None, Some(strs)]),
                col("f", vec![Some(floats.clone()), Some(floats)]),
                col("n", vec![Some(nested.into_series()), None]),
            ],
        )
        .unwrap();
        let text = String::from_utf8(encode_rows(&df, TextFormat::Jsonl).unwrap().bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"i":[1,2,3],"s":null,"f":[0.5,null,null],"n":[[1,2,3],null]}"#
        );
        assert_eq!(
            lines[1],
            r#"{"i":[],"s":["a\"b","c"],"f":[0.5,null,null],"n":null}"#
        );
        let rejects = encode_rows(&df, TextFormat::JsonlRejects).unwrap().bytes;
        let rejects = String::from_utf8(rejects).unwrap();
        assert!(rejects.contains(r#""f":[0.5,null,"inf"]"#), "{rejects}");
    }

    #[test]
    fn structs_are_json_objects_of_their_fields() {
        let fields = [
            Column::new("a".into(), [Some(1i16), None]),
            Column::new("b \"q\"".into(), ["x", "y"]),
        ];
        let st = StructChunked::from_columns("s".into(), 2, &fields)
            .unwrap()
            .with_outer_validity(Some([true, false].into_iter().collect()));
        let items: ListChunked = [Some(st.clone().into_series()), None].into_iter().collect();
        let df = DataFrame::new(
            2,
            vec![
                st.into_series().into_column(),
                items.with_name("l".into()).into_column(),
            ],
        )
        .unwrap();
        let text = String::from_utf8(encode_rows(&df, TextFormat::Jsonl).unwrap().bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            r#"{"s":{"a":1,"b \"q\"":"x"},"l":[{"a":1,"b \"q\"":"x"},null]}"#
        );
        assert_eq!(lines[1], r#"{"s":null,"l":null}"#);
    }

    #[test]
    fn csv_quotes_only_when_needed() {
        let e = encode_rows(&sample(), TextFormat::Csv).unwrap();
        let text = String::from_utf8(e.bytes).unwrap();
        assert_eq!(
            text,
            "1,\"a \"\"q\"\", b\nc\",0.1,true,3\n2,,-1e-7,false,4\n"
        );
        assert_eq!(csv_header(&["a,b".into(), "c".into()]), b"\"a,b\",c\n");
    }

    #[test]
    fn wide_unsigned_zoned_timestamps_and_times_are_written_exactly() {
        let when = [1_704_067_200_123_456i64, -1];
        let stamps = Int64Chunked::new("at".into(), &when)
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_column();
        let day = Int64Chunked::new("t".into(), &[1_000, 45_296_500_000_000, 3_000_000])
            .into_time()
            .into_column();
        let df = DataFrame::new(
            2,
            vec![
                Column::new("big".into(), [u64::MAX, 7]),
                stamps,
                day.slice(0, 2),
            ],
        )
        .unwrap();
        let e = encode_rows(&df, TextFormat::Jsonl).unwrap();
        let text = String::from_utf8(e.bytes).unwrap();
        assert_eq!(
            text,
            "{\"big\":18446744073709551615,\"at\":\"2024-01-01 00:00:00.123456Z\",\"t\":\"00:00:00.000001\"}\n\
             {\"big\":7,\"at\":\"1969-12-31 23:59:59.999999Z\",\"t\":\"12:34:56.500\"}\n"
        );
        assert_eq!(time_of_day(3_000_000_000), "00:00:03");
        assert_eq!(time_of_day(1), "00:00:00.000000001");
    }

    #[test]
    fn escapes_match_serde_json() {
        for text in [
            "plain",
            "a\"b",
            "back\\slash",
            "ctl\u{1}\u{1f}x",
            "tab\tnew\nline\r",
            "ünïcødé ✓ and a long clean run of text",
            "",
        ] {
            let mut out = Vec::new();
            json_escape_into(&mut out, text);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, text);
        }
    }

    #[test]
    fn rejects_write_non_finite_floats_as_strings() {
        let df = df!("x" => [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1.5]).unwrap();
        let e = encode_rows(&df, TextFormat::JsonlRejects).unwrap();
        let text = String::from_utf8(e.bytes).unwrap();
        assert_eq!(
            text,
            "{\"x\":\"inf\"}\n{\"x\":\"-inf\"}\n{\"x\":\"NaN\"}\n{\"x\":1.5}\n"
        );
    }

    #[test]
    fn floats_round_trip() {
        let vals = [0.1 + 0.2, 1.0 / 3.0, 1e300, -2.5e-300, 123456789.12345679];
        let df = df!("v" => vals).unwrap();
        let e = encode_rows(&df, TextFormat::Csv).unwrap();
        let parsed: Vec<f64> = String::from_utf8(e.bytes)
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        assert_eq!(parsed, vals);
    }
}
