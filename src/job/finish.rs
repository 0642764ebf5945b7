//! The end of every job (run, worker 0 of a scale-out, apply): the fitted
//! artifacts (`scaler.json`, `transform.json`), `manifest.json`, an fsync,
//! and `_SUCCESS` last. This is the only place that writes `_SUCCESS`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{PrepError, Result};
use crate::job::report::RunReport;
use crate::pipeline::plan::{Plan, StoragePlan};
use crate::storage::lock::OutputLock;
use crate::storage::{put_uri, InputObject, OutputDir};
use crate::transform::clean::CleanCounts;
use crate::transform::scaler::{ScalerSource, SourceObject};
use crate::write::sink::{manifest_json, ShardInfo, SinkOptions};

/// A fitted artifact to write before the manifest (e.g. `scaler.json`).
pub struct Artifact<'a> {
    pub uri: &'a str,
    pub bytes: Vec<u8>,
    pub storage: &'a StoragePlan,
}

/// What must still hold at the moment `_SUCCESS` is written: no stop was
/// asked for, and this run still holds the output's lock.
pub struct CommitGuard<'a> {
    pub cancel: &'a AtomicBool,
    pub lock: Option<&'a OutputLock>,
}

impl CommitGuard<'_> {
    pub fn check(&self) -> Result<()> {
        let pause = crate::env::pause_before_commit();
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        if self.cancel.load(Ordering::Relaxed) {
            return Err(PrepError::Interrupted {
                signal: "a termination signal".into(),
            });
        }
        match self.lock {
            Some(lock) => lock.check_held(),
            None => Ok(()),
        }
    }
}

/// Makes a job's output complete: the artifacts, the manifest listing
/// `shards` in order (each already durable: see [`OutputDir::sync`]), then
/// `_SUCCESS` with the report, unless `guard` says the run must not commit.
pub fn finish(
    out: &OutputDir,
    artifacts: &[Artifact],
    shards: &[&ShardInfo],
    report: &RunReport,
    guard: &CommitGuard,
) -> Result<()> {
    for a in artifacts {
        put_uri(a.uri, &a.bytes, a.storage)?;
    }
    let names: Vec<String> = shards.iter().map(|s| s.name.clone()).collect();
    out.put(
        "manifest.json",
        &manifest_json(&out.manifest_prefix(), &names),
    )?;
    out.sync(&["manifest.json".to_string()])?;
    guard.check()?;
    out.put("_SUCCESS", &report.to_json())
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
        attempt: None,
        rejects: None,
    }
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
