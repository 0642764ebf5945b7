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
use crate::sink::{manifest_json, ShardSink, SinkOptions};
use crate::source::Source;
use crate::spill::Spill;
use crate::stats::Moments;
use crate::store::{list_inputs, put_uri, InputObject, OutputDir};

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

/// State of the fit pass.
struct Fit {
    resolved: Option<(ResolvedColumns, Cleaner)>,
    moments: Vec<Moments>,
    counts: CleanCounts,
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
    let out = OutputDir::new(&plan.output.uri)?;
    let files = list_inputs(&plan.input.uri)?;
    prepare_output(&out, opts.overwrite)?;
    tracing::info!(
        pipeline = %plan.name,
        input = %plan.input.uri,
        objects = files.len(),
        bytes = files.iter().map(|f| f.size).sum::<u64>(),
        "starting run"
    );

    // Fit pass.
    let mut source = Source::new(files.clone(), &plan.input, cancel.clone());
    let mut spill = match plan.input.second_pass {
        SecondPass::Spill => Some(Spill::new()?),
        SecondPass::Reread => None,
    };
    let mut fit = Fit {
        resolved: None,
        moments: Vec::new(),
        counts: CleanCounts::default(),
    };
    let mut progress = Progress::new("fit", source.total_bytes(), opts.quiet);
    source.for_each_chunk(&mut |chunk, src| {
        if fit.resolved.is_none() {
            let schema = src
                .schema
                .as_ref()
                .expect("schema fixed before the first chunk");
            let resolved = resolve(plan, &schema.schema, &schema.origin)?;
            let cleaner = Cleaner {
                null_checked: resolved.null_checked.clone(),
                scaled: resolved.scaled.clone(),
                non_finite: plan.clean.non_finite,
            };
            fit.moments = vec![Moments::default(); resolved.scaled.len()];
            fit.resolved = Some((resolved, cleaner));
        }
        let (resolved, cleaner) = fit.resolved.as_ref().expect("resolved above");
        let (mut df, counts) = cleaner.apply(chunk, &src.files)?;
        fit.counts.add(&counts);
        let updates: Vec<Result<Vec<f64>>> = resolved
            .scaled
            .par_iter()
            .map(|c| finite_values(&df, c))
            .collect();
        for (m, values) in fit.moments.iter_mut().zip(updates) {
            m.update(&values?);
        }
        if let Some(spill) = spill.as_mut() {
            spill.write(&mut df)?;
        }
        progress.update(src.bytes_read.load(Ordering::Relaxed), fit.counts.rows_in);
        Ok(())
    })?;
    progress.finish();
    let bytes_in = source.bytes_read.load(Ordering::Relaxed);
    let t_fit = t0.elapsed().as_secs_f64();

    let Some((resolved, cleaner)) = fit.resolved else {
        return Err(nothing_left(&plan.input.uri, &fit.counts));
    };
    let rows_out = fit.counts.rows_out();
    if rows_out == 0 {
        return Err(nothing_left(&plan.input.uri, &fit.counts));
    }
    let scaler = Scaler::fit(
        &resolved.scaled,
        &fit.moments,
        plan.scale.with_mean,
        plan.scale.with_std,
        scaler_source(&plan.input.uri, &files),
    );
    tracing::info!(
        rows = rows_out,
        features = resolved.scaled.len(),
        seconds = t_fit,
        "fit done"
    );

    // Transform pass.
    let t1 = Instant::now();
    let per_shard_for_min = rows_out
        .div_ceil(plan.output.min_shards.get() as u64)
        .max(1) as usize;
    let sink_opts = SinkOptions {
        format: plan.output.format,
        compression: plan.output.compression,
        csv_header: plan.output.csv_header,
        max_rows: plan.output.shard_max_rows.get().min(per_shard_for_min),
        max_bytes: plan.output.shard_max_bytes,
        prefix: "part-".into(),
    };
    let mut sink = ShardSink::new(out.clone(), sink_opts);
    let mut written = 0u64;
    let mut progress = Progress::new("transform", rows_out, opts.quiet);
    let mut emit = |df: DataFrame, sink: &mut ShardSink| -> Result<()> {
        if cancel.load(Ordering::Relaxed) {
            return Err(PrepError::Interrupted {
                signal: "a termination signal".into(),
            });
        }
        let scaled = scaler.apply(df)?;
        let projected = project(scaled, &resolved.output)?;
        written += projected.height() as u64;
        sink.write(&projected)?;
        progress.update(written, written);
        Ok(())
    };
    match &spill {
        Some(spill) => {
            for i in 0..spill.chunks() {
                emit(spill.take(i)?, &mut sink)?;
            }
        }
        None => {
            let mut source = Source::new(files.clone(), &plan.input, cancel.clone());
            source.for_each_chunk(&mut |chunk, src| {
                let (df, _) = cleaner.apply(chunk, &src.files)?;
                emit(df, &mut sink)
            })?;
        }
    }
    let spill_bytes = spill.as_ref().map_or(0, |s| s.bytes);
    drop(spill.take());
    let shards = sink.finish()?;
    progress.finish();
    let t_transform = t1.elapsed().as_secs_f64();

    // Finalize: scaler, manifest, then _SUCCESS last.
    let t2 = Instant::now();
    put_uri(&plan.scaler_uri, &scaler.to_json())?;
    let names: Vec<String> = shards.iter().map(|s| s.name.clone()).collect();
    out.put(
        "manifest.json",
        &manifest_json(&out.manifest_prefix(), &names),
    )?;
    let total = t0.elapsed().as_secs_f64();
    let mut seconds = BTreeMap::new();
    seconds.insert("fit".to_string(), t_fit);
    seconds.insert("transform".to_string(), t_transform);
    seconds.insert("finalize".to_string(), t2.elapsed().as_secs_f64());
    seconds.insert("total".to_string(), total);
    let report = RunReport {
        status: "success".into(),
        pipeline: plan.name.clone(),
        prep_version: env!("CARGO_PKG_VERSION").into(),
        input_uri: plan.input.uri.clone(),
        output_uri: plan.output.uri.clone(),
        input_objects: files.len(),
        rows_read: fit.counts.rows_in,
        rows_dropped: RunReport::dropped(&fit.counts),
        rows_written: written,
        shards: shards.len(),
        bytes_in,
        bytes_out: shards.iter().map(|s| s.bytes).sum(),
        seconds,
        rows_per_second: (fit.counts.rows_in as f64 / total.max(1e-9)).round(),
    };
    tracing::debug!(spill_bytes, "spill size");
    out.put("_SUCCESS", &report.to_json())?;
    Ok(report)
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
