//! Attempts of a multi-worker job: which run of the job the `_work/`
//! markers belong to.
//!
//! `_work/attempt.json` names the open attempt and the settings its workers
//! must share. A worker joins the open attempt (a retried worker then finds
//! and reuses its own markers), or opens a new one when there is none or
//! the last one finished (`_SUCCESS` names it). The id comes from the
//! orchestrator when it gives one (`PREP_ATTEMPT_ID`, an AWS Batch array
//! job's id, the SageMaker Processing job's name), else the first worker
//! makes one up; the record is written with a conditional put, so of two
//! workers opening at once, one wins and the other joins.
//!
//! A worker whose settings differ from the attempt's refuses (exit 2) and
//! leaves `_work/mismatch-wIIII.json`, which stops the workers waiting at
//! the barrier within seconds; each of them leaves its own marker too. Such
//! an attempt has failed: a worker that arrives later and has no marker in
//! it is one of its late members and stops as well (so none waits for
//! workers that are gone); a worker that already has one is being rerun,
//! and opens a new attempt, as after a finished one. (With an attempt id
//! from the orchestrator the id alone decides: a failed attempt stays
//! failed until the orchestrator gives a new id.)

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{PrepError, Result};
use crate::job::barrier::{difference, mismatch_name, mismatches, record_stop, Mismatch};
use crate::job::worker_id::WorkerId;
use crate::job::Phase;
use crate::storage::{run_id, OutputDir};

const RECORD: &str = "_work/attempt.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct AttemptRecord {
    attempt: String,
    fingerprint: String,
    opened_by: usize,
    settings: BTreeMap<String, Value>,
}

/// The attempt id the orchestrator gives all workers of one attempt.
fn orchestrator_attempt() -> Option<String> {
    if let Some(id) = crate::env::attempt_id() {
        return Some(id);
    }
    // AWS Batch array children are `<parent>:<index>`; the parent is shared.
    if let Ok(id) = std::env::var("AWS_BATCH_JOB_ID") {
        return Some(id.split(':').next().unwrap_or(&id).to_string());
    }
    let dir = crate::env::sagemaker_config_dir();
    let path = std::path::Path::new(&dir).join("processingjobconfig.json");
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("ProcessingJobArn")
        .or_else(|| v.get("ProcessingJobName"))
        .and_then(|s| s.as_str())
        .map(str::to_string)
}

/// The attempt the last `_SUCCESS` completed, if any.
fn finished_attempt(out: &OutputDir) -> Result<Option<String>> {
    Ok(out
        .get("_SUCCESS")?
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| {
            v.get("attempt")
                .and_then(|a| a.as_str())
                .map(str::to_string)
        }))
}

/// Joins the open attempt of the job, or opens a new one; returns its id.
/// `opened` is set when this worker opened it.
pub fn join_or_open(
    out: &OutputDir,
    id: WorkerId,
    phase: Phase,
    fingerprint: &str,
    settings: &BTreeMap<String, Value>,
    overwrite: bool,
    opened: &mut bool,
) -> Result<String> {
    let given = orchestrator_attempt();
    loop {
        let current = out.get_tagged(RECORD)?;
        let record = current
            .as_ref()
            .and_then(|(b, _)| serde_json::from_slice::<AttemptRecord>(b).ok());
        if let Some(rec) = &record {
            let finished = finished_attempt(out)?.as_deref() == Some(rec.attempt.as_str());
            let same_attempt = match &given {
                Some(g) => *g == rec.attempt,
                None => !finished || phase == Phase::Transform,
            };
            let stops = if same_attempt {
                mismatches(out, &rec.attempt, id.count)?
            } else {
                BTreeMap::new()
            };
            if let Some(first) = stops
                .values()
                .next()
                .filter(|_| !stops.contains_key(&id.index))
            {
                // A late member of a failed attempt.
                let m = Mismatch {
                    attempt: rec.attempt.clone(),
                    worker: first.worker,
                    difference: first.difference.clone(),
                };
                record_stop(out, id.index, &m);
                return Err(PrepError::WorkerMismatch {
                    uri: out.uri.clone(),
                    worker: m.worker,
                    difference: m.difference,
                });
            }
            // This worker stopped in that failed attempt before: a rerun of
            // it opens a new one.
            let rerun_after_failure = !stops.is_empty() && given.is_none();
            if same_attempt && !rerun_after_failure {
                if rec.fingerprint != fingerprint {
                    return Err(refuse(out, id, rec, settings));
                }
                // Our own record, whose conditional write was retried.
                *opened |= rec.attempt == run_id();
                return Ok(rec.attempt.clone());
            }
        }
        if phase == Phase::Transform {
            return Err(PrepError::Usage {
                message: format!(
                    "--phase transform found no open attempt of this job under {}",
                    out.display("_work/")
                ),
                hint: Some("run --phase fit (or --phase all) for every worker first".into()),
            });
        }
        if !overwrite && out.exists("_SUCCESS")? {
            return Err(PrepError::OutputExists {
                uri: out.uri.clone(),
            });
        }
        let attempt = given.clone().unwrap_or_else(|| run_id().to_string());
        let body = AttemptRecord {
            attempt: attempt.clone(),
            fingerprint: fingerprint.to_string(),
            opened_by: id.index,
            settings: settings.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&body).expect("serializes");
        let expected = current.as_ref().map(|(_, tag)| tag.as_str());
        if out.put_conditional(RECORD, &bytes, expected)?.is_some() {
            tracing::info!(worker = id.index, attempt = %attempt, "opened a new attempt of the job");
            *opened = true;
            return Ok(attempt);
        }
        // Another worker opened one first: join it (next round).
    }
}

/// This worker runs other settings than the attempt's: say so where the
/// waiting workers look, and refuse.
fn refuse(
    out: &OutputDir,
    id: WorkerId,
    rec: &AttemptRecord,
    ours: &BTreeMap<String, Value>,
) -> PrepError {
    let ours_vs_theirs = difference(&rec.settings, ours);
    let marker = Mismatch {
        attempt: rec.attempt.clone(),
        worker: id.index,
        difference: difference(ours, &rec.settings),
    };
    if let Err(e) = out.put(
        &mismatch_name(id.index),
        &serde_json::to_vec_pretty(&marker).expect("serializes"),
    ) {
        tracing::warn!("could not tell the other workers about the mismatch: {e}");
    }
    PrepError::WorkerMismatch {
        uri: out.uri.clone(),
        worker: rec.opened_by,
        difference: ours_vs_theirs,
    }
}
