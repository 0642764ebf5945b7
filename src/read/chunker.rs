//! Splits a CSV byte stream into chunks of whole records, with bounded memory.
//!
//! Why not let polars read the file? A path-based polars CSV read memory-maps
//! the whole file (RSS grows with the input), and polars reports neither the
//! line of a ragged row nor tolerates a stream. This splitter reads through a
//! fixed-size buffer, tracks quoting so an embedded newline never splits a
//! record, checks that every record has as many fields as the header (naming
//! the line when not), and hands polars one self-contained chunk at a time.
//! It also remembers the line each record starts on, for error messages.

use std::io::Read;

use memchr::{memchr, memchr2, memchr3};

use crate::error::{DataError, DataLocation, PrepError, Result};

/// Bytes requested from the underlying reader per read call.
const READ_BLOCK: usize = 1 << 20;

/// A run of whole CSV records, ready for the parser.
#[derive(Debug)]
pub struct CsvChunk {
    pub bytes: Vec<u8>,
    /// Physical line (1-based) on which each record starts.
    pub record_lines: Vec<u64>,
    /// Byte offset in `bytes` at which each record starts, so a parser can
    /// split the chunk between threads at record boundaries.
    pub record_starts: Vec<usize>,
}

impl CsvChunk {
    pub fn rows(&self) -> usize {
        self.record_lines.len()
    }
}

pub struct RecordChunker<R> {
    reader: R,
    file: String,
    delimiter: u8,
    quote: Option<u8>,
    /// Unconsumed bytes; `buf[..scanned]` holds whole records already checked.
    buf: Vec<u8>,
    scanned: usize,
    record_lines: Vec<u64>,
    record_starts: Vec<usize>,
    /// Physical line number at `buf[scanned]`.
    line: u64,
    eof: bool,
    expected_fields: Option<usize>,
    bytes_read: u64,
    started: bool,
    /// Byte ranges of blank lines in `buf[..scanned]`: removed from the chunk
    /// (polars would read a blank line as a row of nulls).
    blank: Vec<(usize, usize)>,
    /// Buffers of parsed chunks, handed back for reuse (see [`Self::recycle`]).
    spare: Vec<Vec<u8>>,
    /// Whether `next_record` counts fields (see [`Self::leave_field_counts`]).
    count_fields: bool,
}

impl<R: Read> RecordChunker<R> {
    pub fn new(reader: R, file: impl Into<String>, delimiter: u8, quote: Option<u8>) -> Self {
        RecordChunker {
            reader,
            file: file.into(),
            delimiter,
            quote,
            buf: Vec::with_capacity(READ_BLOCK * 2),
            scanned: 0,
            record_lines: Vec::new(),
            record_starts: Vec::new(),
            line: 1,
            eof: false,
            expected_fields: None,
            bytes_read: 0,
            started: false,
            blank: Vec::new(),
            spare: Vec::new(),
            count_fields: true,
        }
    }

    /// Stops checking field counts while scanning: the scan then stops only
    /// at quotes and newlines, not at every delimiter. For a parser that
    /// checks each record's shape itself (the fast path in `csv_fast.rs`);
    /// [`check_field_counts`] names the ragged line when it finds one.
    pub fn leave_field_counts(&mut self) {
        self.count_fields = false;
    }

    /// Takes back a chunk's buffer once it is parsed. Each chunk needs a new
    /// buffer of its size; reusing old ones saves growing (copying) a fresh
    /// one and faulting in its pages (measured: ~8 % of a run's CPU time).
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < 4 {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Bytes pulled from the (decompressed) stream so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub fn set_expected_fields(&mut self, n: usize) {
        self.expected_fields = Some(n);
    }

    /// Reads the first record and returns its fields, unquoted (the header, or
    /// with `header = false` the first data row, which is then kept).
    pub fn first_record(&mut self, consume: bool) -> Result<Option<Vec<String>>> {
        let Some((start, end, _)) = self.next_record()? else {
            return Ok(None);
        };
        let fields = split_fields(trim_eol(&self.buf[start..end]), self.delimiter, self.quote);
        if self.expected_fields.is_none() {
            self.expected_fields = Some(fields.len());
        }
        if consume {
            self.buf.drain(..end);
            self.scanned = 0;
            self.record_lines.clear();
            self.record_starts.clear();
            self.blank.clear();
        }
        Ok(Some(fields))
    }

    /// The next chunk of up to `max_rows` records, or `None` at the end.
    pub fn next_chunk(&mut self, max_rows: usize) -> Result<Option<CsvChunk>> {
        while self.record_lines.len() < max_rows {
            if self.next_record()?.is_none() {
                break;
            }
        }
        if self.record_lines.is_empty() {
            return Ok(None);
        }
        // The unscanned tail moves to a buffer with room for a whole chunk
        // plus a read block, so reading the next chunk does not reallocate.
        let mut rest = self.spare.pop().unwrap_or_default();
        rest.reserve(self.scanned.max(self.buf.len() - self.scanned) + 2 * READ_BLOCK);
        rest.extend_from_slice(&self.buf[self.scanned..]);
        self.buf.truncate(self.scanned);
        let mut bytes = std::mem::replace(&mut self.buf, rest);
        let mut record_starts = std::mem::take(&mut self.record_starts);
        if !self.blank.is_empty() {
            // Both lists are in byte order: shift each record start back by
            // the blank bytes removed before it.
            let mut removed = 0;
            let mut blanks = self.blank.iter().peekable();
            for start in record_starts.iter_mut() {
                while let Some(&&(s, e)) = blanks.peek() {
                    if s >= *start {
                        break;
                    }
                    removed += e - s;
                    blanks.next();
                }
                *start -= removed;
            }
            let mut kept = Vec::with_capacity(bytes.len());
            let mut from = 0;
            for (s, e) in self.blank.drain(..) {
                kept.extend_from_slice(&bytes[from..s]);
                from = e;
            }
            kept.extend_from_slice(&bytes[from..]);
            bytes = kept;
        }
        if bytes.last() != Some(&b'\n') {
            bytes.push(b'\n');
        }
        self.scanned = 0;
        Ok(Some(CsvChunk {
            bytes,
            record_lines: std::mem::take(&mut self.record_lines),
            record_starts,
        }))
    }

    fn fill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let old = self.buf.len();
        self.buf.resize(old + READ_BLOCK, 0);
        let n = loop {
            match self.reader.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(read_error(&self.file, e));
                }
            }
        };
        self.buf.truncate(old + n);
        self.bytes_read += n as u64;
        if !self.started && self.buf.len() >= 3 {
            self.started = true;
            if self.buf.starts_with(b"\xEF\xBB\xBF") {
                self.buf.drain(..3);
            }
        }
        if n == 0 {
            self.eof = true;
            if !self.started && self.buf.starts_with(b"\xEF\xBB\xBF") {
                self.buf.drain(..3);
            }
            self.started = true;
        }
        Ok(n > 0)
    }

    /// Scans one record starting at `self.scanned`; returns its byte range and
    /// field count. Blank lines are kept in the chunk (the parser skips them)
    /// but are not records.
    fn next_record(&mut self) -> Result<Option<(usize, usize, usize)>> {
        loop {
            let start = self.scanned;
            let start_line = self.line;
            let mut pos = start;
            let mut fields = 1;
            let mut in_quotes = false;
            let mut lines_inside = 0u64;
            let end = loop {
                let hay = &self.buf[pos..];
                let hit = match (in_quotes || !self.count_fields, self.quote) {
                    (true, Some(q)) => memchr2(q, b'\n', hay),
                    (false, Some(q)) => memchr3(self.delimiter, q, b'\n', hay),
                    (true, None) => memchr(b'\n', hay),
                    (false, None) => memchr2(self.delimiter, b'\n', hay),
                };
                match hit {
                    Some(i) => {
                        let b = hay[i];
                        pos += i + 1;
                        if b == b'\n' {
                            if in_quotes {
                                lines_inside += 1;
                            } else {
                                break Some(pos);
                            }
                        } else if Some(b) == self.quote {
                            in_quotes = !in_quotes;
                        } else {
                            fields += 1;
                        }
                    }
                    None => {
                        pos = self.buf.len();
                        // Need more bytes: read and rescan this record from its start.
                        if self.fill()? {
                            break None;
                        }
                        if in_quotes {
                            return Err(PrepError::bad_data(
                                DataLocation::file(&self.file).line(Some(start_line)),
                                DataError::UnterminatedQuote,
                            ));
                        }
                        break Some(pos);
                    }
                }
            };
            let Some(end) = end else { continue };
            if end == start {
                return Ok(None); // end of stream
            }
            self.scanned = end;
            self.line = start_line + lines_inside + u64::from(self.buf[end - 1] == b'\n');
            let content = trim_eol(&self.buf[start..end]);
            if content.is_empty() {
                self.blank.push((start, end));
                continue; // blank line
            }
            if let (Some(expected), true) = (self.expected_fields, self.count_fields) {
                if fields != expected {
                    return Err(ragged(&self.file, start_line, expected, fields));
                }
            }
            self.record_lines.push(start_line);
            self.record_starts.push(start);
            return Ok(Some((start, end, fields)));
        }
    }
}

fn ragged(file: &str, line: u64, expected: usize, found: usize) -> PrepError {
    PrepError::bad_data(
        DataLocation::file(file).line(Some(line)),
        DataError::RaggedRow { expected, found },
    )
}

/// Checks that every record of a chunk read with
/// [`RecordChunker::leave_field_counts`] has `expected` fields; the error
/// names the first line that does not.
pub fn check_field_counts(
    chunk: &CsvChunk,
    expected: usize,
    file: &str,
    delimiter: u8,
    quote: Option<u8>,
) -> Result<()> {
    for (k, &start) in chunk.record_starts.iter().enumerate() {
        let end = chunk
            .record_starts
            .get(k + 1)
            .copied()
            .unwrap_or(chunk.bytes.len());
        let found = count_fields(trim_eol(&chunk.bytes[start..end]), delimiter, quote);
        if found != expected {
            return Err(ragged(file, chunk.record_lines[k], expected, found));
        }
    }
    Ok(())
}

fn read_error(file: &str, e: std::io::Error) -> PrepError {
    let is_decode = matches!(
        e.kind(),
        std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::InvalidInput
            | std::io::ErrorKind::UnexpectedEof
    );
    if is_decode {
        PrepError::bad_data(
            DataLocation::file(file),
            DataError::Undecodable {
                detail: e.to_string(),
            },
        )
    } else {
        PrepError::Storage {
            action: "reading".into(),
            uri: file.to_string(),
            hint: None,
            source: Box::new(e),
        }
    }
}

pub fn trim_eol(mut rec: &[u8]) -> &[u8] {
    if rec.last() == Some(&b'\n') {
        rec = &rec[..rec.len() - 1];
    }
    if rec.last() == Some(&b'\r') {
        rec = &rec[..rec.len() - 1];
    }
    rec
}

/// Splits one record into unquoted fields (used for headers and error
/// diagnosis only; the bulk parse is polars').
pub fn split_fields(rec: &[u8], delimiter: u8, quote: Option<u8>) -> Vec<String> {
    split_fields_raw(rec, delimiter, quote)
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// How many fields one record has: delimiters outside quotes, plus one
/// (the count [`split_fields_raw`] gives, without building the fields).
fn count_fields(rec: &[u8], delimiter: u8, quote: Option<u8>) -> usize {
    let mut fields = 1;
    let mut in_quotes = false;
    for &b in rec {
        if Some(b) == quote {
            in_quotes = !in_quotes;
        } else if b == delimiter && !in_quotes {
            fields += 1;
        }
    }
    fields
}

/// Splits one record into unquoted fields, as bytes (UTF-8 not checked).
pub fn split_fields_raw(rec: &[u8], delimiter: u8, quote: Option<u8>) -> Vec<Vec<u8>> {
    let mut fields = Vec::new();
    let mut cur = Vec::new();
    let mut in_quotes = false;
    let mut i = 0;
    while i < rec.len() {
        let b = rec[i];
        if Some(b) == quote {
            if in_quotes && rec.get(i + 1) == Some(&b) {
                cur.push(b);
                i += 1;
            } else {
                in_quotes = !in_quotes;
            }
        } else if b == delimiter && !in_quotes {
            fields.push(std::mem::take(&mut cur));
        } else {
            cur.push(b);
        }
        i += 1;
    }
    fields.push(cur);
    fields
}

/// Iterates the records of a chunk as (line, raw fields); for error diagnosis.
pub fn records_of(chunk: &CsvChunk, delimiter: u8, quote: Option<u8>) -> Vec<(u64, Vec<Vec<u8>>)> {
    let mut out = Vec::with_capacity(chunk.rows());
    let mut c = RecordChunker::new(&chunk.bytes[..], "", delimiter, quote);
    let mut idx = 0;
    while let Ok(Some((s, e, _))) = c.next_record() {
        let fields = split_fields_raw(trim_eol(&c.buf[s..e]), delimiter, quote);
        out.push((chunk.record_lines.get(idx).copied().unwrap_or(0), fields));
        idx += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(data: &[u8], rows: usize) -> Result<(Vec<String>, Vec<CsvChunk>)> {
        let mut c = RecordChunker::new(data, "t.csv", b',', Some(b'"'));
        let header = c.first_record(true)?.unwrap();
        let mut out = Vec::new();
        while let Some(ch) = c.next_chunk(rows)? {
            out.push(ch);
        }
        Ok((header, out))
    }

    #[test]
    fn quoted_newlines_stay_in_one_record() {
        let data = b"id,text\n1,\"a\nb, \"\"c\"\"\"\n2,x\n3,y";
        let (header, ch) = chunks(data, 2).unwrap();
        assert_eq!(header, vec!["id", "text"]);
        assert_eq!(ch.len(), 2);
        assert_eq!(ch[0].record_lines, vec![2, 4]);
        assert_eq!(ch[1].record_lines, vec![5]);
        assert_eq!(ch[1].bytes, b"3,y\n");
        assert_eq!(ch[0].record_starts, vec![0, 15]);
        assert_eq!(ch[1].record_starts, vec![0]);
        let recs = records_of(&ch[0], b',', Some(b'"'));
        assert_eq!(recs[0].1, vec![b"1".to_vec(), b"a\nb, \"c\"".to_vec()]);
    }

    #[test]
    fn ragged_row_names_its_line() {
        let err = chunks(b"a,b\n1,2\n\"x\ny\",2,3\n", 10).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("t.csv, line 3"), "{msg}");
        assert!(msg.contains("expected 2 fields"), "{msg}");
    }

    #[test]
    fn bom_crlf_and_blank_lines() {
        let (header, ch) = chunks(b"\xEF\xBB\xBFa,b\r\n1,2\r\n\r\n3,4\r\n\n", 10).unwrap();
        assert_eq!(header, vec!["a", "b"]);
        assert_eq!(ch[0].record_lines, vec![2, 4]);
        assert_eq!(
            ch[0].bytes, b"1,2\r\n3,4\r\n",
            "blank lines are not passed to the parser"
        );
        assert_eq!(
            ch[0].record_starts,
            vec![0, 5],
            "starts skip the blank line"
        );
    }

    #[test]
    fn ragged_rows_are_found_later_when_counts_are_left() {
        let data = b"a,b\n1,2\n\n\"x\ny\",2,3\n4,5\n";
        let mut c = RecordChunker::new(&data[..], "t.csv", b',', Some(b'"'));
        c.first_record(true).unwrap();
        c.leave_field_counts();
        let chunk = c.next_chunk(10).unwrap().unwrap();
        assert_eq!(chunk.rows(), 3);
        let err = check_field_counts(&chunk, 2, "t.csv", b',', Some(b'"')).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("t.csv, line 4"), "{msg}");
        assert!(
            msg.contains("expected 2 fields (as in the header), found 3"),
            "{msg}"
        );
    }

    #[test]
    fn counting_fields_agrees_with_splitting_them() {
        for rec in [
            &b"a,b,c"[..],
            b"\"a,b\",c",
            b"\"a\"\"b\",,",
            b"",
            b"x\"y,z\"w",
        ] {
            assert_eq!(
                count_fields(rec, b',', Some(b'"')),
                split_fields_raw(rec, b',', Some(b'"')).len(),
                "{}",
                String::from_utf8_lossy(rec)
            );
        }
    }

    #[test]
    fn unterminated_quote_is_bad_data() {
        let err = chunks(b"a,b\n1,\"oops\n2,3\n", 10).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn records_larger_than_the_read_block() {
        let big = "x".repeat(READ_BLOCK * 2 + 17);
        let data = format!("a,b\n1,\"{big}\"\n2,z\n");
        let (_, ch) = chunks(data.as_bytes(), 1).unwrap();
        assert_eq!(ch.len(), 2);
        assert_eq!(ch[1].record_lines, vec![3]);
    }
}
