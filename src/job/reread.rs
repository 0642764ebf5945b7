//! The transform pass's reader when it reads the input again (Parquet
//! input, or `second_pass = "reread"`): every chunk decoded, then cleaned
//! with the fit pass's [`Cleaner`], handed on in input order.
//!
//! ```text
//! Source (Parquet decoders / CSV parser) ─► clean ─► PassChunk channel ─► pass
//!                                      ... ─► Err(e): the last chunk
//! ```
//! A read failure travels down the channel after the chunks before it, so
//! the pass stops there and discards the shard it has open (a reader that
//! just ended would let the pass commit that shard before failing).

use std::sync::mpsc::SyncSender;

use polars::prelude::DataFrame;

use crate::error::{DataLocation, PrepError, Result};
use crate::job::fit::consumer_gone;
use crate::read::source::Source;
use crate::timings::{timed, Stage};
use crate::transform::clean::Cleaner;

/// Where the rows of a re-read chunk came from (to name a bad value).
pub struct Origin {
    file: String,
    lines: Vec<u64>,
    first_row: u64,
}

impl Origin {
    pub fn locate(&self, i: usize, column: &str) -> DataLocation {
        DataLocation {
            file: self.file.clone(),
            line: self.lines.get(i).copied(),
            row: self.lines.is_empty().then_some(self.first_row + i as u64),
            column: Some(column.to_string()),
        }
    }
}

/// A chunk for the transform pass, and where its rows came from (re-read
/// chunks whose rows all survived cleaning).
pub type PassChunk = Result<(DataFrame, Option<Origin>)>;

/// Reads `source`, cleans each chunk with `cleaner`, and sends the chunks
/// to `tx` in order. A failure is sent as the last chunk; a reader whose
/// pass is gone just stops.
pub fn read_and_clean(mut source: Source, cleaner: &Cleaner, tx: &SyncSender<PassChunk>) {
    let read = source.for_each_chunk(&mut |chunk, src| {
        let c = timed(Stage::Clean, || cleaner.clean(&chunk, &src.files, false))?;
        // Rows line up with the chunk when nothing was dropped (always so
        // for `prep apply`).
        let origin = c.kept.is_none().then(|| Origin {
            file: src.files[chunk.file_index].uri.clone(),
            lines: chunk.lines,
            first_row: chunk.first_row,
        });
        tx.send(Ok((c.df, origin))).map_err(|_| consumer_gone())
    });
    match read {
        Err(PrepError::PipelineStopped) | Ok(()) => {}
        Err(e) => {
            let _ = tx.send(Err(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::plan::{InputPlan, NonFinite};
    use crate::storage::InputObject;
    use polars::prelude::*;
    use std::num::NonZeroUsize;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    /// 600 rows in row groups of 50 (chunks of 50), `x` null where id % 7 == 3.
    fn parquet(dir: &std::path::Path) -> (Source, Vec<i64>) {
        let id: Vec<i64> = (0..600).collect();
        let x: Vec<Option<f64>> = (0..600).map(|i| (i % 7 != 3).then_some(i as f64)).collect();
        let mut df = df!("id" => id, "x" => x).unwrap();
        let path = dir.join("in.parquet");
        ParquetWriter::new(std::fs::File::create(&path).unwrap())
            .with_row_group_size(Some(50))
            .finish(&mut df)
            .unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let files = vec![InputObject::local(path, "in.parquet".into(), size)];
        let mut plan = InputPlan::defaults("in.parquet");
        plan.chunk_rows = NonZeroUsize::new(50).unwrap();
        let kept = (0..600).filter(|i| i % 7 != 3).collect();
        let source = Source::new(files, &plan, Arc::new(AtomicBool::new(false)));
        (source, kept)
    }

    fn cleaner() -> Cleaner {
        Cleaner {
            null_checked: vec!["x".into()],
            finite_checked: vec![],
            non_finite: NonFinite::Fail,
        }
    }

    fn ids(df: &DataFrame) -> Vec<i64> {
        df.column("id")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect()
    }

    /// Runs the reader on its own thread, as the pass does, and collects
    /// what it sends.
    fn read_all(source: Source) -> Vec<PassChunk> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<PassChunk>(1);
        let cleaner = cleaner();
        std::thread::scope(|s| {
            s.spawn(move || read_and_clean(source, &cleaner, &tx));
            rx.iter().collect()
        })
    }

    #[test]
    fn every_chunk_comes_cleaned_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (source, kept) = parquet(dir.path());
        let got = read_all(source);
        assert_eq!(got.len(), 12, "one chunk per row group");
        let mut ids_got = Vec::new();
        for chunk in got {
            let (df, origin) = chunk.unwrap();
            ids_got.extend(ids(&df));
            // Every chunk lost a row (ids 3, 10, ...): no origin to name rows by.
            assert!(origin.is_none());
        }
        assert_eq!(ids_got, kept);
    }

    #[test]
    fn a_damaged_row_group_reaches_the_pass_after_the_chunks_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let (source, kept) = parquet(dir.path());
        let path = dir.path().join("in.parquet");
        let mut bytes = std::fs::read(&path).unwrap();
        let x = {
            let mut f = std::fs::File::open(&path).unwrap();
            let meta = polars_parquet::read::read_metadata(&mut f).unwrap();
            meta.row_groups[5]
                .parquet_columns()
                .iter()
                .find(|c| c.descriptor().path_in_schema[0].as_str() == "x")
                .unwrap()
                .byte_range()
        };
        bytes[x.start as usize..x.end as usize].fill(0xFF);
        std::fs::write(&path, bytes).unwrap();
        let got = read_all(source);
        assert_eq!(got.len(), 6, "five chunks, then the error");
        let before: Vec<i64> = got[..5]
            .iter()
            .flat_map(|c| ids(&c.as_ref().unwrap().0))
            .collect();
        assert_eq!(before, kept[..before.len()]);
        assert_eq!(before.last(), Some(&249));
        let e = got[5].as_ref().err().expect("the sixth is the error");
        assert_eq!(e.exit_code(), crate::error::ExitCode::BadData);
        assert!(e.to_string().contains("in.parquet"), "{e}");
    }

    #[test]
    fn a_reader_whose_pass_is_gone_stops_without_an_error_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let (source, _) = parquet(dir.path());
        let (tx, rx) = std::sync::mpsc::sync_channel::<PassChunk>(1);
        drop(rx);
        // Returns (the decoders stop after the row group they are on).
        read_and_clean(source, &cleaner(), &tx);
    }
}
