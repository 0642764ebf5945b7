//! What one CSV field is and what it holds, the way Python's `csv` module and
//! pandas read it (CONTRACT §2, docs/reference.md "CSV dialect"):
//!
//! - a quote opens a quoted field only as the field's first byte; anywhere
//!   else it is a literal character (`A,B",C` is `A`, `B"`, `C`);
//! - inside quotes, two quotes are one literal quote, and delimiters and
//!   line ends are literal;
//! - text after the closing quote is appended (`"x"y` is `xy`);
//! - a field is null when it is one of `null_values`; the empty string
//!   counts only unquoted (`""` is always the empty string).
//!
//! Enters: the bytes of one record (line end removed). Leaves: its fields,
//! and the typed value of a field (int64, float64, bool) shared by the fast
//! parser, the reference parser and type inference, so all three agree.

use std::borrow::Cow;

use polars::prelude::DataType;

/// One field of a record: its value with the quoting removed.
pub struct Field<'a> {
    pub value: Cow<'a, [u8]>,
    /// Whether the field started with a quote.
    pub quoted: bool,
}

/// The fields of one record, in order.
pub struct Fields<'a> {
    rec: &'a [u8],
    pos: usize,
    delimiter: u8,
    quote: Option<u8>,
    done: bool,
}

pub fn fields(rec: &[u8], delimiter: u8, quote: Option<u8>) -> Fields<'_> {
    Fields {
        rec,
        pos: 0,
        delimiter,
        quote,
        done: false,
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        if self.done {
            return None;
        }
        let rec = self.rec;
        let start = self.pos;
        let quoted = self.quote.is_some() && rec.get(start) == self.quote.as_ref();
        if !quoted {
            let end =
                memchr::memchr(self.delimiter, &rec[start..]).map_or(rec.len(), |i| start + i);
            self.finish_at(end);
            return Some(Field {
                value: Cow::Borrowed(&rec[start..end]),
                quoted: false,
            });
        }
        let q = self.quote.expect("quoted");
        let mut owned: Option<Vec<u8>> = None;
        let mut p = start + 1;
        // Inside the quotes.
        let mut inner_end = loop {
            match memchr::memchr(q, &rec[p..]) {
                None => break rec.len(), // cannot happen for a record the chunker closed
                Some(i) => {
                    let at = p + i;
                    if rec.get(at + 1) == Some(&q) {
                        owned
                            .get_or_insert_with(Vec::new)
                            .extend_from_slice(&rec[p..=at]);
                        p = at + 2;
                        continue;
                    }
                    break at;
                }
            }
        };
        if let Some(o) = owned.as_mut() {
            o.extend_from_slice(&rec[p..inner_end]);
        }
        // After the closing quote: literal text up to the delimiter.
        let after = (inner_end + 1).min(rec.len());
        let end = memchr::memchr(self.delimiter, &rec[after..]).map_or(rec.len(), |i| after + i);
        if end > after {
            let o = owned.get_or_insert_with(|| rec[start + 1..inner_end].to_vec());
            o.extend_from_slice(&rec[after..end]);
            inner_end = end;
        }
        self.finish_at(end);
        let value = match owned {
            Some(o) => Cow::Owned(o),
            None => Cow::Borrowed(&rec[start + 1..inner_end.max(start + 1)]),
        };
        Some(Field { value, quoted })
    }
}

impl Fields<'_> {
    fn finish_at(&mut self, end: usize) {
        if end >= self.rec.len() {
            self.done = true;
        } else {
            self.pos = end + 1;
        }
    }
}

/// The `null_values` of `[input.csv]`, matched against a field.
#[derive(Clone)]
pub struct NullTokens {
    tokens: Vec<Vec<u8>>,
    empty: bool,
}

impl NullTokens {
    pub fn new(values: &[String]) -> NullTokens {
        NullTokens {
            tokens: values
                .iter()
                .filter(|v| !v.is_empty())
                .map(|v| v.as_bytes().to_vec())
                .collect(),
            empty: values.iter().any(|v| v.is_empty()),
        }
    }

    /// Whether the field means null: one of the tokens (quoted or not), or
    /// empty and unquoted when `""` is a token.
    pub fn is_null(&self, value: &[u8], quoted: bool) -> bool {
        if value.is_empty() {
            return self.empty && !quoted;
        }
        self.tokens.iter().any(|t| t.as_slice() == value)
    }

    pub fn empty_is_null(&self) -> bool {
        self.empty
    }

    pub fn tokens(&self) -> &[Vec<u8>] {
        &self.tokens
    }
}

fn trim_ascii(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// An int64, as the fast parser reads it; spaces around it are allowed.
pub fn parse_int(v: &[u8]) -> Option<i64> {
    atoi_simd::parse::<i64, true, true>(trim_ascii(v)).ok()
}

/// A float64 (also `inf`, `-inf`, `nan`, `infinity`); spaces around it are
/// allowed.
pub fn parse_float(v: &[u8]) -> Option<f64> {
    fast_float2::parse::<f64, _>(trim_ascii(v)).ok()
}

/// `true` / `false` in any case.
pub fn parse_bool(v: &[u8]) -> Option<bool> {
    if v.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if v.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

/// Whether a non-null field fits a column type.
pub fn fits(v: &[u8], dtype: &DataType) -> bool {
    match dtype {
        DataType::Int64 => parse_int(v).is_some(),
        DataType::Float64 => parse_float(v).is_some(),
        DataType::Boolean => parse_bool(v).is_some(),
        _ => true,
    }
}

/// The narrowing type of a column so far: int64 ⊂ float64 ⊂ string, bool ⊂
/// string; `None` while it has no non-null value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inferred {
    Int,
    Float,
    Bool,
    Str,
}

impl Inferred {
    /// The type of one non-null value.
    pub fn of(v: &[u8]) -> Inferred {
        if parse_int(v).is_some() {
            Inferred::Int
        } else if parse_float(v).is_some() {
            Inferred::Float
        } else if parse_bool(v).is_some() {
            Inferred::Bool
        } else {
            Inferred::Str
        }
    }

    /// The type of a column holding values of both types.
    pub fn join(self, other: Inferred) -> Inferred {
        use Inferred::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Int, Float) | (Float, Int) => Float,
            _ => Str,
        }
    }

    /// Joins one value into the column type so far.
    pub fn add(so_far: Option<Inferred>, v: &[u8]) -> Option<Inferred> {
        Some(match so_far {
            Some(Inferred::Str) => Inferred::Str,
            Some(t) => t.join(Inferred::of(v)),
            None => Inferred::of(v),
        })
    }

    pub fn dtype(self) -> DataType {
        match self {
            Inferred::Int => DataType::Int64,
            Inferred::Float => DataType::Float64,
            Inferred::Bool => DataType::Boolean,
            Inferred::Str => DataType::String,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(rec: &str) -> Vec<(String, bool)> {
        fields(rec.as_bytes(), b',', Some(b'"'))
            .map(|f| (String::from_utf8(f.value.into_owned()).unwrap(), f.quoted))
            .collect()
    }

    #[test]
    fn fields_read_like_python_csv() {
        let s = |v: &str, q: bool| (v.to_string(), q);
        assert_eq!(
            split("A,B\",C"),
            vec![s("A", false), s("B\"", false), s("C", false)]
        );
        assert_eq!(split("7041,\"x\"y"), vec![s("7041", false), s("xy", true)]);
        assert_eq!(split("\"a\"\"b\",\"\""), vec![s("a\"b", true), s("", true)]);
        assert_eq!(
            split("\"x,y\nz\",,"),
            vec![s("x,y\nz", true), s("", false), s("", false)]
        );
        assert_eq!(
            split("\"x\"y\"z\",1"),
            vec![s("xy\"z\"", true), s("1", false)]
        );
        assert_eq!(split(""), vec![s("", false)]);
        assert_eq!(split("a\"\"b"), vec![s("a\"\"b", false)]);
    }

    #[test]
    fn nulls_follow_the_tokens() {
        let t = NullTokens::new(&["".into(), "NA".into()]);
        assert!(t.is_null(b"", false));
        assert!(!t.is_null(b"", true), "\"\" is the empty string");
        assert!(t.is_null(b"NA", true));
        let none = NullTokens::new(&[]);
        assert!(
            !none.is_null(b"", false),
            "null_values = [] means nothing is null"
        );
    }

    #[test]
    fn inference_narrows() {
        let col = |vals: &[&str]| {
            vals.iter()
                .fold(None, |t, v| Inferred::add(t, v.as_bytes()))
                .map(Inferred::dtype)
        };
        assert_eq!(col(&["1", " 2 ", "+3"]), Some(DataType::Int64));
        assert_eq!(col(&["1", "2.5"]), Some(DataType::Float64));
        assert_eq!(col(&["inf", "1"]), Some(DataType::Float64));
        assert_eq!(col(&["True", "false"]), Some(DataType::Boolean));
        assert_eq!(col(&["1", "x"]), Some(DataType::String));
        assert_eq!(col(&["true", "1"]), Some(DataType::String));
        assert_eq!(col(&[]), None);
    }
}
