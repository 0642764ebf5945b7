//! Before a job writes: what may already be under its output, and what
//! `--overwrite` removes.
//!
//! One rule, two shapes of job. A single run owns the whole output: any
//! earlier run's files are refused without `--overwrite`, and removed
//! (`_SUCCESS` first, so no reader sees a mix) with it. The workers of a
//! job share the output, so a worker cannot treat the others' shards and
//! markers as leftovers: it refuses (or with `--overwrite` removes) a
//! finished job's `_SUCCESS`, and replaces only its own shards; worker 0
//! also removes the job-level files (manifest, scaler, single-run shards).

use crate::error::{PrepError, Result};
use crate::job::rejects::DIR as REJECTS;
use crate::job::worker_id::WorkerId;
use crate::job::Phase;
use crate::storage::output::OutputListing;
use crate::storage::OutputDir;

/// Files a run owns under its output directory.
fn is_run_output(name: &str) -> bool {
    name == "_SUCCESS"
        || name == "manifest.json"
        || name == "scaler.json"
        || name == "transform.json"
        || name == REJECTS
        || name == "_work"
        || name.starts_with("part-")
        || (name.starts_with(".part-") && name.ends_with(".inprogress"))
}

/// Shard names of worker `index` (`part-wIIII-NNNNN.ext`), or of a single
/// run (`part-NNNNN.ext`) when `worker` is `None`.
pub fn shard_prefix(worker: Option<WorkerId>) -> String {
    match worker {
        Some(id) => format!("part-w{:04}-", id.index),
        None => "part-".into(),
    }
}

/// Makes the output ready for this job (or worker) to write, or refuses.
/// `opened`: this worker opened the job's attempt (see `attempt.rs`, which
/// has already refused a finished output without `--overwrite`).
pub fn claim_output(
    out: &OutputDir,
    worker: Option<WorkerId>,
    phase: Phase,
    overwrite: bool,
    opened: bool,
) -> Result<()> {
    let listed = out.listing()?;
    let names = &listed.names;
    let Some(id) = worker else {
        return claim_whole(out, &listed, overwrite);
    };
    // Only the worker that opened this attempt removes the last one's
    // `_SUCCESS`; a worker joining later must not touch what may by then be
    // this attempt's own.
    if opened && names.iter().any(|n| n == "_SUCCESS") {
        out.delete_file("_SUCCESS")?;
    }
    let finalizer = overwrite && id.index == 0;
    let mut doomed: Vec<&str> = Vec::new();
    if phase != Phase::Transform && finalizer {
        doomed.extend(["manifest.json", "scaler.json"]);
    }
    if phase != Phase::Fit {
        let own = shard_prefix(Some(id));
        doomed.extend(names.iter().map(String::as_str).filter(|name| {
            // A shard, or the temporary file of one that a killed process
            // left (`.part-wIIII-NNNNN.ext.<run id>.inprogress`).
            let shard = name
                .strip_prefix('.')
                .filter(|_| name.ends_with(".inprogress"))
                .unwrap_or(name);
            let single_run_shard = shard.starts_with("part-") && !shard.starts_with("part-w");
            shard.starts_with(&own) || (finalizer && single_run_shard)
        }));
    }
    doomed.retain(|d| names.iter().any(|n| n == d));
    out.delete_all(&listed, &doomed)
}

fn claim_whole(out: &OutputDir, listed: &OutputListing, overwrite: bool) -> Result<()> {
    let existing: Vec<&String> = listed.names.iter().filter(|n| is_run_output(n)).collect();
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
    // `_SUCCESS` first, on its own: no reader may see it beside a mix of
    // old and missing files.
    out.delete_file("_SUCCESS")?;
    let rest: Vec<&str> = existing
        .iter()
        .map(|n| n.as_str())
        .filter(|n| *n != "_SUCCESS")
        .collect();
    out.delete_all(listed, &rest)
}
