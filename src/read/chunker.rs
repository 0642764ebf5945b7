//! Splits a CSV byte stream into chunks of whole records, with bounded memory.
//!
//! Why not let polars read the file? A path-based polars CSV read memory-maps
//! the whole file (RSS grows with the input), and polars reports neither the
//! line of a ragged row nor tolerates a stream. This splitter reads through a
//! fixed-size buffer, tracks quoting (the rules of `csv_fields.rs`: a quote
//! opens only at a field start) so an embedded line end never splits a
//! record, reads `\n`, `\r\n` and lone-`\r` files (detected per file),
//! checks that every record has as many fields as the header (naming the
//! line when not), and hands the parsers one self-contained chunk at a time.
//! It also remembers the line each record starts on, for error messages.

use std::io::Read;
use std::sync::{Arc, Mutex};

use memchr::{memchr, memchr2, memchr3};

use crate::error::{bad_utf8, DataError, DataLocation, PrepError, Result};

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

/// Buffers of parsed chunks, handed back for reuse. Each chunk needs a
/// buffer of its size; reusing old ones saves growing (copying) a fresh one
/// and faulting in its pages (measured: ~8 % of a run's CPU time). One pool
/// serves the chunkers of a pass's objects one after another (two at once
/// when the next is opened ahead), so a new object's chunks reuse the last
/// one's pages: with 200 objects of 1 MB, fresh chunk buffers were half of
/// the run's page clearing.
#[derive(Clone, Default)]
pub struct SparePool(Arc<Mutex<Vec<Vec<u8>>>>);

impl SparePool {
    /// Buffers kept; more are freed.
    const MAX: usize = 4;

    /// Takes back a buffer (its bytes are dropped, its capacity kept).
    pub fn put(&self, mut buf: Vec<u8>) {
        let mut pool = self.0.lock().expect("spare pool");
        if pool.len() < Self::MAX && buf.capacity() > 0 {
            buf.clear();
            pool.push(buf);
        }
    }

    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().expect("spare pool").pop()
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
    /// (a blank line is not a row, as in pandas).
    blank: Vec<(usize, usize)>,
    /// Buffers of parsed chunks, handed back for reuse (see [`SparePool`]).
    spare: SparePool,
    /// Whether `next_record` counts fields (see [`Self::leave_field_counts`]).
    count_fields: bool,
    /// The byte that ends a record: `\n` (LF or CRLF files) or `\r` (old
    /// Mac files), detected from the first record ([`detect_eol`]). In a
    /// `\r` file each record's final `\r` is rewritten to `\n` in the chunk,
    /// so parsers see one line end.
    eol: u8,
    eol_known: bool,
    /// Rejects the legal but rare quote shapes (a quote inside an unquoted
    /// field, text after a closing quote): for finding a record boundary
    /// in the middle of a file, where they mean a wrong guess.
    strict_quotes: bool,
}

impl<R> Drop for RecordChunker<R> {
    fn drop(&mut self) {
        self.spare.put(std::mem::take(&mut self.buf));
    }
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
            spare: SparePool::default(),
            count_fields: true,
            eol: b'\n',
            eol_known: false,
            strict_quotes: false,
        }
    }

    /// See `strict_quotes`: an odd quote is then an error.
    pub fn strict_quotes(&mut self) {
        self.strict_quotes = true;
    }

    /// Sets the record end (a piece from the middle of an object: detected
    /// from the object's start, see [`Self::eol`]).
    pub fn set_eol(&mut self, eol: u8) {
        self.eol = eol;
        self.eol_known = true;
    }

    /// The record end in use (`\n` or `\r`).
    pub fn eol(&self) -> u8 {
        self.eol
    }

    fn ensure_eol(&mut self) -> Result<()> {
        if self.eol_known {
            return Ok(());
        }
        while self.buf.len() < READ_BLOCK && self.fill()? {}
        self.eol = detect_eol(&self.buf, self.delimiter, self.quote);
        self.eol_known = true;
        Ok(())
    }

    /// Stops checking field counts while scanning: the scan then stops only
    /// at quotes and newlines, not at every delimiter. For a parser that
    /// checks each record's shape itself (the fast path in `csv_fast.rs`);
    /// [`check_field_counts`] names the ragged line when it finds one.
    pub fn leave_field_counts(&mut self) {
        self.count_fields = false;
    }

    /// Takes back a chunk's buffer once it is parsed (see [`SparePool`]).
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.spare.put(buf);
    }

    /// Shares `pool` for chunk buffers: taken from it, and given back to it
    /// when this chunker is dropped. Before the first read.
    pub fn with_spares(mut self, pool: SparePool) -> Self {
        if let Some(buf) = pool.take() {
            self.buf = buf;
        }
        self.spare = pool;
        self
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
    /// Not UTF-8 is bad data naming the line and field.
    pub fn first_record(&mut self, consume: bool) -> Result<Option<Vec<String>>> {
        let Some((start, end, _)) = self.next_record()? else {
            return Ok(None);
        };
        let line = self.record_lines.last().copied().unwrap_or(1);
        let mut fields = Vec::new();
        for (i, f) in crate::read::csv_fields::fields(
            trim_eol(&self.buf[start..end]),
            self.delimiter,
            self.quote,
        )
        .enumerate()
        {
            match std::str::from_utf8(&f.value) {
                Ok(v) => fields.push(v.to_string()),
                Err(e) => {
                    let (byte, at) = bad_utf8(&f.value, e);
                    return Err(PrepError::bad_data(
                        DataLocation::file(&self.file).line(Some(line)),
                        DataError::HeaderNotUtf8 {
                            field: i + 1,
                            byte,
                            at,
                        },
                    ));
                }
            }
        }
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
        let mut rest = self.spare.take().unwrap_or_default();
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
        self.ensure_eol()?;
        let eol = self.eol;
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
                    (true, Some(q)) => memchr2(q, eol, hay),
                    (false, Some(q)) => memchr3(self.delimiter, q, eol, hay),
                    (true, None) => memchr(eol, hay),
                    (false, None) => memchr2(self.delimiter, eol, hay),
                };
                let Some(i) = hit else {
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
                };
                let at = pos + i;
                let b = self.buf[at];
                pos = at + 1;
                if b == eol {
                    if in_quotes {
                        lines_inside += 1;
                    } else {
                        break Some(pos);
                    }
                } else if Some(b) == self.quote {
                    if in_quotes {
                        // `""` inside quotes is a literal quote; one quote closes.
                        let next = self.buf.get(pos).copied();
                        match next {
                            Some(n) if n == b => pos += 1,
                            Some(n)
                                if self.strict_quotes
                                    && n != self.delimiter
                                    && n != eol
                                    && n != b'\r' =>
                            {
                                return Err(odd_quote(&self.file, start_line))
                            }
                            Some(_) => in_quotes = false,
                            None if self.fill()? => break None,
                            None => in_quotes = false,
                        }
                    } else if at == start || self.buf[at - 1] == self.delimiter {
                        in_quotes = true;
                    } else if self.strict_quotes {
                        return Err(odd_quote(&self.file, start_line));
                    }
                    // Elsewhere a quote is a literal character.
                } else {
                    fields += 1;
                }
            };
            let Some(end) = end else { continue };
            if end == start {
                return Ok(None); // end of stream
            }
            if eol == b'\r' && self.buf[end - 1] == b'\r' {
                self.buf[end - 1] = b'\n';
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

/// The record end of a file from its first bytes: `\r` when the first line
/// end outside quotes is a lone CR (Excel for Mac "CSV (Macintosh)"), else
/// `\n` (LF and CRLF files).
pub fn detect_eol(head: &[u8], delimiter: u8, quote: Option<u8>) -> u8 {
    let mut in_quotes = false;
    let mut i = 0;
    while i < head.len() {
        let b = head[i];
        if Some(b) == quote {
            if in_quotes {
                if head.get(i + 1) == Some(&b) {
                    i += 1;
                } else {
                    in_quotes = false;
                }
            } else if i == 0 || head[i - 1] == delimiter {
                in_quotes = true;
            }
        } else if !in_quotes && b == b'\n' {
            return b'\n';
        } else if !in_quotes && b == b'\r' {
            return match head.get(i + 1) {
                Some(b'\n') | None => b'\n',
                Some(_) => b'\r',
            };
        }
        i += 1;
    }
    b'\n'
}

fn odd_quote(file: &str, line: u64) -> PrepError {
    PrepError::bad_data(
        DataLocation::file(file).line(Some(line)),
        DataError::Unparsable {
            detail: "a quote inside an unquoted field".into(),
        },
    )
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

/// How many fields one record has (the count [`crate::read::csv_fields::fields`]
/// gives, without building them).
fn count_fields(rec: &[u8], delimiter: u8, quote: Option<u8>) -> usize {
    crate::read::csv_fields::fields(rec, delimiter, quote).count()
}

/// A chunker over an object's whole (decompressed) stream, with the
/// pipeline's delimiter and quote: for reading headers and looking ahead
/// (a run's own reads go through `csv_reader.rs`'s thread).
pub fn open_chunker(
    obj: &crate::storage::InputObject,
    csv: &crate::pipeline::plan::CsvPlan,
) -> Result<RecordChunker<Box<dyn Read + Send>>> {
    let reader = crate::storage::open_read(obj, Default::default())?;
    Ok(RecordChunker::new(
        reader,
        obj.uri.clone(),
        csv.delimiter,
        csv.quote,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunkers_sharing_a_pool_reuse_each_others_buffers() {
        let data = b"a,b\n1,2\n\"x\ny\",4\n".repeat(500);
        let held = |p: &SparePool| p.0.lock().unwrap().len();
        let pool = SparePool::default();
        let mut first =
            RecordChunker::new(&data[..], "a.csv", b',', Some(b'"')).with_spares(pool.clone());
        first.first_record(true).unwrap();
        while let Some(c) = first.next_chunk(100).unwrap() {
            pool.put(c.bytes); // parsed: handed back
        }
        drop(first);
        assert!(held(&pool) >= 2, "chunk buffers and the chunker's own");
        // The next object's chunker starts on them and gives the same chunks.
        let before = held(&pool);
        let mut second =
            RecordChunker::new(&data[..], "b.csv", b',', Some(b'"')).with_spares(pool.clone());
        assert_eq!(held(&pool), before - 1, "its buffer came from the pool");
        second.first_record(true).unwrap();
        let (_, fresh) = chunks(&data, 100).unwrap();
        for want in fresh {
            let got = second.next_chunk(100).unwrap().unwrap();
            assert_eq!(got.bytes, want.bytes);
            assert_eq!(got.record_lines, want.record_lines);
            pool.put(got.bytes);
        }
        assert!(second.next_chunk(100).unwrap().is_none());
        for _ in 0..10 {
            pool.put(Vec::with_capacity(16));
        }
        assert_eq!(held(&pool), SparePool::MAX, "the pool is bounded");
    }

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
    fn quotes_open_only_at_a_field_start() {
        // `B"` holds a literal quote; `"x"y` is one field; neither opens
        // quoting that would swallow the next line.
        let (_, ch) = chunks(b"a,b,c\nA,B\",C\n1,\"x\"y,2\n3,4,5\n", 10).unwrap();
        assert_eq!(ch[0].record_lines, vec![2, 3, 4]);
        let err = chunks(b"a,b\n1,2\",3\n", 10).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn lone_cr_line_ends_are_records() {
        let data = b"a,b\r1,\"x\ry\"\r\r2,z\r";
        let (header, ch) = chunks(data, 10).unwrap();
        assert_eq!(header, vec!["a", "b"]);
        assert_eq!(ch[0].record_lines, vec![2, 5]);
        assert_eq!(ch[0].bytes, b"1,\"x\ry\"\n2,z\n");
        assert_eq!(detect_eol(b"a,b\r\n1,2", b',', Some(b'"')), b'\n');
        assert_eq!(detect_eol(b"\"a\rb\",c\n", b',', Some(b'"')), b'\n');
    }

    #[test]
    fn a_header_that_is_not_utf8_is_bad_data() {
        let err = chunks(b"id,caf\xe9\n1,2\n", 10).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("t.csv, line 1"), "{msg}");
        assert!(msg.contains("field 2"), "{msg}");
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
