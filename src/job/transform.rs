//! The transform pass, as four stages on their own threads:
//!
//! ```text
//! reader (spill: two reads in flight; or re-read + clean, job/reread.rs)
//!     ─► impute → encode → scale → project
//!     ─► shard encoder (Parquet output: pages) ─► shard writer
//! ```
//! The middle stage runs on this thread (parallel inside); bounded channels
//! keep at most a few chunks in flight. What leaves: committed shards.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use polars::prelude::*;

use crate::error::{DataLocation, PrepError, Result};
use crate::in_turn::in_turn;
use crate::job::fit::{consumer_gone, Fitted, PassInput};
use crate::job::report::Progress;
use crate::job::reread::{read_and_clean, PassChunk};
use crate::pipeline::plan::OutputFormat;
use crate::storage::OutputDir;
use crate::timings::{timed, Stage};
use crate::transform::steps::FittedSteps;
use crate::write::row_groups::{GroupPlanner, GroupStep};
use crate::write::sink::{ShardInfo, ShardSink, SinkBatch, SinkOptions};
use crate::write::spill::Spill;

pub fn interrupted() -> PrepError {
    PrepError::Interrupted {
        signal: "a termination signal".into(),
    }
}

/// Selects and renames the output columns.
pub fn project(df: DataFrame, output: &[(String, String)]) -> Result<DataFrame> {
    let names: Vec<PlSmallStr> = output
        .iter()
        .map(|(c, _)| PlSmallStr::from(c.as_str()))
        .collect();
    let mut df = df
        .select(names)
        .map_err(|e| PrepError::polars("selecting output columns", e))?;
    if output.iter().any(|(a, b)| a != b) {
        let to: Vec<PlSmallStr> = output
            .iter()
            .map(|(_, t)| PlSmallStr::from(t.as_str()))
            .collect();
        df.set_column_names(&to)
            .map_err(|e| PrepError::polars("renaming output columns", e))?;
    }
    Ok(df)
}

/// Spill files read back at once: two, so one file's read waits on the
/// disk while the other's is handed on, where one reader left the pass
/// waiting on its reads (dev VM, 5 alternating rounds: 5M CSV → Parquet
/// 2.43 → 2.22 s, 8 files 2.48 → 2.18 s; CSV → JSON Lines 3.47 → 3.22 s,
/// 8 files 3.44 → 3.30 s; docs/benchmarks.md, session 14).
const SPILL_READS_IN_FLIGHT: usize = 2;

/// Sends every chunk of `spill` to `tx` in order, `reads` files read at
/// once. A failed read is sent as the pass's input error and ends the
/// reading: the pass stops at it, the open shard is discarded and the run
/// fails.
fn send_spilled(mut spill: Spill, reads: usize, tx: &SyncSender<PassChunk>) {
    let read = in_turn(
        "prep-spill-reader",
        spill.take_all(),
        reads,
        &|chunk| timed(Stage::SpillRead, || chunk.read()),
        &|| Ok(()),
        &mut |df| tx.send(Ok((df, None))).map_err(|_| consumer_gone()),
    );
    if let Err(e) = read {
        let _ = tx.send(Err(e));
    }
    drop(spill); // its folder, once every read is done
}

/// Batches waiting for the shard writer, at most.
const WRITER_QUEUE: usize = 2;

/// Parquet frames the shard writer encodes at once, at most: the one it
/// took and those waiting in its channel.
const FRAMES_ENCODED_TOGETHER: usize = WRITER_QUEUE + 1;

enum WriterMsg {
    Batch(SinkBatch),
    /// Parquet row groups the shard encoder planned and encoded.
    Groups(Vec<GroupStep>),
    /// Sent only after the last batch: commit the last shard. Without it
    /// (an error upstream) the open shard is discarded.
    Finish,
}

/// The shard encoder (Parquet output): plans and encodes the frames that
/// arrive, those already waiting together (on every core), and hands the
/// row groups to the shard writer, which writes the previous ones
/// meanwhile. Text batches (not sent here) would pass as they are.
fn encode_frames(
    rx: Receiver<WriterMsg>,
    tx: SyncSender<WriterMsg>,
    mut planner: GroupPlanner,
) -> Result<()> {
    let mut next = None;
    loop {
        let msg = match next.take() {
            Some(msg) => msg,
            None => rx.recv().map_err(|_| interrupted())?,
        };
        let done = match msg {
            WriterMsg::Batch(SinkBatch::Frame(df)) => {
                let mut frames = vec![df];
                while frames.len() < FRAMES_ENCODED_TOGETHER {
                    match rx.try_recv() {
                        Ok(WriterMsg::Batch(SinkBatch::Frame(df))) => frames.push(df),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                WriterMsg::Groups(planner.plan(&frames)?)
            }
            other => other,
        };
        let last = matches!(done, WriterMsg::Finish);
        tx.send(done).map_err(|_| consumer_gone())?;
        if last {
            return Ok(());
        }
    }
}

/// The transform pass, as four stages on their own threads: a reader (spill
/// or re-read + clean), the fitted steps, projection and row encoder (this
/// thread, parallel inside), the shard encoder (Parquet output: pages,
/// parallel inside) and the shard writer. Bounded channels keep at
/// most a few chunks in flight. `layout` pairs each produced column with
/// its output name; empty: every column as it is (`prep apply` with a
/// `scaler.json`).
pub fn transform_pass(
    input: &PassInput,
    fitted: Fitted,
    steps: &FittedSteps,
    layout: &[(String, String)],
    out: &OutputDir,
    sink_opts: SinkOptions,
) -> Result<(Vec<ShardInfo>, u64)> {
    let cancel = input.cancel.clone();
    let Fitted {
        cleaner,
        counts,
        spill,
        schema,
        ..
    } = fitted;
    let format = sink_opts.format;
    let mut progress = Progress::rows("transform", counts.rows_out(), input.quiet);
    let mut written = 0u64;
    let (main, write) = std::thread::scope(|scope| {
        let (in_tx, in_rx) = sync_channel::<PassChunk>(1);
        let cleaner = &cleaner;
        std::thread::Builder::new()
            .name("prep-pass-reader".into())
            .spawn_scoped(scope, move || match spill {
                Some(spill) => send_spilled(spill, SPILL_READS_IN_FLIGHT, &in_tx),
                None => read_and_clean(input.source().with_schema(schema), cleaner, &in_tx),
            })
            .expect("starting the pass reader thread");
        let (out_tx, out_rx) = sync_channel::<WriterMsg>(WRITER_QUEUE);
        let mut sink = ShardSink::new(out.clone(), sink_opts);
        // Parquet frames pass through the shard encoder; text batches go
        // straight to the writer (already encoded, and large: no batch
        // more in flight than before).
        let (writer_rx, encoder) = match format {
            OutputFormat::Parquet => {
                let (enc_tx, enc_rx) = sync_channel::<WriterMsg>(1);
                let planner = GroupPlanner::new(sink.limits(), sink.parquet_compression());
                let encoder = std::thread::Builder::new()
                    .name("prep-shard-encoder".into())
                    .spawn_scoped(scope, move || encode_frames(out_rx, enc_tx, planner))
                    .expect("starting the shard encoder thread");
                (enc_rx, Some(encoder))
            }
            _ => (out_rx, None),
        };
        let writer = std::thread::Builder::new()
            .name("prep-shard-writer".into())
            .spawn_scoped(scope, move || -> Result<Vec<ShardInfo>> {
                loop {
                    match writer_rx.recv().map_err(|_| interrupted())? {
                        WriterMsg::Groups(steps) => sink.write_groups(steps)?,
                        WriterMsg::Batch(b) => sink.write_batch(b)?,
                        WriterMsg::Finish => return sink.finish(),
                    }
                }
            })
            .expect("starting the shard writer thread");
        let main = (|| -> Result<()> {
            for df in in_rx {
                if cancel.load(Ordering::Relaxed) {
                    return Err(interrupted());
                }
                let (df, origin) = df?;
                let locate = |i: usize, c: &str| match &origin {
                    Some(o) => o.locate(i, c),
                    None => DataLocation::file(&input.input.uri).column(c),
                };
                let projected = timed(Stage::Scale, || {
                    steps
                        .apply(df, &locate)
                        .and_then(|done| match layout.is_empty() {
                            true => Ok(done),
                            false => project(done, layout),
                        })
                })?;
                written += projected.height() as u64;
                let batch = timed(Stage::Encode, || ShardSink::prepare(format, &projected))?;
                out_tx
                    .send(WriterMsg::Batch(batch))
                    .map_err(|_| consumer_gone())?;
                progress.update(written, written);
            }
            Ok(())
        })();
        if main.is_ok() {
            let _ = out_tx.send(WriterMsg::Finish);
        }
        drop(out_tx);
        let write = writer.join().expect("writer thread panicked");
        let encode = encoder.map_or(Ok(()), |h| h.join().expect("encoder thread panicked"));
        // The encoder's own failure beats the writer's "input stopped", and
        // the writer's failure beats the encoder's "writer gone".
        let write = match (encode, write) {
            (Err(e), _) if !matches!(e, PrepError::PipelineStopped) => Err(e),
            (_, Err(e)) => Err(e),
            (Err(e), Ok(_)) => Err(e),
            (Ok(()), Ok(shards)) => Ok(shards),
        };
        (main, write)
    });
    progress.finish();
    // Report the root cause: a reader's failure (sent as a chunk) or the
    // writer's beats "thread stopped".
    match (main, write) {
        (Err(e), Err(_)) if !matches!(e, PrepError::PipelineStopped) => Err(e),
        (_, Err(e)) => Err(e),
        (Err(e), _) => Err(e),
        (Ok(()), Ok(shards)) => Ok((shards, written)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spill_read_that_fails_reaches_the_pass_in_order_and_ends_the_reading() {
        for reads in [1, 2] {
            let mut spill = Spill::new().unwrap();
            let frames: Vec<DataFrame> = (0..4i64)
                .map(|i| df!("a" => (i..i + 5000).map(|v| v << 40).collect::<Vec<_>>()).unwrap())
                .collect();
            for df in &frames {
                spill.write(&mut df.clone(), &[]).unwrap();
            }
            // The third chunk's file is damaged after it was written.
            let path = spill.path().join("chunk-000002.spill");
            let len = std::fs::metadata(&path).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            f.set_len(len / 2).unwrap();
            let (tx, rx) = sync_channel::<PassChunk>(8);
            send_spilled(spill, reads, &tx);
            drop(tx);
            let got: Vec<PassChunk> = rx.into_iter().collect();
            assert_eq!(got.len(), 3, "two chunks, then the error ({reads} reads)");
            for (g, want) in got[..2].iter().zip(&frames) {
                let (df, _) = g.as_ref().expect("read before the damaged file");
                assert_eq!(df, want);
            }
            let e = got[2].as_ref().err().expect("the third is the error");
            assert_eq!(e.exit_code(), crate::error::ExitCode::Storage);
            assert!(e.to_string().contains("chunk-000002.spill"), "{e}");
        }
    }
}
