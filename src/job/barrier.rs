//! The meeting points of a job's workers: markers under `<output>/_work/`.
//!
//! ```text
//! worker i:  _work/partial-wIIII.json  (its fit state)    ─► all N read them
//!            _work/refine-rRR-wIIII.json (quantile pass RR) ─► all N read them
//!            _work/done-wIIII.json     (its shards)      ─► worker 0 reads them
//! ```
//! Every marker carries the job's fingerprint (SHA-256 of the resolved plan
//! and the input listing, not of the pipeline file's path), so markers of an
//! older, different job are ignored rather than merged. A single run is the
//! [`Barrier::Solo`] case: nobody to wait for, nothing written to `_work/`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{PrepError, Result};
use crate::job::worker_id::WorkerId;
use crate::pipeline::plan::Plan;
use crate::storage::{InputObject, OutputDir};
use crate::transform::clean::CleanCounts;
use crate::transform::quantile::Answer;
use crate::transform::steps::FitState;
use crate::write::sink::ShardInfo;

/// Partial statistics of one worker (`_work/partial-wIIII.json`): the fit
/// state of every step (moments, category counts, key histograms).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Partial {
    pub fingerprint: String,
    #[serde(default)]
    pub attempt: String,
    pub worker: usize,
    pub workers: usize,
    /// The scaled columns (every worker must resolve the same).
    pub feature_names: Vec<String>,
    pub state: FitState,
    pub counts: CleanCounts,
    /// `_rejects/` shards the worker's fit wrote.
    #[serde(default)]
    pub rejects: Vec<ShardInfo>,
    pub bytes_in: u64,
    pub seconds: f64,
}

/// One worker's answers to a quantile refinement pass.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefineMarker {
    pub fingerprint: String,
    pub attempt: String,
    pub worker: usize,
    pub round: usize,
    pub answers: Vec<Answer>,
}

/// What a worker wrote (`_work/done-wIIII.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Done {
    pub fingerprint: String,
    #[serde(default)]
    pub attempt: String,
    pub worker: usize,
    pub shards: Vec<ShardInfo>,
    pub rows_written: u64,
    pub seconds: f64,
}

/// What every worker of one job must agree on, flattened to dotted keys
/// (`scale.exclude`, `input.objects`, ...): the resolved plan (without the
/// pipeline file's path), the worker count and the input listing.
pub fn settings(plan: &Plan, files: &[InputObject], count: usize) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    flatten(
        "",
        &serde_json::to_value(plan).expect("plan serializes"),
        &mut out,
    );
    out.insert("workers".into(), Value::from(count));
    out.insert("input.objects".into(), Value::from(files.len()));
    let listing: Vec<(&str, u64, Option<&str>)> = files
        .iter()
        .map(|f| (f.key.as_str(), f.size, f.etag.as_deref()))
        .collect();
    out.insert(
        "input.listing".into(),
        Value::from(digest(&serde_json::json!(listing))),
    );
    out
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// 128 bits of SHA-256 over canonical JSON, in hex: stable across Rust
/// releases and machines.
fn digest(v: &Value) -> String {
    let bytes = serde_json::to_vec(v).expect("serializes");
    Sha256::digest(&bytes)
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The job's fingerprint: a digest of its [`settings`].
pub fn fingerprint(settings: &BTreeMap<String, Value>) -> String {
    digest(&serde_json::to_value(settings).expect("serializes"))
}

/// The first setting in which two workers differ, in words.
pub fn difference(theirs: &BTreeMap<String, Value>, ours: &BTreeMap<String, Value>) -> String {
    let keys: std::collections::BTreeSet<&String> = theirs.keys().chain(ours.keys()).collect();
    for k in keys {
        let (a, b) = (theirs.get(k), ours.get(k));
        if a != b {
            let show = |v: Option<&Value>| v.map_or("unset".to_string(), |v| v.to_string());
            return format!("{k} is {} there but {} here", show(a), show(b));
        }
    }
    "their settings differ".into()
}

fn partial_name(i: usize) -> String {
    format!("_work/partial-w{i:04}.json")
}

fn done_name(i: usize) -> String {
    format!("_work/done-w{i:04}.json")
}

fn refine_name(round: usize, i: usize) -> String {
    format!("_work/refine-r{round:02}-w{i:04}.json")
}

/// Where the workers of a job meet.
pub enum Barrier {
    /// A single run: its own statistics are all there is.
    Solo,
    /// Workers sharing an output, meeting through `_work/` markers.
    Shared {
        out: Box<OutputDir>,
        id: WorkerId,
        fingerprint: String,
        attempt: String,
        timeout: Duration,
    },
}

impl Barrier {
    pub fn fingerprint(&self) -> &str {
        match self {
            Barrier::Solo => "",
            Barrier::Shared { fingerprint, .. } => fingerprint,
        }
    }

    pub fn attempt(&self) -> &str {
        match self {
            Barrier::Solo => "",
            Barrier::Shared { attempt, .. } => attempt,
        }
    }

    /// Makes this worker's statistics visible to the others.
    pub fn publish_partial(&self, own: &Partial) -> Result<()> {
        if let Barrier::Shared { out, id, .. } = self {
            out.put(
                &partial_name(id.index),
                &serde_json::to_vec_pretty(own).expect("serializes"),
            )?;
            tracing::info!(
                worker = id.index,
                rows = own.counts.rows_out(),
                "partial statistics written"
            );
        }
        Ok(())
    }

    /// A worker that stops at the barrier because another one differs says
    /// so under its own index too.
    fn stopped<T>(&self, r: Result<T>) -> Result<T> {
        if let (
            Err(PrepError::WorkerMismatch {
                worker, difference, ..
            }),
            Barrier::Shared {
                out, id, attempt, ..
            },
        ) = (&r, self)
        {
            let m = Mismatch {
                attempt: attempt.clone(),
                worker: *worker,
                difference: difference.clone(),
            };
            record_stop(out, id.index, &m);
        }
        r
    }

    /// Every worker's statistics, in worker order.
    pub fn partials(&self, own: Option<Partial>, cancel: &AtomicBool) -> Result<Vec<Partial>> {
        let r = match self {
            Barrier::Solo => Ok(own.into_iter().collect()),
            Barrier::Shared {
                out,
                id,
                fingerprint,
                attempt,
                timeout,
            } => wait_all(
                out,
                id.count,
                &partial_name,
                (fingerprint, attempt),
                "partial statistics",
                *timeout,
                cancel,
            ),
        };
        self.stopped(r)
    }

    /// A quantile refinement round: publishes this worker's answers and
    /// returns every worker's, in worker order.
    pub fn exchange(
        &self,
        round: usize,
        answers: Vec<Answer>,
        cancel: &AtomicBool,
    ) -> Result<Vec<Vec<Answer>>> {
        match self {
            Barrier::Solo => Ok(vec![answers]),
            Barrier::Shared {
                out,
                id,
                fingerprint,
                attempt,
                timeout,
            } => {
                let own = RefineMarker {
                    fingerprint: fingerprint.clone(),
                    attempt: attempt.clone(),
                    worker: id.index,
                    round,
                    answers,
                };
                out.put(
                    &refine_name(round, id.index),
                    &serde_json::to_vec(&own).expect("serializes"),
                )?;
                let all: Vec<RefineMarker> = wait_all(
                    out,
                    id.count,
                    &|i| refine_name(round, i),
                    (fingerprint, attempt),
                    "quantile refinement answers",
                    *timeout,
                    cancel,
                )?;
                Ok(all.into_iter().map(|m| m.answers).collect())
            }
        }
    }

    /// Publishes this worker's shards; returns every worker's when this one
    /// finalizes the job (worker 0, after waiting), `None` otherwise.
    pub fn dones(&self, own: Done, cancel: &AtomicBool) -> Result<Option<Vec<Done>>> {
        // A stop requested before this worker says it is done: it never
        // says so, so the job never completes on its shards.
        if cancel.load(Ordering::Relaxed) {
            return Err(interrupted());
        }
        match self {
            Barrier::Solo => Ok(Some(vec![own])),
            Barrier::Shared {
                out,
                id,
                fingerprint,
                attempt,
                timeout,
            } => {
                out.put(
                    &done_name(id.index),
                    &serde_json::to_vec_pretty(&own).expect("serializes"),
                )?;
                tracing::info!(
                    worker = id.index,
                    rows = own.rows_written,
                    shards = own.shards.len(),
                    "worker done"
                );
                if id.index != 0 {
                    return Ok(None);
                }
                let r = wait_all(
                    out,
                    id.count,
                    &done_name,
                    (fingerprint, attempt),
                    "completion",
                    *timeout,
                    cancel,
                );
                self.stopped(r).map(Some)
            }
        }
    }
}

/// Written by a worker that found the job's attempt runs other settings,
/// so the workers waiting at the barrier stop within seconds too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Mismatch {
    pub attempt: String,
    pub worker: usize,
    pub difference: String,
}

pub fn mismatch_name(i: usize) -> String {
    format!("_work/mismatch-w{i:04}.json")
}

/// The mismatch markers of `attempt`, by the index of the worker that wrote
/// them: a worker that refused, or one that stopped because another did.
/// Any marker means the attempt failed.
pub fn mismatches(
    out: &OutputDir,
    attempt: &str,
    count: usize,
) -> Result<BTreeMap<usize, Mismatch>> {
    let mut found = BTreeMap::new();
    for i in 0..count {
        let Some(bytes) = out.get(&mismatch_name(i))? else {
            continue;
        };
        if let Ok(m) = serde_json::from_slice::<Mismatch>(&bytes) {
            if m.attempt == attempt {
                found.insert(i, m);
            }
        }
    }
    Ok(found)
}

/// Records that worker `index` stopped in `m.attempt` because of the
/// mismatch `m`: a rerun of this worker then knows that attempt is over for
/// it (see `attempt.rs`).
pub fn record_stop(out: &OutputDir, index: usize, m: &Mismatch) {
    if let Err(e) = out.put(
        &mismatch_name(index),
        &serde_json::to_vec_pretty(m).expect("serializes"),
    ) {
        tracing::warn!("could not record that this worker stopped: {e}");
    }
}

fn interrupted() -> PrepError {
    PrepError::Interrupted {
        signal: "a termination signal".into(),
    }
}

/// Polls until every worker's marker of our attempt (and fingerprint)
/// exists; stops at once when a worker reported a mismatch.
fn wait_all<T: DeserializeOwned>(
    out: &OutputDir,
    count: usize,
    name: &dyn Fn(usize) -> String,
    (fp, attempt): (&str, &str),
    what: &str,
    timeout: Duration,
    cancel: &AtomicBool,
) -> Result<Vec<T>> {
    let start = Instant::now();
    let mut found: BTreeMap<usize, T> = BTreeMap::new();
    let mut delay = Duration::from_millis(100);
    loop {
        for i in 0..count {
            if found.contains_key(&i) {
                continue;
            }
            if let Some(bytes) = out.get(&name(i))? {
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                let field = |k: &str| v.get(k).and_then(|f| f.as_str()).unwrap_or_default();
                if field("fingerprint") == fp && field("attempt") == attempt {
                    let t: T = serde_json::from_value(v).map_err(|e| {
                        PrepError::io(
                            format!("reading {}", out.display(&name(i))),
                            std::io::Error::other(e),
                        )
                    })?;
                    found.insert(i, t);
                }
            }
        }
        if found.len() == count {
            return Ok(found.into_values().collect());
        }
        for i in (0..count).filter(|i| !found.contains_key(i)) {
            let Some(bytes) = out.get(&mismatch_name(i))? else {
                continue;
            };
            if let Ok(m) = serde_json::from_slice::<Mismatch>(&bytes) {
                if m.attempt == attempt {
                    return Err(PrepError::WorkerMismatch {
                        uri: out.uri.clone(),
                        worker: m.worker,
                        difference: m.difference,
                    });
                }
            }
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(interrupted());
        }
        if start.elapsed() >= timeout {
            let missing: Vec<String> = (0..count)
                .filter(|i| !found.contains_key(i))
                .map(|i| i.to_string())
                .collect();
            return Err(PrepError::Storage {
                action: format!(
                    "waiting {}s for the {what} of workers {}",
                    timeout.as_secs(),
                    missing.join(", ")
                ),
                uri: out.display("_work/"),
                hint: Some(format!(
                    "start the missing workers (or rerun them with the same --worker index); PREP_WAIT_TIMEOUT sets the wait (now {})",
                    humantime::format_duration(timeout)
                )),
                source: Box::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "timed out",
                )),
            });
        }
        std::thread::sleep(delay);
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::config::load_str;

    fn plan(file: &str, text: &str) -> Plan {
        Plan::build(&load_str(file, text, &[]).unwrap()).unwrap()
    }

    const PIPELINE: &str = "name = \"t\"\n[input]\nuri = \"in.csv\"\n[output]\nuri = \"out/\"\n";

    #[test]
    fn fingerprint_ignores_the_pipeline_files_path_but_not_its_content() {
        let files = vec![InputObject::local("in.csv".into(), "in.csv".into(), 10)];
        let fp =
            |file: &str, text: &str, n: usize| fingerprint(&settings(&plan(file, text), &files, n));
        let a = fp("/a/p.toml", PIPELINE, 2);
        assert_eq!(a, fp("/elsewhere/q.toml", PIPELINE, 2));
        assert_eq!(a.len(), 32);
        let other = PIPELINE.replace("out/", "out2/");
        assert_ne!(a, fp("/a/p.toml", &other, 2));
        assert_ne!(a, fp("/a/p.toml", PIPELINE, 3));
    }

    #[test]
    fn the_difference_names_the_setting() {
        let files = vec![InputObject::local("in.csv".into(), "in.csv".into(), 10)];
        let excl = PIPELINE.replace("[output]", "[scale]\nexclude = [\"a\"]\n[output]");
        let d = difference(
            &settings(&plan("p.toml", PIPELINE), &files, 2),
            &settings(&plan("p.toml", &excl), &files, 2),
        );
        assert_eq!(d, r#"scale.exclude is [] there but ["a"] here"#);
    }
}
