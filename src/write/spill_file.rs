//! One spill file: a cleaned chunk written, and read back, with as little
//! copying as its column types allow.
//!
//! Enters: a chunk (`DataFrame`) and a writer; leaves: the bytes of one
//! file and, for a raw file, its [`Layout`]. Enters: those bytes, read
//! whole ([`FileBytes`]); leaves: the chunk, its columns pointing into them.
//!
//! Numbers, booleans, dates, text and nulls (all CSV input gives) go raw
//! (`spill_raw.rs`: each buffer copied once). Other types go as Arrow IPC:
//! polars' `IpcWriter` builds each file's body in a fresh buffer grown by
//! doubling and `IpcReader` copies every column out and checks the text
//! again, so here one [`SpillEncoder`] keeps its body buffer from file to
//! file and the reader takes the columns in place (polars-arrow's
//! zero-copy IPC path). Measures in docs/benchmarks.md.

use std::io::{Cursor, Write};
use std::sync::Arc;

use polars::prelude::*;
use polars_arrow::io::ipc::read::read_file_metadata;
use polars_arrow::io::ipc::write::{EncodedData, FileWriter, WriteOptions};
use polars_arrow::mmap::{mmap_dictionaries_unchecked, mmap_unchecked};

use crate::storage::direct_file::FileBytes;
use crate::write::spill_raw::{self, Layout};

/// Encodes chunks as IPC files, reusing one body buffer for all of them.
#[derive(Default)]
pub struct SpillEncoder {
    scratch: EncodedData,
}

impl SpillEncoder {
    /// Writes `df` to `w`: raw (its layout returned) when its types allow,
    /// else as one IPC file. Uncompressed either way: the spill is read back
    /// within seconds, and compressing costs more CPU than the disk time it
    /// saves.
    pub fn write<W: Write>(&mut self, w: W, df: &mut DataFrame) -> PolarsResult<Option<Layout>> {
        if spill_raw::fits(df) {
            return Ok(Some(spill_raw::write(w, df)?));
        }
        self.write_ipc(w, df).map(|()| None)
    }

    fn write_ipc<W: Write>(&mut self, w: W, df: &mut DataFrame) -> PolarsResult<()> {
        let schema = df.schema().to_arrow(CompatLevel::newest());
        let mut writer = FileWriter::new(w, Arc::new(schema), None, WriteOptions::default());
        writer.set_scratches(std::mem::take(&mut self.scratch));
        let written = (|| {
            writer.start()?;
            df.align_chunks_par();
            for batch in df.iter_chunks(CompatLevel::newest(), true) {
                writer.write(&batch, None)?;
            }
            writer.finish()
        })();
        self.scratch = writer.get_scratches();
        written
    }
}

/// Reads a spill file back (raw when written with a layout), all columns
/// or `columns` only. The columns point into `bytes`, which live as long as
/// the chunk does.
pub fn read(
    bytes: FileBytes,
    layout: Option<&Layout>,
    columns: Option<&[String]>,
) -> PolarsResult<DataFrame> {
    if let Some(layout) = layout {
        return spill_raw::read(bytes, layout, columns);
    }
    let bytes = Arc::new(bytes);
    let df = match in_place(&bytes) {
        Ok(df) => df,
        // Buffers the zero-copy path cannot take (not aligned for their
        // type): read by copying, which also reports a damaged file.
        Err(_) => IpcReader::new(Cursor::new(bytes.as_ref().as_ref())).finish()?,
    };
    match columns {
        Some(c) => df.select(c.iter().map(|c| PlSmallStr::from(c.as_str()))),
        None => Ok(df),
    }
}

/// The file's record batches as one frame whose columns point into `bytes`.
fn in_place(bytes: &Arc<FileBytes>) -> PolarsResult<DataFrame> {
    let metadata = read_file_metadata(&mut Cursor::new(bytes.as_ref().as_ref()))?;
    // SAFETY: spill files are written by `SpillEncoder` of this process
    // into a folder only this user can write (see `spill.rs`), and read back
    // once: the buffers hold the offsets, views and UTF-8 text polars wrote.
    // Bounds and alignment of every buffer are still checked.
    let dictionaries = unsafe { mmap_dictionaries_unchecked(&metadata, bytes.clone())? };
    let mut df: Option<DataFrame> = None;
    for i in 0..metadata.blocks.len() {
        let batch = unsafe { mmap_unchecked(&metadata, &dictionaries, bytes.clone(), i)? };
        let part = DataFrame::from(batch);
        match df.as_mut() {
            Some(d) => {
                d.vstack_mut_owned_unchecked(part);
            }
            None => df = Some(part),
        }
    }
    match df {
        Some(df) => Ok(df),
        None => Ok(DataFrame::empty_with_schema(&Schema::from_arrow_schema(
            &metadata.schema,
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::direct_file::read_all;

    /// Writes `df` with `enc`, reads it back; whether it went raw.
    fn round_trip(df: &DataFrame, enc: &mut SpillEncoder) -> (DataFrame, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.spill");
        let layout = enc
            .write(std::fs::File::create(&path).unwrap(), &mut df.clone())
            .unwrap();
        let back = read(read_all(&path, false).unwrap(), layout.as_ref(), None).unwrap();
        (back, layout.is_some())
    }

    /// A frame with a list column, which only IPC takes.
    fn with_list(rows: usize) -> DataFrame {
        let lists: Vec<Series> = (0..rows)
            .map(|i| Series::new("".into(), vec![i as i64; i % 3]))
            .collect();
        let long = "a text longer than twelve bytes, kept in a data buffer";
        let text: Vec<&str> = (0..rows)
            .map(|i| if i % 2 == 0 { long } else { "é" })
            .collect();
        DataFrame::new(
            rows,
            vec![
                Series::new("l".into(), lists).into(),
                Series::new("t".into(), text).into(),
                Series::new("x".into(), (0..rows).map(|i| i as f64).collect::<Vec<_>>()).into(),
            ],
        )
        .unwrap()
    }

    #[test]
    fn csv_types_go_raw_other_types_go_as_ipc_through_one_encoder() {
        let mut enc = SpillEncoder::default();
        let a = df!(
            "x" => [Some(1.5f64), None, Some(-2.0)],
            "t" => [Some("short"), Some("a text longer than twelve bytes"), None],
            "n" => [1i64, 2, 3],
            "b" => [true, false, true],
        )
        .unwrap();
        assert_eq!(round_trip(&a, &mut enc), (a.clone(), true));
        // IPC: a frame, a smaller one through the same body buffer, one of
        // several chunks per column (several record batches), an empty one.
        let mut l = with_list(50);
        assert_eq!(round_trip(&l, &mut enc), (l.clone(), false));
        let small = with_list(3);
        assert_eq!(round_trip(&small, &mut enc), (small.clone(), false));
        l.vstack_mut(&small).unwrap();
        assert_eq!(round_trip(&l, &mut enc), (l.clone(), false));
        let empty = l.head(Some(0));
        assert_eq!(round_trip(&empty, &mut enc), (empty.clone(), false));
    }

    #[test]
    fn ipc_columns_are_taken_in_place_and_projected() {
        let mut enc = SpillEncoder::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.spill");
        let df = with_list(100);
        let layout = enc
            .write(std::fs::File::create(&path).unwrap(), &mut df.clone())
            .unwrap();
        assert!(layout.is_none(), "lists go as IPC");
        let bytes = Arc::new(read_all(&path, true).unwrap());
        let back = in_place(&bytes).expect("the zero-copy path takes the file");
        assert_eq!(back, df);
        assert!(
            Arc::strong_count(&bytes) > 1,
            "the columns hold the bytes read"
        );
        let x = read(read_all(&path, false).unwrap(), None, Some(&["x".into()])).unwrap();
        assert_eq!(x, df.select(["x"]).unwrap());
    }

    #[test]
    fn a_damaged_ipc_file_is_an_error_not_a_crash() {
        let mut enc = SpillEncoder::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.spill");
        enc.write(std::fs::File::create(&path).unwrap(), &mut with_list(100))
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(read(read_all(&path, false).unwrap(), None, None).is_err());
    }
}
