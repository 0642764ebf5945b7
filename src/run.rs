//! `prep run`: wires the stages together.
//!
//! ```text
//! list inputs ─► Source (chunks) ─► Cleaner ─► Moments per column ─► Spill
//!                                                        │
//!                                           Scaler::fit  ▼
//! Spill (or re-read + clean) ─► Scaler::apply ─► project/rename ─► ShardSink
//!                                   ─► scaler.json, manifest.json, _SUCCESS
//! ```
//! The fit pass must finish before the first row can be written (global
//! statistics), so the rows are seen twice: from the spill by default, or by
//! reading the input again (`input.second_pass = "reread"`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Instant;

use polars::prelude::*;
use rayon::prelude::*;

use crate::clean::{nothing_left, CleanCounts, Cleaner};
use crate::columns::{resolve, ResolvedColumns};
use crate::error::{PrepError, Result};
use crate::plan::{Plan, SecondPass};
use crate::report::{Progress, RunReport};
use crate::scaler::{Scaler, ScalerSource, SourceObject};
use crate::sink::{manifest_json, ShardInfo, ShardSink, SinkBatch, SinkOptions};
use crate::source::{FixedSchema, Piece, Source};
use crate::spill::Spill;
use crate::stats::Moments;
use crate::store::{list_inputs, put_uri, without_output, InputObject, OutputDir};
use crate::timings::{timed, Stage};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub overwrite: bool,
    pub quiet: bool,
}

/// Files a run owns under its output directory.
fn is_run_output(name: &str) -> bool {
    name == "_SUCCESS"
        || name == "manifest.json"
        || name == "scaler.json"
        || name == "_work"
        || name.starts_with("part-")
        || (name.starts_with(".part-") && name.ends_with(".inprogress"))
}

/// Refuses to touch an earlier run's output without `--overwrite`; with it,
/// removes that output (`_SUCCESS` first, so no reader sees a mix).
pub fn prepare_output(out: &OutputDir, overwrite: bool) -> Result<()> {
    let names = out.list_names()?;
    let existing: Vec<&String> = names.iter().filter(|n| is_run_output(n)).collect();
    if existing.is_empty() {
        return Ok(());
    }
    if !overwrite {
        return Err(PrepError::OutputExists {
            uri: format!(
                "{} (holds {})",
                out.uri,
                existing
                    .iter()
                    .take(3)
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    out.delete("_SUCCESS")?;
    for n in existing {
        out.delete(n)?;
    }
    Ok(())
}

/// Collects the finite, non-null values of a column as f64.
fn finite_values(df: &DataFrame, name: &str) -> Result<Vec<f64>> {
    let col = df
        .column(name)
        .map_err(|e| PrepError::polars(format!("reading column `{name}`"), e))?;
    let f = col
        .cast(&DataType::Float64)
        .map_err(|e| PrepError::polars(format!("casting column `{name}` to float64"), e))?;
    let ca = f
        .f64()
        .map_err(|e| PrepError::polars(format!("reading column `{name}`"), e))?;
    Ok(if ca.null_count() == 0 {
        ca.into_no_null_iter().filter(|v| !v.is_nan()).collect()
    } else {
        ca.iter().flatten().filter(|v| !v.is_nan()).collect()
    })
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

pub fn cleaner_for(plan: &Plan, cols: &ResolvedColumns) -> Cleaner {
    Cleaner {
        null_checked: cols.null_checked.clone(),
        scaled: cols.scaled.clone(),
        non_finite: plan.clean.non_finite,
    }
}

/// What the fit pass learned.
pub struct Fitted {
    pub resolved: ResolvedColumns,
    pub cleaner: Cleaner,
    pub moments: Vec<Moments>,
    pub counts: CleanCounts,
    pub bytes_in: u64,
    /// The cleaned chunks, when `second_pass = "spill"`.
    pub spill: Option<Spill>,
    /// The schema the pass fixed, so a re-read parses the same way.
    pub schema: Option<FixedSchema>,
}

fn interrupted() -> PrepError {
    PrepError::Interrupted {
        signal: "a termination signal".into(),
    }
}

/// Error a producer reports when its consumer thread stopped first; the
/// consumer's own error is the one shown.
fn consumer_gone() -> PrepError {
    PrepError::io(
        "a pipeline thread stopped early",
        std::io::Error::other("channel closed"),
    )
}

/// The fit pass: reads and cleans every chunk, accumulates the moments of
/// the scaled columns, and (in spill mode) hands the cleaned chunks to a
/// writer thread, so spilling overlaps with parsing.
pub fn fit_pass(
    plan: &Plan,
    files: &[InputObject],
    pieces: Option<&[Piece]>,
    schema_hint: Option<FixedSchema>,
    cancel: Arc<AtomicBool>,
    quiet: bool,
) -> Result<Option<Fitted>> {
    let mut source =
        Source::new(files.to_vec(), &plan.input, cancel).with_schema(schema_hint.clone());
    if let Some(p) = pieces {
        source = source.with_pieces(p.to_vec());
    }
    let mut resolved: Option<(ResolvedColumns, Cleaner)> = None;
    let mut moments: Vec<Moments> = Vec::new();
    if let Some(hint) = &schema_hint {
        let cols = resolve(plan, &hint.schema, &hint.origin)?;
        moments = vec![Moments::default(); cols.scaled.len()];
        resolved = Some((cols.clone(), cleaner_for(plan, &cols)));
    }
    let mut counts = CleanCounts::default();
    let mut progress = Progress::new("fit", source.total_bytes(), quiet);
    let spill_mode = match plan.input.second_pass {
        SecondPass::Spill => true,
        SecondPass::Reread => false,
        // Parquet decodes faster than Arrow IPC spills write and read back;
        // CSV parsing is slower than both (measured, README "Two passes").
        SecondPass::Auto => !files.iter().all(|f| {
            matches!(
                crate::source::format_of(f, plan.input.format),
                Ok(crate::plan::InputFormat::Parquet)
            )
        }),
    };

    let (read, spill) = std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<DataFrame>(2);
        let spiller = spill_mode.then(|| {
            scope.spawn(move || -> Result<Spill> {
                let mut spill = Spill::new()?;
                for mut df in rx {
                    timed(Stage::SpillWrite, || spill.write(&mut df))?;
                }
                Ok(spill)
            })
        });
        let read = source.for_each_chunk(&mut |chunk, src| {
            if resolved.is_none() {
                let schema = src
                    .schema
                    .as_ref()
                    .expect("schema fixed before the first chunk");
                let cols = resolve(plan, &schema.schema, &schema.origin)?;
                let cleaner = cleaner_for(plan, &cols);
                moments = vec![Moments::default(); cols.scaled.len()];
                resolved = Some((cols, cleaner));
            }
            let (cols, cleaner) = resolved.as_ref().expect("resolved above");
            let (df, c) = timed(Stage::Clean, || cleaner.apply(chunk, &src.files))?;
            counts.add(&c);
            timed(Stage::Stats, || -> Result<()> {
                let updates: Vec<Result<Vec<f64>>> = cols
                    .scaled
                    .par_iter()
                    .map(|c| finite_values(&df, c))
                    .collect();
                for (m, values) in moments.iter_mut().zip(updates) {
                    m.update(&values?);
                }
                Ok(())
            })?;
            if spill_mode && tx.send(df).is_err() {
                return Err(consumer_gone());
            }
            progress.update(src.bytes_read.load(Ordering::Relaxed), counts.rows_in);
            Ok(())
        });
        drop(tx);
        let spill = spiller.map(|h| h.join().expect("spill thread panicked"));
        (read, spill)
    });
    progress.finish();
    let spill = match (read, spill) {
        (_, Some(Err(e))) => return Err(e),
        (Err(e), _) => return Err(e),
        (Ok(()), spill) => spill.transpose()?,
    };
    let bytes_in = source.bytes_read.load(Ordering::Relaxed);
    let schema = source.schema.clone();
    Ok(resolved.map(|(resolved, cleaner)| Fitted {
        resolved,
        cleaner,
        moments,
        counts,
        bytes_in,
        spill,
        schema,
    }))
}

enum WriterMsg {
    Batch(SinkBatch),
    /// Sent only after the last batch: commit the last shard. Without it
    /// (an error upstream) the open shard is discarded.
    Finish,
}

/// The transform pass, as three stages on their own threads: a reader (spill
/// or re-read + clean), the scaler and encoder (this thread, parallel inside),
/// and the shard writer. Bounded channels keep at most a few chunks in flight.
#[allow(clippy::too_many_arguments)]
pub fn transform_pass(
    plan: &Plan,
    files: &[InputObject],
    pieces: Option<&[Piece]>,
    fitted: Fitted,
    scaler: &Scaler,
    out: &OutputDir,
    sink_opts: SinkOptions,
    cancel: Arc<AtomicBool>,
    quiet: bool,
) -> Result<(Vec<ShardInfo>, u64)> {
    let Fitted {
        resolved,
        cleaner,
        counts,
        spill,
        schema,
        ..
    } = fitted;
    let format = sink_opts.format;
    let mut progress = Progress::rows("transform", counts.rows_out(), quiet);
    let mut written = 0u64;
    let (read, main, write) = std::thread::scope(|scope| {
        let (in_tx, in_rx) = sync_channel::<Result<DataFrame>>(1);
        let cancel_reader = cancel.clone();
        let cleaner = &cleaner;
        let reader = scope.spawn(move || -> Result<()> {
            match spill {
                Some(spill) => {
                    for i in 0..spill.chunks() {
                        if in_tx
                            .send(timed(Stage::SpillRead, || spill.take(i)))
                            .is_err()
                        {
                            break;
                        }
                    }
                    Ok(())
                }
                None => {
                    let mut source =
                        Source::new(files.to_vec(), &plan.input, cancel_reader).with_schema(schema);
                    if let Some(p) = pieces {
                        source = source.with_pieces(p.to_vec());
                    }
                    source.for_each_chunk(&mut |chunk, src| {
                        let (df, _) = timed(Stage::Clean, || cleaner.apply(chunk, &src.files))?;
                        in_tx.send(Ok(df)).map_err(|_| consumer_gone())
                    })
                }
            }
        });
        let (out_tx, out_rx) = sync_channel::<WriterMsg>(2);
        let writer = scope.spawn(move || -> Result<Vec<ShardInfo>> {
            let mut sink = ShardSink::new(out.clone(), sink_opts);
            for msg in out_rx {
                match msg {
                    WriterMsg::Batch(b) => sink.write_batch(b)?,
                    WriterMsg::Finish => return sink.finish(),
                }
            }
            Err(interrupted())
        });
        let main = (|| -> Result<()> {
            for df in in_rx {
                if cancel.load(Ordering::Relaxed) {
                    return Err(interrupted());
                }
                let df = df?;
                let projected = timed(Stage::Scale, || {
                    scaler
                        .apply(df)
                        .and_then(|scaled| project(scaled, &resolved.output))
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
        let read = reader.join().expect("reader thread panicked");
        (read, main, write)
    });
    progress.finish();
    // Report the root cause: a reader/writer failure beats "thread stopped".
    read?;
    match (main, write) {
        (Err(e), Err(_)) if e.to_string() != consumer_gone().to_string() => Err(e),
        (_, Err(e)) => Err(e),
        (Err(e), _) => Err(e),
        (Ok(()), Ok(shards)) => Ok((shards, written)),
    }
}

pub fn run(plan: &Plan, opts: &RunOptions) -> Result<RunReport> {
    let cancel = crate::signals::install();
    run_with_cancel(plan, opts, cancel)
}

pub fn run_with_cancel(
    plan: &Plan,
    opts: &RunOptions,
    cancel: Arc<AtomicBool>,
) -> Result<RunReport> {
    let t0 = Instant::now();
    let out = OutputDir::new(&plan.output.uri, &plan.storage)?;
    let files = without_output(
        list_inputs(&plan.input.uri, &plan.storage)?,
        &out,
        &plan.input.uri,
    )?;
    prepare_output(&out, opts.overwrite)?;
    tracing::info!(
        pipeline = %plan.name,
        input = %plan.input.uri,
        objects = files.len(),
        bytes = files.iter().map(|f| f.size).sum::<u64>(),
        "starting run"
    );

    let fitted = fit_pass(plan, &files, None, None, cancel.clone(), opts.quiet)?;
    let t_fit = t0.elapsed().as_secs_f64();
    let Some(fitted) = fitted else {
        return Err(nothing_left(&plan.input.uri, &CleanCounts::default()));
    };
    let counts = fitted.counts.clone();
    let rows_out = counts.rows_out();
    if rows_out == 0 {
        return Err(nothing_left(&plan.input.uri, &counts));
    }
    let scaler = Scaler::fit(
        &fitted.resolved.scaled,
        &fitted.moments,
        plan.scale.with_mean,
        plan.scale.with_std,
        scaler_source(&plan.input.uri, &files),
    );
    tracing::info!(
        rows = rows_out,
        features = fitted.resolved.scaled.len(),
        seconds = t_fit,
        "fit done"
    );

    let t1 = Instant::now();
    let sink_opts = sink_options(plan, rows_out, "part-".into());
    let bytes_in = fitted.bytes_in;
    let (shards, written) = transform_pass(
        plan, &files, None, fitted, &scaler, &out, sink_opts, cancel, opts.quiet,
    )?;
    let t_transform = t1.elapsed().as_secs_f64();

    // Finalize: scaler, manifest, then _SUCCESS last.
    let t2 = Instant::now();
    put_uri(&plan.scaler_uri, &scaler.to_json(), &plan.storage)?;
    let names: Vec<String> = shards.iter().map(|s| s.name.clone()).collect();
    out.put(
        "manifest.json",
        &manifest_json(&out.manifest_prefix(), &names),
    )?;
    let mut durable = names.clone();
    durable.push("manifest.json".into());
    out.sync(&durable)?;
    let total = t0.elapsed().as_secs_f64();
    let mut seconds = BTreeMap::new();
    seconds.insert("fit".to_string(), t_fit);
    seconds.insert("transform".to_string(), t_transform);
    seconds.insert("finalize".to_string(), t2.elapsed().as_secs_f64());
    seconds.insert("total".to_string(), total);
    let shard_refs: Vec<&ShardInfo> = shards.iter().collect();
    let report = run_report(
        plan,
        files.len(),
        &counts,
        written,
        &shard_refs,
        bytes_in,
        seconds,
    );
    out.put("_SUCCESS", &report.to_json())?;
    Ok(report)
}

/// Shard settings for a run that writes `rows_out` rows in all:
/// `min_shards` lowers the rows per shard so there are enough shards.
pub fn sink_options(plan: &Plan, rows_out: u64, prefix: String) -> SinkOptions {
    let per_shard_for_min = rows_out
        .div_ceil(plan.output.min_shards.get() as u64)
        .max(1) as usize;
    SinkOptions {
        format: plan.output.format,
        compression: plan.output.compression,
        csv_header: plan.output.csv_header,
        max_rows: plan.output.shard_max_rows.get().min(per_shard_for_min),
        max_bytes: plan.output.shard_max_bytes,
        prefix,
    }
}

/// The report written to `_SUCCESS` (`seconds` must hold "total").
pub fn run_report(
    plan: &Plan,
    input_objects: usize,
    counts: &CleanCounts,
    rows_written: u64,
    shards: &[&ShardInfo],
    bytes_in: u64,
    seconds: BTreeMap<String, f64>,
) -> RunReport {
    let total = seconds.get("total").copied().unwrap_or_default();
    RunReport {
        status: "success".into(),
        pipeline: plan.name.clone(),
        prep_version: env!("CARGO_PKG_VERSION").into(),
        input_uri: plan.input.uri.clone(),
        output_uri: plan.output.uri.clone(),
        input_objects,
        rows_read: counts.rows_in,
        rows_dropped: RunReport::dropped(counts),
        rows_written,
        shards: shards.len(),
        bytes_in,
        bytes_out: shards.iter().map(|s| s.bytes).sum(),
        seconds,
        busy_seconds: crate::timings::snapshot(),
        rows_per_second: (counts.rows_in as f64 / total.max(1e-9)).round(),
    }
}

pub fn scaler_source(uri: &str, files: &[InputObject]) -> ScalerSource {
    ScalerSource {
        uri: uri.to_string(),
        objects: files
            .iter()
            .map(|f| SourceObject {
                key: f.key.clone(),
                size: f.size,
                etag: f.etag.clone(),
            })
            .collect(),
    }
}
