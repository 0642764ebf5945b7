//! One spill file: a cleaned chunk as Arrow IPC, written and read back with
//! as little copying as the format allows.
//!
//! Enters: a chunk (`DataFrame`) and a writer; leaves: the bytes of one
//! IPC file. Enters: those bytes, read whole ([`FileBytes`]); leaves: the
//! chunk, its columns pointing into those bytes.
//!
//! polars' `IpcWriter` builds each file's body in a fresh buffer grown by
//! doubling (every byte copied again, every page of it touched fresh), and
//! `IpcReader` copies every column out of the bytes read and checks the
//! text again. Here one [`SpillEncoder`] keeps its body buffer from file to
//! file, and the reader takes the columns where they lie in the read bytes
//! (polars-arrow's zero-copy IPC path). On the 5M-row benchmark this was
//! about a sixth of the CPU time of a CSV → Parquet run (docs/benchmarks.md).

use std::io::{Cursor, Write};
use std::sync::Arc;

use polars::prelude::*;
use polars_arrow::io::ipc::read::read_file_metadata;
use polars_arrow::io::ipc::write::{EncodedData, FileWriter, WriteOptions};
use polars_arrow::mmap::{mmap_dictionaries_unchecked, mmap_unchecked};

use crate::storage::direct_file::FileBytes;

/// Encodes chunks as IPC files, reusing one body buffer for all of them.
#[derive(Default)]
pub struct SpillEncoder {
    scratch: EncodedData,
}

impl SpillEncoder {
    /// Writes `df` as one IPC file to `w` (uncompressed: the spill is read
    /// back within seconds, and compressing costs more CPU than the disk
    /// time it saves).
    pub fn write<W: Write>(&mut self, w: W, df: &mut DataFrame) -> PolarsResult<()> {
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

/// Reads a spill file back, all columns or `columns` only. The columns
/// point into `bytes`, which live as long as the chunk does.
pub fn read(bytes: FileBytes, columns: Option<&[String]>) -> PolarsResult<DataFrame> {
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

    fn round_trip(df: &mut DataFrame, enc: &mut SpillEncoder) -> DataFrame {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.arrow");
        enc.write(std::fs::File::create(&path).unwrap(), df)
            .unwrap();
        read(read_all(&path, false).unwrap(), None).unwrap()
    }

    #[test]
    fn chunks_round_trip_through_one_encoder() {
        let mut enc = SpillEncoder::default();
        let long = "a text longer than twelve bytes, kept in a data buffer";
        let mut a = df!(
            "x" => [Some(1.5f64), None, Some(-2.0)],
            "t" => [Some("short"), Some(long), None],
            "n" => [1i64, 2, 3],
            "b" => [true, false, true],
        )
        .unwrap();
        assert_eq!(round_trip(&mut a.clone(), &mut enc), a);
        // A second, smaller chunk through the same buffer, and one of
        // several chunks per column (several record batches).
        let b = df!("x" => [0.25f64], "t" => ["é"], "n" => [9i64], "b" => [false]).unwrap();
        assert_eq!(round_trip(&mut b.clone(), &mut enc), b);
        a.vstack_mut(&b).unwrap();
        assert_eq!(round_trip(&mut a.clone(), &mut enc), a);
        let empty = a.head(Some(0));
        assert_eq!(round_trip(&mut empty.clone(), &mut enc), empty);
    }

    #[test]
    fn dates_and_a_projection_come_back() {
        let mut enc = SpillEncoder::default();
        let days = Series::new("d".into(), [19000i32, 19001])
            .cast(&DataType::Date)
            .unwrap();
        let df = DataFrame::new(
            2,
            vec![days.into(), Series::new("v".into(), [1.0f64, 2.0]).into()],
        )
        .unwrap();
        let back = round_trip(&mut df.clone(), &mut enc);
        assert_eq!(back, df);
        assert_eq!(back.column("d").unwrap().dtype(), &DataType::Date);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.arrow");
        enc.write(std::fs::File::create(&path).unwrap(), &mut df.clone())
            .unwrap();
        let v = read(read_all(&path, false).unwrap(), Some(&["v".into()])).unwrap();
        assert_eq!(v, df.select(["v"]).unwrap());
    }

    #[test]
    fn the_columns_are_taken_in_place_not_copied() {
        let mut enc = SpillEncoder::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.arrow");
        let long = "x".repeat(100);
        let mut df = df!("x" => [1.0f64, 2.0], "t" => [long.as_str(), "b"]).unwrap();
        enc.write(std::fs::File::create(&path).unwrap(), &mut df)
            .unwrap();
        let bytes = Arc::new(read_all(&path, true).unwrap());
        let back = in_place(&bytes).expect("the zero-copy path takes the file");
        assert_eq!(back, df);
        assert!(
            Arc::strong_count(&bytes) > 1,
            "the columns hold the bytes read"
        );
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_crash() {
        let mut enc = SpillEncoder::default();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunk.arrow");
        let mut df = df!("x" => [1.0f64, 2.0], "t" => ["a", "b"]).unwrap();
        enc.write(std::fs::File::create(&path).unwrap(), &mut df)
            .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        assert!(read(read_all(&path, false).unwrap(), None).is_err());
    }
}
