//! The CSV byte stream of one object, read, decompressed and split into
//! record-aligned chunks on a background thread.

use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use crate::error::{PrepError, Result};
use crate::pipeline::plan::InputPlan;
use crate::read::chunker::{CsvChunk, RecordChunker, SparePool};
use crate::storage::{open_read, open_read_range, InputObject};
use crate::timings::{timed, Stage};

/// `PREP_CSV_PARSER=reference` parses every chunk with the reference parser
/// (to compare the two paths, or to rule the fast one out when chasing a
/// problem).
pub fn fast_parser_enabled() -> bool {
    crate::env::fast_csv_parser()
}

pub enum Msg {
    Header(Option<Vec<String>>),
    Chunk(CsvChunk),
    Failed(PrepError),
}

/// A CSV reader thread's chunks (their buffers go back to its pool).
pub type Chunks = Receiver<Msg>;

/// Reads, decompresses and splits a CSV object on a background thread, so
/// I/O and record scanning overlap with parsing. The channel holds at most
/// two chunks, which bounds memory. Parsed chunks' buffers go back to
/// `spares`, which the chunker takes its buffers from.
pub fn spawn_chunker(
    obj: &InputObject,
    plan: &InputPlan,
    counter: Arc<AtomicU64>,
    range: Option<std::ops::Range<u64>>,
    known_header: Option<(Vec<String>, u8)>,
    leave_field_counts: bool,
    spares: SparePool,
) -> Result<Chunks> {
    let reader = match &range {
        Some(r) => open_read_range(obj, r.clone(), counter)?,
        None => open_read(obj, counter)?,
    };
    let (tx, rx) = sync_channel(2);
    let uri = obj.uri.clone();
    let csv = plan.csv.clone();
    let chunk_rows = plan.chunk_rows.get();
    std::thread::Builder::new()
        .name("prep-csv-reader".into())
        .spawn(move || {
            let mut chunker =
                RecordChunker::new(reader, uri, csv.delimiter, csv.quote).with_spares(spares);
            let header = match known_header {
                // A piece from the middle of an object: the header was read
                // from the object's start; this stream holds records only.
                Some((h, eol)) => {
                    chunker.set_expected_fields(h.len());
                    chunker.set_eol(eol);
                    Ok(Some(h))
                }
                None => timed(Stage::Read, || chunker.first_record(csv.has_header)),
            };
            let header = match header {
                Ok(h) => h,
                Err(e) => {
                    let _ = tx.send(Msg::Failed(e));
                    return;
                }
            };
            if leave_field_counts {
                chunker.leave_field_counts();
            }
            if tx.send(Msg::Header(header)).is_err() {
                return;
            }
            loop {
                match timed(Stage::Read, || chunker.next_chunk(chunk_rows)) {
                    Ok(Some(c)) => {
                        if tx.send(Msg::Chunk(c)).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.send(Msg::Failed(e));
                        return;
                    }
                }
            }
        })
        .map_err(|e| PrepError::io("starting the CSV reader thread", e))?;
    Ok(rx)
}
