//! The fast path for parsing a CSV chunk: columns built straight from the
//! record bytes, with the chunk split between threads at record boundaries.
//!
//! Why: parsing through polars' CSV reader was the largest share of a run
//! (docs/benchmarks.md): it counts the chunk's lines again, matches every
//! field against every null token and splits work by its own scan. The
//! chunker already knows where each record starts and that it has the
//! header's field count, so one tight loop per thread does the job.
//!
//! It covers the common case only: Int64, Float64, Boolean and String
//! columns whose fields are either unquoted (no quote inside) or wholly
//! quoted, numbers without surrounding spaces. On anything else `parse`
//! returns `None` and the caller parses the chunk with the reference parser
//! (`csv_reference.rs`), which gives the same values or the located error.
//! Numbers are parsed as `csv_fields.rs` parses them (fast-float2,
//! atoi_simd), and the property test below checks that both paths build
//! equal frames.

use memchr::{memchr, memchr2, memchr3};
use polars::prelude::*;
use polars_arrow::array::{BooleanArray, MutableBinaryViewArray, PrimitiveArray};
use polars_arrow::bitmap::BitmapBuilder;
use polars_arrow::datatypes::ArrowDataType;
use rayon::prelude::*;

use crate::pipeline::plan::CsvPlan;
use crate::read::chunker::CsvChunk;
use crate::read::csv_fields::{parse_bool, NullTokens};

/// Rows below which a chunk is parsed on one thread.
const MIN_ROWS_PER_THREAD: usize = 4096;

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Float,
    Bool,
    Str,
}

/// Parses chunks of one file's records into frames of a fixed schema.
pub struct FastCsv {
    names: Vec<PlSmallStr>,
    kinds: Vec<Kind>,
    delimiter: u8,
    quote: Option<u8>,
    nulls: NullTokens,
    /// Whether some null token starts with this byte: a number starts with
    /// a digit, sign or dot, so it skips the comparison after one lookup.
    null_first_bytes: [bool; 256],
}

/// One field: its bytes (outer quotes removed, inner quotes still doubled).
struct RawField<'a> {
    content: &'a [u8],
    quoted: bool,
    escaped: bool,
}

enum Builder {
    Int(Vec<i64>, BitmapBuilder),
    Float(Vec<f64>, BitmapBuilder),
    Bool(BitmapBuilder, BitmapBuilder),
    Str(MutableBinaryViewArray<str>),
}

impl FastCsv {
    /// `None` when a column type is outside the fast path.
    pub fn new(schema: &Schema, csv: &CsvPlan) -> Option<FastCsv> {
        let kinds = schema
            .iter_values()
            .map(|d| match d {
                DataType::Int64 => Some(Kind::Int),
                DataType::Float64 => Some(Kind::Float),
                DataType::Boolean => Some(Kind::Bool),
                DataType::String => Some(Kind::Str),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        if csv.quote == Some(csv.delimiter) || csv.delimiter == b'\n' || csv.quote == Some(b'\n') {
            return None;
        }
        let nulls = NullTokens::new(&csv.null_values);
        let mut null_first_bytes = [false; 256];
        for t in nulls.tokens() {
            if let Some(&b) = t.first() {
                null_first_bytes[b as usize] = true;
            }
        }
        Some(FastCsv {
            names: schema.iter_names().cloned().collect(),
            kinds,
            delimiter: csv.delimiter,
            quote: csv.quote,
            nulls,
            null_first_bytes,
        })
    }

    /// The chunk as a frame, or `None` to hand it to the reference parser.
    pub fn parse(&self, chunk: &CsvChunk) -> Option<DataFrame> {
        let rows = chunk.rows();
        if rows == 0 || rows != chunk.record_starts.len() {
            return None;
        }
        let threads = rayon::current_num_threads().max(1);
        let parts = (rows / MIN_ROWS_PER_THREAD).clamp(1, threads);
        let bounds: Vec<(usize, usize)> = (0..parts)
            .map(|p| (rows * p / parts, rows * (p + 1) / parts))
            .collect();
        let byte_at = |r: usize| {
            if r == rows {
                chunk.bytes.len()
            } else {
                chunk.record_starts[r]
            }
        };
        let built: Vec<Vec<Builder>> = bounds
            .par_iter()
            .map(|&(a, b)| self.parse_records(&chunk.bytes[byte_at(a)..byte_at(b)], b - a))
            .collect::<Option<_>>()?;
        let mut per_column: Vec<Vec<Builder>> = (0..self.kinds.len()).map(|_| Vec::new()).collect();
        for part in built {
            for (col, b) in per_column.iter_mut().zip(part) {
                col.push(b);
            }
        }
        let columns: Vec<Column> = per_column
            .into_iter()
            .zip(&self.names)
            .map(|(parts, name)| finish_column(name.clone(), parts))
            .collect();
        let mut df = DataFrame::new(rows, columns).ok()?;
        if parts > 1 {
            df.rechunk_mut_par();
        }
        Some(df)
    }

    fn parse_records(&self, bytes: &[u8], rows: usize) -> Option<Vec<Builder>> {
        // Checked per part, on its thread. Parts and fields split at ASCII
        // bytes, so valid parts give valid fields.
        std::str::from_utf8(bytes).ok()?;
        let mut builders: Vec<Builder> = self
            .kinds
            .iter()
            .map(|k| match k {
                Kind::Int => {
                    Builder::Int(Vec::with_capacity(rows), BitmapBuilder::with_capacity(rows))
                }
                Kind::Float => {
                    Builder::Float(Vec::with_capacity(rows), BitmapBuilder::with_capacity(rows))
                }
                Kind::Bool => Builder::Bool(
                    BitmapBuilder::with_capacity(rows),
                    BitmapBuilder::with_capacity(rows),
                ),
                Kind::Str => Builder::Str(MutableBinaryViewArray::with_capacity(rows)),
            })
            .collect();
        let last = builders.len() - 1;
        let mut scratch = Vec::new();
        let mut pos = 0;
        for _ in 0..rows {
            for (i, b) in builders.iter_mut().enumerate() {
                let field = self.next_field(bytes, &mut pos, i == last)?;
                self.push(b, &field, &mut scratch)?;
            }
        }
        (pos == bytes.len()).then_some(builders)
    }

    /// Reads the field at `*pos` and moves past its delimiter (or newline
    /// when `last`); `None` for anything polars might read differently.
    #[inline]
    fn next_field<'a>(&self, b: &'a [u8], pos: &mut usize, last: bool) -> Option<RawField<'a>> {
        let start = *pos;
        if let Some(q) = self.quote {
            if b.get(start) == Some(&q) {
                let mut p = start + 1;
                let mut escaped = false;
                loop {
                    let i = p + memchr(q, b.get(p..)?)?;
                    if b.get(i + 1) == Some(&q) {
                        escaped = true;
                        p = i + 2;
                        continue;
                    }
                    let mut after = i + 1;
                    if last {
                        if b.get(after) == Some(&b'\r') {
                            after += 1;
                        }
                        if b.get(after) != Some(&b'\n') {
                            return None;
                        }
                    } else if b.get(after) != Some(&self.delimiter) {
                        return None;
                    }
                    *pos = after + 1;
                    return Some(RawField {
                        content: &b[start + 1..i],
                        quoted: true,
                        escaped,
                    });
                }
            }
        }
        let hay = b.get(start..)?;
        let i = self.field_end(hay)?;
        let stop = hay[i];
        if Some(stop) == self.quote || last != (stop == b'\n') {
            return None;
        }
        let mut content = &hay[..i];
        if let Some((&b'\r', rest)) = content.split_last() {
            if !last {
                return None;
            }
            content = rest;
        }
        *pos = start + i + 1;
        Some(RawField {
            content,
            quoted: false,
            escaped: false,
        })
    }

    /// Index of the first delimiter, newline or quote in `hay`. Most fields
    /// are short numbers: a plain loop finds their end sooner than a SIMD
    /// search, which then takes over for long text.
    #[inline]
    fn field_end(&self, hay: &[u8]) -> Option<usize> {
        const SHORT: usize = 16;
        let quote = self.quote.unwrap_or(self.delimiter);
        let head = &hay[..hay.len().min(SHORT)];
        if let Some(i) = head
            .iter()
            .position(|&c| c == self.delimiter || c == b'\n' || c == quote)
        {
            return Some(i);
        }
        let rest = hay.get(SHORT..)?;
        let i = match self.quote {
            Some(q) => memchr3(self.delimiter, b'\n', q, rest)?,
            None => memchr2(self.delimiter, b'\n', rest)?,
        };
        Some(SHORT + i)
    }

    /// As [`NullTokens::is_null`], with a one-byte shortcut for numbers.
    #[inline]
    fn is_null(&self, s: &[u8], quoted: bool) -> bool {
        match s.first() {
            None => self.nulls.empty_is_null() && !quoted,
            Some(&b) => self.null_first_bytes[b as usize] && self.nulls.is_null(s, quoted),
        }
    }

    #[inline]
    fn push(&self, b: &mut Builder, f: &RawField, scratch: &mut Vec<u8>) -> Option<()> {
        let s = f.content;
        let null = self.is_null(s, f.quoted);
        match b {
            Builder::Int(v, valid) => {
                if null {
                    v.push(0);
                    valid.push(false);
                } else {
                    // Spaces around a number (and an empty non-null field,
                    // an error): the reference parser's.
                    if s.first().is_none_or(|&c| c <= b' ') {
                        return None;
                    }
                    v.push(atoi_simd::parse::<i64, true, true>(s).ok()?);
                    valid.push(true);
                }
            }
            Builder::Float(v, valid) => {
                if null {
                    v.push(0.0);
                    valid.push(false);
                } else {
                    if s.first().is_none_or(|&c| c <= b' ') {
                        return None;
                    }
                    v.push(fast_float2::parse::<f64, _>(s).ok()?);
                    valid.push(true);
                }
            }
            Builder::Bool(v, valid) => {
                let value = if null { None } else { Some(parse_bool(s)?) };
                v.push(value.unwrap_or(false));
                valid.push(value.is_some());
            }
            Builder::Str(m) => {
                if null {
                    m.push_null();
                } else if f.escaped {
                    let q = self.quote.expect("escaped fields are quoted");
                    unescape(s, q, scratch);
                    // SAFETY: the part is valid UTF-8 (checked in parse_records) and only ASCII quotes were removed.
                    m.push_value(unsafe { std::str::from_utf8_unchecked(scratch) });
                } else {
                    // SAFETY: the part is valid UTF-8 (checked in parse_records) and fields end at ASCII bytes.
                    m.push_value(unsafe { std::str::from_utf8_unchecked(s) });
                }
            }
        }
        Some(())
    }
}

/// `a""b` → `a"b`.
fn unescape(s: &[u8], q: u8, out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < s.len() {
        out.push(s[i]);
        i += if s[i] == q && s.get(i + 1) == Some(&q) {
            2
        } else {
            1
        };
    }
}

fn finish_column(name: PlSmallStr, parts: Vec<Builder>) -> Column {
    let mut it = parts.into_iter().peekable();
    let series = match it.peek() {
        Some(Builder::Int(..)) => Int64Chunked::from_chunk_iter(
            name,
            it.map(|b| match b {
                Builder::Int(v, valid) => {
                    PrimitiveArray::new(ArrowDataType::Int64, v.into(), valid.into_opt_validity())
                }
                _ => unreachable!("one kind per column"),
            }),
        )
        .into_series(),
        Some(Builder::Float(..)) => Float64Chunked::from_chunk_iter(
            name,
            it.map(|b| match b {
                Builder::Float(v, valid) => {
                    PrimitiveArray::new(ArrowDataType::Float64, v.into(), valid.into_opt_validity())
                }
                _ => unreachable!("one kind per column"),
            }),
        )
        .into_series(),
        Some(Builder::Bool(..)) => BooleanChunked::from_chunk_iter(
            name,
            it.map(|b| match b {
                Builder::Bool(v, valid) => BooleanArray::new(
                    ArrowDataType::Boolean,
                    v.freeze(),
                    valid.into_opt_validity(),
                ),
                _ => unreachable!("one kind per column"),
            }),
        )
        .into_series(),
        _ => StringChunked::from_chunk_iter(
            name,
            it.map(|b| match b {
                Builder::Str(m) => m.freeze(),
                _ => unreachable!("one kind per column"),
            }),
        )
        .into_series(),
    };
    series.into_column()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::plan::InputPlan;
    use crate::read::chunker::RecordChunker;
    use crate::read::csv_reference::parse_reference;
    use proptest::prelude::*;

    fn try_chunk(data: &[u8]) -> Option<CsvChunk> {
        let mut c = RecordChunker::new(data, "t.csv", b',', Some(b'"'));
        c.first_record(true).ok()?;
        c.next_chunk(1_000_000).ok()?
    }

    fn chunk_of(data: &[u8]) -> CsvChunk {
        try_chunk(data).expect("a well-formed chunk")
    }

    fn reference(chunk: &CsvChunk, schema: &Schema, input: &InputPlan) -> Option<DataFrame> {
        parse_reference(chunk, schema, input, "t.csv").ok()
    }

    fn schema(types: &[DataType]) -> Schema {
        types
            .iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("c{i}").into(), t.clone()))
            .collect()
    }

    #[test]
    fn parses_quotes_nulls_and_crlf() {
        let input = InputPlan::defaults("t.csv");
        let s = schema(&[
            DataType::Int64,
            DataType::String,
            DataType::Float64,
            DataType::Boolean,
        ]);
        let data = b"a,b,c,d\r\n1,\"x, \"\"y\"\"\nz\",2.5,true\r\n-2,,NA,FALSE\r\n3,\"\",1e3,\r\n";
        let chunk = chunk_of(data);
        let fast = FastCsv::new(&s, &input.csv).unwrap().parse(&chunk).unwrap();
        let slow = reference(&chunk, &s, &input).unwrap();
        assert!(fast.equals_missing(&slow), "{fast}\n{slow}");
        let c1 = fast.column("c1").unwrap().str().unwrap().clone();
        assert_eq!(c1.get(0), Some("x, \"y\"\nz"));
        assert_eq!(c1.get(1), None, "an empty unquoted field is null");
        assert_eq!(c1.get(2), Some(""), "\"\" is the empty string");
    }

    #[test]
    fn hands_odd_fields_to_the_reference_parser() {
        let csv = InputPlan::defaults("t.csv").csv;
        let s = schema(&[DataType::Int64, DataType::String]);
        for data in [
            &b"a,b\n 1,x\n"[..],
            b"a,b\n1 ,x\n",
            b"a,b\n1,x\"y\"z\n",
            b"a,b\nx,y\n",
            b"a,b\n1,\"x\"y\n",
            b"a,b\n\"\",y\n",
        ] {
            assert!(FastCsv::new(&s, &csv)
                .unwrap()
                .parse(&chunk_of(data))
                .is_none());
        }
    }

    #[test]
    fn no_null_values_means_nothing_is_null() {
        let mut input = InputPlan::defaults("t.csv");
        input.csv.null_values = Vec::new();
        let s = schema(&[DataType::String, DataType::String]);
        let chunk = chunk_of(b"a,b\n,NA\n\"\",x\n");
        let fast = FastCsv::new(&s, &input.csv).unwrap().parse(&chunk).unwrap();
        assert_eq!(fast.column("c0").unwrap().null_count(), 0);
        assert_eq!(fast.column("c1").unwrap().str().unwrap().get(0), Some("NA"));
        assert!(fast.equals_missing(&reference(&chunk, &s, &input).unwrap()));
    }

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just("NA".to_string()),
            Just("\"\"".to_string()),
            Just("\"NA\"".to_string()),
            Just("true".to_string()),
            Just("False".to_string()),
            "-?[0-9]{1,20}",
            "-?[0-9]{0,6}\\.[0-9]{0,6}(e-?[0-9]{1,3})?",
            "\"-?[0-9]{1,5}\"",
            "[a-z ]{0,20}",
            "\"[a-z ,\\n]{0,10}(\"\"[a-z]{0,3})?\"",
            "[ \t]?[0-9]{1,3}[ ]?",
            // A literal quote inside an unquoted field, text after a closing quote.
            "[a-z]{1,3}\"[a-z]{0,3}",
            "\"[a-z]{0,3}\"[a-z0-9]{1,3}",
        ]
    }

    proptest! {
        /// Whatever the fast path accepts, the reference parser reads the
        /// same way, in every null setting and with any line end.
        #[test]
        fn agrees_with_the_reference_parser(
            types in proptest::collection::vec(
                prop_oneof![Just(DataType::Int64), Just(DataType::Float64), Just(DataType::Boolean), Just(DataType::String)],
                1..5),
            rows in proptest::collection::vec(proptest::collection::vec(field(), 5), 1..30),
            eol in prop_oneof![Just("\n"), Just("\r\n"), Just("\r")],
            no_nulls in any::<bool>(),
        ) {
            let mut input = InputPlan::defaults("t.csv");
            if no_nulls {
                input.csv.null_values = Vec::new();
            }
            let s = schema(&types);
            let mut text: String = (0..types.len()).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
            text.push_str(eol);
            for r in &rows {
                text.push_str(&r[..types.len()].join(","));
                text.push_str(eol);
            }
            // Ragged rows (an unquoted comma) are the chunker's to reject.
            let chunk = try_chunk(text.as_bytes());
            prop_assume!(chunk.is_some());
            let chunk = chunk.unwrap();
            prop_assume!(chunk.rows() == rows.len());
            let slow = reference(&chunk, &s, &input);
            if let Some(fast) = FastCsv::new(&s, &input.csv).unwrap().parse(&chunk) {
                prop_assert!(slow.is_some(), "the reference parser rejects what the fast path read:\n{text}");
                let slow = slow.unwrap();
                prop_assert!(fast.equals_missing(&slow), "{text}\nfast {fast}\nreference {slow}");
            }
        }
    }
}
