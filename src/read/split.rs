//! Splitting one large CSV object between workers: byte offsets moved to
//! record boundaries. Input: an object and a nominal offset; output: the
//! offset of the next record start, the same for every worker.

use crate::error::{DataError, DataLocation, PrepError, Result};
use crate::pipeline::plan::InputPlan;
use crate::read::chunker::{open_chunker, RecordChunker};
use crate::storage::{read_range, InputObject};

/// The first record of an object (its header) and its record end (`\n` or
/// `\r`, see [`crate::read::chunker::detect_eol`]).
pub fn first_record_of(obj: &InputObject, plan: &InputPlan) -> Result<(Vec<String>, u8)> {
    let mut chunker = open_chunker(obj, &plan.csv)?;
    let header = chunker.first_record(false)?.unwrap_or_default();
    Ok((header, chunker.eol()))
}

/// How many consecutive well-formed records confirm a record boundary.
const ALIGN_CONFIRM: usize = 16;
/// How far past a nominal split point a record boundary is searched.
const ALIGN_WINDOW: u64 = 8 << 20;

/// Moves a nominal byte offset to the start of the next record. Without the
/// state from the start of the file a newline may sit inside a quoted field,
/// so a candidate is accepted only when the records that follow it all have
/// the header's field count and plain quoting (ALIGN_CONFIRM of them, or
/// all up to the end of the object). Every worker computes the same boundary for the same offset,
/// so adjacent pieces meet exactly.
pub fn align_csv(
    obj: &InputObject,
    nominal: u64,
    plan: &InputPlan,
    fields: usize,
    eol: u8,
) -> Result<u64> {
    if nominal == 0 || nominal >= obj.size {
        return Ok(nominal.min(obj.size));
    }
    // The window starts one byte early so that a record starting exactly at
    // `nominal` (preceded by a newline) is found too.
    let base = nominal - 1;
    let end = (nominal + ALIGN_WINDOW).min(obj.size);
    let window = read_range(obj, base..end)?;
    let at_eof = end == obj.size;
    let mut pos = 0usize;
    while let Some(i) = memchr::memchr(eol, &window[pos..]) {
        let start = pos + i + 1;
        pos = start;
        if start == window.len() {
            if at_eof {
                return Ok(obj.size);
            }
            break;
        }
        let mut c = RecordChunker::new(&window[start..], "", plan.csv.delimiter, plan.csv.quote);
        c.set_expected_fields(fields);
        c.set_eol(eol);
        c.strict_quotes();
        match c.next_chunk(ALIGN_CONFIRM) {
            Ok(Some(chunk)) if chunk.rows() == ALIGN_CONFIRM || at_eof => {
                return Ok(base + start as u64);
            }
            _ => continue,
        }
    }
    Err(PrepError::bad_data(
        DataLocation::file(&obj.uri),
        DataError::NoRecordBoundary {
            offset: nominal,
            window: ALIGN_WINDOW,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every nominal split offset must land on a true record start, even
    /// when quoted fields contain newlines and text that looks like records.
    #[test]
    fn aligned_splits_land_on_record_starts() {
        let mut data = String::from("id,text,x\n");
        let mut starts = Vec::new();
        for i in 0..400 {
            starts.push(data.len() as u64);
            let text = match i % 4 {
                0 => "plain".to_string(),
                1 => format!("\"tricky\n{},looks,like\n{},a row\"", i + 1, i + 2),
                2 => "\"has \"\"quotes\"\", and, commas\"".to_string(),
                _ => "\"\n\n\"".to_string(),
            };
            data.push_str(&format!("{i},{text},{i}.5\n"));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, &data).unwrap();
        let obj = InputObject::local(path, "t.csv".into(), data.len() as u64);
        let plan = InputPlan::defaults("t.csv");
        for nominal in (1..data.len() as u64).step_by(37) {
            let got = align_csv(&obj, nominal, &plan, 3, b'\n').unwrap();
            assert!(got >= nominal);
            assert!(
                got == data.len() as u64 || starts.contains(&got),
                "offset {nominal} aligned to {got}, not a record start"
            );
            let next = starts
                .iter()
                .copied()
                .find(|s| *s >= nominal)
                .unwrap_or(data.len() as u64);
            assert_eq!(got, next, "the first record start at or after {nominal}");
        }
    }
}
